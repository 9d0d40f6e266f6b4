"""Docker's global flags and `completion`: what a user's shell gets.

Completion is tried in a real bash that sources `dockish completion bash`
and calls the function it installs, as pressing Tab would."""
from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import time
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


def test_bash_completes_volume_and_network_names(bb):
    ok("volume", "create", "compvol")
    ok("network", "create", "compnet")
    ok("create", "--name", "compctr", "--network", "none", bb, "true")
    try:
        assert _complete("dockish volume rm compv") == ["compvol"]
        assert _complete("dockish volume inspect other compv") == ["compvol"]   # every word
        assert _complete("dockish volume rm nothing-like-it") == []
        assert _complete("dockish network inspect compn") == ["compnet"]
        assert {"bridge", "compnet", "host", "none"} <= set(_complete("dockish network rm "))
        assert _complete("dockish run --network compn") == ["compnet"]
        assert _complete("dockish network connect compnet compc") == ["compctr"]
        assert _complete("dockish container stop compc") == ["compctr"]
    finally:
        ok("rm", "compctr")
        ok("network", "rm", "compnet")
        ok("volume", "rm", "compvol")


def test_tab_completes_a_container_name_in_an_interactive_bash(bb, tmp_path):
    """``dockish stop comp<TAB>`` typed into a bash on a terminal: the line
    bash then runs (its history) has the whole name."""
    ok("run", "-d", "--name", "completeme", "--network", "none", bb, "sleep", "60")
    pid, fd = pty.fork()
    if pid == 0:                                              # the shell on the terminal
        try:
            os.environ["PATH"] = f"{Path(dockish_exe()).parent}:{os.environ['PATH']}"
            os.environ.update(HISTFILE=str(tmp_path / "history"), PS1="$ ")
            os.execvp("bash", ["bash", "--norc", "--noprofile", "-i"])
        finally:
            os._exit(127)
    seen = b""
    try:
        def typed(text: str, until: bytes) -> None:
            nonlocal seen
            os.write(fd, text.encode())
            end = time.monotonic() + 60
            while until not in seen:
                assert time.monotonic() < end, seen.decode(errors="replace")
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    seen += os.read(fd, 4096)
        # the markers are printed, never typed ("sour""ced"): the echo of the
        # typed line cannot match them
        typed("source <(dockish completion bash); echo sour\"\"ced\n", b"sourced\r\n")
        typed("dockish stop comp\t", b"leteme ")                 # what Tab added
        typed("\n", b"completeme\r\n")                            # stop prints the name
        typed("history 2 | head -1 | sed 's/^ *[0-9]* *//' > " + str(tmp_path / "line")
              + "; echo do\"\"ne\n", b"done\r\n")
        assert (tmp_path / "line").read_text().strip() == "dockish stop completeme"
        os.write(fd, b"exit\n")
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        ok("rm", "-f", "completeme")
