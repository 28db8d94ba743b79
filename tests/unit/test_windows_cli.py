"""``clinicops windows`` and the wait for a window before a wave: the gate's own evaluator, a fake clock."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clinicops import inventory as inventory_module
from clinicops.cli import main
from clinicops.errors import EXIT_OK, EXIT_USAGE, UsageError
from clinicops.inventory import Fleet
from clinicops.waves import Wave
from clinicops.windows import WindowWait, clinic_windows, local_text, parse_at, parse_duration, parse_step, span_text

WEEKLY = [{"name": "weekly", "rrule": "FREQ=WEEKLY;BYDAY=SU", "start": "02:00", "duration": "2h", "cutoff": "15m"}]
# Sunday 2026-11-29 01:30 UTC: 02:30 in Kinshasa (UTC+1), 20:30 on Saturday in New York (UTC-5).
SUNDAY = datetime(2026, 11, 29, 1, 30, tzinfo=UTC)


def fleet(**hostvars: dict[str, Any]) -> Fleet:
    return Fleet(hosts=tuple(hostvars), groups={"clinics": tuple(hostvars)}, hostvars=hostvars)


def test_each_clinic_is_judged_in_its_own_time_zone() -> None:
    rows = clinic_windows(
        fleet(
            kinshasa={"clinic_timezone": "Africa/Kinshasa", "clinic_maintenance_windows": WEEKLY},
            newyork={"clinic_timezone": "America/New_York", "clinic_maintenance_windows": WEEKLY},
        ),
        "maintenance",
        0,
        SUNDAY,
    )
    by_clinic = {row["clinic"]: row for row in rows}
    assert (by_clinic["kinshasa"]["state"], by_clinic["kinshasa"]["end"]) == ("open", "2026-11-29T04:00:00+01:00")
    assert by_clinic["newyork"]["state"] == "closed"
    assert by_clinic["newyork"]["next_opening"] == "2026-11-29T02:00:00-05:00"


def test_a_step_that_cannot_end_before_the_cutoff_is_not_allowed() -> None:
    rows = clinic_windows(
        fleet(kinshasa={"clinic_timezone": "Africa/Kinshasa", "clinic_maintenance_windows": WEEKLY}),
        "maintenance",
        parse_step("90m"),
        SUNDAY,
    )
    assert (rows[0]["state"], rows[0]["allowed"]) == ("cutoff", False)


def test_freeze_exclusions_no_windows_and_bad_data() -> None:
    frozen = {"clinicops_freeze": True, "clinicops_freeze_reason": "audit week"}
    christmas = [{"date": "2026-11-29", "reason": "strike"}]
    rows = clinic_windows(
        fleet(
            frozen={"clinic_timezone": "Africa/Kinshasa", "clinic_maintenance_windows": WEEKLY, **frozen},
            excluded={
                "clinic_timezone": "Africa/Kinshasa",
                "clinic_maintenance_windows": WEEKLY,
                "clinic_maintenance_exclusions": christmas,
            },
            free={"clinic_timezone": "Europe/Paris"},
            nozone={"clinic_maintenance_windows": WEEKLY},
            badzone={"clinic_timezone": "Mars/Olympus", "clinic_maintenance_windows": WEEKLY},
        ),
        "maintenance",
        0,
        SUNDAY,
    )
    states = {row["clinic"]: (row["state"], row["allowed"]) for row in rows}
    assert states == {
        "frozen": ("frozen", False),
        "excluded": ("excluded", False),
        "free": ("unrestricted", True),  # as the gate treats a clinic without windows
        "nozone": ("invalid", False),
        "badzone": ("invalid", False),
    }
    assert "Mars/Olympus" in next(row["reason"] for row in rows if row["clinic"] == "badzone")


def test_step_and_at_are_checked() -> None:
    assert parse_step("1h30m") == 5400 and parse_step(None) == 0
    assert parse_at("2026-11-29T01:30:00Z") == SUNDAY
    assert parse_step("90") == 90  # seconds, as the gate's step_duration reads a bare number
    for bad in ("soon", "-5m"):
        with pytest.raises(UsageError, match="--step"):
            parse_step(bad)
    with pytest.raises(UsageError, match="needs a UTC offset"):
        parse_at("2026-11-29T01:30:00")
    with pytest.raises(UsageError, match="not an ISO 8601 time"):
        parse_at("sunday")


def test_the_command_prints_json_and_exits_2_on_invalid_window_data(
    monkeypatch: pytest.MonkeyPatch, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = fleet(kinshasa={"clinic_timezone": "Africa/Kinshasa", "clinic_maintenance_windows": WEEKLY})
    monkeypatch.setattr(inventory_module, "resolve_fleet", lambda *_args, **_kwargs: good)
    argv = ["windows", "-i", str(inventory_dir), "--at", "2026-11-29T01:30:00Z", "--procedure", "deploy"]
    assert main([*argv, "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)[0]["state"] == "open"
    bad_window = [{**WEEKLY[0], "cutoff": "3h"}]
    bad = fleet(kinshasa={"clinic_timezone": "Africa/Kinshasa", "clinic_maintenance_windows": bad_window})
    monkeypatch.setattr(inventory_module, "resolve_fleet", lambda *_args, **_kwargs: bad)
    assert main(argv) == EXIT_USAGE
    assert "cutoff" in capsys.readouterr().out


# -- the default step of `clinicops windows` is the one each gated playbook gives the gate -----------


def test_the_gated_procedures_step_durations_are_their_playbooks() -> None:
    """The CLI judges windows with the step each playbook gives the gate, so it answers as the gate does."""
    from clinicops.cli import PROCEDURES
    from clinicops.project import project_root

    gated = {name: procedure for name, procedure in PROCEDURES.items() if procedure.gated}
    assert sorted(gated) == ["deploy", "maintenance", "restore", "rollback"]
    for name, procedure in gated.items():
        text = (project_root() / "playbooks" / f"{procedure.playbook}.yml").read_text()
        assert re.search(rf"window_gate_procedure: {name}\n", text), name
        step = re.search(r"window_gate_step_duration: \"\{\{ \w+ \| default\('([^']+)'\) \}\}\"", text)
        assert step and step.group(1) == procedure.window_step, name


def test_windows_judges_a_gated_procedure_with_its_playbooks_step(
    monkeypatch: pytest.MonkeyPatch, inventory_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = fleet(kinshasa={"clinic_timezone": "Africa/Kinshasa", "clinic_maintenance_windows": WEEKLY})
    monkeypatch.setattr(inventory_module, "resolve_fleet", lambda *_args, **_kwargs: good)
    # 03:35 WAT: new steps until 03:45; deploy's 15 min step no longer fits, a step of 0 does
    argv = ["windows", "-i", str(inventory_dir), "--at", "2026-11-29T02:35:00Z", "--procedure", "deploy", "--json"]
    assert main(argv) == EXIT_OK
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["state"], row["step_duration_s"]) == ("cutoff", 900)
    assert main([*argv, "--step", "0"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)[0]["state"] == "open"
    assert main([*argv[:-3], "--procedure", "rotate_logs", "--json"]) == EXIT_OK  # not gated here: no step
    assert json.loads(capsys.readouterr().out)[0]["state"] == "open"


# -- durations and times for people --------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (59, "59 s"), (60, "1 min"), (4320, "1 h 12 min"), (11520, "3 h 12 min"), (90000, "1 d 1 h")],
)
def test_span_text(seconds: int, text: str) -> None:
    assert span_text(seconds) == text
    assert span_text(-seconds) == text  # an overrun is said by the caller


def test_local_text_is_the_clinics_own_time() -> None:
    opening = datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    assert local_text(opening, "America/New_York") == "Sun 2026-11-29 02:00 EST"
    assert local_text(opening, "Africa/Kinshasa") == "Sun 2026-11-29 08:00 WAT"
    assert local_text(opening, None) == "Sun 2026-11-29 07:00 UTC"
    assert local_text(opening, "Mars/Olympus") == "Sun 2026-11-29 07:00 UTC"


def test_parse_duration_needs_a_unit_and_more_than_nothing() -> None:
    assert parse_duration("6h", "--wait-for-window") == 6 * 3600
    assert parse_duration("1h30m", "--wait-for-window") == 5400
    for bad, problem in (("45", "give a unit"), ("soon", "is not a duration"), ("0m", "must be more than 0")):
        with pytest.raises(UsageError, match=problem) as raised:
            parse_duration(bad, "--step-duration")
        assert "--step-duration" in str(raised.value) and str(raised.value).endswith("nothing was run")


# -- waiting for a window before a wave ----------------------------------------------------------

# 01:30 UTC on Sunday: open in Kinshasa (02:30 WAT); in New York the window opens at 02:00 EST (07:00
# UTC, in 5 h 30 min), in Los Angeles at 02:00 PST (10:00 UTC).
NEW_YORK = {"clinic_timezone": "America/New_York", "clinic_maintenance_windows": WEEKLY}
LOS_ANGELES = {"clinic_timezone": "America/Los_Angeles", "clinic_maintenance_windows": WEEKLY}
KINSHASA = {"clinic_timezone": "Africa/Kinshasa", "clinic_maintenance_windows": WEEKLY}


class FakeClock:
    """The wall clock of a wait: sleeping moves it on, and nothing really sleeps."""

    def __init__(self, start: datetime = SUNDAY, tick: float = 1.0) -> None:
        self.tick = tick
        self.now = start
        self.slept = 0.0
        self.naps = 0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert 0 < seconds <= self.tick  # short naps: a Ctrl-C is seen within a tick
        self.slept += seconds
        self.naps += 1
        self.now += timedelta(seconds=seconds)


def waiter(clock: FakeClock, max_s: int = 24 * 3600, procedure: str = "maintenance", **hostvars: Any) -> WindowWait:
    return WindowWait(fleet(**hostvars), procedure, max_s=max_s, clock=clock, sleep=clock.sleep)


def wait_for(wait: WindowWait, *hosts: str, stopped: Any = lambda: False) -> tuple[bool, list[str]]:
    said: list[str] = []
    went = wait(Wave(2, "wave 2", hosts), said.append, stopped)
    return went, said


def test_a_wave_with_an_open_clinic_does_not_wait() -> None:
    clock = FakeClock()
    went, said = wait_for(waiter(clock, kinshasa=KINSHASA, newyork=NEW_YORK), "kinshasa", "newyork")
    assert (went, said, clock.slept) == (True, [], 0.0)


def test_a_clinic_without_windows_is_open() -> None:
    clock = FakeClock()
    went, said = wait_for(
        waiter(clock, paris={"clinic_timezone": "Europe/Paris"}, newyork=NEW_YORK), "paris", "newyork"
    )
    assert (went, said, clock.slept) == (True, [], 0.0)


def test_a_closed_wave_waits_for_its_first_window_then_goes() -> None:
    clock = FakeClock()
    wait = waiter(clock, losangeles=LOS_ANGELES, newyork=NEW_YORK)
    went, said = wait_for(wait, "losangeles", "newyork")
    assert went is True
    assert said == ["waiting for the window of newyork (opens Sun 2026-11-29 02:00 EST, in 5 h 30 min); Ctrl-C stops"]
    assert clock.now == datetime(2026, 11, 29, 7, 0, tzinfo=UTC)  # and not a second later
    assert clock.slept == pytest.approx(5.5 * 3600)
    assert wait.rows(["newyork"], clock.now)[0]["state"] == "open"  # what the gate will see


def test_no_wait_past_the_limit() -> None:
    clock = FakeClock()
    went, said = wait_for(waiter(clock, max_s=2 * 3600, newyork=NEW_YORK), "newyork")
    assert (went, clock.slept) == (True, 0.0)
    assert said == [
        "wave 2 (wave 2): the first window to open is newyork's, Sun 2026-11-29 02:00 EST (in 5 h 30 min), after the "
        "--wait-for-window limit of 2 h; the wave runs now and the gate skips the clinics still closed"
    ]


def test_without_wait_for_window_it_only_says_the_gate_will_skip() -> None:
    clock = FakeClock()
    went, said = wait_for(waiter(clock, max_s=0, newyork=NEW_YORK), "newyork")
    assert (went, clock.slept) == (True, 0.0)
    assert said == [
        "wave 2 (wave 2): no clinic is in a maintenance window, the gate will skip them; the first to open is "
        "newyork, Sun 2026-11-29 02:00 EST (in 5 h 30 min); --wait-for-window waits for it"
    ]


def test_a_fixed_instant_is_never_waited_for() -> None:
    clock = FakeClock()
    wait = waiter(clock, newyork=NEW_YORK)
    wait.now = SUNDAY - timedelta(hours=1)
    went, said = wait_for(wait, "newyork")
    assert (went, clock.slept) == (True, 0.0)
    assert "(in 6 h 30 min)" in said[0]  # judged at --now, not at the clock


def test_ctrl_c_stops_the_wait() -> None:
    clock = FakeClock()
    went, said = wait_for(waiter(clock, newyork=NEW_YORK), "newyork", stopped=lambda: clock.naps >= 3)
    assert went is False
    assert clock.naps == 3 and len(said) == 1


def test_a_step_that_no_longer_fits_waits_for_the_next_window() -> None:
    # 03:35 WAT: the window takes new steps until 03:45; a 45 min step waits for next Sunday's
    clock = FakeClock(datetime(2026, 11, 29, 2, 35, tzinfo=UTC), tick=60.0)
    wait = waiter(clock, max_s=8 * 24 * 3600, kinshasa=KINSHASA)
    wait.step_s, wait.tick_s = 45 * 60, 60.0
    went, said = wait_for(wait, "kinshasa")
    assert went is True
    assert said == [
        "waiting for the window of kinshasa (opens Sun 2026-12-06 02:00 WAT, in 6 d 22 h 25 min); Ctrl-C stops"
    ]
    assert clock.now == datetime(2026, 12, 6, 1, 0, tzinfo=UTC)


def test_frozen_clinics_have_no_opening_to_wait_for() -> None:
    clock = FakeClock()
    frozen = NEW_YORK | {"clinicops_freeze": True, "clinicops_freeze_reason": "audit"}
    went, said = wait_for(waiter(clock, newyork=frozen), "newyork")
    assert (went, clock.slept) == (True, 0.0)
    assert said == [
        "wave 2 (wave 2): no maintenance window of its clinics opens (frozen, or none within 8 years); "
        "the gate will skip them"
    ]


def test_invalid_window_data_is_left_to_the_gate() -> None:
    clock = FakeClock()
    broken = {"clinic_timezone": "Mars/Olympus", "clinic_maintenance_windows": WEEKLY}
    went, said = wait_for(waiter(clock, broken=broken), "broken")
    assert (went, said, clock.slept) == (True, [], 0.0)  # the gate fails it, whenever it runs
    went, said = wait_for(waiter(clock, broken=broken, newyork=NEW_YORK), "broken", "newyork")
    assert went is True and said[0].startswith("waiting for the window of newyork")


def test_windows_that_cannot_be_evaluated_are_left_to_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    from clinicops import windows

    def missing(_name: str) -> Any:
        raise ImportError("No module named 'dateutil'")

    monkeypatch.setattr(windows, "_collection_module", missing)
    went, said = wait_for(waiter(FakeClock(), newyork=NEW_YORK), "newyork")
    assert went is True
    assert said == [
        "wave 2 (wave 2): the maintenance windows cannot be evaluated here (No module named 'dateutil'); "
        "the gate decides"
    ]
