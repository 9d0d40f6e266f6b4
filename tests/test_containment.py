"""What enters a container stays in it, tried as an attacker would: a
hostile Dockerfile, a container's own processes, a container that turns
its /etc/passwd into a FIFO. Every process that enters a container closes
the fds it inherited (runc's fix for CVE-2024-21626), its working
directory must lie inside the container's root, its stdio is relayed
(never the caller's own fds), ``:ro`` binds are read-only all the way
down, and reads from a container's view never block the CLI."""
from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from .diffbase import dockish_exe
from .runbed import (
    dockish,
    no_leftovers,  # noqa: F401 - a fixture
    ok,
    one_error_line,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")

SECRET = "host-secret-3c1f"


def _host_dir(tmp_path: Path) -> Path:
    """A host directory the container must never see: a secret file in it."""
    d = tmp_path / "host"
    d.mkdir(exist_ok=True)
    (d / "secret.txt").write_text(SECRET + "\n")
    return d


def _pwned(top: Path) -> list[Path]:
    return [p for p in top.rglob("*") if "PWNED" in p.name]


def _build(ctx: Path, *args: str) -> subprocess.CompletedProcess:
    return dockish("build", *args, str(ctx), timeout=120)


def _hostile_build(tmp_path: Path, image: str, fd: int, run: str) -> Path:
    """A build context inside the host directory, with a Dockerfile whose
    WORKDIR is /proc/self/fd/N and whose RUN step is ``run``."""
    ctx = _host_dir(tmp_path) / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {image}\nWORKDIR /proc/self/fd/{fd}\nRUN {run}\n")
    return ctx


# ------------------------------------------------------------------ build: WORKDIR magic links

@pytest.mark.parametrize("fd", [3, 4, 5, 6])
def test_workdir_through_proc_self_fd_reaches_nothing_of_the_host(bb, tmp_path, fd):
    """CVE-2024-21626 as a Dockerfile: WORKDIR /proc/self/fd/N, where N was
    the build context's directory fd in the step's first process. The step
    must neither list nor write the context or its parent."""
    ctx = _hostile_build(tmp_path, bb, fd, "ls -a . .. ../.. ; cat ../secret.txt secret.txt; "
                         "echo x > PWNED; echo x > ../PWNED; echo x > ../../PWNED")
    res = _build(ctx)
    assert SECRET not in res.stdout + res.stderr
    assert "Dockerfile" not in res.stdout.split("Step 3/3", 1)[-1]
    assert _pwned(tmp_path) == []
    # the step cannot run in a working directory outside its root
    assert res.returncode != 0
    assert "working directory" in res.stderr and "Traceback" not in res.stderr, res.stderr


@pytest.mark.parametrize("fd", [3, 4, 5, 6, 7])
def test_a_locked_cache_mount_holds_no_fd_into_the_host(bb, tmp_path, fd):
    """sharing=locked holds the cache directory open (flock) while the step
    runs: that fd must not reach the step either."""
    ctx = _hostile_build(tmp_path, bb, fd, "--mount=type=cache,target=/c,sharing=locked "
                         "ls -a . .. ; echo x > PWNED; echo x > ../PWNED")
    res = _build(ctx)
    assert _pwned(tmp_path) == [] and _pwned(Path(os.environ["DOCKISH_ROOT"])) == []
    assert res.returncode != 0 and "working directory" in res.stderr, res.stderr


def test_run_and_exec_refuse_a_workdir_outside_the_root(bb):
    res = dockish("run", "--rm", "--network", "none", "-w", "/proc/self/fd/1", bb, "pwd")
    one_error_line(res, 126, "working directory")
    ok("run", "-d", "--name", "wd", "--network", "none", bb, "sleep", "60")
    res = dockish("exec", "-w", "/proc/self/fd/0", "wd", "pwd")
    one_error_line(res, 126, "working directory")
    # an ordinary workdir still works: made if missing (run), through symlinks
    assert ok("exec", "-w", "/tmp", "wd", "pwd") == "/tmp\n"
    ok("exec", "wd", "sh", "-c", "mkdir -p /real/dir && ln -s /real /link")
    assert ok("exec", "-w", "/link/dir", "wd", "pwd") == "/real/dir\n"
    assert ok("run", "--rm", "--network", "none", "-w", "/made/here", bb, "pwd") == \
        "/made/here\n"


# ------------------------------------------------------------------ inherited fds

def _with_fd(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, int]:
    """dockish with an fd on a host directory (as `exec 7<"$HOME"`, `flock 9`,
    make's jobserver pass them)."""
    host = _host_dir(tmp_path)
    fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY)
    try:
        res = subprocess.run([dockish_exe(), *[a.replace("FD", str(fd)) for a in args]],
                             capture_output=True, text=True, timeout=60, pass_fds=(fd,))
    finally:
        os.close(fd)
    return res, fd


PROBE = ("ls -l /proc/self/fd/; cat /proc/self/fd/FD/secret.txt; "
         "cat /proc/1/cwd/secret.txt; cd /proc/self/fd/FD && ls; true")


def test_run_does_not_pass_inherited_fds_into_the_container(bb, tmp_path):
    res, fd = _with_fd(tmp_path, "run", "--rm", "--network", "none", bb, "sh", "-c", PROBE)
    assert res.returncode == 0, res.stderr
    assert SECRET not in res.stdout and "secret.txt" not in res.stdout, res.stdout
    assert f" {fd} -> " not in res.stdout
    # --init's reaper is a process in the container too
    res, _ = _with_fd(tmp_path, "run", "--rm", "--init", "--network", "none", bb, "sh", "-c",
                      "cat /proc/1/fd/FD/secret.txt; ls /proc/1/fd")
    assert SECRET not in res.stdout, res.stdout


def test_exec_does_not_pass_inherited_fds_into_the_container(bb, tmp_path):
    ok("run", "-d", "--name", "fds", "--network", "none", bb, "sleep", "60")
    res, fd = _with_fd(tmp_path, "exec", "fds", "sh", "-c", PROBE)
    assert res.returncode == 0, res.stderr
    assert SECRET not in res.stdout and "secret.txt" not in res.stdout, res.stdout
    assert f" {fd} -> " not in res.stdout
    res, _ = _with_fd(tmp_path, "exec", "-w", "/proc/self/fd/FD", "fds", "cat", "secret.txt")
    assert SECRET not in res.stdout and res.returncode == 126


def test_a_detached_container_keeps_none_of_the_callers_fds(bb):
    """``run -d`` leaves a monitor behind: a pipe (make's jobserver, a CI
    wrapper waiting for end of file) or a lock it got must not stay held."""
    r, w = os.pipe()
    try:
        subprocess.run([dockish_exe(), "run", "-d", "--name", "held", "--network", "none", bb,
                        "sleep", "60"], check=True, capture_output=True, timeout=60,
                       pass_fds=(w,))
        os.close(w)
        w = -1
        ready, _, _ = select.select([r], [], [], 10)
        assert ready and os.read(r, 1) == b"", "the caller's pipe is still held open"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


# ------------------------------------------------------------------ stdio

def _exec_on_a_terminal(*args: str) -> tuple[int, subprocess.Popen]:
    """``dockish exec ...`` with a terminal as its stdin, stdout and stderr
    (the user's shell); the pty's master side stands for the user."""
    master, slave = os.openpty()
    p = subprocess.Popen([dockish_exe(), *args], stdin=slave, stdout=slave, stderr=slave,
                         start_new_session=True)
    os.close(slave)
    return master, p


@pytest.mark.parametrize("flags", [(), ("-i",)])
def test_a_background_process_of_exec_never_reads_what_the_user_types(bb, flags):
    """A process an exec leaves behind tries to read the user's terminal
    through every fd it got: after exec returns, what the user types next
    (a password for the next command) stays out of the container."""
    ok("run", "-d", "--name", "tty", "--network", "none", bb, "sleep", "60")
    thief = ("(cat <&0 >> /tmp/stolen &); (cat <&1 >> /tmp/stolen &); "
             "(cat <&2 >> /tmp/stolen &); sleep 0.3; echo started")
    master, p = _exec_on_a_terminal("exec", *flags, "tty", "sh", "-c", thief)
    try:
        # exec returns once its own process is done, though the thieves hold its pipes
        assert p.wait(timeout=15) == 0
        time.sleep(0.3)
        os.write(master, b"hunter2-password\n")
        time.sleep(1)
    finally:
        p.kill()
        os.close(master)
    stolen = ok("exec", "tty", "sh", "-c", "cat /tmp/stolen 2>/dev/null; true")
    assert "hunter2" not in stolen, stolen


def test_exec_with_a_tty_returns_when_its_process_does(bb):
    """A background process holding the exec's pty does not keep ``exec -t``
    (and the user's keystrokes) going after its own process ended."""
    ok("run", "-d", "--name", "pty", "--network", "none", bb, "sleep", "60")
    master, p = _exec_on_a_terminal("exec", "-it", "pty", "sh", "-c",
                                    "(sleep 30 &); echo started; exit 3")
    try:
        assert p.wait(timeout=10) == 3
    finally:
        p.kill()
        os.close(master)


def test_exec_output_still_reaches_the_caller(bb):
    ok("run", "-d", "--name", "out", "--network", "none", bb, "sleep", "60")
    res = subprocess.run([dockish_exe(), "exec", "-i", "out", "sh", "-c",
                          "cat; echo err >&2; (sleep 20 &); exit 4"],
                         input="from stdin\n", capture_output=True, text=True, timeout=15)
    assert (res.returncode, res.stdout, res.stderr) == (4, "from stdin\n", "err\n")


def test_run_dash_i_relays_stdin_and_stops_at_the_end(bb):
    master, slave = os.openpty()
    p = subprocess.Popen([dockish_exe(), "run", "--rm", "-i", "--network", "none", bb,
                          "sh", "-c", "read line; echo got $line; ls -l /proc/self/fd/0"],
                         stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    os.close(slave)
    try:
        os.write(master, b"hello\n")
        out, err = p.communicate(timeout=15)
    finally:
        p.kill()
        os.close(master)
    assert b"got hello" in out and b"pipe:" in out and b"/dev/pts" not in out, (out, err)


# ------------------------------------------------------------------ :ro binds

def test_a_read_only_bind_is_read_only_below_its_submounts(bb):
    """/dev has /dev/shm (a tmpfs) mounted below it: ``-v /dev:/d:ro``
    must not let the container write there."""
    name = f"PWNED-{os.getpid()}"
    try:
        res = dockish("run", "--rm", "--network", "none", "-v", "/dev:/d:ro", bb, "sh", "-c",
                      f"echo x > /d/shm/{name}; echo rc=$?; touch /d/{name}; echo rc=$?")
        assert res.stdout == "rc=1\nrc=1\n", (res.stdout, res.stderr)
        assert "Read-only file system" in res.stderr
        assert not os.path.exists(f"/dev/shm/{name}")
    finally:
        if os.path.exists(f"/dev/shm/{name}"):
            os.unlink(f"/dev/shm/{name}")


# ------------------------------------------------------------------ a FIFO for /etc/passwd

def test_a_fifo_for_etc_passwd_does_not_hang_exec_or_healthchecks(bb):
    ok("run", "-d", "--name", "fifo", "--network", "none", "--health-cmd", "true",
       "--health-interval", "1s", bb, "sh", "-c",
       "rm /etc/passwd /etc/group && mkfifo /etc/passwd /etc/group && sleep 60")
    time.sleep(0.5)
    t0 = time.monotonic()
    res = dockish("exec", "fifo", "id", timeout=30)
    assert time.monotonic() - t0 < 10
    one_error_line(res, 126, "/etc/passwd", "not a regular file")
    end = time.monotonic() + 15
    log: list = []
    while time.monotonic() < end and not log:
        time.sleep(0.3)
        state = json.loads(ok("inspect", "fifo"))[0]["State"]
        log = (state.get("Health") or {}).get("Log") or []
    assert log, "no health check finished"
    assert log[0]["ExitCode"] == 126 and "not a regular file" in log[0]["Output"], log


# ------------------------------------------------------------------ leftovers

def test_run_steps_leave_no_init_layer(bb, tmp_path, dockish_root):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {bb}\nRUN echo one > /one\nRUN echo two > /two\n"
                                    "RUN true\n")
    res = _build(ctx, "-t", "steps")
    assert res.returncode == 0, res.stderr
    from .runbed import image_store
    store = image_store(dockish_root)
    used = {d for rec in store.records() for d in rec.diff_ids}
    stored = {"sha256:" + p.name for p in (dockish_root / "layers" / "sha256").iterdir()}
    assert stored == used


def test_an_unmapped_user_is_named_without_blaming_missing_subuid_ranges(bb):
    """The test user has /etc/subuid ranges (scripts/test makes them): the
    error says what is unmapped, not that only root is."""
    res = dockish("run", "--rm", "--network", "none", "-u", "4000000000", bb, "true")
    one_error_line(res, 126, "user 4000000000:0 does not exist in the container",
                   "are not mapped")
    assert "subuid" not in res.stderr
