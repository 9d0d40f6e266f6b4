"""Standard input of a detached ``-i`` container without a terminal
(``docker run -i``, docker-py's attach with stdin through the API): its
monitor holds a pipe to the container's stdin and serves it on the
container's attach socket (``runner.runtime.tty.listen``: private runtime dir,
0600, the peer's uid checked by ``tty.connect``). A client sends one line,
``once`` or ``keep``, then the bytes; its half-close ends the container's
stdin when it said ``once`` (Docker's StdinOnce), else the pipe stays open
for the next attach."""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable

from . import tty as ttymod
from .container import Container

_serving: dict[str, Callable[[], None]] = {}     # container ID -> its stop


def serve(c: Container) -> int:
    """The read end for the container's stdin (the caller closes it once
    the process has it); ``stop(c)`` when the container has ended. Our
    write end stays open until a ``once`` client half-closes, so the
    process waits for input, not EOF."""
    r, w = os.pipe2(os.O_CLOEXEC)
    listener = ttymod.listen(c.id)
    state = {"w": w}
    lock = threading.Lock()

    def close_input() -> None:
        with lock:
            if state["w"] is not None:
                with contextlib.suppress(OSError):
                    os.close(state["w"])
                state["w"] = None

    def client(conn: socket.socket) -> None:
        with conn:
            mode, data = _first_line(conn)
            if mode not in (b"once", b"keep"):
                return
            while True:
                if data:
                    with lock:
                        fd = state["w"]
                        if fd is None:
                            return
                        try:
                            _write_all(fd, data)
                        except OSError:         # the container closed its stdin
                            return
                try:
                    data = conn.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    break
            if mode == b"once":
                close_input()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=client, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()

    def stop_serving() -> None:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            ttymod.socket_path(c.id).unlink()
        close_input()
    _serving[c.id] = stop_serving
    return r


def stop(c: Container) -> None:
    """Stop serving ``c``'s stdin (nothing if it had none)."""
    done = _serving.pop(c.id, None)
    if done is not None:
        done()


def _first_line(conn: socket.socket) -> tuple[bytes, bytes]:
    """(the client's mode, the bytes it sent after that line)."""
    buf = b""
    while b"\n" not in buf and len(buf) < 64:
        chunk = conn.recv(4096)
        if not chunk:
            return b"", b""
        buf += chunk
    mode, _, rest = buf.partition(b"\n")
    return mode.strip(), rest


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def connect(c: Container, once: bool) -> socket.socket:
    """A connection to ``c``'s stdin (OSError if it serves none); say
    whether a half-close ends it."""
    sock = ttymod.connect(c.id)
    sock.sendall(b"once\n" if once else b"keep\n")
    return sock


def feed_from(c: Container, fd: int) -> None:
    """``attach`` of a ``-i`` container: what ``fd`` gives (the caller's
    stdin) goes to the container's stdin from a daemon thread; the
    container's stdin stays open after (no StdinOnce), as Docker's attach."""
    def run() -> None:
        try:
            sock = connect(c, once=False)
        except OSError:
            return
        with sock:
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                try:
                    sock.sendall(data)
                except OSError:
                    return
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
                sock.recv(1)                     # the monitor has taken it all
    threading.Thread(target=run, daemon=True).start()


__all__ = ["connect", "feed_from", "serve", "stop"]
