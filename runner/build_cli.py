"""``dockish build`` and ``dockish builder prune``: Docker's flags and output.

A failed build exits 1 as ``docker build`` does (a Dockerfile error, a
missing COPY source, a RUN that failed), with one line naming the step;
nothing is tagged and the store only gains cache entries.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click


def _root() -> Path:
    from unionfs.layers import default_root
    return default_root()


def _fail(msg: str, code: int) -> None:
    click.echo(f"dockish: error: {msg}", err=True)
    sys.exit(code)


def _resolver(root: Path):
    """FROM/--from images: archives, the store, else a pull (as Docker does)."""
    from registry.archive import ImageError
    from registry.resolve import is_archive_source, resolve
    from unionfs.layers import LayerStore

    from .build import BaseImage, BuildError
    layers = LayerStore(root)

    def resolve_base(text: str) -> BaseImage:
        try:
            img = resolve(text, layers)
        except ImageError as first:
            if is_archive_source(text):
                raise BuildError(f"Unable to find image '{text}': {first}") from None
            try:
                from registry.client import Options
                from registry.pull import pull
                from registry.store import ImageStore
                pull(text, ImageStore(root, layers), Options())
                img = resolve(text, layers)
            except Exception as e:       # noqa: BLE001 - one line for the user
                raise BuildError(f"pull access denied or unable to find image '{text}': "
                                 f"{e}") from None
        return BaseImage(list(img.diff_ids), dict(img.config), img.config_digest)

    return resolve_base


def _build_args(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        if eq:
            out[name] = value
        elif name in os.environ:
            out[name] = os.environ[name]
    return out


def _secrets(items: tuple[str, ...]) -> dict[str, dict[str, str]]:
    from .runmounts import MountError, secret_spec
    out = {}
    for item in items:
        try:
            sid, how = secret_spec(item)
        except MountError as e:
            _fail(str(e), 125)
        out[sid] = how
    return out


def _labels(items: tuple[str, ...]) -> dict[str, str]:
    return dict(i.partition("=")[::2] for i in items)


def register(main: click.Group) -> None:
    @main.command(context_settings={"help_option_names": ["-h", "--help"]})
    @click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]",
                  help="Name the image (repeatable).")
    @click.option("-f", "--file", "file", metavar="PATH",
                  help="The Dockerfile (default: CONTEXT/Dockerfile; '-': stdin).")
    @click.option("--build-arg", "build_args", multiple=True, metavar="NAME[=VALUE]",
                  help="Set a build-time variable.")
    @click.option("--target", help="Build this stage (and only what it needs).")
    @click.option("--no-cache", is_flag=True, help="Do not use the build cache.")
    @click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
    @click.option("--iidfile", metavar="FILE", help="Write the image ID to FILE.")
    @click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
                  help="Set a label on the image.")
    @click.option("--network", default="default", help="RUN steps' network: host (default), "
                  "none, slirp4netns or pasta.")
    @click.option("--timestamp", type=int, metavar="SECONDS",
                  help="Clamp file times and set created times (default: "
                       "$SOURCE_DATE_EPOCH) for reproducible images.")
    @click.option("--squash", is_flag=True, help="Squash the new layers into one.")
    @click.option("--secret", "secrets", multiple=True, metavar="id=ID[,src=PATH|,env=VAR]",
                  help="A secret for RUN --mount=type=secret (never stored in the image).")
    @click.option("--platform", help="Only the host's platform is built.")
    @click.option("--pull", is_flag=True, hidden=True)
    @click.option("--rm/--no-rm", "rm", default=True, hidden=True)
    @click.argument("context_dir", metavar="CONTEXT")
    def build(tags, file, build_args, target, no_cache, quiet, iidfile, labels, network,
              timestamp, squash, secrets, platform, pull, rm, context_dir) -> None:
        """Build an image from a Dockerfile and the CONTEXT directory."""
        from registry import reference as refs
        from registry.archive import ImageError, host_platform
        from unionfs.layers import LayerStoreError

        from . import dockerfile as dfm
        from .build import Builder, BuildError, BuildOptions, container_runner, save
        from .context import ContextError
        for t in tags:
            try:
                refs.parse(t)
            except refs.ReferenceError as e:
                _fail(f"invalid argument {t!r} for \"-t, --tag\" flag: {e}", 125)
        if platform:
            os_, arch, _ = host_platform()
            if platform.split("/")[:2] != [os_, arch]:
                _fail(f"--platform {platform}: only the host's platform ({os_}/{arch}) "
                      f"can be built", 125)
        if timestamp is None and os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
            timestamp = int(os.environ["SOURCE_DATE_EPOCH"])
        ctx = Path(context_dir)
        if not ctx.is_dir():
            _fail(f"unable to prepare context: path \"{context_dir}\" not found", 1)
        path = Path(file) if file else ctx / "Dockerfile"
        label = file or "Dockerfile"
        root = _root()
        opts = BuildOptions(tags=list(tags), build_args=_build_args(build_args),
                            target=target, no_cache=no_cache, quiet=quiet,
                            labels=_labels(labels), network=network, timestamp=timestamp,
                            squash=squash, secrets=_secrets(secrets))
        builder = None
        try:
            df = dfm.parse_text(sys.stdin.read(), "Dockerfile") if file == "-" else \
                dfm.parse_file(str(path), label=label) if file else \
                dfm.parse_file("Dockerfile", label=label, context=ctx)
            builder = Builder(root, ctx, df, opts, resolve=_resolver(root),
                              run_step=container_runner(root, timestamp), out=sys.stdout)
            image_id, config = builder.build()
            image_id = save(root, config, list(tags))
        except (dfm.DockerfileError, BuildError, ContextError) as e:
            _fail(str(e), 1)
        except (ImageError, LayerStoreError, OSError) as e:
            msg = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.strerror \
                else str(e)
            _fail(msg, 1)
        finally:
            if builder is not None:
                builder.close()
        if iidfile:
            Path(iidfile).write_text(image_id)
        if quiet:
            click.echo(image_id)
            return
        click.echo(f"Successfully built {image_id[7:19]}")
        for t in tags:
            click.echo(f"Successfully tagged {refs.parse(t).familiar}")

    @main.group(context_settings={"help_option_names": ["-h", "--help"]})
    def builder() -> None:
        """Manage the build cache."""

    @builder.command("prune")
    @click.option("-a", "--all", "all_", is_flag=True, help="Remove all cache (the default "
                  "too: dockish keeps no internal-only cache).")
    @click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
    @click.option("--filter", "filters", multiple=True, metavar="until=DURATION",
                  help="Only entries unused for DURATION (e.g. 24h).")
    def prune(all_, force, filters) -> None:
        """Remove build cache entries and the layers only they kept."""
        from registry.store import ImageStore

        from .buildcache import BuildCache, parse_duration
        older = None
        for f in filters:
            key, _, value = f.partition("=")
            if key not in ("until", "unused-for"):
                _fail(f"invalid filter {f!r}: use until=DURATION", 125)
            try:
                older = parse_duration(value)
            except ValueError as e:
                _fail(str(e), 125)
        if not force:
            click.confirm("WARNING! This will remove all dangling build cache. "
                          "Are you sure you want to continue?", abort=True)
        from unionfs.layers import LayerStoreError
        root = _root()
        store = ImageStore(root)
        cache = BuildCache(root, store.layers)
        try:
            gone = cache.prune(older_than=older)
            keep = cache.live_layers()
            drop = sorted({e.diff_id for e in gone if e.diff_id and e.diff_id not in keep})
            freed = sum(store.layer_size(d) for d in drop)
            store.discard_layers(drop)
            freed -= sum(store.layer_size(d) for d in drop)
        except (LayerStoreError, OSError) as e:
            _fail(f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.strerror
                  else str(e), 125)
        freed += _empty_cache_mounts(root) if older is None else 0
        for e in gone:
            click.echo(f"Deleted build cache object: {e.key[7:19]}")
        click.echo(f"Total reclaimed space: {_human(freed)}")


def _empty_cache_mounts(root: Path) -> int:
    """Remove the RUN --mount=type=cache directories (files in them may
    belong to a container's other uids: removed from its user namespace)."""
    import shutil

    from . import namespaces as ns
    from .build import cache_mounts_dir
    from .images_cli import disk_usage
    top = cache_mounts_dir(root)
    if not top.is_dir():
        return 0
    size = disk_usage(top)
    shutil.rmtree(top, ignore_errors=True)
    if top.exists():
        ns.in_userns(lambda: shutil.rmtree(top, ignore_errors=True), ns.plan_mapping())
    return size


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{n}B"
        n /= 1000
    return f"{n}B"
