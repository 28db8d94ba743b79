#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# The gate runs on the controller: plugins/action/window_gate.py. This file only documents it.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: window_gate
short_description: Decide whether a clinic's maintenance window lets a disruptive procedure start now
version_added: 0.1.0
description:
  - The maintenance window gate, run at the top of every disruptive play (the
    C(clinicops.runbook.window_gate) role wraps it). It evaluates the current host's maintenance
    windows, exclusions and the fleet freeze at one instant, on the controller, with the
    collection's one window evaluator (the one behind the C(clinicops.runbook.maintenance_window)
    filter, the CLI's C(clinicops windows) and the rendered AWX schedules), and says whether the
    clinic may proceed or must be skipped for this run.
  - It never connects to the clinic and never changes anything (C(changed) is always false). The
    caller acts on RV(skip), for example with C(ansible.builtin.meta) C(end_host).
  - The options left out default to the host's variables, so that the inventory is the one source
    of the windows. Put C(clinicops_freeze) in C(group_vars/all) for a fleet freeze.
  - "A clinic with no windows configured (C(clinic_maintenance_windows) unset or empty) is
    C(unrestricted): it proceeds, with a warning, so that a fleet can adopt windows clinic by
    clinic. The fleet freeze and the clinic's exclusions still apply to it. Set
    O(unrestricted_without_windows=false) to keep such clinics out instead."
  - "In a play run with C(serial), the gate at the top of the play is evaluated again for every
    wave, at the time that wave starts."
  - Invalid window data fails the task with the evaluator's message, which names the clinic, the
    window or exclusion and the field; nothing was changed then.
  - Needs python-dateutil on the controller (the collection's C(requirements.txt)).
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
    details: A pure evaluation on the controller; it runs the same in check mode.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Changes nothing; the answer depends on the time it is asked.
  platform:
    platforms: posix
options:
  procedure:
    description:
      - The procedure asking (C(maintenance), C(deploy), C(rollback), C(restore), C(rotate_logs)...);
        only the windows allowing it (their C(procedures)) count.
    type: str
    required: true
  step_duration:
    description:
      - How long the next disruptive step is expected to take; it must end before the window's end
        minus its cutoff.
      - An integer (or digits, or C(90s)) is seconds; a string with a unit uses the windows' duration
        syntax (C(45m), C(1h30m), C(2h), C(1d)).
    type: raw
    default: 0
  timezone:
    description: The clinic's IANA time zone. Default the host's C(clinic_timezone).
    type: str
  windows:
    description:
      - The clinic's maintenance windows (see the C(clinicops.runbook.maintenance_window) filter and
        C(docs/maintenance-windows.md) for the keys). Default the host's C(clinic_maintenance_windows).
      - None or an empty list means no window is configured, see O(unrestricted_without_windows).
    type: raw
  exclusions:
    description:
      - The clinic's blackouts, which always win over windows. Default the host's C(clinic_maintenance_exclusions).
    type: raw
  freeze:
    description: The fleet freeze; when true no window opens. Default the host's C(clinicops_freeze), else false.
    type: bool
  freeze_reason:
    description: Why the fleet is frozen, for the reason line. Default the host's C(clinicops_freeze_reason).
    type: str
  mode:
    description:
      - C(enforce) skips a clinic whose window does not allow the procedure now.
      - C(warn) lets it proceed with a warning (to try windows out before enforcing them).
      - C(override) is the break-glass override; it needs O(override_reason) and lets the clinic
        proceed whatever the window, the exclusions or the freeze say. The caller records it in the
        audit trail (the role does, with C(clinicops.runbook.audit_record)).
    type: str
    choices: [enforce, warn, override]
    default: enforce
  override_reason:
    description:
      - Why the window is overridden; required, not blank, with O(mode=override).
      - Refused with any other mode, where it would look like an override without being one.
    type: str
    default: ""
  now:
    description:
      - The instant to evaluate, ISO 8601 with an offset (C(2026-11-29T02:30:00+01:00)), for tests
        and rehearsals. Default the host's C(clinicops_now) (so a whole play can run at a fixed
        instant with C(-e clinicops_now=...)), else the current time.
    type: raw
  unrestricted_without_windows:
    description:
      - "What a clinic without any window gets. True lets it proceed with state C(unrestricted) and a
        warning; false keeps it closed (C(closed: no maintenance window is defined), no next opening)."
    type: bool
    default: true
notes:
  - Ends nothing by itself; see the C(clinicops.runbook.window_gate) role for the full pattern
    (report, message, C(end_host), override audit).
seealso:
  - plugin: clinicops.runbook.maintenance_window
    plugin_type: filter
  - module: clinicops.runbook.audit_record
"""

EXAMPLES = r"""
- name: Ask the gate (the host's windows, the real time)
  clinicops.runbook.window_gate:
    procedure: maintenance
    step_duration: 45m
  register: gate

- name: Skip the clinic for this run when its window is closed
  ansible.builtin.meta: end_host
  when: gate.skip

- name: Break-glass override (audit it)
  clinicops.runbook.window_gate:
    procedure: deploy
    mode: override
    override_reason: "INC-1234: security fix, approved by the on-call lead"

- name: Rehearse at a fixed instant with explicit data
  clinicops.runbook.window_gate:
    procedure: deploy
    timezone: Africa/Kinshasa
    windows:
      - name: weekly
        rrule: FREQ=WEEKLY;BYDAY=SU
        start: "02:00"
        duration: 2h
        cutoff: 15m
    exclusions:
      - yearly: "12-24..12-26"
        reason: Christmas
    now: "2026-11-29T02:30:00+01:00"
"""

RETURN = r"""
allowed:
  description: Whether the clinic may proceed (open, override, warn mode, or unrestricted).
  returned: success
  type: bool
  sample: false
skip:
  description: True when the clinic must not proceed with the procedure in this run (the negation of RV(allowed)).
  returned: success
  type: bool
  sample: true
mode:
  description: The mode the gate ran in.
  returned: success
  type: str
  sample: enforce
message:
  description:
    - One line for the operator, starting with the outcome. When the clinic is skipped it reads
      C(skipped), then the window's reason and the next opening (see the sample); in warn mode it
      starts with C(warn) and ends with C(proceeding in warn mode); else it is the evaluator's reason,
      starting with C(open), C(override) or C(unrestricted).
  returned: success
  type: str
  sample: "skipped: window closed (closed: no maintenance window is open now; next opening 2026-12-06T02:00:00+02:00)"
window:
  description:
    - The evaluator's answer, as the C(clinicops.runbook.maintenance_window) filter returns it; its
      C(state) is also V(unrestricted) for a clinic without windows.
    - C(state), C(allowed), C(reason), C(timezone), C(now), C(procedure), C(step_duration_s); C(window),
      C(start), C(end), C(cutoff_at), C(must_start_by) of the occurrence containing now (null outside
      one), C(remaining_s); C(next_opening), C(next_window); C(exclusion); C(overridden_state) (the
      state an override replaced). Times are ISO 8601 local times with offsets.
  returned: success
  type: dict
  sample: {"state": "closed", "allowed": false,
           "reason": "closed: next opening Sun 2026-12-06 02:00 CAT (weekly window)",
           "timezone": "Africa/Lubumbashi", "now": "2026-11-29T03:30:00+02:00", "procedure": "maintenance",
           "step_duration_s": 0, "window": null, "start": null, "end": null, "cutoff_at": null, "must_start_by": null,
           "remaining_s": 0, "next_opening": "2026-12-06T02:00:00+02:00", "next_window": "weekly", "exclusion": null,
           "overridden_state": null}
"""
