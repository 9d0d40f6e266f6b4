"""Linux namespaces for an unprivileged user, through libc.

Python 3.11 has no ``os.unshare``/``os.setns``, and util-linux ``unshare`` /
``nsenter`` would cost a fresh interpreter per container, so the few system
calls needed (unshare, setns, mount, umount2, pivot_root, prctl) are called
through ctypes from forked children that are single-threaded, as the kernel
requires for joining or creating a user namespace.

The user namespace is mapped from the outside, as rootless Podman does: the
child unshares, the parent (still on the host) runs the setuid helpers
``newuidmap``/``newgidmap`` with the user's ``/etc/subuid``/``/etc/subgid``
ranges, so uids 0..65536 exist inside. Without ranges the parent writes a
single mapping (the user is root, nobody else exists).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import pwd
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import DockishError

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

# ns file name -> clone flag, in the order setns must join them (user first)
NS_ORDER = [("user", CLONE_NEWUSER), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS),
            ("net", CLONE_NEWNET), ("pid", CLONE_NEWPID), ("mnt", CLONE_NEWNS)]

_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "armv7l": 218, "ppc64le": 203, "s390x": 217,
               "riscv64": 41, "i686": 217}


class NamespaceError(DockishError):
    """A namespace could not be made or joined; the message says why."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


_LIBC = _libc()


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_LIBC.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_LIBC.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def _b(s: str | bytes | None) -> bytes | None:
    return os.fsencode(s) if s is not None else None


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    ret = _LIBC.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} on {target}: {os.strerror(err)}")


def umount2(target: str, flags: int = 0) -> None:
    _check(_LIBC.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {platform.machine()}")
    _check(_LIBC.syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)), "pivot_root")


def prctl(option: int, arg: int) -> None:
    _check(_LIBC.prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl")


def setdomainname(name: str) -> None:
    """The UTS namespace's NIS domain name (``--domainname``)."""
    data = name.encode()
    _check(_LIBC.setdomainname(data, len(data)), "setdomainname")


def sethostname(name: str) -> None:
    data = name.encode()
    _check(_LIBC.sethostname(data, ctypes.c_size_t(len(data))), "sethostname")


# ------------------------------------------------------------------ fds and mount attributes

_SYS_OPENAT2 = 437          # the same number on every architecture (new syscall table)
_SYS_MOUNT_SETATTR = 442
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _syscall_errno(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    """``openat2(2)``: open ``path`` with the kernel's ``RESOLVE_*`` limits
    (a process about to enter a container opens its working directory with
    RESOLVE_NO_MAGICLINKS, so /proc/self/fd/N cannot lead it out)."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    ret = _LIBC.syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd), _b(path),
                        ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
    return _syscall_errno(ret, f"open {path}")


_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
OPEN_TREE_CLONE = 1
AT_EMPTY_PATH = 0x1000
MOVE_MOUNT_F_EMPTY_PATH = 0x4


def clone_mount(fd: int) -> int:
    """``open_tree(OPEN_TREE_CLONE)`` of the mount ``fd`` is on: a detached
    copy (Linux 5.2+), which ``move_mount_to`` attaches elsewhere. The
    mount must be in this process's mount namespace."""
    ret = _LIBC.syscall(ctypes.c_long(_SYS_OPEN_TREE), ctypes.c_int(fd), _b(""),
                        ctypes.c_uint(OPEN_TREE_CLONE | os.O_CLOEXEC | AT_EMPTY_PATH))
    return _syscall_errno(ret, "open_tree")


def move_mount_to(tree: int, target: str) -> None:
    """``move_mount(2)``: attach the detached mount ``tree`` at ``target``."""
    ret = _LIBC.syscall(ctypes.c_long(_SYS_MOVE_MOUNT), ctypes.c_int(tree), _b(""),
                        ctypes.c_int(AT_FDCWD), _b(target),
                        ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH))
    _syscall_errno(ret, f"move_mount {target}")


def mount_setattr_rdonly(target: str) -> None:
    """Make the mount at ``target`` and every mount below it read-only and
    private in one step (``mount_setattr(AT_RECURSIVE)``, Linux 5.12+);
    OSError(ENOSYS) on older kernels."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, MS_PRIVATE, 0)
    ret = _LIBC.syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), _b(target),
                        ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr),
                        ctypes.c_size_t(ctypes.sizeof(attr)))
    _syscall_errno(ret, f"mount_setattr {target}")


def close_fds_except(keep: set[int] | frozenset[int]) -> None:
    """Close every fd above 2 but ``keep`` (close_range(2) per gap, as runc
    does before entering a container: O_CLOEXEC acts only at execve, and a
    directory fd still open at a chdir leads out of the container's root)."""
    lo = 3
    for fd in sorted(k for k in keep if k >= 3):
        if fd > lo:
            os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, 0x7FFFFFFF)


# ------------------------------------------------------------------ id maps

@dataclass(frozen=True)
class IdMapping:
    """How ids map into a container: ``ranges`` are (inside, outside, count)."""

    uids: list[tuple[int, int, int]]
    gids: list[tuple[int, int, int]]

    @property
    def full(self) -> bool:
        return len(self.uids) > 1

    def host_uid(self, uid: int) -> int | None:
        for inside, outside, count in self.uids:
            if inside <= uid < inside + count:
                return outside + uid - inside
        return None


def subid_ranges(name: str, uid: int, text: str) -> list[tuple[int, int]]:
    """The (start, count) ranges of a /etc/subuid-style file for this user
    (by name or number)."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or line.startswith("#"):
            continue
        who, start, count = parts
        if who in (name, str(uid)) and start.isdigit() and count.isdigit() and int(count) > 0:
            out.append((int(start), int(count)))
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


ID_HELPERS = ("newuidmap", "newgidmap")


def privileged(path: str) -> bool:
    """Whether a helper can act beyond the user: setuid root, or file
    capabilities (Fedora ships newuidmap that way)."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_mode & stat.S_ISUID and st.st_uid == 0:
        return True
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def helper_problem() -> str | None:
    """Why ``newuidmap``/``newgidmap`` cannot map subordinate ids (not on
    PATH, or neither setuid root nor with file capabilities), or None."""
    for tool in ID_HELPERS:
        path = shutil.which(tool)
        if path is None:
            return f"{tool} not found"
        if not privileged(path):
            return f"{path} is not setuid root"
    return None


def plan_mapping(uid: int | None = None, gid: int | None = None,
                 subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> IdMapping:
    """The mapping for this user: root inside is the user, then the subordinate
    ranges from 1 up (like rootless Podman); just the user without ranges,
    or when the helpers that map them are missing or not privileged (a
    start would otherwise fail)."""
    uid = os.getuid() if uid is None else uid
    gid = os.getgid() if gid is None else gid
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    if os.environ.get("DOCKISH_USERNS") == "single" or helper_problem():    # no ranges
        ur, gr = [], []
    else:
        ur, gr = subid_ranges(name, uid, _read(subuid)), subid_ranges(name, uid, _read(subgid))
    uids, gids = [(0, uid, 1)], [(0, gid, 1)]
    if ur and gr:
        nxt = 1
        for start, count in ur:
            uids.append((nxt, start, count))
            nxt += count
        nxt = 1
        for start, count in gr:
            gids.append((nxt, start, count))
            nxt += count
    return IdMapping(uids, gids)


def _map_args(ranges: list[tuple[int, int, int]]) -> list[str]:
    return [str(x) for r in ranges for x in r]


def apply_mapping(pid: int, mapping: IdMapping) -> None:
    """Write the id maps of ``pid``'s fresh user namespace (from outside it)."""
    if mapping.full:
        procs = [(tool, subprocess.Popen([tool, str(pid), *_map_args(ranges)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                         text=True))
                 for tool, ranges in (("newuidmap", mapping.uids),
                                      ("newgidmap", mapping.gids))]
        for tool, p in procs:               # both at once: a start waits for them
            _, err = p.communicate()
            if p.returncode != 0:
                raise NamespaceError(f"{tool} failed: {err.strip() or p.returncode}")
        return
    base = f"/proc/{pid}"
    Path(base, "uid_map").write_text(f"0 {mapping.uids[0][1]} 1\n")
    Path(base, "setgroups").write_text("deny\n")
    Path(base, "gid_map").write_text(f"0 {mapping.gids[0][1]} 1\n")


def become_root(mapping: IdMapping) -> None:
    """Inside a freshly mapped namespace: uid/gid 0, no stray groups."""
    if mapping.full:
        os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def join(pid: int, kinds: list[str] | None = None) -> None:
    """Join the namespaces of ``pid`` (user first, mount last). Everything to
    import must be imported before: the host's files are gone afterwards."""
    own = f"/proc/{os.getpid()}/ns"
    fds = []
    for name, flag in NS_ORDER:
        if kinds is not None and name not in kinds:
            continue
        path = f"/proc/{pid}/ns/{name}"
        try:
            if os.stat(path).st_ino == os.stat(f"{own}/{name}").st_ino:
                continue
            fds.append((os.open(path, os.O_RDONLY | os.O_CLOEXEC), flag, name))
        except FileNotFoundError:
            raise NamespaceError(f"process {pid} is gone") from None
    for fd, flag, name in fds:
        try:
            setns(fd, flag)
        except OSError as e:
            raise NamespaceError(f"cannot join the container's {name} namespace: "
                                 f"{e.strerror}") from None
        finally:
            os.close(fd)


def proc_start_time(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot), or None if it is
    gone: with the pid, it names one process even after pid reuse."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def alive(pid: int | None, start_time: int | None) -> bool:
    if not pid:
        return False
    now = proc_start_time(pid)
    return now is not None and (start_time is None or now == start_time)


def in_userns(fn, mapping: IdMapping) -> int:
    """Run ``fn()`` in a forked child that is root of a fresh user namespace
    with this mapping (like ``podman unshare``): it may then remove files
    the container's other uids own. Returns the child's exit code."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r1)
            os.close(w2)
            unshare(CLONE_NEWUSER)
            os.write(w1, b"u")
            if os.read(r2, 1) == b"m":
                become_root(mapping)
                fn()
                code = 0
        except BaseException:       # noqa: BLE001 - the code says it failed
            code = 1
        os._exit(code)
    os.close(w1)
    os.close(r2)
    try:
        if os.read(r1, 1) == b"u":
            apply_mapping(pid, mapping)
            os.write(w2, b"m")
    finally:
        os.close(r1)
        os.close(w2)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)
