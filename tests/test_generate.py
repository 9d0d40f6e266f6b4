"""Layer generation is reproducible: the same tree gives the same bytes,
whatever order the changes were made in, and SOURCE_DATE_EPOCH-style
clamping (``mtime_clamp``, in ns) makes builds at different times agree."""
from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile

import pytest

from unionfs.generate import write_layer
from unionfs.layers import LayerStore
from unionfs.tree import Tree

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`


def _lower(store: LayerStore) -> tuple[str, list]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name in ("etc", "etc/gone", "keep"):
            ti = tarfile.TarInfo(name)
            if name == "etc":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            else:
                ti.size = 1
            t.addfile(ti, io.BytesIO(b"x") if ti.size else None)
    buf.seek(0)
    diff_id = store.import_blob(buf, compression="none")
    return diff_id, store.load_index(diff_id)


def _build(store, data_dir, order, now, xattr_order):
    """A tree over the lower layer with: /etc/gone deleted, new files a and b
    (b with xattrs), a hardlink a2 -> a; changes applied in ``order``."""
    diff_id, entries = _lower(store)
    tree = Tree()
    tree.add_layer(0, entries)
    tree.finish_lower()
    root, etc = tree.root, tree.resolve(b"etc")
    made = {}

    def new_file(name, content, xattrs=None):
        node = tree.new_node(stat.S_IFREG | 0o640, 1000, 1000, now)
        node.size = len(content)
        if xattrs:
            node.xattrs = dict(xattrs)
        (data_dir / str(node.uino)).write_bytes(content)
        tree.place(root, name, node)
        made[name] = node

    ops = {
        "delete": lambda: tree.unlink(etc, b"gone"),
        "a": lambda: new_file(b"a", b"aaa"),
        "b": lambda: new_file(b"b", b"bbbb", [(k, b"v") for k in xattr_order]),
        "link": lambda: tree.place(root, b"a2", made[b"a"]),
    }
    for op in order:
        ops[op]()
    return tree, store.tar_path(diff_id)


def _bytes(tmp_path, name, order, now, xattr_order, clamp):
    data = tmp_path / name
    data.mkdir()
    store = LayerStore(tmp_path / "store")
    tree, lower = _build(store, data, order, now, xattr_order)
    fd, dfd = os.open(lower, os.O_RDONLY), os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    out = io.BytesIO()
    try:
        write_layer(tree, out, layer_fds=[fd], data_fd=dfd, mtime_clamp=clamp)
    finally:
        os.close(fd)
        os.close(dfd)
    return out.getvalue()


def test_same_tree_same_bytes(tmp_path):
    one = _bytes(tmp_path, "one", ["delete", "a", "b", "link"], 5 * 10**18,
                 [b"user.x", b"user.a"], None)
    two = _bytes(tmp_path, "two", ["b", "a", "link", "delete"], 5 * 10**18,
                 [b"user.a", b"user.x"], None)
    assert hashlib.sha256(one).digest() == hashlib.sha256(two).digest()
    with tarfile.open(fileobj=io.BytesIO(one)) as t:
        members = {m.name: m for m in t.getmembers()}
    assert sorted(members) == ["a", "a2", "b", "etc/.wh.gone"]
    assert members["a2"].islnk() and members["a2"].linkname == "a"
    b = members["b"]
    assert (b.uid, b.gid, b.uname, b.gname) == (1000, 1000, "", "")
    assert list(b.pax_headers) == ["mtime", "SCHILY.xattr.user.a", "SCHILY.xattr.user.x"]
    assert not any("atime" in m.pax_headers or "ctime" in m.pax_headers
                   for m in members.values())


def test_clamp_makes_different_times_agree(tmp_path):
    epoch = 1_700_000_000
    early = _bytes(tmp_path, "early", ["delete", "a", "b", "link"], (epoch + 10) * 10**9,
                   [b"user.a"], epoch * 10**9)
    late = _bytes(tmp_path, "late", ["delete", "a", "b", "link"], (epoch + 99999) * 10**9,
                  [b"user.a"], epoch * 10**9)
    assert early == late
    with tarfile.open(fileobj=io.BytesIO(early)) as t:
        assert {m.mtime for m in t.getmembers() if m.name in ("a", "b")} == {epoch}
