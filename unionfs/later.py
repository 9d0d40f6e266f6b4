"""Requests answered later, by worker threads of the daemon's own.

An fsync waits for the backing disk: an fdatasync of the file's data, and
of the journal when the file's records are not durable yet (150-300 µs on
the development machine's ext4). Run through ``trio.to_thread`` each wait
cost about 126 µs more (the hand-off to a cached thread, then trio's wakeup
and a scheduler pass to come back), and an fsync took up to three of them
side by side; dpkg fsyncs every file it unpacks and waits for each, so an
apt install spent seconds on hand-offs. Here the trio thread does the quick
part of such a request (journaling the file's record), hands the rest to a
waiting thread in one step (a queue: about 20 µs), and that thread answers
the kernel itself when done (libfuse's replies may come from any thread),
so nothing comes back to the trio thread at all.

A thread of the same kind removes the data files of deleted files, which
no request waits for: through ``trio.to_thread`` each FORGET that dropped a
file cost the trio thread a hand-off and a wakeup (an ``rm -rf`` of 7.4k
files: 1.6 s, 1.2 s without the hand-offs).

Work handed over must touch only what may be used from another thread: the
open fds it was given (its own duplicates), the journal's sync under the
view's journal lock, page stores and invalidations (libfuse notifications),
unlinks of data files no node names any more.
"""
from __future__ import annotations

import errno
import logging
import os
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

THREADS = 4             # fsyncs of different files wait for the disk side by side
NICEST = 19             # the nice value of the thread for work nobody waits for

Reply = Callable[[int], None]


class Later:
    """Worker threads that run ``work`` and then answer with ``reply``: 0,
    or the errno of the OSError it raised (EIO, logged, for a bug). Started
    on first use, so a view that never needs them (read-only) has none."""

    def __init__(self, threads: int = THREADS) -> None:
        self.threads = threads
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._idle_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._idle: threading.Thread | None = None

    def submit(self, work: Callable[[], None], reply: Reply) -> None:
        if not self._workers:
            self._start()
        self._queue.put((work, reply))

    def soon(self, work: Callable[[], None]) -> None:
        """Run ``work``, which no request waits for (its failure is logged
        if it is a bug; an OSError is the work's own to handle), in a thread
        of its own at the lowest CPU priority: it takes what the view's
        users leave (on the development machine's two cores an ``rm -rf``
        of 7.4k files took 0.92 s with no data file removed, 1.2 s with
        them removed at normal priority). What has not started by ``close``
        is dropped: on a busy machine a thread at nice 19 could hold up the
        view's end for long, and the unmount's compaction removes every
        data file no name refers to anyway."""
        if self._idle is None:
            self._idle = threading.Thread(target=self._serve, args=(self._idle_queue, NICEST),
                                          name="dockish-later-idle", daemon=True)
            self._idle.start()
        self._idle_queue.put((work, _unanswered))

    def _start(self) -> None:
        for n in range(self.threads):
            t = threading.Thread(target=self._serve, args=(self._queue,),
                                 name=f"dockish-later-{n}", daemon=True)
            t.start()
            self._workers.append(t)

    def _serve(self, jobs: queue.SimpleQueue, nice: int = 0) -> None:
        if nice:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
            except OSError:
                pass                # (a thread's own nice value: Linux)
        while (item := jobs.get()) is not None:
            work, reply = item
            reply(run(work))

    def close(self) -> None:
        """Answer what was handed over, then end the threads (before the
        FUSE session they answer in goes away); drop the work nobody waits
        for that has not started."""
        for _ in self._workers:
            self._queue.put(None)
        for t in self._workers:
            t.join()
        self._workers.clear()
        if self._idle is not None:
            while True:             # not started yet: dropped (see soon)
                try:
                    self._idle_queue.get_nowait()
                except queue.Empty:
                    break
            self._idle_queue.put(None)
            self._idle.join()
            self._idle = None


def run(work: Callable[[], None]) -> int:
    """``work()``'s answer for the kernel: 0, an OSError's errno, or EIO
    (and a logged traceback) for anything else."""
    try:
        work()
    except OSError as e:
        return e.errno or errno.EIO
    except Exception:
        log.exception("a request's work failed")
        return errno.EIO
    return 0


def _unanswered(err: int) -> None:
    """The answer of work nobody waits for."""
