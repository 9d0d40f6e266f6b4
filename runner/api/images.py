"""``/images/...`` and ``/build``: Docker's image endpoints over the image
store, pulls and pushes streaming Docker's JSON progress lines."""
from __future__ import annotations

import base64
import json
import math
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from ..engine import Engine
from .errors import ApiError
from .server import Reply, Request, Routes, blocking
from .streams import body_to_fd, feed_body, pump_fd

Emit = Callable[[dict], None]


def registry_options(req: Request, header: str = "x-registry-auth"):
    """Registry options with the credentials of X-Registry-Auth (base64url
    JSON: username, password, serveraddress), if given."""
    from registry.client import Options
    opts = Options.from_config()
    text = req.headers.get(header, "")
    if text:
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except ValueError:
            raise ApiError(400, f"invalid {header} header") from None
        if isinstance(data, dict) and data.get("username"):
            opts.credentials = (str(data["username"]), str(data.get("password") or ""))
        elif isinstance(data, dict) and data.get("identitytoken"):
            raise ApiError(400, "identity tokens are not supported by dockish; log in with "
                           "a password")
    return opts


async def stream_json(req: Request, work: Callable[[Emit], object],
                      feed: Callable[[], Awaitable[None]] | None = None) -> object:
    """Headers now, then every object ``work`` emits (from its thread) as a
    JSON line as it comes; a failure becomes Docker's error line.

    With ``feed`` (the request body going to ``work``, awaited alongside),
    the headers wait for the whole body and ``work``'s first object, as
    Docker's daemon answers a build: a failure before any output (a bad
    context, no Dockerfile) is then an HTTP error with its status."""
    send, receive = trio.open_memory_channel(math.inf)
    result: list = []
    failed: list[ApiError] = []

    def run() -> None:
        def emit(obj: dict) -> None:
            trio.from_thread.run_sync(send.send_nowait, obj)
        try:
            result.append(work(emit))
        except BaseException as e:              # noqa: BLE001 - reported in the stream
            from .errors import from_exception
            err = e if isinstance(e, ApiError) else from_exception(e)
            failed.append(err)
            emit({"errorDetail": {"message": err.message}, "error": err.message})
            result.append(None)
        finally:
            trio.from_thread.run_sync(send.close)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, run)
        async with receive:
            first = None
            if feed is not None:
                await feed()
                try:
                    first = await receive.receive()
                except trio.EndOfChannel:
                    first = None
                if failed and first is not None and "errorDetail" in first:
                    async for _ in receive:
                        pass
                    raise failed[0]
            await req.conn.start_stream()
            if first is not None:
                await req.conn.write_json(first)
            async for obj in receive:
                await req.conn.write_json(obj)
    return result[0] if result else None


class _Progress:
    """The registry's progress callbacks as Docker's status lines."""

    def __init__(self, emit: Emit, verb: str = "Pull") -> None:
        self.emit, self.verb = emit, verb
        self.last: dict[str, float] = {}

    def __call__(self, event: str, short: str, done: int, total: int) -> None:
        if event == "start":
            return
        if event == "exists":
            self.emit({"status": "Already exists" if self.verb == "Pull" else
                       "Layer already exists", "progressDetail": {}, "id": short})
        elif event == "mounted":
            self.emit({"status": "Mounted from another repository", "progressDetail": {},
                       "id": short})
        elif event in ("download", "push"):
            now = time.monotonic()
            if done and done < total and now - self.last.get(short, 0) < 0.1:
                return
            self.last[short] = now
            width = 50
            filled = int(width * done / total) if total else 0
            bar = "[" + "=" * max(filled - 1, 0) + (">" if filled else "") + \
                " " * (width - filled) + "]"
            self.emit({"status": "Downloading" if event == "download" else "Pushing",
                       "progressDetail": {"current": done, "total": total},
                       "progress": bar, "id": short})
        elif event == "complete":
            self.emit({"status": "Pull complete" if self.verb == "Pull" else "Pushed",
                       "progressDetail": {}, "id": short})


class ImageApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, r: Routes) -> None:
        a = r.add
        a("GET", "/images/json", self.list)
        a("POST", "/images/create", self.create)
        a("POST", "/images/load", self.load)
        a("GET", "/images/get", self.save)
        a("POST", "/images/prune", self.prune)
        a("POST", "/build", self.build)
        a("POST", "/build/prune", self.build_prune)
        a("GET", "/images/{name:path}/json", self.inspect)
        a("GET", "/images/{name:path}/history", self.history)
        a("GET", "/images/{name:path}/get", self.save_one)
        a("POST", "/images/{name:path}/push", self.push)
        a("POST", "/images/{name:path}/tag", self.tag)
        a("DELETE", "/images/{name:path}", self.delete)

    # -- records -------------------------------------------------------------------------------

    async def list(self, req: Request):
        from ..filters import from_api
        return await blocking(self._list, from_api(req.json_arg("filters")))

    def _list(self, filters: dict[str, list[str]]) -> list[dict]:
        from registry import reference as refs
        out = []
        for s in self.engine.images(filters):
            out.append({
                "Id": s.rec.id, "ParentId": "",
                "RepoTags": [refs.parse(n).familiar for n in s.names] or None,
                "RepoDigests": [refs.parse(d).familiar for d in s.rec.repo_digests] or None,
                "Created": int(s.created or 0), "Size": s.size, "VirtualSize": s.size,
                "SharedSize": -1, "Labels": s.labels or None, "Containers": s.containers})
        return out

    async def inspect(self, req: Request):
        return await blocking(self._inspect, req.params["name"])

    def _inspect(self, name: str) -> dict:
        data = self.engine.inspect_image(name)
        data.setdefault("ContainerConfig", data.get("Config") or {})
        data.setdefault("VirtualSize", data.get("Size", 0))
        return data

    async def history(self, req: Request):
        return await blocking(self._history, req.params["name"])

    def _history(self, name: str) -> list[dict]:
        return [{"Id": h.id, "Created": int(h.created_at or 0), "CreatedBy": h.created_by,
                 "Tags": h.tags or None, "Size": h.size, "Comment": h.comment}
                for h in self.engine.history(name)]

    async def tag(self, req: Request):
        repo, tag = req.arg("repo"), req.arg("tag")
        if not repo:
            raise ApiError(400, "repository name must have at least one component")
        target = f"{repo}:{tag}" if tag else repo
        await blocking(self.engine.tag, req.params["name"], target)
        return Reply(201, b"", "text/plain")

    async def delete(self, req: Request):
        lines = await blocking(self.engine.remove_image, req.params["name"], req.flag("force"),
                               not req.flag("noprune"))
        return [{kind: what} for kind, what in lines]

    async def prune(self, req: Request):
        from ..filters import from_api
        filters = from_api(req.json_arg("filters"))
        report = await blocking(self.engine.image_prune, False, filters)
        deleted = []
        for line in report.deleted:
            kind, _, what = line.partition(": ")
            deleted.append({"Untagged" if kind == "untagged" else "Deleted": what})
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": report.freed}

    # -- registry ------------------------------------------------------------------------------

    async def create(self, req: Request):
        if req.arg("fromSrc"):
            return await self._import(req)
        name = req.arg("fromImage")
        if not name:
            raise ApiError(400, "fromImage is required")
        tag = req.arg("tag")
        if tag:
            name += ("@" if tag.startswith("sha256:") else ":") + tag
        platform = req.arg("platform") or None
        options = registry_options(req)
        async for _ in req.chunks():
            pass

        def work(emit: Emit) -> None:
            from registry import reference as refs
            ref = refs.parse(name)
            emit({"status": f"Pulling from {ref.familiar_repository}",
                  "id": ref.tag or ref.digest or "latest"})
            store = self.engine.image_store()
            try:
                before = store.find(name)[0].id
            except Exception:                   # noqa: BLE001 - not stored (yet)
                before = None
            res = self.engine.pull(name, options, platform, _Progress(emit))
            emit({"status": f"Digest: {res.digest}"})
            state = "Image is up to date" if before == res.record.id and not res.downloaded \
                else "Downloaded newer image"
            emit({"status": f"Status: {state} for {ref.familiar}"})
        await stream_json(req, work)

    async def _import(self, req: Request):
        """``docker import``: fromSrc=- takes the rootfs tar from the body (as
        it arrives: never whole in memory), else fetches the URL; repo, tag,
        changes, message, platform as Docker's. A failure is an HTTP error
        (a URL that cannot be fetched: 400), success the ID as a status line."""
        src = req.arg("fromSrc")
        repo, tag = req.arg("repo"), req.arg("tag")
        kwargs = {"changes": [str(c) for c in req.query.get("changes") or []],
                  "message": req.arg("message"), "platform": req.arg("platform") or None,
                  "reference": (f"{repo}:{tag}" if tag else repo) or None}
        if src == "-":
            made: list = []

            def consume(r: int) -> None:
                with os.fdopen(r, "rb") as inp:
                    made.append(self.engine.import_image("-", inp, **kwargs))
            failure = await feed_body(req, consume)
            if failure is not None:
                raise failure
            rec = made[0]
        else:
            async for _ in req.chunks():
                pass
            rec = await blocking(lambda: self.engine.import_image(src, **kwargs))
        await req.conn.start_stream()
        await req.conn.write_json({"status": rec.id})
        return None

    async def push(self, req: Request):
        name = req.params["name"]
        tag = req.arg("tag")
        if tag:
            name += ":" + tag
        options = registry_options(req)
        await blocking(self.engine.image_store().find, name)

        def work(emit: Emit) -> None:
            from registry import reference as refs
            ref = refs.parse(name)
            emit({"status": f"The push refers to repository [{ref.repository}]"})
            res = self.engine.push(name, options=options, progress=_Progress(emit, "Push"))
            emit({"status": f"{ref.tag or 'latest'}: digest: {res.digest} size: {res.size}"})
            emit({"progressDetail": {}, "aux": {"Tag": ref.tag or "latest",
                                               "Digest": res.digest, "Size": res.size}})
        await stream_json(req, work)

    # -- archives ------------------------------------------------------------------------------

    async def save_one(self, req: Request):
        await self._save(req, [req.params["name"]])

    async def save(self, req: Request):
        names = req.query.get("names") or []
        if not names:
            raise ApiError(400, "names is required")
        await self._save(req, names)

    async def _save(self, req: Request, names: list[str]) -> None:
        store = self.engine.image_store()
        for n in names:
            await blocking(store.find, n)          # an unknown name: 404 before the stream
        r, w = os.pipe2(os.O_CLOEXEC)
        await req.conn.start_stream("application/x-tar")
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with os.fdopen(w, "wb") as out:
                    self.engine.save(names, out)
            except BaseException as e:          # noqa: BLE001 - the stream is cut
                failure.append(e)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.to_thread.run_sync, run)
                await pump_fd(r, req.conn.write, None)
        finally:
            os.close(r)
        if failure:
            raise failure[0]

    async def load(self, req: Request):
        """The body into a scratch file of the store (a layer is never held
        in memory), then loaded as ``dockish load`` loads it."""
        from registry.archive_out import load as do_load
        store = self.engine.image_store()
        scratch = await blocking(store.layers.scratch_file)
        try:
            async for data in req.chunks():
                await blocking(scratch.write, data)
            await blocking(scratch.flush)
            quiet = req.flag("quiet")

            def work(emit: Emit) -> None:
                from registry import reference as refs
                loaded = do_load(store, Path(f"/proc/self/fd/{scratch.fileno()}"))
                for rec, names in loaded:
                    for n in names or [None]:
                        text = f"Loaded image: {refs.parse(n).familiar}\n" if n else \
                            f"Loaded image ID: {rec.id}\n"
                        if not quiet:
                            emit({"stream": text})
            await stream_json(req, work)
        finally:
            scratch.close()

    # -- build ---------------------------------------------------------------------------------

    async def build(self, req: Request):
        """The context tar is extracted into a private temporary directory
        as it arrives (by the same extractor ``cp`` uses: no link leaves it),
        then built with the step output streamed as ``{"stream": ...}``."""
        from ..builder.build import BuildOptions
        if req.arg("remote"):
            raise ApiError(400, "remote build contexts are not supported by dockish")
        if req.headers.get("x-registry-config"):
            self._registry_config(req.headers["x-registry-config"])
        unsupported = [k for k in ("cpusetcpus", "cpuperiod", "cpuquota", "memory", "memswap",
                                   "shmsize", "cgroupparent", "extrahosts", "isolation",
                                   "outputs", "cachefrom", "platform")
                       if req.arg(k) not in ("", "0", "[]", "null", "default")]
        if req.arg("version") == "2":
            unsupported.append("version=2 (BuildKit)")
        if req.flag("squash"):
            unsupported.append("squash")
        if unsupported:
            raise ApiError(400, f"build: not supported by dockish: {', '.join(unsupported)}")
        build_args = {k: v for k, v in (req.json_arg("buildargs") or {}).items()
                      if v is not None}
        labels = req.json_arg("labels") or {}
        tags = req.query.get("t") or []
        opts = BuildOptions(tags=list(tags), build_args=build_args,
                            target=req.arg("target") or None, no_cache=req.flag("nocache"),
                            quiet=req.flag("q"), labels=dict(labels),
                            network=req.arg("networkmode") or "default")
        dockerfile = req.arg("dockerfile") or "Dockerfile"
        r, w = os.pipe2(os.O_CLOEXEC)

        def work(emit: Emit) -> None:
            with os.fdopen(r, "rb") as body:
                try:
                    image_id = self.engine.build(
                        body, opts, dockerfile=dockerfile,
                        progress=lambda s: emit({"stream": s}) if not opts.quiet else None)
                finally:
                    while body.read(1 << 16):       # what is left: the feed must finish
                        pass
            emit({"aux": {"ID": image_id}})
            emit({"stream": f"Successfully built {image_id.split(':', 1)[-1][:12]}\n"})
            for t in tags:
                emit({"stream": f"Successfully tagged {t}\n"})

        async def feed() -> None:
            try:
                await body_to_fd(req, w)
            finally:
                os.close(w)
        await stream_json(req, work, feed)

    def _registry_config(self, header: str) -> None:
        """X-Registry-Config: credentials per registry for FROM pulls; they
        are not stored (dockish reads its own config), only checked to be
        well-formed."""
        try:
            data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
        except ValueError:
            raise ApiError(400, "invalid X-Registry-Config header") from None
        if not isinstance(data, dict):
            raise ApiError(400, "invalid X-Registry-Config header")

    async def build_prune(self, req: Request):
        from ..filters import from_api, older_than
        older = older_than(from_api(req.json_arg("filters")))
        report = await blocking(self.engine.build_cache_prune, older)
        return {"CachesDeleted": report.deleted or None, "SpaceReclaimed": report.freed}
