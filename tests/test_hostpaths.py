"""Host paths that a container's content shapes, attacked from inside a real
container: `cp` out through symlinks and hardlinks the container made,
`export` of what is mounted into it, `volume rm` through symlinks left in a
volume, the output files of `save`/`export`/`layer -o`, device nodes and
set-id bits copied out as root, and trees too deep for recursion."""
from __future__ import annotations

import io
import os
import resource
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from . import images
from .diffbase import dockish_exe
from .runbed import (
    dockish,
    no_leftovers,  # noqa: F401 - a fixture
    ok,
    one_error_line,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")

DEPTH = 3000


def _box(image: str, name: str, script: str = "sleep 600", *args: str) -> None:
    ok("run", "-d", "--name", name, "--network", "none", *args, image, "sh", "-c", script)


def _outside(tmp_path: Path) -> Path:
    """A host directory the container must never write: one file in it."""
    out = tmp_path / "outside"
    out.mkdir()
    (out / "victim").write_text("host\n")
    return out


# ------------------------------------------------------------------ cp out

def test_cp_out_replaces_a_symlink_it_left_instead_of_writing_through_it(bb, tmp_path):
    """The first cp leaves DEST/x/sub as the container's symlink to a host
    dir; the container then makes sub a real directory with a file of that
    name: the second cp replaces the symlink, the host file stays."""
    outside = _outside(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    _box(bb, "swap", f"mkdir /x && ln -s {outside} /x/sub && sleep 600")
    ok("cp", "swap:/x", str(dest))
    assert os.readlink(dest / "x" / "sub") == str(outside)
    ok("exec", "swap", "sh", "-c", "rm /x/sub && mkdir /x/sub && echo pwned > /x/sub/victim")
    ok("cp", "swap:/x", str(dest))
    assert (outside / "victim").read_text() == "host\n"
    assert not (dest / "x" / "sub").is_symlink()
    assert (dest / "x" / "sub" / "victim").read_text() == "pwned\n"
    # the same as a single file named at a symlink the first copy left
    ok("exec", "swap", "sh", "-c", f"rm -r /x/sub && ln -s {outside}/victim /x/sub")
    ok("cp", "swap:/x", str(dest))
    ok("exec", "swap", "sh", "-c", "rm /x/sub && echo pwned > /x/sub")
    ok("cp", "swap:/x", str(dest))
    assert (outside / "victim").read_text() == "host\n"
    assert (dest / "x" / "sub").read_text() == "pwned\n"


def test_hardlinks_copied_out_land_inside_dest_as_links_to_each_other(bb, tmp_path):
    _box(bb, "links", "mkdir -p /h/sub && echo a > /h/f && ln /h/f /h/g && "
                      "ln /h/f /h/sub/k && sleep 600")
    work = tmp_path / "work"
    work.mkdir()
    res = dockish("cp", "links:/h", str(work / "renamed"))
    assert res.returncode == 0 and res.stderr == "", res.stderr
    got = work / "renamed"
    ino = {(got / p).stat().st_ino for p in ("f", "g", "sub/k")}
    assert len(ino) == 1 and (got / "sub" / "k").read_text() == "a\n"
    assert os.listdir(work) == ["renamed"]      # nothing at ./h or beside


def test_a_containers_climbing_symlinks_are_copied_as_symlinks_never_followed(bb, tmp_path):
    outside = _outside(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    rel = os.path.relpath(outside / "victim", dest / "c")
    _box(bb, "climb", f"mkdir /c && ln -s {rel} /c/up && ln -s /proc/self/root/etc /c/magic "
                      "&& sleep 600")
    ok("cp", "climb:/c", str(dest))
    assert os.readlink(dest / "c" / "up") == rel
    ok("exec", "climb", "sh", "-c", "rm /c/up && echo pwned > /c/up")
    ok("cp", "climb:/c", str(dest))
    assert (outside / "victim").read_text() == "host\n"
    assert (dest / "c" / "up").read_text() == "pwned\n"


def _tar(*members: tuple[str, str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, arg in members:
            ti = tarfile.TarInfo(name)
            if kind == "f":
                ti.size = len(arg)
                t.addfile(ti, io.BytesIO(arg.encode()))
                continue
            ti.type = {"d": tarfile.DIRTYPE, "h": tarfile.LNKTYPE, "l": tarfile.SYMTYPE}[kind]
            ti.linkname = arg
            t.addfile(ti)
    return out.getvalue()


@pytest.mark.parametrize("members, words", [
    ([("x", "d", ""), ("x/l", "h", "x/../../outside/victim")], "parent directory"),
    ([("x", "d", ""), ("x/../../outside/victim", "f", "pwned\n")], "parent directory"),
    ([("x", "d", ""), ("x/l", "h", "x/planted")], "not a file copied before it"),
    ([("x", "d", ""), ("x/l", "h", "etc/passwd")], "not a file copied before it"),
])
def test_a_hostile_stream_cannot_link_or_write_outside_the_copy(tmp_path, members, words):
    """What the host side does if the helper inside the container were
    subverted: names climbing out and hardlinks to anything but files of
    the same copy are refused; the host file stays as it was."""
    from runner.runtime.transfer import TransferError, _extract
    outside = _outside(tmp_path)
    dest = tmp_path / "dest"
    (dest / "x").mkdir(parents=True)
    os.link(outside / "victim", dest / "x" / "planted")     # a host file inside DEST
    r, w = os.pipe()
    os.write(w, _tar(*members))
    os.close(w)
    with pytest.raises(TransferError, match=words):
        _extract(r, str(dest), "x", archive=False, in_container=False)
    assert (outside / "victim").read_text() == "host\n"
    assert os.stat(outside / "victim").st_nlink == 2


@pytest.mark.parametrize("members", [
    [("l", "h", "{victim}")],                                    # a link to a host file
    [("sub", "l", "{outside}"), ("sub/victim", "f", "pwned\n")],  # a file through a symlink
    [("sub", "l", "{outside}"), ("sub", "d", ""), ("sub/victim", "f", "pwned\n")],
])
def test_build_bind_copies_extract_with_the_same_rules(tmp_path, members):
    """``extract_all`` (a RUN --mount=type=bind copy of context or image
    content, on the host): the same extractor, names kept."""
    from runner.runtime.transfer import extract_all
    outside = _outside(tmp_path)
    dest = tmp_path / "dest"
    dest.mkdir()
    fill = {"victim": str(outside / "victim"), "outside": str(outside)}
    raw = _tar(*[(n, k, a.format(**fill)) for n, k, a in members])
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        try:
            extract_all(t, str(dest))
        except OSError as e:
            assert "not a file copied before it" in str(e)
    assert (outside / "victim").read_text() == "host\n"
    assert os.stat(outside / "victim").st_nlink == 1


def test_cp_out_to_a_missing_directory_is_one_line_not_a_hang(bb, tmp_path):
    _box(bb, "big")
    res = dockish("cp", "big:/bin/busybox", str(tmp_path / "no" / "such" / "x"), timeout=60)
    one_error_line(res, 1, "no such directory")


# ------------------------------------------------------------------ export

def test_export_of_a_running_container_leaves_mounted_host_files_out(bb, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("HOST-SECRET-FILE\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "inner").write_text("HOST-SECRET-DIR\n")
    _box(bb, "mnts", "echo mine > /mine && sleep 600", "-v", f"{secret}:/secret",
         "-v", f"{data}:/data", "-v", f"{data}:/etc/samefs:ro")
    out = tmp_path / "e.tar"
    ok("export", "-o", str(out), "mnts")
    raw = out.read_bytes()
    assert b"HOST-SECRET" not in raw
    with tarfile.open(out) as t:
        names = t.getnames()
        assert t.getmember("secret").isfile() and t.getmember("secret").size == 0
        assert t.getmember("data").isdir() and t.getmember("etc/samefs").isdir()
        assert t.extractfile("mine").read() == b"mine\n"
    assert not [n for n in names if n.startswith(("data/", "proc/", "sys/", "etc/samefs/"))]
    assert "etc/hosts" in names and "bin/busybox" in names


# ------------------------------------------------------------------ volumes

def _guarded(tmp_path: Path) -> tuple[Path, Path]:
    guarded = tmp_path / "guarded"
    guarded.mkdir()
    (guarded / "file").write_text("keep\n")
    os.chmod(guarded / "file", 0o400)
    os.chmod(guarded, 0o500)
    return guarded, guarded / "file"


def _modes(*paths: Path) -> list[int]:
    return [stat.S_IMODE(p.stat().st_mode) for p in paths]


PLANT = ("ln -s {g} /vol/dirlink && ln -s {g}/file /vol/filelink && mkdir -p /vol/d/e && "
         "ln -s {g} /vol/d/e/deeplink && chmod 0555 /vol/d/e && chmod 0 /vol/d")


def test_volume_rm_removes_planted_symlinks_without_chmodding_their_targets(bb, tmp_path):
    guarded, file = _guarded(tmp_path)
    ok("volume", "create", "vol1")
    ok("run", "--rm", "--network", "none", "-v", "vol1:/vol", bb, "sh", "-c",
       PLANT.format(g=guarded))
    assert ok("volume", "rm", "vol1") == "vol1\n"
    assert _modes(guarded, file) == [0o500, 0o400]
    assert ok("volume", "ls", "-q") == ""


def test_rm_v_and_volume_prune_do_not_chmod_through_symlinks(bb, tmp_path):
    guarded, file = _guarded(tmp_path)
    ok("run", "--name", "anon", "--network", "none", "-v", "/vol", bb, "sh", "-c",
       PLANT.format(g=guarded))
    ok("rm", "-v", "anon")
    assert _modes(guarded, file) == [0o500, 0o400]
    ok("run", "--rm", "--network", "none", "-v", "named:/vol", bb, "sh", "-c",
       PLANT.format(g=guarded))
    assert "named" in ok("volume", "prune", "-a", "-f")
    assert _modes(guarded, file) == [0o500, 0o400]
    assert ok("volume", "ls", "-q") == ""


def test_a_volume_name_with_a_trailing_newline_is_refused(bb):
    res = dockish("volume", "create", "x\n")
    one_error_line(res, 125, '"x\\n" includes invalid characters for a local volume name')
    assert ok("volume", "ls", "-q") == ""


# ------------------------------------------------------------------ output files

def _limited(*args: str, limit: int) -> subprocess.CompletedProcess:
    """dockish with a file size limit: its writes fail part way (EFBIG)."""
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return subprocess.run([dockish_exe(), *args], capture_output=True, text=True,
                          timeout=180, preexec_fn=lower)


def _plant_tmp_links(out: Path, victim: Path) -> list[str]:
    """Symlinks at every `OUT.tmp-PID` the next few hundred processes could use."""
    last = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    names = []
    for pid in range(last + 1, last + 400):
        (out.parent / f"{out.name}.tmp-{pid}").symlink_to(victim)
        names.append(f"{out.name}.tmp-{pid}")
    return names


@pytest.mark.parametrize("what", ["save", "export", "layer"])
def test_output_files_are_all_or_nothing(bb, busybox_image, tmp_path, what):
    """A symlink planted at every name the old code's temporary could have
    had is not followed; a write that fails part way (a file size limit)
    leaves the old OUT as it was and no temporary beside it."""
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "result.tar"
    victim = tmp_path / "victim"
    victim.write_text("host\n")
    upper = tmp_path / "upper"
    upper.mkdir()
    if what == "export":
        _box(bb, "exp")
    if what == "save":
        ok("load", "-i", str(busybox_image.docker_archive))
    cmd = {"save": ["save", "-o", str(out), "dockish-test/busybox"],
           "export": ["export", "-o", str(out), "exp"],
           "layer": ["layer", "--upper", str(upper), "-o", str(out), bb]}[what]
    ok(*cmd)                                 # imports the image; a valid tar
    with tarfile.open(out) as t:
        assert t.getnames() or what == "layer"   # (an empty layer: nothing changed)
    links = _plant_tmp_links(out, victim)
    ok(*cmd)
    assert victim.read_text() == "host\n"
    assert sorted(os.listdir(outdir)) == sorted(links + ["result.tar"])
    for n in links:
        (outdir / n).unlink()
    out.write_text("old\n")
    res = _limited(*cmd, limit=512)          # fails part way through the tar
    assert res.returncode != 0, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, \
        res.stderr
    assert out.read_text() == "old\n"
    assert os.listdir(outdir) == ["result.tar"]


def test_export_of_a_missing_container_leaves_out_alone(tmp_path):
    out = tmp_path / "out" / "result.tar"
    out.parent.mkdir()
    out.write_text("old\n")
    res = dockish("export", "-o", str(out), "nosuch")
    assert res.returncode != 0 and out.read_text() == "old\n"
    assert os.listdir(out.parent) == ["result.tar"]


# ------------------------------------------------------------------ as root

def test_copying_out_device_nodes_as_a_user_leaves_them_out_with_a_note(layered, tmp_path):
    _box(layered, "dev")
    res = dockish("cp", "dev:/data/special", str(tmp_path / "sp"))
    assert res.returncode == 0, res.stderr
    assert res.stderr == "dockish: note: left out 2 device nodes (only root can create " \
                         "device nodes)\n"
    assert os.listdir(tmp_path / "sp") == ["fifo"]


ROOT_RULE = """
import os, sys
from runner.runtime.transfer import _extract
fd = os.open(sys.argv[1], os.O_RDONLY)
_extract(fd, sys.argv[2], "tree", archive=sys.argv[3] == "-a", in_container=False)
"""


@pytest.mark.parametrize("archive", [False, True])
def test_as_root_device_nodes_and_set_id_bits_need_cp_a(layered, tmp_path, archive):
    """The stream a container sends, extracted by dockish's host side as
    root (of a user namespace: euid 0, the rule that applies on a root CI
    runner): set-id bits and device nodes only with -a, else a note."""
    _box(layered, "suid")
    export = tmp_path / "e.tar"
    ok("export", "-o", str(export), "suid")
    sub = tmp_path / "sub.tar"           # the part of the export cp would send
    with tarfile.open(export) as src, tarfile.open(sub, "w", format=tarfile.PAX_FORMAT) as dst:
        top = tarfile.TarInfo("tree")
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        dst.addfile(top)
        for m in src:
            if m.name in (images.L_SUID, images.L_CHR, images.L_BLK, images.L_FIFO):
                m.name = "tree/" + os.path.basename(m.name)
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    dest = tmp_path / "dest"
    dest.mkdir()
    res = subprocess.run(["unshare", "--map-root-user", sys.executable, "-c", ROOT_RULE,
                          str(sub), str(dest), "-a" if archive else ""],
                         capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).parent.parent)
    assert res.returncode == 0, res.stderr
    mode = stat.S_IMODE((dest / "tree" / "suid-tool").stat().st_mode)
    if archive:
        assert mode == 0o4755
        # even as root of a user namespace the kernel refuses mknod: left out, said why
        assert res.stderr == "dockish: note: left out 2 device nodes (use cp -a to keep " \
                             "them)\n"
    else:
        assert mode == 0o755
        assert res.stderr == "dockish: note: left out 2 device nodes and the set-id bits " \
                             "of 1 file (use cp -a to keep them)\n"
    assert sorted(os.listdir(dest / "tree")) == ["fifo", "suid-tool"]


# ------------------------------------------------------------------ depth

def _deep(parent: Path, name: str) -> None:
    """``parent/name/d/d/.../d/f``, DEPTH levels: deeper than PATH_MAX."""
    fd = os.open(parent, os.O_RDONLY)
    os.mkdir(name, dir_fd=fd)
    d = os.open(name, os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    for _ in range(DEPTH):
        os.mkdir("d", dir_fd=d)
        nxt = os.open("d", os.O_RDONLY, dir_fd=d)
        os.close(d)
        d = nxt
    with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=d), "w") as f:
        f.write("bottom\n")
    os.close(d)


def _bottom(top: Path) -> str:
    d = os.open(top, os.O_RDONLY)
    for _ in range(DEPTH):
        nxt = os.open("d", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=d)
        os.close(d)
        d = nxt
    try:
        with open(os.open("f", os.O_RDONLY, dir_fd=d)) as f:
            return f.read()
    finally:
        os.close(d)


def _slow_ok(*args: str) -> None:
    res = dockish(*args, timeout=600)
    assert res.returncode == 0, (args, res.stderr)


def test_a_3000_level_tree_round_trips_through_cp_and_export(bb, tmp_path):
    from runner.runtime.volumes import remove_in
    try:
        _deep(tmp_path, "deep")
        _box(bb, "deep")
        _slow_ok("cp", str(tmp_path / "deep"), "deep:/tmp")
        _slow_ok("cp", "deep:/tmp/deep", str(tmp_path / "back"))
        assert _bottom(tmp_path / "back") == "bottom\n"
        out = tmp_path / "e.tar"
        _slow_ok("export", "-o", str(out), "deep")
        with tarfile.open(out) as t:
            f = t.extractfile("tmp/deep/" + "d/" * DEPTH + "f")
            assert f is not None and f.read() == b"bottom\n"
        remove_in(tmp_path, "back")
        assert not (tmp_path / "back").exists()
    finally:
        # pytest's own clean-up of old temp dirs recurses: a 3,000-level
        # tree left here would crash a later session at its end
        for name in ("deep", "back"):
            if (tmp_path / name).exists():
                remove_in(tmp_path, name)
