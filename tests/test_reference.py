"""Image references, parsed and normalized as Docker does; registry
challenges and the auths file format; manifest decoding and platform choice
(pure logic, no I/O beyond a temporary auth file)."""
from __future__ import annotations

import base64
import json

import pytest

from registry import auth
from registry import manifest as mf
from registry.archive import FormatError, PlatformError
from registry.reference import ReferenceError, parse

pytestmark = pytest.mark.pure    # no test bed needed: `pytest -m pure`

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,full,familiar", [
    ("ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("ubuntu:22.04", "docker.io/library/ubuntu:22.04", "ubuntu:22.04"),
    ("library/ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("docker.io/ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("index.docker.io/library/ubuntu", "docker.io/library/ubuntu:latest", "ubuntu:latest"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/ns/repo:tag", "localhost:5000/ns/repo:tag", "localhost:5000/ns/repo:tag"),
    ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest", "127.0.0.1:5000/a/b/c:latest"),
    ("quay.io/org/img:v1.2-rc_3", "quay.io/org/img:v1.2-rc_3", "quay.io/org/img:v1.2-rc_3"),
    (f"busybox@{D}", f"docker.io/library/busybox@{D}", f"busybox@{D}"),
    (f"busybox:1@{D}", f"docker.io/library/busybox:1@{D}", f"busybox:1@{D}"),
    ("[::1]:5000/app", "[::1]:5000/app:latest", "[::1]:5000/app:latest"),
    ("a__b/c-d--e.f", "docker.io/a__b/c-d--e.f:latest", "a__b/c-d--e.f:latest"),
])
def test_normalized_like_docker(text, full, familiar):
    ref = parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar


@pytest.mark.parametrize("text", [
    "", "UPPER", "Foo/Bar", "a b", "busybox:", "busybox::x", ":tag", "/busybox", "busybox/",
    "a//b", "busybox@sha256:abc", "busybox@md5:" + "a" * 32, "-lead", "x:" + "t" * 129,
    "busybox:-tag", "host:port/x", "a" * 256, "a..b", "a/_b",
])
def test_invalid_references_are_refused(text):
    with pytest.raises(ReferenceError) as e:
        parse(text)
    assert "invalid reference format" in str(e.value)


def test_uppercase_repository_message():
    with pytest.raises(ReferenceError, match="must be lowercase"):
        parse("docker.io/Library/Ubuntu")


def test_reference_parts():
    ref = parse("localhost:5000/ns/repo@" + D)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "ns/repo", None, D)
    assert ref.reference == D
    assert parse("x").reference == "latest"


def test_challenges():
    got = auth.parse_challenges('Bearer realm="https://auth.example/token",'
                                'service="registry.example",scope="repository:a/b:pull,push"')
    assert got == [auth.Challenge("bearer", {"realm": "https://auth.example/token",
                                             "service": "registry.example",
                                             "scope": "repository:a/b:pull,push"})]
    assert auth.parse_challenges('Basic realm="x"') == [auth.Challenge("basic",
                                                                       {"realm": "x"})]


def test_auths_file_docker_format(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "dockish.json"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    # a Docker config.json written by `docker login`
    docker = tmp_path / ".docker" / "config.json"
    docker.parent.mkdir()
    docker.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {
        "auth": base64.b64encode(b"hubuser:hubpass").decode()}}}))
    assert auth.find_credentials("docker.io") == ("hubuser", "hubpass")
    # Podman's auth.json, keyed by host
    podman = tmp_path / ".config" / "containers" / "auth.json"
    podman.parent.mkdir(parents=True)
    podman.write_text(json.dumps({"auths": {"quay.io": {
        "auth": base64.b64encode(b"q:p:with:colons").decode()}}}))
    assert auth.find_credentials("quay.io") == ("q", "p:with:colons")
    # ours wins, and is written in the same format, readable by the user only
    path = auth.store_credentials("quay.io", "me", "secret")
    data = json.loads(path.read_text())
    assert base64.b64decode(data["auths"]["quay.io"]["auth"]) == b"me:secret"
    assert path.stat().st_mode & 0o077 == 0
    assert auth.find_credentials("quay.io") == ("me", "secret")
    assert auth.remove_credentials("quay.io")
    assert auth.find_credentials("quay.io") == ("q", "p:with:colons")
    assert not auth.remove_credentials("quay.io")


def test_token_cache_expiry(monkeypatch):
    cache = auth.TokenCache()
    cache.put(("r",), "tok", 300)
    assert cache.get(("r",)) == "tok"
    now = auth.time.monotonic()
    monkeypatch.setattr(auth.time, "monotonic", lambda: now + 296)
    assert cache.get(("r",)) is None        # renewed a little before it expires


def _index(*platforms):
    return {"manifests": [{"digest": "sha256:" + str(i) * 64, "size": 1,
                           "mediaType": mf.OCI_MANIFEST, "platform": p}
                          for i, p in enumerate(platforms)]}


def test_platform_choice():
    idx = _index({"os": "linux", "architecture": "arm64", "variant": "v8"},
                 {"os": "linux", "architecture": "amd64"},
                 {"os": "unknown", "architecture": "unknown"})
    assert mf.choose(idx, mf.parse_platform("linux/amd64"), "x")["digest"][7] == "1"
    assert mf.choose(idx, mf.parse_platform("linux/arm64"), "x")["digest"][7] == "0"
    with pytest.raises(PlatformError, match="no image for linux/s390x; it has "
                                            "linux/amd64, linux/arm64/v8"):
        mf.choose(idx, mf.parse_platform("linux/s390x"), "x")
    with pytest.raises(FormatError, match="invalid platform"):
        mf.parse_platform("linux")


def test_manifest_decoding():
    with pytest.raises(FormatError, match="schema 1"):
        mf.decode(json.dumps({"schemaVersion": 1, "name": "x"}).encode(), None, "m")
    with pytest.raises(FormatError, match="not valid JSON"):
        mf.decode(b"{nope", None, "m")
    with pytest.raises(FormatError, match="unsupported media type"):
        mf.decode(json.dumps({"mediaType": "text/plain"}).encode(), None, "m")
    bad_layer = {"schemaVersion": 2, "mediaType": mf.OCI_MANIFEST,
                 "config": {"digest": D, "size": 2, "mediaType": mf.OCI_CONFIG},
                 "layers": [{"digest": D, "size": 1, "mediaType": "text/html"}]}
    with pytest.raises(FormatError, match="layer 1 has the unsupported media type"):
        mf.decode(json.dumps(bad_layer).encode(), None, "m")
    bad_layer["layers"][0] = {"digest": "sha256:../../etc", "size": 1}
    with pytest.raises(FormatError, match="invalid digest"):
        mf.decode(json.dumps(bad_layer).encode(), None, "m")
