"""Empty data files made ahead of need, by a thread of their own.

Creating a file is the dearest step of a CREATE in the writable layer: an
``openat(O_CREAT)`` on the backing filesystem took 400-800 µs on the
development machine (ext4), where renaming an existing file into place took
about 30 µs. Package installs and untars create thousands of files one after
another, and the daemon answered each only after that create. So a thread
keeps up to ``AHEAD`` empty files open in ``UPPER/spare/`` (the second core
makes them while the trio thread answers requests), and a new file's data
is a spare renamed to its number in ``UPPER/data/``; with none ready the
caller creates the file itself, as before.

Safety: a spare is only written once it has its data name, so every file
left in ``spare/`` is empty and unnamed in the journal: a daemon killed with
spares made loses nothing, and the next one removes them when it starts.
Names in ``spare/`` are the thread's own (``s<n>``), made with ``O_EXCL``
through the directory's fd; nothing from the view names a host path here.
"""
from __future__ import annotations

import collections
import os
import threading

AHEAD = 64              # spares kept ready
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Spares:
    """Ready empty files in one directory (``dir_fd``), handed out by
    ``take`` (trio thread) and made by a thread of their own."""

    def __init__(self, dir_fd: int, ahead: int = AHEAD) -> None:
        self.dir_fd = dir_fd
        self.ahead = ahead
        self._ready: collections.deque[tuple[str, int]] = collections.deque()
        self._want = threading.Event()      # set: make more
        self._stop = False
        self._serial = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Remove what an earlier daemon left (empty, unnamed files) and
        start making spares."""
        for name in os.listdir(self.dir_fd):
            try:
                os.unlink(name, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass
        self._want.set()
        self._thread = threading.Thread(target=self._fill, name="dockish-spares", daemon=True)
        self._thread.start()

    def take(self, data_fd: int, name: str) -> int | None:
        """An open, empty file now named ``name`` in ``data_fd``'s directory
        (replacing any file of that name), or None when no spare is ready or
        the rename failed (the caller then creates the file itself)."""
        try:
            spare, fd = self._ready.popleft()
        except IndexError:
            self._want.set()
            return None
        if len(self._ready) < self.ahead // 2:
            self._want.set()
        try:
            os.rename(spare, name, src_dir_fd=self.dir_fd, dst_dir_fd=data_fd)
        except OSError:
            os.close(fd)
            return None
        return fd

    def _fill(self) -> None:
        while True:
            self._want.wait()
            self._want.clear()
            while not self._stop and len(self._ready) < self.ahead:
                self._serial += 1
                name = f"s{self._serial}"
                try:
                    fd = os.open(name, _FLAGS, 0o600, dir_fd=self.dir_fd)
                except FileExistsError:
                    continue
                except OSError:
                    break           # a full disk, say: callers create their own meanwhile
                self._ready.append((name, fd))
            if self._stop:
                return

    def close(self) -> None:
        """Stop the thread and remove the spares not handed out."""
        self._stop = True
        self._want.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        while self._ready:
            name, fd = self._ready.popleft()
            os.close(fd)
            try:
                os.unlink(name, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass
