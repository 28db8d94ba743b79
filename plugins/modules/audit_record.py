#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: audit_record
short_description: Append a record to a clinic's own tamper-evident audit trail
version_added: 0.1.0
description:
  - Appends one JSON line to the audit trail kept on the clinic host, chained to the previous
    record by its hash (the same format as the controller trail of the C(clinicops.runbook.audit)
    callback), so the clinic keeps its own record of every disruptive procedure even when the
    controller's trail is elsewhere.
  - Values under keys that look like secrets (password, secret, token, key) are replaced by
    C(********); only strings, numbers, booleans and short lists of them are kept.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details: Returns the record it would append and writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every call appends a record; that is its purpose.
options:
  procedure:
    description: The procedure (deploy, rollback, backup, restore, maintenance, ...).
    type: str
    required: true
  outcome:
    description:
      - How the procedure ended on this clinic.
      - V(override) records a break-glass override of the clinic's maintenance window (the
        C(clinicops.runbook.window_gate) role writes it).
    type: str
    required: true
    choices: [started, ok, failed, refused, rolled_back, skipped, override]
  run_id:
    description: The run the procedure belongs to.
    type: str
    required: true
  who:
    description: Who ran it (user, or AWX job and launcher).
    type: str
    default: unknown
  details:
    description: Ids and facts of the procedure (release id, backup id, durations...).
    type: dict
    default: {}
  trail:
    description: The clinic's audit trail file (created root-only).
    type: path
    default: /var/log/clinicops/audit.jsonl
"""

EXAMPLES = r"""
- name: Record the deploy on the clinic
  clinicops.runbook.audit_record:
    procedure: deploy
    outcome: ok
    run_id: "{{ clinicops_run_id }}"
    who: "{{ awx_user_name | default(lookup('ansible.builtin.env', 'USER')) }}"
    details:
      release_id: "{{ deploy_release_id }}"
      backup_id: "{{ __deploy_backup.snapshot_id }}"
"""

RETURN = r"""
record:
  description: The record appended (or that would be appended in check mode), with its chain hashes.
  returned: always
  type: dict
  sample: {"kind": "procedure", "procedure": "deploy", "outcome": "ok", "run_id": "20261125T101500Z-deploy-1a2b3c",
           "who": "ops-oncall", "at": "2026-11-25T10:21:09Z", "details": {"release_id": "20261125T101500Z-2.0.0"},
           "prev": "5c1f...", "hash": "9ab4..."}
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.audit_chain import append, procedure_record
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import to_stamp, utcnow

SECRET_KEY = re.compile(r"pass|secret|token|key|credential", re.IGNORECASE)
SCALARS = (str, int, float, bool, type(None))


def clean_details(details):
    cleaned = {}
    for key, value in sorted(details.items()):
        if SECRET_KEY.search(key):
            cleaned[key] = "********"
        elif isinstance(value, SCALARS):
            cleaned[key] = value if not isinstance(value, str) else value[:500]
        elif isinstance(value, list) and all(isinstance(item, SCALARS) for item in value):
            cleaned[key] = value[:50]
        else:
            cleaned[key] = "<%s omitted>" % type(value).__name__
    return cleaned


def main():
    module = AnsibleModule(
        argument_spec=dict(
            procedure=dict(type="str", required=True),
            outcome=dict(type="str", required=True,
                         choices=["started", "ok", "failed", "refused", "rolled_back", "skipped", "override"]),
            run_id=dict(type="str", required=True),
            who=dict(type="str", default="unknown"),
            details=dict(type="dict", default={}),
            trail=dict(type="path", default="/var/log/clinicops/audit.jsonl"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    record = procedure_record(params["procedure"], params["outcome"], params["run_id"], params["who"],
                              to_stamp(utcnow()), clean_details(params["details"]))
    if module.check_mode:
        module.exit_json(changed=True, record=record)
    try:
        sealed = append(params["trail"], [record])[0]
    except (IOError, OSError, ValueError, KeyError) as exc:
        module.fail_json(msg="could not append to the audit trail %s: %s; nothing was written"
                         % (params["trail"], exc))
    module.exit_json(changed=True, record=sealed)


if __name__ == "__main__":
    main()
