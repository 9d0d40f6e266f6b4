"""Supervising a container's processes: its first process attached to the
caller's fds (``run``, ``start -a``) or under a monitor process of its own
that outlives the caller (``run -d``, ``start``); ``exec``'d processes; a
``-t`` container's terminal for ``attach``. The container's output is
relayed to the fds the caller gives and kept in its log; nothing here prints
(the engine and the CLI above decide what the user sees).
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import EXIT_DOCKISH, DockishError
from . import namespaces as ns
from . import stdinrelay
from . import tty as ttymod
from .container import Container
from .events import container_event
from .launch import Launch, StartError, Stdio
from .logs import LogWriter, open_log

Remove = Callable[[Container], None]
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)


@dataclass
class Fds:
    """Where an attached process's stdio goes (the CLI: 0, 1, 2)."""

    stdin: int = 0
    stdout: int = 1
    stderr: int = 2


def _open_log(c: Container) -> LogWriter:
    return open_log(c.log, c.legacy_log, c.config.process.get("log"))


def run_attached(c: Container, launch: Launch, interactive: bool, tty: bool, fds: Fds,
                 remove: Remove, sig_proxy: bool = True,
                 detach_keys: bytes = b"") -> int | None:
    """Run attached: the container's output is relayed to ``fds`` and kept
    in its log (a pty with -t, pipes without, as Docker does); its code.
    An fd of -1 in ``fds``: that stream is not attached (``-a``), only
    logged. ``sig_proxy`` False: signals are not passed on to the container
    (they end this process as they would any other, the container goes on).
    A ``--rm`` container is removed (by ``remove``) in every case.
    ``detach_keys`` typed at an ``-it`` container: None at once, and a
    process of its own goes on being its monitor (``_carry_on_tty``)."""
    master = None
    pipes: list[int] = []
    in_w = None
    if tty:
        master, slave = os.openpty()
        if os.isatty(fds.stdin):
            ttymod.copy_winsize(fds.stdin, slave)
        stdio = Stdio(None, fds.stdout, fds.stderr, pty_slave=slave)
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pipes = [out_r, err_r]
        in_r = None
        if interactive:                 # relayed too: never our own fd 0
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        stdio = Stdio(in_r, out_w, err_w)
    log = _open_log(c)
    try:
        launch.spawn(stdio)
        container_event(c, "start")
    except BaseException:
        os.close(log.fd)
        if c.config.auto_remove:      # a --rm container and its volumes: gone in every case
            remove(c)
        raise
    finally:
        if pipes:
            for fd in (stdio.stdin, stdio.stdout, stdio.stderr):
                if fd is not None:
                    os.close(fd)
    def let_go(signum: int, _frame) -> None:
        """--sig-proxy=false: the signal ends this client, as Docker's, and
        a process of its own goes on keeping the container's output."""
        if pipes and os.fork() == 0:
            _carry_on(c, pipes, log, remove)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
    handlers = {sig: signal.signal(sig, (lambda s, _f: launch.forward(s)) if sig_proxy
                                   else let_go) for sig in FORWARDED}
    from .health import start as start_health
    checks = start_health(c)
    relay = None
    ended = threading.Event()
    if master is not None:
        # a closed terminal detaches, as in Docker: no SIGHUP for the container
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        listener = ttymod.listen(c.id)      # a closed terminal: attach again later
        detached = False
        try:
            with ttymod.raw_mode(fds.stdin) if interactive else contextlib.nullcontext():
                detached = ttymod.proxy(master, fds.stdin if interactive else None,
                                        fds.stdout if fds.stdout >= 0 else None,
                                        copy_to=log, listener=listener,
                                        accept_input=interactive,
                                        detach_keys=detach_keys if interactive else b"")
            if detached and os.fork() == 0:
                _carry_on_tty(c, launch, master, listener, log, interactive, remove)
        finally:
            listener.close()
            if not detached:              # else the process going on serves it
                with contextlib.suppress(FileNotFoundError):
                    ttymod.socket_path(c.id).unlink()
        os.close(master)
        if detached:
            if checks is not None:
                checks.set()
            os.close(log.fd)
            for sig, h in handlers.items():
                signal.signal(sig, h)
            return None
    else:
        relay = threading.Thread(target=ttymod.relay, args=(
            [(pipes[0], fds.stdout), (pipes[1], fds.stderr)], log, ended), daemon=True)
        relay.start()
        if in_w is not None:
            threading.Thread(target=ttymod.feed, args=(fds.stdin, in_w, ended),
                             daemon=True).start()
    code = launch.wait()
    container_event(c, "die", exitCode=code)
    ended.set()
    if checks is not None:
        checks.set()
    if relay is not None:
        relay.join()
    os.close(log.fd)
    for sig, h in handlers.items():
        signal.signal(sig, h)
    if c.config.auto_remove:
        remove(c)
    return code


def _carry_on(c: Container, pipes: list[int], log: LogWriter, remove: Remove) -> None:
    """The rest of an attached run whose client was ended by a signal it
    does not pass on (``--sig-proxy=false``): in a session of its own, with
    no terminal, the container's output goes on to its log until it ends;
    then its ``die`` event, and a ``--rm`` container is removed. Exits."""
    code = 1
    try:
        _go_behind({*pipes, log.fd})
        ttymod.relay([(pipes[0], -1), (pipes[1], -1)], log, threading.Event())
        _died(c, _await_end(c), remove)
        code = 0
    finally:
        os._exit(code)


def _go_behind(keep: set[int]) -> None:
    """Make this (forked) process one that goes on after its client has
    gone: a session of its own (no hangup from the user's terminal),
    /dev/null as its stdio, only ``keep`` open, deaf to the signals the
    client passed on."""
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    ns.close_fds_except(keep)
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_IGN)


def _await_end(c: Container) -> int:
    """Until the container has ended (its holder is no child of ours: the
    state tells); the code its holder recorded."""
    while c.running:
        time.sleep(0.1)
    return (c.exit_info() or {}).get("code", 255)


def _died(c: Container, code: int, remove: Remove) -> None:
    container_event(c, "die", exitCode=code)
    if c.config.auto_remove:
        remove(c)


def _carry_on_tty(c: Container, launch: Launch, master: int, listener, log: LogWriter,
                  interactive: bool, remove: Remove) -> None:
    """The rest of an ``-it`` run the user detached from: in a session of its
    own, with no terminal, it relays the container's pty to its log and to
    ``attach`` clients (who may type, as Docker's), runs its health checks,
    and once it ends tells its ``die`` event and removes a ``--rm`` one; a
    restart policy that asks for a restart hands the container to a monitor
    of its own from there (as an attached ``run`` does at its first exit),
    since Docker's daemon restarts it whether a client was attached or not.
    Exits."""
    from . import restart
    from .health import start as start_health
    code = 1
    try:
        _go_behind({master, listener.fileno(), log.fd})
        checks = start_health(c)
        ttymod.proxy(master, None, None, copy_to=log, listener=listener,
                     accept_input=interactive)
        ended = _await_end(c)
        launch._detach_networks()    # as its wait would have
        launch.release_cgroups()
        if checks is not None:
            checks.set()
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            ttymod.socket_path(c.id).unlink()
        _died(c, ended, remove)
        if restart.should_restart(restart.current(c.path), ended, 0,
                                  restart.stop_requested(c.path)):
            start_detached(c, launch, remove, after_exit=ended)
        code = 0
    finally:
        os._exit(code)


def start_detached(c: Container, launch: Launch, remove: Remove,
                   after_exit: int | None = None) -> None:
    """Start with a monitor process of its own that outlives the caller;
    return once the container's command has been executed (a failure to
    start raises ``StartError`` with the container's code). ``after_exit``:
    the container has just exited with this code in an attached ``run``;
    the monitor takes over its restart policy from there (returns at once)."""
    import sys
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os._exit(_monitor(c, launch, w, remove, after_exit))
    os.close(w)
    data = b""
    while not data.endswith(b"\n") and (chunk := os.read(r, 4096)):
        data += chunk       # one line: the holder may keep the pipe open
    os.close(r)
    _started(data)


def _started(data: bytes) -> None:
    """The start's answer (``OK`` or ``CODE message``), as StartError if not OK."""
    data = data.strip()
    if data != b"OK":
        code, _, msg = data.decode(errors="replace").partition(" ")
        raise StartError(msg or "the container's monitor died while starting",
                         int(code) if code.isdigit() else EXIT_DOCKISH)


def start_fresh(root: Path, cid: str) -> None:
    """``start_detached`` for a long-lived, multi-threaded caller (the API
    service): a fresh interpreter (``python -m runner.runtime.monitor ROOT CID``)
    forks the monitor and exits at once. So the monitor is not the caller's
    child (nobody there would reap it, and it must outlive the caller), and
    it is not a fork of a multi-threaded process, which copies whatever
    locks the other threads held at that instant (the import lock, a
    logging or allocator lock) for the monitor and the view daemon below it
    to wait on forever. Raises StartError as ``start_detached`` does."""
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "runner.runtime.monitor", str(root), cid],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, close_fds=True, check=False)
    lines = p.stdout.strip().splitlines()
    _started(lines[-1] if lines else b"")


def _fresh_main(root: str, cid: str) -> None:
    """The fresh process of ``start_fresh``: the engine's ordinary start
    (the monitor forked from here, with the engine's removal that records
    a ``--rm`` container's code), then ``OK`` or ``CODE message`` on
    stdout, and gone."""
    from ..engine import Engine
    try:
        Engine(Path(root)).start(cid)
        out = "OK"
    except DockishError as e:
        out = f"{e.exit_code} {e}"
    except BaseException as e:      # noqa: BLE001 - told to the caller
        out = f"{EXIT_DOCKISH} {type(e).__name__}: {e}"
    os.write(1, (out.replace("\n", " ") + "\n").encode())


def _monitor(c: Container, launch: Launch, w: int, remove: Remove,
             after_exit: int | None = None) -> int:
    """The detached container's monitor (a child of the caller, in a
    session of its own): starts it, says ``OK`` (or the error) on ``w``,
    relays a terminal, runs health checks, restarts it as its restart
    policy says (``runner.runtime.restart``), removes a ``--rm`` container."""
    from . import restart
    listener = None
    try:
        os.setsid()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        log = _open_log(c)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        ns.close_fds_except({w, log.fd})    # a `flock 9` or CI fd is not held for days
        me = os.getpid()
        c.write_state(monitor_pid=me, monitor_start=ns.proc_start_time(me), restarting=False,
                      restart_count=0)
        if c.config.tty:
            listener = ttymod.listen(c.id)       # ready before `run -d` returns
        if after_exit is None:
            began = time.monotonic()
            try:
                ended = _start_once(c, launch, log, listener)
            except StartError as e:
                os.write(w, f"{e.code} {e}\n".encode())
                os.close(w)
                if c.config.auto_remove:
                    remove(c)
                return 0
            os.write(w, b"OK\n")
            os.close(w)
            code, ran_for = ended(), time.monotonic() - began
        else:
            os.write(w, b"OK\n")
            os.close(w)
            code, ran_for = after_exit, restart.RESET_AFTER
        restarts, delay = 0, 0.0
        while restart.should_restart(restart.current(c.path), code, restarts,
                                     restart.stop_requested(c.path)):
            restarts += 1
            delay = restart.next_delay(delay, ran_for)
            c.write_state(restarting=True, restart_count=restarts)
            if not _wait_unless_stopped(c, delay):
                break
            with contextlib.suppress(DockishError):   # `update`'s limits apply to the restart
                c.config = Container(c.path).config
            began = time.monotonic()
            try:
                ended = _start_once(c, launch, log, listener)
            except StartError as e:      # as an exit with its code: the policy decides
                c.write_exit(e.code)
                code, ran_for = e.code, 0.0
                continue
            finally:
                c.write_state(restarting=False)
            code, ran_for = ended(), time.monotonic() - began
        c.write_state(restarting=False)
        if c.config.auto_remove:
            remove(c)
        return 0
    except BaseException:        # noqa: BLE001 - nobody to tell; the state says
        return 1
    finally:
        if listener is not None:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                ttymod.socket_path(c.id).unlink()


def _wait_unless_stopped(c: Container, seconds: float) -> bool:
    """Sleep before a restart; False as soon as a ``stop`` asks for none."""
    from .restart import stop_requested
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop_requested(c.path):
            return False
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
    return not stop_requested(c.path)


def _start_once(c: Container, launch: Launch, log: LogWriter,
                listener) -> Callable[[], int]:
    """Start the container's command once (its output to the log, a pty
    served to ``attach`` through ``listener``); raises ``StartError``.
    Returns what waits for this run to end and gives its code."""
    master = None
    pipes: list[int] = []
    if c.config.tty:
        master, slave = os.openpty()
        stdio = Stdio(None, 0, 0, pty_slave=slave)
    else:                 # pipes, so the log knows stdout from stderr
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pipes = [out_r, err_r]
        stdio = Stdio(stdinrelay.serve(c) if c.config.interactive else None,  # run -i
                      out_w, err_w)
    try:
        try:
            launch.spawn(stdio)
        finally:
            if pipes:
                os.close(stdio.stdout)
                os.close(stdio.stderr)
                if stdio.stdin is not None:
                    os.close(stdio.stdin)
    except BaseException:
        for fd in pipes + ([master] if master is not None else []):
            os.close(fd)
        raise
    container_event(c, "start")

    def ended() -> int:
        from .health import start as start_health
        checks = start_health(c)
        done = threading.Event()
        relay = None
        if pipes:
            relay = threading.Thread(target=ttymod.relay, args=(
                [(pipes[0], -1), (pipes[1], -1)], log, done), daemon=True)
            relay.start()
        if master is not None and listener is not None:
            ttymod.proxy(master, None, None, log, listener, c.config.interactive)
            os.close(master)
        code = launch.wait()
        stdinrelay.stop(c)
        container_event(c, "die", exitCode=code)
        done.set()
        if relay is not None:
            relay.join()
        if checks is not None:
            checks.set()
        return code
    return ended


@dataclass
class ExecPipes:
    """An exec'd process's stdio as we hold it: a pty master, or pipes."""

    master: int | None = None
    out_r: int | None = None
    err_r: int | None = None
    in_w: int | None = None


def exec_stdio(interactive: bool, tty: bool, detach: bool,
               fds: Fds) -> tuple[Stdio, ExecPipes, list[int]]:
    """The process never gets the caller's own fds (a terminal is
    read-write: a process left behind would read what the user types next):
    a pty with -t, else pipes relayed until the process ends. Returns its
    Stdio, our ends, and its ends (closed once it runs)."""
    if tty:
        master, slave = os.openpty()
        if os.isatty(fds.stdin):
            ttymod.copy_winsize(fds.stdin, slave)
        return Stdio(None, fds.stdout, fds.stderr, pty_slave=slave), ExecPipes(master), []
    if detach:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return Stdio(None, null, null), ExecPipes(), [null]
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    in_r = in_w = None
    if interactive:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
    ours = [fd for fd in (in_r, out_w, err_w) if fd is not None]
    return Stdio(in_r, out_w, err_w), ExecPipes(None, out_r, err_r, in_w), ours


def relay_exec(holder: int, pipes: ExecPipes, interactive: bool, fds: Fds,
               detach_keys: bytes = b"") -> int | None:
    """Relay an exec'd process's stdio until it exits (as ``docker exec``
    returns when its process does, whatever it left running); its code, or
    None when the user typed ``detach_keys`` (``-it`` only, as Docker's):
    the process runs on, its terminal held by ``_keep_pty``."""
    from .launch import wait_pid
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, lambda s, _f: kill_quiet(holder, s))
    code: list[int] = []
    if pipes.master is not None:
        stop_r, stop_w = os.pipe2(os.O_CLOEXEC)

        def reap() -> None:
            code.append(wait_pid(holder))
            os.close(stop_w)
        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)     # a closed terminal detaches
        with ttymod.raw_mode(fds.stdin) if interactive else contextlib.nullcontext():
            detached = ttymod.proxy(pipes.master, fds.stdin if interactive else None,
                                    fds.stdout, stop=stop_r,
                                    detach_keys=detach_keys if interactive else b"")
        if detached:
            _keep_pty(pipes.master)
            os.close(pipes.master)
            return None
        waiter.join()
        os.close(stop_r)
        os.close(pipes.master)
        return code[0]
    ended = threading.Event()
    relay = threading.Thread(target=ttymod.relay, args=(
        [(pipes.out_r, fds.stdout), (pipes.err_r, fds.stderr)], None, ended), daemon=True)
    relay.start()
    if pipes.in_w is not None:
        threading.Thread(target=ttymod.feed, args=(fds.stdin, pipes.in_w, ended),
                         daemon=True).start()
    result = wait_pid(holder)
    ended.set()
    relay.join()
    return result


def _keep_pty(master: int) -> None:
    """After a detach from ``exec -it``: a process of its own session keeps
    the pty's master open (closed, the process would get SIGHUP) and drops
    its output, as Docker's daemon does with nobody attached, until every
    process on the terminal has closed it."""
    if os.fork() != 0:
        return
    try:
        _go_behind({master})
        with contextlib.suppress(OSError):       # EIO: the last slave fd is closed
            while os.read(master, 65536):
                pass
    finally:
        os._exit(0)


def attach_terminal(c: Container, stdin: bool, keys: bytes, fds: Fds) -> bool:
    """Through a ``-t`` container's monitor socket, in raw mode; True when
    the user detached with ``keys``."""
    from unionfs.private import PrivateDirError
    try:
        sock = ttymod.connect(c.id)
    except PrivateDirError as e:
        raise DockishError(str(e)) from None
    except PermissionError as e:
        raise DockishError(f"container {c.id}: {e.strerror}") from None
    except OSError:
        raise DockishError(f"container {c.id} has no terminal to attach to") from None
    in_fd = fds.stdin if stdin else None
    with sock, ttymod.raw_mode(fds.stdin) if in_fd is not None else contextlib.nullcontext():
        return ttymod.attach(sock, in_fd, fds.stdout, keys)


def kill_quiet(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


if __name__ == "__main__":       # start_fresh's process (the module proper does the work)
    import sys as _sys

    from runner.runtime.monitor import _fresh_main as _main
    _main(_sys.argv[1], _sys.argv[2])
