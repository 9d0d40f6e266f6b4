"""How dockish shows numbers, times and tables, as Docker shows them: one
place for every command (Go templates are ``gotemplate``). Pure functions:
they return text, the CLI prints it."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

ZERO_TIME = "0001-01-01T00:00:00Z"      # Go's zero time, as Docker shows "never"


def size(n: float, digits: int = 3) -> str:
    """Docker's sizes: decimal units, three significant digits (``12.3MB``;
    ``digits=4`` is go-units' ``HumanSize``, ``12.34MB``)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            if unit == "B":
                return f"{int(n)}B"
            return f"{n:.{digits}g}{unit}"
        n /= 1000
    return f"{n}B"


def binary_size(n: float) -> str:
    """Memory as ``docker info`` shows it: binary units (``15.5GiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n}B"


def ago(ts: float | None) -> str:
    """Docker's "CREATED" of images: ``2 years ago``, ``About an hour ago``."""
    if ts is None:
        return "N/A"
    s = max(time.time() - ts, 0)
    if s < 1:
        return "Less than a second ago"
    for limit, div, one, many in ((60, 1, "1 second", "seconds"),
                                  (3600, 60, "About a minute", "minutes"),
                                  (86400 * 2, 3600, "About an hour", "hours"),
                                  (86400 * 14, 86400, "1 day", "days"),
                                  (86400 * 60, 86400 * 7, "1 week", "weeks"),
                                  (86400 * 730, 86400 * 30, "1 month", "months"),
                                  (float("inf"), 86400 * 365, "1 year", "years")):
        if s < limit:
            n = int(s // div)
            return f"{one} ago" if n <= 1 else f"{n} {many} ago"
    return "N/A"


def duration_since(t: float | None) -> str:
    """How long since ``t``, as ``ps`` says it (``Up 5 minutes``, ``Exited
    (0) 2 hours ago``); empty for never."""
    if not t:
        return ""
    d = max(0, time.time() - t)
    if d < 1:
        return "Less than a second"
    if d < 60:
        return f"{int(d)} second{'s' if int(d) != 1 else ''}"
    if d < 3600:
        n = int(d // 60)
        return "About a minute" if n == 1 else f"{n} minutes"
    if d < 86400:
        n = int(d // 3600)
        return "About an hour" if n == 1 else f"{n} hours"
    n = int(d // 86400)
    return f"{n} day{'s' if n != 1 else ''}"


def rfc3339(t: float) -> str:
    """RFC 3339 with nanoseconds (history and health log times)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + \
        f".{int((t % 1) * 1e9):09d}Z"


def iso(t: float | None) -> str:
    """``inspect``'s times: RFC 3339 with nanoseconds; Go's zero time for never."""
    return rfc3339(t) if t else ZERO_TIME


def iso_seconds(t: float) -> str:
    """RFC 3339 to the second (a build's "created" times)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def go_time(ts: float | None) -> str:
    """Go's default time text (``images --format``'s CreatedAt)."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def parse_time(text: str | None) -> float | None:
    """An RFC 3339 time (an image config's "created") as seconds; None if not one."""
    if not text or not isinstance(text, str):
        return None
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", text)
    if not m:
        return None
    tz = m[3] or "Z"
    dt = datetime.fromisoformat(m[1] + ("+00:00" if tz == "Z" else tz))
    return dt.timestamp() + float(m[2] or 0)


def table(rows: list[list[str]] | list[tuple[str, ...]]) -> list[str]:
    """Docker's tables: columns padded to their widest cell, three spaces
    apart, no trailing blanks. The first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def truncate_command(cmd: str, no_trunc: bool = False) -> str:
    """A command as ``ps`` shows it: quoted, cut at 20 characters."""
    if not no_trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    return f'"{cmd}"'
