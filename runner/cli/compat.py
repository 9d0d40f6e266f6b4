"""Docker flags that ask for nothing dockish would do otherwise, accepted so
that scripts written for Docker run unchanged: each says in its help why it
changes nothing here, and a value that would ask for something dockish
cannot do is refused in one line rather than ignored.

``tests/test_cli_conformance.py`` walks the docker CLI's flags per command
and lists the ones deliberately absent."""
from __future__ import annotations

from collections.abc import Callable

import click

from ..errors import UsageError


def _trust(_ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value:
        raise UsageError("--disable-content-trust=false: dockish does not verify image "
                         "signatures (Docker Content Trust); drop the flag")


def content_trust(fn: Callable) -> Callable:
    """Docker's ``--disable-content-trust`` (default true: no verification),
    as pull, push, create, run and build take it."""
    return click.option(
        "--disable-content-trust", type=click.BOOL, default=True, is_flag=False,
        flag_value=True, expose_value=False, callback=_trust, metavar="[=true]",
        help="Skip image verification (default true: dockish verifies no signatures).")(fn)


def no_op_flag(name: str, why: str, short: str | None = None) -> Callable[[Callable], Callable]:
    """A Docker boolean flag that changes nothing here (``why`` says so)."""
    names = (short, name) if short else (name,)
    return click.option(*names, is_flag=True, expose_value=False, help=why)
