"""Docker credential helpers, for real: a ``docker-credential-testhelper``
program the test writes onto PATH speaks Docker's protocol (get/store/erase
on stdin and stdout) and keeps its secrets in a file, against the
token-auth test registry. It also records how it was run, so the tests see
that no secret ever reached its command line or environment."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from .registrybed import dockish, one_error
from .test_registry_auth import IDENTITY_TOKEN, PASSWORD, USER, token_registry_in

HELPER = '''#!{python}
import json, os, sys
STORE, LOG = {store!r}, {log!r}
action, data = sys.argv[1], sys.stdin.read()
with open(LOG, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ)}}) + "\\n")
store = json.load(open(STORE)) if os.path.exists(STORE) else {{}}
def save():
    with open(STORE, "w") as f:
        json.dump(store, f)
if action == "get":
    if data not in store:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(dict(store[data], ServerURL=data)))
elif action == "store":
    body = json.loads(data)
    store[body["ServerURL"]] = {{"Username": body["Username"], "Secret": body["Secret"]}}
    save()
elif action == "erase":
    if data not in store:
        print("credentials not found in native keychain")
        sys.exit(1)
    del store[data]
    save()
else:
    sys.exit(2)
'''


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory, busybox_image):
    """The token-auth registry; its issuer logs which user each token went to."""
    yield from token_registry_in(tmp_path_factory.mktemp("cred-token"), busybox_image)


class Helper:
    """The helper's files: its store (server -> credentials) and its run log."""

    def __init__(self, bindir: Path, work: Path) -> None:
        self.store, self.log = work / "helper-store.json", work / "helper-log.jsonl"
        exe = bindir / "docker-credential-testhelper"
        exe.write_text(HELPER.format(python=sys.executable, store=str(self.store),
                                     log=str(self.log)))
        exe.chmod(0o755)

    def held(self) -> dict:
        return json.loads(self.store.read_text()) if self.store.exists() else {}

    def runs(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def bindir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}:{os.environ['PATH']}")
    return d


@pytest.fixture
def helper(bindir, tmp_path) -> Helper:
    return Helper(bindir, tmp_path)


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    """Only the files a test writes: dockish's config, Docker's config dir."""
    monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "dockish" / "config.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("DOCKISH_CREDENTIAL_HELPER_TIMEOUT", raising=False)


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _no_secret_outside_pipes(helper: Helper) -> None:
    for run in helper.runs():
        assert PASSWORD not in " ".join(run["argv"])
        assert not any(PASSWORD in v for v in run["env"].values())


@pytest.mark.parametrize("where", ["helper <token>", "auths identitytoken"])
def test_pull_with_an_identity_token(token_registry, helper, tmp_path, dockish_root, where):
    """After an OAuth2 login the stored credential is an identity (refresh)
    token: from a helper as user ``<token>``, or ``auths.HOST.identitytoken``.
    The pull trades it at the token service (a POST with
    grant_type=refresh_token) and never sends it as a password; a revoked
    token is one clear line."""
    r = token_registry
    config = tmp_path / "docker-config" / "config.json"
    if where == "helper <token>":
        _write(helper.store, {r.host: {"Username": "<token>", "Secret": IDENTITY_TOKEN}})
        _write(config, {"credsStore": "testhelper"})
    else:
        _write(config, {"auths": {r.host: {"identitytoken": IDENTITY_TOKEN}}})
    r.issuer.requests.clear()
    dockish("pull", r.busybox)
    assert r.issuer.requests and all(q["grant"] == "refresh_token" for q in r.issuer.requests)
    assert {"scope": ["repository:tok/busybox:pull"], "grant": "refresh_token",
            "client_id": "dockish", "user": USER} in r.issuer.requests
    # revoked: the token service refuses it
    if where == "helper <token>":
        _write(helper.store, {r.host: {"Username": "<token>", "Secret": "revoked"}})
    else:
        _write(config, {"auths": {r.host: {"identitytoken": "revoked"}}})
    dockish("rmi", r.busybox)
    assert one_error(dockish("pull", r.busybox, check=False)) == (
        f"dockish: error: {r.host}: unauthorized: the identity token was refused (log in again)")


@pytest.mark.parametrize("where", ["docker credsStore", "dockish credHelpers"])
def test_pull_with_a_helpers_credentials_and_no_auths(token_registry, helper, tmp_path,
                                                      dockish_root, where):
    """A user whose Docker keeps credentials in a helper (credsStore) or
    names one per registry (credHelpers) pulls a private image: no
    ``auths`` entry anywhere, the token service sees the helper's user."""
    r = token_registry
    _write(helper.store, {r.host: {"Username": USER, "Secret": PASSWORD}})
    if where == "docker credsStore":
        _write(tmp_path / "docker-config" / "config.json", {"credsStore": "testhelper"})
    else:
        _write(tmp_path / "dockish" / "config.json", {"credHelpers": {r.host: "testhelper"}})
    r.issuer.requests.clear()
    dockish("pull", r.busybox)
    assert {"scope": ["repository:tok/busybox:pull"], "user": USER} in r.issuer.requests
    assert [run["argv"] for run in helper.runs()] == [["get"]]
    _no_secret_outside_pipes(helper)
    # the helper's "not found" is no error: the pull goes on anonymously and
    # gets the registry's refusal
    helper.store.write_text("{}")
    dockish("rmi", r.busybox)
    assert "authentication required" in one_error(dockish("pull", r.busybox, check=False))


def test_login_stores_through_the_helper_and_logout_erases(token_registry, helper, tmp_path,
                                                           dockish_root):
    r = token_registry
    config = tmp_path / "dockish" / "config.json"
    _write(config, {"credsStore": "testhelper"})
    p = dockish("login", "-u", USER, "--password-stdin", r.host, input=PASSWORD.encode())
    assert p.stdout == "Login Succeeded\n"
    assert helper.held() == {r.host: {"Username": USER, "Secret": PASSWORD}}
    # no file of dockish's holds the password
    assert PASSWORD not in config.read_text()
    assert json.loads(config.read_text()) == {"credsStore": "testhelper"}
    dockish("pull", r.busybox)
    assert dockish("logout", r.host).stdout == f"Removing login credentials for {r.host}\n"
    assert helper.held() == {}
    assert dockish("logout", r.host).stdout == f"Not logged in to {r.host}\n"
    dockish("rmi", r.busybox)
    assert "authentication required" in one_error(dockish("pull", r.busybox, check=False))
    assert [run["argv"][0] for run in helper.runs()] == \
        ["store", "get", "erase", "erase", "get"]
    _no_secret_outside_pipes(helper)


def test_login_through_dockers_helper(token_registry, helper, tmp_path, dockish_root):
    """Without a helper in dockish's config, Docker's credsStore is the one
    login stores through (so `docker` sees the login too)."""
    r = token_registry
    _write(tmp_path / "docker-config" / "config.json", {"credsStore": "testhelper"})
    dockish("login", "-u", USER, "--password-stdin", r.host, input=PASSWORD.encode())
    assert helper.held() == {r.host: {"Username": USER, "Secret": PASSWORD}}
    assert not (tmp_path / "dockish" / "config.json").exists()


def test_helper_failures_are_one_line(token_registry, bindir, tmp_path, dockish_root,
                                      monkeypatch):
    r = token_registry
    config = tmp_path / "dockish" / "config.json"
    # not installed
    _write(config, {"credsStore": "nosuchhelper"})
    err = one_error(dockish("pull", r.busybox, check=False))
    assert "docker-credential-nosuchhelper not found on PATH" in err
    # a name that is a path is never run
    _write(config, {"credsStore": "../../bin/sh"})
    assert "is not a credential helper name" in one_error(dockish("pull", r.busybox,
                                                                   check=False))
    # a helper that fails with several lines of stderr
    failing = bindir / "docker-credential-failing"
    failing.write_text("#!/bin/sh\necho 'keychain is locked' >&2\necho 'more detail' >&2\n"
                       "exit 3\n")
    failing.chmod(0o755)
    _write(config, {"credsStore": "failing"})
    err = one_error(dockish("pull", r.busybox, check=False))
    assert "docker-credential-failing get failed: keychain is locked" in err
    err = one_error(dockish("login", "-u", USER, "--password-stdin", r.host,
                             input=PASSWORD.encode(), check=False))
    assert "docker-credential-failing store failed: keychain is locked" in err
    # nonsense on stdout
    garbage = bindir / "docker-credential-garbage"
    garbage.write_text("#!/bin/sh\necho '[1, 2'\n")
    garbage.chmod(0o755)
    _write(config, {"credsStore": "garbage"})
    assert "answered no credentials object" in one_error(dockish("pull", r.busybox,
                                                                  check=False))
    # a helper that hangs (its child holding the pipes open) is killed with
    # its child after the timeout
    pidfile = tmp_path / "sleeper.pid"
    hang = bindir / "docker-credential-hang"
    hang.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pidfile}\nwait\n")
    hang.chmod(0o755)
    _write(config, {"credsStore": "hang"})
    monkeypatch.setenv("DOCKISH_CREDENTIAL_HELPER_TIMEOUT", "2")
    start = time.monotonic()
    err = one_error(dockish("pull", r.busybox, check=False))
    assert time.monotonic() - start < 20
    assert "docker-credential-hang get did not answer within 2 s" in err
    sleeper = int(pidfile.read_text())
    for _ in range(50):
        if not _running(sleeper):
            break
        time.sleep(0.1)
    assert not _running(sleeper), "the helper's child was left running"


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
