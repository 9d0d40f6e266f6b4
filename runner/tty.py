"""Terminals for ``-t``: a pty whose slave becomes the container's
controlling terminal, the user's terminal in raw mode while attached (and
restored however the container ends), window size followed on SIGWINCH."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import struct
import termios
import tty
from collections.abc import Iterator

_WINSZ = struct.Struct("HHHH")


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


def _write_all(fd: int, data: bytes) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


def relay(pairs: list[tuple[int, int]], copy_to: int | None, ended) -> None:
    """Copy each pipe of ``pairs`` (read fd, write fd) to its fd and to
    ``copy_to`` until all reach end of file; once ``ended`` (the container
    is gone) is set, whatever is still buffered is copied and the pipes are
    closed, even if a stray process keeps one open."""
    out = dict(pairs)
    while out:
        try:
            ready, _, _ = select.select(list(out), [], [], 0.1)
        except InterruptedError:
            continue
        if not ready and ended.is_set():
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
                    _write_all(out[fd], data)
                except OSError:
                    out[fd] = -1           # our own output is gone: the log still gets it
            if copy_to is not None:
                with contextlib.suppress(OSError):
                    _write_all(copy_to, data)
    for fd in out:
        os.close(fd)


def proxy(master: int, in_fd: int | None, out_fd: int | None,
          copy_to: int | None = None) -> None:
    """Copy between the user's side and the pty until the container's side
    is closed (read gives EIO). ``in_fd`` None: nothing is sent (no -i).
    Output also goes to ``copy_to`` (the container's log).

    A user's terminal that goes away (hangup: EIO or end of input on a tty,
    a failed write) is dropped as Docker's client drops it: the container
    runs on, gets no ^D, and its output still reaches ``copy_to``."""
    def on_winch(*_):
        if in_fd is not None:
            copy_winsize(in_fd, master)
    old = signal.signal(signal.SIGWINCH, on_winch)
    try:
        if in_fd is not None:
            copy_winsize(in_fd, master)
        watching = [master] + ([in_fd] if in_fd is not None else [])
        in_tty = in_fd is not None and os.isatty(in_fd)   # a hung-up tty says no later
        while True:
            try:
                ready, _, _ = select.select(watching, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError as e:
                    if e.errno == errno.EIO:
                        return
                    raise
                if not data:
                    return
                if out_fd is not None:
                    try:
                        _write_all(out_fd, data)
                    except OSError:
                        out_fd = None            # the terminal is gone
                if copy_to is not None:
                    with contextlib.suppress(OSError):
                        _write_all(copy_to, data)
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
                            _write_all(master, b"\x04")
                    continue
                _write_all(master, data)
    finally:
        signal.signal(signal.SIGWINCH, old)
