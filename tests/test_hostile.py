"""Hostile layer tars, end to end: through ``dockish mount oci:...`` and
``LayerStore.import_blob``. Each ends in one clear error (exit 125, one line,
nothing stored, no temporary left) or a safe view (nothing outside the view
is read or written, on the host or through the mount).

The view never builds a host path from a name in a layer: lower files are
read from the stored tar by offset, upper files by inode number through one
directory fd, so lower-layer symlinks at host paths are only ever resolved
by the kernel inside whatever root the reader has.
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest
import zstandard

from unionfs.layers import LayerStore
from unionfs.tarindex import LayerError

from .diffbase import dockish_exe

# ------------------------------------------------------------------ image making


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_layout(d: Path, layer_blobs: list[bytes], *, media: str | None = None) -> str:
    """An OCI layout (tag ``t``) whose layers are these blobs, byte for byte:
    umoci and skopeo refuse to carry hostile tars, so this writes it by hand."""
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = _sha(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return digest

    diff_ids, layers = [], []
    for blob in layer_blobs:
        raw = blob
        kind = "tar"
        if blob[:2] == b"\x1f\x8b":
            try:
                raw, kind = gzip.decompress(blob), "tar+gzip"
            except EOFError:
                raw, kind = b"", "tar+gzip"   # a broken blob: its diff_id is moot
        elif blob[:4] == b"\x28\xb5\x2f\xfd":
            raw, kind = b"", "tar+zstd"       # diff_id unknown without inflating it
        diff_ids.append(_sha(raw) if raw or kind == "tar" else "sha256:" + "0" * 64)
        layers.append({"mediaType": media or f"application/vnd.oci.image.layer.v1.{kind}",
                       "digest": put(blob), "size": len(blob)})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         "config": {}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(config), "size": len(config)},
        "layers": layers}).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "t"}}]}
    (d / "index.json").write_text(json.dumps(index))
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return f"oci:{d}:t"


def tar_of(*members: tuple, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """Members (name, kind, arg): f file (arg data), d dir, l symlink, h
    hardlink (arg target), c/b char/block device (arg (major, minor))."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for name, kind, arg in members:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.mode = 1_600_000_000, 0o755 if kind == "d" else 0o644
            data = None
            if kind == "f":
                data = arg
                ti.size = len(arg)
            elif kind == "d":
                ti.type = tarfile.DIRTYPE
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, arg
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, arg
            elif kind in "cb":
                ti.type = tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = arg
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def raw_member(name: bytes, kind: bytes, size: int, data: bytes = b"") -> bytes:
    """A ustar header whose size field says what we like, then the data given."""
    ti = tarfile.TarInfo(name.decode())
    ti.type, ti.size = kind, size
    return ti.tobuf(tarfile.GNU_FORMAT) + data + bytes(-len(data) % 512)


def dockish(*args: str, env: dict | None = None, timeout: float = 120
            ) -> subprocess.CompletedProcess:
    return subprocess.run([dockish_exe(), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def store_state(root: Path) -> tuple[list[str], list[str]]:
    """(stored layers, leftovers in tmp) of a store."""
    def ls(p: Path) -> list[str]:
        return sorted(os.listdir(p)) if p.exists() else []
    return ls(root / "layers" / "sha256"), ls(root / "tmp")


def snapshot(path: Path) -> dict:
    """Every name under path with its type, size, mode and content digest."""
    out = {}
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            p = Path(dirpath, name)
            st = p.lstat()
            body = hashlib.sha256(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            out[str(p.relative_to(path))] = (st.st_mode, st.st_size, st.st_mtime_ns, body)
    return out


@pytest.fixture
def host(tmp_path) -> Path:
    """Host files a hostile layer aims at: none may change."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "secret").write_text("host secret\n")
    (victim / "dir").mkdir()
    return victim


# ------------------------------------------------------------------ refused layers

MERGE_REFUSED = {"hardlink to a host path"}
REFUSED = {
    "dot-dot path": (lambda v: tar_of(("../escape", "f", b"x")),
                     "layer entry escapes the root: ../escape"),
    "dot-dot inside a path": (lambda v: tar_of(("a/../../escape", "f", b"x")),
                              "layer entry escapes the root: a/../../escape"),
    "hardlink out of the tree": (lambda v: tar_of(("h", "h", "../../" + str(v) + "/secret")),
                                 "hardlink target escapes the root"),
    "hardlink to a host path": (lambda v: tar_of(("h", "h", str(v / "secret"))),
                                "hardlink h points at missing "),
    "sparse file": (lambda v: _sparse_tar(), "sparse file .* is not supported"),
    "huge size in a header": (lambda v: raw_member(b"huge", b"0", 8 << 40, b"tiny"),
                              "truncated layer: the tar ends inside 'huge'"),
    "truncated data": (lambda v: tar_of(("f", "f", os.urandom(5000)))[:2048],
                       "truncated layer"),
    "truncated header": (lambda v: tar_of(("f", "f", b"x"))[:300], "truncated layer"),
    "bare whiteout": (lambda v: tar_of((".wh.", "f", b"")), "invalid whiteout name"),
    "file as root": (lambda v: tar_of(("./", "f", b"")), "must be a directory"),
    "corrupt gzip": (lambda v: gzip.compress(tar_of(("f", "f", os.urandom(9000))))[:-9],
                     "corrupt or truncated gzip layer data"),
}


def _sparse_tar() -> bytes:
    ti = tarfile.TarInfo("holes")
    ti.size = 3
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                      "GNU.sparse.name": "holes", "GNU.sparse.realsize": str(1 << 40)}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.addfile(ti, io.BytesIO(b"end"))
    return out.getvalue()


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_hostile_layer_is_one_clear_error(case, host, tmp_path, dockish_root):
    make, message = REFUSED[case]
    image = oci_layout(tmp_path / "img", [make(host)])
    before = snapshot(host)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = dockish("mount", image, str(mnt))
    assert p.returncode == 125, (p.stdout, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dockish: error: "), p.stderr
    import re
    assert re.search(message, lines[0]), lines[0]
    assert not os.path.ismount(mnt) and os.listdir(mnt) == []
    layers, tmp = store_state(dockish_root)
    assert tmp == []
    # a complete, verified layer may stay stored when only the merge refuses it
    assert layers == ([] if case not in MERGE_REFUSED else layers)
    assert snapshot(host) == before


# ------------------------------------------------------------------ safe views

def _mounted(image: str, mnt: Path, *extra: str) -> None:
    p = dockish("mount", *extra, image, str(mnt))
    assert p.returncode == 0, p.stderr


def test_absolute_and_escaping_names_stay_inside_the_view(host, tmp_path):
    before = snapshot(host)
    layer = tar_of(("/" + str(host / "secret").lstrip("/"), "f", b"layer, not host\n"),
                   ("/abs", "f", b"abs\n"), ("./a/./b/../c", "f", b"c\n"),
                   ("link-abs", "l", str(host / "secret")), ("link-up", "l", "../" * 40 + "etc"),
                   ("lnkdir", "l", str(host / "dir")))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    _mounted(oci_layout(tmp_path / "img", [layer]), mnt)
    try:
        inside = mnt / str(host / "secret").lstrip("/")
        assert inside.read_text() == "layer, not host\n"
        assert (mnt / "abs").read_text() == "abs\n" and (mnt / "a" / "c").read_text() == "c\n"
        assert os.readlink(mnt / "link-abs") == str(host / "secret")   # verbatim, not followed
        assert os.readlink(mnt / "link-up") == "../" * 40 + "etc"
        assert sorted(os.listdir(mnt)) == sorted(["abs", "a", "link-abs", "link-up", "lnkdir",
                                                  str(host).lstrip("/").split("/")[0]])
    finally:
        assert dockish("umount", str(mnt)).returncode == 0
    assert snapshot(host) == before


def test_symlink_then_write_through_it_makes_a_directory(host, tmp_path):
    """The classic two-entry escape: ``x -> /host/dir`` then ``x/pwned``. The
    view never follows the symlink: ``x`` becomes a directory, as if the
    layer had named one."""
    before = snapshot(host)
    layer = tar_of(("x", "l", str(host / "dir")), ("x/pwned", "f", b"gotcha\n"),
                   ("y", "l", "../../../../../../" + str(host / "dir").lstrip("/")),
                   ("y/pwned", "h", "x/pwned"))
    second = tar_of(("z", "l", str(host)), ("z/secret", "f", b"overwritten?\n"))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    _mounted(oci_layout(tmp_path / "img", [layer, second]), mnt)
    try:
        assert (mnt / "x").is_dir() and not (mnt / "x").is_symlink()
        assert (mnt / "x" / "pwned").read_text() == "gotcha\n"
        assert (mnt / "y" / "pwned").read_text() == "gotcha\n"
        assert os.stat(mnt / "y" / "pwned").st_nlink == 2
        assert (mnt / "z" / "secret").read_text() == "overwritten?\n"
    finally:
        assert dockish("umount", str(mnt)).returncode == 0
    assert snapshot(host) == before


def test_device_nodes_are_shown_but_never_opened(host, tmp_path):
    """Device nodes keep their numbers, but FUSE mounts of a user are nodev:
    opening one through the view cannot reach the host's device."""
    layer = tar_of(("dev", "d", None), ("dev/sda", "b", (8, 0)), ("dev/mem", "c", (1, 1)),
                   ("dev/null", "c", (1, 3)))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    _mounted(oci_layout(tmp_path / "img", [layer]), mnt)
    try:
        st = os.lstat(mnt / "dev" / "sda")
        assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(8, 0)
        assert stat.S_ISCHR(os.lstat(mnt / "dev" / "mem").st_mode)
        for name in ("sda", "mem", "null"):
            with pytest.raises(OSError) as e:
                os.close(os.open(mnt / "dev" / name, os.O_RDONLY))
            assert e.value.errno in (errno.EACCES, errno.EPERM), (name, e.value)
    finally:
        assert dockish("umount", str(mnt)).returncode == 0


def test_duplicates_long_names_and_type_changes(tmp_path):
    long_dir = "/".join(["d" * 250] * 6)
    layer = tar_of(("f", "f", b"first"), ("f", "f", b"second"),
                   ("t", "f", b"file first"), ("t", "d", None), ("t/in", "f", b"in"),
                   ("u", "d", None), ("u/x", "f", b"x"), ("u", "f", b"then a file"),
                   ("s", "l", "f"), ("s", "f", b"not a link"),
                   (long_dir + "/" + "n" * 255, "f", b"pax long"))
    gnu = tar_of(("g" * 200 + "/" + "h" * 255, "f", b"gnu long"),
                 ("lg", "l", "t" * 300), fmt=tarfile.GNU_FORMAT)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    _mounted(oci_layout(tmp_path / "img", [layer, gnu]), mnt)
    try:
        assert (mnt / "f").read_bytes() == b"second"
        assert (mnt / "t" / "in").read_bytes() == b"in"
        assert (mnt / "u").read_bytes() == b"then a file"
        assert (mnt / "s").read_bytes() == b"not a link" and not (mnt / "s").is_symlink()
        assert (mnt / long_dir / ("n" * 255)).read_bytes() == b"pax long"
        assert (mnt / ("g" * 200) / ("h" * 255)).read_bytes() == b"gnu long"
        assert os.readlink(mnt / "lg") == "t" * 300
    finally:
        assert dockish("umount", str(mnt)).returncode == 0


def test_name_longer_than_name_max_is_served_as_stored(tmp_path):
    """Linux filesystems refuse names over 255 bytes; the view serves the
    layer's name as is (nothing outside the view is involved)."""
    layer = tar_of(("n" * 300, "f", b"too long a name"))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    _mounted(oci_layout(tmp_path / "img", [layer]), mnt)
    try:
        assert os.listdir(mnt) == ["n" * 300]
        assert (mnt / ("n" * 300)).read_bytes() == b"too long a name"
    finally:
        assert dockish("umount", str(mnt)).returncode == 0


# ------------------------------------------------------------------ bombs

def _entries_tar(n: int) -> bytes:
    header = tarfile.TarInfo("d/f0000000").tobuf(tarfile.USTAR_FORMAT)
    blocks = [header]
    for i in range(1, n):
        ti = tarfile.TarInfo(f"d/f{i:07d}")
        blocks.append(ti.tobuf(tarfile.USTAR_FORMAT))
    return b"".join(blocks)


def test_entry_bomb_is_refused_with_the_limit_named(tmp_path, dockish_root):
    blob = zstandard.ZstdCompressor().compress(_entries_tar(2001))
    image = oci_layout(tmp_path / "img", [blob])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ, DOCKISH_MAX_LAYER_ENTRIES="2000")
    p = dockish("mount", image, str(mnt), env=env)
    assert p.returncode == 125
    assert p.stderr.startswith(f"dockish: error: {image[:-2]}: layer 1 of 1 (sha256:")
    assert p.stderr.endswith("): the layer has more than 2000 entries (a tar bomb?); "
                             "set DOCKISH_MAX_LAYER_ENTRIES to allow more (0: no limit)\n")
    assert store_state(dockish_root) == ([], [])
    env["DOCKISH_MAX_LAYER_ENTRIES"] = "x"
    p = dockish("mount", image, str(mnt), env=env)
    assert p.returncode == 125 and "DOCKISH_MAX_LAYER_ENTRIES must be a whole number" in p.stderr


def test_million_entry_bomb_stops_at_the_default_limit_in_bounded_memory(tmp_path):
    """1.2 million headers (600 MiB of tar in a few KiB of zstd): refused at
    the default limit of a million, memory bounded, nothing kept."""
    one = tarfile.TarInfo("f").tobuf(tarfile.USTAR_FORMAT)
    blob = tmp_path / "bomb.tar.zst"
    with open(blob, "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f) as z:
        for _ in range(1200):
            z.write(one * 1000)
    assert blob.stat().st_size < 1 << 20
    code = """
        import resource, sys
        from pathlib import Path
        from unionfs.layers import LayerStore
        from unionfs.tarindex import LayerError
        try:
            LayerStore(Path(sys.argv[1])).import_tar_path(sys.argv[2])
        except LayerError as e:
            print(e)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10)
    """
    start = time.monotonic()
    env = dict(os.environ, DOCKISH_MAX_LAYER_RATIO="0")    # else the ratio stops it first
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(tmp_path / "store"),
                        str(blob)], capture_output=True, text=True, timeout=300, env=env)
    elapsed = time.monotonic() - start
    assert p.returncode == 0, p.stderr
    message, rss_mib = p.stdout.splitlines()
    assert message.startswith("the layer has more than 1000000 entries")
    assert int(rss_mib) < 600, f"peak memory {rss_mib} MiB"
    assert store_state(tmp_path / "store") == ([], [])
    print(f"entry bomb: refused after {elapsed:.1f} s, peak RSS {rss_mib} MiB")


def test_expansion_bomb_stops_early_and_keeps_nothing(tmp_path, dockish_root):
    """A zstd layer of 8 GiB of zeros (a few hundred KiB of blob) is stopped
    once it expands past the ratio limit, long before the disk fills."""
    blob = tmp_path / "zeros.zst"
    header = tarfile.TarInfo("zeros")
    header.size = 8 << 30
    zeros = bytes(4 << 20)
    with open(blob, "wb") as f, zstandard.ZstdCompressor(level=1).stream_writer(f) as z:
        z.write(header.tobuf(tarfile.GNU_FORMAT))
        for _ in range(2048):
            z.write(zeros)
    image = oci_layout(tmp_path / "img", [blob.read_bytes()])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    start = time.monotonic()
    p = dockish("mount", image, str(mnt))
    elapsed = time.monotonic() - start
    assert p.returncode == 125
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("dockish: error: ")
    assert ": the layer expands to more than 2000 times its compressed size (a decompression " \
        "bomb?); set DOCKISH_MAX_LAYER_RATIO to allow more (0: no limit)" in p.stderr
    assert store_state(dockish_root) == ([], [])
    assert elapsed < 60
    print(f"expansion bomb: {blob.stat().st_size} byte blob refused after {elapsed:.1f} s")


def test_bomb_limits_can_be_turned_off(tmp_path):
    store = LayerStore(tmp_path / "store")
    blob = zstandard.ZstdCompressor().compress(_entries_tar(50))
    os.environ["DOCKISH_MAX_LAYER_ENTRIES"] = "49"
    try:
        with pytest.raises(LayerError, match="more than 49 entries"):
            LayerStore(tmp_path / "store").import_blob(io.BytesIO(blob))
        os.environ["DOCKISH_MAX_LAYER_ENTRIES"] = "0"
        assert LayerStore(tmp_path / "store").import_blob(io.BytesIO(blob))
    finally:
        del os.environ["DOCKISH_MAX_LAYER_ENTRIES"]
    assert len(store_state(store.root)[0]) == 1


# ------------------------------------------------------------------ writes through lower symlinks

CHROOT_WRITES = r'''
import errno, os, sys
os.chroot(sys.argv[1]); os.chdir("/")
def attempt(fn, *a):
    try:
        fn(*a)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
results = {}
results["write abs link"] = attempt(lambda: open("/link-abs", "w").write("via link"))
results["append rel link"] = attempt(lambda: open("/link-rel", "a").write("appended"))
results["create in dir link"] = attempt(lambda: open("/link-dir/new", "w").write("new"))
results["truncate dir link file"] = attempt(os.truncate, "/link-dir/existing", 0)
results["chmod via link"] = attempt(os.chmod, "/link-abs", 0o777)
results["mkdir under link"] = attempt(os.mkdir, "/link-dir/sub")
results["rename onto link"] = attempt(os.rename, "/plain", "/link-dir/plain")
results["copy-up of file"] = attempt(lambda: open("/plain2", "a").write("more"))
results["setxattr via link"] = attempt(os.setxattr, "/link-abs", "user.x", b"1")
results["hardlink via link"] = attempt(os.link, "/link-dir/existing", "/hl")
results["symlink replace"] = attempt(os.unlink, "/link-abs")
results["write after replace"] = attempt(lambda: open("/link-abs", "w").write("plain now"))
print(repr(results))
'''


def test_writes_through_lower_symlinks_never_reach_the_host(host, tmp_path):
    """Lower-layer symlinks name host paths (absolute and climbing). Every
    write path through them, from a root chrooted into the view (as a
    container sees it), lands in the view; the host files never change and
    the writable layer holds only its journal, numbered data files and an
    empty directory of files made ahead."""
    (host / "dir" / "existing").write_text("host existing\n")
    before = snapshot(host)
    target_dir = str(host / "dir")
    layer = tar_of(("link-abs", "l", str(host / "secret")),
                   ("link-rel", "l", "../" * 30 + str(host / "secret").lstrip("/")),
                   ("link-dir", "l", target_dir), ("plain", "f", b"plain\n"),
                   ("plain2", "f", b"plain2\n"),
                   (target_dir.lstrip("/"), "d", None),
                   (target_dir.lstrip("/") + "/existing", "f", b"view existing\n"))
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    image = oci_layout(tmp_path / "img", [layer])
    script = textwrap.dedent(f'''
        set -e
        {dockish_exe()} mount --rw --upper {upper} {image} {mnt}
        {sys.executable} -c "$1" {mnt} || {{ {dockish_exe()} umount {mnt}; exit 1; }}
        {dockish_exe()} umount {mnt}
    ''')
    p = subprocess.run(["unshare", "-Urm", "sh", "-c", script, "sh", CHROOT_WRITES],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    results = eval(next(line for line in p.stdout.splitlines() if line.startswith("{")))
    assert results["write abs link"] == "ok"     # made in the view, at its copy of the path
    assert results["append rel link"] == "ok"
    assert results["create in dir link"] == "ok"
    assert results["truncate dir link file"] == "ok"
    assert results["copy-up of file"] == "ok"
    assert results["write after replace"] == "ok"
    assert snapshot(host) == before
    assert sorted(os.listdir(upper)) == ["data", "journal", "lock", "spare"]
    assert os.listdir(upper / "spare") == []        # the unmount left no file made ahead
    assert all(name.isdigit() for name in os.listdir(upper / "data"))
    for name in os.listdir(upper / "data"):
        assert not (upper / "data" / name).is_symlink()
    # what was written is in the view, under the view's copy of the host path
    _mounted(image, mnt, "--rw", "--upper", str(upper))
    try:
        view_dir = mnt / target_dir.lstrip("/")
        assert (mnt / str(host / "secret").lstrip("/")).read_text() == "via linkappended"
        assert (view_dir / "sub").is_dir() and (mnt / "hl").read_text() == ""
        assert (view_dir / "new").read_text() == "new"
        assert (view_dir / "existing").read_text() == ""
        assert (mnt / "plain2").read_text() == "plain2\nmore"
        assert (mnt / "link-abs").read_text() == "plain now"
        assert results["rename onto link"] == "ok" and (view_dir / "plain").read_text() == "plain\n"
    finally:
        assert dockish("umount", str(mnt)).returncode == 0
    assert snapshot(host) == before


def test_symlinked_writable_layer_parts_are_refused(host, tmp_path):
    """A writable layer whose ``data`` or ``journal`` was swapped for a symlink
    (by anyone who can write the layer dir) is not followed to the host."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    image = oci_layout(tmp_path / "img", [tar_of(("f", "f", b"x"))])
    _mounted(image, mnt, "--rw", "--upper", str(upper))
    (mnt / "f").write_text("changed")
    assert dockish("umount", str(mnt)).returncode == 0
    before = snapshot(host)
    os.rename(upper / "data", upper / "data.real")
    os.symlink(host / "dir", upper / "data")
    p = dockish("mount", "--rw", "--upper", str(upper), image, str(mnt))
    assert p.returncode == 125 and len(p.stderr.splitlines()) == 1, p.stderr
    assert not os.path.ismount(mnt)
    os.unlink(upper / "data")
    os.rename(upper / "data.real", upper / "data")
    os.rename(upper / "journal", upper / "journal.real")
    os.symlink(host / "secret", upper / "journal")
    p = dockish("mount", "--rw", "--upper", str(upper), image, str(mnt))
    assert p.returncode == 125 and len(p.stderr.splitlines()) == 1, p.stderr
    assert not os.path.ismount(mnt)
    assert snapshot(host) == before



# ------------------------------------------------------------------ who can reach the mount

OTHER_UID = r'''
import errno, os, subprocess, sys
dockish, image = sys.argv[1:3]
# a world-traversable place (the test's own tmp dir is 0700): only FUSE can refuse
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/mnt"], check=True)
mnt, control = "/mnt/m", "/mnt/plain"
os.mkdir(mnt)
with open(control, "w") as f:
    f.write("plain file")
subprocess.run([dockish, "mount", image, mnt], check=True)
try:
    probe = ("import errno, os, sys\n"
             "def e(fn, *a):\n"
             "    try: fn(*a)\n"
             "    except OSError as x: return errno.errorcode[x.errno]\n"
             "    return 'ok'\n"
             "m = sys.argv[1]\n"
             "print(e(os.stat, m + '/f'), e(os.listdir, m), e(open, m + '/f'),"
             "      e(open, sys.argv[2]))")
    out = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                          sys.executable, "-c", probe, mnt, control], capture_output=True,
                         text=True)
    print("other:", out.stdout.strip() or out.stderr.strip())
    print("owner:", open(os.path.join(mnt, "f")).read())
finally:
    subprocess.run([dockish, "umount", mnt], check=True)
'''


def test_other_users_cannot_reach_the_mount(tmp_path):
    """Without ``-o allow_other`` the kernel lets only the mounting user into
    a FUSE mount: another uid (here uid 1000 of a user namespace whose root
    is the mounting user, standing in for a second host user) gets EACCES
    on everything, even a file mode 0644 would show to all."""
    image = oci_layout(tmp_path / "img", [tar_of(("f", "f", b"readable by the owner"))])
    p = subprocess.run(["unshare", "--map-auto", "--map-root-user", "-m", sys.executable,
                        "-c", OTHER_UID, dockish_exe(), image],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stdout.splitlines() if line.startswith(("other:", "owner:"))]
    assert lines == ["other: EACCES EACCES EACCES ok", "owner: readable by the owner"]
