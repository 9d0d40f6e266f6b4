"""A union daemon as a fresh interpreter instead of a fork of its caller.

A daemon forked from dockish's CLI carried everything that process had
imported and allocated (click, requests, the registry client, the builder,
the layer indexes) for as long as its mount lived, and its own allocations
filled that heap's free space: 42 MiB resident once a container's root was
mounted, 38 MiB as a fresh interpreter with only pyfuse3, trio and the
daemon's modules. So the forked child, once its own set-up is done (session,
stdio), executes a fresh interpreter, hands it what to serve through a memfd
(msgpack), and the new interpreter calls ``fresh_main(spec, *fds)`` of the
daemon's module. The fork's pid, session, namespaces and the fds the caller
keeps stay the same; every other fd is close-on-exec (Python's default).
"""
from __future__ import annotations

import os
import sys
from typing import NoReturn

_BOOT = ("import sys, importlib; a = sys.argv; n = int(a[2]); sys.path[:] = a[3 + n:]; "
         "importlib.import_module(a[1]).fresh_main(*map(int, a[3:3 + n]))")
"""What the fresh interpreter runs: ``-I -S`` (no current directory, no
PYTHON* variables, no site set-up, which took a tenth of its start), the
caller's module path, then the module's ``fresh_main`` with the fds."""

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The directory holding dockish's packages: on the path even where an
editable install finds them by an import hook, which ``-S`` leaves out."""


def exec_fresh(module: str, spec: dict, keep: tuple[int, ...] = ()) -> NoReturn:
    """In a forked child: become a fresh interpreter that calls
    ``module.fresh_main(spec_fd, *keep)``; ``spec`` (msgpack types) is read
    back with ``read_spec(spec_fd)``. Raises if the exec fails."""
    import msgpack
    data = msgpack.packb(spec)
    fd = os.memfd_create("dockish-spec", os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    fds = (fd, *keep)
    for k in fds:
        os.set_inheritable(k, True)
    path = [os.path.abspath(p) for p in sys.path if p] + [_ROOT]
    os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", _BOOT, module,
                              str(len(fds)), *map(str, fds), *path])


def read_spec(fd: int) -> dict:
    """The spec ``exec_fresh`` handed over (fd closed); arrays as tuples,
    as the layer indexes are loaded (``LayerStore.load_index``)."""
    import msgpack
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    return msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=False)


def uninherit(*fds: int) -> None:
    """The fds the exec kept are this process's own again: none goes further."""
    for fd in fds:
        os.set_inheritable(fd, False)
