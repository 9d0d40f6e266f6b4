"""Host file trees that container content shapes, walked by directory fd.

A container decides the names, types and symlinks in what ``cp`` copies out
and in what is left in a volume. Every host path here is therefore reached
one component at a time from an open directory fd with ``O_NOFOLLOW``: a
symlink the container made is never followed, a non-directory standing where
a directory is wanted is replaced rather than written through, and walks
keep an explicit stack (no recursion: a 3,000-level tree is fine).
"""
from __future__ import annotations

import errno
import os
import resource
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SETID = stat.S_ISUID | stat.S_ISGID


class UnsafeTree(OSError):
    """A tar stream that tries to leave the tree it is extracted into (an
    OSError: callers that report those say it in one line)."""


def more_fds() -> None:
    """A deep walk holds one fd per level: raise the soft fd limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ------------------------------------------------------------------ removal

def _open_for_removal(parent_fd: int, name: str) -> int:
    """Open the directory ``name`` (never a symlink) and make it ours to empty:
    a container may have left it 0000 or 0555."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        path_fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=parent_fd)
        try:   # an O_PATH fd cannot be fchmod'ed; its /proc link names that inode only
            os.chmod(f"/proc/self/fd/{path_fd}", 0o700)
            fd = os.open(".", _DIR_FLAGS, dir_fd=path_fd)
        finally:
            os.close(path_fd)
    os.fchmod(fd, 0o700)
    return fd


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove ``name`` in ``parent_fd`` and, if it is a directory, all below
    it. Symlinks are removed, never followed; modes are changed only on
    directories opened with ``O_NOFOLLOW``."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    more_fds()
    top = _open_for_removal(parent_fd, name)
    stack: list[tuple[int, str, Iterator[str]]] = [(top, name, iter(os.listdir(top)))]
    try:
        while stack:
            fd, here, names = stack[-1]
            for n in names:
                st = os.stat(n, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    child = _open_for_removal(fd, n)
                    stack.append((child, n, iter(os.listdir(child))))
                    break
                os.unlink(n, dir_fd=fd)
            else:
                stack.pop()
                os.close(fd)
                os.rmdir(here, dir_fd=stack[-1][0] if stack else parent_fd)
    finally:
        for fd, _, _ in stack:
            os.close(fd)


# ------------------------------------------------------------------ extraction

@dataclass
class Extracted:
    """What an extraction left out, for the one-line note."""
    devices: int = 0
    setid: int = 0
    regular: set[str] = field(default_factory=set)   # member paths hardlinks may name

    def note(self) -> str | None:
        what = []
        if self.devices:
            what.append(f"{self.devices} device node{'s' * (self.devices != 1)}")
        if self.setid:
            what.append(f"the set-id bits of {self.setid} file{'s' * (self.setid != 1)}")
        if not what:
            return None
        hint = "use cp -a to keep them" if os.geteuid() == 0 else \
            "only root can create device nodes"
        return f"left out {' and '.join(what)} ({hint})"


def _parts(name: str, prefix: list[str] | None) -> list[str]:
    """A member's path below the extraction dir: its first component (the
    copied file's own name) becomes ``prefix`` (None: kept); ``..`` is refused."""
    rest = [p for p in name.split("/")[0 if prefix is None else 1:] if p not in ("", ".")]
    if ".." in rest:
        raise UnsafeTree(f"refusing the archive member {name!r}: it names a parent directory")
    return (prefix or []) + rest


def _enter(parent_fd: int, name: str) -> int:
    """The directory ``name`` in ``parent_fd``, made if missing; a symlink or
    other non-directory there is removed first, never followed."""
    for _ in range(3):
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            os.unlink(name, dir_fd=parent_fd)
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
    raise OSError(errno.EAGAIN, "directory keeps changing", name)


def _clear(parent_fd: int, name: str) -> None:
    """Make room for a new non-directory: whatever is at ``name`` goes."""
    remove_tree(parent_fd, name)


def _times(ti: tarfile.TarInfo) -> tuple[int, int]:
    ns = int(ti.mtime * 1_000_000_000)
    return ns, ns


class _Dirs:
    """The directories on the current member's path, each held open; a
    directory's mode and times are set when the stream leaves it (after its
    entries were written)."""

    def __init__(self, root_fd: int, keep_owners: bool) -> None:
        self.root = root_fd
        self.keep_owners = keep_owners
        self.names: list[str] = []
        self.fds: list[int] = []
        self.attrs: list[tarfile.TarInfo | None] = []

    def at(self, parts: list[str]) -> int:
        k = 0
        while k < min(len(parts), len(self.names)) and parts[k] == self.names[k]:
            k += 1
        self.leave_to(k)
        for name in parts[k:]:
            fd = _enter(self.fds[-1] if self.fds else self.root, name)
            self.names.append(name)
            self.fds.append(fd)
            self.attrs.append(None)
        return self.fds[-1] if self.fds else self.root

    def leave_to(self, depth: int) -> None:
        while len(self.names) > depth:
            self.names.pop()
            fd, ti = self.fds.pop(), self.attrs.pop()
            try:
                if ti is not None:
                    if self.keep_owners:
                        _chown(lambda fd=fd, ti=ti: os.fchown(fd, ti.uid, ti.gid))
                    os.fchmod(fd, stat.S_IMODE(ti.mode))
                    os.utime(fd, ns=_times(ti))
            finally:
                os.close(fd)


def _chown(do) -> None:
    try:
        do()
    except PermissionError:
        if os.geteuid() == 0:
            raise              # as non-root, -a keeps what it may (as tar does)


def _path_fd(root_fd: int, parts: list[str]) -> int:
    """An O_PATH fd of the directory ``parts`` below ``root_fd``, no symlink followed."""
    fd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root_fd)
    for p in parts:
        try:
            nxt = os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
        finally:
            os.close(fd)
        fd = nxt
    return fd


def extract(tf: tarfile.TarFile, root_fd: int, prefix: list[str] | None, *,
            keep_owners: bool, keep_special: bool) -> Extracted:
    """Extract the tar stream ``tf`` below the directory ``root_fd``, each
    member's first path component replaced by ``prefix``.

    ``keep_owners``: chown to the archive's numeric owners (``cp -a``).
    ``keep_special``: create device nodes and keep set-id bits of files;
    else they are left out and counted. Hardlinks may only name regular
    files extracted from this same stream (renamed the same way)."""
    more_fds()
    out = Extracted()
    dirs = _Dirs(root_fd, keep_owners)
    # modes are set with fchmod/chmod after each creation, never through the
    # umask: the umask is the whole process's, and the API server extracts
    # in one thread while others create private files
    try:
        for ti in tf:
            parts = _parts(ti.name, prefix)
            if ti.isdir():
                dirs.at(parts)
                if parts:
                    dirs.attrs[-1] = ti
                continue
            if not parts:
                raise UnsafeTree(f"refusing the archive member {ti.name!r}: "
                                 "a non-directory in place of the target directory")
            pfd = dirs.at(parts[:-1])
            _member(tf, ti, pfd, parts, prefix, root_fd, out, keep_owners, keep_special)
        dirs.leave_to(0)
    finally:
        for fd in dirs.fds:
            os.close(fd)
    return out


def _member(tf: tarfile.TarFile, ti: tarfile.TarInfo, pfd: int, parts: list[str],
            prefix: list[str] | None, root_fd: int, out: Extracted, keep_owners: bool,
            keep_special: bool) -> None:
    """One non-directory member, written as its last part in ``pfd``."""
    key, leaf = "/".join(parts), parts[-1]
    mode = stat.S_IMODE(ti.mode)
    if ti.isdev() and not ti.isfifo() and not keep_special:
        out.devices += 1
        return
    _clear(pfd, leaf)
    if ti.isreg():
        if mode & _SETID and not keep_special:
            out.setid += 1
            mode &= ~_SETID
        fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=pfd)
        try:
            src = tf.extractfile(ti)
            if src is not None:
                with os.fdopen(os.dup(fd), "wb") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
            if keep_owners:
                _chown(lambda fd=fd, ti=ti: os.fchown(fd, ti.uid, ti.gid))
            os.fchmod(fd, mode)            # after chown, which clears set-id bits
            os.utime(fd, ns=_times(ti))
        finally:
            os.close(fd)
        out.regular.add(key)
        return
    if ti.islnk():
        target = _parts(ti.linkname, prefix)
        if "/".join(target) not in out.regular:
            raise UnsafeTree(f"refusing the hardlink {ti.name!r} to {ti.linkname!r}: "
                             "its target is not a file copied before it")
        tfd = _path_fd(root_fd, target[:-1])
        try:
            os.link(target[-1], leaf, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)
        out.regular.add(key)
        return
    if ti.issym():
        os.symlink(ti.linkname, leaf, dir_fd=pfd)
    elif ti.isfifo():
        os.mkfifo(leaf, mode, dir_fd=pfd)
        os.chmod(leaf, mode, dir_fd=pfd)      # just made by us in our own directory
    elif ti.ischr() or ti.isblk():
        kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK
        try:
            os.mknod(leaf, kind | mode, os.makedev(ti.devmajor, ti.devminor), dir_fd=pfd)
        except PermissionError:
            out.devices += 1
            return
        os.chmod(leaf, mode, dir_fd=pfd)
    else:
        return                         # sockets and unknown types: as tar, left out
    if keep_owners:
        _chown(lambda: os.chown(leaf, ti.uid, ti.gid, dir_fd=pfd, follow_symlinks=False))
    os.utime(leaf, ns=_times(ti), dir_fd=pfd, follow_symlinks=False)



def disk_usage(path: Path | str) -> int:
    """Apparent size of the files under ``path`` (dockish's own dirs:
    symlinks are not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
