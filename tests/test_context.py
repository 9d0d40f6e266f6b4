"""COPY/ADD planning over a real context directory, and the layer tars."""
from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile

import pytest

from runner.builder import context as c

NO_IMAGE = lambda path: None  # noqa: E731


@pytest.fixture
def ctx(tmp_path):
    root = tmp_path / "ctx"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "a.txt").write_text("a")
    (root / "dir" / "sub" / "b.txt").write_text("bb")
    (root / "top.txt").write_text("top")
    (root / "x.log").write_text("log")
    (root / "y.log").write_text("log2")
    (root / "secret").write_text("no")
    os.symlink("dir/a.txt", root / "link")
    os.link(root / "dir" / "a.txt", root / "dir" / "hard")
    (root / ".dockerignore").write_text("secret\n*.tmp\n")
    (root / "junk.tmp").write_text("x")
    os.chmod(root / "top.txt", 0o751)
    d = c.ContextDir(root)
    yield d
    d.close()


def paths(items):
    return [(i.path, stat.filemode(i.meta.mode)) for i in items]


def plan(ctx, sources, dest, **kw):
    return c.plan(c.CopyRequest(sources, dest, **kw), ctx, kw.pop("existing", NO_IMAGE))


def test_directory_contents_not_the_directory(ctx):
    items = plan(ctx, ["dir"], "/opt/app")
    assert [i.path for i in items] == ["opt", "opt/app", "opt/app/a.txt", "opt/app/hard",
                                       "opt/app/sub", "opt/app/sub/b.txt"]
    assert all((i.meta.uid, i.meta.gid) == (0, 0) for i in items)


def test_file_to_file_and_to_directory(ctx):
    assert [i.path for i in plan(ctx, ["top.txt"], "/etc/renamed")] == ["etc", "etc/renamed"]
    assert [i.path for i in plan(ctx, ["top.txt"], "/etc/")] == ["etc", "etc/top.txt"]
    # an existing directory in the image is a directory without the slash
    existing = lambda p: c.Meta(stat.S_IFDIR | 0o700, 5, 6) if p in ("etc",) else None  # noqa
    items = c.plan(c.CopyRequest(["top.txt"], "/etc"), ctx, existing)
    assert [(i.path, i.meta.uid, stat.S_IMODE(i.meta.mode)) for i in items] == \
        [("etc", 5, 0o700), ("etc/top.txt", 0, 0o751)]


def test_relative_dest_uses_workdir(ctx):
    assert [i.path for i in plan(ctx, ["top.txt"], "rel/", workdir="/w")] == \
        ["w", "w/rel", "w/rel/top.txt"]
    assert [i.path for i in plan(ctx, ["top.txt"], ".", workdir="/w")] == ["w", "w/top.txt"]


def test_globs_and_several_sources(ctx):
    assert [i.path for i in plan(ctx, ["*.log"], "/l/")] == ["l", "l/x.log", "l/y.log"]
    with pytest.raises(c.ContextError, match="must be a directory and end with a /"):
        plan(ctx, ["*.log"], "/l")
    with pytest.raises(c.ContextError, match="no source files were specified"):
        plan(ctx, ["*.nothing"], "/l/")


def test_dockerignore_hides_files(ctx):
    with pytest.raises(c.ContextError, match='"secret": not found'):
        plan(ctx, ["secret"], "/s")
    assert [i.path for i in plan(ctx, ["."], "/all/")] == \
        ["all", "all/.dockerignore", "all/dir", "all/dir/a.txt", "all/dir/hard", "all/dir/sub",
         "all/dir/sub/b.txt", "all/link", "all/top.txt", "all/x.log", "all/y.log"]


def test_no_escape_from_the_context(ctx):
    assert [i.path for i in plan(ctx, ["../../top.txt"], "/t")] == ["t"]


def test_symlinks_followed_at_top_kept_inside(ctx):
    top = plan(ctx, ["link"], "/l")
    assert paths(top) == [("l", "-rw-r--r--")]
    inner = {i.path: i for i in plan(ctx, ["."], "/all/")}
    assert stat.S_ISLNK(inner["all/link"].meta.mode)
    assert inner["all/link"].meta.target == "dir/a.txt"


def test_chown_chmod(ctx):
    items = plan(ctx, ["dir"], "/d", owner=(1000, 1001), chmod=0o640)
    assert {(i.meta.uid, i.meta.gid) for i in items} == {(1000, 1001)}
    assert {stat.S_IMODE(i.meta.mode) for i in items} == {0o640}


def test_parse_chown():
    passwd = "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
    group = "root:x:0:\napp:x:1001:\nstaff:x:50:\n"
    assert c.parse_chown("app", passwd, group) == (1000, 1001)
    assert c.parse_chown("app:staff", passwd, group) == (1000, 50)
    assert c.parse_chown("42", passwd, group) == (42, 42)
    assert c.parse_chown("42:7", None, None) == (42, 7)
    with pytest.raises(c.ContextError, match="no such user: nobody"):
        c.parse_chown("nobody", passwd, group)
    with pytest.raises(c.ContextError, match="no such group: wheel"):
        c.parse_chown("app:wheel", passwd, group)
    assert c.parse_chmod("755") == 0o755
    with pytest.raises(c.ContextError):
        c.parse_chmod("u+x")


def test_heredoc_source(ctx):
    items = c.plan(c.CopyRequest(["<<EOF"], "/etc/motd", heredocs={"EOF": "hi\n"}), ctx,
                   NO_IMAGE)
    assert [i.path for i in items] == ["etc", "etc/motd"]
    assert items[1].read().read() == b"hi\n"


def _tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data, uid in members:
            ti = tarfile.TarInfo(name)
            ti.size, ti.uid, ti.mode = len(data), uid, 0o600
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_add_unpacks_local_archives_copy_does_not(ctx, tmp_path):
    raw = _tar_bytes([("pkg/one", b"1", 7), ("pkg/two", b"22", 8)])
    (ctx.path / "a.tar.gz").write_bytes(gzip.compress(raw))
    add = c.plan(c.CopyRequest(["a.tar.gz"], "/opt/", add=True), ctx, NO_IMAGE,
                 tmp_path / "scratch")
    got = {i.path: (i.meta.uid, i.read().read() if i.read else None) for i in add}
    assert got == {"opt": (0, None), "opt/pkg": (0, None), "opt/pkg/one": (7, b"1"),
                   "opt/pkg/two": (8, b"22")}
    cp = c.plan(c.CopyRequest(["a.tar.gz"], "/opt/"), ctx, NO_IMAGE, tmp_path / "scratch")
    assert [i.path for i in cp] == ["opt", "opt/a.tar.gz"]


def test_tar_is_deterministic_and_clean(ctx):
    items = plan(ctx, ["."], "/app/")
    one, two = io.BytesIO(), io.BytesIO()
    c.write_tar(items, one, mtime_clamp=100)
    os.utime(ctx.path / "top.txt", (2_000_000_000, 2_000_000_000))
    c.write_tar(plan(ctx, ["."], "/app/"), two, mtime_clamp=100)
    assert one.getvalue() == two.getvalue()
    with tarfile.open(fileobj=io.BytesIO(one.getvalue())) as t:
        members = t.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names, key=lambda n: n.split("/"))
        assert all(m.mtime <= 100 and m.uname == "" and m.gname == "" for m in members)
        assert not any(m.pax_headers for m in members)
        hard = t.getmember("app/dir/hard")
        assert hard.islnk() and hard.linkname == "app/dir/a.txt"
        assert t.extractfile("app/dir/sub/b.txt").read() == b"bb"


def test_checksum_tracks_content_and_metadata_not_mtime(ctx):
    base = c.checksum(plan(ctx, ["dir"], "/d"))
    os.utime(ctx.path / "dir" / "sub" / "b.txt", (1, 1))
    assert c.checksum(plan(ctx, ["dir"], "/d")) == base
    (ctx.path / "dir" / "sub" / "b.txt").write_text("changed")
    changed = c.checksum(plan(ctx, ["dir"], "/d"))
    assert changed != base
    os.chmod(ctx.path / "dir" / "sub" / "b.txt", 0o600)
    assert c.checksum(plan(ctx, ["dir"], "/d")) != changed
    assert c.checksum(plan(ctx, ["dir"], "/d", owner=(1, 1))) != \
        c.checksum(plan(ctx, ["dir"], "/d"))


def test_reincluded_paths_inside_an_ignored_directory(tmp_path):
    root = tmp_path / "c"
    (root / "build" / "keep").mkdir(parents=True)
    (root / "build" / "keep" / "k").write_text("k")
    (root / "build" / "drop").write_text("d")
    (root / ".dockerignore").write_text("build\n!build/keep\n")
    d = c.ContextDir(root)
    try:
        got = [i.path for i in c.plan(c.CopyRequest(["."], "/x/"), d, NO_IMAGE)]
    finally:
        d.close()
    assert got == ["x", "x/.dockerignore", "x/build", "x/build/keep", "x/build/keep/k"]


def test_exclude_patterns(ctx):
    """COPY --exclude: patterns against paths inside each source (and the
    names a glob matched), as BuildKit applies them."""
    assert [i.path for i in plan(ctx, ["dir"], "/o/", exclude=["*.txt"])] == \
        ["o", "o/hard", "o/sub", "o/sub/b.txt"]              # * stays in one directory
    assert [i.path for i in plan(ctx, ["dir"], "/o/", exclude=["**/*.txt"])] == \
        ["o", "o/hard", "o/sub"]
    assert [i.path for i in plan(ctx, ["dir"], "/o/", exclude=["sub"])] == \
        ["o", "o/a.txt", "o/hard"]
    assert [i.path for i in plan(ctx, ["*.log", "top.txt"], "/l/", exclude=["x*"])] == \
        ["l", "l/top.txt", "l/y.log"]
    assert [i.path for i in plan(ctx, ["dir"], "/o/", exclude=["**/b.txt"])] == \
        ["o", "o/a.txt", "o/hard", "o/sub"]


def test_parents_keep_source_directories(ctx):
    """COPY --parents: the source's directories are kept under the
    destination; ``/./`` marks where the kept part starts."""
    assert [i.path for i in plan(ctx, ["dir/sub/b.txt", "top.txt"], "/p", parents=True)] == \
        ["p", "p/dir", "p/dir/sub", "p/dir/sub/b.txt", "p/top.txt"]
    assert [i.path for i in plan(ctx, ["dir/./sub/b.txt"], "/p/", parents=True)] == \
        ["p", "p/sub", "p/sub/b.txt"]
    assert [i.path for i in plan(ctx, ["dir/*.txt"], "/p/", parents=True)] == \
        ["p", "p/dir", "p/dir/a.txt"]


def test_add_checksum_only_for_urls(ctx, tmp_path):
    import hashlib

    from .registrybed import serve_files
    body = b"payload from a web server\n"
    good = "sha256:" + hashlib.sha256(body).hexdigest()
    with serve_files({"file.bin": body}) as base:
        url = f"{base}/file.bin"
        req = c.CopyRequest([url], "/d/", add=True, checksum=good)
        items = c.plan(req, ctx, NO_IMAGE, tmp_path / "scratch")
        with items[-1].read() as f:
            assert (items[-1].path, f.read()) == ("d/file.bin", body)
        bad = c.CopyRequest([url], "/d/", add=True, checksum="sha256:" + "0" * 64)
        with pytest.raises(c.ContextError, match="digest mismatch"):
            c.plan(bad, ctx, NO_IMAGE, tmp_path / "scratch")
    with pytest.raises(c.ContextError, match="non-HTTP"):
        plan(ctx, ["top.txt"], "/d/", add=True, checksum=good)
