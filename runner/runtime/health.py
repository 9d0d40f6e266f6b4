"""HEALTHCHECK, run as Docker runs it: every interval the test command is
executed in the running container (the engine's ``exec``, in a process of
its own started from a thread of the container's monitor: ``python -m
runner.runtime.health CID ARGV...``, no CLI in between), and the result lands in the container's
state:
``starting`` until a check passes (failures during the start period do not
count), ``healthy``, or ``unhealthy`` after ``retries`` failures in a row.
``ps`` shows it, ``inspect`` has the last five results.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

from ..format import rfc3339

DEFAULTS = {"Interval": 30_000_000_000, "Timeout": 30_000_000_000,
            "StartPeriod": 0, "Retries": 3, "StartInterval": 5_000_000_000}
KEEP = 5                              # results kept in State.Health.Log
_EXEC = [sys.executable, "-m", "runner.runtime.health"]


def merged(image_hc: dict | None, flags: dict) -> dict:
    """The container's health config: the image's, overridden by run flags
    (``--health-*``; ``--no-healthcheck`` turns it off). Empty: none."""
    if flags.get("no_healthcheck"):
        return {}
    hc = dict(image_hc or {})
    if flags.get("cmd"):
        hc["Test"] = ["CMD-SHELL", flags["cmd"]]
    for key in ("Interval", "Timeout", "StartPeriod", "Retries", "StartInterval"):
        if flags.get(key) is not None:
            hc[key] = flags[key]
    test = hc.get("Test") or []
    if not test or test[0] == "NONE":
        return {}
    return hc


def argv_of(test: list[str]) -> list[str]:
    """``["CMD", args...]`` as is, ``["CMD-SHELL", "cmd"]`` under /bin/sh -c."""
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    return list(test[1:] if test[0] == "CMD" else test)


def _check(cid: str, argv: list[str], timeout: float) -> tuple[int, str]:
    """One check through the engine's exec (which relays the check's output
    and returns when the check does, whatever it leaves running), in a
    process of its own (``main``: the monitor's threads never fork); past
    the timeout the check is stopped (SIGTERM, forwarded into the
    container, then SIGKILL), as Docker stops it."""
    p = subprocess.Popen([*_EXEC, cid, *argv], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.terminate()
        try:
            p.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
        return -1, f"Health check exceeded timeout ({timeout:g}s)"
    return p.returncode, out.decode(errors="replace")


def run_checks(c, hc: dict, ended: threading.Event) -> None:
    """The loop; returns once ``ended`` is set (the container is gone)."""
    cfg = {**DEFAULTS, **{k: v for k, v in hc.items() if v}}
    interval, timeout = cfg["Interval"] / 1e9, cfg["Timeout"] / 1e9
    start_period, retries = cfg["StartPeriod"] / 1e9, int(cfg["Retries"])
    argv = argv_of(hc["Test"])
    started = time.time()
    health = {"Status": "starting", "FailingStreak": 0, "Log": []}
    c.write_state(health=health)
    start_interval = cfg["StartInterval"] / 1e9

    def pause() -> float:
        """Docker's: every --health-start-interval while in the start period
        and not yet healthy, every --health-interval after."""
        if health["Status"] == "starting" and time.time() - started < start_period:
            return start_interval
        return interval
    while not ended.wait(pause()):
        t0 = time.time()
        code, output = _check(c.id, argv, timeout)
        if ended.is_set():
            return
        if code == 0:
            health["FailingStreak"], health["Status"] = 0, "healthy"
        elif time.time() - started >= start_period or health["Status"] != "starting":
            health["FailingStreak"] += 1
            if health["FailingStreak"] >= retries:
                health["Status"] = "unhealthy"
        health["Log"] = [*health["Log"], {"Start": rfc3339(t0), "End": rfc3339(time.time()),
                                          "ExitCode": code, "Output": output[:4096]}][-KEEP:]
        c.write_state(health=health)


def start(c) -> threading.Event | None:
    """Start checking ``c`` if it has a health check; set the returned
    event when the container has ended."""
    hc = c.config.healthcheck
    if not hc:
        return None
    ended = threading.Event()
    threading.Thread(target=run_checks, args=(c, hc, ended), daemon=True,
                     name="healthcheck").start()
    return ended


def main(argv: list[str]) -> int:
    """``python -m runner.runtime.health CID ARGV...``: one check's process; the
    check's exit code (its output on stdout, an error as one line)."""
    from ..engine import Engine, ExecOptions
    from ..errors import exit_code, known_errors, message
    try:
        return Engine().exec(argv[0], ExecOptions(command=argv[1:]))
    except known_errors() as e:
        sys.stderr.write(f"dockish: error: {message(e)}\n")
        return exit_code(e)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
