"""The layer store: importing plain, gzip and zstd layer blobs, digests,
re-imports, concurrent importers, a full disk and leftovers of killed imports."""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time

import msgpack
import pytest

from unionfs.entry import INDEX_VERSION, OFFSET, PATH, SIZE
from unionfs.layers import CompressionError, DigestError, LayerStore, LayerStoreError, default_root
from unionfs.tarindex import LayerError, index_stream


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed (Debian package {package})")
    return path


def compress(data: bytes, how: str) -> bytes:
    """The layer blob as the real compressors write it."""
    if how == "none":
        return data
    cmd = {"gzip": [tool("gzip", "gzip"), "-c"], "zstd": [tool("zstd", "zstd"), "-q", "-c"]}[how]
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(ti, io.BytesIO(data))
    return out.getvalue()


FILES = {"etc/hostname": b"box\n", "bin/tool": os.urandom(300_000), "empty": b""}


@pytest.fixture
def store(tmp_path) -> LayerStore:
    return LayerStore(tmp_path / "store")


def stored_layers(store: LayerStore) -> list[str]:
    folder = store.root / "layers" / "sha256"
    return sorted(os.listdir(folder)) if folder.exists() else []


def leftovers(store: LayerStore) -> list[str]:
    folder = store.root / "tmp"
    return sorted(os.listdir(folder)) if folder.exists() else []


@pytest.mark.parametrize("how", ["none", "gzip", "zstd"])
def test_import_stores_the_uncompressed_tar_and_its_index(store, how):
    tar = layer_tar(FILES)
    blob = compress(tar, how)
    diff_id = store.import_blob(io.BytesIO(blob), expected_digest=sha256(blob),
                                expected_diff_id=sha256(tar))
    assert diff_id == sha256(tar)
    hexd = diff_id.split(":")[1]
    assert stored_layers(store) == [hexd]
    assert store.has(diff_id)
    assert store.tar_path(diff_id) == store.root / "layers" / "sha256" / hexd / "layer.tar"
    assert store.tar_path(diff_id).read_bytes() == tar
    raw = msgpack.unpackb((store.tar_path(diff_id).parent / "index.msgpack").read_bytes())
    assert raw["version"] == INDEX_VERSION
    entries = store.load_index(diff_id)
    assert [list(e) for e in entries] == index_stream(io.BytesIO(tar))
    fd = os.open(store.tar_path(diff_id), os.O_RDONLY)
    try:
        for e in entries:
            assert os.pread(fd, e[SIZE], e[OFFSET]) == FILES[e[PATH].decode()]
    finally:
        os.close(fd)
    if how != "none":
        note = store.root / "layers" / "blobs" / "sha256" / sha256(blob).split(":")[1]
        assert note.read_text().strip() == diff_id
    assert leftovers(store) == []


def test_all_compressions_give_one_layer(store):
    tar = layer_tar(FILES)
    ids = {store.import_blob(io.BytesIO(compress(tar, how))) for how in ("none", "gzip", "zstd")}
    assert ids == {sha256(tar)} and len(stored_layers(store)) == 1


def test_explicit_compression_and_multi_member_gzip(store, tmp_path):
    tar = layer_tar(FILES)
    two_members = compress(tar[:5000], "gzip") + compress(tar[5000:], "gzip")
    assert store.import_blob(io.BytesIO(two_members), compression="gzip") == sha256(tar)
    path = tmp_path / "layer.tar.zst"
    path.write_bytes(compress(tar, "zstd"))
    assert store.import_tar_path(path, compression="zstd") == sha256(tar)


def test_reimporting_a_known_blob_does_not_read_it(store):
    tar = layer_tar(FILES)
    blob = compress(tar, "gzip")
    first = store.import_blob(io.BytesIO(blob), expected_digest=sha256(blob))
    # the same digest again, with bytes that would fail every check if read
    junk = io.BytesIO(b"not the blob at all")
    assert store.import_blob(junk, expected_digest=sha256(blob)) == first
    assert junk.tell() == 0
    assert store.import_blob(junk, expected_diff_id=first) == first
    assert junk.tell() == 0


def test_blob_digest_mismatch_stores_nothing(store):
    blob = compress(layer_tar(FILES), "gzip")
    wrong = sha256(b"something else")
    with pytest.raises(DigestError, match=f"blob digest mismatch: expected {wrong}, got "
                                          f"{sha256(blob)}"):
        store.import_blob(io.BytesIO(blob), expected_digest=wrong)
    assert stored_layers(store) == [] and leftovers(store) == []


def test_diff_id_mismatch_stores_nothing(store):
    tar = layer_tar(FILES)
    wrong = sha256(b"other")
    with pytest.raises(DigestError, match=f"layer diff_id mismatch: expected {wrong}, "
                                          f"got {sha256(tar)}"):
        store.import_blob(io.BytesIO(compress(tar, "zstd")), expected_diff_id=wrong)
    assert stored_layers(store) == [] and leftovers(store) == []


def test_known_blob_with_another_diff_id_is_refused(store):
    tar = layer_tar(FILES)
    blob = compress(tar, "gzip")
    store.import_blob(io.BytesIO(blob), expected_digest=sha256(blob))
    with pytest.raises(DigestError, match="holds layer"):
        store.import_blob(io.BytesIO(blob), expected_digest=sha256(blob),
                          expected_diff_id=sha256(b"x"))


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_gzip_is_a_clear_error(store, damage):
    blob = bytearray(compress(layer_tar(FILES), "gzip"))
    if damage == "truncate":
        del blob[len(blob) // 2:]
    else:
        blob[len(blob) // 2] ^= 0xFF
    with pytest.raises((CompressionError, LayerError), match="gzip|truncated layer"):
        store.import_blob(io.BytesIO(bytes(blob)))
    assert stored_layers(store) == [] and leftovers(store) == []


def test_truncated_zstd_is_caught_by_the_tar_check(store):
    blob = compress(layer_tar(FILES), "zstd")
    with pytest.raises(LayerError, match="^truncated layer"):
        store.import_blob(io.BytesIO(blob[:len(blob) // 2]))
    assert stored_layers(store) == [] and leftovers(store) == []


def test_hostile_layer_is_refused_and_nothing_stored(store):
    tar = layer_tar({"../escape": b"x"})
    with pytest.raises(LayerError, match="layer entry escapes the root: ../escape"):
        store.import_blob(io.BytesIO(compress(tar, "gzip")))
    assert stored_layers(store) == [] and leftovers(store) == []


def test_bad_arguments(store):
    with pytest.raises(LayerStoreError, match="unknown compression 'lz4'"):
        store.import_blob(io.BytesIO(b""), compression="lz4")
    with pytest.raises(DigestError, match="invalid digest 'sha256:../../etc'"):
        store.import_blob(io.BytesIO(b""), expected_digest="sha256:../../etc")
    with pytest.raises(DigestError, match="invalid digest"):
        store.has("md5:abc")


def test_missing_and_corrupt_layers_are_reported(store):
    missing = sha256(b"never stored")
    assert not store.has(missing)
    with pytest.raises(LayerStoreError, match=f"layer {missing} is not in the store"):
        store.tar_path(missing)
    with pytest.raises(LayerStoreError, match=f"layer {missing} is not in the store"):
        store.load_index(missing)
    diff_id = store.import_blob(io.BytesIO(layer_tar(FILES)))
    index = store.tar_path(diff_id).parent / "index.msgpack"
    index.write_bytes(msgpack.packb({"version": 99, "entries": []}))
    with pytest.raises(LayerStoreError, match="has version 99"):
        store.load_index(diff_id)
    index.write_bytes(b"\xc1garbage")
    with pytest.raises(LayerStoreError, match="is corrupt"):
        store.load_index(diff_id)


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKISH_ROOT", str(tmp_path / "explicit"))
    assert default_root() == tmp_path / "explicit"
    monkeypatch.delenv("DOCKISH_ROOT")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_root() == tmp_path / "data" / "dockish"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".local" / "share" / "dockish"


def test_loading_a_20k_entry_index_takes_milliseconds(store):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(200):
            d = tarfile.TarInfo(f"dir{i:03d}")
            d.type, d.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(d)
            for j in range(100):
                ti = tarfile.TarInfo(f"dir{i:03d}/file{j:03d}")
                ti.size = 3
                tar.addfile(ti, io.BytesIO(b"abc"))
    diff_id = store.import_blob(io.BytesIO(out.getvalue()))
    store.load_index(diff_id)
    start = time.perf_counter()
    entries = store.load_index(diff_id)
    elapsed = time.perf_counter() - start
    assert len(entries) == 20_200
    assert elapsed < 0.25, f"loading 20k entries took {elapsed * 1000:.0f} ms"


def _python(code: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, **kw)


IMPORT = """
    import sys
    from pathlib import Path
    from unionfs.layers import LayerStore, LayerStoreError
    try:
        print(LayerStore(Path(sys.argv[1])).import_tar_path(sys.argv[2]))
    except LayerStoreError as e:
        print("error:", e)
    print("tmp:", sorted(p.name for p in (Path(sys.argv[1]) / "tmp").iterdir()))
"""


def test_concurrent_imports_of_one_layer_store_it_once(store, tmp_path):
    tar = layer_tar({f"f{i}": os.urandom(200_000) for i in range(60)})
    blob = tmp_path / "layer.tar.gz"
    blob.write_bytes(compress(tar, "gzip"))
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(IMPORT), str(store.root),
                               str(blob)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    for (out, err), p in zip(outs, procs, strict=True):
        assert p.returncode == 0, err
        assert out.splitlines()[0] == sha256(tar)
    assert stored_layers(store) == [sha256(tar).split(":")[1]]
    assert leftovers(store) == []
    assert store.tar_path(sha256(tar)).read_bytes() == tar


def test_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path):
    """A 1 MiB tmpfs (mounted in a user namespace) cannot hold a 3 MiB layer."""
    tool("unshare", "util-linux")
    blob = tmp_path / "layer.tar.gz"
    blob.write_bytes(compress(layer_tar({"big": os.urandom(3 << 20)}), "gzip"))
    small = tmp_path / "small"
    small.mkdir()
    p = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$1" && shift && '
         'exec "$@"', "sh", str(small), sys.executable, "-c", textwrap.dedent(IMPORT),
         str(small / "store"), str(blob)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        f"error: no space left on the device of {small / 'store'} while storing a layer",
        "tmp: []"]


def test_leftovers_of_killed_imports_are_swept(store):
    tool("flock", "util-linux")
    dead = store.root / "tmp" / "import-dead"
    (dead / "sub").mkdir(parents=True)
    (dead / "layer.tar").write_bytes(b"partial")
    live = store.root / "tmp" / "import-live"
    live.mkdir()
    old = time.time() - 3600
    for path in (dead, live):
        os.utime(path, (old, old))
    holder = subprocess.Popen(["flock", str(live), "sleep", "60"])
    try:
        deadline = time.time() + 10
        while subprocess.run(["flock", "-n", str(live), "true"]).returncode == 0:
            assert time.time() < deadline, "flock never took the lock"
            time.sleep(0.05)
        store.import_blob(io.BytesIO(layer_tar(FILES)))
        assert leftovers(store) == ["import-live"]
    finally:
        holder.kill()
        holder.wait()


def test_decompression_memory_is_bounded(tmp_path):
    """A tiny blob that inflates to 512 MiB is streamed, never held whole."""
    blob = tmp_path / "zeros.tar.gz"
    header = tarfile.TarInfo("zeros")
    header.size = 512 << 20
    with open(blob, "wb") as raw:
        gz = subprocess.Popen([tool("gzip", "gzip"), "-1", "-c"], stdin=subprocess.PIPE,
                              stdout=raw)
        gz.stdin.write(header.tobuf(tarfile.GNU_FORMAT))
        zeros = bytes(1 << 20)
        for _ in range(512):
            gz.stdin.write(zeros)
        gz.stdin.write(bytes(1024))
        gz.stdin.close()
        assert gz.wait() == 0
    code = """
        import resource, sys
        from pathlib import Path
        from unionfs.layers import LayerStore
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        LayerStore(Path(sys.argv[1])).import_tar_path(sys.argv[2])
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """
    try:
        p = _python(code, str(tmp_path / "store"), str(blob), timeout=300)
    finally:
        shutil.rmtree(tmp_path / "store", ignore_errors=True)      # 512 MiB
    assert p.returncode == 0, p.stderr
    grew_kib = int(p.stdout)
    assert grew_kib < 64 << 10, f"the import grew by {grew_kib >> 10} MiB"
