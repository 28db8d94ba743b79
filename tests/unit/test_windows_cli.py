"""``clinicops windows``: the gate's evaluator over the inventory's window data, one row per clinic."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clinicops import inventory as inventory_module
from clinicops.cli import main
from clinicops.errors import EXIT_OK, EXIT_USAGE, UsageError
from clinicops.inventory import Fleet
from clinicops.windows import clinic_windows, parse_at, parse_step

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
