"""Security boundaries of rootless containers, as an attacker inside one
(or another user on the host) would probe them: root inside is the host
user and no more, even through a setuid binary from the image; /proc/sys,
/sys and read-only binds stay read-only; the view and the writable layer
are out of other users' reach. Real namespaces and FUSE, unprivileged."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from .runbed import (
    dockish,
    no_leftovers,  # noqa: F401 - a fixture
    ok,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")


def run(image: str, *args: str) -> subprocess.CompletedProcess:
    return dockish("run", "--rm", "--network", "none", *args)


def test_a_setuid_root_binary_gives_no_more_than_the_host_user_had(bb, tmp_path):
    """A setuid-root copy of busybox in an image (made with `commit`): run
    as uid 1000 it may become root of the container, which is the host user:
    a host file only real root can read stays unreadable."""
    assert not os.access("/etc/shadow", os.R_OK)         # the premise: not ours to read
    ok("run", "--name", "mk", "--network", "none", bb, "sh", "-c",
       "mkdir /suid && cp /bin/busybox /suid/busybox && chmod 4755 /suid/busybox")
    ok("commit", "mk", "suid:1")
    mode = ok("run", "--rm", "--network", "none", "suid:1", "stat", "-c", "%a %u", "/suid/busybox")
    assert mode == "4755 0\n"
    res = dockish("run", "--rm", "--network", "none", "-u", "1000",
                  "-v", "/etc/shadow:/hostshadow:ro", "suid:1",
                  "/suid/busybox", "sh", "-c", "cat /hostshadow; echo rc=$?")
    assert "rc=1" in res.stdout and "Permission denied" in res.stderr, (res.stdout, res.stderr)
    assert "root:" not in res.stdout
    res = dockish("run", "--rm", "--network", "none", "-v", "/etc/shadow:/hostshadow:ro", bb,
                  "sh", "-c", "id -u; cat /hostshadow; echo rc=$?")
    assert res.stdout.splitlines()[0] == "0" and "rc=1" in res.stdout
    assert "root:" not in res.stdout


def test_proc_sys_sys_and_read_only_binds_stay_read_only(bb, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("host data\n")
    script = ("echo x > /proc/sys/kernel/domainname 2>/dev/null && echo wrote-proc-sys; "
              "echo 1 > /proc/sysrq-trigger 2>/dev/null && echo wrote-sysrq; "
              "touch /sys/kernel/x 2>/dev/null && echo wrote-sys; "
              "echo y >> /data/f 2>/dev/null && echo wrote-bind; "
              "mount -o remount,rw /data 2>/dev/null && echo y >> /data/f && echo remounted; "
              "mount -o remount,rw /proc/sys 2>/dev/null && echo remounted-proc-sys; "
              "umount /proc/sys 2>/dev/null && echo unmounted-proc-sys; "
              "echo done")
    res = dockish("run", "--rm", "--network", "none", "-v", f"{data}:/data:ro", bb,
                  "sh", "-c", script)
    assert res.stdout == "done\n", res.stdout
    assert (data / "f").read_text() == "host data\n"


def test_other_users_cannot_reach_a_containers_view_or_layer(bb, dockish_root):
    """Another uid (a subordinate one, from a user namespace of our own: a
    stand-in for another host user) cannot enter the container's root
    through /proc, and the container's directory is ours alone."""
    ok("run", "-d", "--name", "private", "--network", "none", bb, "sh", "-c",
       "echo secret > /secret; sleep 60")
    pid = int(ok("inspect", "-f", "{{.State.Pid}}", "private"))
    cid = ok("inspect", "-f", "{{.Id}}", "private").strip()
    assert ok("exec", "private", "cat", "/secret") == "secret\n"
    cdir = Path(dockish_root) / "containers" / cid
    assert stat.S_IMODE(cdir.stat().st_mode) == 0o700
    probe = ("for p in /proc/$0/root/secret /proc/$0/root/etc/passwd; do "
             "cat $p >/dev/null 2>&1 && echo read:$p; done; "
             "ls $1 >/dev/null 2>&1 && echo listed-layer; echo done")
    res = subprocess.run(["unshare", "--map-auto", "--map-root-user", "setpriv",
                          "--reuid", "1234", "--regid", "1234", "--clear-groups",
                          "sh", "-c", probe, str(pid), str(cdir)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "done\n", res.stdout
    # while the user itself can (the probe is not simply broken)
    mine = subprocess.run(["sh", "-c", probe, str(pid), str(cdir)], capture_output=True,
                          text=True, timeout=30)
    assert "listed-layer" in mine.stdout


DOCKER_DEFAULT_CAPS = "00000000a80425fb"     # CapEff of root in a default Docker container


def _cap_eff(out: str) -> str:
    return next(line.split()[1] for line in out.splitlines() if line.startswith("CapEff:"))


def test_capabilities_are_dockers_unless_changed(bb):
    """Root inside holds Docker's default capabilities, so it cannot undo
    the read-only mounts; --cap-add/--cap-drop/--privileged change that,
    `exec` gets the same set, a bad name is one error line."""
    status = (
        "grep CapEff /proc/self/status; mount -t tmpfs none /tmp 2>/dev/null && echo mounted; true")
    out = ok("run", "--rm", "--network", "none", bb, "sh", "-c", status)
    assert _cap_eff(out) == DOCKER_DEFAULT_CAPS and "mounted" not in out
    out = ok("run", "--rm", "--network", "none", "--cap-add", "SYS_ADMIN", bb, "sh", "-c",
             status)
    assert int(_cap_eff(out), 16) == int(DOCKER_DEFAULT_CAPS, 16) | 1 << 21
    assert "mounted" in out
    res = dockish("run", "--rm", "--network", "none", "--cap-drop", "chown", bb, "sh", "-c",
                  "touch /f; chown 5 /f && echo chowned; grep CapEff /proc/self/status")
    assert "chowned" not in res.stdout
    assert int(_cap_eff(res.stdout), 16) == int(DOCKER_DEFAULT_CAPS, 16) & ~1
    probe = "echo s > /f; chown 1000 /f; chmod 600 /f; cat /f 2>/dev/null || echo denied"
    assert ok("run", "--rm", "--network", "none", bb, "sh", "-c", probe) == "s\n"
    assert ok("run", "--rm", "--network", "none", "--cap-drop", "DAC_OVERRIDE", bb, "sh",
              "-c", probe) == "denied\n"                # the view checks it too
    last = int(ok("run", "--rm", "--network", "none", bb, "cat",
                  "/proc/sys/kernel/cap_last_cap"))
    out = ok("run", "--rm", "--network", "none", "--privileged", bb, "grep", "CapEff",
             "/proc/self/status")
    assert int(_cap_eff(out), 16) == (1 << (last + 1)) - 1
    out = ok("run", "--rm", "--network", "none", "--cap-drop", "ALL", "--cap-add", "KILL", bb,
             "grep", "CapEff", "/proc/self/status")
    assert int(_cap_eff(out), 16) == 1 << 5
    ok("run", "-d", "--name", "capped", "--network", "none", bb, "sleep", "60")
    assert _cap_eff(ok("exec", "capped", "grep", "CapEff", "/proc/self/status")) == \
        DOCKER_DEFAULT_CAPS
    res = dockish("run", "--rm", "--cap-add", "NOPE", bb, "true")
    assert res.returncode == 125
    assert res.stderr.strip().splitlines() == ['dockish: error: unknown capability: "NOPE"']
