"""Load: 16 processes at once on one writable mount, fsx-style random
operations (writes at random offsets, appends, truncates, renames, unlinks,
fsyncs, copy-ups of lower files, all 16 writing their own block of one
shared lower file) each checked against an in-memory model of what the file
must hold. Zero mismatches, live and after a remount.

``DOCKISH_LOAD_SECONDS`` (default 20) bounds the run; ``DOCKISH_LOAD_WORKERS``
(default 16) sets the number of processes. scripts/soak runs it longer.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .diffbase import dockish_exe
from .test_hostile import oci_layout, tar_of

WORKERS = int(os.environ.get("DOCKISH_LOAD_WORKERS", "16"))
SECONDS = float(os.environ.get("DOCKISH_LOAD_SECONDS", "20"))
LOWER_FILES = 4
BLOCK = 64 * 1024


def lower_content(worker: int, j: int) -> bytes:
    """What the image's lower file w<worker>/l<j> holds (workers recompute it)."""
    return hashlib.sha256(f"{worker}-{j}".encode()).digest() * (1000 * (j + 1))


WORKER = r'''
import hashlib, json, os, random, sys, time
mnt, wid, seed, seconds, nlower, block = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
rnd = random.Random(seed)
base = os.path.join(mnt, f"w{wid}")
model = {f"l{j}": bytearray(hashlib.sha256(f"{wid}-{j}".encode()).digest() * (1000 * (j + 1)))
         for j in range(nlower)}
shared = bytearray(block)                    # the lower layer's shared file is zeros
counts, mismatches = {}, []

def path(name):
    return os.path.join(base, name)

def check(name, where):
    with open(path(name), "rb") as f:
        got = f.read()
    want = bytes(model[name])
    if got != want:
        at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                  min(len(got), len(want)))
        mismatches.append(f"{where}: {name} differs at byte {at} "
                          f"(size {len(got)}, model {len(want)})")

def op_write():
    name = rnd.choice(list(model) + [f"n{rnd.randrange(12)}"])
    data = rnd.randbytes(rnd.choice([1, 100, 4096, 70_000, rnd.randrange(1, 300_000)]))
    cur = model.setdefault(name, bytearray())
    off = rnd.randrange(0, len(cur) + 8192)
    fd = os.open(path(name), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, off)
    finally:
        os.close(fd)
    if off > len(cur):
        cur.extend(bytes(off - len(cur)))
    cur[off:off + len(data)] = data

def op_append():
    name = rnd.choice(list(model))
    data = rnd.randbytes(rnd.randrange(1, 20_000))
    with open(path(name), "ab") as f:
        f.write(data)
    model[name].extend(data)

def op_truncate():
    name = rnd.choice(list(model))
    cur = model[name]
    n = rnd.randrange(0, len(cur) + 50_000)
    os.truncate(path(name), n)
    if n > len(cur):
        cur.extend(bytes(n - len(cur)))
    else:
        del cur[n:]

def op_read():
    check(rnd.choice(list(model)), "read")

def op_stat():
    name = rnd.choice(list(model))
    size = os.stat(path(name)).st_size
    if size != len(model[name]):
        mismatches.append(f"stat: {name} has size {size}, model {len(model[name])}")

def op_rename():
    old = rnd.choice(list(model))
    new = f"r{rnd.randrange(12)}"
    if old == new:
        return
    os.rename(path(old), path(new))
    model[new] = model.pop(old)

def op_unlink():
    if len(model) > 2:
        name = rnd.choice(list(model))
        os.unlink(path(name))
        del model[name]

def op_fsync():
    name = rnd.choice(list(model))
    fd = os.open(path(name), os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

def op_list():
    got = set(os.listdir(base))
    if got != set(model):
        mismatches.append(f"listdir: extra {sorted(got - set(model))}, "
                          f"missing {sorted(set(model) - got)}")

def op_shared():
    off = rnd.randrange(block)
    data = rnd.randbytes(rnd.randrange(1, block - off + 1))
    fd = os.open(os.path.join(mnt, "shared"), os.O_RDWR)
    try:
        os.pwrite(fd, data, wid * block + off)
        got = os.pread(fd, block, wid * block)
    finally:
        os.close(fd)
    shared[off:off + len(data)] = data
    if got != shared:
        mismatches.append("shared: own block differs right after writing it")

ops = [op_write] * 6 + [op_append] * 2 + [op_truncate, op_read, op_read, op_stat, op_rename,
                                          op_unlink, op_fsync, op_list, op_shared, op_shared]
deadline = time.monotonic() + seconds
while time.monotonic() < deadline and len(mismatches) < 20:
    fn = rnd.choice(ops)
    fn()
    counts[fn.__name__] = counts.get(fn.__name__, 0) + 1
for name in list(model):
    check(name, "final")
print(json.dumps({"counts": counts, "mismatches": mismatches,
                  "final": {n: hashlib.sha256(bytes(d)).hexdigest() for n, d in model.items()},
                  "shared": hashlib.sha256(bytes(shared)).hexdigest()}))
'''


def load_image(d: Path, workers: int) -> str:
    members: list[tuple] = [("shared", "f", b"\0" * (BLOCK * workers))]
    for w in range(workers):
        members.append((f"w{w}", "d", None))
        members += [(f"w{w}/l{j}", "f", lower_content(w, j)) for j in range(LOWER_FILES)]
    return oci_layout(d, [tar_of(*members)])


def _dockish(*args: str) -> None:
    p = subprocess.run([dockish_exe(), *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr


def run_load(tmp_path: Path, workers: int, seconds: float, seed: int = 0) -> dict:
    """Run the workers on a fresh mount; verify live and after a remount.
    Returns the figures (the caller asserts)."""
    image = load_image(tmp_path / "img", workers)
    mnt, upper = tmp_path / "mnt", tmp_path / "upper"
    mnt.mkdir()
    _dockish("mount", "--rw", "--upper", str(upper), image, str(mnt))
    start = time.monotonic()
    try:
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(mnt), str(w),
                                   str(seed * 1000 + w), str(seconds), str(LOWER_FILES),
                                   str(BLOCK)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for w in range(workers)]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=seconds + 300)
            assert p.returncode == 0, err[-2000:]
            results.append(json.loads(out))
        elapsed = time.monotonic() - start
        shared_live = (mnt / "shared").read_bytes()
    finally:
        _dockish("umount", str(mnt))
    mismatches = [m for r in results for m in r["mismatches"]]
    _dockish("mount", "--rw", "--upper", str(upper), image, str(mnt))
    try:
        for w, r in enumerate(results):
            base = mnt / f"w{w}"
            assert sorted(os.listdir(base)) == sorted(r["final"]), f"worker {w}: names"
            for name, digest in r["final"].items():
                got = hashlib.sha256((base / name).read_bytes()).hexdigest()
                if got != digest:
                    mismatches.append(f"after remount: w{w}/{name} differs")
        shared = (mnt / "shared").read_bytes()
    finally:
        _dockish("umount", str(mnt))
    for w, r in enumerate(results):
        for label, data in (("live", shared_live), ("after remount", shared)):
            block = data[w * BLOCK:(w + 1) * BLOCK]
            if hashlib.sha256(block).hexdigest() != r["shared"]:
                mismatches.append(f"{label}: block {w} of the shared file differs")
    ops = sum(sum(r["counts"].values()) for r in results)
    return {"workers": workers, "seconds": round(elapsed, 1), "ops": ops,
            "ops_per_s": round(ops / elapsed), "mismatches": mismatches,
            "journal_bytes": (upper / "journal").stat().st_size}


def test_16_writers_and_readers_zero_mismatches(tmp_path):
    figures = run_load(tmp_path, WORKERS, SECONDS)
    figures["mismatches"] = figures["mismatches"][:20]
    print(f"load: {figures}")
    assert figures["mismatches"] == []
    assert figures["ops"] > WORKERS * 20, "the workers made almost no progress"
