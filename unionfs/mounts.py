"""The table of active mounts: one small JSON file per mount in the user's
runtime dir, so ``umount`` can find and wait for the daemon, and a dead
daemon's mount can be recognised and cleaned up."""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import private


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
    """The user's private runtime dir (mount records, daemon logs, attach
    and slirp4netns sockets), chosen as rootless Podman chooses its own:

    1. ``$XDG_RUNTIME_DIR/dockish``, when XDG_RUNTIME_DIR is set and is the
       user's, not a symlink, mode 0700 (after su or ``sudo -u`` it is often
       another user's: then it is not used);
    2. ``/tmp/dockish-$UID/dockish`` (su, cron, CI runners), both levels
       made 0700 and checked: one another user made first, or one others can
       write to, is never used (they could have planted symlinks or a fake
       attach socket in it);
    3. else ``${XDG_CACHE_HOME:-~/.cache}/dockish/run`` (Podman falls back to
       ``~/rundir`` the same way), with a warning naming the squatted dir.

    Files in it are created with O_EXCL/O_NOFOLLOW or mkstemp + rename."""
    key = (os.geteuid(), os.environ.get("XDG_RUNTIME_DIR"), os.environ.get("XDG_CACHE_HOME"),
           os.environ.get("HOME"))
    path = _runtime_dirs.get(key)
    if path is None:
        path = _runtime_dirs[key] = _choose_runtime_dir()
    else:       # it may have gone (tmp cleaners): made again, checked again
        private.ensure(path, fix=_RUNTIME_FIX, writable_ok=False)
    return path


_runtime_dirs: dict[tuple, Path] = {}
_RUNTIME_FIX = "remove it or set XDG_RUNTIME_DIR to a directory of your own (mode 0700)"


def _choose_runtime_dir() -> Path:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and private.problem(
            Path(xdg), writable_ok=False, create=False, tighten=False) is None:
        return private.ensure(Path(xdg) / "dockish", fix=_RUNTIME_FIX, writable_ok=False)
    base = Path(f"/tmp/dockish-{os.geteuid()}")
    why = private.problem(base, writable_ok=False)
    if why is None:
        why = private.problem(base / "dockish", writable_ok=False)
        if why is None:
            return base / "dockish"
    cache = os.environ.get("XDG_CACHE_HOME")
    top = Path(cache) if cache and os.path.isabs(cache) else Path.home() / ".cache"
    (top / "dockish").mkdir(mode=0o700, parents=True, exist_ok=True)
    path = private.ensure(top / "dockish" / "run", fix=f"{why}; {_RUNTIME_FIX}",
                          writable_ok=False)
    print(f"dockish: warning: {why}: using {path} instead; {_RUNTIME_FIX}",
          file=sys.stderr)
    return path


def _table_dir() -> Path:
    return private.ensure(runtime_dir() / "mounts", fix=_RUNTIME_FIX, writable_ok=False)


def _key(mountpoint: str) -> str:
    return hashlib.sha256(mountpoint.encode()).hexdigest()[:32]


def record_path(mountpoint: str) -> Path:
    return _table_dir() / f"{_key(mountpoint)}.json"


def save(rec: MountRecord) -> None:
    """Written whole under a fresh name, then renamed over the record."""
    path = record_path(rec.mountpoint)
    fd, tmp = tempfile.mkstemp(prefix=".rec-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(asdict(rec)))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
    base = private.ensure(runtime_dir() / "mnt", fix=_RUNTIME_FIX, writable_ok=False)
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
