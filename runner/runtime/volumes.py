"""Named volumes: directories under the store root that outlive containers.

    ROOT/volumes/<name>/_data        what the container sees at its mount point
    ROOT/volumes/<name>/volume.json  name, created time, labels

``_data`` belongs to the user on the host, so it is root's inside a
container, as a Docker volume is.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
import time
from pathlib import Path

from ..errors import DockishError, UsageError
from .hostfs import remove_tree

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class VolumeError(DockishError):
    """A volume name or state the user got wrong."""


class VolumeRequestError(VolumeError, UsageError):
    """A create request Docker's daemon would refuse (its words, exit 1;
    the API's 400)."""

    exit_code = 1
    from_daemon = True


LOCAL_OPTIONS = ("type", "device", "o", "size")
ANONYMOUS = "com.docker.volume.anonymous"    # Docker's label of an anonymous volume
_OLD_ANONYMOUS = "anonymous"                  # what older records say instead


def check_request(name: str | None, driver: str, options: dict[str, str]) -> None:
    """``volume create``'s driver and ``-o`` options: the ``local`` driver
    only (others are plugins dockish has none of), and no mount options,
    because a rootless volume is a plain directory that nothing mounts
    (Docker's local driver would mount ``type``/``device`` as root)."""
    what = f"create {name}" if name else "create"
    if driver not in ("", "local"):
        raise VolumeRequestError(f"{what}: error looking up volume plugin {driver}: "
                                 f'plugin "{driver}" not found')
    for key in options:
        if key not in LOCAL_OPTIONS:
            raise VolumeRequestError(f"{what}: invalid option: {json.dumps(key)}")
    if options:
        raise VolumeRequestError(f"{what}: the local driver's mount options "
                                 f"({', '.join(sorted(options))}) need root to mount: "
                                 "dockish's volumes are plain directories")


class Volumes:
    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "volumes"

    def path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):       # match() would take "x\n"
            raise VolumeError(f'{json.dumps(name)} includes invalid characters for a local '
                              'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed')
        return self.root / name

    def exists(self, name: str) -> bool:
        return (self.path(name) / "volume.json").exists()

    def create(self, name: str | None = None, labels: dict | None = None) -> str:
        name = name or secrets.token_hex(32)
        p = self.path(name)
        if self.exists(name):
            return name
        (p / "_data").mkdir(parents=True, exist_ok=True)
        meta = {"Name": name, "Driver": "local", "CreatedAt": time.time(),
                "Labels": labels or {}, "Scope": "local"}
        # a temporary name of its own: creates of one name side by side (compose's
        # services sharing a volume) each rename their own whole record
        fd, tmp = tempfile.mkstemp(dir=p, prefix=".volume-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(meta, f)
            os.replace(tmp, p / "volume.json")
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return name

    def inspect(self, name: str) -> dict:
        if not self.exists(name):
            raise VolumeError(f"get {name}: no such volume")
        meta = json.loads((self.path(name) / "volume.json").read_text())
        labels = dict(meta.get("Labels") or {})
        if labels.pop(_OLD_ANONYMOUS, None) is not None:
            labels[ANONYMOUS] = ""
        meta["Labels"] = dict(sorted(labels.items()))     # as Go prints a map
        meta["Mountpoint"] = str(self.path(name) / "_data")
        meta["CreatedAt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                          time.gmtime(meta.get("CreatedAt", 0)))
        return meta

    def anonymous(self, name: str) -> bool:
        """Made for one container's ``-v /path`` (what prune takes without -a)."""
        return ANONYMOUS in self.inspect(name)["Labels"]

    def names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.root) if self.exists(n))
        except FileNotFoundError:
            return []

    def remove(self, name: str) -> None:
        """Remove a volume. Its data is the container's to shape: symlinks in
        it are removed, never followed, and only directories opened with
        O_NOFOLLOW are made writable (a container may leave them 0555)."""
        if not self.exists(name):
            raise VolumeError(f"get {name}: no such volume")
        remove_in(self.root, name)


def remove_in(parent: Path, name: str) -> None:
    """Remove ``parent/name`` and all below it, by directory fd (see
    :func:`runner.runtime.hostfs.remove_tree`)."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        remove_tree(fd, name)
    finally:
        os.close(fd)
