"""Docker's command line, checked against the docker CLI itself (28.x):
``--format raw`` of the list commands that have it, printed by the docker
CLI through ``dockish system service`` and by ``dockish`` alike."""
from __future__ import annotations

import re

import pytest

from .runbed import no_leftovers  # noqa: F401 - a fixture
from .runbed import ok as dok
from .test_api import docker, service  # noqa: F401 - a fixture
from .test_api import ok as docker_ok
from .test_filters import bed  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("no_leftovers")


def _steady(text: str) -> str:
    """``text`` with the ages that tick between two commands (``Up 3
    seconds``, ``Exited (0) 4 seconds ago``) made one."""
    return re.sub(r"(Up|\)) (\d+ \w+|About an? \w+|Less than a second)", r"\1 AGE", text)


def _records(text: str) -> list[str]:
    """The records of a raw listing, sorted (one a line under ``-q``)."""
    text = _steady(text)
    return sorted(text.split("\n\n") if "\n\n" in text else text.splitlines())


def _keys(text: str) -> list[str]:
    """A raw listing's shape: each line's key, a blank line for a blank."""
    return [line.split(":")[0] for line in text.split("\n")]


def both_steady(svc, *args: str, any_order: bool = False) -> str:
    """``dockish ARGS`` and ``docker ARGS`` print the same, ages aside (and,
    ``any_order``, the same records in any order: images made in the same
    second are listed in no set order by Docker's daemon)."""
    mine, theirs = dok(*args), docker_ok(svc, *args)
    if any_order:
        assert _records(mine) == _records(theirs), (args, mine, theirs)
    else:
        assert _steady(mine) == _steady(theirs), (args, mine, theirs)
    return mine


@pytest.mark.parametrize("args", [
    ("ps", "-a"), ("ps", "-a", "-s"), ("ps", "-a", "-q"), ("ps", "--no-trunc"),
    ("images",), ("images", "--digests"), ("images", "-q"), ("images", "--no-trunc"),
    ("volume", "ls"), ("volume", "ls", "-q"), ("network", "ls"), ("network", "ls", "-q"),
])
def test_format_raw_is_dockers(bed, args):  # noqa: F811 - the fixture imported above
    out = both_steady(bed, *args, "--format", "raw", any_order=args[0] == "images")
    assert out.strip(), out
    if "-q" not in args:          # records apart by one blank line, as Docker's
        assert "\n\n" in out and "\n\n\n" not in out, out


@pytest.mark.parametrize("args", [("system", "df"), ("system", "df", "-v")])
def test_system_df_format_raw_has_dockers_shape(bed, args):  # noqa: F811 - the fixture
    """``system df``'s raw records as Docker's: the same keys line by line
    (the numbers are the service's to match, see test_filters)."""
    mine = dok(*args, "--format", "raw")
    theirs = docker_ok(bed, *args, "--format", "raw")
    if "-v" in args:              # the build cache's records are the service's alone
        mine, theirs = (t.split("type: Build Cache")[0] for t in (mine, theirs))
    assert _keys(mine) == _keys(theirs), (mine, theirs)
    assert mine.count("type: ") >= 4, mine


def test_format_raw_keys_and_blank_lines(bed):  # noqa: F811 - the fixture imported above
    out = dok("ps", "-a", "--filter", "name=worker", "--format", "raw")
    keys = [line.split(":")[0] for line in out.splitlines() if line]
    assert keys == ["container_id", "image", "command", "created_at", "state", "status",
                    "names", "labels", "ports"]
    assert "\nstate: exited\nstatus: Exited (3) " in out and "\nnames: worker\n" in out
    assert out.endswith("\nlabels: tier=back\nports:\n\n"), out
    quiet = docker(bed, "ps", "-aq", "--format", "raw")
    assert quiet.stderr == "WARNING: Ignoring custom format, because both --format and " \
                           "--quiet are set.\n"
    assert re.fullmatch(r"(container_id: [0-9a-f]{12}\n){4}", quiet.stdout), quiet.stdout
    vols = dok("volume", "ls", "--format", "raw")
    assert vols == "name: data\ndriver: local\n\n"
    df = dok("system", "df", "--format", "raw").split("\n\n")
    assert [block.splitlines()[0] for block in df if block] == [
        "type: Images", "type: Containers", "type: Local Volumes", "type: Build Cache"]
    # where Docker has no raw form the word is a template like any other
    assert dok("history", "--format", "raw", "labeled:1").splitlines()[0] == "raw"


# ------------------------------------------------------------------ -l/--log-level

PS_WARNING = "WARNING: Ignoring custom format, because both --format and --quiet are set.\n"
HOST_P_NOTE = ("dockish: -p is ignored with the host network: the container's ports are "
               "the host's\n")


@pytest.mark.parametrize(("level", "own_note_shown"), [
    ((), True), (("-l", "info"), True), (("--log-level", "warn"), True),
    (("-l", "error"), False), (("--log-level", "fatal"), False), (("-D",), True),
])
def test_log_level_hides_dockishs_own_warnings_not_dockers(bb, level, own_note_shown):
    """``-l error``/``fatal`` hide dockish's own notes (warnings, as
    Podman's ``--log-level error`` hides its ``WARN`` lines); the lines the
    docker CLI prints whatever its level (its ``WARNING: Ignoring custom
    format``: ``docker -l error ps -q --format x`` prints it) stay."""
    from .runbed import dockish
    run = dockish(*level, "run", "--rm", "--network", "host", "-p", "8080:80", bb,
                  "echo", "ran")
    assert (run.returncode, run.stdout) == (0, "ran\n"), run
    assert run.stderr == (HOST_P_NOTE if own_note_shown else ""), run.stderr
    ps = dockish(*level, "ps", "-q", "--format", "{{.Names}}")
    assert (ps.returncode, ps.stderr) == (0, PS_WARNING), ps
