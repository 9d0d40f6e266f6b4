"""The image store on its own: names and IDs, atomic records, GC that frees
exactly what no image and no container references, and the lock that keeps
GC away from layers of an image still being stored."""
from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import threading
import time

import pytest

from registry.store import ImageStore, NoSuchImage
from runner.runtime.container import container_refs

from .registrybed import dockish


def _layer(store: ImageStore, name: str) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(name)
        data = name.encode() * 100
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return store.layers.import_blob(buf)


def _image(store: ImageStore, diff_ids: list[str], tag: str | None = None,
           created: str = "2024-01-01T00:00:00Z") -> str:
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": created,
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    with store.writing():
        rec = store.add_image(config)
    if tag:
        store.tag(tag, rec.id)
    return rec.id


def _container_config(**fields) -> dict:
    """A container's config.json as the runner writes it."""
    from dataclasses import asdict

    from runner.runtime.container import ContainerConfig
    return asdict(ContainerConfig(argv=["sh"], env=[], workdir="/", user="", hostname="h",
                                  **fields))


@pytest.fixture
def store(dockish_root) -> ImageStore:
    return ImageStore(dockish_root)


def test_names_ids_and_prefixes(store):
    base, top = _layer(store, "base"), _layer(store, "top")
    a = _image(store, [base], "docker.io/library/a:latest")
    b = _image(store, [base, top], "localhost:5000/b:1")
    assert store.find("a")[0].id == a
    assert store.find("a:latest") == (store.record(a), "docker.io/library/a:latest")
    assert store.find("docker.io/library/a")[0].id == a
    assert store.find("localhost:5000/b:1")[0].id == b
    assert store.find(b)[0].id == b
    assert store.find(b[7:19])[0].id == b
    common = os.path.commonprefix([a[7:], b[7:]])
    with pytest.raises(NoSuchImage):
        store.find(common + "z" if common else "zzzz")
    with pytest.raises(NoSuchImage, match="No such image: nope"):
        store.find("nope")
    # a tag that looks like an ID prefix names the tag
    store.tag("docker.io/library/" + b[7:13] + ":latest", a)
    assert store.find(b[7:13])[0].id == a


def test_gc_frees_exactly_the_unreferenced(store, dockish_root):
    base, mid, top = _layer(store, "base"), _layer(store, "mid"), _layer(store, "top")
    a = _image(store, [base, mid], "a:1")
    _image(store, [base, top], "b:1")
    assert store.gc() == 0                                  # everything is referenced
    store.remove_record(a)
    freed = store.gc()
    assert freed >= store.layer_size(base)                  # mid's tar and a's config
    assert store.layers.has(base) and store.layers.has(top) and not store.layers.has(mid)
    blobs = set(os.listdir(dockish_root / "images" / "blobs" / "sha256"))
    assert a[7:] not in blobs
    # a container's layers (image layers and its init layer) are kept
    init = _layer(store, "init")
    ctr = dockish_root / "containers" / ("c" * 64)
    ctr.mkdir(parents=True)
    (ctr / "config.json").write_text(json.dumps(_container_config(
        id="c" * 64, name="web", image="x", image_id="sha256:" + "0" * 64, diff_ids=[mid],
        init_layer=init)))
    mid = _layer(store, "mid")
    store.gc()                       # the store alone knows no containers
    assert not store.layers.has(mid) and not store.layers.has(init)
    # the runner tells it what its containers keep (registry never imports runner)
    from runner.engine import Engine
    init, mid = _layer(store, "init"), _layer(store, "mid")
    kept = Engine(dockish_root).image_store()
    kept.gc()
    assert kept.layers.has(mid) and kept.layers.has(init)
    assert container_refs(dockish_root)[0] == {"sha256:" + "0" * 64: ["web"]}
    # extra roots a caller passes are kept too
    other = _layer(store, "other")
    store.gc(extra_roots={other})
    assert store.layers.has(other)


def test_gc_waits_for_writers(store):
    layer = _layer(store, "x")
    done = threading.Event()
    with store.writing():
        t = threading.Thread(target=lambda: (store.gc(), done.set()))
        t.start()
        time.sleep(0.3)
        assert not done.is_set()                             # blocked by the writer
        config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [layer]}}).encode()
        store.add_image(config)
    t.join(10)
    assert done.is_set() and store.layers.has(layer)


def test_prune_decides_nothing_while_a_writer_holds_the_store(store):
    """A prune started while a pull holds the store waits for it, then sees
    the image named: it never takes a record between its writing and its
    tag (the tag would then fail: "No such image"), nor a layer."""
    layer = _layer(store, "fresh")
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [layer]}}).encode()
    with store.writing():
        rec = store.add_image(config)                    # recorded, not named yet
        prune = subprocess.Popen([*_dockish_argv(), "image", "prune", "-f"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert prune.poll() is None                      # it waits for the writer
        store.tag("docker.io/library/fresh:1", rec.id)   # fails if the prune took it
    out, err = prune.communicate(timeout=60)
    assert prune.returncode == 0, err
    assert out.strip() == "Total reclaimed space: 0B"
    assert store.find("fresh:1")[0].id == rec.id and store.layers.has(layer)
    # named in the same hold as recorded: a pull's tag never finds its record gone
    other = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-02-01",
                        "rootfs": {"type": "layers", "diff_ids": [layer]}}).encode()
    with store.writing():
        rec2 = store.add_image(other, tags=["docker.io/library/fresh:2"])
    assert store.find("fresh:2")[0].id == rec2.id
    assert store.names_of(rec2.id) == ["docker.io/library/fresh:2"]


def _dockish_argv() -> list[str]:
    import sys

    from .registrybed import BOOT
    return [sys.executable, "-c", BOOT]


def test_records_survive_a_reader_during_writes(store):
    """Records and the tag file are replaced atomically: a reader never sees
    a half-written file."""
    layer = _layer(store, "x")
    ids = [_image(store, [layer], f"img:{i}", created=f"2024-01-0{i + 1}T00:00:00Z")
           for i in range(3)]
    stop = threading.Event()
    errors = []

    def read():
        while not stop.is_set():
            try:
                store.tags()
                store.records()
            except Exception as e:                           # noqa: BLE001 — recorded
                errors.append(e)
    t = threading.Thread(target=read)
    t.start()
    for i in range(200):
        store.tag(f"busy:{i % 7}", ids[i % 3])
    stop.set()
    t.join()
    assert errors == []


def test_image_used_by_a_container(store, dockish_root):
    layer = _layer(store, "base")
    image_id = _image(store, [layer], "docker.io/library/used:1")
    ctr = dockish_root / "containers" / ("d" * 64)
    ctr.mkdir(parents=True)
    (ctr / "config.json").write_text(json.dumps(_container_config(
        id="d" * 64, name="box", image="used:1", image_id=image_id, diff_ids=[layer],
        init_layer=layer)))
    p = dockish("rmi", "used:1", check=False)
    assert p.returncode == 1
    assert p.stderr == ('Error response from daemon: conflict: unable to remove repository '
                        'reference "used:1" (must force) - container dddddddddddd is using its '
                        f'referenced image {image_id[7:19]}\n')
    p = dockish("rmi", image_id[7:19], check=False)
    assert p.returncode == 1 and p.stderr == (
        f"Error response from daemon: conflict: unable to delete {image_id[7:19]} (must be "
        "forced) - image is being used by stopped container dddddddddddd\n")
    p = dockish("image", "prune", "-a", "-f")
    assert p.stdout.strip() == "Total reclaimed space: 0B"
    df = dockish("system", "df").stdout.splitlines()
    assert df[1].split()[:3] == ["Images", "1", "1"]
    p = dockish("rmi", "-f", "used:1")
    assert f"Deleted: {image_id}" in p.stdout
    assert store.layers.has(layer)                           # the container keeps it


def test_pull_progress_on_a_terminal(tmp_path):
    """On a TTY, lines are redrawn in place with bars (script(1) gives one)."""
    from .images import ImageFactory
    from .registrybed import BOOT, Registry, skopeo_push
    img = ImageFactory(tmp_path / "img")["busybox"]
    reg = Registry(tmp_path / "reg")
    try:
        name = skopeo_push(reg, img.oci, "tty/busybox:1")
        import shlex
        import sys
        cmd = " ".join(shlex.quote(c) for c in [sys.executable, "-c", BOOT, "pull", name])
        p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                           timeout=60)
        out = p.stdout.decode()
        assert p.returncode == 0, out
        assert "\x1b[2K" in out and ": Pull complete" in out
        assert out.rstrip().splitlines()[-1].strip() == name
    finally:
        reg.stop()


def test_export_and_inspect_with_the_runner(busybox_image, tmp_path):
    """With the container commands registered too: ``export`` writes a
    container's merged tree (its writes included), ``inspect`` serves both
    containers and images."""
    import sys
    import tarfile as tf
    boot = ("import sys; from runner.cli import main; "
            "from runner.cli.containers import register as containers; "
            "from runner.cli.images import register; containers(main); register(main); "
            "sys.argv[0] = 'dockish'; main()")

    def run(*args):
        p = subprocess.run([sys.executable, "-c", boot, *map(str, args)], capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout
    run("load", "-i", busybox_image.docker_archive)
    cid = run("create", "--name", "exp", "dockish-test/busybox", "sh", "-c",
              "echo hi > /newfile").strip()
    run("start", "-a", "exp")
    run("export", "-o", tmp_path / "exp.tar", "exp")
    with tf.open(tmp_path / "exp.tar") as t:
        names = t.getnames()
        assert "newfile" in names and "bin/busybox" in names
        assert t.extractfile("newfile").read() == b"hi\n"
    image_id = json.loads(run("image", "inspect", "dockish-test/busybox"))[0]["Id"]
    assert run("inspect", "-f", "{{.Id}}", "exp", "dockish-test/busybox").split() == \
        [cid, image_id]
    run("rm", "exp")
