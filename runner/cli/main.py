"""The ``dockish`` command line: Docker's command names, flags and exit codes.

Every failure dockish itself can name becomes one line on stderr and exit
code 125 (Docker's code for its own errors); tracebacks are for bugs only.
"""
from __future__ import annotations

import contextlib
import os
import sys

import click

from .. import envvars
from ..errors import DockishError, exit_code, known_errors, message

UserError = DockishError          # the older name


class DockishGroup(click.Group):
    """The one place errors become what the user sees: any error dockish
    can name (``runner.errors.known_errors``) is ``dockish: error: MSG`` on
    stderr and its exit code (125 unless it carries another); tracebacks
    are for bugs only. An error with no message was already shown: only
    its code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except known_errors() as e:
            text = message(e) if not isinstance(e, DockishError) or str(e) else ""
            if getattr(e, "from_daemon", False) and text:   # Docker's daemon refuses it
                click.echo(f"Error response from daemon: {text}", err=True)
                sys.exit(exit_code(e))
            not_found = daemon_not_found(text)
            if not_found:
                click.echo(not_found, err=True)
                sys.exit(1)
            if text:
                click.echo(f"dockish: error: {text}", err=True)
            sys.exit(exit_code(e))


def daemon_not_found(text: str) -> str | None:
    """Docker's line for an unknown container or image: the daemon's 404,
    ``Error response from daemon: No such container: X`` (an image named
    with its tag, ``nope:latest``), exit 1 in every command; None for any
    other error."""
    for kind in ("container", "image"):
        prefix = f"No such {kind}: "
        if text.startswith(prefix):
            name = text[len(prefix):]
            if kind == "image" and "@" not in name and ":" not in name.rpartition("/")[2] \
                    and not name.startswith("sha256:"):
                name += ":latest"
            return f"Error response from daemon: {prefix}{name}"
    return None


class DockishUsage(click.Group):
    """Usage errors as Docker's, for every command and sub-group from one
    place (``main``): ``dockish: unknown flag: --x`` then ``See 'dockish
    run --help'.``, an unknown command, a missing or extra argument with
    the usage line; exit 125 (1 for an unknown command, as Docker). Click's
    own three-line "Usage/Try/Error" would break scripts that match
    Docker's words."""

    def main(self, args=None, prog_name=None, **extra):   # noqa: ANN001 - click's signature
        extra.pop("standalone_mode", None)
        try:
            rv = super().main(args, prog_name or "dockish", standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help() if e.ctx else "")
            sys.exit(0)
        except click.UsageError as e:
            code, lines = usage_error(e, self._path(sys.argv[1:] if args is None else args))
            for line in lines:
                click.echo(line, err=True)
            sys.exit(code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.ClickException as e:          # a file option's error, say
            click.echo(f"dockish: error: {e.format_message()}", err=True)
            sys.exit(125)
        sys.exit(rv if isinstance(rv, int) else 0)

    def _path(self, args: list[str]) -> str:
        """The command path the user typed (``dockish container ls``), for
        errors click raises without a context."""
        path, cmd = ["dockish"], self
        for a in args:
            if a.startswith("-") or not isinstance(cmd, click.Group):
                break
            sub = cmd.get_command(click.Context(cmd), a)
            if sub is None:
                break
            path.append(a)
            cmd = sub
        return " ".join(path)


def _arg_counts(cmd: click.Command) -> tuple[int, bool]:
    """(how many arguments ``cmd`` needs, whether it takes more)."""
    need, more = 0, False
    for p in cmd.params:
        if isinstance(p, click.Argument):
            if p.required:
                need += max(p.nargs, 1)
            more = more or p.nargs == -1 or not p.required
    return need, more


def usage_error(e: click.UsageError, typed: str) -> tuple[int, list[str]]:
    """Docker's words and exit code for a click usage error (``typed``: the
    command path as typed, for errors without a context)."""
    ctx = e.ctx
    path = ctx.command_path if ctx else typed
    see = f"See '{path} --help'."
    msg = e.format_message()
    if isinstance(e, click.BadOptionUsage) and msg.endswith("requires an argument."):
        name = e.option_name
        shown = name if name.startswith("--") else f"{name[1:]!r} in {name}"
        return 125, [f"dockish: flag needs an argument: {shown}", see]
    if isinstance(e, click.NoSuchOption):
        name = e.option_name
        if name.startswith("--") or len(name) < 2:
            return 125, [f"dockish: unknown flag: {name}", see]
        return 125, [f"dockish: unknown shorthand flag: {name[1]!r} in {name}", see]
    if ctx is not None and isinstance(ctx.command, click.Group) and \
            msg.startswith("No such command"):
        name = msg.split("'")[1] if "'" in msg else msg
        return 1, [f"dockish: {name!r} is not a {path} command.", f"See '{path} --help'"]
    arg_missing = isinstance(e, click.MissingParameter) and isinstance(e.param, click.Argument)
    if ctx is not None and (arg_missing or msg.startswith("Got unexpected extra argument")):
        need, more = _arg_counts(ctx.command)
        how = "at least" if more else "exactly"
        usage = ctx.get_usage().replace("Usage: ", "Usage:  ", 1)
        return 125, [f'"{path}" requires {how} {need} argument{"s" if need != 1 else ""}.',
                     see, "", usage, "", ctx.command.get_short_help_str(limit=80)]
    return 125, [f"dockish: {msg}", see]


class DockishCli(DockishUsage, DockishGroup):
    """The top ``dockish`` group: Docker's usage errors and error lines."""


def _set_root(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Podman's global ``--root``: where images, containers and volumes live
    for this command (``$DOCKISH_ROOT`` says the same for every command)."""
    if value:
        os.environ["DOCKISH_ROOT"] = os.path.abspath(value)


def _set_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Docker's global ``--config DIR``: DIR/config.json is the client
    config, for reading credentials, helpers and registries and for
    ``login``/``logout`` to write (what ``$DOCKER_CONFIG`` says, and
    dockish's own config file then is that same file)."""
    if value:
        path = os.path.abspath(value)
        os.environ["DOCKER_CONFIG"] = path
        os.environ["DOCKISH_CONFIG"] = os.path.join(path, "config.json")


@click.group(cls=DockishCli, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=envvars.epilog())
@click.version_option(None, "-v", "--version", package_name="dockish",
                      message="dockish version %(version)s")
@click.option("--root", metavar="DIR", callback=_set_root, expose_value=False, is_eager=True,
              help="Where images, containers and volumes are stored (default: "
                   "$DOCKISH_ROOT, else ~/.local/share/dockish).")
@click.option("--config", metavar="DIR", callback=_set_config, expose_value=False,
              is_eager=True, help="Location of client config files (DIR/config.json; "
              "default: $DOCKER_CONFIG, $DOCKISH_CONFIG, ~/.config/dockish, ~/.docker).")
@click.option("-D", "--debug", is_flag=True, help="Enable debug mode (as --log-level debug).")
@click.option("-l", "--log-level", metavar="LEVEL", default="info",
              help='Set the logging level ("debug", "info", "warn", "error", "fatal").')
def main(debug: bool, log_level: str) -> None:
    """Docker-style containers for people without root."""
    from .. import loglevel
    try:
        level = loglevel.parse(log_level)
    except ValueError as e:
        raise DockishError(str(e), exit_code=1) from None
    loglevel.configure(loglevel.LEVELS["debug"] if debug else level)


@main.command()
@click.option("-f", "--foreground", is_flag=True, help="Serve in the foreground.")
@click.option("--rw", is_flag=True, help="Writable: changes go to the --upper layer.")
@click.option("--upper", metavar="DIR", help="The writable layer's directory (made if missing).")
@click.option("-o", "options", multiple=True, metavar="OPT[,OPT...]",
              help="FUSE mount options, e.g. allow_other, fsname=NAME.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="With no IMAGE: how to list the active mounts.")
@click.argument("image", required=False)
@click.argument("mountpoint", required=False)
def mount(foreground: bool, rw: bool, upper: str | None, options: tuple[str, ...], fmt: str,
          image: str | None, mountpoint: str | None) -> None:
    """Mount IMAGE's merged layers at MOUNTPOINT (read-only unless --rw).

    IMAGE is oci:PATH[:TAG] or docker-archive:PATH[:REPO:TAG]. Without
    MOUNTPOINT, a directory under the user's runtime dir is made and its path
    printed. Without IMAGE, the active mounts are listed.
    """
    from .containers import engine
    eng = engine()
    if image is None:
        _list_mounts(eng.mounts(), fmt)
        return
    spec = eng.mount(image, mountpoint, upper, list(options), rw, foreground)
    if mountpoint is None and not foreground:
        click.echo(spec.mountpoint)


def _list_mounts(live: list, fmt: str) -> None:
    if fmt == "json":
        import json
        click.echo(json.dumps([{"Image": r.image, "Mountpoint": r.mountpoint, "Pid": r.pid,
                                "ReadOnly": r.readonly, "Upper": r.upper} for r in live],
                              indent=2))
        return
    from ..format import table
    rows = [("IMAGE", "MOUNTPOINT", "PID", "MODE")]
    rows += [(r.image, r.mountpoint, str(r.pid), "ro" if r.readonly else "rw") for r in live]
    for line in table(rows):
        click.echo(line)


@main.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Unmount every dockish mount.")
@click.argument("targets", nargs=-1)
def umount(all_: bool, targets: tuple[str, ...]) -> None:
    """Unmount dockish mounts (by mountpoint or by image) and wait for their
    daemons to save and exit."""
    from .containers import engine, say
    for mp, note in engine().umount(list(targets), all_):
        if note:
            say(f"dockish: {note}")
        else:
            click.echo(mp)


@contextlib.contextmanager
def _offline_view(image: str, upper: str):
    """The tree of IMAGE plus the writable layer UPPER, read without mounting."""
    from unionfs.layers import LayerStore, default_root

    from ..runtime.mounting import mount_spec
    from ..runtime.view import offline_view
    spec = mount_spec(LayerStore(default_root()), image, ".", upper, [])
    if not spec.upper.is_dir():
        raise UserError(f"{upper} is not a writable layer directory")
    with offline_view(spec.layers, spec.layer_ids, spec.upper) as (tree, up):
        yield spec, tree, up


@main.command()
@click.option("--upper", metavar="DIR", help="A writable layer's directory (then IMAGE is "
              "the image it belongs to).")
@click.argument("image", metavar="CONTAINER|IMAGE")
def diff(upper: str | None, image: str) -> None:
    """List what CONTAINER (or the writable layer DIR over IMAGE) changed:
    A added, C changed, D deleted, as `docker diff` does."""
    from .containers import engine, print_diff
    if upper is None:
        print_diff(engine().diff(image))
        return
    from unionfs.generate import change_list
    with _offline_view(image, upper) as (_spec, tree, _up):
        print_diff([(kind, "/" + path.decode("utf-8", "surrogateescape"))
                    for kind, path in change_list(tree)])


@main.command("layer")
@click.option("--upper", required=True, metavar="DIR", help="The writable layer's directory.")
@click.option("-o", "--output", required=True, metavar="FILE",
              help="Where to write the tar ('-': stdout).")
@click.argument("image")
def layer_cmd(upper: str, output: str, image: str) -> None:
    """Write the writable layer DIR over IMAGE as an OCI layer tar, with
    `.wh.` whiteouts for deletions and opaque markers for replaced dirs."""
    from unionfs.generate import write_layer
    with _offline_view(image, upper) as (spec, tree, up):
        fds = [os.open(p, os.O_RDONLY | os.O_CLOEXEC) for p, _ in spec.layers]
        try:
            if output == "-":
                write_layer(tree, sys.stdout.buffer, layer_fds=fds, data_fd=up.data_fd)
            else:
                from ..runtime.outfile import output_file
                with output_file(output) as f:
                    write_layer(tree, f, layer_fds=fds, data_fd=up.data_fd)
        finally:
            for fd in fds:
                os.close(fd)


def _register_all() -> None:
    """Container commands first: the image commands' `inspect` then serves both."""
    from runner.cli import (
        build as build_cli,
    )
    from runner.cli import (
        containers as containers_cli,
    )
    from runner.cli import (
        images as images_cli,
    )
    from runner.cli import (
        login as login_cli,
    )
    from runner.cli import (
        system as system_cli,
    )
    containers_cli.register(main)
    images_cli.register(main)
    login_cli.register(main)
    build_cli.register(main)
    system_cli.register(main)
    from runner.cli import service as service_cli
    service_cli.register(main)
    from runner.cli import network as network_cli
    network_cli.register(main)
    from runner.cli import stats as stats_cli
    stats_cli.register(main)
    from runner.cli import check as check_cli
    check_cli.register(main)
    from runner.cli import completion as completion_cli
    completion_cli.register(main)


_register_all()


if __name__ == "__main__":
    main()
