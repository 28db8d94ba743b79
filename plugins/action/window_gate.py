# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of clinicops.runbook.window_gate: the maintenance window gate, evaluated on the controller.

The documentation is in plugins/modules/window_gate.py. The options left out default to the
host's variables (clinic_timezone, clinic_maintenance_windows, clinic_maintenance_exclusions,
clinicops_freeze, clinicops_freeze_reason, clinicops_now); the decision is
module_utils/_clinicops/window_gate.decide over the one evaluator. Nothing runs on the clinic.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from datetime import datetime, timezone

from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.window_gate import MODES, decide

display = Display()

ARGUMENT_SPEC = dict(
    procedure=dict(type="str", required=True),
    step_duration=dict(type="raw", default=0),
    timezone=dict(type="str"),
    windows=dict(type="raw"),
    exclusions=dict(type="raw"),
    freeze=dict(type="bool"),
    freeze_reason=dict(type="str"),
    mode=dict(type="str", default="enforce", choices=list(MODES)),
    override_reason=dict(type="str", default=""),
    now=dict(type="raw"),
    unrestricted_without_windows=dict(type="bool", default=True),
)

# Option -> the host variable it defaults to.
HOST_DEFAULTS = (
    ("timezone", "clinic_timezone"),
    ("windows", "clinic_maintenance_windows"),
    ("exclusions", "clinic_maintenance_exclusions"),
    ("freeze", "clinicops_freeze"),
    ("freeze_reason", "clinicops_freeze_reason"),
    ("now", "clinicops_now"),
)


def _flag(value):
    """The freeze switch (option, or clinicops_freeze from the inventory) as a bool; unset is off."""
    if value is None or value == "":
        return False
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise ValueError("freeze (clinicops_freeze) %r is not true or false" % (value,)) from None


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # nothing is copied to the clinic
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        clinic = str(task_vars.get("inventory_hostname") or "") or None
        for option, variable in HOST_DEFAULTS:
            if args.get(option) is None and variable in task_vars:
                args[option] = self._templar.template(task_vars[variable])
        now = args["now"] or datetime.now(timezone.utc).replace(microsecond=0)
        try:
            decision = decide(args["procedure"], args["timezone"], args["windows"], args["exclusions"], now,
                              step_duration=args["step_duration"], mode=args["mode"],
                              override_reason=args["override_reason"], freeze=_flag(args["freeze"]),
                              freeze_reason=args["freeze_reason"] or "",
                              unrestricted_without_windows=args["unrestricted_without_windows"], clinic=clinic)
        except (ValueError, TypeError, ImportError) as exc:  # WindowError/GateError name clinic, window and field
            text = to_native(exc)
            if clinic and not text.startswith("clinic %s:" % clinic):
                text = "clinic %s: %s" % (clinic, text)
            result.update(failed=True, changed=False, msg="window_gate: %s; nothing was changed" % text)
            return result
        warning = decision.pop("warning")
        if warning:
            display.warning(warning)
        result.update(decision)
        result["changed"] = False
        return result
