"""``dockish run`` and the container lifecycle commands, with Docker's names,
flags, output shapes and exit codes. ``register(main)`` adds them to the
``dockish`` click group."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import click

from . import config as cfgmod
from . import namespaces as ns

EXIT_DOCKISH = 125
RUN_SETTINGS = {"help_option_names": ["--help"], "allow_interspersed_args": False}


# ------------------------------------------------------------------ helpers

class CliError(Exception):
    """One line for the user; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_DOCKISH) -> None:
        super().__init__(message)
        self.code = code


def _errors() -> tuple[type[BaseException], ...]:
    from registry.archive import ImageError
    from unionfs.layers import LayerStoreError
    from unionfs.mounts import MountError
    from unionfs.tree import LayerError
    from unionfs.upper import UpperError

    from .container import ContainerError
    from .network import NetworkError
    from .volumes import VolumeError
    return (ImageError, LayerStoreError, MountError, LayerError, UpperError, ContainerError,
            NetworkError, VolumeError, cfgmod.ConfigError, ns.NamespaceError, OSError)


def _fail(msg: str, code: int) -> None:
    click.echo(f"dockish: error: {msg}", err=True)
    sys.exit(code)


def cli(fn):
    """Known errors become ``dockish: error: ...`` and exit 125 (or the
    code a CliError carries)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CliError as e:
            _fail(str(e), e.code)
        except _errors() as e:
            if isinstance(e, OSError) and e.strerror:
                _fail(e.strerror + (f": {e.filename}" if e.filename else ""), EXIT_DOCKISH)
            _fail(str(e) or type(e).__name__, EXIT_DOCKISH)
    return wrapper


def _root() -> Path:
    from unionfs.layers import default_root
    return default_root()


def _layer_store():
    from unionfs.layers import LayerStore
    return LayerStore(_root())


def _containers():
    from .container import Containers
    return Containers(_root())


def _volumes():
    from .volumes import Volumes
    return Volumes(_root())


def _mapping() -> ns.IdMapping:
    """The id mapping; without subordinate ranges, said once per store."""
    m = ns.plan_mapping()
    if not m.full:
        marker = _root() / ".single-mapping-noted"
        _say_once(marker, "no /etc/subuid and /etc/subgid ranges for this user: "
                  "containers get a single mapping (only root exists inside; ask an admin "
                  "for ranges, e.g. `usermod --add-subuids`)")
    return m


def _say_once(marker: Path, note: str) -> None:
    """A note the user needs once per store, not on every command."""
    if marker.exists():
        return
    click.echo(f"dockish: {note}", err=True)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass


def _network_mode(requested: str | None) -> str:
    from . import network
    if requested in (None, "", "default", "private", "bridge"):
        mode, note = network.default_network()
        if note:
            _say_once(_root() / ".network-noted", note)
        return mode
    if requested not in ("host", "none", "slirp4netns", "pasta"):
        raise CliError(f"network {requested} not found: use host, none, slirp4netns or "
                       "pasta")
    return requested


def resolve_image(text: str, pull: str = "missing"):
    """The image and its layers: archives are read directly; names come from
    the image store, pulled first with ``--pull always`` or when missing
    (``--pull missing``, Docker's default); exit 125 with Docker's message
    otherwise."""
    from registry.archive import ImageError
    from registry.resolve import is_archive_source, resolve
    store = _layer_store()
    if pull not in ("missing", "always", "never"):
        raise CliError(f'invalid pull option: "{pull}": use missing, always or never')
    if is_archive_source(text):
        try:
            return resolve(text, store)
        except (ImageError, ValueError) as e:
            raise CliError(f"Unable to find image '{text}': {e}") from None
    if pull != "always":
        try:
            return resolve(text, store)
        except (ImageError, ValueError):
            if pull == "never":
                raise CliError(f"Unable to find image '{text}' locally") from None
        click.echo(f"Unable to find image '{text}' locally", err=True)
    last: Exception | None = None
    for _ in range(3):          # a prune may take a just-pulled image: pull again
        _pull(text)
        try:
            return resolve(text, store)
        except (ImageError, ValueError) as e:
            last = e
    raise CliError(f"Unable to find image '{text}': {last}")


def _pull(text: str) -> None:
    """Pull into the image store (as ``dockish pull`` does, quietly)."""
    from registry.archive import ImageError
    from registry.client import Options
    from registry.pull import pull as do_pull
    from registry.store import ImageStore
    try:
        do_pull(text, ImageStore(_root()), Options.from_config(retries=1))
    except ImageError as e:
        raise CliError(f"Unable to find image '{text}' locally: pull failed: {e}") from None
    except Exception as e:          # noqa: BLE001 - network errors of every kind
        if isinstance(e, CliError):
            raise
        raise CliError(f"Unable to find image '{text}' locally: pull failed: "
                       f"{str(e) or type(e).__name__}") from None


def _layers(store, diff_ids: list[str]) -> list[tuple[Path, list]]:
    return [(store.tar_path(d), store.load_index(d)) for d in diff_ids]


def _short(cid: str) -> str:
    return cid[:12]


def _ago(t: float | None) -> str:
    if not t:
        return ""
    d = max(0, time.time() - t)
    if d < 1:
        return "Less than a second"
    if d < 60:
        return f"{int(d)} second{'s' if int(d) != 1 else ''}"
    if d < 3600:
        n = int(d // 60)
        return "About a minute" if n == 1 else f"{n} minutes"
    if d < 86400:
        n = int(d // 3600)
        return "About an hour" if n == 1 else f"{n} hours"
    n = int(d // 86400)
    return f"{n} day{'s' if n != 1 else ''}"


def _iso(t: float | None) -> str:
    if not t:
        return "0001-01-01T00:00:00Z"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        f".{int((t % 1) * 1e9):09d}Z"


# ------------------------------------------------------------------ create

def _each(refs: tuple[str, ...], action, lookup=None) -> None:
    """Docker's multi-object commands: ``action(obj, ref)`` for each
    (containers by default, else ``lookup(ref)``), each name echoed when
    done, errors one line each, exit 1 if any failed."""
    failed = False
    get = lookup or _containers().get
    for ref in refs:
        try:
            action(get(ref), ref)
        except (CliError, *_errors()) as e:
            click.echo(f"Error response from daemon: {e}", err=True)
            failed = True
            continue
        click.echo(ref)
    if failed:
        sys.exit(1)


def _live_containers() -> list:
    """All containers, after removing the ``--rm`` ones whose processes
    died with nobody left to remove them (a killed session): as Docker's
    daemon does when it comes back."""
    out = []
    for c in _containers().all():
        if c.config.auto_remove and c.status()[0] == "exited":
            _remove(c)
        else:
            out.append(c)
    return out


def _build(opts: dict, image: str, args: tuple[str, ...]):
    """Make the container (config, dirs, init layer) from the run/create flags."""
    from registry.store import ImageStore
    # bad flags are refused before an image is looked up or pulled
    env_over = _env_overrides(opts["env_file"], opts["env"])
    mounts, init_path = _parse_mounts(opts)
    for p in opts["publish"]:
        cfgmod.parse_publish(p)
    _live_containers()             # a dead --rm container must not hold its name
    images = ImageStore(_root())
    layers = _layer_store()
    for attempt in range(3):
        img = resolve_image(image, opts["pull"] if attempt == 0 else "missing")
        # held until the container names its layers, so a prune running now
        # cannot take them (or the new init layer) away in between
        with images.writing():
            if all(layers.tar_path(d).exists() for d in img.diff_ids):
                return _create(opts, image, img, args, env_over, mounts, init_path)
    raise CliError(f"image {image} was removed while the container was being created")


def _env_overrides(env_files: tuple[str, ...], env: tuple[str, ...]) -> list[str]:
    """``--env-file`` then ``-e``, read as Docker reads them: each file a
    regular file or the shell's ``<(...)`` (a named FIFO must not hang the
    command), UTF-8, no NUL."""
    from unionfs.safefile import read_file
    host_env = dict(os.environ)
    out: list[str] = []
    for f in env_files:
        try:
            data = read_file(f, pipes=True)
        except OSError as e:
            raise CliError(f"open {f}: {(e.strerror or str(e)).lower()}") from None
        out += cfgmod.parse_env_file(cfgmod.decode_env_file(data, f), host_env)
    for e in env:
        item = cfgmod.parse_env_line(e, host_env)
        if item is not None:
            out.append(item)
    cfgmod.check_no_nul("environment variable", out)
    return out


def _parse_mounts(opts: dict) -> tuple[list, str]:
    """Every ``-v``, ``--mount`` and ``--tmpfs`` checked (nothing is made
    yet), plus ``--init``'s tini; and the path tini is bound at."""
    mounts = [cfgmod.parse_volume(v) for v in opts["volume"]]
    init_path = ""
    tini = _tini() if opts["init"] else None
    if tini:             # Docker's docker-init is tini: bound read-only, run as pid 1
        init_path = "/dev/init"
        mounts.append(cfgmod.MountReq("bind", tini, init_path, True))
    flag_mounts = [cfgmod.parse_mount(m) for m in opts["mount"]]
    mounts += flag_mounts
    mounts += [cfgmod.parse_tmpfs(t) for t in opts["tmpfs"]]
    for m in flag_mounts:
        src = os.path.abspath(m.source)
        if m.kind == "bind" and not os.path.exists(src):
            raise CliError(f"invalid mount config for type \"bind\": bind source path "
                           f"does not exist: {src}")
    return mounts, init_path


def _create(opts: dict, image: str, img, args: tuple[str, ...], env_over: list[str],
            mounts: list, init_path: str):
    """Check every input first, then make the volumes, the init layer and
    the record; a failure on the way takes back what was made, so bad input
    leaves nothing behind."""
    from .container import ContainerConfig, new_id
    conf = (img.config or {}).get("config") or {}
    env = cfgmod.merge_env(list(conf.get("Env") or []), env_over)
    argv = cfgmod.command(conf, opts["entrypoint"], list(args))
    cid = new_id()
    hostname = opts["hostname"] or cid[:12]
    net = _network_mode(opts["network"])
    ports = [list(cfgmod.parse_publish(p)) for p in opts["publish"]]
    if ports and net not in ("slirp4netns", "pasta"):
        if net == "host":
            click.echo("dockish: -p is ignored with the host network: the container's "
                       "ports are the host's", err=True)
            ports = []
        else:
            raise CliError(f"-p needs a private network (slirp4netns or pasta), not --network "
                           f"{net}")
    ports = [[ip, hp or _free_port(), cp, proto] for ip, hp, cp, proto in ports]
    workdir = opts["workdir"] or conf.get("WorkingDir") or "/"
    if not workdir.startswith("/"):
        raise CliError(f"the working directory '{workdir}' is invalid, it needs to be "
                       "an absolute path")
    user = opts["user"] if opts["user"] is not None else (conf.get("User") or "")
    for what, values in (("command", argv), ("environment variable", env),
                         ("working directory", [workdir]), ("user", [user]),
                         ("hostname", [hostname]), ("container name", [opts["name"] or ""])):
        cfgmod.check_no_nul(what, values)
    from .capabilities import CapabilityError, resolve
    try:
        resolve(list(opts["cap_add"]), list(opts["cap_drop"]), opts["privileged"])
    except CapabilityError as e:
        raise CliError(str(e)) from None
    healthcheck = _healthcheck(conf.get("Healthcheck"), opts)
    made_volumes: list[str] = []
    init_layer = None
    try:
        fixed = _make_mounts(mounts, made_volumes)
        init_layer = _make_init_layer(hostname, net)
        cfg = ContainerConfig(
            id=cid, name=opts["name"] or "", image=image, image_id=img.config_digest,
            diff_ids=list(img.diff_ids), init_layer=init_layer, argv=argv, env=env,
            workdir=workdir, user=user,
            hostname=hostname, tty=opts["tty"], interactive=opts["interactive"],
            read_only=opts["read_only"], mounts=fixed, network=net, ports=ports,
            init=opts["init"], auto_remove=opts["rm"],
            image_config=dict(img.config or {}), init_path=init_path,
            healthcheck=healthcheck,
            cap_add=list(opts["cap_add"]), cap_drop=list(opts["cap_drop"]),
            privileged=opts["privileged"],
            entrypoint=list(conf.get("Entrypoint") or []) if opts["entrypoint"] is None
            else ([opts["entrypoint"]] if opts["entrypoint"] else []),
            cmd=argv[len(conf.get("Entrypoint") or []):] if opts["entrypoint"] is None else
            list(args))
        return _containers().create(cfg)
    except BaseException:
        for name in made_volumes:
            with contextlib.suppress(*_errors()):
                _remove_volume(name)
        if init_layer is not None:
            _remove_init_layer(init_layer)
        raise


def _make_mounts(mounts: list, made_volumes: list[str]) -> list[dict]:
    """The checked mounts as the record keeps them: a missing ``-v`` bind
    source is made (as Docker does), volumes are created; the volumes this
    made are appended to ``made_volumes`` (to be taken back on failure)."""
    vols = _volumes()
    fixed = []
    for m in mounts:
        if m.kind == "bind":
            src = os.path.abspath(m.source)
            if not os.path.lexists(src):          # a host file is bound as it is
                os.makedirs(src, exist_ok=True)
            m = cfgmod.MountReq("bind", src, m.target, m.readonly, m.options)
        elif m.kind == "volume":
            existed = bool(m.source) and vols.exists(m.source)
            name = vols.create(m.source or None, {"anonymous": "1"} if not m.source else None)
            if not existed:
                made_volumes.append(name)
            m = cfgmod.MountReq("volume", name, m.target, m.readonly, m.options)
        fixed.append(m.__dict__.copy())
    return fixed


def _make_init_layer(hostname: str, net: str) -> str:
    from .rootfs import make_init_layer
    ip = "10.0.2.100" if net == "slirp4netns" else None
    return make_init_layer(_layer_store(), hostname, net, ip)


def _remove_init_layer(layer: str) -> None:
    from .rootfs import remove_init_layer
    remove_init_layer(_layer_store(), layer)


def _healthcheck(image_hc: dict | None, opts: dict) -> dict:
    from .build import BuildError, _duration
    from .health import merged
    flags: dict = {"cmd": opts["health_cmd"], "no_healthcheck": opts["no_healthcheck"],
                   "Retries": opts["health_retries"]}
    for key, name in (("Interval", "health_interval"), ("Timeout", "health_timeout"),
                      ("StartPeriod", "health_start_period")):
        if opts[name]:
            try:
                flags[key] = _duration(opts[name], f"--{name.replace('_', '-')}")
            except BuildError as e:
                raise CliError(str(e)) from None
    return merged(image_hc, flags)


def _tini() -> str | None:
    """A static tini for ``--init`` ($DOCKISH_INIT, else Debian's tini-static
    or Docker's docker-init); None: dockish's own reaper stands in."""
    import shutil
    for cand in (os.environ.get("DOCKISH_INIT"), "/usr/bin/tini-static",
                 "/usr/libexec/docker/docker-init", shutil.which("docker-init")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def _free_port() -> int:
    from .network import free_port
    return free_port()


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
        click.option("--network", "--net", "network", help="host, none, slirp4netns or pasta."),
        click.option("-p", "--publish", multiple=True, help="[IP:]HOST:CTR[/tcp]"),
        click.option("--entrypoint", help="Override the image's entrypoint."),
        click.option("--init", is_flag=True, help="Run a reaper as pid 1."),
        click.option("--read-only", is_flag=True, help="Read-only root filesystem."),
        click.option("--pull", default="missing", help="missing, always or never."),
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
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


# ------------------------------------------------------------------ start / attach

def _launch(c):
    from .launch import Launch
    store = _layer_store()
    ids = list(c.config.diff_ids) + [c.config.init_layer]
    return Launch(c, _layers(store, ids), ids, _mapping(), _root() / "volumes")


def _foreground(c, interactive: bool, tty_: bool) -> int:
    """Run attached: the container's output is relayed to ours and kept in
    its log (a pty with -t, pipes without, as Docker does)."""
    import threading

    from . import tty as ttymod
    from .launch import StartError, Stdio
    launch = _launch(c)
    master = None
    pipes: list[int] = []
    if tty_:
        master, slave = os.openpty()
        if sys.stdin.isatty():
            ttymod.copy_winsize(sys.stdin.fileno(), slave)
        stdio = Stdio(None, 1, 2, pty_slave=slave)
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pipes = [out_r, err_r]
        in_r = in_w = None
        if interactive:                 # relayed too: never our own fd 0
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        stdio = Stdio(in_r, out_w, err_w)
    log = os.open(c.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    handlers = {}
    try:
        launch.spawn(stdio)
    except StartError as e:
        _cleanup_failed(c)
        _fail(str(e), e.code)
    except BaseException:
        _cleanup_failed(c)        # a --rm container and its volumes: gone in every case
        raise
    finally:
        if pipes:
            for fd in (stdio.stdin, stdio.stdout, stdio.stderr):
                if fd is not None:
                    os.close(fd)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                signal.SIGUSR1, signal.SIGUSR2):
        handlers[sig] = signal.signal(sig, lambda s, _f: launch.forward(s))
    from .health import start as start_health
    checks = start_health(c)
    relay = None
    ended = threading.Event()
    if master is not None:
        # a closed terminal detaches, as in Docker: no SIGHUP for the container
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        listener = _attach_listener(c)      # a closed terminal: attach again later
        try:
            with ttymod.raw_mode(0) if interactive else _nullctx():
                ttymod.proxy(master, 0 if interactive else None, 1, copy_to=log,
                             listener=listener, accept_input=interactive)
        finally:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                ttymod.socket_path(c.id).unlink()
        os.close(master)
    else:
        relay = threading.Thread(target=ttymod.relay, args=(
            [(pipes[0], 1), (pipes[1], 2)], log, ended), daemon=True)
        relay.start()
        if in_w is not None:
            threading.Thread(target=ttymod.feed, args=(0, in_w, ended), daemon=True).start()
    code = launch.wait()
    ended.set()
    if checks is not None:
        checks.set()
    if relay is not None:
        relay.join()
    os.close(log)
    for sig, h in handlers.items():
        signal.signal(sig, h)
    if c.config.auto_remove:
        _remove(c)
    return code


class _nullctx:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _cleanup_failed(c) -> None:
    if c.config.auto_remove:
        _remove(c)


def _detached(c) -> None:
    """Start with a monitor process of its own that outlives this command;
    return once the container's command has been executed."""
    from . import tty as ttymod
    from .launch import StartError, Stdio
    launch = _launch(c)
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.setsid()
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            log = os.open(c.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
            ns.close_fds_except({w, log})    # a `flock 9` or CI fd is not held for days
            master = listener = None
            if c.config.tty:
                master, slave = os.openpty()
                stdio = Stdio(None, log, log, pty_slave=slave)
                listener = _attach_listener(c)       # ready before `run -d` returns
            else:
                stdio = Stdio(None, log, log)
            try:
                launch.spawn(stdio)
            except StartError as e:
                os.write(w, f"{e.code} {e}\n".encode())
                os.close(w)
                if c.config.auto_remove:
                    _remove(c)
                os._exit(0)
            os.write(w, b"OK\n")
            os.close(w)
            from .health import start as start_health
            checks = start_health(c)
            if master is not None:
                try:
                    ttymod.proxy(master, None, None, log, listener, c.config.interactive)
                finally:
                    listener.close()
                    with contextlib.suppress(FileNotFoundError):
                        ttymod.socket_path(c.id).unlink()
            launch.wait()
            if checks is not None:
                checks.set()
            if c.config.auto_remove:
                _remove(c)
        except BaseException:        # noqa: BLE001 - nobody to tell; the state says
            code = 1
        os._exit(code)
    os.close(w)
    data = b""
    while not data.endswith(b"\n") and (chunk := os.read(r, 4096)):
        data += chunk       # one line: the holder may keep the pipe open
    os.close(r)
    data = data.strip()
    if data != b"OK":
        code, _, msg = data.decode(errors="replace").partition(" ")
        raise CliError(msg or "the container's monitor died while starting",
                       int(code) if code.isdigit() else EXIT_DOCKISH)


def _attach_listener(c):
    from . import tty as ttymod
    return ttymod.listen(c.id)


def _remove(c) -> None:
    """Remove a stopped container's files (some may belong to its other
    uids: removed from inside a user namespace then) and its init layer."""
    import shutil
    cs = _containers()
    cs.remove(c)
    if c.path.exists():
        ns.in_userns(lambda: shutil.rmtree(c.path, ignore_errors=True), ns.plan_mapping())
    _remove_init_layer(c.config.init_layer)
    if c.config.auto_remove:          # Docker's --rm takes the anonymous volumes too
        _remove_anonymous_volumes(c)


def _remove_anonymous_volumes(c) -> None:
    """The anonymous volumes a removed container had (``rm -v``, ``--rm``)."""
    vols = _volumes()
    for m in c.config.mounts:
        if m["kind"] == "volume" and vols.exists(m["source"]) and \
                vols.inspect(m["source"]).get("Labels", {}).get("anonymous"):
            _remove_volume(m["source"])


# ------------------------------------------------------------------ commands

def register(main: click.Group) -> None:
    """Add the container and volume commands to ``main``."""

    @main.command(context_settings=RUN_SETTINGS)
    @run_options
    @click.option("-d", "--detach", is_flag=True, help="Run in the background, print the id.")
    @click.argument("image")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @cli
    def run(detach: bool, image: str, args: tuple[str, ...], **opts) -> None:
        """Run a command in a new container."""
        c = _build(opts, image, args)
        if detach:
            _detached(c)
            click.echo(c.id)
            return
        sys.exit(_foreground(c, opts["interactive"], opts["tty"]))

    @main.command(context_settings=RUN_SETTINGS)
    @run_options
    @click.argument("image")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @cli
    def create(image: str, args: tuple[str, ...], **opts) -> None:
        """Create a container without starting it; print its id."""
        c = _build(opts, image, args)
        click.echo(c.id)

    @main.command()
    @click.option("-a", "--attach", is_flag=True, help="Attach stdout/stderr, exit with "
                  "the container's code.")
    @click.option("-i", "--interactive", is_flag=True, help="Attach stdin.")
    @click.argument("containers", nargs=-1, required=True)
    @cli
    def start(attach: bool, interactive: bool, containers: tuple[str, ...]) -> None:
        """Start one or more stopped containers."""
        cs = _containers()
        for ref in containers:
            c = cs.get(ref)
            if c.running:
                click.echo(ref)
                continue
            if attach or interactive:
                sys.exit(_foreground(c, interactive, c.config.tty))
            _detached(c)
            click.echo(ref)

    @main.command()
    @click.option("-t", "--time", "timeout", type=int, default=10,
                  help="Seconds to wait before killing.")
    @click.argument("containers", nargs=-1, required=True)
    @cli
    def stop(timeout: int, containers: tuple[str, ...]) -> None:
        """Stop running containers: SIGTERM, then SIGKILL after --time."""
        _each(containers, lambda c, _ref: _stop(c, timeout))

    @main.command()
    @click.option("-s", "--signal", "sig", default="KILL", help="Signal to send.")
    @click.argument("containers", nargs=-1, required=True)
    @cli
    def kill(sig: str, containers: tuple[str, ...]) -> None:
        """Send a signal (default SIGKILL) to running containers."""
        signum = cfgmod.parse_signal(sig)

        def act(c, ref):
            if not c.running:
                raise CliError(f"cannot kill container: {ref}: container {c.id} is "
                               "not running")
            _signal(c, signum)
            if signum == signal.SIGKILL:
                _await_stopped(c, 5)
        _each(containers, act)

    @main.command()
    @click.option("-t", "--time", "timeout", type=int, default=10)
    @click.argument("containers", nargs=-1, required=True)
    @cli
    def restart(timeout: int, containers: tuple[str, ...]) -> None:
        """Stop then start containers."""
        cs = _containers()
        for ref in containers:
            c = cs.get(ref)
            _stop(c, timeout)
            _detached(c)
            click.echo(ref)

    @main.command()
    @click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
    @click.option("-v", "--volumes", is_flag=True, help="Remove its anonymous volumes.")
    @click.argument("containers", nargs=-1, required=True)
    @cli
    def rm(force: bool, volumes: bool, containers: tuple[str, ...]) -> None:
        """Remove containers."""
        cs = _containers()
        failed = False
        for ref in containers:
            try:
                c = cs.get(ref)
            except _errors() as e:
                click.echo(f"Error response from daemon: {e}", err=True)
                failed = True
                continue
            if c.running:
                if not force:
                    click.echo(f'Error response from daemon: You cannot remove a running '
                               f'container {c.id}. Stop the container before attempting '
                               'removal or force remove', err=True)
                    failed = True
                    continue
                _signal(c, signal.SIGKILL)
                _await_stopped(c, 10)
            _remove(c)
            if volumes and not c.config.auto_remove:
                _remove_anonymous_volumes(c)
            click.echo(ref)
        if failed:
            sys.exit(1)

    @main.command()
    @click.option("-a", "--all", "all_", is_flag=True, help="Show all containers.")
    @click.option("-q", "--quiet", is_flag=True, help="Only ids.")
    @click.option("--no-trunc", is_flag=True)
    @click.option("--format", "fmt", help="json, or a Go-style template like {{.Names}}.")
    @cli
    def ps(all_: bool, quiet: bool, no_trunc: bool, fmt: str | None) -> None:
        """List containers."""
        rows = []
        for c in _live_containers():
            status, code = c.status()
            if status != "running" and not all_:
                continue
            rows.append(_ps_row(c, status, code, no_trunc))
        if quiet:
            for r in rows:
                click.echo(r["ID"])
            return
        if fmt == "json":
            for r in rows:
                click.echo(json.dumps(r))
            return
        if fmt:
            for r in rows:
                click.echo(_template(fmt.removeprefix("table "), r))
            return
        cols = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"),
                ("CREATED", "CreatedAt"), ("STATUS", "Status"), ("PORTS", "Ports"),
                ("NAMES", "Names")]
        table = [[h for h, _ in cols]] + [[r[k] for _, k in cols] for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        for row in table:
            click.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                       .rstrip())

    @main.command()
    @click.option("-f", "--follow", is_flag=True, help="Follow the output.")
    @click.option("-n", "--tail", default="all", help="Lines from the end (or all).")
    @click.argument("container")
    @cli
    def logs(follow: bool, tail: str, container: str) -> None:
        """Show a container's output."""
        c = _containers().get(container)
        _logs(c, follow, tail)

    @main.command("exec", context_settings=RUN_SETTINGS)
    @click.option("-i", "--interactive", is_flag=True)
    @click.option("-t", "--tty", is_flag=True)
    @click.option("-d", "--detach", is_flag=True)
    @click.option("-u", "--user")
    @click.option("-w", "--workdir")
    @click.option("-e", "--env", multiple=True)
    @click.option("--env-file", multiple=True)
    @click.argument("container")
    @click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
    @cli
    def exec_(interactive: bool, tty: bool, detach: bool, user: str | None,
              workdir: str | None, env: tuple[str, ...], env_file: tuple[str, ...],
              container: str, command: tuple[str, ...]) -> None:
        """Run a command in a running container."""
        sys.exit(_exec(container, list(command), interactive, tty, detach, user, workdir,
                       env, env_file))

    @main.command()
    @click.argument("containers", nargs=-1, required=True)
    @cli
    def wait(containers: tuple[str, ...]) -> None:
        """Block until containers stop, then print their exit codes."""
        cs = _containers()
        for ref in containers:
            c = cs.get(ref)
            while c.running:
                time.sleep(0.05)
            click.echo(str(_exit_code(c)))

    @main.command()
    @click.option("-f", "--format", "fmt", help="A Go-style template like {{.State.Status}}.")
    @click.option("--type", "type_", default="container")
    @click.argument("names", nargs=-1, required=True)
    @cli
    def inspect(fmt: str | None, type_: str, names: tuple[str, ...]) -> None:
        """Show containers' details as JSON."""
        cs = _containers()
        out = []
        failed = False
        for ref in names:
            try:
                out.append(_inspect(cs.get(ref)))
            except _errors():
                click.echo(f"Error: No such object: {ref}", err=True)
                failed = True
        if fmt:
            for o in out:
                click.echo(_template(fmt, o))
        else:
            click.echo(json.dumps(out, indent=4))
        if failed:
            sys.exit(1)

    @main.command()
    @click.argument("container")
    @click.argument("ps_args", nargs=-1)
    @cli
    def top(container: str, ps_args: tuple[str, ...]) -> None:
        """Show a container's processes."""
        c = _containers().get(container)
        if not c.running:
            raise CliError(f"container {c.id} is not running")
        rows = [("UID", "PID", "PPID", "CMD")] + _top(c)
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            click.echo("   ".join([*(x.ljust(w) for x, w in zip(r[:3], widths,
                                                                 strict=True)), r[3]]))

    @main.command()
    @click.argument("container")
    @click.argument("private_port", required=False)
    @cli
    def port(container: str, private_port: str | None) -> None:
        """List a container's published ports."""
        c = _containers().get(container)
        for ip, hp, cp, proto in c.config.ports:
            key = f"{cp}/{proto}"
            if private_port and private_port not in (key, str(cp)):
                continue
            prefix = "" if private_port else f"{key} -> "
            click.echo(f"{prefix}{ip}:{hp}")

    @main.command()
    @click.option("-a", "--archive", is_flag=True,
                  help="Archive mode: keep uid/gid (and, as root, device nodes and "
                       "set-id bits).")
    @click.argument("source")
    @click.argument("dest")
    @cli
    def cp(archive: bool, source: str, dest: str) -> None:
        """Copy files between a container (running or stopped) and the host:
        CONTAINER:PATH HOSTPATH or HOSTPATH CONTAINER:PATH."""
        from .transfer import TransferError, copy_in, copy_out
        src_ctr, src_path = _split_cp(source)
        dst_ctr, dst_path = _split_cp(dest)
        if (src_ctr is None) == (dst_ctr is None):
            raise CliError("copying between containers or within the host is not "
                           "supported: one side must be CONTAINER:PATH")
        cs = _containers()
        try:
            if src_ctr is not None:
                copy_out(cs.get(src_ctr), _launch, src_path, dst_path, archive=archive)
            else:
                copy_in(cs.get(dst_ctr), _launch, src_path, dst_path, archive=archive)
        except TransferError as e:
            if str(e):
                raise CliError(str(e), 1) from None
            sys.exit(1)

    @main.command()
    @click.option("-o", "--output", help="Write to a file instead of stdout.")
    @click.argument("container")
    @cli
    def export(output: str | None, container: str) -> None:
        """Write a container's filesystem as a tar archive."""
        from .transfer import TransferError
        from .transfer import export as export_
        c = _containers().get(container)
        if output is None and sys.stdout.isatty():
            raise CliError("cowardly refusing to save to a terminal. Use the -o flag or "
                           "redirect")
        from .outfile import output_file
        try:
            if output is None:
                export_(c, _launch, os.dup(1))
                return
            with output_file(output) as f:
                export_(c, _launch, os.dup(f.fileno()))
        except TransferError:
            sys.exit(1)

    @main.command()
    @click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
    @click.option("--detach-keys", default="ctrl-p,ctrl-q", show_default=True,
                  help="Keys that detach from the container.")
    @click.argument("container")
    @cli
    def attach(no_stdin: bool, detach_keys: str, container: str) -> None:
        """Attach to a running container's terminal (run -d -t; -i for input)
        or follow its output; exits with its code."""
        c = _containers().get(container)
        if not c.running:
            raise CliError("You cannot attach to a stopped container, start it first")
        if c.paused:
            raise CliError("You cannot attach to a paused container, unpause it first")
        from .tty import parse_detach_keys
        try:
            keys = parse_detach_keys(detach_keys)
        except ValueError as e:
            raise CliError(str(e)) from None
        sys.exit(_attach(c, not no_stdin and c.config.interactive, keys))

    @main.command()
    @click.argument("container")
    @click.argument("new_name")
    @cli
    def rename(container: str, new_name: str) -> None:
        """Rename a container."""
        _containers().rename(_containers().get(container), new_name)

    @main.command()
    @click.argument("containers", nargs=-1, required=True)
    @cli
    def pause(containers: tuple[str, ...]) -> None:
        """Pause all processes in containers (SIGSTOP: cgroups v1 give a
        rootless user no freezer)."""
        def act(c, ref):
            if not c.running:
                raise CliError(f"Container {c.id} is not running")
            if c.paused:
                raise CliError(f"Container {c.id} is already paused")
            _freeze(c)
        _each(containers, act)

    @main.command()
    @click.argument("containers", nargs=-1, required=True)
    @cli
    def unpause(containers: tuple[str, ...]) -> None:
        """Unpause all processes in containers."""
        def act(c, ref):
            if not c.paused:
                raise CliError(f"Container {c.id} is not paused")
            _thaw(c)
        _each(containers, act)

    @main.command()
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
    @cli
    def commit(author: str, change: tuple[str, ...], message: str, pause: bool,
               container: str, repository: str | None) -> None:
        """Create a new image from a container's changes."""
        from registry import reference as refs
        from registry.store import ImageStore

        from .commit import CommitError
        from .commit import commit as do_commit
        c = _containers().get(container)
        tags = []
        if repository:
            try:
                ref = refs.parse(repository)
            except refs.ReferenceError as e:
                raise CliError(str(e)) from None
            if ref.digest:
                raise CliError("refusing to create a tag with a digest reference")
            tags.append(str(ref))
        try:
            image_id = do_commit(c, ImageStore(_root(), _layer_store()), author=author,
                                 message=message, changes=list(change), pause=pause,
                                 tags=tags)
        except CommitError as e:
            raise CliError(str(e)) from None
        click.echo(image_id)

    @main.group("container")
    def container_group() -> None:
        """Manage containers."""

    @container_group.command("prune")
    @click.option("-f", "--force", is_flag=True)
    @cli
    def container_prune(force: bool) -> None:
        """Remove all stopped containers."""
        removed = []
        for c in _live_containers():
            if not c.running:
                _remove(c)
                removed.append(c.id)
        click.echo("Deleted Containers:")
        for cid in removed:
            click.echo(cid)
        click.echo("\nTotal reclaimed space: 0B")

    for name, cmd in (("ls", ps), ("list", ps), ("rm", rm), ("stop", stop), ("start", start),
                      ("run", run), ("create", create), ("logs", logs), ("exec", exec_),
                      ("inspect", inspect), ("kill", kill), ("wait", wait), ("top", top),
                      ("port", port), ("restart", restart), ("cp", cp),
                      ("export", export), ("commit", commit), ("pause", pause),
                      ("unpause", unpause), ("rename", rename), ("attach", attach)):
        container_group.add_command(cmd, name)

    @container_group.command("diff")
    @click.argument("container")
    @cli
    def container_diff(container: str) -> None:
        """List what a container changed (A added, C changed, D deleted)."""
        diff_container(container)

    @main.group("volume")
    def volume_group() -> None:
        """Manage named volumes."""

    @volume_group.command("create")
    @click.argument("name", required=False)
    @cli
    def volume_create(name: str | None) -> None:
        click.echo(_volumes().create(name))

    @volume_group.command("ls")
    @click.option("-q", "--quiet", is_flag=True)
    @cli
    def volume_ls(quiet: bool) -> None:
        names = _volumes().names()
        if quiet:
            for n in names:
                click.echo(n)
            return
        click.echo("DRIVER    VOLUME NAME")
        for n in names:
            click.echo(f"local     {n}")

    @volume_group.command("inspect")
    @click.argument("names", nargs=-1, required=True)
    @cli
    def volume_inspect(names: tuple[str, ...]) -> None:
        vols = _volumes()
        click.echo(json.dumps([vols.inspect(n) for n in names], indent=4))

    @volume_group.command("rm")
    @click.option("-f", "--force", is_flag=True)
    @click.argument("names", nargs=-1, required=True)
    @cli
    def volume_rm(force: bool, names: tuple[str, ...]) -> None:
        used = _volumes_in_use()

        def act(n, _ref):
            if n in used and not force:
                raise CliError(f"remove {n}: volume is in use - [{used[n]}]")
            _remove_volume(n)
        _each(names, act, lookup=str)

    @volume_group.command("prune")
    @click.option("-f", "--force", is_flag=True)
    @click.option("-a", "--all", "all_", is_flag=True)
    @cli
    def volume_prune(force: bool, all_: bool) -> None:
        used = _volumes_in_use()
        vols = _volumes()
        click.echo("Deleted Volumes:")
        for n in vols.names():
            anonymous = vols.inspect(n).get("Labels", {}).get("anonymous")
            if n not in used and (all_ or anonymous):
                _remove_volume(n)
                click.echo(n)
        click.echo("\nTotal reclaimed space: 0B")


# ------------------------------------------------------------------ implementations

def diff_container(ref: str) -> None:
    """``docker diff``: the writable layer's changes, running or not (a
    running container's layer is read without its daemon's lock)."""
    from unionfs.generate import change_list

    from .rootfs import INIT_PATHS, offline_tree
    c = _containers().get(ref)
    store = _layer_store()
    ids = list(c.config.diff_ids) + [c.config.init_layer]
    tree = offline_tree(_layers(store, ids), ids, c.upper, readonly=c.running)
    for kind, path in change_list(tree, INIT_PATHS):
        click.echo(f"{kind} /{path.decode('utf-8', 'surrogateescape')}")


def _split_cp(arg: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` or a host path (absolute, relative with ./, or
    without a colon)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    name, _, path = arg.partition(":")
    return name, path or "/"


def _exit_code(c) -> int:
    status, code = c.status()
    return code if code is not None else 0


def _freeze(c) -> None:
    from . import freezer
    try:
        freezer.freeze(c.pid)
    except freezer.FreezeError as e:
        raise CliError(str(e)) from None
    c.write_state(paused=True)


def _thaw(c) -> None:
    from . import freezer
    pid = c.pid
    if pid is not None:
        try:
            freezer.thaw(pid)
        except freezer.FreezeError as e:
            raise CliError(str(e)) from None
    c.write_state(paused=False)


def _signal(c, signum: int) -> None:
    st = c.state()
    try:
        os.kill(st["holder_pid"], signum)
    except (ProcessLookupError, KeyError, TypeError):
        pass


def _await_stopped(c, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while c.running:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    deadline = time.monotonic() + 1          # the monitor records the code
    while c.exit_info() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


def _stop(c, timeout: int) -> None:
    if not c.running:
        return
    _signal(c, signal.SIGTERM)
    if c.paused:                   # stopped processes would not see SIGTERM
        _thaw(c)
    if not _await_stopped(c, timeout):
        _signal(c, signal.SIGKILL)
        _await_stopped(c, 10)
    c.write_exit(137)         # only if nobody recorded a code


def _ps_row(c, status: str, code: int | None, no_trunc: bool) -> dict:
    cfg = c.config
    cmd = " ".join(cfg.argv)
    if not no_trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    if status == "running":
        shown = f"Up {_ago(c.state().get('started'))}"
        health = (c.state().get("health") or {}).get("Status")
        if c.paused:
            shown, status = shown + " (Paused)", "paused"
        elif health:
            shown += " (health: starting)" if health == "starting" else f" ({health})"
    elif status == "created":
        shown = "Created"
    else:
        shown = f"Exited ({code}) {_ago(c.finished_at())} ago"
    ports = ", ".join(f"{ip}:{hp}->{cp}/{proto}" for ip, hp, cp, proto in cfg.ports)
    return {"ID": cfg.id if no_trunc else _short(cfg.id), "Image": cfg.image,
            "Command": f'"{cmd}"', "CreatedAt": f"{_ago(cfg.created)} ago",
            "Status": shown, "State": status, "Ports": ports, "Names": cfg.name,
            "ExitCode": code}


def _template(fmt: str, data: dict) -> str:
    from .gotemplate import render
    return render(fmt, data)


def _inspect(c) -> dict:
    cfg = c.config
    status, code = c.status()
    st = c.state()
    vols = _volumes()
    mounts = []
    for m in cfg.mounts:
        if cfg.init_path and m["target"] == cfg.init_path:
            continue                  # --init's tini: not a mount the user asked for
        src = str(vols.path(m["source"]) / "_data") if m["kind"] == "volume" else m["source"]
        mounts.append({"Type": m["kind"], "Name": m["source"] if m["kind"] == "volume" else "",
                       "Source": src, "Destination": m["target"], "RW": not m["readonly"]})
    ports = {}
    for ip, hp, cp, proto in cfg.ports:
        ports.setdefault(f"{cp}/{proto}", []).append({"HostIp": ip, "HostPort": str(hp)})
    return {
        "Id": cfg.id, "Created": _iso(cfg.created), "Path": cfg.argv[0], "Args": cfg.argv[1:],
        "State": {"Status": "paused" if c.paused else status, "Running": status == "running",
                  "Paused": c.paused, "Restarting": False, "OOMKilled": False, "Dead": False,
                  "Pid": c.pid or 0, "ExitCode": code or 0,
                  **({"Health": st["health"]} if st.get("health") else {}),
                  "StartedAt": _iso(st.get("started")), "FinishedAt": _iso(c.finished_at())},
        "Image": cfg.image_id, "Name": "/" + cfg.name, "LogPath": str(c.log),
        "HostConfig": {"NetworkMode": cfg.network, "AutoRemove": cfg.auto_remove,
                       "ReadonlyRootfs": cfg.read_only, "Init": cfg.init,
                       "PortBindings": ports, "CapAdd": cfg.cap_add or None,
                       "CapDrop": cfg.cap_drop or None, "Privileged": cfg.privileged},
        "Mounts": mounts,
        "Config": {"Hostname": cfg.hostname, "User": cfg.user, "Tty": cfg.tty,
                   "OpenStdin": cfg.interactive, "Env": cfg.env, "Cmd": cfg.cmd,
                   "Entrypoint": cfg.entrypoint or None, "Image": cfg.image,
                   "WorkingDir": cfg.workdir, "Labels": cfg.labels},
        "NetworkSettings": {"Ports": ports,
                            "IPAddress": "10.0.2.100" if cfg.network == "slirp4netns" else ""},
    }


def _logs(c, follow: bool, tail: str) -> None:
    out = sys.stdout.buffer
    try:
        f = open(c.log, "rb")
    except FileNotFoundError:
        if not follow:
            return
        while not c.log.exists() and c.running:
            time.sleep(0.05)
        try:
            f = open(c.log, "rb")
        except FileNotFoundError:
            return
    with f:
        if tail != "all":
            try:
                n = int(tail)
            except ValueError:
                raise CliError(f"invalid --tail value: {tail}") from None
            lines = f.read().splitlines(keepends=True)
            out.write(b"".join(lines[-n:] if n > 0 else []))
        else:
            while chunk := f.read(65536):
                out.write(chunk)
        out.flush()
        if not follow:
            return
        while True:
            chunk = f.read(65536)
            if chunk:
                out.write(chunk)
                out.flush()
                continue
            if not c.running:
                rest = f.read()
                out.write(rest)
                out.flush()
                return
            time.sleep(0.05)


def _exec(ref: str, command: list[str], interactive: bool, tty_: bool, detach: bool,
          user: str | None, workdir: str | None, env: tuple[str, ...],
          env_file: tuple[str, ...]) -> int:
    from . import launch as launchmod
    from . import tty as ttymod
    c = _containers().get(ref)
    if not c.running:
        raise CliError(f"container {c.id} is not running")
    if c.paused:
        raise CliError(f"container {c.id} is paused, unpause the container before exec")
    full_env = cfgmod.merge_env(c.config.env, _env_overrides(env_file, env))
    # The process never gets our own fds 0/1/2 (a terminal is read-write: a
    # process left behind would read what the user types next): a pty with
    # -t, else pipes we relay until the process ends.
    master = None
    ours: list[int] = []                   # the process's ends, closed once it runs
    out_r = err_r = in_w = None
    if tty_:
        master, slave = os.openpty()
        if sys.stdin.isatty():
            ttymod.copy_winsize(0, slave)
        stdio = launchmod.Stdio(None, 1, 2, pty_slave=slave)
    elif detach:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        stdio = launchmod.Stdio(None, null, null)
        ours = [null]
    else:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        in_r = None
        if interactive:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        stdio = launchmod.Stdio(in_r, out_w, err_w)
        ours = [fd for fd in (in_r, out_w, err_w) if fd is not None]
    mapping_full = ns.plan_mapping().full
    try:
        holder = launchmod.exec_in(c, command, full_env,
                                   user if user is not None else c.config.user,
                                   workdir or c.config.workdir, stdio, mapping_full)
    except launchmod.StartError as e:
        raise CliError(str(e), e.code) from None
    finally:
        for fd in ours:
            os.close(fd)
    if detach:
        return 0
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, lambda s, _f: _kill_quiet(holder, s))
    return _relay_exec(holder, master, interactive, out_r, err_r, in_w)


def _relay_exec(holder: int, master: int | None, interactive: bool, out_r: int | None,
                err_r: int | None, in_w: int | None) -> int:
    """Relay an exec'd process's stdio until it exits (as ``docker exec``
    returns when its process does, whatever it left running); its code."""
    import threading

    from . import launch as launchmod
    from . import tty as ttymod
    ended = threading.Event()
    code: list[int] = []
    if master is not None:
        stop_r, stop_w = os.pipe2(os.O_CLOEXEC)

        def reap() -> None:
            code.append(launchmod.wait_pid(holder))
            os.close(stop_w)
        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)     # a closed terminal detaches
        with ttymod.raw_mode(0) if interactive else _nullctx():
            ttymod.proxy(master, 0 if interactive else None, 1, stop=stop_r)
        waiter.join()
        os.close(stop_r)
        os.close(master)
        return code[0]
    relay = threading.Thread(target=ttymod.relay, args=([(out_r, 1), (err_r, 2)], None, ended),
                             daemon=True)
    relay.start()
    if in_w is not None:
        threading.Thread(target=ttymod.feed, args=(0, in_w, ended), daemon=True).start()
    result = launchmod.wait_pid(holder)
    ended.set()
    relay.join()
    return result


def _attach(c, stdin: bool, keys: bytes) -> int:
    """A -t container: through its monitor's socket, in raw mode; else its
    output followed from now on. The container's code once it ends."""
    from . import tty as ttymod
    if not c.config.tty:
        _follow_from_end(c)
        _await_stopped(c, 1e9)
        return _exit_code(c)
    from unionfs.private import PrivateDirError
    try:
        sock = ttymod.connect(c.id)
    except PrivateDirError as e:
        raise CliError(str(e)) from None
    except PermissionError as e:
        raise CliError(f"container {c.id}: {e.strerror}") from None
    except OSError:
        raise CliError(f"container {c.id} has no terminal to attach to") from None
    in_fd = 0 if stdin and sys.stdin.isatty() else (0 if stdin else None)
    with sock, ttymod.raw_mode(0) if in_fd is not None else _nullctx():
        detached = ttymod.attach(sock, in_fd, 1, keys)
    if detached:
        click.echo("\nread escape sequence", err=True)
        return 0
    _await_stopped(c, 10)
    return _exit_code(c)


def _follow_from_end(c) -> None:
    """What a non-tty container writes from now until it stops."""
    out = sys.stdout.buffer
    try:
        f = open(c.log, "rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(0, os.SEEK_END)
        while True:
            chunk = f.read(65536)
            if chunk:
                out.write(chunk)
                out.flush()
            elif not c.running:
                out.write(f.read())
                out.flush()
                return
            else:
                time.sleep(0.05)


def _kill_quiet(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _top(c) -> list[tuple[str, str, str, str]]:
    """The container's processes: its first process and its descendants."""
    from .container import process_tree
    init = c.pid
    mapping = ns.plan_mapping()
    rows = []
    for pid, (ppid, uid, cmd) in process_tree(init).items() if init else ():
        host = int(uid)
        ctr_uid = next((str(i + host - o) for i, o, n in mapping.uids if o <= host < o + n),
                       uid)
        rows.append((ctr_uid, str(pid), str(ppid), cmd))
    return rows


def _volumes_in_use() -> dict[str, str]:
    used = {}
    for c in _containers().all():
        for m in c.config.mounts:
            if m["kind"] == "volume":
                used[m["source"]] = c.id
    return used


def _remove_volume(name: str) -> None:
    """Files a container's other uids made are only ours to remove inside a
    user namespace: then the same fd walk, never following a symlink."""
    from .volumes import remove_in
    vols = _volumes()
    try:
        vols.remove(name)
    except OSError:
        path = vols.path(name)

        def again() -> None:
            try:
                remove_in(path.parent, path.name)
            except OSError:
                pass
        ns.in_userns(again, ns.plan_mapping())
        if path.exists():
            raise
