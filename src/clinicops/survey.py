"""The fleet health survey: one row per clinic from the health playbook's report."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from clinicops.runner import RunResult


def _gib(value: Any) -> str:
    return f"{value / 2**30:.1f} GiB" if isinstance(value, int | float) else "?"


def survey_rows(result: RunResult) -> list[dict[str, Any]]:
    rows = []
    for name, host in sorted(result.hosts.items()):
        report = host.report
        if host.outcome == "unreachable":
            outcome = "unreachable"
        elif not report:
            outcome = "failed"
        else:
            outcome = "healthy" if report.get("healthy") else "unhealthy"
        rows.append(
            {
                "clinic": name,
                "outcome": outcome,
                "timezone": report.get("timezone", ""),
                "version": report.get("app_version") or "",
                "release": report.get("release") or "",
                "database": report.get("database", "?"),
                "rows": report.get("rows"),
                "disk_free_bytes": report.get("disk_free_bytes"),
                "summary": report.get("summary") or host.message,
            }
        )
    return rows


def render_survey(rows: list[dict[str, Any]], result: RunResult, console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"clinic health — run {result.run_id}", title_justify="left")
    for column in ("clinic", "time zone", "app version", "database", "rows", "disk free", "status"):
        table.add_column(column, justify="right" if column in ("rows", "disk free") else "left")
    for row in rows:
        style = "green" if row["outcome"] == "healthy" else "red"
        summary = str(row["summary"] or "")
        if summary.startswith(f"{row['outcome']}: "):  # the module's summary already says it
            summary = summary[len(row["outcome"]) + 2 :]
        status = "healthy" if row["outcome"] == "healthy" else f"{row['outcome']}: {summary}"
        # Text, not markup: the cells hold what clinics reported, brackets and all.
        cells = (row["clinic"], row["timezone"], row["version"], row["database"])
        table.add_row(
            *(Text("" if cell is None else str(cell)) for cell in cells),
            "" if row["rows"] is None else str(row["rows"]),
            _gib(row["disk_free_bytes"]),
            Text(status, style=style),
        )
    console.print(table)
    console.print(f"report: {result.run_dir}  ({result.duration:.1f}s)", markup=False)
