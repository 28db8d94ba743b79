"""The incident record and the post-mortem draft: ids, severities, --since, the timeline from both audit trails."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clinicops import incident
from clinicops.cli import build_parser
from clinicops.errors import UsageError

NOW = datetime(2026, 11, 26, 10, 15, 0, tzinfo=UTC)


def test_incident_ids_sort_by_time_and_name_the_clinic() -> None:
    assert incident.incident_id("kinshasa", NOW) == "INC-20261126-101500-kinshasa"
    later = incident.incident_id("kinshasa", NOW + timedelta(seconds=1))
    assert later > incident.incident_id("kinshasa", NOW)
    with pytest.raises(UsageError):
        incident.incident_id("../etc", NOW)


@pytest.mark.parametrize(("given", "level"), [("P1", "P1"), ("p4", "P4"), (None, None)])
def test_severity_levels_are_the_runbooks(given: str | None, level: str | None) -> None:
    assert incident.check_severity(given) == level


def test_an_unknown_severity_is_refused() -> None:
    with pytest.raises(UsageError, match="P1, P2, P3, P4"):
        incident.check_severity("P5")


def test_severity_defaults_from_health() -> None:
    assert incident.default_severity("unhealthy") == "P2"
    assert incident.default_severity(None) == "P2"  # not reached: no proof it is up
    assert incident.default_severity("healthy") == "P3"
    assert set(incident.SEVERITIES) == {"P1", "P2", "P3", "P4"}
    assert "patient data" in incident.SEVERITIES["P1"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("2h", NOW - timedelta(hours=2)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2026-11-26T09:40:00Z", datetime(2026, 11, 26, 9, 40, tzinfo=UTC)),
        ("2026-11-26T10:40:00+01:00", datetime(2026, 11, 26, 9, 40, tzinfo=UTC)),
    ],
)
def test_since_is_a_time_or_a_duration_ago(text: str | None, expected: datetime | None) -> None:
    assert incident.parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-11-26T09:40:00", "2026-11-27T00:00:00Z", "5"])
def test_a_bad_since_is_refused(text: str) -> None:
    with pytest.raises(UsageError):
        incident.parse_since(text, NOW)


def test_the_journal_starts_at_the_incident_or_two_hours_back() -> None:
    assert incident.journal_since(None) == "-2h"
    assert incident.journal_since(NOW) == "2026-11-26 10:15:00 UTC"


CLINIC_RECORDS = [
    {"procedure": "deploy", "outcome": "started", "run_id": "r1", "who": "ops", "at": "2026-11-26T09:00:00Z"},
    {
        "procedure": "deploy",
        "outcome": "failed",
        "run_id": "r1",
        "who": "ops",
        "at": "2026-11-26T09:05:00Z",
        "details": {"release_id": "20261126T0900Z-2.1.0", "failure": "health gate"},
    },
    {"procedure": "backup", "outcome": "ok", "run_id": "r0", "who": "cron", "at": "2026-11-20T02:00:00Z"},
    {"no": "time"},
]
CONTROLLER_RECORDS = [
    {
        "run_id": "r1",
        "who": {"user": "ops", "controller": "c1"},
        "procedure": "deploy",
        "clinic": "kinshasa",
        "started": "2026-11-26T08:59:00Z",
        "ended": "2026-11-26T09:06:00Z",
        "outcome": "failed",
        "failed_tasks": ["Gate on health"],
        "ids": {"release_id": "20261126T0900Z-2.1.0"},
    },
    {"run_id": "r9", "procedure": "deploy", "clinic": "paris", "ended": "2026-11-26T09:06:00Z", "outcome": "ok"},
]


def test_the_timeline_merges_both_trails_in_the_window_oldest_first() -> None:
    entries = incident.clinic_entries(CLINIC_RECORDS) + incident.controller_entries(CONTROLLER_RECORDS, "kinshasa")
    kept = incident.timeline(entries, NOW - timedelta(hours=24), NOW)
    assert [(entry.source, entry.at.strftime("%H:%M")) for entry in kept] == [
        ("clinic", "09:00"),
        ("clinic", "09:05"),
        ("controller", "09:06"),
    ]
    assert kept[1].text == "deploy failed (run r1, by ops) failure=health gate release_id=20261126T0900Z-2.1.0"
    assert "failed: Gate on health" in kept[2].text
    assert all("paris" not in entry.text for entry in kept)  # another clinic's record stays out


def test_the_postmortem_draft_has_every_section_and_the_timeline(tmp_path: Path) -> None:
    record = incident.Incident(
        id="INC-20261126-101500-kinshasa",
        clinic="kinshasa",
        severity="P2",
        severity_source="health",
        opened_at="2026-11-26T10:15:00Z",
        timeline_start="2026-11-26T09:00:00Z",
        window_start="2026-11-26T09:00:00Z",
        opened_by="ops",
        controller="c1",
        health_state="unhealthy",
        health_summary="unhealthy: http app: HTTP 503",
        bundle=str(tmp_path / "bundle.tar.gz"),
        bundle_files=11,
        redacted=3,
    )
    entries = incident.timeline(incident.clinic_entries(CLINIC_RECORDS), datetime(2026, 11, 26, 9, 0, tzinfo=UTC), NOW)
    record_path, draft_path = incident.write_incident(tmp_path / "INC", record, entries)
    draft = draft_path.read_text()
    for section in ("## Summary", "## Impact", "## Timeline", "## Root cause", "## Resolution", "## Action items"):
        assert section in draft
    assert "P2 — a major feature down" in draft
    assert "| 2026-11-26T09:05:00Z | clinic | deploy failed" in draft
    assert draft.index("timeline start") < draft.index("incident opened")
    saved = json.loads(record_path.read_text())
    assert saved["severity"] == "P2" and saved["timeline_start"] == "2026-11-26T09:00:00Z"
    assert len(saved["timeline"]) == 2 and saved["severity_definitions"]["P4"] == "minor issue"
    assert record_path.stat().st_mode & 0o777 == 0o600


def test_a_draft_without_records_or_bundle_says_so(tmp_path: Path) -> None:
    record = incident.Incident(
        id="INC-1",
        clinic="goma",
        severity="P1",
        severity_source="operator",
        opened_at="2026-11-26T10:15:00Z",
        timeline_start="2026-11-26T10:15:00Z",
        window_start="2026-11-25T10:15:00Z",
        opened_by="ops",
        controller="c1",
        collection="unreachable: ssh timed out",
    )
    draft = incident.render_postmortem(record, [])
    assert "no bundle: unreachable: ssh timed out" in draft
    assert "No audit record of the clinic in the window" in draft


def test_the_clinic_records_are_read_from_the_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.tar.gz"
    lines = "partial line\n" + "".join(json.dumps(record) + "\n" for record in CLINIC_RECORDS[:2])
    with tarfile.open(bundle, "w:gz") as archive:
        data = lines.encode()
        info = tarfile.TarInfo("INC-1/audit.jsonl")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    assert [record["outcome"] for record in incident.bundle_audit_records(bundle)] == ["started", "failed"]
    assert incident.bundle_audit_records(tmp_path / "none.tar.gz") == []


def test_the_diagnose_command_takes_one_clinic_and_its_options() -> None:
    args = build_parser().parse_args(["diagnose", "kinshasa", "--severity", "P1", "--since", "2h"])
    assert (args.clinic, args.severity, args.since) == ("kinshasa", "P1", "2h")
    args = build_parser().parse_args(["isolation-check", "--limit", "kinshasa"])
    assert args.command == "isolation-check"


def test_diagnose_refuses_a_bad_severity_before_reading_anything(capsys) -> None:
    from clinicops.cli import main

    assert main(["diagnose", "kinshasa", "--severity", "P9", "-i", "/nonexistent"]) == 2
    assert "P1, P2, P3, P4" in capsys.readouterr().err
