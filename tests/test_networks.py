"""User-defined networks, as a user sees them: ``network create``, containers
that reach each other by name, alias, short id and IP through a real
bridge in the user's shared network namespace (netavark + aardvark-dns),
isolation between networks, ``--internal``, ``-P``/``port``,
``--add-host``, and nothing left behind (holder, slirp4netns, aardvark-dns)
after the last container goes or when the holder is killed."""
from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from runner.runtime.netplan import host_address

from .runbed import dockish, no_leftovers, ok  # noqa: F401 - a fixture
from .test_api import service  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("no_leftovers")

HTTPD = "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"


def _state() -> Path:
    from unionfs.mounts import runtime_dir
    return runtime_dir() / "net"


def _holder() -> dict:
    try:
        return json.loads((_state() / "holder.json").read_text())
    except FileNotFoundError:
        return {}


def _alive(pid: int | None) -> bool:
    return bool(pid) and Path(f"/proc/{pid}").exists() and \
        b"Z" not in Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1][:3]


def _aardvark_pids() -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if d.stat().st_uid == os.getuid() and \
                        b"aardvark-dns" in (d / "cmdline").read_bytes() and _alive(int(d.name)):
                    out.append(int(d.name))
    return out


def _gone(pids: list[int], seconds: float = 10) -> bool:
    end = time.monotonic() + seconds
    while any(_alive(p) for p in pids):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def _fetch(net: str, host: str, bb: str, timeout: int = 5, port: int = 80):
    """An HTTP GET from a new container on ``net`` (busybox ``nc``: the
    image's static wget crashes in glibc's service lookup); the body, or
    a failed process."""
    res = dockish("run", "--rm", "--network", net, bb, "sh", "-c",
                  f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w {timeout} {host} {port}",
                  timeout=120)
    head, _, body = res.stdout.partition("\n\n")      # text mode: \r\n read as \n
    ok_ = res.returncode == 0 and head.startswith("HTTP/1.") and " 200 " in head.split("\n")[0]
    res.returncode = 0 if ok_ else (res.returncode or 1)
    res.stdout = body
    return res


@contextlib.contextmanager
def _host_http(addr: str):
    """A web server on the host at ``addr`` that answers "from-host";
    yields its port."""
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self):        # noqa: N802 - the stdlib's name
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"from-host")

        def log_message(self, *a):
            pass
    srv = http.server.ThreadingHTTPServer((addr, 0), Hello)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()


@pytest.fixture
def nets(dockish_root):
    made: list[str] = []

    def make(*args: str) -> str:
        out = ok("network", "create", *args).strip()
        made.append(args[-1])
        return out
    yield make
    ids = dockish("ps", "-a", "-q", "--no-trunc").stdout.split()
    if ids:
        dockish("rm", "-f", *ids)
    for n in made:
        dockish("network", "rm", n)


def test_containers_on_a_network_reach_each_other_by_name_alias_id_and_ip(bb, nets):
    netid = nets("front")
    assert len(netid) == 64 and int(netid, 16) >= 0
    nets("back")
    cid = ok("run", "-d", "--name", "web", "--network", "front", "--network-alias", "www",
             bb, "sh", "-c", HTTPD).strip()
    ip = ok("inspect", "-f", '{{(index .NetworkSettings.Networks "front").IPAddress}}',
            "web").strip()
    assert ip.startswith("10.89."), ip
    holder = _holder()
    assert _alive(holder["holder_pid"]) and _alive(holder["slirp_pid"])
    for host in ("web", "www", cid[:12], ip):
        res = _fetch("front", host, bb)
        assert res.returncode == 0 and res.stdout.strip() == f"hello-{cid[:12]}", (host, res)
    # another network neither resolves it nor routes to it
    res = _fetch("back", "web", bb, timeout=2)
    assert res.returncode != 0 and "hello" not in res.stdout
    res = _fetch("back", ip, bb, timeout=2)
    assert res.returncode != 0 and "hello" not in res.stdout
    # inspect and network inspect show it as Docker does
    rec = json.loads(ok("network", "inspect", "front"))[0]
    assert rec["Name"] == "front" and rec["Driver"] == "bridge"
    assert rec["Containers"][cid]["Name"] == "web"
    assert rec["Containers"][cid]["IPv4Address"] == f"{ip}/24"
    assert "front" in ok("network", "ls", "--format", "{{.Name}}").split()
    res = dockish("network", "rm", "front")
    assert res.returncode == 1 and "has active endpoints" in res.stderr
    aardvark = _aardvark_pids()
    assert aardvark, "aardvark-dns should serve the network"
    ok("rm", "-f", "web")
    # the last container is gone: so are the holder, slirp4netns, aardvark-dns
    assert _gone([holder["holder_pid"], holder["slirp_pid"], *aardvark])
    assert not (_state() / "holder.json").exists()
    assert not list((_state() / "attach").iterdir())


def test_internal_network_has_no_way_out(bb, nets):
    nets("outside")
    nets("--internal", "inside")
    addr = host_address()
    with _host_http(addr) as port:
        res = _fetch("outside", addr, bb, port=port)
        assert res.returncode == 0 and res.stdout == "from-host", res
        res = _fetch("inside", addr, bb, timeout=2, port=port)
        assert res.returncode != 0 and "from-host" not in res.stdout
        routes = ok("run", "--rm", "--network", "inside", bb, "ip", "route")
        assert "default" not in routes and "10.89." in routes


# what another local user tries against the networks' state, holder and servers;
# one line per attempt: "WHAT denied" or "WHAT REACHED" (the container's page, or
# a DNS answer with its address: the host's own network may answer anything)
PROBE = """
import os, socket, sys
state, holder, ip, gw = sys.argv[1:5]
def attempt(what, fn):
    try:
        fn()
        print(what, "REACHED")
    except OSError:
        print(what, "denied")
attempt("state", lambda: os.listdir(state))
attempt("netns", lambda: os.close(os.open(f"/proc/{holder}/ns/net", os.O_RDONLY)))
attempt("userns", lambda: os.close(os.open(f"/proc/{holder}/ns/user", os.O_RDONLY)))
def web():
    with socket.create_connection((ip, 80), timeout=2) as s:
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        got = b""
        while chunk := s.recv(1000):
            got += chunk
        if b"hello-" not in got:
            raise OSError("not the container")
attempt("web", web)
def dns():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        q = bytes.fromhex("123401000001000000000000") + b"\\x05inner" + \\
            bytes.fromhex("0000010001")
        s.sendto(q, (gw, 53))
        if socket.inet_aton(ip) not in s.recv(512):
            raise OSError("not its address")
attempt("dns", dns)
"""


def test_host_loopback_and_another_user_stay_out(bb, nets, other_user):
    """A container on a user network reaches the host at its address (as
    rootless Docker's), never the host's loopback through slirp4netns'
    10.0.2.2 (--disable-host-loopback, the default of rootless Docker and
    Podman); another local user can neither read the networks' state, nor
    open the holder's namespaces, nor reach a container or its DNS server."""
    nets("walled")
    with _host_http("0.0.0.0") as port:        # the host's loopback included
        res = _fetch("walled", host_address(), bb, port=port)
        assert res.returncode == 0 and res.stdout == "from-host", res
        res = _fetch("walled", "10.0.2.2", bb, timeout=2, port=port)
        assert res.returncode != 0 and "from-host" not in res.stdout, res
    ok("run", "-d", "--name", "inner", "--network", "walled", bb, "sh", "-c", HTTPD)
    ip = ok("inspect", "-f", '{{(index .NetworkSettings.Networks "walled").IPAddress}}',
            "inner").strip()
    gw = ok("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            "walled").strip()
    assert "hello-" in _fetch("walled", "inner", bb).stdout
    res = other_user.run(["/usr/bin/python3", "-c", PROBE, str(_state()),
                          str(_holder()["holder_pid"]), ip, gw])
    assert res.returncode == 0, res
    assert res.stdout.splitlines() == [f"{w} denied" for w in
                                       ("state", "netns", "userns", "web", "dns")], res.stdout


def test_publish_all_publishes_exposed_port_and_port_reports_it(bb, nets):
    nets("pubnet")
    ok("create", "--name", "base", "--network", "none", bb, "true")
    ok("commit", "--change", "EXPOSE 80", "base", "web-exposed:1")
    ok("run", "-d", "--name", "pub", "--network", "pubnet", "-P", "web-exposed:1",
       "sh", "-c", HTTPD)
    line = ok("port", "pub").strip()
    assert line.startswith("80/tcp -> 0.0.0.0:"), line
    port = int(line.rsplit(":", 1)[1])
    assert f"0.0.0.0:{port}->80/tcp" in ok("ps", "--format", "{{.Ports}}")
    import urllib.request
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                assert r.read().decode().startswith("hello-")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    exposed = json.loads(ok("inspect", "pub"))[0]["NetworkSettings"]["Ports"]
    assert exposed["80/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": str(port)}]


def test_add_host_and_dns_flags_land_in_the_container_files(bb, nets):
    out = ok("run", "--rm", "--network", "none", "--add-host", "db:10.1.2.3",
             "--add-host", "gw:host-gateway", bb, "cat", "/etc/hosts")
    assert "10.1.2.3\tdb" in out.splitlines()
    assert any(line.endswith("\tgw") for line in out.splitlines())
    nets("dnsnet")
    out = ok("run", "--rm", "--network", "dnsnet", "--dns-search", "example.test",
             "--dns-option", "ndots:2", bb, "cat", "/etc/resolv.conf")
    gw = json.loads(ok("network", "inspect", "dnsnet"))[0]["IPAM"]["Config"][0]["Gateway"]
    assert out.splitlines() == [f"nameserver {gw}", "search example.test", "options ndots:2"]
    # inspect's HostConfig has them as given (docker inspect -f '{{.HostConfig.Dns}}' ...)
    ok("create", "--name", "flags", "--network", "dnsnet", "--add-host", "gw:host-gateway",
       "--dns", "10.0.2.3", "--dns-search", "example.test", "--dns-option", "ndots:2", "-P",
       bb, "true")
    hc = json.loads(ok("inspect", "flags"))[0]["HostConfig"]
    assert (hc["ExtraHosts"], hc["Dns"], hc["DnsSearch"], hc["DnsOptions"],
            hc["PublishAllPorts"]) == (["gw:host-gateway"], ["10.0.2.3"], ["example.test"],
                                       ["ndots:2"], True), hc
    hc = json.loads(ok("inspect", ok("create", "--network", "none", bb, "true").strip()))[0][
        "HostConfig"]
    assert (hc["ExtraHosts"], hc["Dns"], hc["DnsSearch"], hc["DnsOptions"],
            hc["PublishAllPorts"]) == (None, [], [], [], False), hc
    res = dockish("run", "--rm", "--add-host", "bad", bb, "true")
    assert res.returncode == 125 and "bad format for add-host" in res.stderr


def test_a_killed_holder_is_cleaned_up_by_the_next_command(bb, nets):
    nets("killnet")
    ok("run", "-d", "--name", "k1", "--network", "killnet", bb, "sleep", "300")
    holder = _holder()
    aardvark = _aardvark_pids()
    assert _alive(holder["holder_pid"]) and aardvark
    os.kill(holder["holder_pid"], signal.SIGKILL)
    ok("network", "ls")
    assert _gone([holder["holder_pid"], holder["slirp_pid"], *aardvark])
    assert not (_state() / "holder.json").exists()
    ok("rm", "-f", "k1")
    # and a new container gets a new holder that works
    ok("run", "-d", "--name", "k2", "--network", "killnet", bb, "sh", "-c", HTTPD)
    res = _fetch("killnet", "k2", bb)
    assert res.returncode == 0 and res.stdout.startswith("hello-"), res


def test_network_commands_refuse_bad_input_with_one_line(bb, nets):
    res = dockish("network", "create", "--subnet", "nope", "x1")
    assert res.returncode == 125 and res.stderr.count("\n") == 1 and "invalid subnet" in \
        res.stderr
    nets("--subnet", "10.99.0.0/24", "--gateway", "10.99.0.254", "dup")
    out = ok("run", "--rm", "--network", "dup", "--ip", "10.99.0.50", bb, "ip", "-4", "addr")
    assert "inet 10.99.0.50/24" in out, out
    assert ok("run", "--rm", "--network", "dup", bb, "ip", "route").startswith(
        "default via 10.99.0.254"), "the gateway given"
    res = dockish("run", "--rm", "--network", "dup", "--ip", "10.98.0.5", bb, "true")
    assert res.returncode == 125 and "not a host address of 10.99.0.0/24" in res.stderr
    res = dockish("network", "create", "dup")
    assert res.returncode == 1 and "already exists" in res.stderr
    res = dockish("network", "create", "--subnet", "10.99.0.0/16", "overlap")
    assert res.returncode == 125 and "overlaps" in res.stderr
    res = dockish("network", "inspect", "nosuch")
    assert res.returncode == 1 and "network nosuch not found" in res.stderr
    assert "overlap" not in ok("network", "ls", "-q", "--format", "{{.Name}}")
    ok("network", "create", "gone")
    ok("create", "--name", "orphan", "--network", "gone", bb, "true")
    ok("network", "rm", "gone")
    res = dockish("start", "orphan")
    assert res.returncode != 0 and "network gone not found" in res.stderr, res
    assert ok("ps", "-q") == "" and not (_state() / "holder.json").exists()
    assert json.loads(ok("network", "inspect", "bridge"))[0]["Driver"] == "bridge"
    res = dockish("network", "rm", "host")
    assert res.returncode == 1 and "pre-defined network" in res.stderr
    res = dockish("run", "--rm", "--network", "nosuch", bb, "true")
    assert res.returncode == 125 and "network nosuch not found" in res.stderr
    assert ok("ps", "-a", "--format", "{{.Names}}").split() == ["orphan"]


def test_ip_range_aux_addresses_and_mtu_as_docker_applies_them(bb, nets):
    """``--ip-range`` is where containers' addresses come from (its first
    address included), an ``--aux-address`` is never handed out, ``-o
    com.docker.network.driver.mtu`` is the containers' MTU; options dockish
    cannot honour are refused, not ignored."""
    nets("--subnet", "10.97.0.0/24", "--ip-range", "10.97.0.128/25", "--aux-address",
         "router=10.97.0.128", "-o", "com.docker.network.driver.mtu=1400", "ranged")
    out = ok("run", "--rm", "--network", "ranged", bb, "ip", "addr", "show", "eth0")
    assert "mtu 1400" in out and "inet 10.97.0.129/24" in out, out
    res = dockish("run", "--rm", "--network", "ranged", "--ip", "10.97.0.128", bb, "true")
    assert res.returncode == 125 and "Address already in use" in res.stderr, res
    rec = json.loads(ok("network", "inspect", "ranged"))[0]
    assert rec["IPAM"]["Config"] == [{"Subnet": "10.97.0.0/24", "Gateway": "10.97.0.1",
                                      "IPRange": "10.97.0.128/25",
                                      "AuxiliaryAddresses": {"router": "10.97.0.128"}}]
    assert rec["Options"] == {"com.docker.network.driver.mtu": "1400"}
    for args, words in ((("--subnet", "10.96.0.0/24", "--ip-range", "10.95.0.0/25"),
                         "no matching subnet for range 10.95.0.0/25"),
                        (("--subnet", "10.96.0.0/24", "--aux-address", "a=10.95.0.1"),
                         "no matching subnet for aux-address 10.95.0.1"),
                        (("-o", "com.docker.network.bridge.name=br0"),
                         "not supported by dockish: network option "
                         "com.docker.network.bridge.name")):
        res = dockish("network", "create", *args, "refused")
        assert res.returncode == 125 and words in res.stderr and \
            res.stderr.count("\n") == 1, res
    assert "refused" not in ok("network", "ls", "--format", "{{.Name}}").split()


def test_network_container_shares_another_containers_network(bb, nets):
    """``--network container:NAME`` (a sidecar): the other container's
    interfaces, address, loopback and DNS, on a user network and on the
    default one; what cannot go with it is refused in Docker's words."""
    nets("sidenet")
    cid = ok("run", "-d", "--name", "main", "--network", "sidenet", bb, "sh", "-c",
             HTTPD).strip()
    ip = ok("inspect", "-f", '{{(index .NetworkSettings.Networks "sidenet").IPAddress}}',
            "main").strip()
    gw = ok("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            "sidenet").strip()
    get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 80"
    out = ok("run", "--rm", "--network", "container:main", bb, "sh", "-c",
             f"ip -4 -o addr; {get}; cat /etc/resolv.conf")
    assert f"inet {ip}/24" in out and f"hello-{cid[:12]}" in out, out
    assert f"nameserver {gw}" in out.splitlines(), out
    other = ok("run", "-d", "--name", "plain", bb, "sh", "-c", HTTPD).strip()
    out = ok("run", "--rm", "--network", f"container:{other[:12]}", bb, "sh", "-c", get)
    assert f"hello-{other[:12]}" in out, out
    ok("create", "--name", "idle", bb, "true")
    for args, words in ((("container:main", "-p", "8080:80"), "conflicting options: port "
                         "publishing and the container type network mode"),
                        (("container:idle",), "cannot join network of a non running "
                         "container"),
                        (("container:nosuch",), "No such container: nosuch")):
        res = dockish("run", "--rm", "--network", *args, bb, "true")
        # the CLI's rule: a missing container is the daemon's 404 line, exit 1
        assert res.returncode == (1 if "nosuch" in args[0] else 125) and \
            words in res.stderr and res.stderr.count("\n") == 1, res
    assert sorted(ok("ps", "-a", "--format", "{{.Names}}").split()) == ["idle", "main",
                                                                        "plain"]


def test_containers_created_at_once_get_their_own_addresses_and_names(bb, nets):
    """Compose creates the services of a project side by side: each
    container on a network gets an address of its own (two with one address
    answer each other's connections at random: "refused"), and of several
    creates of one name exactly one wins, the others fail as Docker's do."""
    from concurrent.futures import ThreadPoolExecutor
    nets("crowd")
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda i: dockish("run", "-d", "--name", f"c{i}", "--network",
                                                "crowd", bb, "sleep", "60"), range(8)))
        assert [r.returncode for r in made] == [0] * 8, [r.stderr for r in made]
        ips = [ok("inspect", "-f", '{{(index .NetworkSettings.Networks "crowd").IPAddress}}',
                  f"c{i}").strip() for i in range(8)]
        assert len(set(ips)) == 8, ips
        twins = list(pool.map(lambda i: dockish("create", "--name", "twin", bb, "true"),
                              range(4)))
    assert sorted(r.returncode for r in twins) == [0, 125, 125, 125], \
        [r.stderr for r in twins]
    assert all("is already in use by container" in r.stderr for r in twins if r.returncode)
    assert ok("ps", "-a", "-q", "--filter", "name=^twin$").count("\n") == 1


def test_networks_created_at_once_get_their_own_subnets_and_names(dockish_root):
    """``compose up`` of several projects at once creates their networks
    side by side: each gets a subnet (and a bridge) of its own, and of
    several creates of one name exactly one wins."""
    from concurrent.futures import ThreadPoolExecutor
    names = [f"side{i}" for i in range(6)]
    try:
        with ThreadPoolExecutor(6) as pool:
            made = list(pool.map(lambda n: dockish("network", "create", n), names))
            assert [r.returncode for r in made] == [0] * 6, [r.stderr for r in made]
            twins = list(pool.map(lambda _: dockish("network", "create", "twinnet"), range(3)))
        assert sorted(r.returncode for r in twins) == [0, 1, 1], [r.stderr for r in twins]
        assert all("already exists" in r.stderr for r in twins if r.returncode)
        recs = [json.loads(ok("network", "inspect", n))[0] for n in [*names, "twinnet"]]
        subnets = [r["IPAM"]["Config"][0]["Subnet"] for r in recs]
        assert len(set(subnets)) == 7, subnets
        assert len({r["Id"] for r in recs}) == 7
    finally:
        for n in [*names, "twinnet"]:
            dockish("network", "rm", n)


def test_connect_and_disconnect_a_running_container(bb, nets):
    nets("conn-a")
    nets("conn-b")
    ok("run", "-d", "--name", "srv", "--network", "conn-b", bb, "sh", "-c", HTTPD)
    ok("run", "-d", "--name", "cli", "--network", "conn-a", bb, "sleep", "300")
    get = ("sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 srv 80")
    assert "hello-" not in dockish("exec", "cli", *get).stdout
    ok("network", "connect", "--alias", "c2", "conn-b", "cli")
    nets_ = json.loads(ok("inspect", "cli"))[0]["NetworkSettings"]["Networks"]
    assert set(nets_) == {"conn-a", "conn-b"} and "c2" in nets_["conn-b"]["Aliases"]
    assert nets_["conn-b"]["IPAddress"].startswith("10.89.")
    assert "hello-" in ok("exec", "cli", *get)
    res = dockish("network", "connect", "conn-b", "cli")
    assert res.returncode == 1 and "already exists in network" in res.stderr
    ok("network", "disconnect", "conn-b", "cli")
    assert "hello-" not in dockish("exec", "cli", *get).stdout
    assert set(json.loads(ok("inspect", "cli"))[0]["NetworkSettings"]["Networks"]) == \
        {"conn-a"}


def test_a_network_dns_server_answers_only_containers_on_that_network(bb, nets):
    """Docker's embedded DNS tells a container only about its own networks:
    a container on another network that asks this network's server (at
    its gateway) directly learns nothing, until it is connected to it, and
    nothing again once disconnected."""
    nets("secret")
    nets("public")
    ok("run", "-d", "--name", "hid", "--network", "secret", "--network-alias", "hidden",
       bb, "sleep", "300")
    ip = ok("inspect", "-f", '{{(index .NetworkSettings.Networks "secret").IPAddress}}',
            "hid").strip()
    gw = ok("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            "secret").strip()
    ask = ("timeout", "6", "nslookup", "hidden", gw)
    own = dockish("run", "--rm", "--network", "secret", bb, *ask, timeout=120)
    assert own.returncode == 0 and f"Address: {ip}" in own.stdout, own
    other = dockish("run", "--rm", "--network", "public", bb, *ask, timeout=120)
    assert other.returncode != 0 and ip not in other.stdout, other
    ok("run", "-d", "--name", "peek", "--network", "public", bb, "sleep", "300")
    ok("network", "connect", "secret", "peek")
    assert f"Address: {ip}" in ok("exec", "peek", *ask)
    ok("network", "disconnect", "secret", "peek")
    res = dockish("exec", "peek", *ask)
    assert res.returncode != 0 and ip not in res.stdout, res


def test_a_killed_session_leaves_no_network_state_and_networks_work_again(bb, nets):
    """Every process the user started (containers, monitors, the holder,
    slirp4netns, aardvark-dns) SIGKILLed at once, as logind does: the next
    command finds the holder dead and forgets its state; the containers
    start again on a new holder and reach each other."""
    from .test_lifecycle import _ancestors, _started_since, _ticks_now
    nets("sess")
    t0 = _ticks_now()
    time.sleep(0.05)
    ok("run", "-d", "--name", "s1", "--network", "sess", bb, "sh", "-c", HTTPD)
    ok("run", "-d", "--name", "s2", "--network", "sess", bb, "sleep", "1000")
    assert _holder() and _aardvark_pids()
    spare = _ancestors()
    victims = _started_since(t0, spare)
    end = time.monotonic() + 15
    while victims:
        for p in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        assert time.monotonic() < end, victims
        time.sleep(0.05)
        victims = _started_since(t0, spare)
    assert ok("ps", "-q") == ""
    ok("network", "ls")
    assert not (_state() / "holder.json").exists()
    assert not list((_state() / "attach").iterdir())
    assert not list((_state() / "netns").iterdir())
    ok("start", "s1", "s2")
    get = ("sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 s1 80")
    deadline = time.monotonic() + 10
    while "hello-" not in dockish("exec", "s2", *get).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    holder = _holder()
    ok("rm", "-f", "s1", "s2")
    assert _gone([holder["holder_pid"], holder["slirp_pid"]])


def test_build_run_steps_on_a_user_network_reach_its_containers(bb, nets, tmp_path):
    nets("buildnet")
    ok("run", "-d", "--name", "assets", "--network", "buildnet", bb, "sh", "-c", HTTPD)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {bb}\n"
        "RUN printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 assets 80 > /fetched\n")
    ok("build", "--network", "buildnet", "-t", "fetched:1", str(ctx))
    out = ok("run", "--rm", "--network", "none", "fetched:1", "cat", "/fetched")
    assert "hello-" in out, out
    res = dockish("build", "--no-cache", "--network", "nosuch", "-t", "x:1", str(ctx))
    assert res.returncode != 0 and "network nosuch not found" in res.stderr, res


# -- the pure rules (runner.runtime.netconf), no namespaces ----------------------------------------

def test_subnets_gateways_and_addresses_are_chosen_as_podman_does():
    from runner.errors import UsageError
    from runner.runtime.netconf import NetworkRecord, choose_subnet, pick_ip
    assert choose_subnet(None, None, []) == ("10.89.0.0/24", "10.89.0.1")
    assert choose_subnet(None, None, ["10.89.0.0/24", "10.89.1.0/24"])[0] == "10.89.2.0/24"
    assert choose_subnet("192.168.7.0/24", "192.168.7.254", []) == ("192.168.7.0/24",
                                                                     "192.168.7.254")
    for bad in (("10.0.2.0/25", None), ("10.89.0.0/16", None), ("10.7.0.0/24", "10.8.0.1"),
                (None, "10.89.0.1"), ("fd00::/64", None)):
        with pytest.raises(UsageError):
            choose_subnet(bad[0], bad[1], ["10.89.3.0/24"])
    rec = NetworkRecord(name="n", id="0" * 64, subnet="10.89.5.0/24", gateway="10.89.5.1",
                        interface="dk0")
    assert pick_ip(rec, set()) == "10.89.5.2"
    assert pick_ip(rec, {"10.89.5.2", "10.89.5.3"}) == "10.89.5.4"
    assert pick_ip(rec, set(), "10.89.5.77") == "10.89.5.77"
    for wanted in ("10.89.5.1", "10.89.6.2", "10.89.5.255", "x"):
        with pytest.raises(UsageError):
            pick_ip(rec, set(), wanted)


def test_netavark_input_names_the_container_by_name_short_id_and_aliases():
    from runner.runtime.netconf import NetworkRecord, netavark_input
    rec = NetworkRecord(name="n", id="a" * 64, subnet="10.89.5.0/24", gateway="10.89.5.1",
                        interface="dk3", internal=True)
    cid = "b" * 64
    opts = netavark_input(cid, "web", rec, "10.89.5.2", ["www", "web"], "eth0",
                          [["0.0.0.0", 8080, 80, "tcp"]], [])
    assert opts["networks"] == {"n": {"interface_name": "eth0", "static_ips": ["10.89.5.2"],
                                      "aliases": ["web", "www", "b" * 12]}}
    info = opts["network_info"]["n"]
    assert info["network_interface"] == "dk3" and info["internal"] is True
    assert info["subnets"] == [{"subnet": "10.89.5.0/24", "gateway": "10.89.5.1"}]
    assert info["options"] == {"isolate": "true"} and info["dns_enabled"] is True
    assert opts["port_mappings"] == [{"host_ip": "", "container_port": 80, "host_port": 8080,
                                      "range": 1, "protocol": "tcp"}]
    assert opts["dns_servers"] is None


def test_add_host_and_resolv_conf_lines():
    from runner.errors import UsageError
    from runner.runtime.netconf import extra_hosts_lines, parse_add_host, resolv_conf
    assert parse_add_host("db:10.1.2.3") == ("db", "10.1.2.3")
    assert parse_add_host("v6=[::1]") == ("v6", "::1")
    assert extra_hosts_lines([("gw", "host-gateway"), ("db", "10.1.2.3")], "192.0.2.9") == \
        ["192.0.2.9\tgw", "10.1.2.3\tdb"]
    for bad in ("nocolon", "db:", "db:999.1.1.1"):
        with pytest.raises(UsageError):
            parse_add_host(bad)
    assert resolv_conf(["10.89.0.1"], ["a.test"], ["ndots:2"]) == \
        "nameserver 10.89.0.1\nsearch a.test\noptions ndots:2\n"


# -- docker-compose (v1) through the API socket ---------------------------------------------

COMPOSE = """version: "2.4"
services:
  web:
    image: busybox:latest
    command:
      - sh
      - -c
      - mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www
    ports: ["80"]
    healthcheck:
      test:
        - CMD-SHELL
        - printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 80 | grep -q 200
      interval: 1s
      retries: 30
  client:
    image: busybox:latest
    depends_on:
      web:
        condition: service_healthy
    command: ["sh", "-c", "printf 'GET / HTTP/1.0\\\\r\\\\n\\\\r\\\\n' | nc -w 5 web 80; sleep 300"]
  store:
    image: busybox:latest
    volumes: ["data:/data"]
    command: ["sh", "-c", "echo kept > /data/f; sleep 300"]
  side:
    image: busybox:latest
    network_mode: "service:web"
    depends_on:
      web:
        condition: service_healthy
    command: ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 127.0.0.1 80; sleep 300"]
volumes:
  data: {}
"""


def test_compose_three_services_talk_by_service_name_and_down_leaves_nothing(
        tmp_path, dockish_root, service):  # noqa: F811 - test_api's fixture
    import shutil
    import subprocess
    import urllib.request

    compose = shutil.which("docker-compose")
    assert compose, "docker-compose (v1) is missing: run scripts/setup as root"
    svc = service               # test_api's: the busybox image loaded as IMAGE
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "docker-compose.yml").write_text(COMPOSE)
    env = svc.env(COMPOSE_PROJECT_NAME="nettest")

    def run(*args: str) -> str:
        res = subprocess.run([compose, *args], cwd=proj, capture_output=True, text=True,
                             env=env, timeout=240)
        assert res.returncode == 0, (args, res.stdout, res.stderr, svc.logs())
        return res.stdout + res.stderr
    try:
        run("up", "-d")
        end = time.monotonic() + 60
        # client by the service name; side (network_mode service:web) on web's loopback
        while not all("hello-from-web" in run("logs", s) for s in ("client", "side")):
            assert time.monotonic() < end, run("logs")
            time.sleep(0.5)
        ps = run("ps")
        assert ps.count(" Up ") + ps.count("Up (") >= 4, ps
        assert "nettest_default" in ok("network", "ls", "--format", "{{.Name}}").split()
        assert run("exec", "-T", "store", "cat", "/data/f").strip() == "kept"
        port = run("port", "web", "80").strip().rsplit(":", 1)[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.read() == b"hello-from-web\n"
        holder = _holder()
        aardvark = _aardvark_pids()
        run("down", "-v")
        assert ok("ps", "-a", "-q") == ""
        assert ok("network", "ls", "--filter", "type=custom", "-q") == ""
        assert ok("volume", "ls", "-q") == ""
        assert _gone([holder["holder_pid"], holder["slirp_pid"], *aardvark])
        assert not (_state() / "holder.json").exists()
    finally:
        svc.stop()


def test_testcontainers_network_two_containers_talk_by_alias(
        tmp_path, dockish_root, service, monkeypatch):  # noqa: F811 - test_api's fixture

    from .test_api import IMAGE
    svc = service               # test_api's: the busybox image loaded as IMAGE
    monkeypatch.setenv("DOCKER_HOST", svc.host)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")     # no reaper image offline
    monkeypatch.setenv("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.network import Network
    from testcontainers.core.waiting_utils import wait_for_logs
    try:
        with Network() as net:
            server = DockerContainer(IMAGE).with_network(net).with_network_aliases("srv") \
                .with_command(["sh", "-c", HTTPD.replace("exec", "echo serving && exec")])
            client = DockerContainer(IMAGE).with_network(net).with_command(
                ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 srv 80; "
                 "echo; echo fetched; sleep 300"])
            with server:
                wait_for_logs(server, "serving", timeout=60)
                with client:
                    wait_for_logs(client, "fetched", timeout=60)
                    out, _ = client.get_logs()
                    assert b"hello-" in out, out
        assert ok("ps", "-a", "-q") == ""
        assert ok("network", "ls", "--filter", "type=custom", "-q") == ""
    finally:
        svc.stop()


def test_docker_cli_network_commands_through_the_socket(
        tmp_path, dockish_root, service):  # noqa: F811 - test_api's fixture
    import subprocess

    from .test_api import DOCKER, IMAGE, raw_request
    svc = service               # test_api's: the busybox image loaded as IMAGE

    def docker(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=svc.env(),
                              timeout=120)
    try:
        res = docker("network", "create", "--label", "team=a", "dnet")
        assert res.returncode == 0 and len(res.stdout.strip()) == 64, res
        res = docker("network", "ls", "--format", "{{.Name}} {{.Driver}}")
        assert res.returncode == 0 and "dnet bridge" in res.stdout.splitlines(), res
        assert {"bridge bridge", "host host", "none null"} <= set(res.stdout.splitlines())
        res = docker("network", "inspect", "-f", "{{.Name}} {{.Labels}}", "dnet")
        assert res.stdout.strip() == "dnet map[team:a]", res
        res = docker("run", "-d", "--name", "dweb", "--network", "dnet",
                     "--network-alias", "dalias", IMAGE, "sh", "-c", HTTPD)
        assert res.returncode == 0, (res, svc.logs())
        res = docker("run", "--rm", "--network", "dnet", IMAGE, "sh", "-c",
                     "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 dalias 80")
        assert res.returncode == 0 and "hello-" in res.stdout, (res, svc.logs())
        res = docker("network", "rm", "dnet")
        assert res.returncode == 1 and "active endpoints" in res.stderr, res
        # inspect as Docker 28 (API 1.45+): Aliases as asked, every name in DNSNames
        res = docker("inspect", "-f", "{{json .NetworkSettings.Networks}} {{.Id}}", "dweb")
        ep_json, cid = res.stdout.split()
        ep = json.loads(ep_json)["dnet"]
        assert ep["Aliases"] == ["dalias"], ep
        assert ep["DNSNames"] == ["dweb", "dalias", cid[:12]], ep
        mac = json.loads(docker("network", "inspect", "dnet").stdout)[0]["Containers"][cid][
            "MacAddress"]
        assert len(mac) == 17 and ep["MacAddress"] == mac, (ep, mac)
        # the daemon's status codes: 403 for what is not allowed, 409 for a name taken
        body = json.dumps({"Name": "dnet"}).encode()
        hdr = {"Content-Type": "application/json"}
        for method, path, data, status, words in (
                ("DELETE", "/v1.50/networks/dnet", b"", 403, "has active endpoints"),
                ("POST", "/v1.50/networks/create", body, 409, "already exists"),
                ("POST", "/v1.50/networks/create", b'{"Name": "bridge"}', 403,
                 "pre-defined network and cannot be created"),
                ("DELETE", "/v1.50/networks/host", b"", 403, "cannot be removed"),
                ("POST", "/v1.50/networks/dnet/connect", b'{"Container": "dweb"}', 403,
                 "already exists in network")):
            got, _, reply = raw_request(svc, method, path, data, hdr)
            assert got == status and words in json.loads(reply)["message"], (path, got, reply)
        res = docker("network", "create", "host")
        assert res.returncode == 1 and "host is a pre-defined network" in res.stderr, res
        # docker run on two networks at once (API 1.44+ sends both endpoints at create)
        assert docker("network", "create", "dnet2").returncode == 0
        res = docker("run", "--rm", "--network", "dnet", "--network", "dnet2", IMAGE, "sh",
                     "-c", "ip -4 -o addr | grep -c 'inet 10\\.'; "
                     "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 dalias 80")
        assert res.returncode == 0 and res.stdout.startswith("2\n") and "hello-" in res.stdout, \
            (res, svc.logs())
        for nets_, words in ((("nosuch",), "network nosuch not found"),
                             (("dnet", "--network", "nosuch"), "network nosuch not found"),
                             (("container:nosuch",), "No such container: nosuch")):
            res = docker("run", "--rm", "--network", *nets_, IMAGE, "true")
            assert res.returncode == 125 and words in res.stderr and \
                "Unable to find image" not in res.stderr, res
        assert docker("ps", "-a", "--format", "{{.Names}}").stdout == "dweb\n"
        assert docker("network", "rm", "dnet2").returncode == 0
        assert docker("rm", "-f", "dweb").returncode == 0
        res = docker("network", "rm", "dnet")
        assert res.returncode == 0, res
        res = docker("network", "inspect", "dnet")
        assert res.returncode == 1 and "not found" in res.stderr, res
        # prune takes Docker's until and label! filters; ls its scope filter and IPv4 column
        for args in (("--label", "keep=1", "kept"), ("gone1",), ("gone2",)):
            assert docker("network", "create", *args).returncode == 0
        res = docker("network", "ls", "--filter", "scope=local", "--format",
                     "{{.Name}} {{.IPv4}}")
        assert {"kept true", "gone1 true", "none false"} <= set(res.stdout.splitlines()), res
        res = docker("network", "prune", "-f", "--filter", "until=1h")
        assert res.returncode == 0 and "gone1" not in res.stdout, res
        res = docker("network", "prune", "-f", "--filter", "label!=keep")
        assert res.returncode == 0 and {"gone1", "gone2"} <= set(res.stdout.split()), res
        res = docker("network", "prune", "-f", "--filter", "driver=bridge")
        assert res.returncode == 1 and "invalid filter 'driver'" in res.stderr, res
        res = docker("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}")
        assert res.stdout.split() == ["kept"], res
        assert docker("network", "rm", "kept").returncode == 0
    finally:
        svc.stop()
