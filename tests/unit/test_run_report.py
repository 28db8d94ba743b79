"""A run's report: per-clinic rows, the exit code and status, report.json/report.md, and the printed table."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from clinicops import report
from clinicops.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, UsageError
from clinicops.run_report import render_outcomes
from clinicops.runner import HostOutcome

RUN_ID = "20260101T000000Z-deploy-abc123"


def host(name: str, failed: int = 0, report_: dict[str, Any] | None = None, **fields: Any) -> HostOutcome:
    outcome = HostOutcome(host=name, ok=3, changed=1, failed=failed, first_seen=10.0, last_seen=52.36, **fields)
    outcome.report = report_ or {}
    if failed:
        outcome.failed_task = "Fail with the reason"
        outcome.message = "failed its health gate"
    return outcome


# -- clinic_row ------------------------------------------------------------------------------------


def test_row_of_a_clinic_that_succeeded() -> None:
    details = {"release_id": "r-2.1.0", "deployed": True, "previous": "", "backup": {}, "internal": "x", "rows": 0}
    row = report.clinic_row("kinshasa", "canary", 1, host("kinshasa", report_=details), True, "deploy")
    assert row == {
        "clinic": "kinshasa",
        "wave": "canary",
        "attempt": 1,
        "outcome": "ok",
        "duration_s": 42.4,
        "ok": 3,
        "changed": 1,
        "failed": 0,
        "failed_task": "",
        "message": "",
        # detail keys only, in DETAIL_KEYS order, empty values left out (0 is a value)
        "details": {"release_id": "r-2.1.0", "deployed": True, "rows": 0},
    }
    assert list(row["details"]) == ["release_id", "deployed", "rows"]


def test_row_of_a_failure_carries_task_and_message() -> None:
    row = report.clinic_row("kinshasa", "canary", 2, host("kinshasa", failed=1), True, "deploy")
    assert (row["outcome"], row["attempt"], row["failed"]) == ("failed", 2, 1)
    assert (row["failed_task"], row["message"]) == ("Fail with the reason", "failed its health gate")


@pytest.mark.parametrize(
    ("outcome", "finished", "expected"),
    [
        (HostOutcome("paris", ok=2), False, "aborted"),  # killed mid-play: did not complete
        (HostOutcome("paris"), False, "aborted"),
        (None, False, "aborted"),
        (HostOutcome("paris", ok=2, failed=1), False, "failed"),  # a failure stays a failure
        (HostOutcome("paris", unreachable=True), False, "unreachable"),
        (HostOutcome("paris"), True, "not run"),
        (None, True, "not run"),
        (HostOutcome("paris", ok=1, failed=1, refused=True), True, "refused"),
    ],
)
def test_row_outcome(outcome: HostOutcome | None, finished: bool, expected: str) -> None:
    assert report.clinic_row("paris", "wave 2", 1, outcome, finished, "backup")["outcome"] == expected


def test_a_clinic_with_no_event_has_an_empty_row() -> None:
    row = report.clinic_row("paris", "wave 2", 1, None, True, "backup")
    assert (row["duration_s"], row["ok"], row["details"], row["message"]) == (0.0, 0, {}, "")


def test_not_reached() -> None:
    row = report.not_reached("sydney", "wave 3", 1)
    assert row["outcome"] == "not reached"
    assert (row["clinic"], row["wave"], row["attempt"]) == ("sydney", "wave 3", 1)
    assert "timezone" not in row  # no survey columns outside a health run


# -- exit code and status --------------------------------------------------------------------------


def state(*outcomes: str, interrupted: str | None = None) -> dict[str, Any]:
    clinics = [{"clinic": f"c{number}", "outcome": outcome} for number, outcome in enumerate(outcomes)]
    return {"clinics": clinics} | ({"interrupted": interrupted} if interrupted else {})


@pytest.mark.parametrize(
    ("given", "code", "status"),
    [
        (state("ok", "ok"), EXIT_OK, "ok"),
        (state("healthy", "ok"), EXIT_OK, "ok"),
        (state(), EXIT_OK, "ok"),
        (state("ok", "failed", "not reached"), EXIT_FAILED, "failed"),
        (state("unhealthy"), EXIT_FAILED, "failed"),
        (state("unreachable", "refused"), EXIT_FAILED, "failed"),  # a failure wins over a refusal
        (state("not run"), EXIT_FAILED, "failed"),
        (state("refused", "not reached"), EXIT_REFUSED, "refused"),
        (state("ok", "not reached", interrupted="stopped after the wave"), EXIT_INTERRUPTED, "stopped"),
        (state("ok", "not reached", interrupted="stopped at the wave pause"), EXIT_INTERRUPTED, "stopped"),
        (state("ok", "ok", interrupted="stopped after the wave"), EXIT_OK, "ok"),  # Ctrl-C in the last wave
        (state("aborted", "not reached", interrupted="aborted"), EXIT_FAILED, "aborted"),
        (state("failed", "not reached", interrupted="stopped after the wave"), EXIT_FAILED, "failed"),
        (state("ok", "not reached"), EXIT_FAILED, "failed"),
        # skipped by a closed maintenance window: the expected, safe outcome, but said in the status
        (state("ok", "skipped"), EXIT_OK, "partial"),
        (state("healthy", "skipped", "ok"), EXIT_OK, "partial"),
        (state("skipped", "skipped"), EXIT_OK, "skipped"),
        (state("skipped", "failed"), EXIT_FAILED, "failed"),
        (state("skipped", "refused"), EXIT_REFUSED, "refused"),
        (state("ok", "skipped", "not reached", interrupted="stopped after the wave"), EXIT_INTERRUPTED, "stopped"),
        (state("skipped", "not reached"), EXIT_FAILED, "failed"),  # not reached without a stop: a failed wave
    ],
)
def test_exit_code_and_status(given: dict[str, Any], code: int, status: str) -> None:
    assert report.exit_code(given) == code
    assert report.status_of(given) == status


@pytest.mark.parametrize(
    ("outcomes", "status"),
    [
        (["ok", "healthy"], "ok"),
        (["ok", "skipped"], "partial"),
        (["skipped"], "skipped"),
        (["skipped", "failed"], "failed"),
        (["ok", "unreachable"], "failed"),
    ],
)
def test_group_status_of_a_wave(outcomes: list[str], status: str) -> None:
    assert report.group_status(outcomes) == status


def test_counts_text_says_the_skipped_clinics() -> None:
    assert report.counts_text({"skipped": 1, "ok": 2}) == "2 ok, 1 skipped"
    assert report.counts_text({"skipped": 1, "ok": 2, "failed": 1}) == "1 failed, 2 ok, 1 skipped"


def test_summarize_counts_outcomes() -> None:
    assert report.summarize(state("ok", "failed", "ok", "not reached")["clinics"]) == {
        "ok": 2,
        "failed": 1,
        "not reached": 1,
    }


# -- report.json and report.md ---------------------------------------------------------------------


def full_report(*rows: dict[str, Any], status: str = "failed", exit_code: int = EXIT_FAILED) -> dict[str, Any]:
    clinics = list(rows)
    return {
        "run_id": RUN_ID,
        "command": "deploy",
        "title": "deploy 2.1.0 (release r-2.1.0)",
        "status": status,
        "exit_code": exit_code,
        "started": "2026-01-01T00:00:00Z",
        "ended": "2026-01-01T00:05:00Z",
        "duration_s": 300.2,
        "user": "operator",
        "controller": "ops-1",
        "inventory": "/srv/inventory",
        "limit": "region_drc",
        "check": True,
        "options": {"deploy_version": "2.1.0"},
        "report_path": f"/srv/runs/{RUN_ID}/report.md",
        "attempts": [
            {
                "attempt": 1,
                "kind": "run",
                "started": "2026-01-01T00:00:00Z",
                "waves": [
                    {"index": 1, "name": "canary", "hosts": ["kinshasa"], "status": "failed"},
                    {"index": 2, "name": "wave 2", "hosts": ["goma", "gombe"], "status": "not started"},
                ],
            }
        ],
        "clinics": clinics,
        "counts": report.summarize(clinics),
    }


def failed_report() -> dict[str, Any]:
    failed = host("kinshasa", failed=1, report_={"release_id": "r-2.1.0"})
    failed.message = "HTTP 503 | retry\nlater"
    return full_report(
        report.clinic_row("kinshasa", "canary", 1, failed, True, "deploy"),
        report.not_reached("goma", "wave 2", 1),
        report.not_reached("gombe", "wave 2", 1),
    )


def test_markdown_says_what_ran_and_how_far_it_got() -> None:
    text = report.markdown(failed_report())
    lines = text.splitlines()
    assert lines[0] == f"# clinicops deploy — run {RUN_ID}"
    for line in (
        "- status: **failed** (exit 1)",
        "- started: 2026-01-01T00:00:00Z; ended: 2026-01-01T00:05:00Z; duration: 300.2 s",
        "- by: operator on ops-1",
        "- inventory: `/srv/inventory`",
        "- limit: `region_drc`",
        "- dry run (--check): nothing was changed",
        "- deploy_version: `2.1.0`",
        "Clinics: 1 failed, 2 not reached",
        "## Attempt 1 (run, started 2026-01-01T00:00:00Z)",
        "| 1. canary | kinshasa | failed |",
        "| 2. wave 2 | goma, gombe | not started |",
        "| kinshasa | failed | canary | 1 | 42.4 s | release_id=r-2.1.0 | "
        "Fail with the reason: HTTP 503 \\| retry later |",  # a pipe or newline never breaks the table
        "| goma | not reached | wave 2 | 1 | 0.0 s |  |  |",
        f"Resume the clinics that did not finish: `clinicops resume {RUN_ID}`",
    ):
        assert line in lines, line


def test_markdown_of_a_good_run_has_no_resume_hint() -> None:
    row = report.clinic_row("kinshasa", "all", 1, host("kinshasa"), True, "deploy")
    text = report.markdown(full_report(row, status="ok", exit_code=EXIT_OK) | {"limit": None, "check": False})
    assert "clinicops resume" not in text
    assert "- limit:" not in text and "dry run" not in text
    assert "- status: **ok** (exit 0)" in text


def test_markdown_of_a_health_run_shows_the_summary() -> None:
    healthy = host("paris", report_={"healthy": True, "summary": "healthy (6 checks)"})
    row = report.clinic_row("paris", "all", 1, healthy, True, "health")
    text = report.markdown(full_report(row, status="ok", exit_code=EXIT_OK))
    assert "| paris | healthy | all | 1 | 42.4 s | healthy (6 checks) |  |" in text


def test_save_and_load(tmp_path: Path) -> None:
    saved = failed_report()
    report.save(tmp_path, saved)
    assert report.load(tmp_path) == saved
    assert (tmp_path / report.REPORT_MD).read_text() == report.markdown(saved) + "\n"
    for name in (report.REPORT_JSON, report.REPORT_MD):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.json", "report.md"]  # no scratch left


def test_load_of_a_missing_or_broken_report_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="has no report"):
        report.load(tmp_path)
    (tmp_path / report.REPORT_JSON).write_text("{half a rep")
    with pytest.raises(UsageError, match="is not JSON"):
        report.load(tmp_path)


# -- skipped clinics and the maintenance report -----------------------------------------------------

SKIP = {
    "reached": False,
    "outcome": "skipped",
    "reason": "excluded: Christmas (12-24..12-26)",
    "next_opening": "2026-12-27T02:00:00+01:00",
}
MAINTAINED = {
    "reached": True,
    "window": "weekly",
    "window_state": "open",
    "window_end": "2026-11-29T04:00:00+01:00",
    "elapsed_s": 812.4,
    "time_left_s": 4320,
    "overrun": False,
    "durations": {"snapshot": 2.4, "backup": 40.6, "upkeep": 95.0},
    "upkeep": {"vacuumed": 4, "reindexed": 2, "skipped": 0, "terminated": 0},
    "packages": {"upgraded": ["openssl", "libssl3"], "held_back": []},
    "restarted": ["nginx"],
    "reboot_required": False,
    "backup": "1a2b3c4d",
    "maintenance_page": "off",
}


def skipped_row(clinic: str = "lubumbashi") -> dict[str, Any]:
    gate = HostOutcome(host=clinic, ok=2, first_seen=10.0, last_seen=10.5)
    gate.report = dict(SKIP)
    return report.clinic_row(clinic, "wave 2", 1, gate, True, "maintenance")


def maintenance_report(*rows: dict[str, Any], status: str = "partial") -> dict[str, Any]:
    return full_report(*rows, status=status, exit_code=EXIT_OK) | {
        "command": "maintenance",
        "title": "maintenance",
        "check": False,
        "options": {"maintenance_window_os_updates": "security"},
    }


def test_row_of_a_clinic_the_gate_skipped() -> None:
    row = skipped_row()
    assert (row["outcome"], row["failed"], row["failed_task"]) == ("skipped", 0, "")
    assert row["message"] == "excluded: Christmas (12-24..12-26); next opening 2026-12-27T02:00:00+01:00"
    assert row["details"] == {"next_opening": "2026-12-27T02:00:00+01:00"}


def test_row_of_a_maintained_clinic_keeps_what_the_play_reported() -> None:
    row = report.clinic_row("kinshasa", "canary", 1, host("kinshasa", report_=MAINTAINED), True, "maintenance")
    assert row["outcome"] == "ok"
    assert row["details"] == {
        "backup": "1a2b3c4d",
        "window": "weekly",
        "window_state": "open",
        "window_end": "2026-11-29T04:00:00+01:00",
        "time_left_s": 4320,
        "overrun": False,
        "durations": {"snapshot": 2.4, "backup": 40.6, "upkeep": 95.0},
        "upkeep": {"vacuumed": 4, "reindexed": 2, "skipped": 0, "terminated": 0},
        "packages": {"upgraded": ["openssl", "libssl3"], "held_back": []},
        "restarted": ["nginx"],
        "reboot_required": False,
        "maintenance_page": "off",
    }


@pytest.mark.parametrize(
    ("details", "outcome", "text"),
    [
        ({"window": "weekly", "time_left_s": 4320, "overrun": False}, "ok", "weekly: 1 h 12 min left"),
        ({"window": "weekly", "time_left_s": -300, "overrun": True}, "failed", "weekly: OVERRUN by 5 min"),
        ({"window": "monthly", "time_left_s": 0, "overrun": False}, "ok", "monthly: 0 s left"),
        ({"time_left_s": 90}, "ok", "1 min left"),
        ({"window": "weekly", "time_left_s": None}, "ok", "weekly"),  # the clinic had no window (unrestricted)
        ({}, "ok", ""),
        ({"window": None, "window_state": "unrestricted", "time_left_s": None}, "ok", "none configured"),
        ({"window": None, "window_state": "override", "time_left_s": None}, "ok", "override, outside any window"),
        ({"window": "weekly", "window_state": "override", "time_left_s": 600}, "ok", "weekly: 10 min left"),
        ({"next_opening": "2026-12-27T02:00:00+01:00"}, "skipped", "opens 2026-12-27T02:00:00+01:00"),
        ({}, "skipped", "no next opening"),
    ],
)
def test_window_column(details: dict[str, Any], outcome: str, text: str) -> None:
    assert report.window_text({"outcome": outcome, "details": details}) == text


def test_details_are_brief_and_leave_the_window_to_its_column() -> None:
    row = report.clinic_row("kinshasa", "canary", 1, host("kinshasa", report_=MAINTAINED), True, "maintenance")
    assert report.details_text(row, window_column=True) == (
        "backup=1a2b3c4d durations=snapshot:2s,backup:41s,upkeep:95s "
        "upkeep=vacuumed:4,reindexed:2,skipped:0,terminated:0 packages=upgraded:2,held_back:0 restarted=nginx "
        "reboot_required=False maintenance_page=off"
    )
    assert "time_left_s=4320" in report.details_text(row, window_column=False)


def test_markdown_of_a_maintenance_run_with_a_skipped_clinic() -> None:
    maintained = report.clinic_row("kinshasa", "canary", 1, host("kinshasa", report_=MAINTAINED), True, "maintenance")
    lines = report.markdown(maintenance_report(maintained, skipped_row())).splitlines()
    assert "- status: **partial** (exit 0)" in lines
    assert "| clinic | outcome | wave | attempt | duration | window | details | failure |" in lines
    (kinshasa,) = [line for line in lines if line.startswith("| kinshasa |")]
    assert kinshasa.startswith("| kinshasa | ok | canary | 1 | 42.4 s | weekly: 1 h 12 min left | backup=1a2b3c4d ")
    assert "| lubumbashi | skipped | wave 2 | 1 | 0.5 s | opens 2026-12-27T02:00:00+01:00 |  | excluded: Christmas" in (
        "\n".join(lines)
    )
    assert (
        "Skipped by their maintenance window (nothing was done on them): "
        "lubumbashi (opens 2026-12-27T02:00:00+01:00)." in lines
    )
    assert f"Run the skipped clinics once their window opens: `clinicops resume {RUN_ID} --wait-for-window`" in lines


def test_render_outcomes_of_a_maintenance_run() -> None:
    overran = report.clinic_row(
        "kinshasa", "canary", 1, host("kinshasa", report_=MAINTAINED | {"time_left_s": -420, "overrun": True}), True,
        "maintenance",
    )  # fmt: skip
    text = printed(maintenance_report(overran, skipped_row()))
    assert "maintenance — run " + RUN_ID + " — partial" in text
    assert "window" in text.splitlines()[2]  # the header row has a window column
    (kinshasa,) = [line for line in text.splitlines() if "│ kinshasa " in line]
    assert "weekly: OVERRUN by 7 min" in kinshasa and "time_left_s" not in kinshasa
    (lubumbashi,) = [line for line in text.splitlines() if "│ lubumbashi " in line]
    assert "skipped" in lubumbashi and "opens 2026-12-27T02:00:00+01:00" in lubumbashi
    assert "excluded: Christmas" in lubumbashi
    assert "skipped by their maintenance window (nothing was done on them): lubumbashi" in text
    assert f"to run the skipped clinics once their window opens: clinicops resume {RUN_ID} --wait-for-window" in text


def test_a_run_judged_at_a_fixed_instant_is_resumed_without_waiting() -> None:
    drill = maintenance_report(skipped_row()) | {"options": {"clinicops_now": "2026-11-29T02:30:00+01:00"}}
    assert report.resume_command(drill) == f"clinicops resume {RUN_ID}"  # --wait-for-window is refused with --now
    assert report.resume_command(maintenance_report(skipped_row())) == f"clinicops resume {RUN_ID} --wait-for-window"
    done = report.clinic_row("kinshasa", "all", 1, host("kinshasa"), True, "maintenance")
    assert report.resume_command(maintenance_report(done, status="ok")) == ""


def test_other_runs_have_no_window_column() -> None:
    row = report.clinic_row("kinshasa", "all", 1, host("kinshasa"), True, "deploy")
    assert "window" not in printed(full_report(row, status="ok", exit_code=EXIT_OK)).splitlines()[2]
    assert "| window |" not in report.markdown(full_report(row, status="ok", exit_code=EXIT_OK))


# -- finding and listing runs ----------------------------------------------------------------------

RUN_IDS = ("20260101T000000Z-deploy-aaaaaa", "20260102T000000Z-backup-bbbbbb", "20260103T000000Z-deploy-cccccc")


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    for number, run_id in enumerate(RUN_IDS):
        (runs / run_id).mkdir(parents=True)
        saved = full_report(status="ok", exit_code=EXIT_OK) | {"run_id": run_id, "command": run_id.split("-")[1]}
        saved["attempts"] = saved["attempts"] * (number + 1)
        report.save(runs / run_id, saved)
    (runs / "20260104T000000Z-health-dddddd").mkdir()  # started, killed before its first report
    return runs


@pytest.mark.parametrize(
    ("ref", "found"),
    [
        (RUN_IDS[1], RUN_IDS[1]),
        ("last", RUN_IDS[2]),  # the newest run with a report
        ("20260101", RUN_IDS[0]),
        ("cccccc", RUN_IDS[2]),
        ("backup-bbbbbb", RUN_IDS[1]),
    ],
)
def test_find_run(runs: Path, ref: str, found: str) -> None:
    assert report.find_run(runs, ref) == runs / found


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("2026", "matches 3 runs"),
        ("deploy", "no run 'deploy'"),  # neither a prefix nor a suffix
        ("20260104T000000Z-health-dddddd", "no run"),  # no report
        ("../runs", "is not a run id"),
        ("..", "is not a run id"),
    ],
)
def test_find_run_errors(runs: Path, ref: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        report.find_run(runs, ref)


def test_find_run_without_runs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no runs yet"):
        report.find_run(tmp_path / "runs", "last")
    (tmp_path / "runs").mkdir()
    with pytest.raises(UsageError, match="no runs yet"):
        report.find_run(tmp_path / "runs", "last")


def test_list_runs_newest_first(runs: Path) -> None:
    rows = report.list_runs(runs, 2)
    assert [row["run_id"] for row in rows] == [RUN_IDS[2], RUN_IDS[1]]  # a directory without a report is no run
    assert (rows[0]["command"], rows[0]["status"], rows[0]["attempts"]) == ("deploy", "ok", 3)
    assert rows[0]["started"] == "2026-01-01T00:00:00Z" and rows[0]["duration_s"] == 300.2
    assert report.list_runs(runs, 0) == []
    assert report.list_runs(runs.parent / "absent", 5) == []


def test_list_runs_shows_an_unreadable_report(runs: Path) -> None:
    (runs / RUN_IDS[2] / report.REPORT_JSON).write_text("{trunc")
    rows = report.list_runs(runs, 5)
    assert [row["run_id"] for row in rows] == [RUN_IDS[2], RUN_IDS[1], RUN_IDS[0]]
    assert (rows[0]["command"], rows[0]["status"]) == ("?", "unreadable report")


# -- the printed table -----------------------------------------------------------------------------


def printed(given: dict[str, Any]) -> str:
    console = Console(record=True, width=200, color_system=None)
    render_outcomes(given, console)
    return console.export_text()


def test_render_outcomes_one_row_per_clinic_and_the_resume_hint() -> None:
    text = printed(failed_report())
    assert f"deploy 2.1.0 (release r-2.1.0) — run {RUN_ID} — failed" in text
    for column in ("clinic", "outcome", "wave", "duration", "details", "failure"):
        assert column in text
    (kinshasa,) = [line for line in text.splitlines() if "│ kinshasa " in line]
    assert "failed" in kinshasa and "canary" in kinshasa and "42s" in kinshasa
    assert "release_id=r-2.1.0" in kinshasa and "Fail with the reason: HTTP 503 | retry" in kinshasa
    assert sum("│ not reached" in line for line in text.splitlines()) == 2
    assert f"1 failed, 2 not reached — 300.2s — report: /srv/runs/{RUN_ID}/report.md" in text
    assert f"to re-run the clinics that did not finish: clinicops resume {RUN_ID}" in text


def test_render_outcomes_of_an_unhealthy_survey_offers_to_check_again_not_to_finish() -> None:
    sick = report.clinic_row("kinshasa", "all", 1, host("kinshasa", report_={"healthy": False}), True, "health")
    well = report.clinic_row("goma", "all", 1, host("goma", report_={"healthy": True}), True, "health")
    assert (sick["outcome"], well["outcome"]) == ("unhealthy", "healthy")
    text = printed(full_report(sick, well))
    assert f"to check the unhealthy clinics again: clinicops resume {RUN_ID}" in text
    assert "did not finish" not in text


def test_render_outcomes_of_a_good_run_prints_no_resume_hint() -> None:
    row = report.clinic_row("kinshasa", "all", 1, host("kinshasa"), True, "deploy")
    text = printed(full_report(row, status="ok", exit_code=EXIT_OK))
    assert "— ok" in text
    assert "resume" not in text


def test_render_outcomes_prints_what_clinics_said_literally() -> None:
    failed = host("paris", failed=1)
    failed.message = "cannot read [/etc/clinic/app.env] [bold]as is[/bold]"
    text = printed(full_report(report.clinic_row("paris", "[canary]", 1, failed, True, "deploy")))
    assert "[/etc/clinic/app.env] [bold]as is[/bold]" in text
    assert "[canary]" in text


def test_a_report_survives_json() -> None:
    given = failed_report()
    assert json.loads(json.dumps(given)) == given  # nothing but JSON types in a report
