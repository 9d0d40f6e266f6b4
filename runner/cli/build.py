"""``dockish build`` and ``dockish builder prune``: Docker's flags and output.

A failed build exits 1 as ``docker build`` does (a Dockerfile error, a
missing COPY source, a RUN that failed), with one line naming the step;
nothing is tagged and the store only gains cache entries.
"""
from __future__ import annotations

import os
import sys

import click

from ..errors import DockishError
from ..format import size
from .compat import content_trust, no_op_flag


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
    from ..builder.runmounts import MountError, secret_spec
    out = {}
    for item in items:
        try:
            sid, how = secret_spec(item)
        except MountError as e:
            raise DockishError(str(e)) from None
        out[sid] = how
    return out


def _labels(items: tuple[str, ...]) -> dict[str, str]:
    return dict(i.partition("=")[::2] for i in items)


def _context(context_dir: str, file: str | None):
    """(the context: a directory, or with CONTEXT ``-`` a tar stream or None,
    the Dockerfile's text if it comes from stdin). ``build -`` reads stdin
    as Docker does: an archive is the context (``-f`` names a file in it),
    anything else the Dockerfile of an empty context."""
    from ..builder.contexttar import Prefixed, is_archive
    if context_dir != "-":
        return context_dir, sys.stdin.read() if file == "-" else None
    if file == "-":
        raise DockishError("invalid argument: can't use stdin for both build context and "
                           "dockerfile")
    head = sys.stdin.buffer.read(512)
    if is_archive(head):
        return Prefixed(head, sys.stdin.buffer), None
    if file:
        raise DockishError("Cannot locate specified Dockerfile: a Dockerfile on stdin has no "
                           "context to name one in (-f)")
    return None, (head + sys.stdin.buffer.read()).decode("utf-8", "replace")


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
    @click.option("--pull", is_flag=True, help="Always attempt to pull all referenced images.")
    @click.option("--rm/--no-rm", "rm", default=True, hidden=True)
    @no_op_flag("--force-rm", "Always remove intermediate containers (always done: RUN "
                "steps leave none).")
    @no_op_flag("--compress", "Compress the build context (nothing to do: no context is "
                "sent to a daemon).")
    @content_trust
    @click.option("--progress", default="auto", metavar="MODE",
                  help="auto (the classic output), plain or tty (BuildKit's lines with step "
                       "timings, on stderr), quiet (the image ID only), rawjson.")
    @click.option("-o", "--output", "output", metavar="PATH|type=TYPE[,dest=DEST]",
                  help="Output destination: type=local,dest=DIR | type=tar,dest=FILE | - "
                       "(a tar on stdout) | type=docker|oci,dest=FILE.")
    @click.option("--load", is_flag=True, help="Keep the image in the store (always done).")
    @click.option("--add-host", "add_hosts", multiple=True, metavar="HOST:IP",
                  help="Add a custom host-to-IP mapping (RUN steps' /etc/hosts).")
    @click.argument("context_dir", metavar="CONTEXT")
    def build(tags, file, build_args, target, no_cache, quiet, iidfile, labels, network,
              timestamp, squash, secrets, platform, pull, rm, progress, output, load,
              add_hosts, context_dir) -> None:
        """Build an image from a Dockerfile and the CONTEXT directory (``-``: a
        context tar, or a Dockerfile alone, on stdin)."""
        from registry import reference as refs
        from registry.archive import host_platform

        from ..builder.build import BuildOptions
        from .containers import engine
        for t in tags:
            try:
                refs.parse(t)
            except refs.ReferenceError as e:
                raise DockishError(f"invalid argument {t!r} for \"-t, --tag\" flag: {e}") \
                    from None
        if platform:
            os_, arch, _ = host_platform()
            if platform.split("/")[:2] != [os_, arch]:
                raise DockishError(f"--platform {platform}: only the host's platform "
                                   f"({os_}/{arch}) can be built")
        if timestamp is None and os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
            timestamp = int(os.environ["SOURCE_DATE_EPOCH"])
        opts = BuildOptions(tags=list(tags), build_args=_build_args(build_args),
                            target=target, no_cache=no_cache, quiet=quiet,
                            labels=_labels(labels), network=network, timestamp=timestamp,
                            squash=squash, secrets=_secrets(secrets), pull=pull,
                            add_hosts=list(add_hosts))
        from ..builder.build import build_hosts
        build_hosts("host", opts.add_hosts)        # a bad one is refused before building
        from ..builder import buildoutput, buildprogress
        mode = buildprogress.check_mode(progress)
        out_to = buildoutput.parse(output) if output else None
        if out_to is not None and out_to.dest == "-" and mode == "auto":
            mode = "plain"              # stdout carries the output: the steps go to stderr
        if mode == "quiet":
            opts.quiet = quiet = True
        printer = buildprogress.printer(mode, lambda line: click.echo(line, err=True))
        try:
            context, text = _context(context_dir, file)
            image_id = engine().build(
                context, opts, dockerfile=file if file and file != "-" else None,
                dockerfile_text=text, out=None if printer else sys.stdout,
                progress=printer.feed if printer else None)
        except DockishError as e:
            if printer:
                printer.fail(str(e))
            raise
        if printer:
            printer.finish(image_id, [refs.parse(t).familiar for t in tags])
        if out_to is not None:
            buildoutput.write(engine(), image_id, out_to)
        if iidfile:                 # all or nothing, as every output file
            from ..runtime.outfile import output_file
            with output_file(iidfile) as f:
                f.write(image_id.encode())
        if out_to is not None and out_to.dest == "-":
            return                  # stdout is the output's
        if quiet:
            click.echo(image_id)
            return
        if printer:
            return                  # BuildKit says no more
        click.echo(f"Successfully built {image_id[7:19]}")
        for t in tags:
            click.echo(f"Successfully tagged {refs.parse(t).familiar}")

    @main.group(context_settings={"help_option_names": ["-h", "--help"]})
    def buildx() -> None:
        """Docker Buildx's commands: ``buildx build`` is ``build``."""

    buildx.add_command(build, "build")
    main.commands["image"].add_command(build, "build")      # docker image build

    @main.group(context_settings={"help_option_names": ["-h", "--help"]})
    def builder() -> None:
        """Manage the build cache."""

    builder.add_command(build, "build")                     # docker builder build

    @builder.command("prune")
    @click.option("-a", "--all", "all_", is_flag=True, help="Remove all cache (the default "
                  "too: dockish keeps no internal-only cache).")
    @click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
    @click.option("--filter", "filters", multiple=True, metavar="until=DURATION",
                  help="Only entries unused for DURATION (e.g. 24h).")
    def prune(all_, force, filters) -> None:
        """Remove build cache entries and the layers only they kept."""
        from ..builder.buildcache import parse_duration
        from .containers import engine
        older = None
        for f in filters:
            key, _, value = f.partition("=")
            if key not in ("until", "unused-for"):
                raise DockishError(f"invalid filter {f!r}: use until=DURATION")
            try:
                older = parse_duration(value)
            except ValueError as e:
                raise DockishError(str(e)) from None
        if not force:
            click.confirm("WARNING! This will remove all dangling build cache. "
                          "Are you sure you want to continue?", abort=True)
        report = engine().build_cache_prune(older)
        for key in report.deleted:
            click.echo(f"Deleted build cache object: {key[7:19]}")
        click.echo(f"Total reclaimed space: {size(report.freed)}")
