"""Preflight: what on this machine keeps rootless containers from working,
each with the exact command that fixes it, before the first container fails
with a raw errno (``dockish check``, and the warnings at the end of
``dockish info``). No click: ``run_checks()`` returns plain records
``{name, ok, required, detail, fix}`` that the CLI prints as a table or JSON.

A failed *required* check means containers (or mounts) cannot work at all;
the others cost a feature (subordinate ids, networking, reflinks, limits).

The checks read the kernel's state through paths that environment variables
can move — for tests only, since an unprivileged test bed cannot change
sysctls or device nodes: ``DOCKISH_PREFLIGHT_PROC`` (default ``/proc``),
``DOCKISH_PREFLIGHT_DEV`` (``/dev``), ``DOCKISH_PREFLIGHT_ETC`` (``/etc``),
``DOCKISH_PREFLIGHT_CGROUP`` (``/sys/fs/cgroup``); ``/etc/subuid`` follows
``DOCKISH_SYSTEM_CONFIG_ROOT`` like the other ``/etc`` files; helpers are looked
up on ``PATH``. The user namespace probe is always real (a forked child really
unshares)."""
from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import stat
from pathlib import Path

from .runtime import namespaces as ns

FICLONE = 0x40049409
MS_REC, MS_PRIVATE = 0x4000, 0x40000


def _root(var: str, default: str) -> Path:
    """A kernel path, moved by ``var`` (tests only; see the module doc)."""
    value = os.environ.get(var)
    return Path(value) if value and os.path.isabs(value) else Path(default)


def _proc() -> Path:
    return _root("DOCKISH_PREFLIGHT_PROC", "/proc")


def _dev() -> Path:
    return _root("DOCKISH_PREFLIGHT_DEV", "/dev")


def _record(name: str, ok: bool, detail: str, fix: str = "", required: bool = False) -> dict:
    return {"name": name, "ok": ok, "required": required, "detail": detail,
            "fix": "" if ok else fix}


def status(rec: dict) -> str:
    """OK, FAIL (a required check failed) or WARN."""
    return "OK" if rec["ok"] else "FAIL" if rec["required"] else "WARN"


def _read_small(path: Path) -> str | None:
    """A /proc or /sys value: regular files only, never blocks on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, 65536).decode(errors="replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


# ------------------------------------------------------------------ user namespaces

# (sysctl file under /proc/sys, value that blocks, name, fix)
_USERNS_SYSCTLS = [
    ("user/max_user_namespaces", "0", "user.max_user_namespaces=0",
     "sudo sysctl -w user.max_user_namespaces=15000 (and set it in /etc/sysctl.d/ to keep it)"),
    ("kernel/unprivileged_userns_clone", "0", "kernel.unprivileged_userns_clone=0",
     "sudo sysctl -w kernel.unprivileged_userns_clone=1 "
     "(and set it in /etc/sysctl.d/ to keep it)"),
    ("kernel/apparmor_restrict_unprivileged_userns", "1",
     "kernel.apparmor_restrict_unprivileged_userns=1 (AppArmor)",
     "sudo scripts/setup in dockish's checkout (loads scripts/apparmor/dockish, a profile "
     "that lets only dockish's own interpreter make user namespaces, then rebuild .venv), "
     "or for every program: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
]


def userns_probe() -> str | None:
    """Really try what a container start does, in a forked child: a new user
    and mount namespace, map ourselves, make the mounts private (AppArmor's
    restriction lets the unshare pass and denies this). None when it works,
    else why not."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        err = b""
        try:
            os.close(r)
            uid, gid = os.getuid(), os.getgid()
            ns.unshare(ns.CLONE_NEWUSER | ns.CLONE_NEWNS)
            Path("/proc/self/uid_map").write_text(f"0 {uid} 1\n")
            Path("/proc/self/setgroups").write_text("deny\n")
            Path("/proc/self/gid_map").write_text(f"0 {gid} 1\n")
            ns.mount(None, "/", None, MS_REC | MS_PRIVATE)
        except OSError as e:
            err = (e.strerror or str(e)).encode()
        except BaseException as e:          # noqa: BLE001 - reported, the child exits
            err = str(e).encode() or b"failed"
        with contextlib.suppress(OSError):
            os.write(w, err)
        os._exit(0)
    os.close(w)
    try:
        out = b""
        while chunk := os.read(r, 4096):
            out += chunk
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return out.decode(errors="replace") or None


def check_userns() -> dict:
    blocking = [(name, fix) for sub, bad, name, fix in _USERNS_SYSCTLS
                if _read_small(_proc() / "sys" / sub) == bad]
    why = userns_probe()
    if why is None:
        detail = "unprivileged user namespaces work"
        if blocking:
            detail += f" ({blocking[0][0]} is set, but does not stop this Python)"
        return _record("user namespaces", True, detail, required=True)
    if blocking:
        name, fix = blocking[0]
        return _record("user namespaces", False, f"blocked by {name}: creating one "
                       f"fails ({why})", fix, required=True)
    return _record("user namespaces", False, f"creating one fails ({why})",
                   "allow unprivileged user namespaces (a seccomp or LSM policy, or a "
                   "container runtime, forbids them here: run dockish on the host, or in a "
                   "container started with --security-opt seccomp=unconfined)", required=True)


# ------------------------------------------------------------------ helpers


def check_idmap_helpers() -> dict:
    problem = ns.helper_problem()
    if problem is None:
        return _record("newuidmap/newgidmap", True, "present and privileged: "
                       + ", ".join(shutil.which(t) or t for t in ns.ID_HELPERS))
    fix = ("sudo apt-get install uidmap" if "not found" in problem
           else f"sudo chmod u+s {' '.join(shutil.which(t) or t for t in ns.ID_HELPERS)}")
    return _record("newuidmap/newgidmap", False, f"{problem}: containers fall back to a "
                   "single mapping (only root exists inside)", fix)


def check_subids() -> dict:
    from registry.trust import system_root
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    etc = system_root() / "etc"
    missing = [f for f in ("subuid", "subgid")
               if not ns.subid_ranges(name, uid, _read_small(etc / f) or "")]
    if not missing:
        return _record("subordinate ids", True, f"{etc}/subuid and subgid have ranges "
                       f"for {name}")
    return _record("subordinate ids", False, f"no {' or '.join(f'{etc}/{m}' for m in missing)} "
                   f"range for {name}: containers get a single mapping (only root exists "
                   "inside)", f"sudo usermod --add-subuids 100000-165535 --add-subgids "
                   f"100000-165535 {name} (any free range of 65536)")


# ------------------------------------------------------------------ devices


def _device(path: Path, what: str) -> str | None:
    """Why ``path`` is not a character device this user can open, or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{path} does not exist"
    except OSError as e:
        return f"{path}: {e.strerror}"
    if not stat.S_ISCHR(st.st_mode):
        return f"{path} is not a character device"
    try:
        os.close(os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError as e:
        return f"{path} cannot be opened for {what} ({e.strerror})"
    return None


def check_fuse() -> dict:
    path = _dev() / "fuse"
    why = _device(path, "reading and writing")
    if why is None:
        return _record("/dev/fuse", True, f"{path} is usable", required=True)
    fix = (f"sudo modprobe fuse (in a container: start it with --device {path})"
           if "does not exist" in why else f"sudo chmod 0666 {path}")
    return _record("/dev/fuse", False, why, fix, required=True)


def check_tun() -> dict:
    path = _dev() / "net" / "tun"
    why = _device(path, "reading and writing")
    if why is None:
        return _record("/dev/net/tun", True, f"{path} is usable (slirp4netns/pasta networks)")
    fix = (f"sudo sh -c 'mkdir -p {path.parent} && mknod -m 0666 {path} c 10 200'"
           if "does not exist" in why else f"sudo chmod 0666 {path}")
    return _record("/dev/net/tun", False, f"{why}: only --network none or host work", fix)


def check_fusermount() -> dict:
    exe = shutil.which("fusermount3")
    if exe is None:
        return _record("fusermount3", False, "fusermount3 not found: images cannot be "
                       "mounted", "sudo apt-get install fuse3", required=True)
    if not ns.privileged(exe):
        return _record("fusermount3", False, f"{exe} is not setuid root: images cannot "
                       "be mounted", f"sudo chown root {exe} && sudo chmod u+s {exe}",
                       required=True)
    mtab = _root("DOCKISH_PREFLIGHT_ETC", "/etc") / "mtab"
    if not os.path.exists(mtab):
        # fusermount3 (libfuse 3.14) reads it to check that a user unmounts
        # only their own mounts; minimal images and containers lack it
        return _record("fusermount3", False, f"{mtab} is missing: fusermount3 mounts "
                       "images but cannot unmount them (`dockish umount`)",
                       f"sudo ln -s ../proc/self/mounts {mtab}", required=True)
    return _record("fusermount3", True, f"{exe} is setuid root", required=True)


def check_network_tools() -> dict:
    found = [t for t in ("pasta", "slirp4netns") if shutil.which(t)]
    if found:
        return _record("slirp4netns/pasta", True, "found: " + ", ".join(found))
    return _record("slirp4netns/pasta", False, "neither found: containers get no network "
                   "but --network host or none", "sudo apt-get install slirp4netns "
                   "(or passt, for pasta)")


# ------------------------------------------------------------------ cgroups


def check_cgroup() -> dict:
    """Which controllers are delegated to the user, and where (so that
    ``--pids-limit``, ``-m`` and ``--cpus`` are applied: runner.runtime.cgroups)."""
    from .runtime import cgroups
    top = _root("DOCKISH_PREFLIGHT_CGROUP", "/sys/fs/cgroup")
    fix_v2 = cgroups.FIX_V2
    if _read_small(top / "cgroup.controllers") is None:
        places = cgroups.delegation(str(top), str(_proc() / "self" / "cgroup"))
        missing = [c for c in ("pids", "memory", "cpu") if c not in places]
        if not missing:
            return _record("cgroups", True, "cgroup v1, delegated: "
                           + cgroups.delegation_text(places)
                           + " (--cgroup-parent, or run inside it: the default parent)")
        fix = cgroups.admin_fix(False, cgroups.user_name())
        if places:
            return _record("cgroups", False, "cgroup v1, delegated: "
                           + cgroups.delegation_text(places) + f"; not {', '.join(missing)}: "
                           "those limits are not applied", fix)
        return _record("cgroups", False, "cgroup v1: no cgroup is delegated to you: "
                       "--pids-limit, -m and --cpus are not applied",
                       fix + "; or boot with systemd.unified_cgroup_hierarchy=1 on the kernel "
                       "command line (cgroup v2), then delegate controllers: " + fix_v2)
    own = ""
    for line in (_read_small(_proc() / "self" / "cgroup") or "").splitlines():
        if line.startswith("0::"):
            own = line[3:].strip().lstrip("/")
    delegated = _read_small(top / own / "cgroup.controllers") if own else None
    if delegated:
        return _record("cgroups", True, f"cgroup v2, delegated to /{own}: {delegated}")
    return _record("cgroups", False, f"cgroup v2, but no controller is delegated to "
                   f"/{own or '?'}: no resource limits", fix_v2)


# ------------------------------------------------------------------ directories


def _fs_type(path: Path) -> str:
    """The filesystem type of the mount holding ``path`` (from mountinfo,
    matched by device number)."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return "unknown"
    want = f"{os.major(dev)}:{os.minor(dev)}"
    best, best_len = "unknown", -1
    real = os.path.realpath(path)
    for line in (_read_small(Path("/proc/self/mountinfo")) or "").splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or fields[2] != want or not right:
            continue
        point = fields[4]
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) > best_len:
            best, best_len = right.split()[0], len(point)
    return best


def check_runtime_dir() -> dict:
    from unionfs import mounts
    try:
        path = mounts.runtime_dir()
    except OSError as e:
        return _record("runtime dir", False, str(e), "set XDG_RUNTIME_DIR to a directory of "
                       "your own (mode 0700)", required=True)
    return _record("runtime dir", True, f"{path} ({_fs_type(path)}, private)", required=True)


def copy_support(store) -> tuple[bool, bool]:
    """(copy_file_range works, reflinks work) between two scratch files in
    the store's tmp dir, which is where copy-ups land."""
    with store.scratch_file() as a, store.scratch_file() as b:
        a.write(b"dockish preflight " * 256)
        a.flush()
        try:
            fcntl.ioctl(b.fileno(), FICLONE, a.fileno())
            reflink = True
        except OSError:
            reflink = False
        try:
            cfr = os.copy_file_range(a.fileno(), b.fileno(), 4096, 0, 0) > 0
        except OSError:
            cfr = False
    return cfr, reflink


def check_store() -> dict:
    from unionfs.layers import LayerStore, default_root
    try:
        root = default_root()
        store = LayerStore(root)
        cfr, reflink = copy_support(store)
    except OSError as e:
        return _record("store", False, str(e), "set DOCKISH_ROOT to a directory of your own "
                       "on a local disk (it is made 0700)", required=True)
    fs = _fs_type(root)
    detail = (f"{root} ({fs}): copy_file_range {'yes' if cfr else 'no'}, reflinks "
              + ("yes (copy-ups are instant)" if reflink else
                 "no (a write to a big lower file copies it whole)"))
    return _record("store", True, detail, required=True)


CHECKS = [check_userns, check_fusermount, check_fuse, check_idmap_helpers, check_subids,
          check_tun, check_network_tools, check_cgroup, check_runtime_dir, check_store]


def run_checks() -> list[dict]:
    """Every check, in the order a container start meets them; a check that
    breaks unexpectedly is a FAIL naming the error, never a traceback."""
    out = []
    for check in CHECKS:
        try:
            out.append(check())
        except Exception as e:              # noqa: BLE001 - one row, not a crash
            name = check.__name__.removeprefix("check_").replace("_", " ")
            out.append(_record(name, False, f"the check itself failed: {e}",
                               "report this as a dockish bug", required=True))
    return out


def problems() -> list[dict]:
    return [r for r in run_checks() if not r["ok"]]


__all__ = ["run_checks", "problems", "status", "userns_probe"]
