"""The image store: what names what, on top of the layer store.

Layout under the store root (next to ``layers/`` of ``unionfs.layers``)::

    images/blobs/sha256/HEX      manifests and configs, content-addressed
    images/records/HEX.json      one per image (ID = config digest): its
                                 manifest, layer descriptors, repo digests
    images/repositories.json     tags: full name -> image ID
    images/gc.lock               shared by writers, exclusive for GC
    images/refs.lock             serializes updates of repositories.json

Every file is written to a temporary name, fsynced and renamed. Writers
(pull, load, import) hold ``gc.lock`` shared from their first layer until the
image's record is in place, and GC takes it exclusive: a collection never
sees a layer whose image is half-stored, and two writers never block each
other. GC frees exactly what no record and no container
(``ROOT/containers/*/config.json``: image layers and init layer) references:
layers, blobs and the blob notes of the layer store. Whoever stores layers
for something not recorded yet holds ``writing()`` until it is recorded.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from unionfs.layers import LayerStore, LayerStoreError, split_digest

from . import reference as refs
from .archive import Image, ImageError
from .manifest import digest_of


class NoSuchImage(ImageError):
    """No stored image answers to the name or ID."""


class ConflictError(ImageError):
    """An operation that would break something else (Docker's "conflict")."""


@dataclass
class ImageRecord:
    """What the store knows of one image."""

    id: str                                  # the config digest
    diff_ids: list[str]
    layers: list[dict] | None = None         # manifest layer descriptors, when pulled
    manifest: str | None = None              # digest of the stored manifest
    manifest_type: str | None = None
    repo_digests: list[str] = field(default_factory=list)
    stored: float = 0.0                      # when it entered the store
    manifests: list[str] = field(default_factory=list)   # every stored manifest of it

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]


def _write_atomic(path: Path, data: bytes) -> None:
    """Under a fresh name (O_EXCL), fsynced, renamed into place; 0600 (an
    image config may hold secrets in its ENV; the store root is 0700 too)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class ImageStore:
    """Images by name and ID. Safe for concurrent dockish processes."""

    def __init__(self, root: Path, layers: LayerStore | None = None,
                 keep: Callable[[], set[str]] | None = None) -> None:
        """``keep``: the layers something outside the image store still
        uses (containers, cached build steps), asked for by ``gc`` and
        ``discard_layers``; the store knows nothing of who that is."""
        self.root = Path(root)
        self.layers = layers or LayerStore(self.root)
        self.keep = keep
        self.dir = self.root / "images"
        self._blobs = self.dir / "blobs"
        self._records = self.dir / "records"
        self._repos = self.dir / "repositories.json"
        self._collecting = 0                 # depth of this object's exclusive hold

    def _ensure(self) -> None:
        for d in (self._blobs / "sha256", self._records):
            d.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _flock(self, name: str, mode: int) -> Iterator[None]:
        self._ensure()
        fd = os.open(self.dir / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def writing(self):
        """Held while layers are stored for an image not recorded yet."""
        return self._flock("gc.lock", fcntl.LOCK_SH)

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        """Exclusive: no writer stores layers or names its image, no
        container is being created. Re-entrant on this object, so a prune
        can decide what nothing uses and then collect under one hold."""
        if self._collecting:
            self._collecting += 1
            try:
                yield
            finally:
                self._collecting -= 1
            return
        with self._flock("gc.lock", fcntl.LOCK_EX):
            self._collecting = 1
            try:
                yield
            finally:
                self._collecting = 0

    def _refs_lock(self):
        return self._flock("refs.lock", fcntl.LOCK_EX)

    # -- blobs ----------------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        algorithm, hexpart = split_digest(digest)
        return self._blobs / algorithm / hexpart

    def put_blob(self, data: bytes) -> str:
        digest = digest_of(data)
        path = self._blob_path(digest)
        self._ensure()
        if not path.is_file():
            _write_atomic(path, data)
        return digest

    def get_blob(self, digest: str) -> bytes:
        try:
            data = self._blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise LayerStoreError(f"blob {digest} is missing from the store {self.root}") \
                from None
        if digest_of(data, digest.split(":", 1)[0]) != digest:
            raise LayerStoreError(f"blob {digest} in the store {self.root} is corrupt")
        return data

    def has_blob(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    # -- records --------------------------------------------------------------

    def _record_path(self, image_id: str) -> Path:
        algorithm, hexpart = split_digest(image_id)
        return self._records / f"{hexpart}.json"

    def record(self, image_id: str) -> ImageRecord:
        try:
            data = json.loads(self._record_path(image_id).read_bytes())
            return ImageRecord(**data)
        except FileNotFoundError:
            raise NoSuchImage(f"No such image: {image_id}") from None
        except (ValueError, TypeError) as e:
            raise LayerStoreError(f"the record of image {image_id} is corrupt ({e})") from None

    def records(self) -> list[ImageRecord]:
        out = []
        for path in sorted(self._records.glob("*.json")) if self._records.is_dir() else []:
            try:
                out.append(ImageRecord(**json.loads(path.read_bytes())))
            except (OSError, ValueError, TypeError):
                continue
        return out

    def config(self, rec: ImageRecord) -> dict:
        return json.loads(self.get_blob(rec.id))

    def add_image(self, config: bytes, *, manifest: bytes | None = None,
                  manifest_type: str | None = None, layers: list[dict] | None = None,
                  repo_digest: str | None = None, tags: list[str] | tuple[str, ...] = ()
                  ) -> ImageRecord:
        """Record an image whose layers are all in the layer store (call
        inside ``writing()``); an existing record gains the repo digest.
        ``tags`` (full names) name it under the same lock as the record is
        written: a prune that runs between a record and its tags would see
        an untagged image nothing uses and take it, and the tag would fail."""
        image_id = self.put_blob(config)
        cfg = json.loads(config)
        diff_ids = list(cfg.get("rootfs", {}).get("diff_ids", []))
        for d in diff_ids:
            if not self.layers.has(d):
                raise LayerStoreError(f"layer {d} of image {image_id} is not in the store")
        manifest_digest = self.put_blob(manifest) if manifest is not None else None
        with self._refs_lock():
            try:
                rec = self.record(image_id)
            except NoSuchImage:
                rec = ImageRecord(id=image_id, diff_ids=diff_ids, stored=time.time())
            if manifest_digest is not None:
                rec.manifest, rec.manifest_type, rec.layers = manifest_digest, manifest_type, \
                    layers
                if manifest_digest not in rec.manifests:
                    rec.manifests.append(manifest_digest)
            if repo_digest and repo_digest not in rec.repo_digests:
                rec.repo_digests = [d for d in rec.repo_digests
                                    if d.split("@")[0] != repo_digest.split("@")[0]]
                rec.repo_digests.append(repo_digest)
            _write_atomic(self._record_path(image_id), json.dumps(asdict(rec)).encode())
            if tags:
                names = self.tags()
                names.update((n, image_id) for n in tags)
                self._write_tags(names)
        return rec

    # -- tags -------------------------------------------------------------------

    def tags(self) -> dict[str, str]:
        """Full name (``docker.io/library/busybox:latest``) -> image ID."""
        try:
            data = json.loads(self._repos.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise LayerStoreError(f"{self._repos} is corrupt ({e})") from None
        return dict(data.get("tags", {}))

    def _write_tags(self, tags: dict[str, str]) -> None:
        _write_atomic(self._repos, json.dumps({"tags": tags}, indent=1,
                                              sort_keys=True).encode())

    def tag(self, name: str, image_id: str) -> None:
        with self._refs_lock():
            self.record(image_id)
            tags = self.tags()
            tags[name] = image_id
            self._write_tags(tags)

    def untag(self, name: str) -> str:
        with self._refs_lock():
            tags = self.tags()
            if name not in tags:
                raise NoSuchImage(f"No such image: {name}")
            image_id = tags.pop(name)
            self._write_tags(tags)
            return image_id

    def names_of(self, image_id: str, tags: dict[str, str] | None = None) -> list[str]:
        tags = self.tags() if tags is None else tags
        return sorted(n for n, i in tags.items() if i == image_id)

    # -- lookup -----------------------------------------------------------------

    def find(self, text: str) -> tuple[ImageRecord, str | None]:
        """(image, the full tag it was named by or None) for a name, a
        ``name@digest``, a full ID or an ID prefix (Docker's rules)."""
        text = text.strip()
        hexish = text.removeprefix("sha256:")
        is_hex = bool(hexish) and all(c in "0123456789abcdef" for c in hexish)
        if is_hex and (text.startswith("sha256:") or len(hexish) == 64):
            return self._by_prefix(hexish, text), None
        try:
            ref = refs.parse(text)
        except refs.ReferenceError as e:
            if is_hex:
                return self._by_prefix(hexish, text), None
            raise NoSuchImage(str(e)) from None
        if ref.digest:
            for rec in self.records():
                if f"{ref.repository}@{ref.digest}" in rec.repo_digests:
                    return rec, None
            raise NoSuchImage(f"No such image: {text}")
        tags = self.tags()
        name = str(ref)
        if name in tags:
            return self.record(tags[name]), name
        for full in _short_name_targets(text):      # what a pull of it stored
            if full in tags:
                return self.record(tags[full]), full
        if is_hex:
            return self._by_prefix(hexish, text), None
        raise NoSuchImage(f"No such image: {text}")

    def _by_prefix(self, hexish: str, text: str) -> ImageRecord:
        matches = [r for r in self.records() if r.id[7:].startswith(hexish)]
        if not matches:
            raise NoSuchImage(f"No such image: {text}")
        if len(matches) > 1:
            raise NoSuchImage(f"{text!r} is ambiguous: it names {len(matches)} images")
        return matches[0]

    def image(self, rec: ImageRecord, name: str | None = None) -> Image:
        return Image(diff_ids=list(rec.diff_ids), config=self.config(rec),
                     config_digest=rec.id, name=name)

    # -- removal and GC ------------------------------------------------------------

    def remove_record(self, image_id: str) -> None:
        with self._refs_lock():
            tags = {n: i for n, i in self.tags().items() if i != image_id}
            self._write_tags(tags)
            with contextlib.suppress(FileNotFoundError):
                self._record_path(image_id).unlink()

    def size(self, rec: ImageRecord) -> int:
        total = 0
        for d in rec.diff_ids:
            with contextlib.suppress(LayerStoreError, OSError):
                total += self.layers.tar_path(d).stat().st_size
        return total

    def layer_size(self, diff_id: str) -> int:
        try:
            return self.layers.tar_path(diff_id).stat().st_size
        except (LayerStoreError, OSError):
            return 0

    def _kept(self) -> set[str]:
        return set(self.keep()) if self.keep is not None else set()

    def gc(self, extra_roots: set[str] | None = None) -> int:
        """Delete every layer and blob no image references, nor ``keep``
        nor ``extra_roots`` name (under the exclusive lock); return the
        bytes freed."""
        freed = 0
        with self.collecting():
            recs = self.records()
            live_layers = {d for r in recs for d in r.diff_ids} | self._kept() | \
                set(extra_roots or ())
            live_blobs = {r.id for r in recs} | {m for r in recs for m in r.manifests}
            blob_dir = self._blobs / "sha256"
            for name in os.listdir(blob_dir) if blob_dir.is_dir() else []:
                if name.startswith("."):
                    continue
                if f"sha256:{name}" not in live_blobs:
                    path = blob_dir / name
                    with contextlib.suppress(FileNotFoundError):
                        freed += path.stat().st_size
                        path.unlink()
            layer_dir = self.layers.root / "layers" / "sha256"
            for name in os.listdir(layer_dir) if layer_dir.is_dir() else []:
                if f"sha256:{name}" in live_layers:
                    continue
                freed += self._drop_layer(layer_dir / name)
            notes = self.layers.root / "layers" / "blobs"
            for algo in os.listdir(notes) if notes.is_dir() else []:
                for name in os.listdir(notes / algo):
                    path = notes / algo / name
                    try:
                        target = path.read_text("ascii").strip()
                    except OSError:
                        continue
                    if target not in live_layers:
                        with contextlib.suppress(FileNotFoundError):
                            path.unlink()
        return freed

    def discard_layers(self, diff_ids: list[str]) -> None:
        """Undo a failed pull: drop the layers it stored that no image uses."""
        with self.collecting():
            live = {d for r in self.records() for d in r.diff_ids} | self._kept()
            gone = set()
            for d in diff_ids:
                if d not in live and self.layers.has(d):
                    self._drop_layer(self.layers.tar_path(d).parent)
                    gone.add(d)
            notes = self.layers.root / "layers" / "blobs"
            for algo in os.listdir(notes) if gone and notes.is_dir() else []:
                for name in os.listdir(notes / algo):
                    with contextlib.suppress(OSError):
                        if (notes / algo / name).read_text("ascii").strip() in gone:
                            (notes / algo / name).unlink()

    def _drop_layer(self, path: Path) -> int:
        """Rename out of sight first, so a reader sees a whole layer or none."""
        size = 0
        with contextlib.suppress(OSError):
            size = (path / "layer.tar").stat().st_size
        tmp = self.layers.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        gone = tmp / f"gc-{path.name}-{os.urandom(4).hex()}"
        try:
            os.rename(path, gone)
        except FileNotFoundError:
            return 0
        shutil.rmtree(gone, ignore_errors=True)
        return size


def _short_name_targets(text: str) -> list[str]:
    """The full names registries.conf makes of a short name (aliases,
    unqualified-search-registries), so ``run NAME`` finds what ``pull NAME``
    stored; none when it configures nothing (or cannot be read: the pull
    reports that)."""
    from . import registries as regconf
    try:
        names = regconf.short_name_candidates(text, regconf.load()) or []
        return [str(refs.parse(n)) for n in names]
    except (regconf.ConfError, refs.ReferenceError):
        return []


def default_store() -> ImageStore:
    from unionfs.layers import default_root
    return ImageStore(default_root())


def lookup(text: str, layer_store: LayerStore) -> Image:
    """The stored image ``text`` names (used by ``registry.resolve``)."""
    store = ImageStore(layer_store.root, layer_store)
    rec, name = store.find(text)
    return store.image(rec, name or text)


__all__ = ["ImageStore", "ImageRecord", "NoSuchImage", "ConflictError", "lookup",
           "default_store"]
