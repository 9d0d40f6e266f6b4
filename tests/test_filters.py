"""Labels and filters as Docker scripts use them, on real rootless
containers: ``run -l/--label-file`` (merged over the image's labels),
``ps --filter/-n/-l/-s/--format json``, ``volume create --label``,
``volume ls --filter``, the prunes' ``--filter``. The docker CLI (28.x)
pointed at ``dockish system service`` is the oracle: the same ``ps`` or
``volume ls`` through it and through ``dockish`` prints the same lines,
and errors read the same."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from .diffbase import dockish_exe
from .runbed import dockish, no_leftovers  # noqa: F401 - a fixture
from .runbed import ok as dok
from .test_api import IMAGE, docker, service  # noqa: F401 - a fixture
from .test_api import ok as docker_ok

pytestmark = pytest.mark.usefixtures("no_leftovers")

FIELDS = ('{{.Names}}|{{.Image}}|{{.Command}}|{{.State}}|{{.Labels}}|{{.Label "tier"}}|'
          '{{.Networks}}|{{.Mounts}}|{{.LocalVolumes}}|{{.Ports}}|{{.CreatedAt}}')


@pytest.fixture
def bed(service, tmp_path):  # noqa: F811 - the fixture imported above
    """Four containers of two images: ``web`` (running, labels from the
    image, a label file and flags, volume ``data``), ``worker`` (exited 3),
    ``job`` (exited 0), ``fresh`` (created)."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nLABEL tier=image shared=image\n")
    dok("build", "-q", "-t", "labeled:1", str(ctx))
    (tmp_path / "labels").write_text("# from a file\nenv=prod\nshared=file\n")
    dok("run", "-d", "--name", "web", "-l", "tier=web", "--label", "shared=mine",
        "--label-file", str(tmp_path / "labels"), "-v", "data:/data", "labeled:1",
        "sleep", "1000")
    assert dockish("run", "--name", "worker", "-l", "tier=back", IMAGE,
                   "sh", "-c", "exit 3").returncode == 3
    dok("run", "--name", "job", IMAGE, "true")
    dok("create", "--name", "fresh", IMAGE)
    return service


def both(svc, *args: str) -> str:
    """``dockish ARGS`` and ``docker ARGS`` through the service print the
    same; that output."""
    mine = dok(*args)
    theirs = docker_ok(svc, *args)
    assert mine == theirs, (args, mine, theirs)
    return mine


def names(out: str) -> list[str]:
    return [line.split("|")[0] for line in out.splitlines()]


def test_labels_are_the_images_under_the_files_under_the_flags(bed):
    want = '{"env":"prod","shared":"mine","tier":"web"}\n'
    assert dok("inspect", "-f", "{{json .Config.Labels}}", "web") == want
    assert docker_ok(bed, "inspect", "-f", "{{json .Config.Labels}}", "web") == want
    assert dok("ps", "--format", '{{.Label "shared"}} {{.Labels}}') == \
        "mine env=prod,shared=mine,tier=web\n"


@pytest.mark.parametrize(("args", "expected"), [
    ((), ["web"]),
    (("-a",), ["fresh", "job", "worker", "web"]),
    (("-a", "--filter", "label=tier"), ["worker", "web"]),
    (("--filter", "label=tier=web"), ["web"]),
    (("-a", "-f", "label=tier", "-f", "label=env=prod"), ["web"]),       # labels: AND
    (("-f", "status=exited"), ["job", "worker"]),                       # status implies -a
    (("-f", "status=exited", "-f", "status=created"), ["fresh", "job", "worker"]),  # OR
    (("-a", "-f", "status=exited", "-f", "name=^wor"), ["worker"]),     # keys: AND
    (("-a", "-f", "exited=3"), ["worker"]),
    (("-a", "-f", "exited=0", "-f", "exited=3"), ["job", "worker"]),
    (("-f", "exited=0"), []),                                          # Docker: needs -a
    (("-a", "-f", "name=^w"), ["worker", "web"]),
    (("-a", "-f", "name=ob"), ["job"]),
    (("-a", "-f", "ancestor=labeled:1"), ["web"]),
    (("-a", "-f", "ancestor=busybox"), ["fresh", "job", "worker", "web"]),   # built on it
    (("-a", "-f", "before=job"), ["worker", "web"]),
    (("-a", "-f", "since=worker"), ["fresh", "job"]),
    (("-a", "-f", "volume=data"), ["web"]),
    (("-a", "-f", "volume=/data"), ["web"]),
    (("-a", "-f", "health=none"), ["fresh", "job", "worker", "web"]),
    (("-n", "2"), ["fresh", "job"]),
    (("--last", "1", "-f", "status=running"), ["web"]),
    (("-l",), ["fresh"]),
])
def test_ps_filters_as_docker(bed, args, expected):
    assert names(both(bed, "ps", *args, "--format", FIELDS)) == expected


def test_ps_filter_by_id_prefix_and_network(bed):
    cid = dok("ps", "-q", "--no-trunc", "-f", "name=web").strip()
    assert names(both(bed, "ps", "-a", "-f", f"id={cid[:6]}", "--format", FIELDS)) == ["web"]
    net = dok("ps", "--format", "{{.Networks}}").strip()
    assert names(both(bed, "ps", "-a", "-f", f"network={net}", "--format", FIELDS))[-1] == \
        "web"


def test_ps_json_has_dockers_fields_and_values(bed):
    def rows(out: str) -> list[dict]:
        out_rows = [json.loads(line) for line in out.splitlines()]
        for r in out_rows:           # times move between the two calls
            r.pop("RunningFor")
            r.pop("Status")
        return out_rows
    mine = rows(dok("ps", "-a", "--format", "json"))
    theirs = rows(docker_ok(bed, "ps", "-a", "--format", "json"))
    assert mine == theirs
    web = mine[-1]
    assert web["Names"] == "web" and web["Labels"] == "env=prod,shared=mine,tier=web"
    assert web["Command"] == '"sleep 1000"' and web["LocalVolumes"] == "1"
    assert web["Mounts"] == "data" and web["Size"] == "0B"     # json: not measured
    sized = [json.loads(line) for line in dok("ps", "--format", "{{json .}}").splitlines()]
    assert "B (virtual " in sized[0]["Size"]                     # {{json .}}: measured
    assert "B (virtual " in both(bed, "ps", "--format", "{{.Names}} {{.Size}}")
    assert web["CreatedAt"].endswith(" +0000 UTC") and web["Platform"] is None


def test_ps_size_and_quiet(bed):
    out = dok("ps", "-s")
    assert out.splitlines()[0].split()[-1] == "SIZE" and "(virtual " in out
    assert both(bed, "ps", "-a", "-q", "-f", "status=exited") == \
        both(bed, "ps", "-a", "-q", "-f", "exited=0", "-f", "exited=3")
    assert len(dok("ps", "-aq").split()) == 4


@pytest.mark.parametrize(("args", "line"), [
    (("-f", "colour=red"), "invalid filter 'colour'"),
    (("-f", "status=up"), "invalid filter 'status=up': invalid value for state (up): must "
     "be one of created, running, paused, restarting, removing, exited, dead"),
    (("-f", "exited=x"), "invalid filter 'exited=x': strconv.Atoi: parsing \"x\": invalid "
     "syntax"),
    (("-f", "before=nope"), "No such container: nope"),
])
def test_ps_bad_filters_read_as_dockers(bed, args, line):
    for res in (dockish("ps", *args), docker(bed, "ps", *args)):
        assert (res.returncode, res.stdout, res.stderr) == \
            (1, "", f"Error response from daemon: {line}\n")


def test_malformed_filter_and_label_are_flag_errors(bed):
    res = dockish("ps", "--filter", "dangling")
    assert res.returncode == 125 and res.stderr.splitlines()[0] == (
        'dockish: invalid argument "dangling" for "-f, --filter" flag: bad format of filter '
        "(expected name=value)")
    res = dockish("run", "--rm", "-l", "=x", IMAGE, "true")
    assert res.returncode == 125 and "invalid label '=x': empty name" in res.stderr
    assert len(dok("ps", "-aq").split()) == 4          # nothing was made


def test_label_file_errors_are_one_line(bed, tmp_path):
    (tmp_path / "bad").write_bytes(b"ok=1\nbad key=2\n")
    (tmp_path / "fifo").mkdir()
    for path, words in ((tmp_path / "missing", "no such file or directory"),
                        (tmp_path / "bad", "variable 'bad key' contains whitespaces"),
                        (tmp_path / "fifo", "--label-file: ")):
        res = dockish("create", "--label-file", str(path), IMAGE)
        assert res.returncode == 125 and res.stdout == "", res
        assert res.stderr.startswith("dockish: error: --label-file: ") and words in \
            res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert len(dok("ps", "-aq").split()) == 4          # nothing was made


def test_volumes_labels_and_filters(bed):
    dok("volume", "create", "--label", "keep=1", "--label", "team", "kept")
    dok("volume", "create", "spare")
    fmt = '{{.Name}} {{.Driver}} {{.Label "keep"}}'
    assert both(bed, "volume", "ls", "--format", fmt) == "data local \nkept local 1\nspare local \n"
    # sorted as Docker's later CLIs (28.2's leaves Go's random map order)
    assert dok("volume", "ls", "-f", "name=kept", "--format", "{{.Labels}}") == "keep=1,team=\n"
    assert both(bed, "volume", "ls", "-q", "-f", "dangling=true") == "kept\nspare\n"
    assert both(bed, "volume", "ls", "-q", "-f", "dangling=false") == "data\n"
    assert both(bed, "volume", "ls", "-q", "-f", "label=keep=1") == "kept\n"
    assert both(bed, "volume", "ls", "-q", "-f", "name=^s", "-f", "name=^k") == "kept\nspare\n"
    assert both(bed, "volume", "ls", "-q", "-f", "driver=local", "-f", "label=team") == \
        "kept\n"
    assert both(bed, "volume", "inspect", "--format", "{{.Labels}} {{.Driver}}", "kept") == \
        "map[keep:1 team:] local\n"
    for res in (dockish("volume", "ls", "-f", "until=1h"),
                docker(bed, "volume", "ls", "-f", "until=1h")):
        assert (res.returncode, res.stderr) == \
            (1, "Error response from daemon: invalid filter 'until'\n")
    for res in (dockish("volume", "create", "-d", "nfs", "x"),
                docker(bed, "volume", "create", "-d", "nfs", "x")):
        assert (res.returncode, res.stderr) == (1, "Error response from daemon: create x: "
                                                   "error looking up volume plugin nfs: "
                                                   'plugin "nfs" not found\n')
    res = dockish("volume", "create", "-o", "type=tmpfs", "y")
    assert res.returncode == 1 and "need root to mount" in res.stderr
    assert "y" not in dok("volume", "ls", "-q").split()
    assert dok("volume", "prune", "-f", "-a", "--filter", "label!=keep") == \
        "Deleted Volumes:\nspare\n\nTotal reclaimed space: 0B\n"
    assert dok("volume", "ls", "-q") == "data\nkept\n"


def test_container_and_system_prune_filters(bed):
    out = dok("container", "prune", "-f", "--filter", "label=tier=back")
    assert out.startswith("Deleted Containers:\n") and out.count("\n") == 4
    assert names(dok("ps", "-a", "--format", FIELDS)) == ["fresh", "job", "web"]
    out = docker_ok(bed, "container", "prune", "-f", "--filter", "until=1h")
    assert names(dok("ps", "-a", "--format", FIELDS)) == ["fresh", "job", "web"]
    dok("system", "prune", "-f", "--filter", "label!=nothing", "--filter", "until=0s")
    assert names(dok("ps", "-a", "--format", FIELDS)) == ["web"]
    for res in (dockish("system", "prune", "-f", "--volumes", "--filter", "until=1h"),
                docker(bed, "system", "prune", "-f", "--volumes", "--filter", "until=1h")):
        assert (res.returncode, res.stdout, res.stderr) == \
            (1, "", 'ERROR: The "until" filter is not supported with "--volumes"\n')


def test_image_prune_filters(bed, tmp_path):
    ctx = tmp_path / "ctx2"
    ctx.mkdir()
    for kind in ("a", "b"):             # the second build leaves the first dangling
        (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nLABEL kind={kind}\n")
        dok("build", "-q", "-t", "twice:1", str(ctx))
    dangling = dok("images", "-q", "-f", "dangling=true").split()
    assert len(dangling) == 1
    assert "deleted" not in dok("image", "prune", "-f", "--filter", "label=kind=b")
    assert dok("images", "-q", "-f", "dangling=true").split() == dangling
    out = docker_ok(bed, "image", "prune", "-f", "--filter", "label=kind=a")
    assert "Deleted Images:" in out and dok("images", "-q", "-f", "dangling=true") == ""


def test_system_df_verbose_tables_and_templates(bed):
    out = dok("system", "df", "-v")
    for title in ("Images space usage:", "Containers space usage:",
                  "Local Volumes space usage:", "Build cache usage: "):
        assert title in out, out
    assert "VOLUME NAME   LINKS     SIZE" in out
    assert re.search(r"\nCACHE ID +CACHE TYPE +SIZE +CREATED +LAST USED +USAGE +SHARED\n"
                     r"\w{12} +regular ", out), out        # the bed's build: its records
    sections = ('{{range .Containers}}{{.Names}} {{.Size}} {{.LocalVolumes}} {{.State}}\n'
                '{{end}}{{range .Volumes}}{{.Name}} {{.Links}} {{.Size}}\n{{end}}')
    lines = both(bed, "system", "df", "-v", "--format", sections).splitlines()
    assert [re.sub(r"^(\w+) \d+B ", r"\1 ", line) for line in lines] == [
        "fresh 0 created", "job 0 exited", "worker 0 exited", "web 1 running", "data 1 0B"]
    usage = json.loads(dok("system", "df", "-v", "--format", "json"))
    assert list(usage) == ["Images", "Containers", "Volumes", "BuildCache"]
    assert "labeled" in {i["Repository"] for i in usage["Images"]}


def run_both(svc, *args: str, input: str = "") -> str:
    """``dockish ARGS`` and ``docker ARGS`` with ``input`` on stdin: the
    same exit code (0) and output; that output."""
    mine = subprocess.run([dockish_exe(), *args], input=input, capture_output=True, text=True,
                          timeout=120)
    theirs = docker(svc, *args, input=input)
    assert (mine.returncode, mine.stdout, mine.stderr) == \
        (theirs.returncode, theirs.stdout, theirs.stderr) == (0, mine.stdout, ""), \
        (args, mine, theirs)
    return mine.stdout


@pytest.mark.parametrize(("args", "question"), [
    (("container", "prune"), "WARNING! This will remove all stopped containers.\n"),
    (("volume", "prune"), "WARNING! This will remove anonymous local volumes not used by at "
     "least one container.\n"),
    (("image", "prune", "-a"), "WARNING! This will remove all images without at least one "
     "container associated to them.\n"),
    (("system", "prune", "--volumes"),
     "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by "
     "at least one container\n  - all anonymous volumes not used by at least one container\n"
     "  - all dangling images\n  - unused build cache\n\n"),
    (("system", "prune", "-a", "--filter", "label=a", "--filter", "until=1h"),
     "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by "
     "at least one container\n  - all images without at least one container associated to "
     "them\n  - all build cache\n\n  Items to be pruned will be filtered with:\n"
     "  - label=a\n  - until=1h\n\n"),
])
def test_prune_asks_as_docker_and_no_is_no(bed, args, question):
    for answer in ("n\n", ""):
        assert run_both(bed, *args, input=answer) == \
            question + "Are you sure you want to continue? [y/N] "
    assert len(dok("ps", "-aq").split()) == 4


def test_prune_reports_as_dockers(bed):
    dok("builder", "prune", "-f")        # the bed's build cache: the first prune's
    assert run_both(bed, "container", "prune", "-f", "--filter", "label=nothing") == \
        "Total reclaimed space: 0B\n"
    assert run_both(bed, "system", "prune", "-f", "--filter", "label=nothing") == \
        "Total reclaimed space: 0B\n"
    worker = dok("ps", "-aq", "--no-trunc", "-f", "name=worker").strip()
    res = subprocess.run([dockish_exe(), "system", "prune", "--filter", "label=tier=back"],
                         input="y\n", capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and re.search(      # its writable layer's bytes
        rf"\[y/N\] Deleted Containers:\n{worker}\n\nTotal reclaimed space: [1-9]\d*B\n$",
        res.stdout), res
    assert names(dok("ps", "-a", "--format", FIELDS)) == ["fresh", "job", "web"]


def test_images_filters_as_docker(bed):
    fmt = "{{.Repository}}:{{.Tag}}"
    assert both(bed, "images", "-f", "label=tier=image", "--format", fmt) == "labeled:1\n"
    assert both(bed, "images", "-f", "label=tier", "-f", "label=shared=image", "-q") == \
        both(bed, "images", "-q", "labeled")
    assert both(bed, "images", "-q", "-f", "dangling=true") == ""
    for args, line in ((("-f", "colour=red"), "invalid filter 'colour'"),
                       (("-f", "dangling=maybe"), "invalid filter 'dangling=[maybe]'")):
        for res in (dockish("images", *args), docker(bed, "images", *args)):
            assert (res.returncode, res.stdout, res.stderr) == \
                (1, "", f"Error response from daemon: {line}\n")


def test_ps_shows_the_image_id_once_its_name_moves(bed):
    """Docker's list names a container's image by the name it was created
    from while that name still means that image; once the name points at
    another image (a rebuild, a commit, a pull), by the image's ID."""
    first = dok("images", "-q", "labeled:1").strip()
    assert both(bed, "ps", "--filter", "name=web", "--format", "{{.Image}}") == "labeled:1\n"
    dok("commit", "web", "labeled:1")                      # the name moves on
    assert dok("images", "-q", "labeled:1").strip() != first
    assert both(bed, "ps", "--filter", "name=web", "--format", "{{.Image}}") == f"{first}\n"
    assert dok("ps", "--no-trunc", "--filter", "name=web", "--format", "{{.Image}}") == \
        f"sha256:{dok('inspect', '-f', '{{.Image}}', 'web').strip().removeprefix('sha256:')}\n"
    # the name of another container's image that did not move stays
    assert dok("ps", "-a", "--filter", "name=job", "--format", "{{.Image}}") == f"{IMAGE}\n"
