#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: maintenance_mode
short_description: Put a clinic's app into maintenance mode, or take it out
version_added: 0.1.0
description:
  - Writes (O(state=present)) or removes (O(state=absent)) the maintenance flag of a clinic, a JSON
    file with the reason, start, expected end, run id and operation, plus the public maintenance
    page and the readiness answer served while the flag is on.
  - While the flag file exists, the nginx snippet installed by the C(clinicops.runbook.maintenance_page)
    role answers every request of the clinic site with C(503), the maintenance page,
    C(Retry-After) and C(Cache-Control) C(no-store); the app's liveness endpoint still reaches the
    app, and its readiness endpoint answers C(503) with status C(maintenance) in JSON. nginx needs no reload.
  - Files are written atomically. Enabling an already enabled flag with the same reason and run
    keeps its start time and reports no change; disabling reports how long the flag was on.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the flag would be written or removed; writes nothing.
  diff_mode:
    support: full
    details: Shows the flag file before and after.
  idempotent:
    support: full
options:
  state:
    description: C(present) turns maintenance mode on, C(absent) turns it off.
    type: str
    choices: [present, absent]
    default: present
  reason:
    description: Why the clinic is in maintenance (kept in the flag; not shown on the public page).
    type: str
    default: scheduled maintenance
  expected_minutes:
    description: How long the maintenance is expected to last; sets the expected end shown on the page.
    type: int
    default: 30
  run_id:
    description: Run that turned maintenance mode on.
    type: str
  operation:
    description: Procedure that turned maintenance mode on (deploy, maintenance, restore...).
    type: str
  clinic_name:
    description: Name shown on the public maintenance page.
    type: str
    default: This clinic
  directory:
    description: Directory of the flag (C(on)), the page (C(page.html)) and the readiness answer (C(health.json)).
    type: path
    default: /var/lib/clinicops/maintenance
notes:
  - The public page shows the clinic name and the expected end in UTC, nothing else.
seealso:
  - module: clinicops.runbook.health_check
"""

EXAMPLES = r"""
- name: Maintenance page on while migrations run
  clinicops.runbook.maintenance_mode:
    reason: "database migration {{ deploy_release_id }}"
    expected_minutes: 10
    run_id: "{{ clinicops_run_id }}"
    operation: deploy

- name: Maintenance page off
  clinicops.runbook.maintenance_mode:
    state: absent
  register: maintenance_off
"""

RETURN = r"""
enabled:
  description: Whether maintenance mode is on after the task.
  returned: always
  type: bool
  sample: true
flag:
  description: The flag as it stands after the task (as it stood before, when turned off).
  returned: always
  type: dict
  sample: {"reason": "database migration", "started": "2026-11-25T02:00:04Z",
           "expected_end": "2026-11-25T02:10:04Z", "run_id": "20261125T015900Z-deploy-1a2b3c", "operation": "deploy"}
duration_seconds:
  description: How long maintenance mode was on, when this task turned it off.
  returned: when state=absent and the flag was on
  type: int
  sample: 412
"""

import json
import os
from datetime import timedelta

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.atomic_files import (
    read_json,
    remove,
    write_atomic,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import (
    from_stamp,
    to_stamp,
    utcnow,
)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Maintenance</title>
<style>body{font-family:sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#222}</style>
</head>
<body>
<h1>%(clinic)s is under maintenance</h1>
<p>We expect to be back by %(expected_end)s. Please try again in a few minutes.</p>
</body>
</html>
"""


def html_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def desired_flag(params, current, now):
    """The flag to write; keeps the start of an identical flag so a re-run changes nothing."""
    same = current and current.get("reason") == params["reason"] and current.get("run_id") == params["run_id"]
    started = current["started"] if same else to_stamp(now)
    start = from_stamp(started)
    return {
        "reason": params["reason"],
        "run_id": params["run_id"],
        "operation": params["operation"],
        "started": started,
        "expected_end": to_stamp(start + timedelta(minutes=params["expected_minutes"])),
    }


def render(data):
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def enable(module, paths, current):
    flag = desired_flag(module.params, current, utcnow())
    changed = current != flag
    if changed and not module.check_mode:
        if not os.path.isdir(paths["dir"]):
            os.makedirs(paths["dir"], 0o755)
        page = PAGE % {"clinic": html_escape(module.params["clinic_name"]),
                       "expected_end": flag["expected_end"].replace("T", " ").replace("Z", " UTC")}
        write_atomic(paths["page"], page)
        write_atomic(paths["health"], render({"status": "maintenance", "expected_end": flag["expected_end"]}))
        write_atomic(paths["flag"], render(flag))  # last: nginx switches on when this appears
    return dict(changed=changed, enabled=True, flag=flag), flag


def disable(module, paths, current):
    if current is None:
        return dict(changed=False, enabled=False, flag=None), None
    result = dict(changed=True, enabled=False, flag=current)
    started = from_stamp(current["started"])
    result["duration_seconds"] = int((utcnow() - started).total_seconds())
    if not module.check_mode:
        remove(paths["flag"])  # first: nginx switches off when this disappears
    return result, None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            reason=dict(type="str", default="scheduled maintenance"),
            expected_minutes=dict(type="int", default=30),
            run_id=dict(type="str"),
            operation=dict(type="str"),
            clinic_name=dict(type="str", default="This clinic"),
            directory=dict(type="path", default="/var/lib/clinicops/maintenance"),
        ),
        supports_check_mode=True,
    )
    if module.params["expected_minutes"] <= 0:
        module.fail_json(msg="expected_minutes must be positive, got %s; nothing was changed"
                         % module.params["expected_minutes"])
    directory = module.params["directory"]
    paths = dict(dir=directory, flag=os.path.join(directory, "on"), page=os.path.join(directory, "page.html"),
                 health=os.path.join(directory, "health.json"))
    try:
        current = read_json(paths["flag"])
        if module.params["state"] == "present":
            result, after = enable(module, paths, current)
        else:
            result, after = disable(module, paths, current)
    except (IOError, OSError, ValueError) as exc:
        module.fail_json(msg="maintenance mode in %s: %s; the flag was left as it was" % (directory, exc))
    if module._diff:
        result["diff"] = dict(before=render(current) if current else "", after=render(after) if after else "",
                              before_header=paths["flag"], after_header=paths["flag"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
