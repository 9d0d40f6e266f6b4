"""Differential tests: the same operations on a writable union mount and on a
plain directory holding the same merged tree (``umoci unpack`` of the same
image) must give the same results, errors and final trees — and the union's
tree must come back unchanged after unmount and remount."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .diffbase import BASE_LAYERS, umoci_image
from .diffbase import dockish_exe as _dockish

HERE = Path(__file__).parent
WORKER = HERE / "diffworker.py"


EXISTING = ["a/f1", "a/f2", "a/b", "a/b/g", "a/b/deep", "a/b/deep/x", "c", "c/h", "hl1",
            "hl2", "c/hl3", "opq", "opq/new", "opq/old", "gone", "gonedir", "big", "lnk", "a"]
NEW = ["a/n1", "a/n2", "c/n3", "n4", "newd", "newd/n5", "a/b/n6", "opq/n7", "gonedir/z"]
PATHS = EXISTING + NEW


@pytest.fixture(scope="module")
def base_image(tmp_path_factory) -> tuple[str, Path]:
    """An OCI layout made by umoci from our layer tars, and umoci's unpack."""
    return umoci_image(tmp_path_factory.mktemp("diffbase"), BASE_LAYERS)


def run_diff(base_image, tmp_path: Path, ops: list) -> dict:
    image, rootfs = base_image
    plain = tmp_path / "plain"
    subprocess.run(["cp", "-a", str(rootfs), str(plain)], check=True)
    work = tmp_path / "work"
    work.mkdir()
    res = subprocess.run(
        ["unshare", "-Urm", sys.executable, str(WORKER), _dockish(), image, str(plain),
         str(work), json.dumps(ops)],
        capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def check_same(out: dict, ops: list) -> None:
    for op, u, p in zip(ops, out["union_ops"], out["plain_ops"], strict=True):
        assert u == p, f"{op}: union gave {u}, plain directory gave {p}"
    union, plain = out["union"], out["plain"]
    assert sorted(union) == sorted(plain), (
        f"names differ: only in union {sorted(set(union) - set(plain))}, "
        f"only in plain {sorted(set(plain) - set(union))}")
    for path in plain:
        assert union[path] == plain[path], f"{path}: union {union[path]} != plain {plain[path]}"
    assert out["remount"] == union, "the writable layer changed across unmount and remount"


HAND_WRITTEN = [
    ("copy-up and append", [["write", "a/f1", "more\n", "a", 0], ["read", "a/f1"],
                            ["stat", "a/f1"], ["write", "a/f2", "X", "r+", 10]]),
    ("truncate lower", [["truncate", "a/f2", 5], ["read", "a/f2"], ["truncate", "big", 0]]),
    ("whiteouts", [["unlink", "a/f1"], ["listdir", "a"], ["rmdir", "a/b"], ["unlink", "a/b/g"],
                   ["rmdir", "a/b/deep"], ["unlink", "a/b/deep/x"], ["rmdir", "a/b/deep"],
                   ["rmdir", "a/b"], ["listdir", "a"], ["mkdir", "a/b", 0o700],
                   ["listdir", "a/b"], ["stat", "gone"], ["listdir", "opq"]]),
    ("rename dir with lower children", [["rename", "a", "newa"], ["listdir", "newa/b"],
                                        ["read", "newa/b/g"], ["mkdir", "a", 0o755],
                                        ["rename", "c", "newa/b/deep"],
                                        ["rename", "c", "a/c"], ["listdir", "a"]]),
    ("rename over", [["rename", "a/f1", "a/f2"], ["read", "a/f2"], ["rename", "hl1", "hl2"],
                     ["stat", "hl1"], ["mkdir", "e", 0o755], ["rename", "e", "a/b"],
                     ["rename", "a/b/deep", "e"], ["rename", "a/b", "opq"]]),
    ("hardlinks", [["link", "hl1", "a/hl4"], ["stat", "hl2"], ["write", "hl2", "Z", "a", 0],
                   ["read", "c/hl3"], ["unlink", "hl1"], ["stat", "a/hl4"],
                   ["chmod", "c/hl3", 0o600], ["stat", "hl2"]]),
    ("metadata", [["chmod", "big", 0o600], ["utime", "big", -123_456_789_012],
                  ["utime", "a/f1", 4_102_444_800_123_456_789], ["setxattr", "a/f1", "user.k", "v"],
                  ["removexattr", "a/f1", "user.k"], ["removexattr", "a/f1", "user.k"],
                  ["setxattr", "a", "user.d", "dv"], ["mkfifo", "a/fifo"], ["stat", "a/fifo"],
                  ["symlink", "../nowhere", "c/dangling"], ["stat", "c/dangling"]]),
    ("errors", [["mkdir", "a", 0o755], ["rmdir", "c"], ["unlink", "a"], ["rmdir", "a/f1"],
                ["read", "nope"], ["rename", "a", "a/b/inside"], ["link", "a", "a2"],
                ["write", "a/f1/x", "y", "w", 0], ["mkdir", "x" * 256, 0o755]]),
    ("open unlinked", [["open_unlink", "a/tmpfile", "data"], ["open_unlink", "a/f1", "xx"]]),
]


@pytest.mark.parametrize("name,ops", HAND_WRITTEN, ids=[n for n, _ in HAND_WRITTEN])
def test_hand_written(base_image, tmp_path, name, ops):
    check_same(run_diff(base_image, tmp_path, ops), ops)


_path = st.sampled_from(PATHS)
_data = st.text(alphabet="abcxyz\n", min_size=0, max_size=40)
_op = st.one_of(
    st.tuples(st.just("write"), _path, _data, st.sampled_from(["w", "a", "r+"]),
              st.integers(0, 5000)),
    st.tuples(st.just("read"), _path),
    st.tuples(st.just("truncate"), _path, st.integers(0, 3000)),
    st.tuples(st.just("mkdir"), _path, st.sampled_from([0o755, 0o700])),
    st.tuples(st.just("rmdir"), _path),
    st.tuples(st.just("unlink"), _path),
    st.tuples(st.just("rename"), _path, _path),
    st.tuples(st.just("symlink"), st.sampled_from(["a/f1", "/etc/passwd", "../x"]), _path),
    st.tuples(st.just("link"), _path, _path),
    st.tuples(st.just("chmod"), _path, st.sampled_from([0o644, 0o600, 0o755, 0o4755])),
    st.tuples(st.just("utime"), _path, st.integers(-2**40, 2**62)),
    st.tuples(st.just("setxattr"), _path, st.sampled_from(["user.a", "user.b"]), _data),
    st.tuples(st.just("removexattr"), _path, st.sampled_from(["user.a", "user.b"])),
    st.tuples(st.just("mkfifo"), _path),
    st.tuples(st.just("listdir"), st.sampled_from(["a", "a/b", "c", "opq", "newd", "."])),
    st.tuples(st.just("stat"), _path),
).map(list)


@settings(max_examples=int(os.environ.get("DOCKISH_DIFF_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=1, max_size=40))
def test_random_operations(base_image, tmp_path_factory, ops):
    tmp = tmp_path_factory.mktemp("diff")
    check_same(run_diff(base_image, tmp, ops), ops)
