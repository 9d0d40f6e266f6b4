"""What the API needs from the container runtime that ``Engine`` does not
offer yet (each is small and calls the runtime's own modules; they can move
into the engine):

- ``start``: a start from a long-lived, multi-threaded server. The monitor
  must not be the server's child (nobody would reap it, and it must outlive
  the server), so a fresh process starts it and exits at once; a
  ``--rm`` container's code is written to the service's private exit
  records before its files go, so ``wait?condition=removed`` can answer;
- the service's exit records of ``--rm`` containers (``wait`` after they went).
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from pathlib import Path

from ..container import Container
from ..engine import Engine
from ..errors import EXIT_DOCKISH, DockishError
from ..launch import StartError


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


def open_log_for_attach(c: Container) -> int:
    """The container's log opened before it starts (made if missing, as its
    monitor would make it): a ``--rm`` container's output stays readable
    through this fd after its files are gone."""
    return os.open(c.log, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


# -- archive -------------------------------------------------------------------------------------

def stat_header(st: dict) -> str:
    return base64.b64encode(json.dumps(st).encode()).decode()


__all__ = ["StartError", "open_log_for_attach", "record_exit", "recorded_exit", "start",
           "stat_header"]


if __name__ == "__main__":
    import sys
    _start_main(sys.argv[1], sys.argv[2])
