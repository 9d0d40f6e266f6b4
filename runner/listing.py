"""Docker's ``--format`` for list commands (ps, images, volume ls, history,
system df): empty or ``table`` is the command's default table, ``json`` is
``{{json .}}`` (Go's compact JSON, by the template engine), ``table TMPL``
is a header line plus aligned rows (the header printed even with no rows),
anything else one rendered line per row. One place, so every command reads
a format as Docker does. Pure: it returns lines, the CLI prints them."""
from __future__ import annotations

import json

from .gotemplate import TABLE_PREFIX, Template, is_table, parse, render_table

JSON_TEMPLATE = "{{json .}}"


def format_rows(fmt: str | None, rows: list[dict], default: str,
                headers: dict[str, str]) -> list[str]:
    """The lines ``rows`` print as under ``fmt``; ``default`` is the
    command's own ``table ...`` template, ``headers`` Docker's column names
    by field. The whole output is made before any is printed: a template
    that fails on the third row prints nothing (as Docker's buffered
    writer)."""
    fmt = fmt or ""
    rows = [dict(sorted(r.items())) for r in rows]   # Docker's contexts: Go maps, keys sorted
    if fmt.strip() in ("", TABLE_PREFIX):
        fmt = default
    elif fmt.strip() == "json":
        fmt = JSON_TEMPLATE
    if is_table(fmt):
        return render_table(fmt, rows, headers).split("\n")
    tmpl = parse(fmt)
    return [tmpl.execute(r) for r in rows]


def inspect_lines(fmt: str | None, objects: list[dict]) -> list[str]:
    """``inspect``'s output lines: the objects as an indented JSON list, or ``-f``
    run on each as Docker's inspector runs it on the raw JSON, with Go's
    ``missingkey=error`` (a misspelt field is an error, not ``<no value>``
    that a script would take for data). All lines are made before any is
    printed."""
    if not fmt:
        return [json.dumps(objects, indent=4)]
    tmpl = parse(fmt)
    return [tmpl.execute(o, missing_key_error=True) for o in objects]


def one_template(fmt: str) -> Template:
    """``--format`` of a one-object command (info, version, events' lines):
    ``json`` is ``{{json .}}``, Go's compact JSON, not Python's ``", "``
    separators; parsed before anything runs, so a bad template is one
    error line before any output."""
    return parse(JSON_TEMPLATE if fmt.strip() == "json" else fmt)
