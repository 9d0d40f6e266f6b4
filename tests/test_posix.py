"""POSIX edge cases peers get wrong, on read-only and writable mounts.

Most checks run inside a user namespace with the test user's subuid range
mapped (``unshare --map-auto --map-root-user``), the way a container sees the
view: root there, plus other uids through ``setpriv``.
"""
from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from .diffbase import dockish_exe, umoci_image

DEEP = "/".join(["d" * 200] * 19)     # 3,818 bytes of directories
LONG = "n" * 255

POSIX_LAYERS = [
    [("etc", "d", None), ("etc/shadow", "f", "root:secret\n", {"mode": 0o000}),
     ("root", "d", None, {"mode": 0o700}), ("root/private", "f", "mine", {"mode": 0o600}),
     ("tmp", "d", None, {"mode": 0o1777}),
     ("tmp/alice", "f", "a", {"uid": 1000, "gid": 1000}),
     ("tmp/bob", "f", "b", {"uid": 1001, "gid": 1001, "mode": 0o666}),
     ("shared", "d", None, {"mode": 0o2777, "gid": 2000}),
     ("bin", "d", None), ("bin/suid", "f", "#!", {"uid": 1000, "mode": 0o4755}),
     ("ro", "f", "read only", {"uid": 1000, "gid": 1000, "mode": 0o444}),
     ("dev", "d", None), ("dev/null", "c", (1, 3)), ("fifo", "p", None),
     ("h1", "f", "link me"), (LONG, "f", "long name"),
     (DEEP, "d", None), (DEEP + "/bottom", "f", "deep"),
     ("times", "d", None),
     ("times/old", "f", "", {"mtime_ns": -86_400_123_456_789}),
     ("times/future", "f", "", {"mtime_ns": 4_102_444_800_987_654_321})],
    [("h2", "h", "h1"), ("etc/passwd", "f", "root:x:0:0::/root:/bin/sh\n")],
]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return umoci_image(tmp_path_factory.mktemp("posix"), POSIX_LAYERS)[0]


@pytest.fixture
def ro_mount(image, tmp_path):
    mnt = tmp_path / "ro"
    mnt.mkdir()
    subprocess.run([dockish_exe(), "mount", image, str(mnt)], check=True)
    yield mnt
    subprocess.run([dockish_exe(), "umount", str(mnt)], check=True)


@pytest.fixture
def rw_mount(image, tmp_path):
    mnt = tmp_path / "rw"
    mnt.mkdir()
    subprocess.run([dockish_exe(), "mount", "--rw", "--upper", str(tmp_path / "up"), image,
                    str(mnt)], check=True)
    yield mnt
    subprocess.run([dockish_exe(), "umount", str(mnt)], check=True)


def _errno(fn, *args) -> int:
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


# -- inspection: the mounting user reads everything, stat shows the truth -------------

def test_inspection_mount_reads_everything_but_shows_true_owners(ro_mount):
    assert (ro_mount / "etc" / "shadow").read_text() == "root:secret\n"
    assert (ro_mount / "root" / "private").read_text() == "mine"
    st = os.stat(ro_mount / "etc" / "shadow")
    assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o000, 0)
    assert os.stat(ro_mount / "tmp" / "alice").st_uid == 1000
    assert _errno(os.open, ro_mount / "etc" / "new", os.O_CREAT | os.O_WRONLY) == errno.EROFS
    assert _errno(os.chmod, ro_mount / "ro", 0o644) == errno.EROFS


@pytest.mark.parametrize("which", ["ro_mount", "rw_mount"])
def test_long_names_and_deep_paths(which, request):
    mnt = request.getfixturevalue(which)
    assert (mnt / LONG).read_text() == "long name"
    assert _errno(os.stat, mnt / (LONG + "x")) == errno.ENAMETOOLONG
    assert (mnt / DEEP / "bottom").read_text() == "deep"
    if which == "rw_mount":
        assert _errno(os.mkdir, mnt / ("y" * 256)) == errno.ENAMETOOLONG
        fd = os.open(mnt / DEEP, os.O_RDONLY | os.O_DIRECTORY)
        try:   # below a lower-layer directory, past what a joined host path could hold
            os.mkdir("e" * 250, dir_fd=fd)
            sub = os.open("e" * 250, os.O_RDONLY, dir_fd=fd)
            with open(os.open("f" * 255, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=sub), "w") as f:
                f.write("beyond 4 KiB of path")
            os.rename("f" * 255, "g" * 255, src_dir_fd=sub, dst_dir_fd=sub)
            assert os.stat("g" * 255, dir_fd=sub).st_size == 20
            os.close(sub)
        finally:
            os.close(fd)


# -- hard links -----------------------------------------------------------------------

def test_hardlinks_across_layers_and_copy_up(rw_mount):
    a, b = os.stat(rw_mount / "h1"), os.stat(rw_mount / "h2")
    assert a.st_ino == b.st_ino and a.st_nlink == b.st_nlink == 2
    with open(rw_mount / "h2", "a") as f:          # copy-up through one name
        f.write("!")
    assert (rw_mount / "h1").read_text() == "link me!"
    assert os.stat(rw_mount / "h1").st_ino == a.st_ino
    os.link(rw_mount / "h1", rw_mount / "h3")
    assert os.stat(rw_mount / "h2").st_nlink == 3
    os.rename(rw_mount / "h3", rw_mount / "tmp" / "h4")
    os.unlink(rw_mount / "h1")
    st = os.stat(rw_mount / "tmp" / "h4")
    assert (st.st_ino, st.st_nlink) == (a.st_ino, 2)


def test_open_unlinked_file_stays_usable(rw_mount):
    fd = os.open(rw_mount / "etc" / "passwd", os.O_RDWR)
    os.unlink(rw_mount / "etc" / "passwd")
    assert os.fstat(fd).st_nlink == 0
    os.pwrite(fd, b"ROOT", 0)
    assert os.pread(fd, 4, 0) == b"ROOT"
    os.close(fd)
    assert not (rw_mount / "etc" / "passwd").exists()


# -- timestamps -------------------------------------------------------------------------

AT_FDCWD, UTIME_NOW, UTIME_OMIT = -100, (1 << 30) - 1, (1 << 30) - 2


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _utimensat(path: Path, atime: tuple[int, int], mtime: tuple[int, int]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    times = (_Timespec * 2)(_Timespec(*atime), _Timespec(*mtime))
    if libc.utimensat(AT_FDCWD, os.fsencode(path), times, 0) != 0:
        raise OSError(ctypes.get_errno(), "utimensat")


def test_timestamps_exact_before_1970_and_after_2038(ro_mount, rw_mount):
    assert os.stat(ro_mount / "times" / "old").st_mtime_ns == -86_400_123_456_789
    assert os.stat(ro_mount / "times" / "future").st_mtime_ns == 4_102_444_800_987_654_321
    f = rw_mount / "times" / "old"
    os.utime(f, ns=(1, -123_456_789_987))
    assert os.stat(f).st_mtime_ns == -123_456_789_987
    _utimensat(f, (0, UTIME_OMIT), (0, UTIME_NOW))
    st = os.stat(f)
    assert st.st_atime_ns == 1 and st.st_mtime_ns > 1_700_000_000 * 10**9


# -- rename ------------------------------------------------------------------------------

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def _renameat2(a: Path, b: Path, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), flags) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def test_rename_flags_and_inodes(rw_mount):
    m = rw_mount
    ino = os.stat(m / "etc").st_ino
    assert _errno(_renameat2, m / "ro", m / "fifo", RENAME_NOREPLACE) == errno.EEXIST
    _renameat2(m / "ro", m / "h1", RENAME_EXCHANGE)
    assert (m / "h1").read_text() == "read only" and (m / "ro").read_text() == "link me"
    os.rename(m / "etc", m / "tmp" / "etc2")          # a dir with lower children
    assert os.stat(m / "tmp" / "etc2").st_ino == ino
    assert (m / "tmp" / "etc2" / "passwd").exists()
    os.mkdir(m / "empty")
    os.rename(m / "root", m / "empty")                 # over an empty directory
    assert (m / "empty" / "private").read_text() == "mine"
    assert _errno(os.rename, m / "tmp", m / "times") == errno.ENOTEMPTY


# -- special files ---------------------------------------------------------------------

def test_special_files(rw_mount, tmp_path):
    st = os.stat(rw_mount / "dev" / "null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    fifo = rw_mount / "fifo"
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    with open(fifo, "w") as f:
        f.write("through the fifo")
    reader.join(10)
    assert got == ["through the fifo"]
    sock_path = rw_mount / "tmp" / "s"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(sock_path))
    srv.listen(1)
    cli = socket.socket(socket.AF_UNIX)
    cli.connect(str(sock_path))
    conn, _ = srv.accept()
    cli.sendall(b"ping")
    assert conn.recv(4) == b"ping"
    assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
    for s in (conn, cli, srv):
        s.close()


# -- permissions for other uids, inside a container-like user namespace ----------------

IN_NS = r'''
import errno, os, stat, subprocess, sys
dockish, image, work = sys.argv[1:4]
# a mountpoint every uid can reach (the test's tmp dir is private to its owner)
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/mnt"], check=True)
mnt = "/mnt/m"
os.makedirs(mnt)
subprocess.run([dockish, "mount", "--rw", "--upper", os.path.join(work, "up"), "-o",
                "allow_other", image, mnt], check=True)
def as_user(uid, gid, code):
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                        sys.executable, "-c", code, mnt], capture_output=True, text=True)
    assert r.returncode == 0, f"as uid {uid}: {r.stderr}"
try:
    as_user(1000, 1000, """
import errno, os, sys, stat
m = sys.argv[1]
def err(fn, *a):
    try: fn(*a)
    except OSError as e: return e.errno
    return 0
assert err(open, m + "/etc/shadow") == errno.EACCES, "mode 000 is closed to others"
assert err(os.listdir, m + "/root") == errno.EACCES, "0700 dir is closed to others"
assert err(os.unlink, m + "/tmp/bob") == errno.EPERM, "sticky /tmp protects bob's file"
os.unlink(m + "/tmp/alice")
assert err(os.open, m + "/ro", os.O_WRONLY | os.O_TRUNC) == errno.EACCES, "O_TRUNC of 0444"
fd = os.open(m + "/tmp/mine", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644); os.close(fd)
assert err(os.open, m + "/tmp/mine", os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST
assert os.stat(m + "/tmp/mine").st_uid == 1000
os.mkdir(m + "/shared/sub")
st = os.stat(m + "/shared/sub")
assert st.st_gid == 2000 and st.st_mode & stat.S_ISGID, "setgid dir passes its group"
assert err(os.chown, m + "/tmp/mine", 0, -1) == errno.EPERM
assert err(os.mkdir, m + "/etc/x") == errno.EACCES
""")
    # root of the namespace may chown; that clears setuid (POSIX)
    os.chown(os.path.join(mnt, "bin/suid"), 1001, 1001)
    st = os.stat(os.path.join(mnt, "bin/suid"))
    assert not st.st_mode & stat.S_ISUID, oct(st.st_mode)
    assert (st.st_uid, st.st_gid) == (1001, 1001)
finally:
    subprocess.run([dockish, "umount", mnt], check=True)
'''


def test_permissions_for_other_uids_in_a_user_namespace(image, tmp_path):
    res = subprocess.run(["unshare", "--map-auto", "--map-root-user", "-m", sys.executable,
                          "-c", IN_NS, dockish_exe(), image, str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, textwrap.shorten(res.stderr, 3000)
