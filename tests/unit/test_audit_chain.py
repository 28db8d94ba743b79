"""The audit trail's hash chain: appends chain, any edit, removal or reordering is found."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.audit_chain import (
    GENESIS,
    append,
    record_hash,
    verify_file,
    verify_lines,
)
from hypothesis import given
from hypothesis import strategies as st


def records(count: int) -> list[dict[str, object]]:
    return [{"kind": "run", "clinic": f"c{i}", "outcome": "ok", "n": i} for i in range(count)]


def test_append_chains_records_across_calls(tmp_path: Path):
    trail = tmp_path / "audit.jsonl"
    first = append(str(trail), records(2))
    second = append(str(trail), records(1))
    assert first[0]["prev"] == GENESIS
    assert first[1]["prev"] == first[0]["hash"]
    assert second[0]["prev"] == first[1]["hash"]
    assert verify_file(str(trail)) == (True, 3, None)
    assert trail.stat().st_mode & 0o777 == 0o600


def test_an_altered_line_is_named(tmp_path: Path):
    trail = tmp_path / "audit.jsonl"
    append(str(trail), records(4))
    lines = trail.read_text().splitlines()
    tampered = json.loads(lines[2])
    tampered["outcome"] = "failed"
    lines[2] = json.dumps(tampered, sort_keys=True, separators=(",", ":"))
    ok, count, problem = verify_lines(lines)
    assert (ok, count) == (False, 2)
    assert problem.startswith("line 3 was altered")


def test_a_removed_or_reordered_line_is_named(tmp_path: Path):
    trail = tmp_path / "audit.jsonl"
    append(str(trail), records(4))
    lines = trail.read_text().splitlines()
    ok, _, problem = verify_lines(lines[:1] + lines[2:])
    assert not ok and problem.startswith("line 2 does not follow")
    ok, _, problem = verify_lines([lines[1], lines[0], *lines[2:]])
    assert not ok and problem.startswith("line 1 does not follow")


def test_a_rehashed_forgery_still_breaks_the_chain(tmp_path: Path):
    trail = tmp_path / "audit.jsonl"
    append(str(trail), records(3))
    lines = trail.read_text().splitlines()
    forged = json.loads(lines[1])
    forged["outcome"] = "failed"
    forged["hash"] = record_hash(forged)  # the forger recomputes this line's hash...
    lines[1] = json.dumps(forged)
    ok, _, problem = verify_lines(lines)
    assert not ok and problem.startswith("line 3 does not follow")  # ...but the next line still points at the old one


@given(st.lists(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20) | st.integers()), max_size=6))
def test_any_records_round_trip(tmp_path_factory, items):
    trail = tmp_path_factory.mktemp("chain") / "audit.jsonl"
    if items:
        append(str(trail), items)
        assert verify_file(str(trail)) == (True, len(items), None)


def _writer(path: str, index: int) -> None:
    append(path, [{"writer": index, "i": i} for i in range(20)])


def test_concurrent_writers_never_fork_the_chain(tmp_path: Path):
    trail = str(tmp_path / "audit.jsonl")
    workers = [multiprocessing.Process(target=_writer, args=(trail, index)) for index in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert verify_file(trail) == (True, 120, None)
