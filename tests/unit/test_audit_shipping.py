"""The audit path (audit_archive): archived audit files copied into a real restic repository made in
tmp_path, read back, and deleted locally only after that and after the local retention.

restic is the real program (the clinics' own); the files, their ages (``os.utime``) and the manifest
are made here. The whole path on a clinic is exercised by tests/integration/test_log_rotation.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.audit_shipping import (
    DAY,
    KIND_TAG,
    AuditShippingError,
    ship,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import ResticRepo

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="restic is not installed on this machine")

NOW = time.time()


def run(argv, env, data):
    done = subprocess.run(argv, env={**os.environ, **env}, input=data, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def repo(tmp_path: Path) -> ResticRepo:
    password = tmp_path / "password"
    password.write_text("a-test-password-of-16+\n")
    repository = ResticRepo(run, str(tmp_path / "repo"), str(password), cache_dir=str(tmp_path / "cache"))
    repository.init()
    return repository


def archived(archive: Path, name: str, body: bytes, age_days: float = 0) -> Path:
    """An archived audit file with its .sha256 side file, as log_archive leaves it."""
    folder = archive / "2026" / "11"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(body)
    digest = hashlib.sha256(body).hexdigest()
    (folder / (name + ".sha256")).write_text(f"{digest}  {name}\n")
    stamp = NOW - age_days * DAY
    os.utime(path, (stamp, stamp))
    return path


def options(tmp_path: Path, **overrides) -> dict:
    base = {
        "archive_dir": str(tmp_path / "archive"),
        "patterns": ["*.jsonl-*"],
        "clinic": "kinshasa",
        "manifest": str(tmp_path / "state" / "audit-archive.json"),
        "local_days": 90,
        "repository_years": 6,
        "scratch_dir": str(tmp_path / "scratch"),
    }
    base.update(overrides)
    return base


def snapshot_paths(repo: ResticRepo) -> dict[str, list[str]]:
    return {item["id"]: item["paths"] for item in repo.snapshots([KIND_TAG])}


def test_new_files_are_copied_read_back_and_kept_locally_until_the_retention(repo, tmp_path):
    young = archived(tmp_path / "archive", "audit.jsonl-20261101-000000.gz", b"young records\n", age_days=3)
    old = archived(tmp_path / "archive", "audit.jsonl-20260701-000000.gz", b"old records\n", age_days=120)

    report = ship(repo, options(tmp_path), False, set(), now=NOW)

    assert sorted(item["path"] for item in report["shipped"]) == sorted([str(old), str(young)])
    assert sorted(report["verified"]) == sorted([str(old), str(young)])
    held = snapshot_paths(repo)
    assert list(held) == [report["snapshot_id"]]
    # The old file had its verified copy and is past the local retention: gone, with its side file.
    assert [item["path"] for item in report["deleted"]] == [str(old)]
    assert not old.exists() and not Path(str(old) + ".sha256").exists()
    assert young.exists() and report["kept_local"] == 1
    manifest = json.loads((tmp_path / "state" / "audit-archive.json").read_text())
    assert manifest["files"][str(young)]["snapshot"] == report["snapshot_id"]
    assert "deleted_at" in manifest["files"][str(old)]
    # What the repository holds is the file's bytes.
    restored = tmp_path / "restored"
    repo.restore(report["snapshot_id"], str(restored))
    assert (restored / str(old).lstrip("/")).read_bytes() == b"old records\n"


def test_a_second_run_copies_nothing(repo, tmp_path):
    archived(tmp_path / "archive", "audit.jsonl-20261101-000000.gz", b"records\n", age_days=1)
    ship(repo, options(tmp_path), False, set(), now=NOW)

    again = ship(repo, options(tmp_path), False, set(), now=NOW)

    assert again["shipped"] == [] and again["deleted"] == [] and not again["changed"]
    assert len(snapshot_paths(repo)) == 1


def test_a_file_whose_snapshot_is_gone_is_copied_again_not_deleted(repo, tmp_path):
    old = archived(tmp_path / "archive", "audit.jsonl-20260101-000000.gz", b"records\n", age_days=1)
    first = ship(repo, options(tmp_path), False, set(), now=NOW)
    repo.call(["forget", first["snapshot_id"], "--prune"])
    os.utime(old, (NOW - 200 * DAY, NOW - 200 * DAY))

    second = ship(repo, options(tmp_path), False, set(), now=NOW)

    # The copy was made again and verified before the file (now past retention) went.
    assert [item["path"] for item in second["shipped"]] == [str(old)]
    assert second["snapshot_id"] != first["snapshot_id"]
    assert [item["path"] for item in second["deleted"]] == [str(old)]
    assert list(snapshot_paths(repo)) == [second["snapshot_id"]]


def test_an_altered_file_stops_the_run_before_anything_is_copied_or_deleted(repo, tmp_path):
    good = archived(tmp_path / "archive", "audit.jsonl-20260101-000000.gz", b"records\n", age_days=200)
    bad = archived(tmp_path / "archive", "audit.jsonl-20260201-000000.gz", b"records\n", age_days=200)
    bad.write_bytes(b"edited records\n")

    with pytest.raises(AuditShippingError, match=r"no longer match the checksum.*no audit file was deleted"):
        ship(repo, options(tmp_path), False, set(), now=NOW)

    assert good.exists() and bad.exists()
    assert snapshot_paths(repo) == {}


def test_check_mode_lists_and_changes_nothing(repo, tmp_path):
    old = archived(tmp_path / "archive", "audit.jsonl-20260101-000000.gz", b"records\n", age_days=200)

    report = ship(repo, options(tmp_path), True, set(), now=NOW)

    assert [item["path"] for item in report["shipped"]] == [str(old)]
    assert [item["path"] for item in report["deleted"]] == [str(old)]
    assert "would copy" in report["msg"]
    assert old.exists() and snapshot_paths(repo) == {}
    assert not (tmp_path / "state" / "audit-archive.json").exists()


def test_an_open_file_is_left_alone(repo, tmp_path):
    held = archived(tmp_path / "archive", "audit.jsonl-20260101-000000.gz", b"records\n", age_days=200)

    report = ship(repo, options(tmp_path), False, {str(held)}, now=NOW)

    assert report["skipped_open"] == [str(held)] and report["shipped"] == []
    assert held.exists()


def test_a_missing_repository_leaves_the_files_in_place(tmp_path):
    password = tmp_path / "password"
    password.write_text("a-test-password-of-16+\n")
    absent = ResticRepo(run, str(tmp_path / "no-repo"), str(password), cache_dir=str(tmp_path / "cache"))
    old = archived(tmp_path / "archive", "audit.jsonl-20260101-000000.gz", b"records\n", age_days=200)

    with pytest.raises(AuditShippingError, match=r"does not exist.*left in place"):
        ship(absent, options(tmp_path), False, set(), now=NOW)

    assert old.exists()


def test_a_broken_manifest_is_named_and_nothing_is_deleted(repo, tmp_path):
    old = archived(tmp_path / "archive", "audit.jsonl-20260101-000000.gz", b"records\n", age_days=200)
    manifest = tmp_path / "state" / "audit-archive.json"
    manifest.parent.mkdir()
    manifest.write_text("{not json")

    with pytest.raises(AuditShippingError, match=r"not valid JSON.*no audit file was deleted"):
        ship(repo, options(tmp_path), False, set(), now=NOW)

    assert old.exists()
