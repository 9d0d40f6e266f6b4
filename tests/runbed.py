"""Running the installed ``dockish`` from tests: its output as text, its
errors as one line, a pty read until something shows up."""
from __future__ import annotations

import os
import select
import subprocess
import time

import pytest

from .diffbase import dockish_exe


def dockish(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([dockish_exe(), *args], capture_output=True, text=True,
                          timeout=timeout)


def ok(*args: str) -> str:
    res = dockish(*args)
    assert res.returncode == 0, (args, res.returncode, res.stdout, res.stderr)
    return res.stdout


def one_error_line(res: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dockish: error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]


def drain(fd: int, seconds: float, until: bytes | None = None) -> bytes:
    """Read ``fd`` for up to ``seconds``, or until ``until`` shows up."""
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if until and until in out:
                break
    return out


@pytest.fixture
def no_leftovers(dockish_root):
    """A failing test must not leave containers running behind it (use it
    with ``pytestmark = pytest.mark.usefixtures("no_leftovers")``)."""
    yield
    ids = dockish("ps", "-a", "-q", "--no-trunc").stdout.split()
    if ids:
        dockish("rm", "-f", *ids)


def image_store(root):
    from registry.store import ImageStore
    return ImageStore(root)


def image_config(root, name: str) -> dict:
    """The OCI config of the stored image ``name`` (as the store keeps it)."""
    store = image_store(root)
    rec, _ = store.find(name)
    return store.config(rec)
