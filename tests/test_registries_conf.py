"""registries.conf as Podman reads it, with real local registries: a mirror
serving while the main registry is down, a blocked registry refused, short
names through aliases and unqualified-search-registries, drop-ins and the
user's own file; Docker's daemon.json ``registry-mirrors`` for docker.io.
The ``/etc`` files live under ``DOCKISH_SYSTEM_CONFIG_ROOT`` (the test user
cannot write /etc, and must not change the machine's configuration)."""
from __future__ import annotations

import json
import os
import pty
import select
import sys
import time
from pathlib import Path

import pytest

from .registrybed import FaultProxy, Registry, dockish, free_port, one_error, skopeo_push


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, busybox_image):
    """A registry holding busybox under the names the tests pull."""
    r = Registry(tmp_path_factory.mktemp("mirror") / "reg")
    try:
        for name in ("app/busybox:1", "library/busybox:latest"):
            skopeo_push(r, busybox_image.oci, name)
        r.busybox_oci = busybox_image.oci
        yield r
    finally:
        r.stop()


@pytest.fixture
def etc(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DOCKISH_CONFIG", str(tmp_path / "config.json"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("DOCKISH_SYSTEM_CONFIG_ROOT", str(tmp_path / "sysroot"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CONTAINERS_REGISTRIES_CONF", raising=False)
    (tmp_path / "config.json").write_text('{"max-download-attempts": 1}')
    d = tmp_path / "sysroot" / "etc"
    (d / "containers").mkdir(parents=True)
    return d


def _dead_host() -> str:
    """A registry address where nothing listens: the main registry is down."""
    return f"127.0.0.1:{free_port()}"


def test_mirror_serves_while_the_main_registry_is_down(mirror, etc, dockish_root):
    main = _dead_host()
    name = f"{main}/app/busybox:1"
    assert "cannot reach the registry" in one_error(dockish("pull", name, check=False))
    (etc / "containers" / "registries.conf").write_text(f'''
[[registry]]
prefix = "{main}"
location = "{main}"
[[registry.mirror]]
location = "{_dead_host()}"
[[registry.mirror]]
location = "{mirror.host}"
''')
    p = dockish("pull", name)
    assert p.stdout.splitlines()[-1] == name          # stored under the name asked for
    assert dockish("inspect", "--format", "{{.Id}}", name).stdout.startswith("sha256:")


def test_location_rewrites_the_prefix(mirror, etc, dockish_root):
    (etc / "containers" / "registries.conf").write_text(f'''
[[registry]]
prefix = "registry.example.test/team"
location = "{mirror.host}/app"
''')
    p = dockish("pull", "registry.example.test/team/busybox:1")
    assert p.stdout.splitlines()[-1] == "registry.example.test/team/busybox:1"


def test_blocked_registry_is_refused(mirror, etc, dockish_root):
    name = f"{mirror.host}/app/busybox:1"
    dockish("pull", name)
    (etc / "containers" / "registries.conf").write_text(f'''
[[registry]]
location = "{mirror.host}"
blocked = true
''')
    dockish("rmi", name)
    err = one_error(dockish("pull", name, check=False))
    assert err == f"dockish: error: registry {mirror.host} is blocked in registries.conf"
    # pushing there is refused as well (an image pulled under another name
    # of the same registry, which the table does not block)
    other = f"localhost:{mirror.port}/app/busybox:1"
    dockish("pull", other)
    err = one_error(dockish("push", other, name, check=False))
    assert err == f"dockish: error: registry {mirror.host} is blocked in registries.conf"


def test_short_names_aliases_and_search(mirror, etc, tmp_path, dockish_root):
    dead = _dead_host()
    # a drop-in sets the search list; the user's file holds an alias
    (etc / "containers" / "registries.conf").write_text(
        'unqualified-search-registries = ["docker.io"]\n')
    dropins = etc / "containers" / "registries.conf.d"
    dropins.mkdir()
    (dropins / "10-search.conf").write_text(
        f'unqualified-search-registries = ["{dead}", "{mirror.host}"]\n')
    user = tmp_path / "xdg" / "containers" / "registries.conf.d"
    user.mkdir(parents=True)
    (user / "20-alias.conf").write_text(f'[aliases]\n"mybox" = "{mirror.host}/app/busybox"\n')
    # the alias
    p = dockish("pull", "mybox:1")
    assert p.stdout.splitlines()[-1] == f"{mirror.host}/app/busybox:1"
    assert dockish("inspect", "--format", "{{.Id}}", "mybox:1").stdout.startswith("sha256:")
    # unqualified search: the first registry is down, the second has it
    p = dockish("pull", "app/busybox:1")
    assert p.stdout.splitlines()[-1] == f"{mirror.host}/app/busybox:1"
    # in none of them: one line naming each
    err = one_error(dockish("pull", "app/nothing:1", check=False))
    assert dead in err and mirror.host in err
    # an explicitly empty search list refuses short names (Podman's rule)
    (dropins / "10-search.conf").write_text("unqualified-search-registries = []\n")
    err = one_error(dockish("pull", "app/busybox:1", check=False))
    assert "no unqualified-search-registries" in err


def _pull_on_a_terminal(name: str, answer: bytes) -> tuple[int, bytes]:
    """``dockish pull NAME`` on a pseudo-terminal, answering its prompt."""
    from .registrybed import BOOT
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", BOOT, "pull", name])
    out = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 1)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:         # EIO: the other side closed
                break
            if not chunk:
                break
            out += chunk
            if not answered and b"Choice" in out:
                os.write(fd, answer + b"\r")
                answered = True
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def test_short_name_mode(mirror, etc, tmp_path, monkeypatch, dockish_root):
    """Podman's short-name-mode with two unqualified-search registries that
    both serve the name: ``enforcing`` refuses without a terminal and asks
    on one (the answer is recorded in the aliases cache, Podman's file, and
    not asked again); ``disabled`` and ``permissive`` without a terminal try
    them in order; a bad mode is one line naming the file."""
    other = Registry(tmp_path / "other")
    try:
        skopeo_push(other, mirror.busybox_oci, "app/busybox:1")
        conf = etc / "containers" / "registries.conf"
        search = f'unqualified-search-registries = ["{mirror.host}", "{other.host}"]\n'
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        cache = tmp_path / "cache" / "containers" / "short-name-aliases.conf"

        conf.write_text(search + 'short-name-mode = "enforcing"\n')
        assert one_error(dockish("pull", "app/busybox:1", check=False)) == (
            "dockish: error: short-name resolution enforced but cannot prompt without a TTY")
        code, out = _pull_on_a_terminal("app/busybox:1", b"2")
        assert code == 0, out
        assert f"1) {mirror.host}/app/busybox".encode() in out
        assert f"2) {other.host}/app/busybox".encode() in out
        assert out.rstrip().endswith(f"{other.host}/app/busybox:1".encode()), out
        assert f'"app/busybox" = "{other.host}/app/busybox"' in cache.read_text()
        # recorded: no terminal needed any more, the chosen registry is used
        p = dockish("pull", "app/busybox:1")
        assert p.stdout.splitlines()[-1] == f"{other.host}/app/busybox:1"

        cache.unlink()
        for mode in ("disabled", "permissive"):
            conf.write_text(search + f'short-name-mode = "{mode}"\n')
            p = dockish("pull", "app/busybox:1")
            assert p.stdout.splitlines()[-1] == f"{mirror.host}/app/busybox:1"
        assert not cache.exists()

        conf.write_text(search + 'short-name-mode = "strict"\n')
        err = one_error(dockish("pull", "app/busybox:1", check=False))
        assert str(conf) in err and "invalid short-name-mode 'strict'" in err
    finally:
        other.stop()


def test_daemon_json_mirrors_for_docker_io(mirror, etc, tmp_path, dockish_root):
    """No registries.conf: a short name is docker.io's, as in Docker, and
    daemon.json's registry-mirrors serve it (rootless Docker's file first)."""
    (etc / "docker").mkdir()
    (etc / "docker" / "daemon.json").write_text(json.dumps(
        {"registry-mirrors": [f"http://{mirror.host}"]}))
    p = dockish("pull", "busybox")
    assert p.stdout.splitlines()[-1] == "docker.io/library/busybox:latest"
    # rootless Docker's own file wins over /etc's: its mirror (a proxy in
    # front of the same registry, which logs what it serves) is the one used
    proxy = FaultProxy(mirror.host)
    try:
        user = tmp_path / "xdg" / "docker" / "daemon.json"
        user.parent.mkdir(parents=True)
        user.write_text(json.dumps({"registry-mirrors": [f"http://{proxy.host}"]}))
        dockish("rmi", "busybox")
        dockish("pull", "busybox")
        assert any("/v2/library/busybox/manifests/" in path for _, path, _ in proxy.log)
    finally:
        proxy.stop()


def test_bad_files_are_one_line_and_a_fifo_does_not_hang(mirror, etc, dockish_root):
    conf = etc / "containers" / "registries.conf"
    conf.write_text("[[registry]\nlocation = \n")
    err = one_error(dockish("pull", "busybox", check=False))
    assert str(conf) in err and "invalid TOML" in err
    conf.write_text('[[registry]]\nlocation = "x.test"\nblocked = "yes"\n')
    assert "blocked must be true or false" in one_error(dockish("pull", "busybox",
                                                                 check=False))
    conf.unlink()
    os.mkfifo(conf)
    start = time.monotonic()
    err = one_error(dockish("pull", "busybox", check=False, timeout=60))
    assert str(conf) in err and time.monotonic() - start < 30


def test_insecure_registry_and_mirror(busybox_image, etc, tmp_path, dockish_root):
    """``127.1`` is 127.0.0.1 under a name that is not localhost, so TLS is
    verified by default and the self-signed registry is refused until its
    table (or the mirror's) says ``insecure = true``."""
    tls = Registry(tmp_path / "tls", tls=True)
    try:
        skopeo_push(tls, busybox_image.oci, "app/busybox:1")
        name = f"127.1:{tls.port}/app/busybox:1"
        assert "certificate_verify_failed" in one_error(dockish("pull", name, check=False))
        conf = etc / "containers" / "registries.conf"
        conf.write_text(f'[[registry]]\nlocation = "127.1:{tls.port}"\ninsecure = true\n')
        dockish("pull", name)
        # a mirror marked insecure serves a verified registry's name
        main = _dead_host()
        conf.write_text(f'[[registry]]\nlocation = "{main}"\n'
                        f'[[registry.mirror]]\nlocation = "127.1:{tls.port}"\n')
        assert "certificate_verify_failed" in one_error(
            dockish("pull", f"{main}/app/busybox:1", check=False))
        conf.write_text(f'[[registry]]\nlocation = "{main}"\n'
                        f'[[registry.mirror]]\nlocation = "127.1:{tls.port}"\n'
                        f'insecure = true\n')
        dockish("pull", f"{main}/app/busybox:1")
    finally:
        tls.stop()
