"""The run/stop/cp flags CI scripts pass, as a user of Docker sees them:
restart policies (a container that fails twice then succeeds, ``ps``
showing ``Restarting``, ``stop`` ending it for good), stop signals and
timeouts, ``--cidfile``, ``-a``, ``--sig-proxy=false``, ``-q``; the
process flags (``--ulimit``, ``--group-add``, ``--shm-size``,
``--device``, ``--security-opt``, resource limits); ``cp -`` and
``cp -L``. Real containers, run unprivileged."""
from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time

import pytest

from .diffbase import dockish_exe
from .runbed import dockish, no_leftovers, ok, one_error_line  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("no_leftovers")


def _wait_for(pred, timeout: float = 20.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def _inspect(name: str) -> dict:
    return json.loads(ok("inspect", name))[0]


def _counting_script(fail_until: int, code: int = 1) -> str:
    """A command that counts its runs in /state/n and fails (``code``)
    until run number ``fail_until``."""
    return ("n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n; "
            f"echo run $n; [ $n -ge {fail_until} ] || exit {code}")


# ------------------------------------------------------------------ --restart

def test_on_failure_restarts_a_container_that_fails_twice_then_succeeds(bb, tmp_path):
    began = time.monotonic()
    ok("run", "-d", "--name", "flaky", "--network", "none", "--restart", "on-failure:5",
       "-v", f"{tmp_path}:/state", bb, "sh", "-c", _counting_script(3))
    _wait_for(lambda: (tmp_path / "n").read_text().strip() == "3" if (tmp_path / "n").exists()
              else False, what="the third run")
    _wait_for(lambda: _inspect("flaky")["State"]["Status"] == "exited", what="exited")
    took = time.monotonic() - began
    info = _inspect("flaky")
    assert (info["RestartCount"], info["State"]["ExitCode"]) == (2, 0)
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 5}
    assert ok("logs", "flaky") == "run 1\nrun 2\nrun 3\n"
    assert took >= 0.3            # Docker's backoff: 100 ms, then 200 ms
    assert ok("ps", "-a", "--format", "{{.Status}}").startswith("Exited (0)")


def test_on_failure_gives_up_after_its_retries(bb, tmp_path):
    ok("run", "-d", "--name", "hopeless", "--network", "none", "--restart", "on-failure:2",
       "-v", f"{tmp_path}:/state", bb, "sh", "-c", _counting_script(99, code=7))
    _wait_for(lambda: (tmp_path / "n").exists() and
              (tmp_path / "n").read_text().strip() == "3", what="three runs")
    _wait_for(lambda: _inspect("hopeless")["State"]["Status"] == "exited", what="exited")
    time.sleep(1)                 # no fourth run comes
    assert (tmp_path / "n").read_text().strip() == "3"
    info = _inspect("hopeless")
    assert (info["RestartCount"], info["State"]["ExitCode"]) == (2, 7)


def test_always_shows_restarting_and_stop_ends_it_for_good(bb, tmp_path):
    ok("run", "-d", "--name", "loop", "--network", "none", "--restart", "always",
       "-v", f"{tmp_path}:/state", bb, "sh", "-c", _counting_script(99, code=3))
    # the waits double (0.1, 0.2, 0.4 ... s): after five runs they last seconds
    _wait_for(lambda: (tmp_path / "n").exists() and
              int((tmp_path / "n").read_text()) >= 5, what="five runs")
    _wait_for(lambda: ok("ps", "--format", "{{.Status}}").startswith("Restarting (3) "),
              what="Restarting in ps")
    info = _inspect("loop")
    assert info["State"]["Restarting"] is True and info["State"]["Status"] == "restarting"
    assert ok("ps", "--format", "{{.State}}") == "restarting\n"
    assert ok("stop", "loop") == "loop\n"
    runs = (tmp_path / "n").read_text()
    time.sleep(1.5)
    assert (tmp_path / "n").read_text() == runs     # no restart after stop
    info = _inspect("loop")
    assert info["State"]["Status"] == "exited" and info["State"]["Restarting"] is False
    assert info["RestartCount"] >= 1
    # a manual start runs it again under its policy; rm -f ends that too
    ok("start", "loop")
    _wait_for(lambda: (tmp_path / "n").read_text() != runs, what="a run after start")
    ok("rm", "-f", "loop")
    assert ok("ps", "-a", "-q") == ""


def test_restart_command_runs_a_policy_container_once_again(bb, tmp_path):
    ok("run", "-d", "--name", "svc", "--network", "none", "--restart", "always",
       "-v", f"{tmp_path}:/state", bb, "sh", "-c",
       "n=$(cat /state/n 2>/dev/null || echo 0); echo $((n+1)) > /state/n; sleep 30")
    _wait_for(lambda: (tmp_path / "n").exists(), what="the first run")
    ok("restart", "-t", "0", "svc")
    _wait_for(lambda: (tmp_path / "n").read_text().strip() == "2", what="the second run")
    time.sleep(1.5)                    # the old monitor started no third one
    assert (tmp_path / "n").read_text().strip() == "2"
    assert _inspect("svc")["State"]["Status"] == "running"


def test_kill_ends_the_restarts_a_signal_for_the_process_does_not(bb, tmp_path):
    ok("run", "-d", "--name", "killed", "--network", "none", "--restart", "always",
       "--stop-signal", "TERM", "-v", f"{tmp_path}:/state", bb, "sh", "-c",
       "n=$(cat /state/n 2>/dev/null || echo 0); echo $((n+1)) > /state/n; "
       "trap 'exit 9' USR1; while :; do sleep 0.1; done")
    _wait_for(lambda: (tmp_path / "n").exists(), what="the first run")
    time.sleep(0.3)
    # not the stop signal: the process ends, the policy restarts it (Docker's rule)
    ok("kill", "-s", "USR1", "killed")
    _wait_for(lambda: (tmp_path / "n").read_text().strip() == "2", what="a restart")
    _wait_for(lambda: _inspect("killed")["State"]["Status"] == "running", what="running")
    ok("kill", "killed")                        # SIGKILL: for good, as Docker's
    time.sleep(1.5)
    info = _inspect("killed")
    assert (info["State"]["Status"], info["State"]["ExitCode"]) == ("exited", 137)
    assert (tmp_path / "n").read_text().strip() == "2"


def test_attached_run_returns_the_first_exit_and_the_policy_goes_on(bb, tmp_path):
    res = dockish("run", "--name", "att", "--network", "none", "--restart", "on-failure:1",
                  "-v", f"{tmp_path}:/state", bb, "sh", "-c", _counting_script(99, code=4))
    assert (res.returncode, res.stdout) == (4, "run 1\n")
    _wait_for(lambda: (tmp_path / "n").read_text().strip() == "2", what="the restart")
    _wait_for(lambda: _inspect("att")["State"]["Status"] == "exited", what="exited")
    assert _inspect("att")["RestartCount"] == 1


def test_restart_flag_errors_are_dockers(bb):
    one_error_line(dockish("run", "--rm", "--restart", "always", bb, "true"), 125,
                   "Conflicting options: --restart and --rm")
    one_error_line(dockish("run", "--restart", "sometimes", bb, "true"), 125,
                   "invalid restart policy: unknown policy 'sometimes'")
    one_error_line(dockish("run", "--restart", "always:3", bb, "true"), 125,
                   "maximum retry count can only be used with 'on-failure'")
    one_error_line(dockish("run", "--restart", "on-failure:x", bb, "true"), 125,
                   "maximum retry count must be an integer")
    assert ok("ps", "-a", "-q") == ""


# ------------------------------------------------------------------ stop signal and timeout

TRAPS = ("trap 'echo got USR1; exit 0' USR1; trap 'echo got USR2; exit 0' USR2; "
         "trap 'echo got TERM; exit 0' TERM; while :; do sleep 0.1; done")


def _stopped_with(name: str, *stop_args: str) -> str:
    _wait_for(lambda: "running" in ok("ps", "--format", "{{.State}}"), what="running")
    time.sleep(0.3)               # the traps are set
    ok("stop", *stop_args, name)
    return ok("logs", name)


def test_stop_signal_of_the_container_and_of_stop(bb):
    ok("run", "-d", "--name", "sig1", "--network", "none", "--stop-signal", "USR1", bb,
       "sh", "-c", TRAPS)
    assert _stopped_with("sig1") == "got USR1\n"
    assert _inspect("sig1")["Config"]["StopSignal"] == "USR1"
    ok("run", "-d", "--name", "sig2", "--network", "none", "--stop-signal", "USR1", bb,
       "sh", "-c", TRAPS)
    assert _stopped_with("sig2", "-s", "SIGUSR2") == "got USR2\n"
    ok("run", "-d", "--name", "sig3", "--network", "none", bb, "sh", "-c", TRAPS)
    _wait_for(lambda: "running" in ok("ps", "--format", "{{.State}}"), what="running")
    time.sleep(0.3)
    ok("restart", "--signal", "USR2", "sig3")
    assert ok("logs", "sig3") == "got USR2\n"
    one_error_line(dockish("run", "--stop-signal", "NOPE", bb, "true"), 125, "NOPE")


def test_stop_timeout_is_used_when_stop_has_no_t(bb):
    ok("run", "-d", "--name", "stubborn", "--network", "none", "--stop-timeout", "1", bb,
       "sh", "-c", "trap '' TERM; while :; do sleep 0.1; done")
    time.sleep(0.5)
    began = time.monotonic()
    ok("stop", "stubborn")
    took = time.monotonic() - began
    assert 0.9 <= took < 8, took
    info = _inspect("stubborn")
    assert (info["State"]["ExitCode"], info["Config"]["StopTimeout"]) == (137, 1)
    ok("run", "-d", "--name", "patient", "--network", "none", "--stop-timeout", "8", bb,
       "sh", "-c", "trap '' TERM; while :; do sleep 0.1; done")
    time.sleep(0.5)
    began = time.monotonic()
    ok("stop", "-t", "0", "patient")            # -t wins over --stop-timeout
    assert time.monotonic() - began < 6


# ------------------------------------------------------------------ cidfile, -a, -q, sig-proxy

def test_cidfile_is_written_and_an_existing_one_refused(bb, tmp_path):
    (tmp_path / "ids").mkdir()
    cid_path = tmp_path / "ids" / "ctr.id"
    cid = ok("run", "-d", "--cidfile", str(cid_path), "--network", "none", bb,
             "sleep", "30").strip()
    assert cid_path.read_text() == cid
    assert [p.name for p in (tmp_path / "ids").iterdir()] == ["ctr.id"]   # no temporary left
    res = dockish("run", "--cidfile", str(cid_path), "--network", "none", bb, "true")
    one_error_line(res, 125, "container ID file found, make sure the other container isn't "
                   f"running or delete {cid_path}")
    assert ok("ps", "-a", "-q", "--no-trunc") == cid + "\n"     # nothing else was made
    created = ok("create", "--cidfile", str(tmp_path / "c2"), bb, "true").strip()
    assert (tmp_path / "c2").read_text() == created


def test_attach_only_the_streams_asked_for(bb):
    script = "echo out; echo err >&2; exit 2"
    res = dockish("run", "--rm", "-a", "stdout", "--network", "none", bb, "sh", "-c", script)
    assert (res.returncode, res.stdout, res.stderr) == (2, "out\n", "")
    res = dockish("run", "--rm", "-a", "STDERR", "--network", "none", bb, "sh", "-c", script)
    assert (res.returncode, res.stdout, res.stderr) == (2, "", "err\n")
    res = subprocess.run([dockish_exe(), "run", "--rm", "-a", "stdin", "-a", "stdout",
                          "--network", "none", bb, "cat"], input="piped\n",
                         capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout) == (0, "piped\n")
    one_error_line(dockish("run", "-a", "stdnope", bb, "true"), 125,
                   "valid streams are STDIN, STDOUT and STDERR")
    one_error_line(dockish("run", "-d", "-a", "stdout", bb, "true"), 125,
                   "Conflicting options: -a and -d")


def test_quiet_run_says_nothing_about_pulling(bb):
    missing = "127.0.0.1:9/nothing/here:1"
    loud = dockish("run", "--rm", missing, "true")
    quiet = dockish("run", "--rm", "-q", missing, "true")
    assert loud.returncode == quiet.returncode == 125
    assert "Unable to find image" in loud.stderr
    assert "Unable to find image" not in quiet.stderr
    assert len(quiet.stderr.strip().splitlines()) == 1, quiet.stderr
    res = dockish("run", "--rm", "-q", "--network", "none", bb, "echo", "hi")
    assert (res.stdout, res.stderr) == ("hi\n", "")


def _started(args: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen([dockish_exe(), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: "running" in ok("ps", "--format", "{{.State}}"), what="running")
    time.sleep(0.5)
    return proc


def test_sig_proxy_passes_signals_on_unless_false(bb):
    script = "trap 'echo got TERM; exit 5' TERM; while :; do sleep 0.1; done"
    proc = _started(["run", "--name", "proxied", "--network", "none", bb, "sh", "-c", script])
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert (proc.returncode, out) == (5, "got TERM\n")
    proc = _started(["run", "--name", "unproxied", "--sig-proxy=false", "--network", "none",
                     bb, "sh", "-c", script.replace("while :;", "for i in $(seq 20);")
                     + "; echo still here"])
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM        # the client ended, as Docker's
    assert _inspect("unproxied")["State"]["Running"] is True    # the container did not
    _wait_for(lambda: _inspect("unproxied")["State"]["Status"] == "exited", what="its end")
    assert ok("logs", "unproxied") == "still here\n"           # its output was still kept
    assert _inspect("unproxied")["State"]["ExitCode"] == 0


# ------------------------------------------------------------------ cp -, -a, -L

def _tar_of(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf.getmembers()}


def test_cp_dash_round_trips_through_tar(bb, tmp_path):
    ok("run", "--name", "files", "--network", "none", bb, "sh", "-c",
       "mkdir -p /d/sub && echo hi > /d/sub/f && chown 1000:1001 /d/sub/f")
    out = subprocess.run([dockish_exe(), "cp", "files:/d", "-"], capture_output=True,
                         timeout=60)
    assert (out.returncode, out.stderr) == (0, b"")
    members = _tar_of(out.stdout)
    assert sorted(members) == ["d", "d/sub", "d/sub/f"]
    assert (members["d/sub/f"].uid, members["d/sub/f"].gid) == (1000, 1001)
    # through the real tar, both ways
    (tmp_path / "x").mkdir()
    subprocess.run(["tar", "-x", "-C", str(tmp_path / "x")], input=out.stdout, check=True)
    assert (tmp_path / "x/d/sub/f").read_text() == "hi\n"
    (tmp_path / "x/d/sub/new").write_text("new\n")
    tar = subprocess.run(["tar", "-c", "-C", str(tmp_path / "x"), "d"], capture_output=True,
                         check=True).stdout
    res = subprocess.run([dockish_exe(), "cp", "-", "files:/tmp"], input=tar,
                         capture_output=True, timeout=60)
    assert (res.returncode, res.stdout, res.stderr) == (0, b"", b"")
    back = subprocess.run([dockish_exe(), "cp", "files:/tmp/d/sub/new", "-"],
                          capture_output=True, timeout=60).stdout
    with tarfile.open(fileobj=io.BytesIO(back)) as tf:
        member = tf.getmember("new")
        assert tf.extractfile(member).read() == b"new\n"
        assert member.uid == 0            # root's inside without -a, as Docker's
    # -a keeps the tar's owners
    res = subprocess.run([dockish_exe(), "cp", "-a", "-", "files:/"], input=tar,
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    again = _tar_of(subprocess.run([dockish_exe(), "cp", "files:/d/sub/new", "-"],
                                   capture_output=True, timeout=60).stdout)
    assert again["new"].uid == os.getuid() and again["new"].uid != 0
    # the destination of a tar must be a directory
    res = subprocess.run([dockish_exe(), "cp", "-", "files:/d/sub/f"], input=tar,
                         capture_output=True, text=False, timeout=60)
    assert res.returncode != 0
    assert b'destination "files:/d/sub/f" must be a directory' in res.stderr


def test_cp_follow_link_copies_what_the_link_points_to(bb, tmp_path):
    ok("run", "--name", "links", "--network", "none", bb, "sh", "-c",
       "echo target > /t && ln -s /t /link")
    ok("cp", "links:/link", str(tmp_path / "plain"))
    assert os.readlink(tmp_path / "plain") == "/t"
    ok("cp", "-L", "links:/link", str(tmp_path / "followed"))
    assert not (tmp_path / "followed").is_symlink()
    assert (tmp_path / "followed").read_text() == "target\n"
    members = _tar_of(subprocess.run([dockish_exe(), "cp", "-L", "links:/link", "-"],
                                     capture_output=True, timeout=60).stdout)
    assert members["link"].isfile() and members["link"].size == 7
    # host side: -L follows the user's symlink into the container
    (tmp_path / "real").write_text("from host\n")
    (tmp_path / "hostlink").symlink_to(tmp_path / "real")
    ok("cp", "-L", str(tmp_path / "hostlink"), "links:/copied")
    members = _tar_of(subprocess.run([dockish_exe(), "cp", "links:/copied", "-"],
                                     capture_output=True, timeout=60).stdout)
    assert members["copied"].isfile()


# ------------------------------------------------------------------ process flags

def _out(bb: str, *flags_and_cmd: str) -> subprocess.CompletedProcess:
    return dockish("run", "--rm", "--network", "none", *flags_and_cmd[:-1], bb, "sh", "-c",
                   flags_and_cmd[-1])


def test_ulimit_group_add_shm_size_and_no_new_privileges(bb):
    res = _out(bb, "--ulimit", "nofile=100:200", "--ulimit", "nproc=500",
               "grep -E 'open files|processes' /proc/self/limits")
    assert res.returncode == 0, res.stderr
    # /proc/PID/limits: fixed columns (name 25, soft 20, hard 20)
    limits = {line[:25].strip(): [line[26:46].strip(), line[47:67].strip()]
              for line in res.stdout.splitlines()}
    assert limits["Max open files"] == ["100", "200"]
    assert limits["Max processes"] == ["500", "500"]
    res = _out(bb, "--group-add", "nogroup", "--group-add", "4242", "-u", "1000:1000", "id -G")
    assert (res.returncode, sorted(res.stdout.split(), key=int)) == \
        (0, ["1000", "4242", "65534"])     # -u with a group: no /etc/group lookup of its own
    one_error_line(_out(bb, "--group-add", "nosuchgroup", "true"), 126, "nosuchgroup")
    res = _out(bb, "--shm-size", "2m", "df -k /dev/shm | tail -1")
    assert res.stdout.split()[1] == "2048", res.stdout
    assert _out(bb, "df -k /dev/shm | tail -1").stdout.split()[1] == "65536"   # Docker's 64m
    nnp = _out(bb, "--security-opt", "no-new-privileges", "grep NoNewPrivs /proc/self/status")
    assert nnp.stdout.split() == ["NoNewPrivs:", "1"]
    assert _out(bb, "grep NoNewPrivs /proc/self/status").stdout.split() == ["NoNewPrivs:", "0"]
    one_error_line(_out(bb, "--ulimit", "nofile=9:1", "true"), 125,
                   "soft limit must be less than or equal to hard limit")
    one_error_line(_out(bb, "--ulimit", "bogus=1", "true"), 125, "invalid ulimit type: bogus")
    one_error_line(_out(bb, "--shm-size", "lots", "true"), 125, "invalid size")
    assert ok("ps", "-a", "-q") == ""


def test_device_is_bound_into_the_container(bb):
    res = _out(bb, "--device", "/dev/null:/dev/mynull:rw",
               "ls -l /dev/mynull; echo gone > /dev/mynull && echo wrote")
    assert res.returncode == 0, res.stderr
    first, second = res.stdout.splitlines()
    assert first.startswith("c") and "1,   3" in first and second == "wrote"
    assert _out(bb, "--device", "/dev/zero", "head -c 3 /dev/zero | wc -c").stdout.strip() \
        == "3"
    one_error_line(_out(bb, "--device", "/dev/no-such-device", "true"), 125,
                   'error gathering device information while adding custom device '
                   '"/dev/no-such-device": no such file or directory')


def test_seccomp_profile_is_applied_and_a_bad_one_is_one_line(bb, tmp_path):
    profile = tmp_path / "no-mkdir.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    res = _out(bb, "--security-opt", f"seccomp={profile}", "mkdir /made; echo $?; touch /f && "
               "echo touched")
    assert res.returncode == 0, res.stderr
    assert "Operation not permitted" in res.stderr
    assert res.stdout.split() == ["1", "touched"]
    res = _out(bb, "--security-opt", "seccomp=unconfined", "mkdir /made && echo made")
    assert res.stdout == "made\n"
    (tmp_path / "bad.json").write_text("{not json")
    one_error_line(_out(bb, "--security-opt", f"seccomp={tmp_path / 'bad.json'}", "true"), 125,
                   "decoding seccomp profile failed")
    one_error_line(_out(bb, "--security-opt", f"seccomp={tmp_path / 'none.json'}", "true"),
                   125, "opening seccomp profile")
    one_error_line(_out(bb, "--security-opt", "wishful=thinking", "true"), 125,
                   "invalid --security-opt")
    assert ok("ps", "-a", "-q") == ""


def test_resource_limits_say_once_why_they_are_not_applied(bb):
    res = _out(bb, "--pids-limit", "50", "-m", "64m", "--cpus", "1.5", "echo ran")
    assert (res.returncode, res.stdout) == (0, "ran\n")
    lines = res.stderr.splitlines()      # why, and the fix (tests/test_cgroups.py)
    assert len(lines) == 1 and lines[0].startswith(
        "WARNING: Resource limits are not applied: "), lines
    cid = ok("create", "--pids-limit", "50", "-m", "64m", "--cpus", "1.5", bb, "true").strip()
    host = _inspect(cid)["HostConfig"]
    assert (host["PidsLimit"], host["Memory"], host["NanoCpus"]) == (50, 64 << 20, 1500000000)
    assert _out(bb, "echo quiet").stderr == ""          # no limits, no line


def test_userns_keep_id_makes_the_users_files_theirs_inside(bb, tmp_path):
    (tmp_path / "mine").write_text("x")
    script = "id -u; id -g; stat -c %u /data/mine; stat -c %u /etc/passwd; echo hi > /data/made"
    res = _out(bb, "--userns=keep-id", "-v", f"{tmp_path}:/data", script)
    assert res.returncode == 0, res.stderr
    me, group = str(os.getuid()), str(os.getgid())
    assert res.stdout.split() == [me, group, me, "0"]     # the image's root stays root
    made = (tmp_path / "made").stat()
    assert (made.st_uid, made.st_gid) == (os.getuid(), os.getgid())
    # without it, the user is root inside, as rootless Podman's default
    res = _out(bb, "-v", f"{tmp_path}:/data", "id -u; stat -c %u /data/mine")
    assert res.stdout.split() == ["0", "0"]
    # a keep-id container's files stay the user's to inspect and remove
    ok("run", "--name", "kept", "--userns=keep-id", "--network", "none", bb, "sh", "-c",
       "echo data > /tmp/file")
    assert "A /tmp/file" in ok("diff", "kept")
    assert _inspect("kept")["HostConfig"]["UsernsMode"] == "keep-id"
    ok("rm", "kept")
    # exec and cp reach a running one; stop ends it
    ok("run", "-d", "--name", "keptup", "--userns=keep-id", "--network", "none", bb,
       "sleep", "60")
    assert ok("exec", "keptup", "id", "-u").strip() == me
    assert ok("exec", "-u", "0", "keptup", "id", "-u").strip() == "0"
    (tmp_path / "in.txt").write_text("in\n")
    ok("cp", str(tmp_path / "in.txt"), "keptup:/tmp/in.txt")
    assert ok("exec", "keptup", "cat", "/tmp/in.txt") == "in\n"
    ok("cp", "keptup:/tmp/in.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "in\n"
    ok("rm", "-f", "keptup")
    one_error_line(_out(bb, "--userns=private-ish", "true"), 125, "--userns")


# ------------------------------------------------------------------ build flags, push -a

@pytest.fixture
def build_ctx(tmp_path, bb):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_text("copied\n")
    (ctx / "Dockerfile").write_text(f"FROM {bb}\nRUN echo building && echo made > /made\n"
                                    "COPY f /f\n")
    return ctx


def _build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([dockish_exe(), "build", *args], capture_output=True, timeout=240)


def test_build_progress_plain_prints_buildkit_steps_with_timings(build_ctx):
    res = _build("--progress=plain", "-t", "steps:1", str(build_ctx))
    assert res.returncode == 0, res.stderr
    assert res.stdout == b""                      # BuildKit's progress is on stderr
    text = res.stderr.decode()
    lines = text.splitlines()
    assert lines[:2] == ["#1 [internal] load build definition from Dockerfile", "#1 DONE 0.0s"]
    assert re.search(r"^#2 \[1/3\] FROM .*\n#2 DONE \d+\.\ds$", text, re.M), text
    assert re.search(r"^#3 \[2/3\] RUN echo building && echo made > /made\n"
                     r"#3 \d+\.\d{3} building\n#3 DONE \d+\.\ds$", text, re.M), text
    assert re.search(r"^#4 \[3/3\] COPY f /f\n#4 DONE \d+\.\ds$", text, re.M), text
    assert re.search(r"^#5 exporting to image\n#5 writing image sha256:[0-9a-f]{64} done\n"
                     r"#5 naming to steps:1 done\n#5 DONE \d+\.\ds$", text, re.M), text
    again = _build("--progress", "plain", str(build_ctx)).stderr.decode()
    assert re.search(r"^#3 \[2/3\] RUN .*\n#3 CACHED$", again, re.M), again
    # rawjson: BuildKit's status objects, one a line
    raw = _build("--progress=rawjson", "--no-cache", str(build_ctx))
    events = [json.loads(line) for line in raw.stderr.decode().splitlines()]
    names = [v["name"] for e in events for v in e.get("vertexes", []) if "completed" in v]
    assert names[1:4] == [n.split(" ", 1)[1] for n in lines if re.match(r"#[234] \[", n)]
    logs = [base64.b64decode(lg["data"]) for e in events for lg in e.get("logs", [])]
    assert b"building\n" in logs
    quiet = _build("--progress=quiet", str(build_ctx))
    assert (quiet.returncode, quiet.stderr) == (0, b"")
    assert re.fullmatch(rb"sha256:[0-9a-f]{64}\n", quiet.stdout)
    bad = _build("--progress=fancy", str(build_ctx))
    assert bad.returncode == 125 and b'"--progress" flag' in bad.stderr


def test_build_output_local_follows_no_link_an_image_planted(tmp_path, bb):
    """A hostile Dockerfile's image holds links to the host (a symlink to a
    host directory, a dangling one to a host file, a directory link with a
    file under it in the image): `build -o type=local` writes the links as
    links and nothing through them; the host outside DEST is untouched."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "kept").write_text("host file\n")
    ctx = tmp_path / "hostile"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {bb}\n"
        f"RUN ln -s {victim} /esc && ln -s {victim}/planted /dangling && "
        f"mkdir /d && echo inside > /d/kept && ln -s {victim} /d/up\n")
    out = tmp_path / "out"
    res = _build("--output", f"type=local,dest={out}", str(ctx))
    assert res.returncode == 0, res.stderr
    assert os.readlink(out / "esc") == str(victim)
    assert os.readlink(out / "dangling") == f"{victim}/planted"
    assert os.readlink(out / "d" / "up") == str(victim)
    assert (out / "d" / "kept").read_text() == "inside\n"
    assert sorted(p.name for p in victim.iterdir()) == ["kept"]
    # the next build into the same DEST has directories where those links are:
    # what it writes lands in DEST, never through the links the first one left
    (ctx / "Dockerfile").write_text(
        f"FROM {bb}\nRUN mkdir /esc /dangling && echo pwned > /esc/kept && "
        "echo pwned > /dangling/planted && mkdir -p /d/up && echo pwned > /d/up/kept\n")
    res = _build("--output", f"type=local,dest={out}", str(ctx))
    assert res.returncode == 0, res.stderr
    assert (out / "esc" / "kept").read_text() == "pwned\n" and not (out / "esc").is_symlink()
    assert (out / "d" / "up" / "kept").read_text() == "pwned\n"
    assert sorted(p.name for p in victim.iterdir()) == ["kept"]
    assert (victim / "kept").read_text() == "host file\n"


def test_build_output_local_tar_and_stdout(build_ctx, tmp_path):
    out = tmp_path / "out"
    res = _build("--output", f"type=local,dest={out}", str(build_ctx))
    assert res.returncode == 0, res.stderr
    assert (out / "made").read_text() == "made\n" and (out / "f").read_text() == "copied\n"
    assert (out / "bin" / "busybox").is_file()
    assert (out / "made").stat().st_uid == os.getuid()
    assert not (out / "proc").exists() or not any((out / "proc").iterdir())
    res = _build("-o", f"type=tar,dest={tmp_path / 'fs.tar'}", str(build_ctx))
    assert res.returncode == 0, res.stderr
    with tarfile.open(tmp_path / "fs.tar") as tf:
        assert tf.extractfile("made").read() == b"made\n"
    res = _build("-o", "-", str(build_ctx))
    assert res.returncode == 0, res.stderr
    assert b"#3 [2/3] RUN" in res.stderr            # the steps went to stderr
    with tarfile.open(fileobj=io.BytesIO(res.stdout)) as tf:
        assert tf.extractfile("f").read() == b"copied\n"
    res = _build("-o", "type=registry", str(build_ctx))
    assert res.returncode == 125 and len(res.stderr.splitlines()) == 1


def test_buildx_build_with_load_is_build(build_ctx):
    res = subprocess.run([dockish_exe(), "buildx", "build", "--load", "-t", "viabuildx:1",
                          str(build_ctx)], capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    assert "Successfully tagged viabuildx:1" in res.stdout
    run = dockish("run", "--rm", "--network", "none", "viabuildx:1", "cat", "/made", "/f")
    assert run.stdout == "made\ncopied\n"


def test_build_add_host_reaches_run_steps_not_the_image(bb, tmp_path):
    ctx = tmp_path / "hostsctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {bb}\nRUN grep -w myhost /etc/hosts\n")
    res = _build("--progress=plain", "--add-host", "myhost:10.1.2.3", "-t", "hosts:1",
                 str(ctx))
    assert res.returncode == 0, res.stderr
    assert re.search(rb"^#3 \d+\.\d{3} 10\.1\.2\.3\s+myhost$", res.stderr, re.M), res.stderr
    run = dockish("run", "--rm", "--network", "none", "hosts:1", "grep", "-c", "myhost",
                  "/etc/hosts")
    assert run.stdout == "0\n"                   # the image keeps no /etc/hosts of the build
    bad = _build("--add-host", "nocolon", str(ctx))
    assert bad.returncode == 125 and b'"--add-host" flag' in bad.stderr


def test_build_pull_takes_the_registrys_newer_base(bb, layered, tmp_path):
    from .registrybed import Registry, skopeo_push
    reg = Registry(tmp_path / "reg")
    try:
        base = skopeo_push(reg, bb, "base/img:1")
        ctx = tmp_path / "pullctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN ls /data >/dev/null 2>&1 && "
                                        "echo layered || echo plain\n")
        first = _build("--progress=plain", str(ctx))
        assert first.returncode == 0, first.stderr
        assert b" plain\n" in first.stderr
        skopeo_push(reg, layered, "base/img:1")       # the tag moves on in the registry
        stale = _build("--progress=plain", str(ctx))
        assert b"#3 CACHED" in stale.stderr             # the stored base, as Docker's
        fresh = _build("--progress=plain", "--pull", str(ctx))
        assert fresh.returncode == 0, fresh.stderr
        assert b" layered\n" in fresh.stderr
    finally:
        reg.stop()


def test_push_all_tags_pushes_every_tag_of_the_repository(bb, tmp_path):
    from .registrybed import Registry
    reg = Registry(tmp_path / "reg")
    try:
        repo = f"{reg.host}/many/tags"
        cid = ok("create", "--network", "none", bb, "true").strip()
        ok("commit", cid, f"{repo}:1")
        ok("tag", f"{repo}:1", f"{repo}:2")
        res = dockish("push", "-a", repo)
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines[0] == f"The push refers to repository [{repo}]"
        assert [ln.split(":")[0] for ln in lines if ": digest: sha256:" in ln] == ["1", "2"]
        for tag in ("1", "2"):
            got = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                                  f"docker://{repo}:{tag}"], capture_output=True, text=True)
            assert got.returncode == 0, got.stderr
        one_error_line(dockish("push", "-a", f"{repo}:1"), 125,
                       "tag can't be used with --all-tags/-a")
        one_error_line(dockish("push", "-a", f"{reg.host}/none/here"), 1,
                       "An image does not exist locally with the tag")
    finally:
        reg.stop()
