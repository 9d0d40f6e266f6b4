"""Help a user can rely on: every command and every option of the whole
click tree has help text, and every ``DOCKISH_*`` variable the code reads
from the environment is in ``dockish --help``'s epilog and in README's
table (runner/envvars.py is the one list)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click

from runner import envvars
from runner.cli.main import main

from .diffbase import dockish_exe

ROOT = Path(__file__).resolve().parent.parent
# DOCKISH_* strings in the code that are not environment variables
NOT_ENVIRONMENT = {
    "DOCKISH_INODE_READS": "an attribute of the patched pyfuse3 (scripts/patch-pyfuse3)",
    "DOCKISH_INODE_WRITES": "an attribute of the patched pyfuse3 (scripts/patch-pyfuse3)",
    "DOCKISH_SYNC_HANDLERS": "an attribute of the patched pyfuse3 (scripts/patch-pyfuse3)",
    "DOCKISH_INPUT": "an iptables chain of the networks' namespace (runner/runtime/netconf.py)",
}


def _commands(cmd: click.Command, path: tuple[str, ...] = ("dockish",)):
    yield path, cmd
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        for name in cmd.list_commands(ctx):
            yield from _commands(cmd.get_command(ctx, name), (*path, name))


def test_every_command_and_option_has_help():
    missing = []
    commands = list(_commands(main))
    assert len(commands) > 80          # the whole tree was walked
    for path, cmd in commands:
        if not (cmd.help or cmd.short_help or "").strip():
            missing.append(" ".join(path))
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip():
                missing.append(f"{' '.join(path)} {'/'.join(p.opts)}")
    assert missing == []


def _read_in_code() -> set[str]:
    found = set()
    for top in ("runner", "unionfs", "registry"):
        for f in (ROOT / top).rglob("*.py"):
            found |= set(re.findall(r"(?<![A-Za-z0-9_])DOCKISH_[A-Z0-9_]*[A-Z0-9]",
                                    f.read_text()))
    return found - set(NOT_ENVIRONMENT)


def test_every_environment_variable_is_documented():
    code = _read_in_code()
    assert {"DOCKISH_ROOT", "DOCKISH_INIT", "DOCKISH_USERNS"} <= code    # the scan works
    listed = {name for name, _, _ in envvars.VARIABLES}
    assert code - listed == set(), "add them to runner/envvars.py"
    readme = (ROOT / "README.md").read_text()
    table = set(re.findall(r"^\| `(DOCKISH_[A-Z0-9_]+)` \|", readme, re.M))
    assert code - table == set(), "add them to README's table of variables"
    shown = subprocess.run([dockish_exe(), "--help"], capture_output=True, text=True,
                           check=True).stdout
    epilog = shown[shown.index("Environment:"):]
    assert [line.strip() for line in epilog.splitlines()
            if line.strip().startswith("DOCKISH_")] \
        == [name for name, _, _ in envvars.VARIABLES]
