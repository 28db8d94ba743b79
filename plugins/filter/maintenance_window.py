# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A clinic's maintenance window state now (or at an injected time), and the validation of its window data.

Thin over module_utils/_clinicops/maintenance_windows.py, the one evaluator the gate, the CLI and
the rendered schedules share; see docs/maintenance-windows.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from datetime import datetime, timezone

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.maintenance_windows import (
    evaluate,
    schedule_data,
    validate,
)


def maintenance_window(clinic_timezone, windows, exclusions=None, procedure=None, step_duration=0, now=None,
                       freeze=False, freeze_reason="", override_reason="", clinic=None):
    """The evaluation of the clinic's windows at ``now`` (default: the current time)."""
    try:
        frozen = boolean(freeze, strict=True)
    except TypeError:
        raise AnsibleFilterError("maintenance_window: freeze %r is not true or false" % (freeze,)) from None
    try:
        return evaluate(clinic_timezone, windows, exclusions or [], now or datetime.now(timezone.utc),
                        procedure=procedure or None, step_duration=step_duration, freeze=frozen,
                        freeze_reason=freeze_reason, override_reason=override_reason, clinic=clinic)
    except (ValueError, TypeError, ImportError) as exc:
        raise AnsibleFilterError("maintenance_window: %s" % to_native(exc)) from None


def maintenance_windows_validate(clinic_timezone, windows, exclusions=None, clinic=None):
    """The clinic's window data, checked and normalised (durations in seconds)."""
    try:
        return schedule_data(validate(clinic_timezone, windows, exclusions or [], clinic=clinic))
    except (ValueError, TypeError, ImportError) as exc:
        raise AnsibleFilterError("maintenance_windows_validate: %s" % to_native(exc)) from None


class FilterModule(object):
    def filters(self):
        return {
            "maintenance_window": maintenance_window,
            "maintenance_windows_validate": maintenance_windows_validate,
        }
