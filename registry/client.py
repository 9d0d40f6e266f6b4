"""HTTP to one registry (Docker Registry HTTP API v2 / OCI distribution).

What every request gets: TLS verification (only a per-request ``verify=``
beats the CA variables requests reads from the environment), timeouts,
retries with exponential backoff on connection errors, 5xx and 429 (honouring
``Retry-After``), and authentication on a 401 challenge (Basic or a Bearer
token, reused until it expires). Blob downloads resume where a dropped
connection left them, with an HTTP ``Range`` request.

Trust (``trust``): the system trust store, ``$REQUESTS_CA_BUNDLE`` and the
registry's ``certs.d/HOST/`` (dockish's, Podman's, ``/etc/containers``',
``/etc/docker``'s: CAs and a client certificate), as Docker and Podman do.
Where a name is pulled from (``endpoints``): registries.conf mirrors and
locations, then the origin; dockish's ``registry-mirrors`` and daemon.json's
for docker.io. Plain HTTP is used only for localhost, 127.0.0.1 and ::1, registries listed in
the config's ``insecure-registries``, and ``--tls-verify=false``: those try
HTTPS (unverified) first and fall back to HTTP, as Docker does.
"""
from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import requests
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ContentDecodingError, SSLError, Timeout
from urllib3.exceptions import HTTPError as Urllib3Error

from . import auth
from . import reference as refs
from . import registries as regconf
from .errors import DistributionError
from .reference import registry_host
from .trust import TrustAdapter, context_for

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
USER_AGENT = "dockish/0.1"
_STREAM_ERRORS = (RequestsConnectionError, Timeout, ContentDecodingError, Urllib3Error, OSError)
_log = logging.getLogger("dockish.registry")       # -D / --log-level debug shows each request


class RegistryError(DistributionError):
    """A registry that refuses, fails or cannot be reached; the message says which."""


class NotFound(RegistryError):
    """The registry has no such manifest or blob (HTTP 404)."""


@dataclass
class Options:
    """How to talk to registries (from the command line and the config file)."""

    tls_verify: bool | None = None           # None: by host (local/insecure or not)
    authfile: str | None = None
    insecure: tuple[str, ...] = ()
    mirrors: tuple[str, ...] = ()
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    retries: int = 5
    backoff: float = 0.25
    credentials: tuple[str, str] | None = None   # overrides the auth files (login)
    registries: regconf.Conf = field(default_factory=regconf.Conf)
    # asks the user which registry a short name means (only with a terminal)
    choose_short_name: Callable[[str, list[str]], str] | None = None

    @classmethod
    def from_config(cls, tls_verify: bool | None = None, authfile: str | None = None,
                    **kw) -> Options:
        """dockish's config, registries.conf and daemon.json together."""
        data = auth.read_config(auth.config_path())
        conf = regconf.load()
        insecure = (*auth.config_list(data, "insecure-registries"), *conf.insecure_hosts())
        mirrors = (*auth.config_list(data, "registry-mirrors"), *conf.daemon_mirrors)
        return cls(tls_verify=tls_verify, authfile=authfile, insecure=insecure,
                   mirrors=mirrors, registries=conf, **kw)





@dataclass
class Client:
    """Requests to the registry at ``host`` (``name:port``, or a mirror URL)."""

    host: str
    options: Options = field(default_factory=Options)
    scheme: str | None = None

    def __post_init__(self) -> None:
        if "://" in self.host:                       # a mirror given as a URL
            self.scheme, _, rest = self.host.partition("://")
            self.host = rest.rstrip("/")
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=8)
        self.session.mount("http://", adapter)
        if not self.insecure:       # verified: the system store and certs.d, not certifi
            adapter = TrustAdapter(context_for(self.host), pool_connections=4,
                                   pool_maxsize=8)
        self.session.mount("https://", adapter)
        self._tokens = auth.TokenCache()
        self._auth_header: dict[tuple, str] = {}
        self._lock = threading.Lock()
        self._creds: tuple[str, str] | None | bool = False

    # -- TLS and scheme ----------------------------------------------------------

    @property
    def insecure(self) -> bool:
        if self.options.tls_verify is False:
            return True
        if self.options.tls_verify is True:
            return False
        return (refs.split_host(self.host) in LOCAL_HOSTS or self.host in self.options.insecure
                or refs.split_host(self.host) in self.options.insecure)

    @property
    def verify(self) -> bool:
        """False for an insecure registry; else True: the session's
        ``TrustAdapter`` holds what is trusted (``trust.context_for``)."""
        return not self.insecure

    def _timeout(self) -> tuple[float, float]:
        return self.options.connect_timeout, self.options.read_timeout

    def base(self) -> str:
        """``scheme://host``, probing HTTPS then HTTP for an insecure registry."""
        with self._lock:
            if self.scheme is None:
                self.scheme = self._probe()
        return f"{self.scheme}://{self.host}"

    def _probe(self) -> str:
        if not self.insecure:
            return "https"
        try:
            self.session.get(f"https://{self.host}/v2/", verify=False, timeout=self._timeout(),
                             allow_redirects=False)
            return "https"
        except requests.RequestException:       # no TLS there (or nothing at all)
            return "http"

    # -- credentials -------------------------------------------------------------

    def credentials(self) -> tuple[str, str] | None:
        if self._creds is False:
            self._creds = self.options.credentials or auth.find_credentials(
                self.host, self.options.authfile)
        return self._creds or None

    def _authorize(self, response: requests.Response, scopes: tuple[str, ...]) -> bool:
        """Answer a 401 challenge; False when there is nothing more to try."""
        challenges = auth.parse_challenges(response.headers.get("WWW-Authenticate", ""))
        creds = self.credentials()
        for ch in challenges:
            if ch.scheme == "bearer" and ch.params.get("realm"):
                self._auth_header[scopes] = "Bearer " + self._token(ch.params, scopes, creds)
                return True
            if ch.scheme == "basic":
                if creds is not None and creds[0] == auth.IDENTITY_USER:
                    raise RegistryError(f"{self.host}: the registry asks for a password, "
                                        f"but only an identity token is stored for it")
                if creds is None:
                    raise RegistryError(f"{self.host}: authentication required: log in "
                                        f"with `dockish login {self.host}`")
                header = auth.basic_header(*creds)
                if self._auth_header.get(scopes) == header:
                    raise RegistryError(f"{self.host}: unauthorized: incorrect username "
                                        f"or password")
                self._auth_header[scopes] = header
                return True
        return False

    def _token(self, params: dict, scopes: tuple[str, ...], creds) -> str:
        wanted = list(scopes) or ([params["scope"]] if params.get("scope") else [])
        key = (params["realm"], params.get("service"), tuple(wanted), bool(creds))
        token = self._tokens.get(key)
        if token:
            return token
        query = [("scope", s) for s in wanted]
        if params.get("service"):
            query.append(("service", params["service"]))
        try:
            if creds is not None and creds[0] == auth.IDENTITY_USER:
                # OAuth2: the identity (refresh) token traded for an access token
                form = {"grant_type": "refresh_token", "refresh_token": creds[1],
                        "client_id": "dockish", "scope": " ".join(wanted)}
                if params.get("service"):
                    form["service"] = params["service"]
                r = self.session.post(params["realm"], data=form, timeout=self._timeout(),
                                      verify=self._realm_verify(params["realm"]))
            else:
                r = self.session.get(params["realm"], params=query, timeout=self._timeout(),
                                     auth=creds, verify=self._realm_verify(params["realm"]))
        except requests.RequestException as e:
            raise RegistryError(f"{self.host}: the token service {params['realm']} "
                                f"cannot be reached ({_reason(e)})") from None
        if r.status_code in (400, 401, 403) and creds and creds[0] == auth.IDENTITY_USER:
            raise RegistryError(f"{self.host}: unauthorized: the identity token was refused "
                                f"(log in again)")
        if r.status_code in (401, 403):
            why = "incorrect username or password" if creds else "authentication required"
            raise RegistryError(f"{self.host}: unauthorized: {why}")
        if r.status_code != 200:
            raise RegistryError(f"{self.host}: the token service answered HTTP {r.status_code}")
        body = json_object(r, f"{self.host}: registry returned an invalid token response")
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.host}: registry returned an invalid token response "
                                "(no token)")
        self._tokens.put(key, token, body.get("expires_in"))
        return token

    def _realm_verify(self, realm: str) -> bool:
        host = realm.split("://", 1)[-1].split("/", 1)[0]
        return not (self.insecure and (host == self.host or refs.split_host(host) in LOCAL_HOSTS))

    # -- requests ----------------------------------------------------------------

    def request(self, method: str, path: str, *, scopes: tuple[str, ...] = (),
                headers: dict | None = None, body: bytes | Callable[[], BinaryIO] | None = None,
                stream: bool = False, params: dict | None = None,
                ok: tuple[int, ...] = (200,), url: str | None = None) -> requests.Response:
        """One API call with retries and auth; a status outside ``ok`` raises
        (``NotFound`` for 404). ``body`` may be a callable making a fresh
        file object, so a retried upload starts over."""
        target = url if url and "://" in url else self.base() + (url or path)
        tried_auth = 0
        attempt = 0
        while True:
            hdrs = dict(headers or {})
            if scopes in self._auth_header:
                hdrs["Authorization"] = self._auth_header[scopes]
            data = body() if callable(body) else body
            try:
                r = self.session.request(method, target, headers=hdrs, data=data,
                                         stream=stream, params=params,
                                         timeout=self._timeout(), verify=self.verify,
                                         allow_redirects=True)
            except SSLError as e:
                raise RegistryError(f"{self.host}: TLS failed ({_reason(e)}); put the "
                                    f"registry's CA in certs.d/{self.host}/ca.crt, or for a "
                                    f"registry without a valid certificate use "
                                    f"--tls-verify=false or list it in insecure-registries"
                                    ) from None
            except (RequestsConnectionError, Timeout) as e:
                _log.debug("%s %s: %s", method, target, _reason(e))
                if attempt >= self.options.retries:
                    raise RegistryError(f"{self.host}: cannot reach the registry "
                                        f"({_reason(e)})") from None
                self._sleep(attempt, None)
                attempt += 1
                continue
            except requests.RequestException as e:     # a bad redirect, URL, body...
                raise RegistryError(f"{self.host}: {method} {path}: {_reason(e)}") from None
            finally:
                if callable(body) and data is not None:
                    data.close()
            _log.debug("%s %s: %d %s", method, target, r.status_code, r.reason)
            if r.status_code == 401 and tried_auth < 2:
                tried_auth += 1
                r.close()
                if self._authorize(r, scopes):
                    continue
            if r.status_code in RETRY_STATUS and attempt < self.options.retries:
                r.close()
                self._sleep(attempt, r.headers.get("Retry-After"))
                attempt += 1
                continue
            if r.status_code not in ok:
                raise self._error(r, method, path)
            return r

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.options.backoff * (2 ** attempt)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(int(retry_after), 30))
        time.sleep(min(delay, 30.0))

    def _error(self, r: requests.Response, method: str, path: str) -> RegistryError:
        detail = ""
        try:
            errors = r.json()
        except ValueError:
            errors = None
        errors = errors.get("errors") if isinstance(errors, dict) else None
        if isinstance(errors, list):          # {"errors": [{"code": .., "message": ..}]}
            detail = "; ".join(f"{str(e.get('code', '')).lower()}: {e.get('message', '')}"
                               for e in errors if isinstance(e, dict))
        r.close()
        what = detail or f"HTTP {r.status_code} {r.reason or ''}".strip()
        if r.status_code == 404:
            return NotFound(f"{self.host}: {what}")
        if r.status_code in (401, 403):
            return RegistryError(f"{self.host}: denied ({what}); log in with "
                                 f"`dockish login {self.host}`")
        return RegistryError(f"{self.host}: {method} {path}: {what}")

    def ping(self, scopes: tuple[str, ...] = ()) -> None:
        self.request("GET", "/v2/", scopes=scopes)

    def open_blob(self, repo: str, digest: str, size: int | None,
                  scopes: tuple[str, ...]) -> BlobReader:
        return BlobReader(self, f"/v2/{repo}/blobs/{digest}", size, scopes)


def json_object(r: requests.Response, error: str) -> dict:
    """A registry's JSON answer that must be an object: anything else (not
    JSON, a list, a number) is ``RegistryError(error)``, never a traceback."""
    try:
        body = r.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RegistryError(f"{error} (not a JSON object)")
    return body


def _reason(e: BaseException) -> str:
    text = str(e)
    for marker in ("CERTIFICATE_VERIFY_FAILED", "Connection refused",
                   "Name or service not known", "timed out", "Connection reset",
                   "Remote end closed"):
        if marker in text:
            return marker.lower()
    return text[:200]


class BlobReader(io.RawIOBase):
    """A blob's bytes; a dropped or stalled connection is resumed with
    ``Range: bytes=N-`` (or re-read and skipped when the server ignores Range)."""

    def __init__(self, client: Client, path: str, size: int | None,
                 scopes: tuple[str, ...]) -> None:
        self._client, self._path, self._size, self._scopes = client, path, size, scopes
        self._pos = 0
        self._resumes = 0
        self._response: requests.Response | None = None
        self.resumed = 0
        self._open()

    def _open(self) -> None:
        headers = {"Range": f"bytes={self._pos}-"} if self._pos else {}
        r = self._client.request("GET", self._path, scopes=self._scopes, headers=headers,
                                 stream=True, ok=(200, 206))
        if self._pos and r.status_code == 200:       # Range ignored: skip what we have
            skip = self._pos
            while skip:
                chunk = r.raw.read(min(skip, 1 << 20), decode_content=False)
                if not chunk:
                    raise OSError("the blob ended early")
                skip -= len(chunk)
        length = r.headers.get("Content-Length")
        if self._size is not None and length and length.isdigit() and r.status_code == 200 \
                and int(length) > self._size:
            r.close()
            raise RegistryError(f"{self._client.host}: {self._path} is {length} bytes, "
                                f"its descriptor says {self._size}")
        self._response = r

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        want = len(buf)
        if self._size is not None:
            want = min(want, self._size - self._pos + 1)   # one more: detect oversize
            if want <= 0:
                return 0
        while True:
            try:
                data = self._response.raw.read(want, decode_content=False)
                if not data and self._size is not None and self._pos < self._size:
                    raise OSError("the connection ended early")
            except _STREAM_ERRORS as e:
                self._response.close()
                if self._resumes >= self._client.options.retries:
                    raise RegistryError(f"{self._client.host}: {self._path}: download "
                                        f"failed after {self._resumes} resumes ({_reason(e)})"
                                        ) from None
                self._client._sleep(self._resumes, None)
                self._resumes += 1
                self.resumed += 1
                self._open()
                continue
            break
        if self._size is not None and self._pos + len(data) > self._size:
            raise RegistryError(f"{self._client.host}: {self._path} is longer than its "
                                f"descriptor's {self._size} bytes")
        buf[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        super().close()


def client_for(domain: str, options: Options) -> Client:
    return Client(registry_host(domain), options)


def _client_at(location: str, options: Options) -> tuple[Client, str]:
    """(client, repository path) for a rewritten ``host[:port]/path``."""
    host, _, path = location.partition("/")
    return client_for(host, options), path


def endpoints(ref: refs.Reference, options: Options) -> list[tuple[Client, str]]:
    """Where to pull ``ref`` from, in order, each with the repository path
    it has there: for docker.io the config's and daemon.json's
    ``registry-mirrors``; the registries.conf mirrors of its ``[[registry]]``
    (unless ``mirror-by-digest-only`` and no digest); then its location (the
    origin when no table matches). A ``blocked`` registry raises."""
    try:
        entry = regconf.check_blocked(options.registries, ref)
    except regconf.ConfError as e:
        raise RegistryError(str(e)) from None
    out: list[tuple[Client, str]] = []
    if ref.domain == refs.DEFAULT_DOMAIN:
        out += [(Client(m, options), ref.path) for m in options.mirrors]
    if entry is None:
        return [*out, (client_for(ref.domain, options), ref.path)]
    if ref.digest or not entry.mirror_by_digest_only:
        out += [_client_at(entry.rewrite(m.location, ref.repository), options)
                for m in entry.mirrors]
    return [*out, _client_at(entry.rewrite(entry.location, ref.repository), options)]


def origin(ref: refs.Reference, options: Options) -> tuple[Client, str]:
    """Where ``ref`` itself lives (pushes, tag lists): its location, never a mirror."""
    return endpoints(ref, options)[-1]


__all__ = ["Client", "Options", "RegistryError", "NotFound", "BlobReader", "client_for",
           "endpoints", "origin", "json_object"]
