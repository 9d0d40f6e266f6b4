"""Pull: manifest (through an index to this platform's), config, layers.

Every byte is checked while it streams: the manifest and config against
their digests before they are parsed, each layer against its blob digest and
its config diff_id inside ``LayerStore.import_blob``, which stores nothing
that fails. Layers are downloaded a few at a time, straight into the layer
store (uncompressed + indexed), never to an intermediate file.
"""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

from unionfs.layers import CompressionError, DigestError, LayerStoreError
from unionfs.tarindex import LayerError

from . import manifest as mf
from . import reference as refs
from . import registries as regconf
from .archive import MAX_JSON, CorruptImageError, FormatError
from .client import Client, NotFound, Options, RegistryError, endpoints, json_object, origin
from .store import ImageRecord, ImageStore

PARALLEL_LAYERS = 3
# progress(event, layer short id, bytes done, bytes total)
Progress = Callable[[str, str, int, int], None]


@dataclass
class PullResult:
    reference: refs.Reference
    record: ImageRecord
    digest: str                          # the manifest (or index) digest pulled by
    downloaded: int                      # layers fetched (0: the image was up to date)
    client: Client


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def fetch_manifest(client: Client, repo: str, reference: str,
                   scopes: tuple[str, ...]) -> tuple[bytes, str, dict, str]:
    """(bytes, media type, object, digest) of a manifest, size-capped and verified."""
    what = f"manifest {repo}:{reference}" if not reference.startswith("sha") else \
        f"manifest {repo}@{reference}"
    try:
        r = client.request("GET", f"/v2/{repo}/manifests/{reference}", scopes=scopes,
                           headers={"Accept": mf.ACCEPT}, stream=True)
    except NotFound:
        raise NotFound(f"{client.host}/{repo}:{reference} not found: manifest unknown") \
            from None
    try:
        length = r.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > mf.MAX_MANIFEST:
            raise FormatError(f"{what} is larger than {mf.MAX_MANIFEST >> 20} MiB")
        data = r.raw.read(mf.MAX_MANIFEST + 1, decode_content=True)
    finally:
        r.close()
    if len(data) > mf.MAX_MANIFEST:
        raise FormatError(f"{what} is larger than {mf.MAX_MANIFEST >> 20} MiB")
    if reference.startswith(("sha256:", "sha512:")):
        mf.verify(data, reference, what)
        digest = reference
    else:
        digest = mf.digest_of(data)
        header = r.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != digest:
            raise CorruptImageError(f"{what} does not match its digest: the registry says "
                                    f"{header}, the content is {digest}")
    kind, obj = mf.decode(data, r.headers.get("Content-Type"), what)
    return data, kind, obj, digest


def fetch_blob(client: Client, repo: str, desc: dict, scopes: tuple[str, ...],
               what: str, limit: int = MAX_JSON) -> bytes:
    size = desc.get("size")
    if isinstance(size, int) and size > limit:
        raise FormatError(f"{what} is larger than {limit >> 20} MiB")
    reader = client.open_blob(repo, desc["digest"], size, scopes)
    try:
        data = reader.read(limit + 1)
        while len(data) <= limit and (more := reader.read(limit + 1 - len(data))):
            data += more
    finally:
        reader.close()
    if len(data) > limit:
        raise FormatError(f"{what} is larger than {limit >> 20} MiB")
    if size is not None and len(data) != size:
        raise CorruptImageError(f"{what} has {len(data)} bytes, its descriptor says {size}")
    mf.verify(data, desc["digest"], what)
    return data


class _Counting:
    """A blob reader that reports progress and stops when another layer failed."""

    def __init__(self, raw, report: Callable[[int], None], abort: threading.Event) -> None:
        self._raw, self._report, self._abort, self.done = raw, report, abort, 0

    def read(self, n: int = -1) -> bytes:
        if self._abort.is_set():
            raise RegistryError("cancelled: another layer failed")
        data = self._raw.read(n if n and n > 0 else 1 << 20)
        self.done += len(data)
        self._report(self.done)
        return data


def _download_layer(client: Client, repo: str, desc: dict, diff_id: str, store: ImageStore,
                    scopes: tuple[str, ...], progress: Progress, abort: threading.Event,
                    n: int, i: int) -> None:
    short = _short(desc["digest"])
    size = desc.get("size") or 0
    progress("download", short, 0, size)
    raw = client.open_blob(repo, desc["digest"], desc.get("size"), scopes)
    try:
        reader = _Counting(raw, lambda done: progress("download", short, done, size), abort)
        store.layers.import_blob(reader, expected_digest=desc["digest"],
                                 expected_diff_id=diff_id)
    except (DigestError, CompressionError, LayerError, EOFError) as e:
        raise CorruptImageError(f"layer {i + 1} of {n} ({desc['digest']}): {e}") from None
    finally:
        raw.close()
    progress("complete", short, size, size)


def _config_diff_ids(config: bytes, n_layers: int, what: str) -> list[str]:
    try:
        cfg = json.loads(config)
        ids = cfg["rootfs"]["diff_ids"]
        assert cfg["rootfs"].get("type") == "layers"
        assert isinstance(ids, list) and all(isinstance(d, str) for d in ids)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise FormatError(f"{what} has no valid rootfs.diff_ids") from None
    if len(ids) != n_layers:
        raise FormatError(f"{what} lists {len(ids)} diff_ids for {n_layers} layers")
    return ids


def _first_manifest(ref: refs.Reference, options: Options) -> tuple[Client, str, tuple]:
    """(client, repository path there, manifest) from the first endpoint
    that answers: mirrors first, then the location (``client.endpoints``)."""
    places = endpoints(ref, options)
    failed: list[str] = []
    for n, (client, path) in enumerate(places):
        try:
            return client, path, fetch_manifest(client, path, ref.reference,
                                                (f"repository:{path}:pull",))
        except RegistryError as e:
            if n < len(places) - 1:
                failed.append(str(e))
            elif failed:          # say why the mirrors did not serve it either
                raise type(e)(f"{e} (mirrors: {'; '.join(failed)})"[:2000]) from None
            else:
                raise
    raise AssertionError("unreachable")


def _resolve(text: str, options: Options) -> tuple[refs.Reference, Client, str, tuple]:
    """The first of the names ``text`` may mean (registries.conf aliases and
    unqualified-search-registries for a short name, else Docker's docker.io)
    whose manifest a registry serves."""
    try:
        names = regconf.short_name_candidates(text, options.registries,
                                              options.choose_short_name) or [text]
    except regconf.ConfError as e:
        raise RegistryError(str(e)) from None
    tried: list[str] = []
    for n, name in enumerate(names):
        ref = refs.parse(name)
        try:
            return (ref, *_first_manifest(ref, options))
        except RegistryError as e:
            if len(names) == 1:
                raise
            tried.append(f"{ref.domain}: {e}")
            if n == len(names) - 1:
                raise RegistryError(f"{text}: no unqualified-search registry has it "
                                    f"({'; '.join(tried)})"[:2000]) from None
    raise AssertionError("unreachable")


def pull(text: str, store: ImageStore, options: Options, platform: str | None = None,
         progress: Progress | None = None) -> PullResult:
    """Pull ``text`` into the store and tag it; layers already stored are not fetched."""
    progress = progress or (lambda *a: None)
    want = mf.parse_platform(platform)
    ref, client, path, (data, kind, obj, top_digest) = _resolve(text, options)
    scopes = (f"repository:{path}:pull",)
    for _ in range(4):
        if kind in mf.MANIFEST_TYPES:
            break
        desc = mf.choose(obj, want, f"{ref.familiar}")
        data, kind, obj, _ = fetch_manifest(client, path, desc["digest"], scopes)
    else:
        raise FormatError(f"{ref.familiar}: indexes nested too deeply")
    config_desc, layers = obj["config"], obj["layers"]
    config = fetch_blob(client, path, config_desc, scopes, f"the config of {ref.familiar}")
    diff_ids = _config_diff_ids(config, len(layers), f"the config of {ref.familiar}")
    progress("start", ref.tag or ref.digest or "", 0, len(layers))
    before = {d for d in diff_ids if store.layers.has(d)}
    try:
        return _store_image(store, client, ref, path, scopes, layers, diff_ids, config, data,
                            kind, top_digest, progress)
    except BaseException:
        store.discard_layers([d for d in diff_ids if d not in before])
        raise


def _store_image(store: ImageStore, client: Client, ref: refs.Reference, path: str,
                 scopes: tuple[str, ...], layers: list[dict], diff_ids: list[str],
                 config: bytes, data: bytes, kind: str, top_digest: str,
                 progress: Progress) -> PullResult:
    downloaded = 0
    with store.writing():
        todo = []
        for i, (desc, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
            if store.layers.has(diff_id):
                progress("exists", _short(desc["digest"]), 0, 0)
            else:
                todo.append((i, desc, diff_id))
        abort = threading.Event()
        if todo:
            with ThreadPoolExecutor(max_workers=min(PARALLEL_LAYERS, len(todo))) as pool:
                futures = [pool.submit(_download_layer, client, path, desc, diff_id,
                                       store, scopes, progress, abort, len(layers), i)
                           for i, desc, diff_id in todo]
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                failed = [f for f in done if f.exception() is not None]
                if failed:
                    abort.set()
                    for f in futures:
                        f.cancel()
                    wait(futures)
                    raise failed[0].exception()
            downloaded = len(todo)
        described = [dict(d, diffID=i) for d, i in zip(layers, diff_ids, strict=True)]
        try:
            rec = store.add_image(config, manifest=data, manifest_type=kind, layers=described,
                                  repo_digest=f"{ref.repository}@{top_digest}",
                                  tags=[str(ref)] if ref.tag else [])
        except LayerStoreError as e:
            raise CorruptImageError(str(e)) from None
    return PullResult(ref, rec, top_digest, downloaded, client)


def list_tags(ref: refs.Reference, options: Options) -> list[str]:
    """Every tag of a repository (``GET /v2/NAME/tags/list``, following ``Link``)."""
    client, path = origin(ref, options)
    scopes = (f"repository:{path}:pull",)
    tags: list[str] = []
    url: str | None = f"/v2/{path}/tags/list?n=1000"
    for _ in range(1000):
        if url is None:
            break
        r = client.request("GET", url, scopes=scopes)
        try:
            got = json_object(r, f"{ref.repository}: the tag list is invalid").get("tags")
        finally:
            r.close()
        if isinstance(got, list):
            tags.extend(t for t in got if isinstance(t, str))
        link = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', r.headers.get("Link", ""))
        url = link[1] if link else None
    return tags


__all__ = ["pull", "PullResult", "list_tags", "fetch_manifest", "fetch_blob", "PARALLEL_LAYERS"]
