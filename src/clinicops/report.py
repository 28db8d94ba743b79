"""A run's report: one row per clinic, saved as JSON (for scripts) and Markdown (for people).

The report is rebuilt from the run's state after every wave, so an interrupted or killed run still
leaves a report saying how far it got. ``resume`` adds attempts to the same report: the newest
attempt of a clinic is its outcome.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from clinicops.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, UsageError
from clinicops.files import write_private
from clinicops.runner import SKIPPED, HostOutcome, skip_text
from clinicops.windows import span_text

REPORT_JSON = "report.json"
REPORT_MD = "report.md"

# Outcomes of a clinic, and which of them count as done (resume skips those).
SUCCESS = frozenset({"ok", "healthy"})
# Outcomes that are no failure: done, or skipped by the maintenance window gate (the expected, safe
# outcome of a closed window; not done, so resume runs the clinic again).
NOT_FAILED = SUCCESS | {SKIPPED}
# Report keys shown as a clinic's details, in this order, when a procedure publishes them.
DETAIL_KEYS = (
    "release_id",
    "version",
    "previous",
    "deployed",
    "backup",
    "snapshot_id",
    "snapshot_time",
    "backup_age_hours",
    "rows",
    "verified",
    "offsite",
    # skipped by the window gate
    "next_opening",
    # maintenance: the window used, the time left in it (negative: overran its end), what was done
    "window",
    "window_state",
    "window_end",
    "time_left_s",
    "overrun",
    "durations",
    "upkeep",
    "packages",
    "restarted",
    "reboot_required",
    "maintenance_page",
    "silence",
    # feature flags: what the app reports, what this run changed (or would), how long the kill switch took
    "flags",
    "changed",
    "would_change",
    "took_s",
    # cache flush: the app's Redis database and its keys before and after
    "redis_db",
    "keys_before",
    "keys_after",
    # health --checklist and security-scan: the log figures of the window, the thresholds crossed
    "checklist",
    "requests",
    "requests_4xx_rate",
    "requests_5xx_rate",
    "app_errors",
    "failed_logins_by_ip",
    "suspicious_by_pattern",
    "privilege_additions",
    "privilege_baseline_written",
    "top_client_ips",
    "crossed",
    # diagnose: the incident, its bundle on the controller, the clinic's health when it was taken
    "incident_id",
    "bundle",
    "bundle_files",
    "redacted",
    "health_state",
    "health_summary",
    # isolation check: rows of another clinic each query found (0 everywhere: isolated)
    "foreign_rows",
    # log rotation: drop-ins changed or removed, bytes the archive step freed, audit files copied into the
    # repository (verified) and deleted locally, rotated files left because a process holds them, full disks
    "policies_changed",
    "logs_archived_bytes_freed",
    "audit_copied",
    "audit_deleted_local",
    "open_files_left",
    "disk_pressure",
    "docker_restart",
    "stale_containers",
)
# Detail keys the window column shows instead of the details column.
WINDOW_KEYS = ("window", "window_state", "window_end", "time_left_s", "overrun", "next_opening")
EMPTY = (None, "", {}, [])
# The health survey's own columns.
SURVEY_KEYS = ("timezone", "version", "release", "database", "rows", "disk_free_bytes", "summary")
# Its further figures (None when a clinic did not report them) and the checklist's items.
SURVEY_FIGURES = (
    "app_latency_ms",
    "db_connections",
    "db_size_bytes",
    "longest_query_s",
    "tls_days_left",
    "backup_age_hours",
    "drill_age_hours",
    "checklist_items",
)


def clinic_row(
    clinic: str, wave: str, attempt: int, host: HostOutcome | None, finished: bool, command: str
) -> dict[str, Any]:
    """One clinic's row from what its wave's run saw (``host`` None: the clinic had no event)."""
    row: dict[str, Any] = {
        "clinic": clinic,
        "wave": wave,
        "attempt": attempt,
        "outcome": "not run",
        "duration_s": 0.0,
        "ok": 0,
        "changed": 0,
        "failed": 0,
        "failed_task": "",
        "message": "",
        "details": {},
    }
    if host is not None:
        row.update(
            outcome=host.outcome,
            duration_s=round(max(0.0, host.last_seen - host.first_seen), 1),
            ok=host.ok,
            changed=host.changed,
            failed=host.failed,
            failed_task=host.failed_task,
            message=host.message,
            details={key: host.report[key] for key in DETAIL_KEYS if host.report.get(key) not in EMPTY},
        )
        if row["outcome"] == SKIPPED:
            row["message"] = skip_text(host.report)
        if row["outcome"] in ("ok", "not run") and not finished:
            # Killed mid-play: whatever ran, the procedure did not complete on this clinic.
            row["outcome"] = "aborted"
        if command == "health":
            _survey(row, host)
    elif not finished:
        row["outcome"] = "aborted"
    return row


def _survey(row: dict[str, Any], host: HostOutcome) -> None:
    report = host.report
    if row["outcome"] not in ("unreachable", "aborted"):
        row["outcome"] = ("healthy" if report.get("healthy") else "unhealthy") if report else "failed"
    row.update(
        timezone=report.get("timezone", ""),
        version=report.get("app_version") or "",
        release=report.get("release") or "",
        database=report.get("database", "?"),
        rows=report.get("rows"),
        disk_free_bytes=report.get("disk_free_bytes"),
        summary=report.get("summary") or host.message,
    )
    row.update({key: report.get(key) for key in SURVEY_FIGURES})


def not_reached(clinic: str, wave: str, attempt: int) -> dict[str, Any]:
    row = clinic_row(clinic, wave, attempt, None, True, "")
    row["outcome"] = "not reached"
    return row


def summarize(clinics: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    return dict(Counter(row["outcome"] for row in clinics))


def counts_text(counts: Mapping[str, int]) -> str:
    """``{"ok": 2, "failed": 1}`` -> ``1 failed, 2 ok``: how every summary line says it."""
    return ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))


def group_status(outcomes: Iterable[str]) -> str:
    """``ok`` when every clinic is done, ``skipped`` when the gate skipped them all, ``partial`` when
    it skipped some and the others are done; ``failed`` otherwise. For a wave and for a run."""
    seen = set(outcomes)
    if seen <= SUCCESS:
        return "ok"
    if seen <= NOT_FAILED:
        return "skipped" if seen == {SKIPPED} else "partial"
    return "failed"


def exit_code(report: Mapping[str, Any]) -> int:
    """0 all done or skipped by a closed window; 1 a clinic failed; 3 refused (and nothing failed);
    130 stopped by the operator."""
    outcomes = {row["outcome"] for row in report["clinics"]}
    if outcomes <= NOT_FAILED:
        return EXIT_OK
    if outcomes & {"failed", "unreachable", "unhealthy", "aborted", "not run"}:
        return EXIT_FAILED
    if "refused" in outcomes:
        return EXIT_REFUSED
    if report.get("interrupted"):
        return EXIT_INTERRUPTED
    return EXIT_FAILED  # not reached after a failed wave of an earlier attempt


def status_of(report: Mapping[str, Any]) -> str:
    code = exit_code(report)
    if report.get("interrupted") == "aborted":
        return "aborted"
    if code == EXIT_OK:
        return group_status(row["outcome"] for row in report["clinics"])
    return {EXIT_REFUSED: "refused", EXIT_INTERRUPTED: "stopped"}.get(code, "failed")


def has_window_column(report: Mapping[str, Any]) -> bool:
    """Reports of the maintenance procedure (or any run reporting window time) show a window column."""
    return report.get("command") == "maintenance" or any(
        "time_left_s" in row.get("details", {}) for row in report.get("clinics", [])
    )


def window_text(row: Mapping[str, Any]) -> str:
    """The window column: the time left in the window a clinic was maintained in, or its overrun;
    for a skipped clinic, when its window next opens."""
    details = row.get("details") or {}
    if row.get("outcome") == SKIPPED:
        return f"opens {details['next_opening']}" if details.get("next_opening") else "no next opening"
    name = str(details.get("window") or "")
    if not name and details.get("window_state") == "unrestricted":
        return "none configured"
    if not name and details.get("window_state") == "override":
        return "override, outside any window"
    left = details.get("time_left_s")
    if not isinstance(left, int | float) or isinstance(left, bool):
        return name
    prefix = f"{name}: " if name else ""
    if left < 0 or details.get("overrun") is True:
        return f"{prefix}OVERRUN by {span_text(abs(left))}"
    return f"{prefix}{span_text(left)} left"


def detail_text(key: str, value: Any) -> str:
    """``key=value`` for one detail; mappings and lists briefly (the report JSON has them in full)."""
    if isinstance(value, Mapping):
        parts = []
        for name, item in value.items():
            if key == "durations" and isinstance(item, int | float) and not isinstance(item, bool):
                parts.append(f"{name}:{item:.0f}s")
            elif isinstance(item, list | tuple):
                parts.append(f"{name}:{len(item)}")  # upgraded packages, vacuumed tables: how many
            else:
                parts.append(f"{name}:{item}")
        return f"{key}={','.join(parts)}"
    if isinstance(value, list | tuple):
        return f"{key}={','.join(str(item) for item in value)}"
    return f"{key}={value}"


def details_text(row: Mapping[str, Any], window_column: bool, separator: str = " ") -> str:
    """A row's details, without those the window column shows when there is one."""
    return separator.join(
        detail_text(key, value)
        for key, value in (row.get("details") or {}).items()
        if not (window_column and key in WINDOW_KEYS)
    )


def skipped_rows(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [row for row in report.get("clinics", []) if row.get("outcome") == SKIPPED]


def skipped_line(report: Mapping[str, Any]) -> str:
    """One line naming the clinics a closed window kept out, with each next opening ("" if none)."""
    rows = skipped_rows(report)
    if not rows:
        return ""
    named = ", ".join(
        f"{row['clinic']} (opens {row['details']['next_opening']})"
        if row.get("details", {}).get("next_opening")
        else f"{row['clinic']} (no next opening)"
        for row in rows[:10]
    )
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    return f"skipped by their maintenance window (nothing was done on them): {named}{more}"


def resume_command(report: Mapping[str, Any]) -> str:
    """The command that finishes the run ("" when it is finished: every clinic done).

    A run whose only unfinished clinics were skipped by a closed window is resumed waiting for it
    (unless it judged the windows at a fixed instant, --now: then waiting cannot help).
    """
    if report.get("status") == "ok" or all(row["outcome"] in SUCCESS for row in report.get("clinics", [])):
        return ""
    fixed_instant = bool((report.get("options") or {}).get("clinicops_now"))
    if report.get("status") in ("partial", "skipped") and not fixed_instant:
        return f"clinicops resume {report['run_id']} --wait-for-window"
    return f"clinicops resume {report['run_id']}"


def save(run_dir: Path, report: Mapping[str, Any]) -> None:
    """Write report.json and report.md atomically (a reader never sees half a report)."""
    for name, text in ((REPORT_JSON, json.dumps(report, indent=2, sort_keys=False)), (REPORT_MD, markdown(report))):
        write_private(run_dir / name, text + "\n")


def load(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / REPORT_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"run {run_dir.name} has no report ({run_dir / REPORT_JSON} is missing)") from exc
    except ValueError as exc:
        raise UsageError(f"report of run {run_dir.name} is not JSON: {exc}") from exc


def _cell(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")


def markdown(report: Mapping[str, Any]) -> str:
    """The readable report: what ran, the waves, one row per clinic, the failures in full."""
    lines = [
        f"# clinicops {report['command']} — run {report['run_id']}",
        "",
        f"- status: **{report['status']}** (exit {report['exit_code']})",
        f"- started: {report['started']}; ended: {report.get('ended') or '(running)'}; "
        f"duration: {report.get('duration_s', 0)} s",
        f"- by: {report.get('user', '?')} on {report.get('controller', '?')}",
        f"- inventory: `{report.get('inventory', '')}`",
    ]
    if report.get("limit"):
        lines.append(f"- limit: `{report['limit']}`")
    if report.get("check"):
        lines.append("- dry run (--check): nothing was changed")
    for key, value in (report.get("options") or {}).items():
        lines.append(f"- {key}: `{value}`")
    if report.get("interrupted"):
        lines.append(f"- interrupted by the operator: {report['interrupted']}")
    counts = counts_text(report.get("counts", {}))
    lines += ["", f"Clinics: {counts}", ""]
    for attempt in report.get("attempts", []):
        lines.append(f"## Attempt {attempt['attempt']} ({attempt['kind']}, started {attempt['started']})")
        lines.append("")
        lines.append("| wave | clinics | status |")
        lines.append("|---|---|---|")
        for wave in attempt["waves"]:
            hosts = _cell(", ".join(wave["hosts"]))
            status = wave["status"]
            if wave.get("waited_s"):
                status += f" (waited {span_text(wave['waited_s'])} for a maintenance window)"
            lines.append(f"| {wave['index']}. {_cell(wave['name'])} | {hosts} | {status} |")
        lines.append("")
    window = has_window_column(report)
    lines += [
        "## Clinics",
        "",
        "| clinic | outcome | wave | attempt | duration |" + (" window |" if window else "") + " details | failure |",
        "|---|---|---|---|---|" + ("---|" if window else "") + "---|---|",
    ]
    for row in report["clinics"]:
        details = details_text(row, window)
        if row.get("summary"):
            details = (details + " " + str(row["summary"])).strip()
        if row.get("failed_task"):
            failure = f"{row['failed_task']}: {row['message']}"
        else:
            failure = row.get("message", "") if row["outcome"] == SKIPPED else ""
        window_cell = f" {_cell(window_text(row))} |" if window else ""
        lines.append(
            f"| {_cell(row['clinic'])} | {row['outcome']} | {_cell(row['wave'])} | {row['attempt']} | "
            f"{row['duration_s']} s |{window_cell} {_cell(details)} | {_cell(failure)} |"
        )
    checklist = [row for row in report["clinics"] if row.get("checklist_items")]
    if checklist:
        lines += ["", "## Checklist", "", "| clinic | item | result | detail |", "|---|---|---|---|"]
        for row in checklist:
            for item in row["checklist_items"]:
                result = "ok" if item.get("ok") in (True, "True", "true") else "FAILED"
                lines.append(
                    f"| {_cell(row['clinic'])} | {_cell(str(item.get('item', '')))} | {result} | "
                    f"{_cell(str(item.get('detail', '')))} |"
                )
    skipped = skipped_line(report)
    if skipped:
        lines += ["", skipped[0].upper() + skipped[1:] + "."]
    command = resume_command(report)
    if command.endswith("--wait-for-window"):
        lines += ["", f"Run the skipped clinics once their window opens: `{command}`"]
    elif command:
        lines += ["", f"Resume the clinics that did not finish: `{command}`"]
    return "\n".join(lines)


def find_run(runs_dir: Path, ref: str) -> Path:
    """A run by id, unique prefix, unique suffix (the random part) or ``last``."""
    if not runs_dir.is_dir():
        raise UsageError(f"no runs yet ({runs_dir} does not exist)")
    if "/" in ref or ref in ("", ".", ".."):
        raise UsageError(f"{ref!r} is not a run id")
    runs = sorted(path for path in runs_dir.iterdir() if (path / REPORT_JSON).is_file())
    if ref == "last":
        if not runs:
            raise UsageError(f"no runs yet in {runs_dir}")
        return runs[-1]
    matches = [path for path in runs if path.name == ref] or [
        path for path in runs if path.name.startswith(ref) or path.name.endswith(ref)
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UsageError(f"no run {ref!r} in {runs_dir} (see `clinicops runs`)")
    raise UsageError(f"{ref!r} matches {len(matches)} runs: {', '.join(path.name for path in matches[:5])}")


def list_runs(runs_dir: Path, last: int) -> list[dict[str, Any]]:
    """The newest ``last`` runs, one summary each (runs without a report are shown as such)."""
    if not runs_dir.is_dir():
        return []
    rows = []
    # Fleet runs only: a run directory without a report is a lab provisioning run.
    for path in sorted((path for path in runs_dir.iterdir() if (path / REPORT_JSON).is_file()), reverse=True)[
        : max(last, 0)
    ]:
        try:
            report = load(path)
        except UsageError:
            rows.append(
                {"run_id": path.name, "command": "?", "status": "unreadable report", "counts": {}, "started": ""}
            )
            continue
        rows.append(
            {
                "run_id": report["run_id"],
                "command": report["command"],
                "status": report["status"],
                "counts": report.get("counts", {}),
                "started": report["started"],
                "duration_s": report.get("duration_s", 0),
                "attempts": len(report.get("attempts", [])),
                "release_id": next(
                    (value for key, value in (report.get("options") or {}).items() if key.endswith("release_id")), ""
                ),
            }
        )
    return rows
