"""The build context and COPY/ADD: what a step copies, and its layer tar.

The context directory is read in place through a directory fd (never
copied), with ``.dockerignore`` applied as it is walked. A COPY/ADD step
becomes a list of ``Item``s — image path, metadata, where the bytes come
from — following Docker's rules (a source directory's *contents* are
copied; a destination ending in ``/`` is a directory; several sources need
one; missing parents are made; ADD unpacks local archives and fetches URLs),
then one deterministic tar: entries sorted, owners as the instruction says
(root unless ``--chown``), never the building user's, and mtimes clamped to
SOURCE_DATE_EPOCH when asked. No container is needed for any of it.
"""
from __future__ import annotations

import bz2
import contextlib
import email.utils
import fnmatch
import hashlib
import io
import lzma
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Protocol

from unionfs.safefile import open_flags, read_fd

from ..errors import DockishError
from .dockerignore import Matcher, PatternError


class ContextError(DockishError):
    """A COPY/ADD that cannot be done; the message says why."""

    exit_code = 1               # a failed build exits 1, as docker build does


@dataclass(frozen=True)
class Meta:
    """What an item keeps of a file: type and permission bits in ``mode``."""

    mode: int
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime_ns: int = 0
    target: str = ""          # symlink target
    inode: tuple | None = None    # identity for hardlinks, when known

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


class SourceTree(Protocol):
    """A tree COPY reads from: the context directory or an image/stage."""

    label: str

    def lstat(self, rel: str) -> Meta | None: ...

    def listdir(self, rel: str) -> list[str]: ...

    def open(self, rel: str) -> BinaryIO: ...


@dataclass
class Item:
    """One entry of the layer: ``path`` is relative to / in the image."""

    path: str
    meta: Meta
    read: Callable[[], BinaryIO] | None = None   # regular files
    hardlink: str | None = None                  # set by ``link_hardlinks``
    source: str | None = None                    # its path in the source tree


# -- the context directory --------------------------------------------------------------

class ContextDir:
    """The build context, read through one directory fd; ignored paths are
    invisible, as they are to Docker's COPY."""

    def __init__(self, path: str | Path, ignore: Matcher | None = None) -> None:
        self.label = "build context"
        self.path = Path(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            raise ContextError(f"unable to prepare context: path {str(path)!r} not found"
                               if e.errno == 2 else f"{path}: {e.strerror}") from None
        self.ignore = Matcher([])
        if ignore is None:
            try:
                ignore = Matcher.from_text(self.read_text(".dockerignore"))
            except FileNotFoundError:
                ignore = self.ignore
            except PatternError as e:
                os.close(self.fd)
                raise ContextError(f"error checking context: .dockerignore: {e}") from None
            except BaseException:
                os.close(self.fd)
                raise
        self.ignore = ignore

    def close(self) -> None:
        os.close(self.fd)

    def read_text(self, rel: str) -> str:
        """A small regular file of the context (``.dockerignore``, the
        Dockerfile): symlinks resolved inside the context, never out to the
        host; a FIFO or device is refused at once, not waited on. OSErrors
        name ``rel``."""
        real = follow(self, rel)
        try:
            fd = self._openat(real, open_flags(follow=False))
            data = read_fd(fd, rel)
        except OSError as e:
            raise OSError(e.errno, e.strerror, rel) from None
        return data.decode("utf-8", "surrogateescape")

    def _openat(self, rel: str, flags: int) -> int:
        """Open a context path without following symlinks in any component."""
        fd = os.dup(self.fd)
        try:
            parts = [p for p in rel.split("/") if p not in ("", ".")]
            for part in parts[:-1]:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                              os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = nfd
            if not parts:
                return fd
            last = os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            return last
        except BaseException:
            os.close(fd)
            raise

    def lstat(self, rel: str) -> Meta | None:
        rel = rel.strip("/")
        excluded = bool(rel) and self.ignore.excluded(rel)
        if excluded and self.ignore.may_skip_dir(rel):
            return None
        parent, name = posixpath.split(rel)
        try:
            dfd = self._openat(parent, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            st = os.stat(name or ".", dir_fd=dfd, follow_symlinks=False)
            target = os.readlink(name, dir_fd=dfd) if stat.S_ISLNK(st.st_mode) else ""
        except (FileNotFoundError, NotADirectoryError):
            return None
        finally:
            os.close(dfd)
        if excluded and not stat.S_ISDIR(st.st_mode):
            return None        # only a directory can hold re-included (``!``) paths
        return Meta(mode=st.st_mode, size=st.st_size if stat.S_ISREG(st.st_mode) else 0,
                    mtime_ns=st.st_mtime_ns, target=target,
                    inode=(st.st_dev, st.st_ino) if st.st_nlink > 1 else None)

    def listdir(self, rel: str) -> list[str]:
        fd = self._openat(rel.strip("/"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            names = os.listdir(fd)
        finally:
            os.close(fd)
        prefix = rel.strip("/")
        return sorted(n for n in names
                      if self.lstat(posixpath.join(prefix, n) if prefix else n) is not None)

    def open(self, rel: str) -> BinaryIO:
        """A regular file to stream (a file swapped for a FIFO after it was
        listed is refused, not waited on)."""
        fd = self._openat(rel.strip("/"), open_flags(follow=False))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ContextError(f"{rel}: not a regular file any more")
        return os.fdopen(fd, "rb")


# -- an image's tree (COPY --from) ------------------------------------------------------

class ImageTree:
    """Files of an image or earlier stage, read from its layer tars through
    the union's merged tree (no mount needed)."""

    def __init__(self, tree, layer_paths: list[Path], label: str) -> None:
        self.tree = tree
        self.label = label
        self.fds = [os.open(p, os.O_RDONLY | os.O_CLOEXEC) for p in layer_paths]

    @classmethod
    def from_layers(cls, layers: list[tuple[Path, list]], label: str) -> ImageTree:
        from unionfs.tree import Tree
        tree = Tree()
        for i, (_, entries) in enumerate(layers):
            tree.add_layer(i, entries)
        tree.finish_lower()
        return cls(tree, [p for p, _ in layers], label)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)

    def _node(self, rel: str):
        path = rel.strip("/").encode("utf-8", "surrogateescape")
        return self.tree._find(path)

    def lstat(self, rel: str) -> Meta | None:
        n = self._node(rel)
        if n is None:
            return None
        target = n.target.decode("utf-8", "surrogateescape") if n.target else ""
        return Meta(mode=n.mode, uid=n.uid, gid=n.gid,
                    size=n.size if stat.S_ISREG(n.mode) else 0, mtime_ns=n.mtime,
                    target=target, inode=("img", n.ino) if len(n.links) > 1 else None)

    def listdir(self, rel: str) -> list[str]:
        n = self._node(rel)
        return sorted(k.decode("utf-8", "surrogateescape") for k in (n.children or {}))

    def open(self, rel: str) -> BinaryIO:
        from unionfs.generate import _PreadReader
        n = self._node(rel)
        return io.BufferedReader(_PreadReader(self.fds[n.layer], n.offset, n.size))


# -- path rules -------------------------------------------------------------------------

def clean_source(src: str) -> str:
    """A source path relative to the tree root; ``..`` may not leave it."""
    norm = posixpath.normpath("/" + src)
    return norm.lstrip("/")


def dest_path(dest: str, workdir: str) -> str:
    """Absolute destination (a relative one is under WORKDIR), keeping a
    trailing slash, which means "a directory"."""
    full = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    slash = dest.endswith("/") or dest in (".", "./") or dest.endswith("/.")
    norm = posixpath.normpath(full)
    return norm.rstrip("/") + "/" if slash else norm


def _has_magic(s: str) -> bool:
    return re.search(r"[*?\[]", s) is not None


def expand_glob(tree: SourceTree, pattern: str) -> list[str]:
    """Context paths matching a glob, component by component (Go's
    ``filepath.Match``: ``*`` never crosses ``/``)."""
    parts = [p for p in clean_source(pattern).split("/") if p]
    found = [""]
    for part in parts:
        nxt = []
        for base in found:
            if not _has_magic(part):
                cand = posixpath.join(base, part) if base else part
                if tree.lstat(cand) is not None:
                    nxt.append(cand)
                continue
            meta = tree.lstat(base) if base else Meta(stat.S_IFDIR)
            if meta is None or not meta.is_dir:
                continue
            rx = re.compile(fnmatch.translate(part).replace(".*", "[^/]*"))
            nxt += [posixpath.join(base, n) if base else n
                    for n in tree.listdir(base) if rx.fullmatch(n)]
        found = nxt
    return sorted(found)


def follow(tree: SourceTree, rel: str) -> str:
    """Resolve symlinks in ``rel`` inside the tree (a link can't escape it)."""
    parts = [p for p in rel.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        cur = "/".join([*done, part])
        meta = tree.lstat(cur)
        if meta is not None and stat.S_ISLNK(meta.mode):
            hops += 1
            if hops > 40:
                raise ContextError(f"{rel}: too many levels of symbolic links")
            target = meta.target
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p] + parts
            norm = posixpath.normpath("/" + "/".join(done) + "/" + "/".join(parts)
                                      if parts else "/" + "/".join(done)).lstrip("/")
            parts = [p for p in norm.split("/") if p]
            done = []
            continue
        done.append(part)
    return "/".join(done)


# -- owners -------------------------------------------------------------------------------

MAX_ID = 2**32 - 2          # (uid_t)-1 means "no change" to the kernel


def parse_chown(spec: str, passwd: str | None, group: str | None) -> tuple[int, int]:
    """``--chown=user[:group]`` by name or number, names looked up in the
    image's /etc/passwd and /etc/group (a lone user gets its primary group).
    Every way it can fail is one ContextError in Docker's words: an unknown
    name, an id out of range, a passwd line whose id is not a number."""
    user, _, grp = spec.partition(":")
    prefix = "unable to convert uid/gid chown string to host mapping"

    def table(text: str | None) -> dict[str, list[str]]:
        rows: dict[str, list[str]] = {}
        for line in (text or "").splitlines():
            f = line.split(":")
            if len(f) >= 3 and f[0] and not f[0].startswith("#"):
                rows.setdefault(f[0], f)
        return rows

    def number(text: str, what: str) -> int:
        if not (text.isascii() and text.isdigit()):
            raise ContextError(f"{prefix}: invalid {what} {text!r}")
        value = int(text)
        if value > MAX_ID:
            raise ContextError(f"{prefix}: {what} {text} is out of range (0-{MAX_ID})")
        return value

    if not user:
        raise ContextError(f"{prefix}: invalid chown string {spec!r}")
    users = table(passwd)
    if user.isascii() and user.isdigit():
        uid = number(user, "uid")
        row = next((r for r in users.values() if r[2] == user), None)
    elif user in users:
        row = users[user]
        uid = number(row[2], f"uid of user {user} in the image's /etc/passwd:")
    else:
        raise ContextError(f"{prefix}: can't find uid for user {user}: no such user: {user}")
    if not grp:
        primary = row[3] if row is not None and len(row) > 3 else ""
        gid = int(primary) if primary.isascii() and primary.isdigit() \
            and int(primary) <= MAX_ID else uid
    elif grp.isascii() and grp.isdigit():
        gid = number(grp, "gid")
    else:
        groups = table(group)
        if grp not in groups:
            raise ContextError(f"{prefix}: can't find gid for group {grp}: no such group: "
                               f"{grp}")
        gid = number(groups[grp][2], f"gid of group {grp} in the image's /etc/group:")
    return uid, gid


def parse_chmod(spec: str) -> int:
    if not re.fullmatch(r"[0-7]{3,4}", spec):
        raise ContextError(f"invalid chmod parameter: {spec!r} (use octal like 0755)")
    return int(spec, 8)


# -- planning a COPY/ADD --------------------------------------------------------------------

@dataclass
class CopyRequest:
    """A COPY/ADD after substitution, in the terms this module needs."""

    sources: list[str]
    dest: str                          # as written (trailing slash matters)
    workdir: str = "/"
    owner: tuple[int, int] | None = None
    chmod: int | None = None
    add: bool = False                  # ADD: unpack local archives, fetch URLs
    heredocs: dict[str, str] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)   # --exclude patterns
    parents: bool = False              # --parents: keep the sources' directories
    checksum: str | None = None        # ADD --checksum of a URL's content


Existing = Callable[[str], Meta | None]


def plan(req: CopyRequest, tree: SourceTree, existing: Existing,
         scratch: Path | None = None) -> list[Item]:
    """The items a COPY/ADD writes. ``existing`` looks a path up in the image
    being built (for "is the destination a directory" and parents' metadata);
    ``scratch`` is where ADD keeps downloads and unpacked archives."""
    dest = dest_path(req.dest, req.workdir)
    items: list[Item] = []
    resolved: list[tuple[str, str]] = []       # (kind, value)
    pivots: dict[str, str] = {}                # --parents: path -> what is kept of it
    for src in req.sources:
        if req.checksum and not re.match(r"^https?://", src):
            raise ContextError("checksum can't be specified for non-HTTP(S) sources")
        m = re.fullmatch(r"<<-?([\"']?)(\w+)\1", src)
        if m and m.group(2) in req.heredocs:
            resolved.append(("heredoc", m.group(2)))
        elif req.add and re.match(r"^https?://", src):
            resolved.append(("url", src))
        elif re.match(r"^[a-z]+://", src) or src.startswith("git@"):
            raise ContextError(f"source can't be a URL for COPY: {src}" if not req.add
                               else f"unsupported source {src}")
        else:
            matches = expand_glob(tree, src) if _has_magic(src) else \
                [clean_source(src)] if tree.lstat(follow(tree, clean_source(src))) is not None \
                else []
            if not matches:
                what = "no source files were specified" if _has_magic(src) else \
                    f"\"{src}\": not found"
                raise ContextError(f"failed to compute cache key: {what}"
                                   if _has_magic(src) else
                                   f"failed to compute cache key: failed to calculate "
                                   f"checksum of ref: {what}")
            resolved += [("path", s) for s in matches]
            base = clean_source(src.rsplit("/./", 1)[0]) if "/./" in src else ""
            for s_ in matches:
                pivots[s_] = s_[len(base):].lstrip("/") if base else s_
    if req.exclude:
        from .dockerignore import compile_patterns
        try:
            skip = Matcher(compile_patterns(req.exclude))
        except PatternError as e:
            raise ContextError(f"--exclude: {e}") from None
        resolved = [(k, v) for k, v in resolved
                    if k != "path" or not skip.excluded(posixpath.basename(v))]
    else:
        skip = None
    if req.parents:
        dest = dest.rstrip("/") + "/"
    as_dir = dest.endswith("/")
    if len(resolved) > 1 and not as_dir:
        raise ContextError("When using COPY with more than one source file, the destination "
                           "must be a directory and end with a /")
    dest = dest.rstrip("/") or "/"
    if not as_dir:
        cur = existing(dest.lstrip("/"))
        as_dir = cur is not None and cur.is_dir
    for kind, value in resolved:
        if kind == "heredoc":
            data = req.heredocs[value].encode("utf-8", "surrogateescape")
            target = posixpath.join(dest, value) if as_dir else dest
            items.append(Item(target.lstrip("/"), Meta(stat.S_IFREG | 0o644, size=len(data)),
                              read=lambda d=data: io.BytesIO(d)))
        elif kind == "url":
            items += _fetch(value, dest, as_dir, scratch, req.checksum)
        else:
            where, here_dir = dest, as_dir
            if req.parents:
                kept = posixpath.dirname(pivots.get(value, value))
                where, here_dir = posixpath.join(dest, kept) if kept else dest, True
            got = _from_tree(tree, value, where, here_dir, req.add, scratch)
            if skip is not None:
                got = [i for i in got if i.source is None or i.source == value
                       or not skip.excluded(i.source[len(value):].lstrip("/"))]
            items += got
    items = [_owned(i, req) for i in items]
    return _with_parents(items, dest.lstrip("/"), as_dir, existing, req.owner)


def _owned(item: Item, req: CopyRequest) -> Item:
    meta = item.meta
    if req.owner is not None:
        meta = replace(meta, uid=req.owner[0], gid=req.owner[1])
    if req.chmod is not None and not stat.S_ISLNK(meta.mode):
        meta = replace(meta, mode=stat.S_IFMT(meta.mode) | req.chmod)
    return replace(item, meta=meta)


def _from_tree(tree: SourceTree, rel: str, dest: str, as_dir: bool, add: bool,
               scratch: Path | None) -> list[Item]:
    real = follow(tree, rel)
    meta = tree.lstat(real)
    if meta is None:
        raise ContextError(f"\"{rel}\": not found")
    keep_owner = not isinstance(tree, ContextDir)
    if meta.is_dir:
        out = [Item(dest.lstrip("/"), _meta(meta, keep_owner))]
        out += _walk(tree, real, dest.lstrip("/"), keep_owner)
        return out
    if add and scratch is not None and stat.S_ISREG(meta.mode):
        archive = _archive(tree, real, scratch)
        if archive is not None:
            return _unpack(archive, dest.lstrip("/"))
    target = posixpath.join(dest, posixpath.basename(rel)) if as_dir else dest
    return [_file_item(tree, real, target.lstrip("/"), meta, keep_owner)]


def _meta(meta: Meta, keep_owner: bool) -> Meta:
    return meta if keep_owner else replace(meta, uid=0, gid=0)


def _file_item(tree: SourceTree, rel: str, path: str, meta: Meta, keep_owner: bool) -> Item:
    reader = (lambda: tree.open(rel)) if stat.S_ISREG(meta.mode) else None
    return Item(path, _meta(meta, keep_owner), read=reader, source=rel)


def _walk(tree: SourceTree, rel: str, dest: str, keep_owner: bool) -> Iterator[Item]:
    for name in tree.listdir(rel):
        sub = posixpath.join(rel, name) if rel else name
        meta = tree.lstat(sub)
        if meta is None:
            continue
        if stat.S_ISSOCK(meta.mode):
            continue
        path = posixpath.join(dest, name) if dest else name
        yield _file_item(tree, sub, path, meta, keep_owner)
        if meta.is_dir:
            yield from _walk(tree, sub, path, keep_owner)


def _with_parents(items: list[Item], dest: str, as_dir: bool, existing: Existing,
                  owner: tuple[int, int] | None) -> list[Item]:
    """Add the parent directories every item needs: as the image has them,
    or new (0755, the ``--chown`` owner or root)."""
    have = {i.path for i in items}
    newest = max((i.meta.mtime_ns for i in items), default=0)
    parents: dict[str, Item] = {}
    for i in items:
        p = posixpath.dirname(i.path)
        while p and p not in have and p not in parents:
            cur = existing(p)
            if cur is not None and cur.is_dir:
                parents[p] = Item(p, cur)
            else:
                uid, gid = owner or (0, 0)
                parents[p] = Item(p, Meta(stat.S_IFDIR | 0o755, uid, gid, mtime_ns=newest))
            p = posixpath.dirname(p)
    merged: dict[str, Item] = {}
    for i in [*parents.values(), *items]:
        merged[i.path] = i
    return sorted(merged.values(), key=lambda i: i.path.split("/"))


# -- ADD: archives and URLs ---------------------------------------------------------------

_MAGIC = ((b"\x1f\x8b", "gz"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"),
          (b"\x28\xb5\x2f\xfd", "zst"))


def _archive(tree: SourceTree, rel: str, scratch: Path) -> Path | None:
    """A local tar (plain or compressed) as a plain tar in scratch, else None."""
    with tree.open(rel) as f:
        head = f.read(6)
        f.seek(0)
        kind = next((k for m, k in _MAGIC if head.startswith(m)), None)
        scratch.mkdir(parents=True, exist_ok=True)
        out = Path(tempfile.mkstemp(dir=scratch, suffix=".tar")[1])
        try:
            with open(out, "wb") as w:
                _decompress(f, w, kind)
        except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError):
            out.unlink()
            return None
    try:
        with tarfile.open(out, "r:") as t:
            t.next()
    except tarfile.TarError:
        out.unlink()
        return None
    return out


def _decompress(src: BinaryIO, dst: BinaryIO, kind: str | None) -> None:
    import gzip

    import zstandard
    if kind is None:
        shutil.copyfileobj(src, dst)
    elif kind == "gz":
        with gzip.GzipFile(fileobj=src) as g:
            shutil.copyfileobj(g, dst)
    elif kind == "bz2":
        with bz2.BZ2File(src) as b:
            shutil.copyfileobj(b, dst)
    elif kind == "xz":
        with lzma.LZMAFile(src) as x:
            shutil.copyfileobj(x, dst)
    else:
        zstandard.ZstdDecompressor().copy_stream(src, dst)


def _unpack(archive: Path, dest: str) -> list[Item]:
    """Items of an archive under dest; owners and modes as the archive has them."""
    out: list[Item] = []
    by_name: dict[str, str] = {}
    with tarfile.open(archive, "r:") as t:
        members = t.getmembers()
    for m in members:
        name = clean_source(m.name)
        if not name:
            continue
        path = posixpath.join(dest, name) if dest else name
        fmt = {tarfile.DIRTYPE: stat.S_IFDIR, tarfile.SYMTYPE: stat.S_IFLNK,
               tarfile.FIFOTYPE: stat.S_IFIFO, tarfile.CHRTYPE: stat.S_IFCHR,
               tarfile.BLKTYPE: stat.S_IFBLK}.get(m.type, stat.S_IFREG)
        meta = Meta(mode=fmt | (m.mode & 0o7777), uid=m.uid, gid=m.gid,
                    size=m.size if m.isreg() else 0, mtime_ns=int(m.mtime) * 1_000_000_000,
                    target=m.linkname if m.issym() else "")
        if m.islnk():
            target = by_name.get(clean_source(m.linkname))
            if target is None:
                continue
            first = next(i for i in out if i.path == target)
            out.append(Item(path, first.meta, read=first.read, hardlink=target))
            continue
        reader = None
        if m.isreg():
            def reader(member=m.name, a=archive):
                t = tarfile.open(a, "r:")
                f = t.extractfile(member)
                return _Closing(f, t)
        by_name[name] = path
        out.append(Item(path, meta, read=reader))
    return out


class _Closing(io.RawIOBase):
    """A member's file object that also closes its tarfile."""

    def __init__(self, f: BinaryIO, owner) -> None:
        self.f, self.owner = f, owner

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self.f.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.owner.close()
        super().close()


def _fetch(url: str, dest: str, as_dir: bool, scratch: Path | None,
           checksum: str | None = None) -> list[Item]:
    """ADD of a URL: the file (0600, mtime from Last-Modified), never
    unpacked; with ``checksum`` (``sha256:HEX``) its content must match."""
    import requests
    if scratch is None:
        raise ContextError(f"ADD {url}: no scratch directory for downloads")
    scratch.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=scratch)
    try:
        with requests.get(url, stream=True, timeout=60) as r:
            if r.status_code >= 400:
                raise ContextError(f"failed to load {url}: HTTP {r.status_code}")
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as f:
                for chunk in r.iter_content(1 << 16):
                    f.write(chunk)
                    digest.update(chunk)
            if checksum and checksum != "sha256:" + digest.hexdigest():
                raise ContextError(f"digest mismatch for {url}: expected {checksum}, got "
                                   f"sha256:{digest.hexdigest()}")
            mtime = 0
            if r.headers.get("Last-Modified"):
                with contextlib.suppress(TypeError, ValueError):
                    mtime = int(email.utils.parsedate_to_datetime(
                        r.headers["Last-Modified"]).timestamp()) * 1_000_000_000
    except requests.RequestException as e:
        raise ContextError(f"failed to load {url}: {e}") from None
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "index.html"
    target = posixpath.join(dest, name) if as_dir else dest
    size = os.path.getsize(tmp)
    return [Item(target.lstrip("/"), Meta(stat.S_IFREG | 0o600, size=size, mtime_ns=mtime),
                 read=lambda: open(tmp, "rb"))]


# -- output ---------------------------------------------------------------------------------

def link_hardlinks(items: list[Item]) -> list[Item]:
    """Names of one source inode after the first become tar hardlinks."""
    first: dict[tuple, str] = {}
    out = []
    for i in items:
        key = i.meta.inode
        if key is not None and stat.S_ISREG(i.meta.mode) and i.hardlink is None:
            if key in first:
                i = replace(i, hardlink=first[key])
            else:
                first[key] = i.path
        out.append(i)
    return out


def checksum(items: list[Item]) -> str:
    """The cache key of what a COPY/ADD writes: paths, types, modes, owners,
    link targets and content — not mtimes (Docker's rule too)."""
    h = hashlib.sha256()
    for i in link_hardlinks(items):
        m = i.meta
        h.update(f"{i.path}\0{m.mode:o}\0{m.uid}\0{m.gid}\0{m.target}\0{i.hardlink or ''}\0"
                 .encode("utf-8", "surrogateescape"))
        if i.read is not None and i.hardlink is None:
            fh = hashlib.sha256()
            with i.read() as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    fh.update(chunk)
            h.update(fh.digest())
        h.update(b"\n")
    return "sha256:" + h.hexdigest()


def write_tar(items: list[Item], out: BinaryIO, *, mtime_clamp: int | None = None) -> int:
    """Write items as a deterministic uncompressed PAX tar (sorted, no
    user/group names, no atime/ctime); ``mtime_clamp`` is seconds since the
    epoch. Returns the number of entries."""
    clamp = None if mtime_clamp is None else mtime_clamp * 1_000_000_000
    count = 0
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for i in link_hardlinks(sorted(items, key=lambda i: i.path.split("/"))):
            m = i.meta
            ti = tarfile.TarInfo(i.path + ("/" if m.is_dir else ""))
            ti.mode = stat.S_IMODE(m.mode)
            ti.uid, ti.gid = m.uid, m.gid
            ti.uname = ti.gname = ""
            mtime = m.mtime_ns if clamp is None else min(m.mtime_ns, clamp)
            ti.mtime = max(mtime, 0) // 1_000_000_000
            fmt = stat.S_IFMT(m.mode)
            if i.hardlink is not None:
                ti.type, ti.linkname = tarfile.LNKTYPE, i.hardlink
            elif fmt == stat.S_IFDIR:
                ti.type = tarfile.DIRTYPE
            elif fmt == stat.S_IFLNK:
                ti.type, ti.linkname = tarfile.SYMTYPE, m.target
            elif fmt == stat.S_IFIFO:
                ti.type = tarfile.FIFOTYPE
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                continue       # device files are not copied
            else:
                ti.type, ti.size = tarfile.REGTYPE, m.size
            if ti.type == tarfile.REGTYPE and i.read is not None:
                with i.read() as f:
                    tar.addfile(ti, _Exact(f, m.size))
            else:
                tar.addfile(ti)
            count += 1
    return count


class _Exact(io.RawIOBase):
    """Exactly ``size`` bytes (a file that changed while copying is cut or
    zero-padded rather than corrupting the tar)."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.left = f, size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n) if n else b""
        if len(data) < n:
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        return data
