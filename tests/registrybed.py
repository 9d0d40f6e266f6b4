"""Test bed for the registry tests: Debian's ``docker-registry`` started on
127.0.0.1 (plain, with htpasswd Basic auth, or with token auth), a token
issuer, a fault-injecting proxy, and skopeo/umoci helpers. Plain module: no
pytest, so it also serves scripts."""
from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import socket
import socketserver
import subprocess
import threading
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    """A running ``docker-registry``; ``host`` is ``127.0.0.1:PORT``."""

    def __init__(self, work: Path, auth: dict | None = None, tls: bool = False,
                 client_ca: Path | None = None) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = {
            "version": 0.1,
            "log": {"level": "error", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.work / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "dockish-test-secret"},
        }
        if auth:
            config["auth"] = auth
        if tls:
            key, cert = self.work / "key.pem", self.work / "cert.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj",
                            "/CN=127.0.0.1", "-addext",
                            "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                           check=True, capture_output=True)
            config["http"]["tls"] = {"certificate": str(cert), "key": str(key)}
            if client_ca:       # mutual TLS: a client certificate signed by it is required
                config["http"]["tls"]["clientcas"] = [str(client_ca)]
            self.cert = cert
        cfg = self.work / "config.yml"
        cfg.write_text(json.dumps(config))        # YAML is a superset of JSON
        self.log = open(self.work / "registry.log", "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(cfg)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: "
                                   f"{(self.work / 'registry.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("docker-registry did not start listening")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def skopeo_copy(src: str, dest: str, *extra: str, creds: str | None = None) -> None:
    cmd = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
           *extra]
    if creds:
        if src.startswith("docker://"):
            cmd += ["--src-creds", creds]
        if dest.startswith("docker://"):
            cmd += ["--dest-creds", creds]
    cmd = [c for c in cmd if not (c.startswith("--src-tls") and not src.startswith("docker://"))
           and not (c.startswith("--dest-tls") and not dest.startswith("docker://"))]
    p = subprocess.run(cmd + [src, dest], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"skopeo copy {src} {dest} failed: {p.stderr}")


def skopeo_push(registry: Registry, source: str, name: str, *extra: str,
                creds: str | None = None) -> str:
    """Push an image (``oci:...``) as ``127.0.0.1:PORT/name``; returns that name."""
    ref = f"{registry.host}/{name}"
    skopeo_copy(source, f"docker://{ref}", *extra, creds=creds)
    return ref


# -- a raw HTTP view of a registry (for hostile tests) -------------------------------

def registry_get(url: str, accept: str | None = None) -> tuple[bytes, dict]:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read(), dict(r.headers)


# -- a fault-injecting proxy ------------------------------------------------------------

class FaultProxy:
    """A plain HTTP proxy in front of a registry. ``faults`` is a list of
    (path substring, action) consumed in order per match: ``"drop"`` cuts a
    blob response halfway (``"truncate"``: the same, listed once per attempt
    it should hit), ``"norange"`` ignores a Range header (the whole blob, 200),
    ``500``/``429`` answer that status, ``("replace", BYTES_OR_FUNCTION)`` serves
    other content (a function gets the real content)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults: list[tuple[str, object]] = []
        self.log: list[tuple[str, str, str]] = []      # (method, path, Range header)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a) -> None:
                pass

            def _fault(self):
                for n, (needle, action) in enumerate(proxy.faults):
                    if needle in self.path:
                        del proxy.faults[n]
                        return action
                return None

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.log.append((self.command, self.path, self.headers.get("Range", "")))
                action = self._fault()
                if action in (500, 429):
                    self.send_response(action)
                    self.send_header("Content-Length", "0")
                    if action == 429:
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "accept-encoding")
                           and not (action == "norange" and k.lower() == "range")}
                req = urllib.request.Request(f"http://{proxy.upstream}{self.path}", data=body,
                                             headers=headers, method=self.command)
                try:
                    r = urllib.request.urlopen(req, timeout=30)
                except urllib.error.HTTPError as e:
                    r = e
                data = r.read()
                status = r.status if hasattr(r, "status") else r.code
                if isinstance(action, tuple) and action[0] == "replace":
                    data = action[1](data) if callable(action[1]) else action[1]
                self.send_response(status)
                for k, v in r.headers.items():
                    if k.lower() in ("content-length", "connection", "transfer-encoding"):
                        continue
                    if isinstance(action, tuple) and k.lower() == "docker-content-digest":
                        continue
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if action in ("drop", "truncate"):
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _forward

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address) -> None:
                pass                           # dropped connections are the point

        self.server = Server(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry (the registry accepts only bcrypt)."""
    import bcrypt
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def env_without_proxy() -> dict:
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env.pop(k, None)
    return env


# -- the CLI --------------------------------------------------------------------------

BOOT = ("import sys; from runner.cli import main; from runner.cli.images import register; "
        "register(main); sys.argv[0] = 'dockish'; main()")


def dockish(*args: str | os.PathLike, check: bool = True, input: bytes | None = None,
            env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``dockish ARGS`` with the image commands registered; text output."""
    import sys
    p = subprocess.run([sys.executable, "-c", BOOT, *map(str, args)], capture_output=True,
                       input=input, env=env, timeout=timeout)
    p.stdout, p.stderr = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if check and p.returncode != 0:
        raise AssertionError(f"dockish {' '.join(map(str, args))} exited {p.returncode}:\n"
                             f"{p.stdout}\n{p.stderr}")
    return p


def one_error(p: subprocess.CompletedProcess) -> str:
    """The single ``dockish: error:`` line of a command that failed with 125."""
    assert p.returncode == 125, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dockish: error: "), p.stderr
    return lines[0]


# -- oracles --------------------------------------------------------------------------

def umoci_unpack(layout_ref: str, bundle: Path) -> Path:
    """``umoci unpack --rootless`` of ``LAYOUT:TAG``; returns the rootfs."""
    subprocess.run(["umoci", "unpack", "--rootless", "--image", layout_ref, str(bundle)],
                   check=True, capture_output=True)
    return bundle / "rootfs"


def tree_differences(mounted: Path, rootfs: Path) -> list[str]:
    """What differs between a dockish mount and umoci's rootless unpack
    (contents, modes, links, xattrs, owners as umoci records them); device
    nodes, which rootless umoci cannot make, compare by name only."""
    import stat as st_

    from .diffworker import snapshot
    from .images import rootless_owner
    ours, theirs = snapshot(str(mounted)), snapshot(str(rootfs))
    problems = []
    if sorted(ours) != sorted(theirs):
        problems.append(f"names differ: only ours {sorted(set(ours) - set(theirs))[:5]}, "
                        f"only umoci's {sorted(set(theirs) - set(ours))[:5]}")
    for path in theirs:
        if path == "#hardlinks" or path not in ours:
            continue
        if ours[path].get("type") in (st_.S_IFCHR, st_.S_IFBLK):
            continue
        if ours[path] != theirs[path]:
            problems.append(f"{path}: {ours[path]} != {theirs[path]}")
    if ours.get("#hardlinks") != theirs.get("#hardlinks"):
        problems.append("hardlink sets differ")
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, rootfs)
            try:
                want = rootless_owner(os.getxattr(full, "user.rootlesscontainers",
                                                  follow_symlinks=False))
            except OSError:
                want = (0, 0)
            try:
                got = os.lstat(os.path.join(mounted, rel))
            except FileNotFoundError:
                continue
            if (got.st_uid, got.st_gid) != want:
                problems.append(f"{rel}: owner {(got.st_uid, got.st_gid)} != {want}")
    return problems


def mounted(image: str, where: Path):
    """A context manager: ``dockish mount IMAGE WHERE`` ... ``dockish umount``."""
    import contextlib

    from .diffbase import dockish_exe

    @contextlib.contextmanager
    def cm():
        where.mkdir(parents=True, exist_ok=True)
        res = subprocess.run([dockish_exe(), "mount", image, str(where)], capture_output=True,
                             text=True)
        assert res.returncode == 0, (image, res.stderr)
        try:
            yield where
        finally:
            subprocess.run([dockish_exe(), "umount", str(where)], check=True,
                           capture_output=True)
    return cm()


def store_listing(root: Path) -> dict[str, int]:
    """Every file of a store except scratch space and lock files: path -> size."""
    out = {}
    for dirpath, _dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == "tmp" or rel_dir.startswith("tmp/"):
            continue
        for name in filenames:
            if name.endswith(".lock"):
                continue
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = os.path.getsize(full)
    return out


def serve_files(files: dict[str, bytes]):
    """A context manager: a web server on 127.0.0.1 answering GET /NAME with
    ``files[NAME]`` (404 otherwise); yields its base URL."""
    import contextlib
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    @contextlib.contextmanager
    def cm():
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            server.server_close()
    return cm()
