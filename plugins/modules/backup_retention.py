#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup_retention
short_description: Apply a GFS retention policy to one data set of a clinic's backup repository
version_added: 0.1.0
description:
  - Translates the clinicops retention vocabulary (O(policy.keep_daily), O(policy.keep_weekly),
    O(policy.keep_monthly), O(policy.keep_yearly), O(policy.keep_last)) into restic's
    C(--keep-*) flags and applies them to the snapshots of one data set (C(restic forget --prune)).
  - restic keeps a snapshot when B(any) rule keeps it; the rules are OR-ed, not AND-ed. With the
    defaults 30/12/12 a clinic keeps the newest backup of each of the last 30 days, of each of the
    last 12 weeks and of each of the last 12 months.
  - Nothing is removed unless O(fresh_snapshot), the snapshot made by this run, is the newest
    snapshot of the data set; a run whose backup failed never prunes.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
  - clinicops.runbook.restic_repository
attributes:
  check_mode:
    support: full
    details: Lists exactly which snapshots would be removed (C(restic forget --dry-run)).
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second run with nothing newer removes nothing.
options:
  clinic:
    description: Clinic id (snapshot tag).
    type: str
    required: true
  dataset:
    description: Data set (C(engine:name), as returned by M(clinicops.runbook.db_backup)).
    type: str
    required: true
  fresh_snapshot:
    description: The snapshot this run made; it must be the newest of the data set or nothing is pruned.
    type: str
    required: true
  policy:
    description: How many snapshots to keep per period. 0 turns a rule off; at least one rule must be on.
    type: dict
    required: true
    suboptions:
      keep_last:
        description: The newest N snapshots.
        type: int
        default: 0
      keep_daily:
        description: The newest snapshot of each of the last N days that have one.
        type: int
        default: 30
      keep_weekly:
        description: The newest snapshot of each of the last N weeks that have one.
        type: int
        default: 12
      keep_monthly:
        description: The newest snapshot of each of the last N months that have one.
        type: int
        default: 12
      keep_yearly:
        description: The newest snapshot of each of the last N years that have one.
        type: int
        default: 0
seealso:
  - module: clinicops.runbook.db_backup
"""

EXAMPLES = r"""
- name: Keep 30 daily, 12 weekly and 12 monthly backups of the clinic database
  clinicops.runbook.backup_retention:
    repository: /var/backups/clinicops/repo
    password_file: /etc/clinicops/restic-password
    clinic: "{{ clinic_id }}"
    dataset: postgresql:clinicdb
    fresh_snapshot: "{{ clinic_backup.snapshot_id }}"
    policy:
      keep_daily: 30
      keep_weekly: 12
      keep_monthly: 12
"""

RETURN = r"""
removed:
  description: Snapshots removed (or that would be, in check mode), short ids.
  returned: always
  type: list
  elements: str
  sample: [1a2b3c4d]
kept:
  description: How many snapshots of the data set remain.
  returned: always
  type: int
  sample: 31
restic_flags:
  description: The restic flags the policy translated to.
  returned: always
  type: list
  elements: str
  sample: [--keep-daily, "30", --keep-weekly, "12", --keep-monthly, "12"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_job import (
    RetentionSkippedError,
    apply_retention,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import (
    ResticError,
    gfs_arguments,
    repository_argument_spec,
    repository_of,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository_argument_spec(),
            clinic=dict(type="str", required=True),
            dataset=dict(type="str", required=True),
            fresh_snapshot=dict(type="str", required=True),
            policy=dict(type="dict", required=True, options=dict(
                keep_last=dict(type="int", default=0),
                keep_daily=dict(type="int", default=30),
                keep_weekly=dict(type="int", default=12),
                keep_monthly=dict(type="int", default=12),
                keep_yearly=dict(type="int", default=0),
            )),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        flags = gfs_arguments(params["policy"])
    except ValueError as exc:
        module.fail_json(msg="retention policy for %s: %s; nothing was removed" % (params["dataset"], exc))
    try:
        removed, kept, flags = apply_retention(repository_of(module), params["clinic"], params["dataset"],
                                               params["fresh_snapshot"], params["policy"], module.check_mode)
    except RetentionSkippedError as exc:
        module.fail_json(msg="retention skipped: %s; nothing was removed" % exc, removed=[], restic_flags=flags)
    except ResticError as exc:
        module.fail_json(msg="retention of %s failed: %s" % (params["dataset"], exc))
    module.exit_json(changed=bool(removed), removed=removed, kept=kept, restic_flags=flags)


if __name__ == "__main__":
    main()
