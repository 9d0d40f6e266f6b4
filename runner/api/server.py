"""The Docker Engine API over HTTP/1.1 on a unix socket: h11 (a maintained
HTTP/1.1 state machine, no I/O of its own) driven by trio.

h11 fits because ``attach`` and ``exec start`` take the raw connection over
after ``101 UPGRADED``: h11 hands back what it had buffered
(``trailing_data``) and the trio stream goes on as a plain byte stream.
Every request runs in its own task; blocking engine calls go to worker
threads (``blocking``), so a slow pull never holds up a ``/_ping``.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import h11
import trio

from .errors import ApiError, from_exception

API_VERSION = "1.50"            # what docker 28.x speaks
MIN_API_VERSION = "1.24"        # the oldest docker-py 7 and the 28.x CLI negotiate down to
MAX_BODY = 64 << 20             # a JSON body read whole (tars stream, never whole)
_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")

# worker threads for blocking engine calls: enough that 20 clients' starts
# and removals proceed together, bounded so a flood cannot make thousands
_LIMITER: trio.CapacityLimiter | None = None


async def blocking(fn: Callable, *args):
    """``fn(*args)`` in a worker thread (engine calls block on disk, forks
    and registries); cancellation abandons the thread's result."""
    global _LIMITER
    if _LIMITER is None:
        _LIMITER = trio.CapacityLimiter(64)
    return await trio.to_thread.run_sync(fn, *args, limiter=_LIMITER)


def version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


HEAD_ALONE = 0.05     # seconds between a hijack's head and its first stream bytes


@dataclass
class Request:
    """One request as a handler sees it: the path without its ``/vX.Y``
    prefix, the query's values, lower-case headers; the body is read on
    demand (``json``, ``chunks``)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    api_version: str
    conn: Connection
    params: dict[str, str] = field(default_factory=dict)     # from the route's pattern

    def arg(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """Docker's boolean query values: 1/true/True; 0/false/'' are false."""
        values = self.query.get(name)
        if not values:
            return default
        return values[-1].lower() in ("1", "true", "yes")

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        text = self.arg(name)
        if text == "":
            return default
        try:
            return int(text)
        except ValueError:
            raise ApiError(400, f"invalid value for {name}: {text!r}") from None

    def json_arg(self, name: str) -> dict:
        """A JSON-encoded query value (``filters``): {} when absent."""
        text = self.arg(name)
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            raise ApiError(400, f"invalid {name} JSON: {text!r}") from None
        if not isinstance(value, dict):
            raise ApiError(400, f"invalid {name}: not an object")
        return value

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (a tar: never held whole)."""
        async for data in self.conn.body():
            yield data

    async def body(self, limit: int = MAX_BODY) -> bytes:
        out = bytearray()
        async for data in self.conn.body():
            out += data
            if len(out) > limit:
                raise ApiError(413, "request body too large")
        return bytes(out)

    async def json(self) -> dict:
        data = await self.body()
        if not data.strip():
            return {}
        try:
            value = json.loads(data)
        except ValueError as e:
            raise ApiError(400, f"invalid JSON body: {e}") from None
        if not isinstance(value, dict):
            raise ApiError(400, "invalid JSON body: not an object")
        return value

    @property
    def upgrade(self) -> bool:
        return "upgrade" in self.headers.get("connection", "").lower()


Handler = Callable[[Request], Awaitable[object]]


class Reply:
    """A complete answer: status, body, content type."""

    def __init__(self, status: int = 200, body: bytes | str | object = b"",
                 content_type: str = "application/json",
                 headers: list[tuple[str, str]] | None = None) -> None:
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes | bytearray):
            body = json.dumps(body).encode() + b"\n"
        self.status, self.body, self.content_type = status, bytes(body), content_type
        self.headers = headers or []


NO_CONTENT = Reply(204, b"", "text/plain")


class Connection:
    """One client connection: an h11 state machine over a trio stream, plus
    the raw stream once hijacked."""

    def __init__(self, stream: trio.abc.Stream, server: Server) -> None:
        self.stream = stream
        self.server = server
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
        self.answered = False       # a response has started
        self.hijacked = False

    # -- reading --------------------------------------------------------------------------------

    async def _next_event(self):
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                data = await self.stream.receive_some(65536)
                self.h11.receive_data(data)
                continue
            return event

    async def body(self) -> AsyncIterator[bytes]:
        while self.h11.their_state is h11.SEND_BODY:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise ApiError(400, "the client closed the connection mid-body")

    # -- answering ------------------------------------------------------------------------------

    def _common_headers(self) -> list[tuple[str, str]]:
        return [("Api-Version", API_VERSION), ("Docker-Experimental", "false"),
                ("Ostype", "linux"), ("Server", f"dockish/{self.server.version} (linux)")]

    async def _send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            await self.stream.send_all(data)

    async def reply(self, r: Reply, head_only: bool = False) -> None:
        self.answered = True
        headers = self._common_headers() + r.headers + [
            ("Content-Type", r.content_type), ("Content-Length", str(len(r.body)))]
        await self._send(h11.Response(status_code=r.status, headers=headers))
        if r.body and not head_only:
            await self._send(h11.Data(data=r.body))
        await self._send(h11.EndOfMessage())

    async def start_stream(self, content_type: str = "application/json", status: int = 200,
                           headers: list[tuple[str, str]] | None = None) -> None:
        """Headers now (clients wait for them: ``wait`` is sent before a
        start), the body in chunks by ``write``, ``end`` to finish."""
        self.answered = True
        await self._send(h11.Response(status_code=status, headers=self._common_headers()
                                      + (headers or []) + [("Content-Type", content_type)]))

    async def write(self, data: bytes) -> None:
        if data:
            await self._send(h11.Data(data=data))

    async def write_json(self, obj: object) -> None:
        await self.write(json.dumps(obj).encode() + b"\n")

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())

    async def hijack(self, request: Request,
                     content_type: str = "application/vnd.docker.raw-stream"):
        """Take the connection over for a raw stream (attach, exec start):
        ``101 UPGRADED`` when the client asked for ``Upgrade: tcp``, else
        Docker's old ``200`` with no framing. Returns (stream, bytes the
        client already sent past the request)."""
        async for _ in request.chunks():        # the request's own body (exec start's JSON)
            pass
        self.answered = self.hijacked = True
        if request.upgrade and self.h11.their_state is h11.MIGHT_SWITCH_PROTOCOL:
            await self._send(h11.InformationalResponse(
                status_code=101, reason=b"UPGRADED",
                headers=[("Content-Type", content_type), ("Connection", "Upgrade"),
                         ("Upgrade", "tcp")] + self._common_headers()))
            extra = self.h11.trailing_data[0]
        else:
            head = "HTTP/1.1 200 OK\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in self._common_headers()) + \
                f"Content-Type: {content_type}\r\n\r\n"
            await self.stream.send_all(head.encode())
            extra = b""
        # docker-py parses the response head through a buffered reader, then
        # reads the raw socket: stream bytes that reach it in the same read
        # as the head are lost to it (an exec whose output is already waiting
        # came back empty, one time in five). Docker's daemon starts the
        # process only after this head; we start it before (to answer a
        # command that cannot run with an HTTP error), so the head goes alone
        await trio.sleep(HEAD_ALONE)
        return self.stream, bytes(extra)

    # -- the request loop -----------------------------------------------------------------------

    async def serve(self) -> None:
        while True:
            try:
                event = await self._next_event()
            except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError,
                    ConnectionError):
                return
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
            if not isinstance(event, h11.Request):
                return
            self.answered = False
            with self.server.active():
                await self._dispatch(event)
            if self.hijacked:
                return
            # a body the handler did not read (a 4xx before it) is drained first
            try:
                while self.h11.their_state is h11.SEND_BODY:
                    await self._next_event()
                if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                    self.h11.start_next_cycle()
                else:
                    return
            except (h11.ProtocolError, trio.BrokenResourceError, ConnectionError):
                return

    async def _dispatch(self, event: h11.Request) -> None:
        target = event.target.decode("latin-1")
        parts = urlsplit(target)
        path = unquote(parts.path)
        version = API_VERSION
        m = _VERSIONED.match(path)
        if m:
            version, path = m.group(1), m.group(2)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        req = Request(event.method.decode("ascii", "replace").upper(), path,
                      parse_qs(parts.query, keep_blank_values=True), headers, version, self)
        if self.server.debug:
            self.server.log(f"{req.method} {target}")
        try:
            if version_tuple(version) < version_tuple(MIN_API_VERSION):
                raise ApiError(400, f"client version {version} is too old. Minimum supported "
                               f"API version is {MIN_API_VERSION}, please upgrade your client "
                               "to a newer version")
            handler = self.server.routes.find(req)
            result = await handler(req)
            if not self.answered:
                await self.reply(result if isinstance(result, Reply) else Reply(200, result),
                                 head_only=req.method == "HEAD")
            elif not self.hijacked and self.h11.our_state is h11.SEND_BODY:
                await self.end()
        except (trio.BrokenResourceError, trio.ClosedResourceError, BrokenPipeError,
                ConnectionResetError):
            self.hijacked = True            # the client went: nothing more on this connection
        except Exception as e:          # noqa: BLE001 - every failure becomes Docker's JSON error
            err = e if isinstance(e, ApiError) else from_exception(e)
            if err.status >= 500 and not isinstance(e, ApiError):
                self.server.log(f"{req.method} {req.path}: {type(e).__name__}: {e}")
            if self.hijacked:
                return
            if self.answered:           # a stream already started: Docker's error line
                with contextlib.suppress(Exception):
                    if self.h11.our_state is h11.SEND_BODY:
                        await self.write_json({"errorDetail": {"message": err.message},
                                               "error": err.message})
                        await self.end()
                return
            with contextlib.suppress(Exception):
                await self.reply(Reply(err.status, {"message": err.message}),
                                 head_only=req.method == "HEAD")


class Routes:
    """(method, path pattern) -> handler; ``{name}`` matches one segment,
    ``{name:path}`` the rest (image names have slashes)."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern, Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        rx = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", pattern)
        rx = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", rx)
        self._routes.append((method, re.compile(f"^{rx}$"), handler))

    def find(self, req: Request) -> Handler:
        methods = []
        for method, rx, handler in self._routes:
            m = rx.match(req.path)
            if not m:
                continue
            if method == req.method or (method == "GET" and req.method == "HEAD"
                                        and not any(mm == "HEAD" and r.match(req.path)
                                                    for mm, r, _ in self._routes)):
                req.params = m.groupdict()
                return handler
            methods.append(method)
        if methods:
            raise ApiError(405, f"method {req.method} not allowed for {req.path}")
        raise ApiError(404, f"page not found: {req.method} {req.path} is not served by "
                       "dockish")


class Server:
    """The listening socket, the routes, and the idle clock."""

    def __init__(self, routes: Routes, idle: float, version: str,
                 log: Callable[[str], None]) -> None:
        self.routes = routes
        self.idle = idle
        self.version = version
        self.log = log
        self._busy = 0
        self._last = time.monotonic()
        from ..loglevel import debugging
        self.debug = bool(os.environ.get("DOCKISH_API_DEBUG")) or debugging()    # or -D

    @contextlib.contextmanager
    def active(self):
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1
            self._last = time.monotonic()

    async def _handle(self, stream: trio.SocketStream) -> None:
        conn = Connection(stream, self)
        self._busy += 1             # an open connection (a follow, an attach) is not idle
        try:
            with self.active():
                pass
            await conn.serve()
        finally:
            self._busy -= 1
            self._last = time.monotonic()
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def _idle_watch(self, cancel: trio.CancelScope) -> None:
        while True:
            await trio.sleep(min(1.0, max(self.idle / 4, 0.05)))
            if self._busy == 0 and time.monotonic() - self._last >= self.idle:
                cancel.cancel()
                return

    async def serve(self, sock: socket.socket, path: Path,
                    ready: Callable[[], None] | None = None) -> None:
        """Serve on ``sock`` (``listen_unix(path)``), removing it at the end."""
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        try:
            async with trio.open_nursery() as nursery:
                if self.idle > 0:
                    nursery.start_soon(self._idle_watch, nursery.cancel_scope)
                await nursery.start(trio.serve_listeners, self._handle, [listener])
                if ready is not None:
                    ready()
        finally:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(path)
                if stat.S_ISSOCK(st.st_mode) and st.st_uid == os.geteuid():
                    os.unlink(path)


def listen_unix(path: Path) -> socket.socket:
    """A listening socket at ``path``, 0600 from the start (bound under
    umask 077: no moment where another user could connect). A socket file
    left by a dead service is replaced; anything else there is refused."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != os.geteuid():
            raise ApiError(500, f"{path} exists and is not a socket of yours: remove it or "
                           "name another path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            probe.connect(str(path))
        except OSError:
            os.unlink(path)               # nobody listens: a dead service's
        else:
            raise ApiError(500, f"another service already listens on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o077)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old)
    return sock
