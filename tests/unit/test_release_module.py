"""The release module's main(): driven with module arguments, as Ansible runs it, on a real release layout."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.clinicops.runbook.plugins.modules import release

from .test_release_store import BOOTSTRAP, make_release, snapshot

RunModule = Callable[..., dict[str, Any]]


@pytest.fixture
def app_root(tmp_path: Path) -> Path:
    """A provisioned host: the first release current, no release log."""
    root = tmp_path / "clinic"
    (root / "shared" / "uploads").mkdir(parents=True)
    (root / "shared" / "app.env").write_text("DATABASE_URL=postgresql:///clinicdb\n")
    make_release(root, BOOTSTRAP)
    (root / "current").symlink_to(root / "releases" / BOOTSTRAP)
    return root


@pytest.fixture
def run_module(app_root: Path, capsys: pytest.CaptureFixture[str]) -> RunModule:
    """Run release.main() with these arguments (app_root added); returns its JSON result."""

    def run(check_mode: bool = False, **args: Any) -> dict[str, Any]:
        args = {"app_root": str(app_root), "_ansible_check_mode": check_mode, **args}
        with patch_module_args(args), pytest.raises(SystemExit):
            release.main()
        return json.loads(capsys.readouterr().out)

    return run


def test_query_adopts_a_provisioned_host_and_reports_drift(run_module: RunModule, app_root: Path) -> None:
    result = run_module()
    assert not result["changed"]
    assert result["current"] == BOOTSTRAP and result["previous"] is None
    assert result["release_dir"] == str(app_root / "releases" / BOOTSTRAP)
    assert [entry["status"] for entry in result["releases"]] == ["active"]
    assert "no release log yet" in result["drift"][0]  # also warned (where warnings go depends on the process)
    assert not (app_root / "releases.json").exists()


def test_deploy_rollback_cleanup_check_apply_reapply(run_module: RunModule, app_root: Path) -> None:
    """Each step: check mode reports the change and writes nothing, apply changes, re-apply changes nothing."""
    steps = [
        dict(state="prepared", release_id="r2", version="2.0.0", who="ops", run_id="run-2",
             backup={"postgresql": "4f2a"}, seed_from_current=True),
        dict(state="linked", release_id="r2", shared_files=["app.env"], shared_dirs=["uploads"]),
        dict(state="active", release_id="r2"),
        dict(state="rolled_back", to=BOOTSTRAP, reason="operator drill"),
        dict(state="cleaned", keep=1),
    ]  # fmt: skip
    for step in steps:
        before = snapshot(app_root)
        predicted = run_module(check_mode=True, **step)
        assert predicted["changed"], step
        assert snapshot(app_root) == before, step
        applied = run_module(**step)
        assert applied["changed"] and applied["current"] == predicted["current"], step
        assert not run_module(check_mode=True, **step)["changed"], step
        assert not run_module(**step)["changed"], step

    result = run_module()
    assert result["current"] == BOOTSTRAP and os.readlink(app_root / "current") == f"releases/{BOOTSTRAP}"
    assert [(entry["id"], entry["status"]) for entry in result["releases"]] == [(BOOTSTRAP, "active")]
    assert sorted(os.listdir(app_root / "releases")) == [BOOTSTRAP]  # r2 was rolled back, so cleanup removed it


def test_prepared_returns_the_release_dir_and_its_record(run_module: RunModule, app_root: Path) -> None:
    result = run_module(state="prepared", release_id="r2", version="2.0.0", run_id="run-2")
    assert result["release_dir"] == str(app_root / "releases" / "r2")
    entry = result["releases"][-1]
    assert (entry["id"], entry["status"], entry["version"]) == ("r2", "unfinished", "2.0.0")
    assert result["current"] == BOOTSTRAP


def test_automatic_rollback_marks_bad_and_reports_removed(run_module: RunModule, app_root: Path) -> None:
    run_module(state="prepared", release_id="r2")
    run_module(state="active", release_id="r2")
    result = run_module(state="rolled_back", rollback_mark="bad", reason="health gate failed")
    assert result["current"] == BOOTSTRAP
    assert (app_root / "releases" / "r2" / ".clinicops-bad").exists()
    cleaned = run_module(state="cleaned", keep=5)
    assert cleaned["removed"] == ["r2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(state="prepared", release_id="../x"), "release id '../x' is not valid"),
        (dict(state="active", release_id="a b"), "release id 'a b' is not valid"),
        (dict(state="rolled_back"), "no previous good release"),
        (dict(state="active", release_id="r9"), "not in the release log"),
        (dict(state="bad", release_id=BOOTSTRAP), "is current; roll back"),
    ],
)
def test_refusals_fail_naming_the_problem_and_change_nothing(
    run_module: RunModule, app_root: Path, args: dict[str, Any], message: str
) -> None:
    before = snapshot(app_root)
    result = run_module(**args)
    assert result["failed"]
    assert message in result["msg"] and result["msg"].endswith("nothing was changed")
    assert snapshot(app_root) == before


@pytest.mark.parametrize("state", ["prepared", "linked", "active", "bad"])
def test_states_that_name_a_release_require_release_id(run_module: RunModule, state: str) -> None:
    result = run_module(state=state)
    assert result["failed"] and "release_id" in result["msg"]


def test_a_missing_app_root_is_refused(run_module: RunModule, tmp_path: Path) -> None:
    result = run_module(app_root=str(tmp_path / "nowhere"))
    assert result["failed"] and "does not exist; nothing was changed" in result["msg"]
