"""``dockish info``, ``dockish version`` and ``dockish system prune``: what
this installation is and can do, and one command to reclaim space.
``register(main)`` adds them after the other command modules (prune calls
their prune commands)."""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from pathlib import Path

import click


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("dockish")
    except PackageNotFoundError:
        return "unknown"


def info_data() -> dict:
    """What ``info`` reports (Docker's field names where they fit)."""
    from unionfs.layers import default_root

    from . import namespaces as ns
    from .container import Containers
    root = default_root()
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
    return {
        "Containers": len(every), "ContainersRunning": len(running) - len(paused),
        "ContainersPaused": len(paused), "ContainersStopped": len(every) - len(running),
        "Images": images, "Driver": "dockish (FUSE union of OCI layers)",
        "DockerRootDir": str(root), "CgroupVersion": cgroup,
        "CgroupDriver": "none (rootless: no resource limits)",
        "SecurityOptions": ["name=rootless", "name=userns",
                            f"subordinate ids: {uids}" if mapping.full else
                            "single id mapping (no /etc/subuid range)"],
        "Networks": networks, "InitBinary": _init_binary(),
        "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
        "Architecture": platform.machine(), "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(), "ServerVersion": _version(),
        "Fusermount": shutil.which("fusermount3") or "",
    }


def _init_binary() -> str:
    from .containers_cli import _tini
    return _tini() or "dockish reaper"


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


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n}B"


def _render(fmt: str | None, data: dict) -> None:
    from .gotemplate import render
    if fmt:
        click.echo(json.dumps(data) if fmt.strip() in ("json", "{{json .}}")
                   else render(fmt, data))
        return
    click.echo(f"""Client:
 Version:    {data['ServerVersion']}
 Context:    rootless

Server:
 Containers: {data['Containers']}
  Running: {data['ContainersRunning']}
  Paused: {data['ContainersPaused']}
  Stopped: {data['ContainersStopped']}
 Images: {data['Images']}
 Storage Driver: {data['Driver']}
 Cgroup Driver: {data['CgroupDriver']}
 Cgroup Version: {data['CgroupVersion']}
 Network: {' '.join(data['Networks'])}
 Init Binary: {data['InitBinary']}
 Security Options:""" + "".join(f"\n  {o}" for o in data["SecurityOptions"]) + f"""
 Kernel Version: {data['KernelVersion']}
 Operating System: {data['OperatingSystem']}
 Architecture: {data['Architecture']}
 CPUs: {data['NCPU']}
 Total Memory: {_human(data['MemTotal'])}
 Docker Root Dir: {data['DockerRootDir']}""")


@click.command("info")
@click.option("-f", "--format", "fmt", metavar="TEMPLATE", help="json, or a Go-style "
              "template like '{{.Images}}'.")
def info(fmt: str | None) -> None:
    """Show what this installation is and can do."""
    _render(fmt, info_data())


@click.command("version")
@click.option("-f", "--format", "fmt", metavar="TEMPLATE")
def version(fmt: str | None) -> None:
    """Show the dockish version."""
    data = {"Version": _version(), "Python": platform.python_version(),
            "Os": sys.platform, "Arch": platform.machine(), "Rootless": True}
    if fmt:
        from .gotemplate import render
        click.echo(json.dumps(data) if fmt.strip() in ("json", "{{json .}}")
                   else render(fmt, {"Client": data, **data}))
        return
    click.echo(f"Client: dockish\n Version:           {data['Version']}\n"
               f" Python version:    {data['Python']}\n"
               f" OS/Arch:           {data['Os']}/{data['Arch']}\n"
               f" Rootless:          true")


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not "
              "just dangling ones.")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes too.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_context
def system_prune(ctx, all_: bool, volumes: bool, force: bool) -> None:
    """Remove stopped containers, unused images (dangling ones, or all with
    -a), the build cache and (--volumes) unused anonymous volumes."""
    if not force:
        what = ["all stopped containers",
                "all images without at least one container associated to them" if all_
                else "all dangling images", "unused build cache"]
        if volumes:
            what.insert(1, "all anonymous volumes not used by at least one container")
        click.confirm("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what)
                      + "\nAre you sure you want to continue?", abort=True)
    main = ctx.find_root().command
    container = main.commands["container"]
    ctx.invoke(container.commands["prune"], force=True)
    if volumes:
        ctx.invoke(main.commands["volume"].commands["prune"], force=True, all_=False)
    ctx.invoke(main.commands["image"].commands["prune"], all_=all_, force=True)
    builder = main.commands.get("builder")
    if builder is not None:
        ctx.invoke(builder.commands["prune"], all_=True, force=True, filters=())


def register(main: click.Group) -> None:
    main.add_command(info)
    main.add_command(version)
    system = main.commands["system"]
    system.add_command(info, "info")
    system.add_command(system_prune, "prune")
