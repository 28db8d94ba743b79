"""The command line: exit codes and output, with ansible-runner replaced by a fake (no Docker, no Ansible)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from clinicops import __version__, runner
from clinicops.cli import main
from clinicops.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError
from clinicops.runner import REPORT_STATS_KEY


@pytest.fixture
def clinicops_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CLINICOPS_HOME", str(home))
    return home


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    directory = tmp_path / "inventory"
    directory.mkdir()
    (directory / "hosts.yml").write_text("all: {}\n")
    return directory


def install_fake_runner(monkeypatch: pytest.MonkeyPatch, reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def run(event_handler: Callable[[dict[str, Any]], bool], **kwargs: Any) -> SimpleNamespace:
        calls.append(kwargs)
        for host in reports:
            event_handler({"event": "runner_on_ok", "event_data": {"host": host, "task": "Check", "res": {}}})
        event_handler({"event": "playbook_on_stats", "event_data": {"artifact_data": {REPORT_STATS_KEY: reports}}})
        return SimpleNamespace(status="successful", rc=0)

    monkeypatch.setattr(runner.ansible_runner, "run", run)
    return calls


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"clinicops {__version__}"


def test_lab_up_with_bad_count_is_usage_error_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "up", "--name", "unitcli", "--clinics", "0"]) == EXIT_USAGE
    assert "between 1 and 30" in capsys.readouterr().err


def test_lab_with_bad_name_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "status", "--name", "../etc"]) == EXIT_USAGE
    assert "lab name" in capsys.readouterr().err


def test_health_missing_inventory_is_usage_error(
    tmp_path: Path, clinicops_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", "-i", str(tmp_path / "absent")]) == EXIT_USAGE
    assert "inventory not found" in capsys.readouterr().err
    assert not (clinicops_home / "runs").exists()


def test_health_json_all_healthy_exits_0(
    inventory: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = install_fake_runner(monkeypatch, {"paris": {"healthy": True, "summary": "healthy (6 checks)"}})
    assert main(["health", "-i", str(inventory), "--json", "--limit", "paris"]) == EXIT_OK
    output = json.loads(capsys.readouterr().out)
    assert re.fullmatch(r"\d{8}T\d{6}Z-health-[0-9a-f]{6}", output["run_id"])
    assert (clinicops_home / "runs" / output["run_id"]).is_dir()
    assert [(row["clinic"], row["outcome"]) for row in output["clinics"]] == [("paris", "healthy")]
    assert calls[0]["limit"] == "paris"
    assert calls[0]["playbook"] == "health.yml"
    assert "--vault-password-file" not in calls[0]["cmdline"]


def test_health_with_an_unhealthy_clinic_exits_1(
    inventory: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fake_runner(
        monkeypatch,
        {
            "paris": {"healthy": True, "summary": "healthy (6 checks)"},
            "kinshasa": {"healthy": False, "summary": "unhealthy: http app: HTTP 503 (expected 200)"},
        },
    )
    assert main(["health", "-i", str(inventory)]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "unhealthy: http app: HTTP 503" in out
    assert "report: " in out


def test_health_uses_the_lab_vault_password_file(
    inventory: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (inventory / ".clinicops-lab.json").write_text(json.dumps({"lab": "lab", "vault_password_file": ".vault-pass"}))
    calls = install_fake_runner(monkeypatch, {"paris": {"healthy": True}})
    assert main(["health", "-i", str(inventory), "--json"]) == EXIT_OK
    assert str(inventory / ".vault-pass") in calls[0]["cmdline"]


def test_health_explicit_vault_password_file_wins(
    inventory: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (inventory / ".clinicops-lab.json").write_text(json.dumps({"lab": "lab", "vault_password_file": ".vault-pass"}))
    calls = install_fake_runner(monkeypatch, {"paris": {"healthy": True}})
    explicit = tmp_path / "operator.pass"
    assert main(["health", "-i", str(inventory), "--json", "--vault-password-file", str(explicit)]) == EXIT_OK
    assert str(explicit) in calls[0]["cmdline"]
    assert ".vault-pass" not in calls[0]["cmdline"]


def test_backup_passes_the_release_id_and_lists_only_clinics_that_reported(
    inventory: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = {"paris": {"snapshot_id": "1a2b3c4d", "offsite": "ok"}, "vault": {}}
    calls = install_fake_runner(monkeypatch, reports)
    assert main(["backup", "-i", str(inventory), "--json", "--release-id", "20261125T101500Z-2.0.0"]) == EXIT_OK
    output = json.loads(capsys.readouterr().out)
    assert [row["clinic"] for row in output["clinics"]] == ["paris"]  # the vault only ran the run context
    assert output["clinics"][0]["details"] == {"snapshot_id": "1a2b3c4d", "offsite": "ok"}
    assert calls[0]["playbook"] == "backup.yml"
    assert calls[0]["extravars"]["backup_release_id"] == "20261125T101500Z-2.0.0"


def test_restore_passes_confirmation_and_snapshot_and_a_failure_exits_1(
    inventory: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(event_handler: Callable[[dict[str, Any]], bool], **kwargs: Any) -> SimpleNamespace:
        run.kwargs = kwargs
        failed = {"host": "paris", "task": "Refuse to restore over live data without the clinic's name"}
        failed["res"] = {"msg": "restoring over the live data of paris needs -e restore_confirm=paris"}
        event_handler({"event": "runner_on_failed", "event_data": failed})
        return SimpleNamespace(status="failed", rc=2)

    monkeypatch.setattr(runner.ansible_runner, "run", run)
    code = main(["restore", "-i", str(inventory), "--limit", "paris", "--snapshot", "release:r1", "--confirm", "x"])
    assert code == EXIT_FAILED
    assert run.kwargs["extravars"]["restore_confirm"] == "x"
    assert run.kwargs["extravars"]["restore_snapshot"] == "release:r1"
    table = capsys.readouterr().out
    assert re.search(r"│ paris\s+│ failed", table)
    assert main(["restore", "-i", str(inventory), "--limit", "paris", "--json"]) == EXIT_FAILED
    row = json.loads(capsys.readouterr().out)["clinics"][0]
    assert row["failed_task"] == "Refuse to restore over live data without the clinic's name"
    assert row["message"] == "restoring over the live data of paris needs -e restore_confirm=paris"


def test_waves_are_counts_or_percentages() -> None:
    from clinicops.cli import parse_waves

    assert parse_waves("1,25%,100%") == [1, "25%", "100%"]
    assert parse_waves("2, 50%") == [2, "50%"]
    for bad in ("0", "1,abc", "150%", "", "1;rm -rf /"):
        with pytest.raises(UsageError, match="each wave is a clinic count or a percentage"):
            parse_waves(bad)


def test_deploy_makes_one_release_id_and_passes_exactly_one_source(tmp_path) -> None:
    from clinicops.cli import build_parser, deploy_vars

    artifact = tmp_path / "app-2.0.0.tar.gz"
    artifact.write_bytes(b"x")
    args = build_parser().parse_args(["deploy", "--version", "2.0.0", "--artifact", str(artifact)])
    extravars = deploy_vars(args)
    assert extravars["deploy_release_id"].endswith("Z-2.0.0")
    assert extravars["deploy_artifact"] == str(artifact.resolve())
    assert extravars["deploy_waves"] == [1, "25%", "100%"] and extravars["deploy_max_fail_percentage"] == 0
    assert "deploy_artifact_url" not in extravars and "deploy_git_repo" not in extravars
    compose = build_parser().parse_args(["deploy", "--version", "2.4.1", "--image", "registry.example/app"])
    assert deploy_vars(compose)["deploy_strategy"] == "compose"
    assert deploy_vars(compose)["deploy_compose_image"] == "registry.example/app"
    assert "deploy_artifact" not in deploy_vars(compose)
    both = build_parser().parse_args(["deploy", "--version", "2", "--artifact", "a", "--url", "http://x/a"])
    with pytest.raises(UsageError, match="only one of"):
        deploy_vars(both)
    url = build_parser().parse_args(["deploy", "--version", "2", "--url", "http://x/a"])
    with pytest.raises(UsageError, match="--url needs --checksum"):
        deploy_vars(url)


def test_rollback_with_data_passes_the_confirmation() -> None:
    from clinicops.cli import build_parser, rollback_vars

    args = build_parser().parse_args(["rollback", "--restore-data", "--confirm", "kinshasa", "--to", "r1"])
    assert rollback_vars(args) == {
        "rollback_to": "r1",
        "rollback_force": False,
        "rollback_restore_data": True,
        "rollback_confirm": "kinshasa",
    }
