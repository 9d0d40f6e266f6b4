"""Docker's stream framing and the relays between a hijacked connection
and a container's log, pipes or terminal.

Without a terminal Docker multiplexes stdout and stderr on one connection:
each frame is 8 bytes (stream 1 or 2, three zero bytes, big-endian
length) then the data. With a terminal the bytes go raw."""
from __future__ import annotations

import contextlib
import json
import os
import struct
from collections.abc import Callable

import trio

STDOUT, STDERR = 1, 2
_HEADER = struct.Struct(">BxxxL")


def frame(stream: int, data: bytes) -> bytes:
    return _HEADER.pack(stream, len(data)) + data


class LogRecords:
    """A container's log (Docker's json-file records, see ``runner.runtime.logs``)
    read from an fd we hold: a ``--rm`` container's log is still read after
    its files are gone. A record cut by the end of what is written waits.
    With ``path``, a log rotated away (``--log-opt max-size``) is followed
    to its new file once the old one is read to its end."""

    def __init__(self, fd: int, path=None) -> None:
        self.fd = fd
        self.path = path
        self.partial = b""
        self.opened: int | None = None        # the rotated-to file, ours to close

    def read(self) -> list[tuple[int, bytes]]:
        """The (stream, bytes) of the records written since the last call."""
        data = os.read(self.fd, 1 << 20)
        if not data:
            if self.path is not None and self._moved_on():
                return self.read()
            return []
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        out = []
        for line in lines:
            try:
                rec = json.loads(line)
                out.append((STDERR if rec.get("stream") == "stderr" else STDOUT,
                            rec["log"].encode("utf-8", "surrogateescape")))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue            # a damaged record (a crash mid-write)
        return out

    def _moved_on(self) -> bool:
        try:
            if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(self.fd).st_ino:
                return False
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False                       # gone (a --rm container): what we hold
        self.close()
        self.fd = self.opened = fd
        return True

    def close(self) -> None:
        """Close the file this opened itself (the first fd is the caller's)."""
        if self.opened is not None:
            os.close(self.opened)
            self.opened = None


async def pump_fd(fd: int, send, stream: int | None, done: trio.Event | None = None) -> None:
    """Copy an fd (a pipe or pty master of ours) to ``send`` until its end
    (EOF, or EIO when a pty's last slave closes), framed unless ``stream``
    is None; ``done`` (the process ended) ends it once nothing more comes
    within half a second, as the CLI's relay does."""
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            if done is not None and done.is_set():
                with trio.move_on_after(0.5):
                    await trio.lowlevel.wait_readable(fd)
                    continue
                return
            with trio.move_on_after(0.2):
                await trio.lowlevel.wait_readable(fd)
            continue
        except OSError:
            return                       # EIO: the terminal's other side is gone
        if not data:
            return
        await send(frame(stream, data) if stream is not None else data)


async def client_chunks(stream: trio.abc.Stream, first: bytes):
    """The client's bytes after the hijack (``first``, then what comes)
    until its half-close, or until it goes."""
    data = first
    while True:
        if data:
            yield data
        try:
            data = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        if not data:
            return


async def copy_in(stream: trio.abc.Stream, first: bytes, fd: int | None,
                  on_eof=None) -> None:
    """Client bytes (after the hijack) to ``fd`` (the process's stdin or
    terminal); at the client's end of input, ``fd`` is closed (its EOF) and
    ``on_eof`` called."""
    if fd is not None:
        os.set_blocking(fd, False)
    try:
        async for data in client_chunks(stream, first):
            if fd is not None and not await write_all(fd, data):
                fd = None                    # the process stopped reading
    finally:
        if on_eof is not None:
            on_eof()


def close_quiet(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None and fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


async def body_to_fd(req, fd: int) -> None:
    """The request body written to ``fd`` (a pipe's write end) as it comes."""
    os.set_blocking(fd, False)
    async for data in req.chunks():
        if not await write_all(fd, data):
            async for _ in req.chunks():        # the reader failed: it says why
                pass
            return


async def write_all(fd: int, data: bytes) -> bool:
    """``data`` written to the non-blocking ``fd``, waiting while it is full;
    False when its reader has gone (the rest is dropped)."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(fd)
            continue
        except OSError:
            return False
        view = view[n:]
    return True


async def feed_body(req, consume: Callable[[int], None]) -> BaseException | None:
    """Stream the request body through a pipe into ``consume(read_end)``,
    which runs in a worker thread and owns (closes) the read end: a tar
    upload is never held whole. Returns what ``consume`` raised, if any."""
    r, w = os.pipe2(os.O_CLOEXEC)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            consume(r)
        except BaseException as e:          # noqa: BLE001 - handed to the caller
            failure.append(e)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, run)
        try:
            await body_to_fd(req, w)
        finally:
            os.close(w)
    return failure[0] if failure else None
