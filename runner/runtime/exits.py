"""A container's exit as its waiters see it: the wait conditions, and the
codes of containers already removed.

Docker's daemon answers ``wait`` for a ``--rm`` container after it is gone
from the code it keeps in memory. dockish has no daemon, and the waiter may
be another process (``dockish wait`` in a second shell, the API service,
``docker run --rm``'s client): so whoever removes a container first writes
its code to a small record of the store (``ROOT/exits/ID``, a private dir,
mkstemp + rename so a reader sees all of it or nothing), and ``wait`` reads
it once the container's files are gone. Records live an hour (``KEEP_FOR``):
every removal prunes the older ones, so they never pile up.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

from ..errors import DockishError, UsageError
from .container import Container

CONDITIONS = ("not-running", "next-exit", "removed")
KEEP_FOR = 3600.0           # seconds a removed container's code stays readable


def records_dir(root: Path) -> Path:
    """``ROOT/exits``: made 0700 if missing, refused if not ours."""
    from unionfs import private
    return private.ensure(Path(root) / "exits", fix="remove it", writable_ok=False)


def record(root: Path, c: Container) -> None:
    """Keep ``c``'s code (if it ever ran) where ``wait`` finds it after its
    files are gone; a store that cannot take it loses the record, never the
    removal (a waiter then gets 0, as for a container that never ran)."""
    info = c.exit_info()
    if info is None:
        return
    with contextlib.suppress(OSError):
        d = records_dir(root)
        forget_old(d)
        fd, tmp = tempfile.mkstemp(prefix=f".{c.id}.", dir=d)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(str(int(info.get("code", 255))))
            os.replace(tmp, d / c.id)
        except BaseException:
            os.unlink(tmp)
            raise


def recorded(root: Path, cid: str) -> int | None:
    """The code ``record`` kept for ``cid`` (left for other waiters), or None."""
    try:
        fd = os.open(records_dir(root) / cid, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        text = f.read().strip()
    return int(text) if text.lstrip("-").isdigit() else None


def forget_old(d: Path, age: float = KEEP_FOR) -> None:
    """Records older than ``age`` seconds (nobody waited for them)."""
    now = time.time()
    for name in os.listdir(d):
        with contextlib.suppress(OSError):
            if now - os.lstat(d / name).st_mtime > age:
                os.unlink(d / name)


class Waiter:
    """One ``wait`` on a container, polled by a blocking caller (the CLI's
    ``Engine.wait``) or an async one (the API service, which must stay
    cancellable when its client goes): ``poll()`` gives the code once the
    condition is met, else None. What counts as "after this call" is noted
    when the waiter is made (the docker CLI asks before it starts the
    container)."""

    def __init__(self, root: Path, c: Container, condition: str = "not-running") -> None:
        if condition not in CONDITIONS:
            raise UsageError(f"invalid condition: \"{condition}\": use not-running, "
                             "next-exit or removed")
        self.root, self.c, self.condition = Path(root), c, condition
        self.first_started = c.state().get("started")
        self.first_finished = c.finished_at()
        self.last_code: int | None = None

    def _started_again(self) -> bool:
        return self.c.state().get("started") != self.first_started or \
            self.c.finished_at() != self.first_finished

    def poll(self) -> int | None:
        c = self.c
        if not c.path.exists():         # removed: its record (or the last code seen)
            code = recorded(self.root, c.id)
            return code if code is not None else (self.last_code or 0)
        if c.running:
            return None
        info = c.exit_info()
        if info is not None:
            self.last_code = int(info.get("code", 255))
        answer = None
        if self.condition == "not-running":
            answer = c.status()[1]      # 255 for one that ran and left no code
            answer = answer if answer is not None else 0
        elif self.condition == "next-exit" and info is not None and self._started_again():
            answer = self.last_code
        if not c.path.exists():         # removed while we looked: its record says
            return self.poll()
        return answer

    def wait(self, timeout: float | None = None, interval: float = 0.05) -> int:
        """Block until ``poll`` answers; DockishError once ``timeout`` passes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise DockishError(f"timed out waiting for container {self.c.id}")
            time.sleep(interval)
        return code
