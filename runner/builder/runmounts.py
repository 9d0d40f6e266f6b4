"""``RUN --mount``: BuildKit's mounts for one build step.

    type=cache   a directory kept between builds (per ``id``, default the
                 target), for package managers' caches; ``dockish builder
                 prune`` empties them
    type=bind    read-only (``rw``: writes are thrown away) view of the
                 build context or of a stage or image (``from=``), ``source``
                 inside it
    type=tmpfs   a fresh tmpfs
    type=secret  a file (or, with ``env=``, a variable) from ``--secret``,
                 never stored in a layer or in the cache key

Parsing (``parse``) is pure; the build materializes each mount as a
host directory or file the step's container binds.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from ..errors import DockishError

TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_TRUE = ("", "true", "1")


class MountError(DockishError, ValueError):
    """A ``--mount`` that cannot be used; the message says why."""


@dataclass(frozen=True)
class RunMount:
    type: str = "bind"
    target: str = ""
    source: str = ""
    from_: str = ""
    id: str = ""
    readonly: bool = True
    size: int | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    required: bool = False
    sharing: str = "shared"
    env: str = ""

    def cache_dir_name(self) -> str:
        """Where a cache mount lives (one directory per id)."""
        return hashlib.sha256((self.id or self.target).encode()).hexdigest()[:32]


def cache_path(root: Path, m: RunMount) -> Path:
    """The host directory of cache mount ``m``: ``ROOT/build/cache-mounts/
    NAME``. ``mode=`` (BuildKit's default 0755; 0777 is common) applies to
    that directory alone: every directory above it is kept 0700, so it is
    world-writable only for the container's own users, never for the host's."""
    from unionfs.private import ensure
    fix = "remove it (dockish builder prune) or set DOCKISH_ROOT"
    parent = Path(root) / "build"
    for d in (parent, parent / "cache-mounts"):
        ensure(d, fix=fix)
    return parent / "cache-mounts" / m.cache_dir_name()


def _bool(key: str, value: str) -> bool:
    v = value.lower()
    if v in _TRUE:
        return True
    if v in ("false", "0"):
        return False
    raise MountError(f"invalid value for {key}: {value!r}")


def _int(key: str, value: str, base: int = 10) -> int:
    try:
        return int(value, base)
    except ValueError:
        raise MountError(f"invalid value for {key}: {value!r}") from None


def _size(value: str) -> int:
    units = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
             "g": 1 << 30, "gb": 1 << 30}
    num = value.rstrip("bBkKmMgG")
    unit = value[len(num):].lower()
    if unit not in units or not num.isdigit():
        raise MountError(f"invalid size: {value!r}")
    return int(num) * units[unit]


def parse(spec: str, workdir: str = "/") -> RunMount:
    """One ``--mount=`` value (comma-separated ``key=value``), as BuildKit
    reads it: relative targets are under the working directory."""
    fields: dict = {}
    kind = "bind"
    readonly: bool | None = None
    for part in spec.split(","):
        if not part:
            continue
        key, _, value = part.partition("=")
        key = key.strip().lower()
        if key == "type":
            kind = value
        elif key in ("target", "dst", "destination"):
            fields["target"] = value
        elif key in ("source", "src"):
            fields["source"] = value
        elif key == "from":
            fields["from_"] = value
        elif key == "id":
            fields["id"] = value
        elif key in ("ro", "readonly"):
            readonly = _bool(key, value)
        elif key in ("rw", "readwrite"):
            readonly = not _bool(key, value)
        elif key == "size":
            fields["size"] = _size(value)
        elif key == "mode":
            fields["mode"] = _int(key, value, 8)
        elif key in ("uid", "gid"):
            fields[key] = _int(key, value)
        elif key == "required":
            fields["required"] = _bool(key, value)
        elif key == "sharing":
            if value not in ("shared", "private", "locked"):
                raise MountError(f"unsupported sharing value {value!r}")
            fields["sharing"] = value
        elif key == "env":
            fields["env"] = value
        else:
            raise MountError(f"unexpected key {key!r} in {spec!r}")
    if kind not in TYPES:
        raise MountError(f"unsupported mount type {kind!r}")
    if kind == "ssh":
        raise MountError("--mount=type=ssh is not supported by dockish build")
    if kind == "secret":
        if not fields.get("id") and not fields.get("target"):
            raise MountError("secret mount needs an id or a target")
        if not fields.get("target") and not fields.get("env"):
            fields["target"] = "/run/secrets/" + (fields.get("id") or "")
        fields.setdefault("id", posixpath.basename(fields.get("target", "")))
    if not fields.get("target") and kind != "secret":
        raise MountError(f"{kind} mount needs a target")
    if fields.get("target"):
        fields["target"] = posixpath.normpath(posixpath.join(workdir, fields["target"]))
        if fields["target"] == "/":
            raise MountError("cannot mount over /")
    if kind == "cache":
        fields["readonly"] = bool(readonly)             # caches are writable by default
    elif kind == "tmpfs":
        fields["readonly"] = False
    else:
        fields["readonly"] = True if readonly is None else readonly
    return RunMount(type=kind, **fields)


def secret_spec(text: str) -> tuple[str, dict[str, str]]:
    """``--secret id=ID[,src=PATH|,env=VAR][,type=file|env]`` → (id, how)."""
    opts = dict(p.partition("=")[::2] for p in text.split(",") if p)
    sid = opts.pop("id", "")
    if not sid:
        raise MountError(f"--secret {text!r}: an id is required")
    src = opts.pop("src", "") or opts.pop("source", "")
    env = opts.pop("env", "")
    typ = opts.pop("type", "")
    if opts:
        raise MountError(f"--secret {text!r}: unexpected {', '.join(sorted(opts))}")
    if typ == "env" or (env and not src):
        return sid, {"env": env or src or sid}
    return sid, {"src": os.path.expanduser(src or sid)}
