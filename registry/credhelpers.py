"""Docker credential helpers: ``docker-credential-NAME get|store|erase``.

A config file's ``credsStore`` (one helper for every registry) or
``credHelpers`` (``{"gcr.io": "gcloud", ...}``) hands credentials to a
program on ``PATH`` instead of the ``auths`` table, so users of ECR, GCR,
ACR, ``pass`` or ``secretservice`` are logged in here as they are in Docker.

The protocol is Docker's (docker-credential-helpers): ``get`` reads the
server URL on stdin and prints ``{"ServerURL", "Username", "Secret"}``, or
fails with "credentials not found in native keychain" on a miss; ``store``
reads that JSON object on stdin; ``erase`` reads the server URL on stdin.
Secrets only ever travel through the helper's stdin and stdout pipes, never
its command line or environment (both are visible to other users in /proc).
A helper that does not answer within ``DOCKISH_CREDENTIAL_HELPER_TIMEOUT``
seconds (default 30) is killed with its process group, and any failure is
one line that names the helper.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess

from .errors import DistributionError

PREFIX = "docker-credential-"
NOT_FOUND = "credentials not found in native keychain"
DEFAULT_TIMEOUT = 30.0
MAX_OUTPUT = 1 << 20
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


class HelperError(DistributionError):
    """A credential helper that is missing, fails, hangs or answers nonsense."""


def _timeout() -> float:
    try:
        value = float(os.environ.get("DOCKISH_CREDENTIAL_HELPER_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def helper_for(config: dict, keys: tuple[str, ...], where: str) -> str | None:
    """The helper a config file names for a registry (its keys, in the forms
    Docker stores them): ``credHelpers`` first, then ``credsStore``. A name
    that is not a plain program name is refused, so a config file cannot
    point at a path."""
    helpers = config.get("credHelpers") or {}
    if not isinstance(helpers, dict):
        raise HelperError(f"{where}: credHelpers is not a JSON object")
    name = next((helpers[k] for k in keys if k in helpers), None) or config.get("credsStore")
    if not name:
        return None
    if not isinstance(name, str) or not _NAME.match(name):
        raise HelperError(f"{where}: {name!r} is not a credential helper name")
    return name


def _run(name: str, action: str, data: str) -> tuple[int, str]:
    """Run ``docker-credential-NAME ACTION`` with ``data`` on stdin; its exit
    status and output (stdout, else stderr)."""
    exe = shutil.which(PREFIX + name)
    if exe is None:
        raise HelperError(f"credential helper {PREFIX}{name} not found on PATH")
    try:
        proc = subprocess.Popen([exe, action], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                close_fds=True)
    except OSError as e:
        raise HelperError(f"credential helper {PREFIX}{name} cannot run: "
                          f"{e.strerror or e}") from None
    try:
        out, err = proc.communicate(data.encode(), timeout=_timeout())
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)     # with any children it started
        except ProcessLookupError:
            pass
        proc.wait()
        raise HelperError(f"credential helper {PREFIX}{name} {action} did not answer "
                          f"within {_timeout():g} s") from None
    text = (out if out.strip() else err)[:MAX_OUTPUT].decode(errors="replace").strip()
    return proc.returncode, text


def _first_line(text: str) -> str:
    lines = text.splitlines()
    return lines[0][:300] if lines else "no output"


def get(name: str, server: str) -> tuple[str, str] | None:
    """(user, secret) the helper holds for ``server``; None on its "not found"."""
    status, text = _run(name, "get", server)
    if status != 0:
        if NOT_FOUND in text:
            return None
        raise HelperError(f"credential helper {PREFIX}{name} get failed: {_first_line(text)}")
    try:
        body = json.loads(text)
        user, secret = body.get("Username", ""), body["Secret"]
        if not isinstance(user, str) or not isinstance(secret, str):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HelperError(f"credential helper {PREFIX}{name} get answered no "
                          f"credentials object") from None
    if not user and not secret:
        return None
    return user, secret


def store(name: str, server: str, user: str, secret: str) -> None:
    body = json.dumps({"ServerURL": server, "Username": user, "Secret": secret})
    status, text = _run(name, "store", body)
    if status != 0:
        raise HelperError(f"credential helper {PREFIX}{name} store failed: "
                          f"{_first_line(text)}")


def erase(name: str, server: str) -> bool:
    """True when the helper removed something; False when it held nothing."""
    status, text = _run(name, "erase", server)
    if status != 0:
        if NOT_FOUND in text:
            return False
        raise HelperError(f"credential helper {PREFIX}{name} erase failed: "
                          f"{_first_line(text)}")
    return True


__all__ = ["HelperError", "helper_for", "get", "store", "erase", "PREFIX", "NOT_FOUND"]
