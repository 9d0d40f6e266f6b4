"""``dockish build`` end to end, on the busybox test image, checked by
independent tools: the built image is saved as an OCI archive and unpacked
by umoci; the store's config is read back as JSON."""
from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from .runbed import image_config, image_store

# the `build` command comes from runner.cli.build; this runs it whether or not
# runner/cli/main.py registers it yet
_PROG = ("import sys; from runner.cli import main; import runner.cli.build as b\n"
         "'build' in main.commands or b.register(main)\nmain()")


def dockish(*args: str, check: bool = True, env: dict | None = None, cwd=None):
    p = subprocess.run([sys.executable, "-c", _PROG, *args], capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, cwd=cwd, timeout=240)
    if check and p.returncode != 0:
        raise AssertionError(f"dockish {' '.join(args)} -> {p.returncode}\n{p.stdout}\n"
                             f"{p.stderr}")
    return p


def _umoci_tree(root: Path, name: str, work: Path) -> Path:
    """Save the image as an OCI archive (dockish) and unpack it with umoci."""
    from registry.archive_out import save
    store = image_store(root)
    rec, full = store.find(name)
    work.mkdir(parents=True)
    archive = work / "img.tar"
    with open(archive, "wb") as f:
        save(store, [(rec, [full])], f, fmt="oci-archive")
    layout = work / "layout"
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(layout)], check=True)
    bundle = work / "bundle"
    tag = full.rsplit(":", 1)[1]
    subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:{tag}",
                    str(bundle)], check=True, capture_output=True)
    idx = json.loads((layout / "index.json").read_text())
    assert idx["manifests"]
    return bundle / "rootfs"


@pytest.fixture
def ctx(tmp_path, busybox_image):
    d = tmp_path / "ctx"
    (d / "app" / "sub").mkdir(parents=True)
    (d / "app" / "main.sh").write_text("echo main\n")
    (d / "app" / "sub" / "data.txt").write_text("data\n")
    (d / "notes.md").write_text("notes\n")
    (d / "secret.key").write_text("never\n")
    (d / "build.log").write_text("log\n")
    (d / ".dockerignore").write_text("*.key\n*.log\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        ti = tarfile.TarInfo("pkg/readme")
        ti.size, ti.uid, ti.gid = 3, 42, 43
        t.addfile(ti, io.BytesIO(b"pkg"))
    (d / "pkg.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    (d / "Dockerfile").write_text(f"""\
# a comment
ARG BASE={busybox_image.oci}
FROM $BASE AS base
ARG WHO=world
ENV GREETING="hello ${{WHO}}" EMPTY=
ENV ALT=${{EMPTY:-fallback}} PLUS=${{GREETING:+set}}
LABEL org.example.who=$WHO "with space"="a b"
WORKDIR /srv/$WHO
COPY app ./
COPY --chown=1000:1001 --chmod=0640 notes.md /docs/
COPY <<EOF /etc/motd
motd for ${{WHO}}
EOF
ADD pkg.tar.gz /opt/
COPY *.md /all/
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=2 CMD wget -q -O- localhost:8080 || exit 1
ONBUILD COPY . /onbuild/
USER 1000:1001
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo $GREETING"]

FROM base AS unused
COPY secret.key /nope
""")
    return d


def test_build_copy_add_and_config(ctx, dockish_root, tmp_path):
    p = dockish("build", "-t", "built:one", "--target", "base", "--build-arg", "WHO=docker",
                "--label", "extra=yes", str(ctx))
    out = p.stdout
    assert "Step 1/19 : FROM $BASE AS base" in out
    assert "Step 19/19 : CMD [\"echo $GREETING\"]" in out
    assert "Successfully built " in out and "Successfully tagged built:one" in out
    assert "/nope" not in out            # the unused stage is not built
    cfg = image_config(dockish_root, "built:one")
    c = cfg["config"]
    assert "GREETING=hello docker" in c["Env"] and "ALT=fallback" in c["Env"]
    assert "PLUS=set" in c["Env"] and "EMPTY=" in c["Env"]
    assert c["Labels"] == {"org.example.who": "docker", "with space": "a b", "extra": "yes"}
    assert c["WorkingDir"] == "/srv/docker"
    assert c["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/data": {}} and c["StopSignal"] == "SIGINT"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q -O- localhost:8080 || exit 1"],
                                "Interval": 30_000_000_000, "Retries": 2}
    assert c["OnBuild"] == ["COPY . /onbuild/"]
    assert c["User"] == "1000:1001"
    assert c["Entrypoint"] == ["/bin/sh", "-c"] and c["Cmd"] == ["echo $GREETING"]
    # busybox's one layer, WORKDIR's mkdir, then COPY x2, heredoc COPY, ADD, COPY: 7 layers
    assert len(cfg["rootfs"]["diff_ids"]) == 7
    assert sum(1 for h in cfg["history"] if not h.get("empty_layer")) == 7
    root = _umoci_tree(dockish_root, "built:one", tmp_path / "umoci")
    assert (root / "srv/docker/main.sh").read_text() == "echo main\n"
    assert (root / "srv/docker/sub/data.txt").read_text() == "data\n"
    assert (root / "docs/notes.md").read_text() == "notes\n"
    assert oct((root / "docs/notes.md").stat().st_mode & 0o777) == "0o640"
    assert (root / "etc/motd").read_text() == "motd for docker\n"
    assert (root / "opt/pkg/readme").read_text() == "pkg"
    assert sorted(os.listdir(root / "all")) == ["notes.md"]
    assert (root / "bin/busybox").exists()
    # owners as the layer says (umoci --rootless can't chown; read the layer)
    store = image_store(dockish_root)
    owners = {}
    for d in cfg["rootfs"]["diff_ids"][1:]:
        with tarfile.open(store.layers.tar_path(d)) as t:
            owners.update({m.name.rstrip("/"): (m.uid, m.gid) for m in t.getmembers()})
    assert owners["docs/notes.md"] == (1000, 1001)
    assert owners["opt/pkg/readme"] == (42, 43)
    assert owners["srv/docker/main.sh"] == (0, 0)


def test_build_from_stdin_dockerfile_or_context_tar(dockish_root, busybox_image, tmp_path):
    """`build -` as Docker's: a Dockerfile alone on stdin (an empty
    context), or a context tar (gzip'd too) whose -f names a file in it;
    a member leaving the context is refused and nothing is built."""
    def build(*args: str, stdin: bytes) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _PROG, "build", *args], input=stdin,
                              capture_output=True, timeout=240)
    df = f"FROM {busybox_image.oci}\nRUN echo from-stdin > /x\n".encode()
    p = build("-q", "-t", "stdin:1", "-", stdin=df)
    assert p.returncode == 0, p.stderr
    assert image_config(dockish_root, "stdin:1")["config"]["Cmd"] == ["sh"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in (("ci.Dockerfile", f"FROM {busybox_image.oci}\nCOPY app.txt /\n"),
                           ("app.txt", "in the tar\n")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data.encode()))
    p = build("-t", "tar:1", "-f", "ci.Dockerfile", "-", stdin=gzip.compress(buf.getvalue()))
    assert p.returncode == 0, p.stderr
    assert b"Successfully tagged tar:1" in p.stdout
    out = subprocess.run([sys.executable, "-m", "runner.cli", "run", "--rm", "--network", "none",
                          "tar:1", "cat", "/app.txt"], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout == "in the tar\n", out.stderr
    bad = io.BytesIO()
    with tarfile.open(fileobj=bad, mode="w") as t:
        for name in ("Dockerfile", "../escape"):
            ti = tarfile.TarInfo(name)
            ti.size = 1
            t.addfile(ti, io.BytesIO(b"x"))
    p = build("-t", "bad:1", "-", stdin=bad.getvalue())
    assert p.returncode == 125 and p.stderr.decode().startswith(
        "dockish: error: unable to read the build context: "), p.stderr
    assert not (tmp_path.parent / "escape").exists()
    p = build("-f", "-", "-", stdin=df)
    assert p.returncode == 125 and b"can't use stdin for both" in p.stderr
    assert subprocess.run([sys.executable, "-m", "runner.cli", "images", "-q", "bad"],
                          capture_output=True, text=True).stdout == ""


def test_cache_hits_misses_and_reproducible(ctx, dockish_root):
    df = ctx / "Dockerfile"
    text = df.read_text().split("FROM base AS unused")[0]
    df.write_text(text)
    env = {"SOURCE_DATE_EPOCH": "1700000000"}
    first = dockish("build", "-q", str(ctx), env=env).stdout.strip()
    assert first.startswith("sha256:")
    again = dockish("build", str(ctx), env=env).stdout
    assert again.count(" ---> Using cache") == 18       # every step after FROM, as Docker
    assert f"Successfully built {first[7:19]}" in again
    # a changed file misses from its COPY on; an ignored file changes nothing
    (ctx / "secret.key").write_text("still ignored\n")
    assert dockish("build", "-q", str(ctx), env=env).stdout.strip() == first
    (ctx / "app" / "main.sh").write_text("echo changed\n")
    out = dockish("build", str(ctx), env=env).stdout
    # the steps before COPY app: ARG, ENV, ENV, LABEL, WORKDIR's mkdir
    assert out.count(" ---> Using cache") == 5
    # reproducible: --no-cache gives the same layers (and image) again
    second = dockish("build", "-q", "--no-cache", str(ctx), env=env).stdout.strip()
    third = dockish("build", "-q", "--no-cache", str(ctx), env=env).stdout.strip()
    assert second == third and second != first
    iid = ctx.parent / "iid"
    dockish("build", "-q", "--iidfile", str(iid), str(ctx), env=env)
    assert iid.read_text() == second
    # builder prune forgets the cache; the image keeps its layers
    p = dockish("builder", "prune", "-f")
    assert "Total reclaimed space" in p.stdout
    out = dockish("build", str(ctx), env=env).stdout
    assert " ---> Using cache" not in out


def test_build_output_and_config_as_docker(tmp_path, dockish_root):
    """What a Docker user reads: after FROM the base image's own ID (and
    nothing for scratch); on a rebuild every step, config-only ones too, says
    "Using cache"; a base without PATH gets Docker's default PATH."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    busybox = "/bin/busybox"
    (rootfs / "bin" / "busybox").write_bytes(Path(busybox).read_bytes())
    (rootfs / "bin" / "busybox").chmod(0o755)
    (rootfs / "bin" / "sh").symlink_to("busybox")
    tar = tmp_path / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(rootfs, ".")
    dockish("import", str(tar), "nopath:1")
    base_id = dockish("images", "-q", "nopath:1").stdout.strip()
    assert dockish("inspect", "-f", "{{.Config.Env}}", "nopath:1").stdout.strip() in ("[]", "<nil>")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM nopath:1\nENV A=1\nLABEL x=y\nRUN echo hi > /f\n"
                                    "CMD [\"sh\"]\n")
    first = dockish("build", "-t", "out:1", str(ctx)).stdout.splitlines()
    assert first[:2] == ["Step 1/5 : FROM nopath:1", f" ---> {base_id}"]
    assert " ---> Using cache" not in first
    again = dockish("build", "-t", "out:1", str(ctx)).stdout.splitlines()
    assert again[1] == f" ---> {base_id}"
    for n, step in enumerate(("ENV A=1", "LABEL x=y", "RUN echo hi > /f", 'CMD ["sh"]'), 2):
        at = again.index(f"Step {n}/5 : {step}")
        assert again[at + 1] == " ---> Using cache", again
    assert dockish("inspect", "-f", "{{json .Config.Env}}", "out:1").stdout.strip() == (
        '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","A=1"]')
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY Dockerfile /\n")
    out = dockish("build", str(ctx)).stdout.splitlines()
    assert out[:2] == ["Step 1/2 : FROM scratch", " ---> "]


def test_multistage_copy_from_and_onbuild(ctx, dockish_root, busybox_image, tmp_path):
    (ctx / "Dockerfile").write_text(f"""\
FROM {busybox_image.oci} AS one
COPY app/main.sh /made/in/one.sh
FROM {busybox_image.oci} AS two
COPY notes.md /two.md
FROM scratch
COPY --from=one /made /from-one
COPY --from=0 /bin/busybox /bin/busybox
""")
    p = dockish("build", "-t", "multi", str(ctx))
    assert "/two.md" not in p.stdout
    cfg = image_config(dockish_root, "multi")
    assert len(cfg["rootfs"]["diff_ids"]) == 2
    root = _umoci_tree(dockish_root, "multi", tmp_path / "u")
    assert (root / "from-one/in/one.sh").read_text() == "echo main\n"
    assert sorted(os.listdir(root)) == ["bin", "from-one"]
    # ONBUILD triggers run in the child build
    (ctx / "Parent").write_text(f"FROM {busybox_image.oci}\nONBUILD COPY notes.md /ob.md\n")
    dockish("build", "-t", "parent", "-f", str(ctx / "Parent"), str(ctx))
    child_df = "FROM parent\nARG TARGETARCH\nLABEL child=1 arch=$TARGETARCH\n"
    p = subprocess.run([sys.executable, "-c", _PROG, "build", "-t", "child", "-f", "-",
                        str(ctx)], input=child_df, capture_output=True, text=True, check=True)
    out = p.stdout
    assert "# Executing 1 build trigger" in out
    child = image_config(dockish_root, "child")
    assert "OnBuild" not in child["config"] or not child["config"]["OnBuild"]
    assert len(child["rootfs"]["diff_ids"]) == 2
    assert child["config"]["Labels"] == {"child": "1", "arch": child["architecture"]}


@pytest.mark.parametrize("dockerfile, message", [
    ("FROM {img}\nFORM x\n", "Dockerfile:2: unknown instruction: FORM"),
    ("FROM {img}\nCOPY missing.txt /x\n", "Dockerfile:2: COPY failed:"),
    ("FROM {img}\nCOPY --chown=nobody7 notes.md /x\n", "no such user: nobody7"),
    ("FROM oci:/does/not/exist\n", "Unable to find image"),
    ("FROM {img}\nRUN --security=insecure true\n",
     "Dockerfile:2: RUN --security is not supported"),
    ("FROM {img}\nCOPY a b c\n", "Dockerfile:2: COPY failed:"),
    ("FROM {img} AS x\nFROM x\nCOPY --from=oci:/no/such / /\n", "COPY --from=oci:/no/such"),
])
def test_errors_are_one_line_and_tag_nothing(ctx, dockish_root, busybox_image, dockerfile,
                                             message):
    (ctx / "Dockerfile").write_text(dockerfile.format(img=busybox_image.oci))
    p = dockish("build", "-t", "broken", str(ctx), check=False)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dockish: error: ")
    assert message in lines[0]
    assert "Traceback" not in p.stderr
    assert "docker.io/library/broken:latest" not in image_store(dockish_root).tags()


def test_run_steps_layers_owners_and_deletions(ctx, dockish_root, busybox_image, tmp_path):
    (ctx / "Dockerfile").write_text(f"""\
FROM {busybox_image.oci}
ARG MSG=made
RUN mkdir -p /work && echo "$MSG" > /work/f && echo gone > /work/del && rm /etc/shadow
RUN rm /work/del && echo output-from-run
USER 1000
RUN touch /tmp/mine && mkdir /tmp/mydir
RUN <<EOF
echo "heredoc as $(id -u)" > /tmp/heredoc
EOF
""")
    out = dockish("build", "-t", "ran", "--build-arg", "MSG=hello", str(ctx)).stdout
    assert "output-from-run" in out and " ---> Running in " in out
    cfg = image_config(dockish_root, "ran")
    assert len(cfg["rootfs"]["diff_ids"]) == 5
    assert not any("MSG=" in e for e in cfg["config"]["Env"])     # ARGs stay out of the image
    store = image_store(dockish_root)
    members = {}
    for d in cfg["rootfs"]["diff_ids"][1:]:
        with tarfile.open(store.layers.tar_path(d)) as t:
            members.update({m.name.rstrip("/"): m for m in t.getmembers()})
    assert "etc/.wh.shadow" in members and "work/.wh.del" in members
    assert (members["tmp/mine"].uid, members["tmp/mydir"].uid) == (1000, 1000)
    assert members["work/f"].uid == 0
    root = _umoci_tree(dockish_root, "ran", tmp_path / "u")
    assert (root / "work/f").read_text() == "hello\n"
    assert not (root / "work/del").exists() and not (root / "etc/shadow").exists()
    assert (root / "tmp/heredoc").read_text() == "heredoc as 1000\n"
    assert sorted(os.listdir(root / "work")) == ["f"]
    assert not list((dockish_root / "containers").iterdir())   # build containers removed
    # umoci's tree is the tree the union mount shows
    mp = tmp_path / "mnt"
    mp.mkdir()
    dockish("mount", "ran", str(mp))
    try:
        assert _walk(mp) == _walk(root)
    finally:
        dockish("umount", str(mp))


def _walk(top: Path) -> dict[str, tuple]:
    """path -> (type, permission bits, content or link target) of a tree."""
    out = {}
    for dirpath, dirs, files in os.walk(top):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(top))
            if p.is_symlink():
                out[rel] = ("l", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("d", st.st_mode & 0o7777)
            else:
                out[rel] = ("f", st.st_mode & 0o7777, p.read_bytes() if st.st_mode & 0o444
                            else None)
    return out


def test_failing_run_names_the_step_and_tags_nothing(ctx, dockish_root, busybox_image):
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image.oci}\nRUN touch /x\n"
                                    f"RUN echo failing && exit 3\nRUN echo never\n")
    before = image_store(dockish_root).records()
    p = dockish("build", "-t", "failed", str(ctx), check=False)
    assert p.returncode == 1
    assert "failing" in p.stdout and "never" not in p.stdout
    assert p.stderr.strip() == ("dockish: error: The command '/bin/sh -c echo failing && "
                                "exit 3' returned a non-zero code: 3")
    store = image_store(dockish_root)
    assert store.records() == before and store.tags() == {}
    # the step before it was cached
    p = dockish("build", "-t", "failed", str(ctx), check=False)
    assert p.stdout.count(" ---> Using cache") == 1


def test_squash_gives_the_same_tree_in_one_layer(ctx, dockish_root, busybox_image, tmp_path):
    (ctx / "Dockerfile").write_text(f"""\
FROM {busybox_image.oci}
RUN mkdir -p /d/sub && echo 1 > /d/sub/a && echo 2 > /d/b && ln /d/b /d/hard && rm /etc/shadow
COPY app /d/sub/
RUN rm -r /d/sub && mkdir /d/sub && echo new > /d/sub/n && rm /d/b && echo re > /etc/shadow
RUN rm /etc/passwd
""")
    dockish("build", "-t", "layers", str(ctx))
    dockish("build", "-t", "squashed", "--squash", str(ctx))
    flat = image_config(dockish_root, "squashed")
    assert len(flat["rootfs"]["diff_ids"]) == 2
    assert sum(1 for h in flat["history"] if not h.get("empty_layer")) == 2
    assert _walk(_umoci_tree(dockish_root, "squashed", tmp_path / "s")) == \
        _walk(_umoci_tree(dockish_root, "layers", tmp_path / "l"))


def test_reproducible_run_layers_with_source_date_epoch(ctx, dockish_root, busybox_image):
    (ctx / "Dockerfile").write_text(f"""\
FROM {busybox_image.oci}
RUN mkdir -p /out/d && date > /out/now && echo fixed > /out/d/f && rm /etc/shadow
COPY app /app/
""")
    env = {"SOURCE_DATE_EPOCH": "1600000000"}
    one = dockish("build", "-q", "--no-cache", str(ctx), env=env).stdout.strip()
    cfg_one = image_store(dockish_root).config(image_store(dockish_root).find(one)[0])
    time.sleep(1.1)
    (ctx / "Dockerfile").write_text((ctx / "Dockerfile").read_text().replace("date", "echo"))
    two = dockish("build", "-q", "--no-cache", str(ctx), env=env).stdout.strip()
    three = dockish("build", "-q", "--no-cache", str(ctx), env=env).stdout.strip()
    cfg_three = image_store(dockish_root).config(image_store(dockish_root).find(three)[0])
    assert two == three                      # same inputs at different times: same image
    assert cfg_three["created"] == "2020-09-13T12:26:40Z"
    assert cfg_one["rootfs"]["diff_ids"][2] == cfg_three["rootfs"]["diff_ids"][2]   # COPY


def test_pushed_build_reads_back_through_skopeo_and_umoci(ctx, dockish_root, busybox_image,
                                                          tmp_path, monkeypatch):
    """The interop oracle: a built image pushed to a local registry, copied by
    skopeo and unpacked by umoci is the tree `dockish mount` shows, owners
    included; a RUN step's deletions are gone there too."""
    from registry.client import Options
    from registry.push import push

    from .registrybed import Registry, skopeo_copy, tree_differences, umoci_unpack
    from .registrybed import mounted as mounted_image
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    monkeypatch.setenv("DOCKISH_CONFIG", str(cfg))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    (ctx / "Dockerfile").write_text(f"""\
FROM {busybox_image.oci}
RUN mkdir -p /srv/data && echo kept > /srv/data/keep && echo x > /srv/data/gone \\
    && rm -rf /etc/shadow /root
COPY --chown=1000:2000 app /srv/app/
RUN rm /srv/data/gone && ln /srv/data/keep /srv/data/hard
USER 1000
RUN echo mine > /tmp/owned
""")
    dockish("build", "-t", "interop:1", str(ctx))
    reg = Registry(tmp_path / "registry")
    try:
        target = f"{reg.host}/built/interop:1"
        push(target, image_store(dockish_root), Options(), source="interop:1")
        work = tmp_path / "out"
        work.mkdir()
        skopeo_copy(f"docker://{target}", f"oci:{work / 'layout'}:t", "--src-tls-verify=false")
        rootfs = umoci_unpack(f"{work / 'layout'}:t", work / "bundle")
        assert not (rootfs / "srv/data/gone").exists() and not (rootfs / "root").exists()
        assert not (rootfs / "etc/shadow").exists()
        assert (rootfs / "tmp/owned").read_text() == "mine\n"
        with mounted_image("interop:1", tmp_path / "mnt") as mnt:
            assert tree_differences(mnt, rootfs) == []
    finally:
        reg.stop()


def test_run_mounts_cache_bind_tmpfs_secret(ctx, dockish_root, busybox_image, tmp_path):
    """BuildKit's RUN --mount: a cache directory that outlives builds (until
    `builder prune`), binds of the context (read-only; `rw` writes thrown
    away) and of another stage, a tmpfs, secrets as files and variables.
    None of them, nor the stubs made to mount them on, reaches a layer."""
    secret = tmp_path / "token.txt"
    secret.write_text("s3cr3t-value")
    (ctx / "Dockerfile").write_text(f"""\
FROM {busybox_image.oci} AS tools
RUN mkdir /tools && echo from-stage > /tools/tool

FROM {busybox_image.oci}
RUN --mount=type=cache,target=/var/cache/app,id=appcache \\
    sh -c 'echo run >> /var/cache/app/log; wc -l < /var/cache/app/log > /count'
RUN --mount=type=bind,source=app,target=/src \\
    sh -c 'cat /src/main.sh > /copied; touch /src/new 2>/dev/null || echo ro > /bindro'
RUN --mount=type=bind,source=app,target=/src,rw touch /src/new && ls /src > /listing
RUN --mount=type=bind,from=tools,source=/tools,target=/t cat /t/tool > /fromstage
RUN --mount=type=tmpfs,target=/scratch \\
    sh -c 'mount | grep -q " /scratch type tmpfs" && echo tmpfs > /t1'
RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /secretlen
RUN --mount=type=secret,id=token,env=TOKEN sh -c 'test "$TOKEN" = s3cr3t-value && echo ok > /e'
""")
    def build(*extra: str) -> str:
        return dockish("build", "-t", "mounts", "--secret", f"id=token,src={secret}", *extra,
                       str(ctx)).stdout

    build()
    def show(path: str) -> str:
        return dockish("run", "--rm", "--network", "none", "mounts", "cat", path).stdout

    assert show("/count") == "1\n" and show("/copied") == "echo main\n"
    assert show("/bindro") == "ro\n" and show("/listing").split() == ["main.sh", "new", "sub"]
    assert not (ctx / "app" / "new").exists()                   # rw writes are thrown away
    assert show("/fromstage") == "from-stage\n" and show("/t1") == "tmpfs\n"
    assert show("/secretlen") == "12\n" and show("/e") == "ok\n"
    cfg = image_config(dockish_root, "mounts")
    store = image_store(dockish_root)
    names = set()
    for d in cfg["rootfs"]["diff_ids"][1:]:
        data = store.layers.tar_path(d).read_bytes()
        assert b"s3cr3t-value" not in data
        with tarfile.open(store.layers.tar_path(d)) as t:
            names |= {m.name.rstrip("/") for m in t.getmembers()}
    assert not {n for n in names if n.split("/")[0] in ("src", "t", "scratch", "run")
                or n.startswith("var/")}          # /var itself: the image's, changed
    # the cache directory outlives the build; `builder prune` empties it
    build("--no-cache")
    assert show("/count") == "2\n"
    row = [r for r in dockish("system", "df").stdout.splitlines() if r.startswith("Build")]
    assert row and row[0].split()[2] != "0" and row[0].split()[4] != "0B", row
    dockish("builder", "prune", "-f")
    row = [r for r in dockish("system", "df").stdout.splitlines() if r.startswith("Build")]
    assert row[0].split()[2:] == ["0", "0", "0B", "0B"], row
    build("--no-cache")
    assert show("/count") == "1\n"
    # a bind mount's content is part of the step's cache key
    out = build()
    assert out.count("Using cache") == 8
    (ctx / "app" / "main.sh").write_text("echo changed\n")
    out = build()
    assert out.count("Using cache") == 2 and show("/copied") == "echo changed\n"


@pytest.mark.parametrize("mount,words", [
    ("type=ssh", "type=ssh is not supported"),
    ("type=secret,id=nope,required=true", "secret nope not found"),
    ("type=cache", "cache mount needs a target"),
    ("type=bind,source=missing,target=/m", "missing: not found"),
    ("type=weird,target=/x", "unsupported mount type"),
    ("type=cache,target=/x,bogus=1", "unexpected key 'bogus'"),
])
def test_bad_run_mounts_are_one_line_naming_the_step(ctx, busybox_image, mount, words):
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image.oci}\nRUN --mount={mount} true\n")
    p = dockish("build", "-t", "bad", str(ctx), check=False)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Dockerfile:2" in lines[0] and words in lines[0], lines


def test_copy_exclude_and_parents(ctx, dockish_root, busybox_image, tmp_path):
    (ctx / "Dockerfile").write_text(f"""\
FROM {busybox_image.oci}
COPY --exclude=*.sh --exclude=sub/data.txt app /ex/
COPY --parents app/sub/data.txt notes.md /par/
""")
    dockish("build", "-t", "copyflags", str(ctx))
    root = _umoci_tree(dockish_root, "copyflags", tmp_path / "u")
    assert sorted(os.listdir(root / "ex")) == ["sub"] and not os.listdir(root / "ex/sub")
    assert (root / "par/app/sub/data.txt").read_text() == "data\n"
    assert (root / "par/notes.md").read_text() == "notes\n"
