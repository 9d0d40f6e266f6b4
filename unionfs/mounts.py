"""The table of active mounts: one small JSON file per mount in the user's
runtime dir, so ``umount`` can find and wait for the daemon, and a dead
daemon's mount can be recognised and cleaned up."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path


class MountError(Exception):
    """A mount or unmount that cannot be done; the message says why."""


@dataclass
class MountRecord:
    mountpoint: str
    pid: int
    image: str
    upper: str | None
    readonly: bool
    log: str | None = None

    @property
    def alive(self) -> bool:
        return _pid_alive(self.pid)


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    if not base or not os.access(base, os.W_OK):
        base = f"/tmp/dockish-{os.getuid()}"
    path = Path(base) / "dockish"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def _table_dir() -> Path:
    path = runtime_dir() / "mounts"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _key(mountpoint: str) -> str:
    return hashlib.sha256(mountpoint.encode()).hexdigest()[:32]


def record_path(mountpoint: str) -> Path:
    return _table_dir() / f"{_key(mountpoint)}.json"


def save(rec: MountRecord) -> None:
    path = record_path(rec.mountpoint)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(rec)))
    os.replace(tmp, path)


def remove(mountpoint: str) -> None:
    try:
        record_path(mountpoint).unlink()
    except FileNotFoundError:
        pass


def load(mountpoint: str) -> MountRecord | None:
    try:
        return MountRecord(**json.loads(record_path(mountpoint).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def all_records() -> list[MountRecord]:
    out = []
    for path in sorted(_table_dir().glob("*.json")):
        try:
            out.append(MountRecord(**json.loads(path.read_text())))
        except (ValueError, TypeError, FileNotFoundError):
            continue
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, IndexError):
        return False


def mount_state(path: str) -> str:
    """'mounted', 'stale' (daemon gone: ENOTCONN) or 'none'."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            return "stale"
        if e.errno == errno.ENOENT:
            return "none"
        raise
    return "mounted" if os.path.ismount(path) else "none"


def auto_mountpoint(image: str) -> Path:
    """A fresh directory for a mount the user did not place (as ``podman
    image mount`` does)."""
    base = runtime_dir() / "mnt"
    base.mkdir(mode=0o700, exist_ok=True)
    n = 0
    while True:
        path = base / f"{_key(image)[:12]}{'-' + str(n) if n else ''}"
        try:
            path.mkdir(mode=0o755)
            return path
        except FileExistsError:
            if mount_state(str(path)) == "none" and not any(path.iterdir()):
                return path
            n += 1


def fusermount() -> str:
    exe = shutil.which("fusermount3") or shutil.which("fusermount")
    if exe is None:
        raise MountError("fusermount3 not found: install the fuse3 package")
    return exe


def detach(mountpoint: str, *, lazy: bool = False) -> None:
    """Unmount: umount(8) where we are root (e.g. inside a container's user
    namespace, where the mount was made without fusermount3), else fusermount3."""
    if os.geteuid() == 0 and shutil.which("umount"):
        res = subprocess.run(["umount"] + (["-l"] if lazy else []) + [mountpoint],
                             capture_output=True, text=True)
        if res.returncode == 0:
            return
    args = [fusermount(), "-u"] + (["-z"] if lazy else []) + [mountpoint]
    res = subprocess.run(args, capture_output=True, text=True)
    if res.returncode != 0:
        msg = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"
        if "busy" in msg.lower():
            raise MountError(f"cannot unmount {mountpoint}: mountpoint is busy")
        raise MountError(f"cannot unmount {mountpoint}: {msg}")


def clean_stale(mountpoint: str) -> bool:
    """Unmount a mountpoint whose daemon died; True if there was one."""
    if mount_state(mountpoint) != "stale":
        return False
    detach(mountpoint, lazy=True)
    remove(mountpoint)
    return True


def unmount(mountpoint: str, timeout: float = 60.0) -> str:
    """Unmount and wait for the daemon to write its layer and exit.
    Returns a note for the user when something unusual was cleaned up."""
    rec = load(mountpoint)
    state = mount_state(mountpoint)
    if state == "stale":
        detach(mountpoint, lazy=True)
        remove(mountpoint)
        return f"{mountpoint}: the mount's daemon had died; cleaned up the stale mount"
    if state == "none":
        if rec is not None:
            remove(mountpoint)
        raise MountError(f"{mountpoint} is not mounted")
    if rec is None:
        raise MountError(f"{mountpoint} is not a dockish mount")
    detach(mountpoint)
    deadline = time.monotonic() + timeout
    while rec.alive and time.monotonic() < deadline:
        time.sleep(0.02)
    if rec.alive:
        raise MountError(f"unmounted {mountpoint}, but its daemon (pid {rec.pid}) "
                         "has not exited yet")
    remove(mountpoint)
    return ""
