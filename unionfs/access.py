"""Who may do what in the view.

The kernel is not asked to check modes (no ``default_permissions``): the
view's owners are the image's, which the mounting user usually is not, yet
that user owns every byte of the store and must be able to read and change
all of it — so the mounting user and uid 0 (root of a container's user
namespace) act like root. Any other uid (a container's non-root users, or
other users with ``allow_other``) gets POSIX checks against the image's
owners and modes, done here.
"""
from __future__ import annotations

import errno
import os
import stat

import pyfuse3

R, W, X = 4, 2, 1


class Creds:
    """A caller's identity, supplementary groups read lazily from /proc."""

    __slots__ = ("uid", "gid", "pid", "_groups")

    def __init__(self, uid: int, gid: int, pid: int) -> None:
        self.uid, self.gid, self.pid = uid, gid, pid
        self._groups: frozenset[int] | None = None

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

    def privileged(self, c: Creds) -> bool:
        return c.uid == 0 or c.uid == self.owner_uid

    def allowed(self, c: Creds, mode: int, uid: int, gid: int, want: int) -> bool:
        if self.privileged(c):
            # like root: everything, but exec needs some x bit on non-dirs
            return not (want & X) or stat.S_ISDIR(mode) or bool(mode & 0o111)
        if c.uid == uid:
            bits = (mode >> 6) & 7
        elif c.in_group(gid):
            bits = (mode >> 3) & 7
        else:
            bits = mode & 7
        return bits & want == want

    def check(self, ctx, node, want: int) -> None:
        if not self.allowed(self.creds(ctx), node.mode, node.uid, node.gid, want):
            raise pyfuse3.FUSEError(errno.EACCES)

    def check_owner(self, ctx, node) -> None:
        c = self.creds(ctx)
        if not (self.privileged(c) or c.uid == node.uid):
            raise pyfuse3.FUSEError(errno.EPERM)

    def check_delete(self, ctx, parent, node) -> None:
        """W+X on the directory, and the sticky bit's owner rule."""
        c = self.creds(ctx)
        if not self.allowed(c, parent.mode, parent.uid, parent.gid, W | X):
            raise pyfuse3.FUSEError(errno.EACCES)
        if (parent.mode & stat.S_ISVTX and not self.privileged(c)
                and c.uid not in (node.uid, parent.uid)):
            raise pyfuse3.FUSEError(errno.EPERM)

    def chown_ok(self, ctx, node, uid: int | None, gid: int | None) -> None:
        c = self.creds(ctx)
        if self.privileged(c):
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
        if (not self.privileged(c) and mode & stat.S_ISGID and not stat.S_ISDIR(node.mode)
                and not c.in_group(node.gid)):
            mode &= ~stat.S_ISGID
        return mode

    def xattr_ok(self, ctx, node, name: bytes) -> None:
        c = self.creds(ctx)
        if self.privileged(c):
            return
        if not name.startswith(b"user."):
            raise pyfuse3.FUSEError(errno.EPERM)
        if not (stat.S_ISREG(node.mode) or stat.S_ISDIR(node.mode)):
            raise pyfuse3.FUSEError(errno.EPERM)
        if not self.allowed(c, node.mode, node.uid, node.gid, W):
            raise pyfuse3.FUSEError(errno.EACCES)


def open_want(flags: int) -> int:
    acc = flags & os.O_ACCMODE
    want = {os.O_RDONLY: R, os.O_WRONLY: W, os.O_RDWR: R | W}.get(acc, R | W)
    if flags & os.O_TRUNC:
        want |= W
    return want
