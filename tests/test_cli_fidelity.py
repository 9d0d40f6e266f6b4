"""Scripts written for Docker read dockish's output as they read Docker's:
``--format 'table ...'`` headers and alignment (Go's tabwriter: columns at
least 10 wide, 3 apart), ``json`` as Go's compact JSON, ``inspect -f`` that
fails on a misspelt field, and bad templates as one line with exit 125."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from .diffbase import dockish_exe
from .runbed import dockish, no_leftovers, ok  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("no_leftovers")


def one_line(res, code: int, *lines: str, prefix: str = "") -> None:
    """``res`` failed with ``code`` and printed exactly ``lines`` on stderr
    (the first may be checked by its start only: ``prefix``), nothing on
    stdout."""
    got = res.stderr.rstrip("\n").split("\n")
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert res.stdout == "", res.stdout
    if prefix:
        assert len(got) == 1 and got[0].startswith(prefix), res.stderr
    else:
        assert got == list(lines), res.stderr


# ------------------------------------------------------------------ tables, no rows

@pytest.mark.parametrize(("args", "header"), [
    (("ps",), "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES"),
    (("ps", "-a", "--format", "table"),
     "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES"),
    (("ps", "--format", "table {{.ID}}\t{{.Names}}"), "CONTAINER ID   NAMES"),
    (("ps", "--format", "table {{.Names}}\t{{.RunningFor}}\t{{.State}}"),
     "NAMES     CREATED   STATE"),
    (("images",), "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE"),
    (("images", "--format", "table {{.Repository}}:{{.Tag}}\t{{.ID}}"),
     "REPOSITORY:TAG   IMAGE ID"),
    (("volume", "ls"), "DRIVER    VOLUME NAME"),
    (("volume", "ls", "--format", "table {{.Name}}"), "VOLUME NAME"),
])
def test_table_header_without_rows(args, header):
    assert ok(*args) == header + "\n"


@pytest.mark.parametrize("args", [("ps", "--format", "{{.Names}}"),
                                  ("ps", "--format", "json"),
                                  ("images", "--format", "{{json .}}"),
                                  ("volume", "ls", "--format", "{{.Name}}")])
def test_template_without_rows_prints_nothing(args):
    assert ok(*args) == ""


# ------------------------------------------------------------------ tables with rows

def test_ps_table_rows_align_under_headers(bb):
    ok("create", "--name", "a-rather-long-container-name", "--network", "none", bb, "true")
    ok("create", "--name", "b", "--network", "none", bb, "true")
    out = ok("ps", "-a", "--format", "table {{.Names}}\t{{.State}}\t{{.Image}}").splitlines()
    assert out[0].split("   ")[0].rstrip() == "NAMES"
    state_col = out[0].index("STATE")
    assert state_col == len("a-rather-long-container-name") + 3
    rows = {line.split()[0]: line for line in out[1:]}
    assert set(rows) == {"a-rather-long-container-name", "b"}
    for line in rows.values():
        assert line[state_col:].split()[0] == "created"
        assert line.index(bb, state_col) == out[0].index("IMAGE")   # STATE: min width 10
    default = ok("ps", "-a").splitlines()
    assert default[0].startswith("CONTAINER ID   IMAGE")
    names_col = default[0].index("NAMES")
    assert sorted(line[names_col:] for line in default[1:]) == \
        ["a-rather-long-container-name", "b"]


def test_json_is_gos_compact_json(bb):
    ok("create", "--name", "j", "--network", "none", bb, "true")
    for fmt in ("json", "{{json .}}"):
        line = ok("ps", "-a", "--format", fmt).rstrip("\n")
        assert "\n" not in line and ", " not in line.replace('", "', "")
        row = json.loads(line)
        assert row["Names"] == "j" and row["State"] == "created"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC", row["CreatedAt"])
        assert row["RunningFor"].endswith(" ago"), row
        assert list(row) == sorted(row), "Go's json writes a map's keys sorted"
    ok("volume", "create", "v1")
    assert json.loads(ok("volume", "ls", "--format", "json"))["Name"] == "v1"
    assert ok("volume", "ls").splitlines() == ["DRIVER    VOLUME NAME", "local     v1"]


def test_images_table_and_json(busybox_image):
    ok("load", "-q", "-i", str(busybox_image.docker_archive))
    out = ok("images", "--format", "table {{.ID}}\t{{.Size}}").splitlines()
    assert out[0] == "IMAGE ID       SIZE"
    assert len(out) == 2 and out[1][15:] and out[1][:15].rstrip() == out[1].split()[0]
    row = json.loads(ok("images", "--format", "json"))
    assert row["ID"] == out[1].split()[0]
    repo, tag = busybox_image.repo.rsplit(":", 1)
    default = ok("images").splitlines()
    assert default[0].split("   ")[:1] == ["REPOSITORY"] and "TAG" in default[0]
    assert default[0].index("TAG") == max(len("REPOSITORY"), len(default[1].split()[0])) + 3
    assert default[1].split()[:3] == [repo.removeprefix("docker.io/"), tag, row["ID"]]
    assert default[1].index(row["ID"]) == default[0].index("IMAGE ID")


# ------------------------------------------------------------------ inspect -f, bad templates

def test_inspect_format_errors_on_missing_key(bb):
    ok("create", "--name", "k", "--network", "none", bb, "true")
    assert ok("inspect", "-f", "{{.State.Status}}", "k") == "created\n"
    assert ok("container", "inspect", "-f", "{{.Name}}", "k") == "/k\n"
    assert ok("inspect", "-f", "{{json .State.Health}}", "k") == "null\n"
    assert "Health" not in ok("inspect", "k")
    res = dockish("inspect", "-f", "{{.State.Nope}}", "k")
    one_line(res, 125, prefix="dockish: error: template parsing error: template: :1:")
    assert res.stderr.endswith(' executing "" at <.State.Nope>: map has no entry for key '
                               '"Nope"\n'), res.stderr


@pytest.mark.parametrize(("args", "said"), [
    # ps checks its template before listing, in the docker CLI's words
    (("ps", "--format", "{{.ID"), "failed to parse template"),
    (("ps", "--format", "table {{.ID}}\t{{.Nope | nosuchfunc}}"), "failed to parse template"),
    (("images", "--format", "{{if}}"), "template parsing error"),
    (("volume", "ls", "--format", "table {{end}}"), "template parsing error"),
])
def test_bad_template_is_one_line_125(args, said):
    one_line(dockish(*args), 125, prefix=f"dockish: error: {said}: template: ")


def test_bad_template_with_rows_prints_no_partial_output(bb):
    ok("create", "--name", "p", "--network", "none", bb, "true")
    one_line(dockish("ps", "-a", "--format", "{{.Names}}{{index .Names 5}}"), 125,
             prefix="dockish: error: failed to execute template: template: ")
    ok("volume", "create", "v")
    one_line(dockish("volume", "ls", "--format", "{{.Name}}{{index .Name 5}}"), 125,
             prefix="dockish: error: template parsing error: template: ")


# ------------------------------------------------------------------ usage errors

def _rm_usage() -> list[str]:
    return ['"dockish rm" requires at least 1 argument.', "See 'dockish rm --help'.", "",
            "Usage:  dockish rm [OPTIONS] CONTAINERS...", "", "Remove containers."]


@pytest.mark.parametrize(("args", "code", "lines"), [
    (("run", "--x", "img"), 125, ["dockish: unknown flag: --x", "See 'dockish run --help'."]),
    (("run", "-z", "img"), 125,
     ["dockish: unknown shorthand flag: 'z' in -z", "See 'dockish run --help'."]),
    (("container", "ls", "--nope"), 125,
     ["dockish: unknown flag: --nope", "See 'dockish container ls --help'."]),
    (("ps", "--format"), 125,
     ["dockish: flag needs an argument: --format", "See 'dockish ps --help'."]),
    (("images", "-f"), 125,
     ["dockish: flag needs an argument: 'f' in -f", "See 'dockish images --help'."]),
    (("foo",), 1, ["dockish: 'foo' is not a dockish command.", "See 'dockish --help'"]),
    (("volume", "foo"), 1,
     ["dockish: 'foo' is not a dockish volume command.", "See 'dockish volume --help'"]),
    (("rm",), 125, _rm_usage()),
    (("logs", "a", "b"), 125,
     ['"dockish logs" requires exactly 1 argument.', "See 'dockish logs --help'.", "",
      "Usage:  dockish logs [OPTIONS] CONTAINER", "",
      "Show a container's output (its stderr on stderr, as Docker does)."]),
])
def test_usage_errors_as_docker(args, code, lines):
    one_line(dockish(*args), code, *lines)


def test_bad_flag_value_names_the_command():
    res = dockish("stop", "-t", "soon", "x")
    assert res.returncode == 125 and res.stdout == ""
    assert res.stderr.splitlines()[1:] == ["See 'dockish stop --help'."], res.stderr
    assert res.stderr.startswith("dockish: ") and "soon" in res.stderr.splitlines()[0]


def test_no_arguments_is_help_exit_0():
    res = dockish()
    assert res.returncode == 0 and "Usage:" in res.stdout and res.stderr == ""


# ------------------------------------------------------------------ no such container / image

NO_CTR = "Error response from daemon: No such container: nope"


@pytest.mark.parametrize("args", [
    ("logs", "nope"), ("exec", "nope", "true"), ("stop", "nope"),
    ("restart", "nope"), ("kill", "nope"), ("rm", "nope"), ("wait", "nope"), ("top", "nope"),
    ("port", "nope"), ("pause", "nope"), ("unpause", "nope"), ("rename", "nope", "x"),
    ("diff", "nope"), ("export", "nope"), ("commit", "nope", "x:1"), ("attach", "nope"),
    ("cp", "nope:/etc/passwd", "-"), ("container", "logs", "nope"),
])
def test_no_such_container_is_the_daemons_404(args):
    one_line(dockish(*args), 1, NO_CTR)


@pytest.mark.parametrize(("args", "line"), [
    (("rmi", "nope"), "Error response from daemon: No such image: nope:latest"),
    (("history", "nope"), "Error response from daemon: No such image: nope:latest"),
    (("history", "nope:1.0"), "Error response from daemon: No such image: nope:1.0"),
])
def test_no_such_image_names_the_tag(args, line):
    one_line(dockish(*args), 1, line)


@pytest.mark.parametrize(("args", "line"), [
    (("inspect", "nope"), "Error: No such object: nope"),
    (("container", "inspect", "nope"), "Error: No such container: nope"),
    (("image", "inspect", "nope"), "Error: No such image: nope"),
])
def test_inspect_of_nothing_prints_an_empty_list_then_the_error(args, line):
    res = dockish(*args)
    assert (res.returncode, res.stdout, res.stderr) == (1, "[]\n", line + "\n")
    res = dockish(args[0], "-f", "{{.Id}}", *args[1:]) if len(args) == 2 else \
        dockish(*args[:2], "-f", "{{.Id}}", args[2])
    assert (res.returncode, res.stdout, res.stderr) == (1, "", line + "\n")


def test_inspect_found_and_missing_keeps_order_and_fails(bb):
    ok("create", "--name", "here", "--network", "none", bb, "true")
    res = dockish("inspect", "-f", "{{.Name}}", "nope", "here")
    assert (res.returncode, res.stdout, res.stderr) == \
        (1, "/here\n", "Error: No such object: nope\n")


@pytest.mark.parametrize("args", [("run", "-it", "--network", "none", "IMG", "sh"),
                                  ("run", "-i", "-t", "--rm", "IMG"),
                                  ("exec", "-it", "nope", "sh")])
def test_it_without_a_terminal_is_refused_before_anything(args, bb, dockish_root):
    res = subprocess.run([dockish_exe(), *[bb if a == "IMG" else a for a in args]],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    one_line(res, 1, "the input device is not a TTY")
    assert ok("ps", "-a", "-q") == ""


def test_detached_it_needs_no_terminal(bb):
    cid = ok("run", "-dit", "--name", "bg", "--network", "none", bb, "sh").strip()
    assert ok("inspect", "-f", "{{.Config.Tty}} {{.State.Running}}", "bg") == "true true\n"
    ok("rm", "-f", cid)


# ------------------------------------------------------------------ history, system df

def test_system_df_format():
    out = ok("system", "df").splitlines()
    assert out[0] == "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE"
    assert [line[:16].rstrip() for line in out[1:]] == \
        ["Images", "Containers", "Local Volumes", "Build Cache"]
    assert ok("system", "df", "--format", "{{.Type}}={{.TotalCount}}").splitlines()[:3] == \
        ["Images=0", "Containers=0", "Local Volumes=0"]
    assert json.loads(ok("system", "df", "--format", "json").splitlines()[0]) == \
        {"Active": "0", "Reclaimable": "0B", "Size": "0B", "TotalCount": "0", "Type": "Images"}
    one_line(dockish("system", "df", "--format", "{{.Nope"), 125,
             prefix="dockish: error: template parsing error: ")


def test_history_format(busybox_image):
    ok("load", "-q", "-i", str(busybox_image.docker_archive))
    name = busybox_image.repo
    out = ok("history", "--format", "table {{.ID}}\t{{.CreatedBy}}", name).splitlines()
    assert out[0].startswith("IMAGE          CREATED BY")
    assert len(out) >= 2 and out[1].split()[0] != "<missing>"
    assert all(line.startswith("<missing>      ") for line in out[2:])
    default = ok("history", name).splitlines()
    assert default[0].startswith("IMAGE          CREATED ")
    assert default[0].split()[:2] == ["IMAGE", "CREATED"] and "CREATED BY" in default[0]
    assert default[1].split()[0] == out[1].split()[0]
    row = json.loads(ok("history", "--format", "json", name).splitlines()[0])
    assert set(row) == {"Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size"}
    assert ok("history", "--format", "{{.Size}}", "--human=false", name).splitlines()[0].isdigit()


# ------------------------------------------------------------------ run of an absent image

def test_unable_to_find_image_is_said_once_with_its_tag(tmp_path):
    from .registrybed import Registry, env_without_proxy
    reg = Registry(tmp_path / "registry")
    try:
        env = env_without_proxy()
        for typed, shown in ((f"{reg.host}/lib/absent", f"{reg.host}/lib/absent:latest"),
                             (f"{reg.host}/lib/absent:2", f"{reg.host}/lib/absent:2")):
            res = subprocess.run([dockish_exe(), "run", "--rm", "--network", "none", typed,
                                  "true"], capture_output=True, text=True, env=env, timeout=120)
            assert res.returncode == 125, res.stderr
            lines = res.stderr.splitlines()
            assert lines[0] == f"Unable to find image '{shown}' locally", res.stderr
            assert len(lines) == 2 and "Unable to find" not in lines[1], res.stderr
            assert lines[1].startswith("dockish: error: ") and "absent" in lines[1]
            res = subprocess.run([dockish_exe(), "run", "--pull", "never", typed, "true"],
                                 capture_output=True, text=True, env=env, timeout=60)
            assert (res.returncode, res.stderr) == \
                (125, f"dockish: error: Unable to find image '{shown}' locally\n")
    finally:
        reg.stop()


def test_one_object_formats_are_gos_json():
    for args in (("version", "--format", "json"), ("info", "--format", "{{json .}}")):
        out = ok(*args)
        assert out.count("\n") == 1 and '", "' not in out and '": ' not in out, out
        assert isinstance(json.loads(out), dict)
    ok("volume", "create", "vv")
    assert ok("volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "vv") == "vv local\n"
    one_line(dockish("volume", "inspect", "-f", "{{.Nope}}", "vv"), 125,
             prefix="dockish: error: template parsing error: ")
    one_line(dockish("events", "--since", "0", "--until", "1", "--format", "{{.X"), 125,
             prefix="dockish: error: template parsing error: ")


def test_inspect_fields_docker_always_has_are_not_errors(bb, busybox_image):
    """Docker runs -f on its typed struct: a field the JSON omits when empty
    prints its zero value; only a field no struct has is an error."""
    ok("create", "--name", "z", "--network", "none", bb, "true")
    ok("load", "-q", "-i", str(busybox_image.docker_archive))
    for ref in ("z", busybox_image.repo):
        assert ok("inspect", "-f", "{{.Config.Labels}}|{{.Config.OnBuild}}|{{.Config.StopSignal}}"
                  "|{{json .Config.Healthcheck}}", ref) == "map[]|[]||null\n"
        one_line(dockish("inspect", "-f", "{{.Config.Nope}}", ref), 125,
                 prefix="dockish: error: template parsing error: ")


def test_start_and_restart_go_on_past_a_missing_container(bb):
    ok("create", "--name", "s1", "--network", "none", bb, "sleep", "30")
    res = dockish("start", "nope", "s1")
    assert (res.returncode, res.stdout) == (1, "s1\n"), res.stderr
    assert res.stderr.splitlines() == [NO_CTR, "Error: failed to start containers: nope"]
    assert ok("inspect", "-f", "{{.State.Running}}", "s1") == "true\n"
    res = dockish("restart", "-t", "0", "s1", "nope")
    assert (res.returncode, res.stdout, res.stderr) == (1, "s1\n", NO_CTR + "\n")
    one_line(dockish("start", "-a", "s1", "s1"), 125,
             "dockish: error: you cannot start and attach multiple containers at once")
    ok("rm", "-f", "s1")
