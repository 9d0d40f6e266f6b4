"""Splitting the suite into shards that run side by side, each as its own
test user (``scripts/test`` as root does that for a whole run).

A shard is a set of whole test files: tests in one file share module
fixtures and often one image or registry, so splitting a file would pay
for those twice. Files go to shards longest first, each to the shard with
the least work so far (LPT scheduling), by the seconds each file took in a
recorded run (``tests/durations.txt``, written by a run with
``DOCKISH_TEST_DURATIONS=FILE``); a file not recorded counts one second a
test. Pure: the same inputs give every shard the same split, so the shards
together run each test exactly once.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

DURATIONS = Path(__file__).with_name("durations.txt")
UNKNOWN_SECONDS_PER_TEST = 1.0


def parse_spec(spec: str) -> tuple[int, int]:
    """``"K/N"`` (shard K of N, counted from 1) as ``(K, N)``."""
    k_s, slash, n_s = spec.partition("/")
    try:
        k, n = int(k_s), int(n_s)
    except ValueError:
        raise ValueError(f"DOCKISH_TEST_SHARD must be K/N (e.g. 1/2), not {spec!r}") from None
    if not slash or not 1 <= k <= n:
        raise ValueError(f"DOCKISH_TEST_SHARD must be K/N with 1 <= K <= N, not {spec!r}")
    return k, n


def read_durations(text: str) -> dict[str, float]:
    """``SECONDS FILE`` lines (``#`` comments) as ``{FILE: SECONDS}``."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        seconds, _, name = line.partition(" ")
        out[name.strip()] = float(seconds)
    return out


def format_durations(seconds: Mapping[str, float]) -> str:
    lines = ["# seconds per test file in one recorded run (tests/shards.py balances by it)"]
    lines += [f"{s:.1f} {name}" for name, s in sorted(seconds.items(), key=lambda kv: kv[0])]
    return "\n".join(lines) + "\n"


def split(tests_per_file: Mapping[str, int], durations: Mapping[str, float],
          shards: int) -> list[list[str]]:
    """The files of each shard (in the order given), balanced by duration."""
    def weight(name: str) -> float:
        return durations.get(name, UNKNOWN_SECONDS_PER_TEST * tests_per_file[name])

    loads = [0.0] * shards
    chosen: list[set[str]] = [set() for _ in range(shards)]
    for name in sorted(tests_per_file, key=lambda n: (-weight(n), n)):
        i = min(range(shards), key=lambda j: (loads[j], j))
        loads[i] += weight(name)
        chosen[i].add(name)
    return [[n for n in tests_per_file if n in c] for c in chosen]


def files_of(names: Iterable[str]) -> dict[str, int]:
    """``{file: number of tests}`` from pytest node ids, in their order."""
    out: dict[str, int] = {}
    for nodeid in names:
        f = nodeid.split("::", 1)[0]
        out[f] = out.get(f, 0) + 1
    return out
