"""``build --progress``: the builder's steps shown as BuildKit shows them.

The builder reports in the classic builder's words (``Step 2/3 : RUN ...``,
`` ---> Using cache``, the RUN step's output); ``Plain`` turns that stream
into BuildKit's plain lines, each step a numbered vertex with its output
lines timed from its start and its end as ``DONE 0.4s`` or ``CACHED``::

    #1 [internal] load build definition from Dockerfile
    #1 DONE 0.0s

    #2 [1/2] FROM busybox
    #2 DONE 0.0s

    #3 [2/2] RUN echo hi
    #3 0.212 hi
    #3 DONE 0.5s

``RawJSON`` gives the same events as BuildKit's ``rawjson`` status
objects, one JSON object a line. Pure: the caller says where lines go.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Callable

MODES = ("auto", "plain", "tty", "quiet", "rawjson")
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_NOISE = re.compile(r"^( ---> .*|Removing intermediate container \w+)$")


def check_mode(mode: str) -> str:
    from ..errors import UsageError
    if mode not in MODES:
        raise UsageError(f'invalid argument "{mode}" for "--progress" flag: use auto, plain, '
                         "tty, quiet or rawjson")
    return mode


def printer(mode: str, emit: Callable[[str], None]) -> Plain | None:
    """The printer for ``--progress MODE`` (None: the classic output);
    ``tty`` draws no live display here: it prints the plain lines."""
    if mode in ("plain", "tty"):
        return Plain(emit)
    if mode == "rawjson":
        return RawJSON(emit)
    return None


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


class Plain:
    """Classic builder text in (``feed``), BuildKit's plain lines out (``emit``)."""

    def __init__(self, emit: Callable[[str], None], clock: Callable[[], float] = time.time):
        self.emit = emit
        self.clock = clock
        self.buf = ""
        self.n = 0
        self.started = 0.0
        self.cached = False
        self.open = False
        self._vertex("[internal] load build definition from Dockerfile")
        self._close()

    # -- the events, as BuildKit's plain printer shows them --------------------------------

    def on_start(self, number: int, name: str) -> None:
        self.emit(f"#{number} {name}")

    def on_log(self, number: int, elapsed: float, line: str) -> None:
        self.emit(f"#{number} {elapsed:.3f} {line}")

    def on_done(self, number: int, took: float, cached: bool) -> None:
        self.emit(f"#{number} CACHED" if cached else f"#{number} DONE {took:.1f}s")
        self.emit("")

    def on_error(self, number: int, message: str) -> None:
        self.emit(f"#{number} ERROR: {message}")

    # -- the classic stream ----------------------------------------------------------------

    def feed(self, text: str) -> None:
        self.buf += text
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self._line(line)

    def _line(self, line: str) -> None:
        m = _STEP.match(line)
        if m:
            self._close()
            self._vertex(f"[{m.group(1)}/{m.group(2)}] {m.group(3)}")
        elif line == " ---> Using cache":
            self.cached = True
        elif _NOISE.match(line):
            pass
        elif self.open:
            self.on_log(self.n, self.clock() - self.started, line)

    def _vertex(self, name: str) -> None:
        self.n += 1
        self.started = self.clock()
        self.cached = False
        self.open = True
        self.on_start(self.n, name)

    def _close(self) -> None:
        if self.open:
            if self.buf:
                self._line(self.buf)
                self.buf = ""
            self.open = False
            self.on_done(self.n, self.clock() - self.started, self.cached)

    def finish(self, image_id: str, names: list[str]) -> None:
        """The last step's end and BuildKit's export vertex."""
        self._close()
        self._vertex("exporting to image")
        self.on_log_plain(f"writing image {image_id} done")
        for name in names:
            self.on_log_plain(f"naming to {name} done")
        self._close()

    def on_log_plain(self, text: str) -> None:
        self.emit(f"#{self.n} {text}")

    def fail(self, message: str) -> None:
        if self.open:
            self.open = False
            self.on_error(self.n, message)


class RawJSON(Plain):
    """BuildKit's ``rawjson``: its ``SolveStatus`` objects, one a line."""

    def _digest(self, number: int) -> str:
        return "sha256:" + hashlib.sha256(f"dockish-vertex-{number}".encode()).hexdigest()

    def on_start(self, number: int, name: str) -> None:
        self.names = getattr(self, "names", {})
        self.names[number] = name
        self.emit(json.dumps({"vertexes": [{"digest": self._digest(number), "name": name,
                                            "started": _rfc3339(self.clock())}]}))

    def on_log(self, number: int, elapsed: float, line: str) -> None:
        data = base64.b64encode((line + "\n").encode()).decode()
        self.emit(json.dumps({"logs": [{"vertex": self._digest(number), "stream": 1,
                                        "data": data, "timestamp": _rfc3339(self.clock())}]}))

    def on_log_plain(self, text: str) -> None:
        self.on_log(self.n, 0.0, text)

    def on_done(self, number: int, took: float, cached: bool) -> None:
        now = self.clock()
        vertex = {"digest": self._digest(number), "name": self.names[number],
                  "started": _rfc3339(now - took), "completed": _rfc3339(now)}
        if cached:
            vertex["cached"] = True
        self.emit(json.dumps({"vertexes": [vertex]}))

    def on_error(self, number: int, message: str) -> None:
        self.emit(json.dumps({"vertexes": [{"digest": self._digest(number),
                                            "name": self.names[number],
                                            "completed": _rfc3339(self.clock()),
                                            "error": message}]}))
