"""The writable layer survives unmount/remount, and a daemon killed with
SIGKILL in the middle of writes loses nothing that was fsync'ed."""
from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .diffbase import BASE_LAYERS, dockish_exe, umoci_image

WRITER = r'''
import hashlib, os, sys, random
mnt, log, tag = sys.argv[1], sys.argv[2], sys.argv[4]
rnd = random.Random(sys.argv[3])
logf = open(log, "a")
i = 0
while True:
    i += 1
    d = os.path.join(mnt, "w", f"d{i % 7}")
    os.makedirs(d, exist_ok=True)
    name = os.path.join(d, f"{tag}f{i}")
    data = os.urandom(rnd.randrange(1, 200_000))
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    if i % 5 == 0:                       # churn: deletes, renames, copy-ups
        victim = os.path.join(mnt, "w", f"d{(i - 3) % 7}", f"{tag}f{i - 3}")
        try:
            os.rename(victim, victim + ".moved")
        except FileNotFoundError:
            pass
        with open(os.path.join(mnt, "a", "f2"), "ab") as f:
            f.write(b"x")
    logf.write(f"{os.path.relpath(name, mnt)} {hashlib.sha256(data).hexdigest()}\n")
    logf.flush()
'''


def _daemon_pid(mnt: Path) -> int:
    out = subprocess.run([dockish_exe(), "mount", "--format", "json"], capture_output=True,
                         text=True, check=True).stdout
    import json
    for rec in json.loads(out):
        if rec["Mountpoint"] == str(mnt):
            return rec["Pid"]
    raise AssertionError(f"{mnt} is not in dockish's mount list: {out}")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return umoci_image(tmp_path_factory.mktemp("persist"), BASE_LAYERS)[0]


def _mount(image: str, upper: Path, mnt: Path) -> None:
    subprocess.run([dockish_exe(), "mount", "--rw", "--upper", str(upper), image, str(mnt)],
                   check=True, capture_output=True, text=True)


def _umount(mnt: Path) -> subprocess.CompletedProcess:
    return subprocess.run([dockish_exe(), "umount", str(mnt)], capture_output=True, text=True)


def test_changes_survive_remount(image, tmp_path):
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount(image, upper, mnt)
    (mnt / "a" / "f1").write_text("changed")
    os.chmod(mnt / "big", 0o4711)
    os.setxattr(mnt / "c" / "h", "user.note", b"\x00\xffbinary")
    os.utime(mnt / "c" / "h", ns=(5, -1_000_000_001))
    os.unlink(mnt / "hl1")
    os.rename(mnt / "a", mnt / "c" / "a2")
    os.mkfifo(mnt / "fifo")
    before = {p: os.lstat(mnt / p) for p in ("c/a2/f1", "big", "c/h", "hl2", "fifo")}
    assert _umount(mnt).returncode == 0
    _mount(image, upper, mnt)
    try:
        assert (mnt / "c" / "a2" / "f1").read_text() == "changed"
        assert not (mnt / "a").exists() and not (mnt / "hl1").exists()
        assert os.getxattr(mnt / "c" / "h", "user.note") == b"\x00\xffbinary"
        for p, st in before.items():
            now = os.lstat(mnt / p)
            assert (now.st_mode, now.st_size, now.st_mtime_ns, now.st_nlink) == \
                (st.st_mode, st.st_size, st.st_mtime_ns, st.st_nlink), p
        assert os.lstat(mnt / "c" / "h").st_mtime_ns == -1_000_000_001
        assert (mnt / "c" / "a2" / "b" / "g").read_text() == "gee"
    finally:
        assert _umount(mnt).returncode == 0


@pytest.mark.parametrize("seed", range(int(os.environ.get("DOCKISH_KILL_ROUNDS", "4"))))
def test_kill_9_loses_nothing_fsynced(image, tmp_path, seed):
    rnd = random.Random(seed)
    mnt, upper, log = tmp_path / "mnt", tmp_path / "upper", tmp_path / "written"
    mnt.mkdir()
    log.touch()
    for round_ in range(2):                  # kill, remount, write more, kill again
        _mount(image, upper, mnt)
        pid = _daemon_pid(mnt)
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(mnt), str(log),
                                   str(rnd.random()), f"r{round_}"])
        time.sleep(0.3 + rnd.random() * 1.2)
        os.kill(pid, signal.SIGKILL)
        writer.wait(timeout=30)
        deadline = time.time() + 10
        while os.path.ismount(mnt) and time.time() < deadline:
            time.sleep(0.05)
        assert not os.path.ismount(mnt), "a killed daemon left its mount behind"
    _mount(image, upper, mnt)
    try:
        written = [line.split() for line in log.read_text().splitlines()]
        assert len(written) > 5, "the writer made no progress"
        moved = 0
        for rel, digest in written:
            path = mnt / rel
            if not path.exists():
                path = mnt / (rel + ".moved")
                moved += 1
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, rel
        for dirpath, _, filenames in os.walk(mnt):   # the whole tree is readable
            for name in filenames:
                os.lstat(os.path.join(dirpath, name))
        assert (mnt / "a" / "b" / "g").read_text() == "gee"
    finally:
        assert _umount(mnt).returncode == 0


def test_live_journal_compaction_keeps_everything(image, tmp_path):
    """A long-lived mount rewrites its journal when it is mostly history; the
    state after many changes is exactly what a remount shows."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    env = dict(os.environ, DOCKISH_COMPACT_BYTES="8192")
    subprocess.run([dockish_exe(), "mount", "--rw", "--upper", str(upper), image, str(mnt)],
                   check=True, env=env)
    try:
        for i in range(400):
            p = mnt / "a" / f"n{i % 20}"
            p.write_text(f"version {i}")
            os.chmod(p, 0o600 + (i % 2) * 0o44)
            if i % 7 == 0:
                os.unlink(p)
        journal = (upper / "journal").stat().st_size
        assert journal < 16 * 1024, f"journal grew to {journal} bytes"
        before = {p.name: (p.read_text(), p.stat().st_mode) for p in (mnt / "a").iterdir()
                  if p.is_file()}
    finally:
        assert _umount(mnt).returncode == 0
    _mount(image, upper, mnt)
    try:
        after = {p.name: (p.read_text(), p.stat().st_mode) for p in (mnt / "a").iterdir()
                 if p.is_file()}
        assert after == before
    finally:
        assert _umount(mnt).returncode == 0


def _kill_daemon(pid: int, mnt: Path) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while os.path.ismount(mnt) and time.time() < deadline:
        time.sleep(0.05)
    assert not os.path.ismount(mnt), "a killed daemon left its mount behind"


def _data_files(upper: Path) -> set[str]:
    return set(os.listdir(upper / "data"))


def test_deleted_files_data_goes_and_never_comes_back(image, tmp_path):
    """Removing written files frees their data in the writable layer while
    the mount lives (the daemon unlinks data files off its request thread);
    a daemon killed right after the deletes brings none of them back."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount(image, upper, mnt)
    pid = _daemon_pid(mnt)
    (mnt / "w").mkdir()
    for i in range(200):
        fd = os.open(mnt / "w" / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"x" * 5000)
        os.fsync(fd)
        os.close(fd)
    (mnt / "keep").write_bytes(b"kept")
    held = _data_files(upper)
    assert len(held) >= 201
    subprocess.run(["rm", "-rf", str(mnt / "w")], check=True)
    deadline = time.time() + 10
    while len(_data_files(upper)) > len(held) - 200 and time.time() < deadline:
        time.sleep(0.05)
    assert len(_data_files(upper)) <= len(held) - 200, "deleted files' data stayed"
    _kill_daemon(pid, mnt)
    _mount(image, upper, mnt)
    try:
        assert not (mnt / "w").exists()
        assert (mnt / "keep").read_bytes() == b"kept"
        assert (mnt / "a" / "f1").read_text() == "one, changed\n"
    finally:
        assert _umount(mnt).returncode == 0


def test_fsyncs_at_once_all_survive(image, tmp_path):
    """Many files fsynced at the same time share journal syncs (group
    commit); each fsync still returns only once its file is durable, so a
    daemon killed right after loses none of them."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount(image, upper, mnt)
    pid = _daemon_pid(mnt)
    script = r'''
import os, sys, threading
mnt = sys.argv[1]
def one(i):
    fd = os.open(os.path.join(mnt, f"s{i}"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, str(i).encode() * 100)
    (os.fdatasync if i % 2 else os.fsync)(fd)
    os.close(fd)
ts = [threading.Thread(target=one, args=(i,)) for i in range(64)]
for t in ts: t.start()
for t in ts: t.join()
d = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
os.fsync(d)
'''
    subprocess.run([sys.executable, "-c", script, str(mnt)], check=True, timeout=60)
    _kill_daemon(pid, mnt)
    _mount(image, upper, mnt)
    try:
        for i in range(64):
            st = os.lstat(mnt / f"s{i}")
            assert (mnt / f"s{i}").read_bytes() == str(i).encode() * 100
            assert oct(st.st_mode & 0o7777) == "0o600"
    finally:
        assert _umount(mnt).returncode == 0


def test_new_files_take_spares_made_ahead_and_none_stay(image, tmp_path):
    """New files' data goes into empty files a thread made ahead
    (UPPER/spare, renamed into UPPER/data at the create): every byte written
    lands in the file's own data, a daemon killed with spares made loses
    nothing and the next one clears them, and an unmount leaves none."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount(image, upper, mnt)
    pid = _daemon_pid(mnt)
    for i in range(300):
        (mnt / f"n{i}").write_bytes(f"{i}:".encode() * (i + 1))
    deadline = time.time() + 10
    while not os.listdir(upper / "spare") and time.time() < deadline:
        time.sleep(0.05)
    assert os.listdir(upper / "spare"), "no spare files were made ahead"
    _kill_daemon(pid, mnt)
    _mount(image, upper, mnt)
    try:
        for i in range(300):
            assert (mnt / f"n{i}").read_bytes() == f"{i}:".encode() * (i + 1), i
        (mnt / "after").write_text("x")
        assert len(os.listdir(upper / "spare")) <= 64     # the killed one's are gone
    finally:
        assert _umount(mnt).returncode == 0
    assert os.listdir(upper / "spare") == []
    assert len(_data_files(upper)) >= 301


def _mount_counting(image: str, upper: Path, mnt: Path) -> None:
    env = dict(os.environ, DOCKISH_FUSE_STATS="1")
    subprocess.run([dockish_exe(), "mount", "--rw", "--upper", str(upper), image, str(mnt)],
                   check=True, env=env)


def _request_counts(mnt: Path) -> dict[str, int]:
    """The daemon's request counts so far (SIGUSR1, then its log)."""
    from unionfs import mounts

    log = mounts.runtime_dir() / f"mount-{mounts.record_path(str(mnt)).stem}.log"
    done = log.read_text().count("requests after") if log.exists() else 0
    os.kill(_daemon_pid(mnt), signal.SIGUSR1)
    deadline = time.time() + 10
    while log.read_text().count("requests after") == done and time.time() < deadline:
        time.sleep(0.05)
    report = log.read_text().split("requests after")[-1]
    return {f[0]: int(f[1]) for f in (line.split() for line in report.splitlines())
            if len(f) > 2 and f[1].isdigit()}


def test_request_counts_on_sigusr1(image, tmp_path):
    """With DOCKISH_FUSE_STATS=1 the daemon counts requests per kind and
    writes them to its log on SIGUSR1 (and when it ends)."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount_counting(image, upper, mnt)
    try:
        for _ in range(3):
            (mnt / "a" / "f1").read_text()
        (mnt / "new").write_text("n")
        counts = _request_counts(mnt)
        assert counts.get("lookup", 0) >= 1 and counts.get("create") == 1, counts
        assert counts.get("read", 0) >= 1, counts
    finally:
        assert _umount(mnt).returncode == 0


def _cpu_ticks(pid: int) -> int:
    """User plus system time of ``pid`` (all its threads), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_back_to_back_requests_found_by_spinning_and_an_idle_view_costs_nothing(image, tmp_path):
    """The daemon's reader keeps reading a moment before it sleeps (the
    patched pyfuse3's spin): a process sending one request after another
    has most of them found that way, with no wakeup of the daemon; and a
    view left alone spends no CPU at all (the spin ends, it sleeps)."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount_counting(image, upper, mnt)
    try:
        (mnt / "f").write_text("x")
        for _ in range(3000):                   # the kernel caches no xattrs: a GETXATTR each
            with pytest.raises(OSError) as e:
                os.getxattr(mnt / "f", "user.none")
            assert e.value.errno == errno.ENODATA
        counts = _request_counts(mnt)
        assert counts.get("getxattr", 0) >= 3000, counts
        assert counts.get("spins", 0) >= 300, counts     # found by spinning (at least a tenth)
        pid = _daemon_pid(mnt)
        time.sleep(0.5)
        before = _cpu_ticks(pid)
        time.sleep(3)
        assert _cpu_ticks(pid) - before <= 2            # 20 ms in 3 s, at most
    finally:
        assert _umount(mnt).returncode == 0


def _evict_pages(root: Path) -> list[int]:
    """Drop the host's cached pages of every regular file under ``root``;
    returns the sizes of those whose first page is now really out of the
    cache (an RWF_NOWAIT read of it fails)."""
    cold = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                os.fdatasync(fd)                        # (dirty pages stay)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                size = os.fstat(fd).st_size
                os.preadv(fd, [bytearray(4096)], 0, os.RWF_NOWAIT)
            except BlockingIOError:
                cold.append(size)
            except OSError:
                pass
            finally:
                os.close(fd)
    return cold


def test_reads_of_pages_not_in_the_hosts_cache_come_whole(image, tmp_path):
    """The daemon answers a read at once only where the bytes are in the
    host's page cache, and reads the disk in a worker thread otherwise (a
    cold read never holds up other requests): with the layers' and the
    writable layer's pages dropped from the host's cache, every file reads
    back whole and right, from a fresh mount, by several readers at once."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    big = bytes(range(256)) * 4096
    mine = os.urandom(3 << 20)
    _mount(image, upper, mnt)
    try:
        (mnt / "mine").write_bytes(mine)
    finally:
        assert _umount(mnt).returncode == 0
    want = {"big": big, "mine": mine, "a/f2": b"two\n" * 1000, "c/h": b"aitch",
            "a/f1": b"one, changed\n"}
    layers = _evict_pages(Path(os.environ["DOCKISH_ROOT"]))
    assert max(layers, default=0) > len(big), layers        # big's layer is out of the cache
    assert len(mine) in _evict_pages(upper)                 # and mine's data file
    _mount(image, upper, mnt)
    try:
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            got = dict(zip(want, pool.map(lambda n: (mnt / n).read_bytes(), want), strict=True))
        assert {n: len(b) for n, b in got.items()} == {n: len(b) for n, b in want.items()}
        assert got == want
        with open(mnt / "big", "rb") as f:                  # and at offsets, after the cache
            f.seek(123457)
            assert f.read(70000) == big[123457:123457 + 70000]
    finally:
        assert _umount(mnt).returncode == 0


def test_symlink_targets_cached_and_never_stale(image, tmp_path):
    """The kernel keeps symlink targets (the patched pyfuse3 asks for
    FUSE_CAP_CACHE_SYMLINKS): following one link many times reads its
    target from the daemon once; a link replaced by another shows the new
    target at once."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount_counting(image, upper, mnt)
    try:
        os.symlink("a/f1", mnt / "ln")
        before = _request_counts(mnt).get("readlink", 0)
        for _ in range(50):
            assert os.readlink(mnt / "ln") == "a/f1"
            assert (mnt / "ln").read_text() == "one, changed\n"
        assert _request_counts(mnt).get("readlink", 0) - before <= 2
        os.symlink("c/h", mnt / "ln2")
        os.rename(mnt / "ln2", mnt / "ln")
        assert os.readlink(mnt / "ln") == "c/h"
        assert (mnt / "ln").read_text() == "aitch"
    finally:
        assert _umount(mnt).returncode == 0
    _mount(image, upper, mnt)
    try:
        assert os.readlink(mnt / "ln") == "c/h"
    finally:
        assert _umount(mnt).returncode == 0


def test_read_only_view_rereads_without_requests(image, tmp_path):
    """A read-only view lets the kernel open files and directories without
    asking (ENOSYS from OPEN/OPENDIR, the patched pyfuse3 naming the inode
    in READ/READDIRPLUS): a second walk and read of the whole tree sends no
    request at all, and reads the same bytes, at any offset."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ, DOCKISH_FUSE_STATS="1")
    subprocess.run([dockish_exe(), "mount", image, str(mnt)], check=True, env=env)

    def walk() -> dict[str, bytes]:
        seen = {}
        for d, _, files in os.walk(mnt):
            for f in files:
                p = os.path.join(d, f)
                if not os.path.islink(p):
                    seen[os.path.relpath(p, mnt)] = Path(p).read_bytes()
        return seen
    try:
        first = walk()
        assert first["a/f1"] == b"one, changed\n" and first["a/f2"] == b"two\n" * 1000
        assert sorted(os.listdir(mnt / "opq")) == ["new"]
        before = _request_counts(mnt)
        assert walk() == first
        with open(mnt / "big", "rb") as f:
            f.seek(1000)
            assert f.read(4) == bytes(range(232, 236))
        after = _request_counts(mnt)
        grown = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        for kind in ("open", "release", "opendir", "releasedir", "read", "readdir"):
            assert grown.get(kind, 0) == 0, grown
        with pytest.raises(OSError) as e:
            open(mnt / "a" / "f1", "r+b")
        assert e.value.errno == errno.EROFS
    finally:
        assert _umount(mnt).returncode == 0


def test_writable_view_opens_without_the_daemon(image, tmp_path):
    """A writable view lets the kernel open files without asking too (ENOSYS
    from OPEN): a lower file is copied up by its first write, O_TRUNC comes
    as a truncate, new files need no handle. Every kind of write lands and
    survives a remount with its times, and reading the files again (lower
    ones and written ones) sends no OPEN, RELEASE, READ or GETATTR."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount_counting(image, upper, mnt)
    big = bytearray(bytes(range(256)) * 4096)
    big[4096:4098] = b"XY"
    expect = {"a/f1": b"t\n", "a/f2": b"two\n" * 1000 + b"more\n", "big": bytes(big),
              "new": b"again\n", "c/h": b"aitch"}
    try:
        (mnt / "new").write_bytes(b"fresh\n")
        with open(mnt / "a" / "f2", "ab") as f:         # append: copy-up by the write
            f.write(b"more\n")
        with open(mnt / "big", "r+b") as f:             # in place, in the middle
            f.seek(4096)
            f.write(b"XY")
        (mnt / "a" / "f1").write_bytes(b"t\n")          # O_TRUNC of a lower file
        with open(mnt / "new", "wb"):                    # O_TRUNC of a written one
            pass
        assert os.stat(mnt / "new").st_size == 0
        with open(mnt / "new", "ab") as f:
            f.write(b"again\n")
            f.flush()
            os.fsync(f.fileno())

        def seen() -> dict[str, bytes]:
            got = {p: (mnt / p).read_bytes() for p in expect}
            assert {p: os.stat(mnt / p).st_size for p in expect} == \
                {p: len(v) for p, v in expect.items()}
            assert sorted(os.listdir(mnt / "a")) == ["b", "f1", "f2"]
            return got
        assert seen() == expect
        # the reads just made from the daemon marked each file's atime stale
        # (the kernel's fuse_invalidate_atime): one GETATTR each, once
        assert seen() == expect
        times = {p: os.stat(mnt / p).st_mtime_ns for p in expect}
        before = _request_counts(mnt)
        for _ in range(3):
            assert seen() == expect
        after = _request_counts(mnt)
        grown = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        for kind in ("open", "release", "read", "getattr", "opendir", "releasedir", "readdir"):
            assert grown.get(kind, 0) == 0, grown
    finally:
        assert _umount(mnt).returncode == 0
    _mount(image, upper, mnt)
    try:
        assert {p: (mnt / p).read_bytes() for p in expect} == expect
        assert {p: os.stat(mnt / p).st_mtime_ns for p in expect} == times
    finally:
        assert _umount(mnt).returncode == 0


def test_listing_a_changing_directory_without_opendir(image, tmp_path):
    """Where the kernel lists directories without OPENDIR, a listing is
    known by its offsets: one that goes on while the directory changes, and
    while other listings of it start and end, sees every entry that was
    there all along exactly once."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount(image, upper, mnt)
    try:
        d = mnt / "many"
        d.mkdir()
        names = {f"entry-with-a-long-name-{i:05d}" for i in range(3000)}
        for name in names:
            (d / name).touch()
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        with os.scandir(fd) as it:
            got = [next(it).name for _ in range(500)]
            for i in range(300):                       # change it as the listing goes
                os.unlink(d / f"entry-with-a-long-name-{i:05d}")
                (d / f"new-{i}").touch()
            assert len(os.listdir(d)) == 3000          # another listing, all through
            got += [e.name for e in it]
        os.close(fd)
        kept = {n for n in names if int(n[-5:]) >= 300}
        assert len(got) == len(set(got)), "an entry was listed twice"
        assert kept <= set(got), sorted(kept - set(got))[:5]
        assert set(got) <= names | {f"new-{i}" for i in range(300)}
    finally:
        assert _umount(mnt).returncode == 0


def test_fsynced_files_read_back_without_requests(image, tmp_path):
    """An fsync'ed file reads back from the kernel's pages alone, its last
    partial page included (the daemon hands the kernel the file's last
    pages at fsync): as dpkg fsyncs every file it unpacks, an installed
    package is read without READ requests and, after, without the GETATTR
    each READ causes. The bytes are the file's, at every size around page
    and folio bounds, and after the file changes again."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount_counting(image, upper, mnt)
    sizes = [1, 100, 4095, 4096, 4097, 5000, 70_000, 2 * 1024 * 1024 + 10, 3_000_001]
    expect = {f"s{n}": os.urandom(n) for n in sizes}
    try:
        for name, data in expect.items():
            with open(mnt / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        before = _request_counts(mnt)
        # (the writes marked each file's size and times stale: one GETATTR
        # each, here; then, without a READ, atime stays valid)
        assert {n: (mnt / n).read_bytes() for n in expect} == expect
        between = _request_counts(mnt)
        assert {n: (mnt / n).read_bytes() for n in expect} == expect
        sizes_seen = {n: os.stat(mnt / n).st_size for n in expect}
        assert sizes_seen == {n: len(d) for n, d in expect.items()}
        after = _request_counts(mnt)
        assert after.get("read", 0) == before.get("read", 0), (before, after)
        assert after.get("getattr", 0) == between.get("getattr", 0), (between, after)
        # changed after the fsync: written in the middle, appended, truncated
        with open(mnt / "s5000", "r+b") as f:
            f.seek(10)
            f.write(b"middle")
        expect["s5000"] = expect["s5000"][:10] + b"middle" + expect["s5000"][16:]
        with open(mnt / "s4097", "ab") as f:
            f.write(b"tail")
        expect["s4097"] += b"tail"
        os.truncate(mnt / "s70000", 4100)
        expect["s70000"] = expect["s70000"][:4100]
        assert {n: (mnt / n).read_bytes() for n in expect} == expect
    finally:
        assert _umount(mnt).returncode == 0
    _mount(image, upper, mnt)
    try:
        assert {n: (mnt / n).read_bytes() for n in expect} == expect
    finally:
        assert _umount(mnt).returncode == 0


STORE_RACER = r'''
import mmap, os, random, sys, threading, time
path, count, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
size = 1024 * 1024 + 123
model = bytearray(size)
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.pwrite(fd, bytes(model), 0)
os.fsync(fd)
mapped = mmap.mmap(fd, size) if how == "mmap" else None
done = threading.Event()
syncs = 0

def syncer():
    global syncs
    while not done.is_set():
        os.fsync(fd)
        syncs += 1

t = threading.Thread(target=syncer)
t.start()
# every write lands on bytes no other write touches: a store holding bytes
# read before one of them would undo it for good
slots = list(range(size // 16))
random.Random(7).shuffle(slots)
for i, slot in enumerate(slots[:count]):
    data = (i + 1).to_bytes(4, "little") * 4
    if mapped is not None:
        mapped[slot * 16:slot * 16 + 16] = data
        if i % 50 == 0:
            time.sleep(0.001)       # stores to memory outrun fsyncs: let them meet
    else:
        os.pwrite(fd, data, slot * 16)
    model[slot * 16:slot * 16 + 16] = data
    if i == count // 2 and mapped is None:
        os.ftruncate(fd, size - 100)
        os.ftruncate(fd, size)
        model[size - 100:] = bytes(100)
done.set()
t.join()
if mapped is not None:
    mapped.close()
os.fsync(fd)
os.close(fd)
with open(path, "rb") as f:
    got = f.read()
if got != bytes(model):
    bad = sum(1 for a, b in zip(got, model) if a != b)
    sys.exit(f"{bad} bytes read back differ from those written last ({syncs} fsyncs)")
print(syncs)
'''


@pytest.mark.parametrize("how", ["write", "mmap"])
def test_pages_handed_over_at_fsync_never_hold_old_bytes(image, tmp_path, how):
    """A file written (and truncated) in one thread, by write() or through
    a shared mapping, while another thread fsyncs it over and over: the
    pages an fsync hands the kernel never undo a write (a mapping's writes
    take no lock: a file gets pages handed over only when write() wrote it
    since the last time), so what is read back, then and after a remount,
    is what was written last."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount(image, upper, mnt)
    try:
        res = subprocess.run([sys.executable, "-c", STORE_RACER, str(mnt / "raced"), "20000", how],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert int(res.stdout) > 20, res.stdout           # fsyncs that raced the writes
        written = (mnt / "raced").read_bytes()
    finally:
        assert _umount(mnt).returncode == 0
    _mount(image, upper, mnt)
    try:
        assert (mnt / "raced").read_bytes() == written
    finally:
        assert _umount(mnt).returncode == 0


def test_fsyncs_sync_the_journal_only_for_records_not_yet_durable(image, tmp_path):
    """dpkg's way: unpack every file of a package, then fsync each and
    rename it into place before the next fsync. The first fsync makes every
    record written so far durable; the others need only their file's data,
    though the journal has grown (the renames): one journal sync, not one
    per file. A file changed after that sync gets its own, and everything
    is there after a remount."""
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _mount_counting(image, upper, mnt)
    files = {f"pkg/f{i}": os.urandom(100 + i) for i in range(40)}
    try:
        (mnt / "pkg").mkdir()
        for name, data in files.items():                 # content, then mode, as dpkg
            fd = os.open(mnt / (name + ".dpkg-new"), os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, data)
            os.fchmod(fd, 0o644)
            os.close(fd)
        before = _request_counts(mnt).get("journal", 0)
        for name in files:
            fd = os.open(mnt / (name + ".dpkg-new"), os.O_WRONLY)
            os.fsync(fd)
            os.close(fd)
            os.rename(mnt / (name + ".dpkg-new"), mnt / name)
        counts = _request_counts(mnt)
        assert counts.get("journal", 0) - before == 1
        assert counts.get("fsync") == 40, counts        # each counted once (answered later)
        fd = os.open(mnt / "pkg" / "f3", os.O_RDWR)     # a change after the sync
        os.write(fd, b"changed")
        os.fchmod(fd, 0o600)
        before = _request_counts(mnt).get("journal", 0)
        os.fsync(fd)
        os.close(fd)
        assert _request_counts(mnt).get("journal", 0) - before == 1
        files["pkg/f3"] = b"changed" + files["pkg/f3"][7:]
    finally:
        assert _umount(mnt).returncode == 0
    _mount(image, upper, mnt)
    try:
        assert {n: (mnt / n).read_bytes() for n in files} == files
        assert os.stat(mnt / "pkg" / "f3").st_mode & 0o777 == 0o600
    finally:
        assert _umount(mnt).returncode == 0
