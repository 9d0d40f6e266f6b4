"""Manifests and indexes as registries serve them: media types, validation,
platform selection. Pure logic (the media type constants and the platform
rules are the ones local archives use, in ``registry.archive``).
"""
from __future__ import annotations

import hashlib
import json

from unionfs.layers import DigestError, split_digest

from .archive import (
    CONFIG_TYPES,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    CorruptImageError,
    FormatError,
    PlatformError,
    host_platform,
    pick_platform,
)

MAX_MANIFEST = 4 << 20          # containerd's limit; a bigger one is hostile
ACCEPT = ", ".join([OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST,
                    *DOCKER_SCHEMA1])
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_CONFIG, DOCKER_CONFIG = CONFIG_TYPES


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def verify(data: bytes, digest: str, what: str) -> None:
    """``data`` must hash to ``digest``, else nothing of it may be used."""
    try:
        algorithm, _ = split_digest(digest)
    except DigestError:
        raise FormatError(f"{what}: invalid digest {digest!r}") from None
    got = digest_of(data, algorithm)
    if got != digest:
        raise CorruptImageError(f"{what} does not match its digest: expected {digest}, "
                                f"got {got}")


def parse_platform(text: str | None) -> tuple[str, str, str | None]:
    """``os/arch[/variant]`` (``--platform``); the host's when not given."""
    if not text:
        return host_platform()
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise FormatError(f"invalid platform {text!r}: use os/arch[/variant], e.g. linux/amd64")
    variant = parts[2] if len(parts) == 3 else None
    if parts[1] == "arm64" and variant is None:
        variant = "v8"
    return parts[0], parts[1], variant


def platform_text(want: tuple[str, str, str | None]) -> str:
    return "/".join(p for p in want if p)


def decode(data: bytes, content_type: str | None, what: str) -> tuple[str, dict]:
    """(media type, object) of a manifest or index; schema 1 and unknown types refused."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{what} is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{what} is not a JSON object")
    kind = obj.get("mediaType") or (content_type or "").split(";")[0].strip()
    if obj.get("schemaVersion") == 1 or kind in DOCKER_SCHEMA1:
        raise FormatError(f"{what} is a Docker schema 1 manifest, which is not supported "
                          f"(deprecated since 2017); push the image again with a newer tool")
    if kind not in MANIFEST_TYPES + INDEX_TYPES:
        kind = OCI_INDEX if "manifests" in obj else OCI_MANIFEST if "layers" in obj else kind
    if kind in INDEX_TYPES:
        _descriptors(obj.get("manifests"), f"{what}: manifests")
    elif kind in MANIFEST_TYPES:
        check_manifest(obj, what)
    else:
        raise FormatError(f"{what} has the unsupported media type {kind!r}")
    return kind, obj


def _descriptor(d: object, what: str) -> dict:
    if not (isinstance(d, dict) and isinstance(d.get("digest"), str)
            and isinstance(d.get("size", 0), int) and not isinstance(d.get("size", 0), bool)
            and d.get("size", 0) >= 0):
        raise FormatError(f"{what} is not a valid descriptor")
    try:
        split_digest(d["digest"])
    except DigestError:
        raise FormatError(f"{what} has an invalid digest {d['digest']!r}") from None
    return d


def _descriptors(items: object, what: str) -> list[dict]:
    if not isinstance(items, list):
        raise FormatError(f"{what} is not a list")
    return [_descriptor(d, f"{what}[{i}]") for i, d in enumerate(items)]


def check_manifest(obj: dict, what: str) -> None:
    config = _descriptor(obj.get("config"), f"{what}: config")
    if config.get("mediaType", OCI_CONFIG) not in CONFIG_TYPES:
        raise FormatError(f"{what} is not a container image (config type "
                          f"{config.get('mediaType')})")
    for i, d in enumerate(_descriptors(obj.get("layers"), f"{what}: layers")):
        if d.get("mediaType") not in LAYER_TYPES:
            raise FormatError(f"{what}: layer {i + 1} has the unsupported media type "
                              f"{d.get('mediaType')!r}")


def choose(index: dict, want: tuple[str, str, str | None], what: str) -> dict:
    """The index entry for platform ``want``."""
    entries = index["manifests"]
    for d in entries:
        p = d.get("platform") if isinstance(d, dict) else None
        keys = ("os", "architecture", "variant")
        if p is not None and not (isinstance(p, dict) and all(
                isinstance(p.get(k), (str, type(None))) for k in keys)):
            raise FormatError(f"{what}: an index entry has a malformed platform")
    desc = pick_platform(entries, want)
    if desc is None:
        have = sorted({platform_text((p.get("os"), p.get("architecture"), p.get("variant")))
                       for d in entries if isinstance(p := d.get("platform"), dict)
                       and p.get("os") != "unknown"})
        raise PlatformError(f"{what} has no image for {platform_text(want)}; it has "
                            f"{', '.join(have) or 'none'}")
    return desc


def layer_compression(media_type: str) -> str:
    if media_type.endswith("+zstd"):
        return "zstd"
    if media_type.endswith("gzip"):
        return "gzip"
    return "none"


__all__ = ["ACCEPT", "MAX_MANIFEST", "digest_of", "verify", "parse_platform", "decode",
           "check_manifest", "choose", "layer_compression", "platform_text",
           "OCI_MANIFEST", "OCI_INDEX", "DOCKER_MANIFEST", "DOCKER_LIST", "OCI_CONFIG",
           "DOCKER_CONFIG", "OCI_LAYER", "OCI_LAYER_GZIP", "DOCKER_LAYER_GZIP",
           "INDEX_TYPES", "MANIFEST_TYPES"]
