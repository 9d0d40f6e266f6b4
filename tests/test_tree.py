"""The merge rules of the in-memory tree (pure logic, no FUSE)."""
from __future__ import annotations

import stat

import pytest

from unionfs.tree import RENAME_EXCHANGE, LayerError, Rec, Tree

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`

D, F, L = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644, stat.S_IFLNK | 0o777


def e(path, mode=F, *, link=None, hard=None, uid=0, size=0, offset=0):
    return [path.encode(), mode, uid, 0, size, 0, link.encode() if link else None,
            hard.encode() if hard else None, 0, None, offset]


def names(tree, path=b""):
    node = tree.root if not path else tree.resolve(path)
    return sorted(n.decode() for n in node.children)


def build(*layers):
    t = Tree()
    for i, entries in enumerate(layers):
        t.add_layer(i, entries)
    t.finish_lower()
    return t


def test_whiteout_hides_lower_only():
    t = build([e("a", D), e("a/x"), e("a/y")],
              [e("a/x"), e("a/.wh.x"), e("a/.wh.y")])   # same-layer a/x survives
    assert names(t, b"a") == ["x"]
    assert t.resolve(b"a/x").layer == 1


def test_opaque_applies_before_entries_whatever_the_order():
    t = build([e("d", D), e("d/old"), e("d/sub", D), e("d/sub/z")],
              [e("d/new"), e("d/.wh..wh..opq")])
    assert names(t, b"d") == ["new"]


def test_dir_replaced_by_file_and_back():
    t = build([e("p", D), e("p/in"), e("q")],
              [e("p"), e("p/.wh.in"), e("q", D), e("q/c")])   # umoci's dir2file quirk
    assert not t.resolve(b"p").is_dir
    assert names(t, b"q") == ["c"]


def test_hardlinks_share_a_node_across_layers():
    t = build([e("f", size=3), e("g", hard="f")], [e("h", hard="f")])
    f, g, h = (t.resolve(p) for p in (b"f", b"g", b"h"))
    assert f is g is h and f.nlink == 3


def test_hardlink_to_nothing_is_an_error():
    with pytest.raises(LayerError, match="missing"):
        build([e("g", hard="nope")])


def test_missing_parents_are_made():
    t = build([e("x/y/z")])
    assert t.resolve(b"x/y").is_dir


def test_symlinks_show_mode_0777_and_target_size():
    t = build([e("l", stat.S_IFLNK | 0o644, link="target")])
    node = t.resolve(b"l")
    assert stat.S_IMODE(node.mode) == 0o777 and node.size == 6


def _replay(t: Tree, layers) -> Tree:
    """A fresh tree of the same lower layers with t's records replayed."""
    fresh = build(*layers)
    for rec in list(t.snapshot_records()):
        fresh.apply(rec)
    return fresh


def _shape(t: Tree):
    out = {}
    stack = [(t.root, b"")]
    while stack:
        d, p = stack.pop()
        for n, c in d.children.items():
            path = p + b"/" + n
            out[path] = (c.mode, c.uid, c.nlink, c.size, c.target, c.layer, c.offset)
            if c.is_dir:
                stack.append((c, path))
    return out


LAYERS = ([e("a", D), e("a/f", size=5, offset=512), e("a/b", D), e("a/b/g"), e("h1"),
           e("h2", hard="h1"), e("c", D)],)


def test_snapshot_replays_renames_deletes_and_links():
    t = build(*LAYERS)
    a = t.resolve(b"a")
    t.rename(t.root, b"a", t.resolve(b"c"), b"moved", 0)
    t.unlink(t.resolve(b"c/moved/b"), b"g")
    node = t.new_node(F, 1000, 1000, 1)
    t.place(t.root, b"new", node)
    t.record(t.resolve(b"h1"))
    t.unlink(t.root, b"h2")
    assert a.low is None          # a moved directory no longer stands on lower names
    again = _replay(t, LAYERS)
    assert _shape(again) == _shape(t)
    assert sorted(p.decode() for k, p, _ in t.changes() if k == "D") == ["a", "h2"]


def test_exchange_swaps_names():
    t = build(*LAYERS)
    f, c = t.resolve(b"a/f"), t.resolve(b"c")
    t.rename(t.resolve(b"a"), b"f", t.root, b"c", RENAME_EXCHANGE)
    assert t.resolve(b"c") is f and t.resolve(b"a/f") is c
    assert _shape(_replay(t, LAYERS)) == _shape(t)


def test_journal_records_name_kinds():
    t = build(*LAYERS)
    t.record(t.resolve(b"a/f"))
    kinds = [r[0] for r in t.take_pending()]
    assert kinds == [Rec.BIND, Rec.INODE]


def test_the_tree_costs_about_half_a_kilobyte_a_file():
    """Every running container's daemon holds its whole tree (20.7k nodes
    after an apt-get install of build-essential, python3 and git), so bytes
    per node are memory per container: 506 here (a node's names as a tuple;
    as a list, 546)."""
    import gc
    import tracemalloc
    entries = [e(f"d{i}", D) for i in range(100)]
    entries += [e(f"d{i}/file-{j}.txt", size=j) for i in range(100) for j in range(100)]
    for x in entries:
        x[8] = 1_700_000_000_123_456_789                 # nanosecond mtimes, as images have
    gc.collect()
    tracemalloc.start()
    try:
        t = build(entries)
        gc.collect()
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    count = len(t.nodes)
    assert count == 10_101
    assert used / count < 520, f"{used / count:.0f} bytes a node"
