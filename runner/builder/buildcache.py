"""The build cache: which layer a build step made, by the step's inputs.

A step's key hashes everything its result depends on: the state before it
(the parent's layer chain and config, rolled forward step by step), the
instruction after substitution, the build args it used, and for COPY/ADD the
checksum of what is copied. An entry is one small JSON file under
``ROOT/buildcache/entries`` written atomically (rename), so concurrent
builds need no lock to add; ``prune`` takes the exclusive lock. Layers stay
in the layer store; an entry whose layer is gone is a miss.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from unionfs.layers import LayerStore


def state_key(parent: str, instruction: str, args: Mapping[str, str] | None = None,
              files: str | None = None) -> str:
    """The key after a step: a hash of the key before it and its inputs."""
    doc = {"parent": parent, "instruction": instruction,
           "args": dict(sorted((args or {}).items())), "files": files}
    return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def base_key(diff_ids: list[str], config: Mapping) -> str:
    """The key of a base image: its layer chain and the config fields a build
    inherits (so a retagged base with other ENV is a different start)."""
    keep = {k: config.get(k) for k in ("Env", "User", "WorkingDir", "Shell", "Entrypoint",
                                       "Cmd", "OnBuild")}
    doc = json.dumps({"layers": list(diff_ids), "config": keep}, sort_keys=True)
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


@dataclass
class Entry:
    key: str
    diff_id: str | None        # None: the step made no layer (kept for history)
    created: float
    last_used: float
    created_by: str = ""


class BuildCache:
    """Entries under ``ROOT/buildcache``; safe for concurrent dockish processes."""

    def __init__(self, root: Path, layers: LayerStore | None = None) -> None:
        self.root = Path(root)
        self.layers = layers or LayerStore(self.root)
        self.dir = self.root / "buildcache"
        self._entries = self.dir / "entries"

    def _path(self, key: str) -> Path:
        return self._entries / key.split(":", 1)[-1]

    @contextlib.contextmanager
    def _lock(self, mode: int) -> Iterator[None]:
        self._entries.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def get(self, key: str) -> Entry | None:
        """The entry for key if its layer is still stored (and mark it used)."""
        try:
            data = json.loads(self._path(key).read_bytes())
            entry = Entry(**data)
        except (OSError, ValueError, TypeError):
            return None
        if entry.diff_id is not None and not self.layers.has(entry.diff_id):
            return None
        with contextlib.suppress(OSError):
            now = time.time()
            os.utime(self._path(key), (now, now))
        return entry

    def put(self, key: str, diff_id: str | None, created_by: str = "") -> Entry:
        now = time.time()
        entry = Entry(key, diff_id, now, now, created_by)
        with self._lock(fcntl.LOCK_SH):
            path = self._path(key)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
            tmp.write_text(json.dumps(entry.__dict__))
            os.replace(tmp, path)
        return entry

    def entries(self) -> list[Entry]:
        out = []
        for name in sorted(os.listdir(self._entries)) if self._entries.is_dir() else []:
            if name.startswith("."):
                continue
            with contextlib.suppress(OSError, ValueError, TypeError):
                path = self._entries / name
                entry = Entry(**json.loads(path.read_bytes()))
                entry.last_used = path.stat().st_mtime
                out.append(entry)
        return out

    def live_layers(self) -> set[str]:
        """Layers the cache refers to (the store's gc should keep them)."""
        return {e.diff_id for e in self.entries() if e.diff_id}

    def usage(self, image_layers: set[str]) -> dict:
        """``system df``'s "Build Cache" row: entries, size, what is reclaimable
        (layers no image uses)."""
        entries = self.entries()
        size = reclaim = 0
        seen: set[str] = set()
        for e in entries:
            if not e.diff_id or e.diff_id in seen:
                continue
            seen.add(e.diff_id)
            try:
                n = self.layers.tar_path(e.diff_id).stat().st_size
            except Exception:
                continue
            size += n
            if e.diff_id not in image_layers:
                reclaim += n
        return {"Type": "Build Cache", "TotalCount": len(entries), "Active": 0,
                "Size": size, "Reclaimable": reclaim}

    def prune(self, *, older_than: float | None = None) -> list[Entry]:
        """Forget entries (all, or those unused for ``older_than`` seconds);
        return them. The caller drops the layers nothing else uses."""
        gone = []
        cutoff = None if older_than is None else time.time() - older_than
        with self._lock(fcntl.LOCK_EX):
            for e in self.entries():
                if cutoff is not None and e.last_used >= cutoff:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    self._path(e.key).unlink()
                    gone.append(e)
        return gone


def parse_duration(text: str) -> float:
    """Go-style durations as ``--filter until=24h`` takes them: 90s, 15m, 24h, 1h30m."""
    import re
    total, pos = 0.0, 0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30m, 24h)")
    return total
