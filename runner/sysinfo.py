"""What this installation is and can do (``info``): counts of the
store's containers and images, id ranges, networks, init binary, cgroup
version, kernel and machine. No click: the CLI and the API both show it."""
from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path


def version() -> str:
    """dockish's installed version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version
    try:
        return dist_version("dockish")
    except PackageNotFoundError:
        return "unknown"


def info(root: Path) -> dict:
    """What ``info`` (and the API's ``GET /info``) report for the store at
    ``root``, with Docker's field names where they fit."""
    from .runtime import namespaces as ns
    from .runtime.container import Containers
    every = Containers(root).all()
    running = [c for c in every if c.running]
    paused = [c for c in running if c.paused]
    try:
        from registry.store import ImageStore
        images = len(ImageStore(root).records())
    except Exception:                       # noqa: BLE001 - an unreadable store says 0
        images = 0
    mapping = ns.plan_mapping()
    uids = ", ".join(f"{i}-{i + n - 1}" for i, _, n in mapping.uids)
    networks = ["host", "none"] + [n for n, tool in (("slirp4netns", "slirp4netns"),
                                                     ("pasta", "pasta")) if shutil.which(tool)]
    cgroup = "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"
    from .runtime.cgroups import delegation, delegation_text
    places = delegation()
    return {
        "Containers": len(every), "ContainersRunning": len(running) - len(paused),
        "ContainersPaused": len(paused), "ContainersStopped": len(every) - len(running),
        "Images": images, "Driver": "dockish (FUSE union of OCI layers)",
        "DockerRootDir": str(root), "CgroupVersion": cgroup,
        # Docker's names: cgroupfs (dockish writes the delegated cgroup's
        # files itself), none (rootless with nothing delegated: no limits)
        "CgroupDriver": "cgroupfs" if places else "none",
        "CgroupDelegated": delegation_text(places),
        "SecurityOptions": ["name=rootless", "name=userns",
                            f"subordinate ids: {uids}" if mapping.full else
                            "single id mapping (no /etc/subuid range)"],
        "Networks": networks, "InitBinary": _init_binary(),
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
        "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(), "ServerVersion": version(),
        "Fusermount": shutil.which("fusermount3") or "",
    }


def _init_binary() -> str:
    from .runtime.create import tini
    return tini() or "dockish reaper"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
