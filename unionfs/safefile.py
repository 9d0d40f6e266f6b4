"""Reading a small file that a user, a build context or an image names.

``--env-file``, ``-f Dockerfile``, ``--secret src=``, the context's
``.dockerignore`` and Dockerfile: each must be a regular file. A FIFO would
block the open (or the read) forever and hang the command; a directory or a
device gives a traceback or reads something unbounded. So every such read
goes through here: the open never blocks (``O_NONBLOCK``), ``fstat`` of the
open fd checks the type before a byte is read (so a rename in between
changes nothing), and the size is capped. Where the name comes from
untrusted content, ``follow=False`` refuses a symlink as the last component
(``O_NOFOLLOW``); callers that walk a tree open the parent directories
themselves and pass the fd to ``read_fd``.

Errors are ``OSError`` with a short ``strerror`` and the file's name, which
the command-line wrappers already turn into one line.
"""
from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

MAX_SIZE = 16 << 20       # env files, Dockerfiles, secrets: far below this


def open_flags(follow: bool = True) -> int:
    """Flags for opening a file read here: never blocking, never inherited."""
    return os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)


def read_fd(fd: int, name: str, limit: int = MAX_SIZE, *, pipe: bool = False) -> bytes:
    """The contents of the open ``fd`` if it is a regular file (or, with
    ``pipe``, an anonymous pipe) of at most ``limit`` bytes; ``fd`` is closed
    in every case."""
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", name)
        if pipe and stat.S_ISFIFO(st.st_mode):
            os.set_blocking(fd, True)      # the shell's writer ends it with EOF
        elif not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > limit:
                raise OSError(errno.EFBIG, f"larger than {limit} bytes", name)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


_INHERITED = re.compile(r"/(?:dev|proc/self)/fd/(\d+)|/dev/stdin")


def _anonymous_pipe(name: str) -> bool:
    """Whether ``name`` is one of our fds that is a pipe with no name in any
    directory: what ``--env-file <(...)`` hands over. Its writer is the
    user's own shell, so reading it to EOF cannot be made to hang by anyone
    else, unlike a named FIFO someone left in a directory."""
    m = _INHERITED.fullmatch(name)
    if not m:
        return False
    try:
        return os.readlink(f"/proc/self/fd/{m.group(1) or 0}").startswith("pipe:")
    except OSError:
        return False


def read_file(path: str | os.PathLike, *, follow: bool = True, dir_fd: int | None = None,
              limit: int = MAX_SIZE, pipes: bool = False) -> bytes:
    """A regular file's bytes (see the module's docstring); ``follow=False``
    refuses a symlink as the last component; ``pipes`` also takes an
    inherited anonymous pipe (``<(...)``, ``/dev/stdin``) for files a user
    names on the command line."""
    name = os.fspath(path)
    try:
        fd = os.open(name, open_flags(follow), dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP and not follow:
            raise OSError(errno.ELOOP, "is a symbolic link", name) from None
        raise
    return read_fd(fd, name, limit, pipe=pipes and _anonymous_pipe(name))


def read_text(path: str | os.PathLike, *, follow: bool = True,
              dir_fd: int | None = None) -> str:
    """``read_file`` decoded as UTF-8, undecodable bytes kept as surrogates
    (a Dockerfile or pattern file in another encoding still parses)."""
    return read_file(Path(path), follow=follow, dir_fd=dir_fd).decode(
        "utf-8", "surrogateescape")


def open_regular(path: str | os.PathLike, *, dir_fd: int | None = None) -> BinaryIO:
    """A regular file opened for streaming (no size cap), such as a blob of
    an OCI layout someone handed over: a FIFO planted there must not hang
    the reader, and a device must not be read at all. The non-blocking flag
    is cleared once the type is known, so reads behave as usual."""
    name = os.fspath(path)
    fd = os.open(name, open_flags(), dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", name)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", name)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
