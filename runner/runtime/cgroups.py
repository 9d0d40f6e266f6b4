"""Resource limits (``--pids-limit``, ``-m``/``--memory``, ``--memory-swap``,
``--cpus``) applied through a cgroup delegated to the user, as Docker and
Podman apply them through theirs.

A rootless user may only make cgroups where an administrator (or systemd)
gave them a subtree of their own: on cgroup v1 a directory of each
controller's hierarchy owned by the user (``scripts/delegate-cgroups``), on
v2 the user's ``user@UID.service`` with controllers in its
``cgroup.subtree_control``. The parent is ``--cgroup-parent`` (absolute:
from the hierarchy's root; relative: under the user's own cgroup, as
Docker reads it relative to the daemon's), else the user's own cgroup
(``/proc/self/cgroup``) when that is delegated. The container gets a child
``<parent>/dockish-<id>`` in each controller its limits need, the limits
written there; its first process and every ``exec``'d one enter it
(``enter``) before the user's command runs; it is removed (``release``)
when the container stops, or by the next command after a killed session,
and what it says about OOM kills is kept for ``inspect``'s
``State.OOMKilled``.

Pure rules first (file names and values for v1 and v2, the parent path,
the warning), then the I/O. Every cgroup path is walked one component at a
time from a directory fd with ``O_NOFOLLOW`` and the delegated directory's
owner is taken from the fd (fstat), so neither a link nor a directory of
someone else is ever written to. The v2 rules are tested as pure functions
only: on the hybrid v1 machine the tests run on, v2 has no controllers to
delegate.
"""
from __future__ import annotations

import errno
import os
import pwd
import stat
import time
from dataclasses import dataclass, field

from ..errors import DockishError, UsageError

TOP = "/sys/fs/cgroup"
CPU_PERIOD = 100_000                    # Docker's CFS period for --cpus (100 ms)
V2 = ""                                 # the unified hierarchy's key in the maps below
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FIX_V2 = ("sudo mkdir -p /etc/systemd/system/user@.service.d && printf '[Service]\\n"
          "Delegate=cpu cpuset io memory pids\\n' | sudo tee /etc/systemd/system/"
          "user@.service.d/delegate.conf && sudo systemctl daemon-reload "
          "(then log in again)")


class CgroupError(DockishError):
    """The container's cgroup could not be made, entered or filled."""


# ------------------------------------------------------------------ pure rules

def memory_swap(limits: dict) -> int:
    """Docker's MemorySwap: as given (-1: unlimited swap), else twice
    ``--memory`` when that is set (the daemon's default), else 0."""
    if limits.get("MemorySwap"):
        return int(limits["MemorySwap"])
    return 2 * int(limits["Memory"]) if limits.get("Memory") else 0


def cpu_quota(nano_cpus: int) -> int:
    """``--cpus`` as a CFS quota per ``CPU_PERIOD`` (Docker's arithmetic)."""
    return nano_cpus * CPU_PERIOD // 1_000_000_000


def v1_files(limits: dict, memsw: bool = True) -> dict[str, list[tuple[str, str]]]:
    """controller -> [(file, value)] in the order they must be written
    (the memory limit before memory+swap, which may not be below it; the
    period before the quota). ``memsw``: the kernel accounts swap."""
    out: dict[str, list[tuple[str, str]]] = {}
    if (limits.get("PidsLimit") or 0) > 0:
        out["pids"] = [("pids.max", str(limits["PidsLimit"]))]
    if limits.get("Memory"):
        out["memory"] = [("memory.limit_in_bytes", str(limits["Memory"]))]
        swap = memory_swap(limits)
        if memsw and swap > 0:
            out["memory"].append(("memory.memsw.limit_in_bytes", str(swap)))
    cpu = [("cpu.shares", str(limits["CpuShares"]))] if limits.get("CpuShares") else []
    period, quota = cfs(limits)
    if period:
        cpu.append(("cpu.cfs_period_us", str(period)))
    if quota:
        cpu.append(("cpu.cfs_quota_us", str(quota)))
    if cpu:
        out["cpu"] = cpu
    return out


def cfs(limits: dict) -> tuple[int, int]:
    """(period, quota) in µs, 0 for "not set": from ``--cpus`` (Docker's
    100 ms period), else ``--cpu-period``/``--cpu-quota`` as given."""
    if limits.get("NanoCpus"):
        return CPU_PERIOD, cpu_quota(limits["NanoCpus"])
    return int(limits.get("CpuPeriod") or 0), int(limits.get("CpuQuota") or 0)


def cpu_weight(shares: int) -> int:
    """``--cpu-shares`` (2..262144) as v2's cpu.weight (1..10000), runc's formula."""
    return 1 + ((shares - 2) * 9999) // 262142


def v2_files(limits: dict) -> list[tuple[str, str]]:
    """[(file, value)] of the one v2 directory: ``pids.max``,
    ``memory.max`` and ``memory.swap.max`` (swap alone on v2: MemorySwap
    minus Memory, ``max`` for -1), ``cpu.max`` ("QUOTA PERIOD")."""
    out = []
    if (limits.get("PidsLimit") or 0) > 0:
        out.append(("pids.max", str(limits["PidsLimit"])))
    if limits.get("Memory"):
        out.append(("memory.max", str(limits["Memory"])))
        swap = memory_swap(limits)
        out.append(("memory.swap.max", "max" if swap < 0 else str(swap - limits["Memory"])))
    if limits.get("CpuShares"):
        out.append(("cpu.weight", str(cpu_weight(limits["CpuShares"]))))
    period, quota = cfs(limits)
    if period or quota:
        out.append(("cpu.max", f"{quota if quota > 0 else 'max'} {period or CPU_PERIOD}"))
    return out


def v2_controllers(limits: dict) -> list[str]:
    """The controllers a v2 parent must enable for its children."""
    return sorted({f.split(".")[0] for f, _ in v2_files(limits)})


def own_cgroups(text: str) -> dict[str, tuple[str, str]]:
    """``/proc/self/cgroup`` as controller -> (the hierarchy's directory
    under /sys/fs/cgroup, the path in it); v2's under the key ``V2``
    (directory ""). Co-mounted controllers (``cpu,cpuacct``) share one."""
    out: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        _, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        if not path:
            continue
        if not names:
            out[V2] = ("", path)
        for name in names.split(","):
            if name and not name.startswith("name="):
                out[name] = (names, path)
    return out


def parent_path(parent: str, own: str) -> str:
    """The parent cgroup's path in its hierarchy: ``--cgroup-parent``
    absolute from the root, relative under ``own`` (the user's cgroup),
    none given: ``own``. '..' is refused: a parent is named, not climbed to."""
    if not parent:
        return own
    parts = [p for p in parent.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise UsageError(f"invalid --cgroup-parent {parent!r}: '.' and '..' are not allowed")
    base = [] if parent.startswith("/") else [p for p in own.split("/") if p]
    return "/" + "/".join(base + parts)


def child_name(cid: str) -> str:
    return f"dockish-{cid}"


def oom_kills(text: str) -> int:
    """The ``oom_kill N`` count of v1's memory.oom_control or v2's memory.events."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip().isdigit():
            return int(value)
    return 0


def admin_fix(v2: bool, user: str) -> str:
    """The administrator's command that delegates a cgroup to ``user``."""
    if v2:
        return FIX_V2
    return (f"sudo sh -c 'for c in pids memory cpu; do mkdir -p /sys/fs/cgroup/$c/"
            f"dockish-{user} && chown -R {user} /sys/fs/cgroup/$c/dockish-{user}; done' "
            f"(dockish's scripts/delegate-cgroups {user}), then run with --cgroup-parent "
            f"/dockish-{user}")


def not_applied(why: str, v2: bool, user: str) -> str:
    """The one warning line: why no limit is applied and how an admin fixes it."""
    return (f"WARNING: Resource limits are not applied: {why}; an admin delegates one: "
            f"{admin_fix(v2, user)}")


# ------------------------------------------------------------------ finding the parent

@dataclass
class Placement:
    """Where a container's cgroups go: hierarchy directory -> parent path
    in it, and the files each child gets (both keyed the same way)."""

    v2: bool
    parents: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def is_v2(top: str = TOP) -> bool:
    return os.path.exists(os.path.join(top, "cgroup.controllers"))


def _own(proc: str) -> dict[str, tuple[str, str]]:
    try:
        with open(proc, encoding="utf-8", errors="replace") as f:
            return own_cgroups(f.read(65536))
    except OSError:
        return {}


def _walk(top_fd: int, parts: list[str]) -> int:
    """An fd on ``parts`` below ``top_fd``, one component at a time, never
    through a link (ELOOP/ENOTDIR instead)."""
    fd = os.dup(top_fd)
    try:
        for p in parts:
            nfd = os.open(p, _DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _split(*paths: str) -> list[str]:
    return [p for path in paths for p in path.split("/") if p]


def _open_top(top: str) -> int:
    return os.open(top, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _open_cgroup(top: str, rel: str) -> int:
    """An fd on the cgroup ``rel`` below ``top``, walked as ``_walk`` does."""
    top_fd = _open_top(top)
    try:
        return _walk(top_fd, _split(rel))
    finally:
        os.close(top_fd)


def _delegated(fd: int) -> bool:
    """The directory is the user's own and writable by them (fstat of an fd
    opened O_NOFOLLOW: the directory itself, never a link's target)."""
    st = os.fstat(fd)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and \
        bool(st.st_mode & stat.S_IWUSR)


def _read_at(fd: int, name: str) -> str:
    f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    try:
        return os.read(f, 65536).decode(errors="replace")
    finally:
        os.close(f)


def find(process: dict, top: str = TOP, proc: str = "/proc/self/cgroup") -> Placement | str:
    """Where the limits of ``process`` (procopts' record) go, or why they
    cannot: a Placement with no files when none were asked for."""
    limits = process.get("limits") or {}
    if not limits:
        return Placement(False)          # the usual start: no I/O at all
    v2 = is_v2(top)
    own = _own(proc)
    wanted = {V2: v2_files(limits)} if v2 else v1_files(limits)
    if not any(wanted.values()):
        return Placement(v2)
    place = Placement(v2)
    top_fd = _open_top(top)
    try:
        for ctrl, files in wanted.items():
            if not files:
                continue
            if ctrl not in own:
                return f"this process is in no {ctrl or 'v2'} cgroup"
            hier, mine = own[ctrl]
            path = parent_path(process.get("cgroup_parent") or "", mine)
            shown = os.path.join(top, hier, path.lstrip("/")).rstrip("/")
            try:
                fd = _walk(top_fd, _split(hier, path))
            except OSError as e:
                return f"the cgroup {shown} cannot be used ({os.strerror(e.errno).lower()})"
            try:
                if not _delegated(fd):
                    return f"the cgroup {shown} is not delegated to you"
                if v2:
                    enabled = set(_read_at(fd, "cgroup.subtree_control").split())
                    missing = [c for c in v2_controllers(limits) if c not in enabled]
                    if missing:
                        return (f"the {' '.join(missing)} controllers are not enabled for "
                                f"the children of {shown} (cgroup v2)")
                elif ctrl == "memory":
                    try:
                        os.stat("memory.memsw.limit_in_bytes", dir_fd=fd,
                                follow_symlinks=False)
                    except FileNotFoundError:      # no swap accounting: memory alone
                        files = v1_files(limits, memsw=False)["memory"]
            finally:
                os.close(fd)
            place.parents[hier] = path
            place.files[hier] = files
    finally:
        os.close(top_fd)
    return place


def user_name() -> str:
    """The user's login name (the ``dockish-USER`` of the admin's command)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def note(process: dict) -> str | None:
    """The one warning line when limits were asked for and cannot be
    applied here (None: nothing asked, or they will be)."""
    if not process.get("limits"):
        return None
    try:
        place = find(process)
    except OSError as e:
        place = f"{TOP} cannot be read ({os.strerror(e.errno).lower()})"
    if isinstance(place, Placement):
        return None
    return not_applied(place, is_v2(), user_name())


# ------------------------------------------------------------------ making, entering, removing

@dataclass
class Cgroups:
    """A container's cgroups for one start: their paths under ``TOP`` (kept
    in its state) and open ``cgroup.procs`` fds its first process writes
    itself into (``enter``)."""

    paths: list[str]
    procs: list[int]

    def close(self) -> None:
        for fd in self.procs:
            try:
                os.close(fd)
            except OSError:
                pass
        self.procs = []


def make(cid: str, process: dict, top: str = TOP) -> Cgroups | None:
    """The container's child cgroups with its limits written (None: no
    limits asked, or nowhere to apply them: the warning said so at
    create). CgroupError when a delegated parent refuses."""
    try:
        place = find(process, top)
    except OSError:
        return None
    if not isinstance(place, Placement) or not place.files:
        return None
    made = Cgroups([], [])
    top_fd = _open_top(top)
    try:
        for hier, parent in place.parents.items():
            rel = "/".join(_split(hier, parent, child_name(cid)))
            pfd = _walk(top_fd, _split(hier, parent))
            try:
                _mkdir_fresh(pfd, child_name(cid))
                made.paths.append(rel)
                cfd = os.open(child_name(cid), _DIR, dir_fd=pfd)
            finally:
                os.close(pfd)
            try:
                for name, value in place.files[hier]:
                    try:
                        _write_at(cfd, name, value)
                    except FileNotFoundError:
                        if ".swap." not in name and ".memsw." not in name:
                            raise          # no swap accounting: the memory limit alone
                made.procs.append(os.open("cgroup.procs", os.O_WRONLY | os.O_NOFOLLOW |
                                          os.O_CLOEXEC, dir_fd=cfd))
            finally:
                os.close(cfd)
    except OSError as e:
        made.close()
        release(made.paths, top)
        raise CgroupError(f"cannot make the container's cgroup: {_why(e)}") from None
    finally:
        os.close(top_fd)
    return made


def _why(e: OSError) -> str:
    text = os.strerror(e.errno) if e.errno else str(e)
    return f"{text}: {e.filename}" if e.filename else text


def _mkdir_fresh(pfd: int, name: str) -> None:
    """The child, made anew: one a killed start left behind (empty: its
    processes are gone) is removed first."""
    try:
        os.mkdir(name, 0o755, dir_fd=pfd)
    except FileExistsError:
        os.rmdir(name, dir_fd=pfd)
        os.mkdir(name, 0o755, dir_fd=pfd)


def _write_at(fd: int, name: str, value: str) -> None:
    f = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    try:
        try:
            os.write(f, value.encode())
        except OSError as e:
            e.filename = f"{name}={value}"
            raise
    finally:
        os.close(f)


def open_procs(paths: list[str], top: str = TOP) -> list[int]:
    """``cgroup.procs`` of a running container's cgroups, for an ``exec``'d
    process to enter (CgroupError if one is gone)."""
    fds: list[int] = []
    if not paths:
        return fds
    top_fd = _open_top(top)
    try:
        for rel in paths:
            d = _walk(top_fd, _split(rel))
            try:
                fds.append(os.open("cgroup.procs", os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                   dir_fd=d))
            finally:
                os.close(d)
    except OSError as e:
        for fd in fds:
            os.close(fd)
        raise CgroupError(f"cannot enter the container's cgroup: {_why(e)}") from None
    finally:
        os.close(top_fd)
    return fds


def enter(procs: list[int]) -> None:
    """Move the calling process into each cgroup ("0": itself), then close
    the fds. Done by the process itself while its uid is still the user's,
    before it runs the user's command: what it forks after is inside too."""
    try:
        for fd in procs:
            os.write(fd, b"0")
    except OSError as e:
        raise CgroupError(f"cannot enter the container's cgroup: {_why(e)}") from None
    finally:
        for fd in procs:
            try:
                os.close(fd)
            except OSError:
                pass
        procs.clear()


def release(paths: list[str], top: str = TOP) -> tuple[bool, list[str]]:
    """Remove the container's cgroups (its processes are gone; a moment's
    EBUSY while the last ones exit is waited out): whether the kernel's OOM
    killer killed anything in them, and those still there (for the next
    command to try again, as it does after a killed session)."""
    oom, left = False, []
    try:
        top_fd = _open_top(top)
    except OSError:
        return False, list(paths)
    try:
        for rel in paths:
            parts = _split(rel)
            if not parts:
                continue
            try:
                pfd = _walk(top_fd, parts[:-1])
            except OSError:
                continue
            try:
                oom = _oom_in(pfd, parts[-1]) or oom
                if not _rmdir_waiting(pfd, parts[-1]):
                    left.append(rel)
            finally:
                os.close(pfd)
    finally:
        os.close(top_fd)
    return oom, left


def _oom_in(pfd: int, name: str) -> bool:
    try:
        d = os.open(name, _DIR, dir_fd=pfd)
    except OSError:
        return False
    try:
        for f in ("memory.oom_control", "memory.events"):
            try:
                return oom_kills(_read_at(d, f)) > 0
            except OSError:
                continue
        return False
    finally:
        os.close(d)


def _rmdir_waiting(pfd: int, name: str, timeout: float = 2.0) -> bool:
    """rmdir, waiting out EBUSY for ``timeout``; whether it is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(name, dir_fd=pfd)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
            time.sleep(0.02)


def release_container(c) -> None:
    """``release`` for a container whose processes are gone: its state's
    cgroups removed, ``oom_killed`` recorded (for inspect's OOMKilled)."""
    st = c.state()
    paths = st.get("cgroups") or []
    if not paths:
        return
    oom, left = release(paths)
    try:
        c.write_state(cgroups=left, oom_killed=bool(st.get("oom_killed")) or oom)
    except FileNotFoundError:
        pass                     # removed meanwhile


def release_stale(c) -> None:
    """The clean-up after a killed session (run by the next command, as
    for the container's other state): a container that no longer runs,
    whose cgroups' owner (the process that made them and would have
    removed them) is gone too, loses its cgroups. A start under way is
    left alone: its owner lives."""
    from . import namespaces as ns
    st = c.state()
    if not st.get("cgroups") or c.running:
        return
    owner = st.get("cgroups_owner") or [None, None]
    if not ns.alive(owner[0], owner[1] if len(owner) > 1 else None):
        release_container(c)


# ------------------------------------------------------------------ what info and check say

def delegation(top: str = TOP, proc: str = "/proc/self/cgroup") -> dict[str, str]:
    """controller -> the parent path delegated to the user for it: their own
    cgroup (the default parent) if it is theirs, else ``/dockish-USER``
    (what ``scripts/delegate-cgroups`` makes) for v1's pids, memory and
    cpu; on v2 the controllers enabled below their own cgroup."""
    own = _own(proc)
    out: dict[str, str] = {}
    try:
        top_fd = _open_top(top)
    except OSError:
        return out
    try:
        if is_v2(top):
            path = own.get(V2, ("", ""))[1]
            if path and _is_delegated(top_fd, _split(path)):
                fd = _walk(top_fd, _split(path))
                try:
                    enabled = _read_at(fd, "cgroup.subtree_control").split()
                except OSError:
                    enabled = []
                finally:
                    os.close(fd)
                out.update({c: path for c in enabled})
            return out
        for ctrl in ("pids", "memory", "cpu"):
            if ctrl not in own:
                continue
            hier, mine = own[ctrl]
            for cand in (mine, f"/dockish-{user_name()}"):
                if _is_delegated(top_fd, _split(hier, cand)):
                    out[ctrl] = cand
                    break
    finally:
        os.close(top_fd)
    return out


def _is_delegated(top_fd: int, parts: list[str]) -> bool:
    try:
        fd = _walk(top_fd, parts)
    except OSError:
        return False
    try:
        return _delegated(fd)
    finally:
        os.close(fd)


def delegation_text(places: dict[str, str]) -> str:
    """``pids, memory, cpu at /dockish-u`` (grouped by parent), or ``none``."""
    by_path: dict[str, list[str]] = {}
    for ctrl, path in places.items():
        by_path.setdefault(path, []).append(ctrl)
    return "; ".join(f"{', '.join(ctrls)} at {path}" for path, ctrls in by_path.items()) \
        or "none"


# ------------------------------------------------------------------ reading and changing a live one

def read_files(rel: str, names: tuple[str, ...], top: str = TOP) -> dict[str, str]:
    """The named files of one of a container's cgroups (``rel``: a path of
    its state's ``cgroups``), walked by fd with O_NOFOLLOW; a file that
    cannot be read (the controller lacks it, the cgroup is gone) is left out."""
    out: dict[str, str] = {}
    try:
        fd = _open_cgroup(top, rel)
    except OSError:
        return out
    try:
        for name in names:
            try:
                out[name] = _read_at(fd, name)
            except OSError:
                continue
    finally:
        os.close(fd)
    return out


def unlimited_files(v2: bool) -> dict[str, list[tuple[str, str]]]:
    """What each controller's files say for "no limit", written when an
    update takes a limit away (``--pids-limit -1``): v1's -1 and max, v2's max."""
    if v2:
        return {V2: [("pids.max", "max"), ("memory.swap.max", "max"), ("memory.max", "max"),
                     ("cpu.max", f"max {CPU_PERIOD}")]}
    return {"pids": [("pids.max", "max")],
            "memory": [("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")],
            "cpu": [("cpu.cfs_quota_us", "-1")]}


def _hier_of(rel: str, v2: bool) -> str:
    """The hierarchy key of a state's cgroup path (its first component on
    v1, ``V2`` on v2)."""
    return V2 if v2 else rel.split("/", 1)[0]


def update(cid: str, paths: list[str], process: dict, pids: list[int],
           top: str = TOP) -> tuple[list[str], list[str]]:
    """Apply ``process``'s (updated) limits to a running container at once:
    written into the cgroups it has (``paths``, its state's), a limit taken
    away set back to unlimited; a controller it has no cgroup for yet gets
    one, made as ``make`` does, and the container's processes (``pids``)
    are moved into it. Returns (its cgroups now, warnings): a warning
    when nothing is delegated, or when a process could not be moved (the
    kernel lets the user move only processes running as their own uid)."""
    v2 = is_v2(top)
    limits = process.get("limits") or {}
    wanted = {V2: v2_files(limits)} if v2 else v1_files(limits)
    free = unlimited_files(v2)
    have = {_hier_of(rel, v2): rel for rel in paths}
    warnings: list[str] = []
    for rel in paths:                           # the ones it has: new values, or none
        hier = _hier_of(rel, v2)
        ctrls = [V2] if v2 else hier.split(",")
        files = [f for c in ctrls for f in wanted.get(c, [])] or \
            [f for c in ctrls for f in free.get(c, [])]
        if v2:
            names = {n for n, _ in files}
            files += [f for f in free[V2] if f[0] not in names]
        _write_live(rel, files, top)
    missing = {c: f for c, f in wanted.items() if f and not any(
        c in h.split(",") or c == h for h in have)}
    if not missing:
        return list(paths), warnings
    try:
        place = find({**process, "limits": limits}, top)
    except OSError as e:
        place = f"{top} cannot be read ({os.strerror(e.errno).lower()})"
    if not isinstance(place, Placement):
        return list(paths), [not_applied(place, v2, user_name())]
    made = list(paths)
    top_fd = _open_top(top)
    try:
        for hier, parent in place.parents.items():
            if hier in have or not any(c in missing for c in (hier.split(",") or [V2])):
                continue
            rel = "/".join(_split(hier, parent, child_name(cid)))
            pfd = _walk(top_fd, _split(hier, parent))
            try:
                _mkdir_fresh(pfd, child_name(cid))
            finally:
                os.close(pfd)
            made.append(rel)
            _write_live(rel, place.files[hier], top)
            refused = _move(top_fd, rel, pids)
            if refused:
                warnings.append(f"WARNING: {refused} of the container's processes could not "
                                f"be moved into its new cgroup {rel} (they run as another "
                                "uid): the limit applies to the others and to new ones")
    except OSError as e:
        raise CgroupError(f"cannot make the container's cgroup: {_why(e)}") from None
    finally:
        os.close(top_fd)
    return made, warnings


def _write_live(rel: str, files: list[tuple[str, str]], top: str) -> None:
    """Write ``files`` into a live cgroup; on EINVAL once more in the other
    order (v1 takes a memory limit above the memory+swap one only after
    that one is raised, and a lower memory+swap only after memory is lowered)."""
    try:
        fd = _open_cgroup(top, rel)
    except OSError as e:
        raise CgroupError(f"cannot update the container's cgroup: {_why(e)}") from None
    try:
        for attempt in (files, list(reversed(files))):
            try:
                for name, value in attempt:
                    try:
                        _write_at(fd, name, value)
                    except FileNotFoundError:
                        if ".swap." not in name and ".memsw." not in name:
                            raise
                return
            except OSError as e:
                if e.errno != errno.EINVAL or attempt is not files:
                    raise CgroupError(f"cannot update the container's cgroup: {_why(e)}") \
                        from None
    finally:
        os.close(fd)


def _move(top_fd: int, rel: str, pids: list[int]) -> int:
    """Write each pid into the cgroup's cgroup.procs; how many were refused."""
    d = _walk(top_fd, _split(rel))
    try:
        fd = os.open("cgroup.procs", os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=d)
    finally:
        os.close(d)
    refused = 0
    try:
        for pid in pids:
            try:
                os.write(fd, str(pid).encode())
            except ProcessLookupError:
                continue
            except OSError:
                refused += 1
    finally:
        os.close(fd)
    return refused
