"""Starting a container: the processes and how they talk.

    monitor (host, the user)      maps ids, starts slirp4netns, records pids,
      |                           forwards signals, relays a pty, reaps
      +- holder (userns root)     makes the namespaces, waits for the
          |                       container, writes its exit code
          +- view daemon          serves the FUSE root (mount namespace of
          |                       the holder, host pid namespace)
          +- init (pid 1)         mounts /proc /dev /sys, pivot_root, drops to
                                  the container user, execs the command

Pipes carry the handshakes (one line per step) so every failure arrives at
the monitor as one line and an exit code. Signals reach the container
through the holder, which as root of the user namespace may signal any of
the container's uids (the monitor, outside, may not).
"""
from __future__ import annotations

import os
import signal
import stat
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..errors import EXIT_CANNOT_RUN, EXIT_DOCKISH, EXIT_NOT_FOUND, DockishError
from . import capabilities, cgroups, network, nsmodes, procopts, rootfs, viewd
from . import config as cfgmod
from . import namespaces as ns
from .config import MountReq
from .container import Container

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGCONT, signal.SIGWINCH)


class StartError(DockishError):
    """The container did not start; ``code`` is what ``run`` exits with."""

    def __init__(self, message: str, code: int = EXIT_DOCKISH) -> None:
        super().__init__(message, code)


@dataclass
class Stdio:
    """The container's stdio: fds for 0/1/2 (None: /dev/null), or a pty
    slave path for all three."""

    stdin: int | None
    stdout: int
    stderr: int
    pty_slave: int | None = None



def _forward_signals(pid: int) -> None:
    """Pass the signals a container's process should see on to ``pid``."""
    def forward(sig, _frame):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    for sig in FORWARDED:
        signal.signal(sig, forward)


def resolved_mounts(c: Container, volumes_root: Path) -> list[tuple[MountReq, str]]:
    out = []
    from .create import MOUNT_FIELDS
    for m in c.config.mounts:
        req = MountReq(**{k: m[k] for k in MOUNT_FIELDS if k in m})
        if req.kind == "volume":
            source = str(volumes_root / req.source / "_data")
        else:
            source = req.source
        out.append((req, source))
    return out


def _line(fd: int) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        b = os.read(fd, 1)
        if not b:
            break
        buf += b
    return buf.decode(errors="replace").strip()


def _send(fd: int, text: str) -> None:
    os.write(fd, (text + "\n").encode())


def _fail(fd: int, code: int, msg: str) -> None:
    try:
        _send(fd, f"E{code} {msg}")
    except OSError:
        pass


def _msg(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror if not e.filename else f"{e.strerror}: {e.filename}"
    return str(e) or type(e).__name__


# ------------------------------------------------------------------ monitor side

class Launch:
    """One start of one container, from the monitor's side."""

    def __init__(self, c: Container, layers: list[tuple[Path, list]], layer_ids: list[str],
                 mapping: ns.IdMapping, volumes_root: Path) -> None:
        self.c = c
        self.layers = layers
        self.layer_ids = layer_ids
        self.mapping = mapping
        self.mounts = resolved_mounts(c, volumes_root)
        self.holder = 0
        self.slirp: network.Slirp | network.Pasta | None = None
        # user networks: the shared namespace holder this container joins
        # (runner.runtime.netns explains why its user namespace is shared)
        self.netholder: int | None = None
        # --network container:NAME: that container's holder, whose user and
        # network namespaces this one joins (runner.runtime.netjoin)
        self.joinnet: int | None = None
        # the container's cgroups for this start, when it has limits and a
        # delegated parent (runner.runtime.cgroups): its init enters them
        self.cg: cgroups.Cgroups | None = None
        # --pid/--ipc container:NAME: the init pid of each container whose
        # namespace this one joins (runner.runtime.nsmodes)
        self.shared: dict[str, int] = {}

    def spawn(self, stdio: Stdio) -> None:
        """Fork the holder and see the container through to its exec; raises
        StartError with the reason otherwise."""
        sync_r, sync_w = os.pipe()       # holder -> monitor
        go_r, go_w = os.pipe()           # monitor -> holder
        exec_r, exec_w = os.pipe2(os.O_CLOEXEC)   # init -> monitor: closed at exec
        exit_r, exit_w = os.pipe()       # held by the holder: slirp4netns exits with it
        self.c.clear_exit()
        from .netconf import is_user_network
        from .netjoin import holder as join_holder
        from .netjoin import is_join
        if is_join(self.c.config.network):
            from .container import Containers
            try:
                self.joinnet = join_holder(self.c.config.network,
                                           Containers(self.c.path.parent.parent))
            except DockishError as e:
                for fd in (sync_r, sync_w, go_r, go_w, exec_r, exec_w, exit_r, exit_w):
                    os.close(fd)
                raise StartError(str(e)) from None
        if is_user_network(self.c.config.network):
            from . import netns
            try:
                self.netholder = netns.ensure(self.c.id)
            except BaseException:
                for fd in (sync_r, sync_w, go_r, go_w, exec_r, exec_w, exit_r, exit_w):
                    os.close(fd)
                raise
        try:
            self._find_donors()
            self._make_cgroups()
        except BaseException:
            for fd in (sync_r, sync_w, go_r, go_w, exec_r, exec_w, exit_r, exit_w):
                os.close(fd)
            self._detach_networks()
            raise
        pid = os.fork()
        if pid == 0:
            code = EXIT_DOCKISH
            try:
                # the holder keeps its pipes and the container's stdio, nothing
                # the caller had open (a build context, a cache lock, a CI's fds)
                ns.close_fds_except({sync_w, go_r, exec_w, exit_w, *_stdio_fds(stdio),
                                     *(self.cg.procs if self.cg else ())})
                code = _holder(self, stdio, sync_w, go_r, exec_w)
            except BaseException as e:    # noqa: BLE001 - reported as one line
                _fail(sync_w, EXIT_DOCKISH, _msg(e))
                if not isinstance(e, OSError | ns.NamespaceError):
                    traceback.print_exc()
            os._exit(code)
        self.holder = pid
        for fd in (sync_w, go_r, exec_w, exit_w):
            os.close(fd)
        if self.cg is not None:
            self.cg.close()
        if stdio.pty_slave is not None:
            os.close(stdio.pty_slave)
        try:
            self._handshake(sync_r, go_w, exit_r)
            self._await_exec(exec_r)
        except BaseException:
            self.kill_and_reap()
            raise
        finally:
            for fd in (sync_r, go_w, exec_r, exit_r):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _find_donors(self) -> None:
        """The running containers whose pid or IPC namespace this one joins;
        they (and a ``--network container:`` one) must share one user
        namespace, the one this container then joins."""
        from .container import Containers
        from .nsmodes import donor
        containers = Containers(self.c.path.parent.parent)
        try:
            for kind in ("pid", "ipc"):
                pid = donor(self.c.config.process, kind, containers)
                if pid is not None:
                    self.shared[kind] = pid
        except DockishError as e:
            raise StartError(str(e)) from None
        if not self.shared:
            return
        users = {os.stat(f"/proc/{p}/ns/user").st_ino for p in self.shared.values()}
        for other in (self.joinnet, self.netholder):
            if other is not None:
                users.add(os.stat(f"/proc/{other}/ns/user").st_ino)
        if len(users) > 1:
            raise StartError("cannot share the namespaces of containers in different user "
                             "namespaces: a rootless container on a user network, or one "
                             "joined to another's, shares only with those")

    def _handshake(self, sync_r: int, go_w: int, exit_r: int) -> None:
        cfg = self.c.config
        while True:
            line = _line(sync_r)
            if not line:
                raise StartError("the container's holder process died while starting")
            if line.startswith("E"):
                code, _, msg = line[1:].partition(" ")
                raise StartError(msg, int(code))
            if line == "U":
                try:
                    ns.apply_mapping(self.holder, self.mapping)
                except (OSError, ns.NamespaceError) as e:
                    raise StartError(f"cannot map ids into the user namespace: {_msg(e)}") \
                        from None
                _send(go_w, "M")
            elif line == "N":
                if cfg.network == "slirp4netns":
                    self.slirp = network.Slirp(self.holder, network.api_socket_path(self.c.id),
                                               exit_r, self.c.path / "slirp.log",
                                               cfg.process.get("mac_address") or "")
                    for ip, hp, cp, proto in cfg.ports:
                        self.slirp.publish(ip, hp, cp, proto)
                elif cfg.network == "pasta":
                    self.slirp = network.Pasta(self.holder, cfg.ports,
                                               self.c.path / "pasta.log",
                                               cfg.process.get("mac_address") or "")
                elif self.netholder is not None:
                    self._attach_networks()
                _send(go_w, "G")
            elif line.startswith("P"):
                init_pid, view_pid = (int(x) for x in line[1:].split())
                self.c.write_state(holder_pid=self.holder,
                                   holder_start=ns.proc_start_time(self.holder),
                                   pid=init_pid, view_pid=view_pid, started=time.time(),
                                   paused=False,
                                   slirp_pid=self.slirp.proc.pid if self.slirp else None)
                return

    def _make_cgroups(self) -> None:
        """The container's cgroups with its limits, recorded in its state
        with their owner (this process, which removes them when the
        container ends; the next command does if it was killed)."""
        try:
            self.cg = cgroups.make(self.c.id, self.c.config.process)
        except DockishError as e:
            raise StartError(str(e)) from None
        me = os.getpid()
        self.c.write_state(cgroups=self.cg.paths if self.cg else [], oom_killed=False,
                           cgroups_owner=[me, ns.proc_start_time(me)])

    def release_cgroups(self) -> None:
        """Remove this start's cgroups, once the container's processes are gone."""
        if self.cg is not None or self.c.state().get("cgroups"):   # update's too
            cgroups.release_container(self.c)
            self.cg = None

    def _attach_networks(self) -> None:
        from . import netns
        from .networks import Networks
        root = self.c.path.parent.parent
        try:
            netns.attach(self.c.id, self.holder, Networks(root).netavark_inputs(self.c.config),
                         self.c.config.ports)
        except DockishError as e:
            raise StartError(str(e)) from None

    def _detach_networks(self) -> None:
        if self.netholder is not None:
            from . import netns
            netns.detach(self.c.id)

    def _await_exec(self, exec_r: int) -> None:
        data = b""
        while chunk := os.read(exec_r, 4096):
            data += chunk
        if data:
            code, _, msg = data.decode(errors="replace").partition(" ")
            self.wait()
            raise StartError(msg.strip(), int(code))

    def forward(self, sig: int) -> None:
        try:
            os.kill(self.holder, sig)
        except ProcessLookupError:
            pass

    def wait(self) -> int:
        """Reap the holder; the container's exit code (128+N if the holder
        was killed by signal N, as its container then was too)."""
        while True:
            try:
                _, status = os.waitpid(self.holder, 0)
                break
            except ChildProcessError:
                return (self.c.exit_info() or {}).get("code", 255)
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            code = 128 - code
        self.c.write_exit(code)
        self.release_cgroups()
        if self.slirp is not None:
            self.slirp.stop()
        self._detach_networks()
        info = self.c.exit_info() or {}
        return info.get("code", code)

    def kill_and_reap(self) -> None:
        if self.holder:
            try:
                os.kill(self.holder, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(self.holder, 0)
            except ChildProcessError:
                pass
        self.release_cgroups()
        if self.slirp is not None:
            self.slirp.proc.kill()
            self.slirp.proc.wait()
        self._detach_networks()


# ------------------------------------------------------------------ holder side

def _holder(launch: Launch, stdio: Stdio, sync_w: int, go_r: int, exec_w: int) -> int:
    cfg = launch.c.config
    os.setsid()                      # only the monitor gets the terminal's signals
    view = _fork_view(launch)
    if launch.cg is not None and cfg.process.get("userns") == "keep-id":
        # keep-id makes the container's root a subordinate id, which may not
        # move itself into the user's cgroup: the holder goes in, as the user
        cgroups.enter(launch.cg.procs)
    if launch.netholder is not None:     # a user network: the shared user namespace
        ns.join(launch.netholder, ["user"])
    elif launch.joinnet is not None:     # another container's network: its namespaces
        ns.join(launch.joinnet, ["user", "net"])
    elif launch.shared:                  # another container's pid or IPC namespace
        ns.join(next(iter(launch.shared.values())), ["user"])
    else:
        ns.unshare(ns.CLONE_NEWUSER)
        _send(sync_w, "U")
        if _line(go_r) != "M":
            return EXIT_DOCKISH
    ns.become_root(launch.mapping)
    procopts.stay_reachable(cfg.process)
    modes = cfg.process
    flags = ns.CLONE_NEWNS
    if modes.get("uts") != "host":
        flags |= ns.CLONE_NEWUTS
    if modes.get("ipc") != "host" and "ipc" not in launch.shared:
        flags |= ns.CLONE_NEWIPC
    if network.needs_netns(cfg.network):
        flags |= ns.CLONE_NEWNET
    ns.unshare(flags)
    if "ipc" in launch.shared:
        ns.join(launch.shared["ipc"], ["ipc"])
    ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
    if modes.get("uts") != "host":
        ns.sethostname(cfg.hostname)
        if modes.get("domainname"):
            ns.setdomainname(modes["domainname"])
    if network.needs_netns(cfg.network):
        network.loopback_up()
    _send(sync_w, "N")
    if _line(go_r) != "G":
        return EXIT_DOCKISH
    _view_go(*view)
    daemon = view[0]
    if "pid" in launch.shared:          # the init is forked into the other's
        ns.join(launch.shared["pid"], ["pid"])
    elif modes.get("pid") != "host":
        ns.unshare(ns.CLONE_NEWPID)
    ns.prctl(ns.PR_SET_CHILD_SUBREAPER, 1)
    init = os.fork()
    if init == 0:
        code = EXIT_DOCKISH
        try:
            os.close(sync_w)
            os.close(go_r)
            _init(launch, stdio, exec_w)      # execs: returns only on failure
        except _ExecFailed as e:
            code = e.code
            _report(exec_w, code, str(e))
        except BaseException as e:           # noqa: BLE001 - reported as one line
            _report(exec_w, EXIT_DOCKISH, _msg(e))
        os._exit(code)
    os.close(exec_w)
    if launch.cg is not None:
        launch.cg.close()            # the init entered with them
    _hold_nothing(stdio)
    _send(sync_w, f"P{init} {daemon}")
    os.close(sync_w)
    os.close(go_r)

    _forward_signals(init)
    while True:
        pid, status = os.wait()
        if pid == daemon:         # the root is gone: the container cannot go on
            daemon = 0
            os.kill(init, signal.SIGKILL)
        elif pid == init:
            break
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        code = 128 - code
    procopts.own_files_as_user(cfg.process)
    launch.c.write_exit(code)
    if daemon:       # --rm: the writable layer is about to go, no need to save it
        os.kill(daemon, signal.SIGKILL if cfg.auto_remove else signal.SIGTERM)
    while True:                       # reap the daemon and any orphan
        try:
            os.wait()
        except ChildProcessError:
            break
    return code


def _fork_view(launch: Launch) -> tuple[int, int, int]:
    """Start the FUSE daemon early, a fresh interpreter of its own
    (``viewd``): it loads its modules (the slowest part of a start) while
    the holder makes the namespaces, then joins the holder's user and mount
    namespaces and mounts the view at the container's rootfs dir. Returns
    (pid, go fd, ready fd) for ``_view_go``."""
    return viewd.spawn(launch.layers, launch.layer_ids, launch.c.upper, str(launch.c.rootfs),
                       launch.c.path / "view.log",
                       procopts.files_owner(launch.c.config.process))


def _view_go(pid: int, go_w: int, ready_r: int) -> None:
    """Let the forked daemon mount now; return once the view is ready."""
    os.write(go_w, b"g")
    os.close(go_w)
    data = os.read(ready_r, 4096)
    os.close(ready_r)
    if data != b"\0":
        os.waitpid(pid, 0)
        raise StartError(f"cannot mount the container's root: "
                         f"{data.decode(errors='replace') or 'the view daemon died'}")


def _start_view(launch: Launch) -> int:
    """Fork the daemon and mount at once (namespaces already made)."""
    pid, go_w, ready_r = _fork_view(launch)
    _view_go(pid, go_w, ready_r)
    return pid


# ------------------------------------------------------------------ init side

class _ExecFailed(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _report(fd: int, code: int, msg: str) -> None:
    try:
        os.write(fd, f"{code} {msg}".encode())
    except OSError:
        pass


VIEW_FILE_MAX = 4 << 20


def _read_view_file(path: str) -> str:
    """A file of the container's own (its /etc/passwd), read by dockish
    inside the container's root: missing is empty; a FIFO, device or
    directory there is refused at once, never waited on (the container made
    it), and no magic link is followed out of the root."""
    try:
        fd = ns.openat2(ns.AT_FDCWD, path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY,
                        ns.RESOLVE_NO_MAGICLINKS)
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except OSError as e:
        raise _ExecFailed(f"cannot read {path}: {os.strerror(e.errno)}",
                          EXIT_CANNOT_RUN) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _ExecFailed(f"cannot read {path}: not a regular file", EXIT_CANNOT_RUN)
        if st.st_size > VIEW_FILE_MAX:
            raise _ExecFailed(f"cannot read {path}: larger than {VIEW_FILE_MAX >> 20} MiB",
                              EXIT_CANNOT_RUN)
        data = os.read(fd, VIEW_FILE_MAX + 1)[:VIEW_FILE_MAX]
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def _container_user(spec: str, mapping: ns.IdMapping | None) -> cfgmod.User:
    """``-u`` resolved against the container's /etc/passwd and /etc/group;
    refused (126) if the ids are not mapped into the container."""
    try:
        user = cfgmod.resolve_user(spec, _read_view_file("/etc/passwd"),
                                   _read_view_file("/etc/group"))
    except cfgmod.UserLookupError as e:
        raise _ExecFailed(str(e), EXIT_CANNOT_RUN) from None
    if mapping is not None and (mapping.host_uid(user.uid) is None or
                                not any(i <= user.gid < i + n for i, _, n in mapping.gids)):
        why = ("only root is mapped without /etc/subuid and /etc/subgid ranges"
               if not mapping.full else
               f"ids from {max(i + n for i, _, n in mapping.uids)} up are not mapped")
        raise _ExecFailed(f"user {user.uid}:{user.gid} does not exist in the container: {why}",
                          EXIT_CANNOT_RUN)
    return user


def _open_workdir(workdir: str, make: bool) -> int:
    """An O_PATH fd on the working directory, resolved inside the container's
    root with no magic link (/proc/self/fd/N, /proc/1/cwd lead out of it);
    missing directories are made when ``make`` (as Docker does for run).
    Runs as root of the container, before it drops to its user."""
    flags = os.O_PATH | os.O_DIRECTORY
    fd = os.open("/", flags | os.O_CLOEXEC)
    try:
        for part in [p for p in workdir.split("/") if p]:
            try:
                nfd = ns.openat2(fd, part, flags, ns.RESOLVE_NO_MAGICLINKS)
            except FileNotFoundError:
                if not make:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                nfd = ns.openat2(fd, part, flags, ns.RESOLVE_NO_MAGICLINKS)
            os.close(fd)
            fd = nfd
    except OSError as e:
        os.close(fd)
        what = "make" if make else "enter"
        raise _ExecFailed(f"cannot {what} the working directory {workdir}: "
                          f"{os.strerror(e.errno)}", EXIT_CANNOT_RUN) from None
    return fd


def _enter_workdir(workdir: str, fd: int) -> None:
    """chdir as the container's user (its permissions apply), then check it
    landed on the directory ``_open_workdir`` found, inside the root (runc's
    check after CVE-2024-21626): else refuse, 126."""
    try:
        os.chdir(workdir or "/")
        here, there = os.stat("."), os.fstat(fd)
        cwd = os.getcwd()
    except OSError as e:
        raise _ExecFailed(f"cannot enter the working directory {workdir}: "
                          f"{os.strerror(e.errno)}", EXIT_CANNOT_RUN) from None
    finally:
        os.close(fd)
    if not cwd.startswith("/") or (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
        raise _ExecFailed(f"cannot enter the working directory {workdir}: it is outside "
                          "the container's root", EXIT_CANNOT_RUN)


def _init(launch: Launch, stdio: Stdio, exec_w: int) -> None:
    cfg = launch.c.config
    ns.prctl(ns.PR_SET_PDEATHSIG, signal.SIGKILL)
    if launch.cg is not None and launch.cg.procs:   # first: all it forks is inside too
        cgroups.enter(launch.cg.procs)
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    console = os.ttyname(stdio.pty_slave) if stdio.pty_slave is not None else None
    _wire_stdio(stdio)
    ns.close_fds_except({exec_w})        # before any chdir: see close_fds_except
    nsmodes.write_sysctls(cfg.process)   # in its own net and IPC namespaces
    nsmodes.apply_oom_score_adj(cfg.process)
    shm = _donor_shm(launch.shared["ipc"]) if "ipc" in launch.shared else \
        {"host": "/dev/shm", "none": ""}.get(cfg.process.get("ipc") or "")
    try:
        rootfs.setup_root(str(launch.c.rootfs), launch.mounts, read_only=cfg.read_only,
                          full_ids=launch.mapping.full, console=console,
                          shm_size=cfg.process.get("shm_size") or procopts.DEFAULT_SHM,
                          devices=[(d["PathOnHost"], d["PathInContainer"])
                                   for d in cfg.process.get("devices") or []], shm=shm)
    finally:
        if isinstance(shm, int):
            os.close(shm)
    user = _container_user(cfg.user, launch.mapping)
    env = cfgmod.finish_env(cfg.env, hostname=cfg.hostname, home=user.home, tty=cfg.tty)
    workdir = cfg.workdir or "/"
    wd_fd = _open_workdir(workdir, make=True)
    try:
        added = procopts.extra_groups(cfg.process, _read_view_file("/etc/group"))
    except DockishError as e:
        raise _ExecFailed(str(e), EXIT_CANNOT_RUN) from None
    groups = [g for g in [*user.groups, *added]
              if any(i <= g < i + n for i, _, n in launch.mapping.gids)]
    try:
        procopts.apply_limits(cfg.process)
    except (OSError, ValueError) as e:
        raise _ExecFailed(f"cannot set the --ulimit: {_msg(e)}", EXIT_DOCKISH) from None
    capabilities.limit_bounding(cfg.capabilities())
    if cfg.process.get("seccomp") not in (None, "", "unconfined"):
        from . import seccomp
        try:
            seccomp.load(cfg.process["seccomp"], {f"CAP_{n}" for n in cfg.capabilities()})
        except DockishError as e:
            raise _ExecFailed(str(e), EXIT_DOCKISH) from None
    if launch.mapping.full:
        os.setgroups(groups)
    os.setresgid(user.gid, user.gid, user.gid)
    os.setresuid(user.uid, user.uid, user.uid)
    ns.prctl(ns.PR_SET_PDEATHSIG, signal.SIGKILL)     # a uid change clears it
    _enter_workdir(workdir, wd_fd)
    procopts.apply_security(cfg.process)
    if cfg.init and cfg.init_path:
        _check_command(cfg.argv[0], env)      # one line of ours, not tini's
        _exec([cfg.init_path, "--", *cfg.argv], env)
    if cfg.init:
        _reaper(cfg.argv, env, exec_w)
    _exec(cfg.argv, env)


def _donor_shm(donor: int) -> int:
    """``--ipc container:NAME``: a detached copy of that container's
    /dev/shm mount (its tmpfs, so both see the same files), for
    ``setup_root`` to attach. The path is resolved inside its root, never
    through a link out of it; the copy is made from inside its mount
    namespace (a mount of another namespace cannot be copied), and this
    process returns to its own at once."""
    root = os.open(f"/proc/{donor}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        shm = ns.openat2(root, "dev/shm", os.O_PATH | os.O_DIRECTORY,
                         ns.RESOLVE_IN_ROOT | ns.RESOLVE_NO_MAGICLINKS)
    finally:
        os.close(root)
    own = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    theirs = os.open(f"/proc/{donor}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        ns.setns(theirs, ns.CLONE_NEWNS)
        try:
            return ns.clone_mount(shm)
        finally:
            ns.setns(own, ns.CLONE_NEWNS)
    finally:
        for fd in (shm, own, theirs):
            os.close(fd)


def _stdio_fds(stdio: Stdio) -> set[int]:
    return {fd for fd in (stdio.stdin, stdio.stdout, stdio.stderr, stdio.pty_slave)
            if fd is not None}


def _hold_nothing(stdio: Stdio) -> None:
    """A holder, once its container process is started, keeps none of the
    container's stdio: 0, 1 and 2 become /dev/null, so the end of the
    process is the end of its pipes (and no terminal or log stays open)."""
    for fd in _stdio_fds(stdio):
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _wire_stdio(stdio: Stdio) -> None:
    """A container process's fds 0, 1 and 2: the pty as its controlling
    terminal, or the given fds (None: /dev/null)."""
    if stdio.pty_slave is not None:
        from .tty import make_controlling
        make_controlling(stdio.pty_slave)
        return
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(stdio.stdin if stdio.stdin is not None else null, 0)
    os.dup2(stdio.stdout, 1)
    os.dup2(stdio.stderr, 2)
    os.close(null)


def _env_dict(env: list[str]) -> dict[str, str]:
    return dict(e.partition("=")[::2] for e in env)


def _check_command(name: str, env: list[str]) -> None:
    """Raise what ``_exec`` would if ``name`` cannot be executed."""
    if "/" in name:
        candidates = [name]
    else:
        path = _env_dict(env).get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                  "/usr/bin:/sbin:/bin")
        candidates = [os.path.join(d or ".", name) for d in path.split(":")]
    denied = False
    for c in candidates:
        if os.path.isfile(c):
            if os.access(c, os.X_OK):
                return
            denied = True
        elif os.path.isdir(c) and "/" in name:
            denied = True
    if denied:
        raise _ExecFailed(f'exec: "{name}": permission denied', EXIT_CANNOT_RUN)
    if "/" in name:
        raise _ExecFailed(f'exec: "{name}": stat {name}: no such file or directory',
                          EXIT_NOT_FOUND)
    raise _ExecFailed(f'exec: "{name}": executable file not found in $PATH', EXIT_NOT_FOUND)


def _exec(argv: list[str], env: list[str]) -> None:
    """Exec with Docker's codes: 127 not found, 126 found but not runnable."""
    envd = _env_dict(env)
    try:
        os.execvpe(argv[0], argv, envd)
    except FileNotFoundError:
        if "/" in argv[0]:
            raise _ExecFailed(f'exec: "{argv[0]}": stat {argv[0]}: no such file or '
                              "directory", EXIT_NOT_FOUND) from None
        raise _ExecFailed(f'exec: "{argv[0]}": executable file not found in $PATH',
                          EXIT_NOT_FOUND) from None
    except PermissionError:
        raise _ExecFailed(f'exec: "{argv[0]}": permission denied', EXIT_CANNOT_RUN) from None
    except OSError as e:
        raise _ExecFailed(f'exec: "{argv[0]}": {e.strerror}', EXIT_CANNOT_RUN) from None


def _reaper(argv: list[str], env: list[str], exec_w: int) -> None:
    """``--init``: pid 1 stays a small reaper that forwards signals to the
    command and exits with its code."""
    r, w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        os.close(r)
        try:
            _exec(argv, env)
        except _ExecFailed as e:
            _report(w, e.code, str(e))
            os._exit(e.code)
    os.close(w)
    data = os.read(r, 4096)
    os.close(r)
    if data:
        os.write(exec_w, data)
        os._exit(int(data.split()[0]))
    os.close(exec_w)

    _forward_signals(child)
    code = 0
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            break
    os._exit(code)


# ------------------------------------------------------------------ exec

def exec_in(c: Container, argv: list[str], env: list[str], user: str, workdir: str,
            stdio: Stdio, mapping_full: bool, privileged: bool = False) -> int:
    """Run a process in a running container's namespaces (as ``docker exec``);
    returns its exit code. Joins from this process, so every module it needs
    must be imported before (the host's files are out of reach after).
    ``privileged`` (exec --privileged): every capability, whatever the
    container was given, as Docker's."""
    pid = c.pid
    if pid is None:
        raise StartError(f"container {c.id} is not running")
    try:                 # the container's cgroups, which the process enters first
        procs = cgroups.open_procs(c.state().get("cgroups") or [])
    except DockishError as e:
        raise StartError(str(e)) from None
    r, w = os.pipe2(os.O_CLOEXEC)
    holder = os.fork()
    if holder == 0:
        code = EXIT_DOCKISH
        try:
            ns.close_fds_except({w, *_stdio_fds(stdio), *procs})   # nothing of the caller's
            os.setsid()
            ns.join(pid)
            child = os.fork()          # the pid namespace applies to children
            if child == 0:
                try:
                    cgroups.enter(procs)   # still the user's uid: it may move itself
                    _wire_stdio(stdio)
                    ns.close_fds_except({w})
                    u = _container_user(user, None)
                    full = cfgmod.finish_env(env, hostname=c.config.hostname, home=u.home,
                                             tty=stdio.pty_slave is not None)
                    wd_fd = _open_workdir(workdir or "/", make=False)
                    capabilities.limit_bounding(
                        capabilities.resolve([], [], privileged=True) if privileged
                        else c.config.capabilities())
                    if mapping_full:
                        os.setgroups(list(u.groups))
                    os.setresgid(u.gid, u.gid, u.gid)
                    os.setresuid(u.uid, u.uid, u.uid)
                    ns.prctl(ns.PR_SET_PDEATHSIG, signal.SIGKILL)
                    _enter_workdir(workdir or "/", wd_fd)
                    _exec(argv, full)
                except _ExecFailed as e:
                    _report(w, e.code, str(e))
                    os._exit(e.code)
                except BaseException as e:     # noqa: BLE001
                    _report(w, EXIT_CANNOT_RUN, _msg(e))
                    os._exit(EXIT_CANNOT_RUN)
            os.close(w)
            for fd in procs:
                os.close(fd)
            _hold_nothing(stdio)
            _forward_signals(child)
            _, status = os.waitpid(child, 0)
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
        except BaseException as e:       # noqa: BLE001
            _report(w, EXIT_DOCKISH, _msg(e))
        os._exit(code)
    os.close(w)
    for fd in procs:
        os.close(fd)
    if stdio.pty_slave is not None:
        os.close(stdio.pty_slave)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    holder_status = _ExecHolder(holder)
    if data:
        code, _, msg = data.decode(errors="replace").partition(" ")
        holder_status.wait()
        raise StartError(msg.strip(), int(code))
    return holder_status.pid


class _ExecHolder:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        return 128 - code if code < 0 else code


def wait_pid(pid: int) -> int:
    return _ExecHolder(pid).wait()


def main_stdio(interactive: bool) -> Stdio:
    return Stdio(sys.stdin.fileno() if interactive else None, sys.stdout.fileno(),
                 sys.stderr.fileno())
