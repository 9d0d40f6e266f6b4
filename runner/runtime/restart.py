"""Restart policies (``run --restart``), as Docker's restart manager applies
them: the rules are pure (what a policy says after an exit, how long to
wait), the container's monitor (``runner.runtime.monitor``) acts on them.

Docker's rules: ``no`` never restarts; ``on-failure[:N]`` restarts after a
non-zero exit, at most N times (0: no limit); ``always`` and
``unless-stopped`` restart after every exit. A ``stop``, ``rm -f`` or a
``kill`` (with SIGKILL or the stop signal) ends it for good: there is no
daemon here that comes back, so ``always`` and ``unless-stopped`` only
differ in name. The
wait before a restart starts at 100 ms and doubles each time, up to a
minute; a run of 10 seconds or more starts it at 100 ms again.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

POLICIES = ("no", "always", "on-failure", "unless-stopped")
FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0          # seconds of running that start the backoff over
STOP_MARKER = "stop-requested"


@dataclass(frozen=True)
class RestartPolicy:
    """Docker's ``HostConfig.RestartPolicy``."""

    name: str = "no"
    max_retries: int = 0

    def as_docker(self) -> dict:
        return {"Name": self.name, "MaximumRetryCount": self.max_retries}

    @property
    def none(self) -> bool:
        return self.name in ("", "no")


def parse(text: str | None) -> RestartPolicy:
    """``--restart`` as Docker's client and daemon check it (their words)."""
    if not text:
        return RestartPolicy()
    name, colon, count = text.partition(":")
    if colon and not name:
        raise UsageError("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count)
        except ValueError:
            raise UsageError("invalid restart policy format: maximum retry count must be "
                             "an integer") from None
    return from_docker({"Name": name, "MaximumRetryCount": retries})


def from_docker(policy: dict | None) -> RestartPolicy:
    """An API request's ``RestartPolicy`` object, checked as the daemon does."""
    policy = policy or {}
    name = str(policy.get("Name") or "no")
    retries = int(policy.get("MaximumRetryCount") or 0)
    if name not in POLICIES:
        raise UsageError(f"invalid restart policy: unknown policy '{name}'; use one of "
                         "'no', 'always', 'on-failure', or 'unless-stopped'")
    if retries and name != "on-failure":
        raise UsageError("invalid restart policy: maximum retry count can only be used "
                         "with 'on-failure'")
    if retries < 0:
        raise UsageError("invalid restart policy: maximum retry count cannot be negative")
    return RestartPolicy(name, retries)


def current(container_dir: Path) -> RestartPolicy:
    """The container's policy as its config says now: ``update --restart``
    changes it while the container runs, and the next exit follows the new
    one (so the monitor reads it at each exit, not once at its start)."""
    import json
    try:
        data = json.loads((container_dir / "config.json").read_bytes())
        return from_docker(data.get("restart_policy"))
    except (OSError, ValueError, TypeError, AttributeError):
        return RestartPolicy()


def should_restart(policy: RestartPolicy, code: int, restarts: int, stopped: bool) -> bool:
    """Whether an exit with ``code`` is followed by a restart, after
    ``restarts`` restarts so far; never after a ``stop``."""
    if stopped or policy.none:
        return False
    if policy.name == "on-failure":
        return code != 0 and (policy.max_retries == 0 or restarts < policy.max_retries)
    return True


def next_delay(previous: float, ran_for: float) -> float:
    """The wait before the next restart: Docker's backoff (0: none yet)."""
    if ran_for >= RESET_AFTER or previous <= 0:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def ends_restarts(signum: int, stop_signal: str) -> bool:
    """Whether ``kill`` with ``signum`` ends the restarts, as Docker's: a
    SIGKILL, or any signal when the container has no ``--stop-signal``, or
    that signal (other signals leave the policy to act on the exit)."""
    import signal

    from .config import parse_signal
    return signum == signal.SIGKILL or not stop_signal or signum == parse_signal(stop_signal)


def monitor_gone(pid: int | None, start: int | None) -> bool:
    """The monitor process has ended: gone, another process by that pid, or
    a zombie its parent (a long-lived API server) has not reaped yet."""
    from .namespaces import alive
    if not alive(pid, start):
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def stop_requested(container_dir: Path) -> bool:
    """A ``stop`` was asked for since the last start (a file, so that the
    monitor and the stopping process never write the same state file)."""
    return (container_dir / STOP_MARKER).exists()


def request_stop(container_dir: Path) -> None:
    (container_dir / STOP_MARKER).touch(mode=0o600)


def clear_stop(container_dir: Path) -> None:
    (container_dir / STOP_MARKER).unlink(missing_ok=True)
