"""Pausing a container without a cgroup freezer (cgroups v1 give a rootless
user none): its processes get SIGSTOP, later SIGCONT, sent from a helper
that joined the container's user namespace, whose root may signal every
uid the container has. New processes forked while stopping are caught by
stopping until no new one appears. ``sync`` flushes the kernel's write-back
cache of the container's view to its daemon.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal

from ..errors import DockishError
from . import namespaces as ns
from .container import process_tree


class FreezeError(DockishError):
    """The container's processes cannot be reached; the message says why."""


def _in_container(init: int, fn, kinds: tuple[str, ...] = ("user",)) -> None:
    """Run ``fn`` in a child that joined ``init``'s namespaces ``kinds``."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        code = 1
        try:
            ns.join(init, list(kinds))
            fn()
            code = 0
        except BaseException as e:          # noqa: BLE001 - the parent says it
            os.write(w, (str(e) or type(e).__name__).encode())
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        why = f.read().decode(errors="replace")
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise FreezeError(f"cannot reach the container's processes: {why or 'helper failed'}")


def container_pids(init: int) -> set[int]:
    """Every process of the container: ``init``'s descendants and whatever
    shares its pid namespace (``exec``'d processes hang off their own
    holder on the host)."""
    pids = set(process_tree(init))
    with contextlib.suppress(OSError):
        target = os.stat(f"/proc/{init}/ns/pid").st_ino
        for name in os.listdir("/proc"):
            if name.isdigit():
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{name}/ns/pid").st_ino == target:
                        pids.add(int(name))
    return pids


def _signal_all(pids: set[int], sig: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


def _syncfs_root(init: int) -> None:
    ns.join(init, ["mnt"])
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs of the container's root failed")
    finally:
        os.close(fd)


def _stop_all(init: int) -> None:
    stopped: set[int] = set()
    while pids := container_pids(init) - stopped:     # the host's /proc: before mnt
        _signal_all(pids, signal.SIGSTOP)
        stopped |= pids


def freeze(init: int, *, sync: bool = False) -> None:
    """Stop every process of the container (then sync its view)."""
    def body() -> None:
        _stop_all(init)
        if sync:
            _syncfs_root(init)
    try:
        _in_container(init, body)
    except FreezeError:
        thaw(init)
        raise


def thaw(init: int) -> None:
    _in_container(init, lambda: _signal_all(container_pids(init), signal.SIGCONT))


def sync(init: int) -> None:
    _in_container(init, lambda: _syncfs_root(init))
