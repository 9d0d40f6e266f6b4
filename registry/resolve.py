"""From what a user types to an image whose layers are in the store.

``oci:PATH[:TAG]``, ``oci-archive:PATH[:TAG]`` and
``docker-archive:PATH[:REPO:TAG]`` are read from local archives; anything else
is an image reference (``busybox``, ``localhost:5000/app:1``,
``name@sha256:...``) looked up in the local image store.
"""
from __future__ import annotations

from unionfs.layers import LayerStore

from .archive import TRANSPORTS, Image, ImageError, import_image


class NoSuchImage(ImageError):
    """A reference the local image store does not hold."""


def is_archive_source(text: str) -> bool:
    transport, sep, _ = text.partition(":")
    return bool(sep) and transport in TRANSPORTS


def resolve(text: str, layers: LayerStore) -> Image:
    """The image ``text`` names, with all its layers in ``layers``."""
    if is_archive_source(text):
        return import_image(text, layers)
    from . import store as image_store  # the image store (registry issue)
    return image_store.lookup(text, layers)
