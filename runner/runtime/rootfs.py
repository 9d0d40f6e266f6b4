"""The container's root filesystem, made inside its user and mount namespaces.

The union view (image layers, the per-container init layer, a writable
layer) is served by a FUSE daemon that is mounted *inside* the container's
user namespace as its root: the kernel then hands the daemon container uids,
so the image's owners are what the container sees, ``allow_other`` lets
the container's other users in, and the kernel checks their permissions
(``default_permissions``, see unionfs.access).

``init_layer`` makes the per-container layer Docker calls ``-init``;
``serve_view`` runs in the daemon process; ``setup_root`` runs in the
container's first process, before it drops to the container's user.
"""
from __future__ import annotations

import errno
import io
import os
import signal
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import namespaces as ns
from .config import MountReq

if TYPE_CHECKING:
    from unionfs.tree import Tree

DEV_NODES = ["null", "zero", "full", "random", "urandom", "tty"]


# ------------------------------------------------------------------ init layer

def hosts_text(hostname: str, ip: str | None, extra: list[str] | tuple = ()) -> str:
    """Docker's /etc/hosts: localhost, ``--add-host`` lines, then the
    container's own name."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", *extra]
    lines.append(f"{ip or '127.0.1.1'}\t{hostname}")
    return "\n".join(lines) + "\n"


def resolv_text(network: str, host_resolv: str) -> str:
    """slirp4netns' DNS forwarder on its private net; the host's servers
    (minus loopback ones, unreachable from a private net) otherwise."""
    if network == "slirp4netns":
        return "nameserver 10.0.2.3\n"
    if network == "pasta":
        from .network import PASTA_DNS
        return f"nameserver {PASTA_DNS}\n"
    if network == "none":
        return ""
    return host_resolv


INIT_PATHS = frozenset({b"etc/hosts", b"etc/resolv.conf", b"etc/hostname"})
"""What the init layer holds: Docker bind-mounts these, so a container's
changes to them reach neither ``diff`` nor ``commit`` nor a build's layer."""


def init_layer_tar(hostname: str, network: str, ip: str | None, host_resolv: str,
                   extra_hosts: list[str] | tuple = (), resolv: str | None = None) -> bytes:
    """The init layer: /etc/hosts, /etc/resolv.conf, /etc/hostname. Only
    files: a directory here would replace the image's own owner and mode.
    ``resolv``: the caller's resolv.conf (a user network's, ``--dns``)."""
    buf = io.BytesIO()
    files = {"etc/hosts": hosts_text(hostname, ip, extra_hosts),  # the names of INIT_PATHS
             "etc/resolv.conf": resolv if resolv is not None
             else resolv_text(network, host_resolv),
             "etc/hostname": hostname + "\n"}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, text in files.items():
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 0
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_init_layer(store, hostname: str, network: str, ip: str | None = None,
                    extra_hosts: list[str] | tuple = (), resolv: str | None = None) -> str:
    try:
        host_resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        host_resolv = ""
    data = init_layer_tar(hostname, network, ip, host_resolv, extra_hosts, resolv)
    return store.import_blob(io.BytesIO(data), compression="none")


def remove_init_layer(store, diff_id: str) -> None:
    """Drop a container's init layer with the container: it is that
    container's alone (its hostname is in it), no image refers to it."""
    import shutil

    from unionfs.layers import LayerStoreError
    try:
        path = store.tar_path(diff_id).parent
    except LayerStoreError:
        return
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------ the view

def preload_view() -> None:
    """Import what serving needs (pyfuse3 and trio take a while to load)."""
    import pyfuse3  # noqa: F401
    import trio  # noqa: F401

    import unionfs.daemon  # noqa: F401
    import unionfs.fs  # noqa: F401


def view_lower(layers: list[tuple[Path, list]]) -> tuple[Tree, list[int]]:
    """The image's layers merged (the tree) and an fd on each layer's tar:
    what the view daemon makes before it joins the container's namespaces
    (it needs none of them), while the holder is still making them.
    ``layers`` is handed over: emptied once the tree holds what it says, so
    the daemon keeps no second copy of the indexes for as long as it runs."""
    from unionfs.daemon import MountSpec, build_tree
    tree = build_tree(MountSpec(layers=layers, layer_ids=[], mountpoint="", image=""))
    fds = [os.open(p, os.O_RDONLY | os.O_CLOEXEC) for p, _ in layers]
    layers.clear()
    return tree, fds


def serve_view(tree: Tree, fds: list[int], layer_ids: list[str], upper: Path,
               mountpoint: str, ready: Callable[[], None]) -> None:
    """Mount and serve the union (``view_lower``'s tree and layer fds, with
    the writable layer ``upper``) at ``mountpoint`` until SIGTERM (or the
    session ends); the writable layer is compacted on the way out. Runs as
    root of the container's user namespace, so no fusermount3 is involved."""
    import pyfuse3
    import trio

    from unionfs.daemon import _main, close_view, count_requests, limit_malloc_arenas
    from unionfs.fs import UnionFS
    from unionfs.upper import Upper

    limit_malloc_arenas()
    up = Upper(upper, layer_ids)
    up.open()
    up.load(tree)
    up.start_spares()           # after own_files_as: the thread writes as the daemon does
    ops = UnionFS(tree, fds, up, sum(os.fstat(fd).st_size for fd in fds))
    count_requests(ops)
    # the kernel checks permissions here (default_permissions: unionfs.access),
    # with the capabilities each process holds in the container
    pyfuse3.init(ops, mountpoint, ops.mount_options({"fsname=dockish", "subtype=dockish",
                                                     "allow_other", "suid"}))
    mounted = True
    try:
        ready()
        mounted = trio.run(_main)
    finally:
        close_view(ops, mounted)


def offline_tree(layers: list[tuple[Path, list]], layer_ids: list[str], upper: Path, *,
                 readonly: bool = False):
    """The merged tree with the writable layer applied, without mounting
    (``diff``, ``commit``). ``readonly``: the layer of a running container,
    read without its daemon's lock."""
    from unionfs.daemon import MountSpec as _Spec
    from unionfs.daemon import build_tree
    from unionfs.upper import Upper
    tree = build_tree(_Spec(layers=layers, layer_ids=layer_ids, mountpoint="", image=""))
    up = Upper(upper, layer_ids)
    up.open(readonly=readonly)
    try:
        up.load(tree, compact=False)
    finally:
        up.close()
    return tree


# ------------------------------------------------------------------ in the container

def _resolve(root: str, path: str, *, make_dirs: bool, hops: int = 40) -> str:
    """The host-side path of ``path`` (absolute, in the container) under
    ``root``, following the view's symlinks as the container would (``/``
    and ``..`` stop at ``root``), so a mount target never points out of the
    view. Missing directories are made when ``make_dirs``."""
    parts = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    while parts:
        part = parts.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        host = os.path.join(root, *done, part)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            if not make_dirs and not parts:
                done.append(part)
                continue
            os.mkdir(host, 0o755)
            done.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            hops -= 1
            if hops < 0:
                raise OSError(40, f"too many levels of symbolic links in {path}")
            target = os.readlink(host)
            if target.startswith("/"):
                done = []
            parts = [p for p in target.split("/") if p and p != "."] + parts
            continue
        done.append(part)
    return os.path.join(root, *done)


def _mkdirs(root: str, path: str) -> str:
    return _resolve(root, path, make_dirs=True)


def _mkfile(root: str, path: str) -> str:
    p = _resolve(root, path, make_dirs=False)
    parent = os.path.dirname(p)
    if not os.path.isdir(parent):
        _resolve(root, os.path.relpath(parent, root), make_dirs=True)
    if not os.path.lexists(p):
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    return p


def _locked_flags(path: str) -> int:
    """The flags a bind mount keeps from its source: the kernel refuses to
    drop nosuid/nodev/noexec/ro of a mount made outside the namespace."""
    f = os.statvfs(path).f_flag
    out = 0
    for st_flag, ms_flag in ((os.ST_NOSUID, ns.MS_NOSUID), (os.ST_NODEV, ns.MS_NODEV),
                             (os.ST_NOEXEC, ns.MS_NOEXEC), (os.ST_RDONLY, ns.MS_RDONLY),
                             (os.ST_NOATIME, ns.MS_NOATIME), (os.ST_RELATIME, ns.MS_RELATIME),
                             (os.ST_NODIRATIME, ns.MS_NODIRATIME)):
        if f & st_flag:
            out |= ms_flag
    return out


def bind(source: str, target: str, readonly: bool, recursive: bool = True) -> None:
    """Bind ``source`` at ``target``, with the mounts below it; ``readonly``
    holds for all of them (else ``-v /dev:/d:ro`` would leave /d/shm
    writable), and none of them propagates back to the host."""
    ns.mount(source, target, None, ns.MS_BIND | (ns.MS_REC if recursive else 0))
    if not readonly:
        return
    try:
        ns.mount_setattr_rdonly(target)
    except OSError as e:
        if e.errno not in (errno.ENOSYS, errno.EINVAL):
            raise
        _remount_read_only(target, strict=True)    # before Linux 5.12: one at a time


def _remount_read_only(target: str, strict: bool) -> None:
    """Remount ``target`` and every mount below it read-only (keeping the
    flags the kernel will not let a user namespace drop), from the mount
    table of this namespace; ``strict``: a mount that refuses is an error."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in points:
        p = p.replace("\\040", " ")
        if p == target or p.startswith(target + "/"):
            try:
                ns.mount(None, p, None, ns.MS_REMOUNT | ns.MS_BIND | ns.MS_RDONLY
                         | _locked_flags(p))
            except OSError:
                if strict:
                    raise


MASKED = ["kcore", "keys", "timer_list", "sched_debug", "latency_stats"]
READ_ONLY = ["sys", "sysrq-trigger", "irq", "bus", "fs"]


def _mask_proc(proc: str) -> None:
    """What Docker hides or freezes in /proc (the kernel already refuses
    most of it to a user namespace; this is belt and braces)."""
    for name in MASKED:
        p = os.path.join(proc, name)
        if os.path.exists(p) and not os.path.isdir(p):
            try:
                ns.mount("/dev/null", p, None, ns.MS_BIND)
            except OSError:
                pass
    for name in READ_ONLY:
        p = os.path.join(proc, name)
        if os.path.isdir(p) or name == "sysrq-trigger" and os.path.exists(p):
            try:
                ns.mount(p, p, None, ns.MS_BIND | ns.MS_REC)
                ns.mount(None, p, None, ns.MS_REMOUNT | ns.MS_BIND | ns.MS_RDONLY
                         | _locked_flags(p))
            except OSError:
                pass


def _mount_sys(target: str) -> None:
    """A fresh read-only sysfs when the container has its own network
    namespace; else the host's /sys bound (recursively: the kernel will not
    hide its submounts) and every mount in it made read-only."""
    try:
        ns.mount("sysfs", target, "sysfs", ns.MS_RDONLY | ns.MS_NOSUID | ns.MS_NODEV
                 | ns.MS_NOEXEC)
        return
    except OSError:
        pass
    ns.mount("/sys", target, None, ns.MS_BIND | ns.MS_REC)
    try:
        ns.mount_setattr_rdonly(target)
    except OSError:
        _remount_read_only(target, strict=False)


def _setup_dev(root: str, gid_tty: int | None, console: str | None,
               shm_size: int = 64 << 20, devices: list[tuple[str, str]] | None = None,
               shared_shm: str | int | None = None) -> None:
    dev = _mkdirs(root, "/dev")
    ns.mount("tmpfs", dev, "tmpfs", ns.MS_NOSUID | ns.MS_STRICTATIME, "mode=755,size=65536k")
    for name in DEV_NODES:
        p = os.path.join(dev, name)
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o666))
        ns.mount(f"/dev/{name}", p, None, ns.MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                         ("core", "/proc/kcore"), ("ptmx", "pts/ptmx")):
        os.symlink(target, os.path.join(dev, name))
    pts = os.path.join(dev, "pts")
    os.mkdir(pts, 0o755)
    opts = "newinstance,ptmxmode=0666,mode=0620" + (f",gid={gid_tty}" if gid_tty is not None
                                                    else "")
    ns.mount("devpts", pts, "devpts", ns.MS_NOSUID | ns.MS_NOEXEC, opts)
    shm = os.path.join(dev, "shm")
    os.mkdir(shm, 0o1777)
    if shared_shm == "":                  # --ipc none: no /dev/shm mounted, as Docker's
        pass
    elif isinstance(shared_shm, str):     # --ipc host: the host's /dev/shm
        ns.mount(shared_shm, shm, None, ns.MS_BIND)
    elif isinstance(shared_shm, int):     # --ipc container:NAME: a copy of its mount
        ns.move_mount_to(shared_shm, shm)
    else:
        ns.mount("shm", shm, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC,
                 f"mode=1777,size={shm_size // 1024}k")
    mq = os.path.join(dev, "mqueue")
    os.mkdir(mq, 0o755)
    try:
        ns.mount("mqueue", mq, "mqueue", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    except OSError:
        pass        # "where possible"
    for host, inside in devices or []:       # --device: bound, as rootless Podman does
        if not inside.startswith("/dev/"):
            continue
        ns.mount(host, _mkfile(root, inside), None, ns.MS_BIND)
    if console:
        c = os.path.join(dev, "console")
        os.close(os.open(c, os.O_CREAT | os.O_WRONLY, 0o600))
        ns.mount(console, c, None, ns.MS_BIND)


def setup_root(root: str, mounts: list[tuple[MountReq, str]], *, read_only: bool,
               full_ids: bool, console: str | None, shm_size: int = 64 << 20,
               devices: list[tuple[str, str]] | None = None,
               shm: str | int | None = None) -> None:
    """Mount /proc, /dev, /sys and the user's mounts into the view at
    ``root``, then make it ``/`` (pivot_root; chroot if that is refused).
    ``mounts`` pairs each request with its host source (a directory for
    binds and volumes)."""
    ns.unshare(ns.CLONE_NEWNS)          # pivot_root must not move the daemon's root
    proc = _mkdirs(root, "/proc")
    try:
        ns.mount("proc", proc, "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    except PermissionError:
        # --pid host: a pid namespace the user does not own takes no new
        # proc mount; the host's is bound, as rootless Podman does
        ns.mount("/proc", proc, None, ns.MS_BIND | ns.MS_REC)
    _mask_proc(proc)
    _setup_dev(root, 5 if full_ids else None, console, shm_size, devices, shm)
    sys_ = _mkdirs(root, "/sys")
    _mount_sys(sys_)
    for req, source in mounts:
        if req.kind == "tmpfs":
            target = _mkdirs(root, req.target)
            opts = req.options or "mode=1777"
            ns.mount("tmpfs", target, "tmpfs", ns.MS_NOSUID | ns.MS_NODEV, opts)
            continue
        if os.path.isdir(source):
            target = _mkdirs(root, req.target)
        else:
            target = _mkfile(root, req.target)
        bind(source, target, req.readonly)
    os.chdir(root)
    try:
        ns.pivot_root(".", ".")
        ns.umount2(".", ns.MNT_DETACH)
    except OSError:
        os.chroot(".")
    os.chdir("/")
    if read_only:
        ns.mount(None, "/", None, ns.MS_REMOUNT | ns.MS_BIND | ns.MS_RDONLY | _locked_flags("/"))


def ignore_signals_for_daemon() -> None:
    """The FUSE daemon leaves when the container's holder tells it (SIGTERM)
    or dies (parent-death signal), never on a terminal's ^C."""
    os.setsid()
    ns.prctl(ns.PR_SET_PDEATHSIG, signal.SIGTERM)
