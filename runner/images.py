"""Image records as the front ends show them (Docker's field names), read
from the image store: no click, no printing."""
from __future__ import annotations

from .format import go_time


def config_or_empty(store, rec) -> dict:
    """An image's OCI config; empty when it cannot be read (listings go on)."""
    try:
        return store.config(rec)
    except Exception:                       # noqa: BLE001 - a damaged blob
        return {}


def inspect_image(store, rec) -> dict:
    """Docker's ``inspect`` of an image."""
    from registry import reference as refs
    cfg = config_or_empty(store, rec)
    return {
        "Id": rec.id,
        "RepoTags": [refs.parse(n).familiar for n in store.names_of(rec.id)],
        "RepoDigests": [refs.parse(d).familiar for d in rec.repo_digests],
        "Parent": "",
        "Comment": next((h.get("comment", "") for h in reversed(cfg.get("history") or [])
                         if isinstance(h, dict)), ""),
        "Created": cfg.get("created", ""),
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": cfg.get("config") or {},
        "Architecture": cfg.get("architecture", ""),
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Os": cfg.get("os", ""),
        "Size": store.size(rec),
        "GraphDriver": {"Data": None, "Name": "dockish"},
        "RootFS": {"Type": "layers", "Layers": list(rec.diff_ids)},
        "Metadata": {"LastTagTime": go_time(rec.stored).replace(" +0000 UTC", "Z")
                     .replace(" ", "T") if rec.stored else ""},
    }
