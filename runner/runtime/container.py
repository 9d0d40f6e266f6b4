"""Containers on disk: one directory per container under the store root.

    ROOT/containers/<id>/config.json   what to run (written once, at create)
    ROOT/containers/<id>/state.json    pids and times (written by its monitor)
    ROOT/containers/<id>/exit.json     exit code and time (written as it ends)
    ROOT/containers/<id>/upper/        the writable layer
    ROOT/containers/<id>/rootfs/       the mountpoint of the view (inside the
                                       container's namespaces only)
    ROOT/containers/<id>/ctr-json.log  its output, one record a line (runner/runtime/logs.py)
    ROOT/containers/<id>/ctr.log       a container made before that: raw output

Whether a container runs is never taken from a file: it runs while its
holder process (pid plus start time, so a reused pid does not count) is
alive. A crash leaves the files saying "running" and ``status`` saying
exited.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import random
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import DockishError
from . import namespaces as ns

_ADJ = ["admiring", "bold", "brave", "calm", "clever", "eager", "elated", "festive",
        "focused", "gallant", "happy", "jolly", "keen", "laughing", "lucid", "nifty",
        "pensive", "quirky", "relaxed", "serene", "sharp", "stoic", "vibrant", "zealous"]
_NOUN = ["archimedes", "babbage", "curie", "darwin", "euclid", "faraday", "galileo",
         "hopper", "hypatia", "kepler", "lovelace", "meitner", "newton", "noether",
         "pascal", "ritchie", "shannon", "tesla", "thompson", "turing", "wozniak"]


EXIT_RESERVE = 256        # bytes kept for exit.json when the disk is full


class ContainerError(DockishError):
    """A container reference or lifecycle step the user got wrong."""


@dataclass
class ContainerConfig:
    """Everything needed to (re)start a container, fixed at create."""

    id: str
    name: str
    image: str
    image_id: str
    diff_ids: list[str]
    init_layer: str
    argv: list[str]
    env: list[str]
    workdir: str
    user: str
    hostname: str
    tty: bool = False
    interactive: bool = False
    read_only: bool = False
    mounts: list[dict] = field(default_factory=list)
    network: str = "host"
    ports: list[list] = field(default_factory=list)
    init: bool = False
    auto_remove: bool = False
    created: float = 0.0
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    networks: dict = field(default_factory=dict)     # user networks: name -> {ip, aliases}
    extra_hosts: list = field(default_factory=list)  # --add-host: [name, ip]
    dns: list = field(default_factory=list)          # --dns (upstreams on a user network)
    dns_search: list = field(default_factory=list)   # --dns-search, as given (inspect)
    dns_options: list = field(default_factory=list)  # --dns-option, as given (inspect)
    publish_all: bool = False                        # -P (inspect)
    exposed: list = field(default_factory=list)      # --expose and the image's: "80/tcp"
    labels: dict = field(default_factory=dict)
    image_config: dict = field(default_factory=dict)   # the image's OCI config, for commit
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    init_path: str = ""          # --init: where tini is bound (else a Python reaper)
    healthcheck: dict = field(default_factory=dict)   # Docker's HealthConfig; empty: none
    restart_policy: dict = field(default_factory=dict)  # Docker's RestartPolicy; empty: no
    stop_signal: str = ""        # --stop-signal (else the image's StopSignal, else SIGTERM)
    stop_timeout: int | None = None    # --stop-timeout: stop's wait when no -t is given
    # runner.runtime.procopts: ulimits, groups, devices...
    process: dict = field(default_factory=dict)

    def capabilities(self) -> list[str]:
        """The capability names the container's processes may hold."""
        from .capabilities import resolve
        return resolve(self.cap_add, self.cap_drop, self.privileged)


def process_tree(init: int) -> dict[int, tuple[int, str, str]]:
    """``init`` and its descendants as the host's /proc tells (readable for
    any uid): pid -> (ppid, real uid, command line)."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        procs[int(name)] = (int(fields.get("PPid", "0")), fields.get("Uid", "0").split()[0],
                            cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
                            or f"[{fields.get('Name', '')}]")
    inside = {init} if init in procs else set()
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _, _) in procs.items():
            if ppid in inside and pid not in inside:
                inside.add(pid)
                changed = True
    return {pid: procs[pid] for pid in sorted(inside)}


def new_id() -> str:
    return secrets.token_hex(32)


def random_name(taken: set[str]) -> str:
    rng = random.SystemRandom()
    while True:
        name = f"{rng.choice(_ADJ)}_{rng.choice(_NOUN)}"
        if name not in taken:
            return name


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Container:
    """One container directory and what its files (and /proc) say."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = _read_json(path / "config.json")
        if data is None:
            raise ContainerError(f"container {path.name} has no readable config")
        self.config = ContainerConfig(**data)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def upper(self) -> Path:
        return self.path / "upper"

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    @property
    def log(self) -> Path:
        """Its output as records (stream, time, bytes): ``runner.runtime.logs``."""
        return self.path / "ctr-json.log"

    @property
    def legacy_log(self) -> Path:
        """A container made before records: its raw output (all streams)."""
        return self.path / "ctr.log"

    def state(self) -> dict:
        return _read_json(self.path / "state.json") or {}

    def exit_info(self) -> dict | None:
        return _read_json(self.path / "exit.json")

    def write_state(self, **fields) -> None:
        st = self.state()
        st.update(fields)
        _write_json(self.path / "state.json", st)

    def write_exit(self, code: int) -> None:
        """First writer wins: the holder knows best; the monitor fills in
        when the holder was killed. On a full disk (a container that filled
        it, say) the code goes into the space reserved at start."""
        if self.exit_info() is not None:
            return
        data = {"code": code, "finished": time.time()}
        try:
            _write_json(self.path / "exit.json", data)
        except FileNotFoundError:
            pass          # removed meanwhile (--rm): nobody asks for the code
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self._write_reserved(json.dumps(data).encode())

    def _write_reserved(self, text: bytes) -> None:
        reserve = self.path / "exit.reserve"
        fd = os.open(reserve, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.pwrite(fd, text.ljust(EXIT_RESERVE)[:EXIT_RESERVE], 0)   # no new blocks
        finally:
            os.close(fd)
        os.replace(reserve, self.path / "exit.json")

    def clear_exit(self) -> None:
        """Before a start: no exit code yet, and room kept for the next one."""
        try:
            os.unlink(self.path / "exit.json")
        except FileNotFoundError:
            pass
        with contextlib.suppress(OSError):
            (self.path / "exit.reserve").write_bytes(b" " * EXIT_RESERVE)

    @property
    def running(self) -> bool:
        st = self.state()
        return ns.alive(st.get("holder_pid"), st.get("holder_start"))

    @property
    def paused(self) -> bool:
        """Paused by ``dockish pause`` (its processes stopped) and running."""
        return bool(self.state().get("paused")) and self.running

    @property
    def pid(self) -> int | None:
        """The container's first process, as the host numbers it."""
        st = self.state()
        return st.get("pid") if self.running else None

    @property
    def restarting(self) -> bool:
        """Waiting to be restarted by its restart policy: its monitor lives
        and said so (``runner.runtime.restart``)."""
        st = self.state()
        return bool(st.get("restarting")) and ns.alive(st.get("monitor_pid"),
                                                       st.get("monitor_start"))

    def status(self) -> tuple[str, int | None]:
        """("created"|"running"|"restarting"|"exited", exit code or None)."""
        if self.running:
            return "running", None
        st = self.state()
        if not st.get("started"):
            return "created", None
        info = self.exit_info()
        if self.restarting:
            return "restarting", (info or {}).get("code", 255)
        return "exited", (info or {}).get("code", 255)

    def finished_at(self) -> float | None:
        info = self.exit_info()
        if info:
            return info.get("finished")
        return None


class Containers:
    """All containers of one store root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "containers"

    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        """Held (``ROOT/containers.lock``, exclusive) while a container's
        name and network addresses are decided and its record written:
        compose creates a project's services side by side, and two creates
        that each read the others' records first took one address twice
        (each container then answered the other's connections: "refused")
        or one name twice."""
        fd = os.open(self.root.parent / "containers.lock",
                     os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def all(self) -> list[Container]:
        out = []
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return out
        for n in names:
            try:
                out.append(Container(self.root / n))
            except ContainerError:
                continue
        out.sort(key=lambda c: c.config.created, reverse=True)
        return out

    def get(self, ref: str) -> Container:
        """By full id, name, or unique id prefix (Docker's rules)."""
        every = self.all()
        for c in every:
            if ref in (c.id, c.name) or (ref.startswith("/") and ref[1:] == c.name):
                return c
        hits = [c for c in every if c.id.startswith(ref)] if ref else []
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ContainerError(f"multiple containers match {ref}: use a longer id")
        raise ContainerError(f"No such container: {ref}")

    def _check_name(self, name: str, every: list[Container]) -> None:
        valid = name.replace("_", "").replace("-", "").replace(".", "")
        if not valid.isalnum() or not name[0].isalnum() or not name.isascii():
            raise ContainerError(f'Invalid container name ("{name}"), only '
                                 '[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
        for c in every:
            if c.name == name:
                raise ContainerError(
                    f'Conflict. The container name "/{name}" is already in use by '
                    f'container "{c.id}". You have to remove (or rename) that '
                    "container to be able to reuse that name.")

    def rename(self, c: Container, name: str) -> None:
        """Docker's rename: the new name must be valid and free."""
        name = name.removeprefix("/")
        self._check_name(name, [o for o in self.all() if o.id != c.id])
        c.config.name = name
        _write_json(c.path / "config.json", asdict(c.config))

    def save_config(self, c: Container) -> None:
        """Rewrite a container's config after a change made to a live
        record (``network connect``/``disconnect``)."""
        _write_json(c.path / "config.json", asdict(c.config))

    def create(self, cfg: ContainerConfig) -> Container:
        every = self.all()
        if not cfg.name:
            cfg.name = random_name({c.name for c in every})
        else:
            self._check_name(cfg.name, every)
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / cfg.id
        path.mkdir(mode=0o700)
        (path / "upper").mkdir()
        (path / "rootfs").mkdir()
        cfg.created = cfg.created or time.time()
        _write_json(path / "config.json", asdict(cfg))
        return Container(path)

    def remove(self, c: Container) -> None:
        shutil.rmtree(c.path, ignore_errors=True)
        if c.path.exists():          # files the container's other uids made: chmod and retry
            for dirpath, dirnames, _ in os.walk(c.path):
                for d in dirnames:
                    try:
                        os.chmod(os.path.join(dirpath, d), 0o700)
                    except OSError:
                        pass
            shutil.rmtree(c.path, ignore_errors=True)


def container_refs(root: Path) -> tuple[dict[str, list[str]], set[str]]:
    """What containers use: image ID -> container names, and every layer
    (image layers and init layers) of every container, running or not.
    Read from ``ROOT/containers/*/config.json`` leniently (a damaged record
    must not let a GC take layers a container may still need)."""
    images: dict[str, list[str]] = {}
    layers: set[str] = set()
    base = Path(root) / "containers"
    for name in os.listdir(base) if base.is_dir() else []:
        try:
            cfg = json.loads((base / name / "config.json").read_bytes())
        except (OSError, ValueError):
            continue
        if not isinstance(cfg, dict):
            continue
        if isinstance(cfg.get("image_id"), str):
            images.setdefault(cfg["image_id"], []).append(str(cfg.get("name") or name))
        layers.update(d for d in cfg.get("diff_ids") or [] if isinstance(d, str))
        if isinstance(cfg.get("init_layer"), str):
            layers.add(cfg["init_layer"])
    return images, layers
