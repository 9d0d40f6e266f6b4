"""Images from local archives into the layer store.

Sources (the names skopeo uses):

- ``oci:PATH[:TAG]``: an OCI image layout directory (``oci-layout``,
  ``index.json``, ``blobs/``); TAG is the ``org.opencontainers.image.ref.name``
  annotation.
- ``oci-archive:PATH[:TAG]``: the same layout in a tar file.
- ``docker-archive:PATH[:REPO:TAG]``: a ``docker save`` tarball, legacy
  (``manifest.json``, ``<id>/layer.tar``, possibly symlinks) or Docker >= 25's
  OCI layout in a tar (``manifest.json`` preferred, ``index.json`` the
  fallback). ``@N`` instead of REPO:TAG picks the N-th image. A gzip or zstd
  compressed tarball is decompressed to a scratch file first.

Every manifest, index and config blob is checked against its descriptor
digest, every layer blob against its descriptor digest (when the archive
gives one) and against the config's ``rootfs.diff_ids``. A layer already in
the store (same diff_id) is not read again, which makes re-importing an image
cost only its JSON.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from unionfs.layers import (
    DECODE_ERRORS,
    CompressionError,
    DigestError,
    LayerStore,
    LayerStoreError,
    decoder,
    detect_compression,
    split_digest,
)
from unionfs.safefile import open_regular
from unionfs.tarindex import LayerError, normalize_path

from .errors import DistributionError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json",
                "application/vnd.docker.container.image.v1+json")
LAYER_TYPES = frozenset({
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
})
REF_NAME = "org.opencontainers.image.ref.name"
FULL_NAME = "io.containerd.image.name"
MAX_JSON = 64 << 20
TRANSPORTS = ("oci", "oci-archive", "docker-archive")

# uname -m -> OCI (architecture, variant)
_ARCHES = {
    "x86_64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
    "i386": ("386", None), "i686": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
    "mips64": ("mips64", None), "loongarch64": ("loong64", None),
}


class ImageError(DistributionError):
    """An image that cannot be read from its source; the message says why."""


class SourceError(ImageError):
    """The source text or the file or directory it names is not usable."""


class TagError(ImageError):
    """No image, or more than one, answers to the requested name."""


class PlatformError(ImageError):
    """A multi-platform image without an image for this machine."""


class FormatError(ImageError):
    """Malformed or unsupported manifests, indexes or configs."""


class CorruptImageError(ImageError):
    """Missing or damaged blobs: digests that do not match, bad layer tars."""


@dataclass(frozen=True)
class Source:
    """A parsed image source: ``transport:path[:reference]``."""

    transport: str
    path: Path
    reference: str | None = None

    def __str__(self) -> str:
        ref = f":{self.reference}" if self.reference else ""
        return f"{self.transport}:{self.path}{ref}"


@dataclass
class Image:
    """An imported image: its layers (bottom to top) are in the store."""

    diff_ids: list[str]
    config: dict
    config_digest: str
    name: str | None


# -- pure logic ----------------------------------------------------------------------

def parse_source(text: str) -> Source:
    """Split ``oci:PATH[:TAG]`` / ``docker-archive:PATH[:REPO:TAG]`` at the first
    colons (as skopeo does: PATH cannot hold a colon)."""
    transport, sep, rest = text.partition(":")
    if not sep or transport not in TRANSPORTS:
        raise SourceError(f"unsupported image source {text!r}; use oci:PATH[:TAG], "
                          f"oci-archive:PATH[:TAG] or docker-archive:PATH[:REPO:TAG]")
    path, _, reference = rest.partition(":")
    if not path:
        raise SourceError(f"{text!r} names no path")
    return Source(transport, Path(path).expanduser(), reference or None)


def host_platform() -> tuple[str, str, str | None]:
    """This machine as an OCI (os, architecture, variant)."""
    machine = platform.machine().lower()
    arch, variant = _ARCHES.get(machine, (machine, None))
    return "linux", arch, variant


def _platform_text(p: dict) -> str:
    parts = [p.get("os", "?"), p.get("architecture", "?")]
    if p.get("variant"):
        parts.append(p["variant"])
    return "/".join(str(x) for x in parts)


def _variant_rank(arch: str, got: str | None, want: str | None) -> int | None:
    """How well an image variant fits this machine: 1 exactly, 2 unstated,
    3 an older ARM revision (it still runs), None not at all (a newer or
    unknown revision might use instructions this CPU lacks)."""
    baseline = {"arm64": "v8", "amd64": "v1"}.get(arch)
    if (got or baseline) == (want or baseline):
        return 1
    if got is None:
        return 2
    if arch == "arm" and want and got[1:].isdigit() and want[1:].isdigit() \
            and int(got[1:]) < int(want[1:]):
        return 3
    return None


def pick_platform(manifests: list[dict], want: tuple[str, str, str | None]) -> dict | None:
    """The entry of an index for platform ``want`` (best variant first); never
    another OS or architecture, nor an attestation (unknown/unknown). Entries
    without a platform are the last resort."""
    os_name, arch, variant = want
    best, best_rank = None, 99
    for desc in manifests:
        plat = desc.get("platform")
        if plat is None:
            rank: int | None = 4
        elif plat.get("os") == os_name and plat.get("architecture") == arch:
            rank = _variant_rank(arch, plat.get("variant"), variant)
        else:
            continue
        if rank is not None and rank < best_rank:
            best, best_rank = desc, rank
    return best


def normalize_reference(ref: str) -> str:
    """Docker's full form of an image name: ``busybox`` ->
    ``docker.io/library/busybox:latest``."""
    name, digest = ref.split("@", 1) if "@" in ref else (ref, None)
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, remainder
    else:
        domain, path = "docker.io", name
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = "library/" + path
    full = f"{domain}/{path}"
    if digest:
        return f"{full}:{tag}@{digest}" if tag else f"{full}@{digest}"
    return f"{full}:{tag or 'latest'}"


def pick_tagged(manifests: list[dict], tag: str | None, label: str) -> list[dict]:
    """The index.json entries named by ``tag`` (all of them, when several
    platforms share one tag), or the only entry when no tag is given."""
    tags = [(d.get("annotations") or {}).get(REF_NAME) for d in manifests]
    known = ", ".join(sorted({t for t in tags if t})) or "(none)"
    if tag is None:
        if len(manifests) == 1:
            return manifests
        if not manifests:
            raise TagError(f"{label} holds no image")
        raise TagError(f"{label} holds {len(manifests)} images; name one with :TAG; "
                       f"tags: {known}")
    chosen = [d for d, t in zip(manifests, tags, strict=True) if t == tag]
    if not chosen:
        raise TagError(f"no such tag {tag!r} in {label}; tags: {known}")
    return chosen


def _media_type(desc: dict, blob: dict | None = None) -> str:
    kind = desc.get("mediaType") or (blob or {}).get("mediaType")
    if kind:
        return kind
    if blob is not None and "manifests" in blob:
        return OCI_INDEX
    return OCI_MANIFEST


def _json(data: bytes, what: str) -> object:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{what} is not valid JSON ({e})") from None


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise FormatError(what)


def _descriptor(desc: object, what: str) -> dict:
    _check(isinstance(desc, dict) and isinstance(desc.get("digest"), str)
           and isinstance(desc.get("size", 0), int)
           and isinstance(desc.get("mediaType", ""), str)
           and all(desc.get(k) is None or isinstance(desc[k], dict)
                   for k in ("annotations", "platform"))
           and all(isinstance(v, str) for v in (desc.get("annotations") or {}).values())
           and all(isinstance((desc.get("platform") or {}).get(k, ""), str)
                   for k in ("os", "architecture", "variant")),
           f"{what} is not a valid descriptor")
    try:
        split_digest(desc["digest"])
    except LayerStoreError:
        raise FormatError(f"{what} has an invalid digest {desc['digest']!r}") from None
    return desc


def _diff_ids(config: object, n_layers: int, what: str) -> list[str]:
    _check(isinstance(config, dict), f"{what} is not a JSON object")
    rootfs = config.get("rootfs")
    _check(isinstance(rootfs, dict) and rootfs.get("type") == "layers"
           and isinstance(rootfs.get("diff_ids"), list),
           f"{what} has no rootfs.diff_ids of type 'layers'")
    ids = rootfs["diff_ids"]
    for d in ids:
        _check(isinstance(d, str) and d.startswith("sha256:") and len(d) == 71
               and all(c in "0123456789abcdef" for c in d[7:]),
               f"{what} lists an invalid diff_id {d!r}")
    _check(len(ids) == n_layers,
           f"{what} lists {len(ids)} diff_ids for an image of {n_layers} layers")
    return ids


# -- the files of an archive -----------------------------------------------------------

class _Files(Protocol):
    label: str

    def open(self, name: str) -> BinaryIO: ...

    def size(self, name: str) -> int: ...

    def exists(self, name: str) -> bool: ...


def _clean(name: str, label: str) -> str:
    try:
        return normalize_path(os.fsencode(name), "archive path").decode()
    except LayerError:
        raise FormatError(f"{label}: the path {name!r} leaves the archive") from None


class _DirFiles:
    """Files of an OCI layout directory."""

    def __init__(self, root: Path, label: str) -> None:
        self.root, self.label = root, label

    def _path(self, name: str) -> Path:
        return self.root / _clean(name, self.label)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except OSError:
            raise CorruptImageError(f"{self.label}: {name} is missing") from None

    def open(self, name: str) -> BinaryIO:
        # a layout comes from someone else: a FIFO planted as a blob must
        # give an error, not hang the reader
        try:
            return open_regular(self._path(name))
        except (FileNotFoundError, IsADirectoryError):
            raise CorruptImageError(f"{self.label}: {name} is missing") from None
        except OSError as e:
            raise CorruptImageError(f"{self.label}: {name}: {e.strerror}") from None


class _Slice(io.RawIOBase):
    """``size`` bytes of fd at ``offset``, read with pread (no shared position)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd, self._pos, self._end = fd, offset, offset + size

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        want = min(len(buf), self._end - self._pos)
        if want <= 0:
            return 0
        data = os.pread(self._fd, want, self._pos)
        if not data:
            raise EOFError("the archive ends early")
        buf[:len(data)] = data
        self._pos += len(data)
        return len(data)


class _TarFiles:
    """Members of an uncompressed tar archive, symlinks and hardlinks followed
    (``docker save`` links each repeated layer.tar to the first one)."""

    def __init__(self, fileobj: BinaryIO, label: str) -> None:
        self.label = label
        self._fd = fileobj.fileno()
        self._end = os.fstat(self._fd).st_size
        try:
            with tarfile.open(fileobj=fileobj, mode="r:") as tar:
                members = tar.getmembers()
        except tarfile.TarError as e:
            raise SourceError(f"{label} is not a tar archive ({e})") from None
        self._members: dict[str, tarfile.TarInfo] = {}
        for m in members:
            try:
                self._members[normalize_path(os.fsencode(m.name)).decode()] = m
            except (LayerError, UnicodeDecodeError):
                continue                               # unreachable by any manifest path

    def _member(self, name: str) -> tarfile.TarInfo:
        path = _clean(name, self.label)
        for _ in range(40):
            m = self._members.get(path)
            if m is None:
                raise CorruptImageError(f"{self.label}: {name} is missing from the archive")
            if m.issym():
                base = "" if m.linkname.startswith("/") else path.rpartition("/")[0]
                path = _clean(f"{base}/{m.linkname}" if base else m.linkname, self.label)
            elif m.islnk():
                path = _clean(m.linkname, self.label)
            elif m.isfile():
                return m
            else:
                raise CorruptImageError(f"{self.label}: {name} is not a file")
        raise CorruptImageError(f"{self.label}: {name} is a symlink loop")

    def exists(self, name: str) -> bool:
        try:
            self._member(name)
        except ImageError:
            return False
        return True

    def size(self, name: str) -> int:
        return self._member(name).size

    def open(self, name: str) -> BinaryIO:
        m = self._member(name)
        if m.offset_data + m.size > self._end:
            raise CorruptImageError(f"{self.label}: {name} is cut short (truncated archive)")
        return _Slice(self._fd, m.offset_data, m.size)


def _read(files: _Files, name: str, what: str, digest: str | None = None) -> bytes:
    """A small (JSON) file, checked against its digest when one is given."""
    if files.size(name) > MAX_JSON:
        raise FormatError(f"{files.label}: {what} is larger than {MAX_JSON >> 20} MiB")
    with files.open(name) as f:
        try:
            data = f.read()
        except EOFError as e:
            raise CorruptImageError(f"{files.label}: {what}: {e}") from None
    if digest is not None:
        algorithm, want = split_digest(digest)
        got = hashlib.new(algorithm, data).hexdigest()
        if got != want:
            raise CorruptImageError(f"{files.label}: {what} does not match its digest "
                                    f"{digest} (got {algorithm}:{got})")
    return data


def _blob_name(digest: str) -> str:
    algorithm, hexpart = split_digest(digest)
    return f"blobs/{algorithm}/{hexpart}"


def _read_blob(files: _Files, desc: dict, what: str) -> bytes:
    name = _blob_name(desc["digest"])
    if "size" in desc and files.exists(name) and files.size(name) != desc["size"]:
        raise CorruptImageError(f"{files.label}: {what} {desc['digest']} has "
                                f"{files.size(name)} bytes, its descriptor says {desc['size']}")
    return _read(files, name, f"{what} {desc['digest']}", desc["digest"])


# -- OCI layouts --------------------------------------------------------------------

def _choose_platform(entries: list[dict], label: str) -> dict:
    want = host_platform()
    desc = pick_platform(entries, want)
    if desc is None:
        have = ", ".join(sorted({_platform_text(d["platform"]) for d in entries
                                 if d.get("platform") and d["platform"].get("os") != "unknown"}
                                )) or "none"
        wanted = _platform_text(dict(zip(("os", "architecture", "variant"), want, strict=True)))
        raise PlatformError(f"{label} has no image for {wanted}; it has {have}")
    return desc


def _layout_manifest(files: _Files, manifests: list[dict], label: str) -> dict:
    """Follow (possibly nested) indexes to this platform's manifest."""
    desc = manifests[0] if len(manifests) == 1 else _choose_platform(manifests, label)
    for _ in range(8):
        desc = _descriptor(desc, f"{label}: a manifest entry")
        blob = _json(_read_blob(files, desc, "manifest"), f"{label}: manifest {desc['digest']}")
        _check(isinstance(blob, dict), f"{label}: manifest {desc['digest']} is not an object")
        kind = _media_type(desc, blob)
        if kind in MANIFEST_TYPES:
            return blob
        if kind in DOCKER_SCHEMA1:
            raise FormatError(f"{label}: Docker schema 1 manifests are not supported")
        _check(kind in INDEX_TYPES and isinstance(blob.get("manifests"), list),
               f"{label}: unsupported manifest type {kind!r}")
        desc = _choose_platform([_descriptor(d, f"{label}: an index entry")
                                 for d in blob["manifests"]], label)
    raise FormatError(f"{label}: indexes nested too deeply")


def _layout_index(files: _Files, label: str) -> list[dict]:
    index = _json(_read(files, "index.json", "index.json"), f"{label}: index.json")
    _check(isinstance(index, dict) and isinstance(index.get("manifests"), list),
           f"{label}: index.json has no manifests list")
    return [_descriptor(d, f"{label}: an index.json entry") for d in index["manifests"]]


def _from_layout(files: _Files, tag: str | None, label: str, store: LayerStore) -> Image:
    chosen = pick_tagged(_layout_index(files, label), tag, label)
    return _from_chosen(files, chosen, label, store, tag)


def _from_chosen(files: _Files, chosen: list[dict], label: str, store: LayerStore,
                 name: str | None) -> Image:
    manifest = _layout_manifest(files, chosen, label)
    ann = (chosen[0].get("annotations") or {}) if len(chosen) == 1 else {}
    return _from_manifest(files, manifest, label, store,
                          ann.get(FULL_NAME) or ann.get(REF_NAME) or name)


def _from_manifest(files: _Files, manifest: dict, label: str, store: LayerStore,
                   name: str | None) -> Image:
    config_desc = _descriptor(manifest.get("config"), f"{label}: the manifest's config")
    kind = config_desc.get("mediaType", CONFIG_TYPES[0])
    if kind not in CONFIG_TYPES:
        raise FormatError(f"{label} is not a container image (config type {kind})")
    layers = manifest.get("layers")
    _check(isinstance(layers, list), f"{label}: the manifest has no layers list")
    layers = [_descriptor(d, f"{label}: layer {i + 1}") for i, d in enumerate(layers)]
    for i, d in enumerate(layers):
        if d.get("mediaType") not in LAYER_TYPES:
            raise FormatError(f"{label}: layer {i + 1} has unsupported media type "
                              f"{d.get('mediaType')!r}")
    raw = _read_blob(files, config_desc, "config")
    config = _json(raw, f"{label}: config")
    diff_ids = _diff_ids(config, len(layers), f"{label}: the config")
    for i, (desc, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
        blob = _blob_name(desc["digest"])
        if "size" in desc and not store.has(diff_id) and files.size(blob) != desc["size"]:
            raise CorruptImageError(f"{label}: layer {i + 1} ({desc['digest']}) has "
                                    f"{files.size(blob)} bytes, its descriptor says "
                                    f"{desc['size']}")
        _import_layer(files, blob, store, label, i, len(layers), desc["digest"], diff_id)
    return Image(diff_ids=list(diff_ids), config=config, config_digest=config_desc["digest"],
                 name=name)


def _import_layer(files: _Files, name: str, store: LayerStore, label: str, i: int, n: int,
                  digest: str | None, diff_id: str) -> None:
    if store.has(diff_id):
        return
    with files.open(name) as f:
        try:
            store.import_blob(f, expected_digest=digest, expected_diff_id=diff_id)
        except (DigestError, CompressionError, LayerError, EOFError) as e:
            raise CorruptImageError(f"{label}: layer {i + 1} of {n} ({digest or name}): "
                                    f"{e}") from None


# -- docker save tarballs --------------------------------------------------------------

def _pick_docker_item(items: list, ref: str | None, label: str) -> dict:
    _check(isinstance(items, list) and all(isinstance(x, dict) for x in items),
           f"{label}: manifest.json is not a list of images")
    tags = [t for x in items for t in (x.get("RepoTags") or []) if isinstance(t, str)]
    known = ", ".join(tags) or "(none)"
    if ref is None:
        if len(items) == 1:
            return items[0]
        raise TagError(f"{label} holds {len(items)} images; name one with :REPO:TAG or :@N; "
                       f"tags: {known}")
    if re.fullmatch(r"@\d+", ref):
        n = int(ref[1:])
        if n >= len(items):
            raise TagError(f"{label} holds {len(items)} images; @{n} is not one of them")
        return items[n]
    want = normalize_reference(ref)
    for item in items:
        if any(normalize_reference(t) == want for t in item.get("RepoTags") or []
               if isinstance(t, str)):
            return item
    raise TagError(f"no such image {ref!r} in {label}; tags: {known}")


def _from_docker_manifest(files: _Files, ref: str | None, label: str,
                          store: LayerStore) -> Image:
    items = _json(_read(files, "manifest.json", "manifest.json"), f"{label}: manifest.json")
    item = _pick_docker_item(items, ref, label)
    config_name, layers = item.get("Config"), item.get("Layers")
    _check(isinstance(config_name, str) and isinstance(layers, list)
           and all(isinstance(x, str) for x in layers),
           f"{label}: manifest.json lacks Config or Layers")
    raw = _read(files, config_name, f"config {config_name}", _named_digest(config_name))
    config_digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    config = _json(raw, f"{label}: config {config_name}")
    diff_ids = _diff_ids(config, len(layers), f"{label}: config {config_name}")
    for i, (name, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
        _import_layer(files, name, store, label, i, len(layers), _named_digest(name), diff_id)
    return Image(diff_ids=list(diff_ids), config=config, config_digest=config_digest,
                 name=_docker_name(item, ref))


def _docker_name(item: dict, ref: str | None) -> str | None:
    """The RepoTags entry the image was chosen by, else its first one."""
    tags = [t for t in item.get("RepoTags") or [] if isinstance(t, str)]
    if ref and not ref.startswith("@"):
        want = normalize_reference(ref)
        return next((t for t in tags if normalize_reference(t) == want), ref)
    return tags[0] if tags else None


def _from_docker_index(files: _Files, ref: str | None, label: str,
                       store: LayerStore) -> Image:
    """Docker >= 25's OCI index.json: entries carry the full name and the tag."""
    manifests = _layout_index(files, label)
    if ref is None or ref.startswith("@"):
        return _from_chosen(files, pick_tagged(manifests, None, label), label, store, None)
    want = normalize_reference(ref)
    names = [(d.get("annotations") or {}).get(FULL_NAME) for d in manifests]
    chosen = [d for d, n in zip(manifests, names, strict=True)
              if n and normalize_reference(n) == want]
    if not chosen:
        names = ", ".join(n or "(untagged)" for n in names) or "(none)"
        raise TagError(f"no such image {ref!r} in {label}; tags: {names}")
    return _from_chosen(files, chosen, label, store, ref)


def _named_digest(name: str) -> str | None:
    """The digest a content-addressed member name promises: ``blobs/sha256/HEX``
    (Docker >= 25) or ``HEX.json`` (a legacy config)."""
    m = re.fullmatch(r"(?:\./)?blobs/(sha256|sha512)/([0-9a-f]+)|(?:\./)?([0-9a-f]{64})\.json",
                     name)
    if not m:
        return None
    digest = f"{m[1]}:{m[2]}" if m[1] else f"sha256:{m[3]}"
    try:
        split_digest(digest)
    except LayerStoreError:
        return None
    return digest


def _open_tarball(path: Path, store: LayerStore, label: str) -> BinaryIO:
    """The archive as a seekable uncompressed tar file."""
    try:
        f = open(path, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise SourceError(f"{label}: no such file") from None
    compression = detect_compression(f.read(4))
    f.seek(0)
    if compression == "none":
        return f
    with f:
        scratch = store.scratch_file()
        try:
            read = decoder(f, compression)
            while chunk := read(1 << 20):
                scratch.write(chunk)
        except DECODE_ERRORS as e:
            scratch.close()
            raise CorruptImageError(f"{label}: corrupt {compression} data ({e})") from None
        scratch.flush()
        scratch.seek(0)
        return scratch


# -- entry point ------------------------------------------------------------------------

def import_image(source: str | Source, store: LayerStore) -> Image:
    """Read an image from a local archive; its layers end up in ``store``."""
    src = source if isinstance(source, Source) else parse_source(source)
    label = f"{src.transport}:{src.path}"
    if src.transport == "oci":
        if not src.path.is_dir():
            raise SourceError(f"{label}: no such directory")
        files = _DirFiles(src.path, label)
        if not files.exists("oci-layout"):
            raise SourceError(f"{label} is not an OCI image layout (no oci-layout file)")
        return _from_layout(files, src.reference, label, store)
    with _open_tarball(src.path, store, label) as f:
        files = _TarFiles(f, label)
        if src.transport == "oci-archive":
            if not files.exists("index.json"):
                raise SourceError(f"{label} is not an OCI archive (no index.json)")
            return _from_layout(files, src.reference, label, store)
        if files.exists("manifest.json"):
            return _from_docker_manifest(files, src.reference, label, store)
        if files.exists("index.json"):
            return _from_docker_index(files, src.reference, label, store)
        raise SourceError(f"{label} is not a docker archive (no manifest.json or index.json)")


__all__ = ["Image", "ImageError", "SourceError", "TagError", "PlatformError", "FormatError",
           "CorruptImageError", "Source", "parse_source", "import_image", "host_platform",
           "pick_platform", "pick_tagged", "normalize_reference"]
