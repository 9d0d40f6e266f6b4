"""The container's view daemon as a process of its own.

Every running container has one FUSE daemon serving its root. The holder
forks it, and the child at once becomes a fresh interpreter
(``unionfs.fresh``) that imports only what serving needs
(``rootfs.preload_view``: pyfuse3, trio, ``unionfs``) and the few runtime
helpers it calls, instead of carrying the whole dockish process it was
forked from: 37 MiB resident once mounted instead of 42, and, with its
malloc arenas capped (``unionfs.daemon.limit_malloc_arenas``), 54 MiB
instead of 69-70 at the peak of an ``apt-get install`` of build-essential,
python3 and git (either change alone left the peak where it was). The
price is the interpreter's own start, about 30 ms of a container's start.

The order of set-up is kept from the fork: the new process loads its modules
and merges the image's layers while the holder makes the namespaces, waits
for the holder's "go", then joins the holder's user and mount namespaces and
mounts the view; it stays the holder's child. The two handshake pipes and
the spec's memfd are the only fds that cross the exec (every other fd is
closed before it, as for any process entering a container).
"""
from __future__ import annotations

import os


def spawn(layers: list[tuple[os.PathLike, list]], layer_ids: list[str], upper: os.PathLike,
          mountpoint: str, log_path: os.PathLike,
          owner: tuple[int, int] | None) -> tuple[int, int, int]:
    """Start the daemon (it loads its modules at once); returns (pid, go fd,
    ready fd): write ``g`` to the go fd when the namespaces are made, then
    read the ready fd (``launch._view_go``). ``owner``: who writes the
    writable layer's files (``procopts.files_owner``)."""
    from unionfs.fresh import exec_fresh

    from . import namespaces as ns
    from . import rootfs
    go_r, go_w = os.pipe()
    r, w = os.pipe()
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
            ns.close_fds_except({w, go_r})
            exec_fresh(__name__, {"layers": [[os.fspath(p), entries] for p, entries in layers],
                                  "layer_ids": list(layer_ids), "upper": os.fspath(upper),
                                  "mountpoint": mountpoint, "owner": owner}, (w, go_r))
        except BaseException as e:           # noqa: BLE001 - reported to the holder
            _report(w, e)
        os._exit(1)
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


def fresh_main(spec_fd: int, w: int, go_r: int) -> None:
    """The daemon, in the fresh interpreter ``spawn`` started."""
    code = 0
    try:
        from pathlib import Path

        from unionfs.fresh import read_spec, uninherit

        from . import namespaces as ns
        from . import procopts, rootfs
        uninherit(w, go_r)
        rootfs.preload_view()
        spec = read_spec(spec_fd)
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
