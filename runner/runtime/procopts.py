"""The process flags of ``run``/``create`` that shape the container's first
process rather than its files: ``--group-add``, ``--ulimit``, ``--shm-size``,
``--device``, ``--security-opt``, ``--userns`` and the resource limits
(``--pids-limit``, ``-m``, ``--memory-swap``, ``--cpus``, ``--cgroup-parent``:
applied through a delegated cgroup by ``runner.runtime.cgroups``).

``parse`` checks the flags (Docker's words) and gives the record the
container keeps (``ContainerConfig.process``); ``apply_limits`` and
``apply_security`` are what the container's init does with it just before
it executes the command. Pure but for those two.
"""
from __future__ import annotations

import json
import os
import re
import resource

from ..errors import DockishError, UsageError
from .cgroups import memory_swap

_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}")
DEFAULT_SHM = 64 << 20            # Docker's /dev/shm
MIN_MEMORY = 6 << 20              # Docker's smallest -m
# Linux's RLIMIT_* numbers (Python's resource module lacks some, e.g. locks)
ULIMITS = {"cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
           "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11,
           "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15}
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def ram_bytes(text: str, flag: str) -> int:
    """Docker's RAMInBytes: ``64m``, ``1g``, ``512k``, ``1024`` (binary units)."""
    t = text.strip().lower().removesuffix("ib").removesuffix("b") if text else ""
    num = t.rstrip("kmgt")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "{flag}" flag: invalid size: '
                         f"'{text}'") from None
    if value < 0 or unit not in _UNITS:
        raise UsageError(f'invalid argument "{text}" for "{flag}" flag: invalid size: '
                         f"'{text}'")
    return int(value * _UNITS[unit])


def parse_ulimit(text: str) -> dict:
    """``NAME=SOFT[:HARD]`` as Docker's ``--ulimit`` (Docker's ``Ulimit``)."""
    name, eq, values = text.partition("=")
    if not eq:
        raise UsageError(f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit '
                         f"argument: {text}")
    if name not in ULIMITS:
        raise UsageError(f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit '
                         f"type: {name}")
    soft_s, colon, hard_s = values.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if colon else soft
    except ValueError:
        raise UsageError(f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit '
                         f"argument: {text}") from None
    if soft > hard:
        raise UsageError(f'invalid argument "{text}" for "--ulimit" flag: ulimit soft limit '
                         f"must be less than or equal to hard limit: {soft} > {hard}")
    return {"Name": name, "Soft": soft, "Hard": hard}


def parse_device(text: str) -> dict:
    """``/dev/X[:/dev/Y][:rwm]`` (Docker's ``DeviceMapping``)."""
    parts = text.split(":")
    perms = "rwm"
    if len(parts) > 1 and parts[-1] and set(parts[-1]) <= set("rwm") and \
            not parts[-1].startswith("/"):
        perms = parts.pop()
    if len(parts) > 2 or not parts[0]:
        raise UsageError(f"invalid device specification: {text}")
    host = parts[0]
    ctr = parts[1] if len(parts) == 2 else host
    if not host.startswith("/") or not ctr.startswith("/"):
        raise UsageError(f"invalid device specification: {text}")
    try:
        st = os.stat(host)
    except OSError as e:
        raise DockishError(f"error gathering device information while adding custom device "
                           f'"{host}": {e.strerror.lower()}') from None
    import stat as st_mod
    if not (st_mod.S_ISCHR(st.st_mode) or st_mod.S_ISBLK(st.st_mode)):
        raise DockishError(f'error gathering device information while adding custom device '
                           f'"{host}": not a device node')
    return {"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms}


def parse_security(opts: list[str]) -> tuple[bool, str]:
    """(no-new-privileges, seccomp: "" default, "unconfined" or a profile's
    JSON text) from ``--security-opt``; a profile is read and checked now,
    so a bad one is one line before anything is made."""
    nnp, seccomp = False, ""
    for o in opts:
        key, eq, value = o.partition("=" if "=" in o else ":")
        if key == "no-new-privileges" and (not eq or value in ("true", "false")):
            nnp = not eq or value == "true"
        elif key == "seccomp" and eq:
            seccomp = "unconfined" if value == "unconfined" else _seccomp_profile(value)
        elif key in ("label", "apparmor") and eq:
            continue            # no SELinux or AppArmor profiles for rootless containers here
        else:
            raise UsageError(f"invalid --security-opt: {o!r}")
    return nnp, seccomp


def _seccomp_profile(path: str) -> str:
    from unionfs.safefile import read_file
    try:
        text = read_file(path, pipes=True).decode()      # a FIFO is refused, not waited on
        data = json.loads(text)
    except OSError as e:
        raise DockishError(f"opening seccomp profile ({path}) failed: {e.strerror}") \
            from None
    except ValueError as e:       # UnicodeDecodeError too
        raise DockishError(f"decoding seccomp profile failed: {e}") from None
    if not isinstance(data, dict):
        raise DockishError("decoding seccomp profile failed: not a JSON object")
    from .seccomp import check
    check(text, set())
    return text


def swap_refusal(memory: int, swap: int) -> str | None:
    """The daemon's words when ``--memory-swap`` cannot go with ``-m``
    (create and update alike); None when it can."""
    if not memory:
        return "You should always set the Memory limit when using Memoryswap limit, see usage"
    if 0 < swap < memory:
        return "Minimum memoryswap limit should be larger than memory limit, see usage"
    return None


def parse(*, userns: str = "", group_add: list[str] | None = None,
          ulimits: list[str] | None = None, shm_size: str | None = None,
          devices: list[str] | None = None, security_opt: list[str] | None = None,
          pids_limit: int | None = None, memory: str | None = None,
          cpus: str | None = None, memory_swap: str | None = None,
          cgroup_parent: str = "", cpu_shares: int | None = None,
          cpu_period: int | None = None, cpu_quota: int | None = None,
          log_driver: str | None = None, log_opts: dict[str, str] | None = None,
          pid: str = "", ipc: str = "", uts: str = "",
          sysctls: list[str] | dict[str, str] | None = None, domainname: str = "",
          oom_score_adj: int | None = None,
          annotations: dict[str, str] | None = None, mac_address: str = "") -> dict:
    """The flags as the container keeps them; UsageError in Docker's words.
    The logging driver (``runner.runtime.logconfig``) and the namespace
    flags (``runner.runtime.nsmodes``) are checked by their modules."""
    from . import logconfig, nsmodes
    shared = nsmodes.parse(pid=pid, ipc=ipc, uts=uts, sysctls=sysctls,
                           domainname=domainname, oom_score_adj=oom_score_adj)
    log = logconfig.parse(log_driver, log_opts)
    if mac_address and not _MAC.fullmatch(mac_address):
        raise UsageError(f"{mac_address} is not a valid mac address")
    if userns not in ("", "host", "keep-id"):
        raise UsageError(f"invalid --userns: {userns!r}: use keep-id or host")
    for g in group_add or []:
        if not g or ":" in g:
            raise UsageError(f"invalid --group-add: {g!r}")
    nnp, seccomp = parse_security(list(security_opt or []))
    if cgroup_parent:
        from .cgroups import parent_path
        parent_path(cgroup_parent, "/")          # refused now if it climbs ('..')
    limits: dict = {}
    if pids_limit is not None:
        limits["PidsLimit"] = pids_limit
    if memory:
        limits["Memory"] = ram_bytes(memory, "-m, --memory")
        if 0 < limits["Memory"] < MIN_MEMORY:
            raise DockishError("Minimum memory limit allowed is 6MB")
    if memory_swap:
        swap = -1 if memory_swap.strip() == "-1" else ram_bytes(memory_swap, "--memory-swap")
        why = swap_refusal(limits.get("Memory") or 0, swap)
        if why:
            raise DockishError(why)
        limits["MemorySwap"] = swap
    if cpus:
        try:
            nano = int(float(cpus) * 1e9)
        except ValueError:
            raise UsageError(f'invalid argument "{cpus}" for "--cpus" flag: failed to parse '
                             f"{cpus} as a rational number") from None
        limits["NanoCpus"] = nano
    limits.update(_cpu_flags(limits.get("NanoCpus", 0), cpu_shares, cpu_period, cpu_quota))
    return {"userns": userns, "group_add": list(group_add or []),
            "ulimits": [parse_ulimit(u) for u in ulimits or []],
            "shm_size": ram_bytes(shm_size, "--shm-size") if shm_size else 0,
            "devices": [parse_device(d) for d in devices or []],
            "security_opt": list(security_opt or []), "no_new_privileges": nnp,
            "seccomp": seccomp, "limits": limits, "cgroup_parent": cgroup_parent or "",
            "log": log, **shared, "annotations": dict(annotations or {}),
            "mac_address": mac_address.lower().replace("-", ":")}


def cpu_refusal(nano: int, shares: int | None, period: int | None,
                quota: int | None) -> str | None:
    """The daemon's words when ``--cpus`` (``nano``), ``-c/--cpu-shares``,
    ``--cpu-period`` and ``--cpu-quota`` cannot go together or out of
    range (create and update alike; ``--cpus``: 0.01 up to the CPUs here);
    None when they can."""
    ncpu = os.cpu_count() or 1
    if nano and not 10_000_000 <= nano <= ncpu * 1_000_000_000:
        return f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
    if nano and period:
        return "Conflicting options: Nano CPUs and CPU Period cannot both be set"
    if nano and quota:
        return "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
    if period and not 1000 <= period <= 1_000_000:
        return ("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s "
                "(i.e. 1000000)")
    if quota and 0 < quota < 1000:
        return "CPU cfs quota can not be less than 1ms (i.e. 1000)"
    if shares is not None and shares < 0:
        return f"invalid CPU shares ({shares}): value must be a positive integer"
    return None


def _cpu_flags(nano: int, shares: int | None, period: int | None,
               quota: int | None) -> dict:
    """``-c/--cpu-shares``, ``--cpu-period``, ``--cpu-quota`` as limits,
    checked by ``cpu_refusal``."""
    why = cpu_refusal(nano, shares, period, quota)
    if why:
        raise DockishError(why)
    out = {}
    if shares:
        out["CpuShares"] = min(max(shares, 2), 262144)     # the kernel's range, as Docker
    if period:
        out["CpuPeriod"] = period
    if quota and quota > 0:
        out["CpuQuota"] = quota
    return out


def inspect_fields(process: dict) -> dict:
    """The HostConfig fields ``inspect`` shows for the record."""
    from . import logconfig, nsmodes
    limits = process.get("limits") or {}
    return {"GroupAdd": process.get("group_add") or None,
            "Ulimits": process.get("ulimits") or None,
            "ShmSize": process.get("shm_size") or DEFAULT_SHM,
            "Devices": process.get("devices") or [],
            "SecurityOpt": process.get("security_opt") or None,
            "UsernsMode": process.get("userns") or "",
            "PidsLimit": limits.get("PidsLimit"), "Memory": limits.get("Memory", 0),
            "MemorySwap": memory_swap(limits), "NanoCpus": limits.get("NanoCpus", 0),
            "CpuShares": limits.get("CpuShares", 0), "CpuPeriod": limits.get("CpuPeriod", 0),
            "CpuQuota": limits.get("CpuQuota", 0),
            "CgroupParent": process.get("cgroup_parent") or "",
            "LogConfig": logconfig.docker_view(process.get("log")),
            "Annotations": dict(process.get("annotations") or {}) or None,
            **nsmodes.inspect_fields(process)}


def limits_note(process: dict) -> str | None:
    """The one warning line when resource limits were asked for and no
    delegated cgroup can take them (why, and the admin's command); None
    when they will be applied."""
    from .cgroups import note
    return note(process)


def extra_groups(process: dict, group_file: str) -> list[int]:
    """``--group-add`` names or numbers as gids, by the container's
    /etc/group text; a name not there is an error (as Docker's)."""
    by_name = {}
    for line in group_file.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            by_name.setdefault(parts[0], int(parts[2]))
    out = []
    for g in process.get("group_add") or []:
        if g.isdigit():
            out.append(int(g))
        elif g in by_name:
            out.append(by_name[g])
        else:
            raise DockishError(f"Unable to find group {g}: no matching entries in group file")
    return out


def apply_limits(process: dict) -> None:
    """setrlimit for each ``--ulimit`` (in the container's init, before it
    drops to the container's user: raising a hard limit needs the
    namespace's root, and only up to the host's)."""
    for u in process.get("ulimits") or []:
        resource.setrlimit(ULIMITS[u["Name"]], (u["Soft"], u["Hard"]))


def apply_security(process: dict) -> None:
    """``no-new-privileges`` (PR_SET_NO_NEW_PRIVS), last thing before exec."""
    if process.get("no_new_privileges"):
        from . import namespaces as ns
        ns.prctl(PR_SET_NO_NEW_PRIVS, 1)


PR_SET_NO_NEW_PRIVS = 38


# -- --userns=keep-id ---------------------------------------------------------------------------

def keep_id(mapping, uid: int, gid: int):
    """Podman's ``--userns=keep-id``: the user's own uid and gid are the
    same numbers inside (so a bind-mounted file of theirs is theirs inside
    too); the subordinate ranges give every other id from 0 up, skipping
    those. Needs the ranges (a single mapping has no room for a root)."""
    from .namespaces import IdMapping
    if not mapping.full:
        raise UsageError("--userns=keep-id needs subordinate ids: this user has no "
                         "/etc/subuid and /etc/subgid ranges (or no newuidmap)")

    def remap(ranges: list[tuple[int, int, int]], own: int) -> list[tuple[int, int, int]]:
        out = [(own, own, 1)]
        nxt = 0
        for inside, outside, count in ranges:
            if inside == 0:
                continue                 # the user itself: mapped to its own number above
            while count:
                if nxt == own:
                    nxt += 1
                take = count if nxt > own else min(count, own - nxt)
                out.append((nxt, outside, take))
                nxt, outside, count = nxt + take, outside + take, count - take
        return sorted(out)
    return IdMapping(remap(mapping.uids, uid), remap(mapping.gids, gid))


def own_files_as_user(process: dict) -> None:
    """In a keep-id container's namespace, root is a subordinate id: the
    processes that write dockish's own files (the view daemon's writable
    layer, the holder's exit code) write them as the user (fsuid/fsgid,
    which keeps their capabilities), so the user can still read them."""
    own_files_as(files_owner(process))


def files_owner(process: dict) -> tuple[int, int] | None:
    """The (uid, gid) ``own_files_as`` takes for this container: the user's,
    known here, before any namespace is entered (the view daemon is a fresh
    interpreter that may start inside one); None when root may own them."""
    return _HOST_IDS if process.get("userns") == "keep-id" else None


def own_files_as(owner: tuple[int, int] | None) -> None:
    """Write files from now on as ``owner`` (see ``own_files_as_user``)."""
    if owner is None:
        return
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.setfsgid(owner[1])
    libc.setfsuid(owner[0])


def stay_reachable(process: dict) -> None:
    """The holder of a keep-id container, once root of its namespace: root
    there is a subordinate id, and that change of uid made the holder
    undumpable, so the user's own processes (its view daemon joining its
    namespaces, ``exec``, ``cp``) could no longer open its /proc files.
    Dumpable again, the namespace's owner (the user) may, as with the
    usual mapping."""
    if process.get("userns") == "keep-id":
        from . import namespaces as ns
        ns.prctl(PR_SET_DUMPABLE, 1)


PR_SET_DUMPABLE = 4
# the user's ids, taken at import (before any namespace is entered): keep-id
# maps them to the same numbers inside
_HOST_IDS = (os.getuid(), os.getgid())
