"""Who may do what in the view.

The kernel is not asked to check modes (no ``default_permissions``): the
view's owners are the image's, which the mounting user usually is not, yet
that user owns every byte of the store and must be able to read and change
all of it — so on an inspection mount the mounting user acts like root.
Everyone else gets POSIX checks against the image's owners and modes, done
here; uid 0 (root of a container's user namespace, or of the host) passes
them where its capabilities allow, as the kernel would let it: read from
the caller's ``CapEff`` in /proc only when the plain check fails, so a
container started with ``--cap-drop`` gets exactly what it asked for.
"""
from __future__ import annotations

import errno
import os
import stat

import pyfuse3

R, W, X = 4, 2, 1
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID = 0, 1, 2, 3, 4
CAP_SYS_ADMIN = 21
_ALL_CAPS = (1 << 64) - 1


class Creds:
    """A caller's identity, supplementary groups read lazily from /proc."""

    __slots__ = ("uid", "gid", "pid", "_groups", "_caps")

    def __init__(self, uid: int, gid: int, pid: int) -> None:
        self.uid, self.gid, self.pid = uid, gid, pid
        self._groups: frozenset[int] | None = None
        self._caps: int | None = None

    def has_cap(self, cap: int) -> bool:
        if self._caps is None:
            self._caps = _proc_caps(self.pid)
        return bool(self._caps >> cap & 1)

    def in_group(self, gid: int) -> bool:
        if gid == self.gid:
            return True
        if self._groups is None:
            self._groups = _proc_groups(self.pid)
        return gid in self._groups


def _proc_groups(pid: int) -> frozenset[int]:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Groups:"):
                    return frozenset(int(g) for g in line.split()[1:])
    except OSError:
        pass
    return frozenset()


def _proc_caps(pid: int) -> int:
    """The effective capabilities of ``pid``. Requests the kernel makes on
    its own (pid 0: write-back) or whose process is gone were checked when
    the file was opened: they pass."""
    if pid <= 0:
        return _ALL_CAPS
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return _ALL_CAPS


class Policy:
    """Permission rules for one mount."""

    def __init__(self, owner_uid: int | None = None) -> None:
        self.owner_uid = os.getuid() if owner_uid is None else owner_uid
        self.owner_gid = os.getgid()

    def new_owner(self, ctx) -> tuple[int, int]:
        """Who owns what a caller creates. The mounting user is root of its
        own image (as in a rootless container, where it is uid 0), so its
        files belong to 0:0 like the rest of the image."""
        uid = 0 if ctx.uid == self.owner_uid else ctx.uid
        gid = 0 if ctx.uid == self.owner_uid and ctx.gid == self.owner_gid else ctx.gid
        return uid, gid

    def creds(self, ctx) -> Creds:
        return Creds(ctx.uid, ctx.gid, ctx.pid)

    def privileged(self, c: Creds, cap: int) -> bool:
        """Whether ``c`` may override a check as root would with ``cap``."""
        if c.uid == self.owner_uid and self.owner_uid != 0:
            return True                 # an inspection mount's user: root of its image
        return c.uid == 0 and c.has_cap(cap)

    def allowed(self, c: Creds, mode: int, uid: int, gid: int, want: int) -> bool:
        if c.uid == self.owner_uid and self.owner_uid != 0:
            return _as_root(mode, want)      # no /proc read on this hot path
        if c.uid == uid:
            bits = (mode >> 6) & 7
        elif c.in_group(gid):
            bits = (mode >> 3) & 7
        else:
            bits = mode & 7
        if bits & want == want:
            return True
        if self.privileged(c, CAP_DAC_OVERRIDE):
            return _as_root(mode, want)
        return not (want & W) and (stat.S_ISDIR(mode) or not want & X) and \
            self.privileged(c, CAP_DAC_READ_SEARCH)

    def check(self, ctx, node, want: int) -> None:
        if not self.allowed(self.creds(ctx), node.mode, node.uid, node.gid, want):
            raise pyfuse3.FUSEError(errno.EACCES)

    def check_owner(self, ctx, node) -> None:
        c = self.creds(ctx)
        if not (c.uid == node.uid or self.privileged(c, CAP_FOWNER)):
            raise pyfuse3.FUSEError(errno.EPERM)

    def may_set_times(self, ctx, node) -> bool:
        """utimensat: the owner, CAP_FOWNER, or (to now) whoever may write."""
        c = self.creds(ctx)
        return c.uid == node.uid or self.privileged(c, CAP_FOWNER) or \
            self.allowed(c, node.mode, node.uid, node.gid, W)

    def check_delete(self, ctx, parent, node) -> None:
        """W+X on the directory, and the sticky bit's owner rule."""
        c = self.creds(ctx)
        if not self.allowed(c, parent.mode, parent.uid, parent.gid, W | X):
            raise pyfuse3.FUSEError(errno.EACCES)
        if (parent.mode & stat.S_ISVTX and c.uid not in (node.uid, parent.uid)
                and not self.privileged(c, CAP_FOWNER)):
            raise pyfuse3.FUSEError(errno.EPERM)

    def chown_ok(self, ctx, node, uid: int | None, gid: int | None) -> None:
        c = self.creds(ctx)
        if (uid is None or uid == node.uid) and (gid is None or gid == node.gid) \
                and c.uid == node.uid:
            return                      # a no-op chown by the owner
        if self.privileged(c, CAP_CHOWN):
            return
        if uid is not None and uid != node.uid:
            raise pyfuse3.FUSEError(errno.EPERM)
        if gid is not None and gid != node.gid and not (c.uid == node.uid and c.in_group(gid)):
            raise pyfuse3.FUSEError(errno.EPERM)
        if c.uid != node.uid and (uid is not None or gid is not None):
            raise pyfuse3.FUSEError(errno.EPERM)

    def chmod_mode(self, ctx, node, mode: int) -> int:
        """The mode a chmod really sets: a non-member loses setgid (POSIX)."""
        self.check_owner(ctx, node)
        c = self.creds(ctx)
        if (mode & stat.S_ISGID and not stat.S_ISDIR(node.mode) and not c.in_group(node.gid)
                and not self.privileged(c, CAP_FSETID)):
            mode &= ~stat.S_ISGID
        return mode

    def xattr_ok(self, ctx, node, name: bytes) -> None:
        c = self.creds(ctx)
        if not name.startswith(b"user."):
            need = CAP_SYS_ADMIN if name.startswith(b"trusted.") else CAP_FOWNER
            if not self.privileged(c, need):
                raise pyfuse3.FUSEError(errno.EPERM)
            return
        if self.privileged(c, CAP_FOWNER):
            return
        if not (stat.S_ISREG(node.mode) or stat.S_ISDIR(node.mode)):
            raise pyfuse3.FUSEError(errno.EPERM)
        if not self.allowed(c, node.mode, node.uid, node.gid, W):
            raise pyfuse3.FUSEError(errno.EACCES)


def _as_root(mode: int, want: int) -> bool:
    """Root may do everything, but exec needs some x bit on non-dirs."""
    return not (want & X) or stat.S_ISDIR(mode) or bool(mode & 0o111)


def open_want(flags: int) -> int:
    acc = flags & os.O_ACCMODE
    want = {os.O_RDONLY: R, os.O_WRONLY: W, os.O_RDWR: R | W}.get(acc, R | W)
    if flags & os.O_TRUNC:
        want |= W
    return want
