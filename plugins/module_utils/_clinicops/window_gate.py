# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The window gate's decision: may this clinic start this procedure now, and what to say about it.

Pure Python over the one evaluator (maintenance_windows.evaluate): the ``window_gate`` action
plugin resolves its options from the task and the host's variables, then calls ``decide``, which
the unit tests call directly. Controller-side; private to the collection.

Decision
--------
* ``mode`` enforce (default): the clinic proceeds when the evaluator allows it (``open``), else it
  is skipped (``skip``) with ``skipped: window closed (<reason>; next opening <ts>)``.
* ``mode`` warn: the clinic always proceeds; a window that would have kept it out yields a warning.
* ``mode`` override: the break-glass override; needs a non-empty ``override_reason``, the state
  is ``override`` whatever the window says (``overridden_state`` keeps the state underneath) and
  the caller records it in the audit trail. An ``override_reason`` without mode override is refused:
  it would look like an override and not be one.
* No windows configured (none, or an empty list): with ``unrestricted_without_windows`` (default)
  the state is ``unrestricted``, allowed, with a warning; the fleet freeze and the clinic's
  exclusions still apply (they need no window). Without it the clinic is closed for good
  (``closed: no maintenance window is defined``, no next opening).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.maintenance_windows import (
    HORIZON_TEXT,
    WindowError,
    evaluate,
    parse_duration,
)

MODES = ("enforce", "warn", "override")
ALLOWED_STATES = ("open", "override", "unrestricted")
SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$")
# Time zone used to evaluate the freeze for a clinic with neither windows nor exclusions nor a zone.
NO_ZONE = "UTC"


class GateError(ValueError):
    """Gate options that cannot be used (mode, override reason, step duration); nothing was evaluated."""


def step_seconds(value):
    """The step's expected duration in whole seconds (rounded up).

    An int or float, or digits (``"2700"``, ``"90s"``), is seconds; a string with a unit is the
    windows' duration syntax: ``"45m"``, ``"1h30m"``, ``"2h"``, ``"1d"``.
    """
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise GateError("step_duration %r is not a duration (seconds, or 45m, 1h30m, 2h)" % (value,))
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise GateError("step_duration %r must be 0 or more seconds" % (value,))
        return math.ceil(value)
    if isinstance(value, str):
        match = SECONDS.match(value)
        if match:
            return math.ceil(float(match.group(1)))
        try:
            return int(parse_duration(value, "step_duration").total_seconds())
        except WindowError as exc:
            raise GateError('%s (an int or digits are seconds: 2700, "90s")' % exc) from exc
    raise GateError("step_duration %r is not a duration (seconds, or 45m, 1h30m, 2h)" % (value,))


def _one_line(text):
    return " ".join(str(text or "").split())


def _has_windows(windows):
    """Whether window data is configured: None, "" and an empty list are none (anything else is evaluated)."""
    return not (windows is None or windows == "" or (isinstance(windows, (list, tuple)) and not windows))


def _unrestricted(timezone, exclusions, now, procedure, step, freeze, freeze_reason, clinic):
    """The evaluation of a clinic without windows: frozen or excluded as usual, else unrestricted."""
    zone = timezone if timezone not in (None, "") else None
    if zone is None and exclusions:
        # The evaluator's own message: exclusions are local dates, they need the clinic's zone.
        evaluate(timezone, [], exclusions, now, clinic=clinic)
    result = evaluate(zone or NO_ZONE, [], exclusions or [], now, procedure=procedure, step_duration=step,
                      freeze=freeze, freeze_reason=freeze_reason, clinic=clinic)
    if zone is None:
        result["timezone"] = None
    if result["state"] == "closed":  # nothing but the missing windows keeps it closed
        result.update(state="unrestricted", allowed=True,
                      reason="unrestricted: no maintenance window is configured (unrestricted_without_windows)")
    return result


def _override(result, override_reason):
    """Apply the break-glass override to an evaluation, as the evaluator does."""
    result["overridden_state"] = result["state"]
    result.update(state="override", allowed=True,
                  reason="override: %s (instead of %s)" % (override_reason, result["reason"]))
    return result


def _why(evaluation):
    """The reason a closed gate gives, without repeating the next opening that follows it."""
    if evaluation["state"] == "closed" and evaluation.get("next_opening"):
        procedure = evaluation.get("procedure")
        return "closed: no %swindow is open now" % ("%s " % procedure if procedure else "")
    return evaluation["reason"]


def _next_text(evaluation):
    return evaluation.get("next_opening") or "none within %s" % HORIZON_TEXT


def decide(procedure, timezone, windows, exclusions, now, step_duration=0, mode="enforce", override_reason="",
           freeze=False, freeze_reason="", unrestricted_without_windows=True, clinic=None):
    """The gate's answer for one clinic at ``now`` (aware datetime or ISO 8601 string with an offset).

    Returns a plain dict: ``window`` (the evaluator's dict, its ``state`` possibly ``unrestricted``),
    ``allowed`` (the clinic may proceed: open, override, warn or unrestricted), ``skip`` (it must
    not), ``mode``, ``message`` (one line) and ``warning`` (a line to display, or None).
    Raises GateError for unusable options and WindowError (both ValueError) for invalid window data.
    """
    if not isinstance(procedure, str) or not procedure.strip():
        raise GateError("procedure must name the gated procedure (maintenance, deploy, ...), got %r" % (procedure,))
    procedure = procedure.strip()
    if mode not in MODES:
        raise GateError("mode %r is not one of %s" % (mode, ", ".join(MODES)))
    if not isinstance(freeze, bool):
        raise GateError("freeze must be true or false, got %r" % (freeze,))
    if not isinstance(unrestricted_without_windows, bool):
        raise GateError("unrestricted_without_windows must be true or false, got %r" % (unrestricted_without_windows,))
    override_reason = _one_line(override_reason)
    if mode == "override" and not override_reason:
        raise GateError("mode override needs a non-empty override_reason (the break-glass override is recorded "
                        "in the audit trail with it)")
    if mode != "override" and override_reason:
        raise GateError("override_reason is given but mode is %s: set mode override to override the window "
                        "(it is audited), or drop the reason" % mode)
    step = step_seconds(step_duration)
    freeze_reason = _one_line(freeze_reason)

    if _has_windows(windows) or not unrestricted_without_windows:
        evaluation = evaluate(timezone, windows if _has_windows(windows) else [], exclusions or [], now,
                              procedure=procedure, step_duration=step, freeze=freeze, freeze_reason=freeze_reason,
                              override_reason=override_reason if mode == "override" else "", clinic=clinic)
    else:
        evaluation = _unrestricted(timezone, exclusions, now, procedure, step, freeze, freeze_reason, clinic)
        if mode == "override":
            evaluation = _override(evaluation, override_reason)

    state = evaluation["state"]
    warning = None
    if state in ALLOWED_STATES:
        allowed, message = True, evaluation["reason"]
        if state == "unrestricted":
            warning = ("%sno maintenance window is configured: %s goes ahead unrestricted (set clinic_maintenance_"
                       "windows to restrict it, or unrestricted_without_windows false to keep such clinics out)"
                       % ("clinic %s: " % clinic if clinic else "", procedure))
    elif mode == "warn":
        allowed = True
        message = "warn: window closed (%s; next opening %s); proceeding in warn mode" % (
            _why(evaluation), _next_text(evaluation))
        warning = "%s%s" % ("clinic %s: " % clinic if clinic else "", message)
    else:
        allowed = False
        message = "skipped: window closed (%s; next opening %s)" % (_why(evaluation), _next_text(evaluation))
    return {"window": evaluation, "allowed": allowed, "skip": not allowed, "mode": mode, "message": message,
            "warning": warning}
