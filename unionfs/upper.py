"""The writable layer on disk: a directory the mounting user owns.

    UPPER/journal      msgpack records (see ``tree.Rec``), appended per change
    UPPER/data/<uino>  the bytes of each regular file the layer holds
    UPPER/spare/s<n>   empty files made ahead for new data (``spares.Spares``)
    UPPER/lock         flock'ed by the daemon that serves the layer

Names, owners, modes, device numbers, xattrs and links live only in the
journal, so nothing needs root and no host path is ever built from a name in
the view: data files are opened by number through one directory fd.

Crash safety: every change is written to the journal (``os.write``, so it
survives the daemon being killed) before the reply reaches the kernel;
``fsync`` on any file also makes the journal durable up to that point. The
journal is synced as a group commit: one ``fdatasync`` covers every record
written before it, so an fsync that finds its records already durable (dpkg
fsyncs each file it unpacked, one after another) costs no journal sync, and
fsyncs waiting at the same time share one. A torn final record is cut off at
the next mount, which then rewrites the journal compactly.

A full disk: the journal keeps ``JOURNAL_RESERVE`` bytes allocated past its
end (``fallocate`` with KEEP_SIZE), so once file data has filled the disk
the user can still delete, rename and truncate to free space. Changes that
free nothing (creates, mkdir, chmod, xattrs) ask ``admit`` first and get
ENOSPC, before anything changes, once the disk is full and the reserve is
down to ``KEEP_FOR_FREEING``: however many creates were tried, that part is
left for deletes. A delete that finds no room anyway gives the reserve back
and rewrites the journal as the current state (``compact_to_free``; a tree
just emptied of files is small). An append that fails is cut back to the
last whole record (never a torn record in the middle of the journal; the
blocks the cut released are reserved again), and a compaction that finds no
room keeps the journal it has.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import os
import stat
from pathlib import Path

import msgpack

from .spares import Spares
from .tree import Rec, Tree

JOURNAL_VERSION = 1
COMPACT_MIN = 64 << 20      # journal bytes before a live mount compacts it
JOURNAL_RESERVE = 1 << 20   # bytes kept allocated past the journal's end
KEEP_FOR_FREEING = JOURNAL_RESERVE // 2     # of it, what only freeing changes may use
_NO_FALLOCATE = 1 << 62
_FALLOC_FL_KEEP_SIZE = 1
_FULL = (errno.ENOSPC, errno.EDQUOT)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UpperError(Exception):
    """The writable layer cannot be used (in use, foreign, corrupt)."""


class Upper:
    """One writable layer, opened and locked for a single daemon."""

    def __init__(self, path: Path, layer_ids: list[str]) -> None:
        self.path = path
        self.layer_ids = list(layer_ids)
        self.dir_fd = -1
        self.data_fd = -1
        self.journal_fd = -1
        self.lock_fd = -1
        self._packer = msgpack.Packer(use_bin_type=True)
        self.journal_bytes = 0
        self.synced_bytes = 0           # journal bytes known to be on disk
        self.snapshot_bytes = 0
        self.reserved = 0               # journal offset up to which blocks are allocated
        self.compact_min = int(os.environ.get("DOCKISH_COMPACT_BYTES", COMPACT_MIN))
        self.readonly = False
        self.spares: Spares | None = None

    # -- lifecycle ---------------------------------------------------------------

    def open(self, *, readonly: bool = False) -> None:
        """Lock the layer for a daemon; ``readonly`` (no lock, nothing
        written) reads a layer that a live daemon may hold, as ``diff`` and
        ``commit`` of a running container do."""
        self.readonly = readonly
        if readonly:
            self.dir_fd = os.open(self.path, _DIR_FLAGS)
            try:
                self.data_fd = os.open("data", _DIR_FLAGS, dir_fd=self.dir_fd)
            except FileNotFoundError:
                pass
            return
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        self.dir_fd = os.open(self.path, _DIR_FLAGS)
        self.lock_fd = os.open("lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                               0o600, dir_fd=self.dir_fd)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise UpperError(f"writable layer {self.path} is in use by another dockish "
                             "mount") from None
        try:
            os.mkdir("data", 0o700, dir_fd=self.dir_fd)
        except FileExistsError:
            pass
        self.data_fd = os.open("data", _DIR_FLAGS, dir_fd=self.dir_fd)

    def start_spares(self) -> None:
        """Have empty data files made ahead by a thread (a serving daemon's
        creates then only rename one into place; see ``spares``)."""
        try:
            os.mkdir("spare", 0o700, dir_fd=self.dir_fd)
        except FileExistsError:
            pass
        self.spares = Spares(os.open("spare", _DIR_FLAGS, dir_fd=self.dir_fd))
        self.spares.start()

    def close(self) -> None:
        if self.spares is not None:
            self.spares.close()
            os.close(self.spares.dir_fd)
            self.spares = None
        for name in ("journal_fd", "data_fd", "dir_fd", "lock_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def load(self, tree: Tree, *, compact: bool = True) -> int:
        """Replay the journal onto a tree holding the lower layers, then
        rewrite it compactly. Returns how many records were replayed."""
        count = 0
        try:
            fd = os.open("journal", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=self.dir_fd)
        except FileNotFoundError:
            fd = -1
        if fd >= 0:
            with os.fdopen(fd, "rb") as f:
                unpacker = msgpack.Unpacker(f, raw=False, strict_map_key=False,
                                            max_buffer_size=1 << 30)
                try:
                    for rec in unpacker:
                        if count == 0:
                            self._check_header(rec)
                        else:
                            tree.apply(_decode(rec))
                        count += 1
                except (msgpack.OutOfData, ValueError):
                    pass   # a torn tail from a killed daemon: the rest is dropped
                except (KeyError, IndexError, TypeError) as e:
                    raise UpperError(f"writable layer {self.path} has a corrupt journal "
                                     f"(record {count}: {e!r})") from None
        tree.take_pending()
        self._sync_sizes(tree)
        if compact and not self.readonly:
            self.compact(tree)
        return count

    def _check_header(self, rec: list) -> None:
        if not (isinstance(rec, list) and rec and rec[0] == Rec.HEADER):
            raise UpperError(f"{self.path} is not a dockish writable layer")
        if rec[2] != self.layer_ids:
            raise UpperError(f"writable layer {self.path} belongs to another image")

    def _sync_sizes(self, tree: Tree) -> None:
        """Data files are the truth for sizes: writes are journaled lazily."""
        for node in tree.uinodes.values():
            if node.layer is None and stat.S_ISREG(node.mode):
                try:
                    if self.data_fd < 0:
                        raise FileNotFoundError
                    node.size = os.stat(str(node.uino), dir_fd=self.data_fd,
                                        follow_symlinks=False).st_size
                except FileNotFoundError:
                    if self.readonly:        # created, no byte written yet
                        node.size = 0
                        continue
                    fd = self.open_data(node.uino, create=True)
                    os.close(fd)
                    node.size = 0

    def compact(self, tree: Tree) -> bool:
        """Rewrite the journal as the records of the current state, atomically,
        and delete data files nothing refers to any more. On a full disk the
        journal stays as it is (it is complete, only longer): returns False."""
        fd = os.open("journal.new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=self.dir_fd)
        try:
            buf = [self._packer.pack([Rec.HEADER, JOURNAL_VERSION, self.layer_ids])]
            for rec in tree.snapshot_records():
                buf.append(self._packer.pack(rec))
                if len(buf) >= 4096:
                    _write_all(fd, b"".join(buf))
                    buf.clear()
            _write_all(fd, b"".join(buf))
            os.fsync(fd)
        except OSError as e:
            if e.errno not in _FULL or not self._has_journal():
                raise
            os.unlink("journal.new", dir_fd=self.dir_fd)
            if self.journal_fd < 0:
                self._open_journal(os.stat("journal", dir_fd=self.dir_fd).st_size)
            return False
        finally:
            os.close(fd)
        if self.journal_fd >= 0:
            os.close(self.journal_fd)
            self.journal_fd = -1
        self.snapshot_bytes = os.stat("journal.new", dir_fd=self.dir_fd).st_size
        self.journal_bytes = self.synced_bytes = self.snapshot_bytes
        os.rename("journal.new", "journal", src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        os.fsync(self.dir_fd)
        live = {str(n.uino) for n in tree.uinodes.values()
                if n.layer is None and stat.S_ISREG(n.mode)}
        for name in os.listdir(self.data_fd):
            if name not in live:
                try:
                    os.unlink(name, dir_fd=self.data_fd)
                except FileNotFoundError:
                    pass            # removed by a worker thread meanwhile (fs._reap)
        self._open_journal(self.snapshot_bytes)
        return True

    def _has_journal(self) -> bool:
        try:
            os.stat("journal", dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def _open_journal(self, size: int) -> None:
        self.journal_fd = os.open("journal", os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW
                                  | os.O_CLOEXEC, dir_fd=self.dir_fd)
        self.journal_bytes = size
        self.reserved = 0
        self._reserve(size)

    def _reserve(self, end: int) -> None:
        """Keep JOURNAL_RESERVE bytes allocated past ``end`` (best effort: on
        a nearly full disk, as much of it as fits)."""
        if end + JOURNAL_RESERVE // 2 <= self.reserved:
            return
        length = JOURNAL_RESERVE
        while length >= 4096:
            try:
                _fallocate_keep_size(self.journal_fd, end, length)
            except OSError as e:
                if e.errno not in _FULL:
                    self.reserved = _NO_FALLOCATE      # no fallocate here: nothing to keep
                    return
                length //= 2
                continue
            self.reserved = max(self.reserved, end + length)
            return

    def admit(self) -> None:
        """Before a change that frees no space: ENOSPC (nothing changed yet)
        once the disk is full and the reserve is down to what deletes keep."""
        if self.journal_fd < 0 or self.reserved >= _NO_FALLOCATE:
            return
        self._reserve(self.journal_bytes)
        if self.reserved - self.journal_bytes < KEEP_FOR_FREEING:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def compact_to_free(self, tree: Tree) -> bool:
        """A delete whose records did not fit: give back the journal's
        preallocated blocks and rewrite it as the current state, which holds
        the delete (False: no room even so; the old journal stays)."""
        os.ftruncate(self.journal_fd, self.journal_bytes)     # frees the reserve
        self.reserved = self.journal_bytes
        if self.compact(tree):
            return True
        self._reserve(self.journal_bytes)
        return False

    # -- live use ------------------------------------------------------------------

    def append(self, records: list[list]) -> None:
        if records:
            data = b"".join(self._packer.pack(r) for r in records)
            try:
                _write_all(self.journal_fd, data)
            except OSError:
                os.ftruncate(self.journal_fd, self.journal_bytes)   # no torn record stays
                self.reserved = min(self.reserved, self.journal_bytes)  # nor its reserve:
                self._reserve(self.journal_bytes)                   # take it back
                raise
            self.journal_bytes += len(data)
            self._reserve(self.journal_bytes)

    def needs_compaction(self) -> bool:
        """A long-lived mount's journal is rewritten once it is mostly history."""
        return self.journal_bytes > max(self.compact_min, 4 * self.snapshot_bytes)

    def unsynced(self) -> bool:
        """True if records were written since the journal was last synced."""
        return self.journal_bytes > self.synced_bytes

    def sync(self) -> None:
        """Make every record written so far durable (``fdatasync``: the
        journal's length is data here; its times are not needed). May run
        in a worker thread: ``journal_bytes`` is read before the sync, so
        records appended meanwhile are left for the next one."""
        end, fd = self.journal_bytes, self.journal_fd
        if end <= self.synced_bytes or fd < 0:
            return
        os.fdatasync(fd)
        self.synced_bytes = max(self.synced_bytes, end)

    def open_data(self, uino: int, *, create: bool = False, truncate: bool = False) -> int:
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
        if create:
            flags |= os.O_CREAT
        if truncate:
            flags |= os.O_TRUNC
        return os.open(str(uino), flags, 0o600, dir_fd=self.data_fd)

    def new_data(self, uino: int) -> int:
        """An open, empty data file for ``uino`` (replacing any it had): a
        spare renamed into place when one is ready."""
        fd = self.spares.take(self.data_fd, str(uino)) if self.spares is not None else None
        return self.open_data(uino, create=True, truncate=True) if fd is None else fd

    def remove_data(self, uino: int) -> None:
        try:
            os.unlink(str(uino), dir_fd=self.data_fd)
        except FileNotFoundError:
            pass

    def remove_data_many(self, uinos: list[int]) -> None:
        """``remove_data`` for each (a worker thread's batch)."""
        for uino in uinos:
            self.remove_data(uino)

    def statvfs(self) -> os.statvfs_result:
        return os.statvfs(self.data_fd)


def _decode(rec: list) -> list:
    """msgpack gives lists back; paths and targets stay bytes (bin type)."""
    return rec


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    return libc


def _fallocate_keep_size(fd: int, offset: int, length: int) -> None:
    if _libc().fallocate(fd, _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        if n <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[n:]
