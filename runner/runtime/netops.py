"""The engine's network operations (``network create/ls/inspect/rm/prune/
connect/disconnect``) and what a container's inspect shows of its
networks. ``Engine`` delegates here; records in, records out, typed errors,
no printing. The store is ``runner.runtime.networks``, the runtime ``runner.runtime.netns``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import DockishError, ForbiddenError, NotFoundError, UsageError
from . import netconf
from .container import Container, Containers
from .netconf import NetworkRecord
from .networks import Networks

NETWORK_KEYS = ("name", "id", "label", "driver", "type", "dangling", "scope")
PRUNE_KEYS = ("label", "label!", "until")
Filters = dict[str, list[str]]


# Docker's three pre-defined networks (here: the default private one, the
# host's, none): listed and inspectable, never removed
BUILTINS = {"bridge": "bridge", "host": "host", "none": "null"}


def _builtin(name: str) -> NetworkRecord:
    return NetworkRecord(name=name, id=hashlib.sha256(name.encode()).hexdigest(), subnet="",
                         gateway="", interface="", driver=BUILTINS[name])


def _not_found(ref: str) -> NotFoundError:
    return NotFoundError(f"network {ref} not found", exit_code=1)


def find(root: Path, ref: str) -> NetworkRecord:
    if ref in BUILTINS:
        return _builtin(ref)
    try:
        return Networks(root).find(ref)
    except NotFoundError:
        raise _not_found(ref) from None


def members(root: Path, name: str) -> list[Container]:
    """Containers (any state) that are on network ``name``."""
    return [c for c in Containers(root).all() if name in (c.config.networks or {})]


def create(root: Path, name: str, subnet: str | None, gateway: str | None, internal: bool,
           labels: dict, driver: str, ip_range: str | None = None, aux: dict | None = None,
           options: dict | None = None) -> NetworkRecord:
    if driver not in ("bridge", ""):
        raise UsageError(f'plugin "{driver}" not found: only the bridge driver is supported')
    if name in BUILTINS:
        raise ForbiddenError(f"{name} is a pre-defined network and cannot be created")
    from . import netns
    netns.reconcile()
    return Networks(root).create(name, subnet, gateway, internal, labels, "bridge", ip_range,
                                 aux, options)


def _matches(rec: NetworkRecord, filters: Filters, root: Path) -> bool:
    import re
    for key, values in filters.items():
        if key not in NETWORK_KEYS:
            raise UsageError(f"invalid filter '{key}'")
        if key == "name" and not any(re.search(v, rec.name) for v in values):
            return False
        if key == "id" and not any(rec.id.startswith(v) for v in values):
            return False
        if key == "scope" and "local" not in values:      # every network here is local
            return False
        if key == "driver" and rec.driver not in values:
            return False
        if key == "type":
            kind = "builtin" if rec.name in BUILTINS else "custom"
            if kind not in values:
                return False
        if key == "label":
            for v in values:
                k, eq, val = v.partition("=")
                if k not in rec.labels or (eq and rec.labels[k] != val):
                    return False
        if key == "dangling":
            unused = rec.name not in BUILTINS and not members(root, rec.name)
            if (values[0].lower() in ("true", "1")) != unused:
                return False
    return True


def list_(root: Path, filters: Filters | None = None) -> list[NetworkRecord]:
    from . import netns
    netns.reconcile()
    recs = [_builtin(n) for n in BUILTINS] + Networks(root).all()
    recs.sort(key=lambda r: r.name)
    return [r for r in recs if _matches(r, filters or {}, root)]


def inspect(root: Path, ref: str) -> dict:
    rec = find(root, ref)
    from . import netns
    live = netns.attached()
    out = []
    for c in members(root, rec.name):
        ep = c.config.networks[rec.name]
        mac = ((live.get(c.id) or {}).get("macs") or {}).get(rec.name, "")
        if c.running:
            out.append({"id": c.id, "name": c.name, "ip": ep["ip"], "mac": mac})
    return netconf.inspect_network(rec, out)


def remove(root: Path, ref: str) -> NetworkRecord:
    if ref in BUILTINS:
        raise ForbiddenError(f"{ref} is a pre-defined network and cannot be removed")
    rec = find(root, ref)
    users = [c for c in members(root, rec.name) if c.running]
    if users:
        raise ForbiddenError(f"error while removing network: network {rec.name} id {rec.id} "
                             "has active endpoints")
    # stopped containers keep naming it: their next start says "network X
    # not found", as Docker's
    Networks(root).remove(rec)
    return rec


def prune(root: Path, filters: Filters | None = None) -> list[str]:
    """Remove the user networks no container is on that ``until`` and
    ``label``/``label!`` allow (the keys Docker's network prune takes)."""
    from .. import filters as fl
    from . import netns
    f = filters or {}
    fl.validate(f, PRUNE_KEYS)
    limit = fl.until(f)
    netns.reconcile()
    gone = []
    for rec in Networks(root).all():
        if fl.prune_picks(f, rec.created, rec.labels, limit) and not members(root, rec.name):
            Networks(root).remove(rec)
            gone.append(rec.name)
    return gone


def connect(root: Path, ref: str, ctr: Container, aliases: list[str],
            ip: str | None) -> None:
    """Put a container on one more network; a running one at once."""
    from . import netns
    from .netplan import used_addresses
    rec = find(root, ref)
    if rec.name in BUILTINS:
        raise UsageError(f"container cannot be connected to network {rec.name}: only "
                         "user-defined networks can be connected")
    cfg = ctr.config
    if rec.name in cfg.networks:
        raise ForbiddenError(f"endpoint with name {ctr.name} already exists in network "
                             f"{rec.name}")
    if not netconf.is_user_network(cfg.network):
        raise UsageError(f"container {ctr.name} is not on a user-defined network: its "
                         f"--network {cfg.network} cannot be joined with others")
    with Containers(root).claiming():       # an address nobody else takes meanwhile
        used = used_addresses(Containers(root).all()).get(rec.name, set())
        cfg.networks[rec.name] = {"ip": netconf.pick_ip(rec, used, ip),
                                  "aliases": list(aliases)}
        if cfg.network not in cfg.networks and len(cfg.networks) == 1:
            cfg.network = rec.name          # its first network again, after a disconnect
        if ctr.running:
            names = list(cfg.networks)
            opts = netconf.netavark_input(cfg.id, cfg.name, rec, cfg.networks[rec.name]["ip"],
                                          aliases, f"eth{names.index(rec.name)}", [], cfg.dns)
            netns.connect(cfg.id, rec.name, opts)
        Containers(root).save_config(ctr)


def disconnect(root: Path, ref: str, ctr: Container) -> None:
    from . import netns
    rec = find(root, ref)
    cfg = ctr.config
    if rec.name not in cfg.networks:
        raise DockishError(f"container {ctr.id} is not connected to network {rec.name}",
                           exit_code=1)
    if ctr.running and len(cfg.networks) == 1:
        raise UsageError(f"container {ctr.name} would have no network left: stop it, or "
                         "connect it to another network first")
    if ctr.running:
        netns.disconnect(cfg.id, rec.name)
    del cfg.networks[rec.name]
    # a container not running may lose its last network, as in Docker
    # (docker-compose v1 disconnects a new container from its network and
    # connects it again with its aliases): it keeps its network mode, and
    # the next connect gives it a network again
    if cfg.network == rec.name and cfg.networks:
        cfg.network = next(iter(cfg.networks))
    Containers(root).save_config(ctr)


def network_settings(c: Container, ports: dict) -> dict:
    """A container's ``NetworkSettings`` as Docker's inspect shows it."""
    from .network import SLIRP_IP
    cfg = c.config
    ports = dict(ports)          # HostConfig.PortBindings keeps the caller's
    nets: dict = {}
    ip = gateway = ""
    prefix = 0
    if cfg.networks:
        from . import netns
        root = c.path.parent.parent
        macs = ((netns.attached().get(c.id) or {}).get("macs") or {}) if c.running else {}
        for name, ep in cfg.networks.items():
            try:
                rec = Networks(root).find(name)
            except NotFoundError:
                continue
            aliases = ep.get("aliases", [])
            names = netconf.container_aliases(cfg.name, cfg.id, aliases) if c.running else None
            nets[name] = netconf.endpoint(rec, ep["ip"] if c.running else "", aliases,
                                          macs.get(name, ""), names)
        first = next(iter(nets.values()), None)
        if first and c.running:
            ip, gateway, prefix = first["IPAddress"], first["Gateway"], first["IPPrefixLen"]
    elif cfg.network == "slirp4netns":
        ip, gateway, prefix = SLIRP_IP, "10.0.2.2", 24
        nets["bridge"] = {"IPAddress": ip, "Gateway": gateway, "IPPrefixLen": prefix,
                          "MacAddress": "", "Aliases": None, "NetworkID": cfg.network,
                          "EndpointID": ""}
    else:
        nets[cfg.network if cfg.network in BUILTINS else "bridge"] = {
            "IPAddress": "", "Gateway": "", "IPPrefixLen": 0, "MacAddress": "",
            "Aliases": None, "NetworkID": cfg.network, "EndpointID": ""}
    for key in cfg.exposed or []:
        ports.setdefault(key, None)
    return {"Ports": ports, "IPAddress": ip, "Gateway": gateway, "IPPrefixLen": prefix,
            "MacAddress": "", "Networks": nets}


def host_config(cfg) -> dict:
    """A container's networking fields of ``HostConfig`` as Docker's
    inspect shows them: ``--add-host`` as given (``name:ip``, or
    ``host-gateway``), the DNS flags (empty lists when unset) and ``-P``."""
    return {"ExtraHosts": [f"{n}:{ip}" for n, ip in cfg.extra_hosts or []] or None,
            "Dns": list(cfg.dns or []), "DnsSearch": list(cfg.dns_search or []),
            "DnsOptions": list(cfg.dns_options or []), "PublishAllPorts": cfg.publish_all}


def network_names(c: Container) -> str:
    """``ps``'s NETWORKS column."""
    cfg = c.config
    if cfg.networks:
        return ",".join(cfg.networks)
    return "bridge" if cfg.network in ("slirp4netns", "pasta") else cfg.network

