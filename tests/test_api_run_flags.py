"""The run flags through the API socket: a docker CLI user gets the same
container as ``dockish run`` gives (restart policies and their count in
``inspect``, the stop signal and timeout ``docker stop`` honours without
``-t``, ``--ulimit``, ``--group-add``, ``--shm-size``, ``--security-opt``),
and a bad value is the daemon's one error line. Real docker CLI, real
rootless containers."""
from __future__ import annotations

import json
import time

import pytest

from .test_api import docker, ok, service  # noqa: F401 - a fixture

TRAPS = ("trap 'echo got USR1; exit 0' USR1; trap 'echo got TERM; exit 0' TERM; "
         "while :; do sleep 0.1; done")


@pytest.fixture
def api(service):  # noqa: F811 - the fixture imported above
    return service


def _wait_for(pred, timeout: float = 30.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_restart_policy_restarts_and_inspect_counts(api, tmp_path):
    ok(api, "run", "-d", "--name", "flaky", "--network", "none",
       "--restart", "on-failure:2", "-v", f"{tmp_path}:/state", "busybox",
       "sh", "-c", "n=$(cat /state/n 2>/dev/null || echo 0); echo $((n+1)) > /state/n; "
       "exit 3")
    _wait_for(lambda: (tmp_path / "n").exists() and
              (tmp_path / "n").read_text().strip() == "3", what="three runs")
    _wait_for(lambda: ok(api, "inspect", "-f", "{{.State.Status}}", "flaky").strip()
              == "exited", what="exited")
    time.sleep(0.5)                       # no fourth run comes
    assert (tmp_path / "n").read_text().strip() == "3"
    assert ok(api, "inspect", "-f", "{{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}"
              " {{.HostConfig.RestartPolicy.MaximumRetryCount}} {{.State.ExitCode}}",
              "flaky").strip() == "2 on-failure 2 3"
    res = docker(api, "run", "--restart", "sometimes", "busybox", "true")
    assert res.returncode == 125, res
    assert "invalid restart policy: unknown policy 'sometimes'" in res.stderr
    assert ok(api, "ps", "-aq", "--filter", "name=flaky").strip()
    assert len(ok(api, "ps", "-aq").split()) == 1       # the bad one left nothing


def test_stop_signal_and_stop_timeout_apply_to_docker_stop(api):
    ok(api, "run", "-d", "--name", "sig", "--network", "none", "--stop-signal", "USR1",
       "busybox", "sh", "-c", TRAPS)
    time.sleep(1)                         # the traps are set
    ok(api, "stop", "sig")
    assert ok(api, "logs", "sig") == "got USR1\n"
    assert ok(api, "inspect", "-f", "{{.Config.StopSignal}}", "sig").strip() == "USR1"
    ok(api, "run", "-d", "--name", "stubborn", "--network", "none", "--stop-timeout", "1",
       "busybox", "sh", "-c", "trap '' TERM; while :; do sleep 0.1; done")
    time.sleep(1)
    began = time.monotonic()
    ok(api, "stop", "stubborn")       # no -t: the container's 1 s, not 10
    took = time.monotonic() - began
    assert 0.9 <= took < 7, took
    assert ok(api, "inspect", "-f", "{{.State.ExitCode}} {{.Config.StopTimeout}}",
              "stubborn").strip() == "137 1"


def test_process_flags_reach_the_container(api):
    out = ok(api, "run", "--rm", "--network", "none", "--ulimit", "nofile=100:200",
             "--group-add", "4242", "--shm-size", "2m", "--security-opt", "no-new-privileges",
             "-u", "1000:1000", "busybox", "sh", "-c",
             "ulimit -n; ulimit -Hn; id -G; df -k /dev/shm | tail -1; "
             "grep NoNewPrivs /proc/self/status")
    soft, hard, groups, shm, nnp = out.splitlines()
    assert (soft, hard) == ("100", "200")
    assert sorted(groups.split(), key=int) == ["1000", "4242"]
    assert shm.split()[1] == "2048"
    assert nnp.split() == ["NoNewPrivs:", "1"]
    ok(api, "create", "--name", "rec", "--ulimit", "nproc=500", "--group-add", "4242",
       "--shm-size", "2m", "busybox", "true")
    hc = json.loads(ok(api, "inspect", "-f", "{{json .HostConfig}}", "rec"))
    assert (hc["Ulimits"], hc["GroupAdd"], hc["ShmSize"]) == \
        ([{"Name": "nproc", "Soft": 500, "Hard": 500}], ["4242"], 2097152)
    res = docker(api, "run", "--rm", "--security-opt", "bogus", "busybox", "true")
    assert res.returncode == 125, res
    assert "invalid --security-opt" in res.stderr.lower()
