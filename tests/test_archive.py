"""Reading images from local archives into the layer store: OCI layouts made
by umoci, their zstd copies and docker archives made by skopeo, docker save
layouts of both eras written like Docker writes them, and damaged or hostile
images."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from registry.archive import (
    CorruptImageError,
    FormatError,
    Image,
    PlatformError,
    Source,
    SourceError,
    TagError,
    host_platform,
    import_image,
    normalize_reference,
    parse_source,
)
from unionfs.entry import HARDLINK, LINK, MODE, MTIME, OFFSET, PATH, RDEV, SIZE, UID, XATTRS
from unionfs.layers import LayerStore

from . import images as im

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_TAR = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run(*cmd: str | os.PathLike) -> None:
    if shutil.which(str(cmd[0])) is None:
        pytest.fail(f"`{cmd[0]}` is not installed")
    im.run(*cmd)


@pytest.fixture
def store(tmp_path) -> LayerStore:
    return LayerStore(tmp_path / "store")


def stored(store: LayerStore) -> list[str]:
    folder = store.root / "layers" / "sha256"
    return sorted("sha256:" + n for n in os.listdir(folder)) if folder.exists() else []


def copy_layout(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):             # umoci makes blobs read-only
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dst


def merge_blobs(src: Path, dst: Path) -> None:
    """Copy the blobs of layout src that layout dst lacks."""
    for blob in (src / "blobs" / "sha256").iterdir():
        if not (dst / "blobs" / "sha256" / blob.name).exists():
            shutil.copy(blob, dst / "blobs" / "sha256" / blob.name)


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":")[1]


def put_blob(layout: Path, data: bytes, media_type: str, **extra) -> dict:
    path = blob_path(layout, sha256(data))
    if not path.exists():
        path.write_bytes(data)
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def put_json(layout: Path, obj: dict, media_type: str, **extra) -> dict:
    return put_blob(layout, json.dumps(obj).encode(), media_type, **extra)


def read_blob(layout: Path, desc: dict) -> dict:
    return json.loads(blob_path(layout, desc["digest"]).read_bytes())


def set_index(layout: Path, manifests: list[dict]) -> None:
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                   "manifests": manifests}))


def tagged(layout: Path, tag: str = im.TAG) -> dict:
    index = json.loads((layout / "index.json").read_text())
    return next(d for d in index["manifests"] if d["annotations"][REF_NAME] == tag)


def retag_manifest(layout: Path, manifest: dict, tag: str = im.TAG) -> None:
    """Store manifest as the one image of the layout, under tag."""
    set_index(layout, [put_json(layout, manifest, manifest.get("mediaType", OCI_MANIFEST),
                                annotations={REF_NAME: tag})])


def entries_by_path(store: LayerStore, diff_id: str) -> dict:
    return {e[PATH]: e for e in store.load_index(diff_id)}


# -- OCI layouts -------------------------------------------------------------------------

def test_oci_layout_imports_every_layer_exactly(store, layered_image):
    img = import_image(layered_image.oci, store)
    assert isinstance(img, Image)
    config = im.read_config(layered_image.oci_dir)
    assert img.config == config
    assert img.config_digest == layered_image.manifest()["config"]["digest"]
    assert img.diff_ids == config["rootfs"]["diff_ids"]
    assert img.diff_ids == [sha256(p.read_bytes()) for p in layered_image.layers]
    assert img.name == im.TAG
    assert stored(store) == sorted(img.diff_ids)

    first = entries_by_path(store, img.diff_ids[1])          # the first "layered" layer
    assert first[im.L_XATTR.encode()][XATTRS] == {b"user.foo": b"bar",
                                                 b"security.capability": im.XATTR_CAP[1]}
    assert first[im.L_CHR.encode()][MODE] == stat.S_IFCHR | 0o666
    assert first[im.L_CHR.encode()][RDEV] == os.makedev(1, 3)
    assert first[im.L_BLK.encode()][RDEV] == os.makedev(7, 0)
    assert first[im.L_FIFO.encode()][MODE] == stat.S_IFIFO | 0o644
    assert first[im.L_HL_LINK.encode()][HARDLINK] == im.L_HL_ORIG.encode()
    assert first[im.L_SUID.encode()][MODE] == stat.S_IFREG | 0o4755
    assert first[im.L_BIGID.encode()][UID] == 200_000
    second = entries_by_path(store, img.diff_ids[2])
    assert second[im.L_LINK_CLIMB.encode()][LINK] == b"../../../../etc/passwd"
    assert second[im.L_HL_CROSS.encode()][HARDLINK] == im.L_HL_LOWER.encode()
    assert (im.L_LONGNAME.encode()) in second
    fourth = entries_by_path(store, img.diff_ids[4])
    for name, (sec, ns) in im.MTIMES.items():
        assert fourth[name.encode()][MTIME] == sec * 10**9 + ns
    assert im.L_DEEP.encode() in fourth
    big = fourth[im.L_BIG.encode()]
    fd = os.open(store.tar_path(img.diff_ids[4]), os.O_RDONLY)
    try:
        assert os.pread(fd, big[SIZE], big[OFFSET]) == im.big_bytes()
    finally:
        os.close(fd)


def test_busybox_binary_is_served_from_its_offset(store, busybox_image):
    img = import_image(busybox_image.oci, store)
    e = entries_by_path(store, img.diff_ids[0])[b"bin/busybox"]
    busybox = im.find_busybox().read_bytes()
    assert e[SIZE] == len(busybox)
    with open(store.tar_path(img.diff_ids[0]), "rb") as f:
        f.seek(e[OFFSET])
        assert f.read(e[SIZE]) == busybox


def test_zstd_layout_and_docker_archive_give_the_same_image(store, layered_image):
    oci = import_image(layered_image.oci, store)
    layers = stored(store)
    zstd = import_image(layered_image.zstd, store)
    docker = import_image(layered_image.docker, store)
    manifest = im.read_manifest(layered_image.zstd_dir)
    assert {d["mediaType"] for d in manifest["layers"]} == {OCI_TAR + "+zstd"}
    assert oci.diff_ids == zstd.diff_ids == docker.diff_ids
    assert oci.config_digest == zstd.config_digest == docker.config_digest
    assert docker.name == layered_image.repo
    assert stored(store) == layers


def test_zstd_layers_import_into_a_fresh_store(store, busybox_image):
    img = import_image(busybox_image.zstd, store)
    assert img.diff_ids == [sha256(busybox_image.layers[0].read_bytes())]


def test_tags_choose_the_image(store, busybox_image, layered_image, tmp_path):
    layout = copy_layout(layered_image.oci_dir, tmp_path / "two")
    merge_blobs(busybox_image.oci_dir, layout)
    small = dict(tagged(busybox_image.oci_dir), annotations={REF_NAME: "small"})
    set_index(layout, [tagged(layout), small])
    assert import_image(f"oci:{layout}:small", store).diff_ids == \
        import_image(busybox_image.oci, store).diff_ids
    assert len(import_image(f"oci:{layout}:latest", store).diff_ids) == 6
    with pytest.raises(TagError, match=rf"^no such tag 'nope' in oci:{layout}; "
                                       r"tags: latest, small$"):
        import_image(f"oci:{layout}:nope", store)
    with pytest.raises(TagError, match=rf"^oci:{layout} holds 2 images; name one with :TAG; "
                                       r"tags: latest, small$"):
        import_image(f"oci:{layout}", store)


def test_no_tag_and_one_image_takes_it(store, busybox_image):
    img = import_image(f"oci:{busybox_image.oci_dir}", store)
    assert img.name == im.TAG and len(img.diff_ids) == 1


def test_nested_index_picks_this_machine(store, busybox_image, layered_image, tmp_path):
    layout = copy_layout(layered_image.oci_dir, tmp_path / "multi")
    merge_blobs(busybox_image.oci_dir, layout)
    os_name, arch, variant = host_platform()
    other = "s390x" if arch != "s390x" else "amd64"
    small, big = tagged(busybox_image.oci_dir), tagged(layout)
    strip = ("mediaType", "digest", "size")
    entries = [
        {**{k: small[k] for k in strip}, "platform": {"os": "linux", "architecture": other}},
        {**{k: big[k] for k in strip},
         "platform": {"os": os_name, "architecture": arch,
                      **({"variant": variant} if variant else {})}},
        {**{k: small[k] for k in strip}, "platform": {"os": "unknown",
                                                      "architecture": "unknown"}},
    ]
    inner = put_json(layout, {"schemaVersion": 2, "mediaType": OCI_INDEX,
                              "manifests": entries}, OCI_INDEX)
    outer = put_json(layout, {"schemaVersion": 2, "mediaType": OCI_INDEX,
                              "manifests": [inner]}, OCI_INDEX)
    foreign = put_json(layout, {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                "manifests": [entries[0], entries[2]]}, OCI_INDEX)
    set_index(layout, [dict(outer, annotations={REF_NAME: "multi"}),
                       dict(foreign, annotations={REF_NAME: "foreign"})])
    img = import_image(f"oci:{layout}:multi", store)
    assert img.diff_ids == im.read_config(layered_image.oci_dir)["rootfs"]["diff_ids"]
    want = "/".join(p for p in host_platform() if p)
    with pytest.raises(PlatformError, match=rf"^oci:{layout} has no image for {want}; "
                                            rf"it has linux/{other}$"):
        import_image(f"oci:{layout}:foreign", store)


def test_docker_media_types_and_non_distributable_layers(store, busybox_image, tmp_path):
    for kind, layer_type in [
            ("docker", "application/vnd.docker.image.rootfs.diff.tar.gzip"),
            ("foreign", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"),
            ("nondist", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")]:
        layout = copy_layout(busybox_image.oci_dir, tmp_path / kind)
        manifest = read_blob(layout, tagged(layout))
        manifest["layers"][0]["mediaType"] = layer_type
        if kind == "docker":
            manifest["mediaType"] = "application/vnd.docker.distribution.manifest.v2+json"
            manifest["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
        retag_manifest(layout, manifest)
        img = import_image(f"oci:{layout}:latest", store)
        assert img.diff_ids == [sha256(busybox_image.layers[0].read_bytes())]


def test_unsupported_media_types_are_refused(store, busybox_image, tmp_path):
    layout = copy_layout(busybox_image.oci_dir, tmp_path / "lz4")
    manifest = read_blob(layout, tagged(layout))
    manifest["layers"][0]["mediaType"] = OCI_TAR + "+lz4"
    retag_manifest(layout, manifest)
    with pytest.raises(FormatError, match=r"layer 1 has unsupported media type "
                                          r"'application/vnd.oci.image.layer.v1.tar\+lz4'"):
        import_image(f"oci:{layout}:latest", store)
    manifest["layers"][0]["mediaType"] = OCI_TAR + "+gzip"
    manifest["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    retag_manifest(layout, manifest)
    with pytest.raises(FormatError, match=r"is not a container image \(config type "
                                          r"application/vnd.cncf.helm.config.v1\+json\)"):
        import_image(f"oci:{layout}:latest", store)
    assert stored(store) == []


# -- damaged and hostile images ------------------------------------------------------------

def test_damaged_layer_blob_is_refused_and_not_stored(store, busybox_image, tmp_path):
    layout = copy_layout(busybox_image.oci_dir, tmp_path / "bad")
    layer = read_blob(layout, tagged(layout))["layers"][0]
    path = blob_path(layout, layer["digest"])
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF                      # inside the deflate stream or its crc
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptImageError, match=rf"^oci:{layout}: layer 1 of 1 "
                                                rf"\({layer['digest']}\): "):
        import_image(f"oci:{layout}:latest", store)
    assert stored(store) == []
    path.unlink()
    with pytest.raises(CorruptImageError, match=rf"blobs/sha256/{layer['digest'][7:]} "
                                                r"is missing"):
        import_image(f"oci:{layout}:latest", store)


def test_damaged_config_is_refused(store, busybox_image, tmp_path):
    layout = copy_layout(busybox_image.oci_dir, tmp_path / "cfg")
    config = read_blob(layout, tagged(layout))["config"]
    path = blob_path(layout, config["digest"])
    path.write_bytes(path.read_bytes().replace(b'"sh"', b'"xx"'))
    with pytest.raises(CorruptImageError, match=rf"config {config['digest']} does not match "
                                                r"its digest"):
        import_image(f"oci:{layout}:latest", store)


def test_diff_ids_are_checked_against_the_layers(store, busybox_image, tmp_path):
    layout = copy_layout(busybox_image.oci_dir, tmp_path / "ids")
    manifest = read_blob(layout, tagged(layout))
    config = read_blob(layout, manifest["config"])
    wrong = sha256(b"not this layer")
    config["rootfs"]["diff_ids"] = [wrong]
    manifest["config"] = put_json(layout, config, OCI_CONFIG)
    retag_manifest(layout, manifest)
    with pytest.raises(CorruptImageError, match=f"layer diff_id mismatch: expected {wrong}"):
        import_image(f"oci:{layout}:latest", store)
    config["rootfs"]["diff_ids"] = [wrong, wrong]
    manifest["config"] = put_json(layout, config, OCI_CONFIG)
    retag_manifest(layout, manifest)
    with pytest.raises(FormatError, match="lists 2 diff_ids for an image of 1 layers"):
        import_image(f"oci:{layout}:latest", store)
    assert stored(store) == []


def test_hostile_layer_added_by_umoci_is_refused(store, busybox_image, tmp_path):
    layout = copy_layout(busybox_image.oci_dir, tmp_path / "evil")
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo("etc/shadow-copy")
        ti.type, ti.linkname = tarfile.LNKTYPE, "../../etc/shadow"
        tar.addfile(ti)
    run("umoci", "raw", "add-layer", "--image", f"{layout}:latest", evil)
    with pytest.raises(CorruptImageError, match=r"layer 2 of 2 .*: hardlink target escapes "
                                                r"the root: ../../etc/shadow"):
        import_image(f"oci:{layout}:latest", store)
    assert stored(store) == [sha256(busybox_image.layers[0].read_bytes())]


# -- docker save tarballs --------------------------------------------------------------------

def test_docker_archive_by_name(store, layered_image):
    path = layered_image.docker_archive
    want = import_image(layered_image.oci, store).diff_ids
    for ref in ("dockish-test/layered:latest", "dockish-test/layered",
                "docker.io/dockish-test/layered:latest", "@0"):
        img = import_image(f"docker-archive:{path}:{ref}", store)
        assert img.diff_ids == want
        assert img.name == layered_image.repo
    with pytest.raises(TagError, match=rf"^no such image 'nope:1' in docker-archive:{path}; "
                                       rf"tags: {layered_image.repo}$"):
        import_image(f"docker-archive:{path}:nope:1", store)


def _tar_of(members: dict[str, bytes | str], path: Path) -> Path:
    """A tar: bytes are files, str values symlink targets (as docker save writes)."""
    with tarfile.open(path, "w") as tar:
        for name, value in members.items():
            ti = tarfile.TarInfo(name)
            if isinstance(value, str):
                ti.type, ti.linkname = tarfile.SYMTYPE, value
                tar.addfile(ti)
            else:
                ti.size = len(value)
                tar.addfile(ti, io.BytesIO(value))
    return path


def test_legacy_docker_save_with_symlinked_and_compressed_layers(store, layered_image,
                                                                 tmp_path):
    """Docker <= 24: <id>/layer.tar per layer; a repeated layer is a symlink to
    the first copy; containerd-store saves may hold gzip or zstd layers."""
    if shutil.which("zstd") is None:
        pytest.fail("`zstd` is not installed (Debian package zstd)")
    tars = [p.read_bytes() for p in layered_image.layers[:3]]
    diff_ids = [sha256(tars[0]), sha256(tars[0]), sha256(tars[1]), sha256(tars[2])]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    ids = [hashlib.sha256(f"layer{i}".encode()).hexdigest() for i in range(4)]
    cfg_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = [{"Config": cfg_name, "RepoTags": ["bb:old"],
                 "Layers": [f"{i}/layer.tar" for i in ids]}]
    archive = _tar_of({
        f"{ids[0]}/VERSION": b"1.0", f"{ids[0]}/layer.tar": tars[0],
        f"{ids[1]}/layer.tar": f"../{ids[0]}/layer.tar",
        f"{ids[2]}/layer.tar": gzip.compress(tars[1]),
        f"{ids[3]}/layer.tar": subprocess.run(["zstd", "-q", "-c"], input=tars[2],
                                              capture_output=True, check=True).stdout,
        cfg_name: config, "manifest.json": json.dumps(manifest).encode(),
        "repositories": json.dumps({"bb": {"old": ids[3]}}).encode(),
    }, tmp_path / "legacy.tar")
    img = import_image(f"docker-archive:{archive}", store)
    assert img.diff_ids == diff_ids
    assert img.config_digest == sha256(config)
    assert img.name == "bb:old"
    assert stored(store) == sorted(set(diff_ids))
    for tar, diff_id in zip(tars, diff_ids[1:], strict=True):
        assert store.tar_path(diff_id).read_bytes() == tar


def test_legacy_docker_save_checks_the_config_name(store, tmp_path):
    config = b'{"rootfs": {"type": "layers", "diff_ids": []}}'
    name = "0" * 64 + ".json"
    archive = _tar_of({name: config, "manifest.json": json.dumps(
        [{"Config": name, "RepoTags": None, "Layers": []}]).encode()}, tmp_path / "c.tar")
    with pytest.raises(CorruptImageError, match=f"config {name} does not match its digest"):
        import_image(f"docker-archive:{archive}", store)


def _docker25(layout: Path, path: Path, with_manifest_json: bool) -> Path:
    """Docker >= 25's save: an OCI layout with uncompressed layers, plus
    manifest.json and repositories, in one tar."""
    desc = tagged(layout)
    manifest = read_blob(layout, desc)
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> str:
        blobs[f"blobs/sha256/{sha256(data)[7:]}"] = data
        return sha256(data)

    layers = []
    for layer in manifest["layers"]:
        tar = gzip.decompress(blob_path(layout, layer["digest"]).read_bytes())
        layers.append({"mediaType": OCI_TAR, "digest": add(tar), "size": len(tar)})
    config = blob_path(layout, manifest["config"]["digest"]).read_bytes()
    add(config)
    new = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                      "config": manifest["config"], "layers": layers}).encode()
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
        "mediaType": OCI_MANIFEST, "digest": add(new), "size": len(new),
        "annotations": {"io.containerd.image.name": "docker.io/library/bb:v25",
                        REF_NAME: "v25"}}]}
    members = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
               "index.json": json.dumps(index).encode(), **blobs}
    if with_manifest_json:
        members["manifest.json"] = json.dumps([{
            "Config": f"blobs/sha256/{manifest['config']['digest'][7:]}",
            "RepoTags": ["bb:v25"],
            "Layers": [f"blobs/sha256/{d['digest'][7:]}" for d in layers]}]).encode()
    return _tar_of(members, path)


@pytest.mark.parametrize("with_manifest_json", [True, False])
def test_docker25_save(store, busybox_image, tmp_path, with_manifest_json):
    archive = _docker25(busybox_image.oci_dir, tmp_path / "d25.tar", with_manifest_json)
    want = [sha256(busybox_image.layers[0].read_bytes())]
    for ref in ("", ":bb:v25", ":docker.io/library/bb:v25"):
        img = import_image(f"docker-archive:{archive}{ref}", store)
        assert img.diff_ids == want
        assert img.config_digest == busybox_image.manifest()["config"]["digest"]
    assert img.name in ("bb:v25", "docker.io/library/bb:v25")
    with pytest.raises(TagError, match="no such image 'bb:v24'"):
        import_image(f"docker-archive:{archive}:bb:v24", store)


def test_oci_archive(store, busybox_image, tmp_path):
    archive = tmp_path / "oci.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(busybox_image.oci_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(busybox_image.oci_dir)),
                    recursive=False)
    img = import_image(f"oci-archive:{archive}:latest", store)
    assert img.diff_ids == [sha256(busybox_image.layers[0].read_bytes())]
    with pytest.raises(TagError, match=rf"^no such tag 'v2' in oci-archive:{archive}; "
                                       r"tags: latest$"):
        import_image(f"oci-archive:{archive}:v2", store)


def test_compressed_docker_archive(store, busybox_image, tmp_path):
    packed = tmp_path / "saved.tar.gz"
    packed.write_bytes(gzip.compress(busybox_image.docker_archive.read_bytes(), 1))
    img = import_image(f"docker-archive:{packed}", store)
    assert img.diff_ids == [sha256(busybox_image.layers[0].read_bytes())]
    assert os.listdir(store.root / "tmp") == []


def test_truncated_docker_archive(store, busybox_image, tmp_path):
    cut = tmp_path / "cut.tar"
    data = busybox_image.docker_archive.read_bytes()
    cut.write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises((CorruptImageError, SourceError)):
        import_image(f"docker-archive:{cut}", store)
    assert stored(store) == []


def test_reimport_reads_only_the_json(store, busybox_image, tmp_path):
    layout = copy_layout(busybox_image.oci_dir, tmp_path / "again")
    first = import_image(f"oci:{layout}:latest", store)
    for layer in read_blob(layout, tagged(layout))["layers"]:
        blob_path(layout, layer["digest"]).unlink()
    assert import_image(f"oci:{layout}:latest", store).diff_ids == first.diff_ids


# -- sources and errors ----------------------------------------------------------------------

@pytest.mark.parametrize("text, source", [
    ("oci:/images/bb", Source("oci", Path("/images/bb"))),
    ("oci:/images/bb:latest", Source("oci", Path("/images/bb"), "latest")),
    ("oci:rel/dir:v1.2", Source("oci", Path("rel/dir"), "v1.2")),
    ("docker-archive:/x/save.tar", Source("docker-archive", Path("/x/save.tar"))),
    ("docker-archive:/x/save.tar:repo/name:tag",
     Source("docker-archive", Path("/x/save.tar"), "repo/name:tag")),
    ("docker-archive:s.tar:localhost:5000/a:b",
     Source("docker-archive", Path("s.tar"), "localhost:5000/a:b")),
    ("oci-archive:/x/o.tar:t", Source("oci-archive", Path("/x/o.tar"), "t")),
])
def test_parse_source(text, source):
    assert parse_source(text) == source


@pytest.mark.parametrize("text, message", [
    ("docker://busybox", "unsupported image source 'docker://busybox'"),
    ("busybox", "unsupported image source 'busybox'"),
    ("oci:", "'oci:' names no path"),
])
def test_parse_source_errors(text, message):
    with pytest.raises(SourceError, match=message):
        parse_source(text)


@pytest.mark.parametrize("ref, full", [
    ("busybox", "docker.io/library/busybox:latest"),
    ("user/app:1", "docker.io/user/app:1"),
    ("index.docker.io/library/bb:2", "docker.io/library/bb:2"),
    ("localhost:5000/a", "localhost:5000/a:latest"),
    ("quay.io/x/y:z", "quay.io/x/y:z"),
])
def test_normalize_reference(ref, full):
    assert normalize_reference(ref) == full


def test_missing_and_wrong_sources(store, tmp_path, busybox_image):
    with pytest.raises(SourceError, match=rf"^oci:{tmp_path}/none: no such directory$"):
        import_image(f"oci:{tmp_path}/none:t", store)
    with pytest.raises(SourceError, match="is not an OCI image layout"):
        import_image(f"oci:{tmp_path}", store)
    with pytest.raises(SourceError, match=rf"^docker-archive:{tmp_path}/none.tar: no such file$"):
        import_image(f"docker-archive:{tmp_path}/none.tar", store)
    with pytest.raises(SourceError, match="is not a tar archive"):
        import_image(f"docker-archive:{busybox_image.oci_dir / 'index.json'}", store)
    empty = _tar_of({"README": b"hi"}, tmp_path / "other.tar")
    with pytest.raises(SourceError, match="is not a docker archive"):
        import_image(f"docker-archive:{empty}", store)


def test_cli_shows_one_line_not_a_traceback(tmp_path, dockish_root):
    exe = Path(sys.executable).parent / "dockish"
    assert exe.exists(), f"dockish is not installed next to {sys.executable}"
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    p = subprocess.run([str(exe), "mount", f"oci:{tmp_path}/missing:t", str(mountpoint)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 125
    assert p.stderr == f"dockish: error: oci:{tmp_path}/missing: no such directory\n"
