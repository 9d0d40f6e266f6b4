"""What happened in a store, as Docker's events: one JSON record a line in
``ROOT/events.log`` (the store root is private: 0700, checked; the log is
0600, opened without following symlinks, appended with one write a record,
so writers in many processes — the CLI, the API server, the monitors that
see containers die — never interleave).

A record is Docker's shape::

    {"Type": "container", "Action": "die", "Actor": {"ID": "...",
     "Attributes": {"name": "web", "image": "busybox", "exitCode": "0"}},
     "scope": "local", "time": 1700000000, "timeNano": 1700000000123456789}

(plus the old ``status``/``id``/``from`` fields for containers and images,
as the daemon still sends them). The log is kept small: past 4 MiB it is
renamed to ``events.log.1`` (the one before is dropped) and begun again.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import UsageError

MAX_BYTES = 4 << 20
POLL = 0.1
FILTER_KEYS = ("type", "event", "container", "image", "volume", "label")


def log_path(root: Path) -> Path:
    return Path(root) / "events.log"


def record(root: Path, type_: str, action: str, actor: str,
           attributes: dict[str, str] | None = None) -> dict:
    """Append one event; a store that cannot take it (full disk, removed
    meanwhile) loses the event, never the operation."""
    now = time.time_ns()
    attrs = {k: str(v) for k, v in (attributes or {}).items()}
    ev: dict = {"Type": type_, "Action": action, "Actor": {"ID": actor, "Attributes": attrs},
                "scope": "local", "time": now // 1_000_000_000, "timeNano": now}
    if type_ in ("container", "image"):
        ev.update(status=action, id=actor)
        if type_ == "container" and "image" in attrs:
            ev["from"] = attrs["image"]
    line = json.dumps(ev, separators=(",", ":")).encode() + b"\n"
    path = log_path(root)
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            os.write(fd, line)
            if os.fstat(fd).st_size > MAX_BYTES:
                os.replace(path, path.with_name(path.name + ".1"))
        finally:
            os.close(fd)
    return ev


def parse_filters(items: list[str] | dict[str, list[str]] | None) -> dict[str, list[str]]:
    """``--filter KEY=VALUE`` (repeatable) or the API's {key: [values]};
    unknown keys are refused, as Docker refuses them."""
    out: dict[str, list[str]] = {}
    if isinstance(items, dict):
        pairs = [(k, v) for k, vs in items.items() for v in vs]
    else:
        pairs = [tuple(f.partition("=")[::2]) for f in items or []]
    for key, value in pairs:
        if key not in FILTER_KEYS:
            raise UsageError(f"invalid filter '{key}': use " + ", ".join(FILTER_KEYS))
        out.setdefault(key, []).append(value)
    return out


def matches(ev: dict, filters: dict[str, list[str]]) -> bool:
    """Docker's rules: each key must match (any of its values)."""
    actor = ev.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    ident = actor.get("ID") or ""

    def names(v: str) -> bool:
        return bool(v) and (ident.startswith(v) or attrs.get("name") == v.removeprefix("/"))
    for key, values in filters.items():
        if key == "type" and ev.get("Type") not in values:
            return False
        if key == "event" and ev.get("Action") not in values:
            return False
        if key in ("container", "volume") and (ev.get("Type") != key
                                               or not any(names(v) for v in values)):
            return False
        if key == "image":
            image = attrs.get("image") if ev.get("Type") == "container" else ident
            if not any(v in (image, attrs.get("name")) or (image or "").startswith(v)
                       for v in values if v):
                return False
        if key == "label":
            def has(want: str) -> bool:
                k, eq, v = want.partition("=")
                return k in attrs and (not eq or attrs[k] == v)
            if not any(has(v) for v in values):
                return False
    return True


def read(root: Path, since: int | None = None, until: int | None = None,
         filters: dict[str, list[str]] | None = None,
         follow: bool = False) -> Iterator[dict]:
    """Events from ``since`` to ``until`` (ns) that pass ``filters``; with
    ``follow``, then new ones as they come until ``until`` passes."""
    filters = filters or {}
    path = log_path(root)

    def wanted(ev: dict) -> bool:
        t = ev.get("timeNano") or 0
        return (since is None or t >= since) and (until is None or t <= until) \
            and matches(ev, filters)
    with contextlib.suppress(OSError), _open(path.with_name(path.name + ".1")) as g:
        for line in g:                        # the rotated log first: older events
            ev = _parse(line)
            if ev is not None and wanted(ev):
                yield ev
    f = None
    while f is None:
        try:
            f = _open(path)
        except FileNotFoundError:
            if not follow or (until is not None and time.time_ns() > until):
                return
            time.sleep(POLL)
    try:
        inode = os.fstat(f.fileno()).st_ino
        partial = b""
        while True:
            line = f.readline()
            if line.endswith(b"\n"):
                ev = _parse(partial + line)
                partial = b""
                if ev is not None and wanted(ev):
                    yield ev
                continue
            partial += line
            if not follow or (until is not None and time.time_ns() > until):
                return
            time.sleep(POLL)
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino != inode:        # rotated: go on in the new log
                    f.close()
                    f = _open(path)
                    inode = os.fstat(f.fileno()).st_ino
                    partial = b""
    finally:
        f.close()


def _open(path: Path):
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")


def _parse(line: bytes) -> dict | None:
    try:
        ev = json.loads(line)
    except ValueError:
        return None
    return ev if isinstance(ev, dict) else None


def container_event(c, action: str, **extra: object) -> None:
    """A container's event, with Docker's attributes (name, image, its
    labels) as its record says now (a monitor's copy may predate a rename)."""
    from .container import Container, ContainerError
    with contextlib.suppress(ContainerError, OSError):
        c = Container(c.path)
    attrs = {**{k: str(v) for k, v in (c.config.labels or {}).items()},
             "image": c.config.image, "name": c.config.name,
             **{k: str(v) for k, v in extra.items()}}
    record(c.path.parent.parent, "container", action, c.id, attrs)
