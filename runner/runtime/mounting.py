"""Image mounts (``dockish mount``/``umount``) as the engine offers them:
an image's merged layers served by a union daemon at a directory, the
live ones listed (dead ones cleaned up), and unmounts. Records in, records
out; what the user should hear goes to ``notify``."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError


def mount_spec(store, image: str, mountpoint: str, upper: str | None, options: list[str]):
    """The daemon's ``MountSpec`` for IMAGE (an archive or a stored image)
    over its layers, with UPPER as the writable layer if given."""
    from registry.resolve import resolve
    from unionfs.daemon import MountSpec
    img = resolve(image, store)
    layers = [(store.tar_path(d), store.load_index(d)) for d in img.diff_ids]
    return MountSpec(layers=layers, layer_ids=list(img.diff_ids),
                     mountpoint=os.path.abspath(mountpoint), image=image,
                     upper=Path(upper).absolute() if upper else None, options=options)


def mount(store, image: str, mountpoint: str | None = None, upper: str | None = None,
          options: list[str] | None = None, rw: bool = False, foreground: bool = False):
    """Mount IMAGE at MOUNTPOINT (made under the runtime dir when None);
    read-only unless ``rw`` (then ``upper`` keeps the changes). Returns the
    spec once the mount answers (``foreground``: once it is unmounted)."""
    from unionfs import daemon, mounts
    opts = [o for group in options or [] for o in group.split(",") if o]
    if "ro" in opts and (rw or upper):
        raise UsageError("-o ro contradicts --rw/--upper")
    if rw and not upper:
        raise UsageError("--rw needs --upper DIR: the directory that keeps the changes")
    if mountpoint is None:
        mountpoint = str(mounts.auto_mountpoint(image))
    daemon.check_mountpoint(os.path.abspath(mountpoint))
    spec = mount_spec(store, image, mountpoint, upper, opts)
    if foreground:
        daemon.serve(spec)
        return spec
    log = mounts.runtime_dir() / f"mount-{mounts.record_path(spec.mountpoint).stem}.log"
    daemon.start(spec, log)
    return spec


def live_mounts(notify: Callable[[str], None]) -> list:
    """The live mounts' records; those whose daemon died are cleaned up
    (a stale mount unmounted) and said to ``notify``."""
    from unionfs import mounts
    live = []
    for rec in mounts.all_records():
        if rec.alive:
            live.append(rec)
            continue
        note = mounts.unmount(rec.mountpoint) if mounts.mount_state(rec.mountpoint) == \
            "stale" else ""
        mounts.remove(rec.mountpoint)
        notify(f"dockish: {rec.mountpoint}: its daemon had died; "
               f"{'cleaned up the stale mount' if note else 'forgot it'}")
    return live


def umount(targets: list[str], all_: bool = False) -> list[tuple[str, str]]:
    """Unmount by mountpoint or image (``all_``: every dockish mount) and
    wait for the daemons to save and exit: [(mountpoint, problem or "")]."""
    from unionfs import mounts
    if not targets and not all_:
        raise UsageError("umount needs a MOUNTPOINT, an IMAGE or --all")
    records = mounts.all_records()
    chosen = [r.mountpoint for r in records] if all_ else []
    for t in targets:
        by_image = [r.mountpoint for r in records if r.image == t]
        chosen.extend(by_image or [os.path.abspath(t)])
    return [(mp, mounts.unmount(mp)) for mp in chosen]
