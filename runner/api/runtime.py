"""What the API needs from the container runtime that ``Engine`` does not
offer yet (each is small and calls the runtime's own modules; they can move
into the engine):

- ``start``: a start from a long-lived, multi-threaded server. The monitor
  must not be the server's child (nobody would reap it, and it must outlive
  the server), so a fresh process starts it and exits at once; a
  ``--rm`` container's code is written to the service's private exit
  records before its files go, so ``wait?condition=removed`` can answer;
- ``set_labels``: labels given at create (compose finds its containers by them);
- exec with our own pipes or pty (the engine's ``exec`` relays to the
  caller's fds and installs signal handlers: main thread only);
- archive stat/get/put inside the container (``transfer.inside``);
- a ``-t`` container's window size through its monitor's attach socket.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import namespaces as ns
from .. import tty as ttymod
from ..container import Container
from ..engine import Engine
from ..errors import EXIT_DOCKISH, DockishError
from ..launch import StartError, Stdio


def exits_dir() -> Path:
    """The service's exit records (private: in the runtime dir)."""
    from unionfs import private
    from unionfs.mounts import runtime_dir
    path = runtime_dir() / "api-exits"
    private.ensure(path, fix="remove it", writable_ok=False)
    return path


def record_exit(c: Container) -> None:
    """Keep ``c``'s code where ``wait`` finds it after ``c`` is gone."""
    info = c.exit_info() or {}
    with contextlib.suppress(OSError):
        d = exits_dir()
        tmp = d / f".{c.id}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "w") as f:
            f.write(str(int(info.get("code", 255))))
        os.replace(tmp, d / c.id)


def recorded_exit(cid: str) -> int | None:
    """The code ``record_exit`` kept (read once: the record goes)."""
    try:
        path = exits_dir() / cid
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        text = f.read().strip()
    with contextlib.suppress(OSError):
        os.unlink(path)
    return int(text) if text.lstrip("-").isdigit() else None


def forget_old_exits(age: float = 3600) -> None:
    """Records nobody waited for, from earlier services."""
    with contextlib.suppress(OSError):
        d = exits_dir()
        now = time.time()
        for n in os.listdir(d):
            with contextlib.suppress(OSError):
                if now - os.lstat(d / n).st_mtime > age:
                    os.unlink(d / n)


def start(engine: Engine, c: Container) -> None:
    """Start ``c`` under a monitor that is not our child; StartError with
    the container's code when its command cannot run.

    The start runs in a fresh interpreter (``python -m runner.api.runtime``),
    not a fork of this process: the server is multi-threaded, and a fork
    copies whatever locks its other threads held at that instant (the
    import lock, a logging or allocator lock), which the monitor and the
    view daemon forked below it could then wait on forever or die of."""
    import subprocess
    import sys
    if c.running:
        return
    p = subprocess.run([sys.executable, "-m", "runner.api.runtime", str(engine.root), c.id],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, close_fds=True, check=False)
    data = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else b""
    if data != b"OK":
        code, _, msg = data.decode(errors="replace").partition(" ")
        raise StartError(msg or "the container's monitor died while starting",
                         int(code) if code.isdigit() else EXIT_DOCKISH)


def _start_main(root: str, cid: str) -> None:
    """The fresh process of ``start``: start the container, say OK or
    ``CODE message`` on stdout, and go (the monitor is not our child)."""
    from ..monitor import start_detached
    engine = Engine(Path(root))
    try:
        c = engine.get(cid)

        def remove(ctr: Container) -> None:
            record_exit(ctr)
            engine._remove_files(ctr)
        start_detached(c, engine._launch(c), remove)
        out = "OK"
    except DockishError as e:
        out = f"{e.exit_code} {e}"
    except BaseException as e:      # noqa: BLE001 - told to the server
        out = f"{EXIT_DOCKISH} {type(e).__name__}: {e}"
    os.write(1, (out.replace("\n", " ") + "\n").encode())


def set_labels(c: Container, labels: dict[str, str]) -> None:
    """Labels kept in the container's record (written as the record is:
    a temporary then a rename)."""
    c.config.labels = dict(labels)
    path = c.path / "config.json"
    tmp = c.path / f".config.json.{os.getpid()}.api"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(c.config), f)
    os.replace(tmp, path)


# -- terminals -----------------------------------------------------------------------------------

def resize_tty(c: Container, rows: int, cols: int) -> None:
    """Tell a ``-t`` container's monitor the window size: one attach
    client whose first line is the size."""
    if not c.config.tty:
        raise DockishError(f"container {c.id} has no terminal to resize")
    if not c.running:
        raise DockishError(f"Container {c.id} is not running")
    try:
        sock = ttymod.connect(c.id)
    except OSError as e:
        raise DockishError(f"container {c.id}: no terminal to resize: "
                           f"{e.strerror or e}") from None
    with sock:
        sock.sendall(f"{rows} {cols}\n".encode())


def open_log_for_attach(c: Container) -> int:
    """The container's log opened before it starts (made if missing, as its
    monitor would make it): a ``--rm`` container's output stays readable
    through this fd after its files are gone."""
    return os.open(c.log, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


# -- exec ----------------------------------------------------------------------------------------

@dataclass
class ExecRecord:
    """One ``POST /containers/{id}/exec``: what to run, then how it went."""

    id: str
    container: str
    argv: list[str]
    env: list[str]
    user: str | None
    workdir: str | None
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool
    privileged: bool = False
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    master: int | None = None
    fds: list[int] = field(default_factory=list)

    def inspect(self, engine_pid: int | None = None) -> dict:
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": self.tty, "entrypoint": self.argv[0],
                                  "arguments": self.argv[1:], "privileged": self.privileged,
                                  "user": self.user or ""},
                "OpenStdin": self.stdin, "OpenStdout": self.stdout,
                "OpenStderr": self.stderr, "ContainerID": self.container,
                "DetachKeys": "", "CanRemove": False, "Pid": self.pid}


@dataclass
class ExecFds:
    """Our ends of a started exec: a pty master, or pipes."""

    master: int | None = None
    out_r: int | None = None
    err_r: int | None = None
    in_w: int | None = None


def exec_spawn(engine: Engine, rec: ExecRecord, detach: bool) -> tuple[int, ExecFds]:
    """Start the exec'd process; (its holder's pid, our ends of its stdio)."""
    from .. import config as cfgmod
    from ..launch import exec_in
    c = engine.get(rec.container)
    if not c.running:
        raise DockishError(f"container {c.id} is not running")
    if c.paused:
        raise DockishError(f"container {c.id} is paused, unpause the container before exec")
    env = cfgmod.merge_env(c.config.env, rec.env)
    ours: list[int] = []        # the process's ends: closed once it runs
    fds = ExecFds()
    try:
        if rec.tty:
            master, slave = os.openpty()
            os.set_inheritable(master, False)
            fds.master = master
            ours.append(slave)
            given = os.dup(slave)         # exec_in closes the slave it is given
            stdio = Stdio(None, given, given, pty_slave=given)
        elif detach:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            ours.append(null)
            stdio = Stdio(None, null, null)
        else:
            fds.out_r, out_w = os.pipe2(os.O_CLOEXEC)
            fds.err_r, err_w = os.pipe2(os.O_CLOEXEC)
            ours += [out_w, err_w]
            in_r = None
            if rec.stdin:
                in_r, fds.in_w = os.pipe2(os.O_CLOEXEC)
                ours.append(in_r)
            stdio = Stdio(in_r, out_w, err_w)
        holder = exec_in(c, rec.argv, env, rec.user if rec.user is not None else c.config.user,
                         rec.workdir or c.config.workdir, stdio, ns.plan_mapping().full)
    except BaseException:
        for fd in (fds.master, fds.out_r, fds.err_r, fds.in_w):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        raise
    finally:
        for fd in ours:
            with contextlib.suppress(OSError):
                os.close(fd)
    return holder, fds


# -- archive -------------------------------------------------------------------------------------

def stat_header(st: dict) -> str:
    return base64.b64encode(json.dumps(st).encode()).decode()


def archive_out(engine: Engine, c: Container, path: str, out_fd: int) -> None:
    """A tar of ``path`` inside ``c`` written to ``out_fd`` (closed after),
    made inside the container (no container path is resolved on the host)."""
    from ..transfer import TransferError, inside, write_tree
    name = os.path.basename(path.rstrip("/")) or "."
    if path.rstrip("/").endswith("/.") or path.endswith("/."):
        name = "."

    def body() -> None:
        ns.close_fds_except({out_fd, 2})
        try:
            write_tree(path, name if name != "." else "", out_fd, one_fs=False)
        except BrokenPipeError:
            os._exit(1)
    try:
        code = inside(c, engine._launch, body)
    finally:
        os.close(out_fd)
    if code != 0:
        raise TransferError(f"could not copy {path} out of container {c.name}")


def archive_in(engine: Engine, c: Container, path: str, in_fd: int,
               no_overwrite_dir: bool = False) -> None:
    """Extract the tar read from ``in_fd`` (closed after) into the
    directory ``path`` inside ``c``, from inside the container."""
    from ..transfer import TransferError, _extract_into, _open_dir, inside
    del no_overwrite_dir

    def body() -> None:
        ns.close_fds_except({in_fd, 2})
        into = _open_dir(path, no_magic=True)
        try:
            with os.fdopen(in_fd, "rb") as inp:
                _extract_into(inp, into, None, archive=False, in_container=True)
        finally:
            os.close(into)
    try:
        code = inside(c, engine._launch, body)
    finally:
        with contextlib.suppress(OSError):
            os.close(in_fd)
    if code != 0:
        raise TransferError(f"could not extract into {path} in container {c.name}")


def pid_of(c: Container) -> int:
    return c.pid or 0


__all__ = ["ExecRecord", "ExecFds", "StartError", "archive_in", "archive_out", "exec_spawn",
           "open_log_for_attach", "record_exit", "recorded_exit", "resize_tty",
           "set_labels", "start", "stat_header"]


if __name__ == "__main__":
    import sys
    _start_main(sys.argv[1], sys.argv[2])
