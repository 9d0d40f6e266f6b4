"""A union daemon holds what serving its view needs and no more: every
running container (and every ``dockish mount``) has one, so its memory is
paid once per container (issue 16). Seen as a user can see it: the
daemon's /proc files while it serves."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .runbed import no_leftovers, ok  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("no_leftovers")

HEAP_MAX = 64 << 20       # glibc: a thread arena's heap is mapped 64 MiB-aligned, this large


def _view_pid(name: str) -> int:
    cid = json.loads(ok("inspect", name))[0]["Id"]
    state = Path(os.environ["DOCKISH_ROOT"]) / "containers" / cid / "state.json"
    return json.loads(state.read_text())["view_pid"]


def _maps(pid: int) -> list[tuple[int, int, str, str]]:
    """(start, end, perms, path) of each mapping of ``pid``."""
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in fields[0].split("-"))
        out.append((start, end, fields[1], fields[5] if len(fields) > 5 else ""))
    return out


def _thread_arenas(pid: int) -> int:
    """glibc malloc arenas besides the main one: each is a HEAP_MAX-aligned
    anonymous mapping, usable (rw) at the start, reserved (---) to
    HEAP_MAX."""
    maps = _maps(pid)
    n = 0
    for i, (start, end, perms, path) in enumerate(maps):
        if path or not perms.startswith("rw") or start % HEAP_MAX:
            continue
        rest = maps[i + 1] if i + 1 < len(maps) else None
        if end - start == HEAP_MAX or (rest and rest[0] == end and rest[2].startswith("---")
                                       and not rest[3] and rest[1] - start == HEAP_MAX):
            n += 1
    return n


def _assert_lean(pid: int, module: bytes) -> None:
    """``pid`` is a union daemon (libfuse) started as a fresh interpreter
    running ``module``, with none of the extension modules that only the
    CLI's side uses (the Dockerfile parser, the layer decompressors,
    decimal) loaded."""
    libs = {os.path.basename(path) for _, _, _, path in _maps(pid) if ".so" in path}
    assert any(lib.startswith("libfuse3.so") for lib in libs), libs      # it is the daemon
    cli_only = {lib for lib in libs
                if lib.split(".")[0] in ("dockerfile", "_isal", "isal_zlib", "igzip_lib",
                                         "backend_c", "_zstd", "_decimal", "_uuid")}
    assert not cli_only, f"the daemon loaded the CLI's modules: {sorted(cli_only)}"
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert module in cmdline, cmdline


def test_the_view_daemon_is_a_fresh_interpreter_without_what_the_cli_loaded(bb):
    """Forked from ``dockish run``, the daemon carried the whole CLI for as
    long as the container ran (42 MiB resident once mounted, 38 MiB as an
    interpreter of its own)."""
    ok("run", "-d", "--name", "lean", "--network", "none", bb, "sleep", "60")
    _assert_lean(_view_pid("lean"), b"runner.runtime.viewd")
    assert ok("exec", "lean", "cat", "/etc/hostname").strip()        # and it serves
    ok("rm", "-f", "lean")


def test_a_mounts_daemon_is_a_fresh_interpreter_too(bb, tmp_path):
    """``dockish mount``'s daemon outlives the command that started it: it
    does not keep that command's modules either, for as long as it runs."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    ok("mount", bb, str(mnt))
    try:
        (rec,) = json.loads(ok("mount", "--format", "json"))
        _assert_lean(rec["Pid"], b"unionfs.daemon")
        assert (mnt / "bin").is_dir()                                    # and it serves
    finally:
        ok("umount", str(mnt))


def test_the_view_daemons_worker_threads_share_one_malloc_arena(layered):
    """Big reads go to worker threads; each thread with a glibc arena of
    its own kept the buffers it once held (15 arenas, 10.7 MiB of the
    daemon at the peak of an apt-get install). Reads from many processes at
    once leave the daemon with at most one arena besides the main one."""
    ok("run", "-d", "--name", "reads", "--network", "none", layered, "sleep", "60")
    pid = _view_pid("reads")
    # the 3 MiB of the image's big file read in 12 places at once (the
    # second round from the page cache), each part written back
    script = ("for n in 1 2; do for i in 0 1 2 3 4 5 6 7 8 9 10 11; do "
              "dd if=/data/big.bin of=/tmp/part$((i + 10)) bs=128k skip=$((i * 2)) count=2 "
              "2>/dev/null & done; wait; cat /tmp/part* > /tmp/all$n; done; "
              "cmp /tmp/all1 /tmp/all2 && wc -c < /tmp/all1")
    assert ok("exec", "reads", "sh", "-c", script).strip() == str(3 << 20)
    assert _thread_arenas(pid) <= 1, [m for m in _maps(pid) if not m[3]]
    ok("rm", "-f", "reads")
