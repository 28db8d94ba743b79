"""The audit trail's hash chain: appends chain, any edit, removal or reordering is found."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops import audit_chain
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.audit_chain import (
    GENESIS,
    append,
    read_head,
    read_segment,
    record_hash,
    segment_paths,
    verify_file,
    verify_lines,
    verify_segment,
    verify_segments,
    verify_trail,
)
from hypothesis import given
from hypothesis import strategies as st

from clinicops import audit as cli_audit


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


# -- rotation: the head file carries the chain over to the new file ------------------------------------


def rotate(trail: Path, stamp: str, compress: bool = False) -> Path:
    """What logrotate does with dateext and create: rename, then a new empty file (optionally gzip it)."""
    rotated = trail.with_name(f"{trail.name}-{stamp}")
    trail.rename(rotated)
    trail.touch(mode=0o600)
    if compress:
        packed = rotated.with_name(rotated.name + ".gz")
        with rotated.open("rb") as source, gzip.open(packed, "wb") as target:
            shutil.copyfileobj(source, target)
        rotated.unlink()
        return packed
    return rotated


def three_segments(tmp_path: Path) -> tuple[Path, list[dict[str, object]]]:
    """A trail rotated twice: an old .gz segment, the newest rotated one plain, then the live file."""
    trail = tmp_path / "audit.jsonl"
    sealed = append(str(trail), records(3))
    rotate(trail, "20261119-020000", compress=True)
    sealed += append(str(trail), records(2))
    rotate(trail, "20261126-101010")
    sealed += append(str(trail), records(4))
    return trail, sealed


def test_append_after_rotation_follows_the_head(tmp_path: Path):
    trail = tmp_path / "audit.jsonl"
    first = append(str(trail), records(3))
    head = read_head(str(trail))
    assert head == {"trail": "audit.jsonl", "hash": first[-1]["hash"], "count": 3, "since": GENESIS}
    assert (tmp_path / "audit.jsonl.head").stat().st_mode & 0o777 == 0o600
    rotated = rotate(trail, "20261126-101010")
    second = append(str(trail), records(2))
    assert second[0]["prev"] == first[-1]["hash"]
    assert read_head(str(trail)) == {"trail": "audit.jsonl", "hash": second[-1]["hash"], "count": 5, "since": GENESIS}
    # The new file alone starts after a record it does not hold; as a segment it verifies and links.
    assert verify_file(str(trail))[0] is False
    lines = trail.read_text().split("\n")
    assert verify_lines(lines, prev=None) == (True, 2, None)
    assert verify_lines(lines, prev=first[-1]["hash"]) == (True, 2, None)
    assert verify_segment(lines) == (True, 2, None, first[-1]["hash"], second[-1]["hash"])
    report = verify_segments([str(rotated), str(trail)])
    assert report["ok"] and report["records"] == 5 and report["problem"] is None
    assert (report["first_prev"], report["last_hash"]) == (GENESIS, second[-1]["hash"])
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")], "no temporary head file left behind"


def test_the_live_file_wins_over_the_head(tmp_path: Path):
    trail = tmp_path / "audit.jsonl"
    first = append(str(trail), records(2))
    (tmp_path / "audit.jsonl.head").write_text(json.dumps({"hash": "f" * 64}))
    second = append(str(trail), records(1))
    assert second[0]["prev"] == first[-1]["hash"]
    assert read_head(str(trail))["hash"] == second[0]["hash"]
    assert read_head(str(trail))["since"] == first[-1]["hash"]  # the head was out of step: it counts anew
    assert verify_file(str(trail)) == (True, 3, None)


def test_without_a_head_file_an_empty_trail_starts_at_genesis(tmp_path: Path):
    trail = tmp_path / "audit.jsonl"
    append(str(trail), records(2))
    rotate(trail, "20261126-101010")
    (tmp_path / "audit.jsonl.head").unlink()
    again = append(str(trail), records(1))
    assert again[0]["prev"] == GENESIS
    assert verify_file(str(trail)) == (True, 1, None)
    report = verify_trail(str(tmp_path))
    assert not report["ok"]
    assert report["problem"].startswith(
        "audit.jsonl line 1 does not follow the last record of audit.jsonl-20261126-101010"
    )


def test_a_trail_never_rotated_is_checked_from_genesis(tmp_path: Path):
    trail = tmp_path / "audit.jsonl"
    append(str(trail), records(3))
    (tmp_path / "audit.jsonl.head").unlink()
    lines = trail.read_text().split("\n")
    trail.write_text("\n".join(lines[1:]))  # the first record removed: no head, no segments, so strict
    report = verify_trail(str(trail))
    assert not report["ok"] and "line 1 does not follow" in report["problem"]


def test_a_corrupt_head_file_refuses_to_guess(tmp_path: Path):
    trail = tmp_path / "audit.jsonl"
    trail.touch()
    (tmp_path / "audit.jsonl.head").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid"):
        append(str(trail), records(1))
    assert trail.read_text() == ""


def test_segments_are_found_and_ordered_by_date(tmp_path: Path):
    trail, _ = three_segments(tmp_path)
    month = tmp_path / "archive" / "2026" / "11"
    month.mkdir(parents=True)
    (tmp_path / "audit.jsonl-20261119-020000.gz").rename(month / "audit.jsonl-20261119-020000.gz")
    (month / "audit.jsonl-20261119-020000.gz.sha256").write_text("x  y\n")
    (tmp_path / "audit.jsonl-20261126-101010.tmp").write_text("")
    (tmp_path / "other.jsonl-20261101-000000").write_text("")
    assert [os.path.relpath(p, tmp_path) for p in segment_paths(str(trail))] == [
        "archive/2026/11/audit.jsonl-20261119-020000.gz",
        "audit.jsonl-20261126-101010",
        "audit.jsonl",
    ]
    for target in (trail, tmp_path):
        report = verify_trail(str(target))
        assert report["ok"], report["problem"]
        assert report["records"] == 9 and report["notes"] == [] and report["problems"] == []
        assert [(s["name"], s["records"], s["note"]) for s in report["segments"]] == [
            ("archive/2026/11/audit.jsonl-20261119-020000.gz", 3, "starts at GENESIS"),
            ("audit.jsonl-20261126-101010", 2, None),
            ("audit.jsonl", 4, None),
        ]


def test_a_deleted_middle_segment_is_named(tmp_path: Path):
    trail, _ = three_segments(tmp_path)
    (tmp_path / "audit.jsonl-20261126-101010").unlink()
    report = verify_trail(str(trail))
    assert not report["ok"]
    assert report["problem"] == (
        "audit.jsonl line 1 does not follow the last record of audit.jsonl-20261119-020000.gz "
        "(a segment or records in between are missing, or were altered)"
    )
    assert [s["ok"] for s in report["segments"]] == [True, False]


def test_an_altered_line_in_a_rotated_gz_is_named(tmp_path: Path):
    trail, _ = three_segments(tmp_path)
    packed = tmp_path / "audit.jsonl-20261119-020000.gz"
    lines = gzip.decompress(packed.read_bytes()).decode().split("\n")
    tampered = json.loads(lines[1])
    tampered["outcome"] = "failed"
    lines[1] = json.dumps(tampered, sort_keys=True, separators=(",", ":"))
    packed.write_bytes(gzip.compress("\n".join(lines).encode()))
    report = verify_trail(str(trail))
    assert not report["ok"]
    assert (
        report["problem"] == "audit.jsonl-20261119-020000.gz: line 2 was altered after it was written (hash mismatch)"
    )
    assert [s["ok"] for s in report["segments"]] == [False, True, True]


def test_removed_last_records_are_found_by_the_head(tmp_path: Path):
    trail, _ = three_segments(tmp_path)
    lines = trail.read_text().split("\n")
    trail.write_text("\n".join(lines[:2]) + "\n")  # the last two records cut off: the chain itself still holds
    report = verify_trail(str(trail))
    assert not report["ok"]
    assert report["problem"].startswith("the trail ends before the record audit.jsonl.head names")


def test_the_first_segment_may_start_after_records_archived_elsewhere(tmp_path: Path):
    trail, _ = three_segments(tmp_path)
    (tmp_path / "audit.jsonl-20261119-020000.gz").unlink()
    report = verify_trail(str(trail))
    assert report["ok"], report["problem"]
    assert report["records"] == 6
    assert report["segments"][0]["note"].startswith("starts after a record not present here")
    assert report["notes"] == [
        "audit.jsonl.head counts 9 records since GENESIS; 6 are here, the older ones are in segments not present here"
    ]


def test_right_after_rotation_the_empty_live_file_and_head_check_out(tmp_path: Path):
    trail = tmp_path / "audit.jsonl"
    append(str(trail), records(3))
    rotate(trail, "20261126-101010")
    report = verify_trail(str(trail))
    assert report["ok"] and report["records"] == 3
    assert report["segments"][-1]["note"] == "no records"
    trail.unlink()  # logrotate without create: no live file until the next append
    assert verify_trail(str(tmp_path))["ok"]


def test_a_copy_left_in_the_archive_is_counted_once(tmp_path: Path):
    trail, _ = three_segments(tmp_path)
    month = tmp_path / "archive" / "2026" / "11"
    month.mkdir(parents=True)
    shutil.copy(tmp_path / "audit.jsonl-20261126-101010", month / "audit.jsonl-20261126-101010")
    report = verify_trail(str(trail))
    assert report["ok"], report["problem"]
    assert report["records"] == 9
    assert report["segments"][2]["note"].startswith("the same records as audit.jsonl-20261126-101010")


def test_an_unreadable_zst_segment_is_reported_not_crashed_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    trail, _ = three_segments(tmp_path)
    (tmp_path / "audit.jsonl-20261119-020000.gz").rename(tmp_path / "audit.jsonl-20261119-020000.zst")
    monkeypatch.setattr(audit_chain.shutil, "which", lambda name: None)
    monkeypatch.setitem(__import__("sys").modules, "zstandard", None)
    report = verify_trail(str(trail))
    assert not report["ok"] and not report["complete"]
    assert report["problem"] == (
        "audit.jsonl-20261119-020000.zst: cannot read a .zst file here (no zstandard module, no zstd program)"
    )
    assert report["segments"][1]["ok"] and report["segments"][1]["note"].startswith("follows a segment that could not")


@pytest.mark.skipif(shutil.which("zstd") is None, reason="no zstd program")
def test_a_zst_segment_is_read_with_the_zstd_program(tmp_path: Path):
    trail, _ = three_segments(tmp_path)
    packed = tmp_path / "audit.jsonl-20261119-020000.gz"
    plain = tmp_path / "archive" / "2026" / "11" / "audit.jsonl-20261119-020000"
    plain.parent.mkdir(parents=True)
    plain.write_bytes(gzip.decompress(packed.read_bytes()))
    subprocess.run(["zstd", "-q", "--rm", str(plain)], check=True)
    assert read_segment(str(plain) + ".zst")[:3] == gzip.decompress(packed.read_bytes()).decode().split("\n")[:3]
    packed.unlink()
    report = verify_trail(str(trail))
    assert report["ok"] and report["records"] == 9, report["problem"]


def test_the_cli_reports_each_segment(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    trail, _ = three_segments(tmp_path)
    assert cli_audit.verify(tmp_path) == (True, 9, None)
    assert capsys.readouterr().out.splitlines() == [
        "  audit.jsonl-20261119-020000.gz: 3 records, intact (starts at GENESIS)",
        "  audit.jsonl-20261126-101010: 2 records, intact",
        "  audit.jsonl: 4 records, intact",
    ]
    (tmp_path / "audit.jsonl-20261126-101010").unlink()
    ok, count, problem = cli_audit.verify(trail)
    assert not ok and count == 7 and problem.startswith("audit.jsonl line 1 does not follow the last record of")
    assert "BROKEN: audit.jsonl line 1" in capsys.readouterr().out
    assert [record["n"] for record in cli_audit.tail(tmp_path, 2)] == [2, 3]


def test_the_cli_checks_a_lone_trail_as_before(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    trail = tmp_path / "audit.jsonl"
    append(str(trail), records(3))
    assert cli_audit.verify(trail) == (True, 3, None)
    (tmp_path / "audit.jsonl.head").unlink()
    assert cli_audit.verify(trail) == (True, 3, None)
    assert capsys.readouterr().out == ""
    with pytest.raises(Exception, match="no audit trail"):
        cli_audit.verify(tmp_path / "missing.jsonl")


def _rotating_writer(path: str, index: int) -> None:
    for i in range(40):
        append(path, [{"writer": index, "i": i}])


def test_concurrent_writers_keep_one_chain_across_rotations(tmp_path: Path):
    """Rotations while writers append: none writes after a rename with a stale head (the directory lock)."""
    trail = tmp_path / "audit.jsonl"
    workers = [multiprocessing.Process(target=_rotating_writer, args=(str(trail), index)) for index in range(6)]
    for worker in workers:
        worker.start()
    rotations = 0
    while any(worker.is_alive() for worker in workers):
        time.sleep(0.005)
        if trail.exists():
            trail.rename(tmp_path / f"audit.jsonl-20261126-{rotations:06d}")
            rotations += 1
    for worker in workers:
        worker.join(timeout=60)
    report = verify_trail(str(trail))
    assert report["ok"], report["problem"]
    assert report["records"] == 240 and rotations > 1
