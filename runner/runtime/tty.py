"""A container's output and terminal on the monitor's side.

With ``-t``: a pty whose slave becomes the container's controlling
terminal; the monitor relays its master to the user's terminal (raw mode
while attached, restored however the container ends, window size followed
on SIGWINCH), to the container's log, and to ``dockish attach`` clients on
a unix socket. Without: ``relay`` copies the container's stdout and stderr
pipes to ours and to the log."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios
import time
import tty
from collections.abc import Iterator

from .logs import LogSink

_WINSZ = struct.Struct("HHHH")
_PEERCRED = struct.Struct("3i")         # struct ucred: pid, uid, gid


def copy_winsize(src_fd: int, dst_fd: int) -> None:
    try:
        data = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * _WINSZ.size)
        fcntl.ioctl(dst_fd, termios.TIOCSWINSZ, data)
    except OSError:
        pass


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """The user's terminal in raw mode for the duration, if it is one."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        with contextlib.suppress(OSError, termios.error):   # a closed terminal: no modes
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def make_controlling(slave_fd: int) -> None:
    """In the container's first process: a new session whose terminal is
    the pty, on fds 0, 1 and 2."""
    os.setsid()
    fcntl.ioctl(slave_fd, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave_fd, fd)
    if slave_fd > 2:
        os.close(slave_fd)


def write_all(fd: int, data: bytes) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


DRAIN_SECONDS = 0.5
"""How long output is still copied once the process has ended: a stray
process that keeps writing to the pipes does not keep the command going."""


def relay(pairs: list[tuple[int, int]], copy_to: LogSink | None, ended) -> None:
    """Copy each pipe of ``pairs`` (read fd, write fd) to its fd and to
    ``copy_to`` (the log: told the stream, 1 for the first pair, 2 for the
    second) until all reach end of file; once ``ended`` (the process
    is gone) is set, whatever is still buffered is copied and the pipes are
    closed, even if a stray process keeps one open."""
    out = dict(pairs)
    stream_of = {r: i + 1 for i, (r, _w) in enumerate(pairs)}
    stop_at = None
    while out:
        if stop_at is None and ended.is_set():     # checked before select: output
            stop_at = time.monotonic() + DRAIN_SECONDS   # written just before the end counts
        try:
            ready, _, _ = select.select(list(out), [], [], 0.1)
        except InterruptedError:
            continue
        if stop_at is not None and (not ready or time.monotonic() > stop_at):
            break
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if not data:
                os.close(fd)
                del out[fd]
                continue
            if out[fd] >= 0:
                try:
                    write_all(out[fd], data)
                except OSError:
                    out[fd] = -1           # our own output is gone: the log still gets it
            if copy_to is not None:
                copy_to(stream_of[fd], data)
    for fd in out:
        os.close(fd)


def feed(src: int, dst: int, ended) -> None:
    """Copy the user's input (``src``) into the container's stdin pipe
    (``dst``) while its process runs; closes ``dst`` at end of input. Once
    ``ended`` is set nothing more is read, so what the user types after the
    command returned never reaches a process it left behind."""
    try:
        while not ended.is_set():
            try:
                ready, _, _ = select.select([src], [], [], 0.1)
            except InterruptedError:
                continue
            if not ready or ended.is_set():
                continue
            data = os.read(src, 65536)
            if not data:
                break
            write_all(dst, data)
    except OSError:
        pass                        # the user's side or the container's pipe is gone
    finally:
        with contextlib.suppress(OSError):
            os.close(dst)


def socket_path(cid: str):
    """Where a -t container's monitor listens for ``attach``
    (unix socket paths are short: under the runtime dir, which is private:
    see ``unionfs.mounts.runtime_dir``)."""
    from unionfs.mounts import runtime_dir
    return runtime_dir() / f"attach-{cid[:16]}.sock"


def listen(cid: str) -> socket.socket:
    """The monitor's ``attach`` socket: whatever has the name in the private
    runtime dir (a socket a dead monitor left) is replaced; 0600."""
    path = socket_path(cid)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(8)
    except BaseException:
        listener.close()
        raise
    return listener


def connect(cid: str) -> socket.socket:
    """A connection to the container's monitor, checked to be served by
    this user (SO_PEERCRED): keystrokes never go to another user's socket,
    even if one were planted at the name. OSError if there is none."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(str(socket_path(cid)))
        _pid, uid, _gid = _PEERCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        if uid != os.geteuid():
            raise PermissionError(errno.EPERM, f"the attach socket is served by uid {uid}, "
                                  "not you")
    except BaseException:
        sock.close()
        raise
    return sock


DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(text: str) -> bytes:
    """Docker's ``--detach-keys`` ("ctrl-p,ctrl-q", "a", "ctrl-@"); empty
    means the default, as the docker CLI sends its default then."""
    if not text.strip():
        text = DEFAULT_DETACH_KEYS
    out = b""
    for key in text.split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            c = key[5].upper()
            if not ("@" <= c <= "_"):
                raise ValueError(f"invalid detach key: {key}")
            out += bytes([ord(c) - 64])
        elif len(key) == 1:
            out += key.encode()
        else:
            raise ValueError(f"invalid detach key: {key}")
    return out


class DetachMatcher:
    """Docker's escape proxy over what the user types: bytes that may start
    the detach sequence are held back until it is complete (detach: they
    never reach the container) or broken (then they are passed on)."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(what to pass on, whether the sequence is now complete)."""
        out = b""
        for byte in data:
            b = bytes([byte])
            if self.keys and self.keys[len(self.held):len(self.held) + 1] == b:
                self.held += b
                if self.held == self.keys:
                    return out, True
            else:
                out += self.held + b
                self.held = b""
        return out, False


def attach(sock, in_fd: int | None, out_fd: int, detach_keys: bytes) -> bool:
    """The client side of ``proxy``'s listener: copy between the user's terminal and
    the socket until the container's side closes (returns False) or the
    user types ``detach_keys`` (returns True)."""
    rows, cols = 24, 80
    if in_fd is not None:
        with contextlib.suppress(OSError):
            rows, cols, _, _ = _WINSZ.unpack(
                fcntl.ioctl(in_fd, termios.TIOCGWINSZ, b"\0" * _WINSZ.size))
    sock.sendall(f"{rows} {cols}\n".encode())
    watching = [sock.fileno()] + ([in_fd] if in_fd is not None else [])
    matcher = DetachMatcher(detach_keys)
    while True:
        try:
            ready, _, _ = select.select(watching, [], [])
        except InterruptedError:
            continue
        if sock.fileno() in ready:
            data = sock.recv(65536)
            if not data:
                return False
            write_all(out_fd, data)
        if in_fd is not None and in_fd in ready:
            data = os.read(in_fd, 65536)
            if not data:
                watching.remove(in_fd)
                continue
            out, detached = matcher.feed(data)
            if out:
                sock.sendall(out)
            if detached:
                return True


class _Clients:
    """``attach`` clients of one pty: each gets the output; what they send
    goes to the pty if the container takes input. A client's first line is
    its window size ("ROWS COLS")."""

    def __init__(self, listener, master: int, accept_input: bool) -> None:
        self.listener, self.master, self.accept_input = listener, master, accept_input
        self.socks: dict = {}
        self.pending: dict[int, bytes] = {}
        listener.setblocking(False)

    def fds(self) -> list[int]:
        return [self.listener.fileno(), *self.socks]

    def drop(self, fd: int) -> None:
        self.socks.pop(fd).close()
        self.pending.pop(fd, None)

    def send(self, data: bytes) -> None:
        for fd, sock in list(self.socks.items()):
            try:
                sock.setblocking(True)
                sock.sendall(data)
            except OSError:
                self.drop(fd)

    def handle(self, ready: list[int]) -> None:
        if self.listener.fileno() in ready:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                sock, _ = self.listener.accept()
                self.socks[sock.fileno()] = sock
                self.pending[sock.fileno()] = b""
        for fd in [f for f in ready if f in self.socks]:
            try:
                data = self.socks[fd].recv(65536)
            except OSError:
                data = b""
            if not data:
                self.drop(fd)
                continue
            if fd in self.pending:              # the window size line first
                buf = self.pending[fd] + data
                if b"\n" not in buf:
                    self.pending[fd] = buf
                    continue
                line, data = buf.split(b"\n", 1)
                del self.pending[fd]
                with contextlib.suppress(ValueError, OSError):
                    rows, cols = (int(x) for x in line.split())
                    fcntl.ioctl(self.master, termios.TIOCSWINSZ, _WINSZ.pack(rows, cols, 0, 0))
            if data and self.accept_input:
                write_all(self.master, data)

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()


def proxy(master: int, in_fd: int | None, out_fd: int | None,
          copy_to: LogSink | None = None, listener=None, accept_input: bool = False,
          stop: int | None = None, detach_keys: bytes = b"") -> bool:
    """Copy between the user's side and the pty until the container's side
    is closed (read gives EIO). ``in_fd`` None: nothing is sent (no -i).
    Output also goes to ``copy_to`` (the container's log) and to the
    clients ``dockish attach`` connects through ``listener``.

    A user's terminal that goes away (hangup: EIO or end of input on a tty,
    a failed write) is dropped as Docker's client drops it: the container
    runs on, gets no ^D, and its output still reaches the log and clients.

    ``stop``: an fd that turns readable when the process has ended (exec):
    then what is buffered is copied and the relay ends, though a process
    left behind may hold the pty open.

    ``detach_keys``: typed by the user, the relay ends (True) and the
    process runs on; the keys never reach it. False otherwise."""
    def on_winch(*_):
        if in_fd is not None:
            copy_winsize(in_fd, master)
    old = signal.signal(signal.SIGWINCH, on_winch)
    clients = _Clients(listener, master, accept_input) if listener is not None else None
    matcher = DetachMatcher(detach_keys)
    try:
        if in_fd is not None:
            copy_winsize(in_fd, master)
        watching = [master] + ([in_fd] if in_fd is not None else [])
        in_tty = in_fd is not None and os.isatty(in_fd)   # a hung-up tty says no later
        stop_at = None
        while True:
            if stop_at is not None:
                if time.monotonic() > stop_at:
                    return False
                watching = [master]          # no more input once the process is gone
            try:
                ready, _, _ = select.select(
                    watching + (clients.fds() if clients else [])
                    + ([stop] if stop is not None and stop_at is None else []),
                    [], [], None if stop_at is None else 0.05)
            except InterruptedError:
                continue
            if stop is not None and stop_at is None and stop in ready:
                stop_at = time.monotonic() + DRAIN_SECONDS
                continue
            if stop_at is not None and master not in ready:
                return False
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as e:
                    if e.errno == errno.EIO:
                        return False
                    raise
                if not data:
                    return False
                if out_fd is not None:
                    try:
                        write_all(out_fd, data)
                    except OSError:
                        out_fd = None            # the terminal is gone
                if copy_to is not None:
                    copy_to(1, data)             # a terminal has one stream
                if clients is not None:
                    clients.send(data)
            if clients is not None:
                clients.handle(ready)
            if in_fd is not None and in_fd in ready:
                try:
                    data = os.read(in_fd, 65536)
                except OSError:
                    data, hung_up = b"", True
                else:
                    hung_up = not data and in_tty
                if not data:
                    watching.remove(in_fd)
                    if not hung_up:                  # EOF from the user: send ^D
                        with contextlib.suppress(OSError):
                            write_all(master, b"\x04")
                    continue
                data, detached = matcher.feed(data)
                if data:
                    write_all(master, data)
                if detached:
                    return True
    finally:
        signal.signal(signal.SIGWINCH, old)
        if clients is not None:
            clients.close()
