"""Resource limits applied where a cgroup is delegated (issue 14): real
containers under the subtree ``scripts/delegate-cgroups`` gives the test
user (``/sys/fs/cgroup/{pids,memory,cpu}/dockish-USER``), reached through
``--cgroup-parent`` and, in one test, as the default parent (the command
runs inside it). Forks beyond ``--pids-limit`` fail inside, ``-m`` ends a
memory hog with 137 and ``State.OOMKilled``, ``--cpus`` holds a busy loop
to its share; the one warning line when nothing is delegated; the child
cgroup gone after stop, ``rm``, ``run --rm`` and a killed monitor.

The v2 rules (file names, value formats) are pure tests: this machine is
hybrid (v1 controllers, an empty cgroup2), where v2 controllers cannot be
delegated."""
from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

import pytest

from runner.errors import DockishError, UsageError
from runner.runtime import cgroups
from runner.runtime.procopts import parse

from .diffbase import dockish_exe
from .runbed import dockish, no_leftovers, ok  # noqa: F401 - a fixture
from .test_api import docker, service  # noqa: F401 - a fixture
from .test_api import ok as docker_ok

TOP = Path("/sys/fs/cgroup")
USER = pwd.getpwuid(os.getuid()).pw_name
PARENT = f"/dockish-{USER}"          # what scripts/delegate-cgroups made for us


def _child(ctrl: str, cid: str) -> Path:
    return TOP / ctrl / PARENT.lstrip("/") / f"dockish-{cid}"


def _inspect(name: str) -> dict:
    return json.loads(ok("inspect", name))[0]


def _wait_for(pred, timeout: float = 20.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _run(bb: str, *flags: str, cmd: str, rm: bool = True) -> subprocess.CompletedProcess:
    return dockish("run", *(["--rm"] if rm else []), "--network", "none", *flags, bb,
                   "sh", "-c", cmd)


# ------------------------------------------------------------------ real limits

@pytest.mark.usefixtures("no_leftovers")
def test_pids_limit_stops_forks_inside_and_shows_in_the_cgroup(bb):
    res = _run(bb, "--cgroup-parent", PARENT, "--pids-limit", "20",
               cmd="i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo forked")
    assert "Resource temporarily unavailable" in res.stderr, res.stderr
    assert "WARNING" not in res.stderr                 # delegated: nothing to say
    cid = ok("run", "-d", "--network", "none", "--cgroup-parent", PARENT, "--pids-limit", "20",
             bb, "sleep", "60").strip()
    assert (_child("pids", cid) / "pids.max").read_text() == "20\n"
    # the container's init is inside, not dockish's own processes around it
    procs = (_child("pids", cid) / "cgroup.procs").read_text().split()
    assert procs == [str(_inspect(cid)["State"]["Pid"])]
    # an exec'd process enters it too
    assert f"pids:{PARENT}/dockish-{cid}" in ok("exec", cid, "cat", "/proc/self/cgroup")
    assert _inspect(cid)["HostConfig"]["CgroupParent"] == PARENT
    ok("stop", "-t", "0", cid)
    assert not _child("pids", cid).exists()            # the monitor removed it
    ok("rm", cid)


@pytest.mark.usefixtures("no_leftovers")
def test_memory_limit_oom_kills_with_137_and_oomkilled(bb):
    cid = ok("run", "-d", "--network", "none", "--cgroup-parent", PARENT, "-m", "32m", bb,
             "sleep", "60").strip()
    mem = _child("memory", cid)
    assert (mem / "memory.limit_in_bytes").read_text() == f"{32 << 20}\n"
    if (mem / "memory.memsw.limit_in_bytes").exists():    # Docker's default: swap = memory
        assert (mem / "memory.memsw.limit_in_bytes").read_text() == f"{64 << 20}\n"
    host = _inspect(cid)["HostConfig"]
    assert (host["Memory"], host["MemorySwap"]) == (32 << 20, 64 << 20)
    ok("rm", "-f", cid)
    assert not mem.exists()
    res = dockish("run", "--name", "hog", "--network", "none", "--cgroup-parent", PARENT,
                  "-m", "32m", bb, "tail", "/dev/zero")
    assert res.returncode == 137, res.stderr
    state = _inspect("hog")["State"]
    assert (state["OOMKilled"], state["ExitCode"]) == (True, 137)
    assert ok("inspect", "-f", "{{.State.OOMKilled}}", "hog") == "true\n"
    ok("rm", "hog")
    # a container that ends on its own was not OOM killed
    assert _run(bb, "--name", "fine", "--cgroup-parent", PARENT, "-m", "32m", cmd="true",
                rm=False).returncode == 0
    assert _inspect("fine")["State"]["OOMKilled"] is False


@pytest.mark.usefixtures("no_leftovers")
def test_cpus_holds_a_busy_loop_to_its_share(bb):
    cid = ok("run", "-d", "--network", "none", "--cgroup-parent", PARENT, "--cpus", "0.5", bb,
             "sh", "-c", "while :; do :; done").strip()
    cpu = _child("cpu", cid)
    assert (cpu / "cpu.cfs_quota_us").read_text() == "50000\n"
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000\n"
    pid = _inspect(cid)["State"]["Pid"]
    tick = os.sysconf("SC_CLK_TCK")

    def used() -> float:          # the loop's CPU seconds (utime + stime)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick
    t0, c0 = time.monotonic(), used()
    time.sleep(3)
    ratio = (used() - c0) / (time.monotonic() - t0)
    stat = dict(line.split() for line in (cpu / "cpu.stat").read_text().splitlines())
    ok("rm", "-f", cid)
    assert 0 < ratio < 0.75, ratio                    # about half a CPU, never a whole one
    assert int(stat["nr_throttled"]) > 0              # the quota held it back
    assert not cpu.exists()
    # -c, --cpu-period and --cpu-quota as given
    cid = ok("run", "-d", "--network", "none", "--cgroup-parent", PARENT, "-c", "512",
             "--cpu-period", "50000", "--cpu-quota", "25000", bb, "sleep", "60").strip()
    cpu = _child("cpu", cid)
    assert [(cpu / f).read_text() for f in ("cpu.shares", "cpu.cfs_period_us",
                                            "cpu.cfs_quota_us")] == ["512\n", "50000\n",
                                                                     "25000\n"]
    host = _inspect(cid)["HostConfig"]
    assert (host["CpuShares"], host["CpuPeriod"], host["CpuQuota"], host["NanoCpus"]) == \
        (512, 50000, 25000, 0)
    ok("rm", "-f", cid)
    res = dockish("create", "--cpus", "1", "--cpu-quota", "5000", bb, "true")
    assert (res.returncode, res.stderr.strip()) == (
        125, "dockish: error: Conflicting options: Nano CPUs and CPU Quota cannot both be set")


@pytest.mark.usefixtures("no_leftovers")
def test_keep_id_containers_and_their_execs_enter_the_cgroup_too(bb):
    """--userns=keep-id: root inside is a subordinate id, which may not move
    itself into the user's cgroup; the holder enters it before that."""
    cid = ok("run", "-d", "--network", "none", "--userns=keep-id", "--cgroup-parent", PARENT,
             "--pids-limit", "20", bb, "sleep", "60").strip()
    for out in (ok("exec", cid, "cat", "/proc/1/cgroup"),
                ok("exec", cid, "cat", "/proc/self/cgroup")):
        assert f"pids:{PARENT}/dockish-{cid}\n" in out, out
    ok("rm", "-f", cid)
    assert not _child("pids", cid).exists()


# ------------------------------------------------------------------ the one warning line

@pytest.mark.usefixtures("no_leftovers")
def test_no_delegation_is_one_line_and_no_limits_no_line(bb):
    assert _run(bb, cmd="echo quiet").stderr == ""        # no limits: no line
    for flags in (["--cgroup-parent", "/"], []):          # root's cgroup; our own (root's)
        res = _run(bb, *flags, "--pids-limit", "50", "-m", "64m", "--cpus", "1.5",
                   cmd="echo ran")
        assert (res.returncode, res.stdout) == (0, "ran\n"), res.stderr
        lines = res.stderr.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("WARNING: Resource limits are not applied: the cgroup "
                                   "/sys/fs/cgroup/pids is not delegated to you; an admin "
                                   "delegates one: sudo sh -c 'for c in pids memory cpu;")
        assert f"--cgroup-parent /dockish-{USER}" in lines[0]
    cid = ok("create", "--pids-limit", "50", "-m", "64m", "--cpus", "1.5", bb, "true").strip()
    host = _inspect(cid)["HostConfig"]
    assert (host["PidsLimit"], host["Memory"], host["NanoCpus"], host["CgroupParent"]) == \
        (50, 64 << 20, 1500000000, "")
    res = dockish("run", "--rm", "--cgroup-parent", "../up", "--pids-limit", "5", bb, "true")
    assert res.returncode == 125
    assert res.stderr.strip().splitlines() == [
        "dockish: error: invalid --cgroup-parent '../up': '.' and '..' are not allowed"]
    res = dockish("create", "--memory-swap", "1g", bb, "true")
    assert (res.returncode, res.stderr.strip()) == (
        125, "dockish: error: You should always set the Memory limit when using Memoryswap "
        "limit, see usage")


def test_the_default_parent_is_the_users_own_delegated_cgroup(bb):
    """The command run inside the delegated cgroup: its children go there
    without --cgroup-parent, and nothing is said."""
    move = " ".join(f"echo $$ > {TOP / c / PARENT.lstrip('/')}/cgroup.procs;"
                    for c in ("pids", "memory", "cpu"))
    res = subprocess.run(["sh", "-c", f"{move} exec \"$@\"", "sh", dockish_exe(), "run",
                          "--rm", "--network", "none", "--pids-limit", "7", bb,
                          "cat", "/proc/self/cgroup"],
                         capture_output=True, text=True, timeout=120)
    assert (res.returncode, res.stderr) == (0, ""), res.stderr
    line = next(ln for ln in res.stdout.splitlines() if ":pids:" in ln)
    assert line.split(":", 2)[2].startswith(f"{PARENT}/dockish-")


# ------------------------------------------------------------------ clean-up

@pytest.mark.usefixtures("no_leftovers")
def test_the_child_cgroup_goes_with_run_rm_rm_and_a_killed_monitor(bb, dockish_root):
    res = _run(bb, "--cgroup-parent", PARENT, "--pids-limit", "9",
               cmd="cat /proc/self/cgroup")
    cid = next(ln for ln in res.stdout.splitlines() if ":pids:" in ln).rsplit("dockish-", 1)[1]
    assert not _child("pids", cid).exists()             # run --rm
    cid = ok("create", "--network", "none", "--cgroup-parent", PARENT, "--pids-limit", "9",
             bb, "sleep", "60").strip()
    ok("start", cid)
    assert _child("pids", cid).is_dir()
    ok("rm", "-f", cid)
    assert not _child("pids", cid).exists()             # rm -f
    cid = ok("run", "-d", "--network", "none", "--cgroup-parent", PARENT, "--pids-limit", "9",
             bb, "sleep", "60").strip()
    st = json.loads((Path(dockish_root) / "containers" / cid / "state.json").read_text())
    os.kill(st["monitor_pid"], signal.SIGKILL)           # the session killed outright
    os.kill(st["holder_pid"], signal.SIGKILL)
    _wait_for(lambda: not Path(f"/proc/{st['holder_pid']}").exists(), what="the holder")
    assert _child("pids", cid).is_dir()                 # nobody left to remove it...
    assert cid in ok("ps", "-a", "-q", "--no-trunc")
    assert not _child("pids", cid).exists()             # ...but the next command did
    ok("rm", cid)


# ------------------------------------------------------------------ info and check

def test_info_and_check_say_what_is_delegated_and_where(tmp_path):
    info = ok("info")
    assert " Cgroup Driver: cgroupfs\n Cgroup Version: 1\n" \
        f" Cgroup Delegated: pids, memory, cpu at {PARENT}\n" in info
    assert ok("info", "-f", "{{.CgroupDriver}} {{.CgroupDelegated}}") == \
        f"cgroupfs pids, memory, cpu at {PARENT}\n"
    recs = {r["name"]: r for r in json.loads(dockish("check", "--format", "json").stdout)}
    assert (recs["cgroups"]["ok"], recs["cgroups"]["detail"]) == (
        True, f"cgroup v1, delegated: pids, memory, cpu at {PARENT} (--cgroup-parent, or run "
        "inside it: the default parent)")
    # a tree where only pids is ours (the user's own cgroup: the default parent)
    top = tmp_path / "cgroup"
    for c in ("pids", "memory", "cpu"):
        (top / c).mkdir(parents=True)
    os.chmod(top / "memory", 0o555)          # not writable: not delegated
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "cgroup").write_text("3:pids:/\n2:memory:/\n1:cpu:/x\n")
    env = dict(os.environ, DOCKISH_PREFLIGHT_CGROUP=str(top),
               DOCKISH_PREFLIGHT_PROC=str(tmp_path / "proc"))
    res = subprocess.run([dockish_exe(), "check", "--format", "json"], capture_output=True,
                         text=True, env=env)
    rec = {r["name"]: r for r in json.loads(res.stdout)}["cgroups"]
    assert (rec["ok"], rec["detail"]) == (False, "cgroup v1, delegated: pids at /; not memory, "
                                                 "cpu: those limits are not applied")
    assert rec["fix"].startswith(f"sudo sh -c 'for c in pids memory cpu; do mkdir -p "
                                 f"/sys/fs/cgroup/$c/dockish-{USER} && chown -R {USER} ")


# ------------------------------------------------------------------ the API

def test_docker_cli_oomkilled_and_limits_through_the_socket(service):  # noqa: F811
    res = docker(service, "run", "--name", "hog", "--network", "none", "--cgroup-parent",
                 PARENT, "-m", "32m", "busybox", "tail", "/dev/zero")
    assert res.returncode == 137, (res.stderr, service.logs())
    assert docker_ok(service, "inspect", "-f", "{{.State.OOMKilled}} {{.HostConfig.Memory}} "
                     "{{.HostConfig.CgroupParent}}", "hog") == f"true {32 << 20} {PARENT}\n"
    assert docker_ok(service, "info", "-f", "{{.CgroupDriver}} {{.CgroupVersion}}") == \
        "cgroupfs 1\n"
    res = docker(service, "run", "--rm", "--network", "none", "--pids-limit", "5", "busybox",
                 "true")
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith("WARNING: Resource limits are not applied: "), res.stderr


# ------------------------------------------------------------------ the rules (pure)

@pytest.mark.pure
def test_v1_and_v2_files_and_values():
    limits = parse(pids_limit=20, memory="32m", cpus="0.5")["limits"]
    assert cgroups.v1_files(limits) == {
        "pids": [("pids.max", "20")],
        "memory": [("memory.limit_in_bytes", str(32 << 20)),
                   ("memory.memsw.limit_in_bytes", str(64 << 20))],
        "cpu": [("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "50000")]}
    assert cgroups.v1_files(limits, memsw=False)["memory"] == [
        ("memory.limit_in_bytes", str(32 << 20))]
    assert cgroups.v2_files(limits) == [
        ("pids.max", "20"), ("memory.max", str(32 << 20)),
        ("memory.swap.max", str(32 << 20)), ("cpu.max", "50000 100000")]
    assert cgroups.v2_controllers(limits) == ["cpu", "memory", "pids"]
    unlimited_swap = parse(memory="1g", memory_swap="-1")["limits"]
    assert cgroups.v2_files(unlimited_swap) == [("memory.max", str(1 << 30)),
                                                ("memory.swap.max", "max")]
    assert cgroups.v1_files(unlimited_swap) == {
        "memory": [("memory.limit_in_bytes", str(1 << 30))]}
    no_swap = parse(memory="1g", memory_swap="1g")["limits"]
    assert cgroups.v2_files(no_swap)[1] == ("memory.swap.max", "0")
    assert cgroups.v1_files(parse(cpus="1.5")["limits"])["cpu"][1] == \
        ("cpu.cfs_quota_us", "150000")
    assert cgroups.v1_files(parse(pids_limit=-1)["limits"]) == {}     # -1: unlimited
    given = parse(cpu_shares=1024, cpu_period=50000, cpu_quota=20000)["limits"]
    assert cgroups.v1_files(given) == {"cpu": [
        ("cpu.shares", "1024"), ("cpu.cfs_period_us", "50000"), ("cpu.cfs_quota_us", "20000")]}
    assert cgroups.v2_files(given) == [("cpu.weight", "39"), ("cpu.max", "20000 50000")]
    assert cgroups.v2_files(parse(cpu_period=50000)["limits"]) == [("cpu.max", "max 50000")]
    assert cgroups.cpu_weight(2) == 1 and cgroups.cpu_weight(262144) == 10000
    assert cgroups.v2_files({}) == [] and cgroups.v1_files({}) == {}


@pytest.mark.pure
def test_own_cgroups_parent_paths_and_oom_counts():
    text = ("12:pids:/user.slice/user-1000.slice\n4:cpu,cpuacct:/a\n"
            "1:name=systemd:/x\n0::/user.slice/user-1000.slice/session-1.scope\n")
    own = cgroups.own_cgroups(text)
    assert own["pids"] == ("pids", "/user.slice/user-1000.slice")
    assert own["cpu"] == own["cpuacct"] == ("cpu,cpuacct", "/a")
    assert own[cgroups.V2] == ("", "/user.slice/user-1000.slice/session-1.scope")
    assert "name=systemd" not in own and "systemd" not in own
    assert cgroups.parent_path("", "/me") == "/me"
    assert cgroups.parent_path("/dockish-u", "/me") == "/dockish-u"
    assert cgroups.parent_path("ci/jobs", "/me") == "/me/ci/jobs"
    with pytest.raises(UsageError):
        cgroups.parent_path("/a/../b", "/me")
    assert cgroups.oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n") == 2
    assert cgroups.oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n") == 1
    assert cgroups.oom_kills("oom_kill_disable 0\nunder_oom 0\n") == 0
    assert cgroups.memory_swap({"Memory": 100}) == 200
    assert cgroups.memory_swap({"Memory": 100, "MemorySwap": -1}) == -1
    assert cgroups.memory_swap({}) == 0
    with pytest.raises(DockishError, match="Minimum memoryswap limit"):
        parse(memory="64m", memory_swap="32m")
    with pytest.raises(DockishError, match="Minimum memory limit allowed is 6MB"):
        parse(memory="1m")
    for kw, words in (({"cpus": "1", "cpu_period": 50000}, "Nano CPUs and CPU Period"),
                      ({"cpu_quota": 10}, "CPU cfs quota can not be less than 1ms"),
                      ({"cpu_period": 10}, "CPU cfs period can not be less than 1ms"),
                      ({"cpu_shares": -1}, "invalid CPU shares (-1)"),
                      ({"cpus": "0.001"}, "Range of CPUs is from 0.01 to")):
        with pytest.raises(DockishError, match=words.replace("(", r"\(").replace(")", r"\)")):
            parse(**kw)


@pytest.mark.pure
def test_find_reads_a_delegated_v2_tree(tmp_path):
    """v2 through a made-up tree: a parent with the controllers enabled for
    its children is used; without them, the reason names them."""
    top = tmp_path / "cgroup"
    own = top / "user.slice" / "user@1000.service"
    own.mkdir(parents=True)
    (top / "cgroup.controllers").write_text("cpu memory pids\n")
    (own / "cgroup.subtree_control").write_text("memory pids\n")
    proc = tmp_path / "cgroup.txt"
    proc.write_text("0::/user.slice/user@1000.service\n")
    process = parse(pids_limit=5, memory="64m")
    place = cgroups.find(process, str(top), str(proc))
    assert isinstance(place, cgroups.Placement) and place.v2
    assert place.parents == {"": "/user.slice/user@1000.service"}
    assert [f for f, _ in place.files[""]] == ["pids.max", "memory.max", "memory.swap.max"]
    why = cgroups.find(parse(cpus="1"), str(top), str(proc))
    assert why == (f"the cpu controllers are not enabled for the children of "
                   f"{own} (cgroup v2)")
    assert "Delegate=cpu cpuset io memory pids" in cgroups.not_applied(why, True, "u")


@pytest.mark.pure
def test_cgroup_paths_are_walked_without_following_links(tmp_path):
    """A link where a cgroup directory should be is never followed: not to
    find a parent, not to remove a recorded child."""
    top = tmp_path / "cgroup"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "dockish-x").mkdir(parents=True)
    top.mkdir()
    (top / "pids").symlink_to(elsewhere)
    proc = tmp_path / "cgroup.txt"
    proc.write_text("1:pids:/\n")
    why = cgroups.find(parse(pids_limit=5), str(top), str(proc))
    assert why == f"the cgroup {top}/pids cannot be used (not a directory)"
    assert cgroups.make("x", parse(pids_limit=5), str(top)) is None
    assert cgroups.release(["pids/dockish-x"], str(top)) == (False, [])
    assert (elsewhere / "dockish-x").is_dir()              # left where it was
    with pytest.raises(cgroups.CgroupError, match="cannot enter the container's cgroup"):
        cgroups.open_procs(["pids/dockish-x"], str(top))
