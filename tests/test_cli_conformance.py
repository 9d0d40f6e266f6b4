"""Docker's command line, checked against the docker CLI itself (28.x):
``--format raw`` of the list commands that have it, printed by the docker
CLI through ``dockish system service`` and by ``dockish`` alike; what
``-l/--log-level`` hides; every flag ``docker CMD --help`` lists, accepted
by ``dockish CMD`` or listed as deliberately absent with its reason, and
the flags that walk added (``logs --details``, ``inspect -s``,
``--disable-content-trust``, ``attach --sig-proxy``, ...)."""
from __future__ import annotations

import re
import subprocess

import pytest

from .diffbase import dockish_exe
from .runbed import dockish, no_leftovers  # noqa: F401 - a fixture
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


@pytest.mark.parametrize(("args", "go_type", "field"), [
    (("ps", "-a"), "*formatter.ContainerContext", "Names"),
    (("images",), "*formatter.imageContext", "Repository"),
    (("volume", "ls"), "*formatter.volumeContext", "Name"),
    (("network", "ls"), "*network.networkContext", "Name"),
    (("history", "labeled:1"), "*image.historyContext", "CreatedBy")])
def test_a_field_the_rows_lack_is_dockers_error_not_no_value(bed, args, go_type,  # noqa: F811
                                                             field):
    """A misspelt field in a list's --format: Docker's rows are Go structs,
    so it is an error naming the type (never ``<no value>`` lines a script
    would read as data), the same words as the docker CLI's; nothing on
    stdout."""
    theirs = docker(bed, *args, "--format", "{{.Nmae}}")
    mine = dockish(*args, "--format", "{{.Nmae}}")
    said = f'template: :1:2: executing "" at <.Nmae>: can\'t evaluate field Nmae in type ' \
           f"{go_type}"
    assert theirs.returncode == 1 and said in theirs.stderr, theirs
    assert (mine.returncode, mine.stdout) == (125, ""), mine
    assert mine.stderr == f"dockish: error: {theirs.stderr.strip()}\n", mine.stderr
    # a field the rows have prints as Docker's, in the table form too
    for fmt in (f"{{{{.{field}}}}}", f"table {{{{.{field}}}}}"):
        mine_rows = sorted(dok(*args, "--format", fmt).splitlines())
        assert mine_rows == sorted(docker_ok(bed, *args, "--format", fmt).splitlines())
        assert mine_rows and "<no value>" not in mine_rows, mine_rows


def test_ps_checks_its_template_even_with_nothing_to_show(bed):  # noqa: F811
    """``ps`` runs the template on an empty row first, as the docker CLI:
    a misspelt field fails even when no container matches."""
    args = ("ps", "-a", "--filter", "name=nothing-has-this-name", "--format", "{{.Nmae}}")
    theirs, mine = docker(bed, *args), dockish(*args)
    said = ('failed to execute template: template: :1:2: executing "" at <.Nmae>: '
            "can't evaluate field Nmae in type *formatter.ContainerContext")
    assert theirs.returncode == 1 and said in theirs.stderr, theirs
    assert (mine.returncode, mine.stdout, mine.stderr) == (125, "", f"dockish: error: {said}\n")


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



# ------------------------------------------------------------------ flags the audit added

def test_logs_details_and_inspect_size_as_the_docker_cli_shows_them(bed):  # noqa: F811
    from .test_api import IMAGE
    dok("run", "--name", "talk", IMAGE, "sh", "-c", "echo one; echo two >&2; echo; echo 3")
    for args in (("logs", "--details", "talk"), ("logs", "--details", "-t", "talk")):
        mine = subprocess.run([dockish_exe(), *args], capture_output=True, text=True)
        theirs = docker(bed, *args)
        assert (mine.stdout, mine.stderr) == (theirs.stdout, theirs.stderr), (mine, theirs)
    assert dok("logs", "--details", "talk") == " one\n \n 3\n"       # Docker: attrs, a space
    sized = "{{.SizeRw}} {{.SizeRootFs}}"
    rw, root = map(int, dok("inspect", "-s", "-f", sized, "web").split())
    assert 0 < rw < root, (rw, root)
    assert docker_ok(bed, "inspect", "-s", "-f", sized, "web") == f"{rw} {root}\n"
    assert dok("container", "inspect", "--size", "-f", sized, "web") == f"{rw} {root}\n"
    for show in (dok, lambda *a: docker_ok(bed, *a)):                   # only with -s
        assert show("inspect", "-f", "{{json .SizeRw}}", "web") == "null\n"
    assert dok("network", "inspect", "-v", "bridge") == dok("network", "inspect", "bridge")


def test_content_trust_flag_is_accepted_and_its_false_refused(bb, tmp_path):
    from .runbed import dockish
    assert dok("run", "--rm", "--disable-content-trust", "--network", "none", bb,
               "echo", "ok") == "ok\n"
    assert dok("create", "--disable-content-trust=true", "--name", "c", bb) != ""
    res = dockish("run", "--rm", "--disable-content-trust=false", bb, "true")
    assert (res.returncode, res.stdout) == (125, ""), res
    assert res.stderr == ("dockish: error: --disable-content-trust=false: dockish does not "
                          "verify image signatures (Docker Content Trust); drop the flag\n")
    (tmp_path / "Dockerfile").write_text(f"FROM {bb}\nRUN echo built > /x\n")
    image = dok("image", "build", "-q", "--force-rm", "--compress",
                "--disable-content-trust", "-t", "trusted:1", str(tmp_path)).strip()
    assert image.startswith("sha256:") and dok("builder", "build", "-q", str(tmp_path)) == \
        image + "\n"
    assert dok("run", "--rm", "--network", "none", "trusted:1", "cat", "/x") == "built\n"
    dok("rm", "c")
    dok("rmi", "trusted:1")


def test_attach_passes_signals_on_unless_sig_proxy_false(bb):
    import signal
    import time

    from .runbed import dockish
    script = ("trap 'echo got INT; exit 7' INT; echo ready; "
              "while :; do sleep 0.1; done")
    dok("run", "-d", "--name", "trapper", "--network", "none", bb, "sh", "-c", script)
    for proxy in (False, True):
        args = ["attach"] + ([] if proxy else ["--sig-proxy=false"]) + ["trapper"]
        p = subprocess.Popen([dockish_exe(), *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)                  # attached: following the output
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        if proxy:                        # the container got it: its trap, its code
            assert (p.returncode, out, err) == (7, "got INT\n", ""), (p.returncode, out, err)
        else:                            # only the client ended, by the signal
            assert p.returncode == -signal.SIGINT and err == "", (p.returncode, err)
            assert dok("inspect", "-f", "{{.State.Running}}", "trapper") == "true\n"
    assert dok("inspect", "-f", "{{.State.ExitCode}}", "trapper") == "7\n"
    dockish("rm", "-f", "trapper")

# ------------------------------------------------------------------ flags, command by command
#
# Every flag `docker CMD --help` (the docker CLI 28) lists is one dockish's CMD accepts,
# except the ones below, each with why. The test fails when a flag listed here is accepted
# now (take it off the list) and when docker has one dockish lacks that is not listed (a
# new gap: add the flag, or list it with its reason).

SWARM = "swarm and cluster volumes only: dockish has no swarm"
PLATFORMS = ("only with Docker's containerd image store (one name, many platforms); dockish "
             "keeps one platform per image name (pull/run --platform pick it)")
WINDOWS = "Windows containers only"
LINKS = "legacy container links, deprecated by Docker: user networks resolve names"
LIMITS = ("a cgroup resource limit: dockish applies -m, --memory-swap, --cpus, -c, "
          "--cpu-period, --cpu-quota and --pids-limit where a cgroup is delegated "
          "(runner/runtime/cgroups.py); the others are not there yet")
IPV6 = "IPv6: dockish's networks (netavark, slirp4netns, pasta) are configured IPv4 only"
LEGACY_BUILD = ("the legacy builder's per-RUN-step limits and isolation; BuildKit (buildx "
                "build, which dockish's build follows) has none")
NOT_YET = "not implemented yet"

RUN_ABSENT = {
    "--blkio-weight": LIMITS, "--blkio-weight-device": LIMITS, "--cgroupns": LIMITS,
    "--cpu-rt-period": LIMITS, "--cpu-rt-runtime": LIMITS, "--cpuset-cpus": LIMITS,
    "--cpuset-mems": LIMITS, "--device-cgroup-rule": LIMITS, "--device-read-bps": LIMITS,
    "--device-read-iops": LIMITS, "--device-write-bps": LIMITS, "--device-write-iops": LIMITS,
    "--kernel-memory": LIMITS + " (removed from the kernel's cgroup v2)",
    "--memory-reservation": LIMITS, "--memory-swappiness": LIMITS, "--oom-kill-disable": LIMITS,
    "--cpu-count": WINDOWS, "--cpu-percent": WINDOWS, "--io-maxbandwidth": WINDOWS,
    "--io-maxiops": WINDOWS, "--isolation": WINDOWS,
    "--gpus": "GPUs need NVIDIA's container toolkit hooks, which dockish does not run",
    "--runtime": "one runtime, dockish's own (no runc/crun to pick)",
    "--storage-opt": "per-container storage quotas of overlay2 on xfs; the writable layer "
                     "here is a FUSE upper directory",
    "--volume-driver": "volume plugins: only the local driver",
    "--link": LINKS, "--link-local-ip": LINKS, "--ip6": IPV6,
    "--use-api-socket": NOT_YET + " (Docker 28.1's: the daemon's socket and credentials "
                                  "mounted in)",
}
BUILD_ABSENT = {
    "--cache-from": "BuildKit's cache import from a registry; dockish's build cache is the "
                    "local store's",
    "--cgroup-parent": LEGACY_BUILD, "--cpu-period": LEGACY_BUILD, "--cpu-quota": LEGACY_BUILD,
    "--cpu-shares": LEGACY_BUILD, "-c": LEGACY_BUILD, "--cpuset-cpus": LEGACY_BUILD,
    "--cpuset-mems": LEGACY_BUILD, "--isolation": LEGACY_BUILD, "--memory": LEGACY_BUILD,
    "-m": LEGACY_BUILD, "--memory-swap": LEGACY_BUILD, "--security-opt": LEGACY_BUILD,
    "--shm-size": LEGACY_BUILD, "--ulimit": LEGACY_BUILD,
}
PLATFORM_ONLY = {"--platform": PLATFORMS}
ABSENT: dict[str, dict[str, str]] = {
    "": {"-c": "contexts: dockish talks to no daemon", "--context": "as -c",
         "-H": "no daemon to reach: dockish is the engine (system service serves the API)",
         "--host": "as -H", "--tls": "as -H", "--tlscacert": "as -H", "--tlscert": "as -H",
         "--tlskey": "as -H", "--tlsverify": "as -H"},
    "run": RUN_ABSENT, "create": RUN_ABSENT,
    "container run": RUN_ABSENT, "container create": RUN_ABSENT,
    "build": BUILD_ABSENT, "image build": BUILD_ABSENT, "builder build": BUILD_ABSENT,
    "builder prune": {"--keep-storage": "the legacy builder's (BuildKit's is "
                                        "--reserved-space); dockish's takes --filter until"},
    "start": {"--checkpoint": "experimental CRIU checkpoints",
              "--checkpoint-dir": "experimental CRIU checkpoints"},
    "rm": {"-l": LINKS, "--link": LINKS},
    "images": {"--tree": "experimental in Docker 28 (the containerd store's platforms)"},
    "history": PLATFORM_ONLY, "load": PLATFORM_ONLY, "save": PLATFORM_ONLY,
    "rmi": PLATFORM_ONLY, "push": PLATFORM_ONLY, "image inspect": PLATFORM_ONLY,
    "network create": {"--attachable": SWARM, "--config-from": SWARM, "--config-only": SWARM,
                       "--ingress": SWARM, "--scope": SWARM, "--ipv6": IPV6,
                       "--ipv4": "IPv4 is always on (Docker 28's switch to turn it off)",
                       "--ipam-driver": "IPAM plugins: netavark's host-local IPAM only",
                       "--ipam-opt": "as --ipam-driver"},
    "network connect": {"--driver-opt": "network driver options: netavark's bridge only",
                        "--gw-priority": NOT_YET + " (Docker 28's default-gateway choice)",
                        "--ip6": IPV6, "--link": LINKS, "--link-local-ip": LINKS},
    "volume create": {f: SWARM for f in (
        "--availability", "--group", "--limit-bytes", "--required-bytes", "--scope",
        "--secret", "--sharing", "--topology-preferred", "--topology-required", "--type")},
    "volume ls": {"--cluster": SWARM},
    "update": {f: LIMITS for f in ("--blkio-weight", "--cpu-rt-period", "--cpu-rt-runtime",
                                   "--cpuset-cpus", "--cpuset-mems", "--memory-reservation")},
}
for _top, _sub in (("rm", "container rm"), ("start", "container start"),
                   ("images", "image ls"), ("images", "image list"), ("history", "image history"),
                   ("load", "image load"), ("save", "image save"), ("rmi", "image rm"),
                   ("push", "image push"), ("update", "container update")):
    ABSENT[_sub] = ABSENT[_top]
# docker's commands (top level and in its groups) dockish has not, and why
COMMANDS_ABSENT = {
    "search": NOT_YET + " (Docker Hub's search API)",
    "volume update": SWARM,
    "checkpoint": "experimental CRIU checkpoints",
    **{c: SWARM for c in ("config", "node", "secret", "service", "stack", "swarm")},
    "context": "contexts: dockish talks to no daemon",
    "manifest": "experimental manifest lists: " + PLATFORMS,
    "plugin": "engine plugins: dockish has none", "trust": "Docker Content Trust (Notary)",
}
DOCKISH_ONLY = {"check", "layer", "mount", "umount", "buildx", "buildx build",
                "system service"}     # dockish's own; the docker CLI has buildx as a plugin
GROUPS = ("container", "image", "volume", "network", "system", "builder")


def _docker_help(path: tuple[str, ...]) -> str | None:
    """``docker PATH --help``, None when the docker CLI has no such command
    (it prints the help of the nearest group instead)."""
    import subprocess

    from .test_api import DOCKER
    out = subprocess.run([DOCKER, *path, "--help"], capture_output=True, text=True,
                         timeout=30).stdout
    usage = next((line for line in out.splitlines() if line.startswith("Usage:")), "")
    aliases = out.partition("Aliases:\n")[2].partition("\n")[0]
    named = " ".join(("docker", *path))
    if usage.split()[1:2 + len(path)] == named.split() or \
            named in (a.strip() for a in aliases.split(",")):
        return out
    return None


def _help_flags(text: str) -> set[str]:
    """The flags an ``Options:`` section lists (``-a, --all``: both)."""
    flags: set[str] = set()
    for line in text.partition("Options:")[2].splitlines():
        m = re.match(r"^\s+(?:-(\w), )?--([\w-]+)", line)
        if m:
            flags |= {"--" + m[2]} | ({"-" + m[1]} if m[1] else set())
    return flags


def _help_commands(text: str) -> set[str]:
    """The commands a group's help lists (``Commands:`` sections)."""
    names = set()
    for section in re.split(r"\n(?=\S)", text):
        if re.match(r"^(\w+ )*Commands:", section):
            names |= {m[1].rstrip("*") for m in re.finditer(r"^  (\S+)\s", section, re.M)}
    return names


def _dockish_commands():
    """(path, click command) for ``dockish`` itself and every command in it."""
    import click

    from runner.cli.main import main

    def walk(group: click.Group, path: tuple[str, ...]):
        for name, cmd in sorted(group.commands.items()):
            yield (*path, name), cmd
            if isinstance(cmd, click.Group):
                yield from walk(cmd, (*path, name))
    yield (), main
    yield from walk(main, ())


def test_every_docker_flag_is_accepted_or_listed_absent_with_its_reason():
    import click
    problems = []
    for path, cmd in _dockish_commands():
        name = " ".join(path)
        text = _docker_help(path)
        if text is None:
            assert name in DOCKISH_ONLY, f"docker has no '{name}': add it to DOCKISH_ONLY"
            continue
        assert name not in DOCKISH_ONLY, name
        theirs = _help_flags(text) - {"--help"}
        mine = {o for p in cmd.params if isinstance(p, click.Option)
                for o in (*p.opts, *p.secondary_opts)}
        absent = ABSENT.get(name, {})
        for flag in sorted(theirs - mine):
            if flag not in absent:
                problems.append(f"dockish {name} lacks docker's {flag} (unlisted)")
        problems += [f"dockish {name} {flag}: accepted now, take it off ABSENT"
                     for flag in sorted(set(absent) & mine)]
        problems += [f"docker {name} has no {flag}: take it off ABSENT"
                     for flag in sorted(set(absent) - theirs)]
    assert not problems, "\n".join(problems)


def test_every_docker_command_is_dockishs_or_listed_absent():
    have = {" ".join(p) for p, _ in _dockish_commands()}
    theirs = {c for c in _help_commands(_docker_help(()) or "")}
    for group in GROUPS:
        theirs |= {f"{group} {c}" for c in _help_commands(_docker_help((group,)) or "")}
    assert "run" in theirs and "container ls" in theirs and "system df" in theirs
    missing = theirs - have
    assert missing == set(COMMANDS_ABSENT), (sorted(missing - set(COMMANDS_ABSENT)),
                                             sorted(set(COMMANDS_ABSENT) - missing))
