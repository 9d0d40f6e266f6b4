"""``/images/...`` and ``/build``: Docker's image endpoints over the image
store, pulls and pushes streaming Docker's JSON progress lines."""
from __future__ import annotations

import base64
import fnmatch
import json
import math
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

from ..engine import Engine
from .errors import ApiError, not_found
from .server import Reply, Request, Routes, blocking
from .streams import feed_body, pump_fd

Emit = Callable[[dict], None]
_RESOLVE_BENEATH = 0x08            # openat2(2): no step out of the directory


def _created(cfg: dict) -> float:
    from ..format import parse_time
    return parse_time(cfg.get("created")) or 0


def _config(store, rec) -> dict:
    try:
        return store.config(rec)
    except Exception:                           # noqa: BLE001 - an unreadable config: none
        return {}


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


async def stream_json(req: Request, work: Callable[[Emit], object]) -> object:
    """Headers now, then every object ``work`` emits (from its thread) as a
    JSON line as it comes; a failure becomes Docker's error line."""
    send, receive = trio.open_memory_channel(math.inf)
    await req.conn.start_stream()
    result: list = []

    def run() -> None:
        def emit(obj: dict) -> None:
            trio.from_thread.run_sync(send.send_nowait, obj)
        try:
            result.append(work(emit))
        except BaseException as e:              # noqa: BLE001 - reported in the stream
            from .errors import from_exception
            err = e if isinstance(e, ApiError) else from_exception(e)
            emit({"errorDetail": {"message": err.message}, "error": err.message})
            result.append(None)
        finally:
            trio.from_thread.run_sync(send.close)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, run)
        async with receive:
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

    def _find(self, store, name: str):
        from registry.store import NoSuchImage
        try:
            return store.find(name)
        except (NoSuchImage, ValueError):
            raise not_found("image", name) from None

    # -- records -------------------------------------------------------------------------------

    async def list(self, req: Request):
        filters = {k: _values(v) for k, v in req.json_arg("filters").items()}
        for k in filters:
            if k not in ("dangling", "reference", "label", "before", "since"):
                raise ApiError(400, f"invalid filter '{k}'")
        return await blocking(self._list, filters)

    def _list(self, filters: dict[str, list[str]]) -> list[dict]:
        from registry import reference as refs
        store = self.engine.image_store()
        tags = store.tags()
        in_use = self.engine.images_in_use(store)
        bounds = {}
        for key in ("before", "since"):
            for v in filters.get(key, []):
                rec, _ = self._find(store, v)
                bounds[key] = _created(_config(store, rec))
        out = []
        for rec in store.records():
            names = store.names_of(rec.id, tags)
            cfg = _config(store, rec)
            created = _created(cfg)
            labels = (cfg.get("config") or {}).get("Labels") or {}
            if "dangling" in filters:
                want = filters["dangling"][-1].lower() in ("1", "true")
                if want != (not names):
                    continue
            if "reference" in filters and not any(
                    _ref_match(refs.parse(n), pat) for n in names
                    for pat in filters["reference"]):
                continue
            if "label" in filters and not all(_has_label(labels, w) for w in filters["label"]):
                continue
            if "before" in bounds and not created < bounds["before"]:
                continue
            if "since" in bounds and not created > bounds["since"]:
                continue
            size = store.size(rec)
            out.append({
                "Id": rec.id, "ParentId": "",
                "RepoTags": [refs.parse(n).familiar for n in names] or None,
                "RepoDigests": [refs.parse(d).familiar for d in rec.repo_digests] or None,
                "Created": int(created), "Size": size, "VirtualSize": size,
                "SharedSize": -1, "Labels": labels or None,
                "Containers": len(in_use.get(rec.id, [])) if in_use else 0})
        out.sort(key=lambda e: -e["Created"])
        return out

    async def inspect(self, req: Request):
        return await blocking(self._inspect, req.params["name"])

    def _inspect(self, name: str) -> dict:
        from registry import reference as refs
        store = self.engine.image_store()
        rec, _ = self._find(store, name)
        cfg = _config(store, rec)
        size = store.size(rec)
        return {
            "Id": rec.id,
            "RepoTags": [refs.parse(n).familiar for n in store.names_of(rec.id)],
            "RepoDigests": [refs.parse(d).familiar for d in rec.repo_digests],
            "Parent": "", "Comment": "", "Created": cfg.get("created", ""),
            "DockerVersion": cfg.get("docker_version", ""), "Author": cfg.get("author", ""),
            "Config": cfg.get("config") or {}, "ContainerConfig": cfg.get("config") or {},
            "Architecture": cfg.get("architecture", ""), "Os": cfg.get("os", ""),
            **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
            "Size": size, "VirtualSize": size,
            "GraphDriver": {"Data": None, "Name": "dockish"},
            "RootFS": {"Type": "layers", "Layers": list(rec.diff_ids)},
            "Metadata": {"LastTagTime": ""}}

    async def history(self, req: Request):
        return await blocking(self._history, req.params["name"])

    def _history(self, name: str) -> list[dict]:
        from ..format import parse_time
        store = self.engine.image_store()
        rec, by_name = self._find(store, name)
        cfg = _config(store, rec)
        hist = [h for h in cfg.get("history") or [] if isinstance(h, dict)] or \
            [{"created": cfg.get("created")} for _ in rec.diff_ids]
        layers, li, rows = list(rec.diff_ids), 0, []
        for h in hist:
            size = 0
            if not h.get("empty_layer") and li < len(layers):
                size = store.layer_size(layers[li])
                li += 1
            rows.append({"Id": "<missing>", "Created": int(parse_time(h.get("created")) or 0),
                         "CreatedBy": h.get("created_by", "") or "", "Tags": None,
                         "Size": size, "Comment": h.get("comment", "") or ""})
        rows.reverse()
        if rows:
            rows[0]["Id"] = rec.id
            rows[0]["Tags"] = store.names_of(rec.id) or None
        return rows

    async def tag(self, req: Request):
        repo, tag = req.arg("repo"), req.arg("tag")
        if not repo:
            raise ApiError(400, "repository name must have at least one component")
        target = f"{repo}:{tag}" if tag else repo
        store = self.engine.image_store()
        await blocking(self._find, store, req.params["name"])
        await blocking(self.engine.tag, req.params["name"], target)
        return Reply(201, b"", "text/plain")

    async def delete(self, req: Request):
        return await blocking(self._delete, req.params["name"], req.flag("force"),
                              req.flag("noprune"))

    def _delete(self, text: str, force: bool, noprune: bool) -> list[dict]:
        from registry import reference as refs
        store = self.engine.image_store()
        rec, by_name = self._find(store, text)
        names_now = store.names_of(rec.id)
        if by_name and len(names_now) > 1:
            store.untag(by_name)
            return [{"Untagged": refs.parse(by_name).familiar}]
        if not by_name and len(names_now) > 1 and not force:
            raise ApiError(409, f"conflict: unable to delete {rec.short_id} (must be forced) "
                           "- image is referenced in multiple repositories")
        used = self.engine.images_in_use(store).get(rec.id)
        if used:
            what = "running" if not force else "used"
            raise ApiError(409, f"conflict: unable to remove {text} (cannot be forced) - "
                           f"{used[0]} is {what} and using image {rec.short_id}"
                           if force else f"conflict: unable to remove {text} (must force) "
                           f"- {used[0]} is using its referenced image {rec.short_id}")
        out = []
        for n in names_now:
            store.untag(n)
            out.append({"Untagged": refs.parse(n).familiar})
        for d in rec.repo_digests:
            out.append({"Untagged": refs.parse(d).familiar})
        store.remove_record(rec.id)
        out.append({"Deleted": rec.id})
        if not noprune:
            self.engine.gc()
        return out

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
            raise ApiError(400, "image import (fromSrc) is not supported by dockish's API: "
                           "use `dockish import`")
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

    async def push(self, req: Request):
        name = req.params["name"]
        tag = req.arg("tag")
        if tag:
            name += ":" + tag
        options = registry_options(req)
        await blocking(self._find, self.engine.image_store(), name)

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
        from registry.archive_out import save as do_save
        store = self.engine.image_store()
        items: dict[str, tuple] = {}
        for n in names:
            rec, by_name = await blocking(self._find, store, n)
            entry = items.setdefault(rec.id, (rec, []))
            if by_name and by_name not in entry[1]:
                entry[1].append(by_name)
        r, w = os.pipe2(os.O_CLOEXEC)
        await req.conn.start_stream("application/x-tar")
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with os.fdopen(w, "wb") as out:
                    do_save(store, list(items.values()), out, "docker-archive")
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
        from ..build import BuildOptions
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
        from unionfs import private
        base = self.engine.root / "build" / "api-contexts"
        await blocking(lambda: private.ensure(base, fix="remove it", writable_ok=False))
        ctx = Path(await blocking(tempfile.mkdtemp, "", "ctx-", str(base)))
        try:
            await _extract_context(req, ctx)
            text = await blocking(_read_dockerfile, ctx, dockerfile)

            def work(emit: Emit) -> None:
                image_id = self.engine.build(
                    ctx, opts, dockerfile_text=text,
                    progress=lambda s: emit({"stream": s}) if not opts.quiet else None)
                emit({"aux": {"ID": image_id}})
                emit({"stream": f"Successfully built {image_id.split(':', 1)[-1][:12]}\n"})
                for t in tags:
                    emit({"stream": f"Successfully tagged {t}\n"})
            await stream_json(req, work)
        finally:
            await blocking(shutil.rmtree, ctx, True)

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
        report = await blocking(self.engine.build_cache_prune, None)
        return {"CachesDeleted": report.deleted or None, "SpaceReclaimed": report.freed}


def _read_dockerfile(ctx: Path, name: str) -> str:
    """The Dockerfile named inside the context, read without following a
    link out of it."""
    if name.startswith("/") or ".." in Path(name).parts:
        raise ApiError(400, f"the Dockerfile must be inside the build context: {name}")
    try:
        fd = os.open(ctx, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            from .. import namespaces as ns
            ffd = ns.openat2(fd, name, os.O_RDONLY | os.O_CLOEXEC,
                             _RESOLVE_BENEATH | ns.RESOLVE_NO_MAGICLINKS)
        finally:
            os.close(fd)
        with os.fdopen(ffd, "rb") as f:
            data = f.read(16 << 20)
    except OSError as e:
        raise ApiError(400, f"Cannot locate specified Dockerfile: {name}: "
                       f"{e.strerror or e}") from None
    return data.decode("utf-8", "replace")


async def _extract_context(req: Request, ctx: Path) -> None:
    """The request body (a tar, maybe gzip'd) extracted into ``ctx`` by a
    thread reading a pipe the body is written to."""
    from ..hostfs import extract

    def run(r: int) -> None:
        try:
            fd = os.open(ctx, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                with os.fdopen(r, "rb", closefd=False) as inp, \
                        tarfile.open(fileobj=inp, mode="r|*") as tf:
                    extract(tf, fd, None, keep_owners=False, keep_special=False)
            finally:
                os.close(fd)
        finally:
            os.close(r)
    failure = await feed_body(req, run)
    if failure:
        raise ApiError(400, f"unable to read the build context: {failure}")


def _values(v) -> list[str]:
    if isinstance(v, dict):
        return [k for k, on in v.items() if on]
    if isinstance(v, list):
        return [str(x) for x in v]
    return [str(v)]


def _has_label(labels: dict, want: str) -> bool:
    key, eq, value = want.partition("=")
    return key in labels and (not eq or labels[key] == value)


def _ref_match(ref, pattern: str) -> bool:
    repo, _, tag = pattern.partition(":") if "/" not in pattern.rpartition(":")[2] \
        else (pattern, "", "")
    if not (fnmatch.fnmatchcase(ref.familiar_repository, repo)
            or fnmatch.fnmatchcase(ref.repository, repo)):
        return False
    return not tag or fnmatch.fnmatchcase(ref.tag or "", tag)

