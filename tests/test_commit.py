"""``dockish commit``: a container's changes and settings become an image
that runs, mounts and reads back through independent tools (a real
docker-registry, skopeo, umoci). Containers run rootless with real
namespaces and FUSE; the rules for the new config are also tested as pure
functions."""
from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

import pytest

from runner.builder.commit import commit_config
from runner.builder.imageconfig import ImageConfigError, apply_changes
from runner.runtime.container import ContainerConfig

from .runbed import (
    dockish,
    image_config,
    image_store,
    no_leftovers,  # noqa: F401 - a fixture
    ok,
    one_error_line,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")


def _layer_members(root: Path, diff_id: str) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(image_store(root).layers.tar_path(diff_id)) as t:
        return {m.name.rstrip("/"): m for m in t.getmembers()}


CHANGES = ("mkdir -p /srv/app && echo hello > /srv/app/hello && chown 1000:2000 /srv/app/hello"
           " && ln /srv/app/hello /srv/app/hard && rm /etc/shadow && echo extra >> /etc/hosts"
           " && rm -rf /root && mkdir /root && echo new > /root/new && chmod 4755 /srv/app/hello")


def test_commit_makes_an_image_with_the_changes_and_settings(bb, dockish_root, tmp_path):
    ok("run", "--name", "c1", "--network", "none", "-e", "FOO=bar", bb, "sh", "-c", CHANGES)
    diff = ok("diff", "c1").splitlines()
    assert "D /etc/shadow" in diff and "A /srv/app/hello" in diff and "C /root" in diff
    assert not any(line.endswith("/etc/hosts") for line in diff)   # the init layer's
    out = ok("commit", "-a", "Tester <t@example.org>", "-m", "first snapshot",
             "-c", 'CMD ["cat", "/srv/app/hello"]', "-c", "ENV GREETING=hi",
             "-c", "EXPOSE 8080", "-c", "LABEL stage=committed", "-c", "WORKDIR /srv",
             "c1", "snap:1")
    image_id = out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    images = ok("images")
    assert any(line.split()[:3] == ["snap", "1", image_id[7:19]]
               for line in images.splitlines()), images
    # it runs with the new settings
    assert ok("run", "--rm", "--network", "none", "snap:1") == "hello\n"
    shown = ok("run", "--rm", "--network", "none", "snap:1", "sh", "-c",
               "echo $FOO $GREETING; pwd; cat /root/new; stat -c '%u:%g %a %h' /srv/app/hello;"
               " test -e /etc/shadow || echo no-shadow; grep -c extra /etc/hosts || true")
    assert shown.splitlines() == ["bar hi", "/srv", "new", "1000:2000 4755 2", "no-shadow",
                                  "0"]
    info = json.loads(ok("image", "inspect", "snap:1"))[0]
    assert info["Author"] == "Tester <t@example.org>"
    assert info["Comment"] == "first snapshot"
    assert info["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert info["Config"]["Labels"]["stage"] == "committed"
    history = ok("history", "snap:1").splitlines()
    assert "first snapshot" in history[1] and "sh -c mkdir" in history[1]
    # one new layer, holding exactly what `diff` listed (whiteouts for D),
    # owners from the union's metadata, the hosts file left out
    cfg = image_config(dockish_root, "snap:1")
    members = _layer_members(dockish_root, cfg["rootfs"]["diff_ids"][-1])
    listed = {line[2:].lstrip("/") for line in diff}
    in_layer = {n.replace(".wh.", "") for n in members if not n.endswith(".wh..wh..opq")}
    assert in_layer == listed
    assert "root/.wh..wh..opq" in members                    # a replaced directory
    hello = members["srv/app/hello"]
    assert (hello.uid, hello.gid, hello.mode) == (1000, 2000, 0o4755)
    assert members["srv/app/hello"].islnk()                  # one inode: a tar hardlink
    assert members["srv/app/hello"].linkname == "srv/app/hard"
    assert "etc/hosts" not in members


def test_commit_is_read_by_skopeo_and_umoci(bb, dockish_root, tmp_path, monkeypatch):
    """The interop oracle: the committed image pushed to a real registry,
    copied by skopeo and unpacked by umoci is the tree `dockish mount` shows."""
    from registry.client import Options
    from registry.push import push

    from .registrybed import Registry, skopeo_copy, tree_differences, umoci_unpack
    from .registrybed import mounted as mounted_image
    cfg = tmp_path / "config.json"
    cfg.write_text("{}")
    monkeypatch.setenv("DOCKISH_CONFIG", str(cfg))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    ok("run", "--name", "c2", "--network", "none", bb, "sh", "-c", CHANGES)
    ok("commit", "c2", "interop:c")
    reg = Registry(tmp_path / "registry")
    try:
        target = f"{reg.host}/committed/interop:c"
        push(target, image_store(dockish_root), Options(), source="interop:c")
        work = tmp_path / "out"
        work.mkdir()
        skopeo_copy(f"docker://{target}", f"oci:{work / 'layout'}:t", "--src-tls-verify=false")
        rootfs = umoci_unpack(f"{work / 'layout'}:t", work / "bundle")
        assert (rootfs / "srv/app/hello").read_text() == "hello\n"
        assert not (rootfs / "etc/shadow").exists()
        assert sorted(p.name for p in (rootfs / "root").iterdir()) == ["new"]
        with mounted_image("interop:c", tmp_path / "mnt") as mnt:
            assert tree_differences(mnt, rootfs) == []
    finally:
        reg.stop()


def test_commit_without_changes_keeps_the_command_and_adds_no_layer(bb, dockish_root):
    ok("run", "--name", "idle", "--network", "none", "-w", "/tmp", "-u", "1000", bb,
       "echo", "just", "ran")
    image_id = ok("commit", "idle").strip()
    cfg = image_config(dockish_root, image_id)
    from registry.resolve import resolve
    base = resolve(bb, image_store(dockish_root).layers)
    assert cfg["rootfs"]["diff_ids"] == list(base.diff_ids)
    assert cfg["history"][-1]["empty_layer"] is True
    # Docker's rule: the container's command, user and directory become the image's
    assert cfg["config"]["Cmd"] == ["echo", "just", "ran"]
    assert (cfg["config"]["User"], cfg["config"]["WorkingDir"]) == ("1000", "/tmp")
    assert ok("run", "--rm", "--network", "none", image_id[7:19]) == "just ran\n"
    rows = [line.split() for line in ok("images").splitlines()[1:]]
    assert ["<none>", "<none>", image_id[7:19]] in [r[:3] for r in rows]


def test_commit_of_a_running_container_pauses_it_and_it_goes_on(bb, dockish_root):
    """Data still in the kernel's write-back cache (a file kept open) is in
    the image; the container runs on after the commit."""
    script = ("exec 3>/held; echo unflushed >&3; touch /ready; i=0; "
              "while true; do i=$((i+1)); echo $i > /c.tmp; mv /c.tmp /count; usleep 20000; done")
    ok("run", "-d", "--name", "live", "--network", "none", bb, "sh", "-c", script)
    deadline = time.monotonic() + 20
    while "A /ready" not in dockish("diff", "live").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    for pause in ("--pause=true", "--pause=false"):
        image_id = ok("commit", pause, "live").strip()
        shown = ok("run", "--rm", "--network", "none", image_id[7:19], "sh", "-c",
                   "cat /held; cat /count").split()
        assert shown[0] == "unflushed" and int(shown[1]) > 0
    ps = ok("ps", "--format", "{{.Names}} {{.Status}}")
    assert "live Up" in ps
    first = int(ok("exec", "live", "cat", "/count"))
    time.sleep(0.5)
    assert int(ok("exec", "live", "cat", "/count")) > first      # SIGCONT came
    shell = ok("top", "live").splitlines()[1].split()[1]         # the loop's shell
    state = Path(f"/proc/{shell}/status").read_text().split("State:")[1].split()[0]
    assert state != "T"                                           # not left stopped
    ok("rm", "-f", "live")


def test_commit_errors_are_one_line_and_make_nothing(bb, dockish_root):
    ok("run", "--name", "c3", "--network", "none", bb, "touch", "/x")
    before = ok("images", "-q", "-a")
    res = dockish("commit", "nope", "x:1")
    assert (res.returncode, res.stderr) == \
        (1, "Error response from daemon: No such container: nope\n"), res.stderr
    one_error_line(dockish("commit", "-c", "RUN echo hi", "c3", "x:1"), 125,
                   "RUN is not a valid change command")
    one_error_line(dockish("commit", "-c", "EXPOSE notaport", "c3", "x:1"), 125,
                   "invalid containerPort")
    one_error_line(dockish("commit", "c3", "Bad/Name"), 125, "invalid reference format")
    one_error_line(dockish("commit", "c3", "x@sha256:" + "0" * 64), 125, "digest")
    assert ok("images", "-q", "-a") == before


# -- the config rules, as pure functions ------------------------------------------------

def _container(**kw) -> ContainerConfig:
    base = dict(id="c" * 64, name="n", image="img", image_id="", diff_ids=["sha256:aa"],
                init_layer="sha256:ii", argv=["/entry", "arg"], env=["PATH=/bin", "A=1"],
                workdir="/", user="", hostname="h", entrypoint=["/entry"], cmd=["arg"])
    base.update(kw)
    return ContainerConfig(**base)


IMAGE = {"architecture": "amd64", "os": "linux",
         "config": {"Env": ["PATH=/bin"], "Entrypoint": ["/entry"], "Cmd": ["default"],
                    "Labels": {"from": "image"}, "OnBuild": ["RUN true"]},
         "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
         "history": [{"created_by": "base"}]}


def test_config_takes_the_containers_settings_then_the_changes():
    cfg = commit_config(IMAGE, _container(labels={"run": "yes"}), "sha256:bb", author="me",
                        message="msg", changes=["ENV B=$A-x", "USER 7"], now=0)
    conf = cfg["config"]
    assert conf["Env"] == ["PATH=/bin", "A=1", "B=1-x"]
    assert (conf["Entrypoint"], conf["Cmd"], conf["User"]) == (["/entry"], ["arg"], "7")
    assert conf["Labels"] == {"from": "image", "run": "yes"}
    assert conf["OnBuild"] == ["RUN true"]
    assert "WorkingDir" not in conf
    assert cfg["rootfs"]["diff_ids"] == ["sha256:aa", "sha256:bb"]
    assert cfg["history"][-1] == {"created": "1970-01-01T00:00:00.000000000Z",
                                  "created_by": "/entry arg", "author": "me",
                                  "comment": "msg"}
    assert cfg["author"] == "me" and IMAGE["config"]["Cmd"] == ["default"]   # not modified


def test_entrypoint_change_drops_cmd_and_shell_forms_use_the_shell():
    cfg = {"config": {"Cmd": ["x"], "Shell": ["/bin/ash", "-c"]}}
    apply_changes(cfg, ["ENTRYPOINT top -b"])
    assert cfg["config"]["Entrypoint"] == ["/bin/ash", "-c", "top -b"]
    assert cfg["config"]["Cmd"] is None
    apply_changes(cfg, ["CMD echo hi", "VOLUME /data", "STOPSIGNAL SIGINT", "WORKDIR sub"])
    assert cfg["config"]["Cmd"] == ["/bin/ash", "-c", "echo hi"]
    assert cfg["config"]["Volumes"] == {"/data": {}}
    assert (cfg["config"]["StopSignal"], cfg["config"]["WorkingDir"]) == ("SIGINT", "/sub")


@pytest.mark.parametrize("change,words", [
    ("RUN echo", "RUN is not a valid change command"),
    ("COPY a b", "COPY is not a valid change command"),
    ("FROM busybox", "FROM is not a valid change command"),
    ("STOPSIGNAL SIGNOPE", "Invalid signal"),
    ("BOGUS x", "BOGUS"),
])
def test_bad_changes_are_refused(change, words):
    with pytest.raises(ImageConfigError, match=words):
        apply_changes({"config": {}}, [change])


def _proc_state(pid: int) -> str:
    return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]


def test_pause_unpause_and_commit_of_a_paused_container(bb, dockish_root):
    """pause stops every process of the container (SIGSTOP: no cgroup
    freezer here), ps and inspect say so, exec is refused as in Docker,
    commit leaves it paused, unpause lets it go on, stop still works."""
    ok("run", "-d", "--name", "zz", "--network", "none", bb, "sh", "-c",
       "trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo $i > /c.tmp; "
       "mv /c.tmp /count; usleep 20000; done")
    deadline = time.monotonic() + 20
    while "A /count" not in dockish("diff", "zz").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    pid = int(ok("inspect", "-f", "{{.State.Pid}}", "zz"))
    assert ok("pause", "zz") == "zz\n"
    assert _proc_state(pid) == "T"
    assert "(Paused)" in ok("ps", "--format", "{{.Status}}")
    assert ok("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "zz") == "paused true\n"
    one_error_line(dockish("exec", "zz", "true"), 125, "is paused")
    again = dockish("pause", "zz")
    assert again.returncode == 1 and "already paused" in again.stderr
    snap = ok("commit", "zz").strip()
    assert _proc_state(pid) == "T"                      # commit left it paused
    frozen = ok("run", "--rm", "--network", "none", snap[7:19], "cat", "/count")
    time.sleep(0.3)
    assert ok("run", "--rm", "--network", "none", ok("commit", "zz").strip()[7:19], "cat",
              "/count") == frozen                          # nothing moved while paused
    assert ok("unpause", "zz") == "zz\n"
    assert _proc_state(pid) != "T"
    first = int(ok("exec", "zz", "cat", "/count"))
    time.sleep(0.3)
    assert int(ok("exec", "zz", "cat", "/count")) > first
    bad = dockish("unpause", "zz")
    assert bad.returncode == 1 and "is not paused" in bad.stderr
    ok("pause", "zz")
    ok("stop", "-t", "5", "zz")                         # SIGTERM reaches it: thawed
    assert ok("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "zz") == "exited 0\n"
    ok("rm", "zz")


def test_rename_info_and_system_prune(bb, dockish_root):
    ok("run", "--name", "first", "--network", "none", bb, "touch", "/made")
    assert ok("rename", "first", "second") == ""
    assert ok("ps", "-a", "--format", "{{.Names}}") == "second\n"
    one_error_line(dockish("rename", "second", "bad name!"), 125, "Invalid container name")
    ok("create", "--name", "third", "--network", "none", bb, "true")
    one_error_line(dockish("rename", "second", "third"), 125, "already in use")
    dangling = ok("commit", "second").strip()
    shown = ok("info", "--format", "{{.Containers}} {{.ContainersStopped}} {{.Images}}")
    assert shown == "2 2 1\n"
    text = ok("info")
    assert "Storage Driver: dockish" in text and "subordinate ids: 0-" in text
    assert "Init Binary: " in text and "slirp4netns" in text
    assert ok("version", "--format", "{{.Client.Rootless}}") == "true\n"
    out = ok("system", "prune", "-f")
    assert "Deleted Containers:" in out and dangling[7:] in out.replace("sha256:", "")
    assert ok("ps", "-a", "-q") == "" and ok("images", "-q", "-a") == ""
