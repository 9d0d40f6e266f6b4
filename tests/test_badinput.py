"""Bad input ends in one line, tried as an attacker (or a careless CI
script) would: env files that are not UTF-8, hold a NUL or are FIFOs; a
build context whose ``.dockerignore`` or Dockerfile is a FIFO, a directory,
a symlink to a host file or a malformed pattern; ``COPY --chown`` ids that
are out of range or names an image's ``/etc/passwd`` (a FIFO, a symlink out
of the image) cannot give; a registry whose token or error bodies have the
wrong JSON shape; ``-v`` specs Docker refuses. Each must end with Docker's
exit code and exactly one line on stderr, no traceback, within a timeout
(a FIFO must not hang the command), and leave nothing behind: no container
record, no volume, no temporary file."""
from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from pathlib import Path

import pytest

from .diffbase import dockish_exe
from .runbed import (
    no_leftovers,  # noqa: F401 - a fixture
    ok,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")

UNPULLABLE = "127.0.0.1:9/never/pulled:1"     # bad flags must be refused before any pull
LIMIT = 20          # seconds: a command that waits on a FIFO fails the test, never hangs it


def dockish(*args: str, timeout: float = LIMIT) -> subprocess.CompletedProcess:
    """The real ``dockish``; a command still running after ``timeout`` is
    killed and fails the test (it was blocked)."""
    try:
        return subprocess.run([dockish_exe(), *args], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dockish {' '.join(args)} still running after {timeout}s (blocked)")


def one_line(res: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """Exit ``code``, exactly one ``dockish: error:`` line on stderr holding
    ``words``, no traceback."""
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dockish: error: "), res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def nothing_left(root: Path) -> None:
    """No container record, no volume, no temporary file in the store."""
    assert ok("ps", "-a", "-q") == ""
    assert ok("volume", "ls", "-q") == ""
    tmp = root / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir()), list(tmp.iterdir())


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _running(bb: str) -> str:
    return ok("run", "-d", "--network", "none", bb, "sleep", "60").strip()


# ------------------------------------------------------------------ env files

def _layer_dirs(root: Path) -> list[str]:
    layers = root / "layers" / "sha256"
    return sorted(os.listdir(layers)) if layers.exists() else []


@pytest.mark.parametrize("kind, words", [
    ("latin1", ("invalid utf8", "line 2")),
    ("fifo", ("not a regular file",)),
    ("dir", ("is a directory",)),
    ("nul", ("BAD", "NUL")),            # it used to leave an `Exited (125)` container
])
def test_bad_env_file_is_one_line_for_run_create_and_exec(bb, tmp_path, dockish_root, kind,
                                                          words):
    """Refused before anything is made (record, init layer, anonymous
    volume) and before the image is looked up; a FIFO is not waited on."""
    bad = tmp_path / f"{kind}.env"
    if kind == "fifo":
        _fifo(bad)
    elif kind == "dir":
        bad.mkdir()
    else:
        bad.write_bytes(b"OK=1\nNAME=Jos\xe9\n" if kind == "latin1" else b"OK=1\nBAD=a\x00b\n")
    ok("run", "--rm", "--network", "none", bb, "true")        # the image is in the store
    layers = _layer_dirs(dockish_root)
    for cmd in ("run", "create"):
        one_line(dockish(cmd, "--rm", "--network", "none", "-v", "/data", "--env-file",
                         str(bad), bb, "true"), 125, *words)
    # no "Unable to find image" line, no pull: the flags are refused first
    one_line(dockish("run", "--rm", "--env-file", str(bad), UNPULLABLE, "true"), 125, *words)
    nothing_left(dockish_root)
    assert _layer_dirs(dockish_root) == layers           # no init layer was made
    cid = _running(bb)
    one_line(dockish("exec", "--env-file", str(bad), cid, "true"), 125, *words)
    ok("rm", "-f", cid)


def test_env_file_from_the_shells_process_substitution_is_read(bb):
    """`--env-file <(...)` is an anonymous pipe the user's shell writes, as
    Docker users pass it: read to its end, while a named FIFO is refused."""
    res = subprocess.run(
        ["bash", "-c", f'"$0" run --rm --network none --env-file <(printf "A=from-pipe\\n") '
         f'{bb} sh -c \'echo "$A"\'', dockish_exe()],
        capture_output=True, text=True, timeout=120)
    assert (res.returncode, res.stdout) == (0, "from-pipe\n"), res.stderr


# ------------------------------------------------------------------ -v

@pytest.mark.parametrize("spec, words", [
    (":/x", ("invalid spec: :/x: empty section between colons",)),
    ("/h:/x:", ("empty section between colons",)),
    ("a:b:c:d", ("too many colons",)),
    ("name/../../..:/x", ("invalid characters for a local volume name",)),
    ("data\n:/x", ("invalid characters",)),
    ("/tmp:/", ("can't be '/'",)),
])
def test_bad_volume_specs_make_nothing(bb, tmp_path, dockish_root, spec, words):
    """Every -v is checked before anything is made: a good anonymous volume
    listed first must not be left behind by a bad one after it."""
    one_line(dockish("run", "--rm", "--network", "none", "-v", "/data", "-v", spec, bb,
                     "true"), 125, *words)
    one_line(dockish("create", "-v", spec, UNPULLABLE), 125, *words)
    nothing_left(dockish_root)


@pytest.mark.parametrize("spec", ["99999:80", "8080:0", "8080:http", "127.0.0.1:x:80"])
def test_bad_publish_specs_are_one_line_before_any_pull(dockish_root, spec):
    one_line(dockish("run", "--rm", "-p", spec, UNPULLABLE), 125, "invalid port spec", spec)
    nothing_left(dockish_root)


def test_anonymous_volumes_of_rm_containers_go_in_every_path(bb, dockish_root):
    # a normal end
    ok("run", "--rm", "--network", "none", "-v", "/data", bb, "true")
    nothing_left(dockish_root)
    # the command cannot be found: the container is never started
    res = dockish("run", "--rm", "--network", "none", "-v", "/data", bb, "/no/such/cmd")
    assert res.returncode == 127 and "Traceback" not in res.stderr, res.stderr
    nothing_left(dockish_root)
    # a name already taken: no second record, no new volume
    cid = ok("create", "--name", "taken", "--network", "none", bb, "true").strip()
    one_line(dockish("run", "--rm", "--name", "taken", "-v", "/data", bb, "true"), 125,
             "taken")
    assert ok("ps", "-a", "-q", "--no-trunc").split() == [cid]
    assert ok("volume", "ls", "-q") == ""
    ok("rm", cid)
    nothing_left(dockish_root)
    # a bad capability after the mounts were checked
    one_line(dockish("run", "--rm", "-v", "/data", "--cap-add", "NOPE", bb, "true"), 125)
    nothing_left(dockish_root)


# ------------------------------------------------------------------ the build context

def _ctx(tmp_path: Path, bb: str, dockerfile: str | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile or f"FROM {bb}\nCOPY . /ctx/\n")
    (ctx / "file.txt").write_text("data\n")
    return ctx


def _build(ctx: Path, *args: str) -> subprocess.CompletedProcess:
    return dockish("build", "-t", "bad:input", *args, str(ctx), timeout=120)


@pytest.mark.parametrize("pattern", ["[", "file[.txt", "[z-a]", "!"])
def test_malformed_dockerignore_pattern_is_one_line(bb, tmp_path, dockish_root, pattern):
    ctx = _ctx(tmp_path, bb)
    (ctx / ".dockerignore").write_text(f"*.log\n{pattern}\n")
    line = one_line(_build(ctx), 1, ".dockerignore")
    assert "syntax error in pattern" in line or "illegal exclusion pattern" in line
    nothing_left(dockish_root)


def test_copy_exclude_with_a_malformed_pattern_is_one_line(bb, tmp_path, dockish_root):
    ctx = _ctx(tmp_path, bb, f"FROM {bb}\nCOPY --exclude=[ . /ctx/\n")
    one_line(_build(ctx), 1, "COPY failed", "syntax error in pattern")
    nothing_left(dockish_root)


@pytest.mark.parametrize("name", [".dockerignore", "Dockerfile"])
def test_context_file_that_is_a_fifo_does_not_hang_the_build(bb, tmp_path, dockish_root,
                                                             name):
    ctx = _ctx(tmp_path, bb)
    (ctx / name).unlink(missing_ok=True)
    _fifo(ctx / name)
    one_line(_build(ctx), 1, name, "not a regular file")
    nothing_left(dockish_root)


def test_dockerfile_that_is_a_directory_or_a_symlink_out_of_the_context(bb, tmp_path,
                                                                       dockish_root):
    """The context is untrusted: its Dockerfile (or .dockerignore) as a
    symlink is resolved inside the context, never to a host file."""
    host = tmp_path / "host-dockerfile"
    host.write_text(f"FROM {bb}\nLABEL leaked=yes\n")
    ctx = _ctx(tmp_path, bb)
    (ctx / "Dockerfile").unlink()
    (ctx / "Dockerfile").symlink_to(host)
    one_line(_build(ctx), 1, "Dockerfile")
    assert "bad:input" not in ok("images")
    (ctx / "Dockerfile").unlink()
    (ctx / "Dockerfile").mkdir()
    one_line(_build(ctx), 1, "Dockerfile", "is a directory")
    # a symlink inside the context is followed there, as Docker does
    (ctx / "Dockerfile").rmdir()
    (ctx / "real.Dockerfile").write_text(f"FROM {bb}\nLABEL inside=yes\n")
    (ctx / "Dockerfile").symlink_to("real.Dockerfile")
    hostignore = tmp_path / "host-ignore"
    hostignore.write_text("[\n")
    (ctx / ".dockerignore").symlink_to(hostignore)      # a host file: not read
    assert _build(ctx).returncode == 0
    nothing_left(dockish_root)


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_dockerfile_flag_and_secret_source_must_be_regular_files(bb, tmp_path, dockish_root,
                                                                 kind):
    ctx = _ctx(tmp_path, bb, f"FROM {bb}\nRUN --mount=type=secret,id=s cat /run/secrets/s\n")
    odd = tmp_path / "odd"
    _fifo(odd) if kind == "fifo" else odd.mkdir()
    want = "not a regular file" if kind == "fifo" else "is a directory"
    one_line(_build(ctx, "-f", str(odd)), 1, str(odd), want)
    one_line(_build(ctx, "--secret", f"id=s,src={odd}"), 1, "secret s", want)
    nothing_left(dockish_root)


# ------------------------------------------------------------------ COPY --chown

@pytest.mark.parametrize("chown, words", [
    ("99999999999", ("unable to convert uid/gid chown string to host mapping",
                     "out of range")),
    ("0:99999999999", ("out of range",)),
    ("4294967295", ("out of range",)),
    ("nosuchuser", ("no such user: nosuchuser",)),
    ("root:nosuchgroup", ("no such group: nosuchgroup",)),
    ("\u00b2", ("no such user",)),              # str.isdigit() is true, int() fails
    (":0", ("invalid chown string",)),
])
def test_copy_chown_that_cannot_be_mapped_is_one_line(bb, tmp_path, dockish_root, chown,
                                                      words):
    ctx = _ctx(tmp_path, bb, f"FROM {bb}\nCOPY --chown={chown} file.txt /x\n")
    one_line(_build(ctx), 1, "Dockerfile:2", *words)
    nothing_left(dockish_root)


def test_chown_reads_the_images_passwd_never_a_fifo_or_the_host(bb, tmp_path, dockish_root):
    """A stage that makes /etc/passwd a FIFO, then one that makes it a
    symlink to a host path holding a user: ``--chown`` by that name finds
    no user either way, at once, and never reads the host's file."""
    hostpw = tmp_path / "host-passwd"
    hostpw.write_text("hostonly:x:4242:4242::/:/bin/sh\n")
    ctx = _ctx(tmp_path, bb, f"FROM {bb}\n"
                             "RUN rm /etc/passwd && mkfifo /etc/passwd\n"
                             "COPY --chown=hostonly file.txt /x\n")
    one_line(_build(ctx), 1, "no such user: hostonly")
    (ctx / "Dockerfile").write_text(f"FROM {bb}\n"
                                    f"RUN rm /etc/passwd && ln -s {hostpw} /etc/passwd\n"
                                    "COPY --chown=hostonly file.txt /x\n")
    one_line(_build(ctx), 1, "no such user: hostonly")
    nothing_left(dockish_root)


# ------------------------------------------------------------------ registry JSON shapes

class _BadRegistry:
    """A registry on 127.0.0.1 that answers with the wrong shapes: a token
    service returning ``token_body``; manifests refused with ``error_body``."""

    def __init__(self, token_body: bytes | None, error_body: bytes | None,
                 tags_body: bytes | None = None) -> None:
        bed = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.startswith("/token"):
                    return self._send(200, token_body or b"{}")
                if token_body is not None and "Authorization" not in self.headers:
                    realm = f"http://127.0.0.1:{bed.port}/token"
                    return self._send(401, b'{"errors": []}', {
                        "WWW-Authenticate": f'Bearer realm="{realm}",service="bad"'})
                if self.path.startswith("/v2/") and "/tags/list" in self.path:
                    return self._send(200, tags_body or b"{}")
                if self.path == "/v2/":
                    return self._send(200, b"{}")
                if "/blobs/" in self.path and error_body is None:
                    return self._send(404, b'{"errors": []}')    # push: nothing there yet
                self._send(400, error_body or b"{}")

            do_HEAD = do_GET

            def do_POST(self) -> None:            # an upload opened, but no Location
                self._send(202, b"{}")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("body", [b"[1, 2]", b"5", b'"token"', b"null", b"not json",
                                  b'{"token": 5}', b'{"token": ["a"]}'])
def test_token_response_of_the_wrong_shape_is_one_line(dockish_root, tmp_path, monkeypatch,
                                                       body):
    monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "config.json"))
    with _BadRegistry(body, None) as host:
        one_line(dockish("pull", f"{host}/bad/image:1"), 125,
                 "registry returned an invalid token response")
    nothing_left(dockish_root)


@pytest.mark.parametrize("body", [b'{"errors": 5}', b'{"errors": "x"}', b"[]", b"7",
                                  b'{"errors": [5, {"code": 5, "message": ["m"]}]}'])
def test_registry_error_body_of_the_wrong_shape_is_one_line(dockish_root, tmp_path,
                                                            monkeypatch, body):
    monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "config.json"))
    with _BadRegistry(None, body) as host:
        one_line(dockish("pull", f"{host}/bad/image:1"), 125, host)
    nothing_left(dockish_root)


def test_push_to_a_registry_that_gives_no_upload_location_is_one_line(busybox_image,
                                                                       dockish_root, tmp_path,
                                                                       monkeypatch):
    monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "config.json"))
    ok("load", "-i", str(busybox_image.docker_archive))
    with _BadRegistry(None, None) as host:
        ok("tag", "docker.io/dockish-test/busybox:latest", f"{host}/bad/image:1")
        one_line(dockish("push", f"{host}/bad/image:1"), 125, "no upload location")


@pytest.mark.parametrize("body", [b'{"tags": 5}', b"[1]", b"3"])
def test_tag_list_of_the_wrong_shape_is_no_traceback(dockish_root, tmp_path, monkeypatch,
                                                     body):
    monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "config.json"))
    with _BadRegistry(None, b'{"errors": []}', tags_body=body) as host:
        res = dockish("pull", "--all-tags", f"{host}/bad/image")
    assert "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) <= 1, res.stderr
    nothing_left(dockish_root)


@pytest.mark.parametrize("config", [{"insecure-registries": 5},
                                    {"registry-mirrors": [1]},
                                    {"auths": {"HOST": {"auth": 5}}},
                                    {"auths": {"HOST": {"username": ["u"]}}},
                                    {"auths": 5}])
def test_config_file_of_the_wrong_shape_is_one_line(dockish_root, tmp_path, monkeypatch,
                                                    config):
    cfg = tmp_path / "config.json"
    monkeypatch.setenv("DOCKISH_CONFIG", str(cfg))
    with _BadRegistry(b'{"token": "t"}', None) as host:
        cfg.write_text(json.dumps(config).replace("HOST", host))
        res = dockish("pull", f"{host}/bad/image:1")
    one_line(res, 125)
    nothing_left(dockish_root)


def test_config_file_that_is_a_fifo_does_not_hang_pull(dockish_root, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKISH_CONFIG", str(_fifo(tmp_path / "config.json")))
    with _BadRegistry(None, None) as host:
        one_line(dockish("pull", f"{host}/bad/image:1"), 125, "not a regular file")
    nothing_left(dockish_root)
