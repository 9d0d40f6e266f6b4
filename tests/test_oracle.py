"""Merging oracles: the union's tree of a multi-layer image equals what
independent tools make of the same layers — ``umoci unpack --rootless``
(contents, modes, links, and owners as umoci records them) and
``fuse-overlayfs`` over the same layer tars extracted as lower dirs."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from . import images
from .diffbase import BASE_LAYERS, dockish_exe, umoci_image
from .diffworker import snapshot
from .images import rootless_owner

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
                os.makedirs(os.path.dirname(os.path.join(d, m.name)), exist_ok=True)
                shutil.copy2(src, os.path.join(d, m.name))
                continue
            tf.extract(m, d)
    lowers.append(d)
fo, un = os.path.join(work, "fo"), os.path.join(work, "un")
os.makedirs(fo); os.makedirs(un)
subprocess.run(["fuse-overlayfs", "-o", "lowerdir=" + ":".join(reversed(lowers)), fo], check=True)
subprocess.run([dockish, "mount", image, un], check=True, stdout=subprocess.DEVNULL)
try:
    json.dump({"fo": snapshot(fo), "un": snapshot(un)}, sys.stdout)
finally:
    subprocess.run(["umount", fo], check=True)
    subprocess.run([dockish, "umount", un], check=True, stdout=subprocess.DEVNULL)
'''


def _owners(root: Path, umoci: bool) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if umoci:
                try:
                    out[rel] = rootless_owner(os.getxattr(full, "user.rootlesscontainers",
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


@pytest.mark.parametrize("form", ["oci", "docker", "zstd"])
def test_layered_image_equals_umoci_unpack(layered_image, tmp_path, form):
    """The 6-layer image made by umoci and skopeo (owners, setuid, devices,
    xattrs, whiteouts, opaque dir, cross-layer hardlinks, deep paths), in each
    of its forms, mounts as exactly the tree umoci unpacks."""
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--rootless", "--image",
                    f"{layered_image.oci_dir}:{layered_image.tag}",
                    str(bundle)], check=True, capture_output=True)
    rootfs = bundle / "rootfs"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run([dockish_exe(), "mount", getattr(layered_image, form), str(mnt)],
                   check=True)
    try:
        ours, theirs = snapshot(str(mnt)), snapshot(str(rootfs))
        # rootless umoci cannot make device nodes: it leaves empty placeholder files
        devices = {p for p, st in ours.items() if p != "#hardlinks" and
                   st["type"] in (stat.S_IFCHR, stat.S_IFBLK)}
        assert devices == {images.L_CHR, images.L_BLK}
        assert sorted(ours) == sorted(theirs)
        for path in theirs:
            if path not in devices:
                assert ours[path] == theirs[path], path
        owners = _owners(mnt, umoci=False)
        assert owners == _owners(rootfs, umoci=True)
        assert owners[images.L_BIGID] == (200000, 300000)
        chr_st = os.lstat(mnt / images.L_CHR)
        assert (os.major(chr_st.st_rdev), os.minor(chr_st.st_rdev)) == (1, 3)
        assert os.getxattr(mnt / images.L_XATTR, "user.foo") == b"bar"
        assert os.getxattr(mnt / images.L_XATTR, "security.capability")
        assert stat.S_IMODE(os.lstat(mnt / images.L_SUID).st_mode) == 0o4755
    finally:
        subprocess.run([dockish_exe(), "umount", str(mnt)], check=True)
