"""What a new container's networking will be, decided at create: its user
networks with their addresses and aliases, ``-P``'s ports, ``--expose``,
``--add-host`` and the ``/etc/hosts`` and ``/etc/resolv.conf`` its init
layer gets. The engine calls ``plan`` from ``create``; the rules themselves
are ``runner.runtime.netconf``'s (pure), this module only reads the stores.
"""
from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from . import netconf
from .networks import Networks

PRIVATE = ("slirp4netns", "pasta")


@dataclass
class NetPlan:
    """The networking fields of a new container."""

    mode: str = ""
    networks: dict = field(default_factory=dict)      # name -> {"ip", "aliases"}
    ports: list = field(default_factory=list)
    exposed: list = field(default_factory=list)
    extra_hosts: list = field(default_factory=list)   # [name, ip] as given
    hosts_lines: list = field(default_factory=list)   # /etc/hosts lines they make
    dns: list = field(default_factory=list)
    dns_search: list = field(default_factory=list)
    dns_options: list = field(default_factory=list)
    publish_all: bool = False
    resolv: str | None = None                        # None: the network's default

    def address(self) -> str | None:
        """The address /etc/hosts gives the container's own name."""
        from .network import SLIRP_IP
        first = next(iter(self.networks.values()), None)
        return first["ip"] if first else (SLIRP_IP if self.mode == "slirp4netns" else None)

    def apply(self, cfg) -> None:
        """Record the plan in a new container's config."""
        cfg.networks, cfg.extra_hosts = self.networks, self.extra_hosts
        cfg.dns, cfg.exposed = self.dns, self.exposed
        cfg.dns_search, cfg.dns_options = self.dns_search, self.dns_options
        cfg.publish_all = self.publish_all


def host_address() -> str:
    """The host's main IPv4 address (a UDP connect sends nothing): what
    ``host-gateway`` means from a private network, where the host's
    loopback is out of reach."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))
        return s.getsockname()[0]
    return "127.0.0.1"


def exposed_ports(image_conf: dict, expose: list[str]) -> list[str]:
    """The image's ``ExposedPorts`` plus ``--expose`` (``80``, ``80/udp``,
    ``8000-8002``), as ``PORT/PROTO`` keys."""
    out = list((image_conf.get("ExposedPorts") or {}).keys())
    for spec in expose:
        body, _, proto = spec.partition("/")
        proto = proto or "tcp"
        lo, _, hi = body.partition("-")
        if proto not in ("tcp", "udp") or not lo.isdigit() or (hi and not hi.isdigit()):
            raise UsageError(f"invalid range format for --expose: {spec}")
        for p in range(int(lo), int(hi or lo) + 1):
            if not 0 < p <= 65535:
                raise UsageError(f"invalid range format for --expose: {spec}")
            if f"{p}/{proto}" not in out:
                out.append(f"{p}/{proto}")
    return out


def plan(root: Path, net: str, *, image_conf: dict, ports: list[list], publish_all: bool,
         expose: list[str], aliases: list[str], ip: str | None, add_host: list[str],
         dns: list[str], dns_search: list[str], dns_option: list[str],
         used_ips: dict[str, set[str]]) -> NetPlan:
    """Decide it all; ``used_ips``: network name -> addresses other
    containers hold. Bad input raises UsageError before anything is made."""
    from .network import free_port
    from .rootfs import resolv_text
    p = NetPlan(mode=net, ports=[list(x) for x in ports], dns=list(dns),
                dns_search=list(dns_search), dns_options=list(dns_option),
                publish_all=publish_all)
    netconf.check_dns(dns)
    user_net = netconf.is_user_network(net)
    if (aliases or ip) and not user_net:
        raise UsageError("network-scoped aliases and --ip are only supported for "
                         "user-defined networks")
    if user_net:
        rec = Networks(root).find(net)
        p.networks[rec.name] = {"ip": netconf.pick_ip(rec, used_ips.get(rec.name, set()), ip),
                                "aliases": list(aliases)}
    p.exposed = exposed_ports(image_conf, expose)
    if publish_all and (user_net or net in PRIVATE):
        taken = {(cp, proto) for _ip, _hp, cp, proto in p.ports}
        for key in p.exposed:
            port, _, proto = key.partition("/")
            if (int(port), proto) not in taken:
                p.ports.append(["0.0.0.0", free_port(), int(port), proto])
    gateway = "127.0.0.1" if net == "host" else host_address()
    for spec in add_host:
        p.extra_hosts.append(list(netconf.parse_add_host(spec)))
    p.hosts_lines = netconf.extra_hosts_lines(p.extra_hosts, gateway)
    if user_net:
        p.resolv = netconf.resolv_conf([rec.gateway], dns_search, dns_option)
    elif net.startswith("container:"):
        p.resolv = joined_resolv(root, net[len("container:"):])
    elif dns or dns_search or dns_option:
        try:
            host = Path("/etc/resolv.conf").read_text()
        except OSError:
            host = ""
        default = [line.split()[1] for line in resolv_text(net, host).splitlines()
                   if line.startswith("nameserver") and len(line.split()) > 1]
        p.resolv = netconf.resolv_conf(dns or default, dns_search, dns_option)
    return p


def joined_resolv(root: Path, cid: str) -> str:
    """The resolv.conf of a container on ``--network container:CID``: the
    servers the other container's network gives (Docker shares its file)."""
    from .container import Containers
    from .rootfs import resolv_text
    other = Containers(root).get(cid).config
    nets = [Networks(root).find(n) for n in other.networks or {} if Networks(root).exists(n)]
    if nets:
        return netconf.resolv_conf([nets[0].gateway], other.dns_search, other.dns_options)
    try:
        host = Path("/etc/resolv.conf").read_text()
    except OSError:
        host = ""
    return resolv_text(other.network, host)


def for_network(root: Path, net: str, plan: NetPlan | None) -> NetPlan | None:
    """``plan``, with the user network ``net``'s address and DNS filled in
    when its maker did not decide them (a build's RUN step on ``build
    --network NAME``); a network mode needs nothing."""
    if not netconf.is_user_network(net) or (plan is not None and plan.networks):
        return plan
    from .container import Containers
    rec = Networks(root).find(net)
    plan = plan or NetPlan(mode=net)
    used = used_addresses(Containers(root).all()).get(rec.name, set())
    plan.networks[rec.name] = {"ip": netconf.pick_ip(rec, used), "aliases": []}
    plan.resolv = netconf.resolv_conf([rec.gateway], [], [])
    return plan


def used_addresses(containers) -> dict[str, set[str]]:
    """network name -> the addresses containers (running or not) hold."""
    out: dict[str, set[str]] = {}
    for c in containers:
        for name, ep in (c.config.networks or {}).items():
            out.setdefault(name, set()).add(ep.get("ip", ""))
    return out
