"""Docker's global flags and `completion`: what a user's shell gets.

Completion is tried in a real bash that sources `dockish completion bash`
and calls the function it installs, as pressing Tab would."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .diffbase import dockish_exe
from .runbed import dockish, no_leftovers, ok  # noqa: F401 - a fixture


def _complete(line: str) -> list[str]:
    """What bash offers for ``line`` (the word under the cursor is the last)."""
    words = line.split(" ")
    script = ('source <(dockish completion bash)\n'
              f'COMP_WORDS=({" ".join(repr(w) for w in words)})\n'
              f'COMP_CWORD={len(words) - 1}\n'
              '_dockish_completion dockish\n'
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    env = {**os.environ, "PATH": f"{Path(dockish_exe()).parent}:{os.environ['PATH']}"}
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_bash_completes_commands_flags_and_names(bb):
    assert _complete("dockish netw") == ["network"]
    assert "--network" in _complete("dockish run --netw")
    assert _complete("dockish network ") == sorted(_complete("dockish network ")) and \
        {"create", "ls", "rm", "connect"} <= set(_complete("dockish network "))
    ok("create", "--name", "completeme", "--network", "none", bb, "true")
    try:
        assert _complete("dockish stop complete") == ["completeme"]
        assert _complete("dockish logs nothing-like-it") == []
    finally:
        ok("rm", "completeme")


def test_completion_scripts_for_each_shell():
    for shell, marker in (("bash", "complete -o nosort -F _dockish_completion dockish"),
                          ("zsh", "#compdef dockish"), ("fish", "complete --no-files "
                                                                "--command dockish")):
        out = ok("completion", shell)
        assert marker in out, (shell, out)
    res = dockish("completion", "tcsh")
    assert res.returncode == 125 and "tcsh" in res.stderr


def test_global_root_and_version(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    ok("--root", str(one), "volume", "create", "kept-apart")
    assert ok("--root", str(one), "volume", "ls", "-q").split() == ["kept-apart"]
    assert ok("--root", str(two), "volume", "ls", "-q").split() == []
    assert "kept-apart" not in ok("volume", "ls", "-q").split()
    assert (one / "volumes").is_dir() and oct(one.stat().st_mode & 0o777) == "0o700"
    for flag in ("-v", "--version"):
        out = ok(flag)
        assert out.startswith("dockish version ") and out.count("\n") == 1
