"""Live progress of a fleet run, on standard error.

- On a terminal: a ``rich`` live view, one line per clinic (state, current task, ok/changed/failed,
  elapsed) under an overall bar; failures are printed above it as they happen.
- Elsewhere (CI, AWX, cron, a pipe): plain timestamped lines, no colour, no cursor movement.
- ``--quiet``: nothing.

Event handling is O(1): a dictionary lookup and a few counters, plus a line for a failure. The
live view renders from the same counters in rich's refresh thread, a few times a second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from clinicops.report import NOT_FAILED, SUCCESS, counts_text, summarize
from clinicops.runner import SKIPPED, HostOutcome, failure_message, skip_report, skip_text
from clinicops.waves import Wave

STYLE = {"ok": "green", "healthy": "green", "running": "cyan", "waiting": "dim", SKIPPED: "yellow"}


class Display:
    """The quiet display; the others override what they show."""

    def __init__(self) -> None:
        self.hosts: Mapping[str, HostOutcome] = {}

    def plan(self, title: str, run_id: str, waves: Sequence[Wave], note: str = "") -> None: ...

    def wave_started(self, wave: Wave, total: int, hosts: Mapping[str, HostOutcome]) -> None:
        self.hosts = hosts

    def on_event(self, event: dict[str, Any]) -> None: ...

    def wave_finished(self, wave: Wave, total: int, rows: Sequence[Mapping[str, Any]], seconds: float) -> None: ...

    def message(self, text: str) -> None: ...

    def pause(self) -> None:
        """Before a prompt: nothing may draw on the terminal."""


def _failure(event: dict[str, Any]) -> tuple[str, str, str] | None:
    """(host, task, message) of a failure event worth showing now, else None."""
    kind = event.get("event")
    data = event.get("event_data") or {}
    if kind == "runner_on_unreachable" or (kind == "runner_on_failed" and not data.get("ignore_errors")):
        return data.get("host", "?"), data.get("task", "?"), failure_message(data.get("res") or {})
    return None


def _skip(event: dict[str, Any]) -> tuple[str, str] | None:
    """(host, why and next opening) when the event is the window gate skipping a clinic, else None."""
    if event.get("event") != "runner_on_ok":
        return None
    data = event.get("event_data") or {}
    skipped = skip_report(data)
    return (data.get("host", "?"), skip_text(skipped)) if skipped is not None else None


def _wave_style(rows: Sequence[Mapping[str, Any]]) -> str:
    outcomes = {row["outcome"] for row in rows}
    return "green" if outcomes <= SUCCESS else "yellow" if outcomes <= NOT_FAILED else "red"


def _wave_line(wave: Wave, total: int, rows: Sequence[Mapping[str, Any]], seconds: float) -> str:
    summary = counts_text(summarize(rows))
    return f"wave {wave.index}/{total} {wave.name} done in {seconds:.1f}s: {summary}"


class LineDisplay(Display):
    """One plain line per thing that happened: for logs, CI, AWX and cron."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False) -> None:
        super().__init__()
        self.stream = stream or sys.stderr
        self.verbose = verbose

    def line(self, text: str) -> None:
        self.stream.write(f"{datetime.now():%H:%M:%S} {text}\n")
        self.stream.flush()

    def plan(self, title: str, run_id: str, waves: Sequence[Wave], note: str = "") -> None:
        clinics = sum(len(wave.hosts) for wave in waves)
        self.line(f"{title}: run {run_id}, {clinics} clinic(s) in {len(waves)} wave(s){note}")
        for wave in waves:
            self.line(f"  wave {wave.index} {wave.name}: {', '.join(wave.hosts)}")

    def wave_started(self, wave: Wave, total: int, hosts: Mapping[str, HostOutcome]) -> None:
        super().wave_started(wave, total, hosts)
        self.line(f"wave {wave.index}/{total} {wave.name} started: {', '.join(wave.hosts)}")

    def on_event(self, event: dict[str, Any]) -> None:
        failure = _failure(event)
        skipped = None if failure else _skip(event)
        if failure:
            host, task, message = failure
            self.line(f"FAILED {host}: {task}: {message}")
        elif skipped:
            self.line(f"SKIPPED {skipped[0]}: {skipped[1]}")
        elif self.verbose and event.get("event") == "playbook_on_task_start":
            self.line(f"task: {(event.get('event_data') or {}).get('task', '')}")

    def wave_finished(self, wave: Wave, total: int, rows: Sequence[Mapping[str, Any]], seconds: float) -> None:
        self.line(_wave_line(wave, total, rows, seconds))
        for row in rows:
            if row["outcome"] == SKIPPED:  # nothing ran on it: why, and when its window opens
                self.line(f"  {row['clinic']}: skipped ({row['message']})")
                continue
            self.line(
                f"  {row['clinic']}: {row['outcome']} (ok={row['ok']} changed={row['changed']} "
                f"failed={row['failed']}, {row['duration_s']}s)"
            )

    def message(self, text: str) -> None:
        self.line(text)


class LiveDisplay(Display):
    """The terminal view: clinics of the current wave, live, above an overall bar."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self.console = console or Console(stderr=True)
        self.live: Live | None = None
        self.title = ""
        self.total_clinics = 0
        self.done = 0
        self.wave_label = ""
        self.started = time.monotonic()
        self.wave_hosts: tuple[str, ...] = ()

    def plan(self, title: str, run_id: str, waves: Sequence[Wave], note: str = "") -> None:
        self.title = f"{title} · run {run_id}"
        self.total_clinics = sum(len(wave.hosts) for wave in waves)
        self.started = time.monotonic()
        plan = "; ".join(f"{wave.index}. {wave.name} ({len(wave.hosts)})" for wave in waves)
        self.console.print(Text(f"{self.title}: {self.total_clinics} clinic(s) — waves: {plan}{note}"))

    def wave_started(self, wave: Wave, total: int, hosts: Mapping[str, HostOutcome]) -> None:
        super().wave_started(wave, total, hosts)
        self.wave_label = f"wave {wave.index}/{total} {wave.name}"
        self.wave_hosts = wave.hosts
        self.live = Live(console=self.console, get_renderable=self.render, refresh_per_second=4, transient=True)
        self.live.start()

    def on_event(self, event: dict[str, Any]) -> None:
        failure = _failure(event)
        skipped = None if failure else _skip(event)
        if failure:
            host, task, message = failure
            self.console.print(Text(f"✗ {host}: {task}: {message}", style="red"))
        elif skipped:
            self.console.print(Text(f"SKIPPED {skipped[0]}: {skipped[1]}", style="yellow"))

    def render(self) -> Group:
        now = time.monotonic()
        rows = [self.hosts.get(name) for name in self.wave_hosts]
        table = Table(box=None, pad_edge=False, expand=False)
        for column in ("clinic", "state", "task", "ok", "changed", "failed", "elapsed"):
            table.add_column(column, justify="right" if column in ("ok", "changed", "failed", "elapsed") else "left")
        room = max(3, self.console.height - 6)
        shown = [host for host in rows if host is not None]
        if len(shown) > room:  # big waves: the clinics that need eyes first
            settled = ("ok", SKIPPED)
            shown = sorted(shown, key=lambda host: (host.outcome in settled or not host.first_seen, host.host))[:room]
        for host in shown:
            if host.failed or host.unreachable or host.outcome == SKIPPED:
                state = host.outcome
            else:
                state = "running" if host.first_seen else "waiting"
            stopped = host.failed or state == SKIPPED  # the clinic is done with this wave: elapsed stops
            elapsed = f"{(host.last_seen if stopped else now) - host.first_seen:.0f}s" if host.first_seen else ""
            table.add_row(
                Text(host.host),
                Text(state, style=STYLE.get(state, "red")),
                Text(host.current_task[:60]),
                str(host.ok),
                str(host.changed),
                str(host.failed),
                elapsed,
            )
        bar = ProgressBar(total=max(self.total_clinics, 1), completed=self.done, width=40)
        header = Text(f"{self.title} — {self.wave_label} — {now - self.started:.0f}s")
        footer = Text(f"{self.done}/{self.total_clinics} clinics done")
        return Group(header, table, bar, footer)

    def wave_finished(self, wave: Wave, total: int, rows: Sequence[Mapping[str, Any]], seconds: float) -> None:
        self.pause()
        self.done += len(rows)
        self.console.print(Text(_wave_line(wave, total, rows, seconds), style=_wave_style(rows)))

    def message(self, text: str) -> None:
        self.console.print(Text(text, style="yellow"))

    def pause(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def make_display(quiet: bool, verbose: bool, stream: TextIO | None = None) -> Display:
    stream = stream or sys.stderr
    if quiet:
        return Display()
    if stream.isatty():
        return LiveDisplay(Console(file=stream))
    return LineDisplay(stream, verbose=verbose)
