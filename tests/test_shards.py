"""The split of the suite into shards (tests/shards.py): every test file in
exactly one shard, the shards balanced by recorded time, the same split for
every shard that computes it."""
from __future__ import annotations

from pathlib import Path

import pytest

from . import shards

pytestmark = pytest.mark.pure


def test_every_file_lands_in_exactly_one_shard_and_order_is_kept():
    files = {f"tests/test_{c}.py": 3 for c in "abcdefg"}
    parts = shards.split(files, {}, 3)
    flat = [f for part in parts for f in part]
    assert sorted(flat) == sorted(files)
    for part in parts:
        assert part == [f for f in files if f in part]


def test_long_files_are_spread_by_their_recorded_seconds():
    files = {"a": 10, "b": 10, "c": 1, "d": 1, "e": 1}
    durations = {"a": 300.0, "b": 250.0, "c": 100.0, "d": 90.0, "e": 60.0}
    parts = shards.split(files, durations, 2)
    loads = sorted(sum(durations[f] for f in p) for p in parts)
    assert loads == [390.0, 410.0]          # LPT: a+d | b+c+e
    assert not any({"a", "b"} <= set(p) for p in parts)


def test_unrecorded_files_count_a_second_a_test():
    parts = shards.split({"old": 1, "new": 50}, {"old": 40.0}, 2)
    assert parts == [["new"], ["old"]]


def test_the_split_is_the_same_whoever_computes_it():
    files = {f"f{i}": i + 1 for i in range(30)}
    durations = {f"f{i}": float((i * 7) % 11) for i in range(30)}
    assert shards.split(files, durations, 2) == shards.split(dict(files), dict(durations), 2)


@pytest.mark.parametrize("spec", ["", "2", "0/2", "3/2", "a/b", "1/0"])
def test_bad_shard_specs_say_what_is_wanted(spec):
    with pytest.raises(ValueError, match="K/N"):
        shards.parse_spec(spec)


def test_durations_round_trip():
    rec = {"tests/test_a.py": 12.34, "tests/test_b.py": 0.5}
    text = shards.format_durations(rec)
    assert text.startswith("#")
    assert shards.read_durations(text) == {"tests/test_a.py": 12.3, "tests/test_b.py": 0.5}


def test_the_recorded_durations_name_only_files_that_exist():
    """A renamed or removed file must be renamed or removed in
    tests/durations.txt too, or its time would be lost from the balance."""
    root = Path(__file__).resolve().parent.parent
    recorded = shards.read_durations(shards.DURATIONS.read_text())
    assert recorded, "tests/durations.txt is empty"
    assert [f for f in recorded if not (root / f).is_file()] == []
