"""The layers of the code and the engine as a library.

An import-boundary scan (the AST of every module; pure, no FUSE):
``unionfs/`` imports neither ``registry/`` nor ``runner/``, ``registry/``
does not import ``runner/``, only the CLI modules import click, and the
engine and runtime modules import no CLI module.

Then the ``Engine`` used directly, as the Docker API server will use it: a
busybox container created, started, waited for, its logs read and removed;
a pull from a local registry reporting progress to a callback; a build
reporting its steps as events. The engine prints nothing (stdout and
stderr stay empty at the fd level) and fails with typed errors that carry
their exit codes.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .registrybed import Registry, skopeo_push

TOP = Path(__file__).resolve().parent.parent
# the command line: every module of runner/cli/ (click only there)
CLI_MODULES = {str(p.relative_to(TOP)) for p in (TOP / "runner" / "cli").glob("*.py")}


def _imports(path: Path, top: Path = TOP) -> set[str]:
    """Every module ``path`` imports (at any depth: lazy imports count),
    relative imports made absolute (``..`` climbs a package: in
    ``runner/api/``, ``..engine`` is runner.engine)."""
    parts = list(path.parent.relative_to(top).parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = ".".join(parts[:len(parts) - node.level + 1])
                base = pkg + ("." + node.module if node.module else "")
                out |= {base} if node.module else {f"{pkg}.{a.name}" for a in node.names}
            else:
                out.add(node.module or "")
    return out


def _modules(*pkgs: str) -> dict[str, set[str]]:
    """Every module under each package (its subpackages too), by path."""
    return {str(f.relative_to(TOP)): _imports(f) for p in pkgs
            for f in sorted((TOP / p).rglob("*.py"))}


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.pure
def test_unionfs_imports_neither_registry_nor_runner():
    bad = {m: sorted(i for i in imps if _top(i) in ("registry", "runner"))
           for m, imps in _modules("unionfs").items()}
    assert not {m: i for m, i in bad.items() if i}


@pytest.mark.pure
def test_registry_does_not_import_runner():
    bad = {m: sorted(i for i in imps if _top(i) == "runner")
           for m, imps in _modules("registry").items()}
    assert not {m: i for m, i in bad.items() if i}


@pytest.mark.pure
def test_only_the_cli_imports_click():
    users = {m for m, imps in _modules("unionfs", "registry", "runner").items()
             if any(_top(i) == "click" for i in imps)}
    assert users <= CLI_MODULES, f"click outside the CLI: {sorted(users - CLI_MODULES)}"


@pytest.mark.pure
def test_the_engine_and_runtime_import_no_cli_module():
    bad = {m: sorted(i for i in imps if i == "runner.cli" or i.startswith("runner.cli."))
           for m, imps in _modules("runner").items() if m not in CLI_MODULES}
    assert not {m: i for m, i in bad.items() if i}


@pytest.mark.pure
def test_runtime_and_builder_know_no_front_end():
    """``runner/runtime/`` (containers, namespaces, networks, volumes) and
    ``runner/builder/`` (Dockerfiles, contexts, the build cache) are what the
    engine stands on: neither imports click, the CLI package or the API."""
    mods = {**_modules("runner/runtime"), **_modules("runner/builder")}
    assert len(mods) > 20, "the scan found too few runtime and builder modules"
    front = ("runner.cli", "runner.api", "click")
    bad = {m: sorted(i for i in imps if any(i == f or i.startswith(f + ".") for f in front))
           for m, imps in mods.items()}
    assert not {m: i for m, i in bad.items() if i}


@pytest.mark.pure
def test_the_api_stands_on_the_engine_and_the_engine_knows_no_api():
    """The API server is a front end beside the CLI: ``runner/api/`` uses
    neither click nor a CLI module, and nothing below the front ends (the
    engine, the runtime) imports ``runner/api/`` (only the CLI starts it)."""
    cli = {m.removesuffix(".py").replace("/", ".") for m in CLI_MODULES}
    api = _modules("runner/api")
    assert api, "the scan found no API module"
    bad = {m: sorted(i for i in imps if _top(i) == "click" or i in cli
                     or any(i.startswith(c + ".") for c in cli))
           for m, imps in api.items()}
    assert not {m: i for m, i in bad.items() if i}
    users = {m: sorted(i for i in imps if i == "runner.api" or i.startswith("runner.api."))
             for m, imps in _modules("runner").items()
             if m not in CLI_MODULES and not m.startswith("runner/api/")}
    assert not {m: i for m, i in users.items() if i}


@pytest.mark.pure
def test_the_scan_sees_lazy_and_relative_imports(tmp_path):
    """The scan would catch a violation hidden in a function body."""
    (tmp_path / "pkg").mkdir()
    f = tmp_path / "pkg" / "m.py"
    f.write_text("def f():\n    import click\n    from . import cli\n    from runner import x\n")
    assert {"click", "pkg.cli", "runner"} <= _imports(f, tmp_path)
    (tmp_path / "pkg" / "sub").mkdir()
    g = tmp_path / "pkg" / "sub" / "m.py"
    g.write_text("from ..containers_cli import x\nfrom .. import cli\nfrom . import y\n")
    assert _imports(g, tmp_path) == {"pkg.containers_cli", "pkg.cli", "pkg.sub.y"}


# -- the engine as a library ----------------------------------------------------------------


@pytest.fixture
def quiet(capfd):
    """Fails the test if the engine wrote anything to fds 1 or 2."""
    yield
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_engine_runs_a_container_as_a_library(bb, dockish_root, quiet):
    from runner.engine import CreateOptions, Engine
    notes: list[str] = []
    eng = Engine(dockish_root, notify=notes.append)
    c = eng.create(CreateOptions(image=bb, args=["sh", "-c", "echo out; echo err >&2; exit 3"],
                                 name="lib", network="none"))
    assert [r["Names"] for r in eng.list_containers(all_=True)] == ["lib"]
    assert eng.inspect_container("lib")["State"]["Status"] == "created"
    eng.start("lib")
    assert eng.wait("lib") == 3
    assert [(e.stream, e.data) for e in eng.logs("lib")] == [(1, b"out\n"), (2, b"err\n")]
    assert [e.data for e in eng.logs(c.id[:12], tail="1")] == [b"err\n"]
    assert [e.data for e in eng.logs("lib", stderr=False)] == [b"out\n"]
    record = eng.inspect_container("lib")
    assert record["State"]["ExitCode"] == 3 and record["Id"] == c.id
    eng.remove("lib")
    assert eng.list_containers(all_=True) == []
    assert notes == []


def test_engine_errors_are_typed_with_exit_codes(bb, dockish_root, quiet):
    from registry.errors import DistributionError
    from runner.engine import CreateOptions, Engine
    from runner.errors import DockishError
    eng = Engine(dockish_root)
    with pytest.raises(DockishError, match="No such container: nope") as e:
        eng.stop("nope")
    assert e.value.exit_code == 125
    with pytest.raises(DockishError, match="Unable to find image 'nothing:here' locally") as e:
        eng.create(CreateOptions(image="nothing:here", pull="never"))
    assert e.value.exit_code == 125
    with pytest.raises(DockishError, match="invalid pull option"):
        eng.create(CreateOptions(image=bb, pull="sometimes"))
    with pytest.raises(DistributionError, match="No such image"):
        eng.tag("not-stored:1", "other:1")
    c = eng.create(CreateOptions(image=bb, args=["sleep", "30"], network="none"))
    eng.start(c)
    try:
        with pytest.raises(DockishError, match="You cannot remove a running container") as e:
            eng.remove(c.id)
        assert e.value.exit_code == 1
    finally:
        eng.remove(c.id, force=True)
    assert eng.list_containers(all_=True) == []


def test_engine_pulls_with_progress_events(tmp_path, busybox_image, dockish_root, quiet):
    from registry import reference as refs
    from registry.client import Options
    from runner.engine import CreateOptions, Engine
    reg = Registry(tmp_path / "registry")
    try:
        name = skopeo_push(reg, busybox_image.oci, "lib/busybox:1")
        events: list[tuple[str, str, int, int]] = []
        notes: list[str] = []
        eng = Engine(dockish_root, notify=notes.append)
        result = eng.pull(name, Options.from_config(), progress=lambda *ev: events.append(ev))
        assert result.digest.startswith("sha256:")
        kinds = [ev[0] for ev in events]
        assert "start" in kinds and "complete" in kinds
        done = [ev for ev in events if ev[0] == "complete"]
        assert all(ev[2] == ev[3] and ev[3] > 0 for ev in done)
        # run resolves the stored image without pulling again, and says nothing
        c = eng.create(CreateOptions(image=name, args=["true"], network="none"))
        assert notes == []
        eng.remove(c.id)
        # a missing image is pulled by create: the note goes to notify, not to stderr
        eng.image_store().untag(str(refs.parse(name)))
        eng.image_prune(all_=True)
        c = eng.create(CreateOptions(image=name, args=["true"], network="none"))
        assert notes == [f"Unable to find image '{name}' locally"]
        eng.remove(c.id)
    finally:
        reg.stop()


def test_engine_builds_with_progress_events(tmp_path, busybox_image, dockish_root, quiet):
    from runner.builder.build import BuildOptions
    from runner.engine import CreateOptions, Engine
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image.oci}\n"
                                    "RUN echo step-output && echo made > /made\n"
                                    'CMD ["cat", "/made"]\n')
    text: list[str] = []
    eng = Engine(dockish_root)
    image_id = eng.build(ctx, BuildOptions(tags=["lib/built:1"]), progress=text.append)
    out = "".join(text)
    assert "Step 1/3 : FROM" in out and "Step 3/3 : CMD" in out
    # the RUN step's own output arrives in order, between its step line and the next
    assert out.index("Step 2/3") < out.index("step-output") < out.index("Step 3/3")
    assert image_id.startswith("sha256:")
    c = eng.create(CreateOptions(image="lib/built:1", network="none"))
    eng.start(c)
    assert eng.wait(c) == 0
    assert b"".join(e.data for e in eng.logs(c)) == b"made\n"
    eng.remove(c.id)
    from runner.errors import DockishError
    (ctx / "Dockerfile").write_text(f"FROM {busybox_image.oci}\nRUN exit 7\n")
    with pytest.raises(DockishError, match="returned a non-zero code: 7") as e:
        eng.build(ctx, BuildOptions(), progress=text.append)
    assert e.value.exit_code == 1
