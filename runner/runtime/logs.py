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
    output, never the container."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

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
        if out:
            with contextlib.suppress(OSError):
                _write_all(self.fd, b"".join(out))


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
    """The entries of the log at ``path`` (or, for an old container, the raw
    ``legacy`` log as stdout): of ``streams``, written in [since, until]
    (ns), the last ``tail``; with ``follow``, then what comes until the
    container stops (``running`` says) or ``until`` passes. ``from_end``:
    only what is written from now on."""
    if not path.exists() and legacy.exists():
        if STDOUT in streams and not since:
            yield from _read_legacy(legacy, tail, follow, running, from_end)
        return
    f = None
    while f is None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            f = os.fdopen(fd, "rb")
        except FileNotFoundError:
            if not follow or not running():
                return
            time.sleep(POLL)
    wanted = _wanted_marker(streams)
    with f:
        if from_end:
            f.seek(0, os.SEEK_END)
        elif tail is not None:
            f.seek(_tail_offset(f, tail, wanted))
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
            if not running():
                rest = f.read()
                for piece in (partial + rest).splitlines(keepends=True):
                    entry = _parse(piece)
                    if entry is not None and entry.stream in streams and \
                            (since is None or entry.time >= since) and \
                            (until is None or entry.time <= until):
                        yield entry
                return
            time.sleep(POLL)


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


def open_log(path: Path, legacy: Path) -> LogWriter:
    """The container's log for its writer; a container made before records
    (raw ``legacy`` log) gets its old output turned into stdout records
    first, so a restart keeps it readable."""
    if legacy.exists() and not path.exists():
        _convert_legacy(legacy, path)
    return LogWriter(open_for_append(path))


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
