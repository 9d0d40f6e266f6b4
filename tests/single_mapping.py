"""A user with no /etc/subuid and /etc/subgid ranges: containers get a
single mapping (the user is root inside, nobody else exists). Not collected
by default — the suite's own user has ranges; ``scripts/test`` (as root)
runs this file as a second user it creates without them."""
from __future__ import annotations

import getpass
import os
from pathlib import Path

from . import images
from .runbed import dockish, ok, one_error_line


def _ranges(path: str) -> list[str]:
    me = {getpass.getuser(), str(os.getuid())}
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [ln for ln in lines if ln.split(":")[0] in me]


def test_this_user_really_has_no_ranges():
    assert _ranges("/etc/subuid") == [] and _ranges("/etc/subgid") == []


def test_run_with_a_single_mapping(bb, layered, dockish_root):
    first = dockish("run", "--rm", "--network", "none", bb, "id")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "uid=0(root) gid=0(root) groups=0(root)\n"
    assert "single mapping" in first.stderr                  # said once...
    again = dockish("run", "--rm", "--network", "none", bb, "id")
    assert again.stderr == ""                                # ...not every time
    # files of other uids in the image: unmapped, shown as nobody, still readable
    notes = "/" + images.L_APP_HOME
    out = ok("run", "--rm", "--network", "none", layered, "sh", "-c",
             f"stat -c '%u:%g' {notes}; head -c 8 {notes} | wc -c")
    assert out.split() == ["65534:65534", "8"]
    one_error_line(dockish("run", "--rm", "--network", "none", "-u", "1000", bb, "id"), 126,
                   "does not exist in the container")
    # root's writes, diff and commit work as with ranges
    ok("run", "--name", "w", "--network", "none", bb, "sh", "-c", "echo x > /made")
    assert "A /made" in ok("diff", "w")
    image = ok("commit", "w").strip()
    assert ok("run", "--rm", "--network", "none", image[7:19], "cat", "/made") == "x\n"
    ok("rm", "w")
    assert "single id mapping" in ok("info")


def test_build_mount_and_a_private_network(bb, dockish_root, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {bb}\nRUN echo built > /b && chmod 600 /b\n")
    ok("build", "-q", "-t", "single", str(ctx))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    ok("mount", "single", str(mnt))
    try:
        assert (mnt / "b").read_text() == "built\n"
    finally:
        ok("umount", str(mnt))
    out = ok("run", "--rm", "single", "sh", "-c", "cat /b; ip -o -4 addr show tap0")
    assert out.startswith("built\n") and "10.0.2.100/24" in out
