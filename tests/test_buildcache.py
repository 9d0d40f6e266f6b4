"""Build cache keys and the on-disk index."""
from __future__ import annotations

import io
import os
import tarfile
import time

import pytest

from runner.builder import buildcache as bc
from unionfs.layers import LayerStore

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`


def _layer(store: LayerStore, name: str) -> str:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo(name)
        ti.size = 1
        t.addfile(ti, io.BytesIO(b"x"))
    buf.seek(0)
    return store.import_blob(buf, compression="none")


def test_keys_change_with_each_input():
    k = bc.state_key("sha256:p", "RUN echo hi", {"A": "1"}, None)
    assert k == bc.state_key("sha256:p", "RUN echo hi", {"A": "1"}, None)
    assert k != bc.state_key("sha256:q", "RUN echo hi", {"A": "1"}, None)
    assert k != bc.state_key("sha256:p", "RUN echo ho", {"A": "1"}, None)
    assert k != bc.state_key("sha256:p", "RUN echo hi", {"A": "2"}, None)
    assert k != bc.state_key("sha256:p", "RUN echo hi", {"A": "1"}, "sha256:files")
    base = bc.base_key(["sha256:a"], {"Env": ["A=1"]})
    assert base != bc.base_key(["sha256:a"], {"Env": ["A=2"]})
    assert base == bc.base_key(["sha256:a"], {"Env": ["A=1"], "Labels": {"x": "y"}})


def test_index_roundtrip_and_missing_layers(tmp_path):
    store = LayerStore(tmp_path)
    cache = bc.BuildCache(tmp_path, store)
    d = _layer(store, "f")
    cache.put("sha256:k1", d, "COPY f /")
    cache.put("sha256:k2", "sha256:" + "0" * 64, "RUN gone")
    assert cache.get("sha256:k1").diff_id == d
    assert cache.get("sha256:k2") is None          # its layer is not stored
    assert cache.get("sha256:nope") is None
    assert cache.live_layers() == {d, "sha256:" + "0" * 64}
    use = cache.usage(set())
    assert use["TotalCount"] == 2 and use["Size"] > 0 and use["Reclaimable"] == use["Size"]
    assert cache.usage({d})["Reclaimable"] == 0


def test_prune_all_and_by_age(tmp_path):
    cache = bc.BuildCache(tmp_path)
    cache.put("sha256:old", None)
    cache.put("sha256:new", None)
    past = time.time() - 7200
    os.utime(cache._path("sha256:old"), (past, past))
    gone = cache.prune(older_than=3600)
    assert [e.key for e in gone] == ["sha256:old"]
    assert [e.key for e in cache.entries()] == ["sha256:new"]
    assert [e.key for e in cache.prune()] == ["sha256:new"]
    assert cache.entries() == []


def test_parse_duration():
    assert bc.parse_duration("90s") == 90
    assert bc.parse_duration("1h30m") == 5400
    with pytest.raises(ValueError):
        bc.parse_duration("soon")
