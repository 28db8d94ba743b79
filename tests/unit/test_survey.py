"""The fleet health survey: rows made by report.clinic_row for a health run, and the survey table."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from clinicops import report
from clinicops.runner import HostOutcome
from clinicops.survey import render_survey

RUN_ID = "20260101T000000Z-health-abc123"
REPORT_PATH = f"/var/lib/clinicops/runs/{RUN_ID}/report.md"


def healthy_report(**overrides: Any) -> dict[str, Any]:
    values = {
        "healthy": True,
        "summary": "healthy (6 checks)",
        "timezone": "Europe/Paris",
        "app_version": "2.0.0",
        "release": "20260101T000000Z-2.0.0",
        "database": "up",
        "rows": 64,
        "disk_free_bytes": 3 * 2**30 // 2,
    }
    return values | overrides


def with_report(outcome: HostOutcome, values: dict[str, Any]) -> HostOutcome:
    outcome.report = values
    return outcome


def row(outcome: HostOutcome, finished: bool = True) -> dict[str, Any]:
    return report.clinic_row(outcome.host, "all", 1, outcome, finished, "health")


def survey(*rows: dict[str, Any]) -> dict[str, Any]:
    clinics = list(rows)
    state = {
        "run_id": RUN_ID,
        "command": "health",
        "title": "clinic health",
        "clinics": clinics,
        "counts": report.summarize(clinics),
        "duration_s": 12.3,
        "report_path": REPORT_PATH,
    }
    state["exit_code"] = report.exit_code(state)
    state["status"] = report.status_of(state)
    return state


@pytest.fixture
def fleet() -> dict[str, Any]:
    return survey(
        row(with_report(HostOutcome("paris", ok=3), healthy_report())),
        row(
            with_report(
                HostOutcome("kinshasa", ok=3),
                healthy_report(
                    healthy=False,
                    summary="unhealthy: http app: HTTP 503 (expected 200)",
                    timezone="Africa/Kinshasa",
                    app_version="2.1.0-broken-health",
                ),
            )
        ),
        row(HostOutcome("sydney", unreachable=True, message="ssh: connect timed out")),
        row(HostOutcome("newyork", ok=1, failed=1, failed_task="Check", message="module crashed")),
    )


def by_clinic(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["clinic"]: item for item in state["clinics"]}


# -- the rows --------------------------------------------------------------------------------------


def test_rows_keep_the_order_of_the_run(fleet: dict[str, Any]) -> None:
    assert [item["clinic"] for item in fleet["clinics"]] == ["paris", "kinshasa", "sydney", "newyork"]


def test_row_outcomes(fleet: dict[str, Any]) -> None:
    outcomes = {name: item["outcome"] for name, item in by_clinic(fleet).items()}
    assert outcomes == {"paris": "healthy", "kinshasa": "unhealthy", "sydney": "unreachable", "newyork": "failed"}
    assert (fleet["status"], fleet["exit_code"]) == ("failed", 1)


def test_healthy_row_carries_the_report(fleet: dict[str, Any]) -> None:
    paris = by_clinic(fleet)["paris"]
    assert {key: paris[key] for key in report.SURVEY_KEYS} == {
        "timezone": "Europe/Paris",
        "version": "2.0.0",
        "release": "20260101T000000Z-2.0.0",
        "database": "up",
        "rows": 64,
        "disk_free_bytes": 3 * 2**30 // 2,
        "summary": "healthy (6 checks)",
    }
    assert paris["outcome"] == "healthy"


def test_row_without_report_uses_the_failure_message(fleet: dict[str, Any]) -> None:
    newyork = by_clinic(fleet)["newyork"]
    assert newyork["summary"] == "module crashed"
    assert newyork["database"] == "?"
    assert newyork["rows"] is None
    assert newyork["version"] == ""


def test_unreachable_wins_over_a_report() -> None:
    assert row(with_report(HostOutcome("paris", unreachable=True), healthy_report()))["outcome"] == "unreachable"


def test_a_health_run_killed_midway_is_aborted_even_with_a_report() -> None:
    assert row(with_report(HostOutcome("paris", ok=2), healthy_report()), finished=False)["outcome"] == "aborted"


def test_survey_columns_only_for_health() -> None:
    backup = report.clinic_row("paris", "all", 1, with_report(HostOutcome("paris", ok=1), healthy_report()), True, "x")
    assert backup["outcome"] == "ok"
    assert not set(report.SURVEY_KEYS) & set(backup)


# -- the table -------------------------------------------------------------------------------------


def render(state: dict[str, Any]) -> str:
    console = Console(record=True, width=200, color_system=None)
    render_survey(state, console)
    return console.export_text()


def test_render_shows_title_columns_and_footer(fleet: dict[str, Any]) -> None:
    text = render(fleet)
    assert f"clinic health — run {RUN_ID}" in text
    for column in ("clinic", "time zone", "app version", "database", "rows", "disk free", "status"):
        assert column in text
    assert f"1 failed, 1 healthy, 1 unhealthy, 1 unreachable — 12.3s — report: {REPORT_PATH}" in text
    assert f"clinicops resume {RUN_ID}" in text


def test_render_one_line_per_clinic(fleet: dict[str, Any]) -> None:
    lines = render(fleet).splitlines()

    def line_of(clinic: str) -> str:
        (line,) = [line for line in lines if f" {clinic} " in line]
        return line

    assert "Europe/Paris" in line_of("paris")
    assert "2.0.0" in line_of("paris")
    assert "1.5 GiB" in line_of("paris")
    assert "64" in line_of("paris")
    assert line_of("paris").rstrip(" │").endswith("healthy")
    assert "unhealthy: http app: HTTP 503 (expected 200)" in line_of("kinshasa")
    assert "unhealthy: unhealthy" not in line_of("kinshasa")  # the module's own prefix is not repeated
    assert "unreachable: ssh: connect timed out" in line_of("sydney")
    assert "failed: module crashed" in line_of("newyork")
    assert "?" in line_of("newyork")  # no disk figure


def test_render_prints_messages_literally() -> None:
    """Messages come from clinics: brackets in them are text, not rich markup."""
    message = "cannot read [/etc/clinic/app.env] [bold]as is[/bold]"
    assert message in render(survey(row(HostOutcome("paris", failed=1, message=message))))


def test_render_empty_survey() -> None:
    text = render(survey())
    assert "clinic health — run" in text
    assert "report: " in text
    assert "resume" not in text  # nothing failed


def test_render_missing_report_fields_are_blank_not_none() -> None:
    values = healthy_report(timezone=None, app_version=None, database=None)
    assert "None" not in render(survey(row(with_report(HostOutcome("paris", ok=1), values))))


def test_render_footer_prints_the_report_path_literally() -> None:
    state = survey() | {"report_path": "/srv/[ops]/runs/rid/report.md"}
    assert "report: /srv/[ops]/runs/rid/report.md" in render(state)
