"""unionfs.later: the worker threads that run an fsync's waits and answer
the kernel themselves (no FUSE needed: the answer is a callable)."""
import errno
import os
import threading
import time

import pytest

from unionfs.later import Later

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`


def _answers(later: Later, works) -> list[int]:
    got: list[int] = []
    done = threading.Semaphore(0)

    def reply(err: int) -> None:
        got.append(err)
        done.release()
    for work in works:
        later.submit(work, reply)
    for _ in works:
        assert done.acquire(timeout=10), "a request was never answered"
    return got


def test_answers_after_the_work_with_its_errno():
    later = Later()
    ran = []

    def ok() -> None:
        ran.append(1)

    def full() -> None:
        raise OSError(errno.ENOSPC, "no space")

    def bug() -> None:
        raise KeyError("a bug")
    try:
        assert _answers(later, [ok]) == [0] and ran == [1]
        assert _answers(later, [full]) == [errno.ENOSPC]
        assert _answers(later, [bug]) == [errno.EIO]     # a bug never kills a thread
        assert _answers(later, [ok]) == [0] and ran == [1, 1]
    finally:
        later.close()


def test_waits_run_side_by_side():
    """fsyncs of different files wait for the disk at the same time: four
    works that each wait for the other three all finish."""
    later = Later(threads=4)
    meet = threading.Barrier(4, timeout=10)
    try:
        assert _answers(later, [meet.wait] * 4) == [0] * 4
    finally:
        later.close()


def test_no_threads_until_needed_and_none_after_close():
    """A view that never fsyncs (read-only) starts none; close answers what
    was handed over before the threads end, so none is left to answer in a
    closed session."""
    def workers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("dockish-later")]
    later = Later(threads=2)
    assert workers() == []
    gate = threading.Event()
    got = []
    for _ in range(5):
        later.submit(gate.wait, got.append)
    assert len(workers()) == 2
    gate.set()
    later.close()
    assert got == [0] * 5
    assert workers() == []


def test_work_nobody_waits_for_runs_at_the_lowest_priority_and_close_drops_the_rest():
    """Removing deleted files' data takes what CPU the view's users leave:
    its thread's nice value is 19, and a bug in one piece of work stops
    none after it. Close waits for the piece under way and drops the ones
    not started (the unmount's compaction removes their files anyway), so
    a view's end never waits for a starved thread's backlog."""
    later = Later(threads=1)
    seen: list[int] = []
    done = threading.Semaphore(0)

    def remove() -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        done.release()

    def bug() -> None:
        raise KeyError("a bug")
    later.soon(bug)                 # logged, and the thread goes on
    for _ in range(3):
        later.soon(remove)
    for _ in range(3):
        assert done.acquire(timeout=10)
    assert seen == [19, 19, 19]

    started, gate = threading.Event(), threading.Event()

    def under_way() -> None:
        started.set()
        gate.wait(10)
        remove()
    later.soon(under_way)
    assert started.wait(10)
    for _ in range(3):
        later.soon(remove)          # not started when close comes
    closing = threading.Thread(target=later.close)
    closing.start()
    time.sleep(0.5)                 # close has dropped them and waits
    assert closing.is_alive()
    gate.set()
    closing.join(10)
    assert not closing.is_alive()
    assert seen == [19, 19, 19, 19]                     # the one under way, no more
    assert not [t for t in threading.enumerate() if t.name.startswith("dockish-later")]
