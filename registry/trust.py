"""Which certificates a registry connection trusts, and which it presents.

Verification starts from the system trust store through ``truststore`` (on
Linux: OpenSSL's system CA file, so a corporate CA added with
``update-ca-certificates`` is trusted), not certifi's bundle. Added to it:
``$REQUESTS_CA_BUNDLE`` (else ``$CURL_CA_BUNDLE``) when set, so a user who
pointed requests at a bundle keeps it, and the registry's own directory of
the first ``certs.d`` that has one, in Podman's order: dockish's config dir,
``~/.config/containers``, ``/etc/containers``, ``/etc/docker``. In that
``certs.d/HOST[:PORT]/`` directory, ``*.crt`` are CAs (added to the system
store, as Docker does) and each ``NAME.cert`` with its ``NAME.key`` is a
client certificate for mutual TLS.

``DOCKISH_SYSTEM_CONFIG_ROOT`` (default ``/``) relocates the ``/etc`` paths
read here and in ``registries``: a test bed's unprivileged user cannot write
``/etc``, and a test must not change the machine's trust for everyone.

requests hands a per-request CA path (or ``$REQUESTS_CA_BUNDLE``) to urllib3,
which would replace the trust of a context; ``TrustAdapter`` gives urllib3
the context itself and drops those paths, so what is trusted is exactly what
this module built. Every file here is opened as a regular file only (a FIFO
left as ``ca.crt`` is refused, not waited on).
"""
from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from requests.adapters import HTTPAdapter

from .errors import DistributionError


class TrustError(DistributionError):
    """A certs.d directory that cannot be used (unreadable, a key missing)."""


def system_root() -> Path:
    """Where ``/etc`` is looked for (``$DOCKISH_SYSTEM_CONFIG_ROOT``, else ``/``)."""
    root = os.environ.get("DOCKISH_SYSTEM_CONFIG_ROOT")
    return Path(root) if root and os.path.isabs(root) else Path("/")


def certs_dirs() -> list[Path]:
    """The ``certs.d`` directories, first match wins (Podman's order, with
    dockish's own first)."""
    from .auth import config_path
    etc = system_root() / "etc"
    return [config_path().parent / "certs.d",
            Path.home() / ".config" / "containers" / "certs.d",
            etc / "containers" / "certs.d", etc / "docker" / "certs.d"]


@dataclass(frozen=True)
class HostCerts:
    """What a registry's ``certs.d`` directory holds."""

    directory: Path | None
    cas: tuple[Path, ...] = ()
    clients: tuple[tuple[Path, Path], ...] = ()


def host_certs(host: str) -> HostCerts:
    """The files of the first ``certs.d/HOST`` directory that exists."""
    if not host or "/" in host or host in (".", ".."):
        return HostCerts(None)
    for base in certs_dirs():
        d = base / host
        if not d.is_dir():
            continue
        try:
            names = sorted(os.listdir(d))
        except OSError as e:
            raise TrustError(f"cannot read {d}: {e.strerror}") from None
        cas = tuple(d / n for n in names if n.endswith(".crt"))
        clients = []
        for n in names:
            if n.endswith(".cert"):
                key = n[:-len(".cert")] + ".key"
                if key not in names:
                    raise TrustError(f"{d}: missing key {key} for client certificate {n}")
                clients.append((d / n, d / key))
        for n in names:
            if n.endswith(".key") and n[:-len(".key")] + ".cert" not in names:
                raise TrustError(f"{d}: missing client certificate "
                                 f"{n[:-len('.key')]}.cert for key {n}")
        return HostCerts(d, cas, tuple(clients))
    return HostCerts(None)


def _read(path: Path) -> bytes:
    from unionfs.safefile import read_file
    try:
        return read_file(path)
    except OSError as e:
        raise TrustError(f"cannot read {path}: {e.strerror or e}") from None


def _env_bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def context_for(host: str) -> ssl.SSLContext:
    """A verifying client context for ``host``: the system store, the
    environment's bundle, the host's ``certs.d`` CAs and client certificate."""
    import truststore
    ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bundle = _env_bundle()
    if bundle:
        _load_cas(ctx, Path(bundle), f"$REQUESTS_CA_BUNDLE ({bundle})")
    found = host_certs(host)
    for ca in found.cas:
        _load_cas(ctx, ca, str(ca))
    for cert, key in found.clients:
        _load_client(ctx, cert, key)
    return ctx


def _load_cas(ctx: ssl.SSLContext, path: Path, what: str) -> None:
    if path.is_dir():
        ctx.load_verify_locations(capath=str(path))
        return
    data = _read(path).decode("ascii", "replace")
    try:
        ctx.load_verify_locations(cadata=data)
    except (ssl.SSLError, ValueError) as e:
        raise TrustError(f"{what} holds no usable CA certificate ({e})") from None


def _load_client(ctx: ssl.SSLContext, cert: Path, key: Path) -> None:
    """``load_cert_chain`` takes only paths: each file is opened as a
    regular file first and handed over as ``/proc/self/fd/N`` of that open
    file, so what is loaded is what was checked."""
    from unionfs.safefile import open_regular
    try:
        with open_regular(cert) as c, open_regular(key) as k:
            ctx.load_cert_chain(f"/proc/self/fd/{c.fileno()}", f"/proc/self/fd/{k.fileno()}")
    except OSError as e:
        if isinstance(e, ssl.SSLError):
            raise TrustError(f"{cert} and {key} are not a usable client certificate "
                             f"and key ({e.reason or e})") from None
        raise TrustError(f"cannot read {e.filename or cert}: {e.strerror or e}") from None


class TrustAdapter(HTTPAdapter):
    """An HTTPAdapter whose verified HTTPS connections use ``context``; an
    unverified request (``verify=False``) gets urllib3's own context, so the
    shared one is never switched to CERT_NONE."""

    def __init__(self, context: ssl.SSLContext, **kw) -> None:
        self._context = context
        super().__init__(**kw)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
        if verify is not False and host.get("scheme") == "https":
            pool.pop("ca_certs", None)
            pool.pop("ca_cert_dir", None)
            pool["ssl_context"] = self._context
        return host, pool

    def cert_verify(self, conn, url: str, verify, cert) -> None:
        if verify is not False and url.lower().startswith("https"):
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = conn.ca_cert_dir = None
            return
        super().cert_verify(conn, url, verify, cert)


__all__ = ["TrustError", "TrustAdapter", "context_for", "host_certs", "certs_dirs",
           "system_root", "HostCerts"]
