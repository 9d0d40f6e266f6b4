"""Save stored images to archives, and load archives into the store.

``docker-archive`` is what ``docker save`` writes since Docker 25: an OCI
layout (``oci-layout``, ``index.json``, ``blobs/``) plus the legacy
``manifest.json`` and ``repositories``, so ``docker load``, ``podman load``
and skopeo's ``docker-archive:`` all read it. ``oci-archive`` is the OCI
layout alone, each image named by its tag in
``org.opencontainers.image.ref.name``. Layers are written uncompressed (the
store keeps them so: no CPU spent, and ``docker save`` does the same).
"""
from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import BinaryIO

from . import manifest as mf
from . import reference as refs
from .archive import FULL_NAME, REF_NAME, Source, _TarFiles, import_image
from .store import ImageRecord, ImageStore

FORMATS = {"docker": "docker-archive", "docker-archive": "docker-archive",
           "oci": "oci-archive", "oci-archive": "oci-archive"}


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


class _Writer:
    """A tar stream of blobs, each written once."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self.seen: set[str] = set()
        self.mtime = int(time.time())

    def add_bytes(self, name: str, data: bytes) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), self.mtime, 0o644
        self.tar.addfile(info, io.BytesIO(data))

    def add_file(self, name: str, path: Path) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        with open(path, "rb") as f:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = f.seek(0, 2), self.mtime, 0o644
            f.seek(0)
            self.tar.addfile(info, f)

    def add_dir(self, name: str) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, self.mtime
        self.tar.addfile(info)


def save(store: ImageStore, items: list[tuple[ImageRecord, list[str]]], out: BinaryIO,
         fmt: str = "docker-archive") -> None:
    """Write ``items`` (image, full tags to name it by) to ``out``."""
    w = _Writer(out)
    with w.tar:           # on a failed write the stream is dropped, never flushed later
        _write_images(w, store, items, FORMATS[fmt])


def _write_images(w: _Writer, store: ImageStore, items: list[tuple[ImageRecord, list[str]]],
                  fmt: str) -> None:
    w.add_bytes("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    w.add_dir("blobs/")
    w.add_dir("blobs/sha256/")
    index: list[dict] = []
    legacy: list[dict] = []
    repositories: dict[str, dict[str, str]] = {}
    for rec, names in items:
        config = store.get_blob(rec.id)
        w.add_bytes(f"blobs/sha256/{_hex(rec.id)}", config)
        layers = []
        for diff_id in rec.diff_ids:
            path = store.layers.tar_path(diff_id)
            w.add_file(f"blobs/sha256/{_hex(diff_id)}", path)
            layers.append({"mediaType": mf.OCI_LAYER, "digest": diff_id,
                           "size": path.stat().st_size})
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
            "config": {"mediaType": mf.OCI_CONFIG, "digest": rec.id, "size": len(config)},
            "layers": layers}, indent=2).encode()
        digest = mf.digest_of(manifest)
        w.add_bytes(f"blobs/sha256/{_hex(digest)}", manifest)
        desc = {"mediaType": mf.OCI_MANIFEST, "digest": digest, "size": len(manifest)}
        for name in names or [None]:
            entry = dict(desc)
            if name:
                ref = refs.parse(name)
                ann = {REF_NAME: ref.tag or refs.DEFAULT_TAG}
                if fmt == "docker-archive":
                    ann[FULL_NAME] = name
                entry["annotations"] = ann
                repositories.setdefault(ref.familiar_repository, {})[ref.tag or "latest"] = \
                    _hex(rec.diff_ids[-1]) if rec.diff_ids else ""
            index.append(entry)
        legacy.append({"Config": f"blobs/sha256/{_hex(rec.id)}",
                       "RepoTags": [refs.parse(n).familiar for n in names] or None,
                       "Layers": [f"blobs/sha256/{_hex(d)}" for d in rec.diff_ids]})
    w.add_bytes("index.json", json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX,
                                          "manifests": index}).encode())
    if fmt == "docker-archive":
        w.add_bytes("manifest.json", json.dumps(legacy).encode())
        w.add_bytes("repositories", json.dumps(repositories).encode())


# -- load --------------------------------------------------------------------------------

def _raw_config(files: _TarFiles, name: str) -> bytes:
    with files.open(name) as f:
        return f.read()


def load(store: ImageStore, path: Path) -> list[tuple[ImageRecord, list[str]]]:
    """Every image of a docker-archive or oci-archive tar file (uncompressed,
    gzip or zstd): stored, tagged as the archive names them."""
    out = []
    with open(path, "rb") as probe:
        head = probe.read(4)
    from unionfs.layers import detect_compression
    if detect_compression(head) != "none":
        return _load_compressed(store, path)
    with open(path, "rb") as f:
        files = _TarFiles(f, str(path))
        if files.exists("manifest.json"):
            items = json.loads(_raw_config(files, "manifest.json"))
            kinds = [("docker-archive", f"@{n}", item.get("Config"),
                      [t for t in item.get("RepoTags") or [] if isinstance(t, str)])
                     for n, item in enumerate(items if isinstance(items, list) else [])]
        elif files.exists("index.json"):
            index = json.loads(_raw_config(files, "index.json"))
            kinds = []
            for d in index.get("manifests") or []:
                ann = d.get("annotations") or {}
                tag = ann.get(REF_NAME)
                full = ann.get(FULL_NAME)
                name = full or (tag if tag and ("/" in tag or ":" in tag) else None)
                kinds.append(("oci-archive", tag, None, [name] if name else []))
        else:
            from .archive import SourceError
            raise SourceError(f"{path} is neither a docker archive nor an OCI archive")
        for transport, selector, config_name, names in kinds:
            full = [str(refs.parse(n)) for n in names]
            with store.writing():
                img = import_image(Source(transport, Path(path), selector), store.layers)
                cfg_name = config_name or f"blobs/sha256/{_hex(img.config_digest)}"
                raw = _raw_config(files, cfg_name)
                if mf.digest_of(raw) != img.config_digest:
                    raise ValueError(f"{path}: config {cfg_name} changed while loading")
                rec = store.add_image(raw, tags=full)
            out.append((rec, full))
    return out


def _load_compressed(store: ImageStore, path: Path) -> list[tuple[ImageRecord, list[str]]]:
    from unionfs.layers import decoder, detect_compression
    with open(path, "rb") as f, store.layers.scratch_file() as scratch:
        kind = detect_compression(f.read(4))
        f.seek(0)
        read = decoder(f, kind)
        while chunk := read(1 << 20):
            scratch.write(chunk)
        scratch.flush()
        return load(store, Path(f"/proc/self/fd/{scratch.fileno()}"))


__all__ = ["save", "load", "FORMATS"]
