"""The fleet health survey table: one row per clinic from the health playbook's report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from clinicops.run_report import footer, stdout_console


def _gib(value: Any) -> str:
    return f"{value / 2**30:.1f} GiB" if isinstance(value, int | float) else "?"


def render_survey(report: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or stdout_console()
    table = Table(title=f"clinic health — run {report['run_id']}", title_justify="left")
    for column in ("clinic", "time zone", "app version", "database", "rows", "disk free", "status"):
        table.add_column(column, justify="right" if column in ("rows", "disk free") else "left")
    for row in report["clinics"]:
        style = "green" if row["outcome"] == "healthy" else "red"
        summary = str(row.get("summary") or row.get("message") or "")
        if summary.startswith(f"{row['outcome']}: "):  # the module's summary already says it
            summary = summary[len(row["outcome"]) + 2 :]
        status = "healthy" if row["outcome"] == "healthy" else f"{row['outcome']}: {summary}".rstrip(": ")
        # Text, not markup: the cells hold what clinics reported, brackets and all.
        cells = (row["clinic"], row.get("timezone"), row.get("version"), row.get("database"))
        table.add_row(
            *(Text("" if cell is None else str(cell)) for cell in cells),
            "" if row.get("rows") is None else str(row["rows"]),
            _gib(row.get("disk_free_bytes")),
            Text(status, style=style),
        )
    console.print(table)
    footer(report, console)
