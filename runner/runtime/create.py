"""Making and removing a container: the one path ``run``/``create`` and a
build's RUN steps share (init layer, volumes, record; a failure on the way
takes back what was made, so bad input leaves nothing behind).

A ``ContainerSpec`` is checked, resolved input: the engine builds one from
``CreateOptions`` (the CLI's flags, or an API request's JSON), the builder
from a RUN step. No click, no printing: notes go to the ``notify`` callback.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unionfs.layers import LayerStore

from ..errors import DockishError, UsageError
from . import config as cfgmod
from . import namespaces as ns
from . import network
from .container import Container, ContainerConfig, Containers, new_id
from .rootfs import make_init_layer, remove_init_layer
from .volumes import ANONYMOUS, Volumes, remove_in

NETWORKS = ("host", "none", "slirp4netns", "pasta")
Notify = Callable[[str], None]


def network_mode(requested: str | None, default: str | None, notify: Notify) -> str:
    """The network a container gets: ``requested`` if named, else
    ``default`` (a build's RUN steps: the host's), else the best private one
    (with a note, given once by ``notify``, when only the host's is usable)."""
    if requested in (None, "", "default", "private", "bridge"):
        if default:
            return default
        mode, note = network.default_network()
        if note:
            notify(note)
        return mode
    if requested not in NETWORKS:
        from .netconf import is_user_network
        if is_user_network(requested) or requested.startswith("container:"):
            # a user network: runner.runtime.netplan finds it; a container's:
            # the engine names it by id (runner.runtime.netjoin)
            return requested
        raise network.NetworkError(f"network {requested} not found: use host, none, "
                                   "slirp4netns or pasta")
    return requested


def container_ip(net: str) -> str | None:
    """The container's address on its network (slirp4netns' fixed one)."""
    return network.SLIRP_IP if net == "slirp4netns" else None


def tini() -> str | None:
    """A static tini for ``--init`` ($DOCKISH_INIT, else Debian's tini-static
    or Docker's docker-init); None: dockish's own reaper stands in."""
    for cand in (os.environ.get("DOCKISH_INIT"), "/usr/bin/tini-static",
                 "/usr/libexec/docker/docker-init", shutil.which("docker-init")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


@dataclass
class ContainerSpec:
    """Everything a new container is made from, checked and resolved."""

    image: str                       # as the user named it ("(build)" for RUN steps)
    image_id: str
    diff_ids: list[str]
    argv: list[str]
    env: list[str]
    workdir: str
    user: str
    hostname: str
    network: str
    mounts: list[cfgmod.MountReq] = field(default_factory=list)
    name: str = ""
    id: str = field(default_factory=new_id)
    image_config: dict = field(default_factory=dict)
    tty: bool = False
    interactive: bool = False
    read_only: bool = False
    ports: list[list] = field(default_factory=list)
    net: object = None               # runner.runtime.netplan.NetPlan: user networks, hosts, DNS
    init: bool = False
    init_path: str = ""
    auto_remove: bool = False
    healthcheck: dict = field(default_factory=dict)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    restart_policy: dict = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    process: dict = field(default_factory=dict)
    borrowed: list[dict] = field(default_factory=list)   # --volumes-from (volumes_from)


BORROWED = "from"       # a mount record's key: the container it was borrowed from


def volumes_from(refs: list[str], containers, own_targets: set[str]) -> list[dict]:
    """``--volumes-from CTR[:ro|rw]``: CTR's volumes and binds, mounted at
    the same places (its tmpfs mounts and ``--init``'s tini are its own),
    read-only with ``:ro`` or when they are read-only there, as Docker's;
    a mount of the new container's own at the same place wins. Each is
    marked with the container it came from, so removing this container
    never removes a volume it only borrowed."""
    out: dict[str, dict] = {}
    for ref in refs:
        if not ref:
            raise UsageError("volumes-from specification cannot be an empty string")
        name, _, mode = ref.partition(":")
        if mode not in ("", "ro", "rw", "z", "Z", "ro,z", "ro,Z", "rw,z", "rw,Z"):
            raise UsageError(f"invalid mode for volumes-from: {mode}")
        try:
            donor = containers.get(name)
        except DockishError:
            raise UsageError(f"No such container: {name}") from None
        for m in donor.config.mounts:
            if m["kind"] not in ("bind", "volume") or \
                    (donor.config.init_path and m["target"] == donor.config.init_path):
                continue
            out[m["target"]] = {**{k: m[k] for k in MOUNT_FIELDS},
                                "readonly": bool(m["readonly"]) or "ro" in mode.split(","),
                                BORROWED: donor.id}
    return [m for target, m in out.items() if target not in own_targets]


MOUNT_FIELDS = ("kind", "source", "target", "readonly", "options")


def make_container(root: Path, spec: ContainerSpec) -> Container:
    """Make the volumes, the init layer and the record of ``spec``; on any
    failure take back what was made and re-raise."""
    made_volumes: list[str] = []
    init_layer = None
    layers = LayerStore(root)
    try:
        fixed = _make_mounts(root, spec.mounts, made_volumes) + \
            [dict(m) for m in spec.borrowed]
        from .netplan import for_network
        plan = for_network(root, spec.network, spec.net)     # build --network NAME too
        init_layer = make_init_layer(layers, spec.hostname, spec.network,
                                     plan.address() if plan else container_ip(spec.network),
                                     plan.hosts_lines if plan else (),
                                     plan.resolv if plan else None)
        cfg = ContainerConfig(
            id=spec.id, name=spec.name, image=spec.image, image_id=spec.image_id,
            diff_ids=list(spec.diff_ids), init_layer=init_layer, argv=spec.argv,
            env=spec.env, workdir=spec.workdir, user=spec.user, hostname=spec.hostname,
            tty=spec.tty, interactive=spec.interactive, read_only=spec.read_only,
            mounts=fixed, network=spec.network, ports=spec.ports, init=spec.init,
            auto_remove=spec.auto_remove, image_config=spec.image_config,
            init_path=spec.init_path, healthcheck=spec.healthcheck, cap_add=spec.cap_add,
            cap_drop=spec.cap_drop, privileged=spec.privileged, entrypoint=spec.entrypoint,
            cmd=spec.cmd, labels=spec.labels,
            restart_policy=spec.restart_policy, stop_signal=spec.stop_signal,
            stop_timeout=spec.stop_timeout, process=spec.process)
        if plan:
            plan.apply(cfg)
        return Containers(root).create(cfg)
    except BaseException:
        for name in made_volumes:
            with contextlib.suppress(DockishError, OSError):
                remove_volume(root, name)
        if init_layer is not None:
            remove_init_layer(layers, init_layer)
        raise


def _make_mounts(root: Path, mounts: list[cfgmod.MountReq],
                 made_volumes: list[str]) -> list[dict]:
    """The checked mounts as the record keeps them: a missing ``-v`` bind
    source is made (as Docker does), volumes are created; the volumes this
    made are appended to ``made_volumes`` (to be taken back on failure)."""
    vols = Volumes(root)
    fixed = []
    for m in mounts:
        if m.kind == "bind":
            src = os.path.abspath(m.source)
            if not os.path.lexists(src):          # a host file is bound as it is
                os.makedirs(src, exist_ok=True)
            m = cfgmod.MountReq("bind", src, m.target, m.readonly, m.options)
        elif m.kind == "volume":
            existed = bool(m.source) and vols.exists(m.source)
            name = vols.create(m.source or None, {ANONYMOUS: ""} if not m.source else None)
            if not existed:
                made_volumes.append(name)
            m = cfgmod.MountReq("volume", name, m.target, m.readonly, m.options)
        fixed.append(m.__dict__.copy())
    return fixed


def remove_container(root: Path, c: Container) -> None:
    """Remove a stopped container's files (some may belong to its other
    uids: removed from inside a user namespace then) and its init layer;
    a ``--rm`` container's anonymous volumes go too, as in Docker."""
    Containers(root).remove(c)
    if c.path.exists():
        ns.in_userns(lambda: shutil.rmtree(c.path, ignore_errors=True), ns.plan_mapping())
    remove_init_layer(LayerStore(root), c.config.init_layer)
    if c.config.auto_remove:
        remove_anonymous_volumes(root, c)


def remove_anonymous_volumes(root: Path, c: Container) -> list[str]:
    """The anonymous volumes a removed container had (``rm -v``, ``--rm``):
    only those it made, not one it borrowed (``--volumes-from``), and not
    one another container still uses (Docker's daemon keeps a volume in
    use)."""
    vols = Volumes(root)
    in_use = {m["source"] for other in Containers(root).all() if other.id != c.id
              for m in other.config.mounts if m["kind"] == "volume"}
    gone = []
    for m in c.config.mounts:
        if m["kind"] == "volume" and not m.get(BORROWED) and m["source"] not in in_use and \
                vols.exists(m["source"]) and vols.anonymous(m["source"]):
            remove_volume(root, m["source"])
            gone.append(m["source"])
    return gone


def remove_volume(root: Path, name: str) -> None:
    """Files a container's other uids made are only ours to remove inside a
    user namespace: then the same fd walk, never following a symlink."""
    vols = Volumes(root)
    try:
        vols.remove(name)
    except OSError:
        path = vols.path(name)

        def again() -> None:
            try:
                remove_in(path.parent, path.name)
            except OSError:
                pass
        ns.in_userns(again, ns.plan_mapping())
        if path.exists():
            raise
