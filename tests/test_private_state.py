"""Private per-user state against another real local user (the test bed's
``other_user``, an attacker on the same machine): the runtime dir an
attacker made first in /tmp, the store's files, cache mounts and volumes.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pty
import shutil
import stat
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from .diffbase import dockish_exe
from .runbed import (
    dockish,
    drain,
    no_leftovers,  # noqa: F401 - a fixture
    ok,
    one_error_line,
)
from .test_lifecycle import _wait_exit

SQUAT = r'''
set -e
d=$1 target=$2 key=$3
mkdir -m 0777 "$d" "$d/dockish" "$d/dockish/mounts" "$d/dockish/mnt"
chmod 0777 "$d" "$d/dockish" "$d/dockish/mounts" "$d/dockish/mnt"
ln -s "$target" "$d/dockish/mounts/$key.json"
ln -s "$target" "$d/dockish/mounts/$key.tmp"
ln -s "$target" "$d/dockish/mount-$key.log"
'''

# The attacker's fake `attach` socket: a prompt for whoever connects, and
# what they type printed on stdout.
FAKE_ATTACH = r'''
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
os.chmod(path, 0o777)
s.listen(1)
s.settimeout(float(sys.argv[2]))
print("listening", flush=True)
try:
    c, _ = s.accept()
except OSError:
    print("nobody came", flush=True)
    sys.exit(0)
c.sendall(b"\r\nPassword: ")
c.settimeout(3)
data = b""
try:
    while chunk := c.recv(4096):
        data += chunk
except OSError:
    pass
print("CAPTURED", repr(data), flush=True)
'''


@pytest.fixture
def squatted(other_user):
    """/tmp/dockish-<our uid> as the other user makes it before we ever run
    dockish there (0777, symlinks to our files at the names dockish uses);
    removed again as that user."""
    base = Path(f"/tmp/dockish-{os.getuid()}")

    def clear() -> None:
        with contextlib.suppress(FileNotFoundError):
            if base.lstat().st_uid == os.getuid():
                shutil.rmtree(base, ignore_errors=True)
            else:
                other_user.run(["rm", "-rf", str(base)])
        assert not os.path.lexists(base)

    clear()
    yield base
    clear()


@pytest.fixture
def short_cache(monkeypatch):
    """No XDG_RUNTIME_DIR (as after su, in cron, on CI runners) and a cache
    dir of our own with a short path (unix socket names are short)."""
    cache = tempfile.mkdtemp(prefix="dockish-cache-", dir="/tmp")
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", cache)
    yield Path(cache)
    shutil.rmtree(cache, ignore_errors=True)


def _attach_in_pty(name: str) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(dockish_exe(), [dockish_exe(), "attach", name])
    return pid, fd


@pytest.mark.usefixtures("no_leftovers")
def test_runtime_dir_squatted_by_another_user(bb, tmp_path, other_user, squatted, short_cache):
    """Another user made /tmp/dockish-<uid> first, 0777, with symlinks to
    our file at the mount record's, its temporary's and the daemon log's
    names, and serves a fake attach socket at the container's name. Without
    XDG_RUNTIME_DIR dockish uses a private dir of its own instead (as
    Podman does), says so in one line, never writes through the symlinks,
    and what we type in `attach` reaches our container, not the attacker."""
    victim_file = tmp_path / "precious"
    victim_file.write_text("mine\n")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    key = hashlib.sha256(str(mnt).encode()).hexdigest()[:32]
    p = other_user.run(["sh", "-c", SQUAT, "squat", str(squatted), str(victim_file), key])
    assert p.returncode == 0, p.stderr
    assert squatted.lstat().st_uid == other_user.uid

    res = dockish("mount", bb, str(mnt))
    try:
        assert res.returncode == 0, res.stderr
        assert victim_file.read_text() == "mine\n"
        warning = res.stderr.strip().splitlines()
        assert len(warning) == 1 and warning[0].startswith("dockish: warning: "), res.stderr
        assert f"{squatted} is owned by uid {other_user.uid} (not you)" in warning[0]
        assert str(short_cache / "dockish" / "run") in warning[0]
        assert (mnt / "bin" / "busybox").exists()
        listing = ok("mount")
        assert str(mnt) in listing
        ok("umount", str(mnt))
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
    assert victim_file.read_text() == "mine\n"
    # nothing of ours went into the attacker's dir: it holds what they made
    p = other_user.run(["find", str(squatted), "-mindepth", "1", "-printf", "%u %P\\n"])
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.splitlines()) == sorted(
        f"{other_user.name} {name}" for name in (
            "dockish", "dockish/mounts", "dockish/mnt", f"dockish/mounts/{key}.json",
            f"dockish/mounts/{key}.tmp", f"dockish/mount-{key}.log"))
    private = short_cache / "dockish" / "run"
    assert stat.S_IMODE(private.lstat().st_mode) == 0o700

    # attach: the attacker listens at the name the container's socket has
    cid = ok("run", "-dit", "--name", "victim", "--network", "none", bb, "sh").strip()
    fake = squatted / "dockish" / f"attach-{cid[:16]}.sock"
    server = subprocess.Popen(["sudo", "-n", "-u", other_user.name, "--", "/usr/bin/python3",
                               "-c", FAKE_ATTACH, str(fake), "20"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd="/", stdin=subprocess.DEVNULL)
    try:
        assert server.stdout.readline().strip() == "listening"
        pid, fd = _attach_in_pty("victim")
        seen = b""
        end = time.monotonic() + 20
        while b"# " not in seen:
            assert time.monotonic() < end, seen
            os.write(fd, b"\r")
            seen += drain(fd, 0.5, b"# ")
        os.write(fd, b"echo my-secret-$((6*7))\r")
        out = drain(fd, 15, b"my-secret-42")
        assert b"my-secret-42" in out and b"Password:" not in seen + out
        os.write(fd, b"\x10\x11")                              # ctrl-p ctrl-q
        assert _wait_exit(pid, 10) == 0
        os.close(fd)
        assert (private / f"attach-{cid[:16]}.sock").exists()
    finally:
        server.kill()       # sudo passes it on
        got, err = server.communicate(timeout=30)
    assert "CAPTURED" not in got, got
    ok("rm", "-f", "victim")
    assert victim_file.read_text() == "mine\n"


def _their_open_dir(other_user, prefix: str) -> Path:
    """A fresh directory in /tmp that the other user owns and made 0777."""
    p = other_user.run(["sh", "-c", 'd=$(mktemp -d -p /tmp "$1-XXXXXX") && chmod 0777 "$d" '
                        '&& echo "$d"', "sh", prefix])
    assert p.returncode == 0, p.stderr
    return Path(p.stdout.strip())


def test_xdg_runtime_dir_of_another_user_is_not_used(bb, tmp_path, other_user, monkeypatch,
                                                    short_cache):
    """XDG_RUNTIME_DIR left pointing at another user's dir (`sudo -u`,
    `su` without -l): dockish keeps out of it."""
    xdg = _their_open_dir(other_user, "dockish-xdg")
    try:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
        mnt = tmp_path / "mnt"
        mnt.mkdir()
        ok("mount", bb, str(mnt))
        ok("umount", str(mnt))
        assert os.listdir(xdg) == []
    finally:
        other_user.run(["rm", "-rf", str(xdg)])


@pytest.fixture
def open_parent():
    """A directory every user can enter, for a store: only the store's own
    modes keep other users out of it (the test user's home or pytest's tmp
    dir may already be 0700)."""
    top = Path(tempfile.mkdtemp(prefix="dockish-open-", dir="/tmp"))
    os.chmod(top, 0o755)
    yield top
    if (top / "store").is_dir():
        subprocess.run([dockish_exe(), "rm", "-f", "holder"], capture_output=True,
                       env={**os.environ, "DOCKISH_ROOT": str(top / "store")})
    shutil.rmtree(top)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_store_is_private_from_other_users(bb, tmp_path, other_user, open_parent, monkeypatch):
    """After a build (ENV secret, a 0600 file, a mode=0777 cache mount), a
    run with a named volume: the other user cannot list or read any of it,
    nor write into the world-writable cache dir."""
    root = open_parent / "store"
    monkeypatch.setenv("DOCKISH_ROOT", str(root))
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(textwrap.dedent(f"""\
        FROM {bb}
        ENV API_TOKEN=s3cr3t-token
        RUN --mount=type=cache,target=/cache,mode=0777 echo cached-secret > /cache/f
        RUN echo file-secret > /etc/private && chmod 600 /etc/private
        """))
    ok("build", "-q", "-t", "secret:1", str(ctx))
    ok("run", "--name", "holder", "--network", "none", "-v", "data:/data", "secret:1",
       "sh", "-c", "echo volume-secret > /data/v")

    files, dirs = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirs += [Path(dirpath, d) for d in dirnames]
        files += [Path(dirpath, f) for f in filenames]
    by_name = {f.name: f for f in files}
    assert "v" in by_name and "f" in by_name
    secrets = [f for f in files if f.is_file() and not f.is_symlink() and
               any(s in f.read_bytes() for s in (b"s3cr3t-token", b"file-secret",
                                                 b"cached-secret", b"volume-secret"))]
    assert len(secrets) >= 4, secrets            # config, layer, cache, volume
    cache_dirs = [d for d in dirs if d.parent.name == "cache-mounts"]
    assert cache_dirs and _mode(cache_dirs[0]) == 0o777
    # what the other user can do with it all
    for f in secrets:
        p = other_user.run(["cat", str(f)])
        assert p.returncode != 0 and "Permission denied" in p.stderr, (f, p.stdout)
    for d in [root, *dirs]:
        p = other_user.run(["ls", str(d)])
        assert p.returncode != 0, (d, p.stdout)
    p = other_user.run(["touch", str(cache_dirs[0] / "planted")])
    assert p.returncode != 0 and "Permission denied" in p.stderr
    assert not (cache_dirs[0] / "planted").exists()
    assert _mode(root) == 0o700
    for sub in ("volumes", "build", "containers", "build/cache-mounts"):
        assert _mode(root / sub) == 0o700, sub


def test_loose_store_is_tightened(bb, other_user, open_parent, monkeypatch):
    """A store an older dockish made 0755: other users can list it until the
    next dockish command, which makes its root 0700."""
    root = open_parent / "store"
    monkeypatch.setenv("DOCKISH_ROOT", str(root))
    ok("run", "--rm", "--network", "none", bb, "true")
    for d in (root, root / "volumes", root / "build", root / "containers"):
        os.chmod(d, 0o755)
    assert other_user.run(["ls", str(root / "layers")]).returncode == 0   # the attack works
    ok("images")
    assert _mode(root) == 0o700
    for sub in ("volumes", "build", "containers"):
        assert _mode(root / sub) == 0o700, sub
    p = other_user.run(["ls", str(root / "layers")])
    assert p.returncode != 0 and "Permission denied" in p.stderr


def test_store_root_of_another_user_is_refused(bb, other_user, open_parent, monkeypatch):
    """DOCKISH_ROOT naming a directory another user made (or a symlink):
    one line naming the problem and the fix; nothing is stored there."""
    theirs = _their_open_dir(other_user, "dockish-theirs")
    try:
        monkeypatch.setenv("DOCKISH_ROOT", str(theirs))
        res = dockish("run", "--rm", "--network", "none", bb, "true")
        one_error_line(res, 125, f"{theirs} is owned by uid {other_user.uid} (not you)",
                       "DOCKISH_ROOT")
        assert os.listdir(theirs) == []
        link = open_parent / "link"
        link.symlink_to(theirs)
        monkeypatch.setenv("DOCKISH_ROOT", str(link))
        one_error_line(dockish("images"), 125, f"{link} is a symlink")
        assert os.listdir(theirs) == []
    finally:
        other_user.run(["rm", "-rf", str(theirs)])
