"""``dockish system service``: the Docker Engine API on a unix socket, driven
by real clients — the docker CLI (28.x), docker-py, testcontainers and
docker-compose v1 — against real rootless containers. No mocks: each test
starts the service as a subprocess on a socket in its tmp dir."""
from __future__ import annotations

import io
import json
import os
import pty
import shutil
import socket
import stat
import subprocess
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from .diffbase import dockish_exe
from .runbed import drain

DOCKER = "/usr/local/bin/docker"
IMAGE = "busybox:latest"


# ------------------------------------------------------------------ the bed

class Service:
    """A running ``dockish system service`` on a socket of its own."""

    def __init__(self, sock: Path, home: Path, idle: int = 0) -> None:
        self.sock = sock
        self.home = home
        self.log = open(home / "service.log", "wb")
        self.proc = subprocess.Popen([dockish_exe(), "system", "service", "--time", str(idle),
                                      f"unix://{sock}"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while not sock.exists():
            assert self.proc.poll() is None, self.logs()
            assert time.monotonic() < end, "the service did not start listening"
            time.sleep(0.05)

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def env(self, **extra: str) -> dict:
        env = dict(os.environ, DOCKER_HOST=self.host, DOCKER_CONFIG=str(self.home / "docker"),
                   DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false")
        env.update(extra)
        return env

    def logs(self) -> str:
        self.log.flush()
        return (self.home / "service.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def service(tmp_path, dockish_root, busybox_image):
    """The service over this test's store, with the busybox test image
    loaded and named ``busybox:latest`` (what a docker user names)."""
    subprocess.run([dockish_exe(), "load", "-i", str(busybox_image.docker_archive)],
                   check=True, capture_output=True)
    subprocess.run([dockish_exe(), "tag", busybox_image.repo, IMAGE], check=True,
                   capture_output=True)
    home = tmp_path / "svc"
    home.mkdir()
    svc = Service(home / "docker.sock", home)
    yield svc
    try:
        ids = subprocess.run([dockish_exe(), "ps", "-aq", "--no-trunc"], capture_output=True,
                             text=True).stdout.split()
        if ids:
            subprocess.run([dockish_exe(), "rm", "-f", *ids], capture_output=True)
    finally:
        svc.stop()


def docker(svc: Service, *args: str, input: str | None = None, timeout: float = 120,
           env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, input=input,
                          timeout=timeout, env=env or svc.env())


def ok(svc: Service, *args: str, **kw) -> str:
    res = docker(svc, *args, **kw)
    assert res.returncode == 0, (args, res.returncode, res.stdout, res.stderr, svc.logs())
    return res.stdout


def raw_request(svc: Service, method: str, path: str, body: bytes = b"",
                headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request on the socket, read to the end (Connection: close)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(svc.sock))
    head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    top, _, rest = data.partition(b"\r\n\r\n")
    lines = top.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    if hdrs.get("transfer-encoding") == "chunked":
        out = b""
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out += rest[:n]
            rest = rest[n + 2:]
        rest = out
    return status, hdrs, rest


def client(svc: Service):
    import docker as dockerpy
    return dockerpy.DockerClient(base_url=svc.host, version="auto", timeout=120)


def leftovers() -> list[str]:
    return subprocess.run([dockish_exe(), "ps", "-aq"], capture_output=True,
                          text=True).stdout.split()


# ------------------------------------------------------------------ the service itself

def test_socket_is_private_and_versions_negotiate(service):
    st = os.lstat(service.sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    status, hdrs, body = raw_request(service, "GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert hdrs["api-version"] == "1.50" and hdrs["ostype"] == "linux"
    assert "docker-experimental" in hdrs and hdrs["server"].startswith("dockish/")
    status, hdrs, body = raw_request(service, "HEAD", "/_ping")
    assert status == 200 and body == b""
    status, _, body = raw_request(service, "GET", "/v1.41/version")
    v = json.loads(body)
    assert status == 200 and v["ApiVersion"] == "1.50" and v["MinAPIVersion"] == "1.24"
    status, _, body = raw_request(service, "GET", "/v1.12/version")
    assert status == 400 and "too old" in json.loads(body)["message"]
    status, _, body = raw_request(service, "GET", "/v1.50/containers/nope/json")
    assert status == 404 and json.loads(body) == {"message": "No such container: nope"}
    status, _, body = raw_request(service, "GET", "/v1.50/nothing/here")
    assert status == 404 and "message" in json.loads(body)
    out = ok(service, "version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}")
    assert out.split() == ["1.50", "1.50"]


def test_idle_service_exits_and_containers_outlive_it(tmp_path, service):
    ok(service, "run", "-d", "--name", "long", "--network", "none", IMAGE, "sleep", "300")
    service.proc.kill()                  # killing it loses nothing
    service.proc.wait()
    res = subprocess.run([dockish_exe(), "ps", "--format", "{{.Names}}"], capture_output=True,
                         text=True)
    assert "long" in res.stdout.split()
    home = tmp_path / "idle"
    home.mkdir()
    idle = Service(home / "d.sock", home, idle=1)
    try:
        assert ok(idle, "ps", "--format", "{{.Names}}").split() == ["long"]
        idle.proc.wait(15)               # an idle second later it is gone, and its socket
        assert not (home / "d.sock").exists()
    finally:
        idle.stop()


def test_a_squatted_socket_path_is_refused(tmp_path, dockish_root):
    path = tmp_path / "d.sock"
    path.write_text("mine")
    res = subprocess.run([dockish_exe(), "system", "service", f"unix://{path}"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 125 and "not a socket" in res.stderr
    assert path.read_text() == "mine"


# ------------------------------------------------------------------ docker CLI

def test_docker_run_exit_codes(service):
    res = docker(service, "run", "--rm", "--network", "none", IMAGE, "echo", "hello")
    assert (res.returncode, res.stdout) == (0, "hello\n"), (res.stderr, service.logs())
    res = docker(service, "run", "--rm", "--network", "none", IMAGE, "sh", "-c",
                 "echo out; echo err >&2; exit 3")
    assert res.returncode == 3 and "out" in res.stdout and "err" in res.stdout + res.stderr
    res = docker(service, "run", "--rm", "--network", "none", IMAGE, "/no/such/command")
    assert res.returncode == 127, (res.stdout, res.stderr)
    res = docker(service, "run", "--rm", "--network", "none", IMAGE, "/etc")
    assert res.returncode == 126, (res.stdout, res.stderr)
    res = docker(service, "run", "--rm", "--network", "none", "--blkio-weight", "300", IMAGE,
                 "true")        # a field dockish cannot honour: named, never ignored
    assert res.returncode == 125 and "BlkioWeight" in res.stderr, res.stderr
    res = docker(service, "run", "--rm", "no-such-image-here:1", "true")
    assert res.returncode == 125
    assert leftovers() == []


def test_docker_detached_logs_exec_stop_rm(service):
    cid = ok(service, "run", "-d", "--name", "web", "--network", "none", IMAGE, "sh", "-c",
             "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done").strip()
    assert len(cid) == 64
    follow = subprocess.Popen([DOCKER, "logs", "-f", "web"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=service.env())
    out = ok(service, "exec", "web", "sh", "-c", "echo in-$HOSTNAME; exit 0")
    assert out.startswith("in-")
    res = docker(service, "exec", "web", "sh", "-c", "exit 7")
    assert res.returncode == 7
    ps = ok(service, "ps", "--format", "{{.Names}} {{.State}}")
    assert "web running" in ps
    assert ok(service, "inspect", "-f", "{{.State.Running}} {{.Config.Image}}",
              "web").split() == ["true", IMAGE]
    ok(service, "stop", "web")
    out, err = follow.communicate(timeout=30)
    assert b"started" in out and b"bye" in out, (out, err)
    assert follow.returncode == 0
    assert ok(service, "ps", "-a", "--filter", "status=exited",
              "--format", "{{.Names}}").split() == ["web"]
    assert ok(service, "ps", "-a", "--filter", "name=nomatch", "-q") == ""
    ok(service, "rm", "web")
    res = docker(service, "rm", "web")
    assert res.returncode == 1 and "No such container" in res.stderr


def test_docker_run_it_through_a_pty(service):
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(DOCKER, [DOCKER, "run", "--rm", "-it", "--network", "none", IMAGE, "sh"],
                  service.env())
    try:
        assert b"#" in drain(fd, 30, until=b"# "), service.logs()
        os.write(fd, b"tty && echo the-$((6*7))\n")
        out = drain(fd, 20, until=b"the-42")
        assert b"the-42" in out and b"/dev/" in out, out
        os.write(fd, b"exit 5\n")
        drain(fd, 10)
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 5


def test_docker_cp_both_ways(service, tmp_path):
    ok(service, "run", "-d", "--name", "box", "--network", "none", IMAGE, "sleep", "300")
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("from the host")
    ok(service, "cp", str(src), "box:/tmp/")
    assert ok(service, "exec", "box", "cat", "/tmp/in/sub/f.txt") == "from the host"
    ok(service, "exec", "box", "sh", "-c", "mkdir /out && echo made > /out/m && "
       "ln -s /etc/passwd /out/link")
    dest = tmp_path / "back"
    ok(service, "cp", "box:/out", str(dest))
    assert (dest / "m").read_text() == "made\n"
    assert os.readlink(dest / "link") == "/etc/passwd"      # a link, never followed
    res = docker(service, "cp", "box:/no/such", str(tmp_path / "x"))
    assert res.returncode != 0 and "no/such" in res.stderr


def one_file_tar(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_an_upload_whose_body_is_still_coming_when_the_copy_starts(service):
    """``PUT /containers/ID/archive`` whose body arrives in two parts a
    second apart (a slow client, or a big tar): the copy into the container
    starts while the body is still coming, and the copy's helper must not
    hold the body's pipe open (it did, and the request then never ended)."""
    cl = client(service)
    c = cl.containers.run(IMAGE, ["sleep", "300"], detach=True, network_mode="none")
    tar = one_file_tar("slow.txt", b"slow")

    def slowly():
        yield tar[:512]
        time.sleep(1.5)
        yield tar[512:]
    done = []
    t = threading.Thread(target=lambda: done.append(c.put_archive("/tmp", slowly())),
                         daemon=True)
    t.start()
    t.join(60)
    assert done == [True], service.logs()
    assert c.exec_run(["cat", "/tmp/slow.txt"]).output == b"slow"
    c.remove(force=True)


def test_docker_build_then_run(service, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nCOPY hello.txt /hello.txt\n"
                                    "RUN echo built > /built\nCMD [\"cat\", \"/hello.txt\"]\n")
    (ctx / "hello.txt").write_text("hi from the context\n")
    out = ok(service, "build", "-t", "built:1", str(ctx), timeout=300)
    assert "Successfully built" in out and "Successfully tagged built:1" in out
    res = docker(service, "run", "--rm", "--network", "none", "built:1")
    assert res.stdout == "hi from the context\n", (res.stderr, service.logs())
    assert ok(service, "run", "--rm", "--network", "none", "built:1", "cat",
              "/built") == "built\n"
    images = ok(service, "images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert "built:1" in images and IMAGE in images


def test_docker_pull_push_via_registry(service, tmp_path):
    from .registrybed import Registry
    reg = Registry(tmp_path / "reg")
    try:
        target = f"{reg.host}/api/busybox:v1"
        ok(service, "tag", IMAGE, target)
        out = ok(service, "push", target)
        assert "digest: sha256:" in out
        ok(service, "rmi", target)
        ok(service, "rmi", IMAGE)
        assert IMAGE not in ok(service, "images", "--format",
                               "{{.Repository}}:{{.Tag}}").split()
        out = ok(service, "pull", target)
        assert "Downloaded newer image" in out or "Pull complete" in out
        assert ok(service, "run", "--rm", "--network", "none", target, "echo",
                  "pulled") == "pulled\n"
    finally:
        reg.stop()


def test_docker_import_history_images_and_rmi_conflicts(service, tmp_path):
    """`docker import` through the API (a tar body, and a URL that cannot be
    fetched: a 400), then history, images filters and rmi's conflict rules
    as Docker's daemon words them."""
    ok(service, "create", "--name", "src", "--network", "none", IMAGE, "true")
    tar = tmp_path / "rootfs.tar"
    ok(service, "export", "-o", str(tar), "src")
    ok(service, "rm", "src")
    with open(tar, "rb") as f:
        res = subprocess.run([DOCKER, "import", "-c", 'CMD ["echo", "imported"]', "-m",
                              "from stdin", "-", "imp:1"], stdin=f, capture_output=True,
                             text=True, env=service.env(), timeout=120)
    assert res.returncode == 0, (res.stderr, service.logs())
    iid = res.stdout.strip()
    assert iid.startswith("sha256:") and len(iid) == 71
    assert ok(service, "run", "--rm", "--network", "none", "imp:1") == "imported\n"
    assert ok(service, "history", "--format", "{{.CreatedBy}}|{{.Comment}}",
              "imp:1") == "dockish import -|from stdin\n"
    res = docker(service, "import", "http://127.0.0.1:9/rootfs.tar", "nope:1")
    assert res.returncode == 1 and res.stderr.startswith(
        "Error response from daemon: http://127.0.0.1:9/rootfs.tar: "), res.stderr
    assert ok(service, "images", "--filter", "reference=imp", "--format",
              "{{.Repository}}:{{.Tag}} {{.ID}}") == f"imp:1 {iid[7:19]}\n"
    # a stopped container keeps its image unless forced
    user = ok(service, "create", "--name", "user", "--network", "none", "imp:1").strip()
    res = docker(service, "rmi", "imp:1")
    assert (res.returncode, res.stderr) == (1, (
        'Error response from daemon: conflict: unable to remove repository reference "imp:1" '
        f"(must force) - container {user[:12]} is using its referenced image {iid[7:19]}\n"))
    res = docker(service, "rmi", iid[7:19])
    assert (res.returncode, res.stderr) == (1, (
        f"Error response from daemon: conflict: unable to delete {iid[7:19]} (must be forced) "
        f"- image is being used by stopped container {user[:12]}\n"))
    ok(service, "tag", "imp:1", "imp:2")                 # two names: a name is untagged
    assert ok(service, "rmi", "imp:2") == "Untagged: imp:2\n"
    # a running one even then
    busy = ok(service, "run", "-d", "--network", "none", "imp:1", "sleep", "60").strip()
    res = docker(service, "rmi", "-f", iid[7:19])
    assert (res.returncode, res.stderr) == (1, (
        f"Error response from daemon: conflict: unable to delete {iid[7:19]} (cannot be "
        f"forced) - image is being used by running container {busy[:12]}\n"))
    ok(service, "rm", "-f", busy)
    assert ok(service, "rmi", "-f", "imp:1") == f"Untagged: imp:1\nDeleted: {iid}\n"
    res = docker(service, "image", "inspect", "imp:1")
    assert res.returncode == 1 and "No such image: imp:1" in res.stderr


def test_stdin_without_a_terminal_run_i_and_exec_i(service):
    """`docker run -i` and `docker exec -i` without -t: stdin reaches the
    process through the hijacked connection and its half-close ends it."""
    res = docker(service, "run", "-i", "--rm", "--network", "none", IMAGE, "cat",
                 input="hi\nthere\n")
    assert (res.returncode, res.stdout) == (0, "hi\nthere\n"), (res.stderr, service.logs())
    res = docker(service, "run", "-i", "--rm", "--network", "none", IMAGE, "sh", "-c",
                 "wc -c; exit 3", input="x" * 300000)
    assert (res.returncode, res.stdout.strip()) == (3, "300000"), res.stderr
    ok(service, "run", "-d", "--name", "box", "--network", "none", IMAGE, "sleep", "60")
    assert ok(service, "exec", "-i", "box", "sh", "-c", "tr a-z A-Z",
              input="quiet\n") == "QUIET\n"
    # the engine's exec instances through docker-py's low-level calls
    api = client(service).api
    eid = api.exec_create("box", ["sh", "-c", "echo out; exit 4"])["Id"]
    assert api.exec_inspect(eid)["Running"] is False and api.exec_inspect(eid)["Pid"] == 0
    assert api.exec_start(eid) == b"out\n"
    info = api.exec_inspect(eid)
    assert (info["Running"], info["ExitCode"]) == (False, 4) and info["Pid"] > 0
    import docker as dockerpy
    with pytest.raises(dockerpy.errors.APIError) as e:
        api.exec_start(eid)
    assert e.value.status_code == 409
    with pytest.raises(dockerpy.errors.NotFound):
        api.exec_inspect("0" * 64)
    ok(service, "rm", "-f", "box")
    assert leftovers() == []


def test_docker_volumes_and_system_df(service):
    ok(service, "volume", "create", "data")
    assert "data" in ok(service, "volume", "ls", "--format", "{{.Name}}").split()
    ok(service, "run", "--rm", "--network", "none", "-v", "data:/data", IMAGE, "sh", "-c",
       "echo kept > /data/f")
    assert ok(service, "run", "--rm", "--network", "none", "-v", "data:/data", IMAGE, "cat",
              "/data/f") == "kept\n"
    assert ok(service, "volume", "inspect", "-f", "{{.Name}}", "data").strip() == "data"
    df = ok(service, "system", "df")
    assert "Images" in df and "Local Volumes" in df
    ok(service, "volume", "rm", "data")
    res = docker(service, "volume", "inspect", "data")
    assert res.returncode != 0 and "No such volume" in res.stderr


# ------------------------------------------------------------------ docker-py

def test_dockerpy_containers(service):
    import docker as dockerpy
    cl = client(service)
    out = cl.containers.run(IMAGE, ["sh", "-c", "echo one; echo two"], network_mode="none",
                            remove=True)
    assert out == b"one\ntwo\n"
    with pytest.raises(dockerpy.errors.ContainerError) as err:
        cl.containers.run(IMAGE, ["sh", "-c", "exit 4"], network_mode="none", remove=True)
    assert err.value.exit_status == 4
    c = cl.containers.run(IMAGE, ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; "
                                  "done; sleep 300"], network_mode="none", detach=True,
                          labels={"app": "api-test"})
    lines = []
    for chunk in c.logs(stream=True, follow=True):
        lines.append(chunk)
        if b"line3" in b"".join(lines):
            break
    assert b"line1\nline2\nline3\n" in b"".join(lines)
    code, (out, err) = c.exec_run(["sh", "-c", "echo to-out; echo to-err >&2; exit 2"],
                                  demux=True)
    assert (code, out, err) == (2, b"to-out\n", b"to-err\n")
    assert [x.id for x in cl.containers.list(filters={"label": "app=api-test"})] == [c.id]
    assert cl.containers.list(filters={"label": "app=other"}) == []
    assert c.put_archive("/tmp", one_file_tar("put.txt", b"put"))
    stream, st = c.get_archive("/tmp/put.txt")
    assert st["name"] == "put.txt" and st["size"] == 3
    got = tarfile.open(fileobj=io.BytesIO(b"".join(stream)))
    assert got.extractfile("put.txt").read() == b"put"
    c.kill()
    assert c.wait()["StatusCode"] == 137
    c.remove()
    with pytest.raises(dockerpy.errors.NotFound):
        cl.containers.get(c.id)
    with pytest.raises(dockerpy.errors.ImageNotFound):
        cl.images.get("no-such:image")
    with pytest.raises(dockerpy.errors.APIError) as err:
        cl.containers.create(IMAGE, "true", blkio_weight=300)
    assert err.value.status_code == 400 and "BlkioWeight" in str(err.value)
    assert leftovers() == []


def _running(name: str) -> str:
    """The id of container ``name`` once it runs (``dockish inspect``)."""
    end = time.monotonic() + 60
    while True:
        res = subprocess.run([dockish_exe(), "inspect", "-f", "{{.State.Running}} {{.Id}}",
                              name], capture_output=True, text=True)
        if res.stdout.startswith("true "):
            return res.stdout.split()[1]
        assert time.monotonic() < end, (res.stdout, res.stderr)
        time.sleep(0.1)


def test_wait_answers_the_code_of_a_run_rm_container_cli_and_api(service, dockish_root):
    """As Docker's daemon answers ``wait`` for a ``--rm`` container once it is
    gone: ``dockish run --rm`` in one shell, ``dockish wait`` in another and
    docker-py's ``wait`` (not-running and removed) through the socket all
    get its real code; so do both for a container docker-py ran with
    auto_remove. The kept codes do not pile up: an hour-old one goes at the
    next removal."""
    import docker as dockerpy
    cl = client(service)
    run = subprocess.Popen([dockish_exe(), "run", "--rm", "--name", "rmw", "--network", "none",
                            IMAGE, "sh", "-c", "sleep 4; exit 7"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rmw = _running("rmw")
    shell = subprocess.Popen([dockish_exe(), "wait", "rmw"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    c = cl.containers.get("rmw")
    got: dict[str, int] = {}
    threads = [threading.Thread(target=lambda cond=cond: got.__setitem__(
        cond, c.wait(condition=cond)["StatusCode"])) for cond in ("not-running", "removed")]
    for t in threads:
        t.start()
    assert run.wait(60) == 7, run.communicate()
    assert shell.communicate(timeout=60) == ("7\n", "") and shell.returncode == 0
    for t in threads:
        t.join(60)
    assert got == {"not-running": 7, "removed": 7}
    assert leftovers() == []
    with pytest.raises(dockerpy.errors.NotFound):        # gone, as in Docker
        cl.containers.get("rmw")

    d = cl.containers.run(IMAGE, ["sh", "-c", "sleep 4; exit 5"], network_mode="none",
                          detach=True, auto_remove=True)
    shell = subprocess.Popen([dockish_exe(), "wait", d.id[:12]], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    removed: list[int] = []
    waiter = threading.Thread(target=lambda: removed.append(
        d.wait(condition="removed")["StatusCode"]))
    waiter.start()
    assert d.wait()["StatusCode"] == 5
    assert shell.communicate(timeout=60) == ("5\n", "") and shell.returncode == 0
    waiter.join(60)
    assert removed == [5] and leftovers() == []

    kept = dockish_root / "exits"
    assert {rmw, d.id} <= set(os.listdir(kept))
    hour_ago = time.time() - 3700
    os.utime(kept / rmw, (hour_ago, hour_ago))
    ok(service, "run", "--rm", "--network", "none", IMAGE, "true")
    assert rmw not in os.listdir(kept) and d.id in os.listdir(kept)


def test_dockerpy_images_build_pull_volumes(service, tmp_path):
    from .registrybed import Registry
    cl = client(service)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo py > /py\n")
    img, logs = cl.images.build(path=str(ctx), tag="pybuilt:1")
    assert "pybuilt:1" in img.tags
    assert any("Successfully built" in (e.get("stream") or "") for e in logs)
    assert cl.containers.run("pybuilt:1", ["cat", "/py"], network_mode="none",
                             remove=True) == b"py\n"
    reg = Registry(tmp_path / "reg")
    try:
        name = f"{reg.host}/py/busybox"
        img.tag(name, "t1")
        pushed = list(cl.images.push(name, "t1", stream=True, decode=True))
        assert not any("error" in e for e in pushed), pushed
        cl.images.remove(f"{name}:t1")
        events = list(cl.api.pull(name, "t1", stream=True, decode=True))
        assert any(e.get("status", "").startswith("Digest: sha256:") for e in events), events
        assert cl.images.get(f"{name}:t1").id == img.id
    finally:
        reg.stop()
    v = cl.volumes.create("pyvol")
    assert v.name == "pyvol" and [x.name for x in cl.volumes.list()] == ["pyvol"]
    v.remove()
    assert cl.volumes.list() == []


def test_twenty_clients_at_once_leave_nothing(service):
    import docker as dockerpy
    errors: list = []
    codes: list[int] = []
    layers_before = sorted(os.listdir(Path(os.environ["DOCKISH_ROOT"]) / "layers"))

    def one(i: int) -> None:
        try:
            cl = dockerpy.DockerClient(base_url=service.host, timeout=300)
            c = cl.containers.create(IMAGE, ["sh", "-c", f"exit {i % 5}"],
                                     network_mode="none")
            c.start()
            codes.append(c.wait()["StatusCode"])
            c.remove()
        except Exception as e:          # noqa: BLE001 - reported by the assert
            errors.append(repr(e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert errors == [], (errors, service.logs())
    assert sorted(codes) == sorted(i % 5 for i in range(20))
    assert leftovers() == []
    root = Path(os.environ["DOCKISH_ROOT"])
    assert os.listdir(root / "containers") == []
    assert sorted(os.listdir(root / "layers")) == layers_before      # no init layer left
    assert processes_of(root, besides={service.proc.pid}) == []
    with open("/proc/mounts") as f:
        assert str(root) not in f.read()


def processes_of(root: Path, besides: set[int]) -> list[str]:
    """Processes of ours started for the store ``root`` (monitors, views,
    holders inherit its DOCKISH_ROOT), other than ``besides`` and us."""
    found = []
    key = f"DOCKISH_ROOT={root}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) in besides or int(pid) == os.getpid():
            continue
        try:
            if key in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
        except OSError:
            continue
    return found


# ------------------------------------------------------------------ testcontainers, compose

def test_testcontainers_exposed_port(service):
    os.environ["DOCKER_HOST"] = service.host
    os.environ["TESTCONTAINERS_RYUK_DISABLED"] = "true"    # no reaper image offline
    # the test bed may itself run in a Docker container (/.dockerenv): then
    # testcontainers guesses Docker-in-Docker and looks for a bridge gateway;
    # dockish publishes on this host, as a plain machine would see it
    os.environ["TESTCONTAINERS_CONNECTION_MODE"] = "docker_host"
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    try:
        page = "<h1>from a testcontainer</h1>"
        ctr = DockerContainer(IMAGE).with_exposed_ports(8080).with_command(
            ["sh", "-c", f"mkdir /www && echo '{page}' > /www/index.html && "
             "echo serving && exec httpd -f -p 8080 -h /www"])
        with ctr:
            wait_for_logs(ctr, "serving", timeout=60)
            host = ctr.get_container_host_ip()
            port = ctr.get_exposed_port(8080)
            end = time.monotonic() + 30
            while True:
                try:
                    body = urllib.request.urlopen(f"http://{host}:{port}/",
                                                  timeout=5).read().decode()
                    break
                except OSError:
                    assert time.monotonic() < end
                    time.sleep(0.2)
            assert page in body
    finally:
        for k in ("DOCKER_HOST", "TESTCONTAINERS_RYUK_DISABLED", "TESTCONTAINERS_CONNECTION_MODE"):
            os.environ.pop(k, None)
    assert leftovers() == []


def test_compose_v1_up_ps_logs_down(service, tmp_path):
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose (v1) is missing: run scripts/setup as root"
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "docker-compose.yml").write_text(f"""version: "3"
services:
  hello:
    image: {IMAGE}
    network_mode: none
    command: ["sh", "-c", "echo compose-says-hi; sleep 300"]
""")
    env = service.env(COMPOSE_PROJECT_NAME="apitest")

    def run(*args: str) -> str:
        res = subprocess.run([compose, *args], cwd=proj, capture_output=True, text=True,
                             env=env, timeout=180)
        assert res.returncode == 0, (args, res.stdout, res.stderr, service.logs())
        return res.stdout + res.stderr
    run("up", "-d")
    assert "Up" in run("ps")
    end = time.monotonic() + 20
    while "compose-says-hi" not in run("logs"):
        assert time.monotonic() < end
        time.sleep(0.2)
    run("down")
    assert leftovers() == []


def test_events_is_a_valid_stream(service):
    status, hdrs, body = raw_request(service, "GET",
                                     f"/v1.50/events?until={int(time.time())}")
    assert status == 200 and body == b""


def test_docker_events_tell_a_containers_life(service):
    """`docker events` over the socket: what a container went through, in
    order, filtered by its name, with a Go template."""
    t0 = int(time.time()) - 1
    ok(service, "run", "--rm", "--network", "none", "--name", "evt", IMAGE, "true")
    time.sleep(0.3)
    out = ok(service, "events", "--since", str(t0), "--until", str(int(time.time()) + 1),
             "--filter", "container=evt", "--format", "{{.Type}} {{.Action}}")
    actions = [line.split()[1] for line in out.splitlines() if line.startswith("container ")]
    for a, b in zip(["create", "start", "die", "destroy"],
                    ["start", "die", "destroy", None], strict=True):
        assert a in actions, out
        if b is not None:
            assert actions.index(a) < actions.index(b), out


# ------------------------------------------------------------------ hostile input

def _context_tar(members: list[tuple[str, str, str]]) -> bytes:
    """A build context tar: (name, "file"|"symlink"|"hardlink", data or target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, data in members:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                raw = data.encode()
                ti.size = len(raw)
                tf.addfile(ti, io.BytesIO(raw))
            else:
                ti.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                ti.linkname = data
                tf.addfile(ti)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["symlink-then-write", "dotdot", "absolute", "hardlink-out"])
def test_a_hostile_build_context_tar_reaches_nothing_of_the_host(service, tmp_path, name):
    """A context tar is anyone's (a CI job building a pull request through
    the socket): a symlink out followed by a member below it, '..' and
    absolute names, a hardlink to a host file — none writes or links
    outside the service's private scratch; the build fails or builds only
    what is inside."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("host\n")
    dockerfile = ("Dockerfile", "file", "FROM busybox:latest\nCOPY . /ctx\n")
    members = {
        "symlink-then-write": [("out", "symlink", str(victim)), ("out/pwned", "file", "x\n")],
        "dotdot": [(f"../../../../../../..{victim}/pwned", "file", "x\n")],
        "absolute": [(f"{victim}/pwned", "file", "x\n")],
        "hardlink-out": [("keep-link", "hardlink", str(victim / "keep"))],
    }[name]
    status, _, body = raw_request(service, "POST", "/v1.50/build?t=hostile:1",
                                  _context_tar([dockerfile, *members]),
                                  {"Content-Type": "application/x-tar"})
    assert sorted(os.listdir(victim)) == ["keep"], body[-500:]
    assert (victim / "keep").read_text() == "host\n"
    assert os.stat(victim / "keep").st_nlink == 1            # no link was made to it
    if status == 200 and b'"errorDetail"' not in body:
        # built: whatever the image holds came from the tar, not the host
        out = ok(service, "run", "--rm", "--network", "none", "hostile:1", "sh", "-c",
                 "ls -la /ctx; cat /ctx/keep-link 2>/dev/null; true")
        assert "host" not in out
