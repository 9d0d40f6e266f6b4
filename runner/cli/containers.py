"""``dockish run`` and the container lifecycle commands, with Docker's names,
flags, output shapes and exit codes: click parses, the engine
(``runner.engine``) does the work, this module prints what it returns.
``register(main)`` adds them to the ``dockish`` click group."""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator

import click

from ..engine import CreateOptions, Engine, ExecOptions
from ..errors import DockishError, EscapeError, UsageError, known_errors
from ..format import size, table
from ..runtime.labels import parse as parse_labels
from .compat import content_trust
from .listing import format_rows, inspect_lines

RUN_SETTINGS = {"help_option_names": ["--help"], "allow_interspersed_args": False}
CliError = DockishError          # the older name

PS_TABLE = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t"
            "{{.Ports}}\t{{.Names}}")
PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "RunningFor": "CREATED", "CreatedAt": "CREATED AT", "Status": "STATUS",
              "Ports": "PORTS", "Names": "NAMES", "State": "STATE", "Size": "SIZE",
              "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES"}
VOLUME_TABLE = "table {{.Driver}}\t{{.Name}}"
VOLUME_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE",
                  "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS",
                  "Size": "SIZE"}


def engine() -> Engine:
    """The engine of the user's store; its notes go to stderr, dockish's own
    ones as warnings under ``-l/--log-level`` (``runner.loglevel``)."""
    return Engine(notify=say)


def say(note: str) -> None:
    """A note for the user on stderr, unless the log level hides it."""
    from ..loglevel import note_shown
    if note_shown(note):
        click.echo(note, err=True)


def _each(refs: tuple[str, ...], action: Callable[[str], object],
          failed: list[str] | None = None) -> None:
    """Docker's multi-object commands: ``action(ref)`` for each, each name
    echoed when done, errors one line each, exit 1 if any failed (or, given
    ``failed``, the refs that failed are added to it for the caller)."""
    bad: list[str] = []
    for ref in refs:
        try:
            action(ref)
        except known_errors() as e:
            click.echo(f"Error response from daemon: {e}", err=True)
            bad.append(ref)
            continue
        click.echo(ref)
    if failed is not None:
        failed.extend(bad)
    elif bad:
        sys.exit(1)


def print_rows(fmt: str | None, rows: list[dict], default: str,
               headers: dict[str, str], raw: str | None = None,
               context: str | None = None) -> None:
    """A list command's rows under ``--format`` (``runner.cli.listing``;
    ``raw``: the command's ``--format raw`` where Docker has one;
    ``context``: the Go type of Docker's row, whose missing fields are errors)."""
    for line in format_rows(fmt, rows, default, headers, raw, context):
        click.echo(line)


def print_inspect(fmt: str | None, objects: list[dict]) -> None:
    """``inspect``'s objects: JSON, or ``-f`` on each (``runner.cli.listing``)."""
    for line in inspect_lines(fmt, objects):
        click.echo(line)


def filters_flag(ctx: click.Context, _param: click.Parameter,
                 value: tuple[str, ...]) -> dict[str, list[str]]:
    """``--filter KEY=VALUE`` flags parsed as Docker's CLI parses them
    (``runner.filters``); a malformed one is a flag error (exit 125)."""
    from ..filters import parse_cli
    try:
        return parse_cli(value)
    except UsageError as e:
        raise click.UsageError(str(e), ctx) from None


def labels_flag(ctx: click.Context, _param: click.Parameter,
                value: tuple[str, ...]) -> dict[str, str]:
    """``--label KEY[=VALUE]`` flags as a map (``runner.runtime.labels``); a bad
    one is a flag error (exit 125)."""
    try:
        return parse_labels(value)
    except UsageError as e:
        raise click.UsageError(str(e), ctx) from None


def check_tty(attach_stdin: bool, tty: bool) -> None:
    """Docker's client-side check, before anything is made: ``-it`` with
    stdin that is no terminal (a script, a pipe, cron) cannot work, so it
    is ``the input device is not a TTY`` and exit 1, not a container."""
    if attach_stdin and tty and not sys.stdin.isatty():
        click.echo("the input device is not a TTY", err=True)
        sys.exit(1)


def check_detach_keys(text: str) -> None:
    """``--detach-keys`` checked before anything is made."""
    from ..runtime.tty import parse_detach_keys
    try:
        parse_detach_keys(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


@contextlib.contextmanager
def _detach_ends_quietly() -> Iterator[None]:
    """``run``/``start`` let go of a container at the detach keys with
    nothing said and exit 0, as the docker CLI does."""
    try:
        yield
    except EscapeError:
        sys.exit(0)


def create_options(image: str, args: tuple[str, ...], opts: dict) -> CreateOptions:
    """The run/create flags as the engine's record."""
    return CreateOptions(
        image=image, args=list(args), name=opts["name"] or "", interactive=opts["interactive"],
        tty=opts["tty"], auto_remove=opts["rm"], env=list(opts["env"]),
        env_files=list(opts["env_file"]), workdir=opts["workdir"], user=opts["user"],
        hostname=opts["hostname"], volumes=list(opts["volume"]), mounts=list(opts["mount"]),
        tmpfs=list(opts["tmpfs"]), network=opts["network"], publish=list(opts["publish"]),
        **network_options(opts),
        entrypoint=opts["entrypoint"], init=opts["init"], read_only=opts["read_only"],
        pull=opts["pull"], platform=opts["platform"], cap_add=list(opts["cap_add"]),
        cap_drop=list(opts["cap_drop"]),
        privileged=opts["privileged"], health_cmd=opts["health_cmd"],
        health_interval=opts["health_interval"], health_timeout=opts["health_timeout"],
        health_retries=opts["health_retries"],
        health_start_period=opts["health_start_period"],
        no_healthcheck=opts["no_healthcheck"], restart=opts["restart"],
        stop_signal=opts["stop_signal"], stop_timeout=opts["stop_timeout"],
        quiet=opts["quiet"], process=process_options(opts),
        labels=dict(opts["label"]), label_files=list(opts["label_file"]),
        volumes_from=list(opts["volumes_from"]),
        health_start_interval=opts["health_start_interval"])


def process_options(opts: dict) -> dict:
    """The process flags (``runner.runtime.procopts``) as the engine's record."""
    from ..runtime.logconfig import parse_opts as parse_log_opts
    from ..runtime.procopts import parse
    return parse(userns=opts["userns"], group_add=list(opts["group_add"]),
                 ulimits=list(opts["ulimit"]), shm_size=opts["shm_size"],
                 devices=list(opts["device"]), security_opt=list(opts["security_opt"]),
                 pids_limit=opts["pids_limit"], memory=opts["memory"], cpus=opts["cpus"],
                 memory_swap=opts["memory_swap"], cgroup_parent=opts["cgroup_parent"] or "",
                 cpu_shares=opts["cpu_shares"], cpu_period=opts["cpu_period"],
                 cpu_quota=opts["cpu_quota"], log_driver=opts["log_driver"],
                 log_opts=parse_log_opts(list(opts["log_opt"])), pid=opts["pid"],
                 ipc=opts["ipc"], uts=opts["uts"], sysctls=list(opts["sysctl"]),
                 domainname=opts["domainname"], oom_score_adj=opts["oom_score_adj"],
                 annotations=parse_annotations(opts["annotation"]),
                 mac_address=opts["mac_address"] or "")


def parse_annotations(items: tuple[str, ...]) -> dict[str, str]:
    """``--annotation KEY=VALUE`` (a bare KEY: an empty value, as Docker's map)."""
    return {k: v for k, _, v in (i.partition("=") for i in items)}


def network_options(opts: dict) -> dict:
    """The networking flags (``runner.runtime.netplan``) as CreateOptions fields."""
    return {"publish_all": opts["publish_all"], "expose": list(opts["expose"]),
            "network_aliases": list(opts["network_alias"]), "ip": opts["ip"],
            "add_host": list(opts["add_host"]), "dns": list(opts["dns"]),
            "dns_search": list(opts["dns_search"]), "dns_option": list(opts["dns_option"])}


def run_options(fn):
    """The flags run and create share."""
    opts = [
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("--rm", is_flag=True, help="Remove the container when it exits."),
        click.option("--name", help="Name the container."),
        click.option("-e", "--env", multiple=True, help="Set an environment variable."),
        click.option("--env-file", multiple=True, help="Read variables from a file."),
        click.option("-w", "--workdir", help="Working directory inside the container."),
        click.option("-u", "--user", help="name|uid[:group|gid]"),
        click.option("-h", "--hostname", help="Container host name."),
        click.option("-v", "--volume", multiple=True, help="HOST:CTR[:ro] or NAME:CTR."),
        click.option("--mount", multiple=True, help="type=bind|volume|tmpfs,..."),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs: PATH[:OPTIONS]."),
        click.option("--network", "--net", "network", help="A network made with `network "
                     "create`, or host, none, slirp4netns, pasta."),
        click.option("-p", "--publish", multiple=True, help="[IP:]HOST:CTR[/tcp]"),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to "
                     "random ports."),
        click.option("--expose", multiple=True, help="Expose a port or a range of ports."),
        click.option("--network-alias", "--net-alias", "network_alias", multiple=True,
                     help="Add network-scoped alias for the container."),
        click.option("--ip", help="IPv4 address (e.g., 172.30.100.104)."),
        click.option("--add-host", multiple=True, help="Add a custom host-to-IP mapping "
                     "(host:ip, ip may be host-gateway)."),
        click.option("--dns", multiple=True, help="Set custom DNS servers."),
        click.option("--dns-search", multiple=True, help="Set custom DNS search domains."),
        click.option("--dns-option", "--dns-opt", "dns_option", multiple=True,
                     help="Set DNS options."),
        click.option("--entrypoint", help="Override the image's entrypoint."),
        click.option("--init", is_flag=True, help="Run a reaper as pid 1."),
        click.option("--read-only", is_flag=True, help="Read-only root filesystem."),
        click.option("--pull", default="missing", help="missing, always or never."),
        click.option("--platform", metavar="OS/ARCH[/VARIANT]",
                     help="Pull and run the image of this platform (e.g. linux/amd64)."),
        click.option("--cap-add", multiple=True, help="Add a capability (or ALL)."),
        click.option("--cap-drop", multiple=True, help="Drop a capability (or ALL)."),
        click.option("--privileged", is_flag=True,
                     help="Every capability of the container's user namespace."),
        click.option("--health-cmd", help="Command to run to check health."),
        click.option("--health-interval", metavar="DURATION", help="Time between checks "
                     "(e.g. 30s)."),
        click.option("--health-timeout", metavar="DURATION", help="Longest a check may run."),
        click.option("--health-retries", type=int, help="Failures in a row that make it "
                     "unhealthy."),
        click.option("--health-start-period", metavar="DURATION",
                     help="Failures in this time after start do not count."),
        click.option("--no-healthcheck", is_flag=True, help="Disable the image's "
                     "HEALTHCHECK."),
        click.option("-l", "--label", multiple=True, metavar="KEY[=VALUE]",
                     callback=labels_flag, help="Set meta data on a container."),
        click.option("--label-file", multiple=True, metavar="FILE",
                     help="Read in a line delimited file of labels."),
        click.option("--restart", default="no", help="Restart policy to apply when a "
                     "container exits: no, on-failure[:max-retries], always, unless-stopped."),
        click.option("--stop-signal", help="Signal to stop the container."),
        click.option("--stop-timeout", type=int, help="Timeout (in seconds) to stop a "
                     "container."),
        click.option("--cidfile", help="Write the container ID to the file."),
        click.option("-a", "--attach", multiple=True, help="Attach to STDIN, STDOUT or "
                     "STDERR."),
        click.option("-q", "--quiet", is_flag=True, help="Suppress the pull output."),
        click.option("--userns", default="", help="User namespace to use (keep-id: your "
                     "uid and gid are the same inside)."),
        click.option("--group-add", multiple=True, help="Add additional groups to join."),
        click.option("--ulimit", multiple=True, help="Ulimit options (e.g. nofile=1024:2048)."),
        click.option("--shm-size", help="Size of /dev/shm (e.g. 64m)."),
        click.option("--device", multiple=True, help="Add a host device to the container "
                     "(/dev/X[:/dev/Y][:rwm])."),
        click.option("--security-opt", multiple=True, help="Security Options "
                     "(no-new-privileges, seccomp=unconfined|FILE)."),
        click.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for "
                     "unlimited)."),
        click.option("-m", "--memory", help="Memory limit."),
        click.option("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to "
                     "enable unlimited swap."),
        click.option("--cgroup-parent", help="Optional parent cgroup for the container "
                     "(one delegated to you)."),
        click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)."),
        click.option("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair "
                     "Scheduler) period."),
        click.option("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair "
                     "Scheduler) quota."),
        click.option("--cpus", help="Number of CPUs."),
        click.option("--log-driver", help="Logging driver for the container (json-file, "
                     "local or none)."),
        click.option("--log-opt", multiple=True, metavar="KEY=VALUE",
                     help="Log driver options (max-size, max-file, ...)."),
        click.option("--volumes-from", multiple=True, metavar="CONTAINER[:ro|rw]",
                     help="Mount volumes from the specified container(s)."),
        click.option("--pid", default="", help="PID namespace to use (host or "
                     "container:NAME)."),
        click.option("--ipc", default="", help="IPC mode to use (private, shareable, host "
                     "or container:NAME)."),
        click.option("--uts", default="", help="UTS namespace to use (host)."),
        click.option("--sysctl", multiple=True, metavar="KEY=VALUE",
                     help="Sysctl options (the namespaced ones: net.*, kernel.shm*, "
                     "kernel.msg*, kernel.sem, fs.mqueue.*)."),
        click.option("--domainname", default="", help="Container NIS domain name."),
        click.option("--oom-score-adj", type=int, help="Tune host's OOM preferences "
                     "(-1000 to 1000; rootless: only up)."),
        click.option("--health-start-interval", metavar="DURATION",
                     help="Time between checks during the start period."),
        click.option("--annotation", multiple=True, metavar="KEY=VALUE",
                     help="Add an annotation to the container (kept, shown by inspect)."),
        click.option("--mac-address", help="Container MAC address (on a user network)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _write(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


def _write_err(chunk: bytes) -> None:
    sys.stderr.buffer.write(chunk)
    sys.stderr.buffer.flush()


def _split_cp(arg: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` or a host path (absolute, relative with ./, or
    without a colon)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    name, _, path = arg.partition(":")
    return name, path or "/"


def print_diff(changes: list[tuple[str, str]]) -> None:
    for kind, path in changes:
        click.echo(f"{kind} {path}")


ATTACHABLE = ("stdin", "stdout", "stderr")


def attach_streams(values: tuple[str, ...], detach: bool) -> set[str]:
    """``-a``'s streams (Docker's checks and words); empty: all of them."""
    streams = set()
    for v in values:
        if v.lower() not in ATTACHABLE:
            raise UsageError(f'invalid argument "{v}" for "-a, --attach" flag: valid streams '
                             "are STDIN, STDOUT and STDERR")
        streams.add(v.lower())
    if streams and detach:
        raise UsageError("Conflicting options: -a and -d")
    return streams


def check_cidfile(path: str | None) -> None:
    """Docker's check, before anything is made: an existing file may be
    another container's."""
    if path and os.path.lexists(path):
        raise DockishError(f"container ID file found, make sure the other container isn't "
                           f"running or delete {path}")


def write_cidfile(path: str | None, cid: str) -> None:
    """The new container's ID, all or nothing (mkstemp + rename)."""
    if path:
        from ..runtime.outfile import output_file
        with output_file(path) as f:
            f.write(cid.encode())


def make_container(eng: Engine, image: str, args: tuple[str, ...], opts: dict):
    """create's and run's common part: the checks, the container, its cidfile
    (a container whose file cannot be written is taken back)."""
    check_cidfile(opts["cidfile"])
    c = eng.create(create_options(image, args, opts))
    try:
        write_cidfile(opts["cidfile"], c.id)
    except BaseException:
        eng.remove(c.id, force=True)
        raise
    return c


@click.command(context_settings=RUN_SETTINGS)
@run_options
@content_trust
@click.option("-d", "--detach", is_flag=True, help="Run in the background, print the id.")
@click.option("--sig-proxy", type=click.BOOL, default=True, is_flag=False, flag_value=True,
              help="Proxy received signals to the process (--sig-proxy=false: don't).")
@click.option("--detach-keys", default="ctrl-p,ctrl-q",
              help="Override the key sequence for detaching a container.")
@click.argument("image")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(detach: bool, sig_proxy: bool, detach_keys: str, image: str, args: tuple[str, ...],
        **opts) -> None:
    """Run a command in a new container."""
    from ..runtime.monitor import Fds
    streams = attach_streams(opts["attach"], detach)
    stdin = "stdin" in streams if streams else opts["interactive"]
    check_tty(stdin and not detach, opts["tty"])
    check_detach_keys(detach_keys)
    eng = engine()
    c = make_container(eng, image, args, opts)
    if detach:
        eng.start(c)
        click.echo(c.id)
        return
    fds = Fds(0, 1 if not streams or "stdout" in streams else -1,
              2 if not streams or "stderr" in streams else -1)
    with _detach_ends_quietly():
        sys.exit(eng.run_attached(c, stdin, opts["tty"], fds, sig_proxy=sig_proxy,
                                  detach_keys=detach_keys))


@click.command(context_settings=RUN_SETTINGS)
@run_options
@content_trust
@click.argument("image")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def create(image: str, args: tuple[str, ...], **opts) -> None:
    """Create a container without starting it; print its id."""
    attach_streams(opts["attach"], False)
    click.echo(make_container(engine(), image, args, opts).id)


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach stdout/stderr, exit with "
              "the container's code.")
@click.option("-i", "--interactive", is_flag=True, help="Attach stdin.")
@click.option("--detach-keys", default="ctrl-p,ctrl-q",
              help="Override the key sequence for detaching a container.")
@click.argument("containers", nargs=-1, required=True)
def start(attach: bool, interactive: bool, detach_keys: str,
          containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    check_detach_keys(detach_keys)
    eng = engine()
    if attach or interactive:
        if len(containers) > 1:
            raise CliError("you cannot start and attach multiple containers at once")
        c = eng.get(containers[0])
        if not c.running:
            with _detach_ends_quietly():
                sys.exit(eng.run_attached(c, interactive, c.config.tty,
                                          detach_keys=detach_keys))
    failed: list[str] = []
    _each(containers, lambda ref: eng.start(eng.get(ref)), failed)
    if failed:                      # Docker's summary line after the per-container ones
        click.echo(f"Error: failed to start containers: {', '.join(failed)}", err=True)
        sys.exit(1)


@click.command()
@click.option("-s", "--signal", "sig", help="Signal to send to the container.")
@click.option("-t", "--timeout", "--time", "timeout", type=int,
              help="Seconds to wait before killing the container.")
@click.argument("containers", nargs=-1, required=True)
def stop(sig: str | None, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Stop running containers: the stop signal (SIGTERM unless the container
    or -s says otherwise), then SIGKILL after the timeout (its
    --stop-timeout, else 10 s)."""
    from ..runtime.config import parse_signal
    signum = parse_signal(sig) if sig else None
    eng = engine()
    _each(containers, lambda ref: eng.stop(ref, timeout, signum))


@click.command()
@click.option("-s", "--signal", "sig", default="KILL", help="Signal to send.")
@click.argument("containers", nargs=-1, required=True)
def kill(sig: str, containers: tuple[str, ...]) -> None:
    """Send a signal (default SIGKILL) to running containers."""
    from ..runtime.config import parse_signal
    signum = parse_signal(sig)
    eng = engine()
    _each(containers, lambda ref: eng.kill(ref, signum))


@click.command()
@click.option("-s", "--signal", "sig", help="Signal to send to the container.")
@click.option("-t", "--timeout", "--time", "timeout", type=int,
              help="Seconds to wait before killing the container.")
@click.argument("containers", nargs=-1, required=True)
def restart(sig: str | None, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Stop then start containers."""
    from ..runtime.config import parse_signal
    signum = parse_signal(sig) if sig else None
    eng = engine()
    _each(containers, lambda ref: eng.restart(ref, timeout, signum))


@click.command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.option("-v", "--volumes", is_flag=True, help="Remove its anonymous volumes.")
@click.argument("containers", nargs=-1, required=True)
def rm(force: bool, volumes: bool, containers: tuple[str, ...]) -> None:
    """Remove containers."""
    eng = engine()
    _each(containers, lambda ref: eng.remove(ref, force, volumes))


@click.command()
@click.option("-a", "--all", "all_", is_flag=True,
              help="Show all containers (default shows just running).")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              callback=filters_flag,
              help="Filter output based on conditions provided: label, status, name, id, "
                   "ancestor, exited, before, since, volume, network, health, publish, "
                   "expose.")
@click.option("-n", "--last", type=int, default=-1,
              help="Show n last created containers (includes all states).")
@click.option("-l", "--latest", is_flag=True,
              help="Show the latest created container (includes all states).")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--format", "fmt", help="table, json, 'table TEMPLATE' or a Go template "
              "like {{.Names}}.")
def ps(all_: bool, filters: dict[str, list[str]], last: int, latest: bool, quiet: bool,
       size: bool, no_trunc: bool, fmt: str | None) -> None:
    """List containers."""
    from .listing import (
        PS_CONTEXT,
        PS_RAW,
        PS_RAW_QUIET,
        PS_RAW_SIZE,
        check_ps_template,
        is_raw,
        ps_row,
    )
    if fmt:
        check_ps_template(fmt)
    if fmt and quiet:
        click.echo("WARNING: Ignoring custom format, because both --format and --quiet are "
                   "set.", err=True)
    if fmt and not quiet and not size and ps_uses_size(fmt):
        size = True                     # Docker computes sizes a template asks for
    summaries = engine().container_summaries(filters, all_,
                                             1 if latest and last == -1 else last, size)
    rows = [ps_row(s, not no_trunc) for s in summaries]
    if quiet and is_raw(fmt):
        print_rows(PS_RAW_QUIET, rows, PS_TABLE, PS_HEADERS)
        return
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    print_rows(fmt, rows, PS_TABLE + ("\t{{.Size}}" if size else ""), PS_HEADERS,
               PS_RAW_SIZE if size else PS_RAW, context=PS_CONTEXT)


def ps_uses_size(fmt: str) -> bool:
    """Whether ``fmt`` shows ``.Size`` (``{{json .}}`` does), so ``ps`` must
    measure: Docker's CLI runs the template on an empty row to see. The
    word ``json`` is read as a template there, so it measures nothing."""
    return fmt.strip() != "json" and ("json ." in fmt or ".Size" in fmt)


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Follow the output.")
@click.option("-n", "--tail", default="all", help="Lines from the end (or all).")
@click.option("-t", "--timestamps", is_flag=True, help="Show each line's time.")
@click.option("--since", help="Only output since this time (seconds since the epoch, "
              "RFC 3339, or a duration back from now like 10m).")
@click.option("--until", help="Only output before this time (as --since).")
@click.option("--details", is_flag=True, help="Show extra details provided to logs (a "
              "line's attributes; dockish has no --log-opt ones, so a space, as Docker's).")
@click.argument("container")
def logs(follow: bool, tail: str, timestamps: bool, since: str | None, until: str | None,
         details: bool, container: str) -> None:
    """Show a container's output (its stderr on stderr, as Docker does)."""
    from ..runtime.logs import STDERR, rfc3339_nano
    at_line_start = {1: True, 2: True}
    for entry in engine().logs(container, since=since, until=until, tail=tail,
                               follow=follow, timestamps=timestamps):
        data = entry.data
        if details:                  # Docker: each line's attributes (none here), a space
            data = _detailed(data, at_line_start[entry.stream])
        if timestamps and at_line_start[entry.stream] and entry.time:
            data = rfc3339_nano(entry.time).encode() + b" " + data
        at_line_start[entry.stream] = data.endswith(b"\n")
        (_write_err if entry.stream == STDERR else _write)(data)


def _detailed(data: bytes, at_line_start: bool) -> bytes:
    """``logs --details``: a space before each line that starts in ``data``."""
    parts = data.split(b"\n")
    last = len(parts) - 1
    return b"\n".join(b" " + part if (i or at_line_start) and (i < last or part) else part
                      for i, part in enumerate(parts))


@click.command("exec", context_settings=RUN_SETTINGS)
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-d", "--detach", is_flag=True,
              help="Detached mode: run the command in the background.")
@click.option("-u", "--user", help="Username or UID (format: name|uid[:group|gid]).")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.option("--detach-keys", default="ctrl-p,ctrl-q",
              help="Override the key sequence for detaching a container.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(interactive: bool, tty: bool, detach: bool, user: str | None,
          workdir: str | None, env: tuple[str, ...], env_file: tuple[str, ...],
          privileged: bool, detach_keys: str, container: str,
          command: tuple[str, ...]) -> None:
    """Run a command in a running container."""
    check_tty(interactive and not detach, tty)
    try:
        code = engine().exec(container, ExecOptions(
            list(command), interactive, tty, detach, user, workdir, list(env),
            list(env_file), privileged=privileged, detach_keys=detach_keys))
    except EscapeError as e:           # the docker CLI's bare line after a detach
        click.echo(str(e), err=True)
        sys.exit(e.exit_code)
    sys.exit(code)


@click.command()
@click.argument("containers", nargs=-1, required=True)
def wait(containers: tuple[str, ...]) -> None:
    """Block until containers stop, then print their exit codes."""
    eng = engine()
    for ref in containers:
        click.echo(str(eng.wait(ref)))


# Fields Docker's typed ``container.Config`` always has, as its zero values
# print in a template (a nil map ``map[]``, a nil slice ``[]``, a nil
# pointer ``<nil>``); the JSON leaves them out when empty.
CONFIG_ZERO: dict = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "ExposedPorts": {}, "Tty": False,
    "OpenStdin": False, "StdinOnce": False, "Env": [], "Cmd": [], "Healthcheck": None,
    "Image": "", "Volumes": {}, "WorkingDir": "", "Entrypoint": [], "OnBuild": [],
    "Labels": {}, "StopSignal": "", "Shell": []}


def typed_inspect(obj: dict) -> dict:
    """``obj`` as Docker's typed inspect struct shows it to ``-f``, where its
    JSON omits a field (``omitempty``): ``{{json .State.Health}}`` is
    ``null`` and ``{{.Config.Labels}}`` ``map[]`` there, not a missing-key
    error. Docker runs ``-f`` on the typed struct first, so only a field no
    struct has is an error."""
    out = dict(obj)
    state = obj.get("State")
    if isinstance(state, dict) and "Health" not in state:
        out["State"] = {**state, "Health": None}
    if isinstance(state, dict):                  # a container's sizes: nil without -s
        out.setdefault("SizeRw", None)
        out.setdefault("SizeRootFs", None)
    config = obj.get("Config")
    if isinstance(config, dict):
        out["Config"] = {**CONFIG_ZERO, **config}
    elif "Config" in obj and config is None:
        out["Config"] = dict(CONFIG_ZERO)
    return out


@click.command()
@click.option("-f", "--format", "fmt", help="A Go-style template like {{.State.Status}}.")
@click.option("--type", "type_", default="container",
              help="Only inspect objects of the given type.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes (SizeRw, "
              "SizeRootFs).")
@click.argument("names", nargs=-1, required=True)
def inspect(fmt: str | None, type_: str, names: tuple[str, ...], size: bool = False) -> None:
    """Show containers' details as JSON."""
    from ..runtime.container import ContainerError
    ctx = click.get_current_context()
    top_level = ctx.parent is not None and ctx.parent.parent is None   # `dockish inspect`
    eng = engine()
    out, failed = [], []
    for ref in names:
        try:
            out.append(eng.inspect_container(ref, size))
        except ContainerError as e:
            failed.append(f"Error: No such object: {ref}" if top_level and
                          str(e).startswith("No such container") else f"Error: {e}")
    print_inspect(fmt, [typed_inspect(o) for o in out] if fmt else out)
    for line in failed:           # after the output, as Docker's
        click.echo(line, err=True)
    if failed:
        sys.exit(1)


@click.command()
@click.argument("container")
@click.argument("ps_args", nargs=-1)
def top(container: str, ps_args: tuple[str, ...]) -> None:
    """Show a container's processes."""
    for line in table([("UID", "PID", "PPID", "CMD"), *engine().top(container)]):
        click.echo(line)


@click.command()
@click.argument("container")
@click.argument("private_port", required=False)
def port(container: str, private_port: str | None) -> None:
    """List a container's published ports."""
    for key, host in engine().port(container, private_port):
        click.echo(host if private_port else f"{key} -> {host}")


@click.command()
@click.option("-a", "--archive", is_flag=True,
              help="Archive mode (copy all uid/gid information; as root, device nodes "
                   "and set-id bits too).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in "
              "SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output during copy "
              "(there is none).")
@click.argument("source")
@click.argument("dest")
def cp(archive: bool, follow_link: bool, quiet: bool, source: str, dest: str) -> None:
    """Copy files between a container (running or stopped) and the host:
    CONTAINER:PATH HOSTPATH|- or HOSTPATH|- CONTAINER:PATH ('-': a tar
    archive on stdout, or read from stdin into a directory)."""
    src_ctr, src_path = _split_cp(source)
    dst_ctr, dst_path = _split_cp(dest)
    if (src_ctr is None) == (dst_ctr is None):
        raise DockishError("copying between containers or within the host is not "
                           "supported: one side must be CONTAINER:PATH")
    eng = engine()
    if src_ctr is not None and dst_path == "-":
        _st, stream = eng.archive_get(src_ctr, src_path, follow=follow_link)
        try:
            for chunk in stream:
                _write(chunk)
        finally:
            stream.close()
    elif src_ctr is not None:
        eng.copy_out(src_ctr, src_path, dst_path, archive=archive, follow=follow_link)
    elif src_path == "-":
        st = eng.archive_stat(dst_ctr, dst_path)
        if st is None or not st["mode"] & (1 << 31):
            raise DockishError(f'destination "{dst_ctr}:{dst_path}" must be a directory')
        eng.archive_put(dst_ctr, dst_path, sys.stdin.buffer, archive=archive)
    else:
        eng.copy_in(dst_ctr, src_path, dst_path, archive=archive, follow=follow_link)


@click.command()
@click.option("-o", "--output", help="Write to a file instead of stdout.")
@click.argument("container")
def export(output: str | None, container: str) -> None:
    """Write a container's filesystem as a tar archive."""
    eng = engine()
    eng.get(container)
    if output is None and sys.stdout.isatty():
        raise DockishError("cowardly refusing to save to a terminal. Use the -o flag or "
                           "redirect")
    from ..runtime.outfile import output_file
    if output is None:
        eng.export(container, os.dup(1))
        return
    with output_file(output) as f:
        eng.export(container, os.dup(f.fileno()))


@click.command()
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--detach-keys", default="ctrl-p,ctrl-q", show_default=True,
              help="Keys that detach from the container.")
@click.option("--sig-proxy", type=click.BOOL, default=True, is_flag=False, flag_value=True,
              help="Proxy all received signals to the process (a container without a "
                   "terminal; --sig-proxy=false: they end this client only).")
@click.argument("container")
def attach(no_stdin: bool, detach_keys: str, sig_proxy: bool, container: str) -> None:
    """Attach to a running container's terminal (run -d -t; -i for input)
    or follow its output; exits with its code."""
    if not sig_proxy:                 # ctrl-c ends the client by the signal, as Go's does
        import signal
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    code, detached = engine().attach(container, no_stdin, detach_keys, write=_write,
                                     write_err=_write_err, sig_proxy=sig_proxy)
    if detached:
        click.echo("\nread escape sequence", err=True)
    sys.exit(code)


@click.command()
@click.argument("container")
@click.argument("new_name")
def rename(container: str, new_name: str) -> None:
    """Rename a container."""
    engine().rename(container, new_name)


@click.command()
@click.argument("containers", nargs=-1, required=True)
def pause(containers: tuple[str, ...]) -> None:
    """Pause all processes in containers (SIGSTOP: cgroups v1 give a
    rootless user no freezer)."""
    _each(containers, engine().pause)


@click.command()
@click.argument("containers", nargs=-1, required=True)
def unpause(containers: tuple[str, ...]) -> None:
    """Unpause all processes in containers."""
    _each(containers, engine().unpause)


@click.command()
@click.option("-a", "--author", default="", help='Author (e.g. "Name <mail@example.org>").')
@click.option("-c", "--change", multiple=True, metavar="INSTRUCTION",
              help="Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                   "ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR) to the image.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p", "--pause", type=click.BOOL, default=True, is_flag=False,
              flag_value=True, show_default=True,
              help="Pause the container while committing (--pause=false: don't).")
@click.argument("container")
@click.argument("repository", required=False)
def commit(author: str, change: tuple[str, ...], message: str, pause: bool,
           container: str, repository: str | None) -> None:
    """Create a new image from a container's changes."""
    click.echo(engine().commit(container, repository, author=author, message=message,
                               changes=list(change), pause=pause))


@click.group("container")
def container_group() -> None:
    """Manage containers."""


@container_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              callback=filters_flag,
              help="Provide filter values (e.g. 'until=<timestamp>', 'label=KEY[=VALUE]', "
                   "'label!=KEY[=VALUE]').")
def container_prune(force: bool, filters: dict[str, list[str]]) -> None:
    """Remove all stopped containers."""
    if not force and not confirm("WARNING! This will remove all stopped containers.\n"
                                 "Are you sure you want to continue?"):
        return                          # Docker: cancelled, exit 0
    report = engine().container_prune(filters)
    print_prune("Containers", report.deleted, report.freed)


@container_group.command("diff")
@click.argument("container")
def container_diff(container: str) -> None:
    """List what a container changed (A added, C changed, D deleted)."""
    print_diff(engine().diff(container))


@click.group("volume")
def volume_group() -> None:
    """Manage named volumes."""


@volume_group.command("create")
@click.option("-d", "--driver", default="local", help="Specify volume driver name "
              "(local: the only one).")
@click.option("--label", "labels", multiple=True, metavar="KEY[=VALUE]",
              callback=labels_flag, help="Set metadata for a volume.")
@click.option("-o", "--opt", "options", multiple=True, metavar="KEY=VALUE",
              help="Set driver specific options (none: a rootless volume is a plain "
                   "directory).")
@click.argument("name", required=False)
def volume_create(driver: str, labels: tuple[str, ...], options: tuple[str, ...],
                  name: str | None) -> None:
    """Create a volume; print its name."""
    opts = dict(o.partition("=")[::2] for o in options)
    click.echo(engine().volume_create(name, dict(labels), driver, opts))


@volume_group.command("ls")
@click.option("-f", "--filter", "filters", multiple=True, metavar="KEY=VALUE",
              callback=filters_flag,
              help="Provide filter values (e.g. 'dangling=true', 'driver=local', "
                   "'label=KEY[=VALUE]', 'name=REGEX').")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.option("--format", "fmt", help="table, json, 'table TEMPLATE' or a Go template "
              "like {{.Name}}.")
def volume_ls(filters: dict[str, list[str]], quiet: bool, fmt: str | None) -> None:
    """List volumes."""
    from .listing import VOLUME_RAW, VOLUME_RAW_QUIET, quiet_format, volume_row
    rows = [volume_row(v) for v in engine().volume_list(filters)]
    if quiet:
        fmt = quiet_format(fmt, "{{.Name}}", VOLUME_RAW_QUIET)
    print_rows(fmt, rows, VOLUME_TABLE, VOLUME_HEADERS, VOLUME_RAW,
               context="*formatter.volumeContext")


@volume_group.command("inspect")
@click.option("-f", "--format", "fmt", help="A Go template like {{.Mountpoint}}.")
@click.argument("names", nargs=-1, required=True)
def volume_inspect(fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more volumes."""
    eng = engine()
    print_inspect(fmt, [eng.volume_inspect(n) for n in names])


@volume_group.command("rm")
@click.option("-f", "--force", is_flag=True,
              help="Force the removal of one or more volumes.")
@click.argument("names", nargs=-1, required=True)
def volume_rm(force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more volumes."""
    eng = engine()
    _each(names, lambda n: eng.volume_remove(n, force))


@volume_group.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not "
              "just anonymous ones.")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              callback=filters_flag,
              help="Provide filter values (e.g. 'label=KEY[=VALUE]', 'label!=KEY').")
def volume_prune(force: bool, all_: bool, filters: dict[str, list[str]]) -> None:
    """Remove unused local volumes (anonymous ones unless -a)."""
    if not force and not confirm(
            f"WARNING! This will remove {'all' if all_ or 'all' in filters else 'anonymous'} "
            "local volumes not used by at least one container.\n"
            "Are you sure you want to continue?"):
        return
    report = engine().volume_prune(all_, filters)
    print_prune("Volumes", report.deleted, report.freed)


def register(main: click.Group) -> None:
    """Add the container and volume commands to ``main``."""
    for cmd in (run, create, start, stop, kill, restart, rm, ps, logs, exec_, wait, inspect,
                top, port, cp, export, attach, rename, pause, unpause, commit, container_group,
                volume_group):
        main.add_command(cmd)
    for name, cmd in (("ls", ps), ("list", ps), ("rm", rm), ("stop", stop), ("start", start),
                      ("run", run), ("create", create), ("logs", logs), ("exec", exec_),
                      ("inspect", inspect), ("kill", kill), ("wait", wait), ("top", top),
                      ("port", port), ("restart", restart), ("cp", cp),
                      ("export", export), ("commit", commit), ("pause", pause),
                      ("unpause", unpause), ("rename", rename), ("attach", attach)):
        container_group.add_command(cmd, name)


def prune_section(what: str, deleted: list[str]) -> None:
    """One part of a prune report as Docker's: ``Deleted WHAT:``, a line
    each and a blank line; nothing when nothing went."""
    if deleted:
        click.echo(f"Deleted {what}:\n" + "".join(f"{d}\n" for d in deleted))


def print_prune(what: str, deleted: list[str], freed: int = 0) -> None:
    """Docker's prune report: the section, then the total (always)."""
    prune_section(what, deleted)
    click.echo(f"Total reclaimed space: {size(freed)}")


def confirm(message: str) -> bool:
    """Docker's prompt: ``MESSAGE [y/N] `` on stdout and a line of stdin;
    only ``y`` goes on (no answer, or no stdin, is no)."""
    click.echo(f"{message} [y/N] ", nl=False)
    return sys.stdin.readline().strip().lower() == "y"
