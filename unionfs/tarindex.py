"""Indexing a layer tar: one sequential pass over the uncompressed bytes turns
tar headers into index entries (see ``entry``), so the union filesystem can
serve every file with ``pread`` at its offset and never rescan the tar.

The parser is push-based (``TarIndexer.feed`` takes the bytes in whatever
chunks the decompressor gives) so one pass can also hash and store the layer.
It reads headers itself rather than through ``tarfile``: that is several times
faster over many small files, keeps PAX values (binary xattrs, paths) as the
exact bytes, and can tell a clean end of archive from a truncated one.

What a layer may hold follows Docker's extractor: absolute names are made
relative, ``..`` may not climb above the root, symlink targets are kept
verbatim (they resolve inside the view), PAX global headers are ignored, and
a stream that ends cleanly on a header boundary needs no end-of-archive
blocks. Bytes after the end-of-archive blocks are allowed (tar pads to its
record size); they belong to the layer's digest but name nothing.

Duplicate paths in one layer are all kept, in tar order: the merge applies
entries in order, so the later one wins (a directory over a directory only
updates its attributes), as extracting the tar would.
"""
from __future__ import annotations

import os
import stat
import struct
from typing import BinaryIO

from .entry import WHITEOUT_PREFIX

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
MAX_META_SIZE = 1 << 20          # PAX / GNU long-name records (Go's archive/tar limit)
READ_CHUNK = 1 << 20
MAX_ID = (1 << 32) - 1

# name mode uid gid size mtime chksum type linkname magic version uname gname
# devmajor devminor prefix
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s")
_USTAR_MAGIC = b"ustar\x00"

_FILE_TYPES = {
    b"0": stat.S_IFREG, b"\x00": stat.S_IFREG, b"7": stat.S_IFREG,
    b"1": stat.S_IFREG,                      # hardlink: mode of a regular file
    b"2": stat.S_IFLNK, b"3": stat.S_IFCHR, b"4": stat.S_IFBLK,
    b"5": stat.S_IFDIR, b"6": stat.S_IFIFO,
}
_DATA_TYPES = (b"0", b"\x00", b"7")          # the only members whose data is read
_META_TYPES = (b"x", b"g", b"L", b"K")
_XATTR_PREFIX = b"SCHILY.xattr."
_SPARSE_PREFIX = b"GNU.sparse."


class LayerError(Exception):
    """A layer dockish refuses: unsafe, malformed or truncated, or one that
    cannot be merged (a hardlink to nothing)."""


def _show(path: bytes) -> str:
    return path.decode("utf-8", "backslashreplace")


def normalize_path(raw: bytes, what: str = "layer entry") -> bytes:
    """The contract's relative path for a tar name: leading ``/`` and ``./``
    dropped, ``//`` and ``.`` collapsed, ``b""`` for the root. ``..`` that
    climbs above the root is an error, never clamped."""
    if raw and raw[0] != 0x2F and raw[0] != 0x2E and raw[-1] != 0x2F \
            and b"//" not in raw and b"/." not in raw:
        return raw                                    # the common, already clean case
    parts: list[bytes] = []
    for part in raw.split(b"/"):
        if part == b"..":
            if not parts:
                raise LayerError(f"{what} escapes the root: {_show(raw)}")
            parts.pop()
        elif part and part != b".":
            parts.append(part)
    return b"/".join(parts)


def parse_number(field: bytes) -> int:
    """A numeric header field: octal text (NUL/space padded) or GNU base-256."""
    if field and field[0] & 0x80:
        bits = 8 * len(field) - 1
        value = int.from_bytes(field, "big") - (1 << bits)   # drop the marker bit
        return value - (1 << bits) if field[0] & 0x40 else value
    text = field.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise LayerError(f"invalid number {field!r} in a tar header") from None


def parse_pax_time(value: bytes) -> int:
    """A PAX time (``-12.5``, ``1700000000.123456789``) in exact nanoseconds,
    without passing through a float. Digits past nanoseconds are dropped."""
    negative = value.startswith(b"-")
    secs, _, frac = (value[1:] if negative else value).partition(b".")
    if not secs.isdigit() or (frac and not frac.isdigit()):
        raise LayerError(f"invalid PAX time {value.decode('ascii', 'replace')!r}")
    ns = int(secs) * 1_000_000_000 + int(frac[:9].ljust(9, b"0") if frac else 0)
    return -ns if negative else ns


def parse_pax(data: bytes) -> dict[bytes, bytes]:
    """PAX extended header records (``LEN KEY=VALUE\\n``) as exact bytes."""
    records: dict[bytes, bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        space = data.find(b" ", pos, pos + 20)
        if space < 0:
            if not data[pos:].strip(b"\x00"):
                break                                 # NUL padding after the records
            raise LayerError("malformed PAX header")
        length = data[pos:space]
        if not length.isdigit():
            raise LayerError("malformed PAX header")
        stop = pos + int(length)
        if stop <= space + 1 or stop > end or data[stop - 1] != 0x0A:
            raise LayerError("malformed PAX header")
        key, eq, value = data[space + 1:stop - 1].partition(b"=")
        if not eq or not key:
            raise LayerError("malformed PAX header")
        records[key] = value
        pos = stop
    return records


def _checksum_ok(block: bytes, stored: bytes) -> bool:
    want = parse_number(stored)
    unsigned = sum(block) - sum(stored) + 8 * 0x20
    if unsigned == want:
        return True
    high = sum(1 for b in block[:148] + block[156:] if b & 0x80)
    return unsigned - 256 * high == want                 # some old tars sum signed bytes


def _pax_int(pax: dict[bytes, bytes], key: bytes, default: int) -> int:
    value = pax.get(key)
    if not value:
        return default
    if not value.isdigit():
        raise LayerError(f"invalid PAX {key.decode()} {value.decode('ascii', 'replace')!r}")
    return int(value)


class TarIndexer:
    """Feed an uncompressed tar in any chunking; ``finish`` gives the entries.

    Holds no file data: only the entries, at most one header block, and the
    body of a PAX or GNU long-name record (bounded by ``MAX_META_SIZE``).
    """

    def __init__(self, max_entries: int = 0) -> None:
        self.entries: list[list] = []
        self.max_entries = max_entries    # 0: no limit (a tar bomb of headers fills memory)
        self._pos = 0                     # stream offset of the next byte fed
        self._skip = 0                    # data and padding still to pass over
        self._partial = bytearray()       # a header block split across chunks
        self._meta: bytearray | None = None
        self._meta_type = b""
        self._meta_size = 0
        self._pax: dict[bytes, bytes] = {}
        self._long_name: bytes | None = None
        self._long_link: bytes | None = None
        self._member = b""                # name of the member whose data is skipped
        self._zero_seen = False
        self._done = False

    # -- the byte pump ---------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Consume the next bytes of the tar (bytes after its end are allowed)."""
        view = memoryview(data)
        n, i, base = len(view), 0, self._pos
        self._pos += n
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                self._skip -= take
                i += take
            elif self._meta is not None:
                take = min(self._meta_size - len(self._meta), n - i)
                self._meta += view[i:i + take]
                i += take
                if len(self._meta) == self._meta_size:
                    self._end_meta()
            elif self._done:
                return
            elif self._partial or n - i < BLOCK:
                take = min(BLOCK - len(self._partial), n - i)
                self._partial += view[i:i + take]
                i += take
                if len(self._partial) == BLOCK:
                    block = bytes(self._partial)
                    self._partial.clear()
                    self._header(block, base + i)
            else:
                i += BLOCK
                self._header(view[i - BLOCK:i].tobytes(), base + i)

    def finish(self) -> list[list]:
        """The entries, once the whole stream was fed; a tar that stops inside a
        header, a record or a file's data (or its padding) is truncated."""
        if self._skip or self._meta is not None:
            raise LayerError(f"truncated layer: the tar ends inside {_show(self._member)!r} "
                             f"(after {self._pos} bytes)")
        pending = bool(self._pax) or self._long_name is not None or self._long_link is not None
        if self._partial.strip(b"\x00") or (pending and not self._done):
            raise LayerError(f"truncated layer: the tar ends inside a header "
                             f"(after {self._pos} bytes)")
        return self.entries

    # -- headers ---------------------------------------------------------------

    def _header(self, block: bytes, data_at: int) -> None:
        if block == ZERO_BLOCK:
            self._done = self._zero_seen
            self._zero_seen = True
            return
        if self._zero_seen:
            raise LayerError(f"invalid tar: a header follows an end-of-archive block "
                             f"at byte {data_at - BLOCK}")
        (name, mode, uid, gid, size, mtime, chksum, kind, linkname, magic, _version,
         _uname, _gname, devmajor, devminor, prefix) = _HEADER.unpack_from(block)
        if not _checksum_ok(block, chksum):
            raise LayerError(f"invalid tar: bad header checksum at byte {data_at - BLOCK}")
        name = name.split(b"\x00", 1)[0]
        if magic == _USTAR_MAGIC and prefix[0]:
            name = prefix.split(b"\x00", 1)[0] + b"/" + name
        if kind in _META_TYPES:
            self._start_meta(kind, parse_number(size), name, data_at)
            return
        pax, self._pax = self._pax, {}
        long_name, self._long_name = self._long_name, None
        long_link, self._long_link = self._long_link, None
        if pax:
            name = pax.get(b"path") or long_name or name
            if any(k.startswith(_SPARSE_PREFIX) for k in pax):
                kind = b"S"
        elif long_name is not None:
            name = long_name
        self._member = name
        ftype = _FILE_TYPES.get(kind)
        if ftype is None:
            raise LayerError(self._type_message(kind, name))
        if kind == b"\x00" and name.endswith(b"/"):
            ftype = stat.S_IFDIR                         # pre-POSIX directory
        nbytes = _pax_int(pax, b"size", -1) if pax else -1
        if nbytes < 0:
            nbytes = parse_number(size)
            if nbytes < 0:
                raise LayerError(f"invalid size {nbytes} for {_show(name)}")
        self._add(name, ftype, kind, mode, uid, gid, nbytes, mtime, linkname, devmajor,
                  devminor, pax, long_link, data_at)
        if kind in _DATA_TYPES:
            self._skip = nbytes + (-nbytes % BLOCK)

    def _add(self, name: bytes, ftype: int, kind: bytes, mode: bytes, uid: bytes, gid: bytes,
             nbytes: int, mtime: bytes, linkname: bytes, devmajor: bytes, devminor: bytes,
             pax: dict[bytes, bytes], long_link: bytes | None, data_at: int) -> None:
        path = normalize_path(name)
        if not path and ftype != stat.S_IFDIR:
            raise LayerError(f"the layer's root {_show(name)!r} must be a directory")
        if path.rpartition(b"/")[2] == WHITEOUT_PREFIX:
            raise LayerError(f"invalid whiteout name: {_show(name)}")
        link = hardlink = None
        if kind == b"1" or kind == b"2":
            target = (pax.get(b"linkpath") if pax else None) or long_link \
                or linkname.split(b"\x00", 1)[0]
            if kind == b"2":
                link = target
            else:
                hardlink = normalize_path(target, "hardlink target")
                if not hardlink:
                    raise LayerError(f"hardlink {_show(name)} points at the layer's root")
        rdev = 0
        if ftype == stat.S_IFCHR or ftype == stat.S_IFBLK:
            major = _pax_int(pax, b"SCHILY.devmajor", -1) if pax else -1
            minor = _pax_int(pax, b"SCHILY.devminor", -1) if pax else -1
            try:
                rdev = os.makedev(parse_number(devmajor) if major < 0 else major,
                                  parse_number(devminor) if minor < 0 else minor)
            except (OverflowError, ValueError):
                raise LayerError(f"invalid device number for {_show(name)}") from None
        if pax:
            owner = _pax_int(pax, b"uid", -1), _pax_int(pax, b"gid", -1)
            when = pax.get(b"mtime")
            xattrs = {k[len(_XATTR_PREFIX):]: v for k, v in pax.items()
                      if k.startswith(_XATTR_PREFIX)} or None
            if b"\x00" in name or (link and b"\x00" in link) or (hardlink and b"\x00" in hardlink):
                raise LayerError(f"a NUL byte in the name or link of {_show(name)}")
        else:
            owner, when, xattrs = (-1, -1), None, None
        user = owner[0] if owner[0] >= 0 else parse_number(uid)
        group = owner[1] if owner[1] >= 0 else parse_number(gid)
        if not (0 <= user <= MAX_ID and 0 <= group <= MAX_ID):
            raise LayerError(f"invalid owner {user}:{group} for {_show(name)}")
        mtime_ns = parse_pax_time(when) if when else parse_number(mtime) * 1_000_000_000
        if self.max_entries and len(self.entries) >= self.max_entries:
            raise LayerError(f"the layer has more than {self.max_entries} entries (a tar bomb?); "
                             f"set DOCKISH_MAX_LAYER_ENTRIES to allow more (0: no limit)")
        self.entries.append([
            path, ftype | (parse_number(mode) & 0o7777), user, group,
            nbytes if kind in _DATA_TYPES else 0, mtime_ns, link, hardlink, rdev,
            xattrs, data_at])

    @staticmethod
    def _type_message(kind: bytes, name: bytes) -> str:
        if kind == b"S":
            return (f"sparse file {_show(name)} is not supported in a layer "
                    f"(write it without --sparse)")
        return f"unsupported tar entry type {kind.decode('latin-1')!r} for {_show(name)}"

    # -- PAX and GNU long-name records -------------------------------------------

    def _start_meta(self, kind: bytes, size: int, name: bytes, data_at: int) -> None:
        if size < 0 or size > MAX_META_SIZE:
            raise LayerError(f"tar metadata record of {size} bytes at byte {data_at - BLOCK} "
                             f"is too large")
        self._meta_type, self._meta_size = kind, size
        self._member = name
        self._meta = bytearray()
        if size == 0:
            self._end_meta()

    def _end_meta(self) -> None:
        body, self._meta = bytes(self._meta), None
        self._skip = -len(body) % BLOCK
        kind = self._meta_type
        if kind == b"x":
            self._pax.update(parse_pax(body))
        elif kind == b"g":
            parse_pax(body)                       # checked, then ignored (as Docker does)
        elif kind == b"L":
            self._long_name = body.split(b"\x00", 1)[0]
        else:
            self._long_link = body.split(b"\x00", 1)[0]


def index_stream(stream: BinaryIO, chunk_size: int = READ_CHUNK) -> list[list]:
    """Index a readable binary stream of an uncompressed tar, to its end."""
    indexer = TarIndexer()
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    while n := stream.readinto(buf):
        indexer.feed(view[:n])
    return indexer.finish()


__all__ = ["LayerError", "TarIndexer", "index_stream", "normalize_path", "parse_pax",
           "parse_pax_time", "parse_number"]
