"""Image commands of the ``dockish`` CLI, with Docker's names, flags and
output shapes: pull, push, tag, images, rmi, image prune, inspect, history,
save, load, import, export (of a container), system df, login, logout; and
the ``image`` group with Docker's aliases (``image ls``, ``image rm``, ...).

``register(main)`` adds them to the top-level click group.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import click

from ..errors import DockishError as UserError
from ..format import ago as human_ago
from ..format import go_time as _iso
from ..format import size as human_size
from ..images import inspect_image
from .compat import content_trust
from .containers import filters_flag, print_inspect, print_rows, typed_inspect
from .listing import IMAGES_RAW, IMAGES_RAW_DIGEST, IMAGES_RAW_QUIET, quiet_format

EXIT_NO_SUCH = 1        # `docker inspect`/`rmi` of an unknown image


def _engine():
    from .containers import engine
    return engine()


# -- shared helpers -------------------------------------------------------------------

def _store():
    return _engine().image_store()


def _options(tls_verify: bool | None, authfile: str | None):
    from registry.auth import config_path, read_config
    from registry.client import Options
    attempts = read_config(config_path()).get("max-download-attempts")
    extra = {"retries": int(attempts) - 1} if isinstance(attempts, int) and attempts > 0 else {}
    if sys.stdin.isatty() and sys.stderr.isatty():
        extra["choose_short_name"] = choose_short_name
    return Options.from_config(tls_verify=tls_verify, authfile=authfile, **extra)


def choose_short_name(name: str, registries: list[str]) -> str:
    """Podman's prompt for a short name that more than one registry may
    serve: the user picks one (recorded as an alias, so asked once)."""
    click.echo("? Please select an image:", err=True)
    for n, r in enumerate(registries, 1):
        click.echo(f"  {n}) {r}/{name}", err=True)
    answer = click.prompt("Choice", default="1", err=True, show_default=False).strip()
    if not answer.isdigit() or not 1 <= int(answer) <= len(registries):
        raise UserError(f"short-name resolution of {name!r}: no such choice {answer!r}")
    return registries[int(answer) - 1]


def registry_options(fn):
    fn = click.option("--authfile", metavar="FILE", envvar="REGISTRY_AUTH_FILE",
                      help="Credentials file (default: dockish's, then Podman's and "
                           "Docker's).")(fn)
    fn = click.option("--tls-verify", "tls_verify", type=click.BOOL, default=None,
                      metavar="BOOL", help="Require HTTPS with a valid certificate "
                      "(default: except for localhost and insecure-registries).")(fn)
    return fn


# -- progress ------------------------------------------------------------------------

class Progress:
    """Per-layer lines: redrawn in place with bars on a terminal, plain
    ``ID: Pull complete`` lines otherwise; nothing when quiet."""

    def __init__(self, quiet: bool, verb: str = "Pull") -> None:
        self.quiet, self.verb = quiet, verb
        self.tty = sys.stdout.isatty() and not quiet
        self.lines: dict[str, str] = {}
        self.lock = threading.Lock()
        self.drawn = 0
        self.last = 0.0

    def __call__(self, event: str, short: str, done: int, total: int) -> None:
        if self.quiet or event == "start":
            return
        text = {"exists": "Already exists" if self.verb == "Pull" else "Layer already exists",
                "mounted": "Mounted from another repository",
                "complete": f"{self.verb} complete" if self.verb == "Pull" else "Pushed"}.get(
            event)
        if text is None:
            verb = "Downloading" if self.verb == "Pull" else "Pushing"
            if not self.tty:
                return
            width = 40
            filled = int(width * done / total) if total else 0
            text = (f"{verb} [{'=' * max(filled - 1, 0)}{'>' if filled else ''}"
                    f"{' ' * (width - filled)}]  {human_size(done)}/{human_size(total)}")
        with self.lock:
            self.lines[short] = text
            if not self.tty:
                click.echo(f"{short}: {text}")
                return
            now = time.monotonic()
            if event in ("download", "push") and now - self.last < 0.1:
                return
            self.last = now
            self._draw()

    def _draw(self) -> None:
        out = sys.stdout
        if self.drawn:
            out.write(f"\x1b[{self.drawn}A")
        for short, text in self.lines.items():
            out.write(f"\x1b[2K{short}: {text}\n")
        out.flush()
        self.drawn = len(self.lines)

    def finish(self) -> None:
        if self.tty:
            with self.lock:
                self._draw()


# -- pull / push -------------------------------------------------------------------------

@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Print only the image name.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="Pick this platform of a "
              "multi-platform image (default: this machine's).")
@click.option("-a", "--all-tags", is_flag=True, help="Pull every tagged image of the "
              "repository.")
@registry_options
@content_trust
@click.argument("name")
def pull(quiet: bool, platform: str | None, all_tags: bool, tls_verify, authfile, name: str):
    """Pull an image from a registry."""
    from registry import reference as refs
    from registry.manifest import parse_platform
    from registry.pull import list_tags
    parse_platform(platform)
    options = _options(tls_verify, authfile)
    if not all_tags:
        _pull_one(name, quiet, platform, options)
        return
    ref = refs.parse(name, default_tag=False)
    if ref.tag or ref.digest:
        raise UserError("tag can't be used with --all-tags/-a")
    for tag in list_tags(ref, options):
        _pull_one(str(ref.with_tag(tag)), quiet, platform, options, print_name=False)
    click.echo(ref.repository)


def _pull_one(name: str, quiet: bool, platform: str | None, options,
              print_name: bool = True) -> None:
    from registry import reference as refs
    eng = _engine()
    ref = refs.parse(name)
    before = eng.image_store().tags().get(str(ref))
    if not quiet:
        click.echo(f"{ref.tag or ref.digest}: Pulling from {ref.path}")
    progress = Progress(quiet)
    result = eng.pull(name, options, platform, progress)
    progress.finish()
    ref = result.reference          # a short name may have resolved elsewhere
    if not quiet:
        click.echo(f"Digest: {result.digest}")
        if result.downloaded == 0 and before == result.record.id:
            click.echo(f"Status: Image is up to date for {ref.familiar}")
        else:
            click.echo(f"Status: Downloaded newer image for {ref.familiar}")
    if print_name:
        click.echo(str(ref))


@click.command()
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@registry_options
@content_trust
@click.argument("name")
@click.argument("destination", required=False)
def push(all_tags: bool, quiet: bool, tls_verify, authfile, name: str,
         destination: str | None):
    """Push an image to a registry (NAME, or the image NAME as DESTINATION)."""
    from registry import reference as refs
    ref = refs.parse(destination or name)
    eng = _engine()
    names = [name]
    if all_tags:
        if destination:
            raise UserError("-a/--all-tags pushes the repository's own tags: no DESTINATION")
        names = eng.repository_tags(name)
    else:
        eng.image_store().find(name)
    if not quiet:
        click.echo(f"The push refers to repository [{ref.repository}]")
    for each in names:
        progress = Progress(quiet, "Push")
        result = eng.push(each, destination, _options(tls_verify, authfile),
                          progress=progress)
        progress.finish()
        if not quiet:
            shown = refs.parse(destination or each)
            click.echo(f"{shown.tag or 'latest'}: digest: {result.digest} size: {result.size}")


# -- tag / images / rmi / prune --------------------------------------------------------------

@click.command()
@click.argument("source")
@click.argument("target")
def tag(source: str, target: str):
    """Give the image SOURCE the name TARGET."""
    _engine().tag(source, target)


IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_DIGEST_TABLE = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t"
                       "{{.CreatedSince}}\t{{.Size}}")
IMAGES_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                  "ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                  "Size": "SIZE", "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
                  "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}


HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                   "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"}


@click.command("images")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images (same as the "
              "default: dockish keeps no intermediate images).")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              callback=filters_flag,
              help="dangling=true|false, reference=PATTERN, before=IMAGE, since=IMAGE, "
                   "label=KEY[=VALUE].")
@click.option("--format", "fmt", metavar="table|json|TEMPLATE", default="",
              help="json: one JSON object per line; or a Go-style template like "
                   "'{{.Repository}}:{{.Tag}}'.")
@click.argument("repository", required=False)
def images(all_: bool, digests: bool, quiet: bool, no_trunc: bool,
           filters: dict[str, list[str]], fmt: str, repository: str | None):
    """List images."""
    from registry import reference as refs
    want = dict(filters)                 # checked by the engine, as Docker's daemon does
    if repository:
        want["reference"] = [repository]
    rows = []
    for s in _engine().images(want):
        for name in s.names or [None]:
            ref = refs.parse(name) if name else None
            digest = next((d.split("@", 1)[1] for d in s.rec.repo_digests
                           if ref is not None and d.split("@")[0] == ref.repository), "<none>")
            rows.append({"rec": s.rec, "Repository": ref.familiar_repository if ref else "<none>",
                         "Tag": (ref.tag or "<none>") if ref else "<none>", "Digest": digest,
                         "ID": s.rec.short_id, "Created": s.created, "Size": s.size})
    rows.sort(key=lambda r: (-(r["Created"] or 0), r["Repository"], r["Tag"]))
    if quiet and fmt.strip() not in ("", "table"):     # raw's or the user's own template
        fmt = quiet_format(fmt, "", IMAGES_RAW_QUIET)
        quiet = False
    if quiet:
        seen = []
        for r in rows:
            ident = r["rec"].id if no_trunc else r["ID"]
            if ident not in seen:
                seen.append(ident)
        for ident in seen:
            click.echo(ident)
        return
    data = [{"Containers": "N/A", "CreatedAt": _iso(r["Created"]),
             "CreatedSince": human_ago(r["Created"]), "Digest": r["Digest"],
             "ID": r["rec"].id if no_trunc else r["ID"], "Repository": r["Repository"],
             "SharedSize": "N/A", "Size": human_size(r["Size"]), "Tag": r["Tag"],
             "UniqueSize": "N/A", "VirtualSize": human_size(r["Size"])} for r in rows]
    print_rows(fmt, data, IMAGES_DIGEST_TABLE if digests else IMAGES_TABLE, IMAGES_HEADERS,
               IMAGES_RAW_DIGEST if digests else IMAGES_RAW, context="*formatter.imageContext")


@click.command()
@click.option("-f", "--force", is_flag=True, help="Remove even if tagged several times or "
              "mounted.")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged layers now.")
@click.argument("names", nargs=-1, required=True)
def rmi(force: bool, no_prune: bool, names: tuple[str, ...]):
    """Remove one or more images (by name, ID or ID prefix)."""
    from registry.store import NoSuchImage

    from ..errors import ConflictError
    from .main import daemon_not_found
    eng = _engine()
    failed = False
    for text in names:
        try:
            lines = eng.remove_image(text, force, prune=not no_prune)
        except NoSuchImage as e:
            click.echo(daemon_not_found(str(e)) or f"dockish: error: {e}", err=True)
            failed = True
            continue
        except ConflictError as e:
            click.echo(f"Error response from daemon: {e}", err=True)
            failed = True
            continue
        for kind, what in lines:
            click.echo(f"{kind}: {what}")
    if failed:
        sys.exit(EXIT_NO_SUCH)


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not "
              "just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              callback=filters_flag,
              help="Provide filter values (e.g. 'until=24h', 'label=KEY[=VALUE]', "
                   "'label!=KEY', 'dangling=false').")
def image_prune(all_: bool, force: bool, filters: dict[str, list[str]]):
    """Remove unused images (untagged ones; with -a, every image no mount uses)."""
    from .containers import confirm
    warn = "all images without at least one container associated to them" if all_ \
        else "all dangling images"
    if not force and not confirm(f"WARNING! This will remove {warn}.\n"
                                 "Are you sure you want to continue?"):
        return                          # Docker: cancelled, exit 0
    report = _engine().image_prune(all_, filters)
    print_image_prune(report.deleted, report.freed)


def print_image_prune(lines: list[str], freed: int) -> None:
    """Docker's image prune report."""
    if lines:
        click.echo("Deleted Images:")
        for line in lines:
            click.echo(line)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(freed)}")


# -- inspect / history ------------------------------------------------------------------------

@click.command()
@click.option("-f", "--format", "fmt", metavar="TEMPLATE", help="Go template, e.g. "
              "'{{.Id}}' or '{{json .Config}}'.")
@click.option("--type", "kind", type=click.Choice(["image"]), default="image",
              help="Only inspect objects of the given type.")
@click.argument("names", nargs=-1, required=True)
def inspect(fmt: str | None, kind: str, names: tuple[str, ...]):
    """Show low-level information on images, as JSON."""
    from registry.store import NoSuchImage
    store = _store()
    out: list[dict] = []
    failed: list[str] = []
    for n in names:
        try:
            rec, _ = store.find(n)
        except NoSuchImage:
            failed.append(n)
            continue
        out.append(inspect_image(store, rec))
    print_inspect(fmt, [typed_inspect(o) for o in out] if fmt else out)
    for n in failed:
        click.echo(f"Error: No such image: {n}", err=True)
    if failed:
        sys.exit(EXIT_NO_SUCH)


@click.command()
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("-H", "--human", type=click.BOOL, default=True, metavar="BOOL",
              help="Sizes and dates in human-readable form.")
@click.option("--format", "fmt", help="table, json, 'table TEMPLATE' or a Go template "
              "like {{.CreatedBy}}.")
@click.argument("name")
def history(no_trunc: bool, quiet: bool, human: bool, fmt: str | None, name: str):
    """Show the history of an image."""
    steps = _engine().history(name)
    if quiet and steps:
        click.echo(steps[0].id if no_trunc else steps[0].id.split(":", 1)[-1][:12])
        for _ in steps[1:]:
            click.echo("<missing>")
        return
    data = []
    for h in steps:
        ident = h.id if no_trunc or h.id == "<missing>" else h.id.split(":", 1)[-1][:12]
        by = h.created_by
        if not no_trunc and len(by) > 45:
            by = by[:44] + "…"
        data.append({"ID": ident, "CreatedAt": h.created,
                     "CreatedSince": human_ago(h.created_at) if human else h.created,
                     "CreatedBy": by, "Size": human_size(h.size) if human else str(h.size),
                     "Comment": h.comment})
    print_rows(fmt, data, HISTORY_TABLE, HISTORY_HEADERS, context="*image.historyContext")


# -- save / load / import --------------------------------------------------------------------

@click.command()
@click.option("-o", "--output", metavar="FILE", help="Write to FILE instead of stdout.")
@click.option("--format", "fmt", type=click.Choice(["docker-archive", "docker", "oci-archive",
                                                    "oci"]),
              default="docker-archive", help="docker-archive (default) or oci (OCI layout).")
@click.argument("names", nargs=-1, required=True)
def save(output: str | None, fmt: str, names: tuple[str, ...]):
    """Save images to a tar archive (docker load, podman load and skopeo read it)."""
    eng = _engine()
    for n in names:
        eng.image_store().find(n)              # an unknown name is said first
    if output is None and sys.stdout.isatty():
        raise UserError("cowardly refusing to save to a terminal. Use the -o flag or "
                        "redirect")
    if output is None:
        eng.save(list(names), sys.stdout.buffer, fmt)
        return
    from ..runtime.outfile import output_file
    with output_file(output) as f:
        eng.save(list(names), f, fmt)


def _stdin_to_scratch(store):
    scratch = store.layers.scratch_file()
    src = sys.stdin.buffer
    while chunk := src.read(1 << 20):
        scratch.write(chunk)
    scratch.flush()
    return scratch


@click.command()
@click.option("-i", "--input", "input_", metavar="FILE", help="Read from FILE, not stdin.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
def load(input_: str | None, quiet: bool):
    """Load images from a docker-archive or OCI archive tar (optionally compressed)."""
    from registry import reference as refs
    from registry.archive_out import load as do_load
    store = _store()
    if input_ is None:
        if sys.stdin.isatty():
            raise UserError("requested load from stdin, but stdin is empty")
        with _stdin_to_scratch(store) as scratch:
            loaded = do_load(store, Path(f"/proc/self/fd/{scratch.fileno()}"))
    else:
        loaded = do_load(store, Path(input_))
    for rec, names in loaded:
        if names:
            for n in names:
                click.echo(f"Loaded image: {refs.parse(n).familiar}")
        else:
            click.echo(f"Loaded image ID: {rec.id}")


@click.command("import")
@click.option("-m", "--message", default="", help="Commit message for the image.")
@click.option("-c", "--change", multiple=True, metavar="INSTRUCTION",
              help="Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                   "ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR) to the image.")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]", help="The image's platform.")
@click.argument("source")
@click.argument("reference", required=False)
def import_(message: str, change: tuple[str, ...], platform: str | None, source: str,
            reference: str | None):
    """Create an image from a rootfs tarball (FILE, URL or - for stdin)."""
    rec = _engine().import_image(source, sys.stdin.buffer if source == "-" else None,
                                 changes=list(change), message=message, platform=platform,
                                 reference=reference)
    click.echo(rec.id)


# -- registration ---------------------------------------------------------------------

@click.group("image")
def image_group() -> None:
    """Manage images."""


@click.group("system")
def system_group() -> None:
    """Manage dockish."""


def _inspect_any(container_inspect: click.Command) -> click.Command:
    """Docker's top-level ``inspect``: containers (the runner's command) and
    images, by name or ID; ``--type`` picks one kind."""
    @click.command("inspect")
    @click.option("-f", "--format", "fmt", metavar="TEMPLATE", help="Go template, e.g. "
                  "'{{.Id}}'.")
    @click.option("--type", "kind", type=click.Choice(["container", "image"]), default=None,
                  help="Only inspect objects of the given type.")
    @click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type "
                  "is container.")
    @click.argument("names", nargs=-1, required=True)
    @click.pass_context
    def inspect_any(ctx, fmt: str | None, kind: str | None, names: tuple[str, ...],
                    size: bool):
        """Show low-level information on containers or images, as JSON."""
        from registry.store import NoSuchImage

        from ..runtime.container import ContainerError
        from .containers import engine
        if kind == "image":
            return ctx.invoke(inspect, fmt=fmt, kind="image", names=names)
        if kind == "container":
            return ctx.invoke(container_inspect, fmt=fmt, type_="container", names=names,
                              size=size)
        eng, store = engine(), _store()
        out, missing = [], []
        for n in names:                  # a container first, as Docker's
            try:
                out.append(eng.inspect_container(n, size))
                continue
            except ContainerError:
                pass
            try:
                out.append(inspect_image(store, store.find(n)[0]))
            except NoSuchImage:
                missing.append(n)
        print_inspect(fmt, [typed_inspect(o) for o in out] if fmt else out)
        for n in missing:
            click.echo(f"Error: No such object: {n}", err=True)
        if missing:
            sys.exit(EXIT_NO_SUCH)
    return inspect_any


def register(main: click.Group) -> None:
    """Add the image commands, the ``image`` group and ``system df`` to ``main``.
    Register after the container commands: the top-level ``inspect`` then
    serves both (containers through theirs)."""
    # `export` of a container is the runner's (it also works on running ones)
    for cmd in (pull, push, tag, images, rmi, history, save, load, import_):
        main.add_command(cmd)
    existing = main.commands.get("inspect")
    if existing is None or existing is inspect:
        main.add_command(inspect)
    elif not getattr(existing, "serves_images", False):
        both = _inspect_any(existing)
        both.serves_images = True
        main.add_command(both)
    for alias, cmd in (("pull", pull), ("push", push), ("tag", tag), ("ls", images),
                       ("list", images), ("rm", rmi), ("prune", image_prune),
                       ("inspect", inspect), ("history", history), ("save", save),
                       ("load", load), ("import", import_)):
        image_group.add_command(cmd, alias)
    main.add_command(image_group)
    if "system" not in main.commands:
        main.add_command(system_group)


__all__ = ["register"]
