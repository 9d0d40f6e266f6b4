"""Who may do what in the view: the kernel checks, or this daemon does.

``make_policy`` chooses per mount:

* **The kernel checks** (``KernelPolicy``, mounted with
  ``default_permissions``) when the daemon is uid 0 of a user namespace that
  maps more ids than its own: a container's view (mounted inside the
  container's user namespace, see runner/runtime/rootfs.py) and ``dockish mount``
  run by root or by root of a ``unshare --map-auto`` namespace. Root of the
  view is then root of that namespace, so the kernel's own rules are the
  view's: search permission on every directory of a path *also for entries
  the kernel has cached* (it never asks the daemon about those, so a check
  here cannot see them: issue 16's ``/secret`` hole), open modes, sticky
  directories, utimes, truncate, setgid dropped by chmod, and root's
  overrides by the capabilities its process holds in that namespace
  (``--cap-drop DAC_OVERRIDE`` really takes them away). A write, truncate or
  chown that must clear setuid/setgid reaches the daemon as a mode change
  from whoever did it, which the kernel already allowed. What the kernel
  leaves to a filesystem stays here: owners of new files (a setgid
  directory's group) and ``system.*`` xattrs.

* **The daemon checks** (``Policy``) everywhere else: a mount by a user who
  is not uid 0 (``dockish mount IMAGE`` on the host), and a namespace that
  maps one id only (a container without subuid ranges: files of other owners
  are unmapped there, and the kernel would let even root only use their
  "other" bits). The view's owners are the image's, which the mounting user
  usually is not, yet it owns every byte of the store and must read and
  change all of it: it acts as root of its image, which the kernel's checks
  cannot express. Without ``allow_other`` nobody else gets in at all; with
  it, other users get POSIX checks here, and the daemon makes the kernel
  keep no entries (``entry_timeout`` 0) so every path walk asks it about
  every directory. uid 0 passes checks where its capabilities allow, read
  from the caller's ``CapEff`` in /proc only when the plain check fails.
"""
from __future__ import annotations

import errno
import os
import stat
import time

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
    """Permission rules for one mount, checked by the daemon."""

    kernel_checks = False
    mount_options: frozenset[str] = frozenset()

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

    def check_setattr(self, ctx, node, attr, fields, fh) -> int:
        """Refuse a SETATTR as the kernel would (errors in its order: a
        truncate one may not write is EACCES first, then chown, chmod, times);
        returns the permission bits to keep or set."""
        c = self.creds(ctx)
        mode = stat.S_IMODE(attr.st_mode if fields.update_mode else node.mode)
        if fields.update_size and fh is None and not self.allowed(c, node.mode, node.uid,
                                                                  node.gid, W):
            raise pyfuse3.FUSEError(errno.EACCES)
        if fields.update_uid or fields.update_gid:
            self._chown_ok(c, node, attr.st_uid if fields.update_uid else None,
                           attr.st_gid if fields.update_gid else None)
        if fields.update_mode and not self._kills_privs(c, node, mode, fields, fh):
            if not (c.uid == node.uid or self.privileged(c, CAP_FOWNER)):
                raise pyfuse3.FUSEError(errno.EPERM)
            if (mode & stat.S_ISGID and not stat.S_ISDIR(node.mode)
                    and not c.in_group(node.gid) and not self.privileged(c, CAP_FSETID)):
                mode &= ~stat.S_ISGID     # POSIX: a non-member's chmod drops setgid
        if (fields.update_atime or fields.update_mtime) and not (
                c.uid == node.uid or self.privileged(c, CAP_FOWNER)):
            if not _to_now(attr, fields):
                raise pyfuse3.FUSEError(errno.EPERM)  # explicit times: the owner only
            if not self.allowed(c, node.mode, node.uid, node.gid, W):
                raise pyfuse3.FUSEError(errno.EACCES)  # UTIME_NOW: whoever may write
        return mode

    def _kills_privs(self, c: Creds, node, mode: int, fields, fh) -> bool:
        """A mode change that only turns setuid/setgid off: what the kernel
        sends, as the caller, after that caller's write or truncate (which it
        may do: it holds the file open, or may write it) or chown."""
        return _drops_privs_only(node.mode, mode) and (
            fh is not None or fields.update_uid or fields.update_gid
            or self.allowed(c, node.mode, node.uid, node.gid, W))

    def check_delete(self, ctx, parent, node) -> None:
        """W+X on the directory, and the sticky bit's owner rule."""
        c = self.creds(ctx)
        if not self.allowed(c, parent.mode, parent.uid, parent.gid, W | X):
            raise pyfuse3.FUSEError(errno.EACCES)
        if (parent.mode & stat.S_ISVTX and c.uid not in (node.uid, parent.uid)
                and not self.privileged(c, CAP_FOWNER)):
            raise pyfuse3.FUSEError(errno.EPERM)

    def _chown_ok(self, c: Creds, node, uid: int | None, gid: int | None) -> None:
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


class KernelPolicy(Policy):
    """The kernel has checked the request (``default_permissions``, see the
    module's docstring): the daemon only keeps what no kernel check covers."""

    kernel_checks = True
    mount_options = frozenset({"default_permissions"})

    def allowed(self, c: Creds, mode: int, uid: int, gid: int, want: int) -> bool:
        return True

    def check(self, ctx, node, want: int) -> None:
        pass

    def check_setattr(self, ctx, node, attr, fields, fh) -> int:
        return stat.S_IMODE(attr.st_mode if fields.update_mode else node.mode)

    def check_delete(self, ctx, parent, node) -> None:
        pass

    def xattr_ok(self, ctx, node, name: bytes) -> None:
        """The kernel checks user.* and trusted.* and its security module
        security.*; system.* names are the filesystem's to refuse."""
        if name.startswith(b"system.") and not self.privileged(self.creds(ctx), CAP_FOWNER):
            raise pyfuse3.FUSEError(errno.EPERM)


def make_policy() -> Policy:
    """The kernel checks where it can check as POSIX says (this process is
    root of a namespace where others exist), the daemon elsewhere."""
    if os.getuid() == 0 and _ids_mapped("/proc/self/uid_map") > 1 \
            and _ids_mapped("/proc/self/gid_map") > 1:
        return KernelPolicy()
    return Policy()


def _ids_mapped(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(int(line.split()[2]) for line in f if line.strip())
    except (OSError, ValueError, IndexError):
        return 0


def _drops_privs_only(old: int, new: int) -> bool:
    """``new`` is ``old`` with setuid and/or setgid turned off, and no other change."""
    privs = stat.S_ISUID | stat.S_ISGID
    old = stat.S_IMODE(old)
    return new != old and new & ~privs == old & ~privs and not new & ~old


def _to_now(attr, fields) -> bool:
    """Whether a utimensat sets the times to now (UTIME_NOW). pyfuse3 hands
    over the time it read for UTIME_NOW, not the flag; explicit times equal
    to now within a second are no more than UTIME_NOW could do."""
    now = time.time_ns()
    return all(abs(t - now) < 1_000_000_000 for t, on in (
        (attr.st_atime_ns, fields.update_atime), (attr.st_mtime_ns, fields.update_mtime)) if on)


def _as_root(mode: int, want: int) -> bool:
    """Root may do everything, but exec needs some x bit on non-dirs."""
    return not (want & X) or stat.S_ISDIR(mode) or bool(mode & 0o111)


def open_want(flags: int) -> int:
    acc = flags & os.O_ACCMODE
    want = {os.O_RDONLY: R, os.O_WRONLY: W, os.O_RDWR: R | W}.get(acc, R | W)
    if flags & os.O_TRUNC:
        want |= W
    return want
