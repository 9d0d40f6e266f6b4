"""``--security-opt seccomp=FILE``: a Docker seccomp profile (JSON) loaded
with the system's libseccomp (through ctypes: no Python binding is needed).

What is applied: ``defaultAction`` (+ ``defaultErrnoRet``) and each
``syscalls`` entry's ``names``/``action``/``errnoRet``/``args``, with its
``includes``/``excludes`` of ``arches`` and ``caps`` as Docker applies
them; names the kernel does not know are skipped, as Docker skips them.
``check`` turns a profile that cannot be applied into one line before a
container is made; ``load`` runs in the container's init.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import platform

from ..errors import DockishError

ACTIONS = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000,
           "SCMP_ACT_KILL_PROCESS": 0x80000000, "SCMP_ACT_TRAP": 0x00030000,
           "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
           "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000}
OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
       "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
SCMP_FLTATR_CTL_NNP = 3
ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(
    platform.machine(), "")
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


class SeccompError(DockishError):
    """A profile that cannot be applied here."""


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _library():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        raise SeccompError("seccomp profiles need libseccomp (the libseccomp2 package), "
                           "which is not installed") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                           ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


def _action(name: str, errno_ret: int | None) -> int:
    if name not in ACTIONS:
        raise SeccompError(f"seccomp profile: unknown action {name!r}")
    value = ACTIONS[name]
    if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"):
        value |= (errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return value


def _applies(entry: dict, caps: set[str]) -> bool:
    """Docker's includes/excludes of an entry (arches and capabilities)."""
    inc, exc = entry.get("includes") or {}, entry.get("excludes") or {}
    if inc.get("arches") and GO_ARCH not in inc["arches"]:
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if exc.get("arches") and GO_ARCH in exc["arches"]:
        return False
    return not (exc.get("caps") and set(exc["caps"]) & caps)


def rules(profile: dict, caps: set[str]) -> tuple[int, list[tuple[str, int, list[tuple]]]]:
    """(default action, [(syscall name, action, [(arg, op, a, b)...])])
    of a profile; SeccompError when it is not one Docker would take."""
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise SeccompError("decoding seccomp profile failed: no defaultAction")
    default = _action(profile["defaultAction"], profile.get("defaultErrnoRet"))
    out = []
    for entry in profile.get("syscalls") or []:
        if not isinstance(entry, dict) or not _applies(entry, caps):
            continue
        action = _action(entry.get("action", ""), entry.get("errnoRet"))
        args = []
        for a in entry.get("args") or []:
            if a.get("op") not in OPS:
                raise SeccompError(f"seccomp profile: unknown operator {a.get('op')!r}")
            args.append((int(a.get("index", 0)), OPS[a["op"]], int(a.get("value", 0)),
                         int(a.get("valueTwo", 0))))
        names = list(entry.get("names") or []) + ([entry["name"]] if entry.get("name") else [])
        out += [(n, action, args) for n in names]
    return default, out


def check(text: str, caps: set[str]) -> None:
    """Refuse, as one line, a profile that could not be loaded."""
    _library()
    rules(json.loads(text), caps)


def load(text: str, caps: set[str]) -> None:
    """Load the profile into this process (inherited by what it executes).
    Called while it is still root of its user namespace, so the kernel
    takes the filter without no_new_privs (as Docker's runtime does)."""
    lib = _library()
    default, entries = rules(json.loads(text), caps)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise SeccompError("seccomp: cannot make a filter")
    try:
        lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)
        for name, action, args in entries:
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0 or action == default:
                continue                   # unknown here, or already the default
            arr = (_ArgCmp * len(args))(*[_ArgCmp(*a) for a in args]) if args else None
            rc = lib.seccomp_rule_add_array(ctx, action, nr, len(args), arr)
            if rc < 0 and rc != -errno.EEXIST:
                raise SeccompError(f"seccomp: rule for {name}: {errno.errorcode.get(-rc, rc)}")
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise SeccompError(f"seccomp: cannot load the profile: {errno.errorcode.get(-rc, rc)}")
    finally:
        lib.seccomp_release(ctx)
