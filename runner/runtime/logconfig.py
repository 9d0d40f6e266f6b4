"""A container's logging driver (``--log-driver``/``--log-opt``, the API's
``HostConfig.LogConfig``, compose's ``logging:``): pure rules.

Docker's three drivers that keep a log on the host are here: ``json-file``
(the default: no rotation unless ``max-size`` is given), ``local`` (rotated
by default: 20 MB a file, 5 files) and ``none`` (nothing to read: ``logs``
is refused with the daemon's words). Both keeping drivers write Docker's
json-file records (``runner.runtime.logs``); ``local``'s rotated files are
not compressed here. Any other driver (syslog, journald, fluentd, ...)
sends the log to a service dockish does not talk to, and is refused as
Docker's daemon refuses a driver it has not.
"""
from __future__ import annotations

from ..errors import DockishError, UsageError

DEFAULT = "json-file"
DRIVERS = ("json-file", "local", "none")
# the options Docker's json-file and local drivers take (ValidateLogOpt)
_JSON_OPTS = ("max-size", "max-file", "compress", "labels", "labels-regex", "env",
              "env-regex", "tag")
NONE_KEPT = 1_000_000
_LOCAL_OPTS = ("max-size", "max-file", "compress")
_LOCAL_DEFAULTS = {"max-size": 20_000_000, "max-file": 5}
_TRUE = ("1", "t", "T", "true", "TRUE", "True")      # Go's strconv.ParseBool
_FALSE = ("0", "f", "F", "false", "FALSE", "False")
_DECIMAL = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


class LogConfigError(UsageError):
    """A driver or option Docker's daemon refuses (its words)."""


class NoReadingError(DockishError):
    """``logs`` of a container whose driver keeps nothing (Docker's daemon:
    exit 1)."""

    exit_code = 1
    from_daemon = True


def human_size(text: str) -> int:
    """Docker's ``units.FromHumanSize`` (decimal: ``1k`` is 1000 bytes)."""
    t = text.strip().lower()
    t = t[:-1] if t.endswith("b") and len(t) > 1 and not t[-2].isdigit() else t
    num = t.rstrip("kmgtpb")
    unit = t[len(num):]
    try:
        value = float(num)
    except ValueError:
        raise LogConfigError(f"invalid size: '{text}'") from None
    if unit not in _DECIMAL:
        raise LogConfigError(f"invalid size: '{text}'")
    return int(value * _DECIMAL[unit])


def parse_opts(items: list[str]) -> dict[str, str]:
    """``--log-opt KEY=VALUE`` (each); a flag without ``=`` is the CLI's
    usage error."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f'invalid argument "{item}" for "--log-opt" flag: invalid '
                             f"log option {item!r}: must be key=value")
        out[key] = value
    return out


def parse(driver: str | None, opts: dict[str, str] | None) -> dict:
    """The record the container keeps: ``{"Type", "Config"}`` as Docker's
    LogConfig, plus ``max_size``/``max_file`` (bytes, files; 0: no
    rotation) its writer rotates by."""
    driver = driver or DEFAULT
    opts = {str(k): str(v) for k, v in (opts or {}).items()}
    if driver not in DRIVERS:
        raise LogConfigError(f"logger: no log driver named '{driver}' is registered")
    record = {"Type": driver, "Config": dict(opts), "max_size": 0, "max_file": 1}
    if driver == "none":
        # nothing for logs to read; the API's attach relays output through
        # the log, so the last megabyte is kept for it, in one file
        record["max_size"] = NONE_KEPT
        return record
    allowed = _JSON_OPTS if driver == "json-file" else _LOCAL_OPTS
    for key in opts:
        if key not in allowed:
            raise LogConfigError(f"unknown log opt '{key}' for {driver} log driver")
    if driver == "local":
        record["max_size"], record["max_file"] = (_LOCAL_DEFAULTS["max-size"],
                                                  _LOCAL_DEFAULTS["max-file"])
    if "max-size" in opts:
        size = human_size(opts["max-size"])
        if size <= 0:
            raise LogConfigError("max-size must be a positive number")
        record["max_size"] = size
    if "max-file" in opts:
        try:
            files = int(opts["max-file"])
        except ValueError:
            raise LogConfigError(f'strconv.Atoi: parsing "{opts["max-file"]}": invalid '
                                 "syntax") from None
        if files < 1:
            raise LogConfigError("max-file cannot be less than 1")
        record["max_file"] = files
    if "compress" in opts:
        if opts["compress"] not in _TRUE + _FALSE:
            raise LogConfigError(f'strconv.ParseBool: parsing "{opts["compress"]}": invalid '
                                 "syntax")
        if driver == "json-file" and opts["compress"] in _TRUE and \
                (record["max_file"] == 1 or not record["max_size"]):
            raise LogConfigError("compress cannot be true when max-file is less than 2 or "
                                 "max-size is not set")
    return record


def docker_view(record: dict | None) -> dict:
    """``HostConfig.LogConfig`` as inspect shows it."""
    record = record or {}
    return {"Type": record.get("Type") or DEFAULT, "Config": dict(record.get("Config") or {})}


def check_readable(record: dict | None) -> None:
    """``logs`` is refused for a driver that keeps nothing (Docker's words)."""
    if (record or {}).get("Type") == "none":
        raise NoReadingError("configured logging driver does not support reading")
