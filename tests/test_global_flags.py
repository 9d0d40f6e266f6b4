"""Docker's global flags: ``--config DIR`` (where ``login`` writes and
``pull`` reads credentials), ``-D``/``--debug`` and ``-l``/``--log-level``
(the registry client's requests as logrus' debug lines on stderr, the API
service's requests), against a real registry with Basic auth and a real
service socket."""
from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import time

import pytest

from .diffbase import dockish_exe
from .registrybed import dockish, one_error
from .test_registry_auth import (  # noqa: F401 - a fixture
    PASSWORD,
    USER,
    _config,  # noqa: F401 - autouse: only the credentials a test writes
    basic_registry,
)


@pytest.fixture(scope="module")
def reg(basic_registry):  # noqa: F811 - the fixture imported above
    return basic_registry


def _login(reg, cfg) -> None:
    p = dockish("--config", cfg, "login", "-u", USER, "--password-stdin", reg.host,
                input=PASSWORD.encode() + b"\n")
    assert p.stdout == "Login Succeeded\n"


def test_config_dir_is_where_login_writes_and_pull_reads(reg, tmp_path):
    cfg = tmp_path / "cfgdir"
    _login(reg, cfg)
    auths = json.loads((cfg / "config.json").read_text())["auths"]
    assert base64.b64decode(auths[reg.host]["auth"]).decode() == f"{USER}:{PASSWORD}"
    assert not (tmp_path / "dockish" / "config.json").exists()
    assert not (tmp_path / "docker-config").exists()
    assert "authentication required" in one_error(dockish("pull", reg.busybox, check=False))
    dockish("--config", cfg, "pull", reg.busybox)
    assert reg.busybox.split("/", 1)[1].split(":")[0] in dockish("images").stdout
    dockish("--config", cfg, "logout", reg.host)
    assert reg.host not in json.loads((cfg / "config.json").read_text()).get("auths", {})


def _debug_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " level=debug " in line]


def test_debug_and_log_level_show_the_registry_requests(reg, tmp_path):
    cfg = tmp_path / "cfgdir"
    _login(reg, cfg)
    p = dockish("--config", cfg, "-D", "pull", reg.busybox)
    lines = _debug_lines(p.stderr)
    request = re.compile(r'^time="[0-9T:+Z-]+" level=debug msg="GET https?://'
                         + re.escape(reg.host) + r'/v2/[^ ]*: (\d+) [A-Za-z ]+"$')
    codes = [m.group(1) for m in map(request.match, lines) if m]
    assert "401" in codes and "200" in codes, p.stderr       # the challenge, then with auth
    assert any("/manifests/" in line for line in lines), p.stderr
    dockish("rmi", reg.busybox)
    assert _debug_lines(dockish("--config", cfg, "-l", "debug", "pull", reg.busybox).stderr)
    dockish("rmi", reg.busybox)
    for quiet in ((), ("-l", "info"), ("--log-level", "error")):
        p = dockish("--config", cfg, *quiet, "pull", reg.busybox)
        assert "level=" not in p.stderr, (quiet, p.stderr)
        dockish("rmi", reg.busybox)
    bad = dockish("-l", "bogus", "images", check=False)
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr.strip().splitlines() == \
        ["dockish: error: Unable to parse logging level: bogus"]


def test_debug_service_logs_each_request(tmp_path):
    sock = tmp_path / "d.sock"
    log = tmp_path / "service.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([dockish_exe(), "-D", "system", "service", "--time", "0",
                                 f"unix://{sock}"], stdout=out, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 30
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < end, log.read_text()
            time.sleep(0.05)
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(sock))
        s.sendall(b"GET /v1.45/_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        got = b""
        while chunk := s.recv(65536):
            got += chunk
        s.close()
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"OK"), got
        end = time.monotonic() + 10
        while "GET /v1.45/_ping" not in log.read_text():
            assert time.monotonic() < end, log.read_text()
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(10)


def test_debug_lines_take_logrus_forms():
    """On a terminal ``DEBU[0000] msg`` (seconds since start), elsewhere
    logrus' key=value line with the message quoted."""
    import logging

    from runner.loglevel import LogrusFormatter, parse
    record = logging.LogRecord("dockish.registry", logging.DEBUG, __file__, 1,
                               'GET %s: "%d"', ("http://r/v2/", 200), None)
    assert LogrusFormatter(tty=True).format(record) == 'DEBU[0000] GET http://r/v2/: "200"'
    plain = LogrusFormatter(tty=False).format(record)
    assert re.fullmatch(r'time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)" '
                        r'level=debug msg="GET http://r/v2/: \\"200\\""', plain), plain
    assert [parse(x) for x in ("debug", "INFO", "warn", "error", "fatal")] == \
        [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
