"""The global ``-l/--log-level`` and ``-D/--debug`` (Docker's): which of
dockish's log lines reach stderr, in logrus' text form as the docker CLI
writes them (``DEBU[0000] msg`` on a terminal, ``time=... level=debug
msg=...`` elsewhere).

The lines come from the ``dockish`` loggers: the registry client's
requests (``dockish.registry``) and the API service's requests
(``dockish.api``). Nothing is printed below ``info`` unless asked for, so
scripts see the same stderr as before. Only the ``dockish`` logger tree
gets a handler: the mount daemon's own logging setup stays its own.

What the level hides follows the docker CLI 28 (checked: ``docker -l error
ps -q --format x`` still prints its ``WARNING: Ignoring custom format``):
lines Docker itself prints to stderr, whatever the level (``WARNING: ...``,
``Unable to find image ...``), stay; dockish's own notes (``dockish: ...``,
things Docker never says, Podman's ``WARN[0000]`` lines) are warnings, and
``-l error``/``fatal`` hides them, as Podman's ``--log-level error`` hides
its warnings. ``system service``'s address line is information (hidden
from ``warn`` up)."""
from __future__ import annotations

import logging
import sys
import time

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
          "panic": logging.CRITICAL}
_SHORT = {logging.DEBUG: "DEBU", logging.INFO: "INFO", logging.WARNING: "WARN",
          logging.ERROR: "ERRO", logging.CRITICAL: "FATA"}
_LONG = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
         logging.ERROR: "error", logging.CRITICAL: "fatal"}
LOGGER = "dockish"


class LogrusFormatter(logging.Formatter):
    """logrus' TextFormatter: short form with seconds since start on a
    terminal, key=value pairs with an RFC 3339 time otherwise."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty
        self.began = time.time()

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if self.tty:
            since = int(record.created - self.began)
            return f"{_SHORT.get(record.levelno, 'INFO')}[{since:04d}] {msg}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        offset = time.strftime("%z", time.localtime(record.created))
        stamp += "Z" if offset.endswith("0000") or not offset else \
            offset[:3] + ":" + offset[3:]        # Go's RFC 3339: Z for a zero offset
        quoted = msg.replace("\\", "\\\\").replace('"', '\\"')
        return f'time="{stamp}" level={_LONG.get(record.levelno, "info")} msg="{quoted}"'


def parse(text: str) -> int:
    """A level's name as Docker takes it; ValueError in Docker's words."""
    level = LEVELS.get(text.lower())
    if level is None:
        raise ValueError(f"Unable to parse logging level: {text}")
    return level


def configure(level: int) -> None:
    """Send the ``dockish`` loggers' lines at ``level`` and above to stderr."""
    log = logging.getLogger(LOGGER)
    for h in list(log.handlers):
        log.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogrusFormatter(sys.stderr.isatty()))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def debugging() -> bool:
    return logging.getLogger(LOGGER).isEnabledFor(logging.DEBUG)


OWN_NOTE = "dockish: "


def shows(level: int) -> bool:
    """Whether lines of ``level`` reach stderr at the level the user set
    (before ``configure``: the default, info)."""
    log = logging.getLogger(LOGGER)
    return level >= (log.level or logging.INFO)


def note_shown(text: str) -> bool:
    """Whether a note the engine gives the user is printed: dockish's own
    (``dockish: ...``) are warnings under the log level, Docker's own words
    always are (see the module's docstring)."""
    return not text.startswith(OWN_NOTE) or shows(logging.WARNING)
