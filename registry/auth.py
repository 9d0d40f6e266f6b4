"""Registry credentials and authentication challenges.

Credentials live in the ``auths`` format of Docker's ``~/.docker/config.json``
(``{"auths": {"host": {"auth": base64("user:password")}}}``). dockish writes
its own file (``$DOCKISH_CONFIG``, else ``${XDG_CONFIG_HOME:-~/.config}/dockish/
config.json``) and also reads Podman's and Docker's, so a user who logged in
with either is logged in here. The same file holds Docker daemon.json's
``insecure-registries`` and ``registry-mirrors``.

A file's ``credsStore``/``credHelpers`` (dockish's own, Docker's
``config.json``, any of the files read) send the lookup for a registry to a
Docker credential helper first (``credhelpers``); ``dockish login`` and
``logout`` store and erase through the helper that the file login writes --
or, without ``--authfile``, Docker's config.json -- names.

Challenges: ``WWW-Authenticate: Basic`` sends the credentials; ``Bearer
realm=...,service=...,scope=...`` fetches a token from the realm (with the
credentials, if any) and reuses it for that scope until it expires.

Identity tokens: after an OAuth2 login (Docker Hub's, Azure's, a registry
behind an identity provider) the credential is a refresh token, not a
password. A helper says so with the user name ``<token>``; a config file
with ``auths.HOST.identitytoken``. Both come back from the lookup as
(``IDENTITY_USER``, token), and the Bearer exchange then posts
``grant_type=refresh_token`` to the realm, as Docker does, instead of
sending Basic credentials.
"""
from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import credhelpers
from .errors import DistributionError

IDENTITY_USER = "<token>"     # the user name that marks an identity token
DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
                   "registry-1.docker.io")
TOKEN_DEFAULT_LIFETIME = 60
_PARAM = re.compile(r'([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


class AuthError(DistributionError):
    """Credentials rejected, a token service that fails, an unreadable auth file."""


@dataclass(frozen=True)
class Challenge:
    scheme: str                     # "basic" or "bearer"
    params: dict


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` header (pure)."""
    out: list[Challenge] = []
    starts = list(re.finditer(r"(?:^|,)\s*(Basic|Bearer)\b", header, re.IGNORECASE))
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(header)
        params = {k.lower(): q if q else v for k, q, v in _PARAM.findall(header[m.end():end])}
        out.append(Challenge(m.group(1).lower(), params))
    return out


# -- config files ---------------------------------------------------------------

def config_path() -> Path:
    """dockish's own config file (credentials, insecure registries, mirrors)."""
    explicit = os.environ.get("DOCKISH_CONFIG")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "dockish" / "config.json"


def auth_files(authfile: str | None = None) -> list[Path]:
    """Where credentials are looked up, first match wins: ``--authfile``,
    dockish's config, ``$REGISTRY_AUTH_FILE``, Podman's auth.json, Docker's."""
    if authfile:
        return [Path(authfile)]
    paths = [config_path()]
    if os.environ.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(os.environ["REGISTRY_AUTH_FILE"]))
    if os.environ.get("XDG_RUNTIME_DIR"):
        paths.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    paths.append(Path.home() / ".config" / "containers" / "auth.json")
    paths.append(docker_config_path())
    return paths


def docker_config_path() -> Path:
    """Docker's client config: ``$DOCKER_CONFIG/config.json``, else ``~/.docker``'s."""
    docker = os.environ.get("DOCKER_CONFIG")
    return Path(docker) / "config.json" if docker else Path.home() / ".docker" / "config.json"


def read_config(path: Path) -> dict:
    """A config or auth file as a JSON object (a FIFO or directory there is
    refused in one line, not waited on)."""
    from unionfs.safefile import read_file
    try:
        data = json.loads(read_file(path) or b"{}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise AuthError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise AuthError(f"{path} is not a JSON object")
    return data


def write_config(path: Path, data: dict) -> None:
    """Atomically, readable by the user only (it holds passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _keys_for(host: str) -> tuple[str, ...]:
    if host in DOCKER_HUB_KEYS:
        return DOCKER_HUB_KEYS
    return (host, f"https://{host}", f"http://{host}", f"https://{host}/v1/",
            f"https://{host}/v2/")


def config_list(data: dict, key: str) -> list[str]:
    """A list of strings from a config file (``insecure-registries``,
    ``registry-mirrors``); any other shape is refused in one line."""
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise AuthError(f"{config_path()}: {key} must be a list of strings")
    return value


def _lookup(auths: dict, host: str) -> tuple[str, str] | None:
    for key in _keys_for(host):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                if not isinstance(entry["auth"], str):
                    raise ValueError
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise AuthError(f"the credentials stored for {host} are not valid base64") \
                    from None
            return user, password
        if entry.get("identitytoken"):
            token = entry["identitytoken"]
            if not isinstance(token, str):
                raise AuthError(f"the identity token stored for {host} is not a string")
            return IDENTITY_USER, token
        if entry.get("username"):
            user, password = entry["username"], entry.get("password", "")
            if not (isinstance(user, str) and isinstance(password, str)):
                raise AuthError(f"the credentials stored for {host} are not strings")
            return user, password
    return None


def helper_server(host: str) -> str:
    """The server URL a credential helper files ``host`` under (Docker's)."""
    return DOCKER_HUB_KEYS[0] if host in DOCKER_HUB_KEYS else host


def _helper(path: Path, data: dict, host: str) -> str | None:
    try:
        return credhelpers.helper_for(data, _keys_for(host), str(path))
    except credhelpers.HelperError as e:
        raise AuthError(str(e)) from None


def _helper_call(fn, *args):
    try:
        return fn(*args)
    except credhelpers.HelperError as e:
        raise AuthError(str(e)) from None


def find_credentials(host: str, authfile: str | None = None) -> tuple[str, str] | None:
    """(user, password) for registry ``host``, if any: per file, its
    credential helper first, then its ``auths``."""
    for path in auth_files(authfile):
        data = read_config(path)
        helper = _helper(path, data, host)
        if helper:
            found = _helper_call(credhelpers.get, helper, helper_server(host))
            if found:
                return found
        auths = data.get("auths")
        if isinstance(auths, dict):
            found = _lookup(auths, host)
            if found:
                return found
    return None


def login_helper(host: str, authfile: str | None = None) -> str | None:
    """The credential helper ``login``/``logout`` use for ``host``: the one
    the file login writes names, else (no ``--authfile``) Docker's."""
    paths = [Path(authfile)] if authfile else [config_path(), docker_config_path()]
    for path in paths:
        helper = _helper(path, read_config(path), host)
        if helper:
            return helper
    return None


def store_credentials(host: str, user: str, password: str,
                      authfile: str | None = None) -> Path | str:
    """Store through the configured credential helper, else in the ``auths``
    of the file (dockish's config or ``authfile``); says where."""
    helper = login_helper(host, authfile)
    if helper:
        _helper_call(credhelpers.store, helper, helper_server(host), user, password)
        return credhelpers.PREFIX + helper
    path = Path(authfile) if authfile else config_path()
    data = read_config(path)
    auths = data.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise AuthError(f"{path}: auths is not a JSON object")
    key = DOCKER_HUB_KEYS[0] if host in DOCKER_HUB_KEYS else host
    auths[key] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    write_config(path, data)
    return path


def remove_credentials(host: str, authfile: str | None = None) -> bool:
    """Erase through the configured credential helper and from the file's
    ``auths``; True when either held something."""
    helper = login_helper(host, authfile)
    erased = bool(helper) and _helper_call(credhelpers.erase, helper, helper_server(host))
    path = Path(authfile) if authfile else config_path()
    data = read_config(path)
    auths = data.get("auths") or {}
    if not isinstance(auths, dict):
        raise AuthError(f"{path}: auths is not a JSON object")
    gone = [k for k in _keys_for(host) if k in auths]
    for k in gone:
        del auths[k]
    if gone:
        write_config(path, data)
    return bool(gone) or erased


# -- tokens -------------------------------------------------------------------------

@dataclass
class TokenCache:
    """Bearer tokens by (realm, service, scope), each with its expiry time."""

    tokens: dict = field(default_factory=dict)

    def get(self, key: tuple) -> str | None:
        entry = self.tokens.get(key)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        self.tokens.pop(key, None)
        return None

    def put(self, key: tuple, token: str, expires_in: int | None) -> None:
        life = expires_in if isinstance(expires_in, int) and expires_in > 0 \
            else TOKEN_DEFAULT_LIFETIME
        self.tokens[key] = (token, time.monotonic() + max(life - 5, 1))


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


__all__ = ["AuthError", "Challenge", "parse_challenges", "config_path", "auth_files",
           "docker_config_path", "helper_server", "login_helper",
           "config_list", "read_config", "write_config", "find_credentials", "store_credentials",
           "remove_credentials", "TokenCache", "basic_header"]
