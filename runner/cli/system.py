"""``dockish info``, ``dockish version`` and ``dockish system prune``: what
this installation is and can do, and one command to reclaim space.
``register(main)`` adds them after the other command modules (prune calls
their prune commands)."""
from __future__ import annotations

import contextlib
import platform
import sys

import click

from ..format import binary_size
from ..format import size as human_size
from .containers import filters_flag, print_rows
from .listing import DF_RAW, DF_VERBOSE_RAW, is_raw, one_template


def _version() -> str:
    from ..sysinfo import version as installed
    return installed()


def info_data() -> dict:
    """What ``info`` reports (Docker's field names where they fit): the
    engine's record plus the API socket to point DOCKER_HOST at."""
    from .containers import engine
    return {**engine().info(), "DockerHost": _docker_host()}


def _docker_host() -> str:
    """The DOCKER_HOST line for `dockish system service`'s default socket."""
    try:
        from ..api.service import default_socket
        return f"unix://{default_socket()}"
    except Exception:                       # noqa: BLE001 - no private runtime dir: none
        return ""


def _pct(part: int, whole: int) -> str:
    """Docker's share of a total: integer division (300 of 536 is 55%)."""
    return f" ({part * 100 // whole}%)" if whole else ""


DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}


@click.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@click.option("--format", "fmt", help="table, json, 'table TEMPLATE' or a Go template "
              "like {{.Type}}.")
def system_df(verbose: bool, fmt: str | None):
    """Show disk usage: images, containers, volumes and build cache."""
    from .containers import engine
    data = engine().system_df()        # what GET /system/df answers, the same call
    if not verbose:
        print_rows(fmt, df_rows(data), DF_TABLE, DF_HEADERS, DF_RAW)
        return
    usage = _df_verbose(data, trunc=not fmt or fmt.strip() == "table")
    if fmt and fmt.strip() != "table":   # one template over the whole usage, no
        fmt = DF_VERBOSE_RAW if is_raw(fmt) else fmt    # newline added (Docker's)
        click.echo(one_template(fmt).execute(usage), nl=False)
        return
    for title, key, default, headers in DF_VERBOSE:
        click.echo(title)
        print_rows(None, usage[key], default, headers)
    click.echo(f"\nBuild cache usage: {human_size(data.get('BuilderSize') or 0, 4)}\n")
    print_rows(None, usage["BuildCache"], DF_CACHE_TABLE, DF_CACHE_HEADERS)


def df_rows(data: dict) -> list[dict]:
    """``system df``'s four rows from Docker's /system/df record, by the
    docker CLI's arithmetic (its diskUsage*Context): images' reclaimable
    is LayersSize less each used image's own (unshared) bytes; containers'
    and volumes' the ones nothing running or linked holds; the build
    cache counts only records not shared with images."""
    total = data.get("LayersSize") or 0
    images = data.get("Images") or []
    used = sum(i["Size"] - i["SharedSize"] for i in images
               if i.get("Containers") and i["Size"] != -1 and i["SharedSize"] != -1)
    ctrs = data.get("Containers") or []
    active = [c for c in ctrs if c.get("State") in ("running", "paused", "restarting")]
    c_size = sum(c.get("SizeRw") or 0 for c in ctrs)
    c_reclaim = c_size - sum(c.get("SizeRw") or 0 for c in active)
    vols = data.get("Volumes") or []
    v_sizes = [(v["UsageData"]["Size"], v["UsageData"]["RefCount"]) for v in vols
               if v["UsageData"]["Size"] != -1]
    v_size = sum(n for n, _ in v_sizes)
    v_reclaim = sum(n for n, links in v_sizes if links == 0)
    cache = data.get("BuildCache") or []
    b_size = sum(r["Size"] for r in cache if not r.get("Shared"))
    b_reclaim = sum(r["Size"] for r in cache if not r.get("Shared") and not r.get("InUse"))

    def one(kind: str, count: int, act: int, size: int, reclaim: int) -> dict:
        return {"Type": kind, "TotalCount": str(count), "Active": str(act),
                "Size": human_size(size), "Reclaimable": human_size(reclaim) +
                _pct(reclaim, size)}
    return [one("Images", len(images), sum(1 for i in images if i.get("Containers")), total,
                total - used),
            one("Containers", len(ctrs), len(active), c_size, c_reclaim),
            one("Local Volumes", len(vols), sum(1 for v in vols if v["UsageData"]["RefCount"]),
                v_size, v_reclaim),
            one("Build Cache", len(cache), sum(1 for r in cache if r.get("InUse")), b_size,
                b_reclaim)]


DF_CACHE_TABLE = ("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t"
                  "{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}")
DF_CACHE_HEADERS = {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
                    "CreatedSince": "CREATED", "LastUsedSince": "LAST USED",
                    "UsageCount": "USAGE", "Shared": "SHARED"}
DF_VERBOSE = (
    ("Images space usage:\n", "Images",
     "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
     "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
     {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID", "CreatedSince": "CREATED",
      "Size": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE",
      "Containers": "CONTAINERS"}),
    ("\nContainers space usage:\n", "Containers",
     "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t"
     "{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
     {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
      "LocalVolumes": "LOCAL VOLUMES", "Size": "SIZE", "RunningFor": "CREATED",
      "Status": "STATUS", "Names": "NAMES"}),
    ("\nLocal Volumes space usage:\n", "Volumes", "table {{.Name}}\t{{.Links}}\t{{.Size}}",
     {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"}),
)


def _df_verbose(data: dict, trunc: bool) -> dict:
    """``system df -v``'s data as Docker's CLI gives it to a template, from
    the /system/df record: the images (one row each, by its first name),
    containers (their writable layers), volumes (links and sizes) and build
    cache records, each row as its list command shows it."""
    from registry import reference as refs

    from .listing import df_image_row, ps_row, volume_row
    images = []
    for i in data.get("Images") or []:
        ref = refs.parse(i["RepoTags"][0]) if i.get("RepoTags") else None
        images.append(df_image_row(
            ref.familiar_repository if ref else "<none>",
            (ref.tag or "<none>") if ref else "<none>", i["Id"], i.get("Created") or None,
            i["Size"], i["SharedSize"], i.get("Containers") or 0, trunc))
    containers = [ps_row({**c, "SizeRootFs": 0}, trunc)        # the docker CLI's df rows:
                  for c in data.get("Containers") or []]          # no "(virtual ...)"
    volumes = [volume_row(v, (v["UsageData"]["RefCount"], v["UsageData"]["Size"]))
               for v in data.get("Volumes") or []]
    cache = [cache_row(r, trunc) for r in data.get("BuildCache") or []]
    return {"Images": [dict(sorted(r.items())) for r in images],
            "Containers": [dict(sorted(r.items())) for r in containers],
            "Volumes": [dict(sorted(r.items())) for r in volumes],
            "BuildCache": [dict(sorted(r.items())) for r in cache]}


def cache_row(rec: dict, trunc: bool) -> dict:
    """One build cache record as Docker's ``buildCacheContext`` shows it."""
    from ..format import ago, go_time
    from ..format import parse_time as when
    cid = rec.get("ID") or ""
    created, used = when(rec.get("CreatedAt")), when(rec.get("LastUsedAt"))
    parent = ", ".join(rec.get("Parents") or []) or rec.get("Parent") or ""
    return {"ID": (cid[:12] if trunc else cid) + ("*" if rec.get("InUse") else ""),
            "Parent": parent[:12] if trunc else parent, "CacheType": rec.get("Type", ""),
            "Description": rec.get("Description", ""), "Size": human_size(rec["Size"]),
            "CreatedSince": ago(created) if created else "",
            "LastUsedSince": ago(used) if used else "",
            "CreatedAt": go_time(created), "LastUsedAt": go_time(used),
            "UsageCount": str(rec.get("UsageCount", 0)),
            "InUse": str(bool(rec.get("InUse"))).lower(),
            "Shared": str(bool(rec.get("Shared"))).lower()}


def _render(fmt: str | None, data: dict) -> None:
    if fmt:
        click.echo(one_template(fmt).execute(data))
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
 Cgroup Delegated: {data['CgroupDelegated']}
 Network: {' '.join(data['Networks'])}
 Init Binary: {data['InitBinary']}
 Security Options:""" + "".join(f"\n  {o}" for o in data["SecurityOptions"]) + f"""
 Kernel Version: {data['KernelVersion']}
 Operating System: {data['OperatingSystem']}
 Architecture: {data['Architecture']}
 CPUs: {data['NCPU']}
 Total Memory: {binary_size(data['MemTotal'])}
 Docker Root Dir: {data['DockerRootDir']}
 Docker API: `dockish system service`, then DOCKER_HOST={data['DockerHost']}""")


@click.command("info")
@click.option("-f", "--format", "fmt", metavar="TEMPLATE", help="json, or a Go-style "
              "template like '{{.Images}}'.")
def info(fmt: str | None) -> None:
    """Show what this installation is and can do; problems last, with their
    fixes, as Docker's WARNING lines (`dockish check` has them all)."""
    _render(fmt, info_data())
    if not fmt:
        from ..preflight import problems
        for p in problems():
            click.echo(f"WARNING: {p['name']}: {p['detail']}\n  fix: {p['fix']}", err=True)


@click.command("events")
@click.option("--since", help="Show events since this time (seconds since the epoch, "
              "RFC 3339, or a duration back from now like 10m).")
@click.option("--until", help="Stream events until this time (as --since); without it, "
              "follow new events until interrupted.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="type, event, container, image, volume or label=KEY[=VALUE].")
@click.option("--format", "fmt", metavar="json|TEMPLATE", help="json: one JSON object a "
              "line; or a Go-style template like '{{.Type}} {{.Action}}'.")
def events(since: str | None, until: str | None, filters: tuple[str, ...],
           fmt: str | None) -> None:
    """Show what happened to containers, images and volumes (Docker's events)."""
    from ..runtime.logs import rfc3339_nano
    from .containers import engine
    tmpl = one_template(fmt) if fmt else None
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        for ev in engine().events(since=since, until=until, filters=list(filters)):
            if tmpl is not None:
                line = tmpl.execute(ev)
            else:
                actor = ev.get("Actor") or {}
                attrs = ", ".join(f"{k}={v}" for k, v in
                                  sorted((actor.get("Attributes") or {}).items()))
                line = (f"{rfc3339_nano(ev.get('timeNano') or 0)} {ev.get('Type')} "
                        f"{ev.get('Action')} {actor.get('ID', '')}"
                        + (f" ({attrs})" if attrs else ""))
            click.echo(line)


@click.command("version")
@click.option("-f", "--format", "fmt", metavar="TEMPLATE",
              help="'json', or a Go template like '{{.Client.Version}}'.")
def version(fmt: str | None) -> None:
    """Show the dockish version."""
    data = {"Version": _version(), "Python": platform.python_version(),
            "Os": sys.platform, "Arch": platform.machine(), "Rootless": True}
    if fmt:
        click.echo(one_template(fmt).execute(
            data if fmt.strip() in ("json", "{{json .}}") else {"Client": data, **data}))
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
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              callback=filters_flag,
              help="Provide filter values (e.g. 'until=24h', 'label=KEY[=VALUE]', "
                   "'label!=KEY').")
def system_prune(all_: bool, volumes: bool, force: bool,
                 filters: dict[str, list[str]]) -> None:
    """Remove stopped containers, unused networks, unused images (dangling
    ones, or all with -a), the build cache and (--volumes) unused anonymous
    volumes."""
    from .containers import confirm, engine, prune_section
    if volumes and "until" in filters:          # Docker's check and words, before the prompt
        click.echo('ERROR: The "until" filter is not supported with "--volumes"', err=True)
        sys.exit(1)
    if not force and not confirm(prune_warning(all_, volumes, filters)):
        return                                  # Docker: cancelled, exit 0
    report = engine().system_prune(all_, volumes, filters)
    prune_section("Containers", report.containers.deleted)
    prune_section("Networks", report.networks)
    if report.volumes is not None:
        prune_section("Volumes", report.volumes.deleted)
    prune_section("Images", report.images.deleted)
    prune_section("build cache objects", report.build_cache.deleted)
    freed = sum(r.freed for r in (report.containers, report.volumes, report.images,
                                  report.build_cache) if r is not None)
    click.echo(f"Total reclaimed space: {human_size(freed)}")


def prune_warning(all_: bool, volumes: bool, filters: dict[str, list[str]]) -> str:
    """``system prune``'s question, word for word as Docker's."""
    what = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        what.append("all anonymous volumes not used by at least one container")
    what.append("all images without at least one container associated to them" if all_
                else "all dangling images")
    what.append("all build cache" if all_ else "unused build cache")
    text = "WARNING! This will remove:" + "".join(f"\n  - {w}" for w in what) + "\n"
    shown = sorted(f"{k}={v}" for k in ("label", "label!", "until")
                   for v in filters.get(k, []))
    if shown:
        text += "\n  Items to be pruned will be filtered with:" + \
            "".join(f"\n  - {f}" for f in shown) + "\n"
    return text + "\nAre you sure you want to continue?"


def register(main: click.Group) -> None:
    main.add_command(info)
    main.add_command(version)
    main.add_command(events)
    system = main.commands["system"]
    system.add_command(info, "info")
    system.add_command(events, "events")            # docker system events
    system.add_command(system_prune, "prune")
    system.add_command(system_df, "df")
