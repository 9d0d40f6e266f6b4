"""Running one union mount: build the view, mount it, serve until unmounted.

``start`` forks the daemon into the background (as ``dockish mount`` does by
default) and returns once the mount is usable, or raises with the daemon's
one-line reason; ``serve`` runs in the foreground.
"""
from __future__ import annotations

import collections
import functools
import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyfuse3
import trio

from . import mounts
from .fresh import exec_fresh, read_spec, uninherit
from .fs import UnionFS
from .tree import LayerError, Tree
from .upper import Upper


@dataclass
class MountSpec:
    """What to show and where. ``layers`` are ``(tar_path, index_entries)``
    pairs bottom to top (image layers, then the init layer)."""

    layers: list[tuple[Path, list]]
    layer_ids: list[str]
    mountpoint: str
    image: str
    upper: Path | None = None
    options: list[str] = field(default_factory=list)


def build_tree(spec: MountSpec) -> Tree:
    tree = Tree()
    for i, (_, entries) in enumerate(spec.layers):
        tree.add_layer(i, entries)
    tree.finish_lower()
    return tree


def fuse_options(spec: MountSpec) -> set[str]:
    opts: set[str] = set()          # default_permissions or not: UnionFS.mount_options
    if not any(o.startswith("fsname=") for o in spec.options):
        opts.add("fsname=dockish")
    opts.add("subtype=dockish")
    if os.geteuid() != 0:
        # fusermount3 stays behind and unmounts if the daemon dies, so a killed
        # daemon never leaves a "Transport endpoint is not connected" mountpoint
        opts.add("auto_unmount")
    if spec.upper is None:
        opts.add("ro")
    for opt in spec.options:
        if opt == "rw":
            continue
        opts.add(opt)
    return opts


def check_mountpoint(path: str) -> None:
    if mounts.clean_stale(path):
        print(f"dockish: {path}: cleaned up a stale mount whose daemon had died",
              file=sys.stderr)
    if not os.path.isdir(path):
        raise mounts.MountError(f"mountpoint {path} is not a directory")
    if os.path.ismount(path):
        raise mounts.MountError(f"mountpoint {path} is busy: something is mounted there")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise mounts.MountError("/dev/fuse is missing or not read-writable: this machine "
                                "cannot mount FUSE filesystems (as root: chmod 0666 /dev/fuse)")


M_ARENA_MAX = -8          # mallopt(3)
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """At most ``MALLOC_ARENAS`` glibc malloc arenas in this daemon. Each
    worker thread (``trio.to_thread``: big reads and writes, copies, fsyncs)
    would otherwise get an arena of its own that keeps the buffers it once
    held: 15 arenas holding 10.7 MiB of a container's daemon at the peak of
    an ``apt-get install``. Python allocates its objects under the GIL, so
    threads sharing an arena never wait on each other for it. Call before
    any worker thread starts; nothing happens where the C library has no
    mallopt (musl)."""
    import ctypes
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def serve(spec: MountSpec, ready: Callable[[], None] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="dockish mount: %(levelname)s %(message)s")
    """Mount and serve until unmounted or signalled; the writable layer is
    compacted on the way out."""
    limit_malloc_arenas()
    tree = build_tree(spec)
    layer_fds = [os.open(p, os.O_RDONLY | os.O_CLOEXEC) for p, _ in spec.layers]
    spec.layers = [(p, []) for p, _ in spec.layers]   # the tree holds it all now
    gc.collect()
    upper = None
    if spec.upper is not None:
        upper = Upper(spec.upper, spec.layer_ids)
        upper.open()
        upper.load(tree)
        upper.start_spares()
    total = sum(os.fstat(fd).st_size for fd in layer_fds)
    ops = UnionFS(tree, layer_fds, upper, total)
    count_requests(ops)
    try:
        pyfuse3.init(ops, spec.mountpoint, ops.mount_options(fuse_options(spec)))
    except RuntimeError:
        raise mounts.MountError(f"cannot mount {spec.mountpoint}: the kernel refused the "
                                "FUSE mount (see fusermount3's message above)") from None
    mounted = True
    try:
        mounts.save(mounts.MountRecord(spec.mountpoint, os.getpid(), spec.image,
                                       str(spec.upper) if spec.upper else None,
                                       spec.upper is None))
        if ready is not None:
            ready()
        mounted = trio.run(_main)
    finally:
        close_view(ops, mounted)
        for fd in layer_fds:
            os.close(fd)
        rec = mounts.load(spec.mountpoint)
        if rec is not None and rec.pid == os.getpid():
            mounts.remove(spec.mountpoint)


def close_view(ops: UnionFS, mounted: bool) -> None:
    """End a view's session: its worker threads first finish what they
    hold (they answer in the session, and remove data files the compaction
    would list), then the session (unmounting if still mounted), then the
    writable layer, compacted."""
    ops.later.close()
    pyfuse3.close(unmount=mounted)
    if ops.upper is not None:
        ops.upper.compact(ops.tree)
        ops.upper.close()


STATS_ENV = "DOCKISH_FUSE_STATS"
# handlers whose synchronous variant may answer later (see later.py)
LATER = {"fsync", "fsyncdir"}


class RequestStats:
    """Per-handler request counts and time spent in Python, for finding what
    a workload costs the daemon. Only made when ``$DOCKISH_FUSE_STATS`` is
    set, so a normal mount's requests go straight to their handlers."""

    def __init__(self) -> None:
        self.count: collections.Counter[str] = collections.Counter()
        self.ns: collections.Counter[str] = collections.Counter()
        self.started = time.monotonic()
        self.ops: pyfuse3.Operations | None = None
        self._lock = threading.Lock()   # the answers of LATER handlers come from worker threads

    def wrap(self, name: str, fn):
        count, spent, clock = self.count, self.ns, time.perf_counter_ns

        @functools.wraps(fn)
        async def counted(*args, **kwargs):
            count[name] += 1
            t0 = clock()
            try:
                return await fn(*args, **kwargs)
            finally:
                spent[name] += clock() - t0
        return counted

    def wrap_now(self, name: str, fn):
        """The same for a synchronous handler (``<op>_now``); one that hands
        the request to the async handler (returns None) is counted there."""
        count, spent, clock = self.count, self.ns, time.perf_counter_ns

        @functools.wraps(fn)
        def counted(*args, **kwargs):
            t0 = clock()
            res = True                  # a failure is an answer too
            try:
                res = fn(*args, **kwargs)
                return res
            finally:
                if res is not None:
                    count[name] += 1
                    spent[name] += clock() - t0
        return counted

    def wrap_later(self, name: str, fn):
        """The same for a synchronous handler that may answer later, from a
        worker thread (its last argument answers: see ``later.py``): the
        time counted runs until the answer."""
        count, spent, clock, lock = self.count, self.ns, time.perf_counter_ns, self._lock

        @functools.wraps(fn)
        def counted(*args):
            *rest, reply = args
            t0 = clock()

            def answer(err: int = 0) -> None:
                with lock:
                    spent[name] += clock() - t0
                reply(err)
            res = True                  # a failure is an answer too
            try:
                res = fn(*rest, answer)
                return res
            finally:
                if res is not None:
                    with lock:
                        count[name] += 1
        return counted

    def report(self) -> str:
        total = sum(self.count.values())
        lines = [f"dockish mount: requests after {time.monotonic() - self.started:.1f} s: "
                 f"{total} in all"]
        for name, n in self.count.most_common():
            lines.append(f"  {name:12} {n:9d}  {self.ns[name] / 1e6:10.1f} ms in the handler")
        syncs = getattr(self.ops, "journal_syncs", None)
        if syncs is not None:
            lines.append(f"  {'journal':12} {syncs:9d}  syncs of the writable layer's journal")
        spins = getattr(pyfuse3, "dockish_spins", None)
        if spins is not None:
            found, missed = spins()
            lines.append(f"  {'spins':12} {found:9d}  found a request before sleeping, "
                         f"{missed} did not")
        return "\n".join(lines)


_stats: RequestStats | None = None


def count_requests(ops: pyfuse3.Operations) -> None:
    """With ``$DOCKISH_FUSE_STATS`` set, count every request ``ops``
    answers; the counts go to stderr (the daemon's log) on SIGUSR1 and when
    the mount ends."""
    global _stats
    if not os.environ.get(STATS_ENV):
        return
    _stats = RequestStats()
    _stats.ops = ops
    for name in dir(pyfuse3.Operations):
        if name.startswith("_") or name in ("init", "stacktrace"):
            continue
        fn = getattr(ops, name, None)
        if callable(fn):
            setattr(ops, name, _stats.wrap(name, fn))
        now = getattr(ops, name + "_now", None)
        if callable(now):
            wrap = _stats.wrap_later if name in LATER else _stats.wrap_now
            setattr(ops, name + "_now", wrap(name, now))


def _report_stats() -> None:
    """The counts in one write: stderr is line-buffered, and a reader of the
    log (a test on SIGUSR1, a user's tail) saw the heading of a report
    before its lines."""
    if _stats is not None:
        sys.stderr.flush()
        os.write(sys.stderr.fileno(), (_stats.report() + "\n").encode())


async def _main() -> bool:
    """Serve until the kernel ends the session (unmounted: returns False) or a
    signal asks us to stop (still mounted: returns True)."""
    signalled = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, signalled)
            if _stats is not None:
                nursery.start_soon(_stats_on_signal)
            await pyfuse3.main()
            nursery.cancel_scope.cancel()
    finally:
        _report_stats()
    return bool(signalled)


async def _stats_on_signal() -> None:
    with trio.open_signal_receiver(signal.SIGUSR1) as sigs:
        async for _ in sigs:
            _report_stats()


async def _stop_on_signal(signalled: list) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as sigs:
        async for _ in sigs:
            signalled.append(True)
            pyfuse3.terminate()
            return


def start(spec: MountSpec, log_path: Path) -> int:
    """Fork the daemon; return its pid once the mount is ready, or raise with
    the reason it gave."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setsid()
            _redirect_stdio(log_path)
            exec_fresh(__name__, {
                "layers": [[os.fspath(p), entries] for p, entries in spec.layers],
                "layer_ids": list(spec.layer_ids), "mountpoint": spec.mountpoint,
                "image": spec.image, "upper": os.fspath(spec.upper) if spec.upper else None,
                "options": list(spec.options)}, (w,))
        except Exception as e:           # reported to the parent as one line
            _report(w, e)
        finally:
            os._exit(1)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        if chunks == [] and chunk.startswith(b"\0"):
            os.close(r)
            return pid
        chunks.append(chunk)
    os.close(r)
    os.waitpid(pid, 0)
    msg = b"".join(chunks).decode(errors="replace").strip()
    raise mounts.MountError(msg or "the mount daemon exited before the mount was ready")


def fresh_main(spec_fd: int, w: int) -> None:
    """The daemon ``start`` forked, as a fresh interpreter (``unionfs.fresh``:
    a fork would carry the CLI it came from for as long as the mount lives)."""
    code = 0
    try:
        uninherit(w)
        raw = read_spec(spec_fd)
        spec = MountSpec(layers=[(Path(p), list(entries)) for p, entries in raw["layers"]],
                         layer_ids=list(raw["layer_ids"]), mountpoint=raw["mountpoint"],
                         image=raw["image"], options=list(raw["options"]),
                         upper=Path(raw["upper"]) if raw["upper"] is not None else None)
        del raw
        serve(spec, ready=lambda: os.write(w, b"\0"))
    except Exception as e:           # reported to the parent as one line
        _report(w, e)
        code = 1
    os._exit(code)


def _report(fd: int, e: Exception) -> None:
    traceback.print_exc()
    try:
        os.write(fd, str(e).encode(errors="replace") or type(e).__name__.encode())
    except OSError:
        pass


def _redirect_stdio(log_path: Path) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    # in the private runtime dir; never through a symlink all the same
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                  | os.O_CLOEXEC, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


__all__ = ["MountSpec", "serve", "start", "build_tree", "LayerError"]
