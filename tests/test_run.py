"""`dockish run` and the container lifecycle, as a user sees them: real user,
mount, pid, uts, ipc and network namespaces, the FUSE view as the root, run
unprivileged. Most runs use ``--network none`` (fast); the slirp4netns
network has tests of its own."""
from __future__ import annotations

import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
import urllib.request
from pathlib import Path

import pytest

from . import images
from .runbed import (
    drain,
    no_leftovers,  # noqa: F401 - a fixture
    one_error_line,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")

# The container commands are registered on the dockish group by
# runner.cli.containers.register (idempotent if runner.cli already does it).
_ENTRY = ("import sys; from runner.cli import main; from runner.cli.containers import register; "
          "register(main); sys.argv[0] = 'dockish'; main()")
DOCKISH = [sys.executable, "-c", _ENTRY]


def dockish(*args: str, input: str | None = None, env: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*DOCKISH, *args], capture_output=True, text=True, input=input,
                          timeout=timeout, env=env)


def ok(*args: str, **kw) -> str:
    res = dockish(*args, **kw)
    assert res.returncode == 0, (args, res.returncode, res.stderr)
    return res.stdout


def run(image: str, *cmd: str, flags: tuple[str, ...] = (), **kw) -> subprocess.CompletedProcess:
    return dockish("run", "--rm", "--network", "none", *flags, image, *cmd, **kw)


def _wait_for(pred, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


# ------------------------------------------------------------------ the process

def test_run_output_and_exit_codes(bb):
    res = run(bb, "echo", "hi")
    assert (res.returncode, res.stdout, res.stderr) == (0, "hi\n", "")
    assert run(bb, "sh", "-c", "echo out; echo err >&2; exit 3").returncode == 3
    # pid 1 is immune to its own SIGKILL (as in Docker); under --init it is not pid 1
    assert run(bb, "sh", "-c", "kill -9 $$", flags=("--init",)).returncode == 137
    one_error_line(run(bb, "no-such-command"), 127, '"no-such-command"', "not found in $PATH")
    one_error_line(run(bb, "/no/such/file"), 127, "no such file")
    one_error_line(run(bb, "/etc/passwd"), 126, "permission denied")
    one_error_line(run(bb, "/etc"), 126)
    one_error_line(dockish("run", "--rm", "oci:/no/such/layout", "true"), 125,
                   "Unable to find image")
    one_error_line(dockish("run", "--rm", "--entrypoint", "", bb), 125, "no command")
    one_error_line(dockish("run", "--rm", "--network", "bogus", bb, "true"), 125, "bogus")
    # --rm leaves nothing behind, failed or not
    assert ok("ps", "-a", "-q") == ""


def test_stdin_only_with_i(bb):
    assert run(bb, "cat", input="fed\n").stdout == ""
    assert run(bb, "cat", flags=("-i",), input="fed\n").stdout == "fed\n"


def test_env_user_workdir_entrypoint(bb, tmp_path):
    envf = tmp_path / "env"
    envf.write_text("# comment\nFROMFILE=f\nPASSED\n")
    res = run(bb, "sh", "-c", 'echo "$A|$FROMFILE|$PASSED|$PATH|$HOME|$HOSTNAME"',
              flags=("-e", "A=1", "--env-file", str(envf), "-h", "box"),
              env={**os.environ, "PASSED": "p"})
    assert res.stdout == f"1|f|p|{images.PATH_ENV[5:]}|/root|box\n", res.stderr
    out = run(bb, "sh", "-c", "id; pwd; echo $HOME", flags=("-u", "app", "-w", "/tmp")).stdout
    assert out == ("uid=1000(app) gid=1000(app) groups=1000(app),2000(staff)\n/tmp\n"
                   "/home/app\n")
    assert run(bb, "id", flags=("-u", "1000:2000")).stdout == \
        "uid=1000(app) gid=2000(staff) groups=2000(staff)\n"
    assert run(bb, "id", "-u", flags=("-u", "4321")).stdout == "4321\n"
    one_error_line(run(bb, "id", flags=("-u", "nosuchuser")), 126, "unable to find user")
    # a missing working directory is made, as Docker does
    assert run(bb, "pwd", flags=("-w", "/new/dir")).stdout == "/new/dir\n"
    assert run(bb, "a", "b", flags=("--entrypoint", "echo")).stdout == "a b\n"
    # the image's Cmd is `sh`: with no arguments it runs (stdin closed: exits 0)
    assert run(bb).returncode == 0


def test_image_owners_and_permissions(layered):
    notes = "/" + images.L_APP_HOME
    out = run(layered, "stat", "-c", "%u:%g %a", notes).stdout
    assert out == "1000:2000 640\n"
    assert run(layered, "cat", notes, flags=("-u", "1000")).returncode == 0
    res = run(layered, "cat", notes, flags=("-u", "4242"))
    assert res.returncode == 1 and "Permission denied" in res.stderr
    # setuid bit and modes survive; a user can't write root's files
    assert run(layered, "stat", "-c", "%a", "/" + images.L_SUID).stdout == "4755\n"
    res = run(layered, "sh", "-c", "echo x >> /etc/passwd", flags=("-u", "app"))
    assert res.returncode != 0


def test_proc_dev_sys_and_init_layer(bb):
    script = ("ps -o pid,comm | tail -n +2 | wc -l; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
              "ls /dev; cat /etc/hostname; grep -c box /etc/hosts; hostname; "
              "touch /sys/x 2>&1 | grep -c Read-only; mount | grep -c ' /dev/pts type devpts'; "
              "echo ok > /dev/shm/f && cat /dev/shm/f; head -c 4 /dev/zero | wc -c; "
              "echo > /dev/full 2>/dev/null || echo full")
    out = run(bb, "sh", "-c", script, flags=("-h", "box")).stdout.splitlines()
    # sh, ps, tail, wc, nothing of the host's (ps may read /proc before sh has
    # started the pipeline's last members: a loaded machine counted 3)
    assert 2 <= int(out[0]) <= 4, out[0]
    assert out[1].startswith("sh -c ps -o")
    devs = set(out[2:out.index("box")])
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
            "ptmx", "fd", "stdin", "stdout", "stderr"} <= devs
    rest = out[out.index("box"):]
    assert rest == ["box", "1", "box", "1", "1", "ok", "4", "full"]


def test_container_cannot_see_the_host(bb, tmp_path, dockish_root):
    marker = tmp_path / "host-secret"
    marker.write_text("secret")
    res = run(bb, "sh", "-c", f"cat {marker}; ls {dockish_root}; ls /home; "
              "cat /proc/mounts | grep -c -e ' /home' -e '/tmp '; "
              "echo /proc/[0-9]*")
    assert "secret" not in res.stdout
    lines = res.stdout.splitlines()
    assert lines[-2] == "0" and lines[-1] == "/proc/1", res.stdout    # sh alone
    import pwd
    assert pwd.getpwuid(os.getuid()).pw_name not in res.stdout      # the host's /home
    # what the container writes stays in its writable layer
    run(bb, "sh", "-c", "echo x > /etc/os-release")
    assert run(bb, "cat", "/etc/os-release").stdout.startswith("NAME=")


def test_symlinks_resolve_inside_the_view(layered, tmp_path):
    climb = "/" + images.L_LINK_CLIMB              # ../../../../etc/passwd
    assert run(layered, "cat", climb).stdout.startswith("root:x:0:0:root:/root:/bin/sh\n")
    assert run(layered, "cat", climb).stdout == run(layered, "cat", "/etc/passwd").stdout
    # a mount target that is a symlink climbing out lands inside the view
    f = tmp_path / "file"
    f.write_text("mounted over the image's passwd\n")
    res = run(layered, "cat", "/etc/passwd", flags=("-v", f"{f}:{climb}:ro"))
    assert res.stdout == "mounted over the image's passwd\n", res.stderr


def test_signals_reach_the_container(bb):
    p = subprocess.Popen([*DOCKISH, "run", "--rm", "--network", "none", bb, "sh", "-c",
                          "trap 'echo got TERM; exit 9' TERM; echo ready; "
                          "while :; do sleep 0.05; done"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=10)
    assert (p.returncode, out) == (9, "got TERM\n")


def test_read_only_tmpfs_and_init(bb):
    res = run(bb, "touch", "/x", flags=("--read-only",))
    assert res.returncode == 1 and "Read-only file system" in res.stderr
    assert run(bb, "sh", "-c", "touch /t/x && ls /t", flags=("--read-only", "--tmpfs", "/t")
               ).stdout == "x\n"
    # --init: tini (Docker's docker-init) is pid 1, the command its child
    out = run(bb, "ps", "-o", "pid,args", flags=("--init",)).stdout.splitlines()
    assert out[1].split(None, 1) == ["1", "/dev/init -- ps -o pid,args"], out
    assert out[2].split(None, 1)[1] == "ps -o pid,args"
    assert run(bb, "sh", "-c", "exit 7", flags=("--init",)).returncode == 7
    one_error_line(run(bb, "nope", flags=("--init",)), 127, "not found in $PATH")
    # and it leaves no trace in the container's layer
    ok("run", "--name", "inited", "--init", "--network", "none", bb, "true")
    assert ok("diff", "inited") == ""
    ok("rm", "inited")


# ------------------------------------------------------------------ -it

def test_interactive_tty(bb):
    import fcntl
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [*DOCKISH, "run", "--rm", "-it", "--network", "none", bb])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    saved = termios.tcgetattr(fd)
    drain(fd, 10, until=b"# ")
    os.write(fd, b"stty size; tty; echo $TERM; exit 5\r")
    out = drain(fd, 10)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 5
    assert b"33 111" in out and b"/dev/console" in out and b"xterm" in out, out
    assert termios.tcgetattr(fd) == saved          # raw mode undone
    os.close(fd)


def test_exec_with_a_tty(bb):
    ok("run", "-d", "--name", "shell", "--network", "none", bb, "sleep", "60")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [*DOCKISH, "exec", "-it", "-u", "app", "shell", "sh"])
    drain(fd, 10, until=b"$ ")
    os.write(fd, b"tty; id -u; exit 6\r")
    out = drain(fd, 10)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 6
    assert b"1000" in out, out


# ------------------------------------------------------------------ lifecycle

def test_foreground_output_is_relayed_and_logged(bb):
    """Without -t the container writes to pipes (never the user's terminal),
    stdout and stderr stay apart, and `logs` has the output afterwards."""
    res = dockish("run", "--name", "fglog", "--network", "none", bb, "sh", "-c",
                  "echo out; echo err >&2; [ -t 1 ] && echo tty || echo notty; exit 3")
    assert res.returncode == 3
    assert res.stdout == "out\nnotty\n" and res.stderr == "err\n"
    logged = dockish("logs", "fglog")         # each stream where it came from, as Docker does
    assert (logged.stdout, logged.stderr) == ("out\nnotty\n", "err\n")
    # a lot of output, and a background process that outlives the command
    res = dockish("run", "--rm", "--network", "none", bb, "sh", "-c",
                  "seq 1 200000; (sleep 30 &) ; echo done")
    assert res.returncode == 0 and res.stdout.endswith("200000\ndone\n")
    assert len(res.stdout.splitlines()) == 200001
    ok("rm", "fglog")


def test_detached_logs_exec_stop_rm(bb):
    cid = ok("run", "-d", "--name", "ticker", "--network", "none", bb, "sh", "-c",
             "echo started; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.1; done").strip()
    assert len(cid) == 64
    follower = subprocess.Popen([*DOCKISH, "logs", "-f", "ticker"], stdout=subprocess.PIPE,
                                text=True)
    ps = ok("ps")
    assert "ticker" in ps and "Up " in ps and cid[:12] in ps
    assert ok("ps", "-q") == cid[:12] + "\n"
    rows = [json.loads(line) for line in ok("ps", "--format", "json").splitlines()]
    assert rows[0]["Names"] == "ticker" and rows[0]["State"] == "running"
    assert ok("inspect", "-f", "{{.State.Status}} {{.Name}}", "ticker") == "running /ticker\n"
    out = ok("exec", "ticker", "sh", "-c", "echo from exec $HOSTNAME; ps -o pid,comm")
    assert out.startswith(f"from exec {cid[:12]}\n") and "1 sh" in out
    assert dockish("exec", "ticker", "sh", "-c", "exit 4").returncode == 4
    one_error_line(dockish("exec", "ticker", "nope"), 127, "nope")
    assert ok("exec", "-u", "app", "-w", "/tmp", "-e", "X=1", "ticker", "sh", "-c",
              "id -u; pwd; echo $X") == "1000\n/tmp\n1\n"
    assert ok("exec", "-i", "ticker", "cat", input="via stdin\n") == "via stdin\n"
    top = ok("top", "ticker")
    assert top.startswith("UID") and "sleep" in top
    time.sleep(0.3)
    t0 = time.monotonic()
    assert ok("stop", "-t", "1", "ticker") == "ticker\n"      # sh as pid 1 ignores TERM
    assert 0.9 < time.monotonic() - t0 < 5
    out, _ = follower.communicate(timeout=10)
    assert out.startswith("started\ntick 0\ntick 1\n")
    logs = ok("logs", "ticker")
    assert logs.startswith("started\n") and ok("logs", "--tail", "1", "ticker") == \
        logs.splitlines(keepends=True)[-1]
    assert "Exited (137)" in ok("ps", "-a") and "ticker" not in ok("ps")
    assert ok("wait", "ticker") == "137\n"
    one_error_line(dockish("exec", "ticker", "true"), 125, "not running")
    # restart, then a container that handles TERM stops at once
    ok("start", "ticker")
    assert ok("inspect", "-f", "{{.State.Running}}", "ticker") == "true\n"
    res = dockish("rm", "ticker")
    assert res.returncode == 1 and "running" in res.stderr
    assert ok("rm", "-f", "ticker") == "ticker\n"
    assert ok("ps", "-a", "-q") == ""
    polite = ok("run", "-d", "--name", "polite", "--network", "none", bb, "sh", "-c",
       "trap 'exit 0' TERM; while :; do sleep 0.05; done")
    t0 = time.monotonic()
    ok("stop", "polite")
    assert time.monotonic() - t0 < 3
    assert ok("wait", "polite") == "0\n"
    assert polite.strip() in ok("container", "prune", "-f")
    assert ok("ps", "-a", "-q") == ""


def test_create_start_attach_and_name_conflict(bb):
    cid = ok("create", "--name", "c1", "--network", "none", bb, "sh", "-c",
             "echo attached; exit 2").strip()
    assert "Created" in ok("ps", "-a")
    res = dockish("start", "-a", "c1")
    assert (res.returncode, res.stdout) == (2, "attached\n")
    res = dockish("create", "--name", "c1", bb)
    one_error_line(res, 125, "already in use")
    assert ok("rm", cid[:8]) == cid[:8] + "\n"
    res = dockish("rm", "c1")
    assert res.returncode == 1 and "No such container" in res.stderr


def test_ps_tells_the_truth_after_kill_9(bb):
    ok("run", "-d", "--name", "victim", "--network", "none", bb, "sleep", "60")
    pid = json.loads(ok("inspect", "victim"))[0]["State"]["Pid"]
    assert pid > 0
    os.kill(pid, signal.SIGKILL)         # the container's process, from the host
    _wait_for(lambda: "victim" not in ok("ps"))
    assert "Exited (137)" in ok("ps", "-a")
    ok("start", "victim")
    # now kill the holder and monitor too: nothing is left to record the end
    state = (Path(os.environ["DOCKISH_ROOT"]) / "containers" /
             json.loads(ok("inspect", "victim"))[0]["Id"] / "state.json")
    st = json.loads(state.read_text())
    os.kill(st["holder_pid"], signal.SIGKILL)
    _wait_for(lambda: "victim" not in ok("ps"))
    assert ok("inspect", "-f", "{{.State.Status}}", "victim") == "exited\n"
    # and a dead view daemon takes its container down with it
    ok("start", "victim")
    st = json.loads(state.read_text())
    os.kill(st["view_pid"], signal.SIGKILL)
    _wait_for(lambda: "victim" not in ok("ps"))
    assert "Exited (137)" in ok("ps", "-a")
    ok("rm", "victim")


# ------------------------------------------------------------------ storage

@pytest.mark.parametrize("userns", [[], ["--userns", "keep-id"]], ids=["default", "keep-id"])
def test_new_files_in_a_container_take_spares_made_ahead(bb, userns):
    """A container's view keeps empty data files made ahead (UPPER/spare,
    as ``dockish mount`` does) and gives each new file one of them: the
    files hold what was written, through a restart too, the spares are the
    user's (a keep-id container's daemon writes as the user) and none is
    left once the container stops."""
    name = "spares-" + (userns[-1] if userns else "default")
    ok("run", "-d", "--name", name, "--network", "none", *userns, bb, "sh", "-c",
       "[ -e /tmp/f299 ] || { i=0; while [ $i -lt 300 ]; do echo $i > /tmp/f$i; "
       "i=$((i+1)); done; }; sleep 60")
    cid = json.loads(ok("inspect", name))[0]["Id"]
    spare = Path(os.environ["DOCKISH_ROOT"]) / "containers" / cid / "upper" / "spare"
    try:
        _wait_for(lambda: spare.is_dir() and any(spare.iterdir()))
        assert {p.stat().st_uid for p in spare.iterdir()} == {os.getuid()}
        _wait_for(lambda: ok("exec", name, "cat", "/tmp/f7", "/tmp/f299") == "7\n299\n", 20)
        ok("stop", "-t", "0", name)
        _wait_for(lambda: not any(spare.iterdir()))     # the daemon's last act
        ok("start", name)
        assert ok("exec", name, "cat", "/tmp/f7", "/tmp/f299") == "7\n299\n"
    finally:
        dockish("rm", "-f", name)

def test_bind_mounts_owned_by_the_user(bb, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "in.txt").write_text("input\n")
    out = run(bb, "sh", "-c", "cat in.txt; echo built > out.txt; mkdir -p build/sub; "
              "stat -c %u in.txt", flags=("-v", f"{work}:/src", "-w", "/src")).stdout
    assert out == "input\n0\n"
    for p in (work / "out.txt", work / "build", work / "build" / "sub"):
        st = p.lstat()
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert (work / "out.txt").read_text() == "built\n"
    res = run(bb, "sh", "-c", "touch /src/x", flags=("-v", f"{work}:/src:ro"))
    assert res.returncode == 1 and "Read-only file system" in res.stderr
    assert not (work / "x").exists()
    res = run(bb, "touch", "/w/y", flags=("--mount", f"type=bind,source={work},target=/w,"
                                          "readonly"))
    assert res.returncode == 1
    one_error_line(run(bb, "true", flags=("--mount", f"type=bind,source={tmp_path}/none,"
                                          "target=/w")), 125, "does not exist")


def test_named_volumes_outlive_containers(bb):
    assert ok("volume", "create", "data") == "data\n"
    run(bb, "sh", "-c", "echo kept > /data/f; chown 1000:1000 /data/f; mkdir /data/d; "
        "chmod 700 /data/d; touch /data/d/inner", flags=("-v", "data:/data"))
    assert run(bb, "sh", "-c", "cat /data/f; stat -c %u /data/f",
               flags=("-v", "data:/data")).stdout == "kept\n1000\n"
    run(bb, "true", flags=("-v", "auto:/x"))            # made on first use
    assert ok("volume", "ls", "-q") == "auto\ndata\n"
    info = json.loads(ok("volume", "inspect", "data"))[0]
    assert info["Name"] == "data" and info["Mountpoint"].endswith("/data/_data")
    ok("run", "-d", "--name", "user", "--network", "none", "-v", "data:/data", bb,
       "sleep", "30")
    res = dockish("volume", "rm", "data")
    assert res.returncode == 1 and "in use" in res.stderr
    ok("rm", "-f", "user")
    assert ok("volume", "rm", "data", "auto") == "data\nauto\n"   # files of other uids too
    assert ok("volume", "ls", "-q") == ""
    one_error_line(dockish("volume", "inspect", "data"), 125, "no such volume")


def test_one_volume_made_by_many_at_once(bb):
    """Compose's services mount one named volume and start side by side:
    every ``volume create`` of one name and every container that makes it
    on first use succeeds, and there is one volume."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: dockish("volume", "create", "shared"), range(8)))
        runs = list(pool.map(lambda i: dockish("run", "--rm", "--network", "none", "-v",
                                               "firstuse:/x", bb, "touch", f"/x/{i}"),
                             range(4)))
    assert [(r.returncode, r.stdout, r.stderr) for r in made] == [(0, "shared\n", "")] * 8
    assert [r.returncode for r in runs] == [0] * 4, [r.stderr for r in runs]
    assert ok("volume", "ls", "-q") == "firstuse\nshared\n"
    assert run(bb, "ls", "/x", flags=("-v", "firstuse:/x")).stdout.split() == \
        ["0", "1", "2", "3"]
    ok("volume", "rm", "shared", "firstuse")


def test_diff_of_the_writable_layer(bb):
    ok("run", "--name", "changer", "--network", "none", bb, "sh", "-c",
       "echo new > /etc/new; echo more >> /etc/passwd; rm /bin/vi; mkdir -p /a/b")
    assert ok("container", "diff", "changer") == (
        "A /a\nA /a/b\nC /bin\nD /bin/vi\nC /etc\nA /etc/new\nC /etc/passwd\n")
    ok("start", "-a", "changer")     # the same changes again, on top: nothing new
    assert "A /etc/new" in ok("container", "diff", "changer")
    ok("rm", "changer")


# ------------------------------------------------------------------ ids and networks

def test_single_mapping_without_subid_ranges(bb, dockish_root):
    env = {**os.environ, "DOCKISH_USERNS": "single"}
    res = run(bb, "sh", "-c", "id -u; cat /proc/self/uid_map", env=env)
    assert res.returncode == 0
    assert res.stdout.split()[:4] == ["0", "0", str(os.getuid()), "1"]
    assert "single mapping" in res.stderr
    res = run(bb, "true", env=env)
    assert res.stderr == ""                           # said once
    one_error_line(run(bb, "id", flags=("-u", "app"), env=env), 126, "does not exist")
    full = run(bb, "cat", "/proc/self/uid_map").stdout.split()
    assert len(full) == 6 and full[3:5] == ["1", str(_subuid_start())]


def _subuid_start() -> int:
    import pwd
    name = pwd.getpwuid(os.getuid()).pw_name
    for line in Path("/etc/subuid").read_text().splitlines():
        who, start, _ = line.split(":")
        if who in (name, str(os.getuid())):
            return int(start)
    raise AssertionError("the test user needs a /etc/subuid range")


def test_network_none_has_only_lo(bb):
    out = run(bb, "ip", "-o", "link").stdout.splitlines()
    assert len(out) == 1 and ": lo:" in out[0] and "UP" in out[0]


@pytest.mark.parametrize("net", ["slirp4netns", "pasta"])
def test_publish_reaches_httpd(bb, net):
    port = _free_port()
    ok("run", "-d", "--name", "web", "--network", net, "-p", f"127.0.0.1:{port}:80", bb,
       "sh", "-c",
       "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www")
    assert ok("port", "web") == f"80/tcp -> 127.0.0.1:{port}\n"
    assert f"127.0.0.1:{port}->80/tcp" in ok("ps")
    body = None
    end = time.monotonic() + 10
    while body is None:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        except OSError:
            assert time.monotonic() < end
            time.sleep(0.1)
    assert body == b"hello\n"
    out = ok("exec", "web", "sh", "-c", "ip -o -4 addr; cat /etc/resolv.conf")
    if net == "slirp4netns":
        assert "tap0" in out and "10.0.2.100/24" in out and "nameserver 10.0.2.3" in out
    else:      # pasta: the host's address on the host's interface name, DNS forwarded
        assert [line for line in out.splitlines() if "inet " in line and ": lo " not in line]
        assert "nameserver 169.254.1.1" in out
    helper = json.loads((Path(os.environ["DOCKISH_ROOT"]) / "containers" /
                         ok("inspect", "-f", "{{.Id}}", "web").strip() / "state.json"
                         ).read_text())["slirp_pid"]
    ok("rm", "-f", "web")
    _wait_for(lambda: not os.path.exists(f"/proc/{helper}") or
              Path(f"/proc/{helper}/stat").read_text().split(") ")[1][0] == "Z")


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cp_and_export_running_and_stopped(bb, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_text("deep\n")
    (tmp_path / "one.txt").write_text("one\n")
    ok("run", "-d", "--name", "box", "--network", "none", bb, "sleep", "60")
    ok("cp", str(src), "box:/tmp")                        # into a directory: keeps its name
    ok("cp", str(tmp_path / "one.txt"), "box:/etc/renamed")   # to a new name
    assert ok("exec", "box", "sh", "-c", "stat -c '%u %n' /tmp/src/sub/f; cat /etc/renamed"
              ) == "0 /tmp/src/sub/f\none\n"
    ok("cp", "box:/etc/passwd", str(tmp_path / "pw"))
    assert (tmp_path / "pw").read_text().startswith("root:x:0:0:")
    assert (tmp_path / "pw").stat().st_uid == os.getuid()
    res = dockish("cp", "box:/nonexistent", str(tmp_path / "x"))
    assert res.returncode == 1 and "Could not find the file /nonexistent" in res.stderr
    ok("stop", "-t", "0", "box")
    ok("cp", "box:/tmp/src", str(tmp_path / "back"))       # from a stopped container
    assert (tmp_path / "back" / "sub" / "f").read_text() == "deep\n"
    ok("cp", str(tmp_path / "one.txt"), "box:/root/")
    tar = tmp_path / "e.tar"
    ok("export", "-o", str(tar), "box")
    import tarfile
    with tarfile.open(tar) as t:
        names = set(t.getnames())
    assert {"bin/busybox", "etc/renamed", "root/one.txt", "tmp/src/sub/f"} <= names
    ok("rm", "box")


def test_inspect_and_restart(bb, tmp_path):
    ok("run", "-d", "--name", "ins", "--network", "none", "-e", "K=v", "-v",
       f"{tmp_path}:/host:ro", "-w", "/tmp", bb, "sleep", "60")
    info = json.loads(ok("inspect", "ins"))[0]
    assert info["Name"] == "/ins" and info["State"]["Running"] is True
    assert info["Path"] == "sleep" and info["Args"] == ["60"]
    assert "K=v" in info["Config"]["Env"] and info["Config"]["WorkingDir"] == "/tmp"
    assert info["Mounts"] == [{"Type": "bind", "Name": "", "Source": str(tmp_path),
                               "Destination": "/host", "RW": False}]
    first = info["State"]["Pid"]
    assert ok("restart", "-t", "0", "ins") == "ins\n"
    info = json.loads(ok("inspect", "ins"))[0]
    assert info["State"]["Running"] and info["State"]["Pid"] != first
    res = dockish("inspect", "nope")
    assert res.returncode == 1 and "No such object" in res.stderr
    ok("kill", "-s", "TERM", "ins")                 # pid 1 without a handler: ignored
    time.sleep(0.2)
    assert ok("inspect", "-f", "{{.State.Running}}", "ins") == "true\n"
    ok("kill", "ins")
    assert ok("inspect", "-f", "{{.State.ExitCode}}", "ins") == "137\n"
    ok("rm", "ins")


def test_image_names_pull_from_a_registry(bb, tmp_path):
    from .registrybed import Registry, env_without_proxy, skopeo_push
    reg = Registry(tmp_path / "registry")
    try:
        name = skopeo_push(reg, bb, "lib/busybox:1")
        env = env_without_proxy()
        res = run(name, "echo", "pulled", flags=("--pull", "never"), env=env)
        one_error_line(res, 125, f"Unable to find image '{name}' locally")
        res = run(name, "echo", "pulled", env=env)            # --pull missing
        assert res.returncode == 0 and res.stdout == "pulled\n", res.stderr
        assert f"Unable to find image '{name}' locally" in res.stderr
        res = run(name, "echo", "again", flags=("--pull", "never"), env=env)
        assert (res.returncode, res.stdout, res.stderr) == (0, "again\n", "")
        res = run(f"{reg.host}/lib/absent:1", "true", env=env)
        assert res.returncode == 125 and "absent" in res.stderr
    finally:
        reg.stop()
