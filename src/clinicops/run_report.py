"""The summary printed at the end of a run (and by ``clinicops show``): one row per clinic."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from clinicops.report import (
    SKIPPED,
    SUCCESS,
    counts_text,
    details_text,
    has_window_column,
    resume_command,
    skipped_line,
    window_text,
)

# Statuses of a run that are no failure: done, or clinics skipped by a closed maintenance window.
STATUS_STYLE = {"ok": "green", "partial": "yellow", "skipped": "yellow", "stopped": "yellow"}


def stdout_console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160)


def outcome_style(outcome: str) -> str:
    if outcome in SUCCESS:
        return "green"
    return "yellow" if outcome in ("not reached", SKIPPED) else "red"


def render_outcomes(report: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or stdout_console()
    title = f"{report['title']} — run {report['run_id']} — {report['status']}"
    table = Table(title=title, title_justify="left")
    window = has_window_column(report)
    columns = ["clinic", "outcome", "wave", "duration", *(["window"] if window else []), "details", "failure"]
    for column in columns:
        table.add_column(column, overflow="fold", justify="right" if column == "duration" else "left")
    for row in report["clinics"]:
        details = details_text(row, window, separator="  ")
        failure = f"{row['failed_task']}: {row['message']}" if row.get("failed_task") else row.get("message", "")
        cells = [
            Text(row["clinic"]),
            Text(row["outcome"], style=outcome_style(row["outcome"])),
            Text(str(row.get("wave", ""))),
            f"{row.get('duration_s', 0):.0f}s",
        ]
        if window:
            left = window_text(row)
            cells.append(Text(left, style="red" if "OVERRUN" in left else ""))
        table.add_row(*cells, Text(details), Text(failure))
    console.print(table)
    footer(report, console)


def footer(report: Mapping[str, Any], console: Console) -> None:
    counts = counts_text(report.get("counts", {}))
    console.print(Text(f"{counts} — {report.get('duration_s', 0)}s — report: {report.get('report_path', '')}"))
    skipped = skipped_line(report)
    if skipped:
        console.print(Text(skipped, style="yellow"))
    command = resume_command(report)
    if command.endswith("--wait-for-window"):
        console.print(Text(f"to run the skipped clinics once their window opens: {command}"))
    elif command and report.get("status") != "running":
        left = {row["outcome"] for row in report.get("clinics", []) if row["outcome"] not in SUCCESS}
        # A survey's unhealthy clinic did finish: resume checks it again (after the fix).
        unhealthy = left == {"unhealthy"}
        what = "check the unhealthy clinics again" if unhealthy else "re-run the clinics that did not finish"
        console.print(Text(f"to {what}: {command}"))
