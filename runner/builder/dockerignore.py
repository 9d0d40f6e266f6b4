""".dockerignore: Docker's pattern rules, as Moby's ``patternmatcher`` has them.

Written here rather than borrowed: ``pathspec`` implements gitignore (where
an unanchored ``foo`` matches at any depth — Docker anchors it at the
context root), and the Docker SDK's ``exclude_paths`` is a whole SDK for one
function. The rules: one pattern a line, ``#`` comments, blank lines
skipped, each pattern cleaned like Go's ``filepath.Clean`` (so a leading or
trailing ``/`` means nothing), ``*``/``?``/``[...]`` as Go's
``filepath.Match`` (never crossing ``/``), ``**`` any number of
directories, ``\\`` escapes; a path is excluded when it or one of its parent
directories matches; the last matching pattern wins, ``!`` re-includes.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from ..errors import DockishError


class PatternError(DockishError, ValueError):
    """A pattern Go's ``filepath.Match`` would call malformed (Docker then
    fails with "syntax error in pattern")."""


@dataclass(frozen=True)
class Pattern:
    text: str            # cleaned, without the ``!``
    exclusion: bool      # a ``!`` line: re-includes what it matches
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        return self.regex.match(path) is not None


def clean(path: str) -> str:
    """Go's ``filepath.Clean`` (on slash paths), minus a leading ``/``."""
    out = posixpath.normpath(path) if path else "."
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    if len(out) > 1 and out.startswith("/"):
        out = out[1:]
    return out


def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            cls, i = _char_class(pattern, i + 1)
            out.append(cls)
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:            # e.g. a range out of order, ``[z-a]``
        raise PatternError(f"syntax error in pattern {pattern!r}") from None


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """A ``[...]`` class starting after its ``[`` at ``i``, as Go's
    ``filepath.Match`` reads it (``^``/``!`` negates, ``a-z`` ranges, ``\\``
    escapes, everything else literal): (regex, index of the closing ``]``)."""
    n = len(pattern)
    out = "["
    if i < n and pattern[i] in "!^":
        out += "^"
        i += 1
    count = 0
    while i < n and not (pattern[i] == "]" and count):
        ch = pattern[i]
        if ch == "\\":
            i += 1
            if i >= n:
                break
            ch = pattern[i]
        elif ch in "-]" and not count:
            raise PatternError(f"syntax error in pattern {pattern!r}")
        if ch == "-" and count and i + 1 < n and pattern[i + 1] != "]":
            out += "-"
        else:
            out += re.escape(ch)
            count += 1
        i += 1
    if i >= n:
        raise PatternError(f"syntax error in pattern {pattern!r}")
    return out + "]", i


def compile_patterns(lines: list[str]) -> list[Pattern]:
    patterns = []
    for raw in lines:
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        exclusion = text.startswith("!")
        if exclusion:
            text = text[1:].strip()
            if not text:
                raise PatternError("illegal exclusion pattern: \"!\"")
        text = clean(text)
        patterns.append(Pattern(text, exclusion, _regex(text)))
    return patterns


def read_lines(data: str) -> list[str]:
    return data.splitlines()


class Matcher:
    """Decides which context paths (slash-separated, relative) are excluded."""

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns
        self.has_exclusions = any(p.exclusion for p in patterns)

    @classmethod
    def from_text(cls, text: str) -> Matcher:
        return cls(compile_patterns(read_lines(text)))

    def excluded(self, path: str) -> bool:
        path = clean(path)
        parts = path.split("/")
        parents = ["/".join(parts[:i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for p in self.patterns:
            hit = p.matches(path) or any(p.matches(d) for d in parents)
            if hit:
                matched = not p.exclusion
        return matched

    def may_skip_dir(self, path: str) -> bool:
        """An excluded directory need not be walked unless a ``!`` pattern
        could re-include something under it (Moby's walk shortcut)."""
        if not self.has_exclusions:
            return True
        prefix = clean(path) + "/"
        return not any(p.exclusion and (p.text + "/").startswith(prefix)
                       for p in self.patterns)
