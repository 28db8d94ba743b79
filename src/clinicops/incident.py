"""An incident on the controller: its record (``incident.json``) and a post-mortem draft (``postmortem.md``).

``clinicops diagnose CLINIC`` names the incident (``INC-YYYYMMDD-HHMMSS-<clinic>``) before it runs
``playbooks/diagnostics.yml``, which fetches the clinic's redacted bundle into
``$CLINICOPS_HOME/incidents/<incident id>/bundle.tar.gz``. Then this module writes, beside it:

- ``incident.json``: the id, the clinic, the severity (P1-P4, the runbooks' definitions), who opened
  it and when, the timeline's start, the clinic's health when the bundle was taken, the bundle;
- ``postmortem.md``: Summary, Impact, Timeline, Root cause, Resolution, Action items; the timeline
  pre-filled from the clinic's own audit records (from the bundle) and the controller's audit trail
  records of that clinic, inside the incident's window.

Nothing here talks to a clinic; audit records hold names, ids and times only, never secrets.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clinicops.errors import UsageError
from clinicops.files import write_private

INCIDENT_JSON = "incident.json"
POSTMORTEM_MD = "postmortem.md"
BUNDLE = "bundle.tar.gz"

# The runbooks' severity levels, worded as the operator hears them.
SEVERITIES: dict[str, str] = {
    "P1": "clinic down or patient data at risk",
    "P2": "a major feature down",
    "P3": "degraded service",
    "P4": "minor issue",
}
# Without --since, the timeline looks back this far for the audit records it pre-fills.
DEFAULT_LOOKBACK = timedelta(hours=24)
# Audit records in a post-mortem's timeline, at most (the newest are kept).
MAX_TIMELINE = 200
CLINIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def incident_id(clinic: str, opened: datetime) -> str:
    """``INC-20261126-101500-kinshasa``: sortable, and names the clinic."""
    if not CLINIC_NAME.match(clinic):
        raise UsageError(f"clinic {clinic!r} cannot name an incident (letters, digits, '.', '_', '-'); nothing was run")
    return f"INC-{opened.astimezone(UTC):%Y%m%d-%H%M%S}-{clinic}"


def check_severity(severity: str | None) -> str | None:
    if severity is None:
        return None
    level = severity.strip().upper()
    if level not in SEVERITIES:
        raise UsageError(f"--severity {severity!r}: give one of {', '.join(SEVERITIES)}; nothing was run")
    return level


def default_severity(health_state: str | None) -> str:
    """Without --severity: an unhealthy (or unreached) clinic is P2, a healthy one P3."""
    return "P3" if health_state == "healthy" else "P2"


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """``--since``: an ISO 8601 time with an offset, or a duration ago (``2h``, ``90m``, ``1d``)."""
    if not text:
        return None
    duration = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if duration:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[duration.group(2)]
        return now - timedelta(**{unit: int(duration.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise UsageError(
            f"--since {text!r} is neither an ISO 8601 time (2026-11-26T09:40:00Z) nor a duration ago (2h, 90m); "
            "nothing was run"
        ) from exc
    if moment.tzinfo is None:
        raise UsageError(f"--since {text!r} needs a UTC offset (e.g. 2026-11-26T09:40:00Z); nothing was run")
    if moment > now:
        raise UsageError(f"--since {text!r} is in the future; nothing was run")
    return moment.astimezone(UTC)


def journal_since(since: datetime | None) -> str:
    """The ``journalctl --since`` of the bundle: from the incident's start, else the last 2 hours."""
    return f"{since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if since else "-2h"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    source: str  # "clinic" (its own audit trail) or "controller" (the controller's trail)
    text: str


def _who(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("awx_user_name") or value.get("user") or "?")
    return str(value or "?")


def _ids(values: Any) -> str:
    if not isinstance(values, Mapping):
        return ""
    return " ".join(f"{key}={value}" for key, value in sorted(values.items()) if value not in (None, "", [], {}))


def clinic_entries(records: Iterable[Mapping[str, Any]]) -> list[TimelineEntry]:
    """Entries from the clinic's own audit trail (``audit_record``: procedure, outcome, who, details)."""
    entries = []
    for record in records:
        at = parse_time(record.get("at"))
        if at is None:
            continue
        text = f"{record.get('procedure', '?')} {record.get('outcome', '?')} (run {record.get('run_id', '?')}, "
        text += f"by {_who(record.get('who'))})"
        ids = _ids(record.get("details"))
        entries.append(TimelineEntry(at, "clinic", f"{text} {ids}".rstrip()))
    return entries


def controller_entries(records: Iterable[Mapping[str, Any]], clinic: str) -> list[TimelineEntry]:
    """Entries from the controller's trail (one record per clinic and run, from the audit callback)."""
    entries = []
    for record in records:
        if record.get("clinic") != clinic:
            continue
        at = parse_time(record.get("ended")) or parse_time(record.get("started"))
        if at is None:
            continue
        text = f"{record.get('procedure', '?')} run {record.get('outcome', '?')} (run {record.get('run_id', '?')}, "
        text += f"by {_who(record.get('who'))})"
        failed = record.get("failed_tasks") or []
        if failed:
            text += f"; failed: {', '.join(str(task) for task in failed[:3])}"
        ids = _ids(record.get("ids"))
        entries.append(TimelineEntry(at, "controller", f"{text} {ids}".rstrip()))
    return entries


def timeline(entries: Iterable[TimelineEntry], start: datetime, end: datetime) -> list[TimelineEntry]:
    """The entries inside [start, end], oldest first, the newest MAX_TIMELINE of them."""
    kept = sorted((entry for entry in entries if start <= entry.at <= end), key=lambda entry: (entry.at, entry.source))
    return kept[-MAX_TIMELINE:]


def bundle_audit_records(bundle: Path) -> list[dict[str, Any]]:
    """The clinic's audit records inside a fetched bundle (``<id>/audit.jsonl``); none when it has none."""
    try:
        with tarfile.open(bundle, "r:gz") as archive:
            member = next((item for item in archive.getmembers() if item.name.endswith("/audit.jsonl")), None)
            handle = archive.extractfile(member) if member is not None and member.isfile() else None
            data = handle.read() if handle is not None else b""
    except (OSError, tarfile.TarError):
        return []
    records = []
    for line in io.StringIO(data.decode("utf-8", "replace")):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the tail may start inside a line
        if isinstance(record, dict):
            records.append(record)
    return records


@dataclass
class Incident:
    """The incident record, written as ``incident.json``."""

    id: str
    clinic: str
    severity: str
    severity_source: str  # "operator" (--severity) or "health" (computed)
    opened_at: str
    timeline_start: str
    window_start: str  # the audit records in the post-mortem start here
    opened_by: str
    controller: str
    run_id: str = ""
    status: str = "open"
    health_state: str | None = None
    health_summary: str | None = None
    bundle: str | None = None
    bundle_files: int = 0
    redacted: int = 0
    collection: str = ""  # outcome of the diagnostics run on the clinic, and why when it failed
    severity_definitions: dict[str, str] = field(default_factory=lambda: dict(SEVERITIES))

    @property
    def severity_text(self) -> str:
        return f"{self.severity} — {SEVERITIES[self.severity]}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_postmortem(incident: Incident, entries: list[TimelineEntry]) -> str:
    """The post-mortem draft in Markdown: the facts filled in, the analysis left to write."""
    health = incident.health_summary or incident.health_state or "unknown (no bundle)"
    bundle = f"`{BUNDLE}` ({incident.bundle_files} files, {incident.redacted} secrets masked)"
    lines = [
        f"# Post-mortem: {incident.id}",
        "",
        f"- **Clinic**: {incident.clinic}",
        f"- **Severity**: {incident.severity_text} (set by {incident.severity_source})",
        f"- **Timeline start**: {incident.timeline_start}",
        f"- **Opened**: {incident.opened_at} by {incident.opened_by} on {incident.controller}",
        f"- **Status**: {incident.status}",
        f"- **Diagnostics**: {bundle if incident.bundle else 'no bundle: ' + (incident.collection or 'not collected')}",
        f"- **Health when diagnosed**: {health}",
        "",
        "## Summary",
        "",
        "_What happened, in two or three sentences._",
        "",
        "## Impact",
        "",
        "_Who was affected (staff, patients), which features, for how long; whether patient data was at risk._",
        "",
        "## Timeline",
        "",
        f"All times UTC. Pre-filled from the clinic's audit trail and the controller's audit trail from "
        f"{incident.window_start} until the diagnosis; add what people saw and did.",
        "",
    ]
    marks = [
        TimelineEntry(parse_time(incident.timeline_start) or utc_now(), "incident", "timeline start"),
        TimelineEntry(parse_time(incident.opened_at) or utc_now(), "incident", f"incident opened ({incident.id})"),
    ]
    rows = sorted([*entries, *marks], key=lambda entry: entry.at)
    lines += ["| time (UTC) | source | event |", "|---|---|---|"]
    lines += [f"| {stamp(entry.at)} | {entry.source} | {_cell(entry.text)} |" for entry in rows]
    if not entries:
        lines += ["", "_No audit record of the clinic in the window._"]
    lines += [
        "",
        "## Root cause",
        "",
        "_Why it happened; the five whys._",
        "",
        "## Resolution",
        "",
        "_What restored service, and when._",
        "",
        "## Action items",
        "",
        "| action | owner | due |",
        "|---|---|---|",
        "| _…_ | | |",
        "",
    ]
    return "\n".join(lines)


def write_incident(directory: Path, incident: Incident, entries: list[TimelineEntry]) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = asdict(incident)
    record["timeline"] = [{"at": stamp(entry.at), "source": entry.source, "event": entry.text} for entry in entries]
    record_path, draft_path = directory / INCIDENT_JSON, directory / POSTMORTEM_MD
    write_private(record_path, json.dumps(record, indent=2) + "\n")
    write_private(draft_path, render_postmortem(incident, entries))
    return record_path, draft_path


def incidents_dir(home: Path) -> Path:
    return home / "incidents"
