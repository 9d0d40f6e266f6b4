"""Push: blobs the registry lacks, then the manifest.

A layer the registry already holds (HEAD) is skipped; one held by another
repository of the same registry is mounted from there (no bytes sent).
Otherwise the bytes are needed: the store keeps layers uncompressed, so a
layer is gzip-compressed again (isal, level 1, mtime 0: the same bytes every
time on this machine) into a scratch file and uploaded — in one PUT up to
``MONOLITHIC_MAX``, else in PATCH chunks. When every layer keeps its pulled
descriptor, the pulled manifest is pushed byte for byte (same digest);
otherwise a new manifest of the same family is written.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin

from isal import igzip

from unionfs.layers import LayerStoreError

from . import manifest as mf
from . import reference as refs
from .client import Client, NotFound, Options, RegistryError, origin
from .pull import Progress
from .store import ImageRecord, ImageStore

MONOLITHIC_MAX = 32 << 20
CHUNK = 16 << 20
GZIP_LEVEL = 1


@dataclass
class PushResult:
    reference: refs.Reference
    digest: str
    size: int


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def blob_exists(client: Client, repo: str, digest: str, scopes: tuple[str, ...]) -> bool:
    try:
        client.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=scopes).close()
        return True
    except NotFound:
        return False


def _try_mount(client: Client, repo: str, digest: str, source: str) -> bool:
    scopes = (f"repository:{repo}:pull,push", f"repository:{source}:pull")
    try:
        r = client.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes,
                           params={"mount": digest, "from": source}, ok=(201, 202))
    except RegistryError:
        return False
    r.close()
    if r.status_code == 202:                  # not mounted: cancel the upload it opened
        try:
            client.request("DELETE", "", url=urljoin(client.base(), r.headers["Location"]),
                           scopes=scopes, ok=(204, 200, 404)).close()
        except (RegistryError, KeyError):
            pass
    return r.status_code == 201


def _location(client: Client, r) -> str:
    """Where an upload goes on: the registry's ``Location`` header, which a
    broken or hostile registry may leave out (one line, not a KeyError)."""
    loc = r.headers.get("Location")
    if not loc:
        raise RegistryError(f"{client.host}: the registry gave no upload location")
    return urljoin(client.base(), loc)


def upload(client: Client, repo: str, digest: str, size: int, opener: Callable[[], BinaryIO],
           scopes: tuple[str, ...], progress: Callable[[int], None]) -> None:
    """POST for a session, then one PUT (small blobs) or PATCH chunks and a PUT."""
    r = client.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes, ok=(202,))
    r.close()
    location = _location(client, r)
    if size <= MONOLITHIC_MAX:
        r = client.request("PUT", "", url=location, params={"digest": digest}, body=opener,
                           headers={"Content-Type": "application/octet-stream",
                                    "Content-Length": str(size)}, scopes=scopes, ok=(201,))
        r.close()
        progress(size)
        return
    start = 0
    while start < size:
        end = min(start + CHUNK, size)

        def chunk(start=start, end=end):
            f = opener()
            f.seek(start)
            data = f.read(end - start)
            f.close()
            return _Bytes(data)
        r = client.request("PATCH", "", url=location, body=chunk, scopes=scopes, ok=(202,),
                           headers={"Content-Type": "application/octet-stream",
                                    "Content-Range": f"{start}-{end - 1}",
                                    "Content-Length": str(end - start)})
        r.close()
        location = urljoin(client.base(), r.headers.get("Location", location))
        start = end
        progress(start)
    client.request("PUT", "", url=location, params={"digest": digest}, body=b"",
                   scopes=scopes, ok=(201,)).close()


class _Bytes:
    """Bytes with ``close``, so a chunk can be a request body made per attempt."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int = -1) -> bytes:
        data, self.data = (self.data, b"") if n is None or n < 0 else \
            (self.data[:n], self.data[n:])
        return data

    def __len__(self) -> int:
        return len(self.data)

    def close(self) -> None:
        pass


def compress_layer(store: ImageStore, diff_id: str) -> tuple[BinaryIO, str, int]:
    """(scratch file, digest, size) of the layer as deterministic gzip."""
    scratch = store.layers.scratch_file()
    hasher = _HashingWriter(scratch)
    with open(store.layers.tar_path(diff_id), "rb") as src, \
            igzip.IGzipFile(fileobj=hasher, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz:
        while chunk := src.read(1 << 20):
            gz.write(chunk)
    scratch.flush()
    return scratch, "sha256:" + hasher.sha.hexdigest(), hasher.size


class _HashingWriter:
    def __init__(self, f: BinaryIO) -> None:
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def _reopen(fd: int) -> BinaryIO:
    f = os.fdopen(os.dup(fd), "rb")
    f.seek(0)
    return f


def _gzip_type(manifest_type: str | None) -> str:
    return mf.DOCKER_LAYER_GZIP if manifest_type == mf.DOCKER_MANIFEST else mf.OCI_LAYER_GZIP


def _sources(rec: ImageRecord, ref: refs.Reference) -> list[str]:
    """Repositories of the same registry the image came from (mount candidates)."""
    out = []
    for rd in rec.repo_digests:
        repo = rd.split("@", 1)[0]
        domain, _, path = repo.partition("/")
        if domain == ref.domain and path != ref.path:
            out.append(path)
    return out


def _stored_manifests(store: ImageStore, rec: ImageRecord) -> list[tuple[bytes, str, list]]:
    """(bytes, media type, layer descriptors) of every manifest the image was
    pulled or pushed with, the latest first."""
    out = []
    for digest in reversed(rec.manifests or ([rec.manifest] if rec.manifest else [])):
        try:
            data = store.get_blob(digest)
            obj = json.loads(data)
        except (OSError, ValueError, LayerStoreError):
            continue
        layers = obj.get("layers")
        if isinstance(layers, list) and len(layers) == len(rec.diff_ids):
            out.append((data, obj.get("mediaType") or rec.manifest_type or mf.OCI_MANIFEST,
                        layers))
    return out


def push(text: str, store: ImageStore, options: Options, source: str | None = None,
         progress: Progress | None = None) -> PushResult:
    """Push the stored image named ``source`` (default ``text``) as ``text``."""
    progress = progress or (lambda *a: None)
    ref = refs.parse(text)
    with store.writing():                     # no GC of its layers while they are read
        rec, _ = store.find(source or text)
        client, path = origin(ref, options)        # registries.conf: blocked, location
        remote = ref if path == ref.path else refs.Reference(ref.domain, path, ref.tag)
        return _push(remote, rec, store, client, progress)


def _push(ref: refs.Reference, rec: ImageRecord, store: ImageStore, client: Client,
          progress: Progress) -> PushResult:
    scopes = (f"repository:{ref.path}:pull,push",)
    known = _stored_manifests(store, rec)
    kind = known[0][1] if known else (rec.manifest_type or mf.OCI_MANIFEST)
    mounts = _sources(rec, ref)
    descs: list[dict] = []
    for i, diff_id in enumerate(rec.diff_ids):
        chosen = None
        candidates = list({d["digest"]: d for _, _, layers in known
                           for d in [layers[i]]}.values())
        for cand in candidates:
            if blob_exists(client, ref.path, cand["digest"], scopes):
                progress("exists", _short(cand["digest"]), 0, 0)
                chosen = cand
                break
        for cand in candidates if chosen is None else []:
            if any(_try_mount(client, ref.path, cand["digest"], m) for m in mounts):
                progress("mounted", _short(cand["digest"]), 0, 0)
                chosen = cand
                break
        if chosen is None:
            chosen = _send_layer(store, client, ref, diff_id, kind, scopes, progress,
                                 uncompressed=any(c["digest"] == diff_id for c in candidates))
        descs.append({k: v for k, v in chosen.items() if k != "diffID"})
    config = store.get_blob(rec.id)
    if not blob_exists(client, ref.path, rec.id, scopes):
        upload(client, ref.path, rec.id, len(config), lambda: _Bytes(config), scopes,
               lambda n: None)
    digests = [d["digest"] for d in descs]
    same = [data for data, _, layers in known if [d["digest"] for d in layers] == digests]
    if same:
        data = same[0]                        # byte for byte: the digest is kept
    else:
        config_type = mf.DOCKER_CONFIG if kind == mf.DOCKER_MANIFEST else mf.OCI_CONFIG
        body = {"schemaVersion": 2, "mediaType": kind,
                "config": {"mediaType": config_type, "digest": rec.id, "size": len(config)},
                "layers": descs}
        data = json.dumps(body, indent=3).encode()
    digest = mf.digest_of(data)
    r = client.request("PUT", f"/v2/{ref.path}/manifests/{ref.tag or refs.DEFAULT_TAG}",
                       body=data, headers={"Content-Type": kind}, scopes=scopes, ok=(201,))
    r.close()
    got = r.headers.get("Docker-Content-Digest")
    if got and got != digest:
        raise RegistryError(f"{client.host}: the registry stored the manifest as {got}, "
                            f"not {digest}")
    store.add_image(config, manifest=data, manifest_type=kind,
                    layers=[dict(d, diffID=i) for d, i in zip(descs, rec.diff_ids,
                                                                strict=True)],
                    repo_digest=f"{ref.repository}@{digest}")
    return PushResult(ref, digest, len(data))


def _send_layer(store: ImageStore, client: Client, ref: refs.Reference, diff_id: str,
                kind: str, scopes: tuple[str, ...], progress: Progress, *,
                uncompressed: bool) -> dict:
    """Upload a layer the registry lacks: as stored when its manifest names
    it uncompressed, else recompressed with gzip."""
    if uncompressed:
        path = store.layers.tar_path(diff_id)
        size, short = path.stat().st_size, _short(diff_id)
        progress("push", short, 0, size)
        upload(client, ref.path, diff_id, size, lambda: open(path, "rb"), scopes,
               lambda n: progress("push", short, n, size))
        progress("complete", short, size, size)
        return {"mediaType": mf.OCI_LAYER, "digest": diff_id, "size": size}
    scratch, digest, size = compress_layer(store, diff_id)
    with scratch:
        short = _short(digest)
        if blob_exists(client, ref.path, digest, scopes):
            progress("exists", short, 0, 0)
        else:
            progress("push", short, 0, size)
            fd = scratch.fileno()
            upload(client, ref.path, digest, size, lambda: _reopen(fd), scopes,
                   lambda n: progress("push", short, n, size))
            progress("complete", short, size, size)
    return {"mediaType": _gzip_type(kind), "digest": digest, "size": size}


__all__ = ["push", "PushResult", "upload", "blob_exists", "compress_layer"]
