"""The layer store: every layer once, by diff_id, kept as its uncompressed tar
plus its index, so a mount never unpacks anything::

    ROOT/layers/sha256/<hex>/layer.tar       the uncompressed layer; hex = its diff_id
    ROOT/layers/sha256/<hex>/index.msgpack   its entries (see ``entry``)
    ROOT/layers/blobs/<alg>/<hex>            "sha256:<diff hex>": a compressed blob
                                             already imported, so it is never read again
    ROOT/tmp/                                imports in progress

A layer directory appears only by the atomic rename of a complete, fsynced
temporary directory: readers never see half a layer, and when two processes
import the same layer at once the second rename fails and that copy is
dropped. Each import holds a lock on its temporary directory, so leftovers of
a killed import are recognized (unlocked) and removed by the next import.
"""
from __future__ import annotations

import errno
import fcntl
import gzip
import hashlib
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgpack
import zstandard
from isal import igzip, isal_zlib

from .entry import INDEX_VERSION
from .tarindex import LayerError, TarIndexer

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSIONS = ("auto", "none", "gzip", "zstd")
STALE_TMP_SECONDS = 60
# Bomb limits (environment overrides; 0 turns a limit off). ~200 bytes of
# memory per entry while importing; real layers hold well under 500k files.
MAX_ENTRIES = 1_000_000                  # DOCKISH_MAX_LAYER_ENTRIES
MAX_RATIO = 2000                         # DOCKISH_MAX_LAYER_RATIO: gzip tops out near 1030
RATIO_FLOOR = 64 << 20                   # uncompressed bytes before the ratio is judged
# what a decoder's read raises on corrupt or truncated input
DECODE_ERRORS = (EOFError, gzip.BadGzipFile, isal_zlib.error, zstandard.ZstdError)
_DIGEST = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})\Z")


class LayerStoreError(Exception):
    """The store cannot take or give a layer (full disk, corrupt store...)."""


class DigestError(LayerStoreError):
    """Content does not match the digest it was announced with."""


class CompressionError(LayerStoreError):
    """A layer blob whose compressed stream is corrupt or cut short."""


def default_root() -> Path:
    """Where a user's images live: ``$DOCKISH_ROOT``, else
    ``${XDG_DATA_HOME:-~/.local/share}/dockish`` — made private (0700,
    checked: ``unionfs.private.store_root``) before anything is read or
    stored there."""
    from .private import store_root
    explicit = os.environ.get("DOCKISH_ROOT")
    if explicit:
        return store_root(Path(explicit))
    data = os.environ.get("XDG_DATA_HOME")
    base = Path(data) if data and os.path.isabs(data) else Path.home() / ".local" / "share"
    return store_root(base / "dockish")


def split_digest(digest: str) -> tuple[str, str]:
    """``("sha256", hex)`` for a well-formed digest, else ``DigestError``
    (a digest becomes a file name, so nothing else may pass)."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise DigestError(f"invalid digest {digest!r}")
    algorithm, _, hexpart = digest.partition(":")
    return algorithm, hexpart


def detect_compression(head: bytes) -> str:
    """The compression of a layer blob from its first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


class _Input:
    """The blob as read: peeked head first, every byte hashed when asked."""

    def __init__(self, fileobj: BinaryIO, hasher) -> None:
        self._file = fileobj
        self._hasher = hasher
        self._head = b""
        self.consumed = 0                 # compressed bytes handed to the decoder

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            more = self._file.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head

    def read(self, n: int = CHUNK) -> bytes:
        if self._head:
            data, self._head = self._head, b""
        else:
            data = self._file.read(n if n is not None and n >= 0 else CHUNK)
        self.consumed += len(data)
        if self._hasher is not None:
            self._hasher.update(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read to the end, so the blob digest covers every byte."""
        while self.read(CHUNK):
            pass


def decoder(source: BinaryIO, compression: str) -> Callable[[int], bytes]:
    """A ``read(n)`` of the uncompressed bytes of source (at most n at a time,
    so a small blob that inflates hugely never sits in memory whole)."""
    if compression == "gzip":
        return igzip.IGzipFile(fileobj=source, mode="rb").read
    if compression == "zstd":
        reader = zstandard.ZstdDecompressor().stream_reader(
            source, read_size=CHUNK, read_across_frames=True, closefd=False)
        return reader.read
    return source.read


def _write_all(fd: int, data) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class _Prefetch:
    """The uncompressed chunks, produced a few ahead by a thread: reading,
    decompressing and hashing the blob (all of which release the GIL) then
    overlap with writing, hashing and indexing the tar in the caller."""

    def __init__(self, source: _Input, compression: str, depth: int = 4) -> None:
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(source, compression),
                                        name="layer-reader", daemon=True)
        self._thread.start()

    def _run(self, source: _Input, compression: str) -> None:
        try:
            read = decoder(source, compression)
            while chunk := read(CHUNK):
                if not self._put(chunk):
                    return
            source.drain()
            item: object = None
        except DECODE_ERRORS as e:
            kind = "" if compression == "none" else f"{compression} "
            item = CompressionError(f"corrupt or truncated {kind}layer data: {e}")
        except BaseException as e:                       # handed to the caller as is
            item = e
        self._put(item)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def __iter__(self) -> Iterator[bytes]:
        while (item := self._queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
        self._thread.join()

    def close(self) -> None:
        """Stop the thread (early, when the caller gave up on the layer) before
        the caller closes the blob it reads."""
        self._stop.set()
        self._thread.join(timeout=10)


def _pump(chunks: Iterator[bytes], fd: int, indexer: TarIndexer, hasher,
          source: _Input | None = None, max_ratio: int = 0) -> None:
    """Copy the uncompressed layer to fd, hashing and indexing it on the way;
    stop a decompression bomb (``max_ratio`` times the compressed bytes read,
    once past ``RATIO_FLOOR``) before it fills the disk."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if max_ratio and source is not None and total > RATIO_FLOOR \
                and total > max_ratio * source.consumed:
            raise LayerError(f"the layer expands to more than {max_ratio} times its compressed "
                             f"size (a decompression bomb?); set DOCKISH_MAX_LAYER_RATIO to "
                             f"allow more (0: no limit)")
        _write_all(fd, chunk)
        hasher.update(chunk)
        indexer.feed(chunk)


def _env_limit(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit():
        raise LayerStoreError(f"{name} must be a whole number (0: no limit), not {text!r}")
    return int(text)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LayerStore:
    """Layers on disk, by diff_id. Safe for concurrent use by several processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.max_entries = _env_limit("DOCKISH_MAX_LAYER_ENTRIES", MAX_ENTRIES)
        self.max_ratio = _env_limit("DOCKISH_MAX_LAYER_RATIO", MAX_RATIO)
        self._layers = self.root / "layers" / "sha256"
        self._blobs = self.root / "layers" / "blobs"
        self._tmp = self.root / "tmp"

    # -- reading ---------------------------------------------------------------

    def _dir(self, diff_id: str) -> Path:
        algorithm, hexpart = split_digest(diff_id)
        if algorithm != "sha256":
            raise DigestError(f"a diff_id is a sha256 digest, not {diff_id!r}")
        return self._layers / hexpart

    def has(self, diff_id: str) -> bool:
        return (self._dir(diff_id) / "index.msgpack").is_file()

    def tar_path(self, diff_id: str) -> Path:
        path = self._dir(diff_id) / "layer.tar"
        if not path.is_file():
            raise LayerStoreError(f"layer {diff_id} is not in the store {self.root}")
        return path

    def load_index(self, diff_id: str) -> list:
        """The layer's entries in tar order, each a tuple (immutable, and about
        a third faster to load than lists: 20k entries in ~3 ms)."""
        path = self._dir(diff_id) / "index.msgpack"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise LayerStoreError(f"layer {diff_id} is not in the store {self.root}") from None
        try:
            index = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=False)
            version, entries = index["version"], list(index["entries"])
        except (ValueError, KeyError, TypeError, msgpack.UnpackException) as e:
            raise LayerStoreError(f"the index of layer {diff_id} is corrupt ({e}); "
                                  f"remove {path.parent} and import the image again") from None
        if version != INDEX_VERSION:
            raise LayerStoreError(f"the index of layer {diff_id} has version {version}, this "
                                  f"dockish reads {INDEX_VERSION}; remove {path.parent} and "
                                  f"import the image again")
        return entries

    def scratch_file(self) -> BinaryIO:
        """An anonymous temporary file on the store's disk, gone once closed."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryFile(dir=self._tmp)

    def blob_diff_id(self, digest: str) -> str | None:
        """The diff_id a compressed blob was stored as, if it was imported."""
        algorithm, hexpart = split_digest(digest)
        try:
            text = (self._blobs / algorithm / hexpart).read_text("ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not _DIGEST.match(text) or not text.startswith("sha256:") or not self.has(text):
            return None
        return text

    # -- importing -------------------------------------------------------------

    def import_tar_path(self, path: Path | str, **options) -> str:
        """``import_blob`` of a file (tar, tar+gzip or tar+zstd)."""
        with open(path, "rb") as f:
            return self.import_blob(f, **options)

    def import_blob(self, fileobj: BinaryIO, *, compression: str = "auto",
                    expected_digest: str | None = None,
                    expected_diff_id: str | None = None) -> str:
        """Store a layer blob read from fileobj in one pass; return its diff_id.

        The compressed bytes are hashed when ``expected_digest`` is given, the
        uncompressed bytes always; any mismatch raises ``DigestError`` and
        stores nothing. A blob or diff_id already stored returns at once,
        without reading fileobj.
        """
        if compression not in COMPRESSIONS:
            raise LayerStoreError(f"unknown compression {compression!r}; "
                                  f"use one of {', '.join(COMPRESSIONS)}")
        if expected_diff_id is not None:
            self._dir(expected_diff_id)
        known = self._already_stored(expected_digest, expected_diff_id)
        if known is not None:
            return known
        try:
            return self._import(fileobj, compression, expected_digest, expected_diff_id)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise LayerStoreError(f"no space left on the device of {self.root} while "
                                      f"storing a layer") from None
            raise

    def _already_stored(self, digest: str | None, diff_id: str | None) -> str | None:
        if diff_id is not None and self.has(diff_id):
            return diff_id
        if digest is None:
            return None
        stored = self.blob_diff_id(digest)
        if stored is None and digest.startswith("sha256:") and self.has(digest):
            stored = digest                              # an uncompressed blob
        if stored is not None and diff_id is not None and stored != diff_id:
            raise DigestError(f"blob {digest} holds layer {stored}, not {diff_id}")
        return stored

    def _import(self, fileobj: BinaryIO, compression: str, digest: str | None,
                diff_id: str | None) -> str:
        self._sweep_tmp()
        work, lock = self._new_work_dir()
        try:
            blob_hasher = hashlib.new(split_digest(digest)[0]) if digest else None
            source = _Input(fileobj, blob_hasher)
            if compression == "auto":
                compression = detect_compression(source.peek(4))
            hasher, indexer = hashlib.sha256(), TarIndexer(self.max_entries)
            fd = os.open(work / "layer.tar", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o644)
            chunks = _Prefetch(source, compression)
            try:
                _pump(iter(chunks), fd, indexer, hasher, source,
                      self.max_ratio if compression != "none" else 0)
                entries = indexer.finish()
                os.fsync(fd)
            finally:
                chunks.close()
                os.close(fd)
            got = "sha256:" + hasher.hexdigest()
            if blob_hasher is not None:
                actual = f"{blob_hasher.name}:{blob_hasher.hexdigest()}"
                if actual != digest:
                    raise DigestError(f"blob digest mismatch: expected {digest}, got {actual}")
            if diff_id is not None and got != diff_id:
                raise DigestError(f"layer diff_id mismatch: expected {diff_id}, got {got}")
            self._write_index(work, entries)
            if digest is not None and digest != got:
                self._record_blob(work, digest, got)
            self._publish(work, got)
            return got
        finally:
            os.close(lock)
            shutil.rmtree(work, ignore_errors=True)

    def _write_index(self, work: Path, entries: list) -> None:
        data = msgpack.packb({"version": INDEX_VERSION, "entries": entries}, use_bin_type=True)
        fd = os.open(work / "index.msgpack", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        _fsync_path(work)

    def _record_blob(self, work: Path, digest: str, diff_id: str) -> None:
        algorithm, hexpart = split_digest(digest)
        folder = self._blobs / algorithm
        folder.mkdir(parents=True, exist_ok=True)
        note = work / "blob"
        note.write_text(diff_id + "\n", "ascii")
        os.replace(note, folder / hexpart)

    def _publish(self, work: Path, diff_id: str) -> None:
        """Rename the finished layer into place, unless another process did first."""
        final = self._dir(diff_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(work, final)
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            return                                       # same content, stored meanwhile
        _fsync_path(final.parent)

    def _new_work_dir(self) -> tuple[Path, int]:
        """A fresh directory under ROOT/tmp, locked while this import runs."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        work = self._tmp / f"import-{os.getpid()}-{os.urandom(6).hex()}"
        work.mkdir()
        fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return work, fd

    def _sweep_tmp(self) -> None:
        """Remove imports left by killed processes: old and not locked."""
        try:
            names = os.listdir(self._tmp)
        except FileNotFoundError:
            return
        limit = time.time() - STALE_TMP_SECONDS
        for name in names:
            path = self._tmp / name
            try:
                if path.lstat().st_mtime > limit:
                    continue
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue                                 # a live import holds it
            finally:
                os.close(fd)
            shutil.rmtree(path, ignore_errors=True)


__all__ = ["LayerStore", "LayerStoreError", "DigestError", "CompressionError",
           "default_root", "split_digest", "detect_compression", "decoder",
           "DECODE_ERRORS"]
