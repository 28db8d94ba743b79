"""The maintenance window gate on real clinics: the open one proceeds, the closed one ends with its next opening.

Every run evaluates at a fixed instant (``clinicops_now``) with per-clinic windows given as extra
vars: Sunday 02:00-03:00 local time in both clinics, at 02:30 WAT, which is 03:30 CAT in
Lubumbashi. The gate changes nothing on a clinic; only the override writes an audit record, to a
test trail that is removed afterwards.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import PLAYBOOKS, ansible_playbook, msg_of, ok_in, run_report

CLINICS = "kinshasa,lubumbashi"
SUNDAY_0230_WAT = "2026-11-29T02:30:00+01:00"  # inside 02:00-03:00 in Kinshasa, after it in Lubumbashi
SUNDAY_0500_WAT = "2026-11-29T05:00:00+01:00"  # after it in both
HOUR = {"name": "weekly", "rrule": "FREQ=WEEKLY;BYDAY=SU", "start": "02:00", "duration": "1h"}
BOTH = {"kinshasa": [HOUR], "lubumbashi": [HOUR]}
DECISION_TASK = "TASK [clinicops.runbook.window_gate : Say what the gate decided]"
TRAIL = "/var/log/clinicops/test-window-gate.jsonl"
LUBUMBASHI_SKIPPED = (
    "skipped: window closed (closed: no maintenance window is open now; next opening 2026-12-06T02:00:00+02:00)"
)


def gate_play(*args: str, **extra: object) -> tuple[int, str]:
    """Run the test playbook on both clinics at the fixed instant: (exit code, output with custom stats)."""
    extra = {"target": CLINICS, "clinicops_now": SUNDAY_0230_WAT, "gate_windows": BOTH, **extra}
    run = ansible_playbook(
        PLAYBOOKS / "window_gate.yml", "-e", json.dumps(extra), *args, env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"}
    )
    output, _ = run.communicate(timeout=300)
    return run.returncode, output


def decisions(output: str) -> dict[str, str]:
    """Per clinic, the gate's one-line message as the role printed it."""
    found, task, host = {}, "", None
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif match := re.match(r"^ok: \[([\w.-]+)\] => \{$", line):
            host = match.group(1)
        elif task.startswith(DECISION_TASK) and host and line.strip().startswith('"msg": '):
            found[host] = msg_of(line)
    return found


def after_gate(output: str) -> dict[str, dict]:
    """Per clinic that got past the gate: what the play's next task saw."""
    lines = [msg_of(line) for line in output.splitlines() if '"msg": "AFTER_GATE ' in line]
    return {entry["clinic"]: entry for entry in (json.loads(text.split(" ", 1)[1]) for text in lines)}


@pytest.mark.parametrize("check", [False, True], ids=["run", "check_mode"])
def test_the_open_clinic_proceeds_and_the_closed_one_ends_with_its_next_opening(clinics, check):
    code, output = gate_play(*(["--check"] if check else []))
    assert code == 0, output
    said = decisions(output)
    assert said["kinshasa"] == "open: weekly window until 03:00 WAT"
    assert said["lubumbashi"] == LUBUMBASHI_SKIPPED
    passed = after_gate(output)
    assert sorted(passed) == ["kinshasa"]  # lubumbashi ended at the gate (end_host), without failing
    assert passed["kinshasa"]["state"] == "open" and passed["kinshasa"]["step_rc"] == 0
    assert passed["kinshasa"]["hostname"]  # the step really ran on the clinic, in check mode too
    assert run_report(output) == {
        "lubumbashi": {
            "outcome": "skipped",
            "reason": "closed: next opening Sun 2026-12-06 02:00 CAT (weekly window)",
            "next_opening": "2026-12-06T02:00:00+02:00",
        }
    }
    assert re.search(r"lubumbashi\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", output)


def test_a_clinic_without_windows_proceeds_unrestricted_with_a_warning_unless_the_fleet_is_frozen(clinics):
    code, output = gate_play(gate_windows={"kinshasa": [HOUR]})
    assert code == 0, output
    assert decisions(output)["lubumbashi"] == (
        "unrestricted: no maintenance window is configured (unrestricted_without_windows)"
    )
    assert "[WARNING]: clinic lubumbashi: no maintenance window is configured" in output
    assert sorted(after_gate(output)) == ["kinshasa", "lubumbashi"]

    code, output = gate_play(gate_windows={"kinshasa": [HOUR]}, clinicops_freeze=True, clinicops_freeze_reason="drill")
    assert code == 0, output
    assert decisions(output) == {
        "kinshasa": "skipped: window closed (frozen: drill; next opening 2026-12-06T02:00:00+01:00)",
        "lubumbashi": "skipped: window closed (frozen: drill; next opening none within 8 years)",
    }
    assert after_gate(output) == {}
    assert sorted(run_report(output)) == ["kinshasa", "lubumbashi"]


def test_warn_mode_lets_the_closed_clinic_proceed_with_a_warning(clinics):
    code, output = gate_play(window_gate_mode="warn")
    assert code == 0, output
    assert decisions(output)["lubumbashi"].startswith("warn: window closed (closed: no maintenance window is open now")
    assert "[WARNING]: clinic lubumbashi: warn: window closed" in output
    assert sorted(after_gate(output)) == ["kinshasa", "lubumbashi"]
    assert run_report(output) == {}


def test_an_override_is_recorded_in_the_clinics_audit_trail(clinics):
    container = clinics["kinshasa"]
    ok_in(container, ["rm", "-f", TRAIL])
    try:
        code, output = gate_play(
            target="kinshasa",
            clinicops_now=SUNDAY_0500_WAT,
            clinicops_run_id="itest-window-gate",
            window_gate_mode="override",
            window_gate_override_reason="INC-42: security fix",
            gate_trail=TRAIL,
        )
        assert code == 0, output
        assert after_gate(output)["kinshasa"]["state"] == "override"
        records = [json.loads(line) for line in ok_in(container, ["cat", TRAIL]).splitlines()]
    finally:
        ok_in(container, ["rm", "-f", TRAIL])
    assert len(records) == 1
    record = records[0]
    assert (record["procedure"], record["outcome"], record["run_id"]) == (
        "maintenance",
        "override",
        "itest-window-gate",
    )
    assert record["details"]["reason"] == "INC-42: security fix"
    assert record["details"]["overridden_state"] == "closed"
    assert record["details"]["evaluated_at"] == SUNDAY_0500_WAT
    assert record["details"]["gate"].startswith("override: INC-42: security fix (instead of closed: next opening")


def test_an_override_without_a_reason_is_refused_and_nothing_runs(clinics):
    code, output = gate_play(target="kinshasa", clinicops_now=SUNDAY_0500_WAT, window_gate_mode="override")
    assert code != 0
    assert (
        "window_gate: clinic kinshasa: mode override needs a non-empty override_reason (the break-glass override is "
        "recorded in the audit trail with it); nothing was changed" in output
    )
    assert after_gate(output) == {}


def test_invalid_window_data_fails_that_clinic_clearly_and_the_other_goes_on(clinics):
    broken = {**HOUR, "cutoff": "1h"}
    later = {**HOUR, "start": "03:00"}  # 03:00-04:00 CAT: open at 03:30 in Lubumbashi
    code, output = gate_play(gate_windows={"kinshasa": [broken], "lubumbashi": [later]})
    assert code == 2, output
    assert (
        "window_gate: clinic kinshasa: window 'weekly': cutoff 1 h must be shorter than the duration 1 h; "
        "nothing was changed" in output
    )
    assert sorted(after_gate(output)) == ["lubumbashi"]
