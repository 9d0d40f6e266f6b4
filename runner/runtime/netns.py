"""The user's network namespace for user networks, as rootless Podman
builds its "rootless netns", run with Podman's own netavark and aardvark-dns.

    holder (sleep)      root of a user namespace with the user's full id
      |                 mapping, in its own network and mount namespaces:
      |                 the bridges (dk0, dk1, ...) live here, one per network
      +- slirp4netns    tap0 10.0.2.100: the way out (and -p's way in)
      +- aardvark-dns   one, on each bridge's gateway:53, fed by netavark
    container holders   each in the SAME user namespace (setns), with a
                        network namespace of its own; netavark puts one end
                        of a veth pair in it (eth0) and the other on a bridge

Why one user namespace: a network namespace can only be joined, or have a
veth moved into it, by a process with CAP_NET_ADMIN/CAP_SYS_ADMIN in the
user namespace that owns it. Containers normally each get a fresh user
namespace; one on a user network instead joins the holder's (``setns`` to
a child user namespace of ours is allowed for its owner) and unshares its
own network namespace there, so netavark, run as root of that same user
namespace inside the holder's network namespace, may move a veth end into
the container's. All of a user's networked containers share one id mapping
(the same ``plan_mapping`` every container gets), as in Podman.

Life cycle (everything under ``RUNTIME/net/``, the user's private 0700
runtime dir, so two users' networks never meet):

- ``holder.json``: the holder's and slirp4netns' pids (with start times);
- ``attach/CID.json``: one per container that uses it (its netavark input
  per network, the slirp4netns forwards, the pinned netns path);
- ``netns/CID``: the container's network namespace, bind-mounted inside the
  holder's mount namespace (so netavark can tear its veth down after the
  container's processes are gone);
- ``netavark/``: netavark's and aardvark-dns' config dir.

A ``flock`` on ``lock`` orders every change. The holder is made by the
first container start that needs it (``ensure``) and stopped when the last
attachment goes (``detach``). ``reconcile`` (run by every command that
touches networks) tears down what dead containers left and, if the holder
was killed, kills its slirp4netns and aardvark-dns and forgets its state.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import DockishError
from . import namespaces as ns
from . import network
from .netconf import dns_guard, setup_macs

NETAVARK = os.environ.get("DOCKISH_NETAVARK", "/usr/lib/podman/netavark")
AARDVARK = os.environ.get("DOCKISH_AARDVARK", "/usr/lib/podman/aardvark-dns")
IPTABLES_RESTORE = "/usr/sbin/iptables-restore"     # what netavark runs too
HOLDER_IP = "10.0.2.100"          # slirp4netns --configure's address for tap0
SLIRP_DNS = "10.0.2.3"


class NetnsError(DockishError):
    """The user networks' namespace or netavark failed; the message says how."""


def state_dir() -> Path:
    from unionfs.mounts import runtime_dir
    d = runtime_dir() / "net"
    for sub in (d, d / "attach", d / "netns", d / "netavark"):
        sub.mkdir(mode=0o700, exist_ok=True)
    return d


@contextlib.contextmanager
def locked() -> Iterator[Path]:
    d = state_dir()
    fd = os.open(d / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield d
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(rec: dict | None, key: str) -> bool:
    return bool(rec) and ns.alive(rec.get(f"{key}_pid"), rec.get(f"{key}_start"))


def _kill(pid: int | None, start: int | None) -> None:
    if ns.alive(pid, start):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def check_tools() -> None:
    for tool, pkg in ((NETAVARK, "netavark"), (AARDVARK, "aardvark-dns")):
        if not os.access(tool, os.X_OK):
            raise NetnsError(f"user networks need {tool} (Debian: apt-get install {pkg})")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        raise NetnsError("user networks need /dev/net/tun read-writable (for slirp4netns)")


# ------------------------------------------------------------------ the holder

def holder_pid() -> int | None:
    """The live holder's pid, or None."""
    rec = _read_json(state_dir() / "holder.json")
    return rec["holder_pid"] if _alive(rec, "holder") else None


def ensure(cid: str) -> int:
    """The holder's pid, made if needed; ``cid`` is recorded as starting
    (so a concurrent ``reconcile`` does not stop the holder it is about to
    join). Clean up a dead holder first."""
    check_tools()
    with locked() as d:
        _reconcile(d)
        rec = _read_json(d / "holder.json")
        if not _alive(rec, "holder"):
            rec = _start_holder(d)
        _write_json(d / "attach" / f"{cid}.json",
                    {"cid": cid, "owner_pid": os.getpid(),
                     "owner_start": ns.proc_start_time(os.getpid()), "nets": {}})
        return rec["holder_pid"]


def _start_holder(d: Path) -> dict:
    """Fork an intermediate process that makes the holder, maps its ids,
    starts slirp4netns for it and exits (both are then the init's
    children, not this process's: a long-lived caller, the API server,
    keeps no zombie). Returns the state written to holder.json."""
    mapping = ns.plan_mapping()
    r, w = os.pipe()
    mid = os.fork()
    if mid == 0:
        try:
            os.close(r)
            os.setsid()
            rec = _make_holder(d, mapping)
            os.write(w, ("O" + json.dumps(rec)).encode())
            os._exit(0)
        except BaseException as e:    # noqa: BLE001 - reported as one line
            with contextlib.suppress(OSError):
                os.write(w, ("E" + (str(e) or type(e).__name__)).encode())
            os._exit(1)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(mid, 0)
    text = data.decode(errors="replace")
    if not text.startswith("O"):
        raise NetnsError(f"cannot make the user networks' namespace: "
                         f"{text[1:] or 'its helper died'}")
    rec = json.loads(text[1:])
    _write_json(d / "holder.json", rec)
    return rec


def _make_holder(d: Path, mapping: ns.IdMapping) -> dict:
    sync_r, sync_w = os.pipe()
    go_r, go_w = os.pipe()
    exit_r, exit_w = os.pipe()        # slirp4netns exits when the holder's end closes
    resolv = d / "resolv.conf"
    resolv.write_text(f"nameserver {SLIRP_DNS}\n")
    pid = os.fork()
    if pid == 0:
        try:
            ns.close_fds_except({sync_w, go_r, exit_w})
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            ns.unshare(ns.CLONE_NEWUSER)
            os.write(sync_w, b"U")
            if os.read(go_r, 1) != b"M":
                os._exit(1)
            ns.become_root(mapping)
            ns.unshare(ns.CLONE_NEWNET | ns.CLONE_NEWNS)
            ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
            network.loopback_up()
            # aardvark-dns forwards other names to /etc/resolv.conf's servers:
            # here slirp4netns' forwarder (the host's may be on its loopback)
            with contextlib.suppress(OSError):
                ns.mount(str(resolv), "/etc/resolv.conf", None, ns.MS_BIND)
            os.write(sync_w, b"R")
            os.close(sync_w)
            os.close(go_r)
            os.set_inheritable(exit_w, True)     # sleep keeps it: slirp4netns lives as long
            os.execv("/bin/sleep", ["sleep", "infinity"])
        except BaseException:       # noqa: BLE001 - the missing "R" says it failed
            pass
        os._exit(1)
    for fd in (sync_w, go_r, exit_w):
        os.close(fd)
    try:
        if os.read(sync_r, 1) != b"U":
            raise NetnsError("the holder process died")
        ns.apply_mapping(pid, mapping)
        os.write(go_w, b"M")
        if os.read(sync_r, 1) != b"R":
            raise NetnsError("the holder could not make its namespaces")
        slirp = network.Slirp(pid, d / "slirp.sock", exit_r, d / "slirp.log")
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        raise
    finally:
        for fd in (sync_r, go_w, exit_r):
            os.close(fd)
    return {"holder_pid": pid, "holder_start": ns.proc_start_time(pid),
            "slirp_pid": slirp.proc.pid, "slirp_start": ns.proc_start_time(slirp.proc.pid)}


def _stop_holder(d: Path) -> None:
    rec = _read_json(d / "holder.json") or {}
    _kill(rec.get("holder_pid"), rec.get("holder_start"))
    _kill(rec.get("slirp_pid"), rec.get("slirp_start"))
    _kill_aardvark(d)
    for name in ("holder.json", "slirp.sock"):
        with contextlib.suppress(FileNotFoundError):
            (d / name).unlink()
    for sub in ("attach", "netns"):
        for f in (d / sub).iterdir():
            with contextlib.suppress(FileNotFoundError):
                f.unlink()


def _kill_aardvark(d: Path) -> None:
    """aardvark-dns daemonizes; it keeps the holder's netns alive if left."""
    pidfile = d / "netavark" / "aardvark-dns" / "aardvark.pid"
    try:
        pid = int(pidfile.read_text().strip())
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"aardvark-dns" in cmd and os.stat(f"/proc/{pid}").st_uid == os.getuid():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()


# ------------------------------------------------------------------ in the holder

def _joiner(holder: int, kinds: list[str]):
    def join() -> None:
        ns.join(holder, kinds)
    return join


def _in_holder(holder: int, fn) -> None:
    """Run ``fn`` in a forked child in the holder's user and mount
    namespaces (as root there); raise if it fails."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            ns.join(holder, ["user", "mnt"])
            fn()
            os._exit(0)
        except BaseException as e:     # noqa: BLE001 - reported as one line
            with contextlib.suppress(OSError):
                os.write(w, (str(e) or type(e).__name__).encode())
            os._exit(1)
    os.close(w)
    msg = os.read(r, 4096).decode(errors="replace")
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise NetnsError(msg or "a helper in the networks' namespace failed")


def _netavark(holder: int, d: Path, action: str, netns_path: str, options: dict) -> dict:
    """Run ``netavark ACTION NETNS`` as root of the holder's namespaces."""
    proc = subprocess.run(
        [NETAVARK, "--config", str(d / "netavark"), "--rootless", "true",
         "--aardvark-binary", AARDVARK, action, netns_path],
        input=json.dumps(options).encode(), capture_output=True,
        preexec_fn=_joiner(holder, ["user", "net", "mnt"]), check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise NetnsError(f"netavark {action} failed: {err[-1] if err else proc.returncode}")
    try:
        return json.loads(proc.stdout or b"{}")
    except ValueError:
        return {}


def _guard_dns(holder: int, d: Path) -> None:
    """Rewrite the rules that keep each network's DNS server (its gateway)
    to its own bridge (``netconf.dns_guard``), for the networks the live
    attachments use; run after every change of them, under the lock."""
    infos = [info for rec in attached().values() for opts in rec.get("nets", {}).values()
             for info in (opts.get("network_info") or {}).values()]
    state = _read_json(d / "holder.json") or {}
    proc = subprocess.run([IPTABLES_RESTORE, "--noflush"],
                          input=dns_guard(infos, not state.get("guarded")).encode(),
                          capture_output=True, preexec_fn=_joiner(holder, ["user", "net", "mnt"]),
                          check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise NetnsError(f"cannot fence the networks' DNS servers: "
                         f"{err[-1] if err else proc.returncode}")
    if not state.get("guarded") and state:
        state["guarded"] = True
        _write_json(d / "holder.json", state)


def attach(cid: str, ctr_pid: int, inputs: dict[str, dict],
           ports: list[list]) -> dict[str, dict]:
    """Put the container whose holder is ``ctr_pid`` (already in the
    holder's user namespace, in a fresh network namespace) on its
    networks: pin its netns, run netavark setup per network, forward its
    published ports from the host into the holder (slirp4netns), record
    it. Returns netavark's answer per network."""
    with locked() as d:
        holder = holder_pid()
        if holder is None:
            raise NetnsError("the user networks' namespace is gone (its holder was killed)")
        pin = d / "netns" / cid
        pin.touch(0o600)
        src = f"/proc/{ctr_pid}/ns/net"
        _in_holder(holder, lambda: ns.mount(src, str(pin), None, ns.MS_BIND))
        rec = {"cid": cid, "ctr_pid": ctr_pid, "ctr_start": ns.proc_start_time(ctr_pid),
               "nets": {}, "fwd": []}
        _write_json(d / "attach" / f"{cid}.json", rec)
        out = {}
        for name, opts in inputs.items():
            out[name] = _netavark(holder, d, "setup", str(pin), opts).get(name, {})
            rec["nets"][name] = opts
            _write_json(d / "attach" / f"{cid}.json", rec)
        if inputs:
            _guard_dns(holder, d)
        for ip, hp, _cp, proto in ports:
            rec["fwd"].append(_forward(d, ip, hp, proto))
            _write_json(d / "attach" / f"{cid}.json", rec)
        rec["macs"] = setup_macs(out)
        _write_json(d / "attach" / f"{cid}.json", rec)
        return out


def _forward(d: Path, ip: str, host_port: int, proto: str) -> int:
    """Host ip:port -> the holder's tap0 at the same port, where netavark's
    DNAT sends it on to the container; the slirp4netns forward's id."""
    req = {"execute": "add_hostfwd",
           "arguments": {"proto": proto, "host_addr": ip or "0.0.0.0",
                         "host_port": int(host_port), "guest_addr": HOLDER_IP,
                         "guest_port": int(host_port)}}
    reply = _slirp_call(d, req)
    if "error" in reply:
        raise NetnsError(f"cannot publish {ip or '0.0.0.0'}:{host_port}/{proto}: "
                         f"{reply['error'].get('desc', reply['error'])}")
    return int((reply.get("return") or {}).get("id", -1))


def _slirp_call(d: Path, req: dict) -> dict:
    return network.slirp_call(d / "slirp.sock", req)


def connect(cid: str, name: str, opts: dict) -> dict:
    """Add one network to a running container (``network connect``)."""
    with locked() as d:
        holder = holder_pid()
        rec = _read_json(d / "attach" / f"{cid}.json")
        if holder is None or not rec or "ctr_pid" not in rec:
            raise NetnsError("the container is not attached to the networks' namespace")
        out = _netavark(holder, d, "setup", str(d / "netns" / cid), opts).get(name, {})
        rec["nets"][name] = opts
        rec.setdefault("macs", {}).update(setup_macs({name: out}))
        _write_json(d / "attach" / f"{cid}.json", rec)
        _guard_dns(holder, d)
        return out


def disconnect(cid: str, name: str) -> None:
    """Take one network off a running container (``network disconnect``)."""
    with locked() as d:
        holder = holder_pid()
        rec = _read_json(d / "attach" / f"{cid}.json")
        if holder is None or not rec or name not in rec.get("nets", {}):
            return
        _netavark(holder, d, "teardown", str(d / "netns" / cid), rec["nets"].pop(name))
        rec.get("macs", {}).pop(name, None)
        _write_json(d / "attach" / f"{cid}.json", rec)
        _guard_dns(holder, d)


def detach(cid: str) -> None:
    """The container stopped (or never started): tear its networks down,
    unpin its netns, and stop the holder if nothing else uses it."""
    with locked() as d:
        _detach(d, cid)
        _stop_if_unused(d)


def _detach(d: Path, cid: str) -> None:
    path = d / "attach" / f"{cid}.json"
    rec = _read_json(path)
    holder = holder_pid()
    pin = d / "netns" / cid
    if rec is not None and holder is not None:
        for opts in rec.get("nets", {}).values():
            with contextlib.suppress(NetnsError):
                _netavark(holder, d, "teardown", str(pin), opts)
        for fid in rec.get("fwd", []):
            with contextlib.suppress(OSError, ValueError):
                _slirp_call(d, {"execute": "remove_hostfwd", "arguments": {"id": fid}})
        if pin.exists():
            with contextlib.suppress(NetnsError):
                _in_holder(holder, lambda: ns.umount2(str(pin), ns.MNT_DETACH))
    for p in (path, pin):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _stop_if_unused(d: Path) -> None:
    if not any(f.suffix == ".json" for f in (d / "attach").iterdir()):
        _stop_holder(d)


def _attachment_alive(rec: dict) -> bool:
    if "ctr_pid" in rec:
        return ns.alive(rec["ctr_pid"], rec.get("ctr_start"))
    return ns.alive(rec.get("owner_pid"), rec.get("owner_start"))


def _reconcile(d: Path) -> None:
    rec = _read_json(d / "holder.json")
    if rec is not None and not _alive(rec, "holder"):
        _stop_holder(d)                 # killed: its slirp4netns, aardvark-dns, records
        return
    for f in list((d / "attach").iterdir()):
        a = _read_json(f)
        if f.suffix == ".json" and (a is None or not _attachment_alive(a)):
            _detach(d, f.stem)
    if rec is not None:
        _stop_if_unused(d)


def reconcile() -> None:
    """Clean up after dead containers and a killed holder (every command
    touching networks runs this first)."""
    with locked() as d:
        _reconcile(d)


def attached() -> dict[str, dict]:
    """cid -> its attachment record (networks and netavark inputs)."""
    d = state_dir()
    out = {}
    for f in (d / "attach").iterdir():
        rec = _read_json(f)
        if f.suffix == ".json" and rec:
            out[f.stem] = rec
    return out


def holder_ids() -> tuple[int | None, int | None]:
    """(holder pid, slirp4netns pid) while the holder lives (for tests
    and ``info``)."""
    rec = _read_json(state_dir() / "holder.json")
    if not _alive(rec, "holder"):
        return None, None
    return rec["holder_pid"], rec.get("slirp_pid")


def wait_gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while ns.proc_start_time(pid) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
