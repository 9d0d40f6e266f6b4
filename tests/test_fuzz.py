"""Fuzzing the parsers that read what others wrote: the tar index builder,
the layer importer, OCI layouts (index, manifest, config) and image
references. Whatever the input, each ends in a result or its own error
type, quickly: never another exception, never a hang, never a half-stored
layer. Failures hypothesis found are kept below as explicit examples.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from registry import reference
from registry.archive import ImageError, import_image
from registry.manifest import choose, decode
from runner.builder.dockerfile import DockerfileError, parse_text
from unionfs.layers import LayerStore, LayerStoreError
from unionfs.tarindex import LayerError, TarIndexer, index_stream

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`

# DOCKISH_FUZZ_EXAMPLES: examples per fuzz test (scripts/soak runs thousands)
_EXAMPLES = {"max_examples": int(os.environ["DOCKISH_FUZZ_EXAMPLES"])} \
    if os.environ.get("DOCKISH_FUZZ_EXAMPLES") else {}
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                        HealthCheck.too_slow], **_EXAMPLES)
SLOW = 2.0        # seconds one small input may take before it counts as a hang


def _seed_tar() -> bytes:
    """A small tar using every feature the indexer parses."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, extra in [("d", tarfile.DIRTYPE, {}), ("d/f", tarfile.REGTYPE, {}),
                                  ("d/" + "l" * 150, tarfile.SYMTYPE, {"linkname": "f"}),
                                  ("h", tarfile.LNKTYPE, {"linkname": "d/f"}),
                                  ("c", tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3}),
                                  ("p", tarfile.FIFOTYPE, {}), (".wh.gone", tarfile.REGTYPE, {})]:
            ti = tarfile.TarInfo(name)
            ti.type = kind
            for k, v in extra.items():
                setattr(ti, k, v)
            data = b"data" * 50 if name == "d/f" else b""
            ti.size = len(data)
            ti.pax_headers = {"SCHILY.xattr.user.x": "v", "mtime": "1.5"} if name == "d/f" else {}
            t.addfile(ti, io.BytesIO(data))
    gnu = io.BytesIO()
    with tarfile.open(fileobj=gnu, mode="w", format=tarfile.GNU_FORMAT) as t:
        ti = tarfile.TarInfo("g" * 120)
        ti.size = 5
        t.addfile(ti, io.BytesIO(b"gnu!!"))
    return out.getvalue()[:-1024] + gnu.getvalue()


SEED = _seed_tar()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(SEED) - 1), st.integers(1, 255)),
    st.tuples(st.just("set"), st.integers(0, len(SEED) - 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("cut"), st.integers(0, len(SEED)), st.just(b"")),
    st.tuples(st.just("insert"), st.integers(0, len(SEED)), st.binary(min_size=1, max_size=600)),
    # numeric header fields (size, mode, uid, mtime, checksum) and the type flag
    st.tuples(st.just("field"), st.sampled_from([100, 108, 116, 124, 136, 148, 156, 345]),
              st.sampled_from([b"\x80" + b"\xff" * 11, b"77777777777\x00", b"-1", b"9999",
                               b"\xff" * 12, b"x", b"L", b"K", b"S", b"g", b"1", b"2", b"5"])),
)


def _mutate(data: bytes, ops: list[tuple]) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in ops:
        pos = min(pos, len(buf))
        if op == "flip" and pos < len(buf):
            buf[pos] ^= arg
        elif op == "set":
            buf[pos:pos + len(arg)] = arg
        elif op == "cut":
            del buf[pos:]
        elif op == "insert":
            buf[pos:pos] = arg
        elif op == "field":
            for block in range(0, len(buf) - 511, 512 * 3):   # hit several headers
                buf[block + pos:block + pos + len(arg)] = arg
    return bytes(buf)


def _index_quickly(data: bytes, chunk: int = 1 << 20) -> list | None:
    start = time.monotonic()
    try:
        indexer = TarIndexer(max_entries=100_000)
        for i in range(0, len(data), chunk):
            indexer.feed(data[i:i + chunk])
        entries = indexer.finish()
    except LayerError:
        entries = None
    assert time.monotonic() - start < SLOW, "the indexer is stuck on a small input"
    return entries


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=6), st.integers(1, 2000))
@example([("field", 124, b"\x80" + b"\xff" * 11)], 512)      # base-256 size: huge
@example([("field", 124, b"\xff" * 12)], 7)                   # base-256 size: negative
@example([("field", 156, b"L")], 100)                         # a long name eats the next header
@example([("insert", 0, bytes(1024))], 512)                   # end blocks, then a header
def test_mutated_tars_index_or_raise_layer_error(ops, chunk):
    data = _mutate(SEED, ops)
    entries = _index_quickly(data, chunk)
    if entries is not None:
        assert entries == _index_quickly(data), "chunking changed the result"
        for e in entries:
            assert not e[0].startswith(b"/") and b".." not in e[0].split(b"/")
            assert e[10] + e[4] <= len(data), "an entry's data lies past the end of the tar"


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_index_or_raise_layer_error(data):
    _index_quickly(data)


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory) -> LayerStore:
    return LayerStore(tmp_path_factory.mktemp("fuzz-store"))


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4), st.sampled_from(["none", "gzip", "zstd"]))
def test_mutated_layers_are_stored_whole_or_not_at_all(fuzz_store, ops, how):
    import gzip

    import zstandard
    tar = _mutate(SEED, ops)
    blob = {"none": tar, "gzip": gzip.compress(tar, 1),
            "zstd": zstandard.ZstdCompressor().compress(tar)}[how]
    if how != "none" and ops[0][0] == "flip":          # damage the compressed stream too
        b = bytearray(blob)
        b[min(ops[0][1], len(b) - 1)] ^= ops[0][2]
        blob = bytes(b)
    try:
        diff_id = fuzz_store.import_blob(io.BytesIO(blob))
    except (LayerError, LayerStoreError):
        diff_id = None
    assert os.listdir(fuzz_store.root / "tmp") == []
    if diff_id is not None:
        stored = fuzz_store.tar_path(diff_id).read_bytes()
        assert "sha256:" + hashlib.sha256(stored).hexdigest() == diff_id
        again = index_stream(io.BytesIO(stored))
        assert fuzz_store.load_index(diff_id) == [tuple(e) for e in again]


# ------------------------------------------------------------------ OCI layouts

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64), st.floats(),
                      st.text(max_size=20),
                      st.sampled_from(["sha256:" + "0" * 64, "application/vnd.oci.image.index"
                                       ".v1+json", "linux", "amd64", "t", "layers"]))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _layout_docs() -> dict:
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        ti = tarfile.TarInfo("f")
        ti.size = 2
        t.addfile(ti, io.BytesIO(b"hi"))
    layer = tar.getvalue()
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [_sha(layer)]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": "", "size": 0},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": _sha(layer), "size": len(layer)}]}
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "", "size": 0,
        "annotations": {"org.opencontainers.image.ref.name": "t"},
        "platform": {"os": "linux", "architecture": "amd64"}}]}
    return {"layer": layer, "config": config, "manifest": manifest, "index": index}


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _set(doc, path, value):
    if not path:
        return value
    cur = doc
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return doc


def write_layout(d: Path, docs: dict, *, fix_digests: bool = True) -> None:
    """Write the documents as an OCI layout; digests and sizes are filled
    in (so a mutation is judged on its own, not refused by a digest first)."""
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = _sha(data)
        (blobs / digest[7:]).write_bytes(data)
        return digest

    put(docs["layer"])
    config = docs["config"]
    raw_config = config if isinstance(config, bytes) else json.dumps(config).encode()
    manifest = docs["manifest"]
    if fix_digests and isinstance(manifest, dict) and isinstance(manifest.get("config"), dict):
        manifest["config"]["digest"], manifest["config"]["size"] = put(raw_config), len(raw_config)
    else:
        put(raw_config)
    raw_manifest = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    index = docs["index"]
    entries = index.get("manifests") if isinstance(index, dict) else None
    if fix_digests and isinstance(entries, list) and entries and isinstance(entries[0], dict):
        entries[0]["digest"], entries[0]["size"] = put(raw_manifest), len(raw_manifest)
    else:
        put(raw_manifest)
    (d / "index.json").write_bytes(index if isinstance(index, bytes) else
                                   json.dumps(index).encode())
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')


def _import(d: Path, store: LayerStore) -> str:
    start = time.monotonic()
    try:
        import_image(f"oci:{d}:t", store)
        outcome = "ok"
    except ImageError as e:
        outcome = str(e)
        assert "\n" not in outcome and outcome
    assert time.monotonic() - start < 10 * SLOW
    assert os.listdir(store.root / "tmp") == [] if (store.root / "tmp").exists() else True
    return outcome


@FUZZ
@given(st.sampled_from(["config", "manifest", "index"]), st.data())
def test_mutated_documents_import_or_raise_image_error(tmp_path_factory, which, data):
    docs = _layout_docs()
    doc = docs[which]
    path = data.draw(st.sampled_from(list(_paths(doc))))
    docs[which] = _set(doc, path, data.draw(json_value))
    d = tmp_path_factory.mktemp("layout")
    write_layout(d, docs)
    _import(d, LayerStore(d / "store"))


@FUZZ
@given(st.sampled_from(["config", "manifest", "index"]), st.binary(max_size=200))
@example("index", b"\xff\xfe{")
@example("manifest", b"[]")
@example("config", b'{"rootfs": {"type": "layers", "diff_ids": "sha256:"}}')
def test_malformed_json_is_one_clear_error(tmp_path_factory, which, raw):
    docs = _layout_docs()
    docs[which] = raw
    d = tmp_path_factory.mktemp("layout")
    write_layout(d, docs)
    assert _import(d, LayerStore(d / "store")) != "ok"


@pytest.mark.parametrize("path, value", [
    (("manifests", 0, "annotations", "org.opencontainers.image.ref.name"), True),
    (("manifests", 0, "annotations", "org.opencontainers.image.ref.name"), ["t"]),
    (("manifests", 0, "platform", "variant"), 7),
    (("manifests", 0, "platform", "os"), None),
    (("manifests", 0, "mediaType"), []),
])
def test_regression_non_string_annotations_and_platforms(tmp_path, path, value):
    """Found by the fuzzer: these crashed with TypeError, not one clear error."""
    docs = _layout_docs()
    docs["index"] = _set(docs["index"], path, value)
    write_layout(tmp_path / "l", docs)
    assert "is not a valid descriptor" in _import(tmp_path / "l", LayerStore(tmp_path / "s"))


def test_deeply_nested_indexes_end(tmp_path):
    """An index cannot name itself (its digest covers its content: a loop
    needs a sha256 collision), but a chain of indexes can be deep."""
    d = tmp_path / "layout"
    blobs = d / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    kind = "application/vnd.oci.image.index.v1+json"
    body = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    for _ in range(20):
        (blobs / _sha(body)[7:]).write_bytes(body)
        body = json.dumps({"schemaVersion": 2, "mediaType": kind, "manifests": [{
            "mediaType": kind, "digest": _sha(body), "size": len(body),
            "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    (blobs / _sha(body)[7:]).write_bytes(body)
    top = {"schemaVersion": 2, "manifests": [{
        "mediaType": kind, "digest": _sha(body), "size": len(body),
        "annotations": {"org.opencontainers.image.ref.name": "t"}}]}
    (d / "index.json").write_text(json.dumps(top))
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    assert "indexes nested too deeply" in _import(d, LayerStore(tmp_path / "store"))


def test_wrong_digest_size_media_type_and_enormous_document(tmp_path):
    docs = _layout_docs()
    d = tmp_path / "a"
    write_layout(d, docs)
    index = json.loads((d / "index.json").read_text())
    index["manifests"][0]["size"] += 1
    (d / "index.json").write_text(json.dumps(index))
    assert "its descriptor says" in _import(d, LayerStore(tmp_path / "s1"))
    docs = _layout_docs()
    d = tmp_path / "b"
    write_layout(d, docs)
    blob = d / "blobs" / "sha256" / _sha(docs["layer"])[7:]
    blob.write_bytes(blob.read_bytes().replace(b"hi", b"ho"))      # same size, other bytes
    outcome = _import(d, LayerStore(tmp_path / "s2"))
    assert "blob digest mismatch" in outcome, outcome
    assert not (tmp_path / "s2" / "layers" / "sha256").exists() or \
        os.listdir(tmp_path / "s2" / "layers" / "sha256") == []
    docs = _layout_docs()
    docs["manifest"]["layers"][0]["mediaType"] = "application/x-evil"
    d = tmp_path / "c"
    write_layout(d, docs)
    assert "unsupported media type 'application/x-evil'" in _import(d, LayerStore(tmp_path / "s3"))
    d = tmp_path / "e"
    write_layout(d, _layout_docs())
    with open(d / "index.json", "wb") as f:              # 65 MiB of JSON whitespace
        f.truncate(65 << 20)
    start = time.monotonic()
    assert "is larger than 64 MiB" in _import(d, LayerStore(tmp_path / "s4"))
    assert time.monotonic() - start < 1


# ------------------------------------------------------------------ references

@FUZZ
@given(st.text(max_size=300) | st.from_regex(
    r"[a-z0-9.:/_@-]{0,80}(:[A-Za-z0-9_.-]{1,20})?(@sha256:[0-9a-f]{0,70})?", fullmatch=True))
@example("a" * 5000)
@example("localhost:5000/a/b:tag@sha256:" + "0" * 64)
def test_references_parse_or_raise_reference_error(text):
    start = time.monotonic()
    try:
        ref = reference.parse(text)
    except reference.ReferenceError as e:
        assert str(e).startswith("invalid reference format")
    else:
        assert reference.parse(str(ref)) == ref
    assert time.monotonic() - start < SLOW


@FUZZ
@given(json_value, st.none() | st.text(max_size=40))
def test_registry_manifest_decoding_raises_image_error_only(value, content_type):
    data = json.dumps(value).encode()
    try:
        decode(data, content_type, "manifest")
    except ImageError as e:
        assert str(e)


@FUZZ
@given(st.text(max_size=200))
@example("\\")
@example("HEALTHCHECK è\U0009efa0$")
def test_dockerfiles_parse_or_raise_dockerfile_error(text):
    """Any text is a Dockerfile or one DockerfileError, never a crash."""
    try:
        parse_text(text)
    except DockerfileError:
        pass


_platform_value = st.one_of(st.none(), st.text(max_size=8), st.integers(), st.lists(st.text()))


@FUZZ
@given(st.one_of(st.dictionaries(st.sampled_from(["os", "architecture", "variant"]),
                                 _platform_value), st.lists(st.text()), st.integers()))
@example({"variant": 7, "os": "linux", "architecture": "amd64"})
@example([])
def test_index_platforms_choose_or_raise_image_error(platform):
    """A hostile index's platform fields give one ImageError, never a crash."""
    index = {"manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": "sha256:" + "0" * 64, "size": 1, "platform": platform}]}
    try:
        choose(index, ("linux", "amd64", None), "index")
    except ImageError:
        pass
