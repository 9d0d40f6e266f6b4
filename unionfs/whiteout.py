"""OCI whiteout names: how a layer says "this lower path is gone"."""
from __future__ import annotations

from .entry import OPAQUE_MARKER, WHITEOUT_PREFIX


def is_whiteout(name: bytes) -> bool:
    """True for ``.wh.NAME`` and the opaque marker, which never show in a view."""
    return name.startswith(WHITEOUT_PREFIX)


def is_opaque(name: bytes) -> bool:
    return name == OPAQUE_MARKER


def hidden_name(name: bytes) -> bytes:
    """The name a ``.wh.NAME`` entry deletes (callers check ``is_opaque`` first)."""
    return name[len(WHITEOUT_PREFIX):]


def whiteout_for(name: bytes) -> bytes:
    return WHITEOUT_PREFIX + name
