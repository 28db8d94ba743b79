"""Live progress: plain lines for logs and CI, the rich live view on a terminal, nothing when quiet."""

from __future__ import annotations

import io
import re
import sys
import time
from typing import Any

import pytest
from rich.console import Console

from clinicops.progress import Display, LineDisplay, LiveDisplay, make_display
from clinicops.report import clinic_row
from clinicops.runner import REPORT_STATS_KEY, HostOutcome
from clinicops.waves import Wave

CANARY = Wave(index=1, name="canary", hosts=("paris",))
REST = Wave(index=2, name="wave 2", hosts=("kinshasa", "sydney"))
LINE = re.compile(r"\d\d:\d\d:\d\d .+")


def event(kind: str, host: str | None = None, task: str = "", **data: Any) -> dict[str, Any]:
    event_data: dict[str, Any] = {"task": task, **data}
    if host is not None:
        event_data["host"] = host
    return {"event": kind, "event_data": event_data}


def ok_row(clinic: str, wave: str) -> dict[str, Any]:
    return clinic_row(clinic, wave, 1, HostOutcome(clinic, ok=4, changed=1), True, "backup")


def lines_of(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


# -- LineDisplay -----------------------------------------------------------------------------------


def play_a_run(display: Display) -> None:
    display.plan("backup", "RID", [CANARY, REST], " — dry run")
    display.wave_started(CANARY, 2, {"paris": HostOutcome("paris")})
    display.on_event(event("playbook_on_task_start", task="Take the backup"))
    display.on_event(event("runner_on_ok", "paris", task="Take the backup", res={"changed": True}))
    display.wave_finished(CANARY, 2, [ok_row("paris", "canary")], 12.34)
    display.wave_started(REST, 2, {})
    display.on_event(
        event("runner_on_failed", "kinshasa", task="Verify the snapshot", res={"msg": "restic: wrong\n password"})
    )
    display.on_event(event("runner_on_failed", "kinshasa", task="Probe", ignore_errors=True, res={"msg": "fine"}))
    display.on_event(event("runner_on_unreachable", "sydney", task="Gathering Facts", res={"msg": "ssh: timed out"}))
    display.message("stopping: wave 2 failed")


def test_line_display_prints_plain_timestamped_lines() -> None:
    stream = io.StringIO()
    play_a_run(LineDisplay(stream))
    text = stream.getvalue()
    assert "\x1b" not in text and "\r" not in text
    lines = lines_of(stream)
    assert all(LINE.fullmatch(line) for line in lines), lines
    bodies = [line[9:] for line in lines]
    assert bodies == [
        "backup: run RID, 3 clinic(s) in 2 wave(s) — dry run",
        "  wave 1 canary: paris",
        "  wave 2 wave 2: kinshasa, sydney",
        "wave 1/2 canary started: paris",
        "wave 1/2 canary done in 12.3s: 1 ok",
        "  paris: ok (ok=4 changed=1 failed=0, 0.0s)",
        "wave 2/2 wave 2 started: kinshasa, sydney",
        "FAILED kinshasa: Verify the snapshot: restic: wrong password",
        "FAILED sydney: Gathering Facts: ssh: timed out",  # an ignored failure is no news
        "stopping: wave 2 failed",
    ]


SKIP = {
    "outcome": "skipped",
    "reason": "closed: next opening Sun 2026-12-06 02:00 CAT (weekly window)",
    "next_opening": "2026-12-06T02:00:00+02:00",
}


def gate_skip(clinic: str) -> dict[str, Any]:
    """The event of the window gate's set_stats task publishing the skip of ``clinic``."""
    stats = {"data": {REPORT_STATS_KEY: {clinic: SKIP}}, "per_host": False, "aggregate": True}
    return event("runner_on_ok", clinic, task="Report the skipped clinic", res={"ansible_stats": stats})


def skipped_row(clinic: str, wave: str) -> dict[str, Any]:
    outcome = HostOutcome(clinic, ok=2)
    outcome.report = dict(SKIP)
    return clinic_row(clinic, wave, 1, outcome, True, "maintenance")


def test_line_display_says_a_skip_when_it_happens_and_in_the_wave_summary() -> None:
    stream = io.StringIO()
    display = LineDisplay(stream)
    display.wave_started(REST, 2, {})
    display.on_event(gate_skip("kinshasa"))
    display.on_event(event("runner_on_ok", "sydney", task="Report the maintenance", res={"ansible_stats": {}}))
    display.wave_finished(REST, 2, [skipped_row("kinshasa", "wave 2"), ok_row("sydney", "wave 2")], 60.0)
    assert [line[9:] for line in lines_of(stream)] == [
        "wave 2/2 wave 2 started: kinshasa, sydney",
        "SKIPPED kinshasa: closed: next opening Sun 2026-12-06 02:00 CAT (weekly window)",
        "wave 2/2 wave 2 done in 60.0s: 1 ok, 1 skipped",
        "  kinshasa: skipped (closed: next opening Sun 2026-12-06 02:00 CAT (weekly window))",
        "  sydney: ok (ok=4 changed=1 failed=0, 0.0s)",
    ]


def test_live_view_shows_a_skipped_clinic_as_skipped() -> None:
    display = LiveDisplay(quiet_console())
    now = time.monotonic()
    kinshasa = HostOutcome("kinshasa", ok=2, current_task="Report the skipped clinic", first_seen=now - 9)
    kinshasa.last_seen = now - 8
    kinshasa.report = dict(SKIP)
    display.wave_started(REST, 2, {"kinshasa": kinshasa, "sydney": HostOutcome("sydney")})
    display.pause()
    display.on_event(gate_skip("kinshasa"))
    text = rendered(display)
    assert "SKIPPED kinshasa: closed: next opening Sun 2026-12-06 02:00 CAT (weekly window)" in text
    (line,) = [line for line in text.splitlines() if line.startswith("kinshasa")]
    assert re.search(r"kinshasa\s+skipped\s+Report the skipped clinic\s+2\s+0\s+0\s+1s", line)  # elapsed stopped
    display.wave_finished(REST, 2, [skipped_row("kinshasa", "wave 2"), ok_row("sydney", "wave 2")], 3.0)
    assert "wave 2/2 wave 2 done in 3.0s: 1 ok, 1 skipped" in display.console.export_text()


def test_line_display_verbose_names_each_task() -> None:
    quiet, verbose = io.StringIO(), io.StringIO()
    for display in (LineDisplay(quiet), LineDisplay(verbose, verbose=True)):
        display.on_event(event("playbook_on_task_start", task="Take the backup"))
    assert quiet.getvalue() == ""
    assert lines_of(verbose)[0].endswith(" task: Take the backup")


def state_of(display: Display) -> dict[str, Any]:
    return {name: len(value) if hasattr(value, "__len__") else value for name, value in vars(display).items()}


@pytest.mark.parametrize("make", [lambda: LineDisplay(io.StringIO()), lambda: LiveDisplay(quiet_console())])
def test_on_event_keeps_no_state(make: Any) -> None:
    display = make()
    display.wave_started(CANARY, 1, {"paris": HostOutcome("paris")})
    display.pause()
    before = state_of(display)
    for number in range(5000):
        display.on_event(event("runner_on_ok", "paris", task=f"task {number}", res={"changed": True}))
        display.on_event(event("playbook_on_task_start", task=f"task {number}"))
    assert state_of(display) == before


def test_line_display_writes_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    LineDisplay().message("hello")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.endswith(" hello\n")


# -- LiveDisplay -----------------------------------------------------------------------------------


def quiet_console(height: int = 40) -> Console:
    return Console(file=io.StringIO(), record=True, width=140, height=height, color_system=None)


def rendered(display: LiveDisplay) -> str:
    display.console.print(display.render())
    return display.console.export_text()


def test_live_view_lists_the_clinics_of_the_wave() -> None:
    display = LiveDisplay(quiet_console())
    display.plan("deploy 2.1.0", "RID", [CANARY, REST])
    now = time.monotonic()
    hosts = {
        "kinshasa": HostOutcome("kinshasa", ok=3, changed=1, current_task="Migrate the database", first_seen=now - 5),
        "sydney": HostOutcome("sydney", failed=1, failed_task="Health", first_seen=now - 9, last_seen=now - 2),
    }
    display.wave_started(REST, 2, hosts)
    display.pause()
    assert display.live is None
    display.console.export_text()  # drop the plan line
    text = rendered(display)
    assert "deploy 2.1.0 · run RID — wave 2/2 wave 2 — " in text
    for column in ("clinic", "state", "task", "ok", "changed", "failed", "elapsed"):
        assert column in text
    (kinshasa,) = [line for line in text.splitlines() if line.startswith("kinshasa")]
    assert re.search(r"kinshasa\s+running\s+Migrate the database\s+3\s+1\s+0\s+[56]s", kinshasa)
    (sydney,) = [line for line in text.splitlines() if line.startswith("sydney")]
    assert re.search(r"sydney\s+failed\s+0\s+0\s+1\s+7s", sydney)  # elapsed stops at the failure
    assert "0/3 clinics done" in text


def test_live_view_shows_waiting_clinics_and_counts_finished_waves() -> None:
    display = LiveDisplay(quiet_console())
    display.plan("backup", "RID", [CANARY, REST])
    display.wave_started(CANARY, 2, {"paris": HostOutcome("paris")})
    display.wave_finished(CANARY, 2, [ok_row("paris", "canary")], 3.0)
    display.wave_started(REST, 2, {"kinshasa": HostOutcome("kinshasa"), "sydney": HostOutcome("sydney")})
    display.pause()
    text = rendered(display)
    assert re.search(r"kinshasa\s+waiting", text)
    assert "1/3 clinics done" in text
    assert "wave 1/2 canary done in 3.0s: 1 ok" in text


def test_a_big_wave_shows_the_clinics_that_need_eyes_first() -> None:
    display = LiveDisplay(quiet_console(height=10))  # room for 4 clinics
    hosts = {f"c{number:02d}": HostOutcome(f"c{number:02d}", ok=2, first_seen=1.0) for number in range(30)}
    hosts["c29"].failed = 1
    hosts["c28"].unreachable = True
    display.plan("backup", "RID", [Wave(1, "all", tuple(hosts))])
    display.wave_started(Wave(1, "all", tuple(hosts)), 1, hosts)
    display.pause()
    shown = [line.split()[0] for line in rendered(display).splitlines() if re.match(r"c\d\d ", line)]
    assert len(shown) == 4
    assert {"c28", "c29"} <= set(shown)


def test_live_view_prints_failures_and_messages_literally() -> None:
    display = LiveDisplay(quiet_console())
    display.on_event(event("runner_on_failed", "paris", task="Restore", res={"msg": "no [bold]snapshot[/bold]"}))
    display.message("stopping [now]")
    text = display.console.export_text()
    assert "✗ paris: Restore: no [bold]snapshot[/bold]" in text
    assert "stopping [now]" in text


# -- make_display ----------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_display_picks_by_output() -> None:
    assert type(make_display(quiet=True, verbose=False, stream=Terminal())) is Display
    assert type(make_display(quiet=True, verbose=False, stream=io.StringIO())) is Display
    lines = make_display(quiet=False, verbose=True, stream=io.StringIO())
    assert isinstance(lines, LineDisplay) and lines.verbose
    live = make_display(quiet=False, verbose=False, stream=Terminal())
    assert isinstance(live, LiveDisplay)
    assert live.console.file is not sys.stdout


def test_the_quiet_display_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    play_a_run(Display())
    assert capsys.readouterr() == ("", "")
