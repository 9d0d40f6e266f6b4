"""Authentication against real registries: htpasswd Basic auth, and token
auth (the registry configured for ``token`` auth, trusting a certificate the
tests make; a token issuer run by the tests signs RS256 JWTs with its key).
``dockish login`` checks and stores credentials in the ``auths`` format;
credentials written by ``skopeo login`` (Podman's auth.json) are used too."""
from __future__ import annotations

import base64
import http.server
import json
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from .registrybed import Registry, b64, dockish, htpasswd_line, skopeo_push

USER, PASSWORD = "tester", "s3cret pass"
# what a credential helper or ``auths.HOST.identitytoken`` holds for USER
# after an OAuth2 login: traded at the token service for access tokens
IDENTITY_TOKEN = "refresh-4f1c0e"


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "dockish" / "config.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory, busybox_image):
    work = tmp_path_factory.mktemp("basic")
    (work / "htpasswd").write_text(htpasswd_line(USER, PASSWORD) + "\n")
    r = Registry(work / "reg", auth={"htpasswd": {"realm": "basic-realm",
                                                  "path": str(work / "htpasswd")}})
    try:
        r.busybox = skopeo_push(r, busybox_image.oci, "auth/busybox:1",
                                creds=f"{USER}:{PASSWORD}")
        yield r
    finally:
        r.stop()


class TokenIssuer:
    """Issues registry tokens (RS256 JWTs signed with openssl) to USER."""

    def __init__(self, work: Path) -> None:
        self.key, self.cert = work / "key.pem", work / "cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        str(self.key), "-out", str(self.cert), "-days", "2", "-subj",
                        "/CN=dockish test token issuer"], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests: list[dict] = []
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                header = self.headers.get("Authorization", "")
                user = None
                if header.startswith("Basic "):
                    u, _, p = base64.b64decode(header[6:]).decode().partition(":")
                    if (u, p) != (USER, PASSWORD):
                        return self._send(401, {"details": "incorrect username or password"})
                    user = u
                issuer.requests.append({"scope": query.get("scope", []), "user": user})
                if user is None:
                    return self._send(401, {"details": "authentication required"})
                self._send(200, {"token": issuer.token(query.get("service", [""])[0],
                                                       query.get("scope", [])),
                                 "expires_in": 300})

            def do_POST(self) -> None:
                """OAuth2's token endpoint, as Docker Hub's: an identity
                (refresh) token traded for an access token."""
                length = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                scopes = " ".join(form.get("scope", [])).split()
                grant = form.get("grant_type", [""])[0]
                ok = grant == "refresh_token" and form.get("refresh_token") == [IDENTITY_TOKEN]
                issuer.requests.append({"scope": scopes, "grant": grant,
                                        "client_id": form.get("client_id", [""])[0],
                                        "user": USER if ok else None})
                if not ok:
                    return self._send(401, {"error": "invalid_grant"})
                self._send(200, {"access_token": issuer.token(form.get("service", [""])[0],
                                                              scopes),
                                 "expires_in": 300, "scope": " ".join(scopes)})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, service: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": "dockish-test-issuer", "sub": USER, "aud": service, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": f"{now}-{len(self.requests)}",
                  "access": access}
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                             input=signing.encode(), check=True, capture_output=True).stdout
        return f"{signing}.{b64(sig)}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory, busybox_image):
    yield from token_registry_in(tmp_path_factory.mktemp("token"), busybox_image)


def token_registry_in(work: Path, busybox_image):
    """A registry with token auth (``.issuer``) holding ``.busybox``; a
    generator for fixtures (the credential helper tests use it too)."""
    issuer = TokenIssuer(work)
    r = Registry(work / "reg", auth={"token": {
        "realm": issuer.realm, "service": "dockish-test-registry",
        "issuer": "dockish-test-issuer", "rootcertbundle": str(issuer.cert)}})
    r.issuer = issuer
    try:
        r.busybox = skopeo_push(r, busybox_image.oci, "tok/busybox:1",
                                creds=f"{USER}:{PASSWORD}")
        yield r
    finally:
        r.stop()
        issuer.stop()


def _one_error(p) -> str:
    assert p.returncode == 125, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dockish: error: "), p.stderr
    return lines[0]


def test_basic_auth_login_pull_logout(basic_registry, tmp_path):
    r = basic_registry
    err = _one_error(dockish("pull", r.busybox, check=False))
    assert "authentication required" in err and f"dockish login {r.host}" in err
    p = dockish("login", "-u", USER, "--password-stdin", r.host, input=b"wrong\n",
                check=False)
    assert "incorrect username or password" in _one_error(p)
    p = dockish("login", "-u", USER, "--password-stdin", r.host,
                input=PASSWORD.encode() + b"\n")
    assert p.stdout == "Login Succeeded\n"
    config = json.loads((tmp_path / "dockish" / "config.json").read_text())
    assert base64.b64decode(config["auths"][r.host]["auth"]).decode() == f"{USER}:{PASSWORD}"
    dockish("pull", r.busybox)
    dockish("push", r.busybox, f"{r.host}/auth/copy:2")
    assert dockish("logout", r.host).stdout == f"Removing login credentials for {r.host}\n"
    dockish("rmi", r.busybox)
    _one_error(dockish("pull", r.busybox, check=False))


def test_podman_auth_file_from_skopeo_login(basic_registry, tmp_path, monkeypatch):
    r = basic_registry
    authfile = tmp_path / "containers-auth.json"
    subprocess.run(["skopeo", "login", "--tls-verify=false", "--authfile", str(authfile),
                    "-u", USER, "--password-stdin", r.host], input=PASSWORD.encode(),
                   check=True, capture_output=True)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(authfile))
    dockish("pull", r.busybox)
    monkeypatch.delenv("REGISTRY_AUTH_FILE")
    dockish("rmi", r.busybox)
    dockish("pull", "--authfile", authfile, r.busybox)


def test_token_auth(token_registry, tmp_path):
    r = token_registry
    issuer = r.issuer
    err = _one_error(dockish("pull", r.busybox, check=False))
    assert "authentication required" in err
    dockish("login", "-u", USER, "-p", PASSWORD, r.host)
    issuer.requests.clear()
    dockish("pull", r.busybox)
    # one token for the pull's scope, reused for manifest, config and layer
    assert issuer.requests == [{"scope": ["repository:tok/busybox:pull"], "user": USER}]
    issuer.requests.clear()
    p = dockish("push", r.busybox, f"{r.host}/tok/copy:2")
    assert "Mounted from another repository" in p.stdout
    scopes = [tuple(q["scope"]) for q in issuer.requests]
    assert ("repository:tok/copy:pull,push",) in scopes
    assert ("repository:tok/copy:pull,push", "repository:tok/busybox:pull") in scopes
    subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--creds",
                    f"{USER}:{PASSWORD}", f"docker://{r.host}/tok/copy:2"], check=True,
                   capture_output=True)
    p = dockish("login", "-u", USER, "--password-stdin", r.host, input=b"nope", check=False)
    assert "incorrect username or password" in _one_error(p)
