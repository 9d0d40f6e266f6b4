"""``commit``: a container's writable layer and settings become a new image.

As in Docker, the new image's config is the container's: its command (the
image's Cmd becomes what the container ran), environment, working
directory, user and labels, on top of the image's config, then the
``--change`` instructions. Its layers are the image's plus one layer made
from the writable layer (none when nothing changed), and one history entry
with the author and message.

A running container is paused while its layer is read (``--pause``, the
default; see ``freezer``), and its view is synced first: the kernel's
write-back cache holds written data until then.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import DockishError
from ..format import rfc3339
from ..runtime import freezer
from ..runtime.container import Container, ContainerConfig
from .build import config_bytes
from .imageconfig import apply_changes


class CommitError(DockishError):
    """A commit that cannot be made; the message says why."""


def commit_config(image_config: dict, cc: ContainerConfig, diff_id: str | None, *,
                  author: str, message: str, changes: list[str], now: float) -> dict:
    """The new image's OCI config (pure: no I/O)."""
    cfg = copy.deepcopy(image_config) if image_config else _host_config()
    conf = cfg.setdefault("config", {})
    conf["Env"] = list(cc.env)
    conf["Cmd"] = list(cc.cmd) or None
    conf["Entrypoint"] = list(cc.entrypoint) or None
    conf["WorkingDir"] = cc.workdir if cc.workdir != "/" or conf.get("WorkingDir") else ""
    conf["User"] = cc.user
    if cc.labels:
        conf["Labels"] = {**(conf.get("Labels") or {}), **cc.labels}
    for key in [k for k, v in conf.items() if v in (None, "", [], {})]:
        del conf[key]
    apply_changes(cfg, changes)
    for key in [k for k, v in conf.items() if v is None]:
        del conf[key]
    stamp = rfc3339(now)
    diff_ids = list((cfg.get("rootfs") or {}).get("diff_ids") or cc.diff_ids)
    if diff_id is not None:
        diff_ids.append(diff_id)
    cfg["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    entry: dict = {"created": stamp, "created_by": " ".join(cc.argv)}
    if author:
        entry["author"] = author
        cfg["author"] = author
    if message:
        entry["comment"] = message
    if diff_id is None:
        entry["empty_layer"] = True
    cfg["history"] = [*(cfg.get("history") or []), entry]
    cfg["created"] = stamp
    return cfg


def _host_config() -> dict:
    from registry.archive import host_platform
    os_, arch, variant = host_platform()
    cfg: dict = {"architecture": arch, "os": os_, "config": {}, "history": []}
    if variant:
        cfg["variant"] = variant
    return cfg


def image_config_of(c: Container, store) -> dict:
    """The config of the image the container was made from: kept in the
    container since creation; older containers look it up in the store."""
    if c.config.image_config:
        return c.config.image_config
    with contextlib.suppress(Exception):
        return json.loads(store.get_blob(c.config.image_id))
    return {}


@contextlib.contextmanager
def paused(c: Container, pause: bool) -> Iterator[bool]:
    """Hold a running container still (``pause``) with its written data
    flushed; yields whether it runs (its layer is then read unlocked). A
    container the user paused stays paused."""
    init = c.pid
    if init is None:
        yield False
        return
    try:
        if not pause or c.paused:
            freezer.sync(init)
            yield True
            return
        freezer.freeze(init, sync=True)
        try:
            yield True
        finally:
            freezer.thaw(init)
    except freezer.FreezeError as e:
        raise CommitError(str(e)) from None


# -- the whole commit ---------------------------------------------------------------------

def _read_layer(f, spec, ids, upper: Path, running: bool, attempts: int = 5) -> int:
    """The writable layer as a tar into ``f``. A container that runs on
    (``--pause=false``) may replace a file between our reading its journal
    and its data, and the daemon then removes the old data file: read the
    layer again from its new journal (the file is rewritten), as a running
    layer's snapshot is only ever some consistent state."""
    from unionfs.generate import write_upper_layer

    from ..runtime.rootfs import INIT_PATHS
    for attempt in range(attempts):
        f.seek(0)
        f.truncate()
        try:
            return write_upper_layer(spec, ids, upper, f, readonly=running, skip=INIT_PATHS)
        except FileNotFoundError:
            if not running or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def commit(c: Container, store, *, author: str = "", message: str = "",
           changes: list[str] | None = None, pause: bool = True,
           tags: list[str] | None = None) -> str:
    """Make the image; tag it with ``tags``; return its ID."""
    changes = list(changes or [])
    image_config = image_config_of(c, store)
    # the changes are checked before anything is written
    apply_changes(copy.deepcopy(image_config) or {"config": {}}, changes)
    layers = store.layers
    ids = [*c.config.diff_ids, c.config.init_layer]
    spec = [(layers.tar_path(d), layers.load_index(d)) for d in ids]
    tmp_dir = Path(store.root) / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with store.writing():
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="commit-", suffix=".tar")
        try:
            with os.fdopen(fd, "wb") as f, paused(c, pause) as running:
                count = _read_layer(f, spec, ids, c.upper, running)
            diff_id = None
            if count:
                with open(tmp, "rb") as f:
                    diff_id = layers.import_blob(f, compression="none")
        finally:
            os.unlink(tmp)
        cfg = commit_config(image_config, c.config, diff_id, author=author, message=message,
                            changes=changes, now=time.time())
        rec = store.add_image(config_bytes(cfg), tags=list(tags or []))
    return rec.id
