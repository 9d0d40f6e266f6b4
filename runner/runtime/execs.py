"""Exec instances, as Docker's daemon keeps them: ``exec create`` makes a
record (what to run, in which container), ``start`` runs it with pipes or a
pty of its own (the caller relays them: the CLI to its terminal, the API to
a hijacked connection), ``wait`` reaps it, ``inspect`` tells Running,
ExitCode and Pid, ``resize`` sets its terminal's size. No printing, no
signal handlers: a server's worker threads can drive it."""
from __future__ import annotations

import base64
import contextlib
import os
import secrets
import threading
from dataclasses import dataclass, field

from ..errors import NotFoundError
from .monitor import ExecPipes


@dataclass
class ExecInstance:
    """One exec: its request, then how it went."""

    id: str
    container: str
    argv: list[str]
    env: list[str]                       # the full environment (container's + the exec's)
    user: str | None
    workdir: str | None
    tty: bool
    stdin: bool
    stdout: bool = True
    stderr: bool = True
    privileged: bool = False
    detach_keys: bytes = b""             # as created (b"": none given, the default applies)
    started: bool = False
    running: bool = False
    exit_code: int | None = None
    pid: int = 0                         # the holder process (our child) once started
    pipes: ExecPipes = field(default_factory=ExecPipes)

    def inspect(self) -> dict:
        """Docker's ``GET /exec/{id}/json``; ``DetachKeys`` is the keys' bytes
        as Go's JSON writes a byte slice (base64: ``ctrl-p,ctrl-q`` is
        ``EBE=``), empty when the exec was created without any."""
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": self.tty, "entrypoint": self.argv[0],
                                  "arguments": self.argv[1:], "privileged": self.privileged,
                                  "user": self.user or ""},
                "OpenStdin": self.stdin, "OpenStdout": self.stdout,
                "OpenStderr": self.stderr, "ContainerID": self.container,
                "DetachKeys": base64.b64encode(self.detach_keys).decode(),
                "CanRemove": False, "Pid": self.pid}


class ExecTable:
    """The exec instances of one engine (a server's lifetime, as Docker's)."""

    def __init__(self) -> None:
        self._by_id: dict[str, ExecInstance] = {}
        self._lock = threading.Lock()

    def add(self, inst: ExecInstance) -> ExecInstance:
        with self._lock:
            self._by_id[inst.id] = inst
        return inst

    def get(self, eid: str) -> ExecInstance:
        with self._lock:
            inst = self._by_id.get(eid)
        if inst is None:
            raise NotFoundError(f"No such exec instance: {eid}")
        return inst

    def claim(self, eid: str) -> ExecInstance:
        """The instance, marked started (only once: Docker's 409 after)."""
        from ..errors import ConflictError
        with self._lock:
            inst = self._by_id.get(eid)
            if inst is None:
                raise NotFoundError(f"No such exec instance: {eid}")
            if inst.started:
                raise ConflictError(f"conflict: exec {eid} has already been started")
            inst.started = inst.running = True
        return inst


def exec_detach_keys(text: str) -> bytes:
    """An exec's ``DetachKeys`` as Docker's daemon keeps them: the bytes of
    what was given, nothing when nothing was (the default ctrl-p,ctrl-q then
    applies); a bad key is refused in the daemon's words (its plain error:
    a 500 through the API, as Docker's)."""
    from ..errors import DockishError
    from .tty import parse_detach_keys
    if not text.strip():
        return b""
    try:
        return parse_detach_keys(text)
    except ValueError:
        raise DockishError(f"Invalid escape keys ({text}) provided") from None


def new_id() -> str:
    return secrets.token_hex(32)


def resize(inst: ExecInstance, rows: int, cols: int) -> None:
    """Set a running exec's terminal size (nothing once it has ended, or
    for a zero size, as Docker ignores those)."""
    import fcntl
    import struct
    import termios

    from ..errors import UsageError
    if not inst.tty:
        raise UsageError("exec instance has no terminal")
    master = inst.pipes.master
    if master is not None and rows > 0 and cols > 0:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def close_pipes(inst: ExecInstance) -> None:
    """Our ends of the exec's stdio, closed once (the relay is over)."""
    p = inst.pipes
    for fd in (p.master, p.out_r, p.err_r, p.in_w):
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    inst.pipes = ExecPipes()


__all__ = ["ExecInstance", "ExecTable", "close_pipes", "exec_detach_keys", "new_id", "resize"]
