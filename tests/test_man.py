"""Man pages: ``scripts/man`` writes one page for every command of the
click tree, ``man -l`` renders them with the synopsis and options that
``--help`` shows, and groff finds nothing to warn about in any of them."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import click

from runner.cli.main import main

ROOT = Path(__file__).resolve().parent.parent


def _paths(cmd: click.Command, path: tuple[str, ...] = ("dockish",)):
    yield "-".join(path)
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            yield from _paths(cmd.get_command(ctx, name), (*path, name))


def _render(page: Path) -> str:
    p = subprocess.run(["man", "-P", "cat", "-l", str(page)], capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="100", LANG="C.UTF-8"), check=True)
    return p.stdout


def test_every_command_has_a_page_that_man_renders(tmp_path):
    out = tmp_path / "pages"
    p = subprocess.run([str(ROOT / "scripts" / "man"), str(out)], capture_output=True,
                       text=True, env=dict(os.environ, SOURCE_DATE_EPOCH="1700000000"))
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in out.iterdir()) == sorted(f"{n}.1" for n in _paths(main))
    run = _render(out / "dockish-run.1")
    assert run.splitlines()[0].split() == ["DOCKISH-RUN(1)", "dockish", "Manual",
                                           "DOCKISH-RUN(1)"]
    synopsis = run[run.index("SYNOPSIS"):run.index("DESCRIPTION")].split()
    assert synopsis == ["SYNOPSIS", "dockish", "run", "[OPTIONS]", "IMAGE", "[ARGS]..."]
    options = run[run.index("OPTIONS"):].splitlines()
    at = options.index("       --stop-timeout INTEGER")
    assert "stop" in options[at + 1].lower(), options[at:at + 3]
    assert "2023-11-14" in run.splitlines()[-1]          # SOURCE_DATE_EPOCH's day
    top = _render(out / "dockish.1")
    assert "dockish-run(1)" in top and "DOCKISH_ROOT" in top[top.index("ENVIRONMENT"):]
    ls = _render(out / "dockish-volume-ls.1")
    assert "SEE ALSO\n       dockish-volume(1)" in ls
    for page in sorted(out.iterdir()):        # no roff request or escape made of help text
        check = subprocess.run(["groff", "-man", "-ww", "-z", str(page)], capture_output=True,
                               text=True)
        assert (check.returncode, check.stderr) == (0, ""), page.name
