"""Pulling from a real registry (Debian's docker-registry on 127.0.0.1):
images made by umoci and pushed by skopeo (OCI and Docker media types, a
zstd layer image, a multi-arch index) are pulled, managed with the image
commands, and mounted as exactly the tree ``umoci unpack`` makes. Hostile
registries (wrong digests, truncated blobs, oversized or malformed
manifests, escaping layers) give one clear error and leave the store as it
was; a proxy that drops connections and answers 500/429 is survived."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .registrybed import (
    FaultProxy,
    Registry,
    dockish,
    mounted,
    skopeo_push,
    store_listing,
    tree_differences,
    umoci_unpack,
)

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _multiarch_layout(target: Path, amd64: Path, arm64: Path) -> str:
    """An OCI layout whose tag ``multi`` is an index: linux/amd64 -> the first
    image, linux/arm64/v8 -> the second, plus an attestation-like entry."""
    shutil.copytree(amd64, target)
    for blob in (arm64 / "blobs" / "sha256").iterdir():
        shutil.copy(blob, target / "blobs" / "sha256" / blob.name)
    entries = []
    for layout, plat in ((amd64, {"os": "linux", "architecture": "amd64"}),
                         (arm64, {"os": "linux", "architecture": "arm64", "variant": "v8"})):
        desc = json.loads((layout / "index.json").read_text())["manifests"][0]
        entries.append({"mediaType": desc["mediaType"], "digest": desc["digest"],
                        "size": desc["size"], "platform": plat})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                        "manifests": entries}).encode()
    (target / "blobs" / "sha256" / _sha(index)[7:]).write_bytes(index)
    (target / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_INDEX, "digest": _sha(index), "size": len(index),
         "annotations": {REF_NAME: "multi"}}]}))
    return f"oci:{target}:multi"


def _hostile_layout(target: Path, members: list[tarfile.TarInfo]) -> str:
    tar = target.with_suffix(".tar")
    with tarfile.open(tar, "w", format=tarfile.PAX_FORMAT) as t:
        for m in members:
            t.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    subprocess.run(["umoci", "init", "--layout", str(target)], check=True)
    subprocess.run(["umoci", "new", "--image", f"{target}:t"], check=True)
    subprocess.run(["umoci", "raw", "add-layer", "--image", f"{target}:t", str(tar)],
                   check=True)
    return f"oci:{target}:t"


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", size: int = 0):
    m = tarfile.TarInfo(name)
    m.type, m.linkname, m.size, m.mode = kind, link, size, 0o644
    return m


@pytest.fixture(scope="module")
def reg(tmp_path_factory, busybox_image, layered_image):
    """A registry holding the test images under several names."""
    work = tmp_path_factory.mktemp("registry")
    r = Registry(work / "registry")
    names = {}
    try:
        names["busybox"] = skopeo_push(r, busybox_image.oci, "test/busybox:1")
        names["oci"] = skopeo_push(r, layered_image.oci, "test/layered:oci")
        names["docker"] = skopeo_push(r, layered_image.oci, "test/layered-docker:v2s2",
                                      "--format", "v2s2")
        names["zstd"] = skopeo_push(r, layered_image.zstd, "test/layered-zstd:zstd")
        names["multi"] = skopeo_push(r, _multiarch_layout(work / "multi",
                                                          busybox_image.oci_dir,
                                                          layered_image.oci_dir),
                                     "test/multi:1", "--all")
        names["escape"] = skopeo_push(r, _hostile_layout(work / "escape", [
            _member("ok", size=3), _member("../escape", size=4)]), "test/escape:1")
        names["hardlink-out"] = skopeo_push(r, _hostile_layout(work / "hl", [
            _member("etc"), _member("etc/x", tarfile.LNKTYPE, "../../../etc/passwd")]),
            "test/hardlink-out:1")
        r.names = names
        yield r
    finally:
        r.stop()


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    """No user config or credentials leak in; retries kept short."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"max-download-attempts": 3}))
    monkeypatch.setenv("DOCKISH_CONFIG", str(cfg))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)


@pytest.fixture(scope="module")
def layered_rootfs(tmp_path_factory, layered_image) -> Path:
    return umoci_unpack(f"{layered_image.oci_dir}:{layered_image.tag}",
                        tmp_path_factory.mktemp("umoci") / "bundle")


@pytest.mark.parametrize("form", ["oci", "docker", "zstd"])
def test_pulled_image_mounts_as_umoci_unpacks(reg, form, layered_rootfs, tmp_path):
    """OCI and Docker media types and zstd layers: the pulled image, mounted
    by name, is the tree umoci unpacks (owners, setuid, hardlinks, whiteouts,
    opaque dirs, xattrs)."""
    name = reg.names[form]
    p = dockish("pull", name)
    assert p.stdout.splitlines()[-1] == name if ":" in name.split("/")[-1] else True
    with mounted(name, tmp_path / "mnt") as mnt:
        assert tree_differences(mnt, layered_rootfs) == []
        assert (os.lstat(mnt / "usr/local/bin/suid-tool").st_mode & 0o7777) == 0o4755


def test_pull_output_shares_layers_and_is_idempotent(reg):
    p = dockish("pull", reg.names["busybox"])
    lines = p.stdout.splitlines()
    assert lines[0] == "1: Pulling from test/busybox"
    assert lines[1].endswith(": Pull complete")
    assert lines[2].startswith("Digest: sha256:")
    assert lines[3] == f"Status: Downloaded newer image for {reg.names['busybox']}"
    assert lines[4] == reg.names["busybox"]
    # the layered image shares busybox's layer: stored once, not fetched again
    p = dockish("pull", reg.names["oci"])
    assert sum(line.endswith("Already exists") for line in p.stdout.splitlines()) == 1
    assert sum(line.endswith("Pull complete") for line in p.stdout.splitlines()) == 5
    p = dockish("pull", reg.names["oci"])
    assert f"Status: Image is up to date for {reg.names['oci']}" in p.stdout
    assert dockish("pull", "-q", reg.names["oci"]).stdout == reg.names["oci"] + "\n"
    digest = [ln for ln in p.stdout.splitlines() if ln.startswith("Digest: ")][0][8:]
    by_digest = reg.names["oci"].rsplit(":", 1)[0] + "@" + digest
    dockish("pull", by_digest)
    assert dockish("inspect", "-f", "{{.Id}}", by_digest).stdout == \
        dockish("inspect", "-f", "{{.Id}}", reg.names["oci"]).stdout


def test_platform_selection(reg):
    name = reg.names["multi"]
    dockish("pull", name)
    default = json.loads(dockish("inspect", name).stdout)[0]
    assert len(default["RootFS"]["Layers"]) == 1              # linux/amd64 -> busybox
    dockish("pull", "--platform", "linux/arm64", name)
    arm = json.loads(dockish("inspect", name).stdout)[0]
    assert len(arm["RootFS"]["Layers"]) == 6                  # linux/arm64/v8 -> layered
    p = dockish("pull", "--platform", "linux/s390x", name, check=False)
    assert p.returncode == 125
    assert p.stderr.strip().splitlines() == [
        "dockish: error: test/multi:1 has no image for linux/s390x; it has linux/amd64, "
        "linux/arm64/v8".replace("test/multi:1", name)]


def test_run_platform(reg):
    """``run --platform``: an image of that platform runs; one of another is
    pulled for it and, when the registry has no such image, refused as
    Docker refuses it, before any container is made."""
    name = reg.names["busybox"]
    dockish("pull", "--platform", "linux/amd64", name)
    assert json.loads(dockish("inspect", name).stdout)[0]["Architecture"] == "amd64"
    p = dockish("run", "--rm", "--network", "none", "--platform", "linux/amd64", name,
                "echo", "ran")
    assert p.stdout == "ran\n"
    for pull in ("missing", "never"):
        p = dockish("run", "--rm", "--pull", pull, "--platform", "linux/arm64", name, "true",
                    check=False)
        assert p.returncode == 125, p.stderr
        assert p.stderr.strip().splitlines()[-1] == (
            f"dockish: error: image with reference {name} was found but does not match the "
            "specified platform: wanted linux/arm64, actual: linux/amd64")
    assert dockish("ps", "-aq").stdout == ""
    p = dockish("run", "--platform", "arm64", name, "true", check=False)
    assert p.returncode == 125 and "invalid platform 'arm64'" in p.stderr


def test_images_tag_rmi_inspect_history(reg, dockish_root):
    dockish("pull", reg.names["busybox"])
    dockish("pull", reg.names["oci"])
    dockish("tag", reg.names["busybox"], "mybox:1.0")
    table = dockish("images").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    repos = sorted((ln.split()[0], ln.split()[1]) for ln in table[1:])
    host = reg.host
    assert repos == sorted([(f"{host}/test/busybox", "1"), (f"{host}/test/layered", "oci"),
                            ("mybox", "1.0")])
    ids = dockish("images", "-q").stdout.split()
    assert len(ids) == 2 and all(len(i) == 12 for i in ids)
    rows = [json.loads(ln) for ln in dockish("images", "--format", "json", "mybox").stdout
            .splitlines()]
    assert [(r["Repository"], r["Tag"]) for r in rows] == [("mybox", "1.0")]
    digests = dockish("images", "--digests", f"{host}/test/busybox").stdout.splitlines()
    assert digests[0].split()[2] == "DIGEST" and digests[1].split()[2].startswith("sha256:")
    info = json.loads(dockish("inspect", "mybox:1.0").stdout)
    assert info[0]["RepoTags"] == [f"{host}/test/busybox:1", "mybox:1.0"]
    assert info[0]["Config"]["Cmd"] == ["sh"]
    assert info[0]["RootFS"]["Type"] == "layers"
    short = info[0]["Id"][7:19]
    hist = dockish("history", "mybox:1.0").stdout.splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"] and hist[1].startswith(short)
    # an image with two names: by ID it needs -f, by name it is untagged
    p = dockish("rmi", short, check=False)
    assert p.returncode == 1 and "must be forced" in p.stderr
    assert dockish("rmi", "mybox:1.0").stdout == "Untagged: mybox:1.0\n"
    p = dockish("rmi", short[:5])
    assert f"Deleted: {info[0]['Id']}" in p.stdout
    p = dockish("inspect", "mybox:1.0", check=False)
    assert p.returncode == 1 and p.stderr.strip() == "Error: No such object: mybox:1.0"
    # the busybox layer is still there: the layered image uses it
    with mounted(reg.names["oci"], dockish_root.parent / "mnt") as mnt:
        assert (mnt / "bin" / "busybox").is_file()
    dockish("rmi", reg.names["oci"])
    assert dockish("images", "-q").stdout == ""
    # all gone but the events journal, which records these removals
    assert [p for p in store_listing(dockish_root) if not p.startswith(("images/", "events.log"))
            or p.startswith("images/blobs") or p.startswith("images/records")] == []


def test_prune_and_system_df(reg, dockish_root):
    dockish("pull", reg.names["busybox"])
    dockish("pull", reg.names["oci"])
    dockish("tag", reg.names["busybox"], "keep:1")
    df = dockish("system", "df").stdout.splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert df[1].split()[:3] == ["Images", "2", "0"]
    dockish("rmi", reg.names["busybox"])                     # keep:1 still names it
    p = dockish("image", "prune", "-f")
    assert p.stdout.strip() == "Total reclaimed space: 0B"
    p = dockish("image", "prune", "-a", "-f")
    assert "Deleted Images:" in p.stdout and "untagged: keep:1" in p.stdout
    assert p.stdout.splitlines()[-1].startswith("Total reclaimed space: ")
    assert p.stdout.splitlines()[-1] != "Total reclaimed space: 0B"
    assert not (dockish_root / "layers" / "sha256").exists() or \
        os.listdir(dockish_root / "layers" / "sha256") == []


def test_invalid_and_unknown_references(reg):
    p = dockish("pull", "Not Valid", check=False)
    assert p.returncode == 125
    assert p.stderr == "dockish: error: invalid reference format: 'Not Valid'\n"
    p = dockish("pull", f"{reg.host}/no/such:1", check=False)
    assert p.returncode == 125
    assert p.stderr == f"dockish: error: {reg.host}/no/such:1 not found: manifest unknown\n"
    p = dockish("pull", "127.0.0.1:1/x:1", check=False)
    assert p.returncode == 125
    assert p.stderr.startswith("dockish: error: 127.0.0.1:1: cannot reach the registry")


# -- hostile registries ------------------------------------------------------------------

@pytest.fixture
def proxy(reg):
    p = FaultProxy(reg.host)
    yield p
    p.stop()


def _manifest_of(reg, name: str) -> dict:
    path = name.split("/", 1)[1]
    repo, tag = path.rsplit(":", 1)
    import urllib.request
    req = urllib.request.Request(f"http://{reg.host}/v2/{repo}/manifests/{tag}", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def _via(proxy, name: str) -> str:
    return proxy.host + "/" + name.split("/", 1)[1]


def _fails_cleanly(name: str, root: Path, *fragments: str) -> str:
    before = store_listing(root)
    p = dockish("pull", name, check=False)
    assert p.returncode == 125, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dockish: error: "), p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    assert store_listing(root) == before
    return lines[0]


def test_wrong_layer_digest_stores_nothing(reg, proxy, dockish_root):
    layer = _manifest_of(reg, reg.names["oci"])["layers"][4]
    proxy.faults.append((layer["digest"],
                         ("replace", lambda d: d[:100] + bytes(b ^ 1 for b in d[100:200])
                          + d[200:])))
    _fails_cleanly(_via(proxy, reg.names["oci"]), dockish_root, layer["digest"])


def test_wrong_manifest_digest(reg, proxy, dockish_root):
    name = reg.names["busybox"]
    digest = _sha(json.dumps(_manifest_of(reg, name), indent=2).encode())
    good = dockish("pull", "-q", name)                      # learn the real digest
    real = json.loads(dockish("inspect", name).stdout)[0]["RepoDigests"][0].split("@")[1]
    dockish("rmi", good.stdout.strip())
    assert digest                                            # (indent differs: unused)
    proxy.faults.append((real, ("replace", lambda d: d.replace(b'"schemaVersion"',
                                                               b'"schemaVersion" '))))
    _fails_cleanly(_via(proxy, name.rsplit(":", 1)[0] + "@" + real), dockish_root,
                   "does not match its digest")


def test_truncated_blob(reg, proxy, dockish_root):
    layer = _manifest_of(reg, reg.names["oci"])["layers"][4]
    proxy.faults.extend([(layer["digest"], "truncate")] * 10)
    _fails_cleanly(_via(proxy, reg.names["oci"]), dockish_root, "download failed")


def test_oversized_and_malformed_manifests(reg, proxy, dockish_root):
    name = _via(proxy, reg.names["busybox"])
    proxy.faults.append(("/manifests/", ("replace", b"{" + b" " * (5 << 20) + b"}")))
    _fails_cleanly(name, dockish_root, "larger than 4 MiB")
    proxy.faults.append(("/manifests/", ("replace", b'{"schemaVersion": 2, "layers": 7')))
    _fails_cleanly(name, dockish_root, "is not valid JSON")
    proxy.faults.append(("/manifests/", ("replace", json.dumps(
        {"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": []}).encode())))
    _fails_cleanly(name, dockish_root, "schema 1")


@pytest.mark.parametrize("which,fragment", [("escape", "escapes the root"),
                                            ("hardlink-out", "escapes the root")])
def test_escaping_layers_are_refused(reg, dockish_root, which, fragment):
    _fails_cleanly(reg.names[which], dockish_root, fragment)


def test_resume_and_retries(reg, proxy, layered_rootfs, tmp_path):
    manifest = _manifest_of(reg, reg.names["oci"])
    big, second = sorted(manifest["layers"], key=lambda d: d["size"])[-1:-3:-1]
    proxy.faults += [("/manifests/", 500), ("/manifests/", 429), (big["digest"], "drop"),
                     (manifest["config"]["digest"], 503),
                     (second["digest"], "drop"), (second["digest"], "norange")]
    name = _via(proxy, reg.names["oci"])
    dockish("pull", name)
    for layer in (big, second):                # resumed with Range (ignored for second)
        ranges = [rng for method, path, rng in proxy.log if layer["digest"] in path and rng]
        assert len(ranges) == 1 and ranges[0].startswith("bytes=") and ranges[0] != "bytes=0-"
    assert proxy.faults == []
    with mounted(name, tmp_path / "mnt") as mnt:
        assert tree_differences(mnt, layered_rootfs) == []


# -- concurrency ---------------------------------------------------------------------------

def test_parallel_pulls_and_prunes_keep_the_store_whole(reg, dockish_root, tmp_path):
    dockish("pull", reg.names["docker"])                     # shares busybox's layer
    jobs = [("pull", "-q", reg.names["busybox"]), ("pull", "-q", reg.names["oci"]),
            ("pull", "-q", reg.names["zstd"]), ("rmi", reg.names["docker"]),
            ("image", "prune", "-f"), ("pull", "-q", reg.names["multi"]),
            ("image", "prune", "-f"), ("pull", "-q", reg.names["busybox"])]
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda args: dockish(*args, check=False), jobs))
    assert [r.returncode for r in results] == [0] * len(jobs), \
        [r.stderr for r in results]
    for key in ("busybox", "oci", "zstd", "multi"):
        with mounted(reg.names[key], tmp_path / key) as mnt:
            assert (mnt / "bin" / "busybox").is_file()
    # no orphan and no missing blob
    from registry.store import ImageStore
    store = ImageStore(dockish_root)
    recs = store.records()
    used = {d for r in recs for d in r.diff_ids}
    stored = {"sha256:" + n for n in os.listdir(dockish_root / "layers" / "sha256")}
    assert used == stored
    blobs = {"sha256:" + n for n in os.listdir(dockish_root / "images" / "blobs" / "sha256")
             if not n.startswith(".")}
    assert blobs == {r.id for r in recs} | {m for r in recs for m in r.manifests}
    for r in recs:
        store.get_blob(r.id)
        for d in r.diff_ids:
            assert store.layers.load_index(d) is not None


# -- transport: mirrors and TLS ----------------------------------------------------------

def test_registry_mirrors_for_docker_io(reg, busybox_image, tmp_path, monkeypatch):
    """``registry-mirrors`` are tried first for docker.io names (a dead one is
    skipped); Docker Hub itself is never contacted here."""
    mirror = Registry(tmp_path / "mirror")
    try:
        skopeo_push(mirror, busybox_image.oci, "library/busybox:latest")
        cfg = tmp_path / "mirrors.json"
        cfg.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:1",
                                                        f"http://{mirror.host}"],
                                   "max-download-attempts": 1}))
        monkeypatch.setenv("DOCKISH_CONFIG", str(cfg))
        p = dockish("pull", "busybox")
        assert p.stdout.splitlines()[0] == "latest: Pulling from library/busybox"
        assert p.stdout.splitlines()[-1] == "docker.io/library/busybox:latest"
        assert dockish("images", "busybox").stdout.splitlines()[1].split()[:2] == \
            ["busybox", "latest"]
    finally:
        mirror.stop()


def test_tls_verification(busybox_image, tmp_path, monkeypatch):
    secure = Registry(tmp_path / "tls", tls=True)
    try:
        name = f"localhost:{secure.port}/tls/busybox:1"
        skopeo_push(secure, busybox_image.oci, "tls/busybox:1")
        monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "none.json"))
        # the self-signed certificate is refused where verification applies...
        p = dockish("pull", "--tls-verify=true", name, check=False)
        assert p.returncode == 125 and "TLS failed (certificate_verify_failed)" in p.stderr
        # ...and accepted when the user says so, per command or in the config
        dockish("pull", "--tls-verify=false", name)
        cfg = tmp_path / "insecure.json"
        cfg.write_text(json.dumps({"insecure-registries": [f"127.0.0.1:{secure.port}"]}))
        monkeypatch.setenv("DOCKISH_CONFIG", str(cfg))
        dockish("pull", f"127.0.0.1:{secure.port}/tls/busybox:1")
        # localhost is insecure by default: HTTPS unverified, as Docker does
        dockish("pull", name)
        # verified, with the registry's CA in certs.d next to the config file
        ca = tmp_path / "certs.d" / f"localhost:{secure.port}" / "ca.crt"
        ca.parent.mkdir(parents=True)
        shutil.copy(secure.cert, ca)
        monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "none.json"))
        dockish("rmi", name)
        dockish("pull", "--tls-verify=true", name)
    finally:
        secure.stop()


def test_pull_all_tags(reg, busybox_image, layered_image):
    for tag, img in (("a", busybox_image), ("b", layered_image), ("c", busybox_image)):
        skopeo_push(reg, img.oci, f"test/alltags:{tag}")
    p = dockish("pull", "-a", f"{reg.host}/test/alltags")
    assert p.stdout.splitlines()[-1] == f"{reg.host}/test/alltags"
    rows = dockish("images", f"{reg.host}/test/alltags").stdout.splitlines()[1:]
    assert sorted(r.split()[1] for r in rows) == ["a", "b", "c"]
    p = dockish("pull", "-a", f"{reg.host}/test/alltags:a", check=False)
    assert p.returncode == 125 and "tag can't be used with --all-tags" in p.stderr
