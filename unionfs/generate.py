"""Turning a writable layer back into an OCI layer tar: the mirror image of
``tarindex`` (which reads layer tars). Deletions become ``.wh.NAME``
entries, a directory that replaced a lower one gets ``.wh..wh..opq``, names
of one inode after the first become tar hardlinks, and owners, modes, device
numbers, xattrs and nanosecond times come from the view's metadata — never
from the files on disk, which all belong to the user running dockish.
"""
from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .entry import OPAQUE_MARKER
from .tree import Node, Tree, join, split
from .upper import Upper
from .whiteout import whiteout_for


class _PreadReader(io.RawIOBase):
    """A file object over ``size`` bytes of fd at ``offset``."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self.fd, self.pos, self.end = fd, offset, offset + size

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        want = min(len(buf), self.end - self.pos)
        if want <= 0:
            return 0
        data = os.pread(self.fd, want, self.pos)
        buf[:len(data)] = data
        self.pos += len(data)
        return len(data)


def change_list(tree: Tree, skip: frozenset[bytes] = frozenset()) -> list[tuple[str, bytes]]:
    """Docker ``diff`` lines: (A|C|D, path), sorted by path as Docker does.
    Paths in ``skip`` (a container's /etc/hosts and friends) are left out."""
    return sorted(((kind, path) for kind, path, _ in tree.changes() if path not in skip),
                  key=lambda c: c[1])


def _tarinfo(name: bytes, node: Node, mtime_clamp: int | None) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
    ti.mode = stat.S_IMODE(node.mode)
    ti.uid, ti.gid = node.uid, node.gid
    mtime = node.mtime if mtime_clamp is None else min(node.mtime, mtime_clamp)
    ti.mtime = mtime // 1_000_000_000
    pax = {"mtime": _ns_text(mtime)}
    for key, value in sorted((node.xattrs or {}).items()):   # same tree, same bytes
        pax["SCHILY.xattr." + key.decode("utf-8", "surrogateescape")] = \
            value.decode("utf-8", "surrogateescape")
    ti.pax_headers = pax
    fmt = stat.S_IFMT(node.mode)
    if fmt == stat.S_IFDIR:
        ti.type = tarfile.DIRTYPE
    elif fmt == stat.S_IFLNK:
        ti.type = tarfile.SYMTYPE
        ti.linkname = node.target.decode("utf-8", "surrogateescape")
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        ti.type = tarfile.CHRTYPE if fmt == stat.S_IFCHR else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(node.rdev), os.minor(node.rdev)
    elif fmt == stat.S_IFIFO:
        ti.type = tarfile.FIFOTYPE
    elif fmt == stat.S_IFREG:
        ti.type = tarfile.REGTYPE
        ti.size = node.size
    else:
        raise ValueError(f"{name!r}: sockets cannot be stored in a layer")
    return ti


def _ns_text(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    sec, frac = divmod(abs(ns), 1_000_000_000)
    return f"{sign}{sec}.{frac:09d}" if frac else f"{sign}{sec}"


def write_upper_layer(layers: list[tuple[Path, list]], layer_ids: list[str], upper: Path,
                      out: BinaryIO, *, readonly: bool = False, mtime_clamp: int | None = None,
                      skip: frozenset[bytes] = frozenset(),
                      stubs: list[bytes] | None = None) -> int:
    """The writable layer directory ``upper`` over ``layers`` (tar path and
    index of each, bottom first) as an OCI layer tar on ``out``. ``readonly``
    reads a layer a live daemon holds. ``stubs``: mount targets, left out
    with the parents made for them if the lower layers lack them and
    nothing else was put there. Returns the number of entries."""
    tree = Tree()
    for i, (_, entries) in enumerate(layers):
        tree.add_layer(i, entries)
    tree.finish_lower()
    up = Upper(upper, layer_ids)
    up.open(readonly=readonly)
    fds: list[int] = []
    try:
        fds = [os.open(p, os.O_RDONLY | os.O_CLOEXEC) for p, _ in layers]
        up.load(tree, compact=False)
        if stubs:
            skip = skip | _stub_paths(tree, stubs)
        return write_layer(tree, out, layer_fds=fds, data_fd=up.data_fd,
                           mtime_clamp=mtime_clamp, skip=skip)
    finally:
        for fd in fds:
            os.close(fd)
        up.close()


def _stub_paths(tree: Tree, stubs: list[bytes]) -> frozenset[bytes]:
    """Added paths that exist only to be mounted on: each stub, then each
    added parent all of whose added contents are stubs too."""
    added = {path for kind, path, _ in tree.changes() if kind == "A"}
    out: set[bytes] = set()
    for stub in sorted(stubs, key=lambda p: -p.count(b"/")):
        path = stub
        while path and path in added:
            inside = [p for p in added if p.startswith(path + b"/")]
            if any(p not in out for p in inside):
                break
            out.add(path)
            path = split(path)[0]
    return frozenset(out)


def write_layer(tree: Tree, out: BinaryIO, *, layer_fds: list[int], data_fd: int,
                mtime_clamp: int | None = None, skip: frozenset[bytes] = frozenset()) -> int:
    """Write the writable layer of ``tree`` as an uncompressed OCI layer tar.
    Sockets and paths in ``skip`` are left out (as Docker does). Returns the
    number of entries."""
    first_name: dict[int, str] = {}
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for kind, path, node in _ordered(tree):
            if path in skip:
                continue
            if kind == "D":
                parent, name = split(path)
                ti = tarfile.TarInfo(join(parent, whiteout_for(name))
                                     .decode("utf-8", "surrogateescape"))
                ti.mtime = 0 if mtime_clamp is None else min(0, mtime_clamp)
                tar.addfile(ti)
                count += 1
                continue
            if stat.S_ISSOCK(node.mode):
                continue
            ti = _tarinfo(path, node, mtime_clamp)
            if stat.S_ISREG(node.mode):
                if node.ino in first_name:
                    ti.type, ti.size = tarfile.LNKTYPE, 0
                    ti.linkname = first_name[node.ino]
                    tar.addfile(ti)
                else:
                    first_name[node.ino] = ti.name
                    with _data(node, layer_fds, data_fd) as f:
                        tar.addfile(ti, f)
            else:
                tar.addfile(ti)
            count += 1
            if node.is_dir and _is_opaque(tree, path, node):
                marker = tarfile.TarInfo(join(path, OPAQUE_MARKER)
                                         .decode("utf-8", "surrogateescape"))
                marker.mtime = ti.mtime
                tar.addfile(marker)
                count += 1
    return count


def _ordered(tree: Tree) -> Iterator[tuple[str, bytes, Node | None]]:
    """Changes sorted by path bytes, whiteouts before their siblings
    (as the OCI spec asks producers to do)."""
    items = list(tree.changes())
    # parent components first, so a directory precedes everything below it
    items.sort(key=lambda c: (split(c[1])[0].split(b"/"), c[0] != "D", c[1]))
    return iter(items)


def _is_opaque(tree: Tree, path: bytes, node: Node) -> bool:
    parent_path, name = split(path)
    parent = tree.resolve(parent_path)
    return node.low is None and bool(parent.low) and name in parent.low


def _data(node: Node, layer_fds: list[int], data_fd: int) -> BinaryIO:
    if node.layer is not None:
        return io.BufferedReader(_PreadReader(layer_fds[node.layer], node.offset, node.size))
    if node.size == 0:
        return io.BytesIO()          # a live layer may not have made the data file yet
    fd = os.open(str(node.uino), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=data_fd)
    return os.fdopen(fd, "rb")
