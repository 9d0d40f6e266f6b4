"""Output files (``save -o``, ``export -o``, ``layer -o``): all or nothing.

The data goes to a fresh ``mkstemp`` file in the destination's directory
(``O_EXCL``: no name another user could plant a symlink at) and is renamed
over the destination only once complete. On any failure the temporary file
is removed and an existing destination is left as it was.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import BinaryIO


@contextlib.contextmanager
def output_file(path: str) -> Iterator[BinaryIO]:
    """A binary file to write ``path``'s new content to; it becomes ``path``
    when the block ends without an exception. ``path`` itself may be a
    symlink of the user's (its target is replaced) or a device or FIFO such
    as /dev/null (written directly: there is nothing to replace)."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{path} is a directory")
        with open(real, "wb") as f:
            yield f
        return
    directory, base = os.path.split(real)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())    # as a plain open() would create it
        with os.fdopen(fd, "wb") as f:
            yield f
        os.rename(tmp, real)
    except BaseException:
        os.unlink(tmp)
        raise


def current_umask() -> int:
    """The process's umask, read without setting it (setting and restoring
    it races with other threads creating files, as in the API server)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
