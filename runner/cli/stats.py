"""``dockish stats`` and ``dockish update``: a container's resource use, and
its limits and restart policy changed while it exists, as the docker CLI's
commands of those names (columns, template fields, output, exit codes).
The numbers and the rules are the engine's (``runner.runtime.stats``,
``runner.runtime.update``); this module parses and prints."""
from __future__ import annotations

import contextlib
import sys

import click

from ..errors import known_errors
from .containers import engine

STATS_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
               "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
HOME, ERASE_LINE, ERASE_BELOW = "\033[H", "\033[K", "\033[J"


def stream_frame(text: str) -> str:
    """One frame of the streaming output, byte for byte the docker CLI
    28's (on a terminal or not): the cursor home, the table, then — its
    loop appends to the buffer it reads — the same lines again from the
    cursor home, each ended by an erase-to-end-of-line, and an erase of
    whatever an earlier, longer frame left below. On a terminal the second
    copy overwrites the first; through a pipe both are there, as Docker's."""
    first = HOME + text + "\n"
    again = "".join(f"{line} {ERASE_LINE}\n" for line in first.split("\n"))
    return first + again + ERASE_BELOW


@click.command("stats")
@click.argument("containers", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True,
              help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True,
              help="Disable streaming stats and only pull the first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("--format", "fmt", metavar="table|json|TEMPLATE",
              help="table (the default), json (one object a line), 'table TEMPLATE' or a "
                   "Go template with .Container .Name .ID .CPUPerc .MemUsage .MemPerc .NetIO "
                   ".BlockIO .PIDs.")
def stats(containers: tuple[str, ...], all_: bool, no_stream: bool, no_trunc: bool,
          fmt: str | None) -> None:
    """Display a live stream of container(s) resource usage statistics
    (ctrl-c ends it)."""
    from ..runtime.stats import row
    from .listing import format_rows
    frames = engine().stats_frames(list(containers) or None, all_, stream=not no_stream)
    try:
        for frame in frames:
            rows = [row(s, shown, trunc=not no_trunc) for shown, s in frame]
            text = "\n".join(format_rows(fmt, rows, STATS_TABLE, STATS_HEADERS,
                                          context="*container.statsContext"))
            if no_stream:
                click.echo(text)
            else:
                click.echo(stream_frame(text), nl=False, color=True)   # escapes kept piped
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            sys.stdout.close()


def _parsed(memory: str | None, memory_swap: str | None, cpus: str | None) -> tuple:
    """The size and CPU flags as numbers, in Docker's flag-error words."""
    from ..errors import UsageError
    from ..runtime.procopts import ram_bytes
    mem = ram_bytes(memory, "-m, --memory") if memory is not None else None
    swap = None
    if memory_swap is not None:
        swap = -1 if memory_swap.strip() == "-1" else ram_bytes(memory_swap, "--memory-swap")
    nano = None
    if cpus is not None:
        try:
            nano = int(float(cpus) * 1e9)
        except ValueError:
            raise UsageError(f'invalid argument "{cpus}" for "--cpus" flag: failed to parse '
                             f"{cpus} as a rational number") from None
    return mem, swap, nano


@click.command("update")
@click.argument("containers", nargs=-1, required=True)
@click.option("--restart", help="Restart policy to apply when a container exits "
              "(no, always, on-failure[:N], unless-stopped).")
@click.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for "
              "unlimited).")
@click.option("-m", "--memory", help="Memory limit.")
@click.option("--memory-swap", help="Swap limit equal to memory plus swap: -1 to enable "
              "unlimited swap.")
@click.option("--cpus", help="Number of CPUs.")
@click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight).")
@click.option("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) "
              "period.")
@click.option("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) "
              "quota.")
def update(containers: tuple[str, ...], restart: str | None, pids_limit: int | None,
           memory: str | None, memory_swap: str | None, cpus: str | None,
           cpu_shares: int | None, cpu_period: int | None, cpu_quota: int | None) -> None:
    """Update configuration of one or more containers: limits apply at once
    to a running one where a cgroup is delegated, the restart policy at its
    next exit."""
    mem, swap, nano = _parsed(memory, memory_swap, cpus)
    limits = {"PidsLimit": pids_limit, "Memory": mem, "MemorySwap": swap, "NanoCpus": nano,
              "CpuShares": cpu_shares, "CpuPeriod": cpu_period, "CpuQuota": cpu_quota}
    if restart is None and all(v is None for v in limits.values()):
        click.echo("you must provide one or more flags when using this command", err=True)
        sys.exit(1)
    eng = engine()
    failed, warnings = False, []
    for ref in containers:         # the docker CLI's order: names, then the warnings, stdout
        try:
            warnings += eng.update(ref, limits, restart)
        except known_errors() as e:
            from .main import daemon_not_found
            click.echo(daemon_not_found(str(e)) or f"Error response from daemon: {e}",
                       err=True)
            failed = True
            continue
        click.echo(ref)
    if warnings:
        click.echo("\n".join(warnings))
    if failed:
        sys.exit(1)


def register(main: click.Group) -> None:
    """Add ``stats`` and ``update`` (and ``container stats|update``)."""
    main.add_command(stats)
    main.add_command(update)
    group = main.commands["container"]
    group.add_command(stats, "stats")
    group.add_command(update, "update")
