"""``registries.conf`` as Podman reads it, and Docker's ``daemon.json`` mirrors.

Read (containers-registries.conf(5), version 2 TOML): ``$CONTAINERS_REGISTRIES_CONF``
if set, else the user's ``${XDG_CONFIG_HOME:-~/.config}/containers/
registries.conf`` if it exists, else ``/etc/containers/registries.conf``; then
the drop-ins ``*.conf`` of ``/etc/containers/registries.conf.d`` and the
user's ``registries.conf.d`` in file-name order (a user's file replaces the
system's of the same name). A later file replaces
``unqualified-search-registries`` if it sets it, replaces a ``[[registry]]``
of the same prefix and adds to ``[aliases]``. The version 1 tables
(``[registries.search|insecure|block] registries = [...]``) are read too.

What it changes (``client.endpoints``, ``pull``): a name matching a
``[[registry]]`` prefix (longest wins; ``*.example.com`` matches subdomains)
is pulled from its mirrors in order and then from its ``location`` (the
prefix rewritten), ``insecure`` endpoints skip TLS verification, a
``blocked`` one is refused in one line. A short name (``busybox``, no
registry in it) is looked up in ``[aliases]`` (then in the aliases recorded
in ``${XDG_CACHE_HOME:-~/.cache}/containers/short-name-aliases.conf``), else
resolved against the ``unqualified-search-registries`` as
``short-name-mode`` says, with Podman's rules: ``disabled`` tries every
registry in order; with more than one registry, ``permissive`` (the default)
and ``enforcing`` let the user choose on a terminal (the choice is recorded
as an alias, so it is asked once), and without a terminal ``permissive``
tries them in order while ``enforcing`` refuses. With no registries.conf
saying otherwise a short name is ``docker.io``'s, as Docker normalizes it.

``daemon.json`` (rootless Docker's ``~/.config/docker/daemon.json``, else
``/etc/docker/daemon.json``): ``registry-mirrors`` for docker.io and
``insecure-registries``. The ``/etc`` paths follow
``trust.system_root()`` (``$DOCKISH_SYSTEM_CONFIG_ROOT``).

Every file is read as a regular file (a FIFO there is refused, not waited
on); a malformed one is a one-line error naming it.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from . import reference as refs
from .errors import DistributionError

SHORT_NAME_MODES = ("enforcing", "permissive", "disabled")


class ConfError(DistributionError):
    """A registries.conf or daemon.json that cannot be used; or a blocked registry."""


@dataclass(frozen=True)
class Endpoint:
    location: str
    insecure: bool = False


@dataclass(frozen=True)
class Entry:
    """One ``[[registry]]`` table."""

    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Endpoint, ...] = ()
    mirror_by_digest_only: bool = False

    def matches(self, name: str) -> bool:
        if self.prefix.startswith("*."):
            domain = name.split("/", 1)[0]
            return refs.split_host(domain).endswith(self.prefix[1:])
        return name == self.prefix or name.startswith(self.prefix + "/")

    def rewrite(self, location: str, name: str) -> str:
        """``name`` with its prefix replaced by ``location``."""
        if self.prefix.startswith("*."):
            return name
        return location + name[len(self.prefix):]


@dataclass
class Conf:
    search: list[str] | None = None         # None: not set anywhere (Docker's default)
    entries: dict[str, Entry] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)
    daemon_mirrors: list[str] = field(default_factory=list)
    daemon_insecure: list[str] = field(default_factory=list)
    short_name_mode: str = "permissive"
    recorded: dict[str, str] = field(default_factory=dict)   # the aliases cache

    def find(self, name: str) -> Entry | None:
        """The ``[[registry]]`` whose prefix matches ``domain/path`` longest."""
        found = [e for e in self.entries.values() if e.matches(name)]
        return max(found, key=lambda e: len(e.prefix), default=None)

    def insecure_hosts(self) -> list[str]:
        """Every host (``name[:port]``) a table marks insecure."""
        hosts = list(self.daemon_insecure)
        for e in self.entries.values():
            if e.insecure and not e.prefix.startswith("*."):
                hosts.append(e.location.split("/", 1)[0])
            hosts += [m.location.split("/", 1)[0] for m in e.mirrors if m.insecure]
        return hosts


# -- where ----------------------------------------------------------------------------

def _user_config() -> Path:
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"


def conf_paths() -> list[Path]:
    """The files read, in order (those that do not exist are skipped)."""
    from .trust import system_root
    etc = system_root() / "etc" / "containers"
    user = _user_config() / "containers"
    explicit = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    if explicit:
        main = Path(explicit)
    elif (user / "registries.conf").exists():
        main = user / "registries.conf"
    else:
        main = etc / "registries.conf"
    dropins: dict[str, Path] = {}
    for d in (etc / "registries.conf.d", user / "registries.conf.d"):
        try:
            names = os.listdir(d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise ConfError(f"cannot read {d}: {e.strerror}") from None
        for n in names:
            if n.endswith(".conf"):
                dropins[n] = d / n
    return [main, *(dropins[n] for n in sorted(dropins))]


def daemon_json_paths() -> list[Path]:
    from .trust import system_root
    return [_user_config() / "docker" / "daemon.json",
            system_root() / "etc" / "docker" / "daemon.json"]


# -- reading --------------------------------------------------------------------------

def _read(path: Path) -> bytes | None:
    from unionfs.safefile import read_file
    try:
        return read_file(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise ConfError(f"cannot read {path}: {e.strerror or e}") from None


def _strings(value, what: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfError(f"{path}: {what} must be a list of strings")
    return value


def _bool(table: dict, key: str, path: Path) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfError(f"{path}: {key} must be true or false")
    return value


def _entry(table, path: Path) -> Entry:
    if not isinstance(table, dict):
        raise ConfError(f"{path}: [[registry]] must be a table")
    location = table.get("location", "")
    prefix = table.get("prefix", "") or location
    if not isinstance(location, str) or not isinstance(prefix, str) or not prefix:
        raise ConfError(f"{path}: a [[registry]] needs a prefix or a location")
    if prefix.startswith("*.") and location:
        raise ConfError(f"{path}: [[registry]] {prefix}: a wildcard prefix takes no location")
    mirrors = []
    for m in table.get("mirror", []) or []:
        if not isinstance(m, dict) or not isinstance(m.get("location"), str) \
                or not m["location"]:
            raise ConfError(f"{path}: [[registry]] {prefix}: a mirror needs a location")
        mirrors.append(Endpoint(m["location"].rstrip("/"), _bool(m, "insecure", path)))
    return Entry(prefix.rstrip("/"), (location or prefix).rstrip("/"),
                 _bool(table, "insecure", path), _bool(table, "blocked", path),
                 tuple(mirrors), _bool(table, "mirror-by-digest-only", path))


def _merge_v1(conf: Conf, data: dict, path: Path) -> None:
    """``[registries.search|insecure|block] registries = [...]``."""
    v1 = data.get("registries")
    if not isinstance(v1, dict):
        raise ConfError(f"{path}: [registries] must be a table")
    for kind in ("search", "insecure", "block"):
        table = v1.get(kind) or {}
        hosts = _strings(table.get("registries", []), f"registries.{kind}", path) \
            if isinstance(table, dict) else _strings(None, f"registries.{kind}", path)
        if kind == "search" and "registries" in table:
            conf.search = list(hosts)
        for h in hosts if kind != "search" else ():
            old = conf.entries.get(h) or Entry(h, h)
            conf.entries[h] = Entry(old.prefix, old.location,
                                    old.insecure or kind == "insecure",
                                    old.blocked or kind == "block", old.mirrors,
                                    old.mirror_by_digest_only)


def merge(conf: Conf, data: dict, path: Path) -> None:
    """Apply one parsed file to ``conf`` (later files win)."""
    if "registries" in data:
        _merge_v1(conf, data, path)
    if "unqualified-search-registries" in data:
        conf.search = list(_strings(data["unqualified-search-registries"],
                                    "unqualified-search-registries", path))
    tables = data.get("registry", [])
    if not isinstance(tables, list):
        raise ConfError(f"{path}: registry must be an array of tables ([[registry]])")
    for table in tables:
        e = _entry(table, path)
        conf.entries[e.prefix] = e
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise ConfError(f"{path}: [aliases] must map short names to image names")
    conf.aliases.update(aliases)
    if "short-name-mode" in data:
        mode = data["short-name-mode"]
        if mode not in SHORT_NAME_MODES:
            raise ConfError(f"{path}: invalid short-name-mode {mode!r} (want one of "
                            f"{', '.join(SHORT_NAME_MODES)})")
        conf.short_name_mode = mode
    conf.sources.append(path)


def _toml(path: Path) -> dict | None:
    raw = _read(path)
    if raw is None:
        return None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfError(f"{path}: invalid TOML: {e}") from None


def aliases_cache() -> Path:
    """Where Podman (and dockish) record the short names a user resolved."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "containers" / "short-name-aliases.conf"


def load() -> Conf:
    """registries.conf, its drop-ins, the aliases cache and daemon.json, merged."""
    conf = Conf()
    for path in conf_paths():
        data = _toml(path)
        if data is not None:
            merge(conf, data, path)
    cached = _toml(aliases_cache()) or {}
    recorded = cached.get("aliases", {})
    if isinstance(recorded, dict):
        conf.recorded = {k: v for k, v in recorded.items()
                         if isinstance(k, str) and isinstance(v, str)}
    for path in daemon_json_paths():
        raw = _read(path)
        if raw is None:
            continue
        try:
            data = json.loads(raw or b"{}")
        except ValueError as e:
            raise ConfError(f"{path}: invalid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ConfError(f"{path} is not a JSON object")
        conf.daemon_mirrors = _strings(data.get("registry-mirrors", []), "registry-mirrors",
                                       path)
        conf.daemon_insecure = _strings(data.get("insecure-registries", []),
                                        "insecure-registries", path)
        break                               # the daemon reads one of them
    return conf


# -- what a name means ------------------------------------------------------------------

def check_blocked(conf: Conf, ref: refs.Reference) -> Entry | None:
    """The entry for ``ref``; a blocked one is refused in one line."""
    entry = conf.find(ref.repository)
    if entry is not None and entry.blocked:
        raise ConfError(f"registry {entry.prefix} is blocked in registries.conf")
    return entry


def short_name_candidates(text: str, conf: Conf,
                          choose: Callable[[str, list[str]], str] | None = None
                          ) -> list[str] | None:
    """The fully qualified names to try for a short name, in order; None when
    ``text`` names its registry or nothing configures short names (Docker's
    docker.io then applies). ``choose(short_name, registries)`` asks the user
    (given only when there is a terminal to ask on) and returns one of the
    registries."""
    if not refs.is_short_name(text):
        return None
    name, suffix = refs.split_suffix(text)
    alias = conf.aliases.get(name) or conf.recorded.get(name)
    if alias is not None:
        if refs.is_short_name(alias):
            raise ConfError(f"the alias {name} = {alias!r} in registries.conf "
                            f"does not name a registry")
        has_own = refs.split_suffix(alias)[1]
        return [alias if has_own and not suffix else alias + suffix]
    if conf.search is None:
        return None
    if not conf.search:
        raise ConfError(f"short name {text!r} did not resolve to an alias and no "
                        f"unqualified-search-registries are defined in registries.conf")
    registries = [r.rstrip("/") for r in conf.search]
    if len(registries) > 1 and conf.short_name_mode != "disabled":
        if choose is not None:
            chosen = choose(name, registries)
            record_alias(name, f"{chosen}/{name}")
            registries = [chosen]
        elif conf.short_name_mode == "enforcing":
            raise ConfError("short-name resolution enforced but cannot prompt without a TTY")
    return [f"{r}/{name}{suffix}" for r in registries]


def record_alias(name: str, value: str) -> None:
    """Keep the user's choice in the aliases cache (Podman's file, so either
    tool asks once); best effort: a cache that cannot be written only means
    asking again."""
    path = aliases_cache()
    try:
        recorded = dict((_toml(path) or {}).get("aliases", {}))
    except ConfError:
        recorded = {}
    recorded[name] = value
    body = "[aliases]\n" + "".join(f"{json.dumps(k)} = {json.dumps(v)}\n"
                                   for k, v in sorted(recorded.items()))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".short-name-aliases.")
        with os.fdopen(fd, "w") as f:
            f.write(body)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


__all__ = ["Conf", "Entry", "Endpoint", "ConfError", "load", "merge", "conf_paths",
           "daemon_json_paths", "check_blocked", "short_name_candidates", "record_alias",
           "aliases_cache", "SHORT_NAME_MODES"]
