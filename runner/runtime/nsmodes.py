"""The namespace flags of ``run``/``create``: ``--pid``, ``--ipc``, ``--uts``
(host, or another container's), ``--sysctl``, ``--domainname`` and
``--oom-score-adj``, as rootless Podman does them.

A rootless container lives in a user namespace of the user's; sharing
works within what that allows:

- ``host``: the namespace is not made new (the host's pid namespace: its
  /proc is the host's, bound in, as a new proc mount of a pid namespace
  the user does not own is refused; the host's IPC: its /dev/shm bound in;
  the host's UTS: its host name, which the container cannot change).
- ``container:NAME``: the other (running) container's namespace is joined,
  after its user namespace (a namespace can only be joined from the user
  namespace that owns it; ``runner.runtime.netjoin`` does the same for
  ``--network container:``). Docker's default IPC mode is ``private``: only
  a container made ``--ipc shareable`` gives its IPC namespace (and
  /dev/shm) to others.

The rules are pure; ``sysctl_writes`` and ``oom_score_adj`` are what the
container's init applies before it runs the command.
"""
from __future__ import annotations

import os

from ..errors import DockishError, UsageError

PREFIX = "container:"
PID_MODES = ("", "host")
IPC_MODES = ("", "none", "private", "shareable", "host")
UTS_MODES = ("", "host")
# Docker's ValidateSysctl: the sysctls that are namespaced (so a container's own)
SYSCTL_IPC = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
              "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
SYSCTL_IPC_PREFIX = "fs.mqueue."
SYSCTL_NET_PREFIX = "net."


def _mode(flag: str, value: str, plain: tuple[str, ...], what: str) -> str:
    value = value or ""
    if value in plain:
        return value
    if value.startswith(PREFIX) and value[len(PREFIX):]:
        return value
    raise UsageError(f"--{flag}: invalid {what} mode")


def parse_sysctls(items: list[str] | dict[str, str]) -> dict[str, str]:
    """``--sysctl KEY=VALUE`` (or the API's map), only the namespaced ones
    (Docker's words for the others)."""
    pairs = items.items() if isinstance(items, dict) else \
        [(i.partition("=")[0], i.partition("=")[2]) if "=" in i else (i, None)
         for i in items]
    out = {}
    for key, value in pairs:
        shown = f"{key}={value}" if value is not None else key
        if value is None or not _namespaced(key) or "/" in key or ".." in key:
            raise UsageError(f'invalid argument "{shown}" for "--sysctl" flag: sysctl '
                             f"'{shown}' is not allowed")
        out[key] = str(value)
    return out


def _namespaced(key: str) -> bool:
    return key in SYSCTL_IPC or key.startswith((SYSCTL_IPC_PREFIX, SYSCTL_NET_PREFIX))


def parse(*, pid: str = "", ipc: str = "", uts: str = "",
          sysctls: list[str] | dict[str, str] | None = None, domainname: str = "",
          oom_score_adj: int | None = None) -> dict:
    """The flags as the container's process record keeps them."""
    rec: dict = {"pid": _mode("pid", pid, PID_MODES, "PID"),
                 "ipc": _mode("ipc", ipc, IPC_MODES, "IPC"),
                 "uts": _mode("uts", uts, UTS_MODES, "UTS"),
                 "sysctls": parse_sysctls(sysctls or []), "domainname": domainname or ""}
    if oom_score_adj is not None:
        if not -1000 <= oom_score_adj <= 1000:
            raise UsageError(f"Invalid value {oom_score_adj}, range for oom score adj is "
                             "[-1000, 1000]")
        rec["oom_score_adj"] = oom_score_adj
    for key in rec["sysctls"]:
        if rec["ipc"] == "host" and (key in SYSCTL_IPC or key.startswith(SYSCTL_IPC_PREFIX)):
            raise UsageError(f"sysctl {key!r} is not allowed in the hosts ipc namespace")
    if rec["uts"] == "host" and rec["domainname"]:
        raise UsageError("Conflicting options: domainname and the UTS mode")
    return rec


def check_network(process: dict, network: str) -> None:
    """runc's rule: net.* sysctls need the container's own network namespace."""
    if network == "host":
        for key in process.get("sysctls") or {}:
            if key.startswith(SYSCTL_NET_PREFIX):
                raise UsageError(f"sysctl {key!r} not allowed in host network namespace")


def resolve(process: dict, containers) -> None:
    """``container:REF`` made the other container's id (Docker keeps the
    id); an unknown one is refused now, one IPC mode that cannot be
    shared too."""
    for kind in ("pid", "ipc"):
        mode = process.get(kind) or ""
        if not mode.startswith(PREFIX):
            continue
        ref = mode[len(PREFIX):]
        try:
            other = containers.get(ref)
        except DockishError:
            raise UsageError(f"No such container: {ref}") from None
        process[kind] = PREFIX + other.id


def donor(process: dict, kind: str, containers) -> int | None:
    """The init pid of the running container whose ``kind`` (pid, ipc)
    namespace this one joins; None when it joins none. Docker's words when
    it is not running, or (IPC) not made shareable."""
    from . import namespaces as ns
    mode = process.get(kind) or ""
    if not mode.startswith(PREFIX):
        return None
    cid = mode[len(PREFIX):]
    try:
        other = containers.get(cid)
    except DockishError:
        raise DockishError(f"No such container: {cid}") from None
    what = kind.upper()
    st = other.state() if other.running else {}
    pid = st.get("pid")
    if not pid or not ns.alive(st.get("holder_pid"), st.get("holder_start")):
        raise DockishError(f"cannot join {what} of a non running container: {cid}")
    if kind == "ipc" and (other.config.process.get("ipc") or "") not in ("shareable", "host"):
        raise DockishError("non-shareable IPC (hint: use IpcMode:shareable for the donor "
                           "container)")
    return pid


def sysctl_writes(process: dict) -> list[tuple[str, str]]:
    """(path under /proc/sys, value) for each ``--sysctl``."""
    return [(key.replace(".", "/"), value)
            for key, value in sorted((process.get("sysctls") or {}).items())]


def write_sysctls(process: dict) -> None:
    """In the container's init, in its own namespaces, before its root is
    made: each ``/proc/sys`` file walked beneath /proc/sys (never out of it)."""
    from . import namespaces as ns
    writes = sysctl_writes(process)
    if not writes:
        return
    base = os.open("/proc/sys", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rel, value in writes:
            key = rel.replace("/", ".")
            try:
                fd = ns.openat2(base, rel, os.O_WRONLY | os.O_NOFOLLOW,
                                ns.RESOLVE_BENEATH | ns.RESOLVE_NO_MAGICLINKS)
            except OSError as e:
                raise DockishError(f"open sysctl {key} file: {os.strerror(e.errno)}") \
                    from None
            try:
                os.write(fd, value.encode())
            except OSError as e:
                raise DockishError(f"write sysctl {key}: {os.strerror(e.errno)}") from None
            finally:
                os.close(fd)
    finally:
        os.close(base)


def apply_oom_score_adj(process: dict) -> None:
    """``--oom-score-adj``: a rootless process may raise its score, not
    lower it below what it was given (that needs CAP_SYS_RESOURCE on the
    host), so a lower value is refused rather than silently not applied."""
    value = process.get("oom_score_adj")
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError as e:
        try:
            with open("/proc/self/oom_score_adj") as f:
                now = f.read().strip()
        except OSError:
            now = "?"
        raise DockishError(f"cannot set --oom-score-adj {value}: {os.strerror(e.errno)} "
                           f"(a rootless container may only raise it; it is {now} here)") \
            from None


def inspect_fields(process: dict) -> dict:
    """The HostConfig fields ``inspect`` shows."""
    return {"PidMode": process.get("pid") or "",
            "IpcMode": process.get("ipc") or "private",
            "UTSMode": process.get("uts") or "",
            "Sysctls": dict(process.get("sysctls") or {}) or None,
            "OomScoreAdj": process.get("oom_score_adj") or 0}
