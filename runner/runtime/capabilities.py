"""Linux capabilities a container's processes may hold: Docker's default
set, changed by ``--cap-add``/``--cap-drop``, all with ``--privileged``.

Root of a user namespace holds every capability *in that namespace*, so
without this a container's root could unmount the read-only /proc/sys or a
read-only bind and mount what it likes over its own view. The set is
enforced through the bounding set (dropped before the container's command
is executed, so setuid binaries cannot regain what was dropped either).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import DockishError

NAMES = ("CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
         "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
         "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
         "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
         "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
         "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
         "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE")
"""Capability names by number, as in linux/capability.h."""

DEFAULT = frozenset({"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW",
                     "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE",
                     "SYS_CHROOT", "KILL", "AUDIT_WRITE"})
"""Docker's default capabilities (moby's ``oci/caps/defaults.go``)."""

_PR_CAPBSET_DROP = 24


class CapabilityError(DockishError, ValueError):
    """An unknown capability name."""


def _name(text: str) -> str:
    name = text.strip().upper().removeprefix("CAP_")
    if name != "ALL" and name not in NAMES:
        raise CapabilityError(f'unknown capability: "{text}"')
    return name


def resolve(add: list[str], drop: list[str], privileged: bool = False) -> list[str]:
    """The names a container keeps, sorted. Docker's order: drops apply to
    the default set, then adds (``ALL`` in either means every capability)."""
    if privileged:
        return sorted(NAMES)
    adds = {_name(a) for a in add}
    drops = {_name(d) for d in drop}
    keep = set() if "ALL" in drops else set(DEFAULT) - drops
    keep |= set(NAMES) if "ALL" in adds else adds
    return sorted(keep)


def limit_bounding(keep: list[str]) -> None:
    """Drop every capability not in ``keep`` from this process's bounding
    set (needs CAP_SETPCAP: call as root of the container's namespace)."""
    from . import namespaces as ns
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = len(NAMES) - 1
    kept = {NAMES.index(k) for k in keep}
    for cap in range(last + 1):
        if cap not in kept:
            ns.prctl(_PR_CAPBSET_DROP, cap)
