"""files.write_private: owner-only, whole or not at all, no temporary file left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from clinicops import files


def test_writes_owner_only_and_replaces_whole(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    files.write_private(target, "new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["report.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "incident.json"
    target.write_text("old")

    def full_disk(self, other):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        files.write_private(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["incident.json"]
