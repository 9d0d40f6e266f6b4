"""Containers under load and when what started them goes away: eight
parallel ``run --rm`` of one image while pulls and prunes race them, a
closed terminal, a user session killed outright. After each, ``ps``, ``rm``
and ``mount`` must tell the truth and the store must be whole. Real
registry, namespaces and FUSE, as the unprivileged user."""
from __future__ import annotations

import os
import pty
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .diffbase import dockish_exe
from .registrybed import Registry, skopeo_push
from .runbed import dockish, drain, ok


@pytest.fixture(autouse=True)
def _no_leftovers(dockish_root, tmp_path, monkeypatch):
    cfg = tmp_path / "dockish-config.json"
    cfg.write_text("{}")
    monkeypatch.setenv("DOCKISH_CONFIG", str(cfg))
    yield
    ids = dockish("ps", "-a", "-q", "--no-trunc").stdout.split()
    if ids:
        dockish("rm", "-f", *ids)
    dockish("umount", "--all")


def store_problems(root: Path, *, orphans: bool = True) -> list[str]:
    """What is wrong with a store at rest: images missing a layer or blob;
    unreadable indexes; leftover scratch files; and (``orphans``) layers no
    image, container or cached build step uses."""
    from registry.store import ImageStore
    from runner.builder.buildcache import BuildCache
    from runner.runtime.container import container_refs
    store = ImageStore(root)
    recs = store.records()
    used = {d for r in recs for d in r.diff_ids} | container_refs(root)[1] | \
        BuildCache(root, store.layers).live_layers()
    layer_dir = root / "layers" / "sha256"
    stored = {"sha256:" + n for n in os.listdir(layer_dir)} if layer_dir.is_dir() else set()
    problems = [f"orphan layer {d}" for d in sorted(stored - used)] if orphans else []
    problems += [f"missing layer {d}" for d in sorted(used - stored)]
    for r in recs:
        try:
            store.get_blob(r.id)
        except Exception as e:               # noqa: BLE001 - reported
            problems.append(f"image {r.id}: config unreadable: {e}")
        for m in r.manifests:
            if not store.has_blob(m):
                problems.append(f"image {r.id}: manifest {m} missing")
    for d in used & stored:
        try:
            store.layers.load_index(d)
        except Exception as e:               # noqa: BLE001 - reported
            problems.append(f"layer {d}: index unreadable: {e}")
    tmp = root / "tmp"
    if tmp.is_dir():
        problems += [f"scratch file left: {n}" for n in os.listdir(tmp)]
    return problems


def fuse_mounts() -> list[str]:
    """The host's FUSE mounts that dockish made for this user (another
    user's runs on the same machine are theirs)."""
    mine = f"user_id={os.getuid()},"
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if " - fuse" in line and "dockish" in line
                and mine in line]


# ------------------------------------------------------------------ load

def test_eight_parallel_runs_while_pulls_and_prunes_race(bb, test_images, dockish_root,
                                                         tmp_path):
    """Eight `run --rm` of one image nobody has pulled yet (so eight pulls of
    it race too) and two pulls of another image, while `image prune -a`
    runs over and over: every command succeeds, every container sees its
    own writable layer, nothing is left behind and the store is whole."""
    reg = Registry(tmp_path / "registry")
    try:
        image = skopeo_push(reg, bb, "load/busybox:1")
        other = skopeo_push(reg, test_images["layered"].oci, "load/layered:1")
        script = "echo $HOSTNAME > /mine; sleep 0.3; cat /mine; ls /tmp | wc -l; touch /tmp/x"
        runs = [("run", "--rm", "--network", "none", image, "sh", "-c", script)] * 8
        jobs = runs[:4] + [("pull", "-q", other)] + runs[4:] + [("pull", "-q", other)]
        done = threading.Event()
        prunes = []

        def prune_until_done() -> None:            # prunes race every step of the runs
            while not done.is_set():
                prunes.append(dockish("image", "prune", "-a", "-f"))

        pruner = threading.Thread(target=prune_until_done)
        pruner.start()
        try:
            with ThreadPoolExecutor(len(jobs)) as pool:
                results = list(pool.map(lambda args: dockish(*args), jobs))
        finally:
            done.set()
            pruner.join()
        failed = [(j, r.returncode, r.stderr) for j, r in zip(jobs, results, strict=True)
                  if r.returncode != 0]
        failed += [("prune", r.returncode, r.stderr) for r in prunes if r.returncode != 0]
        assert not failed, failed
        assert len(prunes) >= 3
        print(f"{len(prunes)} prunes raced 8 runs and 2 pulls")
        seen = []
        for j, r in zip(jobs, results, strict=True):
            if j[0] == "run":
                host, count = r.stdout.split()
                assert count == "0"              # no other container's /tmp/x
                seen.append(host)
        assert len(set(seen)) == 8
        assert dockish("ps", "-a", "-q").stdout == ""
        assert not list((dockish_root / "containers").iterdir())
        assert store_problems(dockish_root) == []
        assert fuse_mounts() == []
        # what survived the prunes still runs and mounts
        ok("pull", "-q", image)
        assert ok("run", "--rm", "--network", "none", image, "echo", "after") == "after\n"
        ok("image", "prune", "-a", "-f")
        assert store_problems(dockish_root) == []
        assert not list((dockish_root / "layers" / "sha256").iterdir())
    finally:
        reg.stop()


# ------------------------------------------------------------------ a closed terminal

def _gone(pid: int, seconds: float = 10) -> bool:
    """``pid`` has ended (a zombie waiting for the system's init counts)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if Path(f"/proc/{pid}/stat").read_bytes().split(b") ")[1][:1] == b"Z":
                return True
        except (FileNotFoundError, ProcessLookupError):
            return True
        time.sleep(0.05)
    return False


def _wait_exit(pid: int, seconds: float) -> int:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError("dockish did not end when its terminal closed")


@pytest.mark.parametrize("rm", [False, True])
def test_a_closed_terminal_leaves_the_container_running_as_docker_does(bb, dockish_root, rm):
    """`run -it` in a terminal that is then closed: as with Docker and
    Podman, the container runs on (its shell gets no hangup and no EOF),
    `ps` says Up, the output so far is in `logs`; `stop` ends it, `ps -a`
    says so (with --rm it is gone) and no process or mount is left."""
    name = f"term-{int(rm)}"
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(dockish_exe(), [dockish_exe(), "run", "-it", *(["--rm"] if rm else []),
                                 "--name", name, "--network", "none", bb, "sh"])
    assert b"# " in drain(fd, 20, b"# ")
    os.write(fd, b"echo started\r")
    assert b"started" in drain(fd, 10, b"started\r\n")
    inner = int(ok("inspect", "-f", "{{.State.Pid}}", name))
    assert inner > 0
    os.close(fd)                                   # the terminal goes away
    time.sleep(1)
    assert os.path.exists(f"/proc/{inner}")
    assert ok("ps", "--format", "{{.Names}} {{.Status}}").startswith(f"{name} Up ")
    assert "started" in ok("logs", name)
    apid, afd = _attach_in_pty(name)                 # a new terminal takes it over
    os.write(afd, b"echo again-$((1+1))\r")
    assert b"again-2" in drain(afd, 15, b"again-2")
    os.write(afd, b"\x10\x11")
    assert _wait_exit(apid, 10) == 0
    os.close(afd)
    ok("stop", "-t", "1", name)
    assert _wait_exit(pid, 20) == 137
    assert _gone(inner)
    if rm:
        assert name not in ok("ps", "-a", "--format", "{{.Names}}")
    else:
        assert ok("ps", "-a", "--format", "{{.Names}} {{.Status}}").startswith(
            f"{name} Exited (137) ")
        ok("rm", name)
    assert not list((dockish_root / "containers").iterdir())
    assert fuse_mounts() == []


# ------------------------------------------------------------------ a killed session

def _subuid_range() -> range:
    import pwd
    user = pwd.getpwuid(os.getuid()).pw_name
    for line in Path("/etc/subuid").read_text().splitlines():
        name, start, count = line.split(":")
        if name in (user, str(os.getuid())):
            return range(int(start), int(start) + int(count))
    return range(0)


def _started_since(t0_ticks: int, spare: set[int]) -> list[int]:
    """Processes of this user (and of its subordinate uids) started after
    ``t0_ticks``: what logind would kill when the session ends."""
    ours = _subuid_range()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in spare:
            continue
        try:
            uid = os.stat(f"/proc/{name}").st_uid
            data = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        start = int(data[data.rindex(b")") + 2:].split()[19])
        if (uid == os.getuid() or uid in ours) and start >= t0_ticks:
            out.append(int(name))
    return out


def _ticks_now() -> int:
    """Now, in the clock ticks since boot that /proc/PID/stat counts in."""
    return int(float(Path("/proc/uptime").read_text().split()[0])
               * os.sysconf("SC_CLK_TCK")) + 1


def _ancestors() -> set[int]:
    out, pid = set(), os.getpid()
    while pid > 1:
        out.add(pid)
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        pid = int(stat[stat.rindex(b")") + 2:].split()[1])
    return out


def test_a_killed_session_leaves_the_truth_behind(bb, dockish_root, tmp_path):
    """Everything the user started is SIGKILLed at once, as logind does when
    a session ends: detached and attached containers, an exec, their
    monitors and view daemons, and inspection mounts. Afterwards nothing
    runs, `ps -a` tells it, --rm containers are gone, the mounts are gone,
    the other containers start again and `rm` removes them."""
    t0 = _ticks_now()
    time.sleep(0.05)
    ok("run", "-d", "--name", "bg", "--network", "none", bb, "sleep", "1000")
    ok("run", "-d", "-t", "--name", "bgtty", "--network", "none", bb, "sh", "-c",
       "echo data > /kept; sleep 1000")
    fg = subprocess.Popen([dockish_exe(), "run", "--name", "fg", "--network", "none", bb,
                           "sleep", "1000"], stdout=subprocess.DEVNULL)
    fgrm = subprocess.Popen([dockish_exe(), "run", "--rm", "--name", "fgrm", "--network",
                             "none", bb, "sleep", "1000"], stdout=subprocess.DEVNULL)
    ex = subprocess.Popen([dockish_exe(), "exec", "bg", "sleep", "1000"])
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    ok("mount", bb, str(ro))
    ok("mount", "--rw", "--upper", str(tmp_path / "upper"), bb, str(rw))
    (rw / "written").write_text("x")
    deadline = time.monotonic() + 30
    while len(ok("ps", "-q").split()) < 4:
        assert time.monotonic() < deadline, ok("ps", "-a")
        time.sleep(0.1)
    assert len(fuse_mounts()) == 2
    spare = _ancestors()
    victims = _started_since(t0, spare)
    assert len(victims) >= 12, victims           # monitors, holders, daemons, commands
    end = time.monotonic() + 15
    while victims:
        for p in victims:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert time.monotonic() < end, victims
        time.sleep(0.05)
        for child in (fg, fgrm, ex):
            child.poll()
        victims = _started_since(t0, spare)
    # the truth, from fresh commands
    assert ok("ps", "-q") == ""
    listed = {line.split()[0]: line for line in
              ok("ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines()}
    assert sorted(listed) == ["bg", "bgtty", "fg"]        # the --rm one is gone
    assert all("Exited" in s for s in listed.values()), listed
    # fusermount3's auto_unmount helper died with the session too: the next
    # `dockish mount` finds the dead mounts, cleans them and says so
    listing = dockish("mount")
    assert listing.returncode == 0 and listing.stdout.splitlines()[1:] == []
    assert listing.stderr.count("cleaned up the stale mount") == 2, listing.stderr
    assert fuse_mounts() == []
    assert (tmp_path / "upper").is_dir()
    # nothing was lost or left locked: the containers start again, the
    # writable layer mounts again, then everything is removed
    ok("start", "bgtty")
    assert ok("exec", "bgtty", "cat", "/kept") == "data\n"
    ok("mount", "--rw", "--upper", str(tmp_path / "upper"), bb, str(rw))
    assert (rw / "written").read_text() == "x"
    ok("umount", str(rw))
    ok("rm", "-f", "bg", "bgtty", "fg")
    assert not list((dockish_root / "containers").iterdir())
    # the image's layer, read from an OCI layout, stays cached for the next run
    assert store_problems(dockish_root, orphans=False) == []


def _attach_in_pty(name: str) -> tuple[int, int]:
    """`dockish attach NAME` in a new terminal, once it relays: Enter until
    the shell's prompt comes back (input typed before attach sets raw mode
    is flushed, as on a real terminal)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(dockish_exe(), [dockish_exe(), "attach", name])
    end = time.monotonic() + 20
    while b"# " not in drain(fd, 0.5, b"# "):
        assert time.monotonic() < end, "attach never relayed the prompt"
        os.write(fd, b"\r")
    return pid, fd


def test_attach_detach_and_reattach(bb, dockish_root):
    """`run -dit` then `attach`: the shell answers, Ctrl-P Ctrl-Q detaches
    and leaves it running, a second attach ends it and gets its code; a
    container without a terminal is followed from now to its end."""
    ok("run", "-dit", "--name", "sh1", "--network", "none", bb, "sh")
    pid, fd = _attach_in_pty("sh1")
    os.write(fd, b"echo hi-$((40+2))\r")
    assert b"hi-42" in drain(fd, 15, b"hi-42")
    os.write(fd, b"\x10\x11")                              # ctrl-p ctrl-q
    assert _wait_exit(pid, 10) == 0
    os.close(fd)
    assert ok("ps", "--format", "{{.Names}} {{.State}}").strip() == "sh1 running"
    pid, fd = _attach_in_pty("sh1")
    os.write(fd, b"exit 3\r")
    assert _wait_exit(pid, 15) == 3
    os.close(fd)
    assert ok("inspect", "-f", "{{.State.ExitCode}}", "sh1") == "3\n"
    res = dockish("attach", "sh1")
    assert res.returncode == 125 and "stopped container" in res.stderr
    ok("run", "-d", "--name", "quiet", "--network", "none", bb, "sh", "-c",
       "sleep 1; echo late; exit 4")
    res = dockish("attach", "quiet")
    assert (res.returncode, res.stdout) == (4, "late\n")


def _wait_status(name: str, text: str, seconds: float = 30) -> str:
    end = time.monotonic() + seconds
    while True:
        status = next((line.split(" ", 1)[1] for line in ok(
            "ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines()
            if line.split(" ", 1)[0] == name), "")
        if text in status:
            return status
        assert time.monotonic() < end, (name, status)
        time.sleep(0.2)


def test_healthchecks_from_run_flags_and_from_the_image(bb, dockish_root, tmp_path):
    """Docker's HEALTHCHECK: starting until a check passes, healthy, then
    unhealthy after --health-retries failures; ps and inspect show it; an
    image's HEALTHCHECK runs too, and --no-healthcheck turns it off."""
    import json
    ok("run", "-d", "--name", "hc", "--network", "none", "--health-cmd", "test -e /ready",
       "--health-interval", "0.5s", "--health-retries", "2", bb, "sh", "-c",
       "sleep 2; touch /ready; sleep 100")
    assert "(health: starting)" in _wait_status("hc", "(health: starting)")
    _wait_status("hc", "(healthy)")
    health = json.loads(ok("inspect", "-f", "{{json .State.Health}}", "hc"))
    assert health["Status"] == "healthy" and health["Log"][-1]["ExitCode"] == 0
    ok("exec", "hc", "rm", "/ready")
    _wait_status("hc", "(unhealthy)")
    health = json.loads(ok("inspect", "-f", "{{json .State.Health}}", "hc"))
    assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
    ok("rm", "-f", "hc")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {bb}\nHEALTHCHECK --interval=1s --retries=1 "
                                    f"CMD echo probing && false\nCMD [\"sleep\", \"100\"]\n")
    ok("build", "-q", "-t", "sick", str(ctx))
    ok("run", "-d", "--name", "sick", "--network", "none", "sick")
    _wait_status("sick", "(unhealthy)")
    log = json.loads(ok("inspect", "-f", "{{json .State.Health}}", "sick"))["Log"]
    assert log[-1]["Output"] == "probing\n"
    ok("run", "-d", "--name", "off", "--no-healthcheck", "--network", "none", "sick")
    time.sleep(2)
    assert "(" not in _wait_status("off", "Up")
    assert ok("inspect", "-f", "{{json .State.Health}}", "off") == "null\n"
