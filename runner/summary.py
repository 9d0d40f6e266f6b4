"""Docker's list records of containers: the ``Summary`` that ``GET
/containers/json`` returns and ``ps`` formats, and the facts ``ps``'s
filters (``runner.filters``) look at. One place, so ``dockish ps`` and
``docker ps`` through the API list the same containers with the same
fields."""
from __future__ import annotations

from .filters import ContainerFacts
from .runtime.container import Container


def networks(c: Container) -> dict[str, dict]:
    """The container's networks as Docker names them (a private default
    network is ``bridge``; user networks by name, with their IDs), from
    the same record ``inspect`` shows (``netops.network_settings``)."""
    from .runtime.netops import network_settings
    return network_settings(c, {})["Networks"]


def ports(c: Container) -> list[dict]:
    """The Summary's ``Ports``: each published port, and each exposed one
    that is not published (no public port), as the daemon lists them."""
    cfg = c.config
    out = [{"IP": ip or "0.0.0.0", "PrivatePort": int(cp), "PublicPort": int(hp),
            "Type": proto} for ip, hp, cp, proto in cfg.ports]
    published = {f"{p['PrivatePort']}/{p['Type']}" for p in out}
    for key in cfg.exposed or []:
        if key not in published:
            num, _, proto = key.partition("/")
            out.append({"PrivatePort": int(num), "Type": proto or "tcp"})
    return out


def docker_state(c: Container) -> tuple[str, int | None]:
    """Docker's ``State`` (created, running, paused, restarting, exited) and
    the last exit code."""
    status, code = c.status()
    return ("paused" if status == "running" and c.paused else status), code


def health_status(c: Container) -> str:
    """``none`` without a healthcheck, else the last status the monitor wrote."""
    if not c.config.healthcheck:
        return "none"
    return (c.state().get("health") or {}).get("Status") or "starting"


def command_line(argv: list[str]) -> str:
    """The daemon's ``Command``: the arguments joined, those with a space
    in single quotes (not a shell quoting: Docker's own)."""
    if not argv:
        return ""
    return " ".join([argv[0], *(f"'{a}'" if " " in a else a for a in argv[1:])]) \
        if len(argv) > 1 else argv[0]


def mounts(c: Container, volume_path) -> list[dict]:
    """The Summary's ``Mounts`` (what the user mounted: not --init's tini)."""
    cfg = c.config
    out = []
    for m in cfg.mounts:
        if cfg.init_path and m["target"] == cfg.init_path:
            continue
        vol = m["kind"] == "volume"
        out.append({"Type": m["kind"], "Name": m["source"] if vol else "",
                    "Source": str(volume_path(m["source"]) / "_data") if vol else m["source"],
                    "Destination": m["target"], "Driver": "local" if vol else "",
                    "Mode": "" if vol else ("ro" if m["readonly"] else ""),
                    "RW": not m["readonly"], "Propagation": "" if vol else "rprivate"})
    return out


def facts(c: Container) -> ContainerFacts:
    """What ``ps``'s filters need of ``c`` (``ref`` carries ``c``)."""
    cfg = c.config
    state, code = docker_state(c)
    return ContainerFacts(
        id=cfg.id, name=cfg.name, created=cfg.created, state=state,
        running=state in ("running", "paused", "restarting"), exit_code=code or 0,
        started=bool(c.state().get("started")), image_id=cfg.image_id,
        labels=dict(cfg.labels or {}), health=health_status(c),
        mounts=[(m["source"], m["target"]) for m in cfg.mounts
                if not (cfg.init_path and m["target"] == cfg.init_path)],
        networks={name: ep.get("NetworkID") or "" for name, ep in networks(c).items()},
        ports=[(p["PrivatePort"], p.get("PublicPort", 0), p["Type"]) for p in ports(c)],
        ref=c)


def summary(c: Container, status_text: str, volume_path,
            sizes: tuple[int, int] | None = None) -> dict:
    """Docker's ``container.Summary`` of ``c``; ``status_text`` is ``ps``'s
    STATUS (``Up 5 minutes (healthy)``); ``sizes`` (writable layer, with the
    image) only when asked for, as Docker computes them only then."""
    cfg = c.config
    state, _code = docker_state(c)
    nets = networks(c)
    out = {
        "Id": cfg.id, "Names": ["/" + cfg.name], "Image": cfg.image, "ImageID": cfg.image_id,
        "Command": command_line(cfg.argv), "Created": int(cfg.created),
        "Ports": ports(c),
        "Labels": dict(cfg.labels or {}), "State": state, "Status": status_text,
        "HostConfig": {"NetworkMode": next(iter(nets), "default")},
        "NetworkSettings": {"Networks": nets},
        "Mounts": mounts(c, volume_path),
        "Health": {"Status": health_status(c), "FailingStreak": 0},
    }
    if sizes is not None:
        out["SizeRw"], out["SizeRootFs"] = sizes
    return out
