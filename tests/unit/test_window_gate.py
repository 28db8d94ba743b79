"""The maintenance window gate: its decision (module_utils window_gate.decide) and its action plugin.

The decision is pure Python over the one evaluator: modes enforce, warn and override, the
unrestricted default for clinics without windows, the one-line messages, step durations and
refused options. The action plugin is run with a real Templar over fake task variables to prove
that its options default to the host's variables and that it never reports a change.
"""

from __future__ import annotations

from unittest.mock import MagicMock

import pytest
from ansible import template
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible_collections.clinicops.runbook.plugins.action.window_gate import ActionModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.maintenance_windows import (
    WindowError,
    evaluate,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.window_gate import (
    GateError,
    decide,
    step_seconds,
)

WEEKLY = {"name": "weekly", "rrule": "FREQ=WEEKLY;BYDAY=SU", "start": "02:00", "duration": "2h", "cutoff": "30m"}
CHRISTMAS = {"yearly": "12-24..12-26", "reason": "Christmas"}
KINSHASA = "Africa/Kinshasa"  # WAT, +01:00, no DST
LUBUMBASHI = "Africa/Lubumbashi"  # CAT, +02:00, no DST
SUNDAY_0230_WAT = "2026-11-29T02:30:00+01:00"  # 03:30 CAT in Lubumbashi
SUNDAY_0500_WAT = "2026-11-29T05:00:00+01:00"


def gate(now: str = SUNDAY_0230_WAT, timezone: str | None = KINSHASA, windows=(WEEKLY,), exclusions=(), **options):
    options.setdefault("clinic", "kinshasa")
    windows = list(windows) if isinstance(windows, tuple) else windows
    return decide(options.pop("procedure", "maintenance"), timezone, windows, list(exclusions), now, **options)


# ---- enforce ----------------------------------------------------------------------------------


def test_an_open_window_lets_the_clinic_through_with_the_evaluators_answer():
    decision = gate()
    assert decision["allowed"] is True and decision["skip"] is False and decision["mode"] == "enforce"
    assert decision["warning"] is None
    assert decision["window"] == evaluate(
        KINSHASA, [WEEKLY], [], SUNDAY_0230_WAT, procedure="maintenance", clinic="kinshasa"
    )  # the one evaluator, untouched
    assert decision["window"]["state"] == "open"
    assert decision["message"] == "open: weekly window until 04:00 WAT, new steps until 03:30 WAT"


def test_the_same_local_window_is_closed_one_zone_east_and_the_clinic_is_skipped_with_its_next_opening():
    hour = [{**WEEKLY, "duration": "1h", "cutoff": 0}]  # 02:00-03:00 local: open in Kinshasa at 02:30 WAT
    assert gate(windows=hour)["allowed"]
    decision = gate(windows=hour, timezone=LUBUMBASHI, clinic="lubumbashi")  # 03:30 CAT there
    assert decision["allowed"] is False and decision["skip"] is True
    assert decision["window"]["state"] == "closed"
    assert decision["window"]["next_opening"] == "2026-12-06T02:00:00+02:00"
    assert decision["message"] == (
        "skipped: window closed (closed: no maintenance window is open now; next opening 2026-12-06T02:00:00+02:00)"
    )


def test_a_step_that_cannot_finish_before_the_cutoff_is_skipped_with_the_cutoff_reason():
    decision = gate(now="2026-11-29T02:50:00+01:00", step_duration="45m")
    assert decision["skip"] and decision["window"]["state"] == "cutoff"
    assert decision["window"]["step_duration_s"] == 2700
    assert decision["message"] == (
        "skipped: window closed (cutoff: the step needs 45 min and the weekly window closes for new steps at "
        "03:30 WAT; next opening 2026-12-06T02:00:00+01:00)"
    )
    assert gate(now="2026-11-29T02:45:00+01:00", step_duration=2700)["allowed"]  # ends exactly at the cutoff


def test_an_exclusion_wins_over_an_open_window():
    decision = gate(now="2026-12-27T02:30:00+01:00", exclusions=[{"date": "2026-12-27", "reason": "audit"}])
    assert decision["skip"] and decision["window"]["state"] == "excluded"
    assert decision["message"] == (
        "skipped: window closed (excluded: audit (2026-12-27); next opening 2027-01-03T02:00:00+01:00)"
    )


def test_the_fleet_freeze_wins_over_an_open_window():
    decision = gate(freeze=True, freeze_reason="  year-end\nclose ")
    assert decision["skip"] and decision["window"]["state"] == "frozen"
    assert decision["message"].startswith("skipped: window closed (frozen: year-end close; next opening ")


def test_only_windows_allowing_the_procedure_count():
    maintenance_only = {**WEEKLY, "procedures": ["maintenance"]}
    assert gate(windows=[maintenance_only])["allowed"]
    assert gate(
        windows=[maintenance_only, {**WEEKLY, "name": "saturday", "rrule": "FREQ=WEEKLY;BYDAY=SA"}], procedure="deploy"
    )["message"] == (
        "skipped: window closed (closed: no deploy window is open now; next opening 2026-12-05T02:00:00+01:00)"
    )
    decision = gate(windows=[maintenance_only], procedure="deploy")
    assert decision["skip"]
    assert decision["message"] == (
        "skipped: window closed (closed: no maintenance window allows deploy; next opening none within 8 years)"
    )


# ---- warn -------------------------------------------------------------------------------------


def test_warn_mode_lets_a_closed_clinic_through_with_a_warning():
    decision = gate(now=SUNDAY_0500_WAT, mode="warn")
    assert decision["allowed"] is True and decision["skip"] is False and decision["mode"] == "warn"
    assert decision["window"]["state"] == "closed" and decision["window"]["allowed"] is False
    assert decision["message"] == (
        "warn: window closed (closed: no maintenance window is open now; next opening 2026-12-06T02:00:00+01:00); "
        "proceeding in warn mode"
    )
    assert decision["warning"] == "clinic kinshasa: " + decision["message"]


def test_warn_mode_is_silent_when_the_window_is_open():
    decision = gate(mode="warn")
    assert decision["allowed"] and decision["warning"] is None and decision["message"].startswith("open: ")


# ---- override ---------------------------------------------------------------------------------


def test_override_lets_a_closed_clinic_through_and_keeps_the_state_it_replaced():
    decision = gate(now=SUNDAY_0500_WAT, mode="override", override_reason=" INC-42:\tsecurity fix ")
    assert decision["allowed"] and not decision["skip"] and decision["mode"] == "override"
    assert decision["window"]["state"] == "override" and decision["window"]["overridden_state"] == "closed"
    assert decision["message"] == (
        "override: INC-42: security fix (instead of closed: next opening Sun 2026-12-06 02:00 WAT (weekly window))"
    )
    assert decision["warning"] is None


def test_override_beats_the_freeze_and_exclusions():
    frozen = gate(mode="override", override_reason="INC-43", freeze=True)
    assert frozen["allowed"] and frozen["window"]["overridden_state"] == "frozen"
    excluded = gate(now="2026-12-25T10:00:00+01:00", exclusions=[CHRISTMAS], mode="override", override_reason="INC")
    assert excluded["allowed"] and excluded["window"]["overridden_state"] == "excluded"


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_override_without_a_reason_is_refused(reason):
    with pytest.raises(GateError, match="mode override needs a non-empty override_reason"):
        gate(mode="override", override_reason=reason)


@pytest.mark.parametrize("mode", ["enforce", "warn"])
def test_an_override_reason_without_override_mode_is_refused(mode):
    with pytest.raises(GateError, match=f"override_reason is given but mode is {mode}: set mode override"):
        gate(mode=mode, override_reason="INC-42")


@pytest.mark.parametrize("mode", ["", "force", "Enforce", None])
def test_an_unknown_mode_is_refused(mode):
    with pytest.raises(GateError, match="is not one of enforce, warn, override"):
        gate(mode=mode)


# ---- clinics without windows ------------------------------------------------------------------


@pytest.mark.parametrize("windows", [None, [], ""])
def test_a_clinic_without_windows_is_unrestricted_with_a_warning(windows):
    decision = gate(windows=windows)
    assert decision["allowed"] and not decision["skip"]
    assert decision["window"]["state"] == "unrestricted" and decision["window"]["allowed"] is True
    assert decision["message"] == "unrestricted: no maintenance window is configured (unrestricted_without_windows)"
    assert decision["warning"].startswith(
        "clinic kinshasa: no maintenance window is configured: maintenance goes ahead"
    )


def test_a_clinic_without_windows_needs_no_time_zone():
    decision = gate(timezone=None, windows=None)
    assert decision["allowed"] and decision["window"]["state"] == "unrestricted"
    assert decision["window"]["timezone"] is None


def test_the_freeze_and_exclusions_still_apply_to_a_clinic_without_windows():
    frozen = gate(timezone=None, windows=None, freeze=True, freeze_reason="audit week")
    assert frozen["skip"] and frozen["window"]["state"] == "frozen"
    assert frozen["message"] == "skipped: window closed (frozen: audit week; next opening none within 8 years)"
    excluded = gate(now="2026-12-25T10:00:00+01:00", windows=[], exclusions=[CHRISTMAS])
    assert excluded["skip"] and excluded["window"]["state"] == "excluded"
    with pytest.raises(WindowError, match="clinic kinshasa: clinic_timezone None is not an IANA time zone"):
        gate(timezone=None, windows=None, exclusions=[CHRISTMAS])


def test_without_the_unrestricted_default_a_clinic_without_windows_stays_out():
    decision = gate(windows=None, unrestricted_without_windows=False)
    assert decision["skip"] and decision["window"]["state"] == "closed"
    assert decision["message"] == (
        "skipped: window closed (closed: no maintenance window is defined; next opening none within 8 years)"
    )


def test_an_override_of_an_unrestricted_clinic_is_still_an_override():
    decision = gate(windows=None, mode="override", override_reason="INC-44")
    assert decision["allowed"] and decision["window"]["state"] == "override"
    assert decision["window"]["overridden_state"] == "unrestricted"
    assert decision["message"].startswith("override: INC-44 (instead of unrestricted: ")


# ---- invalid data and options -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "windows", "message"),
    [
        (KINSHASA, [{**WEEKLY, "cutoff": "2h"}], "clinic kinshasa: window 'weekly': cutoff 2 h must be shorter than"),
        (KINSHASA, [{**WEEKLY, "start": 120}], "clinic kinshasa: window 'weekly': start 120 must be a quoted"),
        (KINSHASA, [{**WEEKLY, "rrule": "FREQ=HOURLY"}], "clinic kinshasa: window 'weekly': rrule 'FREQ=HOURLY'"),
        ("Mars/Olympus", [WEEKLY], "clinic kinshasa: clinic_timezone 'Mars/Olympus' is not an IANA time zone"),
        (KINSHASA, "weekly", "clinic kinshasa: windows must be a list"),
    ],
)
def test_invalid_window_data_is_refused_naming_clinic_window_and_field(timezone, windows, message):
    with pytest.raises(WindowError, match=message.replace("(", r"\(")):
        gate(timezone=timezone, windows=windows)


def test_an_invalid_now_is_refused():
    with pytest.raises(WindowError, match="clinic kinshasa: now '2026-11-29T02:30' must be an aware date and time"):
        gate(now="2026-11-29T02:30")


@pytest.mark.parametrize("procedure", ["", "  ", None, 3])
def test_the_procedure_is_required(procedure):
    with pytest.raises(GateError, match="procedure must name the gated procedure"):
        gate(procedure=procedure)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, 0),
        ("", 0),
        (0, 0),
        (2700, 2700),
        (1.2, 2),
        ("2700", 2700),
        ("90s", 90),
        (" 90 s ", 90),
        ("45m", 2700),
        ("1h30m", 5400),
        ("2h", 7200),
        ("1d", 86400),
    ],
)
def test_step_durations_are_seconds_or_durations(value, seconds):
    assert step_seconds(value) == seconds


@pytest.mark.parametrize("value", [-1, True, float("inf"), "soon", "-5", [45]])
def test_invalid_step_durations_are_refused(value):
    with pytest.raises(GateError, match="step_duration"):
        step_seconds(value)


def test_every_message_is_one_line():
    cases = [
        gate(),
        gate(now=SUNDAY_0500_WAT),
        gate(now=SUNDAY_0500_WAT, mode="warn"),
        gate(windows=None),
        gate(mode="override", override_reason="a\nb"),
        gate(freeze=True, freeze_reason="x\ny"),
    ]
    assert all("\n" not in case["message"] for case in cases)


# ---- the action plugin ------------------------------------------------------------------------


def run_action(args: dict, task_vars: dict, check_mode: bool = False) -> dict:
    task = MagicMock(args=args, async_val=0, check_mode=check_mode, action="clinicops.runbook.window_gate")
    templar = Templar(loader=DataLoader(), variables=task_vars)
    action = ActionModule(task, MagicMock(), MagicMock(), DataLoader(), templar, None)
    return action.run(task_vars=task_vars)


# Inventory values are trusted templates (ansible-core 2.19 data tagging); a bare str in a test is not.
trusted = getattr(template, "trust_as_template", lambda value: value)

HOST_VARS = {
    "inventory_hostname": "lubumbashi",
    "clinic_timezone": LUBUMBASHI,
    "gate_test_windows": [WEEKLY],
    "clinic_maintenance_windows": trusted("{{ gate_test_windows }}"),  # templated by the action
    "clinic_maintenance_exclusions": [],
    "clinicops_now": SUNDAY_0230_WAT,
}


@pytest.mark.parametrize("check_mode", [False, True])
def test_the_action_defaults_to_the_hosts_variables_and_changes_nothing(check_mode):
    result = run_action({"procedure": "maintenance"}, HOST_VARS, check_mode)
    assert result["changed"] is False and "failed" not in result
    assert result["skip"] and result["window"]["timezone"] == LUBUMBASHI
    assert result["window"]["now"] == "2026-11-29T03:30:00+02:00"  # clinicops_now, read in the clinic's zone
    assert "warning" not in result
    opened = run_action({"procedure": "maintenance", "now": "2026-11-29T02:30:00+02:00"}, HOST_VARS)
    assert opened["allowed"] and opened["window"]["state"] == "open"  # the option beats clinicops_now


def test_the_action_reads_the_fleet_freeze_from_the_host_variables():
    frozen = run_action(
        {"procedure": "maintenance", "now": "2026-11-29T02:30:00+02:00"},
        {**HOST_VARS, "clinicops_freeze": "yes", "clinicops_freeze_reason": "year-end"},
    )
    assert frozen["skip"] and frozen["window"]["reason"] == "frozen: year-end"
    refused = run_action({"procedure": "maintenance"}, {**HOST_VARS, "clinicops_freeze": "maybe"})
    assert refused["failed"] and refused["msg"] == (
        "window_gate: clinic lubumbashi: freeze (clinicops_freeze) 'maybe' is not true or false; nothing was changed"
    )


def test_the_action_fails_with_the_evaluators_message_and_nothing_changed():
    result = run_action({"procedure": "maintenance", "windows": [{**WEEKLY, "cutoff": "3h"}]}, HOST_VARS)
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"] == (
        "window_gate: clinic lubumbashi: window 'weekly': cutoff 3 h must be shorter than the duration 2 h; "
        "nothing was changed"
    )
    refused = run_action({"procedure": "maintenance", "mode": "override"}, HOST_VARS)
    assert refused["msg"].startswith("window_gate: clinic lubumbashi: mode override needs a non-empty override_reason")
