"""What dockish pushes and saves, independent tools read back: skopeo copies
it out of a real registry (or out of a ``dockish save`` archive) and umoci
unpacks it to the tree ``dockish mount`` shows. ``dockish load`` reads
skopeo's docker-archive; ``dockish import`` makes an image of a rootfs tar."""
from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from .registrybed import (
    FaultProxy,
    Registry,
    dockish,
    mounted,
    skopeo_copy,
    skopeo_push,
    tree_differences,
    umoci_unpack,
)


@pytest.fixture(scope="module")
def regs(tmp_path_factory, layered_image):
    work = tmp_path_factory.mktemp("push")
    a, b = Registry(work / "a"), Registry(work / "b")
    try:
        a.layered = skopeo_push(a, layered_image.oci, "src/layered:1")
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    monkeypatch.setenv("DOCKISH_CONFIG", str(cfg))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)


def _unpack_from_registry(ref: str, work: Path) -> Path:
    """skopeo copies ``ref`` into an OCI layout, umoci unpacks it."""
    work.mkdir(parents=True, exist_ok=True)
    skopeo_copy(f"docker://{ref}", f"oci:{work / 'layout'}:t")
    return umoci_unpack(f"{work / 'layout'}:t", work / "bundle")


def test_push_to_another_registry_reads_back(regs, tmp_path):
    """No blob there and no repo to mount from: layers are recompressed and
    uploaded; skopeo + umoci see the tree dockish mounts."""
    a, b = regs
    dockish("pull", a.layered)
    target = f"{b.host}/dst/layered:2"
    p = dockish("push", a.layered, target)
    lines = p.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{b.host}/dst/layered]"
    assert sum(ln.endswith(": Pushed") for ln in lines) == 6
    assert lines[-1].startswith("2: digest: sha256:") and " size: " in lines[-1]
    rootfs = _unpack_from_registry(target, tmp_path / "out")
    with mounted(a.layered, tmp_path / "mnt") as mnt:
        assert tree_differences(mnt, rootfs) == []
    # pushed again: every blob is already there
    p = dockish("push", a.layered, target)
    assert sum(ln.endswith(": Layer already exists") for ln in p.stdout.splitlines()) == 6


def test_push_within_a_registry_mounts_and_keeps_the_digest(regs):
    a, _ = regs
    p = dockish("pull", a.layered)
    digest = [ln for ln in p.stdout.splitlines() if ln.startswith("Digest: ")][0][8:]
    p = dockish("push", a.layered, f"{a.host}/other/copy:1")
    assert sum(ln.endswith(": Mounted from another repository")
               for ln in p.stdout.splitlines()) == 6
    assert p.stdout.splitlines()[-1].startswith(f"1: digest: {digest} ")


def test_chunked_upload_and_retries(regs, dockish_root, monkeypatch, tmp_path):
    """Blobs over the monolithic limit go up in PATCH chunks; a 500 on the
    way is retried."""
    from registry import push as push_mod
    from registry.client import Options
    from registry.pull import pull
    from registry.store import ImageStore
    a, b = regs
    store = ImageStore(dockish_root)
    pull(a.layered, store, Options())
    monkeypatch.setattr(push_mod, "MONOLITHIC_MAX", 256 << 10)
    monkeypatch.setattr(push_mod, "CHUNK", 256 << 10)
    proxy = FaultProxy(b.host)
    try:
        proxy.faults.append(("/manifests/", 500))
        target = f"{proxy.host}/chunked/layered:1"
        push_mod.push(target, store, Options(backoff=0.01), source=a.layered)
        patches = [path for method, path, _ in proxy.log if method == "PATCH"]
        assert len(patches) > 4
        assert proxy.faults == []
    finally:
        proxy.stop()
    rootfs = _unpack_from_registry(f"{b.host}/chunked/layered:1", tmp_path / "out")
    with mounted(a.layered, tmp_path / "mnt") as mnt:
        assert tree_differences(mnt, rootfs) == []


def test_load_skopeo_archive_then_push(regs, layered_image, tmp_path):
    _, b = regs
    p = dockish("load", "-i", layered_image.docker_archive)
    assert p.stdout == "Loaded image: dockish-test/layered:latest\n"
    target = f"{b.host}/loaded/layered:1"
    dockish("tag", "dockish-test/layered", target)
    dockish("push", "-q", target)
    rootfs = _unpack_from_registry(target, tmp_path / "out")
    with mounted("dockish-test/layered", tmp_path / "mnt") as mnt:
        assert tree_differences(mnt, rootfs) == []


def test_load_from_stdin(layered_image):
    data = Path(layered_image.docker_archive).read_bytes()
    p = dockish("load", input=data)
    assert p.stdout == "Loaded image: dockish-test/layered:latest\n"


def test_save_docker_archive_is_read_by_skopeo(regs, tmp_path):
    a, _ = regs
    dockish("pull", a.layered)
    dockish("tag", a.layered, "saved/layered:v1")
    archive = tmp_path / "saved.tar"
    dockish("save", "-o", archive, "saved/layered:v1")
    skopeo_copy(f"docker-archive:{archive}:saved/layered:v1", f"oci:{tmp_path / 'lay'}:t")
    rootfs = umoci_unpack(f"{tmp_path / 'lay'}:t", tmp_path / "bundle")
    with mounted("saved/layered:v1", tmp_path / "mnt") as mnt:
        assert tree_differences(mnt, rootfs) == []
    # and loads back, in a store that lost it
    dockish("rmi", "saved/layered:v1", a.layered)
    assert dockish("load", "-i", archive).stdout == "Loaded image: saved/layered:v1\n"


def test_save_oci_layout(regs, tmp_path):
    a, _ = regs
    dockish("pull", a.layered)
    archive = tmp_path / "oci.tar"
    with open(archive, "wb") as out:
        subprocess.run([*_boot(), "save", "--format", "oci", a.layered], stdout=out,
                       check=True)
    layout = tmp_path / "layout"
    with tarfile.open(archive) as t:
        t.extractall(layout)
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "1"
    rootfs = umoci_unpack(f"{layout}:1", tmp_path / "bundle")
    with mounted(a.layered, tmp_path / "mnt") as mnt:
        assert tree_differences(mnt, rootfs) == []
    p = dockish("save", a.layered, check=False)           # stdout is a pipe here: fine
    assert p.returncode == 0


def _boot() -> list[str]:
    import sys

    from .registrybed import BOOT
    return [sys.executable, "-c", BOOT]


def test_import_rootfs_tarball(tmp_path):
    tar = tmp_path / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        for name, data in (("etc/hostname", b"imported\n"), ("bin/tool", b"#!/bin/sh\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            t.addfile(info, io.BytesIO(data))
    p = dockish("import", tar, "imported:1")
    image_id = p.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    info = json.loads(dockish("inspect", "imported:1").stdout)[0]
    assert info["Id"] == image_id and len(info["RootFS"]["Layers"]) == 1
    with mounted("imported:1", tmp_path / "mnt") as mnt:
        assert (mnt / "etc" / "hostname").read_bytes() == b"imported\n"
    p = dockish("import", tmp_path / "missing.tar", check=False)
    assert p.returncode == 125 and p.stderr.startswith("dockish: error: ")


def test_import_from_a_url_with_changes_and_image_filters(tmp_path):
    """`import URL NAME --change ...` streams a gzipped rootfs from a web
    server; `images --filter before/since/label` select by age and label."""
    import gzip
    import time

    from .registrybed import serve_files
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("etc/motd")
        info.size = 6
        t.addfile(info, io.BytesIO(b"hello\n"))
    with serve_files({"rootfs.tar.gz": gzip.compress(buf.getvalue())}) as url:
        dockish("import", "-c", 'CMD ["cat", "/etc/motd"]', "-c", "ENV A=1",
                "-c", "LABEL tier=base", f"{url}/rootfs.tar.gz", "old:1")
        time.sleep(1.1)                      # created times a second apart
        dockish("import", "-c", "LABEL tier=top", f"{url}/rootfs.tar.gz", "new:1")
        p = dockish("import", f"{url}/missing.tar", check=False)
        assert p.returncode == 125 and "HTTP 404" in p.stderr
        p = dockish("import", "-c", "RUN true", f"{url}/rootfs.tar.gz", check=False)
        assert p.returncode == 125 and "not a valid change command" in p.stderr
    conf = json.loads(dockish("inspect", "old:1").stdout)[0]["Config"]
    assert conf["Cmd"] == ["cat", "/etc/motd"] and conf["Env"] == ["A=1"]
    with mounted("old:1", tmp_path / "mnt") as mnt:
        assert (mnt / "etc" / "motd").read_bytes() == b"hello\n"

    def names(*filters: str) -> list[str]:
        args = [x for f in filters for x in ("--filter", f)]
        return dockish("images", *args, "--format", "{{.Repository}}").stdout.split()
    assert names("before=new:1") == ["old"] and names("since=old:1") == ["new"]
    assert names("label=tier=top") == ["new"] and sorted(names("label=tier")) == ["new", "old"]
    p = dockish("images", "--filter", "bogus=1", check=False)
    assert (p.returncode, p.stderr) == (1, "Error response from daemon: invalid filter 'bogus'\n")
