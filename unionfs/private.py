"""Per-user private directories: the store root and its state dirs, the
runtime dir. Only their owner may enter them, so nothing another local user
does can reach what is inside (layers, image configs with their ENV,
volume data, mount records, logs, sockets).

Each is made 0700 if missing and then checked on an fd opened with
``O_NOFOLLOW`` (what ``lstat`` sees, with no window for a swap between the
check and a ``chmod``): a directory, not a symlink, owned by the user. One
of the user's with a looser mode (an older dockish made them under the
umask) is tightened to 0700 — except a runtime dir that others could write
to (they may have planted symlinks or sockets in it): that one is refused.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PrivateDirError(OSError):
    """A directory dockish keeps private is not (another user's, a symlink,
    writable by others); the message names it and the fix."""


def problem(path: Path, *, writable_ok: bool, create: bool = True,
            tighten: bool = True) -> str | None:
    """Why ``path`` cannot serve as a private dir, or None once it is one.
    ``create``: made 0700 if missing. ``tighten``: a looser dir of ours is
    chmod'ed to 0700 (else that is a problem), unless others could write to
    it and not ``writable_ok``."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            return f"cannot create {path}: {e.strerror}"
    try:
        fd = os.open(path, _DIR)
    except OSError as e:
        if os.path.islink(path):
            return f"{path} is a symlink"
        return f"{path} is not a usable directory ({e.strerror})"
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            return f"{path} is owned by uid {st.st_uid} (not you)"
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022 and not writable_ok:
            return f"{path} is writable by others (mode {mode:04o})"
        if mode != 0o700:
            if not tighten:
                return f"{path} is not private (mode {mode:04o}, not 0700)"
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return None


def ensure(path: Path, *, fix: str, writable_ok: bool = True) -> Path:
    """``path`` as a private dir (see ``problem``), else PrivateDirError
    with one line that ends in ``fix``."""
    why = problem(path, writable_ok=writable_ok)
    if why is not None:
        raise PrivateDirError(f"{why}: {fix}")
    return path


def store_root(root: Path) -> Path:
    """The image store: its root 0700 is what keeps other users out (they
    cannot even traverse it, whatever the modes below), so an existing store
    with a looser root is tightened here, once. Files opened by another user
    before that stay open to them; nothing new can be reached. The state
    dirs that hold the most private data are kept 0700 as well, in case the
    root is ever loosened by hand."""
    root = Path(root)
    fix = "set DOCKISH_ROOT to a directory of your own (it is made 0700)"
    if not root.exists() and not root.is_symlink():
        root.parent.mkdir(parents=True, exist_ok=True)
    ensure(root, fix=fix)
    for sub in ("volumes", "build", "containers"):
        ensure(root / sub, fix=f"remove it (or {fix})")
    return root


__all__ = ["PrivateDirError", "problem", "ensure", "store_root"]
