"""Docker's list and prune filters, as its daemon applies them: one set of
rules for the CLI (``ps --filter``, ``volume ls --filter``, ``... prune
--filter``) and the API (``GET /containers/json?filters=...``), so the same
filter picks the same objects through both.

The rules (moby's ``filters.Args`` and ``daemon/list.go``): values of one
key are alternatives (OR), different keys must all hold (AND), except
``label``, whose values must all hold (``MatchKVList``). ``name`` and ``id``
are regular expressions searched in the name (with and without its ``/``);
``status`` and ``health`` are checked against the states Docker knows.
``before``/``since`` and ``ancestor`` need lookups, so the caller resolves
them (``ContainerQuery``) and this module stays pure: facts in, a
selection or a ``FilterError`` out."""
from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import UsageError

Filters = dict[str, list[str]]

PS_KEYS = ("ancestor", "before", "exited", "id", "isolation", "label", "name", "status",
           "health", "since", "volume", "network", "is-task", "publish", "expose")
VOLUME_KEYS = ("driver", "label", "name", "dangling")
CONTAINER_PRUNE_KEYS = ("label", "label!", "until")
IMAGE_PRUNE_KEYS = ("dangling", "label", "label!", "until")
VOLUME_PRUNE_KEYS = ("label", "label!", "all")
STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
HEALTHS = ("none", "starting", "healthy", "unhealthy")


class FilterError(UsageError):
    """A filter the daemon refuses: the CLI prints Docker's ``Error response
    from daemon: MSG`` and exits 1, the API answers 400 with MSG."""

    exit_code = 1
    from_daemon = True


# -- parsing -------------------------------------------------------------------------------------

def parse_cli(items: Iterable[str]) -> Filters:
    """``--filter KEY=VALUE`` flags as Docker's CLI reads them (the key
    lower-cased and trimmed, the value trimmed); a flag without ``=`` is
    Docker's flag error."""
    out: Filters = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f'invalid argument "{item}" for "-f, --filter" flag: bad format '
                             "of filter (expected name=value)")
        add(out, key.strip().lower(), value.strip())
    return out


def from_api(raw: object) -> Filters:
    """The API's ``filters`` JSON, in either of Docker's shapes:
    ``{"key": {"value": true}}`` or the older ``{"key": ["value"]}``."""
    if raw in (None, "", {}):
        return {}
    if not isinstance(raw, Mapping):
        raise FilterError("invalid filter")
    out: Filters = {}
    for key, values in raw.items():
        out.setdefault(str(key), [])
        if isinstance(values, Mapping):
            for v, on in values.items():
                if on:
                    add(out, str(key), str(v))
        elif isinstance(values, list):
            for v in values:
                add(out, str(key), str(v))
        else:
            add(out, str(key), str(values))
    return out


def add(f: Filters, key: str, value: str) -> None:
    """Docker's ``Args.Add``: a set of values per key (kept in order)."""
    values = f.setdefault(key, [])
    if value not in values:
        values.append(value)


def validate(f: Filters, accepted: Iterable[str]) -> None:
    """Docker's ``Validate``: an unknown key is ``invalid filter 'KEY'``."""
    known = set(accepted)
    for key in f:
        if key not in known:
            raise FilterError(f"invalid filter '{key}'")


# -- Docker's matchers ---------------------------------------------------------------------------

def _search(pattern: str, source: str) -> bool:
    """Go's ``regexp.MatchString``: a search, a pattern that does not
    compile matches nothing."""
    try:
        return re.search(pattern, source) is not None
    except re.error:
        return False


def match(f: Filters, key: str, source: str) -> bool:
    """Docker's ``Match``: true without values for ``key``, else an exact
    value or a value that, as a regular expression, is found in ``source``."""
    values = f.get(key)
    if not values:
        return True
    return source in values or any(_search(v, source) for v in values)


def exact(f: Filters, key: str, source: str) -> bool:
    """Docker's ``ExactMatch``."""
    values = f.get(key)
    return not values or source in values


def match_kv_list(f: Filters, key: str, labels: Mapping[str, str] | None) -> bool:
    """Docker's ``MatchKVList``: every ``KEY`` or ``KEY=VALUE`` given must
    be among ``labels``."""
    values = f.get(key)
    if not values:
        return True
    if not labels:
        return False
    for v in values:
        k, eq, want = v.partition("=")
        if k not in labels or (eq and labels[k] != want):
            return False
    return True


def labels_match(f: Filters, labels: Mapping[str, str] | None) -> bool:
    """Prune's ``label=`` (all must be there) and ``label!=`` (none of them
    may be)."""
    if not match_kv_list(f, "label", labels):
        return False
    return not ("label!" in f and match_kv_list(f, "label!", labels))


def get_bool(f: Filters, key: str, default: bool = False) -> bool:
    """Docker's ``GetBoolOrDefault``: ``true``/``1`` or ``false``/``0``, one
    of them; anything else is ``invalid filter 'KEY=[VALUES]'``."""
    if key not in f:
        return default
    values = f[key]
    false, true = ("0" in values or "false" in values), ("1" in values or "true" in values)
    if false == true:
        raise FilterError(f"invalid filter '{key}={_go_list(values)}'" if values
                          else f"invalid filter '{key}'")
    return true


def _go_list(values: list[str]) -> str:
    return "[" + " ".join(values) + "]"


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_duration(text: str) -> float | None:
    """Go's ``time.ParseDuration`` in seconds (``1h30m``, ``-5m``); None if not one."""
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(body):
        if m.start() != pos:
            return None
        total += float(m[1]) * _UNITS[m[2]]
        pos = m.end()
    return sign * total if body and pos == len(body) else None


def timestamp(text: str, now: float | None = None) -> float:
    """Docker's ``timestamp.Parse`` for ``until``/``since``: a Go duration
    back from ``now`` (``24h``), seconds since the epoch (``1700000000.5``),
    or an RFC 3339 time or date (``2026-01-02``, ``2026-01-02T03:04:05Z``;
    without a zone it is local time, as Docker's)."""
    from datetime import datetime
    now = time.time() if now is None else now
    d = go_duration(text)
    if d is not None:
        return now - d
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    value = text.replace("Z", "+00:00").replace("z", "+00:00")
    for fmt_ in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z",
                 "%Y-%m-%dT%H%z", "%Y-%m-%d%z", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
                 "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt_).timestamp()
        except ValueError:
            continue
    raise FilterError(f'failed to parse value as time or duration: "{text}"')


def until(f: Filters, now: float | None = None) -> float | None:
    """Prune's ``until``: one time at most (Docker's words otherwise)."""
    values = f.get("until")
    if not values:
        return None
    if len(values) > 1:
        raise FilterError("more than one until filter specified")
    return timestamp(values[0], now)


def older_than(f: Filters, now: float | None = None) -> float | None:
    """The build cache's ``until`` (or its older name ``unused-for``) as
    seconds unused; the cache has no labels, so Docker's builder ignores
    the other prune filters."""
    if "until" in f and "unused-for" in f:
        raise FilterError("conflicting filters: \"until\" and \"unused-for\"")
    values = f.get("until", []) + f.get("unused-for", [])
    if not values:
        return None
    if len(values) > 1:
        raise FilterError("filters expect only one value")
    now = time.time() if now is None else now
    return max(0.0, now - timestamp(values[0], now))


# -- containers ----------------------------------------------------------------------------------

@dataclass
class ContainerFacts:
    """What the filters of ``ps`` look at in one container (Docker's
    ``container.Snapshot``)."""

    id: str
    name: str
    created: float
    state: str                     # Docker's: created, running, paused, exited, ...
    running: bool
    exit_code: int
    started: bool                  # has it ever run (``exited=`` wants it)
    image_id: str
    labels: dict[str, str] = field(default_factory=dict)
    health: str = "none"
    mounts: list[tuple[str, str]] = field(default_factory=list)   # (name or source, target)
    networks: dict[str, str] = field(default_factory=dict)        # name -> network id
    ports: list[tuple[int, int, str]] = field(default_factory=list)   # (private, public, proto)
    ref: object = None             # the caller's own object, carried through


@dataclass
class ContainerQuery:
    """``ps``'s request: the filters plus what their values resolved to
    (``ancestor``: the image IDs it names with their descendants, None when
    no ancestor filter is given)."""

    filters: Filters = field(default_factory=dict)
    all: bool = False
    limit: int = -1
    ancestor_ids: set[str] | None = None


def check_container_filters(f: Filters) -> None:
    """Refuse what Docker's daemon refuses, before anything is looked up."""
    validate(f, PS_KEYS)
    for v in f.get("exited", []):
        try:
            int(v)
        except ValueError:
            raise FilterError(f"invalid filter 'exited={v}': strconv.Atoi: parsing "
                              f"{_go_quote(v)}: invalid syntax") from None
    for v in f.get("status", []):
        if v not in STATES:
            raise FilterError(f"invalid filter 'status={v}': invalid value for state ({v}): "
                              f"must be one of {', '.join(STATES)}")
    for v in f.get("health", []):
        if v not in HEALTHS:
            raise FilterError(f"invalid filter 'health={v}': invalid value for health ({v}): "
                              f"must be one of {', '.join(HEALTHS)}")
    get_bool(f, "is-task")
    for key in ("publish", "expose"):
        for v in f.get(key, []):
            if ":" in v:
                raise FilterError(f"filter for '{key}' should not contain ':': {v}")
            _port_range(key, v)


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _port_range(key: str, value: str) -> set[str]:
    """``80``, ``80/udp``, ``8000-8010/tcp`` as ``PORT/PROTO`` strings."""
    ports, _, proto = value.partition("/")
    first, _, last = ports.partition("-")
    try:
        lo, hi = int(first), int(last or first)
    except ValueError:
        raise FilterError(f"error while looking up for {key} {value}: invalid port "
                          f"'{ports}'") from None
    return {f"{p}/{proto or 'tcp'}" for p in range(lo, hi + 1)}


def find_container(facts: list[ContainerFacts], value: str) -> ContainerFacts:
    """``before=``/``since=``'s container, by ID, ID prefix or name, as the
    daemon finds it (``No such container`` otherwise)."""
    for c in facts:
        if c.id == value:
            return c
    prefixed = [c for c in facts if c.id.startswith(value)] if value else []
    if len(prefixed) == 1:
        return prefixed[0]
    named = [c for c in facts if c.name.lstrip("/") == value.lstrip("/")]
    if len(named) == 1:
        return named[0]
    raise FilterError(f"No such container: {value}")


def select_containers(facts: list[ContainerFacts], q: ContainerQuery) -> list[ContainerFacts]:
    """The containers ``ps`` shows, newest first, as Docker's daemon picks
    them (``includeContainerInList``)."""
    f = q.filters
    check_container_filters(f)
    every = sorted(facts, key=lambda c: c.created, reverse=True)
    before = since = None
    for v in f.get("before", []):
        before = find_container(every, v)
    for v in f.get("since", []):
        since = find_container(every, v)
    show_all = q.all or "status" in f
    ids = f.get("id", [])
    if ids:                        # an ID filter names unique prefixes first
        unique = set()
        for v in ids:
            hits = [c.id for c in every if c.id.startswith(v)]
            if len(hits) == 1:
                unique.add(hits[0])
            elif v in (c.id for c in every):
                unique.add(v)
        every = [c for c in every if c.id in unique]
    exited = [int(v) for v in f.get("exited", [])]
    publish = set().union(*(_port_range("publish", v) for v in f.get("publish", [])))
    expose = set().union(*(_port_range("expose", v) for v in f.get("expose", [])))
    is_task = get_bool(f, "is-task") if "is-task" in f else None
    out: list[ContainerFacts] = []
    for c in every:
        if before is not None:
            if c.id == before.id:
                before = None
            continue
        if since is not None and c.id == since.id:
            break
        if not c.running and not show_all and q.limit <= 0:
            continue
        name = "/" + c.name.lstrip("/")
        if not (match(f, "name", name) or match(f, "name", name[1:])):
            continue
        if not match(f, "id", c.id):
            continue
        if is_task is True:                  # no swarm tasks here
            continue
        if not match_kv_list(f, "label", c.labels):
            continue
        if "isolation" in f and not exact(f, "isolation", "default"):
            continue
        if q.limit > 0 and len(out) == q.limit:
            break
        if exited and not any(code == c.exit_code and not c.running and c.started
                              for code in exited):
            continue
        if not match(f, "status", c.state):
            continue
        if not exact(f, "health", c.health):
            continue
        if "volume" in f and not any(v in (src, dst) for v in f["volume"]
                                     for src, dst in c.mounts):
            continue
        if q.ancestor_ids is not None and c.image_id not in q.ancestor_ids:
            continue
        if "network" in f and not any(v in c.networks or any(i.startswith(v) for i in
                                                              c.networks.values())
                                      for v in f["network"]):
            continue
        if (publish or expose) and not any(f"{pub}/{proto}" in publish or
                                           f"{priv}/{proto}" in expose
                                           for priv, pub, proto in c.ports):
            continue
        out.append(c)
    return out


def built_on(child: tuple[list[str], list], base: tuple[list[str], list]) -> bool:
    """Whether an image (its layer IDs and config history) was built on
    ``base``: Docker's classic builder records that as the image's parent,
    which ``ancestor=`` follows; dockish's builds keep no parent, but a
    build keeps its base's layers and history entries first and adds
    steps after them."""
    (layers, history), (base_layers, base_history) = child, base
    return len(history) > len(base_history) and history[:len(base_history)] == base_history \
        and layers[:len(base_layers)] == base_layers


# -- volumes -------------------------------------------------------------------------------------

@dataclass
class VolumeFacts:
    """What ``volume ls --filter`` looks at in one volume."""

    name: str
    driver: str = "local"
    labels: dict[str, str] = field(default_factory=dict)
    in_use: bool = False
    ref: object = None


def select_volumes(facts: list[VolumeFacts], f: Filters) -> list[VolumeFacts]:
    """``volume ls``'s volumes under Docker's volume filters."""
    validate(f, VOLUME_KEYS)
    dangling = get_bool(f, "dangling") if "dangling" in f else None
    return [v for v in facts
            if exact(f, "driver", v.driver) and match(f, "name", v.name)
            and match_kv_list(f, "label", v.labels)
            and (dangling is None or v.in_use != dangling)]


def volume_prune_all(f: Filters) -> bool:
    """Volume prune's ``all=``: one boolean (named volumes too)."""
    values = f.get("all", [])
    if len(values) > 1:
        raise FilterError(f"invalid filter 'all={_go_list(values)}': only one value is "
                          "expected")
    return get_bool(f, "all") if values else False


# -- prune ---------------------------------------------------------------------------------------

def prune_picks(f: Filters, created: float | None, labels: Mapping[str, str] | None,
                limit: float | None) -> bool:
    """Whether a prune may take an object: created before ``until``
    (``limit``) and matching ``label``/``label!``."""
    if limit is not None and created is not None and created > limit:
        return False
    return labels_match(f, labels)

