"""``update``: a container's resource limits and restart policy changed
after create, by the daemon's rules (moby's ``UpdateContainer`` and
``verifyContainerResources``), in its words. Pure: the engine records the
result and ``runner.runtime.cgroups.update`` writes it into a running
container's cgroups.

A value of 0 (or none) leaves that limit as it is, as Docker's update
does; ``PidsLimit`` 0 or less takes the pids limit away; ``MemorySwap`` -1
is unlimited swap.
"""
from __future__ import annotations

from ..errors import DockishError
from .cgroups import memory_swap
from .procopts import MIN_MEMORY, cpu_refusal, swap_refusal

FIELDS = ("PidsLimit", "Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpuPeriod",
          "CpuQuota")


# a CPU limit that cannot be updated once another was set: (field updated,
# field set before, their names in the daemon's words)
_CONFLICTS = (("NanoCpus", "CpuPeriod", "Nano CPUs", "CPU Period"),
              ("NanoCpus", "CpuQuota", "Nano CPUs", "CPU Quota"),
              ("CpuPeriod", "NanoCpus", "CPU Period", "NanoCPUs"),
              ("CpuQuota", "NanoCpus", "CPU Quota", "NanoCPUs"))


class UpdateError(DockishError):
    """An update the daemon refuses (``Cannot update container ID: ...``):
    the docker CLI's ``Error response from daemon`` and exit 1."""

    exit_code = 1
    from_daemon = True


def merged(limits: dict, given: dict, cid: str) -> dict:
    """The container's limits (``limits``: procopts' record) after
    ``given`` (Docker's field names; 0/None: unchanged) is applied."""
    def refuse(why: str) -> UpdateError:
        return UpdateError(f"Cannot update container {cid}: {why}")

    g = {k: given.get(k) for k in FIELDS}
    memory, swap = g["Memory"] or 0, g["MemorySwap"] or 0
    nano, period, quota = g["NanoCpus"] or 0, g["CpuPeriod"] or 0, g["CpuQuota"] or 0
    if 0 < memory < MIN_MEMORY:
        raise refuse("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise refuse("Minimum memoryswap limit should be larger than memory limit, see usage")
    why = cpu_refusal(nano, g["CpuShares"], period, quota)
    if why:
        raise refuse(why)
    old = dict(limits)
    for field, before, name, before_name in _CONFLICTS:
        if (g[field] or 0) > 0 and old.get(before):
            raise refuse(f"Conflicting options: {name} cannot be updated as {before_name} "
                         "has already been set")
    new = dict(old)
    if memory:
        if memory > memory_swap(old) and not swap:
            raise refuse("Memory limit should be smaller than already set memoryswap limit, "
                         "update the memoryswap at the same time")
        new["Memory"] = memory
        new.setdefault("MemorySwap", memory_swap(old))     # kept as it was, not 2x anew
    if swap:
        why = swap_refusal(new.get("Memory") or 0, swap)
        if why:
            raise refuse(why)
        new["MemorySwap"] = swap
    for key, value in (("NanoCpus", nano), ("CpuPeriod", period), ("CpuQuota", quota)):
        if value:
            new[key] = value
    if g["CpuShares"]:
        new["CpuShares"] = min(max(g["CpuShares"], 2), 262144)
    if g["PidsLimit"] is not None:
        if g["PidsLimit"] > 0:
            new["PidsLimit"] = g["PidsLimit"]
        else:
            new.pop("PidsLimit", None)
    return new


def restart_policy(text_or_policy, auto_remove: bool, cid: str) -> dict | None:
    """The new ``RestartPolicy`` (``--restart``'s text or the API's object;
    None: unchanged), refused for a ``--rm`` container as the daemon does."""
    from .restart import from_docker, parse
    if not text_or_policy:
        return None
    policy = parse(text_or_policy) if isinstance(text_or_policy, str) \
        else from_docker(text_or_policy)
    if auto_remove and not policy.none:
        raise UpdateError(f"Cannot update container {cid}: Restart policy cannot be updated "
                          "because AutoRemove is enabled for the container")
    return policy.as_docker()
