"""Docker's ``--format`` for list commands (ps, images, volume ls, history,
system df): empty or ``table`` is the command's default table, ``json`` is
``{{json .}}`` (Go's compact JSON, by the template engine), ``table TMPL``
is a header line plus aligned rows (the header printed even with no rows),
anything else one rendered line per row. One place, so every command reads
a format as Docker does. Pure: it returns lines, the CLI prints them."""
from __future__ import annotations

import json

from ..errors import DockishError
from .gotemplate import TABLE_PREFIX, Context, Template, is_table, parse, render_table

JSON_TEMPLATE = "{{json .}}"
RAW = "raw"

# Docker's ``--format raw`` of the list commands that have it (docker/cli's
# formatter package: container, image, volume, network, disk usage), with
# its ``-q`` form: ``key: value`` lines, each record followed by a blank line
# (the template ends in a newline and the writer adds one). Docker's own
# text, ``\n`` escapes and ``pad`` included.
PS_RAW = ("container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\n"
          "created_at: {{.CreatedAt}}\nstate: {{- pad .State 1 0}}\n"
          "status: {{- pad .Status 1 0}}\nnames: {{.Names}}\n"
          "labels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n")
PS_RAW_SIZE = PS_RAW + "size: {{.Size}}\n"
PS_RAW_QUIET = "container_id: {{.ID}}"
IMAGES_RAW = ("repository: {{ .Repository }}\ntag: {{.Tag}}\nimage_id: {{.ID}}\n"
              "created_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n")
IMAGES_RAW_DIGEST = ("repository: {{ .Repository }}\ntag: {{.Tag}}\ndigest: {{.Digest}}\n"
                     "image_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\n"
                     "virtual_size: {{.Size}}\n")
IMAGES_RAW_QUIET = "image_id: {{.ID}}"
VOLUME_RAW = "name: {{.Name}}\ndriver: {{.Driver}}\n"
VOLUME_RAW_QUIET = "name: {{.Name}}"
NETWORK_RAW = "network_id: {{.ID}}\nname: {{.Name}}\ndriver: {{.Driver}}\nscope: {{.Scope}}\n"
NETWORK_RAW_QUIET = "network_id: {{.ID}}"
DF_RAW = ("type: {{.Type}}\ntotal: {{.TotalCount}}\nactive: {{.Active}}\n"
          "size: {{.Size}}\nreclaimable: {{.Reclaimable}}\n")
BUILD_CACHE_RAW = ("build_cache_id: {{.ID}}\nparent_id: {{.Parent}}\n"
                   "build_cache_type: {{.CacheType}}\ndescription: {{.Description}}\n"
                   "created_at: {{.CreatedAt}}\ncreated_since: {{.CreatedSince}}\n"
                   "last_used_at: {{.LastUsedAt}}\nlast_used_since: {{.LastUsedSince}}\n"
                   "usage_count: {{.UsageCount}}\nin_use: {{.InUse}}\nshared: {{.Shared}}\n")
# ``system df -v --format raw``: one template over the whole usage, each
# record's raw form under a ``type:`` line (Docker's NewDiskUsageFormat).
DF_VERBOSE_RAW = ("{{range .Images}}type: Image\n" + IMAGES_RAW_DIGEST + "\n{{end -}}\n"
                  "{{range .Containers}}type: Container\n" + PS_RAW_SIZE + "\n{{end -}}\n"
                  "{{range .Volumes}}type: Volume\n" + VOLUME_RAW + "\n{{end -}}\n"
                  "{{range .BuildCache}}type: Build Cache\n" + BUILD_CACHE_RAW +
                  "\n{{end -}}")


def is_raw(fmt: str | None) -> bool:
    """Whether ``fmt`` asks for Docker's ``raw`` form (the word alone)."""
    return (fmt or "").strip(" ") == RAW


def quiet_format(fmt: str | None, quiet: str, raw_quiet: str) -> str:
    """What ``-q`` prints in ``images``, ``volume ls`` and ``network ls``:
    their one-field ``quiet`` template, ``raw``'s one ``key: value`` line
    with ``--format raw``, and a template of the user's own wins over
    ``-q`` (Docker's NewImageFormat/NewVolumeFormat: only the table
    form has a quiet form)."""
    if is_raw(fmt):
        return raw_quiet
    if (fmt or "").strip() in ("", TABLE_PREFIX):
        return quiet
    return fmt or ""


def format_rows(fmt: str | None, rows: list[dict], default: str,
                headers: dict[str, str], raw: str | None = None,
                context: str | None = None) -> list[str]:
    """The lines ``rows`` print as under ``fmt``; ``default`` is the
    command's own ``table ...`` template, ``headers`` Docker's column names
    by field, ``raw`` its ``--format raw`` template where Docker has one
    (elsewhere ``raw`` is a template like any text, printed as is). The
    whole output is made before any is printed: a template that fails on
    the third row prints nothing (as Docker's buffered writer). ``context``:
    the Go type of Docker's row (``*formatter.ContainerContext``): a field
    the row lacks is then an error naming it, as Docker's; without it rows
    are Go maps (a missing key prints ``<no value>``)."""
    fmt = fmt or ""
    rows = [dict(sorted(r.items())) for r in rows]   # keys sorted, as Go prints maps
    if context:
        rows = [Context(r, context) for r in rows]
    if fmt.strip() in ("", TABLE_PREFIX):
        fmt = default
    elif fmt.strip() == "json":
        fmt = JSON_TEMPLATE
    elif raw is not None and is_raw(fmt):
        fmt = raw
    if is_table(fmt):
        return render_table(fmt, rows, headers).split("\n")
    tmpl = parse(fmt)
    return [tmpl.execute(r) for r in rows]


def inspect_lines(fmt: str | None, objects: list[dict]) -> list[str]:
    """``inspect``'s output lines: the objects as an indented JSON list, or ``-f``
    run on each as Docker's inspector runs it on the raw JSON, with Go's
    ``missingkey=error`` (a misspelt field is an error, not ``<no value>``
    that a script would take for data). All lines are made before any is
    printed."""
    if not fmt:
        return [json.dumps(objects, indent=4)]
    tmpl = parse(fmt)
    return [tmpl.execute(o, missing_key_error=True) for o in objects]


def one_template(fmt: str) -> Template:
    """``--format`` of a one-object command (info, version, events' lines):
    ``json`` is ``{{json .}}``, Go's compact JSON, not Python's ``", "``
    separators; parsed before anything runs, so a bad template is one
    error line before any output."""
    return parse(JSON_TEMPLATE if fmt.strip() == "json" else fmt)


# -- ps: Docker's ContainerContext over the daemon's Summary records --------------------------

def ellipsis(text: str, width: int) -> str:
    """Docker's ``Ellipsis``: cut to ``width`` characters, the last one ``…``."""
    return text if len(text) <= width else text[:width - 1] + "…"


def join_labels(labels: dict[str, str] | None) -> str:
    """Docker's ``Labels`` column: ``k=v`` pairs sorted, comma-joined."""
    return ",".join(sorted(f"{k}={v}" for k, v in (labels or {}).items()))


def displayable_ports(ports: list[dict]) -> str:
    """Docker's ``DisplayablePorts``: ``0.0.0.0:8080->80/tcp``, a port
    published on the same number grouped into ranges, unpublished ones as
    ``80/tcp``."""
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    result: list[str] = []
    mappings: list[str] = []

    def form(key: str, first: int, last: int) -> str:
        ip, _, proto = key.rpartition("/")
        span = str(first) if first == last else f"{first}-{last}"
        return (f"{ip}:{span}->{span}" if ip else span) + "/" + proto

    for p in sorted(ports, key=lambda p: (p.get("PrivatePort", 0), p.get("Type", ""),
                                          p.get("IP") or "", p.get("PublicPort", 0))):
        private, proto, ip = p.get("PrivatePort", 0), p.get("Type", "tcp"), p.get("IP") or ""
        key = proto
        if ip:
            if p.get("PublicPort") != private:
                host = f"[{ip}]" if ":" in ip else ip
                mappings.append(f"{host}:{p.get('PublicPort')}->{private}/{proto}")
                continue
            key = f"{ip}/{proto}"
        group = groups.get(key)
        if group is None:
            groups[key] = [private, private]
            order.append(key)
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(form(key, *group))
            groups[key] = [private, private]
    result += [form(k, *groups[k]) for k in order]
    return ", ".join(result + mappings)


def ps_image(summary: dict, trunc: bool) -> str:
    """Docker's IMAGE column: as the container was created from, familiar
    when truncated (``docker.io/library/busybox`` is ``busybox``)."""
    from registry import reference as refs
    image = summary.get("Image") or ""
    if not image:
        return "<no image>"
    if not trunc:
        return image
    image_id = (summary.get("ImageID") or "").removeprefix("sha256:")[:12]
    if image_id and image.removeprefix("sha256:")[:12] == image_id:
        return image_id
    try:
        ref = refs.parse(image, default_tag=False)
    except ValueError:
        return image
    if ref.digest and ref.tag:
        ref = refs.Reference(ref.domain, ref.path, ref.tag)
    return ref.familiar


PS_FIELDS = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
             "Names", "Networks", "Platform", "Ports", "RunningFor", "Size", "State",
             "Status")
PS_CONTEXT = "*formatter.ContainerContext"


def check_ps_template(fmt: str) -> None:
    """``ps --format`` checked before anything is listed, as the docker CLI
    does (it runs the template on an empty row): a template that does not
    parse, or names a field a row lacks, fails even when no container
    would be shown — in Docker's words."""
    from .gotemplate import TemplateError
    try:
        tmpl = parse(fmt)
    except TemplateError as e:
        raise DockishError(f"failed to parse template: {e.go_message}") from None
    try:
        tmpl.execute(Context(dict.fromkeys(PS_FIELDS, ""), PS_CONTEXT))
    except TemplateError as e:
        raise DockishError(f"failed to execute template: {e.go_message}") from None


def ps_row(summary: dict, trunc: bool) -> dict:
    """One ``ps`` row as Docker's ``ContainerContext`` shows a daemon's
    ``Summary``: the fields ``--format`` names and ``json`` prints."""
    from ..format import duration_since, go_time, size
    from .gofmt import quote
    names = [n.lstrip("/") for n in summary.get("Names") or []]
    if trunc:
        names = [n for n in names if "/" not in n][:1]
    command = summary.get("Command") or ""
    mounts = [m.get("Name") or m.get("Source", "") for m in summary.get("Mounts") or []]
    created = float(summary.get("Created") or 0)
    rw, rootfs = summary.get("SizeRw") or 0, summary.get("SizeRootFs") or 0
    return {
        "ID": summary["Id"][:12] if trunc else summary["Id"],
        "Names": ",".join(names), "Image": ps_image(summary, trunc),
        "Command": quote(ellipsis(command, 20) if trunc else command),
        "CreatedAt": go_time(created),
        "RunningFor": f"{duration_since(created)} ago",
        "Platform": None,
        "Ports": displayable_ports(summary.get("Ports") or []),
        "State": summary.get("State", ""), "Status": summary.get("Status", ""),
        "Size": f"{size(rw)} (virtual {size(rootfs)})" if rootfs > 0 else size(rw),
        "Labels": join_labels(summary.get("Labels")),
        "Mounts": ",".join(ellipsis(m, 15) if trunc else m for m in mounts),
        "LocalVolumes": str(sum(1 for m in summary.get("Mounts") or []
                                if m.get("Driver") == "local")),
        "Networks": ",".join(((summary.get("NetworkSettings") or {}).get("Networks")
                              or {}).keys()),
    }


def volume_row(volume: dict, usage: tuple[int, int] | None = None) -> dict:
    """One ``volume ls`` row as Docker's ``volumeContext`` shows a volume
    record; ``usage`` (links, bytes) only where Docker has it (``system
    df -v``), else Links and Size are ``N/A``."""
    from ..format import size
    return {"Name": volume.get("Name", ""), "Driver": volume.get("Driver", "local"),
            "Scope": volume.get("Scope", "local"), "Mountpoint": volume.get("Mountpoint", ""),
            "Labels": join_labels(volume.get("Labels")),
            "Links": str(usage[0]) if usage else "N/A",
            "Size": size(usage[1], 4) if usage else "N/A",
            "Group": "N/A", "Availability": "N/A", "Status": "N/A"}


def df_image_row(repo: str, tag: str, image_id: str, created: float | None, size: int,
                 shared: int, containers: int, trunc: bool) -> dict:
    """One image of ``system df -v`` as Docker's ``imageContext`` shows it."""
    from ..format import ago, go_time
    from ..format import size as human
    return {"Repository": repo, "Tag": tag, "Digest": "",
            "ID": image_id.removeprefix("sha256:")[:12] if trunc else image_id,
            "CreatedSince": ago(created) if created else "",
            "CreatedAt": go_time(created or 0), "Size": human(size),
            "Containers": str(containers), "VirtualSize": human(size, 4),
            "SharedSize": human(shared, 4), "UniqueSize": human(size - shared, 4)}
