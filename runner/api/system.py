"""``/_ping``, ``/version``, ``/info``, ``/system/df``, ``/events``,
``/auth`` and the volume endpoints."""
from __future__ import annotations

import contextlib
import json
import platform
import time

import trio

from ..engine import Engine
from .errors import ApiError, not_found
from .server import API_VERSION, MIN_API_VERSION, NO_CONTENT, Reply, Request, Routes, blocking


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("dockish")
    except PackageNotFoundError:
        return "0.0.0"


class SystemApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, r: Routes) -> None:
        a = r.add
        a("GET", "/_ping", self.ping)
        a("HEAD", "/_ping", self.ping)
        a("GET", "/version", self.version)
        a("GET", "/info", self.info)
        a("GET", "/system/df", self.df)
        a("GET", "/events", self.events)
        a("POST", "/auth", self.auth)
        a("GET", "/volumes", self.volume_list)
        a("POST", "/volumes/create", self.volume_create)
        a("POST", "/volumes/prune", self.volume_prune)
        a("GET", "/volumes/{name}", self.volume_inspect)
        a("DELETE", "/volumes/{name}", self.volume_delete)

    async def ping(self, req: Request):
        return Reply(200, b"OK", "text/plain; charset=utf-8",
                     [("Cache-Control", "no-cache, no-store, must-revalidate"),
                      ("Pragma", "no-cache"), ("Builder-Version", "1"),
                      ("Swarm", "inactive")])

    async def version(self, req: Request):
        v = package_version()
        return {"Platform": {"Name": "dockish"}, "Version": v, "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
                "Arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(),
                                                                     platform.machine()),
                "KernelVersion": platform.release(), "GitCommit": "", "GoVersion": "",
                "BuildTime": "", "Experimental": False,
                "Components": [{"Name": "Engine", "Version": v,
                                "Details": {"ApiVersion": API_VERSION,
                                            "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
                                            "Arch": platform.machine(),
                                            "KernelVersion": platform.release()}}]}

    async def info(self, req: Request):
        return await blocking(self._info)

    def _info(self) -> dict:
        data = self._basics()
        data.update({"ID": "dockish", "Name": platform.node(), "OSType": "linux",
                     "IndexServerAddress": "https://index.docker.io/v1/",
                     "Plugins": {"Volume": ["local"], "Network": data.get("Networks", []),
                                 "Log": ["json-file"]},
                     "MemoryLimit": False, "SwapLimit": False, "Debug": False,
                     "LoggingDriver": "json-file", "DefaultRuntime": "dockish",
                     "Runtimes": {"dockish": {"path": "dockish"}},
                     "Swarm": {"LocalNodeState": "inactive", "ControlAvailable": False},
                     "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": []},
                     "SecurityOptions": ["name=rootless"], "ExperimentalBuild": False,
                     "Labels": [], "Warnings": None})
        return data

    def _basics(self) -> dict:
        """What ``dockish info`` says, in Docker's names (the engine has no
        info call yet; the CLI's own is a click module)."""
        import os
        import shutil
        from pathlib import Path

        from ..runtime import namespaces as ns
        every = self.engine.containers.all()
        running = [c for c in every if c.running]
        paused = [c for c in running if c.paused]
        try:
            images = len(self.engine.image_store().records())
        except Exception:                       # noqa: BLE001 - an unreadable store says 0
            images = 0
        mapping = ns.plan_mapping()
        mem = 0
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
        return {
            "Containers": len(every), "ContainersRunning": len(running) - len(paused),
            "ContainersPaused": len(paused), "ContainersStopped": len(every) - len(running),
            "Images": images, "Driver": "dockish (FUSE union of OCI layers)",
            "DockerRootDir": str(self.engine.root),
            "CgroupVersion": "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists()
            else "1", "CgroupDriver": _cgroup_driver(),
            "KernelVersion": platform.release(), "OperatingSystem": platform.system(),
            "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1,
            "MemTotal": mem, "ServerVersion": package_version(),
            "Networks": ["host", "none"] + [n for n in ("slirp4netns", "pasta")
                                            if shutil.which(n if n != "pasta" else "pasta")],
            "IdMapping": "subordinate ids" if mapping.full else "single id"}

    async def df(self, req: Request):
        return await blocking(self._df)

    def _df(self) -> dict:
        """The engine's record, the same ``dockish system df`` prints."""
        return self.engine.system_df()

    async def events(self, req: Request):
        """The store's events (runner/runtime/events.py) from ``since``, as Docker
        streams them: then new ones as they come, until ``until`` or until
        the client goes. Followed by polling the journal from the trio side,
        so no worker thread is left waiting on a client that went away."""
        since, until = req.arg("since") or None, req.arg("until") or None
        filters = _event_filters(req.arg("filters"))
        try:
            end = None if until is None else float(until)
            start = time.time() if since is None else float(since)
        except ValueError:
            raise ApiError(400, f"invalid since/until: {since!r} {until!r}") from None
        await req.conn.start_stream()
        if end is not None and end < start:
            return                            # a window that closed before it opened
        seen: set[tuple] = set()
        while True:
            batch = await blocking(lambda: list(self.engine.events(
                since=start, until=end if end is not None else time.time(),
                filters=filters, follow=False)))
            for ev in batch:
                key = (ev.get("timeNano"), ev.get("Action"), (ev.get("Actor") or {}).get("ID"))
                if key in seen:
                    continue
                seen.add(key)
                await req.conn.write_json(ev)
            if end is not None and time.time() >= end:
                return
            await trio.sleep(0.25)

    async def auth(self, req: Request):
        body = await req.json()
        user, password = body.get("username") or "", body.get("password") or ""
        server = body.get("serveraddress") or "docker.io"
        if not user:
            raise ApiError(400, "username is required")

        def check() -> None:
            from registry.client import Client, Options
            from registry.reference import registry_host
            host = server.split("://", 1)[-1].split("/", 1)[0]
            if host in ("index.docker.io", "registry-1.docker.io"):
                host = "docker.io"
            options = Options.from_config()
            options.credentials = (user, password)
            Client(registry_host(host), options).request("GET", "/v2/", scopes=())
        try:
            await blocking(check)
        except Exception as e:                     # noqa: BLE001 - Docker's 401
            raise ApiError(401, f"login attempt to {server} failed: {e}") from None
        return {"Status": "Login Succeeded", "IdentityToken": ""}

    # -- volumes -------------------------------------------------------------------------------

    def _volume(self, name: str) -> dict:
        vs = self.engine.volume_store
        if not vs.exists(name):
            raise not_found("volume", name)
        data = dict(vs.inspect(name))
        data.setdefault("Name", name)
        data.setdefault("Driver", "local")
        data.setdefault("Mountpoint", str(vs.path(name) / "_data"))
        data.setdefault("Scope", "local")
        data.setdefault("Options", None)
        data["Labels"] = data.get("Labels") or None
        return data

    async def volume_list(self, req: Request):
        from ..filters import from_api
        filters = from_api(req.json_arg("filters"))

        def run():
            return {"Volumes": [self._volume(v["Name"])
                                for v in self.engine.volume_list(filters)],
                    "Warnings": None}
        return await blocking(run)

    async def volume_create(self, req: Request):
        body = await req.json()
        labels = body.get("Labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise ApiError(400, "Labels must be an object of strings")
        name = body.get("Name") or None

        def run():
            return self._volume(self.engine.volume_create(
                name, labels, body.get("Driver") or "local", body.get("DriverOpts") or {}))
        return Reply(201, await blocking(run))

    async def volume_inspect(self, req: Request):
        return await blocking(self._volume, req.params["name"])

    async def volume_delete(self, req: Request):
        name = req.params["name"]
        await blocking(self._volume, name)
        await blocking(self.engine.volume_remove, name, req.flag("force"))
        return NO_CONTENT

    async def volume_prune(self, req: Request):
        from ..filters import from_api
        filters = from_api(req.json_arg("filters"))
        report = await blocking(self.engine.volume_prune, False, filters)
        return {"VolumesDeleted": report.deleted or None, "SpaceReclaimed": report.freed}


def _event_filters(raw: str | None) -> dict[str, list[str]]:
    """Docker's ``filters`` JSON ({key: [values]} or {key: {value: true}})."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, f"invalid filters: {raw}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"invalid filters: {raw}")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out[str(k)] = [str(x) for x, on in v.items() if on]
        elif isinstance(v, list):
            out[str(k)] = [str(x) for x in v]
        else:
            raise ApiError(400, f"invalid filters: {raw}")
    return out


def _cgroup_driver() -> str:
    """Docker's field: cgroupfs when a cgroup is delegated to the user
    (dockish writes its files itself), else none (runner.sysinfo's rule)."""
    from ..runtime.cgroups import delegation
    return "cgroupfs" if delegation() else "none"
