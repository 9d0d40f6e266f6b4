"""Test bed for dockish: checks that the machine can run the suite, hypothesis
profiles, a private DOCKISH_ROOT per test and the shared test images.

The suite needs real tools and real FUSE mounts as an unprivileged user. If
something is missing the session stops before any test runs, with the list of
problems and how to fix them: nothing is skipped. ``scripts/setup`` (as root)
installs everything; ``scripts/test`` runs the suite as the right user.
"""
from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from . import (
    images,  # a plain module, also usable without pytest
    shards,
)

# ------------------------------------------------------------------ hypothesis

# Hypothesis keeps its example database under the current directory by
# default; when that is not writable (a read-only checkout), use a cache dir.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY") and not os.access(os.getcwd(), os.W_OK):
    from hypothesis.configuration import set_hypothesis_home_dir

    _cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    _home = Path(_cache) / "dockish" / "hypothesis"
    try:
        _home.mkdir(parents=True, exist_ok=True)
    except OSError:
        _home = Path(tempfile.gettempdir()) / f"dockish-hypothesis-{os.getuid()}"
        _home.mkdir(parents=True, exist_ok=True)
    set_hypothesis_home_dir(_home)

# Profiles: "ci" when CI is set, else "dev"; DOCKISH_HYPOTHESIS_PROFILE picks one.
# CI: the same examples every run, a fixed budget, no timing flakiness.
settings.register_profile(
    "ci", derandomize=True, max_examples=50, deadline=None, print_blob=True, database=None,
    suppress_health_check=[HealthCheck.too_slow])
# Local runs: random exploration, remembered failures, no deadline (FUSE
# round trips are slow and noisy on a loaded machine).
settings.register_profile("dev", deadline=None, max_examples=100)
settings.load_profile(os.environ.get("DOCKISH_HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") else "dev"))

# ------------------------------------------------------------------ test bed

REQUIRED_TOOLS = {
    "umoci": "umoci",
    "skopeo": "skopeo",
    "docker-registry": "docker-registry",
    "fuse-overlayfs": "fuse-overlayfs",
    "busybox": "busybox-static",
    "fusermount3": "fuse3",
    "unshare": "util-linux",
    "newuidmap": "uidmap",
    "newgidmap": "uidmap",
    "slirp4netns": "slirp4netns",
    "tini-static": "tini",
    "pasta": "passt",
}
FIX = "run `sudo scripts/setup` (installs the packages, makes /dev/fuse usable)"
OTHER_USER = os.environ.get("DOCKISH_TEST_OTHER_USER", "dockish-other")


def _setuid_root(path: str) -> bool:
    st = os.stat(path)
    return st.st_uid == 0 and bool(st.st_mode & stat.S_ISUID)


def testbed_problems() -> list[str]:
    """What keeps this machine and user from running the suite (empty: all good)."""
    problems = []
    if os.geteuid() == 0:
        problems.append("running as root: the tests must run as an unprivileged user")
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        problems.append("/dev/net/tun is missing or not read-writable (slirp4netns needs it): "
                        "run `sudo scripts/setup`")
    if not os.path.exists("/dev/fuse"):
        problems.append("/dev/fuse does not exist (no FUSE in this kernel or container)")
    elif not os.access("/dev/fuse", os.R_OK | os.W_OK):
        problems.append("/dev/fuse is not read-writable for this user: "
                        "run `sudo chmod 0666 /dev/fuse` (or `sudo scripts/setup`)")
    missing = sorted({pkg for tool, pkg in REQUIRED_TOOLS.items() if not shutil.which(tool)})
    for tool, pkg in REQUIRED_TOOLS.items():
        if not shutil.which(tool):
            problems.append(f"`{tool}` is not installed (Debian package {pkg})")
    if missing:
        problems.append(f"install them: sudo apt-get install {' '.join(missing)}")
    for tool in ("fusermount3", "newuidmap", "newgidmap"):
        path = shutil.which(tool)
        if path and not _setuid_root(path):
            problems.append(f"{path} is not setuid root: run `sudo chmod u+s {path}` "
                            f"(or reinstall its package)")
    if shutil.which("busybox"):
        try:
            images.find_busybox()
        except RuntimeError as e:
            problems.append(str(e))
    if shutil.which("unshare"):
        p = subprocess.run(["unshare", "-Ur", "true"], capture_output=True, text=True)
        if p.returncode != 0:
            problems.append(
                "`unshare -Ur true` fails (unprivileged user namespaces are off): "
                f"{p.stderr.strip()} — try `sudo sysctl -w kernel.unprivileged_userns_clone=1` "
                "or `sudo sysctl -w user.max_user_namespaces=15000`")
    problems.extend(_other_user_problems())
    problems.extend(_cgroup_problems())
    return problems


def _cgroup_problems() -> list[str]:
    """tests/test_cgroups.py applies limits under the cgroup v1 subtree
    ``scripts/delegate-cgroups`` gives the test user (owned by it)."""
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return []                     # v2: the cgroup tests use v1's tree (pure v2 rules)
    user = pwd.getpwuid(os.getuid()).pw_name
    missing = []
    for c in ("pids", "memory", "cpu"):
        try:
            st = os.lstat(f"/sys/fs/cgroup/{c}/dockish-{user}")
        except OSError:
            st = None
        if st is None or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            missing.append(c)
    if not missing:
        return []
    return [f"no cgroup is delegated to {user} ({', '.join(missing)}): run "
            f"`sudo scripts/delegate-cgroups {user}`"]


def _other_user_problems() -> list[str]:
    """The attacks of another local user need a real one: ``OTHER_USER``,
    whom this user may act as through ``sudo -n``."""
    fix = ("`sudo scripts/test` sets it up (creates the user and "
           f"/etc/sudoers.d/{_me()} with `{_me()} ALL=({OTHER_USER}) NOPASSWD: ALL`)")
    if not shutil.which("sudo"):
        return [f"`sudo` is not installed (the tests act as the other local user "
                f"{OTHER_USER} through it): {fix}"]
    try:
        pwd.getpwnam(OTHER_USER)
    except KeyError:
        return [f"the other local user {OTHER_USER} does not exist: {fix}"]
    p = subprocess.run(["sudo", "-n", "-u", OTHER_USER, "--", "true"], capture_output=True,
                       text=True, cwd="/", stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        why = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"
        return [f"cannot act as the other local user {OTHER_USER} "
                f"(`sudo -n -u {OTHER_USER} true`: {why}): {fix}"]
    return []


def _me() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pure: needs no test bed (no FUSE, no namespaces, no "
                            "registry, no test user): `pytest -m pure` runs anywhere")


def pytest_collection_finish(session: pytest.Session) -> None:
    """The test bed is checked once the tests are known: a run of only
    ``pure`` tests (``pytest -m pure``: the pure rules, parsers and
    boundaries) needs none of it and runs as any user, root included."""
    if session.config.option.collectonly:
        return
    if session.items and all(i.get_closest_marker("pure") for i in session.items):
        return
    if os.geteuid() == 0:
        pytest.exit("the dockish tests must run as an unprivileged user, not root: use "
                    "scripts/test (as root it creates the user dockish-test and runs the "
                    "suite as that user)", returncode=4)
    problems = testbed_problems()
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        pytest.exit(f"this machine cannot run the dockish tests:\n{lines}\n"
                    f"Fix: {FIX}, then run scripts/test.", returncode=4)


# ------------------------------------------------------------------ shards

def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``DOCKISH_TEST_SHARD=K/N``: keep only shard K's test files (tests/shards.py),
    so that N test users can run the suite side by side."""
    spec = os.environ.get("DOCKISH_TEST_SHARD")
    if not spec:
        return
    try:
        k, n = shards.parse_spec(spec)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    recorded = shards.read_durations(shards.DURATIONS.read_text()) \
        if shards.DURATIONS.exists() else {}
    mine = set(shards.split(shards.files_of(i.nodeid for i in items), recorded, n)[k - 1])
    keep = [i for i in items if i.nodeid.split("::", 1)[0] in mine]
    dropped = [i for i in items if i.nodeid.split("::", 1)[0] not in mine]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


_file_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    f = report.nodeid.split("::", 1)[0]
    _file_seconds[f] = _file_seconds.get(f, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """``DOCKISH_TEST_DURATIONS=FILE``: the seconds each test file took, in
    tests/durations.txt's form (the shards' balance)."""
    out = os.environ.get("DOCKISH_TEST_DURATIONS")
    if out and _file_seconds:
        try:
            Path(out).write_text(shards.format_durations(_file_seconds))
        except OSError as e:
            sys.stderr.write(f"warning: cannot record the durations in {out}: "
                             f"{e.strerror}\n")


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="session", autouse=True)
def _session_dockish_root(tmp_path_factory):
    """Nothing in a test session touches the user's real store, even from
    session- or module-scoped fixtures."""
    old = os.environ.get("DOCKISH_ROOT")
    os.environ["DOCKISH_ROOT"] = str(tmp_path_factory.mktemp("session-store"))
    yield
    if old is None:
        os.environ.pop("DOCKISH_ROOT", None)
    else:
        os.environ["DOCKISH_ROOT"] = old


@pytest.fixture(autouse=True)
def dockish_root(tmp_path, monkeypatch) -> Path:
    """A store of its own for each test: ``$DOCKISH_ROOT``, inherited by the
    subprocesses the test starts."""
    root = tmp_path / "dockish-root"
    monkeypatch.setenv("DOCKISH_ROOT", str(root))
    return root


@dataclass(frozen=True)
class OtherUser:
    """Another real local user (an attacker on the same machine), whom the
    test user may act as: ``run`` is ``sudo -n -u NAME -- argv``."""

    name: str
    uid: int

    def run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("cwd", "/")
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("timeout", 60)
        return subprocess.run(["sudo", "-n", "-u", self.name, "--", *argv], **kw)


@pytest.fixture(scope="session")
def other_user() -> OtherUser:
    """The test bed's second real user (``DOCKISH_TEST_OTHER_USER``,
    default dockish-other; the session does not start without it)."""
    return OtherUser(OTHER_USER, pwd.getpwnam(OTHER_USER).pw_uid)


@pytest.fixture(scope="session")
def test_images(tmp_path_factory) -> images.ImageFactory:
    """Builds the test images (``busybox``, ``layered``) on first use, once per
    session: ``test_images["layered"]`` is an :class:`images.TestImage`."""
    return images.ImageFactory(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def busybox_image(test_images) -> images.TestImage:
    return test_images["busybox"]


@pytest.fixture(scope="session")
def layered_image(test_images) -> images.TestImage:
    return test_images["layered"]


@pytest.fixture(scope="session")
def bb(test_images) -> str:
    """The busybox test image, as an ``oci:`` reference commands accept."""
    return test_images["busybox"].oci


@pytest.fixture(scope="session")
def layered(test_images) -> str:
    return test_images["layered"].oci
