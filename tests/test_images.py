"""The shared test images are what they claim to be, as seen by independent
tools (umoci, skopeo, the kernel running busybox in a user namespace). This
also checks the test bed: if these fail, every image-based test is suspect."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from . import images as im


def _unpack(image_ref: str, dest: Path) -> tuple[Path, str]:
    """``umoci unpack --rootless``; returns (rootfs, umoci's stderr)."""
    layout_tag = image_ref.removeprefix("oci:")
    p = subprocess.run(["umoci", "unpack", "--rootless", "--image", layout_tag, str(dest)],
                       capture_output=True, text=True)
    assert p.returncode == 0, f"umoci unpack failed:\n{p.stderr}"
    return dest / "rootfs", p.stderr


def _owner(path: Path) -> tuple[int, int]:
    """The image owner umoci recorded (no xattr: root)."""
    try:
        value = os.getxattr(path, "user.rootlesscontainers", follow_symlinks=False)
    except OSError:
        return 0, 0
    return im.rootless_owner(value)


def _layer_members(tar: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tar) as t:
        return {m.name: m for m in t.getmembers()}


@pytest.fixture(scope="module")
def busybox_rootfs(busybox_image, tmp_path_factory):
    return _unpack(busybox_image.oci, tmp_path_factory.mktemp("bb") / "b")


@pytest.fixture(scope="module")
def layered_rootfs(layered_image, tmp_path_factory):
    return _unpack(layered_image.oci, tmp_path_factory.mktemp("lay") / "b")


# ------------------------------------------------------------------ busybox

def test_busybox_layout_and_config(busybox_image):
    manifest = busybox_image.manifest()
    assert len(manifest["layers"]) == 1
    config = im.read_config(busybox_image.oci_dir)
    assert config["config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=/") for e in config["config"]["Env"])
    assert config["os"] == "linux"


def test_busybox_rootfs(busybox_rootfs):
    rootfs, _ = busybox_rootfs
    assert im.is_static_elf(rootfs / "bin/busybox")
    for applet in ("sh", "ls", "cat", "echo", "true", "false", "env", "id", "mkdir", "rm",
                   "touch", "stat", "find", "sleep", "ps", "mount", "hostname", "wget",
                   "httpd", "nc"):
        assert os.readlink(rootfs / "bin" / applet) == "busybox", applet
    assert stat.S_IMODE((rootfs / "tmp").lstat().st_mode) == 0o1777
    assert stat.S_IMODE((rootfs / "root").lstat().st_mode) == 0o700
    passwd = (rootfs / "etc/passwd").read_text()
    assert "root:x:0:0:" in passwd and "app:x:1000:1000:" in passwd and "nobody:x:65534" in passwd
    assert "app:x:1000:" in (rootfs / "etc/group").read_text()
    assert _owner(rootfs / "home/app") == (1000, 1000)


def test_busybox_runs_as_a_container_rootfs(busybox_rootfs):
    rootfs, _ = busybox_rootfs
    p = subprocess.run(["unshare", "-Ur", "chroot", str(rootfs), "/bin/sh", "-c",
                        "id -u; echo hello > /tmp/x; cat /tmp/x; ls /bin | wc -l"],
                       capture_output=True, text=True,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert p.returncode == 0, p.stderr
    uid, hello, applets = p.stdout.split()
    assert (uid, hello) == ("0", "hello") and int(applets) > 100


# ------------------------------------------------------------------ layered

def test_layered_has_six_layers_starting_with_busybox(layered_image, busybox_image):
    layers = layered_image.manifest()["layers"]
    assert len(layers) == len(layered_image.layers) == 6
    # the busybox layer is the very same blob: stores can share it
    assert layers[0]["digest"] == busybox_image.manifest()["layers"][0]["digest"]


def test_raw_layer_tars_are_the_image_layers(layered_image):
    """The exposed tars are byte for byte the image's layers (its diff_ids)."""
    diff_ids = im.read_config(layered_image.oci_dir)["rootfs"]["diff_ids"]
    assert diff_ids == ["sha256:" + im.sha256_file(t) for t in layered_image.layers]
    for desc, tar in zip(layered_image.manifest()["layers"], layered_image.layers,
                         strict=True):
        blob = layered_image.oci_dir / "blobs" / "sha256" / desc["digest"].split(":")[1]
        assert hashlib.sha256(gzip.decompress(blob.read_bytes())).hexdigest() == \
            im.sha256_file(tar)


def test_layered_merge_as_umoci_sees_it(layered_rootfs):
    rootfs, _ = layered_rootfs
    r = rootfs
    assert (r / im.L_MODIFIED).read_bytes() == im.L_MODIFIED_FINAL
    assert not os.path.lexists(r / im.L_DELETED_FILE)
    assert not os.path.lexists(r / im.L_DELETED_DIR)
    assert sorted(os.listdir(r / im.L_OPAQUE)) == im.L_OPAQUE_UPPER
    assert not list(r.rglob(".wh.*")), "whiteout files leaked into the tree"
    # type changes
    assert (r / im.L_DIR2FILE).is_file() and not (r / im.L_DIR2FILE).is_symlink()
    assert (r / im.L_FILE2DIR / "child").read_text() == "child\n"
    # hardlinks: within one layer and across layers
    assert (r / im.L_HL_ORIG).stat().st_ino == (r / im.L_HL_LINK).stat().st_ino
    assert (r / im.L_HL_LOWER).stat().st_ino == (r / im.L_HL_CROSS).stat().st_ino
    assert (r / im.L_HL_LOWER).stat().st_nlink == 2


def test_layered_owners_and_modes(layered_rootfs):
    r, _ = layered_rootfs

    def mode(p: str) -> int:
        return stat.S_IMODE((r / p).lstat().st_mode)

    assert _owner(r / im.L_APP_HOME) == (1000, 2000) and mode(im.L_APP_HOME) == 0o640
    assert _owner(r / im.L_BIGID) == (200_000, 300_000)
    assert _owner(r / im.L_SGID_DIR) == (0, 2000) and mode(im.L_SGID_DIR) == 0o2775
    assert _owner(r / im.L_SUID) == (0, 0) and mode(im.L_SUID) == 0o4755
    assert mode(im.L_STICKY_DIR) == 0o1777
    assert mode(im.L_MODE0) == 0
    assert mode(im.L_PRIVATE_DIR) == 0o700 and _owner(r / im.L_PRIVATE_DIR) == (0, 0)
    # a metadata-only change in a later layer
    assert mode(im.L_META_ONLY) == 0o600 and _owner(r / im.L_META_ONLY) == (1000, 2000)


def test_layered_special_files_and_xattrs(layered_rootfs, layered_image):
    r, log = layered_rootfs
    assert stat.S_ISFIFO((r / im.L_FIFO).lstat().st_mode)
    # rootless umoci cannot mknod: it says so and leaves a placeholder
    assert "device 1:3" in log and "device 7:0" in log
    assert os.getxattr(r / im.L_XATTR, im.XATTR_USER[0]) == im.XATTR_USER[1]
    # the layer itself records them exactly
    layer1 = _layer_members(layered_image.layers[1])
    null, loop = layer1[im.L_CHR], layer1[im.L_BLK]
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)
    assert loop.isblk() and (loop.devmajor, loop.devminor) == (7, 0)
    assert layer1[im.L_FIFO].isfifo()
    pax = layer1[im.L_XATTR].pax_headers
    cap = pax["SCHILY.xattr." + im.XATTR_CAP[0]].encode("utf-8", "surrogateescape")
    assert cap == im.XATTR_CAP[1] and len(cap) == 20


def test_layered_symlinks_names_and_paths(layered_rootfs):
    r, _ = layered_rootfs
    for name, target in im.LINK_TARGETS.items():
        assert os.readlink(r / name) == target
    assert len(Path(im.L_LONGNAME).name) == 255 and (r / im.L_LONGNAME).is_file()
    assert len("/" + im.L_DEEP) == im.DEEP_LEN
    assert max(len(c) for c in im.L_DEEP.split("/")) <= 255
    # the whole path does not fit in PATH_MAX with the rootfs prefix
    # everywhere, so walk it with dir fds
    fd = os.open(r, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in im.L_DEEP.split("/")[:-1]:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open(im.L_DEEP.rsplit("/", 1)[1], os.O_RDONLY, dir_fd=fd), "rb") as f:
            assert f.read() == b"deep\n"
    finally:
        os.close(fd)


def test_layered_times_and_sizes(layered_rootfs, layered_image):
    r, _ = layered_rootfs
    for name, (sec, ns) in im.MTIMES.items():
        assert (r / name).lstat().st_mtime_ns == sec * 10**9 + ns, name
    assert (r / im.L_EMPTY).stat().st_size == 0
    big = (r / im.L_BIG).read_bytes()
    assert len(big) == im.BIG_SIZE and big == im.big_bytes()
    # the nanoseconds are in the tar's PAX mtime, not just a rounded float
    layer4 = _layer_members(layered_image.layers[4])
    assert layer4[im.L_TIME_NS].pax_headers["mtime"] == "1700000000.123456789"
    assert layer4[im.L_TIME_OLD].pax_headers["mtime"] == "-315619199.750000000"


def test_opaque_marker_is_in_the_layer(layered_image):
    names = list(_layer_members(layered_image.layers[3]))
    assert f"{im.L_OPAQUE}/.wh..wh..opq" in names
    layer2 = _layer_members(layered_image.layers[2])
    assert "data/.wh.deleted.txt" in layer2 and "data/.wh.deldir" in layer2
    assert layer2[im.L_HL_CROSS].islnk() and layer2[im.L_HL_CROSS].linkname == im.L_HL_LOWER


# ------------------------------------------------------------------ other forms

@pytest.mark.parametrize("name", ["busybox", "layered"])
def test_docker_archive(test_images, name):
    img = test_images[name]
    with tarfile.open(img.docker_archive) as t:
        manifest = json.load(t.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [img.repo]
    assert len(manifest[0]["Layers"]) == len(img.layers)
    p = subprocess.run(["skopeo", "inspect", "--raw", img.docker], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(["skopeo", "inspect", "--config", img.docker],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["config"]["Cmd"] == ["sh"]


@pytest.mark.parametrize("name", ["busybox", "layered"])
def test_zstd_variant(test_images, name):
    img = test_images[name]
    layers = img.manifest(img.zstd_dir)["layers"]
    assert [d["mediaType"] for d in layers] == \
        ["application/vnd.oci.image.layer.v1.tar+zstd"] * len(img.layers)
    for d in layers:
        blob = img.zstd_dir / "blobs" / "sha256" / d["digest"].split(":")[1]
        assert blob.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"   # zstd frame magic
    # same content: same uncompressed diff_ids
    assert im.read_config(img.zstd_dir)["rootfs"]["diff_ids"] == \
        im.read_config(img.oci_dir)["rootfs"]["diff_ids"]
