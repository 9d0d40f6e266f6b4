"""Open data files of the writable layer, one fd per inode, a bounded number.

Where the kernel opens files without asking the daemon (``UnionFS.no_open``)
no RELEASE ever says a file was closed, so data fds cannot live per open
handle: they are kept per inode here, the least recently used closed once
there are more than ``limit``, and closed when the kernel forgets the inode
or the file goes. Reopening one costs an ``openat`` through the data
directory's fd, far less than the OPEN and RELEASE round trips it replaces.

An fd in use by a worker thread (a large read or write, a copy, an fsync)
is marked ``busy`` and never closed by eviction meanwhile: a closed number
could be reused by another open and the thread would read the wrong file.
"""
from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Iterator

DEFAULT_LIMIT = 512


class FdCache:
    """ino -> open fd, least recently used first."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._fds: dict[int, int] = {}
        self._busy: collections.Counter[int] = collections.Counter()

    def get(self, ino: int) -> int | None:
        fd = self._fds.pop(ino, None)
        if fd is not None:
            self._fds[ino] = fd             # most recently used: last
        return fd

    def put(self, ino: int, fd: int) -> None:
        old = self._fds.pop(ino, None)
        if old is not None and old != fd:
            os.close(old)
        self._fds[ino] = fd
        if len(self._fds) > self.limit:
            self._evict()

    def close(self, ino: int) -> None:
        fd = self._fds.pop(ino, None)
        if fd is not None:
            os.close(fd)

    def close_all(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    @contextlib.contextmanager
    def busy(self, ino: int) -> Iterator[None]:
        """Keep ``ino``'s fd open while a worker thread uses it."""
        self._busy[ino] += 1
        try:
            yield
        finally:
            self._busy[ino] -= 1
            if not self._busy[ino]:
                del self._busy[ino]

    def _evict(self) -> None:
        while len(self._fds) > self.limit:
            victim = next((ino for ino in self._fds if ino not in self._busy), None)
            if victim is None:
                return                      # all busy: over the bound for a moment
            os.close(self._fds.pop(victim))

    def __len__(self) -> int:
        return len(self._fds)

    def __contains__(self, ino: int) -> bool:
        return ino in self._fds
