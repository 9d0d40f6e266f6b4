"""``/networks/...``: Docker's network endpoints over the engine's network
operations (list, inspect, create, delete, prune, connect, disconnect), and
the networking fields of a container create request (``NetworkingConfig``,
``ExtraHosts``, ``Dns*``, ``PublishAllPorts``, ``ExposedPorts``) as
``CreateOptions`` fields, so docker-compose's project networks work."""
from __future__ import annotations

from ..engine import Engine
from .errors import ApiError
from .server import NO_CONTENT, Reply, Request, Routes, blocking, version_tuple


def _filters(raw: dict) -> dict[str, list[str]]:
    """The API's filters in either of Docker's shapes ({k: [v]} or
    {k: {v: true}}) as key -> values."""
    out: dict[str, list[str]] = {}
    for key, values in (raw or {}).items():
        if isinstance(values, dict):
            values = [v for v, on in values.items() if on]
        elif isinstance(values, str):
            values = [values]
        out[key] = [str(v) for v in values]
    return out


class NetworkApi:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, r: Routes) -> None:
        a = r.add
        a("GET", "/networks", self.list)
        a("POST", "/networks/create", self.create)
        a("POST", "/networks/prune", self.prune)
        a("GET", "/networks/{id}", self.inspect)
        a("DELETE", "/networks/{id}", self.delete)
        a("POST", "/networks/{id}/connect", self.connect)
        a("POST", "/networks/{id}/disconnect", self.disconnect)

    async def list(self, req: Request):
        filters = _filters(req.json_arg("filters"))

        def run() -> list[dict]:
            return [self.engine.network_inspect(r.id if r.subnet else r.name)
                    for r in self.engine.network_list(filters)]
        return Reply(200, await blocking(run))

    async def inspect(self, req: Request):
        return Reply(200, await blocking(self.engine.network_inspect, req.params["id"]))

    async def create(self, req: Request):
        body = await req.json()
        name = body.get("Name")
        if not name or not isinstance(name, str):
            raise ApiError(400, "Name is required")
        if body.get("EnableIPv6"):
            raise ApiError(400, "not supported by dockish: EnableIPv6")
        configs = ((body.get("IPAM") or {}).get("Config") or [{}])
        if len(configs) > 1:
            raise ApiError(400, "not supported by dockish: more than one IPAM config")
        cfg = configs[0] or {}
        labels = body.get("Labels") or {}
        aux = cfg.get("AuxiliaryAddresses") or {}
        options = body.get("Options") or {}
        if not all(isinstance(x, dict) for x in (labels, aux, options)):
            raise ApiError(400, "Labels, Options and AuxiliaryAddresses must be objects of "
                           "strings")
        rec = await blocking(self.engine.network_create, name, cfg.get("Subnet") or None,
                             cfg.get("Gateway") or None, bool(body.get("Internal")),
                             {str(k): str(v) for k, v in labels.items()},
                             body.get("Driver") or "bridge", cfg.get("IPRange") or None,
                             {str(k): str(v) for k, v in aux.items()},
                             {str(k): str(v) for k, v in options.items()})
        return Reply(201, {"Id": rec.id, "Warning": ""})

    async def delete(self, req: Request):
        await blocking(self.engine.network_remove, req.params["id"])
        return NO_CONTENT

    async def prune(self, req: Request):
        gone = await blocking(self.engine.network_prune, _filters(req.json_arg("filters")))
        return Reply(200, {"NetworksDeleted": gone})

    async def connect(self, req: Request):
        body = await req.json()
        ep = body.get("EndpointConfig") or {}
        ip = (ep.get("IPAMConfig") or {}).get("IPv4Address") or None
        ctr = body.get("Container") or ""
        net = await blocking(self.engine.network_inspect, req.params["id"])
        await blocking(self.engine.network_connect, net["Name"], ctr,
                       list(ep.get("Aliases") or []), ip)
        return Reply(200, b"")

    async def disconnect(self, req: Request):
        body = await req.json()
        net = await blocking(self.engine.network_inspect, req.params["id"])
        await blocking(self.engine.network_disconnect, net["Name"], body.get("Container") or "")
        return Reply(200, b"")


def create_fields(body: dict, hc: dict, network: str | None) -> dict:
    """A create request's networking fields as CreateOptions keywords: the
    primary network's aliases and address (``NetworkingConfig``),
    ``ExtraHosts``, ``Dns``, ``DnsSearch``, ``DnsOptions``,
    ``PublishAllPorts`` and ``ExposedPorts``."""
    from ..runtime.netconf import is_user_network
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not is_user_network(network):
        if len(endpoints) > 1:
            raise ApiError(400, "Container cannot be connected to network endpoints: "
                           + ", ".join(endpoints))
        endpoints = {}          # the default network: Docker's aliases mean nothing there
    ep = endpoints.get(network or "", {}) or (next(iter(endpoints.values()))
                                              if len(endpoints) == 1 else {}) or {}
    expose = [k for k in (body.get("ExposedPorts") or {})]
    return {"network_aliases": list(ep.get("Aliases") or []),
            "ip": (ep.get("IPAMConfig") or {}).get("IPv4Address") or None,
            "add_host": list(hc.get("ExtraHosts") or []), "dns": list(hc.get("Dns") or []),
            "dns_search": list(hc.get("DnsSearch") or []),
            "dns_option": list(hc.get("DnsOptions") or []),
            "publish_all": bool(hc.get("PublishAllPorts")), "expose": expose}


def check_networks(engine: Engine, body: dict, network: str | None) -> None:
    """Every user network a create request names must exist (and the
    container a ``container:NAME`` mode names). Docker finds a missing one
    only at start (its 404 there); here create would fail, and a 404 from
    create makes the docker CLI pull the image and try again (``Unable to
    find image``), so it is a 400 with Docker's words."""
    from ..errors import DockishError, NotFoundError
    from ..runtime.netconf import is_user_network
    if network and network.startswith("container:"):       # --network container:NAME
        try:
            engine.get(network[len("container:"):])
        except DockishError as e:
            raise ApiError(400, str(e)) from None
        return
    if not is_user_network(network):
        return
    for name in [network, *[n for n, _a, _ip in extra_endpoints(body, network)]]:
        try:
            engine.network_inspect(name)
        except NotFoundError as e:
            raise ApiError(400, str(e)) from None


def extra_endpoints(body: dict, network: str | None) -> list[tuple[str, list, str | None]]:
    """The user networks a create request names besides its primary one
    (``docker run --network a --network b``: API 1.44+ sends them all in
    ``NetworkingConfig``), as (name, aliases, address) for ``network
    connect`` right after create, as Docker connects them before start."""
    from ..runtime.netconf import is_user_network
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not is_user_network(network) or len(endpoints) < 2:
        return []
    return [(name, list((ep or {}).get("Aliases") or []),
             ((ep or {}).get("IPAMConfig") or {}).get("IPv4Address") or None)
            for name, ep in endpoints.items() if name != network]


def legacy_aliases(settings: dict, api_version: str, cid: str) -> dict:
    """A container inspect's ``NetworkSettings`` for a client older than
    API 1.45, which Docker still answers with the short id among a user
    network endpoint's ``Aliases`` (1.45 moved it to ``DNSNames``).
    docker-compose v1 (API 1.27 for its 2.x files) keeps an endpoint only
    when it finds the short id there; otherwise it disconnects the
    container from its network and connects it again."""
    from ..runtime.netconf import is_user_network
    if version_tuple(api_version) >= (1, 45):
        return settings
    for name, ep in (settings.get("Networks") or {}).items():
        aliases = list(ep.get("Aliases") or [])
        if is_user_network(name) and cid[:12] not in aliases:
            ep["Aliases"] = aliases + [cid[:12]]
    return settings
