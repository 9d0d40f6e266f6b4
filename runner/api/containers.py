"""``/containers/...`` and ``/exec/...``: Docker's container endpoints over
the engine."""
from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import threading
import time

import trio

from ..engine import CreateOptions, Engine, ExecOptions, inspect_container
from ..errors import DockishError, NotFoundError, UsageError
from ..runtime import config as cfgmod
from ..runtime import tty as ttymod
from ..runtime.container import Container
from ..runtime.execs import close_pipes
from ..runtime.launch import StartError
from .errors import ApiError, not_found
from .networks import check_networks, create_fields, extra_endpoints, legacy_aliases
from .server import NO_CONTENT, Reply, Request, Routes, blocking
from .streams import (
    STDERR,
    STDOUT,
    LogRecords,
    client_chunks,
    close_quiet,
    copy_in,
    feed_body,
    frame,
    pump_fd,
)

UPDATE_FIELDS = ("PidsLimit", "Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpuPeriod",
                 "CpuQuota")       # what update applies (runner.runtime.update)
_create_lock = threading.Lock()     # names are checked then taken: one create at a time


def _stat_header(st: dict) -> str:
    """Docker's ``X-Docker-Container-Path-Stat``: the stat record as base64 JSON."""
    return base64.b64encode(json.dumps(st).encode()).decode()


def _go_time(t: float | None) -> str:
    if not t:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        f".{int((t % 1) * 1e9):09d}Z"


def _is_default(value) -> bool:
    return value in (None, "", 0, False, [], {}) or value == {"Type": "", "Config": {}}


class ContainerApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

        self.stdin_once: set[str] = set()       # created with StdinOnce (docker run -i)

    def register(self, r: Routes) -> None:
        a = r.add
        a("POST", "/containers/create", self.create)
        a("GET", "/containers/json", self.list)
        a("POST", "/containers/prune", self.prune)
        a("GET", "/containers/{id}/json", self.inspect)
        a("POST", "/containers/{id}/start", self.start)
        a("POST", "/containers/{id}/stop", self.stop)
        a("POST", "/containers/{id}/restart", self.restart)
        a("POST", "/containers/{id}/kill", self.kill)
        a("POST", "/containers/{id}/pause", self.pause)
        a("POST", "/containers/{id}/unpause", self.unpause)
        a("POST", "/containers/{id}/wait", self.wait)
        a("DELETE", "/containers/{id}", self.delete)
        a("GET", "/containers/{id}/logs", self.logs)
        a("POST", "/containers/{id}/attach", self.attach)
        a("POST", "/containers/{id}/resize", self.resize)
        a("POST", "/containers/{id}/rename", self.rename)
        a("GET", "/containers/{id}/top", self.top)
        a("GET", "/containers/{id}/changes", self.changes)
        a("GET", "/containers/{id}/export", self.export)
        a("GET", "/containers/{id}/archive", self.archive_get)
        a("HEAD", "/containers/{id}/archive", self.archive_head)
        a("PUT", "/containers/{id}/archive", self.archive_put)
        a("POST", "/containers/{id}/update", self.update)
        a("GET", "/containers/{id}/stats", self.stats)
        a("POST", "/containers/{id}/exec", self.exec_create)
        a("POST", "/exec/{id}/start", self.exec_start)
        a("POST", "/exec/{id}/resize", self.exec_resize)
        a("GET", "/exec/{id}/json", self.exec_inspect)

    async def _get(self, ref: str) -> Container:
        try:
            return await blocking(self.engine.get, ref)
        except DockishError as e:
            if "no such container" in str(e).lower():
                raise not_found("container", ref) from None
            raise

    # -- create --------------------------------------------------------------------------------

    async def create(self, req: Request):
        body = await req.json()
        opts, labels = create_options(body, req.arg("name"))
        opts.labels = dict(labels)          # the image's labels go under them
        if req.arg("platform") and not req.arg("platform").startswith("linux/"):
            raise ApiError(400, f"platform {req.arg('platform')} is not supported")
        opts.platform = req.arg("platform") or None

        def make():
            with _create_lock:
                check_networks(self.engine, body, opts.network)
                try:
                    c = self.engine.create(opts)
                except UsageError as e:
                    # a bad parameter (a --volumes-from or --pid container that
                    # is not there too: a 404 would make the CLI pull the image)
                    raise ApiError(400, str(e)) from None
                except NotFoundError as e:
                    if "unable to find image" in str(e).lower():
                        raise ApiError(404, f"No such image: {_full_ref(opts.image)}") from None
                    raise
                try:
                    for net, aliases, ip in extra_endpoints(body, opts.network):
                        self.engine.network_connect(net, c.id, aliases, ip)
                except BaseException:
                    self.engine.remove(c.id, force=True)
                    raise
                return c
        c = await blocking(make)
        if body.get("StdinOnce") and body.get("OpenStdin"):
            self.stdin_once.add(c.id)
        from ..runtime.procopts import limits_note
        note = limits_note(opts.process)        # the docker CLI prints it as WARNING: ...
        return Reply(201, {"Id": c.id,
                           "Warnings": [note.removeprefix("WARNING: ")] if note else []})

    # -- records -------------------------------------------------------------------------------

    async def list(self, req: Request):
        from ..filters import from_api
        filters = from_api(req.json_arg("filters"))
        return await blocking(self.engine.container_summaries, filters, req.flag("all"),
                              req.int_arg("limit", -1) or -1, req.flag("size"))

    async def inspect(self, req: Request):
        c = await self._get(req.params["id"])
        data = await blocking(self._inspect, c)
        legacy_aliases(data["NetworkSettings"], req.api_version, c.id)
        if req.flag("size"):                     # docker inspect -s
            data["SizeRw"], data["SizeRootFs"] = await blocking(self.engine.container_sizes, c)
        return data

    def _inspect(self, c: Container) -> dict:
        data = inspect_container(c, self.engine.volume_store)
        cfg = c.config
        status, code = c.status()
        data["Name"] = "/" + cfg.name
        data["State"]["Status"] = "paused" if c.paused else status
        data["State"]["Error"] = ""
        data["State"]["StartedAt"] = _go_time(c.state().get("started"))
        data["State"]["FinishedAt"] = _go_time(c.finished_at())
        data["Created"] = _go_time(cfg.created)
        data["Driver"] = "dockish"
        data["Platform"] = "linux"
        data["ImageName"] = cfg.image
        hc = data["HostConfig"]
        hc["Binds"] = [f"{m['source']}:{m['target']}" + (":ro" if m["readonly"] else "")
                       for m in cfg.mounts if m["kind"] in ("bind", "volume")
                       and m["target"] != cfg.init_path] or None
        conf = data["Config"]
        conf["ExposedPorts"] = {f"{cp}/{proto}": {} for _ip, _hp, cp, proto in cfg.ports} \
            or None
        conf["AttachStdin"] = False
        conf["AttachStdout"] = not cfg.tty
        conf["AttachStderr"] = not cfg.tty
        conf["StdinOnce"] = False
        conf["Labels"] = cfg.labels or {}
        if cfg.healthcheck:
            conf["Healthcheck"] = cfg.healthcheck
        net = data["NetworkSettings"]
        net["Ports"] = net.get("Ports") or {}
        for key in conf.get("ExposedPorts") or {}:
            net["Ports"].setdefault(key, None)
        return data

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, req: Request):
        c = await self._get(req.params["id"])
        if c.running:
            return Reply(304, b"", "text/plain")
        try:
            await blocking(self.engine.start, c)
        except StartError as e:
            raise ApiError(400 if e.exit_code in (126, 127) else 500, _start_message(e)) \
                from None
        return NO_CONTENT

    async def stop(self, req: Request):
        c = await self._get(req.params["id"])
        if not c.running:
            return Reply(304, b"", "text/plain")
        await blocking(self.engine.stop, c, _stop_timeout(req))
        return NO_CONTENT

    async def restart(self, req: Request):
        c = await self._get(req.params["id"])
        await blocking(self.engine.stop, c, _stop_timeout(req))
        try:
            await blocking(self.engine.start, c)
        except StartError as e:
            raise ApiError(500, _start_message(e)) from None
        return NO_CONTENT

    async def kill(self, req: Request):
        c = await self._get(req.params["id"])
        sig = req.arg("signal", "KILL") or "KILL"
        try:
            cfgmod.parse_signal(sig)
        except (DockishError, ValueError):
            raise ApiError(400, f"invalid signal: {sig}") from None
        await blocking(self.engine.kill, c.id, sig)
        return NO_CONTENT

    async def pause(self, req: Request):
        c = await self._get(req.params["id"])
        await blocking(self.engine.pause, c.id)
        return NO_CONTENT

    async def unpause(self, req: Request):
        c = await self._get(req.params["id"])
        await blocking(self.engine.unpause, c.id)
        return NO_CONTENT

    async def wait(self, req: Request):
        """Headers at once (the CLI sends ``wait`` before ``start`` and reads
        the answer later), the code when the condition is met: the engine's
        wait, polled here so a client that goes away ends it."""
        c = await self._get(req.params["id"])
        waiter = self.engine.waiter(c, req.arg("condition", "not-running") or "not-running")
        await req.conn.start_stream()
        while (code := waiter.poll()) is None:   # a few small reads: no thread
            await trio.sleep(0.02)
        await req.conn.write_json({"StatusCode": code, "Error": None})
        await req.conn.end()

    async def delete(self, req: Request):
        c = await self._get(req.params["id"])
        if req.flag("link"):
            raise ApiError(400, "links are not supported by dockish")
        await blocking(self.engine.remove, c.id, req.flag("force"), req.flag("v"))
        return NO_CONTENT

    async def prune(self, req: Request):
        from ..filters import from_api
        filters = from_api(req.json_arg("filters"))
        report = await blocking(self.engine.container_prune, filters)
        return {"ContainersDeleted": report.deleted or None, "SpaceReclaimed": report.freed}

    async def rename(self, req: Request):
        c = await self._get(req.params["id"])
        name = req.arg("name")
        if not name:
            raise ApiError(400, "rename needs a name")

        def do():
            with _create_lock:
                self.engine.rename(c.id, name)
        await blocking(do)
        return NO_CONTENT

    async def update(self, req: Request):
        """Docker's container update: the limits dockish applies (HostConfig
        names) and RestartPolicy; any other field set is a 400 naming it.
        The engine's warnings (nothing delegated) in ``Warnings``."""
        body = await req.json()
        policy = body.get("RestartPolicy")
        if isinstance(policy, dict) and not policy.get("Name"):
            policy = None                       # the docker CLI's "unchanged"
        limits = {}
        for key in UPDATE_FIELDS:
            value = body.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ApiError(400, f"{key} must be an integer")
            limits[key] = value if key == "PidsLimit" else (value or None)
        others = [k for k, v in body.items() if k not in UPDATE_FIELDS and
                  k != "RestartPolicy" and not _is_default(v)]
        if others:
            raise ApiError(400, "container update of these fields is not supported by "
                           f"dockish: {', '.join(sorted(others))}")
        c = await self._get(req.params["id"])
        warnings = await blocking(self.engine.update, c.id, limits, policy)
        return {"Warnings": warnings or None}

    async def stats(self, req: Request):
        """Docker's stats: one record (``stream=0``: after a second, with the
        previous sample's CPU; ``one-shot=1``: at once, without it), or one
        a second until the client goes (``stream=1``, the default)."""
        stream = req.flag("stream", True)
        one_shot = req.flag("one-shot")
        if stream and one_shot:
            raise ApiError(400, "cannot have stream=true and one-shot=true")
        c = await self._get(req.params["id"])
        frames = self.engine.stats_frames([c.id], stream=stream, one_shot=one_shot)
        if not stream:
            return (await blocking(next, frames))[0][1]
        await req.conn.start_stream()
        while True:
            frame = await blocking(next, frames)
            await req.conn.write_json(frame[0][1])

    async def top(self, req: Request):
        c = await self._get(req.params["id"])
        rows = await blocking(self.engine.top, c.id)
        return {"Titles": ["UID", "PID", "PPID", "CMD"], "Processes": [list(r) for r in rows]}

    async def changes(self, req: Request):
        c = await self._get(req.params["id"])
        rows = await blocking(self.engine.diff, c.id)
        kinds = {"C": 0, "A": 1, "D": 2}
        return [{"Path": path, "Kind": kinds[kind]} for kind, path in rows] or None

    # -- output --------------------------------------------------------------------------------

    async def logs(self, req: Request):
        """The log's records as Docker frames them (stream 1/2 without a
        terminal, raw with one), cut by since/until/tail, with times on
        request; ``follow`` goes on until the container stops."""
        from ..runtime.logs import rfc3339_nano
        c = await self._get(req.params["id"])
        want_out, want_err = req.flag("stdout"), req.flag("stderr")
        if not (want_out or want_err):
            raise ApiError(400, "Bad parameters: you must choose at least one stream")
        since = req.arg("since") or None
        until = req.arg("until") or None
        if since in ("0", "0.000000000"):
            since = None
        if until in ("0", "0.000000000"):
            until = None
        stamps, details = req.flag("timestamps"), req.flag("details")
        entries = await blocking(lambda: self.engine.logs(
            c, want_out, want_err, since=since, until=until, tail=req.arg("tail", "all") or "all",
            follow=req.flag("follow")))
        tty = c.config.tty
        await req.conn.start_stream("application/vnd.docker.raw-stream" if tty
                                    else "application/vnd.docker.multiplexed-stream")
        try:
            while True:
                batch = await blocking(_next_batch, entries)
                if not batch:
                    break
                out = bytearray()
                for e in batch:
                    data = b" " + e.data if details else e.data   # no attributes: a space
                    if stamps:
                        data = rfc3339_nano(e.time).encode() + b" " + data
                    out += data if tty else frame(e.stream, data)
                await req.conn.write(bytes(out))
        finally:
            with contextlib.suppress(Exception):
                await blocking(entries.close)

    async def attach(self, req: Request):
        """The container's output from its log (so a fast ``--rm`` container
        loses nothing), input to its terminal through its monitor."""
        c = await self._get(req.params["id"])
        want_in = req.flag("stdin")
        want_out = req.flag("stdout") or req.flag("stderr")
        if c.paused:
            raise ApiError(409, "You cannot attach to a paused container, unpause it first")
        st = c.state()
        first_started, was_running = st.get("started"), c.running
        fd = await blocking(self.engine.open_log, c)
        try:
            if not req.flag("logs"):
                os.lseek(fd, 0, os.SEEK_END)
            stream, extra = await req.conn.hijack(req)
            tty = c.config.tty
            async with trio.open_nursery() as nursery:
                out_done = trio.Event()

                async def output() -> None:
                    try:
                        await _relay_log(fd, stream, c, tty, want_out, first_started,
                                         was_running)
                    finally:
                        out_done.set()
                        nursery.cancel_scope.cancel()
                nursery.start_soon(output)
                if want_in and tty and c.config.interactive:
                    nursery.start_soon(_terminal_input, c, stream, extra)
                elif want_in and c.config.interactive:
                    nursery.start_soon(_pipe_input, c, stream, extra,
                                       c.id in self.stdin_once)
            with contextlib.suppress(Exception):
                await stream.send_eof() if hasattr(stream, "send_eof") else None
        finally:
            os.close(fd)

    async def resize(self, req: Request):
        c = await self._get(req.params["id"])
        h, w = req.int_arg("h", 0) or 0, req.int_arg("w", 0) or 0
        if h <= 0 or w <= 0:
            raise ApiError(400, "resize needs h and w")
        await blocking(self.engine.resize, c, h, w)
        return Reply(200, b"", "text/plain")

    # -- files ---------------------------------------------------------------------------------

    async def _stream_fd_from(self, req: Request, producer, content_type: str,
                              headers: list | None = None) -> None:
        """Run ``producer(write_fd)`` in a thread; stream the pipe's other end."""
        r, w = os.pipe2(os.O_CLOEXEC)
        await req.conn.start_stream(content_type, headers=headers)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                producer(w)
            except BaseException as e:          # noqa: BLE001 - after the headers
                failure.append(e)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, run)
            try:
                await pump_fd(r, req.conn.write, None)
            finally:
                os.close(r)
        if failure:
            raise failure[0]

    async def export(self, req: Request):
        c = await self._get(req.params["id"])
        def produce(w: int) -> None:
            try:
                self.engine.export(c.id, w)
            finally:
                os.close(w)                 # the end of the tar (export leaves it open)
        await self._stream_fd_from(req, produce, "application/x-tar")

    async def _stat(self, c: Container, path: str) -> dict:
        if not path.startswith("/"):
            raise ApiError(400, f"the path must be absolute: {path}")
        st = await blocking(self.engine.archive_stat, c, path)
        if st is None:
            raise ApiError(404, f"Could not find the file {path} in container {c.name}")
        return st

    async def archive_head(self, req: Request):
        c = await self._get(req.params["id"])
        st = await self._stat(c, req.arg("path"))
        return Reply(200, b"", "text/plain",
                     [("X-Docker-Container-Path-Stat", _stat_header(st))])

    async def archive_get(self, req: Request):
        c = await self._get(req.params["id"])
        path = req.arg("path")
        await self._stat(c, path)                 # 400/404 before the stream
        st, tar = await blocking(self.engine.archive_get, c, path)

        def produce(w: int) -> None:
            try:
                with os.fdopen(w, "wb") as out:
                    for chunk in tar:
                        out.write(chunk)
            finally:
                tar.close()
        await self._stream_fd_from(req, produce, "application/x-tar",
                                   [("X-Docker-Container-Path-Stat", _stat_header(st))])

    async def archive_put(self, req: Request):
        c = await self._get(req.params["id"])
        path = req.arg("path")
        st = await self._stat(c, path)
        if not st["mode"] & (1 << 31):
            raise ApiError(400, f"extraction point is not a directory: {path}")
        def consume(r: int) -> None:
            with os.fdopen(r, "rb") as tar:
                self.engine.archive_put(c, path, tar)
        failure = await feed_body(req, consume)
        if failure:
            raise failure
        return Reply(200, b"", "text/plain")

    # -- exec ----------------------------------------------------------------------------------

    async def exec_create(self, req: Request):
        body = await req.json()
        argv = body.get("Cmd") or []
        if isinstance(argv, str):
            argv = [argv]
        if not argv or not all(isinstance(a, str) for a in argv):
            raise ApiError(400, "No exec command specified")
        opts = ExecOptions(
            command=list(argv), interactive=bool(body.get("AttachStdin")),
            tty=bool(body.get("Tty")), user=body.get("User") or None,
            workdir=body.get("WorkingDir") or None,
            env=[e for e in body.get("Env") or [] if isinstance(e, str) and "=" in e],
            attach_stdout=bool(body.get("AttachStdout", True)),
            attach_stderr=bool(body.get("AttachStderr", True)),
            privileged=bool(body.get("Privileged")),
            detach_keys=body.get("DetachKeys") or "")
        eid = await blocking(self.engine.exec_create, req.params["id"], opts)
        return Reply(201, {"Id": eid})

    async def exec_inspect(self, req: Request):
        return self.engine.exec_inspect(req.params["id"])

    async def exec_resize(self, req: Request):
        h, w = req.int_arg("h", 0) or 0, req.int_arg("w", 0) or 0
        self.engine.exec_resize(req.params["id"], h, w)
        return Reply(201, b"", "text/plain")

    async def exec_start(self, req: Request):
        eid = req.params["id"]
        body = await req.json()
        detach = bool(body.get("Detach"))
        inst = self.engine.exec_table.get(eid)
        if body.get("Tty"):
            inst.tty = True
        try:
            inst = await blocking(self.engine.exec_start, eid, detach)
        except StartError as e:
            raise ApiError(400 if e.exit_code in (126, 127) else 500, _start_message(e)) \
                from None
        done = trio.Event()

        async def reap() -> None:
            await trio.to_thread.run_sync(self.engine.exec_wait, eid)
            done.set()
        if detach:
            async with trio.open_nursery() as nursery:     # the holder is reaped meanwhile
                nursery.start_soon(reap)
                await req.conn.reply(Reply(200, b"", "text/plain"))
            return None
        pipes = inst.pipes
        try:
            stream, extra = await req.conn.hijack(req)

            sending = trio.Lock()          # stdout's and stderr's pumps share the stream

            async def send(data: bytes) -> None:
                async with sending:
                    await stream.send_all(data)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reap)
                in_fd = pipes.master if inst.tty else pipes.in_w
                if inst.stdin and in_fd is not None:
                    def eof() -> None:
                        if pipes.in_w is not None:       # the process's end of input
                            close_quiet(pipes.in_w)
                            pipes.in_w = None
                    nursery.start_soon(copy_in, stream, extra, in_fd, eof)
                if inst.tty:
                    await pump_fd(pipes.master, send, None, done)
                else:
                    async with trio.open_nursery() as outs:
                        outs.start_soon(pump_fd, pipes.out_r, send, STDOUT, done)
                        outs.start_soon(pump_fd, pipes.err_r, send, STDERR, done)
                await done.wait()
                nursery.cancel_scope.cancel()
        finally:
            close_pipes(inst)
        with contextlib.suppress(Exception):
            await stream.aclose()


# -- helpers -------------------------------------------------------------------------------------

async def _relay_log(fd: int, stream, c: Container, tty: bool, want_out: bool,
                     first_started, was_running: bool) -> None:
    """The log's new records to the client until the container has run and
    stopped (or is gone), then what is left."""
    records = LogRecords(fd, c.log)
    try:
        async def send_new() -> bool:
            got = records.read()
            if want_out and got:
                await stream.send_all(b"".join(data if tty else frame(kind, data)
                                               for kind, data in got))
            return bool(got)
        idle_since = None
        since = time.time()
        while True:
            if await send_new():
                continue
            gone = not c.path.exists()
            started = c.state().get("started") if not gone else None
            ran = was_running or (started is not None and started != first_started)
            if gone or (ran and not c.running):
                while await send_new():
                    pass
                return
            if not c.running and not ran:
                # not started yet; a start that failed early leaves an exit record
                # (or none at all: then give up after a long while)
                if ((c.exit_info() or {}).get("finished") or 0) >= since:
                    return
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 3600:
                    return
            await trio.sleep(0.02)
    finally:
        records.close()


async def _terminal_input(c: Container, stream, first: bytes) -> None:
    """Client bytes to the container's terminal through its monitor's
    attach socket (connected once the container runs)."""
    tsock = await _monitor_socket(c, ttymod.connect, c.id)
    if tsock is None:
        return
    try:
        await tsock.send(b"24 80\n")

        async def drain() -> None:            # the monitor also sends us output
            while await tsock.recv(65536):
                pass
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain)
            async for data in client_chunks(stream, first):
                await _send_all(tsock, data)
            nursery.cancel_scope.cancel()
    finally:
        tsock.close()


async def _pipe_input(c: Container, stream, first: bytes, once: bool) -> None:
    """Client bytes to the stdin of a container without a terminal, through
    its monitor (connected once it runs); the client's half-close ends the
    container's stdin when it was created with StdinOnce (``docker run -i``)."""
    from ..runtime import stdinrelay
    tsock = await _monitor_socket(c, stdinrelay.connect, c, once)
    if tsock is None:
        return
    try:
        async for data in client_chunks(stream, first):
            await _send_all(tsock, data)
        with contextlib.suppress(OSError):
            tsock.shutdown(trio.socket.SHUT_WR)
        with contextlib.suppress(OSError, trio.BrokenResourceError):
            await tsock.recv(1)                 # the monitor has read it all
    finally:
        tsock.close()


async def _monitor_socket(c: Container, connect, *args):
    """A trio socket to ``c``'s monitor (``connect(*args)``), made once the
    container runs; None if it went first or serves nothing."""
    while not c.running:
        if not c.path.exists():
            return None
        await trio.sleep(0.02)
    try:
        sock = await blocking(connect, *args)
    except OSError:
        return None
    return trio.socket.from_stdlib_socket(sock)


async def _send_all(sock, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = await sock.send(view)
        view = view[n:]


def _stop_timeout(req: Request) -> int | None:
    """``t`` (or ``timeout``) of a stop or restart; None when not given (or
    negative), so the container's ``--stop-timeout`` applies, else 10."""
    t = req.int_arg("t", None)
    if t is None:
        t = req.int_arg("timeout", None)
    return t if t is not None and t >= 0 else None


def _next_batch(entries) -> list:
    """The log's next entry (waiting for it when following); [] at its end."""
    e = next(entries, None)
    return [] if e is None else [e]


def _start_message(e: BaseException) -> str:
    """The words the docker CLI looks for to exit 126/127 as Docker does."""
    msg = str(e) or "the container did not start"
    code = getattr(e, "exit_code", 125)
    if code == 127 and "executable file not found" not in msg and \
            "no such file or directory" not in msg:
        msg += ": executable file not found"
    elif code == 126 and "permission denied" not in msg and "is a directory" not in msg:
        msg += ": permission denied"
    return msg


def _full_ref(text: str) -> str:
    with contextlib.suppress(Exception):
        from registry import reference as refs
        return refs.parse(text).familiar if ":" in text.rsplit("/", 1)[-1] else \
            refs.parse(text).familiar + ("" if "@" in text else "")
    return text


def _network_name(net: str) -> str:
    return {"slirp4netns": "bridge", "pasta": "bridge"}.get(net, net)


# -- create's request ----------------------------------------------------------------------------

# HostConfig fields dockish honours (the rest must be unset or default)
_HOST_SUPPORTED = {"Binds", "Mounts", "Tmpfs", "NetworkMode", "PortBindings", "AutoRemove",
                   "Init", "ReadonlyRootfs", "CapAdd", "CapDrop", "Privileged", "LogConfig",
                   "RestartPolicy", "PublishAllPorts", "ConsoleSize", "Links", "VolumesFrom",
                   "ExtraHosts", "Dns", "DnsOptions", "DnsSearch", "SecurityOpt",
                   "Isolation", "CgroupnsMode", "IpcMode", "PidMode", "UTSMode", "UsernsMode",
                   "Runtime", "OomKillDisable", "MaskedPaths", "ReadonlyPaths", "ShmSize",
                   "GroupAdd", "Annotations", "Ulimits", "Devices", "PidsLimit", "Memory",
                   "NanoCpus", "MemorySwap", "CgroupParent", "CpuShares", "CpuPeriod",
                   "CpuQuota", "Sysctls", "OomScoreAdj"}
_CONFIG_SUPPORTED = {"Hostname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                     "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd",
                     "Healthcheck", "ArgsEscaped", "Image", "Volumes", "WorkingDir",
                     "Entrypoint", "Labels", "HostConfig", "NetworkingConfig", "StopSignal",
                     "StopTimeout", "Domainname", "NetworkDisabled", "MacAddress", "OnBuild",
                     "Shell", "Platform"}


def _duration(ns_value) -> str | None:
    if not ns_value:
        return None
    return f"{int(ns_value) / 1e9}s"


def create_options(body: dict, name: str) -> tuple[CreateOptions, dict[str, str]]:
    """Docker's create request as ``CreateOptions`` (and its labels); a 400
    names every field set to something dockish would not do."""
    bad = [k for k in body if k not in _CONFIG_SUPPORTED and not _is_default(body[k])]
    hc = body.get("HostConfig") or {}
    if not isinstance(hc, dict):
        raise ApiError(400, "HostConfig must be an object")
    bad += [f"HostConfig.{k}" for k, v in hc.items() if k not in _HOST_SUPPORTED
            and not _is_default(v) and not (k == "MemorySwappiness" and v == -1)]
    # supported keys that only take their default or harmless values
    for key, ok in (("NetworkDisabled", (False, None)), ("OnBuild", (None, [])),
                    ("Shell", (None, []))):
        if key in body and body[key] not in ok:
            bad.append(key)
    for key in ("Links", "MaskedPaths", "ReadonlyPaths"):
        if not _is_default(hc.get(key)):
            bad.append(f"HostConfig.{key}")
    for key, ok in (("Isolation", ("", "default")), ("CgroupnsMode", ("", "private", "host")),
                    ("Runtime", ("", "runc")), ("OomKillDisable", (False, None))):
        if key in hc and hc[key] not in ok:
            bad.append(f"HostConfig.{key}")
    if bad:
        raise ApiError(400, "not supported by dockish: " + ", ".join(sorted(set(bad))))
    image = body.get("Image")
    if not image or not isinstance(image, str):
        raise ApiError(400, "Config.Image is required")
    entry = body.get("Entrypoint")
    if isinstance(entry, str):
        entry = [entry]
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    args = list(cmd or [])
    entrypoint = None
    if entry is not None:
        entrypoint = entry[0] if entry else ""
        args = list(entry[1:]) + args
    volumes = list(hc.get("Binds") or []) + list((body.get("Volumes") or {}).keys())
    mounts = []
    for m in hc.get("Mounts") or []:
        kind = m.get("Type") or "volume"
        spec = f"type={kind},target={m.get('Target', '')}"
        if m.get("Source"):
            spec += f",source={m['Source']}"
        if m.get("ReadOnly"):
            spec += ",readonly"
        extra = [k for k in m if k not in ("Type", "Source", "Target", "ReadOnly",
                                           "Consistency") and not _is_default(m[k])]
        if extra:
            raise ApiError(400, f"not supported by dockish: HostConfig.Mounts "
                           f"{', '.join(extra)}")
        mounts.append(spec)
    tmpfs = [f"{k}:{v}" if v else k for k, v in (hc.get("Tmpfs") or {}).items()]
    publish = []
    for key, binds in (hc.get("PortBindings") or {}).items():
        cport, _, proto = key.partition("/")
        for b in binds or [{}]:
            ip, hp = (b or {}).get("HostIp") or "", (b or {}).get("HostPort") or ""
            spec = f"{ip}:{hp}:{cport}" if ip else (f"{hp}:{cport}" if hp else cport)
            publish.append(spec + (f"/{proto}" if proto else ""))
    network = hc.get("NetworkMode") or None
    if network == "default":
        network = None
    hc_test = body.get("Healthcheck") or {}
    test = hc_test.get("Test") or []
    health_cmd, no_health = None, False
    if test[:1] == ["NONE"]:
        no_health = True
    elif test[:1] == ["CMD-SHELL"]:
        health_cmd = " ".join(test[1:])
    elif test[:1] == ["CMD"]:
        health_cmd = shlex.join(test[1:])
    env = [e for e in body.get("Env") or [] if isinstance(e, str) and "=" in e]
    labels = body.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ApiError(400, "Labels must be an object of strings")
    opts = CreateOptions(
        image=image, args=args, name=name, interactive=bool(body.get("OpenStdin")),
        tty=bool(body.get("Tty")), auto_remove=bool(hc.get("AutoRemove")), env=env,
        workdir=body.get("WorkingDir") or None, user=body.get("User") or None,
        hostname=body.get("Hostname") or None, volumes=volumes, mounts=mounts, tmpfs=tmpfs,
        network=network, publish=publish, entrypoint=entrypoint, init=bool(hc.get("Init")),
        read_only=bool(hc.get("ReadonlyRootfs")), pull="never",
        cap_add=list(hc.get("CapAdd") or []), cap_drop=list(hc.get("CapDrop") or []),
        privileged=bool(hc.get("Privileged")), health_cmd=health_cmd,
        health_interval=_duration(hc_test.get("Interval")),
        health_timeout=_duration(hc_test.get("Timeout")),
        health_retries=hc_test.get("Retries") or None,
        health_start_period=_duration(hc_test.get("StartPeriod")),
        no_healthcheck=no_health, restart=_restart(hc.get("RestartPolicy")),
        stop_signal=body.get("StopSignal") or None, stop_timeout=_stop_timeout_field(body),
        process=_process(hc, body), **create_fields(body, hc, network),
        volumes_from=[str(v) for v in hc.get("VolumesFrom") or []],
        health_start_interval=_duration(hc_test.get("StartInterval")))
    return opts, labels


def _restart(policy) -> str:
    """``HostConfig.RestartPolicy`` as ``--restart``'s text, checked by
    the daemon's rules (runner.runtime.restart)."""
    from ..runtime.restart import from_docker
    if policy is not None and not isinstance(policy, dict):
        raise ApiError(400, "HostConfig.RestartPolicy must be an object")
    try:
        p = from_docker(policy)
    except (TypeError, ValueError):
        raise ApiError(400, "invalid restart policy: maximum retry count must be an "
                       "integer") from None
    return f"{p.name}:{p.max_retries}" if p.max_retries else p.name


def _stop_timeout_field(body: dict) -> int | None:
    value = body.get("StopTimeout")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, "StopTimeout must be an integer")
    return value


def _process(hc: dict, body: dict) -> dict:
    """The process fields of HostConfig (GroupAdd, Ulimits, ShmSize,
    Devices, SecurityOpt, UsernsMode, the resource limits, LogConfig,
    PidMode, IpcMode, UTSMode, Sysctls, OomScoreAdj, Annotations) and
    Config's Domainname and MacAddress (or an endpoint's, as API 1.44 sends
    it) as the record ``run``'s flags give (runner.runtime.procopts),
    through the same checks."""
    from ..runtime.procopts import parse
    log = hc.get("LogConfig") or {}
    if not isinstance(log, dict) or not isinstance(log.get("Config") or {}, dict):
        raise ApiError(400, "HostConfig.LogConfig must be Docker's {Type, Config}")
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    mac = str(body.get("MacAddress") or "") or next(
        (str(ep["MacAddress"]) for ep in endpoints.values()
         if isinstance(ep, dict) and ep.get("MacAddress")), "")
    shared = {"log_driver": log.get("Type") or None, "log_opts": log.get("Config") or {},
              "pid": str(hc.get("PidMode") or ""), "ipc": str(hc.get("IpcMode") or ""),
              "uts": str(hc.get("UTSMode") or ""), "sysctls": hc.get("Sysctls") or {},
              "domainname": str(body.get("Domainname") or ""),
              "annotations": {str(k): str(v) for k, v in (hc.get("Annotations") or {}).items()},
              "mac_address": mac}
    try:
        oom = hc.get("OomScoreAdj")
        shared["oom_score_adj"] = int(oom) if oom else None
    except (TypeError, ValueError):
        raise ApiError(400, "HostConfig.OomScoreAdj must be an integer") from None
    try:
        ulimits = [f"{u['Name']}={int(u['Soft'])}:{int(u['Hard'])}"
                   for u in hc.get("Ulimits") or []]
        devices = [f"{d['PathOnHost']}:{d.get('PathInContainer') or d['PathOnHost']}:"
                   f"{d.get('CgroupPermissions') or 'rwm'}" for d in hc.get("Devices") or []]
        shm = int(hc.get("ShmSize") or 0)
        pids = int(hc.get("PidsLimit") or 0)
        memory = int(hc.get("Memory") or 0)
        swap = int(hc.get("MemorySwap") or 0)
        nano = int(hc.get("NanoCpus") or 0)
        parent = str(hc.get("CgroupParent") or "")
        cpu = {k: int(hc.get(f) or 0) or None for k, f in (
            ("cpu_shares", "CpuShares"), ("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota"))}
        group_add = [str(g) for g in hc.get("GroupAdd") or []]
        security = [str(o) for o in hc.get("SecurityOpt") or []]
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, "HostConfig: Ulimits, Devices, ShmSize, PidsLimit, Memory, "
                       "MemorySwap, NanoCpus and the Cpu fields must be Docker's shapes") \
            from None
    return parse(userns=hc.get("UsernsMode") or "", group_add=group_add, ulimits=ulimits,
                 shm_size=str(shm) if shm else None, devices=devices,
                 security_opt=security, pids_limit=pids if pids > 0 else None,
                 memory=str(memory) if memory else None,
                 cpus=str(nano / 1e9) if nano else None,
                 memory_swap=str(swap) if swap else None, cgroup_parent=parent, **cpu,
                 **shared)
