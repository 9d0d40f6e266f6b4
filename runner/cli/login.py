"""``dockish login`` and ``logout``: credentials for registries, checked
against the registry before they are stored."""
from __future__ import annotations

import re
import sys

import click

from ..errors import DockishError as UserError
from .images import _options, registry_options


def _server_host(server: str | None) -> str:
    if not server:
        return "docker.io"
    host = re.sub(r"^[a-z]+://", "", server).split("/", 1)[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


@click.command()
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@registry_options
@click.argument("server", required=False)
def login(username, password, password_stdin, tls_verify, authfile, server):
    """Log in to a registry (default: Docker Hub); credentials are checked first."""
    from registry import auth
    from registry.client import Client
    from registry.reference import registry_host
    host = _server_host(server)
    if password and password_stdin:
        raise UserError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise UserError("must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if password and not password_stdin:
        click.echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
                   err=True)
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    options = _options(tls_verify, authfile)
    options.credentials = (username, password)
    client = Client(registry_host(host), options)
    client.request("GET", "/v2/", scopes=())
    auth.store_credentials(host, username, password, authfile)
    click.echo("Login Succeeded")


@click.command()
@click.option("--authfile", metavar="FILE", envvar="REGISTRY_AUTH_FILE",
              help="Credentials file.")
@click.argument("server", required=False)
def logout(authfile, server):
    """Log out from a registry (default: Docker Hub)."""
    from registry import auth
    host = _server_host(server)
    if auth.remove_credentials(host, authfile):
        click.echo(f"Removing login credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")


def register(main: click.Group) -> None:
    main.add_command(login)
    main.add_command(logout)
