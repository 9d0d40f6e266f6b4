"""Running the service: the routes of every endpoint module over one
engine, on a socket (default: ``docker.sock`` in the private runtime dir)."""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import trio

from ..engine import Engine
from .containers import ContainerApi
from .images import ImageApi
from .networks import NetworkApi
from .server import Routes, Server
from .system import SystemApi, package_version


def default_socket() -> Path:
    """``$XDG_RUNTIME_DIR/dockish/docker.sock`` (the private runtime dir)."""
    from unionfs.mounts import runtime_dir
    return runtime_dir() / "docker.sock"


def socket_path(url: str | None) -> Path:
    """``unix://PATH`` (or a bare path) -> PATH; other schemes are refused."""
    if not url:
        return default_socket()
    if url.startswith("unix://"):
        url = url[len("unix://"):]
    elif "://" in url:
        raise ValueError(f"only unix:// sockets are served, not {url}")
    if not url:
        raise ValueError("empty socket path")
    return Path(os.path.abspath(url))


def routes(engine: Engine) -> Routes:
    r = Routes()
    SystemApi(engine).register(r)
    ContainerApi(engine).register(r)
    ImageApi(engine).register(r)
    NetworkApi(engine).register(r)
    return r


def serve(path: Path, idle: float, ready: Callable[[], None] | None = None) -> None:
    """Serve until idle for ``idle`` seconds (0: forever) or SIGTERM/SIGINT."""
    from .server import listen_unix
    sock = listen_unix(path)           # before trio: a refusal is one plain error
    engine = Engine(detach_via="fresh")     # monitors are never this threaded process's forks
    # a container's monitor is our grandchild at most: it never reports to us
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def log(line: str) -> None:
        print(f"dockish: service: {line}", file=sys.stderr, flush=True)

    server = Server(routes(engine), idle, package_version(), log)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:
                async def stop_on_signal() -> None:
                    async for _ in signals:
                        nursery.cancel_scope.cancel()
                        return
                nursery.start_soon(stop_on_signal)
                await server.serve(sock, path, ready)
                nursery.cancel_scope.cancel()
    trio.run(main)
