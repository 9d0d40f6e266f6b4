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


def proxy(master: int, in_fd: int | None, out_fd: int) -> None:
    """Copy between the user's side and the pty until the container's side
    is closed (read gives EIO). ``in_fd`` None: nothing is sent (no -i)."""
    def on_winch(*_):
        if in_fd is not None:
            copy_winsize(in_fd, master)
    old = signal.signal(signal.SIGWINCH, on_winch)
    try:
        if in_fd is not None:
            copy_winsize(in_fd, master)
        watching = [master] + ([in_fd] if in_fd is not None else [])
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
                _write_all(out_fd, data)
            if in_fd is not None and in_fd in ready:
                data = os.read(in_fd, 65536)
                if not data:
                    watching.remove(in_fd)      # EOF from the user: send ^D
                    with contextlib.suppress(OSError):
                        _write_all(master, b"\x04")
                    continue
                _write_all(master, data)
    finally:
        signal.signal(signal.SIGWINCH, old)
