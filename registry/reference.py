"""Image references, parsed and normalized as Docker's distribution/reference
does: ``ubuntu`` is ``docker.io/library/ubuntu:latest``; a first component
with a dot, a colon or ``localhost`` (or an upper-case letter) is a registry.

Pure logic: no I/O, so it tests fast.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import DistributionError

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_MAX = 255

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = (rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])"
           r"(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}\Z")
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*\Z")
_DOMAIN_RE = re.compile(rf"{_DOMAIN}\Z")
_ID = re.compile(r"(?:sha256:)?[0-9a-f]{64}\Z")


class ReferenceError(DistributionError, ValueError):
    """Text that is not a valid image reference; the message says why."""


@dataclass(frozen=True)
class Reference:
    """A normalized reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``domain/path``: the name without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def reference(self) -> str:
        """What the manifest is fetched by: the digest if given, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str | None) -> Reference:
        return Reference(self.domain, self.path, tag, None)

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def familiar(self) -> str:
        """The short form Docker prints: ``busybox:latest``, ``localhost:5000/app:1``."""
        name = self.path if self.domain == DEFAULT_DOMAIN else self.repository
        if self.domain == DEFAULT_DOMAIN and name.startswith(OFFICIAL_PREFIX):
            name = name[len(OFFICIAL_PREFIX):]
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name

    @property
    def familiar_repository(self) -> str:
        return Reference(self.domain, self.path).familiar


def is_image_id(text: str) -> bool:
    """A full image ID (``sha256:HEX`` or 64 hex digits)."""
    return bool(_ID.match(text))


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalize ``text``; ``ReferenceError`` with Docker's wording
    for anything invalid. Without a tag or digest the tag is ``latest``
    (unless ``default_tag`` is false)."""
    if not text:
        raise ReferenceError("invalid reference format: an empty name")
    if len(text) > 4096 or any(c.isspace() for c in text):
        raise ReferenceError(f"invalid reference format: {text!r}")
    name, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ReferenceError(f"invalid reference format: {text!r} has a malformed digest")
    if digest and not digest.startswith("sha256:") and not digest.startswith("sha512:"):
        raise ReferenceError(f"invalid reference format: unsupported digest algorithm in {text!r}")
    if digest and digest.startswith("sha256:") and len(digest) != 71:
        raise ReferenceError(f"invalid reference format: {text!r} has a malformed digest")
    tag = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG.match(tag):
            raise ReferenceError(f"invalid reference format: bad tag {tag!r} in {text!r}")
    domain, path = split_domain(name, text)
    if not _PATH.match(path):
        if path.lower() != path and _PATH.match(path.lower()):
            raise ReferenceError(f"invalid reference format: repository name {path!r} "
                                 f"must be lowercase")
        raise ReferenceError(f"invalid reference format: {text!r}")
    if len(domain) + 1 + len(path) > NAME_TOTAL_MAX:
        raise ReferenceError(f"invalid reference format: repository name {text!r} "
                             f"is longer than {NAME_TOTAL_MAX} characters")
    if tag is None and digest == "" and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest or None)


def split_domain(name: str, text: str | None = None) -> tuple[str, str]:
    """Docker's rule: the first component is a registry when it holds a dot
    or a colon, is ``localhost``, or has upper-case letters."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        if not _DOMAIN_RE.match(first):
            raise ReferenceError(f"invalid reference format: bad registry {first!r} "
                                 f"in {text or name!r}")
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def split_suffix(text: str) -> tuple[str, str]:
    """(name, ``:tag`` / ``@digest`` / both / empty) of a reference as typed."""
    name, at, digest = text.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    suffix = at + digest
    if colon > slash:
        name, suffix = name[:colon], name[colon:] + suffix
    return name, suffix


def is_short_name(text: str) -> bool:
    """Whether ``text`` names no registry (``busybox``, ``library/busybox:1``),
    so Docker would put it on docker.io and Podman asks registries.conf."""
    first, sep, _ = split_suffix(text)[0].partition("/")
    return not (sep and ("." in first or ":" in first or first == "localhost"
                         or first.lower() != first))


def split_host(domain: str) -> str:
    """``domain`` without its port (``[::1]:5000`` -> ``[::1]``)."""
    if domain.startswith("["):
        return domain[:domain.index("]") + 1] if "]" in domain else domain
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def registry_host(domain: str) -> str:
    """Where the registry API of ``domain`` lives (Docker Hub's is elsewhere)."""
    return "registry-1.docker.io" if domain == DEFAULT_DOMAIN else domain


__all__ = ["Reference", "ReferenceError", "parse", "split_domain", "is_image_id",
           "split_suffix", "is_short_name", "split_host",
           "registry_host", "DEFAULT_DOMAIN", "DEFAULT_TAG"]
