"""A build context that arrives as a tar stream (``docker build -`` with an
archive on stdin, ``POST /build``): extracted into a private temporary
directory of the store with the same extractor ``cp`` uses (no link or
name leaves it, no owners or device nodes), the Dockerfile read from it
without following a link out, and the directory removed after.

Also what ``build -`` reads on stdin: an archive (tar, maybe compressed)
is a context, anything else is the Dockerfile of an empty context, as
Docker decides."""
from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import DockishError, UsageError

_RESOLVE_BENEATH = 0x08            # openat2(2): no step out of the directory
_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")   # gzip bzip2 xz zstd


def is_archive(head: bytes) -> bool:
    """Docker's test of what ``build -`` got: a compressed stream or a tar
    header (``ustar`` at offset 257)."""
    return head.startswith(_MAGIC) or head[257:262] == b"ustar"


class Prefixed:
    """A stream with bytes already read from it put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                data, self.head = self.head + self.rest.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.rest.read(n)


@contextlib.contextmanager
def extracted(root: Path, tar: BinaryIO | None) -> Iterator[Path]:
    """A private temporary directory holding the context ``tar`` (a tar,
    maybe compressed; None: an empty context); removed afterwards."""
    from unionfs import private

    from ..runtime.hostfs import extract
    base = Path(root) / "build" / "contexts"
    private.ensure(base, fix="remove it", writable_ok=False)
    ctx = Path(tempfile.mkdtemp("", "ctx-", str(base)))
    try:
        if tar is not None:
            fd = os.open(ctx, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                with tarfile.open(fileobj=tar, mode="r|*") as tf:
                    extract(tf, fd, None, keep_owners=False, keep_special=False)
            except (tarfile.TarError, EOFError, OSError, ValueError, DockishError) as e:
                raise UsageError(f"unable to read the build context: {e}") from None
            finally:
                os.close(fd)
        yield ctx
    finally:
        shutil.rmtree(ctx, ignore_errors=True)


def read_dockerfile(ctx: Path, name: str) -> str:
    """The Dockerfile named inside the context, read without following a
    link out of it."""
    from ..runtime import namespaces as ns
    if name.startswith("/") or ".." in Path(name).parts:
        raise UsageError(f"the Dockerfile must be inside the build context: {name}")
    try:
        fd = os.open(ctx, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            ffd = ns.openat2(fd, name, os.O_RDONLY | os.O_CLOEXEC,
                             _RESOLVE_BENEATH | ns.RESOLVE_NO_MAGICLINKS)
        finally:
            os.close(fd)
        with os.fdopen(ffd, "rb") as f:
            data = f.read(16 << 20)
    except OSError as e:
        raise UsageError(f"Cannot locate specified Dockerfile: {name}: "
                         f"{e.strerror or e}") from None
    return data.decode("utf-8", "replace")


__all__ = ["Prefixed", "extracted", "is_archive", "read_dockerfile"]
