"""A container's log: what it wrote, from which stream, and when.

Docker's ``json-file`` format, one record a line::

    {"log":"hello\\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}

so ``logs`` can give stdout and stderr apart (the API frames them as
streams 1 and 2), cut by time (``--since``/``--until``) and show times
(``-t``). Output is recorded as it comes (a record never holds more than
one line; a partial line is a record of its own, so a prompt shows at
once). Bytes that are not UTF-8 are kept exactly: they are written as
``\\udcXX`` escapes (Python's surrogateescape) and read back to the same
bytes.

Containers made before this format wrote raw bytes to ``ctr.log``; those
logs are still read, as stdout with no per-line times.
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

STDOUT, STDERR = 1, 2
_NAMES = {STDOUT: "stdout", STDERR: "stderr"}
_STREAMS = {"stdout": STDOUT, "stderr": STDERR}
POLL = 0.05

LogSink = Callable[[int, bytes], None]
"""Where a relay puts what a container wrote: (stream 1|2, bytes)."""


class LogEntry(NamedTuple):
    """One piece of output: its stream (1 stdout, 2 stderr), when it was
    written (ns since the epoch; 0 for a legacy log) and its bytes."""

    stream: int
    time: int
    data: bytes


def rfc3339_nano(ns: int) -> str:
    """Docker's log and event times: UTC with nanoseconds."""
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def parse_rfc3339_nano(text: str) -> int:
    """The ns of ``rfc3339_nano``'s output (any fraction length)."""
    from datetime import datetime, timezone
    base, _, frac = text.rstrip("Z").partition(".")
    dt = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 1_000_000_000 + int((frac or "0")[:9].ljust(9, "0"))


class LogWriter:
    """Appends records to a log opened with O_APPEND (one write each, so a
    reader never sees half a record but at the very end). A full disk loses
    output, never the container. With ``max_size`` (``--log-opt
    max-size``), a log that has reached it is rotated before the next
    record, as Docker's json-file driver does: ``NAME`` becomes ``NAME.1``
    (``NAME.1`` becomes ``NAME.2``, ...; ``max_file`` files kept in all,
    the oldest dropped) and a new ``NAME`` is begun."""

    def __init__(self, fd: int, path: Path | None = None, max_size: int = 0,
                 max_file: int = 1) -> None:
        self.fd = fd
        self.path = path
        self.max_size = max_size if path is not None else 0
        self.max_file = max(max_file, 1)
        self.size = os.fstat(fd).st_size if self.max_size else 0

    def __call__(self, stream: int, data: bytes) -> None:
        self.write_at(stream, data, time.time_ns())

    def write_at(self, stream: int, data: bytes, when: int) -> None:
        stamp = rfc3339_nano(when)
        name = _NAMES.get(stream, "stdout")
        out = []
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            end = len(data) if end < 0 else end + 1
            text = data[start:end].decode("utf-8", "surrogateescape")
            out.append(json.dumps({"log": text, "stream": name, "time": stamp},
                                  separators=(",", ":")).encode() + b"\n")
            start = end
        if not self.max_size:
            self._write(out)
            return
        batch: list[bytes] = []
        for rec in out:
            if self.size >= self.max_size:
                self._write(batch)
                batch = []
                self._rotate()
            batch.append(rec)
            self.size += len(rec)
        self._write(batch)

    def _write(self, records: list[bytes]) -> None:
        if records:
            with contextlib.suppress(OSError):
                _write_all(self.fd, b"".join(records))

    def _rotate(self) -> None:
        """Shift the kept files up by one (the names are dockish's own, in
        the container's private directory) and begin a new log; a reader
        following the log sees its name point at a new file and moves on."""
        assert self.path is not None
        try:
            for n in range(self.max_file - 1, 0, -1):
                older = rotated_name(self.path, n)
                if n == self.max_file - 1 and older.exists():
                    os.unlink(older)
                if n > 1 and rotated_name(self.path, n - 1).exists():
                    os.replace(rotated_name(self.path, n - 1), older)
            if self.max_file > 1:
                os.replace(self.path, rotated_name(self.path, 1))
            else:
                os.unlink(self.path)
            fd = open_for_append(self.path)
        except OSError:
            return                      # keep writing where we are: output is never lost
        os.close(self.fd)
        self.fd, self.size = fd, 0


def rotated_name(path: Path, n: int) -> Path:
    """The ``n``-th older file of a rotated log (Docker's ``NAME.n``)."""
    return path.with_name(f"{path.name}.{n}")


def rotated(path: Path) -> list[Path]:
    """The log's older files, oldest first (none without rotation)."""
    out = []
    n = 1
    while rotated_name(path, n).exists():
        out.append(rotated_name(path, n))
        n += 1
    return out[::-1]


def _write_all(fd: int, data: bytes) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


def open_for_append(path: Path) -> int:
    """The log, for its writer (0600, never through a symlink)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW,
                   0o600)


def _parse(line: bytes) -> LogEntry | None:
    try:
        rec = json.loads(line)
        data = rec["log"].encode("utf-8", "surrogateescape")
        return LogEntry(_STREAMS.get(rec.get("stream"), STDOUT),
                        parse_rfc3339_nano(rec["time"]) if rec.get("time") else 0, data)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None                 # a damaged line (a crash mid-write): skipped


def _wanted_marker(streams: set[int]) -> Callable[[bytes], bool]:
    if streams >= {STDOUT, STDERR}:
        return lambda _line: True
    marks = [f'"stream":"{_NAMES[s]}"'.encode() for s in streams]
    return lambda line: any(m in line for m in marks)


def _tail_offset(f, n: int, wanted: Callable[[bytes], bool]) -> int:
    """Where the last ``n`` wanted records start (read once, keeping only
    ``n`` offsets: a long log is never held in memory)."""
    starts: collections.deque[int] = collections.deque(maxlen=max(n, 1))
    pos = 0
    f.seek(0)
    for line in f:
        if line.endswith(b"\n") and wanted(line):
            starts.append(pos)
        pos += len(line)
    if n <= 0:
        return pos
    return starts[0] if starts else pos


def read(path: Path, legacy: Path, *, streams: set[int], since: int | None = None,
         until: int | None = None, tail: int | None = None, follow: bool = False,
         running: Callable[[], bool] = lambda: False,
         from_end: bool = False) -> Iterator[LogEntry]:
    """The entries of the log at ``path`` (its rotated older files first;
    or, for an old container, the raw ``legacy`` log as stdout): of
    ``streams``, written in [since, until] (ns), the last ``tail``; with
    ``follow``, then what comes until the container stops (``running``
    says) or ``until`` passes, following the log across rotations.
    ``from_end``: only what is written from now on."""
    if not path.exists() and legacy.exists():
        if STDOUT in streams and not since:
            yield from _read_legacy(legacy, tail, follow, running, from_end)
        return
    wanted = _wanted_marker(streams)

    def keep(entry: LogEntry | None) -> bool:
        return entry is not None and entry.stream in streams and \
            (since is None or entry.time >= since) and (until is None or entry.time <= until)
    older = [] if from_end else rotated(path)
    first, offset = _tail_start(older + [path], tail, wanted) if tail is not None \
        else (0, 0)
    for i, p in enumerate(older):
        if i < first:
            continue
        f = _open_read(p)
        if f is None:
            continue
        with f:
            f.seek(offset if i == first else 0)
            for line in f:
                if line.endswith(b"\n") and wanted(line):
                    entry = _parse(line)
                    if keep(entry):
                        yield entry         # type: ignore[misc]
    f = None
    while f is None:
        f = _open_read(path)
        if f is None:
            if not follow or not running():
                return
            time.sleep(POLL)
    try:
        if from_end:
            f.seek(0, os.SEEK_END)
        elif first == len(older):
            f.seek(offset)
        partial = b""
        while True:
            line = f.readline()
            if line and not line.endswith(b"\n"):
                partial += line              # the writer is mid-record: wait for the rest
                line = b""
            elif line and partial:
                line, partial = partial + line, b""
            if line:
                if not wanted(line):
                    continue
                entry = _parse(line)
                if entry is None or entry.stream not in streams:
                    continue
                if since is not None and entry.time < since:
                    continue
                if until is not None and entry.time > until:
                    if follow:
                        return
                    continue
                yield entry
                continue
            if not follow:
                return
            if until is not None and time.time_ns() > until:
                return
            newer = _moved_on(f, path)
            if newer is not None:         # rotated: what is left here, then the new file
                for piece in (partial + f.read()).splitlines(keepends=True):
                    if keep(entry := _parse(piece)):
                        yield entry       # type: ignore[misc]
                f.close()
                f, partial = newer, b""
                continue
            if not running():
                rest = f.read()
                for piece in (partial + rest).splitlines(keepends=True):
                    if keep(entry := _parse(piece)):
                        yield entry       # type: ignore[misc]
                return
            time.sleep(POLL)
    finally:
        f.close()


def _open_read(path: Path):
    try:
        return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")
    except FileNotFoundError:
        return None


def _moved_on(f, path: Path):
    """The log's new file when ``path`` no longer names the one ``f`` reads
    (a rotation), else None."""
    try:
        if os.stat(path, follow_symlinks=False).st_ino == os.fstat(f.fileno()).st_ino:
            return None
    except FileNotFoundError:
        return None
    return _open_read(path)


def _tail_start(files: list[Path], n: int, wanted: Callable[[bytes], bool]) -> tuple[int, int]:
    """(file index, offset) where the last ``n`` wanted records of the
    files (oldest first) start."""
    left = n
    for i in range(len(files) - 1, -1, -1):
        f = _open_read(files[i])
        if f is None:
            continue
        with f:
            count = sum(1 for line in f if line.endswith(b"\n") and wanted(line))
            if count >= left:
                return i, _tail_offset(f, left, wanted)
            if i == 0:
                return 0, 0
            left -= count
    return len(files) - 1, 0


def _read_legacy(path: Path, tail: int | None, follow: bool, running: Callable[[], bool],
                 from_end: bool) -> Iterator[LogEntry]:
    """A pre-record log: raw bytes, all stdout, no times."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    with os.fdopen(fd, "rb") as f:
        if from_end:
            f.seek(0, os.SEEK_END)
        elif tail is not None:
            f.seek(_tail_offset(f, tail, lambda _line: True))
        while True:
            chunk = f.read(65536)
            if chunk:
                yield LogEntry(STDOUT, 0, chunk)
                continue
            if not follow or not running():
                return
            time.sleep(POLL)


def open_log(path: Path, legacy: Path, config: dict | None = None) -> LogWriter:
    """The container's log for its writer, rotated as its logging driver
    says (``runner.runtime.logconfig``'s record); a container made before
    records (raw ``legacy`` log) gets its old output turned into stdout
    records first, so a restart keeps it readable."""
    if legacy.exists() and not path.exists():
        _convert_legacy(legacy, path)
    config = config or {}
    return LogWriter(open_for_append(path), path, int(config.get("max_size") or 0),
                     int(config.get("max_file") or 1))


def _convert_legacy(legacy: Path, path: Path) -> None:
    """Raw bytes -> records (stdout, the old file's time), through a
    temporary in the container's private directory and a rename."""
    fd = os.open(legacy, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                  0o600)
    try:
        with os.fdopen(fd, "rb") as f:
            w = LogWriter(out)
            when = os.fstat(f.fileno()).st_mtime_ns
            for line in f:
                w.write_at(STDOUT, line, when)
        os.replace(tmp, path)
        os.unlink(legacy)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(out)
