"""``stats``, ``update`` and ``system df`` as the docker CLI (28) and
docker-py show them (issue 14): real containers measured — a busy loop
near 100% CPU, a shell holding 60 MB, its processes, the bytes it writes
to a volume, the packets it sends — from the CLI and through the API
socket; limits changed on running containers under the test user's
delegated cgroup (``scripts/delegate-cgroups``) that take effect at once;
a restart policy changed while the container runs; and ``system df``
giving the same numbers through both doors."""
from __future__ import annotations

import json
import os
import pty
import pwd
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from runner.runtime import stats as statsmod
from runner.runtime.update import UpdateError, merged

from .diffbase import dockish_exe
from .runbed import dockish, drain, no_leftovers, ok  # noqa: F401 - a fixture
from .test_api import DOCKER, IMAGE, docker, service  # noqa: F401 - a fixture
from .test_api import client as dockerpy_client
from .test_api import ok as docker_ok

TOP = Path("/sys/fs/cgroup")
PARENT = f"/dockish-{pwd.getpwuid(os.getuid()).pw_name}"
COLUMNS = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
           "BLOCK I/O", "PIDS"]
ALL_FIELDS = ("{{.Container}}|{{.Name}}|{{.ID}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|"
              "{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}")
HOLD_60MB = ("x=$(head -c 60000000 /dev/zero | tr '\\0' a); echo held; "
             "while :; do sleep 1; done")


def _mib(text: str) -> float:
    """A docker CLI binary size (``57.3MiB``) in MiB."""
    m = re.fullmatch(r"([\d.]+)(B|KiB|MiB|GiB)", text.strip())
    assert m, text
    return float(m[1]) * {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[m[2]]


def _wait_log(ref: str, word: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while word not in dockish("logs", ref).stdout:
        assert time.monotonic() < end, f"{ref} never said {word}"
        time.sleep(0.1)


def _inspect(ref: str) -> dict:
    return json.loads(ok("inspect", ref))[0]


def _cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) of a process, from /proc, as a check."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ stats from the CLI

@pytest.mark.usefixtures("no_leftovers")
def test_stats_shows_dockers_columns_and_real_numbers(bb):
    ok("run", "-d", "--name", "busy", "--network", "none", bb, "sh", "-c", "while :; do :; done")
    ok("run", "-d", "--name", "holder", "--network", "none", bb, "sh", "-c", HOLD_60MB)
    ok("run", "-d", "--name", "three", "--network", "none", bb, "sh", "-c",
       "sleep 600 & sleep 600 & wait")
    ok("volume", "create", "out")
    ok("run", "-d", "--name", "writer", "--network", "none", "-v", "out:/out", bb, "sh", "-c",
       "x=$(head -c 100000 /dev/zero | tr '\\0' w); exec 3>/out/f; i=0; "
       "while [ $i -lt 200 ]; do echo \"$x\" >&3; i=$((i+1)); done; echo wrote; sleep 600")
    ok("run", "-d", "--name", "talker", bb, "sh", "-c",
       "ping -c 5 -W 1 10.0.2.2; echo pinged; sleep 600")
    ok("create", "--name", "idle", bb, "true")
    for name, word in (("holder", "held"), ("writer", "wrote"), ("talker", "pinged")):
        _wait_log(name, word)

    out = ok("stats", "--no-stream").splitlines()     # the running ones, Docker's table
    assert re.split(r"\s{2,}", out[0].strip()) == COLUMNS, out[0]
    names = {re.split(r"\s{2,}", line)[1] for line in out[1:]}
    assert names == {"busy", "holder", "three", "writer", "talker"}, out
    assert "idle" in ok("stats", "-a", "--no-stream", "--format", "{{.Name}}").split()

    rows = {}
    pid = _inspect("busy")["State"]["Pid"]
    before = (_cpu_seconds(pid), time.monotonic())
    for line in ok("stats", "--no-stream", "--format", ALL_FIELDS, "busy", "holder", "three",
                   "writer", "talker", "idle").splitlines():
        f = line.split("|")
        rows[f[0]] = f
    share = (_cpu_seconds(pid) - before[0]) / (time.monotonic() - before[1]) * 100
    busy, holder, three, writer, talker, idle = (rows[n] for n in (
        "busy", "holder", "three", "writer", "talker", "idle"))
    cid = _inspect("busy")["Id"]
    assert busy[1:3] == ["busy", cid[:12]]
    cpu = float(busy[3].rstrip("%"))
    print(f"busy loop: {cpu}% CPU (its own ticks over the command: {share:.1f}%); "
          f"holder: {holder[4]}")
    assert 40 <= cpu <= 110 and abs(cpu - share) < 25, (busy, share)   # a CPU, as it got it
    assert float(rows["three"][3].rstrip("%")) < 5, three
    used, limit = holder[4].split(" / ")
    assert _mib(used) >= 57, holder                         # 60 MB = 57.2 MiB held
    total = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    assert abs(_mib(limit) - total / 2**20) < 1, holder    # no limit: the machine's memory
    assert float(holder[5].rstrip("%")) == pytest.approx(
        _mib(used) * 2**20 / total * 100, abs=0.02)
    assert three[8] == "3" and busy[8] == "1", (three, busy)
    read, written = writer[7].split(" / ")
    assert written.endswith("MB") and float(written[:-2]) >= 20, writer   # 200 x 100 kB
    assert busy[6] == "0B / 0B"                             # --network none: no interface
    rx, tx = talker[6].split(" / ")
    assert tx != "0B", talker                               # its pings left through eth0
    assert idle[1:2] + idle[3:] == ["idle", "0.00%", "0B / 0B", "0.00%", "0B / 0B",
                                    "0B / 0B", "0"], idle     # not running: Docker's zeros

    js = json.loads(ok("stats", "--no-stream", "--no-trunc", "--format", "json",
                       "busy").strip())
    assert sorted(js) == ["BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage",
                          "Name", "NetIO", "PIDs"]
    assert js["ID"] == cid and js["Container"] == "busy"
    res = dockish("stats", "--no-stream", "nosuch")
    assert (res.returncode, res.stderr) == (
        1, "Error response from daemon: No such container: nosuch\n")


def _frames(stream, n: int) -> bytes:
    """Read a stats stream until its ``n``th frame has ended (the erase
    below); what came, at most 30 s on."""
    out = b""
    while out.count(b"\x1b[J") < n:
        more = drain(stream.fileno(), 30, until=b"\x1b[J")
        assert more, out
        out += more
    return out


@pytest.mark.usefixtures("no_leftovers")
def test_stats_streams_frames_as_the_docker_cli_until_ctrl_c(bb):
    ok("run", "-d", "--name", "s1", "--network", "none", bb, "sleep", "600")
    frame = b"\x1b[Hs1 1\n\x1b[Hs1 1 \x1b[K\n \x1b[K\n\x1b[J"
    p = subprocess.Popen([dockish_exe(), "stats", "--format", "{{.Name}} {{.PIDs}}", "s1"],
                         stdout=subprocess.PIPE)
    try:                                    # piped: Docker 28's bytes, frame after frame
        assert _frames(p.stdout, 2) == frame * 2
    finally:
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 130
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(dockish_exe(), [dockish_exe(), "stats", "s1"])
    try:
        out = drain(fd, 20, until=b"\x1b[J")
        out += drain(fd, 10, until=b"\x1b[J")
        assert out.startswith(b"\x1b[HCONTAINER ID   NAME"), out   # a terminal: redrawn
        assert re.search(rb"\r\n\x1b\[HCONTAINER ID .*PIDS \x1b\[K\r\n\w{12}   s1 +[\d.]+% .* 1 "
                         rb"\x1b\[K\r\n \x1b\[K\r\n\x1b\[J", out), out
        os.kill(pid, signal.SIGINT)
        drain(fd, 5)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 130
    finally:
        os.close(fd)


# ------------------------------------------------------------------ stats through the API

def test_docker_stats_and_dockerpy_stats_through_the_socket(service):  # noqa: F811
    docker_ok(service, "run", "-d", "--name", "busy", "--network", "none", IMAGE, "sh", "-c",
              "while :; do :; done")
    docker_ok(service, "run", "-d", "--name", "holder", "--network", "none", IMAGE, "sh", "-c",
              HOLD_60MB)
    docker_ok(service, "run", "-d", "--name", "net", IMAGE, "sleep", "600")
    _wait_log("holder", "held")
    out = docker_ok(service, "stats", "--no-stream").splitlines()
    assert re.split(r"\s{2,}", out[0].strip()) == COLUMNS
    rows = {f[0]: f for f in (line.split("|") for line in docker_ok(
        service, "stats", "--no-stream", "--format", ALL_FIELDS, "busy", "holder").splitlines())}
    cpu = float(rows["busy"][3].rstrip("%"))
    print(f"docker CLI through the socket: busy {cpu}%, holder {rows['holder'][4]}")
    assert 40 <= cpu <= 110, rows["busy"]
    frames = {}
    for cmd in ([DOCKER], [dockish_exe()]):     # the stream: the same bytes from both
        p = subprocess.Popen([*cmd, "stats", "--format", "{{.Name}} {{.PIDs}}", "busy"],
                             stdout=subprocess.PIPE, env=service.env())
        try:
            frames[cmd[0]] = _frames(p.stdout, 2)
        finally:
            p.kill()
            p.wait(10)
    assert frames[DOCKER] == frames[dockish_exe()] == \
        b"\x1b[Hbusy 1\n\x1b[Hbusy 1 \x1b[K\n \x1b[K\n\x1b[J" * 2, frames
    assert _mib(rows["holder"][4].split(" / ")[0]) >= 57, rows["holder"]
    assert rows["busy"][8] == "1" and rows["busy"][1] == "busy"

    client = dockerpy_client(service)
    s = client.containers.get("busy").stats(stream=False)
    assert s["name"] == "/busy" and s["id"] == _inspect("busy")["Id"]
    cpu_delta = s["cpu_stats"]["cpu_usage"]["total_usage"] - \
        s["precpu_stats"]["cpu_usage"]["total_usage"]
    sys_delta = s["cpu_stats"]["system_cpu_usage"] - s["precpu_stats"]["system_cpu_usage"]
    assert s["cpu_stats"]["online_cpus"] == os.cpu_count()
    assert 0.4 <= cpu_delta / sys_delta * s["cpu_stats"]["online_cpus"] <= 1.1, s
    assert s["pids_stats"]["current"] == 1
    h = client.containers.get("holder").stats(stream=False)
    assert h["memory_stats"]["usage"] >= 60_000_000 and h["memory_stats"]["limit"] > 0
    n = client.containers.get("net").stats(stream=False)
    assert set(n["networks"]) == {"eth0"} and n["networks"]["eth0"]["rx_bytes"] >= 0
    assert set(n["blkio_stats"]["io_service_bytes_recursive"][0]) == {
        "major", "minor", "op", "value"}
    one = client.api.stats("busy", stream=False, one_shot=True)
    assert one["precpu_stats"]["cpu_usage"]["total_usage"] == 0   # at once, no second sample
    frames = client.containers.get("busy").stats(stream=True, decode=True)
    first, second = next(frames), next(frames)
    assert second["precpu_stats"]["cpu_usage"]["total_usage"] == \
        first["cpu_stats"]["cpu_usage"]["total_usage"]
    frames.close()
    client.close()


# ------------------------------------------------------------------ update

def _child(ctrl: str, cid: str) -> Path:
    return TOP / ctrl / PARENT.lstrip("/") / f"dockish-{cid}"


@pytest.mark.usefixtures("no_leftovers")
def test_update_changes_a_running_containers_limits_at_once(bb):
    cid = ok("run", "-d", "--name", "lim", "--network", "none", "--cgroup-parent", PARENT,
             "--pids-limit", "20", bb, "sleep", "600").strip()
    forks = ["exec", "lim", "sh", "-c", "sleep 5 & sleep 5 & sleep 5 & sleep 5 & wait; echo ok"]
    assert ok(*forks) == "ok\n"
    assert ok("update", "--pids-limit", "3", "lim") == "lim\n"         # Docker's output
    assert (_child("pids", cid) / "pids.max").read_text() == "3\n"
    res = dockish(*forks)                                             # 2 there + sh + 4
    assert "can't fork" in res.stderr or "Resource temporarily unavailable" in res.stderr, res
    assert _inspect("lim")["HostConfig"]["PidsLimit"] == 3
    assert ok("update", "--pids-limit", "50", cid[:12]) == cid[:12] + "\n"
    assert ok(*forks) == "ok\n"                                       # raised: forks again
    # memory (with swap, as Docker asks) and CPU: written at once, shown by inspect
    ok("update", "-m", "64m", "--memory-swap", "128m", "--cpus", "0.5", "-c", "512", "lim")
    mem, cpu = _child("memory", cid), _child("cpu", cid)
    assert (mem / "memory.limit_in_bytes").read_text() == f"{64 << 20}\n"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "50000\n"
    assert (cpu / "cpu.shares").read_text() == "512\n"
    assert ok("exec", "lim", "cat", "/proc/self/cgroup").count(f"dockish-{cid}") == 3
    ok("update", "-m", "256m", "--memory-swap", "512m", "lim")        # raised past memsw
    assert (mem / "memory.limit_in_bytes").read_text() == f"{256 << 20}\n"
    host = _inspect("lim")["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["CpuShares"]) == \
        (256 << 20, 512 << 20, 500_000_000, 512)
    # the procs the container had are now in the cgroups it got by the update
    init = str(_inspect("lim")["State"]["Pid"])
    assert init in (mem / "cgroup.procs").read_text().split()
    ok("stop", "-t", "0", "lim")
    end = time.monotonic() + 10                                       # the monitor removes
    while _child("pids", cid).exists() or mem.exists() or cpu.exists():   # them all, the
        assert time.monotonic() < end, "the container's cgroups stayed"   # update's too
        time.sleep(0.1)
    # Docker's refusals, in its words, exit 1
    res = dockish("update", "-m", "1g", "lim")
    assert (res.returncode, res.stdout, res.stderr) == (1, "", (
        f"Error response from daemon: Cannot update container {cid}: Memory limit should be "
        "smaller than already set memoryswap limit, update the memoryswap at the same time\n"))
    res = dockish("update", "--cpu-quota", "20000", "lim")
    assert res.returncode == 1 and res.stderr.endswith(
        "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set\n")
    res = dockish("update", "--pids-limit", "5", "nosuch")
    assert (res.returncode, res.stderr) == (
        1, "Error response from daemon: No such container: nosuch\n")
    res = dockish("update", "lim")
    assert res.returncode == 1 and "you must provide one or more flags" in res.stderr


@pytest.mark.usefixtures("no_leftovers")
def test_update_without_delegation_warns_and_records(bb):
    ok("run", "-d", "--name", "plain", "--network", "none", bb, "sleep", "600")
    res = dockish("update", "--pids-limit", "5", "plain")
    assert res.returncode == 0 and res.stderr == "", res
    lines = res.stdout.splitlines()
    assert lines[0] == "plain" and len(lines) == 2, lines
    assert lines[1].startswith("WARNING: Resource limits are not applied: ")
    assert _inspect("plain")["HostConfig"]["PidsLimit"] == 5


@pytest.mark.usefixtures("no_leftovers")
def test_update_restart_takes_effect_at_the_next_exit(bb):
    ok("run", "-d", "--name", "flaky", "--network", "none", bb, "sh", "-c", "sleep 2; exit 3")
    assert ok("update", "--restart", "on-failure:2", "flaky") == "flaky\n"
    end = time.monotonic() + 60
    while not (_inspect("flaky")["RestartCount"] == 2 and
               _inspect("flaky")["State"]["Status"] == "exited"):
        assert time.monotonic() < end, _inspect("flaky")["State"]
        time.sleep(0.2)
    assert _inspect("flaky")["HostConfig"]["RestartPolicy"] == {
        "Name": "on-failure", "MaximumRetryCount": 2}
    ok("run", "-d", "--name", "loop", "--network", "none", "--restart", "always", bb, "sh",
       "-c", "sleep 2; exit 1")
    ok("update", "--restart", "no", "loop")
    time.sleep(4)
    st = _inspect("loop")
    assert (st["State"]["Status"], st["RestartCount"]) == ("exited", 0), st["State"]
    res = dockish("run", "-d", "--rm", "--name", "gone", "--network", "none", bb, "sleep", "60")
    cid = res.stdout.strip()
    res = dockish("update", "--restart", "always", "gone")
    assert (res.returncode, res.stderr) == (1, (
        f"Error response from daemon: Cannot update container {cid}: Restart policy cannot be "
        "updated because AutoRemove is enabled for the container\n"))


def test_docker_update_and_dockerpy_update_through_the_socket(service):  # noqa: F811
    cid = docker_ok(service, "run", "-d", "--name", "u", "--network", "none",
                    "--cgroup-parent", PARENT, "--pids-limit", "10", IMAGE, "sleep",
                    "600").strip()
    assert docker_ok(service, "update", "--pids-limit", "4", "--restart", "on-failure:1",
                     "u") == "u\n"
    assert (_child("pids", cid) / "pids.max").read_text() == "4\n"
    host = _inspect("u")["HostConfig"]
    assert (host["PidsLimit"], host["RestartPolicy"]) == (
        4, {"Name": "on-failure", "MaximumRetryCount": 1})
    client = dockerpy_client(service)
    reply = client.containers.get("u").update(mem_limit="64m", memswap_limit="128m")
    assert reply == {"Warnings": None}
    assert (_child("memory", cid) / "memory.limit_in_bytes").read_text() == f"{64 << 20}\n"
    docker_ok(service, "run", "-d", "--name", "p", "--network", "none", IMAGE, "sleep", "600")
    out = docker_ok(service, "update", "--pids-limit", "5", "p").splitlines()
    assert out[0] == "p" and out[1].startswith("WARNING: Resource limits are not applied")
    res = docker(service, "update", "--cpuset-cpus", "0", "p")
    assert res.returncode == 1 and "CpusetCpus" in res.stderr, res.stderr
    client.close()


# ------------------------------------------------------------------ system df, one number

def test_system_df_is_the_same_through_the_socket(service):  # noqa: F811
    """`docker system df` (-v) through the API and `dockish system df` show
    the same rows: one engine call, Docker's arithmetic on both sides."""
    docker_ok(service, "tag", IMAGE, "second:1")           # the same layers twice: shared
    docker_ok(service, "run", "--name", "used", "--network", "none", "-v", "kept:/k", IMAGE,
              "sh", "-c", "echo data > /k/f; echo x > /y")
    docker_ok(service, "volume", "create", "spare")
    ctx = service.home / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo built > /built\n")
    ok("build", "-q", "-t", "built:1", str(ctx))            # a build cache record
    for args in (("system", "df"), ("system", "df", "--format", "{{json .}}"),
                 ("system", "df", "-v", "--format", "{{range .BuildCache}}{{.ID}} "
                  "{{.CacheType}} {{.Size}} {{.Shared}}\n{{end}}"),
                 ("system", "df", "-v", "--format", "{{range .Images}}{{.Repository}} "
                  "{{.Size}} {{.SharedSize}} {{.UniqueSize}} {{.Containers}}\n{{end}}")):
        mine = ok(*args)
        assert docker_ok(service, *args) == mine, args
    rows = {r["Type"]: r for r in map(json.loads, ok(
        "system", "df", "--format", "json").splitlines())}
    print("system df:", rows)
    assert rows["Images"]["Active"] == "1" and rows["Local Volumes"]["Active"] == "1"
    assert rows["Build Cache"]["TotalCount"] != "0"
    cache = ok("system", "df", "-v").split("Build cache usage: ")[1].splitlines()
    assert cache[2].startswith("CACHE ID") and len(cache) > 3, cache


# ------------------------------------------------------------------ the rules (pure)

@pytest.mark.pure
def test_docker_clis_arithmetic_on_a_sample():
    sample = {"id": "c" * 64, "name": "/web",
              "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000},
                            "system_cpu_usage": 10_000_000_000, "online_cpus": 2},
              "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000},
                               "system_cpu_usage": 8_000_000_000},
              "memory_stats": {"usage": 100 << 20, "limit": 1 << 30,
                               "stats": {"total_inactive_file": 36 << 20}},
              "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 250},
                           "eth1": {"rx_bytes": 500, "tx_bytes": 0}},
              "blkio_stats": {"io_service_bytes_recursive": [
                  {"op": "Read", "value": 4096}, {"op": "write", "value": 12_300_000}]},
              "pids_stats": {"current": 7}}
    assert statsmod.row(sample, "web") == {
        "Container": "web", "Name": "web", "ID": "c" * 12, "CPUPerc": "100.00%",
        "MemUsage": "64MiB / 1GiB", "MemPerc": "6.25%", "NetIO": "2kB / 250B",
        "BlockIO": "4.1kB / 12.3MB", "PIDs": "7"}
    assert statsmod.row(statsmod.empty("d" * 64, "idle"), "idle", trunc=False) == {
        "Container": "idle", "Name": "idle", "ID": "d" * 64, "CPUPerc": "0.00%",
        "MemUsage": "0B / 0B", "MemPerc": "0.00%", "NetIO": "0B / 0B", "BlockIO": "0B / 0B",
        "PIDs": "0"}
    v2 = {"usage": 100, "stats": {"inactive_file": 40}}
    assert statsmod.memory_used(v2) == 60 and statsmod.memory_used({"usage": 5}) == 5


@pytest.mark.pure
def test_proc_and_cgroup_files_are_read_as_the_kernel_writes_them():
    tick = os.sysconf("SC_CLK_TCK")
    stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400\n"
    assert statsmod.system_cpu_ns(stat) == 1000 * 1_000_000_000 // tick
    assert statsmod.online_cpus(stat) == 2
    line = "42 (sh (odd) name) S 1 42 42 0 -1 4194560 1 0 0 0 30 20 5 3 20 0 1 0 9 0 0"
    assert statsmod.proc_cpu_ticks(line) == (35, 23)
    dev = ("Inter-|   Receive   |  Transmit\n face |bytes packets errs drop fifo frame "
           "compressed multicast|bytes packets errs drop fifo colls carrier compressed\n"
           "    lo:  900  9 0 0 0 0 0 0  900 9 0 0 0 0 0 0\n"
           "  tap0: 1200 10 1 2 0 0 0 0  340 4 0 3 0 0 0 0\n")
    assert statsmod.net_dev(dev) == {"eth0": {
        "rx_bytes": 1200, "rx_packets": 10, "rx_errors": 1, "rx_dropped": 2,
        "tx_bytes": 340, "tx_packets": 4, "tx_errors": 0, "tx_dropped": 3}}
    assert statsmod.io_stat_bytes("8:0 rbytes=10 wbytes=20 rios=1\n8:16 rbytes=5 wbytes=0\n") \
        == (15, 20)
    assert statsmod.keyed("read_bytes: 4096\nwrite_bytes: 8\n") == {"read_bytes": 4096,
                                                                     "write_bytes": 8}


@pytest.mark.pure
def test_update_merges_as_dockers_daemon():
    assert merged({"Memory": 64 << 20}, {"Memory": 100 << 20}, "c") == {
        "Memory": 100 << 20, "MemorySwap": 128 << 20}          # the old 2x swap kept
    assert merged({"PidsLimit": 9, "CpuShares": 100}, {"PidsLimit": -1, "CpuShares": 1}, "c") \
        == {"CpuShares": 2}
    assert merged({}, {"CpuPeriod": 50000, "CpuQuota": 25000}, "c") == {
        "CpuPeriod": 50000, "CpuQuota": 25000}
    for old, given, words in (
            ({}, {"Memory": 64 << 20}, "update the memoryswap at the same time"),
            ({}, {"Memory": 1 << 20, "MemorySwap": -1}, "Minimum memory limit allowed is 6MB"),
            ({"CpuQuota": 5000}, {"NanoCpus": 10**9}, "Nano CPUs cannot be updated as CPU "
             "Quota has already been set"),
            ({}, {"MemorySwap": 1 << 30}, "You should always set the Memory limit"),
            ({}, {"CpuPeriod": 10}, "CPU cfs period can not be less than 1ms")):
        with pytest.raises(UpdateError) as e:
            merged(old, given, "c")
        assert str(e.value).startswith("Cannot update container c: ") and words in str(e.value)


@pytest.mark.pure
def test_update_writes_a_v2_cgroup_and_takes_a_limit_away(tmp_path):
    """cgroup v2 (a made-up tree: this machine's v2 has no controllers to
    delegate): the new values go into the container's one directory, a
    limit taken away is ``max`` again; a parent that does not hand a
    controller down is the one warning line."""
    from runner.runtime import cgroups
    from runner.runtime.procopts import parse
    top = tmp_path / "cgroup"
    parent = top / "deleg"
    child = parent / "dockish-c1"
    child.mkdir(parents=True)
    (top / "cgroup.controllers").write_text("cpu memory pids\n")
    (parent / "cgroup.subtree_control").write_text("cpu memory pids\n")
    for name in ("pids.max", "memory.max", "memory.swap.max", "cpu.max", "cgroup.procs"):
        (child / name).write_text("")
    process = parse(pids_limit=5, memory="64m", memory_swap="128m", cgroup_parent="/deleg")
    process["limits"] = merged(process["limits"], {"PidsLimit": -1, "NanoCpus": 500_000_000},
                               "c1")
    paths, warnings = cgroups.update("c1", ["deleg/dockish-c1"], process, [], str(top))
    assert (paths, warnings) == (["deleg/dockish-c1"], [])
    assert {f: (child / f).read_text() for f in ("pids.max", "memory.max", "memory.swap.max",
                                                  "cpu.max")} == {
        "pids.max": "max", "memory.max": str(64 << 20), "memory.swap.max": str(64 << 20),
        "cpu.max": "50000 100000"}
    (parent / "cgroup.subtree_control").write_text("pids\n")    # memory not enabled
    made, warnings = cgroups.update("c2", [], parse(memory="64m", memory_swap="-1",
                                                    cgroup_parent="/deleg"), [], str(top))
    assert made == [] and warnings == [cgroups.not_applied(
        f"the memory controllers are not enabled for the children of {parent} (cgroup v2)",
        True, cgroups.user_name())]
