"""The fleet health survey table: one row per clinic from the health playbook's report, and the
runbook checklist's items when the run had one (``clinicops health --checklist``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from clinicops.run_report import footer, stdout_console


def _gib(value: Any) -> str:
    return f"{value / 2**30:.1f} GiB" if isinstance(value, int | float) else "?"


def _size(value: Any) -> str:
    if not isinstance(value, int | float):
        return ""
    return f"{value / 2**30:.1f} GiB" if value >= 2**30 else f"{value / 2**20:.1f} MiB"


def _hours(value: Any) -> str:
    if not isinstance(value, int | float):
        return "none"
    return f"{value:.0f} h ago" if value < 48 else f"{value / 24:.0f} d ago"


def _days(value: Any) -> str:
    return f"{value:.0f} d" if isinstance(value, int | float) else ""


def _database(row: Mapping[str, Any]) -> str:
    text = str(row.get("database") or "")
    if row.get("db_connections"):
        text += f" {row['db_connections']} conn"
    longest = row.get("longest_query_s")
    if isinstance(longest, int | float) and longest >= 1:
        text += f", query {longest:.0f} s"
    return text


# Columns shown only when some clinic reported them: (title, row key, how the cell reads).
OPTIONAL_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("db size", "db_size_bytes", _size),
    ("TLS left", "tls_days_left", _days),
    ("last backup", "backup_age_hours", _hours),
    ("last drill", "drill_age_hours", _hours),
)
# Columns every survey shows (last backup and drill too: "none" is news when no clinic has one).
ALWAYS = frozenset({"backup_age_hours", "drill_age_hours"})


def _status(row: Mapping[str, Any]) -> str:
    summary = str(row.get("summary") or row.get("message") or "")
    if summary.startswith(f"{row['outcome']}: "):  # the module's summary already says it
        summary = summary[len(row["outcome"]) + 2 :]
    return "healthy" if row["outcome"] == "healthy" else f"{row['outcome']}: {summary}".rstrip(": ")


def render_survey(report: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or stdout_console()
    clinics = report["clinics"]
    title = report.get("title") or "clinic health"
    table = Table(title=f"{title} — run {report['run_id']}", title_justify="left")
    optional = [
        column
        for column in OPTIONAL_COLUMNS
        if column[1] in ALWAYS or any(row.get(column[1]) is not None for row in clinics)
    ]
    columns = ("clinic", "time zone", "app version", "database", "rows", "disk free")
    for column in (*columns, *(title for title, _, _ in optional), "status"):
        table.add_column(column, justify="right" if column in ("rows", "disk free", "db size", "TLS left") else "left")
    for row in clinics:
        style = "green" if row["outcome"] == "healthy" else "red"
        # Text, not markup: the cells hold what clinics reported, brackets and all.
        cells = (row["clinic"], row.get("timezone"), row.get("version"), _database(row))
        reached = row.get("database") not in (None, "?")
        table.add_row(
            *(Text("" if cell is None else str(cell)) for cell in cells),
            "" if row.get("rows") is None else str(row["rows"]),
            _gib(row.get("disk_free_bytes")),
            *(Text(render(row.get(key)) if reached else "") for _, key, render in optional),
            Text(_status(row), style=style),
        )
    console.print(table)
    render_checklist(report, console)
    footer(report, console)


def render_checklist(report: Mapping[str, Any], console: Console) -> None:
    """The checklist's items, one line per clinic and item, when the run had a checklist."""
    rows = [row for row in report["clinics"] if row.get("checklist_items")]
    if not rows:
        return
    table = Table(title=f"{report.get('title', 'checklist')} — items", title_justify="left")
    for column in ("clinic", "item", "result", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        for item in row["checklist_items"]:
            ok = item.get("ok") in (True, "True", "true")
            table.add_row(
                Text(row["clinic"]),
                Text(str(item.get("item", ""))),
                Text("ok" if ok else "FAILED", style="green" if ok else "red"),
                Text(str(item.get("detail", ""))),
            )
    console.print(table)
