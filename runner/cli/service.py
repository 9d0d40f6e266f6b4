"""``dockish system service``: the Docker Engine API on a user socket
(the server is ``runner.api``)."""
from __future__ import annotations

import click

from ..errors import UsageError


@click.command("service")
@click.option("-t", "--time", "idle", type=int, default=5, metavar="SECONDS",
              help="Exit after this many seconds without requests (0: never).")
@click.argument("uri", required=False, metavar="[unix://PATH]")
def service(idle: int, uri: str | None) -> None:
    """Serve the Docker Engine API (docker CLI, docker-py, testcontainers,
    compose) on unix://PATH, by default $XDG_RUNTIME_DIR/dockish/docker.sock.
    Containers outlive the service."""
    from ..api.errors import ApiError
    from ..api.service import serve, socket_path
    if idle < 0:
        raise UsageError("--time must be 0 (never exit) or a number of seconds")
    try:
        path = socket_path(uri)
    except ValueError as e:
        raise UsageError(str(e)) from None

    def ready() -> None:
        import logging

        from ..loglevel import shows
        if shows(logging.INFO):          # information: -l warn and up hide it
            click.echo(f"dockish: serving the Docker API: DOCKER_HOST=unix://{path}", err=True)
    try:
        serve(path, float(idle), ready)
    except ApiError as e:
        raise UsageError(e.message) from None


def register(main: click.Group) -> None:
    main.commands["system"].add_command(service, "service")
