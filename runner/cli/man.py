"""Man pages for every command, made from the click tree itself (so a page
never disagrees with ``--help``): ``dockish(1)``, ``dockish-run(1)``,
``dockish-volume-ls(1)``... in roff's man macros, section 1.

Our own rather than click-man: click-man writes help text into roff
unescaped (a help line starting with ``.`` or ``'`` becomes a roff
request, a backslash an escape), and would be a dependency for a hundred
lines. ``page`` and ``pages`` are pure; ``write_pages`` (``scripts/man``)
writes the files, each all or nothing.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from .. import envvars


def escape(text: str) -> str:
    """Text as roff prints it: backslashes doubled, hyphens as ``\\-``
    (so they copy and search as ASCII), a line that would start with a
    control character (``.`` or ``'``) guarded with ``\\&``."""
    out = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").split("\n"):
        out.append("\\&" + line if line[:1] in (".", "'") else line)
    return "\n".join(out)


def _paragraphs(text: str) -> list[str]:
    """Help text as roff paragraphs: click's ``\\b`` paragraphs keep their
    lines (no fill), the others are filled by roff."""
    out = []
    for para in text.strip().split("\n\n"):
        if para.startswith("\b"):
            out.append(".nf\n" + escape(para[1:].strip("\n")) + "\n.fi")
        else:
            out.append(escape(" ".join(line.strip() for line in para.splitlines())))
    return out


def _short(cmd: click.Command) -> str:
    return cmd.get_short_help_str(limit=80).rstrip(".")


def page(ctx: click.Context, date: str, version: str) -> str:
    """The roff text of the page of ``ctx``'s command."""
    cmd = ctx.command
    path = ctx.command_path
    name = path.replace(" ", "-")
    lines = [f'.TH "{name.upper()}" "1" "{date}" "dockish {version}" "dockish Manual"',
             ".nh", ".SH NAME", f"{escape(name)} \\- {escape(_short(cmd))}",
             ".SH SYNOPSIS", f".B {escape(path)}",
             escape(" ".join(cmd.collect_usage_pieces(ctx)))]
    if cmd.help:
        lines.append(".SH DESCRIPTION")
        lines.append("\n.PP\n".join(_paragraphs(cmd.help)))
    options = [p.get_help_record(ctx) for p in cmd.get_params(ctx)
               if isinstance(p, click.Option) and not p.hidden]
    if options:
        lines.append(".SH OPTIONS")
        for flags, text in filter(None, options):
            lines += [".TP", f"\\fB{escape(flags)}\\fR", escape(text)]
    subs: list[tuple[str, click.Command]] = []
    if isinstance(cmd, click.Group):
        subs = [(n, cmd.get_command(ctx, n)) for n in cmd.list_commands(ctx)]
        subs = [(n, c) for n, c in subs if c is not None and not c.hidden]
    if subs:
        lines.append(".SH COMMANDS")
        for sub_name, sub in subs:
            lines += [".TP", f"\\fB{escape(sub_name)}\\fR",
                      f"{escape(_short(sub))}; see \\fB{escape(name)}\\-{escape(sub_name)}"
                      "\\fR(1)."]
    if ctx.parent is None:
        lines.append(".SH ENVIRONMENT")
        for var, text, bed in envvars.VARIABLES:
            lines += [".TP", f"\\fB{escape(var)}\\fR",
                      escape(text + (" Test beds only." if bed else ""))]
    else:
        parent = ctx.parent.command_path.replace(" ", "-")
        lines += [".SH SEE ALSO", f"\\fB{escape(parent)}\\fR(1)"]
    return "\n".join(lines) + "\n"


def pages(main: click.Command, date: str, version: str) -> dict[str, str]:
    """File name (``dockish-run.1``) -> page, for the whole tree."""
    out: dict[str, str] = {}

    def visit(ctx: click.Context) -> None:
        out[ctx.command_path.replace(" ", "-") + ".1"] = page(ctx, date, version)
        cmd = ctx.command
        if isinstance(cmd, click.Group):
            for n in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, n)
                if sub is not None and not sub.hidden:
                    visit(click.Context(sub, info_name=n, parent=ctx))
    visit(click.Context(main, info_name="dockish"))
    return out


def _date() -> str:
    """Today, or ``$SOURCE_DATE_EPOCH``'s day (reproducible pages)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return time.strftime("%Y-%m-%d", time.gmtime(int(epoch) if epoch else None))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("dockish")
    except PackageNotFoundError:
        return "dev"


def write_pages(target: Path) -> list[str]:
    """Every page into ``target`` (made if missing); the names written."""
    from ..runtime.outfile import output_file
    from .main import main
    target.mkdir(parents=True, exist_ok=True)
    made = pages(main, _date(), _version())
    for name, text in sorted(made.items()):
        with output_file(str(target / name)) as f:
            f.write(text.encode())
    return sorted(made)


if __name__ == "__main__":
    written = write_pages(Path(sys.argv[1] if len(sys.argv) > 1 else "man/man1"))
    print(f"{len(written)} man pages in {sys.argv[1] if len(sys.argv) > 1 else 'man/man1'}")
