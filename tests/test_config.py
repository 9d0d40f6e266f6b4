"""Docker's rules for the container's process, as pure functions (fast)."""
from __future__ import annotations

import pytest

from runner.runtime import config as c
from runner.runtime.namespaces import plan_mapping, subid_ranges

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "app:x:1000:1000:app:/home/app:/bin/sh\n"
          "svc:x:1001:3000::/srv:/bin/false\n")
GROUP = "root:x:0:\napp:x:1000:\nstaff:x:2000:app,svc\ndocker:x:2001:app\nsvcgrp:x:3000:\n"


@pytest.mark.parametrize("conf,ep,args,want", [
    ({"Cmd": ["sh"]}, None, [], ["sh"]),
    ({"Cmd": ["sh"]}, None, ["echo", "hi"], ["echo", "hi"]),
    ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, None, [], ["/ep", "a"]),
    ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, None, ["b", "c"], ["/ep", "b", "c"]),
    ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, "/other", [], ["/other"]),     # Cmd dropped
    ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, "/other", ["x"], ["/other", "x"]),
    ({"Entrypoint": ["/ep"], "Cmd": ["a"]}, "", ["ls"], ["ls"]),           # cleared
    ({"Entrypoint": None, "Cmd": None}, None, ["true"], ["true"]),
])
def test_command_rules(conf, ep, args, want):
    assert c.command(conf, ep, args) == want


def test_no_command_is_an_error():
    with pytest.raises(c.ConfigError, match="no command specified"):
        c.command({"Entrypoint": ["/ep"]}, "", [])
    with pytest.raises(c.ConfigError):
        c.command({}, None, [])


def test_env_rules():
    host = {"FROMHOST": "h", "PATH": "/host"}
    assert c.parse_env_line("A=1", host) == "A=1"
    assert c.parse_env_line("A=", host) == "A="
    assert c.parse_env_line("FROMHOST", host) == "FROMHOST=h"
    assert c.parse_env_line("MISSING", host) is None
    with pytest.raises(c.ConfigError):
        c.parse_env_line("=x", host)
    text = "# comment\n\nA=1\n  B=two words\nFROMHOST\nMISSING\n"
    assert c.parse_env_file(text, host) == ["A=1", "B=two words", "FROMHOST=h"]
    merged = c.merge_env(["PATH=/img", "A=img"], ["A=flag", "B=new"])
    assert merged == ["PATH=/img", "A=flag", "B=new"]
    done = c.finish_env(["A=1"], hostname="h1", home="/root", tty=True)
    assert set(done) == {f"PATH={c.DEFAULT_PATH}", "HOSTNAME=h1", "TERM=xterm",
                         "HOME=/root", "A=1"}
    kept = c.finish_env(["HOME=/x", "PATH=/p"], hostname="h", home="/root", tty=False)
    assert "HOME=/x" in kept and "PATH=/p" in kept and not any(
        e.startswith("TERM=") for e in kept)


@pytest.mark.parametrize("spec,want", [
    ("", c.User(0, 0, (0,), "/root")),
    ("root", c.User(0, 0, (0,), "/root")),
    ("app", c.User(1000, 1000, (1000, 2000, 2001), "/home/app")),
    ("1000", c.User(1000, 1000, (1000, 2000, 2001), "/home/app")),
    ("app:staff", c.User(1000, 2000, (2000,), "/home/app")),
    ("app:4242", c.User(1000, 4242, (4242,), "/home/app")),
    ("svc", c.User(1001, 3000, (3000, 2000), "/srv")),
    ("5555", c.User(5555, 0, (0,), "/")),                  # unknown uid: gid 0, HOME /
    ("5555:5555", c.User(5555, 5555, (5555,), "/")),
])
def test_user_lookup(spec, want):
    assert c.resolve_user(spec, PASSWD, GROUP) == want


def test_user_lookup_errors():
    with pytest.raises(c.UserLookupError, match="unable to find user nobody"):
        c.resolve_user("nobody", PASSWD, GROUP)
    with pytest.raises(c.UserLookupError, match="unable to find group nogroup"):
        c.resolve_user("app:nogroup", PASSWD, GROUP)
    assert c.resolve_user("0", "", "") == c.User(0, 0, (0,), "/")   # no passwd file


@pytest.mark.parametrize("spec,want", [
    ("8080:80", ("0.0.0.0", 8080, 80, "tcp")),
    ("127.0.0.1:8080:80", ("127.0.0.1", 8080, 80, "tcp")),
    ("127.0.0.1::80/udp", ("127.0.0.1", 0, 80, "udp")),
    ("80", ("0.0.0.0", 0, 80, "tcp")),
])
def test_publish(spec, want):
    assert c.parse_publish(spec) == want


def test_publish_errors():
    for bad in ("a:b", "80/sctp", "127.0.0.1:x:80"):
        with pytest.raises(c.ConfigError):
            c.parse_publish(bad)


def test_volume_and_mount_specs():
    assert c.parse_volume("/h:/c") == c.MountReq("bind", "/h", "/c", False)
    assert c.parse_volume("./h:/c:ro") == c.MountReq("bind", "./h", "/c", True)
    assert c.parse_volume("data:/c") == c.MountReq("volume", "data", "/c", False)
    assert c.parse_volume("/c") == c.MountReq("volume", "", "/c", False)
    for bad in ("/h:rel", "/h:/c:bogus", "a:b:c:d"):
        with pytest.raises(c.ConfigError):
            c.parse_volume(bad)
    assert c.parse_mount("type=bind,source=/h,target=/c,readonly") == \
        c.MountReq("bind", "/h", "/c", True)
    assert c.parse_mount("type=volume,src=v,dst=/c") == c.MountReq("volume", "v", "/c")
    assert c.parse_mount("type=tmpfs,target=/t,tmpfs-size=1m").options == "size=1m"
    for bad in ("type=nfs,target=/x", "type=bind,target=/x", "type=bind,source=/h"):
        with pytest.raises(c.ConfigError):
            c.parse_mount(bad)
    assert c.parse_tmpfs("/run:size=1m") == c.MountReq("tmpfs", "", "/run", False, "size=1m")


def test_signals():
    assert c.parse_signal("KILL") == 9
    assert c.parse_signal("sigterm") == 15
    assert c.parse_signal("10") == 10
    with pytest.raises(c.ConfigError):
        c.parse_signal("NOPE")


def test_subid_ranges_and_mapping(tmp_path, monkeypatch):
    text = "# c\nalice:100000:65536\nbob:200000:10\n1234:300000:5\nalice:900000:0\n"
    assert subid_ranges("alice", 1000, text) == [(100000, 65536)]
    assert subid_ranges("carol", 1234, text) == [(300000, 5)]
    assert subid_ranges("dave", 1, text) == []
    sub = tmp_path / "subuid"
    sub.write_text("4242:100000:65536\n")
    monkeypatch.delenv("DOCKISH_USERNS", raising=False)
    m = plan_mapping(uid=4242, gid=4343, subuid=str(sub), subgid=str(sub))
    assert m.full and m.uids == [(0, 4242, 1), (1, 100000, 65536)]
    assert m.host_uid(0) == 4242 and m.host_uid(1000) == 100999 and m.host_uid(70000) is None
    none = plan_mapping(uid=4242, gid=4343, subuid=str(tmp_path / "missing"),
                        subgid=str(tmp_path / "missing"))
    assert not none.full and none.uids == [(0, 4242, 1)] and none.gids == [(0, 4343, 1)]
