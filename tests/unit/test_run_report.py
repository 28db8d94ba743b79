"""The per-clinic outcome table: clinics named at the start of a deploy but never reached are shown."""

from __future__ import annotations

from pathlib import Path

from clinicops.run_report import outcome_rows
from clinicops.runner import HostOutcome, RunResult


def host(name: str, failed: int = 0, report: dict | None = None) -> HostOutcome:
    outcome = HostOutcome(host=name, ok=3, failed=failed)
    outcome.report = report or {}
    if failed:
        outcome.failed_task = "Fail with the reason"
        outcome.message = "failed its health gate"
    return outcome


def test_a_canary_failure_shows_the_other_clinics_as_not_reached() -> None:
    result = RunResult(
        run_id="r1",
        status="failed",
        rc=2,
        duration=1.0,
        hosts={
            "kinshasa": host("kinshasa", failed=1, report={"release_id": "r-2.1.0", "deployed": True}),
            "lubumbashi": host("lubumbashi", report={"reached": False}),
            "paris": HostOutcome(host="paris", report={"reached": False}),  # no task ran there at all
            "vault": host("vault"),
        },
        run_dir=Path("/tmp/r1"),
    )
    rows = {row["clinic"]: row for row in outcome_rows(result)}
    assert rows["kinshasa"]["outcome"] == "failed" and rows["kinshasa"]["details"]["release_id"] == "r-2.1.0"
    assert rows["lubumbashi"]["outcome"] == "not reached" and rows["lubumbashi"]["details"] == {}
    assert rows["paris"]["outcome"] == "not reached"
    assert "vault" not in rows  # not a clinic of the run: it only took part in the run context
