"""Labels as Docker's CLI and daemon make them: ``--label/-l KEY[=VALUE]``
and ``--label-file`` for containers and volumes, and a container's labels
as its image's with the container's own over them (the daemon's
``merge``). ``parse`` is pure; ``read_files`` reads the label files."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..errors import UsageError

WHITESPACE = " \t"


def check_label(value: str) -> str:
    """Docker's ``ValidateLabel``: a name, with no blank in it."""
    key = value.partition("=")[0].lstrip(WHITESPACE)
    if not key:
        raise UsageError(f'invalid argument "{value}" for "-l, --label" flag: invalid label '
                         f"'{value}': empty name")
    if any(c in key for c in WHITESPACE):
        raise UsageError(f'invalid argument "{value}" for "-l, --label" flag: label '
                         f"'{key}' contains whitespaces")
    return value


def parse_file(text: str, name: str) -> list[str]:
    """A label file's ``KEY=VALUE`` lines, as Docker's ``kvfile`` reads one
    without a lookup: blanks and ``#`` comments skipped, leading blanks
    dropped, a line without ``=`` ignored (labels take nothing from the
    environment)."""
    out = []
    for raw in text.removeprefix("\ufeff").splitlines():
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, _ = line.partition("=")
        if not key:
            raise UsageError(f"--label-file: invalid env file ({name}): no variable name on "
                             f"line '{line}'")
        if any(c in key for c in WHITESPACE):
            raise UsageError(f"--label-file: invalid env file ({name}): variable '{key}' "
                             "contains whitespaces")
        if eq:
            out.append(line)
    return out


def parse(flags: Iterable[str], file_lines: Iterable[str] = ()) -> dict[str, str]:
    """``--label-file`` lines then ``--label`` flags (later wins) as a map;
    ``KEY`` alone is an empty value, as Docker's ``ConvertKVStringsToMap``."""
    out: dict[str, str] = {}
    for item in [*file_lines, *(check_label(f) for f in flags)]:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def read_files(paths: Iterable[str]) -> list[str]:
    """The lines of each ``--label-file`` (a regular file or the shell's
    ``<(...)``: a named FIFO must not hang the command), UTF-8."""
    from unionfs.safefile import read_file
    out: list[str] = []
    for p in paths:
        try:
            data = read_file(p, pipes=True)
        except OSError as e:
            raise UsageError(f"--label-file: open {p}: {(e.strerror or str(e)).lower()}") \
                from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise UsageError(f"--label-file: invalid env file ({p}): invalid utf8 bytes at "
                             f"line {line}") from None
        out += parse_file(text, p)
    return out


def merged(image_labels: Mapping[str, str] | None, own: Mapping[str, str]) -> dict[str, str]:
    """A container's labels: its image's, with its own over them; sorted
    by key, as Go prints a map (``{{json .Config.Labels}}``)."""
    return dict(sorted({**(image_labels or {}), **own}.items()))
