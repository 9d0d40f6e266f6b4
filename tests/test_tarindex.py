"""The layer tar indexer: what each entry says about a tar member, on tars
written by GNU tar, by Python's tarfile and byte by byte (hostile ones too)."""
from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unionfs.entry import GID, HARDLINK, LINK, MODE, MTIME, OFFSET, PATH, RDEV, SIZE, UID, XATTRS
from unionfs.tarindex import LayerError, TarIndexer, index_stream, parse_pax_time

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`

CAPABILITY = bytes.fromhex("0100000200200000000000000000000000000000")   # cap_net_bind_service+ep


def gnu_tar(*args: str) -> None:
    if shutil.which("tar") is None:
        pytest.fail("GNU tar is not installed (Debian package: tar)")
    subprocess.run(["tar", *args], check=True, capture_output=True)


def index(data: bytes) -> list:
    return index_stream(io.BytesIO(data))


def by_path(entries: list) -> dict:
    return {e[PATH]: e for e in entries}


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs) -> tuple:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mtime = kind, len(data), attrs.pop("mtime", 1_600_000_000)
    for key, value in attrs.items():
        setattr(ti, key, value)
    return ti, data


def make_tar(members: list[tuple], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for ti, data in members:
            tar.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return out.getvalue()


def raw_header(name: bytes, kind: bytes, size: int = 0, linkname: bytes = b"") -> bytes:
    """A ustar header block written by hand (for what tarfile will not write)."""
    ti = tarfile.TarInfo(name.decode("latin-1"))
    ti.type, ti.size, ti.linkname, ti.mtime = kind, size, linkname.decode("latin-1"), 0
    return ti.tobuf(tarfile.USTAR_FORMAT, encoding="latin-1")


def pax_records(records: list[tuple[bytes, bytes]]) -> bytes:
    out = b""
    for key, value in records:
        body = b" " + key + b"=" + value + b"\n"
        n = len(body) + 1
        while len(str(n).encode() + body) != n:
            n += 1
        out += str(n).encode() + body
    return out


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 512)


def pax_member(records: list[tuple[bytes, bytes]], name: bytes, data: bytes = b"",
               kind: bytes = tarfile.REGTYPE) -> bytes:
    body = pax_records(records)
    return (raw_header(b"PaxHeader/" + name[:80], tarfile.XHDTYPE, len(body)) + padded(body)
            + raw_header(name, kind, len(data)) + padded(data))


END = bytes(1024)


# -- every kind of member -----------------------------------------------------------------

def test_entry_fields_for_every_member_type():
    data = b"hello world\n" * 100
    tar = make_tar([
        member("./", tarfile.DIRTYPE, mode=0o755, uid=0, gid=0),
        member("etc", tarfile.DIRTYPE, mode=0o1777, uid=1000, gid=1001),
        member("etc/file", data=data, mode=0o4755, uid=1000, gid=1001, mtime=1_700_000_001),
        member("etc/hard", tarfile.LNKTYPE, linkname="etc/file", mode=0o4755),
        member("etc/abs", tarfile.SYMTYPE, linkname="/usr/bin/env", mode=0o777),
        member("etc/climb", tarfile.SYMTYPE, linkname="../../../../etc/passwd", mode=0o777),
        member("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        member("dev/sda", tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o660, gid=6),
        member("run/fifo", tarfile.FIFOTYPE, mode=0o600),
        member("empty", data=b"", mode=0o000),
    ])
    entries = index(tar)
    e = by_path(entries)
    assert [x[PATH] for x in entries] == [b"", b"etc", b"etc/file", b"etc/hard", b"etc/abs",
                                          b"etc/climb", b"dev/null", b"dev/sda", b"run/fifo",
                                          b"empty"]
    assert e[b""][MODE] == stat.S_IFDIR | 0o755
    assert e[b"etc"][MODE] == stat.S_IFDIR | 0o1777
    assert (e[b"etc"][UID], e[b"etc"][GID]) == (1000, 1001)
    f = e[b"etc/file"]
    assert f[MODE] == stat.S_IFREG | 0o4755
    assert (f[SIZE], f[MTIME], f[LINK], f[HARDLINK], f[RDEV]) == \
        (len(data), 1_700_000_001 * 10**9, None, None, 0)
    assert tar[f[OFFSET]:f[OFFSET] + f[SIZE]] == data
    assert e[b"etc/hard"][HARDLINK] == b"etc/file"
    assert e[b"etc/hard"][MODE] == stat.S_IFREG | 0o4755 and e[b"etc/hard"][SIZE] == 0
    assert e[b"etc/abs"][LINK] == b"/usr/bin/env"
    assert e[b"etc/abs"][MODE] == stat.S_IFLNK | 0o777
    assert e[b"etc/climb"][LINK] == b"../../../../etc/passwd"        # kept verbatim
    assert e[b"dev/null"][MODE] == stat.S_IFCHR | 0o666
    assert e[b"dev/null"][RDEV] == os.makedev(1, 3)
    assert e[b"dev/sda"][MODE] == stat.S_IFBLK | 0o660 and e[b"dev/sda"][RDEV] == os.makedev(8, 0)
    assert e[b"run/fifo"][MODE] == stat.S_IFIFO | 0o600
    assert e[b"empty"][MODE] == stat.S_IFREG and e[b"empty"][SIZE] == 0
    assert all(x[XATTRS] is None for x in entries)


def _tree(root: Path) -> None:
    (root / "d" / ("long-directory-name-" * 8)).mkdir(parents=True)
    (root / "d" / "f").write_bytes(os.urandom(70_000))
    (root / "d" / ("long-directory-name-" * 8) / ("long-file-name-" * 12)).write_bytes(b"x" * 513)
    os.link(root / "d" / "f", root / "d" / "f-link")
    os.symlink("t" * 300, root / "d" / "long-target")
    os.mkfifo(root / "d" / "fifo")
    os.utime(root / "d" / "f", ns=(0, 1_234_567_890_123_456_789))
    os.setxattr(root / "d" / "f", "user.bin", bytes([0, 1, 0xFF, 0xFE, 10, 61, 32]))
    os.setxattr(root / "d" / "f", "user.text", b"a=b c")


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_gnu_tar_files_read_back_at_their_offsets(tmp_path, fmt):
    src = tmp_path / "src"
    _tree(src)
    tar = tmp_path / "l.tar"
    extra = ["--xattrs", "--xattrs-include=*"] if fmt == "pax" else []
    gnu_tar(f"--format={fmt}", *extra, "-cf", str(tar), "-C", str(src), "d")
    entries = index(tar.read_bytes())
    fd = os.open(tar, os.O_RDONLY)
    try:
        for e in entries:
            disk = src / os.fsdecode(e[PATH])
            st_ = disk.lstat()
            if e[HARDLINK] is not None:
                assert (src / os.fsdecode(e[HARDLINK])).samefile(disk)
                continue
            assert e[MODE] == st_.st_mode, e[PATH]
            assert (e[UID], e[GID]) == (st_.st_uid, st_.st_gid)
            if stat.S_ISREG(st_.st_mode):
                assert os.pread(fd, e[SIZE], e[OFFSET]) == disk.read_bytes()
            if stat.S_ISLNK(st_.st_mode):
                assert e[LINK] == os.readlink(disk).encode()
    finally:
        os.close(fd)
    f = by_path(entries)[b"d/f"]
    if fmt == "pax":            # nanoseconds and xattrs need PAX
        assert f[MTIME] == 1_234_567_890_123_456_789
        assert f[XATTRS] == {b"user.bin": bytes([0, 1, 0xFF, 0xFE, 10, 61, 32]),
                             b"user.text": b"a=b c"}
    else:
        assert f[MTIME] == 1_234_567_890 * 10**9
    long_file = b"d/" + b"long-directory-name-" * 8 + b"/" + b"long-file-name-" * 12
    assert by_path(entries)[long_file][SIZE] == 513
    assert by_path(entries)[b"d/long-target"][LINK] == b"t" * 300


# -- xattrs and times -----------------------------------------------------------------------

def test_binary_xattrs_round_trip_byte_exact_by_hand():
    weird = bytes(range(256))
    tar = pax_member([(b"SCHILY.xattr.security.capability", CAPABILITY),
                      (b"SCHILY.xattr.user.all-bytes", weird),
                      (b"SCHILY.xattr.user.empty", b""),
                      (b"LIBARCHIVE.xattr.user.x", b"aWdub3JlZA")], b"bin/ping", b"ELF") + END
    (e,) = index(tar)
    assert e[XATTRS] == {b"security.capability": CAPABILITY, b"user.all-bytes": weird,
                         b"user.empty": b""}
    assert tar[e[OFFSET]:e[OFFSET] + 3] == b"ELF"


def test_binary_xattrs_round_trip_as_python_tarfile_writes_them():
    ti, data = member("bin/ping", data=b"ELF")
    ti.pax_headers = {"SCHILY.xattr.security.capability":
                      CAPABILITY.decode("utf-8", "surrogateescape"),
                      "SCHILY.xattr.user.latin": "\xe9t\xe9"}
    (e,) = index(make_tar([(ti, data)]))
    assert e[XATTRS] == {b"security.capability": CAPABILITY,
                         b"user.latin": "\xe9t\xe9".encode()}


@pytest.mark.parametrize("text, ns", [
    ("1700000000.123456789", 1_700_000_000_123_456_789),
    ("1700000000.5", 1_700_000_000_500_000_000),
    ("1700000000", 1_700_000_000_000_000_000),
    ("-1.5", -1_500_000_000),
    ("-0.000000001", -1),
    ("0.1234567899999", 123_456_789),                   # past ns: truncated, as Go does
    ("99999999999.999999999", 99_999_999_999_999_999_999),
])
def test_pax_mtime_is_exact_nanoseconds(text, ns):
    tar = pax_member([(b"mtime", text.encode())], b"f", b"x") + END
    assert index(tar)[0][MTIME] == ns
    assert parse_pax_time(text.encode()) == ns


def test_invalid_pax_time_is_an_error():
    with pytest.raises(LayerError, match="invalid PAX time"):
        index(pax_member([(b"mtime", b"1e9")], b"f") + END)


def test_negative_and_huge_numbers_in_gnu_base256():
    ti, data = member("old", data=b"a", mtime=-86_400, uid=2**30, gid=2**31)
    (e,) = index(make_tar([(ti, data)], fmt=tarfile.GNU_FORMAT))
    assert (e[MTIME], e[UID], e[GID]) == (-86_400 * 10**9, 2**30, 2**31)


def test_pax_overrides_header_fields():
    tar = pax_member([(b"path", b"some/" + b"very-long/" * 30 + b"name"), (b"uid", b"70000"),
                      (b"gid", b"80000"), (b"size", b"3")], b"short", b"abc") + END
    (e,) = index(tar)
    assert e[PATH] == b"some/" + b"very-long/" * 30 + b"name"
    assert (e[UID], e[GID], e[SIZE]) == (70000, 80000, 3)
    assert tar[e[OFFSET]:e[OFFSET] + 3] == b"abc"


def test_global_pax_headers_are_ignored():
    body = pax_records([(b"comment", b"made by a tool"), (b"uid", b"5")])
    tar = (raw_header(b"pax_global_header", tarfile.XGLTYPE, len(body)) + padded(body)
           + raw_header(b"f", tarfile.REGTYPE, 1) + padded(b"z") + END)
    (e,) = index(tar)
    assert (e[PATH], e[UID]) == (b"f", 0)


# -- paths -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, path", [
    ("./", b""), (".", b""), ("/", b""), ("./a//b/./c/", b"a/b/c"), ("/abs/x", b"abs/x"),
    ("//abs//y", b"abs/y"), ("a/../b", b"b"), ("./.wh..wh..opq", b".wh..wh..opq"),
    ("d/.wh.gone", b"d/.wh.gone"), (".hidden/..x", b".hidden/..x"),
])
def test_paths_are_normalized(name, path):
    kind = tarfile.DIRTYPE if path in (b"", b"abs/x") else tarfile.REGTYPE
    (e,) = index(make_tar([member(name, kind)]))
    assert e[PATH] == path


@pytest.mark.parametrize("name", ["../x", "a/../../x", "./../x", "/../x", ".."])
def test_paths_escaping_the_root_are_refused(name):
    with pytest.raises(LayerError, match="layer entry escapes the root"):
        index(make_tar([member(name)]))


def test_hardlink_targets_are_normalized_and_checked():
    entries = index(make_tar([member("/etc/passwd", data=b"root"),
                              member("copy", tarfile.LNKTYPE, linkname="/etc//./passwd")]))
    assert entries[1][HARDLINK] == b"etc/passwd"
    with pytest.raises(LayerError, match="hardlink target escapes the root: ../../etc/passwd"):
        index(make_tar([member("x", tarfile.LNKTYPE, linkname="../../etc/passwd")]))


def test_bare_whiteout_is_invalid():
    with pytest.raises(LayerError, match="invalid whiteout name: dir/.wh."):
        index(make_tar([member("dir/.wh.")]))


def test_root_entry_must_be_a_directory():
    with pytest.raises(LayerError, match="must be a directory"):
        index(make_tar([member("./", data=b"not a dir")]))


def test_duplicate_paths_are_kept_in_tar_order():
    entries = index(make_tar([member("f", data=b"first"), member("f", data=b"second!")]))
    assert [(e[PATH], e[SIZE]) for e in entries] == [(b"f", 5), (b"f", 7)]


def test_pre_posix_directory_by_trailing_slash():
    tar = raw_header(b"olddir/", b"\x00") + END
    assert index(tar)[0][MODE] & stat.S_IFMT(0o170000) == stat.S_IFDIR


# -- refused and broken tars --------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_sparse_files_are_refused(tmp_path, fmt):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "holes", "wb") as f:
        f.seek(8 << 20)
        f.write(b"end")
    gnu_tar(f"--format={fmt}", "--sparse", "-cf", str(tmp_path / "s.tar"), "-C", str(src),
            "holes")
    with pytest.raises(LayerError, match="sparse file .* is not supported"):
        index((tmp_path / "s.tar").read_bytes())


def test_unknown_member_types_are_refused():
    tar = raw_header(b"label", b"V") + END
    with pytest.raises(LayerError, match="unsupported tar entry type 'V' for label"):
        index(tar)


def test_contiguous_files_are_regular_files():
    tar = raw_header(b"c", b"7", 4) + padded(b"data") + END
    (e,) = index(tar)
    assert e[MODE] == stat.S_IFREG | 0o644 and e[SIZE] == 4


@pytest.mark.parametrize("cut", [100, 512 + 10, 512 + 700, 512 + 1023])
def test_truncated_tars_are_errors(cut):
    tar = make_tar([member("a", data=b"x" * 1000), member("b", data=b"y")])
    with pytest.raises(LayerError, match="^truncated layer"):
        index(tar[:cut])


def test_truncated_inside_a_pax_record():
    tar = pax_member([(b"path", b"p" * 700)], b"f", b"data")
    with pytest.raises(LayerError, match="^truncated layer"):
        index(tar[:512 + 300])
    with pytest.raises(LayerError, match="^truncated layer"):
        index(tar[:1024 + 512])          # PAX record complete, its member missing


def test_absurd_sizes_are_truncation():
    tar = pax_member([(b"size", b"999999999999999999")], b"huge", b"tiny") + END
    with pytest.raises(LayerError, match="^truncated layer"):
        index(tar)


def test_oversized_metadata_records_are_refused():
    tar = raw_header(b"././@LongLink", b"L", 1 << 30)
    with pytest.raises(LayerError, match="too large"):
        index(tar)


def test_bad_checksum_is_an_error():
    tar = bytearray(make_tar([member("a", data=b"1")]))
    tar[0] ^= 1
    with pytest.raises(LayerError, match="bad header checksum"):
        index(bytes(tar))


def test_end_blocks_are_optional_and_trailing_bytes_allowed():
    tar = make_tar([member("a", data=b"1")])
    assert [e[PATH] for e in index(tar[:1024])] == [b"a"]          # no end-of-archive blocks
    assert [e[PATH] for e in index(tar + b"trailing junk")] == [b"a"]
    assert index(b"") == []


def test_malformed_pax_is_an_error():
    body = b"12 path=x\n"                                  # the length says 12, the record is 10
    tar = raw_header(b"h", tarfile.XHDTYPE, len(body)) + padded(body) + raw_header(b"f", b"0")
    with pytest.raises(LayerError, match="malformed PAX header"):
        index(tar + END)


# -- streaming ---------------------------------------------------------------------------------

def _sample() -> bytes:
    ti, data = member("x/" + "n" * 150, data=os.urandom(3000))
    ti.pax_headers = {"SCHILY.xattr.user.k": "v", "mtime": "12.000000007"}
    return make_tar([member("x", tarfile.DIRTYPE), (ti, data),
                     member("x/l", tarfile.SYMTYPE, linkname="y" * 200),
                     member("x/e")], fmt=tarfile.PAX_FORMAT) + make_tar(
        [member("g" * 120, data=b"gnu long name")], fmt=tarfile.GNU_FORMAT)[:-1024]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=1500), max_size=40))
def test_any_chunking_gives_the_same_entries(cuts):
    tar = _sample()
    indexer = TarIndexer()
    pos = 0
    for n in cuts:
        indexer.feed(tar[pos:pos + n])
        pos += n
    indexer.feed(tar[pos:])
    assert indexer.finish() == index(tar)


def test_index_holds_no_file_data():
    tar = make_tar([member("big", data=bytes(4 << 20))])
    indexer = TarIndexer()
    for i in range(0, len(tar), 4096):
        indexer.feed(tar[i:i + 4096])
    (e,) = indexer.finish()
    assert e[SIZE] == 4 << 20 and len(indexer._partial) == 0 and indexer._meta is None
