"""``dockish network``: create, ls, inspect, rm, prune, connect, disconnect,
with Docker's flags, output and exit codes. Parsing and printing only: the
engine (``runner.runtime.netops``) does the work."""
from __future__ import annotations

import click

from .compat import no_op_flag
from .containers import _each, engine, print_inspect, print_rows

NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv4": "IPV4",
                   "IPv6": "IPV6", "Internal": "INTERNAL", "CreatedAt": "CREATED AT",
                   "Labels": "LABELS"}


@click.group("network")
def network_group() -> None:
    """Manage networks."""


@network_group.command("create")
@click.option("-d", "--driver", default="bridge", help="Driver to manage the Network "
              "(bridge).")
@click.option("--subnet", help="Subnet in CIDR format that represents a network segment.")
@click.option("--gateway", help="IPv4 Gateway for the master subnet.")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("--ip-range", help="Allocate container ip from a sub-range.")
@click.option("--aux-address", multiple=True, metavar="NAME=IP",
              help="Auxiliary IPv4 addresses used by Network driver.")
@click.option("-o", "--opt", multiple=True, metavar="KEY=VALUE",
              help="Set driver specific options (com.docker.network.driver.mtu).")
@click.option("--label", multiple=True, help="Set metadata on a network.")
@click.argument("name")
def network_create(driver: str, subnet: str | None, gateway: str | None, internal: bool,
                   ip_range: str | None, aux_address: tuple[str, ...], opt: tuple[str, ...],
                   label: tuple[str, ...], name: str) -> None:
    """Create a network; print its ID."""
    from ..runtime.netconf import parse_labels
    rec = engine().network_create(name, subnet, gateway, internal, parse_labels(list(label)),
                                  driver, ip_range, parse_labels(list(aux_address)),
                                  parse_labels(list(opt)))
    click.echo(rec.id)


@network_group.command("ls")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Provide filter values (e.g. 'driver=bridge', 'name=REGEX', "
                   "'label=KEY[=VALUE]', 'type=custom', 'dangling=true').")
@click.option("--format", "fmt", help="table, json, 'table TEMPLATE' or a Go template "
              "like {{.Name}}.")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
def network_ls(filters: tuple[str, ...], fmt: str | None, quiet: bool, no_trunc: bool) -> None:
    """List networks."""
    from ..runtime.netconf import ls_row, parse_filters
    from .listing import NETWORK_RAW, NETWORK_RAW_QUIET, quiet_format
    recs = engine().network_list(parse_filters(filters))
    rows = []
    for r in recs:
        row = ls_row(r)
        if no_trunc:
            row["ID"] = r.id
        rows.append(row)
    if quiet:
        fmt = quiet_format(fmt, "{{.ID}}", NETWORK_RAW_QUIET)
    print_rows(fmt, rows, NETWORK_TABLE, NETWORK_HEADERS, NETWORK_RAW,
               context="*network.networkContext")


@network_group.command("inspect")
@click.option("-f", "--format", "fmt", help="A Go template like {{.IPAM.Config}}.")
@no_op_flag("--verbose", "Verbose output for diagnostics (the same here: it adds only "
            "swarm services, which dockish has none of).", "-v")
@click.argument("names", nargs=-1, required=True)
def network_inspect(fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more networks."""
    eng = engine()
    print_inspect(fmt, [eng.network_inspect(n) for n in names])


@network_group.command("rm")
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not "
              "exist.")
@click.argument("names", nargs=-1, required=True)
def network_rm(force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more networks."""
    eng = engine()
    if force:
        names = tuple(n for n in names if n in {r.name for r in eng.network_list()} or
                      any(r.id.startswith(n) for r in eng.network_list()))
    _each(names, eng.network_remove)


@network_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Provide filter values (e.g. 'label=KEY[=VALUE]').")
def network_prune(force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    from ..runtime.netconf import parse_filters
    gone = engine().network_prune(parse_filters(filters))
    if gone:
        click.echo("Deleted Networks:")
        for n in gone:
            click.echo(n)


@network_group.command("connect")
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container.")
@click.option("--ip", help="IPv4 address (e.g., 172.30.100.104).")
@click.argument("network")
@click.argument("container")
def network_connect(alias: tuple[str, ...], ip: str | None, network: str,
                    container: str) -> None:
    """Connect a container to a network."""
    engine().network_connect(network, container, list(alias), ip)


@network_group.command("disconnect")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect.")
@click.argument("network")
@click.argument("container")
def network_disconnect(force: bool, network: str, container: str) -> None:
    """Disconnect a container from a network."""
    engine().network_disconnect(network, container)


def register(main: click.Group) -> None:
    main.add_command(network_group)
