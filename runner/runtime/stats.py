"""A container's resource usage as Docker's daemon reports it
(``GET /containers/ID/stats``, ``docker stats``): CPU time, memory, process
count, network and block I/O, in Docker's ``StatsResponse`` JSON, and the
row the docker CLI makes of two such samples.

Where the numbers come from: the container's cgroup when it has one for
the controller (it has one only when limits were asked for and a cgroup is
delegated: ``runner.runtime.cgroups``) — v1 ``cpuacct.usage``,
``memory.usage_in_bytes`` (+ ``memory.stat``), ``pids.current``; v2
``cpu.stat``, ``memory.current``, ``pids.current``, ``io.stat`` — else
its processes (the container's first process and its descendants): CPU
ticks from ``/proc/PID/stat`` (their own and their reaped children's, so a
short-lived child's time is not lost), the RSS of each, their count, and
``read_bytes``/``write_bytes`` of ``/proc/PID/io``. Network bytes are the
container's network namespace's (``/proc/PID/net/dev``, without ``lo``;
none with ``--network host``, as Docker's). A rootless user may read all
of it: the container's user namespace is theirs.

Pure rules first (parsing /proc and cgroup files, Docker CLI's
arithmetic: CPU %, memory without the page cache, its sizes), then the I/O.
"""
from __future__ import annotations

import contextlib
import os
import time

from . import cgroups

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
NS = 1_000_000_000
SLIRP_IFACE = "tap0"            # slirp4netns' interface: Docker's default network calls it eth0


# ------------------------------------------------------------------ pure rules

def system_cpu_ns(proc_stat: str) -> int:
    """The machine's CPU time (all CPUs, every state) in ns, as Docker's
    ``system_cpu_usage``: the first line of /proc/stat (user to steal)."""
    for line in proc_stat.splitlines():
        if line.startswith("cpu "):
            return sum(int(v) for v in line.split()[1:9]) * NS // CLK_TCK
    return 0


def online_cpus(proc_stat: str) -> int:
    """The ``cpuN`` lines of /proc/stat: the CPUs online."""
    return sum(1 for line in proc_stat.splitlines()
               if line.startswith("cpu") and line[3:4].isdigit()) or 1


def proc_cpu_ticks(stat_line: str) -> tuple[int, int]:
    """(user, system) ticks of /proc/PID/stat: the process's own and its
    reaped children's (utime+cutime, stime+cstime)."""
    fields = stat_line.rpartition(")")[2].split()
    if len(fields) < 15:
        return 0, 0
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return utime + cutime, stime + cstime


def rss_bytes(statm: str) -> int:
    """The resident set of /proc/PID/statm (its second number, in pages)."""
    parts = statm.split()
    return int(parts[1]) * PAGE if len(parts) > 1 else 0


def net_dev(text: str) -> dict[str, dict[str, int]]:
    """/proc/PID/net/dev as Docker's ``networks``: interface -> rx/tx
    bytes, packets, errors, dropped; ``lo`` left out, slirp4netns' ``tap0``
    named ``eth0`` as the container's interface is on Docker's network."""
    out = {}
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        name, v = name.strip(), rest.split()
        if not name or name == "lo" or len(v) < 12:
            continue
        out["eth0" if name == SLIRP_IFACE else name] = {
            "rx_bytes": int(v[0]), "rx_packets": int(v[1]), "rx_errors": int(v[2]),
            "rx_dropped": int(v[3]), "tx_bytes": int(v[8]), "tx_packets": int(v[9]),
            "tx_errors": int(v[10]), "tx_dropped": int(v[11])}
    return out


def keyed(text: str) -> dict[str, int]:
    """``key value`` lines (/proc/PID/io with colons, memory.stat, cpu.stat)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.replace(":", " ").partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value.strip())
    return out


def io_stat_bytes(text: str) -> tuple[int, int]:
    """(read, written) bytes of v2's io.stat, summed over its devices."""
    r = w = 0
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if value.isdigit():
                r += int(value) if key == "rbytes" else 0
                w += int(value) if key == "wbytes" else 0
    return r, w


def cpu_percent(stats: dict) -> float:
    """The docker CLI's CPU % (calculateCPUPercentUnix): the container's
    CPU time over the machine's between the two samples, times the CPUs."""
    cur, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    cpu = (cur.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system = cur.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cur.get("online_cpus") or len((cur.get("cpu_usage") or {}).get("percpu_usage")
                                         or [])
    return cpu / system * cpus * 100.0 if system > 0 and cpu > 0 else 0.0


def memory_used(mem: dict) -> int:
    """The docker CLI's memory use without the page cache
    (calculateMemUsageUnixNoCache: v1 total_inactive_file, v2 inactive_file)."""
    usage, st = mem.get("usage", 0), mem.get("stats") or {}
    if "total_inactive_file" in st and st["total_inactive_file"] < usage:
        return usage - st["total_inactive_file"]
    if st.get("inactive_file", usage) < usage:
        return usage - st["inactive_file"]
    return usage


def io_totals(stats: dict) -> tuple[int, int, int, int]:
    """(net rx, net tx, block read, block written) as the docker CLI sums them."""
    nets = (stats.get("networks") or {}).values()
    rx, tx = sum(n.get("rx_bytes", 0) for n in nets), sum(n.get("tx_bytes", 0) for n in nets)
    br = bw = 0
    for e in (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (e.get("op") or " ")[0].lower()
        br += e.get("value", 0) if op == "r" else 0
        bw += e.get("value", 0) if op == "w" else 0
    return rx, tx, br, bw


def row(stats: dict, container: str, trunc: bool = True) -> dict:
    """The docker CLI's stats row (its template fields) of a sample with
    its previous one: ``container`` is the name the user gave (the ID when
    listing them all)."""
    from ..format import binary_size, size
    mem = stats.get("memory_stats") or {}
    used, limit = memory_used(mem), mem.get("limit", 0)
    rx, tx, br, bw = io_totals(stats)
    cid = stats.get("id") or ""
    name = (stats.get("name") or "").removeprefix("/")
    return {"Container": container, "Name": name or "--",
            "ID": cid[:12] if trunc else cid,
            "CPUPerc": f"{cpu_percent(stats):.2f}%",
            "MemUsage": f"{binary_size(used)} / {binary_size(limit)}",
            "MemPerc": f"{used / limit * 100 if limit else 0:.2f}%",
            "NetIO": f"{size(rx)} / {size(tx)}", "BlockIO": f"{size(br)} / {size(bw)}",
            "PIDs": str((stats.get("pids_stats") or {}).get("current", 0))}


def empty(cid: str, name: str) -> dict:
    """A container that is not running: Docker's stats with only its name and ID."""
    return {"read": "0001-01-01T00:00:00Z", "preread": "0001-01-01T00:00:00Z",
            "pids_stats": {}, "blkio_stats": {"io_service_bytes_recursive": None},
            "num_procs": 0, "storage_stats": {},
            "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                        "usage_in_usermode": 0}, "throttling_data": {}},
            "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                           "usage_in_usermode": 0}, "throttling_data": {}},
            "memory_stats": {}, "name": "/" + name, "id": cid}


def paired(current: dict, previous: dict | None) -> dict:
    """``current`` with ``previous``'s CPU sample as its precpu_stats (and
    its time as preread), as the daemon sends each frame after the first."""
    out = dict(current)
    if previous:
        out["precpu_stats"] = previous.get("cpu_stats") or out["precpu_stats"]
        out["preread"] = previous.get("read") or out["preread"]
    return out


# ------------------------------------------------------------------ reading them

def _read(path: str) -> str:
    with contextlib.suppress(OSError):
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(1 << 20)
    return ""


def members(init: int) -> list[int]:
    """The container's processes: every process in its first process's pid
    namespace (``exec``'d ones too, which are not its descendants), or,
    when it shares the host's (``--pid host``), its first process and that
    one's descendants."""
    from .container import process_tree
    try:
        ns = os.stat(f"/proc/{init}/ns/pid").st_ino
        if ns == os.stat("/proc/self/ns/pid").st_ino:
            return list(process_tree(init))
    except OSError:
        return []
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{name}/ns/pid").st_ino == ns:
                    out.append(int(name))
    return sorted(out)


def _cgroup_dirs(paths: list[str]) -> dict[str, str]:
    """controller -> the container's cgroup for it (a path of its state's
    ``cgroups``: v1 ``HIER/PARENT/dockish-ID`` with HIER the controllers
    it co-mounts, v2 one directory for all)."""
    out: dict[str, str] = {}
    for rel in paths:
        if cgroups.is_v2():
            return dict.fromkeys(("cpu", "memory", "pids", "io"), rel)
        for ctrl in rel.split("/", 1)[0].split(","):
            out[ctrl] = rel
    return out


def _cg(dirs: dict[str, str], ctrl: str, *names: str) -> dict[str, str]:
    """The named files of the container's cgroup for ``ctrl`` (none: {})."""
    return cgroups.read_files(dirs[ctrl], names) if ctrl in dirs else {}


def _mem_total() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def sample(cid: str, name: str, pid: int | None, pids: list[int], cgroup_paths: list[str],
           host_network: bool) -> dict:
    """One sample of a running container, Docker's ``StatsResponse`` with
    zero ``precpu_stats`` (``paired`` gives the previous one's): ``pid`` its
    first process, ``pids`` every process of it, ``cgroup_paths`` its state's
    cgroups (``runner.runtime.cgroups``)."""
    out = empty(cid, name)
    proc_stat = _read("/proc/stat")
    dirs = _cgroup_dirs(cgroup_paths)
    v2 = cgroups.is_v2()
    user = system = 0
    for p in pids:
        u, s = proc_cpu_ticks(_read(f"/proc/{p}/stat"))
        user, system = user + u, system + s
    total = (user + system) * NS // CLK_TCK
    acct = _cg(dirs, "cpuacct", "cpuacct.usage").get("cpuacct.usage", "").strip()
    if acct.isdigit() and not v2:
        total = int(acct)
    elif v2 and "cpu" in dirs:
        usec = keyed(_cg(dirs, "cpu", "cpu.stat").get("cpu.stat", "")).get("usage_usec")
        total = usec * 1000 if usec is not None else total
    out["cpu_stats"] = {"cpu_usage": {"total_usage": total,
                                      "usage_in_usermode": user * NS // CLK_TCK,
                                      "usage_in_kernelmode": system * NS // CLK_TCK},
                        "system_cpu_usage": system_cpu_ns(proc_stat),
                        "online_cpus": online_cpus(proc_stat), "throttling_data": {}}
    out["memory_stats"] = _memory(dirs, v2, pids)
    out["pids_stats"] = _pids(dirs, pids)
    out["blkio_stats"] = {"io_service_bytes_recursive": _block(dirs, v2, pids)}
    if pid and not host_network:
        out["networks"] = net_dev(_read(f"/proc/{pid}/net/dev"))
    out["num_procs"] = 0                       # Docker's field (Windows only)
    from ..format import rfc3339
    out["read"] = rfc3339(time.time())
    return out


def _memory(dirs: dict[str, str], v2: bool, pids: list[int]) -> dict:
    host = _mem_total()
    usage_f, limit_f = ("memory.current", "memory.max") if v2 else \
        ("memory.usage_in_bytes", "memory.limit_in_bytes")
    files = _cg(dirs, "memory", usage_f, limit_f, "memory.stat")
    usage, limit = files.get(usage_f, "").strip(), files.get(limit_f, "").strip()
    if usage.isdigit():
        lim = int(limit) if limit.isdigit() else host
        return {"usage": int(usage), "limit": min(lim, host) if host else lim,
                "stats": keyed(files.get("memory.stat", ""))}
    return {"usage": sum(rss_bytes(_read(f"/proc/{p}/statm")) for p in pids),
            "limit": host, "stats": {}}


def _pids(dirs: dict[str, str], pids: list[int]) -> dict:
    files = _cg(dirs, "pids", "pids.current", "pids.max")
    cur, lim = files.get("pids.current", "").strip(), files.get("pids.max", "").strip()
    if cur.isdigit():
        return {"current": int(cur), **({"limit": int(lim)} if lim.isdigit() else {})}
    return {"current": len(pids)}


def _block(dirs: dict[str, str], v2: bool, pids: list[int]) -> list[dict]:
    text = _cg(dirs, "io", "io.stat").get("io.stat") if v2 else None
    if text is not None:
        r, w = io_stat_bytes(text)
    else:
        r = w = 0
        for p in pids:
            io = keyed(_read(f"/proc/{p}/io"))
            r, w = r + io.get("read_bytes", 0), w + io.get("write_bytes", 0)
    return [{"major": 0, "minor": 0, "op": "read", "value": r},
            {"major": 0, "minor": 0, "op": "write", "value": w}]
