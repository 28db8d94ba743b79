"""The summary printed at the end of a run (and by ``clinicops show``): one row per clinic."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from clinicops.report import SUCCESS, counts_text


def stdout_console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160)


def render_outcomes(report: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or stdout_console()
    title = f"{report['title']} — run {report['run_id']} — {report['status']}"
    table = Table(title=title, title_justify="left")
    for column in ("clinic", "outcome", "wave", "duration", "details", "failure"):
        table.add_column(column, overflow="fold", justify="right" if column == "duration" else "left")
    for row in report["clinics"]:
        style = "green" if row["outcome"] in SUCCESS else ("yellow" if row["outcome"] == "not reached" else "red")
        details = "  ".join(f"{key}={value}" for key, value in row.get("details", {}).items())
        failure = f"{row['failed_task']}: {row['message']}" if row.get("failed_task") else row.get("message", "")
        table.add_row(
            Text(row["clinic"]),
            Text(row["outcome"], style=style),
            Text(str(row.get("wave", ""))),
            f"{row.get('duration_s', 0):.0f}s",
            Text(details),
            Text(failure),
        )
    console.print(table)
    footer(report, console)


def footer(report: Mapping[str, Any], console: Console) -> None:
    counts = counts_text(report.get("counts", {}))
    console.print(Text(f"{counts} — {report.get('duration_s', 0)}s — report: {report.get('report_path', '')}"))
    if report.get("status") not in ("ok", "running"):
        console.print(Text(f"to re-run the clinics that did not finish: clinicops resume {report['run_id']}"))
