"""The run/stop/cp flags CI scripts pass, as a user of Docker sees them:
restart policies (a container that fails twice then succeeds, ``ps``
showing ``Restarting``, ``stop`` ending it for good), stop signals and
timeouts, ``--cidfile``, ``-a``, ``--sig-proxy=false``, ``-q``; the
process flags (``--ulimit``, ``--group-add``, ``--shm-size``,
``--device``, ``--security-opt``, resource limits); ``cp -`` and
``cp -L``. Real containers, run unprivileged."""
from __future__ import annotations

import io
import json
import os
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
    # the waits double (0.1, 0.2, 0.4 ... s): ps soon catches one
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
    assert 0.9 <= took < 5, took
    info = _inspect("stubborn")
    assert (info["State"]["ExitCode"], info["Config"]["StopTimeout"]) == (137, 1)
    ok("start", "stubborn")
    began = time.monotonic()
    ok("stop", "-t", "0", "stubborn")           # -t wins
    assert time.monotonic() - began < 0.9


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
                     bb, "sh", "-c", script])
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGTERM        # the client ended, as Docker's
    assert _inspect("unproxied")["State"]["Running"] is True    # the container did not
    ok("rm", "-f", "unproxied")


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
