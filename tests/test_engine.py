"""The engine's Docker-shaped operations, through the ``dockish`` CLI and
the ``Engine`` as a library (what the API server calls): logs kept per
stream with times, exec as create/start/inspect/resize, cp as tar streams,
wait conditions and the events log, builds from a context tar, image
records (list filters, history, import, rmi conflicts, info, mount).
Real busybox containers, as the unprivileged user."""
from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timezone

import pytest

from .runbed import dockish, no_leftovers, ok  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("no_leftovers")


@pytest.fixture
def quiet(capfd):
    """Fails the test if the engine wrote anything to fds 1 or 2."""
    yield
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def _run(*args: str) -> subprocess.CompletedProcess:
    """``dockish`` with its output as text that keeps any byte (surrogateescape)."""
    from .diffbase import dockish_exe
    res = subprocess.run([dockish_exe(), *args], capture_output=True, timeout=180)
    res.stdout = res.stdout.decode("utf-8", "surrogateescape")
    res.stderr = res.stderr.decode("utf-8", "surrogateescape")
    return res


def _ns(stamp: str) -> int:
    from runner.runtime.logs import parse_rfc3339_nano
    return parse_rfc3339_nano(stamp)


# -- logs ------------------------------------------------------------------------------------


def test_logs_keep_stdout_and_stderr_apart_with_times(bb):
    cid = ok("run", "-d", "--network", "none", bb, "sh", "-c",
             "echo out1; echo err1 >&2; sleep 1.5; echo out2; printf '\\377\\376 raw\\n'; "
             "echo '{\"log\":\"forged\\n\",\"stream\":\"stderr\",\"time\":\"2001-01-01T00:00"
             ":00Z\"}'").strip()
    assert ok("wait", cid).strip() == "0"
    res = _run("logs", cid)
    assert res.returncode == 0
    # a line that looks like a record is the container's stdout, nothing more
    assert res.stdout.splitlines()[:2] == ["out1", "out2"]
    assert '"stream":"stderr"' in res.stdout.splitlines()[3]
    assert res.stderr == "err1\n"
    # bytes that are not UTF-8 come back exactly
    assert "\udcff\udcfe raw" in res.stdout.splitlines()[2]
    stamped = _run("logs", "-t", cid)
    lines = stamped.stdout.splitlines()
    times = [_ns(line.split(" ", 1)[0]) for line in lines]
    assert [line.split(" ", 1)[1] for line in lines[:2]] == ["out1", "out2"]
    assert times == sorted(times) and times[1] - times[0] > 1_000_000_000
    err_stamp, err_text = stamped.stderr.strip().split(" ", 1)
    assert err_text == "err1" and times[0] <= _ns(err_stamp) < times[1]
    middle = (times[0] + times[1]) / 2e9
    assert _run("logs", "--since", f"{middle:.3f}", cid).stdout.splitlines()[0] == "out2"
    early = _run("logs", "--until", f"{middle:.3f}", cid)
    assert (early.stdout, early.stderr) == ("out1\n", "err1\n")
    rfc = datetime.fromtimestamp(middle, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert _run("logs", "--since", rfc, cid).stdout.splitlines()[0] == "out2"
    assert _run("logs", "--since", "1h", cid).stdout.splitlines()[0] == "out1"
    tail = _run("logs", "--tail", "1", cid)
    assert '"forged' in tail.stdout and tail.stdout.count("\n") == 1 and tail.stderr == ""
    bad = dockish("logs", "--since", "yesterday-ish", cid)
    assert bad.returncode == 125 and bad.stderr.startswith("dockish: error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_logs_of_a_container_made_before_records_stay_readable(bb, dockish_root):
    """An old container's raw ``ctr.log`` is read as stdout; started again,
    its old output is kept (turned into records) and the new one follows."""
    cid = ok("create", "--network", "none", bb, "echo", "new").strip()
    cdir = dockish_root / "containers" / cid
    (cdir / "ctr.log").write_bytes(b"old line 1\nold line 2\n")
    assert not (cdir / "ctr-json.log").exists()
    assert ok("logs", cid) == "old line 1\nold line 2\n"
    assert ok("logs", "--tail", "1", cid) == "old line 2\n"
    ok("start", cid)
    assert ok("wait", cid).strip() == "0"
    assert ok("logs", cid) == "old line 1\nold line 2\nnew\n"
    assert not (cdir / "ctr.log").exists()
    assert os.stat(cdir / "ctr-json.log").st_mode & 0o777 == 0o600


def test_engine_logs_follow_until_the_container_stops(bb, dockish_root):
    from runner.engine import CreateOptions, Engine
    eng = Engine(dockish_root)
    c = eng.create(CreateOptions(image=bb, args=["sh", "-c", "echo a; sleep 1; echo b >&2"],
                                 network="none"))
    eng.start(c)
    got = [(e.stream, e.data) for e in eng.logs(c, follow=True)]
    assert got == [(1, b"a\n"), (2, b"b\n")]
    assert [e.data for e in eng.logs(c, stdout=False)] == [b"b\n"]
    eng.remove(c.id)


# -- events and wait -------------------------------------------------------------------------


def test_events_tell_the_lifecycle_in_order(bb, busybox_image, dockish_root):
    since = f"{time.time() - 1:.3f}"
    ok("load", "-i", str(busybox_image.docker_archive))
    cid = ok("create", "--name", "evt", "--network", "none", bb, "sh", "-c",
             "sleep 30").strip()
    ok("start", "evt")
    ok("pause", "evt")
    ok("unpause", "evt")
    ok("rename", "evt", "evt2")
    ok("stop", "-t", "1", "evt2")
    ok("rm", "evt2")
    ok("volume", "create", "evtvol")
    ok("volume", "rm", "evtvol")
    ok("tag", busybox_image.repo, "evt/img:1")
    until = f"{time.time() + 1:.3f}"
    lines = ok("events", "--since", since, "--until", until, "--format", "json").splitlines()
    evs = [json.loads(line) for line in lines]
    mine = [ev["Action"] for ev in evs if ev["Actor"]["ID"] == cid]
    assert [a for a in mine if a != "kill"] == ["create", "start", "pause", "unpause",
                                                "rename", "die", "stop", "destroy"]
    die = next(ev for ev in evs if ev["Action"] == "die" and ev["Actor"]["ID"] == cid)
    assert die["Type"] == "container" and die["Actor"]["Attributes"]["name"] == "evt2"
    assert die["Actor"]["Attributes"]["exitCode"] in ("137", "143")
    assert die["timeNano"] // 1_000_000_000 == die["time"]
    assert [ev["Action"] for ev in evs if ev["Type"] == "volume"] == ["create", "destroy"]
    assert any(ev["Type"] == "image" and ev["Action"] == "tag" for ev in evs)
    # filters, Docker's default line and a template
    only = ok("events", "--since", since, "--until", until, "--filter", "container=evt2",
              "--filter", "event=die").splitlines()
    assert len(only) == 1 and f" container die {cid} (" in only[0] and "name=evt2" in only[0]
    assert ok("events", "--since", since, "--until", until, "--filter", "type=volume",
              "--format", "{{.Type}} {{.Action}}").splitlines() == ["volume create",
                                                                   "volume destroy"]
    bad = dockish("events", "--filter", "colour=red", "--until", until)
    assert bad.returncode == 125 and bad.stderr.startswith("dockish: error: invalid filter")
    log = dockish_root / "events.log"
    assert os.stat(log).st_mode & 0o777 == 0o600


def test_events_follow_and_a_planted_symlink_is_not_written_through(bb, dockish_root,
                                                                     tmp_path):
    from .diffbase import dockish_exe
    follower = subprocess.Popen([dockish_exe(), "events", "--filter", "event=die"],
                                stdout=subprocess.PIPE)
    try:
        time.sleep(0.5)                              # the follower is reading
        assert dockish("run", "--rm", "--network", "none", bb, "sh", "-c",
                       "exit 4").returncode == 4
        line = follower.stdout.readline().decode()
        assert " container die " in line and "exitCode=4" in line
    finally:
        follower.kill()
        follower.wait()
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    log = dockish_root / "events.log"
    log.unlink()
    log.symlink_to(victim)
    assert dockish("run", "--rm", "--network", "none", bb, "true").returncode == 0
    assert victim.read_text() == "untouched\n"


def test_engine_wait_conditions(bb, dockish_root):
    import threading

    from runner.engine import CreateOptions, Engine
    eng = Engine(dockish_root)
    c = eng.create(CreateOptions(image=bb, args=["sh", "-c", "exit 6"], network="none"))
    eng.start(c)
    assert eng.wait(c) == 6                         # not-running
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(eng.wait(c.id, "next-exit")))
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()                        # a stopped one: waits for the next exit
    eng.start(c)
    waiter.join(30)
    assert got == [6]
    r = eng.create(CreateOptions(image=bb, args=["sh", "-c", "sleep 1; exit 5"],
                                 network="none", auto_remove=True))
    eng.start(r)
    assert eng.wait(r.id, "removed") == 5 and not r.path.exists()
    from runner.errors import UsageError
    with pytest.raises(UsageError):
        eng.wait(c.id, "whenever")
    eng.remove(c.id)


# -- cp as tar streams -------------------------------------------------------------------------


def _tar(members: list[tuple[str, bytes | None, str]]) -> bytes:
    """A tar of (name, data or None, symlink target or "")."""
    import io
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data, link in members:
            ti = tarfile.TarInfo(name)
            if link:
                ti.type, ti.linkname = tarfile.SYMTYPE, link
                tf.addfile(ti)
            else:
                ti.size = len(data or b"")
                tf.addfile(ti, io.BytesIO(data or b""))
    return buf.getvalue()


@pytest.mark.parametrize("running", [True, False])
def test_engine_archive_put_and_get_and_a_hostile_tar(bb, dockish_root, tmp_path, quiet,
                                                      running):
    import io
    import tarfile

    from runner.engine import CreateOptions, Engine
    from runner.errors import DockishError, NotFoundError
    notes: list[str] = []
    eng = Engine(dockish_root, notify=notes.append)
    c = eng.create(CreateOptions(image=bb, args=["sleep", "30"], network="none"))
    if running:
        eng.start(c)
    eng.archive_put(c, "/tmp", io.BytesIO(_tar([("d/a.txt", b"hello\n", "")])))
    st, stream = eng.archive_get(c, "/tmp/d")
    assert st["name"] == "d" and st["mode"] & (1 << 31)          # a directory, Go's way
    data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert sorted(tf.getnames()) == ["d", "d/a.txt"]
        assert tf.extractfile("d/a.txt").read() == b"hello\n"
    with pytest.raises(NotFoundError):
        eng.archive_get(c, "/no/such")
    assert eng.archive_stat(c, "/no/such") is None
    # an attacker's tar: a symlink to the host's view of a directory, then a file through it
    victim = tmp_path / "victim"
    victim.mkdir()
    # (the symlink is replaced inside the container, never followed; ".." is refused)
    eng.archive_put(c, "/tmp", io.BytesIO(_tar([("up", None, str(victim)),
                                                ("up/owned", b"x", "")])))
    assert not (victim / "owned").exists()
    with pytest.raises(DockishError, match="parent directory"):
        eng.archive_put(c, "/tmp", io.BytesIO(_tar([("../../../../" + str(victim) + "/owned",
                                                     b"x", "")])))
    assert not (victim / "owned").exists()
    with pytest.raises(DockishError, match="Could not find the directory"):
        eng.archive_put(c, "/no/such/dir", io.BytesIO(_tar([("f", b"", "")])))
    eng.remove(c.id, force=True)


def test_attach_sends_stdin_to_a_detached_i_container(bb, dockish_root):
    """`run -d -i` keeps the container's stdin open (as Docker: `sh` waits
    for input), and `attach` sends what it reads to it."""
    from .diffbase import dockish_exe
    ok("run", "-d", "-i", "--name", "reader", "--network", "none", bb, "sh", "-c",
       "read x; echo got-$x; exit 5")
    time.sleep(0.5)
    assert ok("ps", "--format", "{{.Names}} {{.State}}") == "reader running\n"
    res = subprocess.run([dockish_exe(), "attach", "reader"], input="hello\n",
                         capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout) == (5, "got-hello\n"), res.stderr
