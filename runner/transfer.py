"""``cp`` and ``export``: tar streams between the host and a container's root.

A forked helper gets the container's root as its ``/``: for a running
container it joins the container's namespaces; for a stopped one it makes a
user and mount namespace of its own and mounts the container's view there,
as a start would. The helper and the host side only exchange a tar stream
through a pipe, so no host path is ever resolved inside the container and no
container path on the host. The helper never looks names up (no NSS code of
the container's is loaded): tars carry numeric owners.
"""
from __future__ import annotations

import os
import signal
import stat
import tarfile
from collections.abc import Callable

from . import namespaces as ns
from .container import Container


class TransferError(Exception):
    """A copy that cannot be done; the message says why."""


def _no_names() -> None:
    tarfile.pwd = None       # type: ignore[attr-defined]  # numeric owners only
    tarfile.grp = None       # type: ignore[attr-defined]


def extract_all(tf: tarfile.TarFile, dest: str) -> None:
    if hasattr(tarfile, "fully_trusted_filter"):
        tf.extractall(dest, filter="fully_trusted")
    else:
        tf.extractall(dest)


def inside(c: Container, launch_factory: Callable, body: Callable[[], None]) -> int:
    """Run ``body()`` in a forked child whose ``/`` is the container's root;
    return its exit code (0: done)."""
    pid = c.pid
    if pid is not None:
        child = os.fork()
        if child == 0:
            code = 1
            try:
                ns.join(pid, ["user", "mnt"])
                os.chdir("/")
                body()
                code = 0
            except BaseException as e:     # noqa: BLE001 - one line to stderr
                os.write(2, f"dockish: error: {_msg(e)}\n".encode())
            os._exit(code)
        _, status = os.waitpid(child, 0)
        return os.waitstatus_to_exitcode(status)
    from .launch import _start_view
    launch = launch_factory(c)

    def offline() -> None:
        ns.unshare(ns.CLONE_NEWNS)
        ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
        daemon = _start_view(launch)
        try:
            child = os.fork()
            if child == 0:
                code = 1
                try:
                    os.chroot(str(c.rootfs))
                    os.chdir("/")
                    body()
                    code = 0
                except BaseException as e:     # noqa: BLE001
                    os.write(2, f"dockish: error: {_msg(e)}\n".encode())
                os._exit(code)
            _, status = os.waitpid(child, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(1)
        finally:
            os.kill(daemon, signal.SIGTERM)
            os.waitpid(daemon, 0)
    return ns.in_userns(offline, launch.mapping)


def _msg(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e) or type(e).__name__


def _join(parent: str, name: str) -> str:
    """Archive names as `docker export` writes them: no leading "./"."""
    return name if parent == "." else os.path.join(parent, name)


def _pump_tar_of(path: str, arcname: str, out_fd: int, *, one_fs: bool) -> None:
    """Write a tar of ``path`` (named ``arcname``) to ``out_fd``."""
    _no_names()
    root_dev = os.lstat(path).st_dev

    def keep(ti: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return ti
    with os.fdopen(out_fd, "wb") as out, tarfile.open(fileobj=out, mode="w|",
                                                      format=tarfile.PAX_FORMAT) as tf:
        if not one_fs:
            tf.add(path, arcname=arcname, filter=keep)
            return
        # export: the root alone, not /proc, /dev, /sys or volumes mounted on it
        for dirpath, dirnames, filenames in os.walk(path):
            rel = os.path.relpath(dirpath, path)
            name = arcname if rel == "." else _join(arcname, rel)
            if rel != ".":
                tf.add(dirpath, arcname=name, recursive=False)
            kept = []
            for d in dirnames:
                full = os.path.join(dirpath, d)
                st = os.lstat(full)
                if stat.S_ISDIR(st.st_mode) and st.st_dev != root_dev:
                    tf.add(full, arcname=_join(name, d), recursive=False)  # the mountpoint
                    continue
                kept.append(d)
            dirnames[:] = kept
            for f in filenames:
                tf.add(os.path.join(dirpath, f), arcname=_join(name, f),
                       recursive=False)


def _dest(dest: str, src_name: str) -> tuple[str, str]:
    """Docker's cp rule: into DEST when it is a directory, else as DEST.
    Returns (directory to extract into, name to give the copy)."""
    if os.path.isdir(dest):
        return dest, src_name
    parent = os.path.dirname(dest.rstrip("/")) or "/"
    if not os.path.isdir(parent):
        raise TransferError(f"no such directory: {parent}")
    return parent, os.path.basename(dest.rstrip("/"))


def _extract_renamed(in_fd: int, dest: str, src_name: str, *, root_owned: bool) -> None:
    into, name = _dest(dest, src_name)
    with os.fdopen(in_fd, "rb") as inp, tarfile.open(fileobj=inp, mode="r|") as tf:
        for ti in tf:
            parts = ti.name.split("/", 1)
            ti.name = name + ("/" + parts[1] if len(parts) > 1 else "")
            if root_owned:
                ti.uid = ti.gid = 0
            if hasattr(tarfile, "fully_trusted_filter"):
                tf.extract(ti, into, filter="fully_trusted")
            else:
                tf.extract(ti, into)


def copy_in(c: Container, launch_factory, host_src: str, ctr_dest: str) -> None:
    """``cp HOST CTR:PATH``: files become root's inside, as Docker does."""
    src = os.path.abspath(host_src)
    if not os.path.lexists(src):
        raise TransferError(f"could not find the file {host_src} in the host")
    r, w = os.pipe()
    name = os.path.basename(src.rstrip("/")) or "."
    writer = os.fork()
    if writer == 0:
        os.close(r)
        code = 0
        try:
            _pump_tar_of(src, name, w, one_fs=False)
        except BaseException:         # noqa: BLE001 - the reader reports
            code = 1
        os._exit(code)
    os.close(w)

    def body() -> None:
        _extract_renamed(r, ctr_dest, name, root_owned=True)
    code = inside(c, launch_factory, body)
    os.close(r)
    os.waitpid(writer, 0)
    if code != 0:
        raise TransferError("")       # the helper said why


def copy_out(c: Container, launch_factory, ctr_src: str, host_dest: str) -> None:
    """``cp CTR:PATH HOST``: files become the user's on the host."""
    r, w = os.pipe()
    name = os.path.basename(ctr_src.rstrip("/")) or "."

    def body() -> None:
        os.close(r)
        if not os.path.lexists(ctr_src):
            raise TransferError(f"Could not find the file {ctr_src} in container {c.name}")
        _pump_tar_of(ctr_src, name, w, one_fs=False)
    pid = os.fork()
    if pid == 0:
        os._exit(inside(c, launch_factory, body))
    os.close(w)
    broken = False
    try:
        _extract_renamed(r, os.path.abspath(host_dest), name, root_owned=False)
    except (tarfile.ReadError, EOFError):
        broken = True             # the helper failed and said why
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or broken:
        raise TransferError("")


def export(c: Container, launch_factory, out_fd: int) -> None:
    """``export``: the container's whole filesystem as a tar on ``out_fd``."""
    def body() -> None:
        _pump_tar_of("/", ".", out_fd, one_fs=True)
    if inside(c, launch_factory, body) != 0:
        raise TransferError("")

