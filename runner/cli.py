"""The ``dockish`` command line: Docker's command names, flags and exit codes.

Every failure dockish itself can name becomes one line on stderr and exit
code 125 (Docker's code for its own errors); tracebacks are for bugs only.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click

from .errors import DockishError, exit_code, known_errors, message

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
            if text:
                click.echo(f"dockish: error: {text}", err=True)
            sys.exit(exit_code(e))


@click.group(cls=DockishGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dockish")
def main() -> None:
    """Docker-style containers for people without root."""


def _store():
    from unionfs.layers import LayerStore, default_root
    return LayerStore(default_root())


def _mount_spec(image: str, mountpoint: str, upper: str | None, options: list[str]):
    from registry.resolve import resolve
    from unionfs.daemon import MountSpec
    store = _store()
    img = resolve(image, store)
    layers = [(store.tar_path(d), store.load_index(d)) for d in img.diff_ids]
    return MountSpec(layers=layers, layer_ids=list(img.diff_ids),
                     mountpoint=os.path.abspath(mountpoint), image=image,
                     upper=Path(upper).absolute() if upper else None, options=options)


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
    from unionfs import daemon, mounts
    if image is None:
        _list_mounts(fmt)
        return
    opts = [o for group in options for o in group.split(",") if o]
    if "ro" in opts and (rw or upper):
        raise UserError("-o ro contradicts --rw/--upper")
    if rw and not upper:
        raise UserError("--rw needs --upper DIR: the directory that keeps the changes")
    print_path = mountpoint is None
    if mountpoint is None:
        mountpoint = str(mounts.auto_mountpoint(image))
    daemon.check_mountpoint(os.path.abspath(mountpoint))
    spec = _mount_spec(image, mountpoint, upper, opts)
    if foreground:
        daemon.serve(spec)
        return
    log = mounts.runtime_dir() / f"mount-{mounts.record_path(spec.mountpoint).stem}.log"
    daemon.start(spec, log)
    if print_path:
        click.echo(spec.mountpoint)


def _list_mounts(fmt: str) -> None:
    import json

    from unionfs import mounts
    live = []
    for rec in mounts.all_records():
        if rec.alive:
            live.append(rec)
        else:
            note = mounts.unmount(rec.mountpoint) if mounts.mount_state(rec.mountpoint) == \
                "stale" else ""
            mounts.remove(rec.mountpoint)
            click.echo(f"dockish: {rec.mountpoint}: its daemon had died; "
                       f"{'cleaned up the stale mount' if note else 'forgot it'}", err=True)
    if fmt == "json":
        click.echo(json.dumps([{"Image": r.image, "Mountpoint": r.mountpoint, "Pid": r.pid,
                                "ReadOnly": r.readonly, "Upper": r.upper} for r in live],
                              indent=2))
        return
    from .format import table
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
    from unionfs import mounts
    if not targets and not all_:
        raise UserError("umount needs a MOUNTPOINT, an IMAGE or --all")
    records = mounts.all_records()
    chosen: list[str] = []
    if all_:
        chosen = [r.mountpoint for r in records]
    for t in targets:
        by_image = [r.mountpoint for r in records if r.image == t]
        chosen.extend(by_image or [os.path.abspath(t)])
    for mp in chosen:
        note = mounts.unmount(mp)
        if note:
            click.echo(f"dockish: {note}", err=True)
        else:
            click.echo(mp)


@contextlib.contextmanager
def _offline_view(image: str, upper: str):
    """The tree of IMAGE plus the writable layer UPPER, read without mounting."""
    from .view import offline_view
    spec = _mount_spec(image, ".", upper, [])
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
    from .containers_cli import engine, print_diff
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
                from .outfile import output_file
                with output_file(output) as f:
                    write_layer(tree, f, layer_fds=fds, data_fd=up.data_fd)
        finally:
            for fd in fds:
                os.close(fd)


def _register_all() -> None:
    """Container commands first: the image commands' `inspect` then serves both."""
    from runner import build_cli, containers_cli, images_cli, login_cli, system_cli
    containers_cli.register(main)
    images_cli.register(main)
    login_cli.register(main)
    build_cli.register(main)
    system_cli.register(main)
    from runner import service_cli
    service_cli.register(main)
    from runner import check_cli
    check_cli.register(main)


_register_all()


if __name__ == "__main__":
    main()
