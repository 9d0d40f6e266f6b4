"""The container's view daemon as a process of its own.

Every running container has one FUSE daemon serving its root. Forked from
the holder, it carried the whole dockish process it came from (click,
requests, the registry client, the builder's Dockerfile parser, the
engine's records and the layer indexes) and that process's heap, whose free
space its own allocations then filled: 42 MiB resident once mounted. So the
holder forks and at once executes a fresh interpreter that imports only what
serving needs (``rootfs.preload_view``: pyfuse3, trio, ``unionfs``) and the
few runtime helpers it calls: 38 MiB once mounted, and with its malloc
arenas capped (``unionfs.daemon.limit_malloc_arenas``) 55 MiB instead of 62
at the peak of an ``apt-get install`` of build-essential, python3 and git.
The price is the interpreter's own start, about 30 ms of a container's
start.

The order of set-up is kept from the fork: the new process loads its modules
and merges the image's layers while the holder makes the namespaces, waits
for the holder's "go", then joins the holder's user and mount namespaces and
mounts the view; it stays the holder's child. What it serves (the layers'
tar paths and index entries, the writable layer, the mountpoint) comes
through a memfd written before the fork, so the holder never waits on the
daemon to read it; the two handshake pipes and the memfd are the only fds
that cross the exec (every other fd is closed before it, as for any process
entering a container).
"""
from __future__ import annotations

import os
import sys

_BOOT = "import sys; sys.path[:] = sys.argv[4:]; from runner.runtime.viewd import main; main()"
"""What the fresh interpreter runs (``-I -S``: no current directory, no
PYTHON* variables, no site set-up, which took a tenth of its start): the
caller's module path, given after the three fds, then ``main``."""

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""The directory holding the ``runner`` and ``unionfs`` packages: on the
path even where an editable install finds them by an import hook."""


def spawn(layers: list[tuple[os.PathLike, list]], layer_ids: list[str], upper: os.PathLike,
          mountpoint: str, log_path: os.PathLike,
          owner: tuple[int, int] | None) -> tuple[int, int, int]:
    """Start the daemon (it loads its modules at once); returns (pid, go fd,
    ready fd): write ``g`` to the go fd when the namespaces are made, then
    read the ready fd (``launch._view_go``). ``owner``: who writes the
    writable layer's files (``procopts.files_owner``)."""
    import msgpack

    from . import namespaces as ns
    from . import rootfs
    spec = msgpack.packb({"layers": [[os.fspath(p), entries] for p, entries in layers],
                          "layer_ids": list(layer_ids), "upper": os.fspath(upper),
                          "mountpoint": mountpoint, "owner": owner})
    spec_fd = os.memfd_create("dockish-view", os.MFD_CLOEXEC)
    try:
        view = memoryview(spec)
        while view:
            view = view[os.write(spec_fd, view):]
        os.lseek(spec_fd, 0, os.SEEK_SET)
        go_r, go_w = os.pipe()
        r, w = os.pipe()
    except BaseException:
        os.close(spec_fd)
        raise
    path = [os.path.abspath(p) for p in sys.path if p] + [_ROOT]
    pid = os.fork()
    if pid == 0:
        try:
            rootfs.ignore_signals_for_daemon()
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW,
                          0o600)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            keep = (spec_fd, w, go_r)
            ns.close_fds_except(set(keep))
            for fd in keep:
                os.set_inheritable(fd, True)
            os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _BOOT,
                                      *map(str, keep), *path])
        except BaseException as e:           # noqa: BLE001 - reported to the holder
            _report(w, e)
        os._exit(1)
    os.close(spec_fd)
    os.close(w)
    os.close(go_r)
    return pid, go_w, r


def _report(fd: int, e: BaseException) -> None:
    """The daemon's reason for the holder, as one line (and its traceback in
    the daemon's log)."""
    import traceback

    from ..errors import message
    traceback.print_exc()
    try:
        os.write(fd, message(e).encode(errors="replace"))
    except OSError:
        pass


def _read_spec(fd: int) -> dict:
    import msgpack
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    return msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=False)


def main() -> None:
    """The daemon, in the fresh interpreter ``spawn`` started."""
    spec_fd, w, go_r = (int(a) for a in sys.argv[1:4])
    code = 0
    try:
        for fd in (spec_fd, w, go_r):
            os.set_inheritable(fd, False)
        from pathlib import Path

        from . import namespaces as ns
        from . import procopts, rootfs
        rootfs.preload_view()
        spec = _read_spec(spec_fd)
        # a list of its own, which view_lower empties
        tree, fds = rootfs.view_lower([(Path(p), list(entries))
                                       for p, entries in spec.pop("layers")])
        if os.read(go_r, 1) != b"g":
            os._exit(0)
        os.close(go_r)
        ns.join(os.getppid(), ["user", "mnt"])
        procopts.own_files_as(spec["owner"])
        rootfs.serve_view(tree, fds, list(spec["layer_ids"]), Path(spec["upper"]),
                          spec["mountpoint"], ready=lambda: os.write(w, b"\0"))
    except BaseException as e:          # noqa: BLE001 - reported to the holder
        _report(w, e)
        code = 1
    os._exit(code)
