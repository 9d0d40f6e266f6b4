"""``--network container:NAME``: a container that shares another running
container's network namespace (its interfaces, addresses, ports and
loopback), as Docker's and Podman's do for sidecars.

A network namespace can only be joined by a process with privileges in
the user namespace that owns it, so the new container joins the other's
user namespace first (same id mapping: every container gets the user's
``plan_mapping``), then its network namespace, and unshares the rest as
usual. ``resolve`` names the other container by id at create; ``holder``
finds its holder process at start.
"""
from __future__ import annotations

from ..errors import DockishError, UsageError

PREFIX = "container:"


def is_join(mode: str | None) -> bool:
    return bool(mode) and mode.startswith(PREFIX)


def resolve(mode: str, containers, publish: list, aliases: list, ip: str | None) -> str:
    """``container:REF`` with REF made the other container's full id
    (Docker keeps the id), refusing what cannot go with it, in Docker's
    words."""
    ref = mode[len(PREFIX):]
    if not ref:
        raise UsageError("--network container: needs a container name or id")
    if publish:
        raise UsageError("conflicting options: port publishing and the container type "
                         "network mode")
    if aliases or ip:
        raise UsageError("conflicting options: network-scoped aliases, --ip and the "
                         "container type network mode")
    try:
        return PREFIX + containers.get(ref).id
    except DockishError:
        # a create error, exit 125 (and not a 404 through the API: the docker
        # CLI would take it for a missing image and pull)
        raise UsageError(f"No such container: {ref}") from None


def holder(mode: str, containers) -> int:
    """The holder pid of the running container whose network ``mode``
    names, else the error ``start`` reports."""
    from . import namespaces as ns
    cid = mode[len(PREFIX):]
    try:
        other = containers.get(cid)
    except DockishError:
        raise DockishError(f"No such container: {cid}") from None
    st = other.state() if other.running else {}
    pid = st.get("holder_pid")
    if not pid or not ns.alive(pid, st.get("holder_start")):
        raise DockishError(f"cannot join network of a non running container: {cid}")
    return pid
