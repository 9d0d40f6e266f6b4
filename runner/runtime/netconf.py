"""User-defined networks, the pure part: the network record, how a subnet
and a container's address are chosen, what ``/etc/hosts`` and
``/etc/resolv.conf`` say, the JSON netavark takes on its stdin and the
shapes Docker shows (``network inspect``, a container's
``NetworkSettings.Networks``). No I/O here: ``runner.runtime.networks`` stores the
records, ``runner.runtime.netns`` runs netavark with what this module writes.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field

from ..errors import UsageError

BUILTIN = ("host", "none", "slirp4netns", "pasta", "private", "bridge", "default")
"""Names that are network modes, not user networks (``bridge`` and
``default`` mean the default private network, as in Docker)."""

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
SLIRP_NET = ipaddress.ip_network("10.0.2.0/24")      # the holder's own egress net
POOL = ipaddress.ip_network("10.89.0.0/16")          # Podman's pool for named networks
IFACE_PREFIX = "dk"                                  # bridges: dk0, dk1, ...


@dataclass
class NetworkRecord:
    """One user network as ``network create`` made it."""

    name: str
    id: str
    subnet: str
    gateway: str
    interface: str
    driver: str = "bridge"
    internal: bool = False
    labels: dict = field(default_factory=dict)
    created: float = 0.0
    ip_range: str = ""                                # --ip-range: where addresses come from
    aux: dict = field(default_factory=dict)           # --aux-address: name -> reserved ip
    options: dict = field(default_factory=dict)       # -o: only the MTU (see OPTIONS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetworkRecord:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def is_user_network(mode: str | None) -> bool:
    """Whether ``mode`` names a user network rather than a network mode."""
    return bool(mode) and mode not in BUILTIN and not mode.startswith("container:")


def check_name(name: str) -> None:
    if not NAME_RE.match(name or ""):
        raise UsageError(f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] '
                         "are allowed")
    if name in BUILTIN:
        raise UsageError(f"{name} is a pre-defined network and cannot be created")


def parse_filters(items: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """``--filter KEY=VALUE`` flags: key -> values (one key's values are
    alternatives, as in Docker)."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f'invalid argument "{item}" for "-f, --filter" flag: bad format '
                             "of filter (expected name=value)")
        out.setdefault(key.strip().lower(), []).append(value.strip())
    return out


def parse_labels(labels: list[str]) -> dict[str, str]:
    out = {}
    for item in labels:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid label '{item}': empty name")
        out[key] = value
    return out


def _net(text: str, what: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise UsageError(f"invalid {what} {text}: not a CIDR (e.g. 10.90.0.0/24)") from None
    if net.version != 4:
        raise UsageError(f"invalid {what} {text}: only IPv4 subnets are supported")
    if net.prefixlen > 30:
        raise UsageError(f"invalid {what} {text}: too small (at most /30)")
    return net


def choose_subnet(subnet: str | None, gateway: str | None,
                  used: list[str]) -> tuple[str, str]:
    """(subnet, gateway): the user's, checked (no overlap with another
    network nor with the holder's 10.0.2.0/24 egress net), else the first
    free /24 of 10.89.0.0/16, with its first address as gateway (Podman's
    choice)."""
    taken = [ipaddress.ip_network(u) for u in used] + [SLIRP_NET]
    if subnet:
        net = _net(subnet, "subnet")
        for other in taken:
            if net.overlaps(other):
                raise UsageError(f"invalid subnet {net}: it overlaps with {other} "
                                 "(in use by another network)")
    elif gateway:
        raise UsageError("--gateway needs --subnet")
    else:
        net = next((n for n in POOL.subnets(new_prefix=24)
                    if not any(n.overlaps(o) for o in taken)), None)
        if net is None:
            raise UsageError("no free subnet left in 10.89.0.0/16: remove a network or "
                             "give --subnet")
    gw = host_in(gateway, net, "gateway") if gateway else net.network_address + 1
    return str(net), str(gw)


# the -o/--opt options a network honours: Docker's name -> netavark's
OPTIONS = {"com.docker.network.driver.mtu": "mtu"}


def check_ipam(net_text: str, ip_range: str | None, aux: dict[str, str],
               options: dict[str, str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """``--ip-range``, ``--aux-address`` and ``-o`` of a new network on
    ``net_text``, checked with Docker's words: the range and the reserved
    addresses must lie in the subnet; an option dockish cannot honour is
    refused rather than ignored."""
    net = ipaddress.ip_network(net_text)
    rng = ""
    if ip_range:
        r = _net(ip_range, "ip-range")
        if not r.subnet_of(net):
            raise UsageError(f"no matching subnet for range {ip_range}")
        rng = str(r)
    for ip in aux.values():
        try:
            if ipaddress.ip_address(ip) not in net:
                raise ValueError
        except ValueError:
            raise UsageError(f"no matching subnet for aux-address {ip}") from None
    for key, value in options.items():
        if key not in OPTIONS:
            raise UsageError(f"not supported by dockish: network option {key}")
        if key == "com.docker.network.driver.mtu" and not (value.isdigit() and
                                                            68 <= int(value) <= 65535):
            raise UsageError(f"invalid MTU {value}: a number from 68 to 65535")
    return rng, dict(aux), dict(options)


def host_in(text: str, net: ipaddress.IPv4Network, what: str) -> ipaddress.IPv4Address:
    """``text`` as a host address of ``net`` (not its network or broadcast
    address), else a UsageError naming ``what`` it was."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"invalid {what} {text}: not an IP address") from None
    if ip not in net or ip in (net.network_address, net.broadcast_address):
        raise UsageError(f"invalid {what} {text}: not a host address of {net}")
    return ip


def pick_ip(rec: NetworkRecord, used: set[str], wanted: str | None = None) -> str:
    """A container's address on ``rec``: ``wanted`` (``--ip``), checked,
    else the lowest host address that is neither the gateway nor used."""
    net = ipaddress.ip_network(rec.subnet)
    taken = {rec.gateway, *used, *rec.aux.values()}
    if wanted:
        ip = host_in(wanted, net, "IP address")
        if str(ip) in taken:
            raise UsageError(f"Address already in use: {wanted} on network {rec.name}")
        return str(ip)
    pool = ipaddress.ip_network(rec.ip_range) if rec.ip_range else net
    for ip in pool:             # Docker hands out a range's own first address too
        if str(ip) not in taken and ip not in (net.network_address, net.broadcast_address):
            return str(ip)
    raise UsageError(f"no free IP address left on network {rec.name} ({net})")


def next_interface(used: list[str]) -> str:
    """The first free bridge name dkN."""
    n = 0
    while f"{IFACE_PREFIX}{n}" in used:
        n += 1
    return f"{IFACE_PREFIX}{n}"


# ------------------------------------------------------------------ a container's files

def parse_add_host(spec: str) -> tuple[str, str]:
    """``--add-host name:ip`` (Docker also takes ``name=ip``); ``ip`` may be
    ``host-gateway``."""
    sep = "=" if "=" in spec else ":"
    name, _, ip = spec.partition(sep)
    if not name or not ip:
        raise UsageError(f"invalid argument \"{spec}\" for \"--add-host\" flag: bad format "
                         f"for add-host: \"{spec}\"")
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            raise UsageError(f"invalid argument \"{spec}\" for \"--add-host\" flag: invalid "
                             f"IP address in add-host: \"{ip}\"") from None
    return name, ip.strip("[]")


def extra_hosts_lines(hosts: list[list[str]] | list[tuple[str, str]],
                      host_gateway: str) -> list[str]:
    """``/etc/hosts`` lines of ``--add-host`` (``host-gateway`` resolved)."""
    return [f"{host_gateway if ip == 'host-gateway' else ip}\t{name}" for name, ip in hosts]


def resolv_conf(nameservers: list[str], search: list[str], options: list[str]) -> str:
    lines = [f"nameserver {s}" for s in nameservers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n" if lines else ""


def check_dns(servers: list[str]) -> None:
    for s in servers:
        try:
            ipaddress.ip_address(s)
        except ValueError:
            raise UsageError(f"{s} is not an ip address") from None


# ------------------------------------------------------------------ netavark

def container_aliases(name: str, cid: str, aliases: list[str]) -> list[str]:
    """The names a container answers to on a network: its name, its
    ``--network-alias``es and its short id (Docker's embedded DNS resolves
    those; its inspect lists them in this order as ``DNSNames``)."""
    out = []
    for a in [name, *aliases, cid[:12]]:
        if a and a not in out:
            out.append(a)
    return out


def netavark_input(cid: str, name: str, rec: NetworkRecord, ip: str, aliases: list[str],
                   iface: str, ports: list[list], dns_servers: list[str],
                   mac: str = "") -> dict:
    """The network options netavark's ``setup``/``teardown`` read on stdin
    (netavark's ``types::NetworkOptions``), for one container on one
    network; ``ports`` are [host ip, host port, container port, proto]."""
    return {
        "container_id": cid,
        "container_name": name,
        "networks": {rec.name: {"interface_name": iface, "static_ips": [ip],
                                "aliases": container_aliases(name, cid, aliases),
                                **({"static_mac": mac} if mac else {})}},
        "network_info": {rec.name: network_info(rec)},
        "port_mappings": [{"host_ip": "", "container_port": int(cp), "host_port": int(hp),
                           "range": 1, "protocol": proto} for _ip, hp, cp, proto in ports],
        "dns_servers": list(dns_servers) or None,
    }


def network_info(rec: NetworkRecord) -> dict:
    """A network as netavark (and Podman's network config) describes it."""
    return {"name": rec.name, "id": rec.id, "driver": rec.driver,
            "network_interface": rec.interface,
            "subnets": [{"subnet": rec.subnet, "gateway": rec.gateway}],
            "ipv6_enabled": False, "internal": rec.internal, "dns_enabled": True,
            # Docker's rule: a network's containers cannot reach another's
            # (netavark's NETAVARK_ISOLATION chains)
            "options": {"isolate": "true", **{OPTIONS[k]: v for k, v in rec.options.items()
                                              if k in OPTIONS}},
            "ipam_options": {"driver": "host-local"}}


GUARD_CHAIN = "DOCKISH_INPUT"


def dns_guard(infos: list[dict], jump: bool) -> str:
    """``iptables-restore --noflush`` input that lets each network's
    gateway (where aardvark-dns answers) be reached only from its own
    bridge. Docker's embedded DNS answers a container about its own
    networks only; aardvark-dns serves every bridge from the one shared
    namespace, whose INPUT accepts anything, so without this a container
    could ask another network's gateway for the names and addresses of
    the containers on it. ``infos`` are netavark's ``network_info``
    records of the networks in use; declaring the chain flushes it, so
    the whole set is rewritten each time; ``jump`` also hooks the chain
    into INPUT (once per namespace)."""
    lines = ["*filter", f":{GUARD_CHAIN} - [0:0]"]
    seen = set()
    for info in infos:
        iface = info["network_interface"]
        for sub in info.get("subnets") or []:
            rule = f"-A {GUARD_CHAIN} -d {sub['gateway']}/32 ! -i {iface} -j DROP"
            if rule not in seen:
                seen.add(rule)
                lines.append(rule)
    if jump:
        lines.append(f"-I INPUT -j {GUARD_CHAIN}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def setup_macs(output: dict) -> dict[str, str]:
    """network name -> the container's MAC, from netavark setup's reply."""
    out = {}
    for net, status in (output or {}).items():
        for iface in (status.get("interfaces") or {}).values():
            out[net] = iface.get("mac_address", "")
    return out


# ------------------------------------------------------------------ Docker's shapes

def inspect_network(rec: NetworkRecord, members: list[dict]) -> dict:
    """``docker network inspect``'s record; ``members`` are dicts with
    id, name, ip, mac of the containers on it."""
    from ..format import rfc3339
    prefix = ipaddress.ip_network(rec.subnet).prefixlen if rec.subnet else 0
    return {
        "Name": rec.name, "Id": rec.id, "Created": rfc3339(rec.created),
        "Scope": "local", "Driver": rec.driver, "EnableIPv6": False,
        "EnableIPv4": rec.driver == "bridge",     # API 1.48+: ls' IPV4 column
        "IPAM": {"Driver": "default", "Options": {},
                 "Config": [ipam_config(rec)] if rec.subnet else []},   # none: pre-defined
        "Internal": rec.internal, "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": {m["id"]: {"Name": m["name"], "EndpointID": "",
                                 "MacAddress": m.get("mac", ""),
                                 "IPv4Address": f"{m['ip']}/{prefix}", "IPv6Address": ""}
                       for m in members},
        "Options": dict(rec.options),
        "Labels": dict(rec.labels),
    }


def ipam_config(rec: NetworkRecord) -> dict:
    """A network's ``IPAM.Config`` entry (Docker leaves out what is unset)."""
    out = {"Subnet": rec.subnet, "Gateway": rec.gateway}
    if rec.ip_range:
        out["IPRange"] = rec.ip_range
    if rec.aux:
        out["AuxiliaryAddresses"] = dict(rec.aux)
    return out


def endpoint(rec: NetworkRecord, ip: str, aliases: list[str], mac: str = "",
             dns_names: list[str] | None = None) -> dict:
    """One entry of a container's ``NetworkSettings.Networks``, as API 1.45+
    shows it: ``Aliases`` exactly the aliases asked for, every name the
    container answers to in ``DNSNames`` (``container_aliases``; None
    while it is not running, as its address)."""
    return {"IPAMConfig": None, "Links": None, "Aliases": list(aliases) or None,
            "MacAddress": mac, "NetworkID": rec.id, "EndpointID": "",
            "Gateway": rec.gateway, "IPAddress": ip,
            "IPPrefixLen": ipaddress.ip_network(rec.subnet).prefixlen,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DriverOpts": None, "DNSNames": list(dns_names) if dns_names else None}


def ls_row(rec: NetworkRecord) -> dict:
    """One ``network ls`` row with Docker's field names."""
    from ..format import go_time
    return {"ID": rec.id[:12], "Name": rec.name, "Driver": rec.driver, "Scope": "local",
            "IPv4": str(rec.driver == "bridge").lower(),
            "IPv6": "false", "Internal": str(rec.internal).lower(),
            "CreatedAt": go_time(rec.created),
            "Labels": ",".join(f"{k}={v}" for k, v in rec.labels.items())}
