"""Faults: a full disk under the writable layer (copy-up, new data, the
journal) and under the layer store (import), with a size-limited tmpfs
mounted inside a user namespace. ENOSPC reaches the writer; nothing
half-written stays referenced; once space is freed the mount works and a
remount shows exactly what the live mount showed. (SIGKILL of the daemon:
tests/test_persistence.py here, scripts/soak for hundreds of rounds.)
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from .diffbase import dockish_exe
from .test_hostile import oci_layout, store_state, tar_of

BIG = os.urandom(3 << 20)

IN_NS = r'''
import errno, hashlib, json, os, subprocess, sys, time
dockish, image, work, big_digest = sys.argv[1:5]
small = os.path.join(work, "small")
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", small], check=True)
upper, mnt = os.path.join(small, "upper"), os.path.join(work, "mnt")
report = {}

def mount():
    subprocess.run([dockish, "mount", "--rw", "--upper", upper, image, mnt], check=True)

def umount():
    p = subprocess.run([dockish, "umount", mnt], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr

def errno_of(fn):
    try:
        fn()
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok"

def write_file(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())

def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()

mount()
try:
    # copy-up of a 3 MiB lower file into a 2 MiB layer
    report["copy-up append"] = errno_of(lambda: write_file(mnt + "/big", b"more", "ab"))
    report["copy-up write at 0"] = errno_of(lambda: write_file(mnt + "/big", b"x", "r+b"))
    report["data files after copy-up"] = sorted(os.listdir(upper + "/data"))
    # new data until the disk is full
    report["fill"] = errno_of(lambda: write_file(mnt + "/fill", os.urandom(3 << 20)))
    # metadata changes on a full disk: each either works (and persists) or fails
    made = []
    for i in range(300):
        r = errno_of(lambda: os.mkdir(f"{mnt}/dir{i:03d}"))
        if r != "ok":
            report["mkdir on a full disk"] = r
            break
        made.append(i)
    report["view after full"] = sorted(os.listdir(mnt))
    # free the space: the mount works again
    os.unlink(mnt + "/fill")
    t0 = time.monotonic()
    while errno_of(lambda: write_file(mnt + "/after", b"written after freeing space")) != "ok":
        assert time.monotonic() - t0 < 10, "space never came back"
        time.sleep(0.05)
    report["space back after"] = round(time.monotonic() - t0, 2)
    report["copy-up small after freeing"] = errno_of(
        lambda: write_file(mnt + "/small", b"!", "ab"))
    report["made"] = len(made)
    os.rename(mnt + "/dir000", mnt + "/renamed")
    before = {name: (os.lstat(os.path.join(mnt, name)).st_mode,
                     os.lstat(os.path.join(mnt, name)).st_size) for name in os.listdir(mnt)}
finally:
    umount()
mount()
try:
    after = {name: (os.lstat(os.path.join(mnt, name)).st_mode,
                    os.lstat(os.path.join(mnt, name)).st_size) for name in os.listdir(mnt)}
    report["remount equal"] = before == after
    report["differences"] = {k: (before[k], after[k]) for k in before
                             if k in after and before[k] != after[k]}
    report["missing after remount"] = sorted(set(before) - set(after))
    report["extra after remount"] = sorted(set(after) - set(before))
    report["big intact after remount"] = digest(mnt + "/big") == big_digest
    with open(mnt + "/after", "rb") as f:
        report["after"] = f.read().decode()
    with open(mnt + "/small", "rb") as f:
        report["small"] = f.read().decode()
finally:
    umount()
print(json.dumps(report))
'''


def test_full_writable_layer(tmp_path):
    image = oci_layout(tmp_path / "img", [tar_of(("big", "f", BIG), ("small", "f", b"s"))])
    (tmp_path / "small").mkdir()
    (tmp_path / "mnt").mkdir()
    import hashlib
    p = subprocess.run(["unshare", "-Urm", sys.executable, "-c", IN_NS, dockish_exe(), image,
                        str(tmp_path), hashlib.sha256(BIG).hexdigest()],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    import json
    report = json.loads(p.stdout.splitlines()[-1])
    print(report)
    assert report["copy-up append"] == "ENOSPC"
    assert report["copy-up write at 0"] == "ENOSPC"
    assert report["data files after copy-up"] == []
    assert report["fill"] == "ENOSPC"
    # the journal's reserve: metadata changes still work on a full disk
    assert "mkdir on a full disk" not in report and report["made"] == 300
    assert report["space back after"] < 10
    assert report["after"] == "written after freeing space" and report["small"] == "s!"
    # the failed copy-up failed at open, before the kernel's write-back cache
    # took any byte: sizes before and after the remount are the same
    assert report["missing after remount"] == report["extra after remount"] == []
    assert report["differences"] == {}, report["differences"]
    assert report["remount equal"]
    assert report["big intact after remount"]


IMPORT_NS = r'''
set -e
mount -t tmpfs -o size=2m tmpfs "$1"
export DOCKISH_ROOT="$1/store"
shift
"$@" mount "$IMAGE" "$MNT" && exit 99
ls -A "$DOCKISH_ROOT/layers/sha256" "$DOCKISH_ROOT/tmp" 2>/dev/null || true
'''


def test_full_store_during_import_is_one_line(tmp_path):
    image = oci_layout(tmp_path / "img", [tar_of(("big", "f", BIG))])
    (tmp_path / "small").mkdir()
    (tmp_path / "mnt").mkdir()
    env = dict(os.environ, IMAGE=image, MNT=str(tmp_path / "mnt"))
    p = subprocess.run(["unshare", "-Urm", "sh", "-c", textwrap.dedent(IMPORT_NS), "sh",
                        str(tmp_path / "small"), dockish_exe()], capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 0, p.stderr
    store = tmp_path / "small" / "store"
    assert p.stderr == (f"dockish: error: no space left on the device of {store} while "
                        f"storing a layer\n")
    assert "import-" not in p.stdout          # no leftover in the store's tmp
    assert store_state(store) == ([], [])     # (outside the namespace: the tmpfs is gone)


JOURNAL_NS = r'''
import errno, json, os, stat, subprocess, sys
from unionfs import upper as upper_mod
from unionfs.tree import Tree
work = sys.argv[1]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", work], check=True)

def no_reserve(fd, offset, length):            # as on a filesystem without fallocate
    raise OSError(errno.EOPNOTSUPP, "no fallocate")

upper_mod._fallocate_keep_size = no_reserve
layer_ids = ["sha256:" + "0" * 64]

def fresh_tree():
    tree = Tree()
    tree.finish_lower()
    return tree

up = upper_mod.Upper(os.path.join(work, "up"), layer_ids)
up.open()
tree = fresh_tree()
up.load(tree)
fd = os.open(os.path.join(work, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
try:                                                     # fill the disk
    while True:
        os.write(fd, os.urandom(4096))
except OSError as e:
    assert e.errno == errno.ENOSPC
os.close(fd)
made, failed = 0, None
for i in range(100_000):
    node = tree.new_node(stat.S_IFDIR | 0o755, 0, 0, i)
    tree.place(tree.root, b"d%06d" % i + b"x" * 200, node)
    try:
        up.append(tree.take_pending())
    except OSError as e:
        failed = errno.errorcode[e.errno]
        break
    made += 1
size_ok = os.stat(os.path.join(work, "up", "journal")).st_size == up.journal_bytes
compacted = up.compact(tree)                      # no room for a rewrite: keeps the journal
up.close()
up = upper_mod.Upper(os.path.join(work, "up"), layer_ids)
up.open()
again = fresh_tree()
replayed = up.load(again, compact=False)
up.close()
print(json.dumps({"made": made, "failed": failed, "size_ok": size_ok, "compacted": compacted,
                  "replayed": replayed, "names": len(again.root.children)}))
'''


def test_failed_journal_append_leaves_no_torn_record(tmp_path):
    """Without a reserve (no fallocate), a journal append on a full disk fails
    whole: the journal is cut back to its last record, compaction keeps the
    old journal, and a remount replays exactly the changes that were made."""
    (tmp_path / "w").mkdir()
    p = subprocess.run(["unshare", "-Urm", sys.executable, "-c", JOURNAL_NS,
                        str(tmp_path / "w")], capture_output=True, text=True, timeout=120,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert p.returncode == 0, p.stderr[-3000:]
    import json
    r = json.loads(p.stdout.splitlines()[-1])
    assert r["failed"] == "ENOSPC" and r["size_ok"] and r["compacted"] is False
    assert r["names"] == r["made"] > 0


BUILD_NS = r'''
set -e
mount -t tmpfs -o size=12m tmpfs "$1"
export DOCKISH_ROOT="$1/store" DOCKISH_USERNS=single
ctx="$2"; dockish="$3"
# a RUN step that fills the disk: the command sees ENOSPC and fails the step
printf 'FROM %s\nRUN dd if=/dev/zero of=/fill bs=1M count=64\n' "$IMAGE" > "$ctx/Dockerfile"
"$dockish" build -t full1 "$ctx" > "$ctx/out1" 2> "$ctx/err1" && exit 91
# a COPY of a context file larger than the disk: the layer cannot be stored
printf 'FROM %s\nCOPY big /big\n' "$IMAGE" > "$ctx/Dockerfile"
head -c 20000000 /dev/urandom > "$ctx/big"
"$dockish" build -t full2 "$ctx" > "$ctx/out2" 2> "$ctx/err2" && exit 92
rm "$ctx/big"
# nothing half-made is left, and the store still builds once there is room
find "$DOCKISH_ROOT/tmp" "$DOCKISH_ROOT/containers" -mindepth 1 > "$ctx/left" 2>&1 || true
printf 'FROM %s\nRUN echo fine > /ok\n' "$IMAGE" > "$ctx/Dockerfile"
"$dockish" build -q -t fine "$ctx" > "$ctx/out3"
"$dockish" images --format '{{.Repository}}' > "$ctx/images"
'''


def test_full_disk_during_build_is_one_clear_error(tmp_path, busybox_image):
    """A build on a full disk (the store on a 12 MiB tmpfs): a RUN step that
    fills it fails as its command fails, a COPY too big to store is one
    line; nothing half-made stays and the next build works."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (tmp_path / "small").mkdir()
    env = dict(os.environ, IMAGE=busybox_image.oci)
    p = subprocess.run(["unshare", "-Urm", "sh", "-c", textwrap.dedent(BUILD_NS), "sh",
                        str(tmp_path / "small"), str(ctx), dockish_exe()],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, (p.returncode, p.stderr, (ctx / "err1").read_text()
                               if (ctx / "err1").exists() else "")
    err1 = (ctx / "err1").read_text().strip().splitlines()
    assert err1 == ["dockish: error: The command '/bin/sh -c dd if=/dev/zero of=/fill bs=1M "
                    "count=64' returned a non-zero code: 1"], err1
    assert "No space left on device" in (ctx / "out1").read_text()
    err2 = (ctx / "err2").read_text().strip().splitlines()
    assert len(err2) == 1 and "no space left" in err2[0].lower(), err2
    assert "Traceback" not in (ctx / "err2").read_text()
    assert (ctx / "left").read_text().split() == []
    assert (ctx / "images").read_text().split() == ["fine"]


PULL_NS = r'''
mount -t tmpfs -o size=2m tmpfs "$1" || exit 90
export DOCKISH_ROOT="$1/store" DOCKISH_CONFIG="$1/none.json"
"$2" pull "$REF" > "$1/out" 2> "$1/err"
echo "rc=$?"
cat "$1/err"
find "$DOCKISH_ROOT" -type f ! -name '*.lock' | sed "s|$DOCKISH_ROOT/||" | sort
'''


def test_full_disk_during_pull_is_one_line_and_keeps_nothing(tmp_path, busybox_image):
    """A pull into a store on a 2 MiB tmpfs of an image with a 3 MiB layer
    from a real registry: one error line, and no blob, layer or image
    record is left half-made or referenced."""
    from .registrybed import Registry, skopeo_push
    image = oci_layout(tmp_path / "img", [tar_of(("big", "f", BIG))])
    reg = Registry(tmp_path / "registry")
    try:
        ref = skopeo_push(reg, image, "full/big:1")
        (tmp_path / "small").mkdir()
        p = subprocess.run(["unshare", "-Urm", "sh", "-c", textwrap.dedent(PULL_NS), "sh",
                            str(tmp_path / "small"), dockish_exe()],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, REF=ref))
    finally:
        reg.stop()
    lines = p.stdout.splitlines()
    assert lines[0] == "rc=125", p.stdout + p.stderr
    assert len([ln for ln in lines if ln.startswith("dockish: error")]) == 1
    assert "no space left" in lines[1].lower(), lines
    assert "Traceback" not in p.stdout
    left = lines[2:]
    assert not [f for f in left if f.startswith(("layers/sha256/", "images/", "tmp/"))
                and not f.startswith("images/blobs/sha256/.")], left


RM_NS = r'''
import errno, json, os, subprocess, sys, time
dockish, image, work = sys.argv[1:4]
small = os.path.join(work, "small")
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", small], check=True)
upper, mnt = os.path.join(small, "upper"), os.path.join(work, "mnt")
subprocess.run([dockish, "mount", "--rw", "--upper", upper, image, mnt], check=True)
report = {}

def errno_of(fn):
    try:
        fn()
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok"

def create(path):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

try:
    def fill():
        fd = os.open(mnt + "/fill", os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while True:                        # fsync: the error of the write-back
                os.write(fd, os.urandom(1 << 18))
                os.fsync(fd)
        finally:
            os.close(fd)
    report["fill"] = errno_of(fill)
    os.mkdir(mnt + "/many")
    names = [f"{mnt}/many/{'n' * 150}{i:06d}" for i in range(60_000)]
    made = 0
    for name in names:                 # creates until the journal's room runs out
        r = errno_of(lambda: create(name))
        if r != "ok":
            report["create"] = r
            break
        made += 1
    report["made"] = made
    report["failed creates"] = sorted({errno_of(lambda: create(f"{mnt}/no{i}"))
                                       for i in range(300)})
    report["ghosts"] = sorted(n for n in os.listdir(mnt) if n.startswith("no"))
    # deleting: of every file just made, the lower file, then the big one
    report["rm many"] = sorted({errno_of(lambda: os.unlink(n)) for n in names[:made]})
    report["rmdir"] = errno_of(lambda: os.rmdir(mnt + "/many"))
    report["rm lower"] = errno_of(lambda: os.unlink(mnt + "/small"))
    report["rm fill"] = errno_of(lambda: os.unlink(mnt + "/fill"))
    # the kernel sends the release of the closed fill file on its own time
    # (FUSE releases are asynchronous): its space comes back when that lands
    for _ in range(50):
        report["create after"] = errno_of(lambda: create(mnt + "/after"))
        if report["create after"] != "ENOSPC":
            break
        time.sleep(0.1)
    before = sorted(os.listdir(mnt))
finally:
    subprocess.run([dockish, "umount", mnt], check=True)
subprocess.run([dockish, "mount", "--rw", "--upper", upper, image, mnt], check=True)
try:
    report["remount equal"] = sorted(os.listdir(mnt)) == before
finally:
    subprocess.run([dockish, "umount", mnt], check=True)
print(json.dumps(report))
'''


def test_rm_works_on_a_full_layer_after_many_creates(tmp_path):
    """A container fills its writable layer, then creates files until even
    the journal is full, then tries more: those fail with ENOSPC and leave
    nothing behind, and every delete still works (each file made, the
    directory, a lower file, the big file), after which space is back and
    a remount shows the same tree."""
    image = oci_layout(tmp_path / "img", [tar_of(("small", "f", b"s"))])
    (tmp_path / "small").mkdir()
    (tmp_path / "mnt").mkdir()
    p = subprocess.run(["unshare", "-Urm", sys.executable, "-c", RM_NS, dockish_exe(), image,
                        str(tmp_path)], capture_output=True, text=True, timeout=500)
    assert p.returncode == 0, p.stderr[-3000:]
    import json
    report = json.loads(p.stdout.splitlines()[-1])
    print(report)
    assert report["fill"] == "ENOSPC" and report["create"] == "ENOSPC"
    assert report["made"] > 100
    assert report["failed creates"] == ["ENOSPC"] and report["ghosts"] == []
    assert report["rm many"] == ["ok"]
    assert report["rmdir"] == report["rm lower"] == report["rm fill"] == "ok"
    assert report["create after"] == "ok"
    assert report["remount equal"]
