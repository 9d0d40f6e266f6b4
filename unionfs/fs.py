"""The FUSE operations of the union view, kept thin over ``tree.Tree``.

Concurrency rules: pyfuse3 runs every request in one thread: as a trio task,
or, for the handlers with a synchronous variant (``*_now``, see ``NOW``),
straight from its C callback with no task at all.
Handlers therefore never block on long I/O in the trio thread: reads of
bytes not in the host's page cache, writes over ``_BIG`` bytes and data
copy-ups go through ``trio.to_thread``;
fsyncs hand their waits to threads of their own that answer the kernel
themselves (``later.Later``).
Tree changes happen only in the trio thread and never across an ``await``
(so no other request sees a half-made change); the one await inside a change
is the data copy-up, serialized per node by ``_copy_locks``. Every change's
journal records are written before its reply goes back to the kernel.

The kernel caches entries and attributes for a long time and keeps file pages
(``keep_cache``): this daemon is the only writer of the view, and lower
layers never change under it.
"""
from __future__ import annotations

import errno
import functools
import inspect
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence

import pyfuse3
import trio

from .access import R, W, X, make_policy, open_want
from .fdcache import FdCache
from .later import Later, Reply
from .tree import RENAME_EXCHANGE, RENAME_NOREPLACE, Node, Rec, Tree
from .upper import Upper
from .whiteout import is_whiteout

log = logging.getLogger(__name__)

TIMEOUT = 1e6          # seconds the kernel may cache entries and attributes
NAME_MAX = 255
# Handlers named ``<op>_now`` answer without a coroutine: the patched pyfuse3
# (scripts/patch-pyfuse3, DOCKISH_SYNC_HANDLERS) calls them from its C
# callback and replies at once, unless they return None ("needs the async
# handler": a big read, a write that copies up first).
NOW = "_now"
_BIG = 64 * 1024       # writes above this go to a worker thread (reads: see read_now)
_READ_BUF = 128 * 1024  # the kernel's READs (max_pages 32) fit
# fsync hands the kernel a written file's last pages (see _store_tail): from
# an offset aligned to the largest page-cache folio (2 MiB, a PMD on x86-64),
# so that each folio the store touches starts at the data's start
_STORE_ALIGN = 2 * 1024 * 1024
_SNAP_BITS = 32        # readdir offsets: snapshot number << 32 | index (see _snapshot)
_SNAPSHOTS = 256
_NEEDS_KEPT = 4096     # _needs entries before the durable ones are dropped
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC


def _err(code: int) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(code)


def _fuse_error(fn, exc: Exception) -> pyfuse3.FUSEError:
    """What the kernel is told when a handler fails with ``exc``: an
    OSError's errno (ENOSPC, EIO...); a bug is EIO and a logged traceback,
    never the death of the mount."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return pyfuse3.FUSEError(exc.errno)
    log.error("%s failed", fn.__name__, exc_info=exc)
    return pyfuse3.FUSEError(errno.EIO)


def _guard(fn):
    """``fn``'s failures as ``_fuse_error`` says, for the async handlers."""
    @functools.wraps(fn)
    async def wrapper(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except Exception as e:
            raise _fuse_error(fn, e) from None
    return wrapper


def _guard_now(fn):
    """The same for the handlers pyfuse3 calls without a coroutine (``*_now``:
    see ``UnionFS.getattr_now``)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except Exception as e:
            raise _fuse_error(fn, e) from None
    return wrapper


class _Guarded(type(pyfuse3.Operations)):
    """Wrap every request handler of the class in ``_guard`` (``_guard_now``
    for the synchronous ones)."""

    def __new__(mcs, name, bases, ns):
        for key, value in list(ns.items()):
            if key.startswith("_"):
                continue
            if inspect.iscoroutinefunction(value):
                ns[key] = _guard(value)
            elif key.endswith(NOW) and callable(value):
                ns[key] = _guard_now(value)
        return super().__new__(mcs, name, bases, ns)


class UnionFS(pyfuse3.Operations, metaclass=_Guarded):
    """Lower layers (read-only tar files) plus an optional writable layer."""

    enable_writeback_cache = True
    # the patched pyfuse3's reader keeps reading this long before it sleeps
    # (scripts/patch-pyfuse3, READER): the next request of a process that
    # just got its answer mostly comes sooner than a sleeping daemon wakes.
    # On the development machine (2 cores, a VM) an rm -rf of 7.4k files
    # took 0.59 s instead of 1.03, a find+cat over an installed /usr 0.96-1.07
    # instead of 1.11-1.39; what it costs is CPU of the daemon's own, backed
    # off where spins find nothing
    spin_ns = 50_000
    # O_TRUNC in OPEN (libfuse's default); off where the kernel opens without
    # asking, so that it truncates with a SETATTR the daemon sees
    atomic_o_trunc = True
    # keep file pages when attributes change (set with atomic_o_trunc):
    # without the write-back cache each write made the next GETATTR drop them
    explicit_inval_data = False

    def __init__(self, tree: Tree, layer_fds: list[int], upper: Upper | None,
                 total_size: int = 0) -> None:
        super().__init__()
        self.tree = tree
        self.layer_fds = layer_fds
        self.upper = upper
        self.readonly = upper is None
        # nothing to write back on a read-only view; and with the write-back
        # cache on, every close makes the kernel ask for the attributes again
        self.enable_writeback_cache = not self.readonly
        self.total_size = total_size
        self._fh = 0
        self._files: dict[int, Node] = {}
        self._dirs: dict[int, list[tuple[bytes, Node]]] = {}
        self._fds = FdCache()                   # node ino -> open data fd
        self._dirty: set[Node] = set()          # written since their last record
        self._copy_locks: dict[int, trio.Lock] = {}
        # inodes whose pages an fsync is handing to the kernel: True once
        # their data changed meanwhile (the store may then hold old bytes)
        self._storing: dict[int, bool] = {}
        self._store_lock = threading.Lock()     # _storing: set here, popped by workers
        self._mapped: set[int] = set()      # written through shared mappings
        self._unstored: set[int] = set()    # written by write() since their last store
        # one journal sync at a time (group commit: see _sync_journal_now);
        # compaction, which swaps the journal's fd, only while none runs
        self._journal_lock = threading.Lock()
        # uino -> the journal's length once its last record (the file's
        # metadata, or a name for it) was written: what an fsync of that
        # file needs durable (see fsync)
        self._needs: dict[int, int] = {}
        self._needs_limit = _NEEDS_KEPT
        self.later = Later()                    # fsyncs' waits: see later.py
        self._rbuf = memoryview(bytearray(_READ_BUF))   # read_now's
        self._nowait = hasattr(os, "RWF_NOWAIT")
        self.journal_syncs = 0                  # for the request stats
        self._doomed: list[int] = []            # data files to remove (uinos), off the trio thread
        self.policy = make_policy()
        # seconds the kernel keeps entries; 0 where others' path walks must
        # reach the daemon's checks (``access``: set by whoever mounts)
        self.entry_timeout = TIMEOUT
        # the kernel opens files (and directories) without asking (set by
        # ``mount_options``); listings of such directories, made once
        self.no_open = False
        self.no_opendir = False
        self._listings: dict[int, list[tuple[bytes, Node]]] = {}
        # writable views without OPENDIR: listings made at offset 0, named
        # by the offsets handed out (see ``_snapshot``)
        self._snaps: dict[int, list[tuple[bytes, Node]]] = {}
        self._snap_seq = 0

    def mount_options(self, options: set[str]) -> set[str]:
        """``options`` plus what this view's permission model needs (see
        ``access``): ``default_permissions`` where the kernel checks; where
        the daemon checks other users, no cached entries (a path walk over
        cached entries never asks the daemon about search permission).

        A view answers OPEN and OPENDIR with ENOSYS where no open needs the
        daemon's check (the kernel checks, or nobody but the mounting user,
        who reads everything, gets in): the kernel then opens every file and
        directory itself, keeps pages and listings and sends no OPEN,
        RELEASE, OPENDIR or RELEASEDIR again, so a warm re-read costs no
        request at all. Nothing in the daemon is per open file then: data
        fds are per inode (``FdCache``), a lower file is copied up by its
        first write or truncate, O_TRUNC comes as a SETATTR
        (``atomic_o_trunc`` off), written times are journaled with the next
        change, fsync or forget, and a listing is known by its offsets
        (``_snapshot``). Needs the patched pyfuse3 (reads, writes, fsyncs and
        listings name the inode: scripts/patch-pyfuse3)."""
        others = bool(options & {"allow_other", "allow_root"})
        if others and not self.policy.kernel_checks:
            self.entry_timeout = 0
        marker = "DOCKISH_INODE_READS" if self.readonly else "DOCKISH_INODE_WRITES"
        self.no_open = (getattr(pyfuse3, marker, False)
                        and (self.policy.kernel_checks
                             or not others and self.policy.owner_uid != 0))
        self.no_opendir = self.no_open
        if self.no_open and not self.readonly:
            self.atomic_o_trunc = False
            self.enable_writeback_cache = False
            self.explicit_inval_data = True
        return options | self.policy.mount_options

    # -- helpers -------------------------------------------------------------------

    def _node(self, ino: int) -> Node:
        try:
            return self.tree.nodes[ino]
        except KeyError:
            raise _err(errno.ENOENT) from None

    def _dir(self, ino: int) -> Node:
        node = self._node(ino)
        if not node.is_dir:
            raise _err(errno.ENOTDIR)
        return node

    def attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        a = node.attr
        if a is None:
            a = pyfuse3.EntryAttributes()
            a.st_ino = node.ino
            a.generation = 0
            a.entry_timeout = self.entry_timeout
            a.attr_timeout = TIMEOUT
            a.st_mode = node.mode
            a.st_nlink = node.nlink
            a.st_uid = node.uid
            a.st_gid = node.gid
            a.st_rdev = node.rdev
            a.st_size = node.size
            a.st_blksize = 131072
            a.st_blocks = (node.size + 511) // 512
            a.st_atime_ns = node.atime
            a.st_mtime_ns = node.mtime
            a.st_ctime_ns = node.ctime
            node.attr = a
        return a

    def _writable(self) -> None:
        if self.readonly:
            raise _err(errno.EROFS)

    def _flush_journal(self, *, freeing: bool = False) -> None:
        self._record_dirty()
        records = self.tree.take_pending()
        try:
            self.upper.append(records)
        except OSError as e:
            if freeing and e.errno in (errno.ENOSPC, errno.EDQUOT) \
                    and self._compact(lambda: self.upper.compact_to_free(self.tree)):
                return                          # the rewritten journal holds the change, synced
            self.tree.pending[:0] = records     # journaled with the next change that fits
            raise
        end, needs = self.upper.journal_bytes, self._needs
        for rec in records:
            if rec[0] == Rec.INODE:
                needs[rec[1]] = end
            elif rec[0] == Rec.PLACE or rec[0] == Rec.BIND:
                needs[rec[2]] = end
        if len(needs) > self._needs_limit:      # what is durable now needs nothing
            synced = self.upper.synced_bytes
            self._needs = {u: n for u, n in needs.items() if n > synced}
            self._needs_limit = max(_NEEDS_KEPT, 2 * len(self._needs))
        if self.upper.needs_compaction():
            self._compact(lambda: self.upper.compact(self.tree))

    def _record_dirty(self) -> None:
        """Journal the times of files written since their last record: with
        every change (where the kernel opens by itself no RELEASE comes to
        do it), so they cost no journal write of their own; a kill -9 loses
        at most the times of writes nobody fsync'ed (sizes come from the
        data files, see ``Upper._sync_sizes``)."""
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            for node in dirty:
                if node.dirty and node.links:
                    self.tree.record(node)

    def _compact(self, how: Callable[[], bool]) -> bool:
        """Run ``how`` (a compaction: it swaps the journal's fd) unless a
        copy-up or a journal sync in a worker thread is under way; holding
        the journal lock keeps syncs off the fds it swaps. True if it
        compacted (all of the journal is durable then)."""
        if self._copy_locks or not self._journal_lock.acquire(blocking=False):
            return False
        try:
            done = how()
        finally:
            self._journal_lock.release()
        if done:
            self._needs.clear()
        return done

    def _new_name_ok(self, parent: Node, name: bytes, ctx) -> None:
        self._writable()
        self.upper.admit()          # a full disk: the journal's last room is for deletes
        self.policy.check(ctx, parent, W | X)
        if len(name) > NAME_MAX:
            raise _err(errno.ENAMETOOLONG)
        if is_whiteout(name):
            raise _err(errno.EINVAL)    # such a name cannot be stored in an OCI layer
        if name in parent.children:
            raise _err(errno.EEXIST)

    def _touch_dir(self, d: Node, now: int) -> None:
        d.mtime = d.ctime = now
        self.tree.record(d)

    def _drop(self, node: Node) -> None:
        """Release what a node that just lost its last reference still holds."""
        if self.tree.maybe_forget(node) and node.layer is None and stat.S_ISREG(node.mode):
            self._fds.close(node.ino)
            self._dirty.discard(node)
            self._mapped.discard(node.ino)
            self._unstored.discard(node.ino)
            if node.uino is not None:
                self._doomed.append(node.uino)

    def _reap(self) -> None:
        """Remove the data files of dropped nodes in a worker thread
        (``later``): an unlink on the backing filesystem takes long (``rm
        -rf`` of a tree written in the view spent most of its time there),
        and no request waits for it. A file left by a killed daemon has no
        name in the journal, so the next mount's compaction removes it (as
        the unmount's removes those whose removal had not started); uinos
        are never reused within a mount."""
        if self._doomed:
            doomed, self._doomed = self._doomed, []
            self.later.soon(functools.partial(self.upper.remove_data_many, doomed))

    def _sync_journal_now(self) -> None:
        """Make every journal record written so far durable (in a worker
        thread). Syncs that wait for the lock together are covered by one:
        ``Upper.sync`` skips when an earlier one already reached their
        records."""
        with self._journal_lock:
            before = self.upper.synced_bytes
            self.upper.sync()
            if self.upper.synced_bytes != before:
                self.journal_syncs += 1

    def _data_fd(self, node: Node) -> int:
        fd = self._fds.get(node.ino)
        if fd is None:
            fd = self.upper.open_data(node.uino)
            self._fds.put(node.ino, fd)
        return fd

    async def _copy_up(self, node: Node, keep: int | None = None) -> None:
        """Give a lower file its own data in the writable layer: the first
        ``keep`` bytes (all by default) copied with copy_file_range, which
        reflinks where the backing filesystem can."""
        if node.layer is None:
            return
        lock = self._copy_locks.setdefault(node.ino, trio.Lock())
        async with lock:
            if node.layer is None:
                return
            if node.uino is None:
                self.tree.record(node)
                self._flush_journal()
            size = node.size if keep is None else min(keep, node.size)
            fd = self.upper.new_data(node.uino)
            try:
                if size:
                    await trio.to_thread.run_sync(
                        _copy_range, self.layer_fds[node.layer], node.offset, fd, size)
            except OSError:
                os.close(fd)
                self.upper.remove_data(node.uino)
                raise
            self._fds.put(node.ino, fd)
            node.layer = None
            node.size = size
            self.tree.record(node)
            self._flush_journal()
        self._copy_locks.pop(node.ino, None)

    # -- lookups and attributes ----------------------------------------------------

    def lookup_now(self, parent_inode: int, name: bytes, ctx=None) -> pyfuse3.EntryAttributes:
        parent = self._dir(parent_inode)
        self.policy.check(ctx, parent, X)
        if name == b".":
            node = parent
        elif name == b"..":
            node = parent.links[0][0] if parent.links else parent
        else:
            if len(name) > NAME_MAX:
                raise _err(errno.ENAMETOOLONG)
            node = parent.children.get(name)
            if node is None:
                neg = pyfuse3.EntryAttributes()
                neg.st_ino = 0
                neg.entry_timeout = self.entry_timeout
                return neg
        node.lookups += 1
        return self.attrs(node)

    async def lookup(self, parent_inode: int, name: bytes, ctx=None) -> pyfuse3.EntryAttributes:
        return self.lookup_now(parent_inode, name, ctx)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            node = self.tree.nodes.get(ino)
            if node is not None:
                node.lookups = max(0, node.lookups - count)
                if not node.links:
                    self._drop(node)
                elif not node.lookups and not node.opens:
                    self._fds.close(ino)     # nobody can reach its data until a lookup
                    if node.dirty:
                        self.tree.record(node)
        if self.tree.pending and self.upper is not None:
            self._flush_journal()
        self._reap()

    def getattr_now(self, inode: int, ctx=None) -> pyfuse3.EntryAttributes:
        return self.attrs(self._node(inode))

    async def getattr(self, inode: int, ctx=None) -> pyfuse3.EntryAttributes:
        return self.getattr_now(inode, ctx)

    async def setattr(self, inode: int, attr, fields, fh, ctx) -> pyfuse3.EntryAttributes:
        self._writable()
        node = self._node(inode)
        now = time.time_ns()
        mode = self.policy.check_setattr(ctx, node, attr, fields, fh)
        if fields.update_size:
            if not stat.S_ISREG(node.mode):
                raise _err(errno.EINVAL)
            size = attr.st_size
            if node.layer is not None:
                await self._copy_up(node, keep=size)
            fd = self._data_fd(node)
            os.ftruncate(fd, size)
            node.size = size
            node.mtime = now
            self._changed(node)
        if fields.update_mode:
            node.mode = stat.S_IFMT(node.mode) | mode
        if fields.update_uid:
            node.uid = attr.st_uid
        if fields.update_gid:
            node.gid = attr.st_gid
        if fields.update_atime:
            node.atime = attr.st_atime_ns
        if fields.update_mtime:
            node.mtime = attr.st_mtime_ns
        node.ctime = attr.st_ctime_ns if fields.update_ctime else now
        self.tree.record(node)
        self._flush_journal()
        return self.attrs(node)

    async def readlink(self, inode: int, ctx=None) -> bytes:
        node = self._node(inode)
        if node.target is None:
            raise _err(errno.EINVAL)
        return node.target

    # -- making names ---------------------------------------------------------------

    def _make(self, parent: Node, name: bytes, mode: int, ctx, *, rdev: int = 0,
              target: bytes | None = None, keep_open: bool = False) -> Node:
        self._new_name_ok(parent, name, ctx)
        now = time.time_ns()
        uid, gid = self.policy.new_owner(ctx)
        if parent.mode & stat.S_ISGID:
            gid = parent.gid
            if stat.S_ISDIR(mode):
                mode |= stat.S_ISGID
        node = self.tree.new_node(mode, uid, gid, now, rdev=rdev, target=target)
        if stat.S_ISREG(mode):
            fd = self.upper.new_data(node.uino)
            if keep_open:
                self._fds.put(node.ino, fd)
            else:
                os.close(fd)
        self._touch_dir(parent, now)
        self.tree.place(parent, name, node)
        self._flush_journal()
        node.lookups += 1
        return node

    async def mknod(self, parent_inode, name, mode, rdev, ctx) -> pyfuse3.EntryAttributes:
        parent = self._dir(parent_inode)
        return self.attrs(self._make(parent, name, mode, ctx, rdev=rdev))

    async def mkdir(self, parent_inode, name, mode, ctx) -> pyfuse3.EntryAttributes:
        parent = self._dir(parent_inode)
        return self.attrs(self._make(parent, name, stat.S_IFDIR | stat.S_IMODE(mode), ctx))

    async def symlink(self, parent_inode, name, target, ctx) -> pyfuse3.EntryAttributes:
        parent = self._dir(parent_inode)
        return self.attrs(self._make(parent, name, stat.S_IFLNK | 0o777, ctx, target=target))

    async def create(self, parent_inode, name, mode, flags, ctx):
        parent = self._dir(parent_inode)
        node = self._make(parent, name, stat.S_IFREG | stat.S_IMODE(mode), ctx, keep_open=True)
        if self.no_open:        # handle 0: reads and writes name the inode, as for opens
            return pyfuse3.FileInfo(fh=0, keep_cache=True), self.attrs(node)
        return self._open_handle(node), self.attrs(node)

    async def link(self, inode, new_parent_inode, new_name, ctx) -> pyfuse3.EntryAttributes:
        node = self._node(inode)
        parent = self._dir(new_parent_inode)
        self._new_name_ok(parent, new_name, ctx)
        if node.is_dir:
            raise _err(errno.EPERM)
        now = time.time_ns()
        node.ctime = now
        self.tree.record(node)
        self._touch_dir(parent, now)
        self.tree.place(parent, new_name, node)
        self._flush_journal()
        node.lookups += 1
        return self.attrs(node)

    # -- removing and moving names --------------------------------------------------------

    async def unlink(self, parent_inode, name, ctx) -> None:
        self._writable()
        parent = self._dir(parent_inode)
        node = parent.children.get(name)
        if node is None:
            raise _err(errno.ENOENT)
        if node.is_dir:
            raise _err(errno.EISDIR)
        self.policy.check_delete(ctx, parent, node)
        now = time.time_ns()
        self._touch_dir(parent, now)
        self.tree.unlink(parent, name)
        node.ctime = now
        node.attr = None
        if node.links:
            self.tree.record(node)
        self._flush_journal(freeing=True)
        if not node.links:
            self._drop(node)
            self._reap()

    async def rmdir(self, parent_inode, name, ctx) -> None:
        self._writable()
        parent = self._dir(parent_inode)
        node = parent.children.get(name)
        if node is None:
            raise _err(errno.ENOENT)
        if not node.is_dir:
            raise _err(errno.ENOTDIR)
        self.policy.check_delete(ctx, parent, node)
        if node.children:
            raise _err(errno.ENOTEMPTY)
        self._touch_dir(parent, time.time_ns())
        self.tree.unlink(parent, name)
        self._flush_journal(freeing=True)
        self._drop(node)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new,
                     flags, ctx) -> None:
        self._writable()
        sp = self._dir(parent_inode_old)
        dp = self._dir(parent_inode_new)
        node = sp.children.get(name_old)
        if node is None:
            raise _err(errno.ENOENT)
        if len(name_new) > NAME_MAX:
            raise _err(errno.ENAMETOOLONG)
        if is_whiteout(name_new):
            raise _err(errno.EINVAL)
        target = dp.children.get(name_new)
        self.policy.check_delete(ctx, sp, node)
        if target is not None:
            self.policy.check_delete(ctx, dp, target)
        else:
            self.policy.check(ctx, dp, W | X)
        if flags & RENAME_EXCHANGE:
            if target is None:
                raise _err(errno.ENOENT)
        elif target is not None:
            if flags & RENAME_NOREPLACE:
                raise _err(errno.EEXIST)
            if target is node:
                return                      # two names of one inode: POSIX says do nothing
            if node.is_dir and not target.is_dir:
                raise _err(errno.ENOTDIR)
            if not node.is_dir and target.is_dir:
                raise _err(errno.EISDIR)
            if target.is_dir and target.children:
                raise _err(errno.ENOTEMPTY)
        for moving in (node, target if flags & RENAME_EXCHANGE else None):
            if moving is not None and moving.is_dir and _is_ancestor(moving, dp if moving is
                                                                     node else sp):
                raise _err(errno.EINVAL)
        now = time.time_ns()
        self._touch_dir(sp, now)
        if dp is not sp:
            self._touch_dir(dp, now)
        self.tree.rename(sp, name_old, dp, name_new, flags)
        node.ctime = now
        self.tree.record(node)
        self._flush_journal(freeing=True)
        if target is not None and not target.links:
            self._drop(target)
            self._reap()

    # -- file data -----------------------------------------------------------------

    def _open_handle(self, node: Node) -> pyfuse3.FileInfo:
        self._fh += 1
        self._files[self._fh] = node
        node.opens += 1
        return pyfuse3.FileInfo(fh=self._fh, keep_cache=True)

    async def open(self, inode, flags, ctx) -> pyfuse3.FileInfo:
        if self.no_open:
            raise _err(errno.ENOSYS)        # the kernel opens by itself from now on
        node = self._node(inode)
        if flags & _WRITE_FLAGS and self.readonly:
            raise _err(errno.EROFS)
        # the only open check where the daemon checks (access.Policy): an OPEN
        # the kernel skips (no_open) is safe only when policy.kernel_checks
        self.policy.check(ctx, node, open_want(flags))
        if flags & os.O_TRUNC and node.size:
            await self._copy_up(node, keep=0)
            os.ftruncate(self._data_fd(node), 0)
            node.size = 0
            node.mtime = node.ctime = time.time_ns()
            self._changed(node)
            self.tree.record(node)
            self._flush_journal()
        elif flags & (os.O_WRONLY | os.O_RDWR) and node.layer is not None:
            # copy up now, as overlayfs does: a full disk fails this open,
            # not a later write-back whose size the kernel would keep
            await self._copy_up(node)
        return self._open_handle(node)

    def _handle_node(self, fh: int) -> Node:
        """The node a READ, WRITE or FSYNC is for: without opens, the patched
        pyfuse3 passes the inode in place of the handle."""
        return self._node(fh) if self.no_open else self._files[fh]

    def _read_from(self, node: Node, off: int, size: int) -> tuple[int, int, int]:
        """The fd, offset and size to read for ``size`` bytes at ``off`` of
        ``node``'s data (size 0 past the end of a lower file)."""
        if node.layer is None:
            return self._data_fd(node), off, size
        if off >= node.size:
            return -1, 0, 0
        return self.layer_fds[node.layer], off + node.offset, min(size, node.size - off)

    def read_now(self, fh, off, size) -> bytes | memoryview | None:
        """A read answered at once where its bytes are in the host's page
        cache, of any size; None (the async ``read``: a worker thread) where
        the disk must be read, so that a cold read never holds up the trio
        thread. ``RWF_NOWAIT`` tells which (a read that finds part of its
        pages fails or comes back short). The bytes go into a buffer kept
        for it, which pyfuse3 copies into its reply before any other
        request runs: no allocation per read (a 128 KiB bytes object is
        mapped and unmapped each time)."""
        node = self._handle_node(fh)
        fd, pos, size = self._read_from(node, off, size)
        if not size:
            return b""
        if size > len(self._rbuf) or not self._nowait:
            return None if size > _BIG else os.pread(fd, size, pos)
        view = self._rbuf[:size]
        try:
            n = os.preadv(fd, [view], pos, os.RWF_NOWAIT)
        except BlockingIOError:
            return None
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            self._nowait = False        # a backing filesystem without it: as before
            return self.read_now(fh, off, size)
        if n < size and off + n < node.size:
            return None                 # partly in the page cache
        return view[:n]

    async def read(self, fh, off, size) -> bytes:
        data = self.read_now(fh, off, size)
        if data is not None:
            return bytes(data)          # (the buffer is read_now's)
        node = self._handle_node(fh)    # from the disk: in a worker thread
        fd, off, size = self._read_from(node, off, size)
        with self._fds.busy(node.ino):
            return await trio.to_thread.run_sync(os.pread, fd, size, off)

    def write_now(self, fh, off, buf, from_pages: bool = False) -> int | None:
        node = self._handle_node(fh)
        if from_pages:          # written through a shared mapping: see _store_tail
            self._mapped.add(node.ino)
        if node.layer is not None or len(buf) > _BIG:
            return None
        if not from_pages:
            self._unstored.add(node.ino)
        return self._wrote(node, off, os.pwrite(self._data_fd(node), buf, off))

    async def write(self, fh, off, buf) -> int:
        node = self._handle_node(fh)
        self._unstored.add(node.ino)    # (a mapping's writes are known to write_now)
        if node.layer is not None:
            await self._copy_up(node)
        fd = self._data_fd(node)
        if len(buf) > _BIG:
            with self._fds.busy(node.ino):
                n = await trio.to_thread.run_sync(os.pwrite, fd, buf, off)
        else:
            n = os.pwrite(fd, buf, off)
        return self._wrote(node, off, n)

    def _wrote(self, node: Node, off: int, n: int) -> int:
        """Record ``n`` bytes written at ``off`` in ``node``'s attributes."""
        self._changed(node)
        if off + n > node.size:
            node.size = off + n
        node.mtime = node.ctime = time.time_ns()
        node.attr = None
        node.dirty = True
        self._dirty.add(node)
        return n

    def fsync_now(self, fh, datasync, reply: Reply) -> bool:
        """Journal the file's record here; its waits (see ``_fsync_work``)
        go to a worker thread that answers the kernel when they are done."""
        return self._answer_later(self._fsync_work(fh), reply)

    async def fsync(self, fh, datasync) -> None:
        """The same where pyfuse3 cannot answer later (stock pyfuse3)."""
        await trio.to_thread.run_sync(self._fsync_work(fh))

    def _fsync_work(self, fh) -> Callable[[], None]:
        """Journal what an fsync of ``fh`` needs (trio thread) and return the
        rest, which waits for the disk (a worker thread).

        fdatasync even for a full fsync: a data file's own metadata (times,
        mode) is never read back, the journal holds the file's; its size,
        which fdatasync flushes, is all that counts. The journal is synced
        only if this file's records are not durable yet: dpkg fsyncs each
        file it unpacked, then renames it, before the next fsync, so the
        journal always had something new (the rename), though the files'
        own records were all synced by the first fsync. The worker gets its
        own duplicate of the data fd, so no cache eviction closes it."""
        node = self._handle_node(fh)
        if node.dirty and node.links:
            self.tree.record(node)
            self._flush_journal()
        if node.layer is not None or not stat.S_ISREG(node.mode):
            return self._journal_work()         # no data of its own
        journal = self.upper.unsynced() and (
            node.uino is None or self._needs.get(node.uino, 0) > self.upper.synced_bytes)
        ino, size = node.ino, node.size
        store = (self.no_open and size and ino in self._unstored
                 and ino not in self._storing and ino not in self._mapped)
        if store:
            self._unstored.discard(ino)
            self._storing[ino] = False
        fd = os.dup(self._data_fd(node))    # written through an fd since closed, maybe

        def work() -> None:
            try:
                if journal:
                    self._sync_journal_now()
                if store:
                    self._store_tail(ino, fd, size)
                os.fdatasync(fd)
            finally:
                os.close(fd)
        return work

    def fsyncdir_now(self, fh, datasync, reply: Reply) -> bool:
        return self._answer_later(self._journal_work(), reply)

    async def fsyncdir(self, fh, datasync) -> None:
        await trio.to_thread.run_sync(self._journal_work())

    def _journal_work(self) -> Callable[[], None]:
        """The journal's sync where records wait for one, else nothing."""
        if self.upper is not None and self.upper.unsynced():
            return self._sync_journal_now
        return _nothing

    def _answer_later(self, work: Callable[[], None], reply: Reply) -> bool:
        """Answer at once where ``work`` waits for nothing, else from a
        worker thread once it is done."""
        if work is _nothing:
            reply(0)
        else:
            self.later.submit(work, reply)
        return True

    def _changed(self, node: Node) -> None:
        if node.ino in self._storing:
            with self._store_lock:
                if node.ino in self._storing:
                    self._storing[node.ino] = True

    def _store_tail(self, ino: int, fd: int, size: int) -> None:
        """Hand the kernel the last pages of a file being fsync'ed (in the
        fsync's worker thread), so that reading it back sends no READ (nor,
        after it, the GETATTR a READ causes: the kernel marks atime stale
        after every READ).

        The kernel keeps the pages a write passed through, but marks a page
        up to date only when the write covered all of it, so the last,
        partial page of nearly every file stays unread until a READ fetches
        it; a store that reaches the end of the file marks it up to date
        (``fuse_notify_store``). dpkg fsyncs every file it unpacks, so an
        installed package reads back without requests. The store may wait
        for a page lock a writer holds while its WRITE waits for the trio
        thread: never run it there. The kernel holds the inode's lock
        through FSYNC, so no write() or truncate runs meanwhile; should one
        be seen, the stored pages may hold old bytes and are dropped. A
        shared mapping's stores take no lock and could be overwritten, so a
        file gets a store only when write() wrote it since its last one
        (only a write() leaves a partial page behind), and never once
        written through a mapping (its pages' WRITEs say so, and fsync
        writes them before FSYNC). Left is a file written by write() and,
        for the first time, through a mapping in the instant of the store
        its fsync makes."""
        try:
            _store_pages(ino, fd, size)
        finally:
            with self._store_lock:
                changed = self._storing.pop(ino)
        if changed:
            _drop_pages(ino)

    # No flush handler: pyfuse3 answers ENOSYS, so the kernel stops sending a
    # FLUSH on every close (one round trip less per file); release journals.

    async def release(self, fh) -> None:
        node = self._files.pop(fh, None)
        if node is None:
            return          # handle 0: the open the kernel made without asking
        if node.dirty and node.links:
            self.tree.record(node)
            self._flush_journal()
        node.opens -= 1
        if node.opens == 0:
            self._fds.close(node.ino)
            if not node.links:
                self._drop(node)
                self._reap()

    # -- directories ---------------------------------------------------------------

    async def opendir(self, inode, ctx) -> int:
        if self.no_opendir:
            raise _err(errno.ENOSYS)
        node = self._dir(inode)
        self.policy.check(ctx, node, R)
        self._fh += 1
        self._dirs[self._fh] = _entries(node)
        return self._fh

    async def readdir(self, fh, start_id, token) -> None:
        base = 0
        if not self.no_opendir:
            entries = self._dirs[fh]
        elif self.readonly:                  # fh is the inode; the view never changes
            entries = self._listings.get(fh)
            if entries is None:
                entries = self._listings[fh] = _entries(self._dir(fh))
        else:
            entries, base, start_id = self._snapshot(fh, start_id)
            if start_id >= len(entries):     # the listing's end: its snapshot is done
                del self._snaps[base >> _SNAP_BITS]
                return
        nodes = self.tree.nodes
        for i in range(start_id, len(entries)):
            name, node = entries[i]
            if nodes.get(node.ino) is not node:
                continue                     # removed since opendir and forgotten
            if not pyfuse3.readdir_reply(token, name, self.attrs(node), base + i + 1):
                break
            if i >= 2:                        # the kernel takes no reference for . and ..
                node.lookups += 1

    def _snapshot(self, ino: int, start_id: int) -> tuple[list[tuple[bytes, Node]], int, int]:
        """A writable directory listed without OPENDIR: no handle tells one
        listing from another, so the listing is snapshotted when one starts
        (offset 0) and its number goes into every offset handed out (the
        high bits; the index below): a listing that goes on reads its own
        snapshot even if the directory changed or another listing of it
        began meanwhile, so no entry is skipped or repeated. The newest
        ``_SNAPSHOTS`` are kept, and one is dropped when its listing asks
        for what follows its last entry (a reader lists until it gets
        nothing); a listing continued past that (hundreds of listings at
        once, or a seekdir back after the end) reads the directory as it is
        now.
        Returns (entries, offset base, index to start at)."""
        snap, index = divmod(start_id, 1 << _SNAP_BITS)
        entries = self._snaps.get(snap) if snap else None
        if entries is None:
            self._snap_seq += 1
            snap = self._snap_seq
            entries = self._snaps[snap] = _entries(self._dir(ino))
            if len(self._snaps) > _SNAPSHOTS:
                del self._snaps[next(iter(self._snaps))]
        return entries, snap << _SNAP_BITS, index

    async def releasedir(self, fh) -> None:
        self._dirs.pop(fh, None)

    # -- extended attributes -------------------------------------------------------------

    def getxattr_now(self, inode, name, ctx=None) -> bytes:
        node = self._node(inode)
        try:
            return node.xattrs[name]
        except (KeyError, TypeError):
            raise _err(pyfuse3.ENOATTR) from None

    async def getxattr(self, inode, name, ctx) -> bytes:
        return self.getxattr_now(inode, name, ctx)

    async def listxattr(self, inode, ctx) -> list[bytes]:
        return list(self._node(inode).xattrs or ())

    async def setxattr(self, inode, name, value, ctx) -> None:
        self._writable()
        node = self._node(inode)
        self.policy.xattr_ok(ctx, node, name)
        self.upper.admit()
        node.xattrs = dict(node.xattrs or {})
        node.xattrs[name] = value
        node.ctime = time.time_ns()
        self.tree.record(node)
        self._flush_journal()

    async def removexattr(self, inode, name, ctx) -> None:
        self._writable()
        node = self._node(inode)
        self.policy.xattr_ok(ctx, node, name)
        if not node.xattrs or name not in node.xattrs:
            raise _err(pyfuse3.ENOATTR)
        node.xattrs = {k: v for k, v in node.xattrs.items() if k != name} or None
        node.ctime = time.time_ns()
        self.tree.record(node)
        self._flush_journal()

    # -- filesystem ----------------------------------------------------------------

    async def statfs(self, ctx) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        if self.upper is not None:
            v = self.upper.statvfs()
            s.f_bsize, s.f_frsize = v.f_bsize, v.f_frsize
            s.f_blocks, s.f_bfree, s.f_bavail = v.f_blocks, v.f_bfree, v.f_bavail
            s.f_files, s.f_ffree, s.f_favail = v.f_files, v.f_ffree, v.f_favail
        else:
            s.f_bsize = s.f_frsize = 4096
            s.f_blocks = (self.total_size + 4095) // 4096
            s.f_files = len(self.tree.nodes)
        s.f_namemax = NAME_MAX
        return s

    async def access(self, inode, mode, ctx) -> bool:
        node = self._node(inode)
        if mode & os.W_OK and self.readonly:
            raise _err(errno.EROFS)
        return self.policy.allowed(self.policy.creds(ctx), node.mode, node.uid, node.gid,
                                   mode & 7)


def _entries(d: Node) -> list[tuple[bytes, Node]]:
    """A directory's listing as readdir hands it out, with . and .."""
    parent = d.links[0][0] if d.links else d
    return [(b".", d), (b"..", parent), *d.children.items()]


def _is_ancestor(node: Node, d: Node) -> bool:
    """True if directory ``node`` is ``d`` or above it."""
    while True:
        if d is node:
            return True
        if not d.links:
            return False
        d = d.links[0][0]


def _nothing() -> None:
    """An fsync's work where nothing waits for the disk."""


def _store_pages(ino: int, fd: int, size: int) -> None:
    """``UnionFS._store_tail``'s store, in a worker thread."""
    start = (size - 1) // _STORE_ALIGN * _STORE_ALIGN
    try:
        pyfuse3.notify_store(ino, start, os.pread(fd, size - start, start))
    except OSError as e:        # the kernel forgot the inode (ENOENT): nothing to keep
        log.debug("storing pages of %d: %s", ino, e)


def _drop_pages(ino: int) -> None:
    try:
        pyfuse3.invalidate_inode(ino)
    except OSError as e:
        log.debug("dropping pages of %d: %s", ino, e)


def _copy_range(src: int, src_off: int, dst: int, size: int) -> None:
    """copy_file_range, or plain reads and writes where the kernel refuses it
    (the writable layer on another filesystem than the store: EXDEV)."""
    done = 0
    while done < size:
        try:
            n = os.copy_file_range(src, dst, size - done, src_off + done, done)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            n = len(data := os.pread(src, min(size - done, 1 << 20), src_off + done))
            if n:
                n = os.pwrite(dst, data, done)
        if n == 0:
            raise OSError(errno.EIO, "layer data ends early")
        done += n
