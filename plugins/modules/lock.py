#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: lock
short_description: Take or release the per-clinic lock of a disruptive procedure
version_added: 0.1.0
description:
  - Every disruptive clinicops procedure (deploy, rollback, restore, maintenance, backup) takes
    this lock first and releases it last, so two procedures never overlap on one clinic, even
    when they come from different controllers, CLI runs or AWX job templates.
  - The lock is one JSON file holding the owner token, run id, operation, controller host, user,
    start and expiry. Taking it is atomic; a lock held by another owner makes the task fail with
    a message naming who holds it, for what and since when.
  - A lock left behind by a killed run stays until it expires; then the next run takes it over
    and reports the previous holder in RV(took_over).
  - Only the owner releases the lock, unless O(force=true) (break-glass; the previous holder is
    returned so it can be audited).
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details: Reports whether the lock would be taken, renewed, taken over or refused; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Taking a lock you already hold renews its expiry, which is reported as a change.
options:
  state:
    description: C(present) takes (or renews) the lock, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  owner:
    description:
      - Token identifying the holder, unique per run (e.g. the run id plus a random part).
        Only this token can release or renew the lock.
    type: str
    required: true
  run_id:
    description: Run identifier shown to whoever finds the lock held.
    type: str
  operation:
    description: What the holder is doing (deploy, backup, ...).
    type: str
  controller:
    description: Host the run is controlled from.
    type: str
  user:
    description: Who started the run (user, or AWX job and launcher).
    type: str
  ttl:
    description: Seconds until the lock expires and may be taken over. Set it above the longest run of the operation.
    type: int
    default: 3600
  path:
    description: Lock file. Its directory is created if missing.
    type: path
    default: /var/lib/clinicops/clinic.lock
  force:
    description: With O(state=absent), release a lock held by another owner (break-glass).
    type: bool
    default: false
notes:
  - The lock protects one host. Controller-side locks of the clinicops CLI complement it.
seealso:
  - name: Contracts between the parts of clinicops
    description: The per-clinic lock contract.
    link: https://example.invalid/clinicops/runbook/docs/contracts.md
"""

EXAMPLES = r"""
- name: Take the clinic's lock for this deploy
  clinicops.runbook.lock:
    owner: "{{ clinicops_run_id }}-{{ inventory_hostname }}"
    run_id: "{{ clinicops_run_id }}"
    operation: deploy
    user: "{{ awx_user_name | default(lookup('ansible.builtin.env', 'USER')) }}"
    ttl: 5400

- name: Release it (always, even after a failure)
  clinicops.runbook.lock:
    state: absent
    owner: "{{ clinicops_run_id }}-{{ inventory_hostname }}"
"""

RETURN = r"""
action:
  description: What was done (or would be done in check mode).
  returned: always
  type: str
  sample: take
  choices: [take, renew, takeover, release, none]
holder:
  description: The lock as it stands after the task (null once released).
  returned: always
  type: dict
  sample: {"owner": "20261125T101500Z-deploy-1a2b3c-kinshasa", "run_id": "20261125T101500Z-deploy-1a2b3c",
           "operation": "deploy", "controller": "ops-1", "user": "ops-oncall",
           "started": "2026-11-25T10:15:03Z", "expires": "2026-11-25T11:45:03Z"}
took_over:
  description: The expired lock that was taken over, or the lock force-released; null otherwise.
  returned: always
  type: dict
  sample: {"run_id": "20261124T020000Z-backup-9f8e7d", "operation": "backup", "expires": "2026-11-24T03:00:00Z"}
path:
  description: The lock file.
  returned: always
  type: str
  sample: /var/lib/clinicops/clinic.lock
refused:
  description:
    - True when the lock could not be taken because another run holds it (the task fails).
      The clinicops CLI reports such a clinic as C(refused), not C(failed), and exits 3.
  returned: failure
  type: bool
  sample: true
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.clinic_lock import (
    ClinicLock,
    LockError,
    describe,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import utcnow


def argument_spec():
    return dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        owner=dict(type="str", required=True),
        run_id=dict(type="str"),
        operation=dict(type="str"),
        controller=dict(type="str"),
        user=dict(type="str"),
        ttl=dict(type="int", default=3600),
        path=dict(type="path", default="/var/lib/clinicops/clinic.lock"),
        force=dict(type="bool", default=False),
    )


def take(module, lock):
    params = module.params
    if params["ttl"] <= 0:
        raise LockError("ttl must be a positive number of seconds, got %s" % params["ttl"])
    changed, action, previous, holder = lock.acquire(params, params["ttl"], utcnow(), module.check_mode)
    result = dict(changed=changed, action=action, holder=holder, took_over=None)
    if action == "takeover":
        result["took_over"] = previous
        module.warn("took over an expired lock of %s" % describe(previous))
    return result


def release(module, lock):
    params = module.params
    changed, previous = lock.release(params["owner"], params["force"], module.check_mode)
    result = dict(changed=changed, action="release" if changed else "none", holder=None, took_over=None)
    if changed and previous.get("owner") != params["owner"]:
        result["took_over"] = previous
        module.warn("force-released the lock of %s" % describe(previous))
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    path = module.params["path"]
    directory = os.path.dirname(path)
    try:
        if not os.path.isdir(directory):
            if module.check_mode:
                module.exit_json(changed=module.params["state"] == "present", path=path,
                                 action="take" if module.params["state"] == "present" else "none",
                                 holder=None, took_over=None)
            os.makedirs(directory, 0o755)
        lock = ClinicLock(path)
        result = take(module, lock) if module.params["state"] == "present" else release(module, lock)
    except LockError as exc:
        # refused: another run holds the clinic; callers (the CLI) tell a refusal from a failure.
        module.fail_json(msg="clinic lock %s: %s; nothing was changed" % (path, exc), path=path,
                         holder=ClinicLock(path).read() if os.path.isdir(directory) else None,
                         refused=module.params["state"] == "present")
    except (IOError, OSError) as exc:
        module.fail_json(msg="clinic lock %s: %s; nothing was changed" % (path, exc), path=path)
    module.exit_json(path=path, **result)


if __name__ == "__main__":
    main()
