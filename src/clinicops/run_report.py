"""The per-clinic outcome table of a procedure run (backup, drill, restore, ...)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from clinicops.runner import RunResult

# Report keys shown as the "details" column, in this order, when a procedure publishes them.
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
)


def outcome_rows(result: RunResult) -> list[dict[str, Any]]:
    rows = []
    for name, host in sorted(result.hosts.items()):
        report = host.report
        if not report and host.outcome == "ok":
            continue  # took part only in the run-context play (e.g. the vault host)
        if report.get("reached") is False and host.outcome in ("ok", "not run"):
            # Named at the start of the run, never reached by a wave (an earlier wave failed).
            rows.append({"clinic": name, "outcome": "not reached", "details": {}, "failed_task": None, "message": ""})
            continue
        details = {key: report[key] for key in DETAIL_KEYS if report.get(key) not in (None, "", {})}
        rows.append(
            {
                "clinic": name,
                "outcome": host.outcome,
                "details": details,
                "failed_task": host.failed_task,
                "message": host.message,
            }
        )
    return rows


def render_outcomes(title: str, rows: list[dict[str, Any]], result: RunResult, console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 140)
    table = Table(title=f"{title} — run {result.run_id}", title_justify="left")
    for column in ("clinic", "outcome", "details", "failure"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = "green" if row["outcome"] == "ok" else "red"
        details = "  ".join(f"{key}={value}" for key, value in row["details"].items())
        failure = f"{row['failed_task']}: {row['message']}" if row["failed_task"] else ""
        table.add_row(Text(row["clinic"]), Text(row["outcome"], style=style), Text(details), Text(failure))
    console.print(table)
    console.print(Text(f"run directory: {result.run_dir}  ({result.duration:.1f}s)"))
