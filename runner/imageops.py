"""Image operations both front ends share, as Docker's daemon does them:
the image list with its filters, an image's history, ``import`` of a rootfs
tarball, and ``rmi`` with Docker's untag-or-delete and conflict rules.

Pure rules over the image store (``registry.store.ImageStore``): records
in, records out, typed errors; no click, no printing. ``Engine`` wraps
them with what they need from the rest of the runtime (who uses an image,
the events journal)."""
from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO

from .errors import ConflictError, DockishError, UsageError
from .format import parse_time
from .images import config_or_empty

IMAGE_FILTERS = ("dangling", "reference", "label", "before", "since")


@dataclass
class ImageSummary:
    """One stored image as ``images`` / ``GET /images/json`` list it; ``names``
    are its full tags (only those a ``reference`` filter matched)."""

    rec: object
    names: list[str]
    created: float | None
    size: int
    labels: dict[str, str]
    containers: int = 0


@dataclass
class HistoryEntry:
    """One step of an image's history, newest first (``id`` is the image's
    for the newest step, ``<missing>`` for the others, as Docker shows)."""

    id: str
    created: str
    created_at: float | None
    created_by: str
    size: int
    comment: str
    tags: list[str] = field(default_factory=list)


@dataclass
class ImageUser:
    """Something that keeps an image: a container (running or not) or a
    live dockish mount (which counts as running: it cannot be forced)."""

    what: str               # "container" or "mount"
    ident: str              # a container's full ID, a mount's directory
    running: bool

    @property
    def shown(self) -> str:
        return f"container {self.ident[:12]}" if self.what == "container" \
            else f"mount at {self.ident}"


# -- list --------------------------------------------------------------------------------------

def ref_matches(ref, pattern: str) -> bool:
    """Docker's ``reference=`` filter: a glob on the repository (familiar or
    full), then on the tag when the pattern has one."""
    repo, _, tag = pattern.partition(":") if "/" not in pattern.rpartition(":")[2] \
        else (pattern, "", "")
    if not (fnmatch.fnmatchcase(ref.familiar_repository, repo)
            or fnmatch.fnmatchcase(ref.repository, repo)):
        return False
    return not tag or fnmatch.fnmatchcase(ref.tag or "", tag)


def list_images(store, filters: dict[str, list[str]],
                in_use: dict[str, list] | None = None) -> list[ImageSummary]:
    """The stored images that pass ``filters`` (dangling, reference, label,
    before, since: Docker's image filters), newest first. An unknown filter
    or a before/since image that does not exist is a UsageError/NoSuchImage."""
    from registry import reference as refs

    from . import filters as flt
    flt.validate(filters, IMAGE_FILTERS)        # Docker's words: invalid filter 'KEY'
    dangling = flt.get_bool(filters, "dangling") if "dangling" in filters else None
    bounds: dict[str, float] = {}
    for key in ("before", "since"):
        for v in filters.get(key, []):
            rec, _ = store.find(v)
            bounds[key] = parse_time(config_or_empty(store, rec).get("created")) or 0
    tags = store.tags()
    patterns = filters.get("reference", [])
    out = []
    for rec in store.records():
        names = store.names_of(rec.id, tags)
        if patterns:
            names = [n for n in names if any(ref_matches(refs.parse(n), p) for p in patterns)]
            if not names:
                continue
        if dangling is not None and dangling != (not names):
            continue
        cfg = config_or_empty(store, rec)
        created = parse_time(cfg.get("created"))
        labels = (cfg.get("config") or {}).get("Labels") or {}
        if not flt.match_kv_list(filters, "label", labels):
            continue
        if "before" in bounds and not (created or 0) < bounds["before"]:
            continue
        if "since" in bounds and not (created or 0) > bounds["since"]:
            continue
        out.append(ImageSummary(rec, names, created, store.size(rec), dict(labels),
                                len((in_use or {}).get(rec.id, []))))
    out.sort(key=lambda s: -(s.created or 0))
    return out


# -- history -----------------------------------------------------------------------------------

def history(store, rec) -> list[HistoryEntry]:
    """The image's history, newest first, each step with the size of the
    layer it made (0 for steps that made none)."""
    cfg = store.config(rec)
    hist = [h for h in cfg.get("history") or [] if isinstance(h, dict)] or \
        [{"created": cfg.get("created")} for _ in rec.diff_ids]
    layers, li, rows = list(rec.diff_ids), 0, []
    for h in hist:
        size = 0
        if not h.get("empty_layer") and li < len(layers):
            size = store.layer_size(layers[li])
            li += 1
        created = h.get("created") or ""
        rows.append(HistoryEntry("<missing>", created, parse_time(created),
                                 h.get("created_by", "") or "", size,
                                 h.get("comment", "") or ""))
    rows.reverse()
    if rows:
        rows[0].id = rec.id
        rows[0].tags = store.names_of(rec.id)
    return rows


# -- import ------------------------------------------------------------------------------------

def import_config(changes: list[str], platform: str | None, source: str,
                  message: str) -> tuple[dict, str]:
    """The new image's config before its layer is known (``changes``
    checked first: nothing is stored for a bad one), and its time."""
    from registry import manifest as mf

    from .builder.imageconfig import apply_changes
    os_name, arch, variant = mf.parse_platform(platform)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cfg: dict = {"architecture": arch, "os": os_name, "created": now, "config": {}}
    apply_changes(cfg, list(changes))
    cfg["config"] = {k: v for k, v in cfg["config"].items() if v is not None}
    cfg["history"] = [{"created": now, "created_by": f"dockish import {source}",
                       "comment": message or f"Imported from {source}"}]
    if variant:
        cfg["variant"] = variant
    return cfg, now


def is_url(source: str) -> bool:
    return bool(re.match(r"^https?://", source))


def import_image(store, source: str, data: BinaryIO | None = None, *,
                 changes: list[str] | None = None, message: str = "",
                 platform: str | None = None, reference: str | None = None):
    """A one-layer image from a rootfs tarball (any compression): read from
    ``data`` when given (stdin, a request body), else fetched from the URL
    or read from the file ``source``; tagged ``reference``. Its record."""
    from registry import reference as refs
    from unionfs.tarindex import LayerError
    ref = refs.parse(reference) if reference else None
    if ref is not None and ref.digest:
        raise UsageError(f"refusing to create a tag with a digest reference: {reference}")
    cfg, _now = import_config(list(changes or []), platform, source, message)
    with store.writing():
        try:
            if data is not None:
                diff_id = store.layers.import_blob(data)
            elif is_url(source):
                diff_id = _import_url(store, source)
            else:
                diff_id = store.layers.import_tar_path(source)
        except LayerError as e:
            raise DockishError(f"{source} is not a usable rootfs tarball: {e}") from None
        cfg["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
        rec = store.add_image(json.dumps(cfg, separators=(",", ":")).encode(),
                              tags=[str(ref)] if ref is not None else [])
    return rec


def _import_url(store, url: str) -> str:
    """A rootfs tarball streamed from a URL into the store (a URL that
    cannot be fetched is the user's input: UsageError)."""
    import requests
    try:
        with requests.get(url, stream=True, timeout=60) as r:
            if r.status_code >= 400:
                raise UsageError(f"{url}: HTTP {r.status_code}")
            r.raw.decode_content = False
            return store.layers.import_blob(r.raw)
    except requests.RequestException as e:
        raise UsageError(f"{url}: {e}") from None


# -- rmi ---------------------------------------------------------------------------------------

Event = Callable[[str, str, str], None]     # (action, image ID, name)


def _conflict(rec, why: str, hard: bool) -> ConflictError:
    return ConflictError(f"conflict: unable to delete {rec.short_id} "
                         f"({'cannot be forced' if hard else 'must be forced'}) - {why}")


def _delete_conflict(store, rec, users: list[ImageUser], force: bool,
                     references: bool) -> ConflictError | None:
    """moby's checkImageDeleteConflict: a running user is a hard conflict;
    without force, a stopped one and (``references``) remaining names are
    soft ones."""
    running = next((u for u in users if u.running), None)
    if running is not None:
        what = "running container " + running.ident[:12] if running.what == "container" \
            else running.shown
        return _conflict(rec, f"image is being used by {what}", True)
    if force:
        return None
    if references and store.names_of(rec.id):
        return _conflict(rec, "image is referenced in multiple repositories", False)
    stopped = next((u for u in users if not u.running), None)
    if stopped is not None:
        return _conflict(rec, f"image is being used by stopped container {stopped.ident[:12]}",
                         False)
    return None


def remove_image(store, text: str, users: list[ImageUser], force: bool,
                 event: Event) -> tuple[list[tuple[str, str]], bool]:
    """``rmi TEXT`` as Docker's daemon does it: a name is untagged, and the
    image deleted only when that was its last name; an ID deletes the
    image with all its names. Containers keep their image unless forced
    (a running one even then). ([("Untagged"|"Deleted", what)], deleted);
    ConflictError (409) when refused, NoSuchImage when unknown."""
    from registry import reference as refs
    rec, by_name = store.find(text)
    names = store.names_of(rec.id)
    single = len(names) <= 1
    out: list[tuple[str, str]] = []
    quiet = False
    if by_name:
        if not force and single and users:
            raise ConflictError(f"conflict: unable to remove repository reference \"{text}\" "
                                f"(must force) - {users[0].shown} is using its referenced "
                                f"image {rec.short_id}")
        store.untag(by_name)
        event("untag", rec.id, by_name)
        out.append(("Untagged", refs.parse(by_name).familiar))
        if store.names_of(rec.id):
            return out, False
        quiet = True
    elif single:                # an ID with at most one name: the name goes first
        conflict = _delete_conflict(store, rec, users, force, references=False)
        if conflict is not None:
            raise conflict
        for n in names:
            store.untag(n)
            event("untag", rec.id, n)
            out.append(("Untagged", refs.parse(n).familiar))
    conflict = _delete_conflict(store, rec, users, force, references=True)
    if conflict is not None:
        if quiet:               # the name is gone; a used image stays, untagged
            return out, False
        raise conflict
    for n in store.names_of(rec.id):
        store.untag(n)
        event("untag", rec.id, n)
        out.append(("Untagged", refs.parse(n).familiar))
    out += [("Untagged", refs.parse(d).familiar) for d in rec.repo_digests]
    store.remove_record(rec.id)
    event("delete", rec.id, rec.id)
    out.append(("Deleted", rec.id))
    return out, True


__all__ = ["HistoryEntry", "IMAGE_FILTERS", "ImageSummary", "ImageUser", "history",
           "import_image", "is_url", "list_images", "ref_matches", "remove_image"]
