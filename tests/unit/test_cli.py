"""The command line: exit codes and output, with the inventory and ansible-runner replaced by fakes.

``clinicops.inventory.resolve_fleet`` is patched to return a Fleet (the CLI imports it inside its
functions, so patching the module attribute reaches it); ``ansible_runner.run`` plays the clinics
of ``--limit`` and publishes the reports it is given. No Docker, no Ansible.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from clinicops import __version__, inventory, runner
from clinicops.cli import main
from clinicops.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, UsageError
from clinicops.inventory import Fleet
from clinicops.locks import ControllerLocks
from clinicops.runner import REPORT_STATS_KEY


def run_id_pattern(command: str) -> str:
    return rf"\d{{8}}T\d{{6}}Z-{command}-[0-9a-f]{{6}}"


class FakeFleet:
    """``resolve_fleet``: the clinics the inventory would give; records how it was asked."""

    def __init__(self, *hosts: str, hostvars: dict[str, dict[str, Any]] | None = None) -> None:
        self.fleet = Fleet(hosts=hosts, groups={"clinics": hosts}, hostvars=hostvars or {})
        self.calls: list[tuple[Path, str | None, Path | None]] = []

    def __call__(self, inventory_path: Path, limit: str | None = None, vault: Path | None = None, **_: Any) -> Fleet:
        self.calls.append((inventory_path, limit, vault))
        if limit:
            wanted = set(limit.split(","))
            return self.fleet.only([host for host in self.fleet.hosts if host in wanted])
        return self.fleet


def use_fleet(monkeypatch: pytest.MonkeyPatch, *hosts: str, **kwargs: Any) -> FakeFleet:
    fake = FakeFleet(*hosts, **kwargs)
    monkeypatch.setattr(inventory, "resolve_fleet", fake)
    return fake


def install_fake_runner(
    monkeypatch: pytest.MonkeyPatch,
    reports: dict[str, dict[str, Any]],
    failing: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """ansible_runner.run: every clinic of --limit runs a task, ok or failing with the given result."""
    calls: list[dict[str, Any]] = []
    failing = failing or {}

    def run(
        event_handler: Callable[[dict[str, Any]], bool],
        status_handler: Callable[..., None],
        cancel_callback: Callable[[], bool],
        **kwargs: Any,
    ) -> SimpleNamespace:
        calls.append(kwargs)
        status_handler({"status": "running", "runner_ident": "run"}, runner_config=None)
        assert cancel_callback() is False
        failures = {}
        for host in kwargs["limit"].split(","):
            event_handler({"event": "runner_on_ok", "event_data": {"host": host, "task": "Check", "res": {}}})
            if host in failing:
                data = {"host": host, "task": failing[host]["task"], "res": failing[host]["res"]}
                event_handler({"event": "runner_on_failed", "event_data": data})
                failures[host] = 1
        data = {"failures": failures, "dark": {}, "artifact_data": {REPORT_STATS_KEY: reports}}
        event_handler({"event": "playbook_on_stats", "event_data": data})
        return SimpleNamespace(status="failed" if failures else "successful", rc=2 if failures else 0)

    monkeypatch.setattr(runner.ansible_runner, "run", run)
    return calls


def last_run(home: Path) -> Path:
    (run_dir,) = (home / "runs").iterdir()
    return run_dir


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


# -- health ----------------------------------------------------------------------------------------


def test_health_missing_inventory_is_usage_error(
    tmp_path: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = install_fake_runner(monkeypatch, {})
    assert main(["health", "-i", str(tmp_path / "absent")]) == EXIT_USAGE  # the real resolve_fleet
    assert "inventory not found" in capsys.readouterr().err
    assert calls == []
    assert not (clinicops_home / "runs").exists()


def test_health_json_all_healthy_exits_0_and_leaves_the_run_directory(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = use_fleet(monkeypatch, "paris", "kinshasa")
    calls = install_fake_runner(monkeypatch, {"paris": {"healthy": True, "summary": "healthy (6 checks)"}})
    assert main(["health", "-i", str(inventory_dir), "--json", "--limit", "paris"]) == EXIT_OK
    output = json.loads(capsys.readouterr().out)
    assert re.fullmatch(run_id_pattern("health"), output["run_id"])
    assert fleet.calls == [(inventory_dir, "paris", None)]
    run_dir = clinicops_home / "runs" / output["run_id"]
    assert sorted(path.name for path in run_dir.iterdir()) == ["report.json", "report.md", "run.json", "runner"]
    assert [path.name for path in (run_dir / "runner").iterdir()] == ["01-01"]
    assert json.loads((run_dir / "report.json").read_text()) == output
    assert json.loads((run_dir / "run.json").read_text())["inventory"] == str(inventory_dir.resolve())
    assert [(row["clinic"], row["outcome"]) for row in output["clinics"]] == [("paris", "healthy")]
    assert (output["status"], output["exit_code"]) == ("ok", EXIT_OK)
    (call,) = calls
    assert call["limit"] == "paris"
    assert call["playbook"] == "health.yml"
    assert call["private_data_dir"] == str(run_dir / "runner" / "01-01")
    assert "--vault-password-file" not in call["cmdline"]


def test_health_with_an_unhealthy_clinic_exits_1(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "paris", "kinshasa")
    install_fake_runner(
        monkeypatch,
        {
            "paris": {"healthy": True, "summary": "healthy (6 checks)"},
            "kinshasa": {"healthy": False, "summary": "unhealthy: http app: HTTP 503 (expected 200)"},
        },
    )
    assert main(["health", "-i", str(inventory_dir)]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "clinic health — run" in out
    assert "unhealthy: http app: HTTP 503" in out
    assert f"report: {last_run(clinicops_home) / 'report.md'}" in out


def test_health_quiet_prints_one_line(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "paris")
    install_fake_runner(monkeypatch, {"paris": {"healthy": True}})
    assert main(["health", "-i", str(inventory_dir), "-q"]) == EXIT_OK
    captured = capsys.readouterr()
    (line,) = captured.out.splitlines()
    assert line.startswith("health run ") and line.endswith(
        f": ok (1 healthy); report: {last_run(clinicops_home)}/report.md"
    )
    assert captured.err == ""


def test_health_uses_the_lab_vault_password_file(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (inventory_dir / ".clinicops-lab.json").write_text(json.dumps({"lab": "lab", "vault_password_file": ".vault-pass"}))
    fleet = use_fleet(monkeypatch, "paris")
    calls = install_fake_runner(monkeypatch, {"paris": {"healthy": True}})
    assert main(["health", "-i", str(inventory_dir), "--json"]) == EXIT_OK
    assert str(inventory_dir / ".vault-pass") in calls[0]["cmdline"]
    assert fleet.calls[0][2] == inventory_dir / ".vault-pass"  # the inventory is read with it too


def test_health_explicit_vault_password_file_wins(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (inventory_dir / ".clinicops-lab.json").write_text(json.dumps({"lab": "lab", "vault_password_file": ".vault-pass"}))
    fleet = use_fleet(monkeypatch, "paris")
    calls = install_fake_runner(monkeypatch, {"paris": {"healthy": True}})
    explicit = tmp_path / "operator.pass"
    assert main(["health", "-i", str(inventory_dir), "--json", "--vault-password-file", str(explicit)]) == EXIT_OK
    assert str(explicit) in calls[0]["cmdline"]
    assert ".vault-pass" not in calls[0]["cmdline"]
    assert fleet.calls[0][2] == explicit


def test_a_limit_matching_no_clinic_is_a_usage_error(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_clinic(*_args: Any, **_kwargs: Any) -> Fleet:
        raise UsageError("no clinic in group 'clinics' of inv matching --limit 'lyon'; nothing was run")

    monkeypatch.setattr(inventory, "resolve_fleet", no_clinic)
    calls = install_fake_runner(monkeypatch, {})
    assert main(["backup", "-i", str(inventory_dir), "--limit", "lyon"]) == EXIT_USAGE
    assert "no clinic in group 'clinics'" in capsys.readouterr().err
    assert calls == []


# -- backup, deploy: waves -------------------------------------------------------------------------


def test_backup_passes_the_release_id_and_lists_only_the_clinics(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "paris")
    reports = {"paris": {"snapshot_id": "1a2b3c4d", "offsite": "ok"}, "vault": {}}
    calls = install_fake_runner(monkeypatch, reports)
    assert main(["backup", "-i", str(inventory_dir), "--json", "--release-id", "20261125T101500Z-2.0.0"]) == EXIT_OK
    output = json.loads(capsys.readouterr().out)
    assert [row["clinic"] for row in output["clinics"]] == ["paris"]  # the vault only ran the run context
    assert output["clinics"][0]["details"] == {"snapshot_id": "1a2b3c4d", "offsite": "ok"}
    assert output["options"] == {"backup_release_id": "20261125T101500Z-2.0.0"}
    assert calls[0]["playbook"] == "backup.yml"
    assert calls[0]["extravars"]["backup_release_id"] == "20261125T101500Z-2.0.0"


def test_deploy_runs_the_default_waves_with_one_release_id(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, *(f"c{number}" for number in range(1, 10)))
    calls = install_fake_runner(monkeypatch, {})
    assert main(["deploy", "-i", str(inventory_dir), "--version", "9.9.9-unit", "--image", "reg/app", "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    assert [call["limit"] for call in calls] == ["c1", "c2,c3", "c4,c5,c6,c7,c8,c9"]  # 1, 25% of 9 = 2, 100%
    release_ids = {call["extravars"]["deploy_release_id"] for call in calls}
    run_ids = {call["extravars"]["clinicops_run_id"] for call in calls}
    assert len(release_ids) == 1 and run_ids == {output["run_id"]}
    assert all(call["extravars"]["deploy_waves"] == ["100%"] for call in calls)  # the CLI makes the waves
    assert [wave["name"] for wave in output["attempts"][0]["waves"]] == ["canary", "wave 2", "wave 3"]
    assert output["title"] == f"deploy 9.9.9-unit (release {release_ids.pop()})"


def test_deploy_a_failing_canary_stops_and_resume_finishes_it(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "c1", "c2", "c3")
    failing = {"c1": {"task": "Wait for the health gate", "res": {"msg": "HTTP 503"}}}
    calls = install_fake_runner(monkeypatch, {}, failing)
    argv = ["deploy", "-i", str(inventory_dir), "--version", "9.9.9-unit", "--image", "reg/app", "--waves", "1,100%"]
    assert main([*argv, "--json"]) == EXIT_FAILED
    first = json.loads(capsys.readouterr().out)
    assert [(row["clinic"], row["outcome"]) for row in first["clinics"]] == [
        ("c1", "failed"),
        ("c2", "not reached"),
        ("c3", "not reached"),
    ]
    assert len(calls) == 1

    install_fake_runner(monkeypatch, {})  # the cause is fixed
    assert main(["resume", "last", "--json"]) == EXIT_OK
    final = json.loads(capsys.readouterr().out)
    assert final["run_id"] == first["run_id"] and final["status"] == "ok"
    assert [(row["clinic"], row["attempt"]) for row in final["clinics"]] == [("c1", 2), ("c2", 2), ("c3", 2)]

    assert main(["resume", first["run_id"][-6:]]) == EXIT_OK
    assert "has nothing to resume" in capsys.readouterr().out


def test_resume_refuses_clinics_gone_from_the_inventory(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "c1", "c2")
    install_fake_runner(monkeypatch, {}, {"c1": {"task": "Backup", "res": {"msg": "disk full"}}})
    assert main(["backup", "-i", str(inventory_dir), "--waves", "1"]) == EXIT_FAILED
    use_fleet(monkeypatch, "c2")  # c1 was removed from the inventory since
    calls = install_fake_runner(monkeypatch, {})
    assert main(["resume", "last"]) == EXIT_USAGE
    assert "no longer in" in capsys.readouterr().err and calls == []


def test_bad_waves_and_max_fail_percentage_are_usage_errors(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "paris")
    calls = install_fake_runner(monkeypatch, {})
    assert main(["backup", "-i", str(inventory_dir), "--waves", "1,x"]) == EXIT_USAGE
    assert "'x' is not a wave" in capsys.readouterr().err
    assert main(["backup", "-i", str(inventory_dir), "--max-fail-percentage", "101"]) == EXIT_USAGE
    assert main(["backup", "-i", str(inventory_dir), "--waves", "@region_asia"]) == EXIT_USAGE
    assert calls == []
    assert not (clinicops_home / "runs").exists()


def test_a_clinic_locked_by_another_run_refuses_with_exit_3(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "paris", "kinshasa")
    calls = install_fake_runner(monkeypatch, {"paris": {"healthy": True}, "kinshasa": {"healthy": True}})
    with ControllerLocks(clinicops_home / "locks", "20260101T000000Z-deploy-aaaaaa", "deploy") as other:
        other.acquire(["kinshasa"])
        assert main(["backup", "-i", str(inventory_dir)]) == EXIT_REFUSED
        assert "kinshasa (run 20260101T000000Z-deploy-aaaaaa" in capsys.readouterr().err
        assert calls == []
        assert main(["health", "-i", str(inventory_dir), "-q"]) == EXIT_OK  # a survey takes no lock
    assert [call["playbook"] for call in calls] == ["health.yml"]


# -- restore over live data: the confirmation is checked before anything runs ----------------------


def restore(inventory_dir: Path, *extra: str) -> list[str]:
    return ["restore", "-i", str(inventory_dir), "--limit", "paris", "--snapshot", "release:r1", *extra]


def test_restore_passes_the_confirmation_and_snapshot_and_a_failure_exits_1(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "paris", hostvars={"paris": {"clinic_id": "FR-PAR-011"}})
    failing = {"paris": {"task": "Verify the restored rows", "res": {"msg": "row count 63 is not 64"}}}
    calls = install_fake_runner(monkeypatch, {}, failing)
    assert main(restore(inventory_dir, "--confirm", "FR-PAR-011")) == EXIT_FAILED
    assert calls[0]["extravars"]["restore_confirm"] == "FR-PAR-011"
    assert calls[0]["extravars"]["restore_snapshot"] == "release:r1"
    assert calls[0]["playbook"] == "restore.yml"
    table = capsys.readouterr().out
    assert re.search(r"│ paris\s+│ failed", table)
    assert "Verify the restored rows: row count 63 is not 64" in table
    assert main(restore(inventory_dir, "--yes", "--json")) == EXIT_FAILED
    assert calls[1]["extravars"]["restore_confirm"] == "FR-PAR-011"
    row = json.loads(capsys.readouterr().out)["clinics"][0]
    assert (row["failed_task"], row["message"]) == ("Verify the restored rows", "row count 63 is not 64")


def test_restore_with_the_wrong_confirmation_is_refused_before_running(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "paris", hostvars={"paris": {"clinic_id": "FR-PAR-011"}})
    calls = install_fake_runner(monkeypatch, {})
    assert main(restore(inventory_dir, "--confirm", "paris")) == EXIT_REFUSED
    assert "'paris' is not the clinic's id 'FR-PAR-011'; nothing was changed" in capsys.readouterr().err
    assert calls == []
    assert not (clinicops_home / "runs").exists()


def test_restore_without_a_confirmation_and_no_terminal_is_refused(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "paris")
    calls = install_fake_runner(monkeypatch, {})
    assert main(restore(inventory_dir)) == EXIT_REFUSED  # pytest's stdin is no terminal
    assert "give --confirm paris or --yes" in capsys.readouterr().err  # no clinic_id: the host name
    assert calls == []


def test_restore_of_several_clinics_is_a_usage_error(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "paris", "kinshasa")
    calls = install_fake_runner(monkeypatch, {})
    assert main(["restore", "-i", str(inventory_dir), "--confirm", "paris", "--yes"]) == EXIT_USAGE
    assert "one clinic at a time; --limit matched 2 (paris, kinshasa)" in capsys.readouterr().err
    assert calls == []


def test_rollback_without_data_needs_no_confirmation(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_fleet(monkeypatch, "paris", "kinshasa")
    calls = install_fake_runner(monkeypatch, {})
    assert main(["rollback", "-i", str(inventory_dir), "--to", "r1", "-q"]) == EXIT_OK
    assert calls[0]["extravars"]["rollback_to"] == "r1" and "rollback_confirm" not in calls[0]["extravars"]
    assert main(["rollback", "-i", str(inventory_dir), "--restore-data", "--yes"]) == EXIT_USAGE  # two clinics


# -- runs and show ---------------------------------------------------------------------------------


def test_runs_and_show(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs"]) == EXIT_OK
    assert "no runs yet" in capsys.readouterr().out
    use_fleet(monkeypatch, "paris")
    install_fake_runner(monkeypatch, {}, {"paris": {"task": "Backup", "res": {"msg": "disk full"}}})
    assert main(["backup", "-i", str(inventory_dir), "-q"]) == EXIT_FAILED
    run_id = last_run(clinicops_home).name
    capsys.readouterr()

    assert main(["runs", "--json"]) == EXIT_OK
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["run_id"], listed["command"], listed["status"], listed["counts"]) == (
        run_id,
        "backup",
        "failed",
        {"failed": 1},
    )
    assert main(["runs"]) == EXIT_OK
    assert run_id in capsys.readouterr().out

    assert main(["show", "last", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == json.loads((last_run(clinicops_home) / "report.json").read_text())
    assert main(["show", run_id, "--markdown"]) == EXIT_OK
    assert capsys.readouterr().out == (last_run(clinicops_home) / "report.md").read_text()
    assert main(["show", run_id[:20]]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "Backup: disk full" in shown and f"clinicops resume {run_id}" in shown
    assert main(["show", "no-such-run"]) == EXIT_USAGE


def test_ctrl_c_before_the_run_starts_exits_130(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*_args: Any, **_kwargs: Any) -> Fleet:
        raise KeyboardInterrupt  # Ctrl-C while ansible-inventory reads the inventory

    monkeypatch.setattr(inventory, "resolve_fleet", interrupted)
    calls = install_fake_runner(monkeypatch, {})
    assert main(["backup", "-i", str(inventory_dir), "-q"]) == EXIT_INTERRUPTED
    assert calls == []


# -- argument helpers ------------------------------------------------------------------------------


def test_deploy_makes_one_release_id_and_passes_exactly_one_source(tmp_path: Path) -> None:
    from clinicops.cli import build_parser, deploy_vars

    artifact = tmp_path / "app-2.0.0.tar.gz"
    artifact.write_bytes(b"x")
    args = build_parser().parse_args(["deploy", "--version", "2.0.0", "--artifact", str(artifact)])
    extravars = deploy_vars(args)
    assert extravars["deploy_release_id"].endswith("Z-2.0.0")
    assert extravars["deploy_artifact"] == str(artifact.resolve())
    assert extravars["deploy_waves"] == ["100%"] and extravars["deploy_max_fail_percentage"] == 0
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
    waves = build_parser().parse_args(["deploy", "--version", "2", "--image", "r/a", "--waves", "1,0"])
    with pytest.raises(UsageError, match="'0' is not a wave"):
        deploy_vars(waves)


def test_rollback_with_data_passes_the_confirmation() -> None:
    from clinicops.cli import build_parser, rollback_vars

    args = build_parser().parse_args(["rollback", "--restore-data", "--confirm", "kinshasa", "--to", "r1"])
    assert rollback_vars(args) == {
        "rollback_to": "r1",
        "rollback_force": False,
        "rollback_restore_data": True,
        "rollback_confirm": "kinshasa",
    }


def test_health_checklist_and_security_scan_run_their_playbooks(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "paris")
    items = [{"item": "4xx/5xx rates", "ok": False, "detail": "5xx 12.0% of 300 requests"}]
    calls = install_fake_runner(
        monkeypatch, {"paris": {"healthy": False, "summary": "unhealthy: 4xx/5xx rates", "checklist_items": items}}
    )
    assert main(["health", "-i", str(inventory_dir), "--checklist", "evening"]) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "clinic health — evening checklist — run" in out
    assert "4xx/5xx rates" in out and "FAILED" in out and "5xx 12.0% of 300 requests" in out
    assert calls[0]["extravars"]["health_checklist"] == "evening"
    markdown = (last_run(clinicops_home) / "report.md").read_text()
    assert "## Checklist" in markdown and "| paris | 4xx/5xx rates | FAILED | 5xx 12.0% of 300 requests |" in markdown

    calls = install_fake_runner(
        monkeypatch,
        {"paris": {"crossed": ["12 failed logins from 203.0.113.7 (threshold 10)"]}},
        failing={"paris": {"task": "Fail an unhealthy clinic", "res": {"msg": "security scan: 12 failed logins"}}},
    )
    assert main(["security-scan", "-i", str(inventory_dir), "--json"]) == EXIT_FAILED
    state = json.loads(capsys.readouterr().out)
    assert calls[0]["playbook"] == "security_scan.yml"
    (row,) = state["clinics"]
    assert row["outcome"] == "failed" and row["details"]["crossed"][0].startswith("12 failed logins from 203.0.113.7")
