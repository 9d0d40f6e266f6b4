"""``dockish check``: the preflight (``runner.preflight``) as a table of
OK/FAIL/WARN rows with the command that fixes each problem, or JSON; exits 1
when a required check fails, so scripts and CI can stop before the first
container does."""
from __future__ import annotations

import json
import sys

import click


@click.command("check")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="table, or json (a list of {name, ok, required, "
              "status, detail, fix}).")
def check(fmt: str) -> None:
    """Check that this machine can run rootless containers; name each fix."""
    from ..format import table
    from ..preflight import run_checks, status
    records = [{**r, "status": status(r)} for r in run_checks()]
    if fmt == "json":
        click.echo(json.dumps(records, indent=2))
    else:
        rows = [["STATUS", "CHECK", "DETAIL", "FIX"]]
        rows += [[r["status"], r["name"], r["detail"], r["fix"]] for r in records]
        for line in table(rows):
            click.echo(line)
    if any(r["status"] == "FAIL" for r in records):
        sys.exit(1)


def register(main: click.Group) -> None:
    main.add_command(check)
