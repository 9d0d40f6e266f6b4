"""The engine: every operation the front ends need (the ``dockish`` CLI
now, a Docker Engine API server next), as a library.

``Engine(root)`` takes typed option records (``CreateOptions``,
``ExecOptions``, ``BuildOptions``, ...), returns records (dataclasses and
Docker-shaped dicts), streams (log chunks) and exit codes, and raises
``DockishError`` subclasses (``runner.errors``) or the registry's
``DistributionError``. It never prints and never exits: notes the user
should see (a missing image being pulled, a network note) go to
``notify``, progress to the callbacks the caller passes.
"""
from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from unionfs.layers import LayerStore, default_root

from . import format as fmt
from .errors import DockishError, EscapeError, NotFoundError, UsageError
from .runtime import config as cfgmod
from .runtime import create as createmod
from .runtime import labels as labelsmod
from .runtime import namespaces as ns
from .runtime.container import Container, Containers, container_refs
from .runtime.events import container_event
from .runtime.logs import LogEntry
from .runtime.monitor import Fds
from .runtime.volumes import ANONYMOUS, Volumes

Notify = Callable[[str], None]
# a pull's progress: (event, short layer id, bytes done, bytes total); events are
# start, exists, download, complete (push: push, mounted)
Progress = Callable[[str, str, int, int], None]


def _quiet(_note: str) -> None:
    pass


@dataclass
class CreateOptions:
    """What ``run``/``create`` (or ``POST /containers/create``) ask for."""

    image: str
    args: list[str] = field(default_factory=list)
    name: str = ""
    interactive: bool = False
    tty: bool = False
    auto_remove: bool = False
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    volumes: list[str] = field(default_factory=list)       # -v
    mounts: list[str] = field(default_factory=list)        # --mount
    tmpfs: list[str] = field(default_factory=list)
    network: str | None = None
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False                              # -P
    expose: list[str] = field(default_factory=list)
    network_aliases: list[str] = field(default_factory=list)
    ip: str | None = None
    add_host: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_option: list[str] = field(default_factory=list)
    entrypoint: str | None = None
    init: bool = False
    read_only: bool = False
    pull: str = "missing"
    platform: str | None = None        # --platform os/arch[/variant]: what to pull, what to run
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    health_cmd: str | None = None
    health_interval: str | None = None
    health_timeout: str | None = None
    health_retries: int | None = None
    health_start_period: str | None = None
    no_healthcheck: bool = False
    restart: str = ""                 # --restart: no, always, on-failure[:N], unless-stopped
    stop_signal: str | None = None
    stop_timeout: int | None = None
    quiet: bool = False               # -q: no pull notes
    process: dict = field(default_factory=dict)   # runner.runtime.procopts.parse's record
    labels: dict[str, str] = field(default_factory=dict)     # --label (over the files')
    label_files: list[str] = field(default_factory=list)     # --label-file
    volumes_from: list[str] = field(default_factory=list)    # --volumes-from CTR[:ro|rw]
    health_start_interval: str | None = None


@dataclass
class ExecOptions:
    """What ``exec`` asks for."""

    command: list[str]
    interactive: bool = False
    tty: bool = False
    detach: bool = False
    user: str | None = None
    workdir: str | None = None
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    attach_stdout: bool = True          # the API's AttachStdout/AttachStderr
    attach_stderr: bool = True
    privileged: bool = False            # --privileged: every capability
    detach_keys: str = "ctrl-p,ctrl-q"  # with -it: what detaches ("": nothing)


@dataclass
class PruneReport:
    """What a prune removed and the bytes it freed."""

    deleted: list[str] = field(default_factory=list)
    freed: int = 0


@dataclass
class DiskUsage:
    """``system df``'s data: image records, image ID -> users, layer sizes
    and how many images share each, (container, writable layer size, its
    volumes), (volume, size, containers using it), the build cache."""

    store: object
    images: list
    in_use: dict[str, list[str]]
    layer_sizes: dict[str, int]
    layer_users: dict[str, int]
    containers: list[tuple[Container, int, list[str]]]
    volumes: list[tuple[str, int, int]]
    build_cache: dict[str, int]


@dataclass
class SystemPruneReport:
    containers: PruneReport
    volumes: PruneReport | None
    images: PruneReport
    build_cache: PruneReport
    networks: list[str] = field(default_factory=list)


class Engine:
    """Containers, images, volumes and builds of one store root."""

    def __init__(self, root: Path | None = None, notify: Notify | None = None,
                 detach_via: str = "fork") -> None:
        """``detach_via``: how a detached container's monitor is made.
        ``fork`` (a command-line process): forked from this one. ``fresh``
        (a long-lived, multi-threaded server): a fresh interpreter starts it
        and exits, so the monitor is never the server's child and inherits
        no lock another thread held at the fork (``monitor.start_fresh``)."""
        if detach_via not in ("fork", "fresh"):
            raise ValueError(f"detach_via: fork or fresh, not {detach_via!r}")
        self.root = Path(root) if root is not None else default_root()
        self.notify = notify or _quiet
        self.detach_via = detach_via
        from .runtime.execs import ExecTable
        self.exec_table = ExecTable()       # exec instances (a server's lifetime)

    # -- stores ----------------------------------------------------------------------------------

    @property
    def layers(self) -> LayerStore:
        return LayerStore(self.root)

    def image_store(self):
        """The image store, told what else keeps layers alive (containers,
        cached build steps): the registry package knows neither."""
        from registry.store import ImageStore
        return ImageStore(self.root, self.layers, keep=self.kept_layers)

    def kept_layers(self) -> set[str]:
        """Layers outside any image that must stay: every container's (image
        and init layers) and the build cache's."""
        from .builder.buildcache import BuildCache
        return container_refs(self.root)[1] | BuildCache(self.root, self.layers).live_layers()

    @property
    def containers(self) -> Containers:
        return Containers(self.root)

    @property
    def volume_store(self) -> Volumes:
        return Volumes(self.root)

    def say_once(self, marker: str, note: str) -> None:
        """A note the user needs once per store, not on every command."""
        path = self.root / marker
        if path.exists():
            return
        self.notify(f"dockish: {note}")
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()

    def mapping(self) -> ns.IdMapping:
        """The id mapping; without subordinate ranges, said once per store."""
        m = ns.plan_mapping()
        helper = ns.helper_problem()
        if not m.full and helper:
            self.say_once(".single-mapping-noted", f"{helper}: containers get a single "
                          "mapping (only root exists inside; `dockish check` names the fix)")
        elif not m.full:
            self.say_once(".single-mapping-noted", "no /etc/subuid and /etc/subgid ranges for "
                          "this user: containers get a single mapping (only root exists "
                          "inside; ask an admin for ranges, e.g. `usermod --add-subuids`)")
        return m

    def get(self, ref: str) -> Container:
        return self.containers.get(ref)

    # -- images: resolve and pull ----------------------------------------------------------------

    def resolve_image(self, text: str, pull: str = "missing", progress: Progress | None = None,
                      platform: str | None = None):
        """The image and its layers: archives are read directly; names come
        from the image store, pulled first with ``pull="always"`` or when
        missing (``"missing"``, Docker's default). With ``platform``, a
        stored image of another platform counts as missing (Docker pulls the
        one asked for) and what is run must be of that platform."""
        from registry.archive import ImageError
        from registry.resolve import is_archive_source, resolve
        store = self.layers
        if pull not in ("missing", "always", "never"):
            raise UsageError(f'invalid pull option: "{pull}": use missing, always or never')
        want = _platform_wanted(platform)
        if is_archive_source(text):
            try:
                img = resolve(text, store)
            except (ImageError, ValueError) as e:
                raise DockishError(f"Unable to find image '{text}': {e}") from None
            return _check_platform(text, img, want)
        if pull != "always":
            try:
                img = resolve(text, store)
                if want is None or _platform_of(img) == want:
                    return img
                if pull == "never":
                    return _check_platform(text, img, want)
            except (ImageError, ValueError):
                if pull == "never":
                    raise NotFoundError(f"Unable to find image '{_shown(text)}' locally") \
                        from None
            self.notify(f"Unable to find image '{_shown(text)}' locally")
        last: Exception | None = None
        for _ in range(3):          # a prune may take a just-pulled image: pull again
            self._pull_for_run(text, progress, platform)
            try:
                return _check_platform(text, resolve(text, store), want)
            except (ImageError, ValueError) as e:
                last = e
        raise DockishError(f"Unable to find image '{text}': {last}")

    def _pull_for_run(self, text: str, progress: Progress | None,
                      platform: str | None = None) -> None:
        from registry.client import Options
        try:
            self.pull(text, Options.from_config(retries=1), platform, progress=progress)
        except DockishError:
            raise
        except Exception as e:          # noqa: BLE001 - network errors of every kind
            raise DockishError(f"pull of {_shown(text)} failed: "     # said once, by notify
                               f"{str(e) or type(e).__name__}") from None

    def pull(self, name: str, options=None, platform: str | None = None,
             progress: Progress | None = None):
        """Pull ``name`` into the store; the registry's ``PullResult``."""
        from registry.client import Options
        from registry.pull import pull
        result = pull(name, self.image_store(), options or Options.from_config(), platform,
                      progress)
        ref = str(getattr(result, "reference", "") or name)
        self.event("image", "pull", ref, {"name": ref})
        return result

    def push(self, name: str, destination: str | None = None, options=None,
             progress: Progress | None = None):
        """Push the stored ``name`` (as ``destination``); the ``PushResult``."""
        from registry.client import Options
        from registry.push import push
        store = self.image_store()
        store.find(name)
        return push(destination or name, store, options or Options.from_config(),
                    source=name if destination else None, progress=progress)

    def repository_tags(self, name: str) -> list[str]:
        """``push -a``: every stored name of ``name``'s repository, sorted
        (Docker's errors: a tag in ``name``, a repository with none)."""
        from registry import reference as refs
        ref = refs.parse(name)
        if ":" in name.rsplit("/", 1)[-1] or "@" in name:      # as typed: parse adds latest
            raise UsageError("tag can't be used with --all-tags/-a")
        names = sorted(n for n in self.image_store().tags()
                       if refs.parse(n).repository == ref.repository)
        if not names:
            raise NotFoundError(f"An image does not exist locally with the tag: "
                                f"{refs.Reference(ref.domain, ref.path).familiar}",
                                exit_code=1)
        return names

    def tag(self, source: str, target: str) -> None:
        from registry import reference as refs
        store = self.image_store()
        rec, _ = store.find(source)
        ref = refs.parse(target)
        if ref.digest:
            raise UsageError(f"refusing to create a tag with a digest reference: {target}")
        store.tag(str(ref), rec.id)
        self.event("image", "tag", rec.id, {"name": str(ref)})

    def images_in_use(self, store=None) -> dict[str, list[str]]:
        """Image ID -> what uses it: ``container NAME`` (any state) or ``mount
        at DIR`` (a live dockish mount)."""
        store = store or self.image_store()
        out: dict[str, list[str]] = {}
        for image_id, names in container_refs(self.root)[0].items():
            out.setdefault(image_id, []).extend(f"container {n}" for n in names)
        for image_id, users in self._mount_users(store).items():
            out.setdefault(image_id, []).extend(u.shown for u in users)
        return out

    def _mount_users(self, store) -> dict[str, list]:
        from unionfs import mounts

        from .imageops import ImageUser
        out: dict[str, list[ImageUser]] = {}
        for rec in mounts.all_records():
            if not rec.alive:
                continue
            try:
                img, _ = store.find(rec.image)
            except Exception:                            # noqa: BLE001 - archives, removed names
                continue
            out.setdefault(img.id, []).append(ImageUser("mount", rec.mountpoint, True))
        return out

    def image_users(self, store=None) -> dict[str, list]:
        """Image ID -> its ``ImageUser``s: containers (running ones first) and
        live mounts, for Docker's rmi conflict rules."""
        from .imageops import ImageUser
        store = store or self.image_store()
        out: dict[str, list[ImageUser]] = self._mount_users(store)
        for c in self.containers.all():
            out.setdefault(c.config.image_id, []).append(
                ImageUser("container", c.id, c.running))
        for users in out.values():
            users.sort(key=lambda u: not u.running)
        return out

    def images(self, filters: dict[str, list[str]] | None = None) -> list:
        """``images`` / ``GET /images/json``: ``ImageSummary`` records,
        newest first, through Docker's filters."""
        from .imageops import list_images
        store = self.image_store()
        return list_images(store, filters or {}, self.images_in_use(store))

    def history(self, name: str) -> list:
        """``history``: the image's ``HistoryEntry`` steps, newest first."""
        from .imageops import history
        store = self.image_store()
        return history(store, store.find(name)[0])

    def import_image(self, source: str, data=None, *, changes: list[str] | None = None,
                     message: str = "", platform: str | None = None,
                     reference: str | None = None):
        """``import``: a one-layer image from a rootfs tarball (``data``, a
        file object, else the URL or file ``source``); its record."""
        from .imageops import import_image
        rec = import_image(self.image_store(), source, data, changes=changes,
                           message=message, platform=platform, reference=reference)
        self.event("image", "import", rec.id, {"name": reference or rec.id})
        return rec

    def remove_image(self, name: str, force: bool = False,
                     prune: bool = True) -> list[tuple[str, str]]:
        """``rmi NAME``: [("Untagged"|"Deleted", what)] with Docker's rules
        (``imageops.remove_image``); unused layers freed with ``prune``."""
        from .imageops import remove_image
        store = self.image_store()
        with store.collecting():        # no container is created from it meanwhile
            rec, _ = store.find(name)
            users = self.image_users(store).get(rec.id, [])
            lines, deleted = remove_image(
                store, name, users, force,
                lambda action, image_id, ref: self.event("image", action, image_id,
                                                         {"name": ref}))
            if deleted and prune:
                store.gc()
        return lines

    def image_prune(self, all_: bool = False,
                    filters: dict[str, list[str]] | None = None) -> PruneReport:
        """Remove unused images (untagged ones; with ``all_`` or
        ``dangling=false``, every image nothing uses), as Docker's
        ``filters`` (``until``, ``label``, ``label!``) allow;
        ``deleted`` lists Docker's ``untagged:``/``deleted:`` lines."""
        from registry import reference as refs

        from . import filters as flt
        f = dict(filters or {})
        flt.validate(f, flt.IMAGE_PRUNE_KEYS)
        all_ = all_ or not flt.get_bool(f, "dangling", True)
        limit = flt.until(f)
        store = self.image_store()
        lines = []
        # what nothing uses is decided and removed under one exclusive hold:
        # a pull names its image, a run makes its container, before or after
        with store.collecting():
            in_use = self.images_in_use(store)
            tags = store.tags()
            for rec in store.records():
                names = store.names_of(rec.id, tags)
                if rec.id in in_use or (names and not all_):
                    continue
                if f:
                    conf = store.config(rec) or {}
                    if not flt.prune_picks(f, fmt.parse_time(conf.get("created")),
                                           (conf.get("config") or {}).get("Labels"), limit):
                        continue
                for n in names:
                    store.untag(n)
                    self.event("image", "untag", rec.id, {"name": n})
                    lines.append(f"untagged: {refs.parse(n).familiar}")
                store.remove_record(rec.id)
                self.event("image", "delete", rec.id, {"name": rec.id})
                lines.append(f"deleted: {rec.id}")
            return PruneReport(lines, store.gc())

    def inspect_image(self, name: str) -> dict:
        """Docker's ``inspect`` of a stored image."""
        from .images import inspect_image
        store = self.image_store()
        rec, _ = store.find(name)
        return inspect_image(store, rec)

    def save(self, names: list[str], out, fmt: str = "docker-archive") -> None:
        """The images as a docker-archive (or OCI) tar written to ``out``."""
        from registry.archive_out import save
        store = self.image_store()
        items: dict[str, tuple] = {}
        for n in names:
            rec, by_name = store.find(n)
            entry = items.setdefault(rec.id, (rec, []))
            if by_name and by_name not in entry[1]:
                entry[1].append(by_name)
        save(store, list(items.values()), out, fmt)

    def load(self, path: Path) -> list:
        """Images from an archive at ``path``: [(record, names)]."""
        from registry.archive_out import load
        return load(self.image_store(), Path(path))

    # -- images: mounts -----------------------------------------------------------------------

    def mount(self, image: str, mountpoint: str | None = None, upper: str | None = None,
              options: list[str] | None = None, rw: bool = False, foreground: bool = False):
        """``mount``: IMAGE's merged layers at MOUNTPOINT (made when None),
        read-only unless ``rw``; the daemon's ``MountSpec``."""
        from .runtime.mounting import mount
        return mount(self.layers, image, mountpoint, upper, options, rw, foreground)

    def mounts(self) -> list:
        """The live mounts' records (dead ones cleaned up, said to ``notify``)."""
        from .runtime.mounting import live_mounts
        return live_mounts(self.notify)

    def umount(self, targets: list[str], all_: bool = False) -> list[tuple[str, str]]:
        """Unmount by mountpoint or image: [(mountpoint, problem or "")]."""
        from .runtime.mounting import umount
        return umount(targets, all_)

    def gc(self) -> int:
        """Free the layers and blobs nothing uses; the bytes freed."""
        return self.image_store().gc()

    # -- containers: create, start, run ---------------------------------------------------------

    def create(self, opts: CreateOptions, progress: Progress | None = None) -> Container:
        """Make the container (config, dirs, init layer) from ``opts``; bad
        options are refused before an image is looked up or pulled."""
        from .runtime import restart
        env_over = env_overrides(opts.env_files, opts.env)
        own_labels = {**labelsmod.parse([], labelsmod.read_files(opts.label_files)),
                      **opts.labels}
        policy = restart.parse(opts.restart)
        if opts.auto_remove and not policy.none:
            raise UsageError("Conflicting options: --restart and --rm")
        if opts.stop_signal:
            cfgmod.parse_signal(opts.stop_signal)
        mounts, init_path = _parse_mounts(opts)
        borrowed = createmod.volumes_from(list(opts.volumes_from), self,
                                          {m.target for m in mounts})
        from .runtime import nsmodes
        nsmodes.resolve(opts.process, self)        # --pid/--ipc container:NAME, by id
        from .runtime.procopts import limits_note
        note = limits_note(opts.process)
        if note:
            self.notify(note)
        for p in opts.publish:
            cfgmod.parse_publish(p)
        self.live_containers()             # a dead --rm container must not hold its name
        images = self.image_store()
        layers = self.layers
        resolver = Engine(self.root, _quiet) if opts.quiet else self
        for attempt in range(3):
            img = resolver.resolve_image(opts.image, opts.pull if attempt == 0 else "missing",
                                         progress, opts.platform)
            # held until the container names its layers, so a prune running now
            # cannot take them (or the new init layer) away in between
            with images.writing():
                if all(layers.tar_path(d).exists() for d in img.diff_ids):
                    with self.containers.claiming():    # its name and addresses its own
                        spec = self._spec(opts, img, env_over, mounts, init_path)
                        spec.borrowed = borrowed
                        spec.labels = labelsmod.merged(
                            ((img.config or {}).get("config") or {}).get("Labels"),
                            own_labels)
                        c = createmod.make_container(self.root, spec)
                    container_event(c, "create")
                    return c
        raise DockishError(f"image {opts.image} was removed while the container was being "
                           "created")

    def _spec(self, opts: CreateOptions, img, env_over: list[str], mounts: list,
              init_path: str) -> createmod.ContainerSpec:
        """Check every input against the image; the container's spec."""
        from .runtime import netjoin, restart
        from .runtime.capabilities import resolve as resolve_caps
        conf = (img.config or {}).get("config") or {}
        env = cfgmod.merge_env(list(conf.get("Env") or []), env_over)
        argv = cfgmod.command(conf, opts.entrypoint, list(opts.args))
        spec_id = createmod.new_id()
        hostname = opts.hostname or spec_id[:12]
        if opts.process.get("uts") == "host":      # the host's name, which it cannot change
            if opts.hostname:
                raise UsageError("Conflicting options: hostname and the UTS mode")
            import socket
            hostname = socket.gethostname()
        net = createmod.network_mode(
            opts.network, None, lambda note: self.say_once(".network-noted", note))
        from .runtime.nsmodes import check_network
        check_network(opts.process, net)
        if netjoin.is_join(net):        # --network container:NAME, by id from here on
            net = netjoin.resolve(net, self, opts.publish, opts.network_aliases, opts.ip)
        ports = self._ports(opts.publish, net)
        net_plan = self._net_plan(opts, net, conf, ports)
        workdir = opts.workdir or conf.get("WorkingDir") or "/"
        if not workdir.startswith("/"):
            raise UsageError(f"the working directory '{workdir}' is invalid, it needs to be "
                             "an absolute path")
        user = opts.user if opts.user is not None else (conf.get("User") or "")
        if opts.process.get("userns") == "keep-id":
            from .runtime.procopts import keep_id
            keep_id(self.mapping(), os.getuid(), os.getgid())    # refused without ranges
            if opts.user is None:                 # Podman's: the user's own ids inside
                user = f"{os.getuid()}:{os.getgid()}"
        for what, values in (("command", argv), ("environment variable", env),
                             ("working directory", [workdir]), ("user", [user]),
                             ("hostname", [hostname]), ("container name", [opts.name or ""])):
            cfgmod.check_no_nul(what, values)
        resolve_caps(list(opts.cap_add), list(opts.cap_drop), opts.privileged)
        image_entry = list(conf.get("Entrypoint") or [])
        return createmod.ContainerSpec(
            id=spec_id, name=opts.name or "", image=opts.image, image_id=img.config_digest,
            diff_ids=list(img.diff_ids), argv=argv, env=env, workdir=workdir, user=user,
            hostname=hostname, network=net, mounts=mounts, tty=opts.tty,
            interactive=opts.interactive, read_only=opts.read_only, ports=net_plan.ports,
            net=net_plan, init=opts.init, init_path=init_path, auto_remove=opts.auto_remove,
            image_config=dict(img.config or {}), healthcheck=_healthcheck(conf, opts),
            cap_add=list(opts.cap_add), cap_drop=list(opts.cap_drop),
            privileged=opts.privileged,
            entrypoint=image_entry if opts.entrypoint is None
            else ([opts.entrypoint] if opts.entrypoint else []),
            cmd=argv[len(image_entry):] if opts.entrypoint is None else list(opts.args),
            restart_policy={} if restart.parse(opts.restart).none      # "no": none kept
            else restart.parse(opts.restart).as_docker(), stop_signal=opts.stop_signal or "",
            stop_timeout=opts.stop_timeout, process=dict(opts.process))

    def _ports(self, publish: list[str], net: str) -> list[list]:
        from .runtime.network import free_port
        ports = [list(cfgmod.parse_publish(p)) for p in publish]
        from .runtime.netconf import is_user_network
        if ports and net not in ("slirp4netns", "pasta") and not is_user_network(net):
            if net != "host":
                raise UsageError(f"-p needs a private network (slirp4netns or pasta), not "
                                 f"--network {net}")
            self.notify("dockish: -p is ignored with the host network: the container's "
                        "ports are the host's")
            return []
        return [[ip, hp or free_port(), cp, proto] for ip, hp, cp, proto in ports]

    def _net_plan(self, opts: CreateOptions, net: str, image_conf: dict, ports: list):
        """User networks, -P, --expose, --add-host, --dns (runner.runtime.netplan)."""
        from .runtime.netplan import plan, used_addresses
        return plan(self.root, net, image_conf=image_conf, ports=ports,
                    publish_all=opts.publish_all, expose=list(opts.expose),
                    aliases=list(opts.network_aliases), ip=opts.ip,
                    add_host=list(opts.add_host), dns=list(opts.dns),
                    dns_search=list(opts.dns_search), dns_option=list(opts.dns_option),
                    used_ips=used_addresses(self.containers.all()))

    # -- networks (runner.runtime.netops) ----------------------------------------------------------

    def network_create(self, name: str, subnet: str | None = None, gateway: str | None = None,
                       internal: bool = False, labels: dict | None = None,
                       driver: str = "bridge", ip_range: str | None = None,
                       aux: dict | None = None, options: dict | None = None):
        """``network create``: the new NetworkRecord."""
        from .runtime import netops
        return netops.create(self.root, name, subnet, gateway, internal, labels or {}, driver,
                             ip_range, aux, options)

    def network_list(self, filters: dict | None = None) -> list:
        """``network ls``: NetworkRecords (the three pre-defined ones too)."""
        from .runtime import netops
        return netops.list_(self.root, filters)

    def network_inspect(self, ref: str) -> dict:
        from .runtime import netops
        return netops.inspect(self.root, ref)

    def network_remove(self, ref: str):
        from .runtime import netops
        return netops.remove(self.root, ref)

    def network_prune(self, filters: dict | None = None) -> list[str]:
        """Remove the user networks no container uses; their names."""
        from .runtime import netops
        return netops.prune(self.root, filters)

    def network_connect(self, net: str, ref: str, aliases: list[str] | None = None,
                        ip: str | None = None) -> None:
        from .runtime import netops
        netops.connect(self.root, net, self.get(ref), list(aliases or []), ip)

    def network_disconnect(self, net: str, ref: str) -> None:
        from .runtime import netops
        netops.disconnect(self.root, net, self.get(ref))

    def _launch(self, c: Container):
        from .runtime.launch import Launch
        layers = self.layers
        ids = list(c.config.diff_ids) + [c.config.init_layer]
        mapping = self.mapping()
        if c.config.process.get("userns") == "keep-id":
            from .runtime.procopts import keep_id
            mapping = keep_id(mapping, os.getuid(), os.getgid())
        return Launch(c, [(layers.tar_path(d), layers.load_index(d)) for d in ids], ids,
                      mapping, self.root / "volumes")

    def start(self, ref: str | Container) -> Container:
        """Start a created or stopped container under a monitor of its own;
        returns once its command runs (a running one is left as it is)."""
        from .runtime.monitor import start_detached, start_fresh
        from .runtime.restart import clear_stop
        c = ref if isinstance(ref, Container) else self.get(ref)
        if c.restarting:               # a manual start ends the wait, as Docker's
            self._end_restarts(c)
        if not c.running:
            clear_stop(c.path)
            if self.detach_via == "fresh":
                start_fresh(self.root, c.id)
            else:
                start_detached(c, self._launch(c), self._remove_files)
        return c

    def run_attached(self, c: Container, interactive: bool, tty: bool,
                     fds: Fds | None = None, sig_proxy: bool = True,
                     detach_keys: str = "ctrl-p,ctrl-q") -> int:
        """Start ``c`` with its stdio relayed to ``fds`` until it ends; its
        code. A restart policy that asks for a restart hands the container
        to a monitor of its own (as Docker's client returns at the first
        exit while the daemon restarts it). EscapeError when the user of an
        ``-it`` container typed ``detach_keys`` (it runs on)."""
        from .runtime import restart
        from .runtime.monitor import run_attached, start_detached
        from .runtime.tty import parse_detach_keys
        try:
            keys = parse_detach_keys(detach_keys)
        except ValueError as e:
            raise UsageError(str(e)) from None
        restart.clear_stop(c.path)
        code = run_attached(c, self._launch(c), interactive, tty, fds or Fds(),
                            self._remove_files, sig_proxy, keys)
        if code is None:
            raise EscapeError()
        if restart.should_restart(restart.current(c.path), code, 0,
                                  restart.stop_requested(c.path)):
            start_detached(c, self._launch(c), self._remove_files, after_exit=code)
        return code

    def _end_restarts(self, c: Container) -> None:
        """No more restarts of ``c``: its monitor is told, and waited for
        while it only waits (a restart under way runs and is stopped)."""
        from .runtime.restart import request_stop
        request_stop(c.path)
        deadline = time.monotonic() + 5
        while c.restarting and not c.running and time.monotonic() < deadline:
            time.sleep(0.02)

    # -- containers: signals and states ----------------------------------------------------------

    def _signal(self, c: Container, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, KeyError, TypeError):
            os.kill(c.state()["holder_pid"], signum)

    def await_stopped(self, c: Container, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while c.running:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        deadline = time.monotonic() + 1          # the monitor records the code
        while c.exit_info() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        deadline = time.monotonic() + 3          # and then removes its cgroups
        while c.state().get("cgroups") and time.monotonic() < deadline:
            time.sleep(0.02)
        return True

    def stop(self, ref: str | Container, timeout: int | None = None,
             sig: str | int | None = None) -> None:
        """The stop signal (``sig``, else the container's ``--stop-signal``,
        else the image's StopSignal, else SIGTERM), then SIGKILL after
        ``timeout`` seconds (else its ``--stop-timeout``, else 10). No
        restart policy restarts it after this."""
        c = ref if isinstance(ref, Container) else self.get(ref)
        if c.restarting or c.config.restart_policy:
            self._end_restarts(c)
        if not c.running:
            return
        if timeout is None:
            timeout = c.config.stop_timeout if c.config.stop_timeout is not None else 10
        self._signal(c, stop_signal(c, sig))
        if c.paused:                   # stopped processes would not see SIGTERM
            self._thaw(c)
        if not self.await_stopped(c, timeout):
            self._signal(c, signal.SIGKILL)
            self.await_stopped(c, 10)
        c.write_exit(137)         # only if nobody recorded a code
        # its monitor is done before a start may follow (a restart policy),
        # and has told the container's "die" before this tells "stop", as
        # Docker's order is (on a busy machine the monitor came second)
        self._await_monitor(c)
        container_event(c, "stop")

    def _await_monitor(self, c: Container, timeout: float = 10) -> None:
        """Wait for the container's monitor to end (it ends once a stop is
        asked for), so a ``start`` after a ``stop`` (``restart``) never
        meets the old monitor deciding on a restart."""
        from .runtime.restart import monitor_gone
        st = c.state()
        deadline = time.monotonic() + timeout
        while not monitor_gone(st.get("monitor_pid"), st.get("monitor_start")) and \
                time.monotonic() < deadline:
            time.sleep(0.02)

    def kill(self, ref: str, sig: str | int = "KILL") -> None:
        c = self.get(ref)
        signum = sig if isinstance(sig, int) else cfgmod.parse_signal(sig)
        if not c.running:
            raise DockishError(f"cannot kill container: {ref}: container {c.id} is not "
                               "running")
        from .runtime.restart import ends_restarts, request_stop
        configured = c.config.stop_signal or \
            ((c.config.image_config or {}).get("config") or {}).get("StopSignal") or ""
        if c.config.restart_policy and ends_restarts(signum, configured):
            request_stop(c.path)
        self._signal(c, signum)
        container_event(c, "kill", signal=signum)
        if signum == signal.SIGKILL:
            self.await_stopped(c, 5)

    def restart(self, ref: str, timeout: int | None = None,
                sig: str | int | None = None) -> None:
        c = self.get(ref)
        self.stop(c, timeout, sig)
        self.start(c)

    def _freeze(self, c: Container) -> None:
        from .runtime import freezer
        freezer.freeze(c.pid)
        c.write_state(paused=True)

    def _thaw(self, c: Container) -> None:
        from .runtime import freezer
        if c.pid is not None:
            freezer.thaw(c.pid)
        c.write_state(paused=False)

    def pause(self, ref: str) -> None:
        """Stop all its processes (SIGSTOP: cgroups v1 give a rootless user no freezer)."""
        c = self.get(ref)
        if not c.running:
            raise DockishError(f"Container {c.id} is not running")
        if c.paused:
            raise DockishError(f"Container {c.id} is already paused")
        self._freeze(c)
        container_event(c, "pause")

    def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.paused:
            raise DockishError(f"Container {c.id} is not paused")
        self._thaw(c)
        container_event(c, "unpause")

    def wait(self, ref: str | Container, condition: str = "not-running",
             timeout: float | None = None) -> int:
        """Block until the container is not running (``not-running``, the
        default: at once if it is not), has exited after this call
        (``next-exit``: a stopped one must be started and stop again), or
        is gone (``removed``); its exit code, a removed container's too
        (``runner.runtime.exits``). ``timeout`` seconds: a DockishError when it
        passes first."""
        return self.waiter(ref, condition).wait(timeout)

    def waiter(self, ref: str | Container, condition: str = "not-running"):
        """A ``wait`` to poll (``exits.Waiter``): for a caller that must not
        block, such as the API service."""
        from .runtime.exits import Waiter
        return Waiter(self.root, ref if isinstance(ref, Container) else self.get(ref),
                      condition)

    def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        old = c.name
        self.containers.rename(c, new_name)
        container_event(c, "rename", oldName="/" + old)

    def events(self, since: float | str | None = None, until: float | str | None = None,
               filters: list[str] | dict[str, list[str]] | None = None,
               follow: bool | None = None) -> Iterator[dict]:
        """Docker's event records (Type, Action, Actor{ID, Attributes},
        time, timeNano) of this store from ``since`` to ``until``
        (seconds, RFC 3339 or a duration back from now); ``filters``:
        ``KEY=VALUE`` strings or the API's {key: [values]} (type, event,
        container, image, volume, label). Without ``until`` it follows
        new events until the caller stops (``follow`` overrides)."""
        from .runtime import events as evmod
        wanted = evmod.parse_filters(filters)
        start, end = _log_time(since, "since"), _log_time(until, "until")
        following = until is None if follow is None else follow
        if start is None and following:
            start = time.time_ns()          # as Docker: without --since, only new events
        return evmod.read(self.root, start, end, wanted, follow=following)

    def event(self, type_: str, action: str, actor: str,
              attributes: dict[str, str] | None = None) -> dict:
        """Record an event (front ends add their own, e.g. the API's attach)."""
        from .runtime.events import record
        return record(self.root, type_, action, actor, attributes)

    # -- containers: removal ---------------------------------------------------------------------

    def _remove_files(self, c: Container) -> None:
        """Every removal (``rm``, ``--rm``, prune) goes through here: the
        code is recorded first, for waiters that come after the files."""
        from .runtime.cgroups import release_container
        from .runtime.exits import record
        record(self.root, c)
        if not c.running:
            release_container(c)
        createmod.remove_container(self.root, c)
        container_event(c, "destroy")

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> Container:
        """Remove a container (``force``: kill it first; ``volumes``: its
        anonymous volumes too)."""
        c = self.get(ref)
        if force and (c.restarting or c.config.restart_policy):
            self._end_restarts(c)
        if c.running or c.restarting:
            if not force:
                raise DockishError(f"You cannot remove a running container {c.id}. Stop the "
                                   "container before attempting removal or force remove",
                                   exit_code=1)
            self._signal(c, signal.SIGKILL)
            self.await_stopped(c, 10)
        self._remove_files(c)
        if volumes and not c.config.auto_remove:
            createmod.remove_anonymous_volumes(self.root, c)
        return c

    def live_containers(self) -> list[Container]:
        """All containers, after removing the ``--rm`` ones whose processes
        died with nobody left to remove them (a killed session), as Docker's
        daemon does when it comes back."""
        from .runtime.cgroups import release_stale
        out = []
        for c in self.containers.all():
            release_stale(c)              # a killed session's cgroups: removed
            if c.config.auto_remove and c.status()[0] == "exited":
                self._remove_files(c)
            else:
                out.append(c)
        return out

    def container_prune(self, filters: dict[str, list[str]] | None = None) -> PruneReport:
        """Remove every stopped container that Docker's prune ``filters``
        (``until``, ``label``, ``label!``) allow; the bytes their writable
        layers held."""
        from . import filters as flt
        from .runtime.hostfs import disk_usage
        f = dict(filters or {})
        flt.validate(f, flt.CONTAINER_PRUNE_KEYS)
        limit = flt.until(f)
        report = PruneReport()
        for c in self.live_containers():
            if not c.running and not c.restarting and \
                    flt.prune_picks(f, c.config.created, c.config.labels, limit):
                report.freed += disk_usage(c.upper)
                self._remove_files(c)
                report.deleted.append(c.id)
        return report

    # -- containers: records ---------------------------------------------------------------------

    def list_containers(self, all_: bool = False, no_trunc: bool = False) -> list[dict]:
        """``ps`` rows (Docker's field names)."""
        rows = []
        for c in self.live_containers():
            status, code = c.status()
            if status not in ("running", "restarting") and not all_:
                continue
            rows.append(ps_row(c, status, code, no_trunc))
        return rows

    def container_summaries(self, filters: dict[str, list[str]] | None = None,
                            all_: bool = False, limit: int = -1,
                            size: bool = False) -> list[dict]:
        """Docker's container list (``ps``, ``GET /containers/json``):
        ``Summary`` records, newest first, picked by Docker's filter rules
        (``runner.filters``); ``size``: with ``SizeRw``/``SizeRootFs``."""
        from . import filters as flt
        from . import summary as sm
        f = dict(filters or {})
        flt.check_container_filters(f)
        query = flt.ContainerQuery(f, all_, limit, self._ancestor_ids(f["ancestor"])
                                   if "ancestor" in f else None)
        out = []
        images = self.image_store()
        for fact in flt.select_containers([sm.facts(c) for c in self.live_containers()],
                                          query):
            c = fact.ref
            status, code = c.status()
            shown = ps_row(c, "running" if status == "paused" else status, code, True)
            rec = sm.summary(c, shown["Status"], self.volume_store.path,
                             self.container_sizes(c) if size else None)
            if _name_moved(images, c.config.image, c.config.image_id):
                rec["Image"] = c.config.image_id        # as Docker's daemon shows it
            out.append(rec)
        return out

    def _ancestor_ids(self, values: list[str]) -> set[str]:
        """``ancestor=``'s images: each one named (a name, tag, ID or ID
        prefix; one not found names nothing, as Docker's) and its
        descendants: the images built on it (``filters.built_on``)."""
        from registry.errors import DistributionError

        from . import filters as flt
        store = self.image_store()
        records = store.records()
        out: set[str] = set()
        for v in values:
            try:
                rec, _ = store.find(v)
            except (DistributionError, ValueError):
                continue
            out.add(rec.id)
            base = (list(rec.diff_ids), (store.config(rec) or {}).get("history") or [])
            out |= {r.id for r in records if r.id != rec.id and flt.built_on(
                (list(r.diff_ids), (store.config(r) or {}).get("history") or []), base)}
        return out

    def container_sizes(self, c: Container) -> tuple[int, int]:
        """(its writable layer, that plus its image's layers), as ``ps -s``."""
        from .runtime.hostfs import disk_usage
        store = self.image_store()
        rw = disk_usage(c.upper)
        return rw, rw + sum(store.layer_size(d) for d in c.config.diff_ids)

    def inspect_container(self, ref: str, size: bool = False) -> dict:
        """Docker's container inspect; ``size``: with ``SizeRw`` and
        ``SizeRootFs`` (``inspect -s``), measured as ``ps -s`` measures."""
        c = self.get(ref)
        out = inspect_container(c, self.volume_store)
        if size:
            out["SizeRw"], out["SizeRootFs"] = self.container_sizes(c)
        return out

    def top(self, ref: str) -> list[tuple[str, str, str, str]]:
        """The container's processes (uid as the container sees it, pid,
        ppid, command): its first process and its descendants."""
        from .runtime.container import process_tree
        c = self.get(ref)
        if not c.running:
            raise DockishError(f"container {c.id} is not running")
        mapping = ns.plan_mapping()
        rows = []
        for pid, (ppid, uid, cmd) in process_tree(c.pid).items() if c.pid else ():
            host = int(uid)
            ctr_uid = next((str(i + host - o) for i, o, n in mapping.uids
                            if o <= host < o + n), uid)
            rows.append((ctr_uid, str(pid), str(ppid), cmd))
        return rows

    def port(self, ref: str, private_port: str | None = None) -> list[tuple[str, str]]:
        """(container port/proto, host ip:port) of its published ports."""
        out = []
        for ip, hp, cp, proto in self.get(ref).config.ports:
            key = f"{cp}/{proto}"
            if private_port and private_port not in (key, str(cp)):
                continue
            out.append((key, f"{ip}:{hp}"))
        return out

    def logs(self, ref: str | Container, stdout: bool = True, stderr: bool = True, *,
             since: float | str | None = None, until: float | str | None = None,
             timestamps: bool = False, tail: str | int = "all",
             follow: bool = False) -> Iterator[LogEntry]:
        """The container's output as ``LogEntry(stream, time_ns, bytes)``
        (stream 1 stdout, 2 stderr; a ``-t`` container's is all stdout):
        of the streams asked for, written between ``since`` and ``until``
        (seconds since the epoch, RFC 3339, or a duration back from now
        like ``10m``), the last ``tail`` lines; with ``follow``, then
        what comes until it stops. ``timestamps`` is the caller's to show
        (every entry has its time)."""
        from .runtime import logs as logmod
        from .runtime.logconfig import check_readable
        del timestamps
        c = ref if isinstance(ref, Container) else self.get(ref)
        check_readable(c.config.process.get("log"))       # --log-driver none
        n = None
        if str(tail) not in ("all", ""):
            try:
                n = int(tail)
            except ValueError:
                raise UsageError(f"invalid --tail value: {tail}") from None
        streams = ({logmod.STDOUT} if stdout else set()) | ({logmod.STDERR} if stderr else set())
        return logmod.read(c.log, c.legacy_log, streams=streams,
                           since=_log_time(since, "since"), until=_log_time(until, "until"),
                           tail=n, follow=follow, running=lambda: c.running)

    def follow_output(self, c: Container) -> Iterator[LogEntry]:
        """What a non-tty container writes from now until it stops."""
        from .runtime import logs as logmod
        return logmod.read(c.log, c.legacy_log, streams={logmod.STDOUT, logmod.STDERR},
                           follow=True, running=lambda: c.running, from_end=True)

    def open_log(self, c: Container) -> int:
        """An fd reading the container's log, made if missing (as its
        monitor would make it): opened before a start, it keeps a ``--rm``
        container's output readable after its files are gone (the API's
        attach reads the output from it)."""
        return os.open(c.log, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)

    def attach(self, ref: str, no_stdin: bool = False, detach_keys: str = "ctrl-p,ctrl-q",
               fds: Fds | None = None,
               write: Callable[[bytes], None] | None = None,
               write_err: Callable[[bytes], None] | None = None,
               sig_proxy: bool = False) -> tuple[int, bool]:
        """A -t container: through its monitor's socket; else its output
        followed (stdout given to ``write``, stderr to ``write_err``, or to
        ``write`` without it) and, for a ``-i`` one, ``fds.stdin`` sent to its
        stdin; ``sig_proxy`` (the CLI's main thread only): the signals this
        process gets go to the container's process meanwhile, as the docker
        CLI's attach does for a container without a terminal. (exit code,
        detached by the keys)."""
        from .runtime.monitor import attach_terminal
        from .runtime.tty import parse_detach_keys
        c = self.get(ref)
        if not c.running:
            raise DockishError("You cannot attach to a stopped container, start it first")
        if c.paused:
            raise DockishError("You cannot attach to a paused container, unpause it first")
        try:
            keys = parse_detach_keys(detach_keys)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if not c.config.tty:
            if not no_stdin and c.config.interactive:      # -i: our stdin to its, kept open
                from .runtime.stdinrelay import feed_from
                feed_from(c, (fds or Fds()).stdin)
            with self._signals_to(c) if sig_proxy else contextlib.nullcontext():
                for entry in self.follow_output(c):
                    sink = write_err if entry.stream == 2 and write_err is not None else write
                    if sink is not None:
                        sink(entry.data)
                self.await_stopped(c, 1e9)
            return exit_code(c), False
        if attach_terminal(c, not no_stdin and c.config.interactive, keys, fds or Fds()):
            return 0, True
        self.await_stopped(c, 10)
        return exit_code(c), False

    @contextlib.contextmanager
    def _signals_to(self, c: Container) -> Iterator[None]:
        """The signals a client passes on (``monitor.FORWARDED``) sent to
        ``c``'s process while the block runs, then handled as before."""
        from .runtime.monitor import FORWARDED
        before = {sig: signal.signal(sig, lambda s, _f: self._signal(c, s)) for sig in FORWARDED}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)

    def resize(self, ref: str | Container, rows: int, cols: int) -> None:
        """A ``-t`` container's window size, told to its monitor (one attach
        client whose first line is the size)."""
        from .runtime import tty as ttymod
        c = ref if isinstance(ref, Container) else self.get(ref)
        if not c.config.tty:
            raise UsageError(f"container {c.id} has no terminal to resize")
        if not c.running:
            raise DockishError(f"Container {c.id} is not running")
        try:
            sock = ttymod.connect(c.id)
        except OSError as e:
            raise DockishError(f"container {c.id}: no terminal to resize: "
                               f"{e.strerror or e}") from None
        with sock:
            sock.sendall(f"{rows} {cols}\n".encode())

    def exec(self, ref: str, opts: ExecOptions, fds: Fds | None = None) -> int:
        """Run a process in a running container, relayed to ``fds`` (the
        caller's terminal or pipes: never handed to the process); its exit
        code (0 at once with ``detach``). EscapeError when the user detached
        with ``opts.detach_keys`` (the process runs on)."""
        from .runtime.monitor import relay_exec
        from .runtime.tty import parse_detach_keys
        fds = fds or Fds()
        try:
            keys = parse_detach_keys(opts.detach_keys)
        except ValueError as e:
            raise UsageError(str(e)) from None
        eid = self.exec_create(ref, opts)
        inst = self.exec_start(eid, opts.detach, winsize_from=fds.stdin)
        if opts.detach:
            return 0
        code = relay_exec(inst.pid, inst.pipes, opts.interactive, fds, keys)
        if code is None:
            raise EscapeError()
        inst.exit_code = code
        inst.running = False
        return inst.exit_code

    def exec_create(self, ref: str, opts: ExecOptions) -> str:
        """``exec create``: an exec instance of a running container; its ID."""
        from .runtime.execs import ExecInstance, exec_detach_keys, new_id
        c = self._exec_target(ref)
        env = cfgmod.merge_env(c.config.env, env_overrides(opts.env_files, opts.env))
        cfgmod.check_no_nul("command", opts.command)
        cfgmod.check_no_nul("environment variable", env)
        if not opts.command:
            raise UsageError("No exec command specified")
        inst = ExecInstance(new_id(), c.id, list(opts.command), env, opts.user, opts.workdir,
                            opts.tty, opts.interactive, opts.attach_stdout, opts.attach_stderr,
                            opts.privileged, exec_detach_keys(opts.detach_keys))
        return self.exec_table.add(inst).id

    def _exec_target(self, ref: str) -> Container:
        c = self.get(ref)
        if not c.running:
            raise DockishError(f"container {c.id} is not running")
        if c.paused:
            raise DockishError(f"container {c.id} is paused, unpause the container before "
                               "exec")
        return c

    def exec_start(self, eid: str, detach: bool = False, winsize_from: int = -1):
        """``exec start``: run the instance (once) with a pty or pipes of its
        own (a pty's size copied from ``winsize_from`` if that is a terminal;
        with ``detach``, /dev/null); the ``ExecInstance``, its ``pipes`` our
        ends for the caller to relay, then ``exec_wait``. StartError (the
        process's 126/127) when its command cannot run."""
        from .runtime import launch as launchmod
        from .runtime.monitor import exec_stdio
        inst = self.exec_table.claim(eid)
        try:
            c = self._exec_target(inst.container)
            stdio, pipes, ours = exec_stdio(inst.stdin, inst.tty, detach, Fds(winsize_from))
            try:
                inst.pid = launchmod.exec_in(
                    c, inst.argv, inst.env, inst.user if inst.user is not None
                    else c.config.user, inst.workdir or c.config.workdir, stdio,
                    ns.plan_mapping().full, inst.privileged)
            except BaseException:
                inst.pipes = pipes
                from .runtime.execs import close_pipes
                close_pipes(inst)
                raise
            finally:
                for fd in ours:
                    os.close(fd)
        except BaseException as e:
            inst.running = False
            inst.exit_code = getattr(e, "exit_code", None)
            raise
        inst.pipes = pipes
        return inst

    def exec_wait(self, eid: str) -> int:
        """Reap a started exec (blocks until its process ends); its code."""
        from .runtime.launch import wait_pid
        inst = self.exec_table.get(eid)
        inst.exit_code = wait_pid(inst.pid)
        inst.running = False
        return inst.exit_code

    def exec_inspect(self, eid: str) -> dict:
        """Docker's exec inspect: Running, ExitCode, Pid, ProcessConfig, ..."""
        return self.exec_table.get(eid).inspect()

    def exec_resize(self, eid: str, rows: int, cols: int) -> None:
        """Set a ``-t`` exec's terminal size."""
        from .runtime.execs import resize
        resize(self.exec_table.get(eid), rows, cols)

    # -- containers: files -----------------------------------------------------------------------

    def copy_out(self, ref: str, src: str, dest: str, archive: bool = False,
                 follow: bool = False) -> None:
        from .runtime.transfer import copy_out
        copy_out(self.get(ref), self._launch, src, dest, archive=archive, notify=self.notify,
                 follow=follow)

    def archive_stat(self, ref: str | Container, path: str) -> dict | None:
        """Docker's ContainerPathStat of ``path`` in the container (name,
        size, mode as Go's FileMode, mtime, linkTarget); None: no such path."""
        from .runtime.transfer import path_stat
        c = ref if isinstance(ref, Container) else self.get(ref)
        return path_stat(c, self._launch, path)

    def archive_get(self, ref: str | Container, path: str, follow: bool = False):
        """``GET /containers/{id}/archive``: (the path's stat record, a tar
        stream of it: ``read(n)``, iterate for chunks, ``close()`` raises
        TransferError if the copy failed). NotFoundError when no such path."""
        from .runtime.transfer import archive_reader
        c = ref if isinstance(ref, Container) else self.get(ref)
        st = self.archive_stat(c, path)
        if st is None:
            raise NotFoundError(f"Could not find the file {path} in container {c.name}")
        return st, archive_reader(c, self._launch, path, follow=follow)

    def archive_put(self, ref: str | Container, path: str, tar, archive: bool = False) -> None:
        """``PUT /containers/{id}/archive``: extract the tar read from
        ``tar`` (a file object) into the directory ``path`` inside the
        container, made inside it with cp's safe rules; notes (what was
        left out) to ``notify``."""
        from .runtime.transfer import archive_writer
        c = ref if isinstance(ref, Container) else self.get(ref)
        archive_writer(c, self._launch, path, tar, notify=self.notify, archive=archive)

    def copy_in(self, ref: str, src: str, dest: str, archive: bool = False,
                follow: bool = False) -> None:
        from .runtime.transfer import copy_in
        copy_in(self.get(ref), self._launch, src, dest, archive=archive, follow=follow)

    def export(self, ref: str, out_fd: int) -> None:
        """The container's filesystem as a tar written to ``out_fd`` (closed after)."""
        from .runtime.transfer import export
        export(self.get(ref), self._launch, out_fd)

    def diff(self, ref: str) -> list[tuple[str, str]]:
        """``docker diff``: (A|C|D, /path) of the writable layer, running or
        not (a running container's layer is read without its daemon's lock)."""
        from unionfs.generate import change_list

        from .runtime.rootfs import INIT_PATHS
        from .runtime.view import offline_view
        c = self.get(ref)
        layers = self.layers
        ids = list(c.config.diff_ids) + [c.config.init_layer]
        with offline_view([(layers.tar_path(d), layers.load_index(d)) for d in ids], ids,
                          c.upper, readonly=c.running) as (tree, _up):
            return [(kind, "/" + path.decode("utf-8", "surrogateescape"))
                    for kind, path in change_list(tree, INIT_PATHS)]

    def commit(self, ref: str, repository: str | None = None, author: str = "",
               message: str = "", changes: list[str] | None = None, pause: bool = True) -> str:
        """A new image from the container's changes; its ID."""
        from registry import reference as refs

        from .builder.commit import commit
        c = self.get(ref)
        tags = []
        if repository:
            parsed = refs.parse(repository)
            if parsed.digest:
                raise UsageError("refusing to create a tag with a digest reference")
            tags.append(str(parsed))
        return commit(c, self.image_store(), author=author, message=message,
                      changes=list(changes or []), pause=pause, tags=tags)

    # -- volumes ---------------------------------------------------------------------------------

    def volume_create(self, name: str | None = None, labels: dict[str, str] | None = None,
                      driver: str = "local", options: dict[str, str] | None = None) -> str:
        """Make a volume (an existing one is kept as it is, as Docker's
        ``local`` driver does); only the local driver and no mount options:
        a rootless volume is a plain directory."""
        from .runtime.volumes import check_request
        check_request(name, driver, options or {})
        made = self.volume_store.create(name, labels or None)
        self.event("volume", "create", made, {"driver": "local"})
        return made

    def volumes(self) -> list[str]:
        return self.volume_store.names()

    def volume_inspect(self, name: str) -> dict:
        return self.volume_store.inspect(name)

    def volumes_in_use(self) -> dict[str, str]:
        used = {}
        for c in self.containers.all():
            for m in c.config.mounts:
                if m["kind"] == "volume":
                    used[m["source"]] = c.id
        return used

    def volume_remove(self, name: str, force: bool = False) -> None:
        used = self.volumes_in_use()
        if name in used and not force:
            raise DockishError(f"remove {name}: volume is in use - [{used[name]}]")
        createmod.remove_volume(self.root, name)
        self.event("volume", "destroy", name, {"driver": "local"})

    def volume_list(self, filters: dict[str, list[str]] | None = None) -> list[dict]:
        """``volume ls`` / ``GET /volumes``: Docker's volume records, by
        name, through Docker's volume filters (``dangling``, ``driver``,
        ``label``, ``name``)."""
        from . import filters as flt
        f = dict(filters or {})
        flt.validate(f, flt.VOLUME_KEYS)
        used = self.volumes_in_use() if "dangling" in f else {}
        facts = []
        for n in self.volumes():
            v = self.volume_inspect(n)
            facts.append(flt.VolumeFacts(n, v.get("Driver", "local"), v.get("Labels") or {},
                                         n in used, v))
        return [fact.ref for fact in flt.select_volumes(facts, f)]

    def volume_prune(self, all_: bool = False,
                     filters: dict[str, list[str]] | None = None) -> PruneReport:
        """Remove unused anonymous volumes (``all_`` or ``all=true``: every
        unused one) that ``label``/``label!`` allow; the bytes they held."""
        from . import filters as flt
        from .runtime.hostfs import disk_usage
        f = dict(filters or {})
        flt.validate(f, flt.VOLUME_PRUNE_KEYS)
        all_ = all_ or flt.volume_prune_all(f)
        used = self.volumes_in_use()
        vols = self.volume_store
        report = PruneReport()
        for n in vols.names():
            labels = vols.inspect(n).get("Labels") or {}
            if n not in used and (all_ or ANONYMOUS in labels) and \
                    flt.labels_match(f, labels):
                report.freed += disk_usage(vols.path(n) / "_data")
                createmod.remove_volume(self.root, n)
                self.event("volume", "destroy", n, {"driver": "local"})
                report.deleted.append(n)
        return report

    # -- build -----------------------------------------------------------------------------------

    def build(self, context_dir, opts, dockerfile: str | None = None,
              dockerfile_text: str | None = None, out: TextIO | None = None,
              progress: Callable[[str], None] | None = None) -> str:
        """Build from the context directory (``dockerfile``: a path, default
        CONTEXT/Dockerfile; or its text), tag it with ``opts.tags``; the
        image ID. Step output goes to ``out`` (a file with a fileno: RUN
        output is relayed to it) or, as text in order, to ``progress``.

        ``context_dir`` may instead be a tar stream (a file object: ``build
        -``, ``POST /build``), extracted safely into a private scratch
        directory first (``dockerfile`` then names a file inside it), or
        None for an empty context (a Dockerfile given as text)."""
        from registry.archive import ImageError
        from unionfs.layers import LayerStoreError

        from .builder import dockerfile as dfm
        from .builder.build import Builder, BuildError, container_runner, save
        if context_dir is None or hasattr(context_dir, "read"):
            from .builder.contexttar import extracted, read_dockerfile
            with extracted(self.root, context_dir) as where:
                if dockerfile_text is None:
                    dockerfile_text = read_dockerfile(where, dockerfile or "Dockerfile")
                return self.build(where, opts, dockerfile_text=dockerfile_text, out=out,
                                  progress=progress)
        ctx = Path(context_dir)
        if not ctx.is_dir():
            raise DockishError(f"unable to prepare context: path \"{context_dir}\" not found",
                               exit_code=1)
        sink = _ProgressOut(progress) if progress is not None else None
        builder = None
        try:
            label = dockerfile or "Dockerfile"
            df = dfm.parse_text(dockerfile_text, "Dockerfile") if dockerfile_text is not None \
                else dfm.parse_file(dockerfile, label=label) if dockerfile \
                else dfm.parse_file("Dockerfile", label=label, context=ctx)
            builder = Builder(self.root, ctx, df, opts,
                              resolve=functools.partial(self._build_base,
                                                        pull=getattr(opts, "pull", False)),
                              run_step=container_runner(self.root, opts.timestamp,
                                                        getattr(opts, "add_hosts", None)),
                              out=sink or out or _NullOut())
            _image_id, config = builder.build()
            return save(self.root, config, list(opts.tags))
        except (ImageError, LayerStoreError, OSError) as e:
            from .errors import message
            raise BuildError(message(e)) from None
        finally:
            if builder is not None:
                builder.close()
            if sink is not None:
                sink.close()

    def _build_base(self, text: str, pull: bool = False):
        """FROM/--from images: archives, the store, else a pull (as Docker does);
        ``pull`` (``build --pull``): a name is pulled first even when stored."""
        from registry.archive import ImageError
        from registry.resolve import is_archive_source, resolve

        from .builder.build import BaseImage, BuildError
        try:
            if pull and not is_archive_source(text):
                raise ImageError("pulled first (--pull)")
            img = resolve(text, self.layers)
        except ImageError as first:
            if is_archive_source(text):
                raise BuildError(f"Unable to find image '{text}': {first}") from None
            try:
                self.pull(text)
                img = resolve(text, self.layers)
            except Exception as e:       # noqa: BLE001 - one line for the user
                raise BuildError(f"pull access denied or unable to find image '{text}': "
                                 f"{e}") from None
        return BaseImage(list(img.diff_ids), dict(img.config), img.config_digest)

    def build_cache_prune(self, older_than: float | None = None) -> PruneReport:
        """Remove build cache entries (``older_than`` seconds unused, or all)
        and the layers only they kept; with all, the cache mounts too."""
        from .builder.build import empty_cache_mounts
        from .builder.buildcache import BuildCache
        store = self.image_store()
        cache = BuildCache(self.root, store.layers)
        gone = cache.prune(older_than=older_than)
        keep = cache.live_layers()
        drop = sorted({e.diff_id for e in gone if e.diff_id and e.diff_id not in keep})
        freed = sum(store.layer_size(d) for d in drop)
        store.discard_layers(drop)
        freed -= sum(store.layer_size(d) for d in drop)
        freed += empty_cache_mounts(self.root) if older_than is None else 0
        return PruneReport([e.key for e in gone], freed)

    # -- system ----------------------------------------------------------------------------------

    def df(self) -> DiskUsage:
        """What ``system df`` reports: images and their layers' sizes, what
        uses them, containers' writable layers, volumes, the build cache."""
        from .builder.build import cache_mounts_dir
        from .builder.buildcache import BuildCache
        from .runtime.hostfs import disk_usage
        store = self.image_store()
        recs = store.records()
        layer_users: dict[str, int] = {}
        for rec in recs:
            for d in set(rec.diff_ids):
                layer_users[d] = layer_users.get(d, 0) + 1
        containers = []
        links: dict[str, int] = {}
        for c in self.containers.all():
            vols = [m.get("source") for m in c.config.mounts
                    if isinstance(m, dict) and m.get("kind") == "volume"]
            for v in vols:
                links[v] = links.get(v, 0) + 1
            containers.append((c, disk_usage(c.upper), vols))
        vs = self.volume_store
        volumes = [(n, disk_usage(vs.path(n) / "_data"), links.get(n, 0)) for n in vs.names()]
        u = BuildCache(self.root, store.layers).usage({d for r in recs for d in r.diff_ids})
        top = cache_mounts_dir(self.root)
        m_size = disk_usage(top)
        cache = {"count": u["TotalCount"] + (len(os.listdir(top)) if top.is_dir() else 0),
                 "size": u["Size"] + m_size, "reclaimable": u["Reclaimable"] + m_size}
        return DiskUsage(store, recs, self.images_in_use(store),
                         {d: store.layer_size(d) for d in layer_users}, layer_users,
                         containers, volumes, cache)


    def system_df(self) -> dict:
        """Docker's ``GET /system/df`` record, the one source of ``system
        df`` for the CLI and the API: images (Size, SharedSize: the bytes of
        layers another image shares, Containers: how many containers use
        it), LayersSize (every stored image layer once), containers with
        their writable layers, volumes (UsageData), and the build cache as
        BuildKit's records (one per cached step, its layer's bytes counted
        once and Shared when an image has that layer too; one per RUN
        --mount=type=cache directory)."""
        from registry import reference as refs

        from .builder.build import cache_mounts_dir
        from .builder.buildcache import BuildCache
        from .format import parse_time
        from .images import config_or_empty
        from .runtime.hostfs import disk_usage
        u = self.df()
        store = u.store
        users = container_refs(self.root)[0]
        images = []
        for rec in u.images:
            layers = set(rec.diff_ids)
            size = sum(u.layer_sizes.get(d, 0) for d in layers)
            created = parse_time(config_or_empty(store, rec).get("created")) or 0
            images.append({
                "Id": rec.id, "ParentId": "", "Created": int(created), "Size": size,
                "SharedSize": sum(u.layer_sizes.get(d, 0) for d in layers
                                  if u.layer_users.get(d, 0) > 1),
                "VirtualSize": size, "Labels": None,
                "RepoTags": [refs.parse(n).familiar for n in store.names_of(rec.id)] or None,
                "RepoDigests": None, "Containers": len(users.get(rec.id, []))})
        rw = {c.id: size for c, size, _vols in u.containers}
        containers = self.container_summaries(all_=True)          # newest first
        for entry in containers:
            entry["SizeRw"] = rw.get(entry["Id"], 0)
            entry["SizeRootFs"] = entry["SizeRw"]
        volumes = [{"Name": n, "Driver": "local", "Mountpoint": "", "Labels": None,
                    "Scope": "local", "Options": None,
                    "UsageData": {"Size": size, "RefCount": links}}
                   for n, size, links in u.volumes]
        image_layers = {d for r in u.images for d in r.diff_ids}
        cache, counted = [], set()
        for e in BuildCache(self.root, store.layers).entries():
            size = 0
            if e.diff_id and e.diff_id not in counted:
                counted.add(e.diff_id)
                size = store.layer_size(e.diff_id)
            cache.append(_cache_record(e.key.removeprefix("sha256:"), "regular",
                                       e.created_by, size, e.diff_id in image_layers,
                                       e.created, e.last_used))
        top = cache_mounts_dir(self.root)
        for name in sorted(os.listdir(top)) if top.is_dir() else []:
            st = (top / name).lstat()
            cache.append(_cache_record(name, "exec.cachemount", f"cached mount {name}",
                                       disk_usage(top / name), False, st.st_ctime,
                                       st.st_mtime))
        return {"LayersSize": sum(u.layer_sizes.values()), "Images": images,
                "Containers": containers, "Volumes": volumes, "BuildCache": cache,
                "BuilderSize": sum(c["Size"] for c in cache)}

    def info(self) -> dict:
        """What ``info`` reports (Docker's field names where they fit)."""
        from .sysinfo import info
        return info(self.root)

    def system_prune(self, all_: bool = False, volumes: bool = False,
                     filters: dict[str, list[str]] | None = None) -> SystemPruneReport:
        """Stopped containers, unused user networks, (``volumes``) unused
        anonymous volumes, unused images (dangling, or all with ``all_``)
        and the build cache, each through ``filters`` (``until``,
        ``label``, ``label!``) as Docker's."""
        from . import filters as flt
        f = dict(filters or {})
        flt.validate(f, flt.CONTAINER_PRUNE_KEYS)
        if volumes and "until" in f:
            raise UsageError('ERROR: The "until" filter is not supported with "--volumes"')
        limit = flt.until(f)               # a bad time is refused before anything goes
        containers = self.container_prune(f)
        networks = [n.name for n in self.network_list({"dangling": ["true"]})
                    if flt.prune_picks(f, n.created, n.labels, limit)]
        for name in networks:
            self.network_remove(name)
        vols = self.volume_prune(filters={k: v for k, v in f.items() if k != "until"}) \
            if volumes else None
        images = self.image_prune(all_, f)
        cache = self.build_cache_prune(flt.older_than(f))    # only until applies there
        return SystemPruneReport(containers, vols, images, cache, networks)

    # -- containers: resource use and limits (stats, update) -----------------------------------

    def stats(self, ref: str | Container) -> dict:
        """One sample of the container's resource use as Docker's
        ``StatsResponse`` (precpu_stats zero: ``stats_frames`` pairs
        samples); a container that is not running has its name and ID only."""
        from .runtime import stats as statsmod
        c = ref if isinstance(ref, Container) else self.get(ref)
        pid = c.pid
        if pid is None:
            return statsmod.empty(c.id, c.name)
        return statsmod.sample(c.id, c.name, pid, statsmod.members(pid),
                               c.state().get("cgroups") or [], c.config.network == "host")

    def stats_frames(self, refs: list[str] | None, all_: bool = False, stream: bool = True,
                     one_shot: bool = False, interval: float = 1.0
                     ) -> Iterator[list[tuple[str, dict]]]:
        """Docker's stats, a frame at a time: [(the name the caller gave, or
        the ID when ``refs`` is None, the record)] for ``refs`` (None: the
        running containers, all with ``all_``, listed again each frame as
        the docker CLI follows them). Each record carries the previous
        sample's CPU in precpu_stats, so the first frame comes after
        ``interval`` (``one_shot``: at once, without it); ``stream``: a frame
        every ``interval`` until the caller stops, else one. An unknown
        name is NotFoundError before any frame."""
        from .runtime.stats import paired

        def picked() -> list[tuple[str, Container]]:
            if refs is not None:
                return [(r, self.get(r)) for r in refs]
            return [(c.id, c) for c in self.live_containers() if all_ or c.running]

        targets = picked()
        previous = {c.id: self.stats(c) for _, c in targets} if not one_shot else {}
        while True:
            if not one_shot:
                time.sleep(interval)
            if refs is None and stream:
                targets = picked()
            frame = []
            for shown, c in targets:
                cur = self.stats(c)
                frame.append((shown, paired(cur, previous.get(c.id))))
                previous[c.id] = cur
            yield frame
            if not stream:
                return

    def update(self, ref: str, limits: dict | None = None,
               restart: str | dict | None = None) -> list[str]:
        """Docker's ``update``: ``limits`` (Docker's HostConfig names:
        PidsLimit, Memory, MemorySwap, NanoCpus, CpuShares, CpuPeriod,
        CpuQuota; 0/None unchanged) and ``restart`` (``--restart``'s text or
        a RestartPolicy; the monitor reads it at the next exit) recorded;
        a running container's cgroups get the limits at once. The warnings
        (nothing delegated, processes that could not be moved)."""
        from .runtime import cgroups
        from .runtime import update as upd
        from .runtime.stats import members
        c = self.get(ref)
        given = {k: v for k, v in (limits or {}).items() if v is not None}
        process = dict(c.config.process)
        old = process.get("limits") or {}
        new = upd.merged(old, given, c.id)
        policy = upd.restart_policy(restart, c.config.auto_remove, c.id)
        warnings: list[str] = []
        process["limits"] = new
        if c.running and new != old:
            try:
                paths, warnings = cgroups.update(c.id, c.state().get("cgroups") or [],
                                                 process, members(c.pid) if c.pid else [])
            except cgroups.CgroupError as e:
                raise upd.UpdateError(f"Cannot update container {c.id}: {e}") from None
            c.write_state(cgroups=paths)
        elif new != old and not c.running:
            note = cgroups.note(process)
            warnings = [note] if note else []
        c.config.process = process
        if policy is not None:
            c.config.restart_policy = {} if policy["Name"] == "no" else policy
        self.containers.save_config(c)
        container_event(c, "update")
        return warnings


class _NullOut:
    """A quiet build's output."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return os.open(os.devnull, os.O_WRONLY)


class _ProgressOut:
    """A build's output as text to a callback, in order: the builder's
    lines and its RUN steps' relayed output share one pipe, read by one
    thread that calls ``progress``."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        import codecs
        import threading
        self._r, self._w = os.pipe2(os.O_CLOEXEC)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")

        def pump() -> None:
            while data := os.read(self._r, 65536):
                progress(decoder.decode(data))
            rest = decoder.decode(b"", final=True)
            if rest:
                progress(rest)
        self._thread = threading.Thread(target=pump, daemon=True)
        self._thread.start()

    def write(self, text: str) -> int:
        from .runtime.tty import write_all
        write_all(self._w, text.encode())
        return len(text)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._w

    def close(self) -> None:
        os.close(self._w)
        self._thread.join()
        os.close(self._r)


# -- helpers without state -----------------------------------------------------------------------

def env_overrides(env_files: list[str], env: list[str]) -> list[str]:
    """``--env-file`` then ``-e``, read as Docker reads them: each file a
    regular file or the shell's ``<(...)`` (a named FIFO must not hang the
    command), UTF-8, no NUL."""
    from unionfs.safefile import read_file
    host_env = dict(os.environ)
    out: list[str] = []
    for f in env_files:
        try:
            data = read_file(f, pipes=True)
        except OSError as e:
            raise UsageError(f"open {f}: {(e.strerror or str(e)).lower()}") from None
        out += cfgmod.parse_env_file(cfgmod.decode_env_file(data, f), host_env)
    for e in env:
        item = cfgmod.parse_env_line(e, host_env)
        if item is not None:
            out.append(item)
    cfgmod.check_no_nul("environment variable", out)
    return out


def _parse_mounts(opts: CreateOptions) -> tuple[list, str]:
    """Every ``-v``, ``--mount`` and ``--tmpfs`` checked (nothing is made
    yet), plus ``--init``'s tini; and the path tini is bound at."""
    mounts = [cfgmod.parse_volume(v) for v in opts.volumes]
    init_path = ""
    tini = createmod.tini() if opts.init else None
    if tini:             # Docker's docker-init is tini: bound read-only, run as pid 1
        init_path = "/dev/init"
        mounts.append(cfgmod.MountReq("bind", tini, init_path, True))
    flag_mounts = [cfgmod.parse_mount(m) for m in opts.mounts]
    mounts += flag_mounts
    mounts += [cfgmod.parse_tmpfs(t) for t in opts.tmpfs]
    for m in flag_mounts:
        src = os.path.abspath(m.source)
        if m.kind == "bind" and not os.path.exists(src):
            raise UsageError(f"invalid mount config for type \"bind\": bind source path "
                             f"does not exist: {src}")
    return mounts, init_path


def _healthcheck(image_conf: dict, opts: CreateOptions) -> dict:
    from .builder.imageconfig import duration
    from .runtime.health import merged
    flags: dict = {"cmd": opts.health_cmd, "no_healthcheck": opts.no_healthcheck,
                   "Retries": opts.health_retries}
    for key, name in (("Interval", "health_interval"), ("Timeout", "health_timeout"),
                      ("StartPeriod", "health_start_period"),
                      ("StartInterval", "health_start_interval")):
        value = getattr(opts, name)
        if value:
            flags[key] = duration(value, f"--{name.replace('_', '-')}")
    return merged(image_conf.get("Healthcheck"), flags)


def stop_signal(c: Container, sig: str | int | None = None) -> int:
    """The signal ``stop`` sends: asked for, else the container's, else its
    image's StopSignal, else SIGTERM."""
    text = sig or c.config.stop_signal or \
        ((c.config.image_config or {}).get("config") or {}).get("StopSignal") or "SIGTERM"
    return text if isinstance(text, int) else cfgmod.parse_signal(str(text))


def _cache_record(cid: str, kind: str, description: str, size: int, shared: bool,
                  created: float, used: float) -> dict:
    """One of BuildKit's build cache records as Docker's /system/df lists it."""
    return {"ID": cid[:25], "Parent": "", "Parents": None, "Type": kind,
            "Description": description, "InUse": False, "Shared": shared, "Size": size,
            "CreatedAt": fmt.rfc3339(created), "LastUsedAt": fmt.rfc3339(used),
            "UsageCount": 1}


def procopts_inspect(process: dict) -> dict:
    """The HostConfig fields of ``runner.runtime.procopts``'s record."""
    from .runtime.procopts import inspect_fields
    return inspect_fields(process)


def _name_moved(images, name: str, image_id: str) -> bool:
    """Whether the name a container was created from now names another image
    (or none): Docker's list then shows the container's image by its ID, so
    ``ps`` never claims a container runs what the name means today."""
    from registry.errors import DistributionError
    from registry.resolve import is_archive_source
    if not name or not image_id or is_archive_source(name) or \
            name.removeprefix("sha256:").startswith(image_id.removeprefix("sha256:")[:12]):
        return False
    try:
        rec, _ = images.find(name)
    except (DistributionError, ValueError):
        return True
    return rec.id != image_id


def _platform_wanted(text: str | None) -> tuple[str, str, str | None] | None:
    """``--platform`` as (os, arch, variant); None when not given."""
    if not text:
        return None
    from registry.manifest import FormatError, parse_platform
    try:
        return parse_platform(text)
    except FormatError as e:
        raise UsageError(str(e)) from None


def _platform_of(img) -> tuple[str, str, str | None]:
    """An image's (os, arch, variant), arm64's variant as ``--platform`` reads it."""
    cfg = img.config or {}
    arch = cfg.get("architecture", "")
    variant = cfg.get("variant") or ("v8" if arch == "arm64" else None)
    return cfg.get("os", ""), arch, variant


def _check_platform(text: str, img, want):
    """Docker's refusal to run an image of another platform than asked."""
    if want is not None and _platform_of(img) != want:
        from registry.manifest import platform_text
        cfg = img.config or {}
        actual = platform_text((cfg.get("os", ""), cfg.get("architecture", ""),
                                cfg.get("variant")))
        wanted = platform_text((want[0], want[1], None if want[1] == "arm64" and
                                want[2] == "v8" else want[2]))
        raise DockishError(f"image with reference {_shown(text)} was found but does not match "
                           f"the specified platform: wanted {wanted}, actual: {actual}")
    return img


def exit_code(c: Container) -> int:
    _status, code = c.status()
    return code if code is not None else 0


def _shown(text: str) -> str:
    """An image name as Docker's run says it: familiar, with its tag
    (``nope`` -> ``nope:latest``); as typed if it does not parse."""
    from registry import reference as refs
    try:
        return refs.parse(text).familiar
    except ValueError:
        return text


def ps_row(c: Container, status: str, code: int | None, no_trunc: bool) -> dict:
    """One ``ps`` row, with Docker's field names."""
    cfg = c.config
    if status == "running":
        shown = f"Up {fmt.duration_since(c.state().get('started'))}"
        health = (c.state().get("health") or {}).get("Status")
        if c.paused:
            shown, status = shown + " (Paused)", "paused"
        elif health:
            shown += " (health: starting)" if health == "starting" else f" ({health})"
    elif status == "created":
        shown = "Created"
    elif status == "restarting":
        shown = f"Restarting ({code}) {fmt.duration_since(c.finished_at())} ago"
    else:
        shown = f"Exited ({code}) {fmt.duration_since(c.finished_at())} ago"
    ports = ", ".join(f"{ip}:{hp}->{cp}/{proto}" for ip, hp, cp, proto in cfg.ports)
    return {"ID": cfg.id if no_trunc else cfg.id[:12], "Image": cfg.image,
            "Command": fmt.truncate_command(" ".join(cfg.argv), no_trunc),
            "CreatedAt": fmt.go_time(cfg.created),     # Docker's: a time, not "ago"
            "RunningFor": f"{fmt.duration_since(cfg.created)} ago",
            "Status": shown, "State": status, "Ports": ports, "Names": cfg.name,
            "ExitCode": code}


def inspect_container(c: Container, vols: Volumes) -> dict:
    """Docker's ``inspect`` of a container."""
    from .runtime.cgroups import release_stale
    from .runtime.netops import host_config, network_settings
    release_stale(c)           # an ended container's OOM kill is known before it is shown
    cfg = c.config
    status, code = c.status()
    st = c.state()
    mounts = []
    for m in cfg.mounts:
        if cfg.init_path and m["target"] == cfg.init_path:
            continue                  # --init's tini: not a mount the user asked for
        src = str(vols.path(m["source"]) / "_data") if m["kind"] == "volume" else m["source"]
        mounts.append({"Type": m["kind"], "Name": m["source"] if m["kind"] == "volume" else "",
                       "Source": src, "Destination": m["target"], "RW": not m["readonly"]})
    ports: dict = {}
    for ip, hp, cp, proto in cfg.ports:
        ports.setdefault(f"{cp}/{proto}", []).append({"HostIp": ip, "HostPort": str(hp)})
    return {
        "Id": cfg.id, "Created": fmt.iso(cfg.created), "Path": cfg.argv[0],
        "Args": cfg.argv[1:],
        "State": {"Status": "paused" if c.paused else status,
                  "Running": status in ("running", "restarting"),    # Docker's, restarting too
                  "Paused": c.paused, "Restarting": status == "restarting",
                  "OOMKilled": bool(st.get("oom_killed")), "Dead": False,
                  "Pid": c.pid or 0, "ExitCode": code or 0,
                  **({"Health": st["health"]} if st.get("health") else {}),
                  "StartedAt": fmt.iso(st.get("started")),
                  "FinishedAt": fmt.iso(c.finished_at())},
        "Image": cfg.image_id, "Name": "/" + cfg.name, "LogPath": str(c.log),
        "RestartCount": st.get("restart_count", 0),
        "HostConfig": {"NetworkMode": cfg.network, "AutoRemove": cfg.auto_remove,
                       "ReadonlyRootfs": cfg.read_only, "Init": cfg.init,
                       "PortBindings": ports, "CapAdd": cfg.cap_add or None,
                       "CapDrop": cfg.cap_drop or None, "Privileged": cfg.privileged,
                       "RestartPolicy": cfg.restart_policy or {"Name": "no",
                                                               "MaximumRetryCount": 0},
                       **procopts_inspect(cfg.process), **host_config(cfg)},
        "Mounts": mounts,
        "Config": {"Hostname": cfg.hostname, "User": cfg.user, "Tty": cfg.tty,
                   "OpenStdin": cfg.interactive, "Env": cfg.env, "Cmd": cfg.cmd,
                   "Entrypoint": cfg.entrypoint or None, "Image": cfg.image,
                   "WorkingDir": cfg.workdir, "Labels": cfg.labels,
                   "Domainname": cfg.process.get("domainname") or "",
                   **({"StopSignal": cfg.stop_signal} if cfg.stop_signal else {}),
                   **({"StopTimeout": cfg.stop_timeout}
                      if cfg.stop_timeout is not None else {})},
        "NetworkSettings": network_settings(c, ports),
    }


def _log_time(value: float | str | None, what: str) -> int | None:
    """``--since``/``--until`` as Docker takes them: seconds since the
    epoch (fractions allowed), an RFC 3339 time, or a duration back from
    now (``10m``, ``1h30m``); in ns."""
    from .builder.imageconfig import duration
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, (int, float)):
        return int(value * 1_000_000_000)
    text = str(value).strip()
    try:
        return int(float(text) * 1_000_000_000)
    except ValueError:
        pass
    when = fmt.parse_time(text)
    if when is not None:
        return int(when * 1_000_000_000)
    try:
        return time.time_ns() - duration(text, f"--{what}")
    except DockishError:
        raise UsageError(f"invalid value for \"{what}\": {text}: use seconds since the "
                         "epoch, an RFC 3339 time or a duration like 10m") from None
