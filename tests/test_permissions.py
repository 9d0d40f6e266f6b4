"""POSIX permissions for every user of a view, as kernel overlayfs keeps
them: real users in a real container (``exec -u``), and other uids on a
writable ``-o allow_other`` mount made by root of a user namespace.

Each check is made after root has walked the same paths, so the kernel has
the entries cached and never asks the daemon about them again: a check only
the daemon made would be skipped (issue 16's ``/secret`` hole).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from .diffbase import dockish_exe, umoci_image
from .runbed import (
    dockish,
    no_leftovers,  # noqa: F401 - a fixture
    ok,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")

# what root of the container puts in the image (committed: lower layers)
SETUP = """
mkdir /secret && echo s3cret > /secret/f && chmod 700 /secret && chmod 644 /secret/f
mkdir /closed && echo mine > /closed/mine && chown 1000:1000 /closed/mine && chmod 700 /closed
echo private > /private && chmod 600 /private
echo w > /w && chmod 666 /w
echo r > /r && chmod 644 /r
echo x > /suid && chmod 6777 /suid
mkdir /sticky && chmod 1777 /sticky
echo b > /sticky/b && chown 1001:1001 /sticky/b
echo m > /sticky/mine && chown 1000:1000 /sticky/mine
mkdir /sg && chgrp 2000 /sg && chmod 2777 /sg
"""

# root reads every path first: the kernel caches all of these entries
WARM = ("cat /secret/f /closed/mine /private /w /r /suid /sticky/b /sticky/mine /wsecret/f "
        ">/dev/null && ls -la /sg /sticky /closed /secret /wsecret >/dev/null && echo warm")

# ``t NAME CMD...`` prints NAME and ok, EACCES, EPERM or the message
AS_USER = r"""
t() { n=$1; shift; if out=$("$@" 2>&1); then echo "$n ok"; else case "$out" in
  *"Permission denied"*) echo "$n EACCES";; *"not permitted"*) echo "$n EPERM";;
  *) echo "$n other: $out";; esac; fi; }
t read-secret cat /secret/f
t list-secret ls /secret
t stat-secret stat /secret/f
t read-wsecret cat /wsecret/f
t read-closed cat /closed/mine
t chmod-closed chmod 600 /closed/mine
t chown-closed chown 1000:1000 /closed/mine
t truncate-closed truncate -s 0 /closed/mine
t link-closed ln /closed/mine /tmp/l
t rename-closed mv /closed/mine /tmp/m
t read-private cat /private
t rdwr-r sh -c 'exec 3<>/r'
t append-r sh -c 'echo x >> /r'
t write-suid sh -c 'echo more >> /suid'
echo "suid-mode $(stat -c %a /suid)"
t sticky-away mv /sticky/b /sticky/c
t sticky-over mv /sticky/mine /sticky/b
t sticky-own mv /sticky/mine /sticky/mine2
t utime-explicit touch -d '2001-02-03 04:05:06' /w
t utime-now-w touch /w
t utime-now-r touch /r
t truncate-r truncate -s 0 /r
touch /sg/f && mkdir /sg/d && mkfifo /sg/p && ln -s f /sg/l && mknod /sg/n p
echo "sg-groups $(stat -c %g /sg/f /sg/d /sg/p /sg/n | tr '\n' ' ')$(stat -c %g /sg/l)"
echo "sg-dir-mode $(stat -c %a /sg/d)"
t chgrp-sg-own chgrp 1000 /sg/f
echo "sg-after-chgrp $(stat -c %g /sg/f)"
mkdir /tmp/x && touch /tmp/x/a && ln /tmp/x/a /tmp/x/b && mkfifo /tmp/x/p && ln /tmp/x/p /tmp/x/q
rm /tmp/x/a /tmp/x/b /tmp/x/p /tmp/x/q
t rmdir-emptied rmdir /tmp/x
"""

EXPECTED = {
    "read-secret": "EACCES", "list-secret": "EACCES", "stat-secret": "EACCES",
    "read-wsecret": "EACCES",
    "read-closed": "EACCES", "chmod-closed": "EACCES", "chown-closed": "EACCES",
    "truncate-closed": "EACCES", "link-closed": "EACCES", "rename-closed": "EACCES",
    "read-private": "EACCES", "rdwr-r": "EACCES", "append-r": "EACCES",
    "write-suid": "ok", "suid-mode": "777",
    "sticky-away": "EPERM", "sticky-over": "EPERM", "sticky-own": "ok",
    "utime-explicit": "EPERM", "utime-now-w": "ok", "utime-now-r": "EACCES",
    "truncate-r": "EACCES",
    "sg-groups": "2000 2000 2000 2000 2000", "sg-dir-mode": "2755",
    "chgrp-sg-own": "ok", "sg-after-chgrp": "1000",
    "rmdir-emptied": "ok",
}


def _results(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in out.strip().splitlines())


def test_every_user_gets_posix_permissions_in_a_container(bb):
    """The issue's hole and each rule, with root's reads first."""
    ok("run", "--name", "mk", "--network", "none", bb, "sh", "-c", SETUP)
    ok("commit", "mk", "perms:1")
    ok("run", "-d", "--name", "p", "--network", "none", "perms:1", "sleep", "120")
    # the same in the writable layer, made while the container runs
    ok("exec", "p", "sh", "-c", "mkdir /wsecret && echo w > /wsecret/f && chmod 700 /wsecret")
    assert ok("exec", "p", "sh", "-c", WARM) == "warm\n"
    assert ok("exec", "p", "cat", "/secret/f") == "s3cret\n"      # root: DAC_OVERRIDE
    got = _results(ok("exec", "-u", "1000:1000", "p", "sh", "-c", AS_USER))
    assert got == EXPECTED
    # root read once more: uid 1000 is still refused, and root still reads
    assert ok("exec", "p", "cat", "/secret/f") == "s3cret\n"
    res = dockish("exec", "-u", "1000", "p", "cat", "/secret/f")
    assert res.returncode == 1 and "Permission denied" in res.stderr and "s3cret" not in res.stdout
    # what uid 1000 did reached the writable layer as that user
    assert ok("exec", "p", "stat", "-c", "%u:%g %a", "/sg/f", "/sticky/mine2", "/suid") == \
        "1000:1000 644\n1000:1000 644\n0:0 777\n"


def test_capabilities_of_container_root_decide_its_overrides(bb):
    """Root passes mode checks by its capabilities in the container, as
    the container was given them: without DAC_OVERRIDE (Docker's default
    set has no DAC_READ_SEARCH) root is refused another user's 0600 file and
    0700 directory; DAC_READ_SEARCH added gives reading back, not writing."""
    ok("run", "--name", "mk", "--network", "none", bb, "sh", "-c",
       "mkdir /home1000 && echo hers > /home1000/f && chmod 600 /home1000/f && "
       "chown -R 1000:1000 /home1000 && chmod 700 /home1000")
    ok("commit", "mk", "caps:1")
    probe = ("cat /home1000/f 2>/dev/null || echo no-read; ls /home1000 >/dev/null 2>&1 "
             "|| echo no-list; echo x >> /home1000/f 2>/dev/null || echo no-write")
    assert ok("run", "--rm", "--network", "none", "caps:1", "sh", "-c", probe) == "hers\n"
    out = ok("run", "--rm", "--network", "none", "--cap-drop", "DAC_OVERRIDE", "caps:1",
             "sh", "-c", probe)
    assert out == "no-read\nno-list\nno-write\n"
    out = ok("run", "--rm", "--network", "none", "--cap-drop", "DAC_OVERRIDE", "--cap-add",
             "DAC_READ_SEARCH", "caps:1", "sh", "-c", probe)
    assert out == "hers\nno-write\n"           # DAC_READ_SEARCH reads, never writes


# -- a writable -o allow_other mount, made by root of a user namespace -----------------

MOUNT_LAYERS = [
    [("secret", "d", None, {"mode": 0o700}), ("secret/f", "f", "s3cret\n"),
     ("closed", "d", None, {"mode": 0o700}),
     ("closed/mine", "f", "mine", {"uid": 1000, "gid": 1000}),
     ("wo", "f", "write only", {"mode": 0o222}),
     ("r", "f", "r", {"mode": 0o644}),
     ("w", "f", "w", {"mode": 0o666}),
     ("suid", "f", "x", {"mode": 0o6777}),
     ("sticky", "d", None, {"mode": 0o1777}),
     ("sticky/b", "f", "b", {"uid": 1001, "gid": 1001}),
     ("sticky/mine", "f", "m", {"uid": 1000, "gid": 1000}),
     ("sg", "d", None, {"mode": 0o2777, "gid": 2000}),
     ("tmp", "d", None, {"mode": 0o1777}),
     ("pub", "d", None), ("pub/hers", "f", "h", {"uid": 1000, "gid": 1000})],
]

IN_NS = r'''
import os, subprocess, sys
dockish, image, work, script = sys.argv[1:5]
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/mnt"], check=True)
mnt = "/mnt/m"
os.makedirs(mnt)
subprocess.run([dockish, "mount", "--rw", "--upper", os.path.join(work, "up"), "-o",
                "allow_other", image, mnt], check=True, stdout=subprocess.DEVNULL)
try:
    for p in ("secret/f", "closed/mine", "r", "w", "suid", "sticky/b", "sticky/mine"):
        open(os.path.join(mnt, p)).read()          # root first: entries cached
    r = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                        sys.executable, "-c", script, mnt], capture_output=True, text=True)
    print(r.stdout, end="")
    print(r.stderr, end="", file=sys.stderr)
    assert r.returncode == 0, r.returncode
    assert open(os.path.join(mnt, "secret/f")).read() == "s3cret\n"
    os.unlink(os.path.join(mnt, "pub/hers"))       # the refused link left nothing behind
    os.rmdir(os.path.join(mnt, "pub"))
finally:
    subprocess.run([dockish, "umount", mnt], check=True, stdout=subprocess.DEVNULL)
'''

AS_1000 = r'''
import ctypes, errno, os, socket, stat, sys
m = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
class TS(ctypes.Structure):
    _fields_ = [("s", ctypes.c_long), ("ns", ctypes.c_long)]
UTIME_NOW = (1 << 30) - 1
def utimens(path, times):
    arg = None if times is None else (TS * 2)(*(TS(*t) for t in times))
    if libc.utimensat(-100, os.fsencode(path), arg, 0):
        raise OSError(ctypes.get_errno(), path)
def err(fn, *a):
    try:
        r = fn(*a)
        if isinstance(r, int) and fn is os.open:
            os.close(r)
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok"
p = lambda *n: os.path.join(m, *n)
res = {}
res["read-secret"] = err(os.open, p("secret/f"), os.O_RDONLY)
res["stat-secret"] = err(os.stat, p("secret/f"))
res["chmod-closed"] = err(os.chmod, p("closed/mine"), 0o600)
res["chown-closed"] = err(os.chown, p("closed/mine"), 1000, 1000)
res["lchown-closed"] = err(os.lchown, p("closed/mine"), 1000, 1000)
res["truncate-closed"] = err(os.truncate, p("closed/mine"), 0)
res["link-closed"] = err(os.link, p("closed/mine"), p("tmp/l"))
res["rename-closed"] = err(os.rename, p("closed/mine"), p("tmp/m"))
res["link-in-roots-dir"] = err(os.link, p("pub/hers"), p("pub/h2"))
res["open-rdwr-r"] = err(os.open, p("r"), os.O_RDWR)
res["open-nonblock-wo"] = err(os.open, p("wo"), os.O_RDONLY | os.O_NONBLOCK)
res["open-wronly-wo"] = err(os.open, p("wo"), os.O_WRONLY)
fd = os.open(p("suid"), os.O_WRONLY)
os.write(fd, b"y")
os.close(fd)
res["suid-after-write"] = oct(stat.S_IMODE(os.stat(p("suid")).st_mode))
res["sticky-away"] = err(os.rename, p("sticky/b"), p("sticky/c"))
res["sticky-over"] = err(os.rename, p("sticky/mine"), p("sticky/b"))
res["utime-explicit-w"] = err(utimens, p("w"), ((1, 0), (2, 0)))
res["utime-now-w"] = err(utimens, p("w"), None)
res["utime-now-r"] = err(utimens, p("r"), None)
res["utime-explicit-r"] = err(utimens, p("r"), ((1, 0), (2, 0)))
res["truncate-r"] = err(os.truncate, p("r"), 0)
os.close(os.open(p("sg/f"), os.O_CREAT | os.O_WRONLY, 0o644))
os.mkdir(p("sg/d"))
os.mknod(p("sg/n"), stat.S_IFIFO | 0o644)
os.symlink("f", p("sg/l"))
s = socket.socket(socket.AF_UNIX)
s.bind(p("sg/s"))
s.close()
res["sg-groups"] = " ".join(str(os.lstat(p("sg", n)).st_gid) for n in "fdnls")
res["sg-dir-setgid"] = str(bool(os.stat(p("sg/d")).st_mode & stat.S_ISGID))
os.chown(p("sg/f"), -1, -1)
res["sg-after-noop-chown"] = str(os.stat(p("sg/f")).st_gid)
os.mkdir(p("tmp/x"))
for kind in ("reg", "fifo", "sock"):
    a = p("tmp/x/a")
    if kind == "reg":
        os.close(os.open(a, os.O_CREAT | os.O_WRONLY, 0o644))
    elif kind == "fifo":
        os.mkfifo(a)
    else:
        s = socket.socket(socket.AF_UNIX); s.bind(a); s.close()
    os.link(a, p("tmp/x/b"))
    os.link(p("tmp/x/b"), p("tmp/x/c"))
    os.rename(p("tmp/x/b"), p("tmp/x/c"))      # two names of one file: nothing happens
    os.unlink(a)
    os.unlink(p("tmp/x/b"))
    os.unlink(p("tmp/x/c"))
res["rmdir-emptied"] = err(os.rmdir, p("tmp/x"))
for k, v in res.items():
    print(k, v)
'''

MOUNT_EXPECTED = {
    "read-secret": "EACCES", "stat-secret": "EACCES",
    "chmod-closed": "EACCES", "chown-closed": "EACCES", "lchown-closed": "EACCES",
    "truncate-closed": "EACCES", "link-closed": "EACCES", "rename-closed": "EACCES",
    "link-in-roots-dir": "EACCES",
    "open-rdwr-r": "EACCES", "open-nonblock-wo": "EACCES", "open-wronly-wo": "ok",
    "suid-after-write": "0o777",
    "sticky-away": "EPERM", "sticky-over": "EPERM",
    "utime-explicit-w": "EPERM", "utime-now-w": "ok", "utime-now-r": "EACCES",
    "utime-explicit-r": "EPERM", "truncate-r": "EACCES",
    "sg-groups": "2000 2000 2000 2000 2000", "sg-dir-setgid": "True",
    "sg-after-noop-chown": "2000",
    "rmdir-emptied": "ok",
}


@pytest.fixture(scope="module")
def perm_image(tmp_path_factory):
    return umoci_image(tmp_path_factory.mktemp("perms"), MOUNT_LAYERS, unpack=False)[0]


def test_every_user_gets_posix_permissions_on_an_allow_other_mount(perm_image, tmp_path):
    res = subprocess.run(["unshare", "--map-auto", "--map-root-user", "-m", sys.executable,
                          "-c", IN_NS, dockish_exe(), perm_image, str(tmp_path), AS_1000],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, textwrap.shorten(res.stderr, 3000)
    assert _results(res.stdout) == MOUNT_EXPECTED


# -- a user's own -o allow_other mount: the daemon checks, another real user probes -----

def _layers_owned_by(uid: int) -> list:
    """``MOUNT_LAYERS`` with the files of "the user" (1000 there) owned by
    ``uid``, the real second user who probes the mount, and "someone else's"
    (1001) by an id no real user here has."""
    out = []
    for entry in MOUNT_LAYERS[0]:
        owner = entry[3].get("uid") if len(entry) == 4 else None
        if owner in (1000, 1001):
            new = uid if owner == 1000 else 4242
            entry = (*entry[:3], {**entry[3], "uid": new, "gid": new})
        out.append(entry)
    return [out]


def test_another_real_user_gets_posix_permissions_on_a_users_allow_other_mount(
        tmp_path_factory, tmp_path, other_user):
    """A non-root user's writable mount with ``-o allow_other``: the mounting
    user acts as root of its image, so the daemon makes every check for the
    others (the kernel's cannot express that). A real second local user,
    after the owner has walked every path (entries cached), gets exactly
    what POSIX gives."""
    image = umoci_image(tmp_path_factory.mktemp("perms-other"),
                        _layers_owned_by(other_user.uid), unpack=False)[0]
    base = Path(tempfile.mkdtemp(prefix="dockish-perms-", dir="/tmp"))
    os.chmod(base, 0o755)                  # the other user must reach the mountpoint
    mnt = base / "m"
    mnt.mkdir()
    ok("mount", "--rw", "--upper", str(tmp_path / "up"), "-o", "allow_other", image, str(mnt))
    try:
        for p in ("secret/f", "closed/mine", "r", "w", "suid", "sticky/b", "sticky/mine"):
            (mnt / p).read_bytes()            # the owner first: the kernel caches entries
        res = other_user.run(["/usr/bin/python3", "-c", AS_1000, str(mnt)], timeout=120)
        assert res.returncode == 0, res.stderr
        assert _results(res.stdout) == MOUNT_EXPECTED
        assert (mnt / "secret/f").read_text() == "s3cret\n"     # the owner still reads
    finally:
        ok("umount", str(mnt))
        shutil.rmtree(base)


def test_another_real_user_is_still_checked_on_a_read_only_allow_other_mount(
        tmp_path_factory, other_user):
    """A read-only view lets the kernel open without asking only where no
    open needs the daemon's check: on a user's read-only ``-o allow_other``
    mount the daemon checks the others, so after the owner has opened and
    listed everything, the second user still cannot read a file without read
    bits or list a 0700 directory it does not own."""
    image = umoci_image(tmp_path_factory.mktemp("perms-ro"),
                        _layers_owned_by(other_user.uid), unpack=False)[0]
    base = Path(tempfile.mkdtemp(prefix="dockish-perms-", dir="/tmp"))
    os.chmod(base, 0o755)
    mnt = base / "m"
    mnt.mkdir()
    ok("mount", "-o", "allow_other", image, str(mnt))
    try:
        assert (mnt / "wo").read_text() == "write only"      # the owner reads everything
        assert os.listdir(mnt / "secret") == ["f"]
        probe = textwrap.dedent('''
            import os, sys
            m = sys.argv[1]
            for what, f in (("read wo", lambda: open(m + "/wo").read()),
                            ("list secret", lambda: os.listdir(m + "/secret")),
                            ("read r", lambda: open(m + "/r").read())):
                try:
                    print(what, repr(f()))
                except OSError as e:
                    print(what, e.strerror)
        ''')
        res = other_user.run(["/usr/bin/python3", "-c", probe, str(mnt)], timeout=60)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == ["read wo Permission denied",
                                           "list secret Permission denied", "read r 'r'"]
    finally:
        ok("umount", str(mnt))
        shutil.rmtree(base)
