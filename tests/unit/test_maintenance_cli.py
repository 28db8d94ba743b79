"""``clinicops maintenance`` and the window options of the gated commands, end to end through ``main``.

The inventory is a FakeFleet, ansible_runner.run is the scripted FakeAnsible of the fleet run tests
(a clinic it is told to skip goes through the window gate's skip: published, then end_host), and
the wall clock of a wait is a FakeClock: nothing sleeps.
"""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clinicops import runner, windows
from clinicops.cli import main
from clinicops.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

from .test_cli import last_run, use_fleet
from .test_fleet_run import GATE_SKIP, FakeAnsible
from .test_windows_cli import NEW_YORK, SUNDAY, FakeClock

MAINTAINED = {
    "reached": True,
    "window": "weekly",
    "window_state": "open",
    "window_end": "2026-11-29T04:00:00+01:00",
    "time_left_s": 4320,
    "overrun": False,
    "durations": {"snapshot": 2.4, "upkeep": 95.0},
    "upkeep": {"vacuumed": 4, "reindexed": 2, "skipped": 0, "terminated": 0},
    "packages": {"upgraded": ["openssl"], "held_back": []},
    "restarted": ["nginx"],
    "reboot_required": False,
}
ISO = "2026-11-29T01:30:00+00:00"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, clinicops_home: Path) -> FakeAnsible:
    fake = FakeAnsible()
    monkeypatch.setattr(runner.ansible_runner, "run", fake)
    return fake


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The wall clock of the CLI's window waits."""
    clock = FakeClock(SUNDAY)
    monkeypatch.setattr(windows, "utc_now", clock)
    monkeypatch.setattr(windows, "sleep_for", clock.sleep)
    return clock


def maintenance(inventory_dir: Path, *extra: str) -> list[str]:
    return ["maintenance", "-i", str(inventory_dir), *extra]


def maintenance_vars(call: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in call["extravars"].items()
        if key.startswith(("maintenance_window_", "window_gate_", "clinicops_now"))
    }


# -- what reaches the play -------------------------------------------------------------------------


def test_maintenance_runs_a_canary_first_and_passes_only_what_was_given(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeAnsible
) -> None:
    use_fleet(monkeypatch, "c1", "c2", "c3")
    assert main(maintenance(inventory_dir, "-q")) == EXIT_OK
    assert [call["limit"] for call in fake.calls] == ["c1", "c2,c3"]  # 1,100%
    assert {call["playbook"] for call in fake.calls} == {"maintenance.yml"}
    assert [maintenance_vars(call) for call in fake.calls] == [{}, {}]  # the role's defaults decide
    saved = json.loads((last_run(clinicops_home) / "run.json").read_text())
    assert (saved["title"], saved["options"], saved["wait_for_window_s"]) == ("maintenance", {}, 0)


def test_maintenance_options_become_the_roles_extra_vars_and_the_override_is_recorded(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeAnsible
) -> None:
    use_fleet(monkeypatch, "c1")
    argv = maintenance(
        inventory_dir,
        *("--os-updates", "all", "--vacuum", "full", "--reindex", "blocking"),
        *("--terminate-long-queries", "--no-backup", "--step-duration", "1h 30m"),
        *("--window-mode", "override", "--override-reason", " INC-1234:\n security fix "),
        *("--now", "2026-11-29T02:30:00+01:00", "--json"),
    )
    assert main(argv) == EXIT_OK
    expected = {
        "maintenance_window_os_updates": "all",
        "maintenance_window_vacuum": "full",
        "maintenance_window_reindex": "blocking",
        "maintenance_window_terminate_long_queries": True,
        "maintenance_window_backup": False,
        "maintenance_window_step_duration": "1h30m",
        "window_gate_mode": "override",
        "window_gate_override_reason": "INC-1234: security fix",
        "clinicops_now": "2026-11-29T02:30:00+01:00",
    }
    (call,) = fake.calls
    assert maintenance_vars(call) == expected
    saved = json.loads((last_run(clinicops_home) / "run.json").read_text())
    assert saved["options"] == expected  # what the run was asked, override reason included (no secret)
    assert saved["title"] == "maintenance — window override"
    report_md = (last_run(clinicops_home) / "report.md").read_text()
    assert "- window_gate_override_reason: `INC-1234: security fix`" in report_md


@pytest.mark.parametrize("command", ["deploy", "rollback", "restore"])
def test_every_gated_command_takes_the_window_options(
    command: str, inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeAnsible
) -> None:
    use_fleet(monkeypatch, "paris")
    extra = {"deploy": ["--version", "2.0.0", "--image", "reg/app"], "restore": ["--yes"], "rollback": []}[command]
    argv = [command, "-i", str(inventory_dir), *extra, "--window-mode", "warn", "--now", ISO, "-q"]
    assert main(argv) == EXIT_OK
    assert maintenance_vars(fake.calls[0]) == {"window_gate_mode": "warn", "clinicops_now": ISO}
    options = json.loads((last_run(clinicops_home) / "run.json").read_text())["options"]
    assert (options["window_gate_mode"], options["clinicops_now"]) == ("warn", ISO)


# -- bad input: exit 2, nothing run ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--window-mode", "override"], "--window-mode override needs --override-reason TEXT"),
        (["--override-reason", "INC-1"], "--override-reason is only for --window-mode override"),
        (["--window-mode", "warn", "--override-reason", "INC-1"], "--override-reason is only for --window-mode"),
        (["--window-mode", "override", "--override-reason", "  \n"], "--override-reason is blank"),
        (["--step-duration", "45"], "--step-duration '45': give a unit"),
        (["--step-duration", "soon"], "--step-duration 'soon' is not a duration"),
        (["--step-duration", "0m"], "--step-duration '0m' must be more than 0"),
        (["--now", "tomorrow"], "--now 'tomorrow' is not an ISO 8601 time"),
        (["--now", "2026-11-29T01:30:00"], "--now '2026-11-29T01:30:00' needs a UTC offset"),
        (["--wait-for-window=6h", "--now", ISO], "--wait-for-window waits for real time to pass"),
        (["--wait-for-window", "--window-mode", "warn"], "with --window-mode warn the gate lets every clinic"),
        (["--wait-for-window=forever"], "--wait-for-window 'forever' is not a duration"),
        (["--wait-for-window=0h"], "--wait-for-window '0h' must be more than 0"),
    ],
)
def test_bad_window_and_maintenance_options_are_usage_errors(
    extra: list[str],
    problem: str,
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = use_fleet(monkeypatch, "c1")
    assert main(maintenance(inventory_dir, *extra)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert problem in err and err.rstrip().endswith("nothing was run"), err
    assert fake.calls == [] and fleet.calls == []  # refused before the inventory is even read
    assert not (clinicops_home / "runs").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["maintenance", "--os-updates", "everything"],
        ["maintenance", "--vacuum", "deep"],
        ["deploy", "--version", "2", "--window-mode", "maybe"],
        ["backup", "--window-mode", "warn"],  # not gated: no window options
        ["health", "--wait-for-window"],
    ],
)
def test_unknown_choices_are_refused_by_the_parser(
    argv: list[str], fake: FakeAnsible, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == EXIT_USAGE
    assert "error:" in capsys.readouterr().err
    assert fake.calls == []


# -- skipped clinics: reported, counted, exit 0, resumed ---------------------------------------------


def test_a_skipped_clinic_is_reported_and_the_run_exits_0_as_partial(
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "c1", "c2", "c3")
    fake.outcomes["c2"] = "skipped"
    fake.reports = {"c1": MAINTAINED, "c3": MAINTAINED}
    assert main(maintenance(inventory_dir, "--json")) == EXIT_OK
    captured = capsys.readouterr()
    output = json.loads(captured.out)
    assert (output["status"], output["exit_code"], output["counts"]) == ("partial", EXIT_OK, {"ok": 2, "skipped": 1})
    c2 = output["clinics"][1]
    assert (c2["clinic"], c2["outcome"], c2["message"]) == ("c2", "skipped", GATE_SKIP["reason"])
    assert c2["details"] == {"next_opening": GATE_SKIP["next_opening"]}
    assert output["clinics"][0]["details"]["time_left_s"] == 4320
    # the progress says it the moment the gate publishes it (stderr is no terminal: plain lines)
    assert f"SKIPPED c2: {GATE_SKIP['reason']}" in captured.err
    assert "wave 2/2 wave 2 done in" in captured.err and ": 1 ok, 1 skipped" in captured.err


def test_the_summary_line_and_table_say_the_skip(
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "c1", "c2")
    fake.outcomes["c2"] = "skipped"
    fake.reports = {"c1": MAINTAINED}
    assert main(maintenance(inventory_dir, "-q")) == EXIT_OK
    (line,) = capsys.readouterr().out.splitlines()
    run_id = last_run(clinicops_home).name
    assert line == f"maintenance run {run_id}: partial (1 ok, 1 skipped); report: {last_run(clinicops_home)}/report.md"

    assert main(["show", "last"]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "maintenance — run" in shown and "— partial" in shown
    assert "weekly: 1 h 12 min left" in shown  # the window column of a maintenance run
    assert f"opens {GATE_SKIP['next_opening']}" in shown
    assert f"clinicops resume {run_id} --wait-for-window" in shown

    assert main(["runs", "--json"]) == EXIT_OK
    (listed,) = json.loads(capsys.readouterr().out)
    assert (listed["status"], listed["counts"]) == ("partial", {"ok": 1, "skipped": 1})


def test_every_clinic_skipped_is_status_skipped_and_a_failure_still_fails(
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "c1", "c2")
    fake.outcomes.update(c1="skipped", c2="skipped")
    assert main(maintenance(inventory_dir, "--json")) == EXIT_OK
    output = json.loads(capsys.readouterr().out)
    assert (output["status"], output["counts"]) == ("skipped", {"skipped": 2})
    assert len(fake.calls) == 2  # a skipped canary fails nothing: the next wave runs

    fake.outcomes.update(c1="skipped", c2="failed")
    assert main(maintenance(inventory_dir, "--json", "--waves", "2")) == EXIT_FAILED
    assert json.loads(capsys.readouterr().out)["status"] == "failed"


def test_a_deploy_whose_canary_was_skipped_stops_before_the_other_clinics(
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "c1", "c2", "c3")
    fake.outcomes["c1"] = "skipped"
    assert main(["deploy", "-i", str(inventory_dir), "--version", "2", "--json"]) == EXIT_INTERRUPTED
    captured = capsys.readouterr()
    output = json.loads(captured.out)
    assert [call["limit"] for call in fake.calls] == ["c1"]  # nothing deployed past a canary that did not run
    assert [row["outcome"] for row in output["clinics"]] == ["skipped", "not reached", "not reached"]
    assert output["status"] == "stopped"
    assert "a deploy does not go on without its canary" in captured.err
    assert f"clinicops resume {output['run_id']} --wait-for-window" in captured.err


def test_resume_runs_the_skipped_clinics(
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "c1", "c2", "c3")
    fake.outcomes.update(c1="skipped", c3="skipped")
    assert main(maintenance(inventory_dir, "--window-mode", "enforce", "-q")) == EXIT_OK
    fake.outcomes.clear()
    fake.calls.clear()
    assert main(["resume", "last", "--json"]) == EXIT_OK
    final = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert [call["limit"] for call in fake.calls] == ["c1", "c3"]  # the canary again first, then its wave
    assert fake.calls[0]["extravars"]["window_gate_mode"] == "enforce"  # the run's own extra vars
    assert final["status"] == "ok"
    assert [(row["clinic"], row["outcome"], row["attempt"]) for row in final["clinics"]] == [
        ("c1", "ok", 2),
        ("c2", "ok", 1),
        ("c3", "ok", 2),
    ]


def test_resume_waits_only_for_gated_runs(
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "c1")
    fake.outcomes["c1"] = "failed"
    assert main(["backup", "-i", str(inventory_dir), "-q"]) == EXIT_FAILED
    fake.calls.clear()
    assert main(["resume", "last", "--wait-for-window"]) == EXIT_USAGE
    assert "backup runs are not gated by maintenance windows" in capsys.readouterr().err
    assert fake.calls == []


# -- waiting for the window ------------------------------------------------------------------------


def test_wait_for_window_waits_before_the_wave_then_runs_it(
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "newyork", hostvars={"newyork": NEW_YORK})
    seen: list[datetime] = []
    fake.before_clinic = lambda call, clinic: seen.append(clock.now)
    assert main(maintenance(inventory_dir, "--wait-for-window=12h", "--step-duration", "10m", "--json")) == EXIT_OK
    err = capsys.readouterr().err
    assert "waiting for the window of newyork (opens Sun 2026-11-29 02:00 EST, in 5 h 30 min); Ctrl-C stops" in err
    assert seen == [datetime(2026, 11, 29, 7, 0, tzinfo=UTC)]  # the wave started when the window opened
    assert "wait" not in " ".join(fake.calls[0]["extravars"])  # the CLI waits; the play knows nothing of it
    assert json.loads((last_run(clinicops_home) / "run.json").read_text())["wait_for_window_s"] == 12 * 3600


def test_without_wait_for_window_a_closed_wave_is_said_and_runs(
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "newyork", hostvars={"newyork": NEW_YORK})
    assert main(maintenance(inventory_dir, "--json")) == EXIT_OK
    assert "no clinic is in a maintenance window, the gate will skip them" in capsys.readouterr().err
    assert (len(fake.calls), clock.slept) == (1, 0.0)
    assert main(maintenance(inventory_dir, "--window-mode", "warn", "--json")) == EXIT_OK  # warn: nobody skipped
    assert "the gate will skip" not in capsys.readouterr().err


def test_ctrl_c_during_the_wait_exits_130_and_runs_nothing(
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "newyork", "losangeles", hostvars={"newyork": NEW_YORK})
    naps = clock.sleep

    def press_ctrl_c(seconds: float) -> None:
        naps(seconds)
        if clock.naps == 5:
            signal.raise_signal(signal.SIGINT)  # the run's handler takes it: no KeyboardInterrupt

    monkeypatch.setattr(windows, "sleep_for", press_ctrl_c)
    assert main(maintenance(inventory_dir, "--wait-for-window", "--json")) == EXIT_INTERRUPTED
    output = json.loads(capsys.readouterr().out)
    assert fake.calls == [] and clock.naps == 5
    assert (output["status"], output["interrupted"]) == ("stopped", "stopped while waiting for a maintenance window")
    assert {row["outcome"] for row in output["clinics"]} == {"not reached"}


def test_resume_can_wait_for_the_window_of_the_skipped_clinics(
    inventory_dir: Path,
    clinicops_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    clock: FakeClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "newyork", hostvars={"newyork": NEW_YORK})
    fake.outcomes["newyork"] = "skipped"
    assert main(maintenance(inventory_dir, "-q")) == EXIT_OK
    fake.outcomes.clear()
    assert main(["resume", "last", "--wait-for-window=6h", "--json"]) == EXIT_OK
    assert "waiting for the window of newyork" in capsys.readouterr().err
    assert clock.now == datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    assert json.loads((last_run(clinicops_home) / "report.json").read_text())["status"] == "ok"
