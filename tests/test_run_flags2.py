# ruff: noqa: F811 - every test takes test_api_run_flags's api fixture by name
"""The run/create flags compose files and CI scripts pass that came last:
logging drivers with rotation (``--log-driver``/``--log-opt``, compose's
``logging:``), ``--volumes-from``, the namespace flags (``--pid``,
``--ipc``, ``--uts``), ``--sysctl``, ``--domainname``, ``--oom-score-adj``,
``--health-start-interval``, ``--annotation`` and ``--mac-address`` — as a
user sees them through the docker CLI and docker-compose against
``dockish system service``, and through dockish's own CLI. Real rootless
containers."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from .runbed import dockish, one_error_line
from .runbed import ok as dok
from .test_api import IMAGE, docker, ok, service  # noqa: F401 - a fixture
from .test_api_run_flags import _wait_for, api  # noqa: F401 - a fixture

COUNT_100 = "i=0; while [ $i -lt 100 ]; do echo line-$i; i=$((i+1)); done"


def _exited(api, name: str) -> bool:
    return ok(api, "inspect", "-f", "{{.State.Status}}", name).strip() == "exited"


def _kept_lines(text: str) -> list[int]:
    """The numbers of the ``line-N`` lines, which must be a run of
    consecutive ones (rotation drops whole records from the front only)."""
    nums = [int(line.removeprefix("line-")) for line in text.split()]
    assert nums == list(range(nums[0], nums[0] + len(nums))), nums
    return nums


# ------------------------------------------------------------------ logging drivers

def test_json_file_rotation_keeps_the_last_lines_and_logs_reads_across_files(api):
    ok(api, "run", "-d", "--name", "chatty", "--network", "none", "--log-driver", "json-file",
       "--log-opt", "max-size=1k", "--log-opt", "max-file=2", IMAGE, "sh", "-c", COUNT_100)
    _wait_for(lambda: _exited(api, "chatty"), what="chatty to finish")
    nums = _kept_lines(ok(api, "logs", "chatty"))
    # ~75 bytes a record: two files of 1 kB (each may pass it by one record)
    assert nums[-1] == 99 and 20 <= len(nums) <= 32, nums
    assert ok(api, "logs", "--tail", "3", "chatty").split() == ["line-97", "line-98",
                                                                 "line-99"]
    info = json.loads(ok(api, "inspect", "chatty"))[0]
    assert info["HostConfig"]["LogConfig"] == {"Type": "json-file",
                                               "Config": {"max-file": "2", "max-size": "1k"}}
    log = Path(info["LogPath"])
    assert log.stat().st_size <= 1000 + 100
    assert log.with_name(log.name + ".1").exists()
    assert not log.with_name(log.name + ".2").exists()       # max-file 2: two in all


def test_logs_follow_goes_on_across_a_rotation(api):
    ok(api, "run", "-d", "--name", "slow", "--network", "none", "--log-opt", "max-size=200",
       "--log-opt", "max-file=3", IMAGE, "sh", "-c",
       "sleep 1; i=0; while [ $i -lt 20 ]; do echo line-$i; i=$((i+1)); sleep 0.05; done")
    out = ok(api, "logs", "-f", "slow")        # started before the first line, ends with it
    assert _kept_lines(out)[-1] == 19


def test_local_driver_and_none(api):
    ok(api, "run", "-d", "--name", "loc", "--network", "none", "--log-driver", "local",
       IMAGE, "echo", "kept locally")
    _wait_for(lambda: _exited(api, "loc"), what="loc to finish")
    assert ok(api, "logs", "loc") == "kept locally\n"
    assert json.loads(ok(api, "inspect", "-f", "{{json .HostConfig.LogConfig}}", "loc")) == \
        {"Type": "local", "Config": {}}
    # none: the output still reaches an attached client, logs has nothing to read
    res = docker(api, "run", "--name", "quiet", "--network", "none", "--log-driver", "none",
                 IMAGE, "echo", "seen once")
    assert (res.returncode, res.stdout) == (0, "seen once\n"), res.stderr
    res = docker(api, "logs", "quiet")
    assert res.returncode == 1, res
    assert res.stderr.strip() == ("Error response from daemon: configured logging driver "
                                  "does not support reading")


@pytest.mark.parametrize("flags,words", [
    (["--log-driver", "syslog"], "logger: no log driver named 'syslog' is registered"),
    (["--log-opt", "max-file=0"], "max-file cannot be less than 1"),
    (["--log-opt", "max-size=-1"], "max-size must be a positive number"),
    (["--log-opt", "colour=red"], "unknown log opt 'colour' for json-file log driver"),
    (["--log-driver", "local", "--log-opt", "labels=a"],
     "unknown log opt 'labels' for local log driver"),
])
def test_bad_logging_is_refused_in_dockers_words_and_leaves_nothing(api, flags, words):
    res = docker(api, "run", "--rm", "--network", "none", *flags, IMAGE, "true")
    assert res.returncode == 125, res
    assert words in res.stderr, res.stderr
    assert ok(api, "ps", "-aq") == ""
    res = dockish("create", *flags, IMAGE, "true")
    one_error_line(res, 125, words)


COMPOSE_LOGGING = """version: "2.4"
services:
  chatty:
    image: busybox:latest
    network_mode: none
    command:
      - sh
      - -c
      - i=0; while [ $$i -lt 100 ]; do echo line-$$i; i=$$((i+1)); done; sleep 300
    logging:
      driver: json-file
      options:
        max-size: 1k
        max-file: "2"
"""


def test_compose_logging_section_rotates_the_services_log(api, tmp_path):
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose (v1) is missing: run scripts/setup as root"
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "docker-compose.yml").write_text(COMPOSE_LOGGING)
    env = api.env(COMPOSE_PROJECT_NAME="logtest")

    def run(*args: str) -> str:
        res = subprocess.run([compose, *args], cwd=proj, capture_output=True, text=True,
                             env=env, timeout=240)
        assert res.returncode == 0, (args, res.stdout, res.stderr, api.logs())
        return res.stdout

    try:
        run("up", "-d")
        _wait_for(lambda: "line-99" in run("logs", "--no-color", "chatty"), what="line-99")
        lines = [line.rsplit("|", 1)[1].strip() for line in
                 run("logs", "--no-color", "chatty").splitlines() if "|" in line]
        nums = _kept_lines("\n".join(lines))
        assert nums[-1] == 99 and nums[0] > 0, nums           # the first ones rotated away
        name = ok(api, "ps", "-q", "--filter", "name=logtest_chatty").strip()
        assert json.loads(ok(api, "inspect", "-f", "{{json .HostConfig.LogConfig}}",
                             name)) == {"Type": "json-file",
                                        "Config": {"max-file": "2", "max-size": "1k"}}
        run("down")
        assert ok(api, "ps", "-aq") == ""
    finally:
        api.stop()


# ------------------------------------------------------------------ --volumes-from

def test_volumes_from_mounts_the_others_volumes_and_binds_and_rm_keeps_what_it_borrowed(
        api, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "file").write_text("from the host\n")
    ok(api, "run", "-d", "--name", "donor", "--network", "none", "-v", "/data",
       "-v", f"{host}:/host:ro", IMAGE, "sh", "-c", "echo in-volume > /data/f; sleep 300")
    _wait_for(lambda: docker(api, "exec", "donor", "cat", "/data/f").stdout == "in-volume\n",
              what="the donor's file")
    out = ok(api, "run", "--rm", "--network", "none", "--volumes-from", "donor", IMAGE,
             "sh", "-c", "cat /data/f /host/file; echo more >> /data/f && echo rw; "
             "touch /host/x 2>/dev/null || echo host-ro")
    assert out == "in-volume\nfrom the host\nrw\nhost-ro\n"
    out = ok(api, "run", "--rm", "--network", "none", "--volumes-from", "donor:ro", IMAGE,
             "sh", "-c", "touch /data/g 2>/dev/null || echo data-ro")
    assert out == "data-ro\n"
    # the --rm borrowers are gone; the donor's anonymous volume is not
    vols = ok(api, "volume", "ls", "-q").split()
    assert len(vols) == 1
    assert ok(api, "exec", "donor", "cat", "/data/f") == "in-volume\nmore\n"
    info = json.loads(ok(api, "inspect", "donor"))[0]
    assert {m["Destination"] for m in info["Mounts"]} == {"/data", "/host"}
    # through the API's HostConfig.VolumesFrom too, and by Docker's words when missing
    res = docker(api, "run", "--rm", "--volumes-from", "nobody", IMAGE, "true")
    assert res.returncode == 125 and "No such container: nobody" in res.stderr, res
    ok(api, "rm", "-f", "-v", "donor")
    assert ok(api, "volume", "ls", "-q") == ""            # rm -v: the maker's to remove


# ------------------------------------------------------------------ --pid, --ipc, --uts

def test_pid_host_and_pid_of_another_container(api):
    me = os.getpid()
    out = ok(api, "run", "--rm", "--network", "none", "--pid", "host", IMAGE, "sh", "-c",
             f"test -d /proc/{me} && echo sees-host; cat /proc/1/comm")
    assert out.splitlines()[0] == "sees-host"
    ok(api, "run", "-d", "--name", "first", "--network", "none", IMAGE, "sleep", "301")
    out = ok(api, "run", "--rm", "--network", "none", "--pid", "container:first", IMAGE,
             "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o args")
    assert out.splitlines()[0] == "sleep 301 "
    assert "sleep 301" in "\n".join(out.splitlines()[1:])
    # an exec into it sees the same
    ok(api, "run", "-d", "--name", "second", "--network", "none", "--pid", "container:first",
       IMAGE, "sleep", "302")
    assert "sleep 301" in ok(api, "exec", "second", "ps", "-o", "args")
    assert json.loads(ok(api, "inspect", "-f", "{{json .HostConfig.PidMode}}", "second")) \
        .startswith("container:")
    ok(api, "stop", "-t", "0", "first")
    _wait_for(lambda: _exited(api, "second"), what="second to end with the namespace")
    res = docker(api, "start", "second")
    assert res.returncode != 0 and "cannot join PID of a non running container" in \
        res.stderr, res


def test_ipc_shareable_host_and_private(api):
    host_ipc = os.readlink("/proc/self/ns/ipc")
    out = ok(api, "run", "--rm", "--network", "none", "--ipc", "host", IMAGE,
             "readlink", "/proc/self/ns/ipc")
    assert out.strip() == host_ipc
    ok(api, "run", "-d", "--name", "owner", "--network", "none", "--ipc", "shareable", IMAGE,
       "sh", "-c", "echo token > /dev/shm/t; readlink /proc/self/ns/ipc; sleep 300")
    _wait_for(lambda: ok(api, "logs", "owner").strip(), what="owner's ipc line")
    theirs = ok(api, "logs", "owner").strip()
    out = ok(api, "run", "--rm", "--network", "none", "--ipc", "container:owner", IMAGE,
             "sh", "-c", "readlink /proc/self/ns/ipc; cat /dev/shm/t")
    assert out.split() == [theirs, "token"]
    ok(api, "run", "-d", "--name", "private", "--network", "none", IMAGE, "sleep", "300")
    res = docker(api, "run", "--rm", "--network", "none", "--ipc", "container:private",
                 IMAGE, "true")
    assert res.returncode != 0 and "non-shareable IPC" in res.stderr, res
    out = ok(api, "run", "--rm", "--network", "none", "--ipc", "none", IMAGE,
             "sh", "-c", "grep -c ' /dev/shm ' /proc/mounts; readlink /proc/self/ns/ipc")
    assert out.split()[0] == "0" and out.split()[1] not in (host_ipc, theirs)
    res = docker(api, "run", "--rm", "--ipc", "elsewhere", IMAGE, "true")
    assert res.returncode == 125, res


def test_a_donor_that_plants_a_link_at_dev_shm_shares_nothing_of_the_host(api):
    """An attacker's shareable container replaces its /dev/shm with a link
    climbing out of its root: the container that joins its IPC gets what the
    link names inside the donor's root (its own /etc), never the host's."""
    # (taking its /dev/shm mount away needs CAP_SYS_ADMIN, which the user gave it)
    ok(api, "run", "-d", "--name", "donor", "--network", "none", "--ipc", "shareable",
       "--cap-add", "SYS_ADMIN", IMAGE, "sh", "-c", "umount /dev/shm && rmdir /dev/shm && "
       "ln -s ../../../../../../../../etc /dev/shm && echo planted; sleep 300")
    _wait_for(lambda: "planted" in ok(api, "logs", "donor"), what="the planted link")
    seen = ok(api, "run", "--rm", "--network", "none", "--ipc", "container:donor", IMAGE,
              "ls", "/dev/shm/").split()
    donors_etc = ok(api, "exec", "donor", "ls", "/etc/").split()
    assert seen == donors_etc and "passwd" in seen, seen
    assert sorted(os.listdir("/etc")) != seen                # the host's is another


def test_uts_host_and_domainname(api):
    out = ok(api, "run", "--rm", "--network", "none", "--uts", "host", IMAGE, "hostname")
    assert out.strip() == socket.gethostname()
    res = dockish("run", "--rm", "--uts", "host", "-h", "mine", IMAGE, "true")
    one_error_line(res, 125, "Conflicting options: hostname and the UTS mode")
    out = ok(api, "run", "--rm", "--network", "none", "--domainname", "example.org", IMAGE,
             "cat", "/proc/sys/kernel/domainname")
    assert out.strip() == "example.org"
    ok(api, "create", "--name", "dn", "--domainname", "example.org", IMAGE, "true")
    assert ok(api, "inspect", "-f", "{{.Config.Domainname}}", "dn").strip() == "example.org"


# ------------------------------------------------------------------ sysctl, oom, health, ...

def test_sysctls_are_written_in_the_containers_namespaces(api):
    out = ok(api, "run", "--rm", "--network", "none",
             "--sysctl", "net.ipv4.ip_unprivileged_port_start=500",
             "--sysctl", "kernel.shmmni=2048", IMAGE, "sh", "-c",
             "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shmmni")
    assert out.split() == ["500", "2048"]
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        assert f.read().strip() != "500"                # the host's is untouched
    ok(api, "create", "--name", "sc", "--sysctl", "net.core.somaxconn=1024", IMAGE, "true")
    assert json.loads(ok(api, "inspect", "-f", "{{json .HostConfig.Sysctls}}", "sc")) == \
        {"net.core.somaxconn": "1024"}
    res = docker(api, "run", "--rm", "--sysctl", "kernel.hostname=x", IMAGE, "true")
    assert res.returncode == 125 and "sysctl 'kernel.hostname=x' is not allowed" in \
        res.stderr, res
    res = dockish("run", "--rm", "--network", "host", "--sysctl", "net.core.somaxconn=1",
                  IMAGE, "true")
    one_error_line(res, 125, "not allowed in host network namespace")


def test_oom_score_adj_may_only_go_up_rootless(api):
    out = ok(api, "run", "--rm", "--network", "none", "--oom-score-adj", "500", IMAGE,
             "cat", "/proc/self/oom_score_adj")
    assert out.strip() == "500"
    res = docker(api, "run", "--rm", "--network", "none", "--oom-score-adj", "-500",
                 IMAGE, "true")
    assert res.returncode == 125 and "a rootless container may only raise it" in \
        res.stderr, res
    res = dockish("run", "--rm", "--oom-score-adj", "1001", IMAGE, "true")
    one_error_line(res, 125, "range for oom score adj is [-1000, 1000]")


def test_health_start_interval_checks_often_during_the_start_period(api):
    ok(api, "run", "-d", "--name", "h", "--network", "none", "--health-cmd",
       "test -e /tmp/up", "--health-interval", "300s", "--health-start-period", "60s",
       "--health-start-interval", "1s", IMAGE, "sh", "-c", "sleep 2; touch /tmp/up; sleep 300")
    began = time.monotonic()
    _wait_for(lambda: ok(api, "inspect", "-f", "{{.State.Health.Status}}", "h").strip()
              == "healthy", timeout=20, what="healthy")
    assert time.monotonic() - began < 15       # not the 300 s interval
    hc = json.loads(ok(api, "inspect", "-f", "{{json .Config.Healthcheck}}", "h"))
    assert hc["StartInterval"] == 1_000_000_000


def test_annotations_are_kept_and_shown(api):
    ok(api, "create", "--name", "ann", "--annotation", "org.example/team=ci",
       "--annotation", "bare", IMAGE, "true")
    assert json.loads(ok(api, "inspect", "-f", "{{json .HostConfig.Annotations}}", "ann")) \
        == {"org.example/team": "ci", "bare": ""}


def test_mac_address_on_a_user_network_and_the_default_one(api):
    ok(api, "network", "create", "macnet")
    out = ok(api, "run", "--rm", "--network", "macnet", "--mac-address", "02:42:AC:11:00:99",
             IMAGE, "cat", "/sys/class/net/eth0/address")
    assert out.strip() == "02:42:ac:11:00:99"
    for net in ("slirp4netns", "pasta"):      # the private networks' own interface
        out = dok("run", "--rm", "--network", net, "--mac-address", "02:42:ac:11:00:98",
                  IMAGE, "sh", "-c", "cat /sys/class/net/*/address")
        assert "02:42:ac:11:00:98" in out.split(), (net, out)
    res = docker(api, "run", "--rm", "--mac-address", "nope", IMAGE, "true")
    assert res.returncode == 125 and "nope is not a valid mac address" in res.stderr, res
    ok(api, "network", "rm", "macnet")
