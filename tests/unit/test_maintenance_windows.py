"""Maintenance windows: the one evaluator of the gate, the CLI and the rendered AWX/systemd triggers.

DST in several zones (gap, fold, 30-minute shift, southern hemisphere, none), cross-midnight
windows, month ends, numbered weekdays, leap days, cutoff arithmetic, exclusions, freeze and
override, validation messages, and properties over random instants.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.clinicops.runbook.plugins.filter.maintenance_window import FilterModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.maintenance_windows import (
    STATES,
    WindowError,
    evaluate,
    localize,
    next_openings,
    occurrences_between,
    parse_duration,
    to_awx_rrule,
    to_systemd_oncalendar,
    validate,
)
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

WEEKLY = {"name": "weekly", "rrule": "FREQ=WEEKLY;BYDAY=SU", "start": "02:00", "duration": "2h"}
MONTHLY = {"name": "monthly", "rrule": "FREQ=MONTHLY;BYDAY=1SU", "start": "02:00", "duration": "4h"}


def window(**fields: object) -> dict[str, object]:
    return {**WEEKLY, **fields}


def at(zone: str, text: str, fold: int = 0) -> datetime:
    """A local wall time in ``zone`` (fold=1 for the second of two on a fall-back day)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone), fold=fold)


def state(zone: str, windows: list[dict[str, object]], now: datetime, exclusions=(), **options: object) -> dict:
    return evaluate(zone, windows, list(exclusions), now, **options)


def starts(result: dict) -> datetime:
    return datetime.fromisoformat(result["start"])


def elapsed(result: dict) -> timedelta:
    return datetime.fromisoformat(result["end"]) - datetime.fromisoformat(result["start"])


# --- DST -------------------------------------------------------------------------------------


def test_new_york_spring_forward_start_in_the_gap_moves_to_the_end_of_the_gap():
    weekly = window(start="02:30")
    before = state("America/New_York", [weekly], at("America/New_York", "2026-03-08T01:59"))
    assert before["state"] == "closed"
    assert before["next_opening"] == "2026-03-08T03:00:00-04:00"
    inside = state("America/New_York", [weekly], at("America/New_York", "2026-03-08T03:00"))
    assert inside["state"] == "open"
    assert inside["start"] == "2026-03-08T03:00:00-04:00"
    assert inside["end"] == "2026-03-08T05:00:00-04:00"
    assert elapsed(inside) == timedelta(hours=2)
    # The week after, 02:30 exists again.
    assert inside["next_opening"] == "2026-03-15T02:30:00-04:00"


def test_new_york_fall_back_ambiguous_start_is_the_first_and_the_duration_is_elapsed():
    weekly = window(start="01:30")
    first = state("America/New_York", [weekly], at("America/New_York", "2026-11-01T01:30", fold=0))
    assert first["state"] == "open"
    assert first["start"] == "2026-11-01T01:30:00-04:00"
    # 2 real hours from 01:30 EDT end at 02:30 EST: one hour later on the clock, not two.
    assert first["end"] == "2026-11-01T02:30:00-05:00"
    assert elapsed(first) == timedelta(hours=2)
    assert state("America/New_York", [weekly], at("America/New_York", "2026-11-01T01:29", fold=0))["state"] == "closed"
    # The second 01:30 (EST) is inside the window that opened at the first one.
    second = state("America/New_York", [weekly], at("America/New_York", "2026-11-01T01:30", fold=1))
    assert second["state"] == "open" and second["start"] == first["start"]


def test_paris_spring_forward_and_fall_back():
    weekly = window(start="02:30")
    spring = state("Europe/Paris", [weekly], at("Europe/Paris", "2026-03-29T03:05"))
    assert spring["start"] == "2026-03-29T03:00:00+02:00"
    assert spring["end"] == "2026-03-29T05:00:00+02:00"
    autumn = state("Europe/Paris", [weekly], at("Europe/Paris", "2026-10-25T02:45", fold=0))
    assert autumn["start"] == "2026-10-25T02:30:00+02:00"
    assert autumn["end"] == "2026-10-25T03:30:00+01:00"
    assert elapsed(autumn) == timedelta(hours=2)
    assert autumn["reason"] == "open: weekly window until 03:30 CET"


def test_a_window_spanning_the_change_lasts_two_elapsed_hours():
    spanning = window(start="01:30")  # Paris springs from 02:00 to 03:00 inside it
    result = state("Europe/Paris", [spanning], at("Europe/Paris", "2026-03-29T01:45"))
    assert result["start"] == "2026-03-29T01:30:00+01:00"
    assert result["end"] == "2026-03-29T04:30:00+02:00"
    assert elapsed(result) == timedelta(hours=2)
    assert state("Europe/Paris", [spanning], at("Europe/Paris", "2026-03-29T04:29"))["state"] == "open"
    assert state("Europe/Paris", [spanning], at("Europe/Paris", "2026-03-29T04:30"))["state"] == "closed"


def test_kinshasa_has_no_dst_every_sunday_opens_at_the_same_offset():
    openings = next_openings("Africa/Kinshasa", [WEEKLY], [], datetime(2026, 1, 1, tzinfo=UTC), count=53)
    assert len(openings) == 53
    assert {item["start"][10:] for item in openings} == {"T02:00:00+01:00"}
    assert {item["end"][10:] for item in openings} == {"T04:00:00+01:00"}
    assert all(date.fromisoformat(item["start"][:10]).weekday() == 6 for item in openings)


def test_sydney_southern_hemisphere_springs_forward_in_october():
    weekly = window(start="02:30")
    spring = state("Australia/Sydney", [weekly], at("Australia/Sydney", "2026-10-04T03:10"))
    assert spring["start"] == "2026-10-04T03:00:00+11:00"
    assert elapsed(spring) == timedelta(hours=2)
    autumn = state("Australia/Sydney", [weekly], at("Australia/Sydney", "2026-04-05T02:40", fold=0))
    assert autumn["start"] == "2026-04-05T02:30:00+11:00"
    assert autumn["end"] == "2026-04-05T03:30:00+10:00"


def test_lord_howe_half_hour_shift():
    spring = state("Australia/Lord_Howe", [window(start="02:15")], at("Australia/Lord_Howe", "2026-10-04T02:40"))
    assert spring["start"] == "2026-10-04T02:30:00+11:00"
    assert spring["end"] == "2026-10-04T04:30:00+11:00"
    autumn = state("Australia/Lord_Howe", [window(start="01:45")], at("Australia/Lord_Howe", "2026-04-05T01:50"))
    assert autumn["start"] == "2026-04-05T01:45:00+11:00"
    assert autumn["end"] == "2026-04-05T03:15:00+10:30"  # 2 elapsed hours, 1 h 30 min on the clock
    assert elapsed(autumn) == timedelta(hours=2)


@pytest.mark.parametrize(
    ("zone", "local", "expected"),
    [
        ("America/New_York", "2026-03-08T02:30", "2026-03-08T03:00:00-04:00"),
        ("America/New_York", "2026-11-01T01:30", "2026-11-01T01:30:00-04:00"),
        ("Europe/Paris", "2026-03-29T02:00", "2026-03-29T03:00:00+02:00"),
        ("Europe/Paris", "2026-10-25T02:30", "2026-10-25T02:30:00+02:00"),
        ("Australia/Lord_Howe", "2026-10-04T02:00", "2026-10-04T02:30:00+11:00"),
        ("Australia/Lord_Howe", "2026-04-05T01:59", "2026-04-05T01:59:00+11:00"),
        ("Africa/Kinshasa", "2026-07-01T02:00", "2026-07-01T02:00:00+01:00"),
        ("Pacific/Apia", "2011-12-30T02:00", "2011-12-31T00:00:00+14:00"),  # a whole day skipped
    ],
)
def test_localize_rules(zone: str, local: str, expected: str):
    assert localize(datetime.fromisoformat(local), ZoneInfo(zone)).astimezone(ZoneInfo(zone)).isoformat() == expected


# --- rules --------------------------------------------------------------------------------


def test_a_window_crossing_midnight_belongs_to_its_start_day():
    saturday_night = window(name="night", rrule="FREQ=WEEKLY;BYDAY=SA", start="23:00", duration="3h")
    result = state("Africa/Kinshasa", [saturday_night], at("Africa/Kinshasa", "2026-11-29T01:00"))  # a Sunday
    assert result["state"] == "open"
    assert result["start"] == "2026-11-28T23:00:00+01:00"
    assert result["end"] == "2026-11-29T02:00:00+01:00"
    assert state("Africa/Kinshasa", [saturday_night], at("Africa/Kinshasa", "2026-11-29T02:00"))["state"] == "closed"
    # Saturday 01:00 is not inside Friday's night: the rule matches the start day only.
    assert state("Africa/Kinshasa", [saturday_night], at("Africa/Kinshasa", "2026-11-28T01:00"))["state"] == "closed"
    # An exclusion of the Sunday excludes the Saturday-night window that runs into it.
    sunday_off = [{"date": "2026-11-29", "reason": "inventory"}]
    excluded = state("Africa/Kinshasa", [saturday_night], at("Africa/Kinshasa", "2026-11-28T23:30"), sunday_off)
    assert excluded["state"] == "excluded"
    assert excluded["reason"] == "excluded: inventory (2026-11-29)"


def test_last_day_of_month_in_leap_and_other_years():
    last = window(name="month-end", rrule="FREQ=MONTHLY;BYMONTHDAY=-1", start="22:00")
    found = occurrences_between(
        "Africa/Kinshasa", [last], [], datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 4, 1, tzinfo=UTC)
    )
    days = [item["start"][:10] for item in found]
    assert "2027-02-28" in days and "2028-02-29" in days and "2028-02-28" not in days
    assert days[:3] == ["2027-01-31", "2027-02-28", "2027-03-31"]
    assert len(days) == 15


def test_first_sunday_of_the_month():
    found = next_openings("Europe/Paris", [MONTHLY], [], datetime(2026, 1, 1, tzinfo=UTC), count=6)
    assert [item["start"][:10] for item in found] == [
        "2026-01-04",
        "2026-02-01",
        "2026-03-01",
        "2026-04-05",
        "2026-05-03",
        "2026-06-07",
    ]


def test_leap_day_window_opens_every_four_years_and_across_2100():
    leap = window(name="leap", rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", start="03:00")
    result = state("Africa/Kinshasa", [leap], at("Africa/Kinshasa", "2026-03-01T00:00"))
    assert result["state"] == "closed"
    assert result["next_opening"] == "2028-02-29T03:00:00+01:00"
    assert result["reason"] == "closed: next opening Tue 2028-02-29 03:00 WAT (leap window)"
    assert state("Africa/Kinshasa", [leap], at("Africa/Kinshasa", "2028-02-29T04:00"))["state"] == "open"
    across = state("Africa/Kinshasa", [leap], at("Africa/Kinshasa", "2096-03-01T00:00"))
    assert across["next_opening"] == "2104-02-29T03:00:00+01:00"  # 2100 is not a leap year


def test_interval_counts_from_the_anchor():
    fortnightly = window(name="fortnight", rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=SU", anchor="2026-01-04")
    found = next_openings("Africa/Kinshasa", [fortnightly], [], datetime(2026, 1, 1, tzinfo=UTC), count=3)
    assert [item["start"][:10] for item in found] == ["2026-01-04", "2026-01-18", "2026-02-01"]
    # Nothing opens before the anchor.
    later = window(name="later", anchor="2026-06-07")
    assert next_openings("Africa/Kinshasa", [later], [], datetime(2026, 1, 1, tzinfo=UTC), count=1)[0]["start"] == (
        "2026-06-07T02:00:00+01:00"
    )


def test_procedures_limit_which_windows_count():
    deploy_only = window(name="deploys", procedures=["deploy"])
    now = at("Africa/Kinshasa", "2026-11-29T02:30")
    assert state("Africa/Kinshasa", [deploy_only], now, procedure="deploy")["state"] == "open"
    refused = state("Africa/Kinshasa", [deploy_only], now, procedure="maintenance")
    assert (refused["state"], refused["next_opening"]) == ("closed", None)
    assert refused["reason"] == "closed: no maintenance window allows maintenance"
    assert state("Africa/Kinshasa", [deploy_only], now)["state"] == "open"  # no procedure: any window
    # Overlapping windows: the one that allows the procedure and closes last wins.
    both = state("Africa/Kinshasa", [WEEKLY, MONTHLY], at("Africa/Kinshasa", "2026-12-06T03:00"), procedure="x")
    assert (both["window"], both["end"]) == ("monthly", "2026-12-06T06:00:00+01:00")


def test_no_window_is_closed_without_next_opening():
    result = state("Africa/Kinshasa", [], at("Africa/Kinshasa", "2026-11-29T02:30"))
    assert (result["state"], result["allowed"], result["next_opening"]) == ("closed", False, None)
    assert result["reason"] == "closed: no maintenance window is defined"


# --- cutoff arithmetic ------------------------------------------------------------------------

CUT = window(cutoff="30m")  # 02:00-04:00, no new step after 03:30


@pytest.mark.parametrize(
    ("local", "step", "expected", "must_start_by"),
    [
        ("2026-11-29T02:00", 0, "open", "2026-11-29T03:30:00+01:00"),
        ("2026-11-29T03:29:59", 0, "open", "2026-11-29T03:30:00+01:00"),
        ("2026-11-29T03:30", 0, "cutoff", "2026-11-29T03:30:00+01:00"),
        ("2026-11-29T03:59", 0, "cutoff", "2026-11-29T03:30:00+01:00"),
        ("2026-11-29T02:45", 45 * 60, "open", "2026-11-29T02:45:00+01:00"),
        ("2026-11-29T02:45:01", 45 * 60, "cutoff", "2026-11-29T02:45:00+01:00"),
        ("2026-11-29T02:00", 91 * 60, "cutoff", "2026-11-29T01:59:00+01:00"),
        ("2026-11-29T04:00", 0, "closed", None),
        ("2026-11-29T01:59", 0, "closed", None),
    ],
)
def test_cutoff_depends_on_the_step(local: str, step: int, expected: str, must_start_by: str | None):
    result = state("Africa/Kinshasa", [CUT], at("Africa/Kinshasa", local), step_duration=step)
    assert result["state"] == expected
    assert result["allowed"] is (expected == "open")
    assert result["must_start_by"] == must_start_by
    if expected != "closed":
        assert result["cutoff_at"] == "2026-11-29T03:30:00+01:00"


def test_cutoff_reasons_name_the_step_and_the_time():
    late = state("Africa/Kinshasa", [CUT], at("Africa/Kinshasa", "2026-11-29T03:00"), step_duration=2700)
    assert late["reason"] == "cutoff: the step needs 45 min and the weekly window closes for new steps at 03:30 WAT"
    assert late["remaining_s"] == 3600
    closing = state("Africa/Kinshasa", [CUT], at("Africa/Kinshasa", "2026-11-29T03:40"))
    assert closing["reason"] == "cutoff: the weekly window closes for new steps at 03:30 WAT (it ends at 04:00 WAT)"
    opened = state("Africa/Kinshasa", [CUT], at("Africa/Kinshasa", "2026-11-29T02:10"), step_duration=600)
    assert opened["reason"] == "open: weekly window until 04:00 WAT, new steps until 03:20 WAT"


def test_max_start_delay_keeps_late_launches_out():
    delayed = window(cutoff="30m", max_start_delay="30m")
    on_time = state("Africa/Kinshasa", [delayed], at("Africa/Kinshasa", "2026-11-29T02:30"), step_duration=600)
    assert (on_time["state"], on_time["must_start_by"]) == ("open", "2026-11-29T02:30:00+01:00")
    late = state("Africa/Kinshasa", [delayed], at("Africa/Kinshasa", "2026-11-29T02:31"), step_duration=600)
    assert late["state"] == "cutoff"
    assert late["reason"] == "cutoff: the weekly window takes no new start after 02:30 WAT (max start delay 30 min)"
    # The step budget binds before the start delay when the step is long.
    long_step = state("Africa/Kinshasa", [delayed], at("Africa/Kinshasa", "2026-11-29T02:11"), step_duration=4800)
    assert (long_step["state"], long_step["must_start_by"]) == ("cutoff", "2026-11-29T02:10:00+01:00")
    assert long_step["reason"].startswith("cutoff: the step needs 1 h 20 min and the weekly window closes")
    assert state("Africa/Kinshasa", [delayed], at("Africa/Kinshasa", "2026-11-29T02:10"), step_duration=4800)["allowed"]


# --- exclusions, freeze, override -----------------------------------------------------------

DAILY = window(name="nightly", rrule="FREQ=DAILY", start="02:00", duration="1h")
NEW_YEAR = [{"yearly": "12-30..01-02", "reason": "New Year"}]


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ("2026-12-29T02:30", "open"),
        ("2026-12-30T02:30", "excluded"),
        ("2027-01-01T02:30", "excluded"),
        ("2027-01-02T02:30", "excluded"),
        ("2027-01-03T02:30", "open"),
        ("2027-12-31T12:00", "excluded"),
    ],
)
def test_a_yearly_exclusion_wraps_the_year_end(local: str, expected: str):
    result = state("Europe/Paris", [DAILY], at("Europe/Paris", local), NEW_YEAR)
    assert result["state"] == expected
    if expected == "excluded":
        assert result["reason"] == "excluded: New Year (12-30..01-02)"
        assert result["exclusion"] == "12-30..01-02"
        assert result["allowed"] is False


def test_next_opening_skips_excluded_occurrences():
    result = state("Europe/Paris", [DAILY], at("Europe/Paris", "2026-12-29T03:30"), NEW_YEAR)
    assert result["state"] == "closed"
    assert result["next_opening"] == "2027-01-03T02:00:00+01:00"
    christmas = [{"yearly": "12-24..12-26", "reason": "Christmas"}]
    sunday = state("Africa/Kinshasa", [WEEKLY], at("Africa/Kinshasa", "2028-12-20T12:00"), christmas)
    assert sunday["next_opening"] == "2028-12-31T02:00:00+01:00"  # Sunday 2028-12-24 is skipped
    assert sunday["reason"] == "closed: next opening Sun 2028-12-31 02:00 WAT (weekly window)"


def test_dated_and_timed_exclusions():
    exclusions = [
        {"date": date(2026, 11, 29), "reason": "audit"},
        {"from": "2026-12-05T20:00", "to": "2026-12-06T02:30", "reason": "migration"},
        {"from": "2026-12-19", "to": "2026-12-20"},
    ]
    zone = "Africa/Kinshasa"
    assert state(zone, [WEEKLY], at(zone, "2026-11-29T02:30"), exclusions)["reason"] == "excluded: audit (2026-11-29)"
    # The migration ends at 02:30 but overlapped the occurrence: the whole occurrence stays shut.
    shut = state(zone, [WEEKLY], at(zone, "2026-12-06T03:00"), exclusions)
    assert shut["state"] == "excluded" and shut["window"] == "weekly"
    assert shut["reason"] == "excluded: migration (2026-12-05T20:00..2026-12-06T02:30)"
    assert state(zone, [WEEKLY], at(zone, "2026-12-20T03:00"), exclusions)["reason"] == (
        "excluded: 2026-12-19..2026-12-20"
    )
    found = occurrences_between(zone, [WEEKLY], exclusions, at(zone, "2026-11-28T00:00"), at(zone, "2026-12-28T00:00"))
    assert [(item["start"][:10], item["excluded"]) for item in found] == [
        ("2026-11-29", "audit (2026-11-29)"),
        ("2026-12-06", "migration (2026-12-05T20:00..2026-12-06T02:30)"),
        ("2026-12-13", None),
        ("2026-12-20", "2026-12-19..2026-12-20"),
        ("2026-12-27", None),
    ]


def test_a_leap_day_yearly_exclusion_applies_in_leap_years_only():
    leap_off = [{"yearly": "02-29"}]
    assert state("Europe/Paris", [DAILY], at("Europe/Paris", "2028-02-29T02:30"), leap_off)["state"] == "excluded"
    assert state("Europe/Paris", [DAILY], at("Europe/Paris", "2027-02-28T02:30"), leap_off)["state"] == "open"
    assert state("Europe/Paris", [DAILY], at("Europe/Paris", "2027-03-01T02:30"), leap_off)["state"] == "open"


def test_freeze_beats_an_open_window_and_override_beats_everything():
    now = at("Africa/Kinshasa", "2026-11-29T02:30")
    frozen = state("Africa/Kinshasa", [WEEKLY], now, freeze=True, freeze_reason="year-end release freeze")
    assert (frozen["state"], frozen["allowed"]) == ("frozen", False)
    assert frozen["reason"] == "frozen: year-end release freeze"
    assert frozen["window"] == "weekly"  # the window times are still reported
    assert state("Africa/Kinshasa", [WEEKLY], now, freeze=True)["reason"] == "frozen: fleet freeze"
    override = state("Africa/Kinshasa", [WEEKLY], now, freeze=True, override_reason="  INC-42  security fix ")
    assert (override["state"], override["allowed"], override["overridden_state"]) == ("override", True, "frozen")
    assert override["reason"] == "override: INC-42 security fix (instead of frozen: fleet freeze)"
    closed = state("Africa/Kinshasa", [WEEKLY], at("Africa/Kinshasa", "2026-11-30T12:00"), override_reason="INC-43")
    assert (closed["state"], closed["overridden_state"], closed["window"]) == ("override", "closed", None)
    assert state("Africa/Kinshasa", [WEEKLY], now, override_reason="   ")["state"] == "open"  # blank is no override


def test_the_result_is_plain_json():
    result = state("America/New_York", [CUT], at("America/New_York", "2026-11-29T02:30"), step_duration=60)
    assert json.loads(json.dumps(result)) == result
    assert set(result) >= {
        "state",
        "allowed",
        "window",
        "start",
        "end",
        "cutoff_at",
        "must_start_by",
        "remaining_s",
        "next_opening",
        "reason",
    }
    assert result["now"] == "2026-11-29T02:30:00-05:00"


def test_now_may_be_an_iso_string_and_must_be_aware():
    assert state("Africa/Kinshasa", [WEEKLY], "2026-11-29T01:30:00Z")["state"] == "open"
    with pytest.raises(WindowError, match="now '2026-11-29T01:30:00' must be an aware date and time"):
        state("Africa/Kinshasa", [WEEKLY], "2026-11-29T01:30:00")


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rrule": "FREQ=FORTNIGHTLY"}, "window 'weekly': rrule 'FREQ=FORTNIGHTLY': FREQ=FORTNIGHTLY is refused"),
        ({"rrule": "FREQ=HOURLY"}, "FREQ=HOURLY is refused: a window opens at most once a day"),
        ({"rrule": "BYDAY=SU"}, "FREQ is required"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=XX"}, "BYDAY=XX: 'XX' is not a weekday"),
        ({"rrule": "FREQ=WEEKLY"}, "FREQ=WEEKLY needs BYDAY"),
        ({"rrule": "FREQ=MONTHLY"}, "FREQ=MONTHLY needs BYMONTHDAY or BYDAY"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=1SU"}, "a numbered weekday goes with FREQ=MONTHLY or YEARLY only"),
        ({"rrule": "FREQ=MONTHLY;BYDAY=6SU"}, "the number must be 1 to 5"),
        ({"rrule": "FREQ=MONTHLY;BYMONTHDAY=32"}, "'32' is not a whole number from 1 to 31 (or -31 to -1)"),
        ({"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "no month of BYMONTH=2 has a day BYMONTHDAY=30"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=SU;UNTIL=20270101T000000Z"}, "UNTIL is refused"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=SU;COUNT=3"}, "COUNT is refused"),
        ({"rrule": "DTSTART:20260101T020000 RRULE:FREQ=WEEKLY;BYDAY=SU"}, "DTSTART is refused"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=3"}, "BYHOUR is refused: the window's start (HH:MM) is its time"),
        ({"rrule": "FREQ=YEARLY;BYWEEKNO=20"}, "BYWEEKNO is refused"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=SU;FOO=1"}, "unknown rule part FOO"),
        ({"rrule": "FREQ=WEEKLY;FREQ=DAILY;BYDAY=SU"}, "FREQ is given twice"),
        ({"rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU"}, "INTERVAL=2 counts from a first occurrence: add anchor"),
        (
            {"rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU", "anchor": "2026-01-07"},
            "anchor 2026-01-07 is not a day of rrule 'FREQ=WEEKLY;INTERVAL=2;BYDAY=SU' (its first day from there is "
            "2026-01-11)",
        ),
        ({"rrule": "FREQ=MONTHLY;BYDAY=SU;BYSETPOS=6"}, "does not open within 8 years"),
        ({"rrule": "FREQ=WEEKLY;BYMONTHDAY=1"}, "BYMONTHDAY does not go with FREQ=WEEKLY"),
        ({"rrule": 7}, "rrule 7 is not an RRULE body"),
        ({"duration": "0m"}, "window 'weekly': duration '0m' must be more than 0 and at most 7 days"),
        ({"duration": "8d"}, "duration '8d' must be more than 0 and at most 7 days"),
        ({"duration": "2 hours"}, "duration '2 hours' is not a duration such as"),
        ({"duration": -5}, "duration -5 is not a duration"),
        ({"cutoff": "2h"}, "window 'weekly': cutoff 2 h must be shorter than the duration 2 h"),
        ({"max_start_delay": "3h"}, "max_start_delay 3 h must be more than 0 and at most the duration 2 h"),
        ({"start": "25:00"}, "window 'weekly': start '25:00' is not a local time \"HH:MM\""),
        ({"start": "2am"}, "start '2am' is not a local time"),
        ({"start": 120}, 'start 120 must be a quoted "HH:MM" string (YAML reads an unquoted 02:00 as the number 120)'),
        ({"durations": "2h"}, "window 'weekly': unknown key durations (known: name, rrule, start"),
        ({"procedures": "deploy"}, "procedures must be a non-empty list"),
        ({"procedures": []}, "procedures must be a non-empty list"),
        ({"anchor": "2026-02-30"}, "anchor '2026-02-30' is not a date"),
        ({"name": ""}, "window #1: name is required"),
    ],
)
def test_invalid_windows_are_refused_with_a_clear_message(fields: dict[str, object], message: str):
    with pytest.raises(WindowError) as refused:
        validate("Africa/Kinshasa", [window(**fields)], [], clinic="kin-01")
    assert str(refused.value).startswith("clinic kin-01: ")
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("Europe/Pariss", "clinic kin-01: clinic_timezone 'Europe/Pariss' is not an IANA time zone"),
        ("", "clinic_timezone '' is not an IANA time zone"),
        ("localtime", "clinic_timezone 'localtime' is not an IANA time zone"),
        ("../etc/passwd", "is not an IANA time zone"),
        (None, "clinic_timezone None is not an IANA time zone"),
    ],
)
def test_invalid_zones_are_refused(zone: object, message: str):
    with pytest.raises(WindowError, match=re.escape(message)):
        validate(zone, [WEEKLY], [], clinic="kin-01")


@pytest.mark.parametrize(
    ("exclusion", "message"),
    [
        ({"date": "2026-13-01"}, "exclusion #1: date '2026-13-01' is not a date"),
        ({"date": "24/12/2026"}, "date '24/12/2026' is not a date YYYY-MM-DD"),
        ({"from": "2026-12-26", "to": "2026-12-24"}, "to 2026-12-24 is not after from 2026-12-26"),
        ({"from": "2026-12-24T10:00", "to": "2026-12-24T10:00"}, "to 2026-12-24T10:00 is not after from"),
        ({"from": "2026-12-24"}, "from needs a to"),
        ({"to": "2026-12-24"}, "to needs a from"),
        ({"from": "2026-12-24T10:00+01:00", "to": "2026-12-25"}, "is not a local date YYYY-MM-DD or date and time"),
        ({"yearly": "12-32"}, "yearly '12-32': 12-32 is not a day of the year"),
        ({"yearly": "12-24-12-26"}, 'yearly \'12-24-12-26\' is not "MM-DD" or "MM-DD..MM-DD"'),
        ({"date": "2026-12-24", "yearly": "12-24"}, "needs exactly one of date, from/to or yearly, got date, yearly"),
        ({"reason": "nothing"}, "exclusion #1 (nothing): needs exactly one of date, from/to or yearly, got none"),
        ({"date": "2026-12-24", "why": "x"}, "exclusion #1: unknown key why"),
    ],
)
def test_invalid_exclusions_are_refused(exclusion: dict[str, object], message: str):
    with pytest.raises(WindowError, match=re.escape(message)):
        validate("Africa/Kinshasa", [WEEKLY], [exclusion], clinic="kin-01")


def test_window_names_are_unique_and_lists_are_lists():
    with pytest.raises(WindowError, match="two windows are named 'weekly'"):
        validate("Africa/Kinshasa", [WEEKLY, WEEKLY])
    with pytest.raises(WindowError, match="windows must be a list, got dict"):
        validate("Africa/Kinshasa", WEEKLY)
    with pytest.raises(WindowError, match="window #1 must be a mapping"):
        validate("Africa/Kinshasa", ["FREQ=WEEKLY"])


def test_invalid_evaluation_inputs():
    with pytest.raises(WindowError, match="step_duration -1 must be a number of seconds"):
        state("Africa/Kinshasa", [WEEKLY], at("Africa/Kinshasa", "2026-11-29T02:30"), step_duration=-1)
    with pytest.raises(WindowError, match="freeze must be true or false"):
        state("Africa/Kinshasa", [WEEKLY], at("Africa/Kinshasa", "2026-11-29T02:30"), freeze="yes")


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("2h", 120), ("90m", 90), ("1h30m", 90), ("1h 30m", 90), ("45min", 45), ("1d", 1440), (30, 30), ("30", 30)],
)
def test_duration_syntax(text: object, minutes: int):
    assert parse_duration(text) == timedelta(minutes=minutes)


def test_valid_data_is_normalised():
    schedule = validate(
        "Africa/Kinshasa", [window(rrule="rrule:freq=weekly;byday=su;", cutoff=None)], [{"yearly": "12-25"}]
    )
    assert schedule.windows[0].rule == "FREQ=WEEKLY;BYDAY=SU"
    assert schedule.windows[0].cutoff == timedelta(0)
    assert schedule.windows[0].max_start_delay == timedelta(hours=2)
    assert schedule.exclusions[0].label == "12-25"


# --- properties ---------------------------------------------------------------------------------

ZONES = [
    "Africa/Kinshasa",
    "America/New_York",
    "Europe/Paris",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "UTC",
]
RULES = [
    "FREQ=DAILY",
    "FREQ=WEEKLY;BYDAY=SU",
    "FREQ=WEEKLY;BYDAY=SA,SU",
    "FREQ=MONTHLY;BYDAY=1SU",
    "FREQ=MONTHLY;BYDAY=-1SA",
    "FREQ=MONTHLY;BYMONTHDAY=-1",
    "FREQ=MONTHLY;BYDAY=SU;BYSETPOS=2",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
]
START_TIMES = ["00:00", "00:30", "01:30", "02:00", "02:15", "02:30", "03:00", "22:00", "23:00", "23:59"]


@st.composite
def windows_and_now(draw: st.DrawFn) -> tuple[str, dict[str, object], datetime, int]:
    duration = draw(st.integers(min_value=1, max_value=3 * 24 * 60))
    cutoff = draw(st.integers(min_value=0, max_value=duration - 1))
    delay = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=duration)))
    drawn = {
        "name": "w",
        "rrule": draw(st.sampled_from(RULES)),
        "start": draw(st.sampled_from(START_TIMES)),
        "duration": duration,
        "cutoff": cutoff,
        "max_start_delay": delay,
    }
    now = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 7 * 365 * 24 * 3600)))
    step = draw(st.integers(min_value=0, max_value=6 * 3600))
    return draw(st.sampled_from(ZONES)), drawn, now, step


@settings(max_examples=300, deadline=None)
@given(windows_and_now())
def test_evaluation_properties(case: tuple[str, dict[str, object], datetime, int]):
    zone, drawn, now, step = case
    result = evaluate(zone, [drawn], [{"yearly": "12-24..12-26"}], now, step_duration=step)
    assert result["state"] in STATES
    assert json.loads(json.dumps(result)) == result
    if result["state"] == "open":
        cutoff_at = datetime.fromisoformat(result["cutoff_at"])
        assert starts(result) <= now < cutoff_at
        assert now + timedelta(seconds=step) <= cutoff_at
        assert now <= datetime.fromisoformat(result["must_start_by"])
    if result["window"] is not None:
        assert starts(result) <= now < datetime.fromisoformat(result["end"])
        assert elapsed(result) == timedelta(minutes=drawn["duration"])
    else:
        assert result["state"] in ("closed", "excluded")
    following = datetime.fromisoformat(result["next_opening"])
    assert following > now
    assert following.utcoffset() == following.astimezone(ZoneInfo(zone)).utcoffset()
    assert not (12, 24) <= (following.month, following.day) <= (12, 26)


def transitions(zone: str, year: int) -> list[datetime]:
    """The instants (to the hour) at which ``zone`` changes its UTC offset during ``year``."""
    found, moment = [], datetime(year, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(ZoneInfo(zone)).utcoffset()
    while moment.year == year:
        moment += timedelta(hours=1)
        if moment.astimezone(ZoneInfo(zone)).utcoffset() != offset:
            found.append(moment)
            offset = moment.astimezone(ZoneInfo(zone)).utcoffset()
    return found


DST_CHANGES = [
    (zone, moment)
    for zone in ("America/New_York", "Europe/Paris", "Australia/Sydney", "Australia/Lord_Howe", "Pacific/Chatham")
    for moment in transitions(zone, 2026)
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(DST_CHANGES),
    st.integers(min_value=-36 * 3600, max_value=36 * 3600),
    st.sampled_from(START_TIMES),
    st.integers(min_value=1, max_value=6 * 60),
    st.integers(min_value=0, max_value=3 * 3600),
)
def test_evaluation_properties_around_dst_changes(change, shift, start, duration, step):
    """Daily windows evaluated within a day and a half of a change: elapsed durations, open only when the step fits."""
    zone, moment = change
    now = moment + timedelta(seconds=shift)
    daily = {"name": "w", "rrule": "FREQ=DAILY", "start": start, "duration": duration, "cutoff": duration // 4}
    result = evaluate(zone, [daily], [], now, step_duration=step)
    if result["window"] is not None:
        assert starts(result) <= now < datetime.fromisoformat(result["end"])
        assert elapsed(result) == timedelta(minutes=duration)
        local_start = starts(result).astimezone(ZoneInfo(zone))
        if (
            local_start.strftime("%H:%M") != start
        ):  # only when a gap swallowed that wall time: it opens at the gap's end
            asked = datetime.combine(local_start.date(), time.fromisoformat(start))
            round_trip = asked.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC).astimezone(ZoneInfo(zone))
            assert round_trip.replace(tzinfo=None) != asked
            assert asked < local_start.replace(tzinfo=None)
            assert (starts(result) - timedelta(seconds=1)).astimezone(ZoneInfo(zone)).utcoffset() != (
                local_start.utcoffset()
            )
    if result["allowed"]:
        assert now + timedelta(seconds=step) <= datetime.fromisoformat(result["cutoff_at"])
    assert datetime.fromisoformat(result["next_opening"]) > now


@settings(max_examples=100, deadline=None)
@given(windows_and_now())
def test_next_openings_are_ordered_open_and_match_the_evaluation(case: tuple[str, dict[str, object], datetime, int]):
    zone, drawn, now, _step = case
    openings = next_openings(zone, [drawn], [], now, count=3)
    assert openings, "a valid window always opens within the horizon"
    starts_at = [datetime.fromisoformat(item["start"]) for item in openings]
    assert starts_at == sorted(starts_at) and starts_at[0] > now
    assert evaluate(zone, [drawn], [], now)["next_opening"] == openings[0]["start"]
    at_opening = evaluate(zone, [drawn], [], starts_at[0])
    assert at_opening["state"] in ("open", "cutoff")
    assert at_opening["window"] == "w"


# --- AWX and systemd triggers ----------------------------------------------------------------


def test_awx_rrule_has_tzid_dtstart_and_interval():
    assert to_awx_rrule("Africa/Kinshasa", WEEKLY, "2026-01-01") == (
        "DTSTART;TZID=Africa/Kinshasa:20260101T020000 RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=SU"
    )
    assert to_awx_rrule("America/New_York", MONTHLY, date(2026, 1, 1)) == (
        "DTSTART;TZID=America/New_York:20260101T020000 RRULE:FREQ=MONTHLY;INTERVAL=1;BYDAY=SU;BYSETPOS=1"
    )
    fortnightly = window(rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=SU", anchor="2026-01-04", start="23:30")
    assert to_awx_rrule("Europe/Paris", fortnightly) == (
        "DTSTART;TZID=Europe/Paris:20260104T233000 RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=SU"
    )


def test_awx_rrule_refusals():
    with pytest.raises(WindowError, match="a dtstart_date"):
        to_awx_rrule("Africa/Kinshasa", WEEKLY)
    with pytest.raises(WindowError, match="differs from the window's anchor 2026-01-04"):
        to_awx_rrule("Africa/Kinshasa", window(anchor="2026-01-04"), "2026-01-11")
    with pytest.raises(WindowError, match="no BYDAY \\+ BYSETPOS equivalent"):
        to_awx_rrule("Africa/Kinshasa", window(rrule="FREQ=MONTHLY;BYDAY=1SA,1SU"), "2026-01-01")
    with pytest.raises(WindowError, match="clinic_timezone 'Mars/Olympus'"):
        to_awx_rrule("Mars/Olympus", WEEKLY, "2026-01-01")


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=WEEKLY;BYDAY=SU",
        "FREQ=MONTHLY;BYDAY=1SU",
        "FREQ=MONTHLY;BYDAY=-1FR",
        "FREQ=MONTHLY;BYDAY=1SU,3SU",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "FREQ=MONTHLY;BYMONTHDAY=-1",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    ],
)
def test_awx_rrule_opens_on_the_same_days_as_the_gate(rule: str):
    """AWX reads the rule with dateutil too: its days are the gate's days."""
    zone = "America/New_York"
    rendered = to_awx_rrule(zone, window(rrule=rule), "2026-01-01")
    awx_days = [moment.date() for moment in rrulestr(rendered).between(at(zone, "2026-01-01"), at(zone, "2034-01-01"))]
    gate = occurrences_between(zone, [window(rrule=rule)], [], at(zone, "2026-01-01"), at(zone, "2034-01-01"))
    assert awx_days == [date.fromisoformat(item["start"][:10]) for item in gate]
    assert len(awx_days) > 1


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("FREQ=DAILY", "*-*-* 02:00:00 Africa/Kinshasa"),
        ("FREQ=WEEKLY;BYDAY=SU", "Sun *-*-* 02:00:00 Africa/Kinshasa"),
        ("FREQ=WEEKLY;BYDAY=SA,SU", "Sat,Sun *-*-* 02:00:00 Africa/Kinshasa"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", "*-*~01 02:00:00 Africa/Kinshasa"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", "*-*-01,15 02:00:00 Africa/Kinshasa"),
        ("FREQ=MONTHLY;BYDAY=1SU", "Sun *-*-01..07 02:00:00 Africa/Kinshasa"),
        ("FREQ=MONTHLY;BYDAY=5SU", "Sun *-*-29..31 02:00:00 Africa/Kinshasa"),
        ("FREQ=MONTHLY;BYDAY=-1SU", "Sun *-*~07/1 02:00:00 Africa/Kinshasa"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "*-02-29 02:00:00 Africa/Kinshasa"),
        ("FREQ=YEARLY;BYMONTH=3,10;BYDAY=-1SU", "Sun *-03,10~07/1 02:00:00 Africa/Kinshasa"),
    ],
)
def test_systemd_oncalendar(rule: str, expected: str):
    assert to_systemd_oncalendar("Africa/Kinshasa", window(rrule=rule)) == expected


@pytest.mark.parametrize(
    ("rule", "anchor", "message"),
    [
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=SU", "2026-01-04", "INTERVAL=2 (systemd has no every-N-weeks/months"),
        ("FREQ=MONTHLY;BYDAY=SU;BYSETPOS=2", None, "BYSETPOS"),
        ("FREQ=MONTHLY;BYDAY=1SA,2SU", None, "numbered weekdays must all have the same number"),
        ("FREQ=MONTHLY;BYDAY=-2SU", None, "only weekdays numbered 1 to 5 or -1"),
        ("FREQ=YEARLY;BYDAY=20MO", None, "a numbered weekday of the year"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,-1", None, "mixes days from the start and from the end"),
    ],
)
def test_systemd_oncalendar_refuses_what_it_cannot_express(rule: str, anchor: str | None, message: str):
    with pytest.raises(WindowError) as refused:
        to_systemd_oncalendar("Africa/Kinshasa", window(rrule=rule, anchor=anchor))
    assert "cannot be written as a systemd OnCalendar expression" in str(refused.value)
    assert message in str(refused.value)


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def systemd_elapses(expression: str, base: datetime, count: int) -> list[datetime]:
    """When systemd would fire ``expression`` next, ``count`` times after ``base`` (UTC)."""
    assert SYSTEMD_ANALYZE is not None
    completed = subprocess.run(
        [
            SYSTEMD_ANALYZE,
            "calendar",
            f"--iterations={count}",
            f"--base-time={base.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC",
            expression,
        ],
        capture_output=True,
        text=True,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return [
        datetime.strptime(match, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        for match in re.findall(r"(?:Next elapse|Iter\. #\d+): \w{3} (\S+ \S+) UTC", completed.stdout)
    ]


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine")
@pytest.mark.parametrize(
    ("zone", "rule", "start", "base"),
    [
        ("Africa/Kinshasa", "FREQ=WEEKLY;BYDAY=SU", "02:00", "2026-01-01"),
        ("Europe/Paris", "FREQ=MONTHLY;BYDAY=1SU", "04:00", "2026-01-01"),
        ("America/New_York", "FREQ=MONTHLY;BYDAY=-1SA", "23:00", "2026-01-01"),
        ("Australia/Lord_Howe", "FREQ=MONTHLY;BYMONTHDAY=-1", "05:30", "2026-01-01"),
        ("Asia/Kolkata", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "01:00", "2026-01-01"),
        ("America/New_York", "FREQ=WEEKLY;BYDAY=SU", "01:30", "2026-10-01"),  # fall-back: once, at the first 01:30
        ("Europe/Paris", "FREQ=DAILY", "02:30", "2026-10-20"),  # fall-back in Paris
    ],
)
def test_systemd_fires_when_the_gate_opens(zone: str, rule: str, start: str, base: str):
    drawn = window(rrule=rule, start=start)
    fired = systemd_elapses(to_systemd_oncalendar(zone, drawn), datetime.fromisoformat(base + "T00:00+00:00"), 12)
    assert len(fired) == 12
    # next_openings looks 8 years ahead: a leap-day window has 2 openings there, systemd lists 12.
    gate = next_openings(zone, [drawn], [], datetime.fromisoformat(base + "T00:00+00:00"), count=12)
    assert len(gate) >= 2
    assert fired[: len(gate)] == [datetime.fromisoformat(item["start"]).astimezone(UTC) for item in gate]


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine")
def test_systemd_skips_a_start_in_the_spring_forward_gap_that_the_gate_moves():
    """Documented difference: the timer does not fire that day; the gate still opens at 03:00 (a manual run works)."""
    drawn = window(start="02:30")
    fired = systemd_elapses(to_systemd_oncalendar("America/New_York", drawn), datetime(2026, 3, 1, tzinfo=UTC), 3)
    assert [moment.date().isoformat() for moment in fired] == ["2026-03-01", "2026-03-15", "2026-03-22"]
    gate = next_openings("America/New_York", [drawn], [], datetime(2026, 3, 2, tzinfo=UTC), count=1)
    assert gate[0]["start"] == "2026-03-08T03:00:00-04:00"


# --- the filter plugin ----------------------------------------------------------------------------

FILTERS = FilterModule().filters()


def test_filter_evaluates_with_an_injected_now():
    result = FILTERS["maintenance_window"](
        "Africa/Kinshasa", [WEEKLY], [], procedure="maintenance", step_duration=600, now="2026-11-29T02:10:00+01:00"
    )
    assert (result["state"], result["must_start_by"]) == ("open", "2026-11-29T03:50:00+01:00")
    assert FILTERS["maintenance_window"]("Africa/Kinshasa", [WEEKLY], freeze="yes")["state"] == "frozen"
    assert FILTERS["maintenance_window"]("Africa/Kinshasa", [WEEKLY], override_reason="INC-1")["allowed"] is True


def test_filter_turns_invalid_data_into_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="maintenance_window: clinic kin-01: window 'weekly': duration"):
        FILTERS["maintenance_window"]("Africa/Kinshasa", [window(duration="0m")], clinic="kin-01")
    with pytest.raises(AnsibleFilterError, match="maintenance_windows_validate: clinic_timezone 'Nowhere'"):
        FILTERS["maintenance_windows_validate"]("Nowhere", [WEEKLY])
    with pytest.raises(AnsibleFilterError, match="maintenance_window: freeze 'perhaps' is not true or false"):
        FILTERS["maintenance_window"]("Africa/Kinshasa", [WEEKLY], freeze="perhaps")


def test_filter_validate_returns_the_normalised_data():
    data = FILTERS["maintenance_windows_validate"]("Africa/Kinshasa", [window(cutoff="30m")], [{"date": "2026-12-24"}])
    assert data["windows"][0] == {
        "name": "weekly",
        "rrule": "FREQ=WEEKLY;BYDAY=SU",
        "start": "02:00",
        "duration_s": 7200,
        "cutoff_s": 1800,
        "max_start_delay_s": 7200,
        "procedures": None,
        "anchor": None,
    }
    assert data["exclusions"] == [{"kind": "period", "label": "2026-12-24", "reason": ""}]
