"""Merging oracles: the union's tree of a multi-layer image equals what
independent tools make of the same layers — ``umoci unpack --rootless``
(contents, modes, links, and owners as umoci records them) and
``fuse-overlayfs`` over the same layer tars extracted as lower dirs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .diffbase import BASE_LAYERS, dockish_exe, umoci_image
from .diffworker import snapshot

HERE = Path(__file__).parent

# Inside `unshare -Urm`: extract each layer tar as a lower dir (keeping the
# `.wh.` files, which fuse-overlayfs reads as whiteouts), mount fuse-overlayfs
# and dockish read-only, print both snapshots.
FO_WORKER = r'''
import json, os, subprocess, sys, tarfile
sys.path.insert(0, sys.argv[1])
from diffworker import snapshot
dockish, image, work, *tars = sys.argv[2:]
lowers = []
for i, t in enumerate(tars):
    d = os.path.join(work, f"lower{i}")
    os.makedirs(d)
    with tarfile.open(t) as tf:
        for m in tf:
            if m.islnk() and not os.path.exists(os.path.join(d, m.linkname)):
                # a hardlink to a lower layer's file: copy it up, as OCI allows
                src = next(os.path.join(l, m.linkname) for l in reversed(lowers)
                           if os.path.lexists(os.path.join(l, m.linkname)))
                import shutil
                shutil.copy2(src, os.path.join(d, m.name))
                continue
            tf.extract(m, d, filter="fully_trusted")
    lowers.append(d)
fo, un = os.path.join(work, "fo"), os.path.join(work, "un")
os.makedirs(fo); os.makedirs(un)
subprocess.run(["fuse-overlayfs", "-o", "lowerdir=" + ":".join(reversed(lowers)), fo], check=True)
subprocess.run([dockish, "mount", image, un], check=True)
try:
    json.dump({"fo": snapshot(fo), "un": snapshot(un)}, sys.stdout)
finally:
    subprocess.run(["umount", fo]); subprocess.run([dockish, "umount", un])
'''


def _rootless_owner(value: bytes) -> tuple[int, int]:
    """Decode umoci's ``user.rootlesscontainers`` protobuf (uid=1, gid=2)."""
    fields, i = {1: 0, 2: 0}, 0
    while i < len(value):
        key, i = _varint(value, i)
        val, i = _varint(value, i)
        fields[key >> 3] = val
    return fields[1], fields[2]


def _varint(b: bytes, i: int) -> tuple[int, int]:
    shift = out = 0
    while True:
        byte = b[i]
        i += 1
        out |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return out, i


def _owners(root: Path, umoci: bool) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if umoci:
                try:
                    out[rel] = _rootless_owner(os.getxattr(full, "user.rootlesscontainers",
                                                           follow_symlinks=False))
                except OSError:
                    out[rel] = (0, 0)
            else:
                st = os.lstat(full)
                out[rel] = (st.st_uid, st.st_gid)
    return out


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    d = tmp_path_factory.mktemp("oracle")
    ref, rootfs = umoci_image(d, BASE_LAYERS)
    return ref, rootfs, [d / f"l{i}.tar" for i in range(len(BASE_LAYERS))]


def test_union_equals_umoci_unpack(image, tmp_path):
    ref, rootfs, _ = image
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run([dockish_exe(), "mount", ref, str(mnt)], check=True)
    try:
        ours, theirs = snapshot(str(mnt)), snapshot(str(rootfs))
        assert sorted(ours) == sorted(theirs)
        for path in theirs:
            assert ours[path] == theirs[path], path
        assert _owners(mnt, umoci=False) == _owners(rootfs, umoci=True)
        with pytest.raises(OSError) as e:
            (mnt / "newfile").write_text("x")
        assert e.value.errno == 30         # EROFS: an inspection mount is read-only
    finally:
        subprocess.run([dockish_exe(), "umount", str(mnt)], check=True)


def test_union_equals_fuse_overlayfs(image, tmp_path):
    ref, _, tars = image
    res = subprocess.run(
        ["unshare", "-Urm", sys.executable, "-c", FO_WORKER, str(HERE), dockish_exe(), ref,
         str(tmp_path), *map(str, tars)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    fo, un = out["fo"], out["un"]
    assert sorted(un) == sorted(fo)
    for path in fo:
        if path == "#hardlinks":
            continue                 # fuse-overlayfs cannot keep hardlinks across layers
        # fuse-overlayfs cannot share an inode across lower dirs: link counts
        # of cross-layer hardlinks differ by design (umoci's oracle checks them)
        strip = (lambda d: {k: v for k, v in d.items() if k != "nlink"}) \
            if fo[path].get("type") == 0o100000 else (lambda d: d)
        assert strip(un[path]) == strip(fo[path]), path
