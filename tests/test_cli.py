"""What a user sees from `dockish mount`/`umount`/`diff`/`layer`: output
shapes, one-line errors with exit code 125, big directories."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from .diffbase import BASE_LAYERS, dockish_exe, umoci_image


def dockish(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    res = subprocess.run([dockish_exe(), *args], capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def one_line_error(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode == 125, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got: {res.stderr!r}"
    assert lines[0].startswith("dockish: error: ")
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return umoci_image(tmp_path_factory.mktemp("cli"), BASE_LAYERS)[0]


def test_mount_list_and_umount_by_image(image, tmp_path):
    auto = dockish("mount", image, check=True).stdout.strip()
    assert os.path.ismount(auto) and (Path(auto) / "a" / "f1").read_text() == "one, changed\n"
    listed = json.loads(dockish("mount", "--format", "json", check=True).stdout)
    assert [(m["Image"], m["Mountpoint"], m["ReadOnly"]) for m in listed] == [(image, auto, True)]
    table = dockish("mount", check=True).stdout.splitlines()
    assert table[0].split() == ["IMAGE", "MOUNTPOINT", "PID", "MODE"]
    assert table[1].split()[1:2] == [auto] and table[1].split()[3] == "ro"
    assert dockish("umount", image, check=True).stdout.strip() == auto
    assert not os.path.ismount(auto)
    assert json.loads(dockish("mount", "--format", "json", check=True).stdout) == []


def test_errors_are_one_line(image, tmp_path):
    mnt = tmp_path / "m"
    mnt.mkdir()
    one_line_error(dockish("mount", f"oci:{tmp_path}/nope:t", str(mnt)), "nope")
    one_line_error(dockish("mount", image, str(tmp_path / "missing")), "not a directory")
    one_line_error(dockish("mount", "--rw", image, str(mnt)), "--upper")
    one_line_error(dockish("umount", str(mnt)), "not mounted")
    dockish("mount", image, str(mnt), check=True)
    try:
        one_line_error(dockish("mount", image, str(mnt)), "busy")
        other = tmp_path / "m2"
        other.mkdir()
        up = tmp_path / "up"
        dockish("mount", "--rw", "--upper", str(up), image, str(other), check=True)
        third = tmp_path / "m3"
        third.mkdir()
        one_line_error(dockish("mount", "--rw", "--upper", str(up), image, str(third)),
                       "in use")
        dockish("umount", str(other), check=True)
    finally:
        dockish("umount", str(mnt), check=True)


def test_corrupt_layer_is_refused(tmp_path):
    layer = tmp_path / "evil.tar"
    with tarfile.open(layer, "w") as t:
        info = tarfile.TarInfo("../escape")
        t.addfile(info)
    layout = tmp_path / "layout"
    subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{layout}:t"], check=True)
    subprocess.run(["umoci", "raw", "add-layer", "--image", f"{layout}:t", str(layer)],
                   check=True, capture_output=True)
    mnt = tmp_path / "m"
    mnt.mkdir()
    one_line_error(dockish("mount", f"oci:{layout}:t", str(mnt)), "escape")
    assert not os.path.ismount(mnt)


def test_diff_and_layer_export(image, tmp_path):
    mnt, up = tmp_path / "m", tmp_path / "up"
    mnt.mkdir()
    dockish("mount", "--rw", "--upper", str(up), image, str(mnt), check=True)
    (mnt / "a" / "f1").write_text("edited")
    os.unlink(mnt / "c" / "h")
    os.mkdir(mnt / "new")
    (mnt / "new" / "file").write_text("n")
    import shutil
    shutil.rmtree(mnt / "opq")
    os.mkdir(mnt / "opq")
    dockish("umount", str(mnt), check=True)
    lines = dockish("diff", "--upper", str(up), image, check=True).stdout.splitlines()
    assert "C /a/f1" in lines and "D /c/h" in lines and "A /new" in lines
    assert "A /new/file" in lines and "C /opq" in lines
    out = tmp_path / "layer.tar"
    dockish("layer", "--upper", str(up), "-o", str(out), image, check=True)
    with tarfile.open(out) as t:
        names = t.getnames()
        assert "c/.wh.h" in names and "opq/.wh..wh..opq" in names
        assert t.extractfile("a/f1").read() == b"edited"
        assert t.getmember("a/f1").uid == 0        # owners from the view, not the disk
    # the layer really applies: umoci unpack of the image plus it shows the change
    layout = image.split(":")[1]
    subprocess.run(["umoci", "raw", "add-layer", "--image", f"{layout}:t", "--tag", "t2",
                    str(out)], check=True, capture_output=True)
    subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:t2",
                    str(tmp_path / "b")], check=True, capture_output=True)
    root = tmp_path / "b" / "rootfs"
    assert (root / "a" / "f1").read_text() == "edited"
    assert not (root / "c" / "h").exists()
    assert os.listdir(root / "opq") == []


def test_hundred_thousand_entry_directory(tmp_path):
    big = [("big", "d", None)] + [(f"big/f{i:06d}", "f", b"") for i in range(100_000)]
    ref, _ = umoci_image(tmp_path, [big], unpack=False)
    mnt, up = tmp_path / "m", tmp_path / "up"
    mnt.mkdir()
    dockish("mount", "--rw", "--upper", str(up), ref, str(mnt), check=True)
    try:
        names = os.listdir(mnt / "big")
        assert len(names) == len(set(names)) == 100_000
        for i in range(0, 100_000, 1000):
            os.unlink(mnt / "big" / f"f{i:06d}")
        (mnt / "big" / "extra").write_text("x")
        names = os.listdir(mnt / "big")
        assert len(names) == len(set(names)) == 99_901 and "extra" in names
    finally:
        dockish("umount", str(mnt), check=True)



STALE = r'''
import os, signal, subprocess, sys, json, time
dockish, image, mnt = sys.argv[1:4]
os.makedirs(mnt, exist_ok=True)
subprocess.run([dockish, "mount", image, mnt], check=True, stdout=subprocess.DEVNULL)
pid = json.loads(subprocess.run([dockish, "mount", "--format", "json"], check=True,
                                capture_output=True, text=True).stdout)[0]["Pid"]
os.kill(pid, signal.SIGKILL)
time.sleep(0.5)
try:
    os.stat(mnt)
    raise SystemExit("expected a dead mount here")
except OSError as e:
    assert e.errno == 107, e     # ENOTCONN: the kernel still has the dead mount
res = subprocess.run([dockish, "mount", image, mnt], capture_output=True, text=True)
assert res.returncode == 0, res.stderr
assert "stale" in res.stderr and "died" in res.stderr, res.stderr
assert os.listdir(mnt), "remounted over the stale mount"
subprocess.run([dockish, "umount", mnt], check=True, stdout=subprocess.DEVNULL)
'''


def test_dead_daemon_mount_is_cleaned_up_and_said(image, tmp_path):
    """Where no fusermount3 watches the mount (inside a user namespace, as a
    container runtime mounts), a killed daemon leaves ENOTCONN behind: the
    next `dockish mount` on it cleans up and says what happened."""
    res = subprocess.run(["unshare", "-Urm", sys.executable, "-c", STALE, dockish_exe(),
                          image, str(tmp_path / "m")], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr


def test_fuse_options_pass_through(image, tmp_path):
    mnt = tmp_path / "m"
    mnt.mkdir()
    dockish("mount", "-o", "fsname=inspect-me,noatime", image, str(mnt), check=True)
    try:
        line = next(ln for ln in Path("/proc/self/mounts").read_text().splitlines()
                    if ln.split()[1] == str(mnt))
        source, _, fstype, opts = line.split()[:4]
        assert source == "inspect-me" and fstype == "fuse.dockish"
        assert "ro" in opts.split(",") and "noatime" in opts.split(",")
    finally:
        dockish("umount", str(mnt), check=True)
