"""TLS trust where admins and users put it, against real TLS registries:
``/etc/docker/certs.d`` and ``/etc/containers/certs.d`` (relocated with
``DOCKISH_SYSTEM_CONFIG_ROOT``: the unprivileged test user cannot write
``/etc``, and a test must not change the machine's trust), the system trust
store as OpenSSL finds it (``SSL_CERT_FILE`` stands in for a CA added with
update-ca-certificates), ``REQUESTS_CA_BUNDLE``, and client certificates
for a registry that demands mutual TLS."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .registrybed import Registry, dockish, one_error, skopeo_push

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("DOCKISH_SYSTEM_CONFIG_ROOT", str(tmp_path / "sysroot"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "config.json").write_text('{"max-download-attempts": 1}')


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory, busybox_image):
    work = tmp_path_factory.mktemp("tls")
    r = Registry(work / "reg", tls=True)
    try:
        skopeo_push(r, busybox_image.oci, "tls/busybox:1")
        r.name = f"localhost:{r.port}/tls/busybox:1"
        yield r
    finally:
        r.stop()


def _verified_pull(name: str, check: bool = True):
    return dockish("pull", "--tls-verify=true", name, check=check)


def _refused(name: str) -> str:
    err = one_error(_verified_pull(name, check=False))
    assert "certificate_verify_failed" in err
    return err


@pytest.mark.parametrize("system_dir", ["etc/docker/certs.d", "etc/containers/certs.d"])
def test_ca_in_the_system_certs_d(tls_registry, tmp_path, dockish_root, system_dir,
                                  monkeypatch):
    r = tls_registry
    err = _refused(r.name)
    assert f"certs.d/localhost:{r.port}/ca.crt" in err          # the fix is named
    d = tmp_path / "sysroot" / system_dir / f"localhost:{r.port}"
    d.mkdir(parents=True)
    shutil.copy(r.cert, d / "ca.crt")
    _verified_pull(r.name)
    # added to the system store, not instead of it, and REQUESTS_CA_BUNDLE
    # (set on many machines, read by requests for every verify=True) does
    # not take the registry's CA away
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(SYSTEM_BUNDLE))
    dockish("rmi", r.name)
    _verified_pull(r.name)
    # a CA under another name (*.crt), as Docker reads them
    (d / "ca.crt").rename(d / "corp-root.crt")
    dockish("rmi", r.name)
    _verified_pull(r.name)
    # the wrong host's directory trusts nothing here
    (d / "corp-root.crt").unlink()
    other = d.parent / f"127.0.0.1:{r.port}"
    other.mkdir()
    shutil.copy(r.cert, other / "ca.crt")
    dockish("rmi", r.name)
    _refused(r.name)


def test_system_trust_store_not_certifi(tls_registry, tmp_path, dockish_root, monkeypatch):
    """A CA the admin added to the system store is trusted: OpenSSL's
    system file is what counts (here relocated with SSL_CERT_FILE, as
    update-ca-certificates would have rebuilt it), certifi's bundle is not."""
    r = tls_registry
    _refused(r.name)
    bundle = tmp_path / "system-bundle.pem"
    bundle.write_bytes(SYSTEM_BUNDLE.read_bytes() + b"\n" + r.cert.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    _verified_pull(r.name)
    # REQUESTS_CA_BUNDLE is honoured as well (added, not replacing)
    monkeypatch.delenv("SSL_CERT_FILE")
    dockish("rmi", r.name)
    _refused(r.name)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    _verified_pull(r.name)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _client_pki(work: Path) -> tuple[Path, Path, Path]:
    """A client CA and a certificate + key it signed."""
    work.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (work / n for n in
                                  ("ca.key", "ca.pem", "client.key", "client.csr",
                                   "client.cert"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
             "-out", str(ca), "-days", "2", "-subj", "/CN=dockish test client CA")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
             "-subj", "/CN=dockish test client")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-out", str(cert), "-days", "2")
    return ca, cert, key


def test_client_certificate_for_mutual_tls(busybox_image, tmp_path, dockish_root):
    client_ca, cert, key = _client_pki(tmp_path / "pki")
    r = Registry(tmp_path / "mtls", tls=True, client_ca=client_ca)
    try:
        push_dir = tmp_path / "push-certs"
        push_dir.mkdir()
        shutil.copy(cert, push_dir / "client.cert")
        shutil.copy(key, push_dir / "client.key")
        skopeo_push(r, busybox_image.oci, "mtls/busybox:1", "--dest-cert-dir", str(push_dir))
        name = f"localhost:{r.port}/mtls/busybox:1"
        d = tmp_path / "sysroot" / "etc" / "docker" / "certs.d" / f"localhost:{r.port}"
        d.mkdir(parents=True)
        shutil.copy(r.cert, d / "ca.crt")
        # the server is trusted, but without a client certificate it refuses
        err = one_error(_verified_pull(name, check=False))
        assert f"localhost:{r.port}" in err
        # a key without its certificate is named, in one line
        shutil.copy(key, d / "client.key")
        assert "missing client certificate client.cert for key client.key" in \
            one_error(_verified_pull(name, check=False))
        shutil.copy(cert, d / "client.cert")
        _verified_pull(name)
        # a certificate without its key
        (d / "client.key").unlink()
        assert "missing key client.key for client certificate client.cert" in \
            one_error(_verified_pull(name, check=False))
    finally:
        r.stop()


def test_planted_fifo_and_garbage_are_refused_not_waited_on(tls_registry, tmp_path,
                                                            dockish_root):
    """Someone who can write a certs.d directory leaves a FIFO as ca.crt or
    as a client key: a one-line refusal, never a hang."""
    r = tls_registry
    d = tmp_path / "sysroot" / "etc" / "containers" / "certs.d" / f"localhost:{r.port}"
    d.mkdir(parents=True)
    os.mkfifo(d / "ca.crt")
    start = time.monotonic()
    err = one_error(_verified_pull(r.name, check=False))
    assert "ca.crt" in err and time.monotonic() - start < 30
    (d / "ca.crt").unlink()
    (d / "ca.crt").write_text("not a certificate\n")
    assert "holds no usable CA certificate" in one_error(_verified_pull(r.name,
                                                                         check=False))
    (d / "ca.crt").unlink()
    shutil.copy(r.cert, d / "ca.crt")
    (d / "c.cert").write_bytes(r.cert.read_bytes())
    os.mkfifo(d / "c.key")
    start = time.monotonic()
    err = one_error(_verified_pull(r.name, check=False))
    assert "c.key" in err and time.monotonic() - start < 30
