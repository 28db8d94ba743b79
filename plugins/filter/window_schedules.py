# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The triggers of a procedure (AWX schedules, systemd timers), rendered from the clinics' window data.

One trigger per distinct (time zone, window) that allows the procedure, with the clinics that share
it. The times come from module_utils/_clinicops/maintenance_windows.py, the evaluator the gate uses,
so triggers and gate cannot drift; see docs/maintenance-windows.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re
from collections.abc import Mapping
from datetime import date

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_native
from ansible.utils.display import Display
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.maintenance_windows import (
    WindowError,
    to_awx_rrule,
    to_systemd_oncalendar,
    validate,
)

TIMEZONE_VARIABLE = "clinic_timezone"
WINDOWS_VARIABLE = "clinic_maintenance_windows"
EXCLUSIONS_VARIABLE = "clinic_maintenance_exclusions"
DEFAULT_DTSTART = "2026-01-01"
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NOT_NAME_SAFE = re.compile(r"[^a-z0-9]+")
DIGEST_LENGTH = 8

display = Display()


def _slug(text):
    """Lower case letters, digits and single dashes ('Etc/GMT+1' -> 'etc-gmt-plus-1')."""
    return NOT_NAME_SAFE.sub("-", str(text).lower().replace("+", "-plus-")).strip("-")


def _digest(key):
    return hashlib.sha256(repr(key).encode("utf-8")).hexdigest()[:DIGEST_LENGTH]


def _canonical_rule(parts):
    """The rule parts in one order, INTERVAL explicit, list values sorted: equal rules, equal text."""
    fixed = dict(parts)
    fixed.setdefault("INTERVAL", "1")
    ordered = ["FREQ", *sorted(key for key in fixed if key != "FREQ")]
    return ";".join("%s=%s" % (key, ",".join(sorted(fixed[key].split(",")))) for key in ordered)


def _dtstart_text(value):
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and DAY.match(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise AnsibleFilterError("window_schedules: dtstart %r is not a date YYYY-MM-DD" % (value,))


def _clinic_names(clinic_vars, clinics):
    if clinics is None:
        return sorted(str(name) for name in clinic_vars)
    if isinstance(clinics, str) or not isinstance(clinics, (list, tuple)):
        raise AnsibleFilterError("window_schedules: clinics must be a list of clinic names, got %r" % (clinics,))
    missing = sorted(str(name) for name in clinics if name not in clinic_vars)
    if missing:
        raise AnsibleFilterError(
            "window_schedules: no variables for %s in the input (is it hostvars of the inventory holding them?); "
            "no trigger was rendered" % ", ".join(missing)
        )
    return sorted(set(str(name) for name in clinics))


def _render(key, raw_window, parsed, clinics, procedure, dtstart):
    timezone = key[0]
    entry = {
        "name": "",
        "procedure": procedure,
        "timezone": timezone,
        "window": parsed.name,
        "window_rrule": parsed.rule,
        "start": parsed.start.strftime("%H:%M"),
        "anchor": parsed.anchor.isoformat() if parsed.anchor else None,
        "clinics": sorted(clinics),
        "limit": ",".join(sorted(clinics)),
        "rrule": None,
        "rrule_error": None,
        "oncalendar": None,
        "oncalendar_error": None,
    }
    try:
        # A window with an anchor starts its rule there (INTERVAL counts from it); the others on dtstart.
        entry["rrule"] = to_awx_rrule(timezone, raw_window, None if parsed.anchor else dtstart)
    except WindowError as exc:
        entry["rrule_error"] = to_native(exc)
    try:
        entry["oncalendar"] = to_systemd_oncalendar(timezone, raw_window)
    except WindowError as exc:
        entry["oncalendar_error"] = to_native(exc)
    return entry


def _name_entries(entries_by_key, procedure):
    """Stable names: <procedure>-<zone>-<window>, plus a digest of the trigger only where two would collide."""
    base = {}
    for key, entry in entries_by_key.items():
        window_slug = _slug(entry["window"])
        base[key] = "-".join([_slug(procedure), _slug(entry["timezone"]), window_slug or _digest(key)])
    counts = {}
    for name in base.values():
        counts[name] = counts.get(name, 0) + 1
    for key, entry in entries_by_key.items():
        entry["name"] = base[key] if counts[base[key]] == 1 else "%s-%s" % (base[key], _digest(key))


def window_schedules(clinic_vars, procedure, clinics=None, dtstart=DEFAULT_DTSTART):
    """One trigger per distinct (time zone, window) allowing ``procedure``, with the clinics sharing it."""
    if not isinstance(clinic_vars, Mapping):
        raise AnsibleFilterError(
            "window_schedules: the input must map clinic names to their variables (hostvars, or a dict of "
            "clinic: {clinic_timezone, clinic_maintenance_windows}), got %s" % type(clinic_vars).__name__
        )
    if not isinstance(procedure, str) or not _slug(procedure):
        raise AnsibleFilterError(
            "window_schedules: procedure %r is not a procedure name such as maintenance" % (procedure,)
        )
    start_day = _dtstart_text(dtstart)
    groups, without_windows = {}, []
    for clinic in _clinic_names(clinic_vars, clinics):
        data = clinic_vars[clinic]
        if not isinstance(data, Mapping):
            raise AnsibleFilterError(
                "window_schedules: clinic %s: its variables must be a mapping, got %r" % (clinic, data)
            )
        windows, exclusions = data.get(WINDOWS_VARIABLE), data.get(EXCLUSIONS_VARIABLE)
        if not windows and not exclusions:
            without_windows.append(clinic)
            continue
        try:
            schedule = validate(data.get(TIMEZONE_VARIABLE), windows, exclusions, clinic=clinic)
        except (ValueError, TypeError, ImportError) as exc:
            raise AnsibleFilterError("window_schedules: %s; no trigger was rendered" % to_native(exc)) from None
        if not schedule.windows:
            without_windows.append(clinic)
        for raw_window, parsed in zip(windows or [], schedule.windows, strict=True):
            if parsed.procedures is not None and procedure not in parsed.procedures:
                continue
            # What decides when and under which name the trigger fires. Duration, cutoff and the like are
            # each clinic's own: the gate applies them inside the run.
            key = (schedule.timezone, parsed.name, _canonical_rule(parsed.parts), parsed.start, parsed.anchor)
            groups.setdefault(key, (raw_window, parsed, []))[2].append(clinic)
    if without_windows:
        display.warning(
            "window_schedules: no %s trigger for the clinics without maintenance windows: %s"
            % (procedure, ", ".join(without_windows))
        )
    entries = {
        key: _render(key, raw_window, parsed, members, procedure, start_day)
        for key, (raw_window, parsed, members) in groups.items()
    }
    _name_entries(entries, procedure)
    return sorted(entries.values(), key=lambda entry: entry["name"])


class FilterModule(object):
    def filters(self):
        return {"window_schedules": window_schedules}
