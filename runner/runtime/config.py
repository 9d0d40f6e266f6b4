"""What process a container runs: Docker's rules, as pure functions.

The image config (``Entrypoint``, ``Cmd``, ``Env``, ``WorkingDir``, ``User``)
is merged with the ``run`` flags exactly as Docker merges them, and ``-u``
names are resolved against the image's own ``/etc/passwd`` and
``/etc/group`` texts (the host's are irrelevant).
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ..errors import DockishError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ConfigError(DockishError):
    """The flags and the image do not make a runnable process."""


class UserLookupError(ConfigError):
    """A ``-u`` name the image does not know (Docker exits 126 for it)."""


def command(config: dict, entrypoint: str | None, args: list[str]) -> list[str]:
    """Entrypoint + Cmd with Docker's overrides: arguments replace Cmd;
    ``--entrypoint`` replaces Entrypoint and drops the image's Cmd;
    ``--entrypoint ""`` clears it."""
    if entrypoint is not None:
        ep = [entrypoint] if entrypoint else []
        cmd = list(args)
    else:
        ep = list(config.get("Entrypoint") or [])
        cmd = list(args) if args else list(config.get("Cmd") or [])
    argv = ep + cmd
    if not argv:
        raise ConfigError("no command specified")
    return argv


def parse_env_line(line: str, host_env: dict[str, str]) -> str | None:
    """``KEY=VALUE`` as is; a bare ``KEY`` takes the host's value, or is
    dropped when the host has none (as Docker does)."""
    if "=" in line:
        key = line.split("=", 1)[0]
        if not key:
            raise ConfigError(f"invalid environment variable: {line}")
        return line
    if not line:
        return None
    return f"{line}={host_env[line]}" if line in host_env else None


def decode_env_file(data: bytes, name: str) -> str:
    """An env file's text: UTF-8, as Docker requires (with its message)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"env file {name} contains invalid utf8 bytes at line {line}") \
            from None


def check_no_nul(what: str, values: list[str]) -> None:
    """Refuse a NUL byte in anything that becomes a C string of the
    container's process (argv, environment, paths): ``execve`` cannot take
    it, and it must fail here, before a container is made, not at start."""
    for v in values:
        if "\0" in v:
            shown = v.partition("=")[0] if what == "environment variable" else v
            raise ConfigError(f"invalid {what} {shown.split(chr(0))[0]!r}: "
                              "it contains a NUL byte")


def parse_env_file(text: str, host_env: dict[str, str]) -> list[str]:
    out = []
    for raw in text.splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        item = parse_env_line(line, host_env)
        if item is not None:
            out.append(item)
    return out


def merge_env(image_env: list[str], overrides: list[str]) -> list[str]:
    """Later entries win; order is the image's, then new keys in order."""
    merged: dict[str, str] = {}
    for item in list(image_env) + list(overrides):
        key, _, value = item.partition("=")
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]


def finish_env(env: list[str], *, hostname: str, home: str, tty: bool) -> list[str]:
    """What Docker adds: PATH if missing, HOSTNAME, HOME (the user's), TERM
    with a tty."""
    keys = {e.partition("=")[0] for e in env}
    extra = []
    if "PATH" not in keys:
        extra.append(f"PATH={DEFAULT_PATH}")
    extra.append(f"HOSTNAME={hostname}")
    if tty and "TERM" not in keys:
        extra.append("TERM=xterm")
    if "HOME" not in keys:
        extra.append(f"HOME={home}")
    return extra + [e for e in env if e.partition("=")[0] != "HOSTNAME"]


def env_get(env: list[str], key: str) -> str | None:
    for e in env:
        k, _, v = e.partition("=")
        if k == key:
            return v
    return None


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def _passwd(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 7 and not line.startswith("#"):
            rows.append(parts)
    return rows


def _group(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and not line.startswith("#"):
            rows.append(parts)
    return rows


def resolve_user(spec: str, passwd: str, group: str) -> User:
    """``-u name|uid[:group|gid]`` against the image's files: the primary
    group from passwd (0 for an unknown numeric uid), supplementary groups
    from the group file's member lists, HOME from passwd (``/`` if none)."""
    spec = spec or "0"
    user_part, _, group_part = spec.partition(":")
    pw = _passwd(passwd)
    gr = _group(group)
    entry = None
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((p for p in pw if p[2] == user_part), None)
    else:
        entry = next((p for p in pw if p[0] == user_part), None)
        if entry is None:
            raise UserLookupError(f"unable to find user {user_part}: "
                                  "no matching entries in passwd file")
        uid = int(entry[2])
    gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
    home = entry[5] if entry is not None and entry[5] else "/"
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            g = next((g for g in gr if g[0] == group_part), None)
            if g is None:
                raise UserLookupError(f"unable to find group {group_part}: "
                                      "no matching entries in group file")
            gid = int(g[2])
    groups = [gid]
    if entry is not None and not group_part:
        name = entry[0]
        for g in gr:
            if name in g[3].split(",") and g[2].isdigit() and int(g[2]) not in groups:
                groups.append(int(g[2]))
    return User(uid, gid, tuple(groups), home)


def parse_publish(spec: str) -> tuple[str, int, int, str]:
    """``[IP:]HOST:CTR[/proto]`` (or ``CTR`` alone, a random host port: 0)
    -> (ip, host_port, container_port, proto)."""
    body, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp"):
        raise ConfigError(f"invalid protocol in port spec {spec}")
    parts = body.rsplit(":", 2)
    ip = (parts[0] or "0.0.0.0") if len(parts) == 3 else "0.0.0.0"
    host, ctr = (parts[-2] or "0") if len(parts) > 1 else "0", parts[-1]
    if not all(p.isascii() and p.isdigit() for p in (host, ctr)):
        raise ConfigError(f"invalid port spec {spec}: use [IP:]HOST:CONTAINER[/tcp]")
    if int(host) > 65535 or not 0 < int(ctr) <= 65535:
        raise ConfigError(f"invalid port spec {spec}: ports are 1-65535")
    return ip, int(host), int(ctr), proto


@dataclass(frozen=True)
class MountReq:
    """One ``-v``/``--mount``/``--tmpfs``: kind is bind, volume or tmpfs."""

    kind: str
    source: str
    target: str
    readonly: bool = False
    options: str = ""


_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def check_volume_name(name: str) -> str:
    """Docker's rule for a local volume's name. It is also a directory name
    in the store: ``a/../..`` or a newline must never get that far."""
    if not _VOLUME_NAME.fullmatch(name):
        raise ConfigError(f"create {name!r}: includes invalid characters for a local volume "
                          "name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you "
                          "intended to pass a host directory, use absolute path")
    return name


def _check_target(spec: str, dst: str) -> None:
    if not dst.startswith("/"):
        raise ConfigError(f"invalid volume spec {spec}: the container path must be absolute")
    if posixpath.normpath(dst) == "/":
        raise ConfigError(f"invalid volume spec {spec}: the destination can't be '/'")
    check_no_nul("mount destination", [dst])


def parse_volume(spec: str) -> MountReq:
    """``-v HOST:CTR[:ro|rw]`` (HOST absolute or relative with ./) or
    ``-v NAME:CTR`` (a named volume) or ``-v CTR`` (an anonymous volume),
    refused as Docker refuses them (``-v :/x`` must not become an
    anonymous volume)."""
    if not spec:
        raise ConfigError("invalid empty volume spec")
    parts = spec.split(":")
    if len(parts) > 3:
        raise ConfigError(f"invalid spec: {spec}: too many colons")
    if "" in parts:
        raise ConfigError(f"invalid spec: {spec}: empty section between colons")
    opts = ""
    if len(parts) == 3:
        opts = parts.pop()
    if len(parts) == 1:
        src, dst = "", parts[0]
    else:
        src, dst = parts
    ro = False
    for o in filter(None, opts.split(",")):
        if o == "ro":
            ro = True
        elif o not in ("rw", "z", "Z"):
            raise ConfigError(f"invalid mode in volume spec {spec}: {o}")
    _check_target(spec, dst)
    check_no_nul("mount source", [src])
    if src.startswith(("/", ".")):
        return MountReq("bind", src, dst, ro)
    return MountReq("volume", check_volume_name(src) if src else "", dst, ro)


def parse_mount(spec: str) -> MountReq:
    """``--mount type=bind|volume|tmpfs,source=..,target=..[,readonly]``."""
    fields: dict[str, str] = {}
    for item in spec.split(","):
        key, eq, value = item.partition("=")
        fields[key.strip()] = value if eq else "true"
    kind = fields.get("type", "volume")
    src = fields.get("source", fields.get("src", ""))
    dst = fields.get("target", fields.get("destination", fields.get("dst", "")))
    ro = fields.get("readonly", fields.get("ro", "false")) in ("true", "1")
    if kind not in ("bind", "volume", "tmpfs"):
        raise ConfigError(f"invalid mount type {kind}")
    if not dst.startswith("/"):
        raise ConfigError(f"invalid mount spec {spec}: target must be an absolute path")
    _check_target(spec, dst)
    check_no_nul("mount source", [src])
    if kind == "bind" and not src:
        raise ConfigError(f"invalid mount spec {spec}: a bind mount needs a source")
    if kind == "volume" and src:
        check_volume_name(src)
    opts = []
    if "tmpfs-size" in fields:
        opts.append(f"size={fields['tmpfs-size']}")
    if "tmpfs-mode" in fields:
        opts.append(f"mode={fields['tmpfs-mode']}")
    return MountReq(kind, src, dst, ro, ",".join(opts))


def parse_tmpfs(spec: str) -> MountReq:
    dst, _, opts = spec.partition(":")
    if not dst.startswith("/"):
        raise ConfigError(f"invalid tmpfs spec {spec}: the path must be absolute")
    check_no_nul("tmpfs spec", [spec])
    return MountReq("tmpfs", "", dst, False, opts)


def parse_signal(text: str) -> int:
    import signal
    t = text.upper()
    if t.isdigit():
        return int(t)
    if not t.startswith("SIG"):
        t = "SIG" + t
    try:
        return int(signal.Signals[t])
    except KeyError:
        raise ConfigError(f"invalid signal: {text}") from None
