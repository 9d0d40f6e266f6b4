"""The one way to open an image's union view offline (without mounting):
the merged tree of its layers with a writable layer applied, for ``diff``,
``layer`` and ``commit``-like readers. A mount (FUSE) is ``unionfs.daemon``'s."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def offline_view(layers: list[tuple[Path, list]], layer_ids: list[str], upper: Path, *,
                 readonly: bool = False) -> Iterator[tuple[object, object]]:
    """(tree, upper) of ``layers`` (bottom first) with the writable layer
    ``upper`` applied; the upper stays open (its data fd readable) until the
    block ends. ``readonly``: the layer of a running container, read
    without its daemon's lock."""
    from unionfs.daemon import MountSpec, build_tree
    from unionfs.upper import Upper
    tree = build_tree(MountSpec(layers=layers, layer_ids=layer_ids, mountpoint="", image=""))
    up = Upper(upper, layer_ids)
    up.open(readonly=readonly)
    try:
        up.load(tree, compact=False)
        yield tree, up
    finally:
        up.close()
