"""``build --output`` (``-o``): where a build's result goes besides the
store, as buildx takes it.

    type=local,dest=DIR      the final stage's files, in DIR (made if missing)
    type=tar,dest=FILE       the same files as one tar (``dest=-``: stdout)
    type=docker,dest=FILE    the image as a docker-archive (``docker load``)
    type=oci,dest=FILE       the image as an OCI layout tar
    type=image               the image in the store (what a build does anyway)
    DIR                      short for type=local,dest=DIR
    -                        short for type=tar on stdout

``parse`` is pure; ``write`` does it with the engine's records: the files
of an image come from a container made (never started) from it and
exported, then removed; a directory is filled with cp's extraction rules
(nothing followed, every file the user's).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from ..errors import UsageError

KINDS = ("local", "tar", "docker", "oci", "image")


@dataclass(frozen=True)
class Output:
    kind: str
    dest: str = ""          # "-": stdout


def parse(spec: str) -> Output:
    """One ``--output`` value (buildx's CSV of key=value, or a shorthand)."""
    if spec == "-":
        return Output("tar", "-")
    if "=" not in spec:
        return Output("local", spec)
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, eq, value = part.partition("=")
        if not eq:
            raise UsageError(f"invalid value {part!r} in --output {spec!r}: use key=value")
        fields[key.strip().lower()] = value.strip()
    kind = fields.pop("type", "local")
    if kind == "registry":
        raise UsageError("--output type=registry: push the built image with `dockish push`")
    if kind not in KINDS:
        raise UsageError(f"--output type={kind}: use local, tar, docker, oci or image")
    dest = fields.pop("dest", "")
    fields.pop("name", None)
    if kind == "local" and not dest:
        raise UsageError("--output type=local needs dest=DIR")
    if kind in ("tar", "docker", "oci") and not dest:
        raise UsageError(f"--output type={kind} needs dest=FILE (or dest=- for stdout)")
    if kind == "local" and dest == "-":
        raise UsageError("--output type=local: dest=- is a tar, use type=tar")
    return Output(kind, dest)


def write(engine, image_id: str, out: Output, stdout_fd: int = 1) -> None:
    """Send the built image ``image_id`` where ``out`` says."""
    from ..runtime.outfile import output_file
    if out.kind == "image":
        return
    if out.kind in ("docker", "oci"):
        fmt = "docker-archive" if out.kind == "docker" else "oci"
        if out.dest == "-":
            with os.fdopen(os.dup(stdout_fd), "wb") as f:
                engine.save([image_id], f, fmt)
        else:
            with output_file(out.dest) as f:
                engine.save([image_id], f, fmt)
        return
    if out.kind == "tar":
        if out.dest == "-":
            _files(engine, image_id, os.dup(stdout_fd))
        else:
            with output_file(out.dest) as f:
                _files(engine, image_id, os.dup(f.fileno()))
        return
    _into_directory(engine, image_id, out.dest)


def _files(engine, image_id: str, out_fd: int) -> None:
    """The image's files as a tar on ``out_fd`` (closed after)."""
    from ..engine import CreateOptions
    try:
        c = engine.create(CreateOptions(image=image_id, args=["true"], entrypoint="",
                                        network="none", quiet=True))
    except BaseException:
        os.close(out_fd)
        raise
    try:
        engine.export(c.id, out_fd)
    finally:
        engine.remove(c.id, force=True)


def _into_directory(engine, image_id: str, dest: str) -> None:
    from ..runtime.transfer import extract_into, open_dir
    os.makedirs(dest, exist_ok=True)
    into = open_dir(dest, no_magic=False)
    r, w = os.pipe2(os.O_CLOEXEC)
    failed: list[BaseException] = []

    def extract() -> None:
        try:
            with os.fdopen(r, "rb") as inp:
                extract_into(inp, into, None, archive=False, in_container=False)
        except BaseException as e:     # noqa: BLE001 - raised in the caller's thread
            failed.append(e)
    reader = threading.Thread(target=extract, daemon=True)
    reader.start()
    try:
        _files(engine, image_id, w)
    finally:
        reader.join()
        os.close(into)
    if failed:
        raise failed[0]
