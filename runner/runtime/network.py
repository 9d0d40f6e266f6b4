"""Container networks: ``host`` (share the host's), ``none`` (a private
namespace with only ``lo``), ``slirp4netns`` (a private namespace with
outbound access and ``-p`` port publishing through slirp4netns, as rootless
Podman 4 does) and ``pasta`` (the same through passt's pasta, Podman 5's
default: the container gets the host's addresses, DNS is forwarded).
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

from ..errors import DockishError

SIOCSIFFLAGS = 0x8914
IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x1, 0x8, 0x40
SLIRP_IP = "10.0.2.100"
NETWORKS = ("host", "none", "slirp4netns", "pasta", "private")
PASTA_DNS = "169.254.1.1"
_PR_SET_PDEATHSIG = 1


class NetworkError(DockishError):
    """The network the user asked for cannot be set up."""


def _reap(proc: subprocess.Popen, timeout: float = 2) -> None:
    """Wait for a helper (slirp4netns, pasta) to end; kill it if it does not."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def default_network() -> tuple[str, str | None]:
    """(mode, note): slirp4netns when it is installed and usable, else the
    host's network with a note to say so once."""
    if shutil.which("slirp4netns") and os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return "slirp4netns", None
    return "host", ("slirp4netns is not usable here (not installed, or /dev/net/tun is not "
                    "read-writable): containers share the host's network")


def api_socket_path(cid: str) -> Path:
    """Unix socket paths are short (108 bytes): under the runtime dir."""
    from unionfs.mounts import runtime_dir
    return runtime_dir() / f"slirp-{cid[:16]}.sock"


def needs_netns(mode: str) -> bool:
    """Whether a container makes a network namespace of its own (the
    host's and another container's are joined instead)."""
    return mode != "host" and not mode.startswith("container:")


def loopback_up() -> None:
    """Inside a new network namespace: bring ``lo`` up (as Docker does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14s", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING, b"")
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, ifr)


class Slirp:
    """One slirp4netns process serving one container's network namespace.
    It exits by itself when ``exit_fd``'s other end (held by the container's
    holder process) closes."""

    def __init__(self, pid: int, api_socket: Path, exit_fd: int, log: Path,
                 mac: str = "") -> None:
        if not shutil.which("slirp4netns"):
            raise NetworkError("--network slirp4netns: slirp4netns is not installed")
        ready_r, ready_w = os.pipe()
        try:
            api_socket.unlink()
        except FileNotFoundError:
            pass
        self.api_socket = api_socket
        with open(log, "ab") as logf:
            self.proc = subprocess.Popen(
                ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                 "--api-socket", str(api_socket), *([f"--macaddress={mac}"] if mac else []),
                 "--ready-fd", str(ready_w), "--exit-fd", str(exit_fd), str(pid), "tap0"],
                pass_fds=(ready_w, exit_fd), stdin=subprocess.DEVNULL, stdout=logf,
                stderr=logf, start_new_session=True)
        os.close(ready_w)
        ok = os.read(ready_r, 1)
        os.close(ready_r)
        if ok != b"1":
            self.proc.wait()
            raise NetworkError(f"slirp4netns failed to start (see {log})")

    def stop(self) -> None:
        """It exits with the holder (its exit fd); make sure."""
        _reap(self.proc)

    def publish(self, ip: str, host_port: int, ctr_port: int, proto: str) -> None:
        if ip in ("0.0.0.0", ""):
            ip = "0.0.0.0"
        req = {"execute": "add_hostfwd",
               "arguments": {"proto": proto, "host_addr": ip, "host_port": host_port,
                             "guest_port": ctr_port}}
        reply = self._call(req)
        if "error" in reply:
            raise NetworkError(f"cannot publish {ip}:{host_port}->{ctr_port}/{proto}: "
                               f"{reply['error'].get('desc', reply['error'])}")

    def _call(self, req: dict) -> dict:
        return slirp_call(self.api_socket, req)


def slirp_call(api_socket: Path, req: dict) -> dict:
    """One request to slirp4netns' API socket (add_hostfwd, remove_hostfwd),
    retried while the socket is not up yet; its JSON answer."""
    deadline = time.monotonic() + 5
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(str(api_socket))
                s.sendall(json.dumps(req).encode())
                s.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            return json.loads(data or b"{}")
        except (ConnectionRefusedError, FileNotFoundError):
            if time.monotonic() > deadline:
                raise NetworkError("slirp4netns's API socket did not answer") from None
            time.sleep(0.01)


class Pasta:
    """One pasta process serving one container's network namespace, with
    its published ports. It does not quit when the namespace's processes
    do: the monitor stops it, and it dies with the monitor (PDEATHSIG)."""

    def __init__(self, pid: int, ports: list, log: Path, mac: str = "") -> None:
        if not shutil.which("pasta"):
            raise NetworkError("--network pasta: pasta is not installed (Debian: passt)")
        args = ["pasta", "--config-net", "--quiet", "--foreground", "--no-map-gw",
                "--dns-forward", PASTA_DNS, "-T", "none", "-U", "none",
                *(["--ns-mac-addr", mac] if mac else [])]
        tcp = [p for p in ports if p[3] == "tcp"]
        udp = [p for p in ports if p[3] == "udp"]
        for flag, group in (("-t", tcp), ("-u", udp)):
            if not group:
                args += [flag, "none"]
            for ip, hp, cp, _ in group:
                bind = "" if ip in ("", "0.0.0.0") else f"{ip}/"
                args += [flag, f"{bind}{hp}:{cp}"]
        args.append(str(pid))
        with open(log, "ab") as logf:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 10
        while not _has_default_route(pid):      # --config-net's last step
            if self.proc.poll() is not None:
                raise NetworkError(f"pasta failed to start (see {log})")
            if time.monotonic() > deadline:
                self.stop()
                raise NetworkError(f"pasta did not configure the network (see {log})")
            time.sleep(0.01)

    def stop(self) -> None:
        self.proc.terminate()
        _reap(self.proc)

    def publish(self, ip: str, host_port: int, ctr_port: int, proto: str) -> None:
        """Ports are given to pasta when it starts."""


def _die_with_parent() -> None:
    import ctypes
    import signal
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _has_default_route(pid: int) -> bool:
    try:
        lines = Path(f"/proc/{pid}/net/route").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == "00000000" for line in lines if len(line.split()) > 1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
