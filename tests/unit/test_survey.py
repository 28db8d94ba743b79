"""The fleet health survey: rows from a run's per-clinic reports and their rendering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from clinicops.runner import HostOutcome, RunResult
from clinicops.survey import render_survey, survey_rows

RUN_DIR = Path("/var/lib/clinicops/runs/20260101T000000Z-health-abc123")


def healthy_report(**overrides: Any) -> dict[str, Any]:
    report = {
        "healthy": True,
        "summary": "healthy (6 checks)",
        "timezone": "Europe/Paris",
        "app_version": "2.0.0",
        "release": "20260101T000000Z-2.0.0",
        "database": "up",
        "rows": 64,
        "disk_free_bytes": 3 * 2**30 // 2,
    }
    return report | overrides


def run_result(hosts: dict[str, HostOutcome]) -> RunResult:
    return RunResult("20260101T000000Z-health-abc123", "failed", 2, 12.34, hosts, RUN_DIR)


@pytest.fixture
def fleet() -> RunResult:
    return run_result(
        {
            "paris": HostOutcome("paris", ok=3, report=healthy_report()),
            "kinshasa": HostOutcome(
                "kinshasa",
                ok=3,
                report=healthy_report(
                    healthy=False,
                    summary="unhealthy: http app: HTTP 503 (expected 200)",
                    timezone="Africa/Kinshasa",
                    app_version="2.1.0-broken-health",
                ),
            ),
            "sydney": HostOutcome("sydney", unreachable=True, message="ssh: connect timed out"),
            "newyork": HostOutcome("newyork", ok=1, failed=1, failed_task="Check", message="module crashed"),
        }
    )


def render(rows: list[dict[str, Any]], result: RunResult) -> str:
    console = Console(record=True, width=200, color_system=None)
    render_survey(rows, result, console)
    return console.export_text()


def test_rows_are_sorted_by_clinic(fleet: RunResult) -> None:
    assert [row["clinic"] for row in survey_rows(fleet)] == ["kinshasa", "newyork", "paris", "sydney"]


def test_row_outcomes(fleet: RunResult) -> None:
    outcomes = {row["clinic"]: row["outcome"] for row in survey_rows(fleet)}
    assert outcomes == {"paris": "healthy", "kinshasa": "unhealthy", "sydney": "unreachable", "newyork": "failed"}


def test_healthy_row_carries_the_report(fleet: RunResult) -> None:
    paris = next(row for row in survey_rows(fleet) if row["clinic"] == "paris")
    assert paris == {
        "clinic": "paris",
        "outcome": "healthy",
        "timezone": "Europe/Paris",
        "version": "2.0.0",
        "release": "20260101T000000Z-2.0.0",
        "database": "up",
        "rows": 64,
        "disk_free_bytes": 3 * 2**30 // 2,
        "summary": "healthy (6 checks)",
    }


def test_row_without_report_uses_the_failure_message(fleet: RunResult) -> None:
    newyork = next(row for row in survey_rows(fleet) if row["clinic"] == "newyork")
    assert newyork["summary"] == "module crashed"
    assert newyork["database"] == "?"
    assert newyork["rows"] is None
    assert newyork["version"] == ""


def test_unreachable_wins_over_a_report() -> None:
    result = run_result({"paris": HostOutcome("paris", unreachable=True, report=healthy_report())})
    assert survey_rows(result)[0]["outcome"] == "unreachable"


def test_render_shows_title_columns_and_footer(fleet: RunResult) -> None:
    text = render(survey_rows(fleet), fleet)
    assert "clinic health — run 20260101T000000Z-health-abc123" in text
    for column in ("clinic", "time zone", "app version", "database", "rows", "disk free", "status"):
        assert column in text
    assert f"report: {RUN_DIR}  (12.3s)" in text


def test_render_one_line_per_clinic(fleet: RunResult) -> None:
    lines = render(survey_rows(fleet), fleet).splitlines()

    def line_of(clinic: str) -> str:
        (line,) = [line for line in lines if f" {clinic} " in line]
        return line

    assert "Europe/Paris" in line_of("paris")
    assert "2.0.0" in line_of("paris")
    assert "1.5 GiB" in line_of("paris")
    assert "64" in line_of("paris")
    assert line_of("paris").rstrip(" │").endswith("healthy")
    assert "unhealthy: http app: HTTP 503 (expected 200)" in line_of("kinshasa")
    assert "unreachable: ssh: connect timed out" in line_of("sydney")
    assert "failed: module crashed" in line_of("newyork")
    assert "?" in line_of("newyork")  # no disk figure


def test_render_prints_messages_literally() -> None:
    """Messages come from clinics: brackets in them are text, not rich markup."""
    message = "cannot read [/etc/clinic/app.env] [bold]as is[/bold]"
    result = run_result({"paris": HostOutcome("paris", failed=1, message=message)})
    assert message in render(survey_rows(result), result)


def test_render_empty_survey() -> None:
    result = run_result({})
    text = render(survey_rows(result), result)
    assert "clinic health — run" in text
    assert "report: " in text


def test_render_missing_report_fields_are_blank_not_none() -> None:
    report = healthy_report(timezone=None, app_version=None, database=None)
    result = run_result({"paris": HostOutcome("paris", ok=1, report=report)})
    assert "None" not in render(survey_rows(result), result)


def test_render_footer_prints_the_run_dir_literally() -> None:
    result = RunResult("rid", "successful", 0, 1.0, {}, Path("/srv/[ops]/runs/rid"))
    assert "report: /srv/[ops]/runs/rid" in render([], result)
