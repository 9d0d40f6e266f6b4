"""``dockish check`` and the warnings of ``dockish info``, as a user on a
broken machine sees them. Each problem is produced for real where an
unprivileged user can: user namespaces really blocked (``max_user_namespaces``
set to 0 inside a user namespace of our own, where we may), a PATH whose
``newuidmap`` is missing or not setuid, a ``fusermount3`` that is not setuid,
a ``/dev/fuse`` that is missing or unopenable. What only root could change
(the sysctls' values, /etc/subuid, a cgroup tree) is read through the
test-only path variables of ``runner.preflight``."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .runbed import no_leftovers  # noqa: F401 - a fixture

_ENTRY = "import sys; from runner.cli import main; sys.argv[0] = 'dockish'; main()"


def dockish(*args: str, env: dict | None = None, prefix: tuple[str, ...] = (),
            timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-c", _ENTRY, *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def check_json(env: dict | None = None, prefix: tuple[str, ...] = ()) -> tuple[int, dict]:
    res = dockish("check", "--format", "json", env=env, prefix=prefix)
    assert res.returncode in (0, 1), res.stderr
    return res.returncode, {r["name"]: r for r in json.loads(res.stdout)}


def env_with(**kw: str) -> dict:
    env = dict(os.environ)
    env.update(kw)
    return env


def path_without(tmp_path: Path, *drop: str, replace: dict[str, Path] | None = None) -> str:
    """A PATH holding every program of the real PATH except ``drop``, with
    ``replace`` ones swapped in: how a machine without (or with a broken)
    helper looks to dockish."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            target = bindir / name
            if name in drop or target.exists() or target.is_symlink():
                continue
            target.symlink_to(os.path.join(d, name))
    for name, src in (replace or {}).items():
        shutil.copy(src, bindir / name)        # a copy made by us: not setuid
    return str(bindir)


def fake_proc(tmp_path: Path, **values: str) -> Path:
    """A /proc with the given /proc/sys values (``kernel/x`` style names)."""
    proc = tmp_path / "proc"
    for name, value in values.items():
        f = proc / "sys" / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(value + "\n")
    return proc


pytestmark = pytest.mark.usefixtures("no_leftovers")

# A shell, run as root of a user namespace of our own, in which no further
# user namespace can be made: the kernel's own refusal, not a simulation.
BLOCKED = ("unshare", "-Ur", "sh", "-c",
           'echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" "$@"')


@pytest.fixture
def private_runtime(tmp_path, monkeypatch) -> Path:
    """A runtime dir of the test's own (inside a user namespace we are uid 0:
    /tmp/dockish-0 must not be made for root)."""
    run = tmp_path / "xdg"
    run.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    return run


# ------------------------------------------------------------------ the real test bed

def test_check_passes_on_the_test_bed():
    res = dockish("check")
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:4] == ["STATUS", "CHECK", "DETAIL", "FIX"]
    assert not any(line.startswith("FAIL") for line in lines)
    code, recs = check_json()
    assert code == 0
    for name in ("user namespaces", "fusermount3", "/dev/fuse", "runtime dir", "store"):
        assert recs[name]["required"] and recs[name]["status"] == "OK", recs[name]
    assert recs["newuidmap/newgidmap"]["status"] == "OK"
    assert recs["subordinate ids"]["status"] == "OK"
    store = recs["store"]["detail"]
    assert os.environ["DOCKISH_ROOT"] in store and "copy_file_range yes" in store
    assert "reflinks" in store
    # the probe's scratch files leave nothing in the store's tmp dir
    assert os.listdir(Path(os.environ["DOCKISH_ROOT"]) / "tmp") == []


# ------------------------------------------------------------------ user namespaces

def test_user_namespaces_really_blocked(private_runtime):
    res = dockish("check", prefix=BLOCKED)
    assert res.returncode == 1, res.stdout + res.stderr
    row = next(line for line in res.stdout.splitlines() if "user namespaces" in line)
    assert row.startswith("FAIL")
    assert "blocked by user.max_user_namespaces=0" in row
    assert "sudo sysctl -w user.max_user_namespaces=15000" in row
    # dockish info says the same at its end, on stderr, as Docker's WARNING lines
    info = dockish("info", prefix=BLOCKED)
    assert info.returncode == 0, info.stderr
    assert "WARNING: user namespaces: blocked by user.max_user_namespaces=0" in info.stderr
    assert "fix: sudo sysctl -w user.max_user_namespaces=15000" in info.stderr
    assert "WARNING" not in info.stdout


@pytest.mark.parametrize("sysctl, value, fix", [
    ("kernel/apparmor_restrict_unprivileged_userns", "1",
     "sudo scripts/setup in dockish's checkout (loads scripts/apparmor/dockish"),
    ("kernel/unprivileged_userns_clone", "0", "sudo sysctl -w kernel.unprivileged_userns_clone=1"),
])
def test_user_namespaces_blocked_diagnosis(tmp_path, private_runtime, sysctl, value, fix):
    """The kernel really refuses; the sysctl read says which switch did it
    (the test bed's kernel has neither switch, so its value is given)."""
    proc = fake_proc(tmp_path, **{sysctl: value, "user/max_user_namespaces": "15000"})
    code, recs = check_json(env_with(DOCKISH_PREFLIGHT_PROC=str(proc)), prefix=BLOCKED)
    rec = recs["user namespaces"]
    assert code == 1 and rec["status"] == "FAIL"
    assert f"blocked by {sysctl.replace('/', '.')}={value}" in rec["detail"]
    assert "No space left on device" in rec["detail"]       # the probe's own errno
    assert rec["fix"].startswith(fix)


def test_user_namespaces_blocked_without_a_known_switch(tmp_path, private_runtime):
    proc = fake_proc(tmp_path, **{"user/max_user_namespaces": "15000"})
    code, recs = check_json(env_with(DOCKISH_PREFLIGHT_PROC=str(proc)), prefix=BLOCKED)
    rec = recs["user namespaces"]
    assert code == 1 and rec["status"] == "FAIL"
    assert rec["detail"].startswith("creating one fails (")
    assert "seccomp" in rec["fix"]


def test_a_switch_that_does_not_bite_is_not_a_failure(tmp_path):
    """AppArmor's restriction with a profile that allows this Python: the
    probe works, so containers work; the detail names the switch."""
    proc = fake_proc(tmp_path, **{"kernel/apparmor_restrict_unprivileged_userns": "1"})
    code, recs = check_json(env_with(DOCKISH_PREFLIGHT_PROC=str(proc)))
    rec = recs["user namespaces"]
    assert code == 0 and rec["status"] == "OK"
    assert "apparmor_restrict_unprivileged_userns=1" in rec["detail"]


# ------------------------------------------------------------------ helpers

def test_newuidmap_missing_falls_back_to_the_single_mapping(tmp_path, bb):
    env = env_with(PATH=path_without(tmp_path, "newuidmap"))
    code, recs = check_json(env)
    rec = recs["newuidmap/newgidmap"]
    assert code == 0 and rec["status"] == "WARN"
    assert rec["detail"] == ("newuidmap not found: containers fall back to a single mapping "
                             "(only root exists inside)")
    assert rec["fix"] == "sudo apt-get install uidmap"
    # and a container really starts, with one line saying why it has one id
    res = dockish("run", "--rm", "--network", "none", bb, "cat", "/proc/self/uid_map", env=env)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 1 and res.stdout.split()[:3] == \
        ["0", str(os.getuid()), "1"]
    assert res.stderr.splitlines() == [
        "dockish: newuidmap not found: containers get a single mapping (only root exists "
        "inside; `dockish check` names the fix)"]


def test_newgidmap_not_setuid_falls_back(tmp_path, bb):
    real = shutil.which("newgidmap")
    env = env_with(PATH=path_without(tmp_path, "newgidmap", replace={"newgidmap": real}))
    code, recs = check_json(env)
    rec = recs["newuidmap/newgidmap"]
    fake = str(tmp_path / "bin" / "newgidmap")
    assert code == 0 and rec["status"] == "WARN"
    assert rec["detail"].startswith(f"{fake} is not setuid root: containers fall back")
    assert rec["fix"].startswith("sudo chmod u+s ") and fake in rec["fix"]
    res = dockish("run", "--rm", "--network", "none", bb, "cat", "/proc/self/gid_map", env=env)
    assert res.returncode == 0, res.stderr
    assert len(res.stdout.splitlines()) == 1


def test_no_etc_mtab(tmp_path):
    """A minimal Debian (mmdebstrap, a container image) has no /etc/mtab:
    fusermount3 then mounts but cannot unmount a user's mount. Found on a
    fresh machine; check names the fix."""
    etc = tmp_path / "etc"
    etc.mkdir()
    code, recs = check_json(env_with(DOCKISH_PREFLIGHT_ETC=str(etc)))
    rec = recs["fusermount3"]
    assert code == 1 and rec["status"] == "FAIL"
    assert rec["detail"] == (f"{etc}/mtab is missing: fusermount3 mounts images but "
                             "cannot unmount them (`dockish umount`)")
    assert rec["fix"] == f"sudo ln -s ../proc/self/mounts {etc}/mtab"
    (etc / "mtab").symlink_to("/proc/self/mounts")
    code, recs = check_json(env_with(DOCKISH_PREFLIGHT_ETC=str(etc)))
    assert recs["fusermount3"]["status"] == "OK"


def test_fusermount3_missing_or_not_setuid(tmp_path):
    (tmp_path / "a").mkdir()
    code, recs = check_json(env_with(PATH=path_without(tmp_path / "a", "fusermount3")))
    rec = recs["fusermount3"]
    assert code == 1 and rec["status"] == "FAIL"
    assert rec["detail"].startswith("fusermount3 not found")
    assert rec["fix"] == "sudo apt-get install fuse3"
    (tmp_path / "b").mkdir()
    path = path_without(tmp_path / "b", "fusermount3",
                        replace={"fusermount3": shutil.which("fusermount3")})
    code, recs = check_json(env_with(PATH=path))
    rec = recs["fusermount3"]
    fake = str(tmp_path / "b" / "bin" / "fusermount3")
    assert code == 1 and rec["status"] == "FAIL"
    assert rec["detail"] == f"{fake} is not setuid root: images cannot be mounted"
    assert rec["fix"] == f"sudo chown root {fake} && sudo chmod u+s {fake}"


def test_no_network_helper(tmp_path):
    path = path_without(tmp_path, "slirp4netns", "pasta")
    code, recs = check_json(env_with(PATH=path))
    rec = recs["slirp4netns/pasta"]
    assert code == 0 and rec["status"] == "WARN"
    assert rec["fix"].startswith("sudo apt-get install slirp4netns")


# ------------------------------------------------------------------ devices

def test_dev_fuse_missing_unusable_or_not_a_device(tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    env = env_with(DOCKISH_PREFLIGHT_DEV=str(dev))
    code, recs = check_json(env)
    assert code == 1
    assert recs["/dev/fuse"]["detail"] == f"{dev}/fuse does not exist"
    assert recs["/dev/fuse"]["fix"].startswith("sudo modprobe fuse")
    assert recs["/dev/net/tun"]["status"] == "WARN"
    assert recs["/dev/net/tun"]["fix"] == \
        f"sudo sh -c 'mkdir -p {dev}/net && mknod -m 0666 {dev}/net/tun c 10 200'"
    # a real character device this user cannot open (root's 0600 console)
    (dev / "fuse").symlink_to("/dev/console")
    code, recs = check_json(env)
    rec = recs["/dev/fuse"]
    assert code == 1 and rec["status"] == "FAIL"
    assert rec["detail"].startswith(f"{dev}/fuse cannot be opened for reading and writing (")
    assert rec["fix"] == f"sudo chmod 0666 {dev}/fuse"
    # a FIFO in its place is named, not opened (no hang)
    (dev / "fuse").unlink()
    os.mkfifo(dev / "fuse")
    code, recs = check_json(env)
    assert recs["/dev/fuse"]["detail"] == f"{dev}/fuse is not a character device"


# ------------------------------------------------------------------ /etc and cgroups

def test_no_subordinate_ids(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "subuid").write_text("someoneelse:100000:65536\n")
    code, recs = check_json(env_with(DOCKISH_SYSTEM_CONFIG_ROOT=str(tmp_path)))
    rec = recs["subordinate ids"]
    me = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    assert code == 0 and rec["status"] == "WARN"
    assert rec["detail"].startswith(f"no {tmp_path}/etc/subuid or {tmp_path}/etc/subgid "
                                    f"range for {me}")
    assert rec["fix"].startswith(f"sudo usermod --add-subuids 100000-165535 "
                                 f"--add-subgids 100000-165535 {me}")


def test_cgroup_versions_and_delegation(tmp_path):
    cg = tmp_path / "cgroup"
    cg.mkdir()
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text("0::/user.slice/user-1000.slice/session-1.scope\n")
    env = env_with(DOCKISH_PREFLIGHT_CGROUP=str(cg), DOCKISH_PREFLIGHT_PROC=str(proc))
    _, recs = check_json(env)
    assert recs["cgroups"]["status"] == "WARN"
    assert recs["cgroups"]["detail"].startswith("cgroup v1")
    assert "systemd.unified_cgroup_hierarchy=1" in recs["cgroups"]["fix"]
    (cg / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    _, recs = check_json(env)
    assert recs["cgroups"]["status"] == "WARN"
    assert "no controller is delegated to /user.slice/user-1000.slice/session-1.scope" in \
        recs["cgroups"]["detail"]
    assert "Delegate=cpu cpuset io memory pids" in recs["cgroups"]["fix"]
    own = cg / "user.slice" / "user-1000.slice" / "session-1.scope"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("memory pids\n")
    _, recs = check_json(env)
    assert recs["cgroups"] == {**recs["cgroups"], "status": "OK", "fix": "",
                               "detail": "cgroup v2, delegated to /user.slice/user-1000.slice/"
                                         "session-1.scope: memory pids"}


# ------------------------------------------------------------------ directories

def test_a_store_that_is_not_private(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    store = tmp_path / "store"
    store.symlink_to(tmp_path / "elsewhere")
    code, recs = check_json(env_with(DOCKISH_ROOT=str(store)))
    assert code == 1
    rec = recs["store"]
    assert rec["status"] == "FAIL" and f"{store} is a symlink" in rec["detail"]
    assert rec["fix"].startswith("set DOCKISH_ROOT to a directory of your own")
    assert os.listdir(tmp_path / "elsewhere") == []
