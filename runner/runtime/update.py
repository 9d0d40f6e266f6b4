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

import os

from ..errors import DockishError
from .cgroups import memory_swap
from .procopts import MIN_MEMORY, swap_refusal

FIELDS = ("PidsLimit", "Memory", "MemorySwap", "NanoCpus", "CpuShares", "CpuPeriod",
          "CpuQuota")


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
    ncpu = os.cpu_count() or 1
    memory, swap = g["Memory"] or 0, g["MemorySwap"] or 0
    nano, period, quota = g["NanoCpus"] or 0, g["CpuPeriod"] or 0, g["CpuQuota"] or 0
    if 0 < memory < MIN_MEMORY:
        raise refuse("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise refuse("Minimum memoryswap limit should be larger than memory limit, see usage")
    if nano and not 10_000_000 <= nano <= ncpu * 1_000_000_000:
        raise refuse(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} "
                     "CPUs available")
    if nano and period:
        raise refuse("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano and quota:
        raise refuse("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if period and not 1000 <= period <= 1_000_000:
        raise refuse("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s "
                     "(i.e. 1000000)")
    if 0 < quota < 1000:
        raise refuse("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if (g["CpuShares"] or 0) < 0:
        raise refuse(f"invalid CPU shares ({g['CpuShares']}): value must be a positive "
                     "integer")
    old = dict(limits)
    if nano > 0 and old.get("CpuPeriod"):
        raise refuse("Conflicting options: Nano CPUs cannot be updated as CPU Period has "
                     "already been set")
    if nano > 0 and old.get("CpuQuota"):
        raise refuse("Conflicting options: Nano CPUs cannot be updated as CPU Quota has "
                     "already been set")
    if period > 0 and old.get("NanoCpus"):
        raise refuse("Conflicting options: CPU Period cannot be updated as NanoCPUs has "
                     "already been set")
    if quota > 0 and old.get("NanoCpus"):
        raise refuse("Conflicting options: CPU Quota cannot be updated as NanoCPUs has "
                     "already been set")
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
