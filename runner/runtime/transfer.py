"""``cp`` and ``export``: tar streams between the host and a container's root.

A forked helper gets the container's root as its ``/``: for a running
container it joins the container's namespaces; for a stopped one it makes a
user and mount namespace of its own and mounts the container's view there,
as a start would. The helper and the host side only exchange a tar stream
through a pipe, so no host path is ever resolved inside the container and no
container path on the host. The helper never looks names up (no NSS code of
the container's is loaded): tars carry numeric owners.
"""
from __future__ import annotations

import errno
import os
import re
import signal
import stat
import tarfile
from collections.abc import Callable, Iterator

from ..errors import DockishError
from . import namespaces as ns
from .container import Container
from .hostfs import Extracted, UnsafeTree, extract, more_fds


class TransferError(DockishError):
    """A copy that cannot be done; the message says why."""

    exit_code = 1               # as docker cp and export exit


def _no_names() -> None:
    tarfile.pwd = None       # type: ignore[attr-defined]  # numeric owners only
    tarfile.grp = None       # type: ignore[attr-defined]


Notify = Callable[[str], None]


def _quiet(_note: str) -> None:
    pass


def extract_all(tf: tarfile.TarFile, dest: str, notify: Notify = _quiet) -> None:
    """Extract ``tf`` into the directory ``dest`` with the same rules as cp
    out (nothing followed, hardlinks only within the archive; as root no
    device nodes or set-id bits): its content may be an image's."""
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _say(notify, extract(tf, fd, None, keep_owners=False,
                             keep_special=os.geteuid() != 0).note())
    finally:
        os.close(fd)


def inside(c: Container, launch_factory: Callable, body: Callable[[], None],
           errors: list[str] | None = None) -> int:
    """Run ``body()`` in a forked child whose ``/`` is the container's root;
    return its exit code (0: done). The child's error lines go to our
    stderr, or with ``errors`` into that list (for a caller with no
    terminal: the engine's, the API's)."""
    if errors is None:
        return _inside(c, launch_factory, body)
    import threading
    r, w = os.pipe2(os.O_CLOEXEC)
    got: list[bytes] = []

    def collect() -> None:
        while chunk := os.read(r, 65536):
            got.append(chunk)
    reader = threading.Thread(target=collect, daemon=True)
    reader.start()

    def redirected() -> None:
        os.dup2(w, 2)                 # the child's own stderr: what it says comes to us
        body()
    try:
        code = _inside(c, launch_factory, redirected)
    finally:
        os.close(w)
        reader.join()
        os.close(r)
    text = b"".join(got).decode(errors="replace")
    errors += [line.removeprefix("dockish: error: ") for line in text.splitlines() if line]
    return code


def _inside(c: Container, launch_factory: Callable, body: Callable[[], None]) -> int:
    pid = c.pid
    if pid is not None:
        child = os.fork()
        if child == 0:
            code = 1
            try:
                ns.join(pid, ["user", "mnt"])
                os.chdir("/")
                body()
                code = 0
            except BaseException as e:     # noqa: BLE001 - one line to stderr
                os.write(2, f"dockish: error: {_msg(e)}\n".encode())
            os._exit(code)
        _, status = os.waitpid(child, 0)
        return os.waitstatus_to_exitcode(status)
    from .launch import _start_view
    launch = launch_factory(c)

    def offline() -> None:
        ns.unshare(ns.CLONE_NEWNS)
        ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
        daemon = _start_view(launch)
        try:
            child = os.fork()
            if child == 0:
                code = 1
                try:
                    os.chroot(str(c.rootfs))
                    os.chdir("/")
                    body()
                    code = 0
                except BaseException as e:     # noqa: BLE001
                    os.write(2, f"dockish: error: {_msg(e)}\n".encode())
                os._exit(code)
            _, status = os.waitpid(child, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(1)
        finally:
            os.kill(daemon, signal.SIGTERM)
            os.waitpid(daemon, 0)
    return ns.in_userns(offline, launch.mapping)


def _msg(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e) or type(e).__name__


def _join(parent: str, name: str) -> str:
    """Archive names as `docker export` writes them: no leading "./"."""
    return name if parent in (".", "") else f"{parent}/{name}"


def mountpoints(pid: int) -> frozenset[str]:
    """Every mountpoint of process ``pid`` below its root, as archive names
    ("proc", "etc/hosts", "data"): ``export`` writes them empty, as ``docker
    export`` (which reads the root filesystem, below all mounts) shows them.
    Read from the host's /proc, relative to that process's root."""
    try:
        with open(f"/proc/{pid}/mountinfo", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return frozenset()
    out = set()
    for line in lines:
        fields = line.split(b" ")
        if len(fields) < 5:
            continue
        mp = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4])
        rel = os.fsdecode(mp).strip("/")
        if rel:
            out.add(rel)
    return frozenset(out)


def _info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = st.st_mtime
    return ti


def _placeholder(name: str, st: os.stat_result) -> tarfile.TarInfo:
    """A mountpoint as the root filesystem holds it: empty, root's."""
    ti = tarfile.TarInfo(name)
    ti.uname = ti.gname = ""
    ti.mtime = int(st.st_mtime)
    if stat.S_ISDIR(st.st_mode):
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
    else:
        ti.mode = 0o644
    return ti


class _TreeWriter:
    """Adds entries found by fd to a tar: hardlinks written once, as links after."""

    def __init__(self, tf: tarfile.TarFile) -> None:
        self.tf = tf
        self.first: dict[tuple[int, int], str] = {}

    def add(self, dir_fd: int | None, name: str, arc: str, st: os.stat_result) -> None:
        mode = st.st_mode
        ti = _info(arc, st)
        if stat.S_ISDIR(mode):
            ti.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=dir_fd)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in self.first:
                ti.type, ti.linkname = tarfile.LNKTYPE, self.first[key]
            else:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                with os.fdopen(fd, "rb") as f:
                    ti.size = os.fstat(fd).st_size
                    self.tf.addfile(ti, f)
                if st.st_nlink > 1:
                    self.first[key] = arc
                return
        elif stat.S_ISFIFO(mode):
            ti.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            return                            # sockets: as tar and Docker, left out
        self.tf.addfile(ti)


def write_tree(path: str, arcname: str, out_fd: int, *, one_fs: bool,
               skip: frozenset[str] = frozenset()) -> None:
    """Write a tar of ``path`` (named ``arcname``; "" for the root of an
    export, whose own entry is left out) to ``out_fd``. Walks by directory
    fd with an explicit stack: any depth, any path length. ``one_fs`` and
    ``skip`` (archive names) leave mounts out: their entries are written
    empty."""
    _no_names()
    more_fds()
    with os.fdopen(out_fd, "wb") as out, tarfile.open(fileobj=out, mode="w|",
                                                      format=tarfile.PAX_FORMAT) as tf:
        w = _TreeWriter(tf)
        st = os.lstat(path)
        if arcname:
            w.add(None, path, arcname, st)
        if not stat.S_ISDIR(st.st_mode):
            return
        root_dev = st.st_dev
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        stack: list[tuple[int, str, Iterator[str]]] = [
            (top, arcname, iter(sorted(os.listdir(top))))]
        try:
            while stack:
                fd, prefix, names = stack[-1]
                for n in names:
                    arc = _join(prefix, n)
                    st = os.stat(n, dir_fd=fd, follow_symlinks=False)
                    mounted = arc in skip or (one_fs and stat.S_ISDIR(st.st_mode)
                                              and st.st_dev != root_dev)
                    if mounted:
                        tf.addfile(_placeholder(arc, st))
                        continue
                    w.add(fd, n, arc, st)
                    if stat.S_ISDIR(st.st_mode):
                        child = os.open(n, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                        | os.O_CLOEXEC, dir_fd=fd)
                        stack.append((child, arc, iter(sorted(os.listdir(child)))))
                        break
                else:
                    stack.pop()
                    os.close(fd)
        finally:
            for fd, _, _ in stack:
                os.close(fd)


def open_dir(path: str, *, no_magic: bool) -> int:
    """Open the directory ``path``; with ``no_magic`` no /proc magic link on
    the way is followed (inside a container they could lead to the host)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    if no_magic:
        try:
            return ns.openat2(ns.AT_FDCWD, path, flags, ns.RESOLVE_NO_MAGICLINKS)
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.E2BIG):     # kernels before 5.6
                raise
    return os.open(path, flags)


def _dest(dest: str, src_name: str, *, no_magic: bool) -> tuple[int, list[str]]:
    """Docker's cp rule: into DEST when it is a directory, else as DEST.
    Returns (fd of the directory to extract into, the copy's path in it)."""
    try:
        return open_dir(dest, no_magic=no_magic), [] if src_name == "." else [src_name]
    except (FileNotFoundError, NotADirectoryError):
        pass
    parent = os.path.dirname(dest.rstrip("/")) or "/"
    try:
        fd = open_dir(parent, no_magic=no_magic)
    except OSError:
        raise TransferError(f"no such directory: {parent}") from None
    return fd, [os.path.basename(dest.rstrip("/"))]


def _extract(in_fd: int, dest: str, src_name: str, *, archive: bool,
             in_container: bool) -> Extracted:
    with os.fdopen(in_fd, "rb") as inp:      # closed on any failure: the writer stops
        into, prefix = _dest(dest, src_name, no_magic=in_container)
        try:
            return extract_into(inp, into, prefix, archive=archive,
                                in_container=in_container, notify=_to_stderr)
        finally:
            os.close(into)


def extract_into(inp, into: int, prefix: list[str] | None, *, archive: bool,
                 in_container: bool, notify: Notify = _quiet) -> Extracted:
    """Extract the tar stream ``inp`` below the directory fd ``into`` with
    the rules of cp (``hostfs.extract``: nothing followed, hardlinks only
    within the stream); its note (what was left out) to ``notify``."""
    try:
        with tarfile.open(fileobj=inp, mode="r|") as tf:
            # on the host as root, device nodes and set-id bits only with -a
            special = in_container or archive or os.geteuid() != 0
            done = extract(tf, into, prefix, keep_owners=archive, keep_special=special)
            _say(notify, done.note())
            return done
    except UnsafeTree as e:
        raise TransferError(str(e)) from None


def _say(notify: Notify, note: str | None) -> None:
    if note:
        notify(f"dockish: note: {note}")


def _to_stderr(note: str) -> None:
    """A forked helper's note: to its stderr, which the caller reads
    (``inside``'s ``errors``) or shares with the user."""
    os.write(2, f"{note}\n".encode())


# the names runner/api used before they were public
_open_dir = open_dir
_extract_into = extract_into


def copy_in(c: Container, launch_factory, host_src: str, ctr_dest: str, *,
            archive: bool = False, follow: bool = False) -> None:
    """``cp HOST CTR:PATH``: files become root's inside (with ``archive``,
    they keep the host's numeric owners), as Docker does. ``follow``
    (``-L``): a symlink named as the source is copied as what it points to."""
    src = os.path.abspath(host_src)
    if not os.path.lexists(src):
        raise TransferError(f"could not find the file {host_src} in the host")
    r, w = os.pipe()
    name = os.path.basename(src.rstrip("/")) or "."
    if follow:                # the user's own path, followed as they asked
        src = os.path.realpath(src)
        if not os.path.exists(src):
            raise TransferError(f"could not find the file {host_src} in the host")
    writer = os.fork()
    if writer == 0:
        ns.close_fds_except({w})      # it reads the user's files for as long as the copy
        code = 0
        try:
            write_tree(src, name, w, one_fs=False)
        except BaseException:         # noqa: BLE001 - the reader reports
            code = 1
        os._exit(code)
    os.close(w)

    def body() -> None:
        ns.close_fds_except({r})
        _extract(r, ctr_dest, name, archive=archive, in_container=True)
    code = inside(c, launch_factory, body)
    os.close(r)
    os.waitpid(writer, 0)
    if code != 0:
        raise TransferError("")       # the helper said why


def copy_out(c: Container, launch_factory, ctr_src: str, host_dest: str, *,
             archive: bool = False, notify: Notify = _quiet, follow: bool = False) -> None:
    """``cp CTR:PATH HOST``: files become the user's on the host (with
    ``archive``, they keep the container's numeric owners). DEST is checked
    before the container is asked for anything. ``follow`` (``-L``): a
    symlink named as the source is copied as what it points to."""
    name = os.path.basename(ctr_src.rstrip("/")) or "."
    into, prefix = _dest(os.path.abspath(host_dest), name, no_magic=False)
    try:
        stream = archive_reader(c, launch_factory, ctr_src, follow=follow)
        try:
            extract_into(stream, into, prefix, archive=archive, in_container=False,
                         notify=notify)
        except (tarfile.ReadError, EOFError):
            pass                      # the helper failed: close() says why
        finally:
            stream.close()
    finally:
        os.close(into)


def export(c: Container, launch_factory, out_fd: int) -> None:
    """``export``: the container's whole filesystem as a tar on ``out_fd``,
    without what is mounted on it (/proc, /dev, /sys, volumes, binds,
    /etc/hosts...): only the mountpoints, empty."""
    skip = mountpoints(c.pid) if c.pid is not None else frozenset()

    def body() -> None:
        ns.close_fds_except({out_fd})
        write_tree("/", "", out_fd, one_fs=True, skip=skip)
    if inside(c, launch_factory, body) != 0:
        raise TransferError("")


# -- Docker's archive endpoints: stat, a tar of a path out, a tar into a directory ----------


def go_mode(st: os.stat_result) -> int:
    """A mode as Go's os.FileMode says it (Docker's clients read it so)."""
    mode = stat.S_IMODE(st.st_mode) & 0o777
    mode |= {stat.S_IFDIR: 1 << 31, stat.S_IFLNK: 1 << 27, stat.S_IFIFO: 1 << 25,
             stat.S_IFSOCK: 1 << 24, stat.S_IFBLK: 1 << 26,
             stat.S_IFCHR: (1 << 26) | (1 << 21)}.get(stat.S_IFMT(st.st_mode), 0)
    for bit, go in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if st.st_mode & bit:
            mode |= go
    return mode


def path_stat(c: Container, launch_factory, path: str) -> dict | None:
    """Docker's ContainerPathStat (name, size, mode, mtime, linkTarget) of
    ``path`` as the container sees it; None when there is no such path."""
    import json
    import time
    r, w = os.pipe2(os.O_CLOEXEC)

    def body() -> None:
        ns.close_fds_except({w})
        try:
            st = os.lstat(path)
        except OSError:
            os.write(w, b"null")
            return
        link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
        os.write(w, json.dumps({
            "name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size,
            "mode": go_mode(st),
            "mtime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(st.st_mtime))
            + f".{st.st_mtime_ns % 1_000_000_000:09d}Z", "linkTarget": link}).encode())
    errors: list[str] = []
    try:
        code = inside(c, launch_factory, body, errors)
        os.close(w)
        w = -1
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if code != 0 or not data:
        raise TransferError(errors[-1] if errors else f"cannot look at {path} in container "
                            f"{c.name}")
    return json.loads(data)


class TarStream:
    """A tar read from a helper in the container: ``read(n)``, iteration
    by chunks, ``close()`` (which waits for the helper and raises
    ``TransferError`` with what it said if it failed). Never buffers more
    than a pipe holds."""

    def __init__(self, fd: int, pid: int, errors_fd: int) -> None:
        self._f = os.fdopen(fd, "rb")
        self._pid, self._errors_fd = pid, errors_fd
        self._done = False

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._f.read(65536):
            yield chunk
        self.close()

    def __enter__(self) -> TarStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        self._f.close()            # a helper still writing gets EPIPE and stops
        _, status = os.waitpid(self._pid, 0)
        with os.fdopen(self._errors_fd, "rb") as e:
            said = e.read().decode(errors="replace").strip().splitlines()
        if os.waitstatus_to_exitcode(status) != 0:
            raise TransferError((said[-1] if said else "the copy failed")
                                .removeprefix("dockish: error: "))


def archive_reader(c: Container, launch_factory, path: str,
                   follow: bool = False) -> TarStream:
    """A tar of ``path`` inside ``c`` (named by its last component; ``/.``
    at the end: the directory's content), made inside the container;
    ``follow``: a symlink at ``path`` is followed (inside the container's
    root, no magic link), the tar holds what it points to under its name."""
    name = os.path.basename(path.rstrip("/")) or "."
    if path.endswith("/."):
        name = "."
    r, w = os.pipe2(os.O_CLOEXEC)
    er, ew = os.pipe2(os.O_CLOEXEC)

    def body() -> None:
        ns.close_fds_except({w})
        if not os.path.lexists(path):
            raise TransferError(f"Could not find the file {path} in container {c.name}")
        source = path
        if follow and os.path.islink(path.rstrip("/") or "/"):
            source = _followed(path, c.name)
        try:
            write_tree(source, "" if name == "." else name, w, one_fs=False)
        except BrokenPipeError:
            os._exit(1)
    pid = _fork_helper(c, launch_factory, body, w, ew)
    os.close(w)
    return TarStream(r, pid, er)


def _followed(path: str, name: str) -> str:
    """Where the symlink ``path`` leads, resolved as strings inside the
    container's root (the helper's ``/``: a link's text never leads out of
    it). Runs in the helper."""
    real = os.path.realpath(path)
    if not os.path.lexists(real):
        raise TransferError(f"Could not find the file {path} in container {name}: its link "
                            "leads nowhere")
    return real


def _fork_helper(c: Container, launch_factory, body: Callable[[], None], theirs: int,
                 err_w: int) -> int:
    """Fork the helper that runs ``body`` inside ``c`` with its stderr on
    ``err_w`` (its error lines come back to us); ``theirs`` (the helper's
    end of the data pipe) is the only other fd it keeps. Returns its pid.

    It closes every other fd first thing: it lives as long as the copy, and
    in a threaded caller (the API server) it would otherwise hold what other
    threads had open at the fork, e.g. the write end of the pipe the very
    upload's request body comes through while it is still coming: the
    reader of that pipe then never saw its end (a ``docker cp`` into a
    container hung so, now and then, waiting on itself)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(err_w, 2)
            ns.close_fds_except({theirs})
            code = _inside(c, launch_factory, body)
        finally:
            os._exit(code)
    os.close(err_w)
    return pid


def archive_writer(c: Container, launch_factory, path: str, source,
                   notify: Notify = _quiet, archive: bool = False) -> None:
    """Extract the tar read from ``source`` (a file object with ``read``)
    into the directory ``path`` inside ``c``, from inside the container,
    with cp's rules (hostfs.extract: no member leads out through a
    symlink, hardlinks only within the archive). A missing directory is
    an error, as Docker's."""
    r, w = os.pipe2(os.O_CLOEXEC)

    def body() -> None:
        ns.close_fds_except({r})
        try:
            into = open_dir(path, no_magic=True)
        except (FileNotFoundError, NotADirectoryError):
            raise TransferError(f"Could not find the directory {path} in container "
                                f"{c.name}") from None
        try:
            with os.fdopen(r, "rb") as inp:
                extract_into(inp, into, None, archive=archive, in_container=True,
                             notify=_to_stderr)
        finally:
            os.close(into)
    er, ew = os.pipe2(os.O_CLOEXEC)
    pid = _fork_helper(c, launch_factory, body, r, ew)
    os.close(r)                       # only the helper reads: its end is EOF/EPIPE for us
    try:
        with os.fdopen(w, "wb") as out:
            while chunk := source.read(65536):
                out.write(chunk)
    except BrokenPipeError:
        pass                          # the helper stopped reading: it says why
    finally:
        _, status = os.waitpid(pid, 0)
        with os.fdopen(er, "rb") as e:
            said = e.read().decode(errors="replace").splitlines()
    for line in said:
        if line.startswith("dockish: note: "):
            notify(line)
    failed = [line.removeprefix("dockish: error: ") for line in said
              if line and not line.startswith("dockish: note: ")]
    if os.waitstatus_to_exitcode(status) != 0:
        raise TransferError(failed[-1] if failed else f"could not extract into {path} in "
                            f"container {c.name}")
