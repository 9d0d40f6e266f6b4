"""``exec --privileged`` and ``--detach-keys`` as a Docker user sees them:
the privileged command holds every capability whatever the container was
given; ``exec -it`` lets go of a shell when the user types the detach keys
(the docker CLI's ``read escape sequence``, exit 1) while the shell runs
on. Real containers, run unprivileged, driven through a pty."""
from __future__ import annotations

import os
import pty
import re
import termios
import time
from pathlib import Path

import pytest

from .diffbase import dockish_exe
from .runbed import dockish, drain, no_leftovers, ok, one_error_line  # noqa: F401 - a fixture
from .test_api import ok as docker_ok
from .test_api import service  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("no_leftovers")


def _caps(status: str) -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb of a /proc/PID/status text."""
    return {k: int(v, 16) for k, v in re.findall(r"^(Cap\w+):\s*([0-9a-f]+)$", status, re.M)}


ALL_CAPS = (1 << (int(Path("/proc/sys/kernel/cap_last_cap").read_text()) + 1)) - 1


def test_exec_privileged_holds_every_capability_in_a_cap_drop_all_container(bb):
    ok("run", "-d", "--name", "capless", "--network", "none", "--cap-drop", "ALL", bb,
       "sleep", "60")
    plain = _caps(ok("exec", "capless", "grep", "Cap", "/proc/self/status"))
    assert plain["CapEff"] == plain["CapBnd"] == 0, plain
    full = _caps(ok("exec", "--privileged", "capless", "grep", "Cap", "/proc/self/status"))
    assert full["CapEff"] == full["CapBnd"] == ALL_CAPS, full
    # what it can do, not only what it says: chown needs CAP_CHOWN
    denied = dockish("exec", "capless", "chown", "1:1", "/tmp")
    assert denied.returncode == 1 and "Operation not permitted" in denied.stderr, denied
    ok("exec", "--privileged", "capless", "chown", "1:1", "/tmp")
    ok("rm", "-f", "capless")


def test_api_exec_privileged_through_the_docker_cli(service):  # noqa: F811 - the fixture
    docker_ok(service, "run", "-d", "--name", "capless", "--network", "none",
              "--cap-drop", "ALL", "busybox", "sleep", "60")
    plain = _caps(docker_ok(service, "exec", "capless", "grep", "Cap", "/proc/self/status"))
    full = _caps(docker_ok(service, "exec", "--privileged", "capless", "grep", "Cap",
                           "/proc/self/status"))
    assert plain["CapEff"] == 0 and full["CapEff"] == ALL_CAPS, (plain, full)
    docker_ok(service, "rm", "-f", "capless")


def test_api_exec_inspect_shows_the_detach_keys_it_was_created_with(service):  # noqa: F811
    """``GET /exec/ID/json`` as Docker 28's: ``DetachKeys`` is the keys' bytes
    in Go's JSON of a byte slice (base64), empty when none were given; a
    bad key is refused at create, in the daemon's words and status."""
    import json

    from .test_api import raw_request
    docker_ok(service, "run", "-d", "--name", "box", "--network", "none", "busybox",
              "sleep", "60")

    def create(body: dict) -> tuple[int, dict]:
        status, _h, data = raw_request(service, "POST", "/v1.47/containers/box/exec",
                                       json.dumps({"Cmd": ["true"], **body}).encode(),
                                       {"Content-Type": "application/json"})
        return status, json.loads(data)

    def keys(body: dict) -> str:
        status, made = create(body)
        assert status == 201, made
        status, _h, data = raw_request(service, "GET", f"/v1.47/exec/{made['Id']}/json")
        assert status == 200, data
        return json.loads(data)["DetachKeys"]

    assert keys({"DetachKeys": "ctrl-p,ctrl-q"}) == "EBE="
    assert keys({"DetachKeys": "ctrl-x,y"}) == "GHk="            # 0x18 'y'
    assert keys({}) == keys({"DetachKeys": ""}) == ""
    status, err = create({"DetachKeys": "ctrl-1"})
    assert status == 500 and err["message"] == "Invalid escape keys (ctrl-1) provided", err
    docker_ok(service, "rm", "-f", "box")


def _exec_it(*args: str) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(dockish_exe(), [dockish_exe(), "exec", "-it", *args])
    return pid, fd


def _exited(pid: int, seconds: float = 10) -> int | None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    return None


def _shells(ctr: str) -> list[str]:
    """The container's processes whose command is ``sh`` (busybox ps)."""
    return [line for line in ok("exec", ctr, "ps", "-o", "pid,args").splitlines()[1:]
            if line.split(None, 1)[1].startswith("sh")]


def test_exec_it_detaches_on_ctrl_p_ctrl_q_and_the_shell_runs_on(bb):
    ok("run", "-d", "--name", "box", "--network", "none", bb, "sleep", "60")
    pid, fd = _exec_it("box", "sh")
    drain(fd, 10, until=b"# ")
    os.write(fd, b"echo $((6*7))\r")
    assert b"42" in drain(fd, 10, until=b"42")
    os.write(fd, b"\x10\x11")                         # ctrl-p ctrl-q
    code = _exited(pid)
    out = drain(fd, 2)
    os.close(fd)
    assert code == 1, (code, out)                     # the docker CLI's code and words
    assert b"read escape sequence" in out, out
    assert len(_shells("box")) == 1                   # the shell is still there
    time.sleep(1)                                     # and did not get a late hangup
    assert len(_shells("box")) == 1
    ok("rm", "-f", "box")


def test_exec_it_detach_keys_of_the_users_choice(bb):
    ok("run", "-d", "--name", "box", "--network", "none", bb, "sleep", "60")
    pid, fd = _exec_it("--detach-keys", "ctrl-x,x", "box", "sh")
    drain(fd, 10, until=b"# ")
    os.write(fd, b"\x10\x11")                         # not the keys now: the shell gets them
    os.write(fd, b"echo still $((1+1))\r")
    assert b"still 2" in drain(fd, 10, until=b"still 2")
    assert _exited(pid, 0.5) is None
    os.write(fd, b"\x18x")
    assert _exited(pid) == 1
    os.close(fd)
    assert len(_shells("box")) == 1
    pid, fd = _exec_it("box", "sh")                   # the user's own exit still ends it
    drain(fd, 10, until=b"# ")
    os.write(fd, b"exit 4\r")
    assert _exited(pid) == 4
    os.close(fd)
    one_error_line(dockish("exec", "-i", "--detach-keys", "ctrl-1", "box", "true"), 125,
                   "invalid detach key: ctrl-1")
    ok("rm", "-f", "box")


def _attached(*args: str) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(dockish_exe(), [dockish_exe(), *args])
    return pid, fd


def _wait_raw(fd: int) -> None:
    """Until the client on the pty has put it in raw mode (no echo)."""
    end = time.monotonic() + 10
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        assert time.monotonic() < end, "the client never set raw mode"
        time.sleep(0.05)


def test_run_it_detaches_quietly_and_the_container_runs_on_logged(bb):
    pid, fd = _attached("run", "-it", "--name", "box", "--network", "none", bb, "sh")
    drain(fd, 10, until=b"# ")
    os.write(fd, b"\x10\x11")
    code = _exited(pid)
    out = drain(fd, 2)
    os.close(fd)
    assert code == 0 and b"escape" not in out, (code, out)   # as the docker CLI: nothing said
    assert ok("inspect", "-f", "{{.State.Status}}", "box") == "running\n"
    # its terminal is still served: attach again, type, see, detach again
    pid, fd = _attached("attach", "box")
    _wait_raw(fd)                     # what is typed before is flushed, as on any terminal
    os.write(fd, b"echo back $((40+2))\r")
    assert b"back 42" in drain(fd, 10, until=b"back 42")
    os.write(fd, b"\x10\x11")
    assert _exited(pid) == 0
    os.close(fd)
    assert "back 42" in ok("logs", "box")              # the log went on being written
    ok("stop", "-t", "1", "box")
    assert ok("inspect", "-f", "{{.State.Status}}", "box") == "exited\n"
    ok("rm", "box")


def test_run_it_detached_is_still_restarted_by_its_policy(bb, tmp_path):
    """Detached with ctrl-p ctrl-q, the container's later exits are its
    restart policy's to act on, as Docker's daemon does: on-failure:1
    restarts it once, then lets it rest."""
    from .test_run_flags import _counting_script, _inspect, _wait_for
    wait_go = "until [ -e /state/go ]; do sleep 0.1; done; rm /state/go; exit 3"
    pid, fd = _attached("run", "-it", "--name", "box", "--network", "none",
                        "--restart", "on-failure:1", "-v", f"{tmp_path}:/state", bb,
                        "sh", "-c", _counting_script(1) + "; " + wait_go)
    drain(fd, 10, until=b"run 1")
    os.write(fd, b"\x10\x11")
    assert _exited(pid) == 0
    os.close(fd)
    (tmp_path / "go").touch()                        # the first run fails (3): restarted
    _wait_for(lambda: (tmp_path / "n").read_text().strip() == "2", what="the restart")
    _wait_for(lambda: _inspect("box")["State"]["Status"] == "running", what="running")
    assert _inspect("box")["RestartCount"] == 1
    (tmp_path / "go").touch()                        # the second fails too: no more retries
    _wait_for(lambda: _inspect("box")["State"]["Status"] == "exited", what="exited")
    time.sleep(1)
    info = _inspect("box")
    assert (info["RestartCount"], info["State"]["ExitCode"]) == (1, 3)
    assert (tmp_path / "n").read_text().strip() == "2"
    assert ok("logs", "box").replace("\r", "").splitlines() == ["run 1", "run 2"]
    ok("rm", "box")


def test_start_ai_detach_keys_and_a_bad_key_makes_nothing(bb):
    ok("create", "-it", "--name", "box", "--network", "none", bb, "sh")
    pid, fd = _attached("start", "-ai", "--detach-keys", "ctrl-a", "box")
    drain(fd, 10, until=b"# ")
    os.write(fd, b"\x01")
    assert _exited(pid) == 0
    os.close(fd)
    assert ok("inspect", "-f", "{{.State.Status}}", "box") == "running\n"
    ok("rm", "-f", "box")
    one_error_line(dockish("run", "-i", "--detach-keys", "ctrl-", "--name", "never", bb,
                           "true"), 125, "invalid detach key")
    assert dockish("inspect", "never").returncode != 0          # nothing was made
