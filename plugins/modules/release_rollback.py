#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: release_rollback
short_description: Roll a clinic back in one remote call - lock, audit, switch, restart, health gate
version_added: 0.1.0
description:
  - The fast path of the C(clinicops.runbook.rollback) role for code releases. In one module run it takes
    the clinic lock, appends a C(started) record to the clinic's audit trail, switches C(current) to the
    previous good release or O(to) (the rules of M(clinicops.runbook.release) rolling back),
    restarts the app's systemd unit, polls its readiness URL until it answers 200 naming the release,
    appends the outcome record and releases the lock.
  - Each of those steps is the same code as the separate modules (M(clinicops.runbook.lock),
    M(clinicops.runbook.audit_record), M(clinicops.runbook.release)); doing them in one run saves the
    round trips, which dominate a rollback over a slow link.
  - A refused target (gone, or bad/unfinished without O(force)) changes nothing but the audit trail.
    A release that does not become healthy is left current (the operator asked for it) and the task fails
    naming why.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details: Reports the switch it would make; takes no lock, writes no record, restarts nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - With O(to), a second run finds the release current and changes nothing.
      - Without it, each run steps back once more.
options:
  app_root:
    description: App root holding C(releases/), C(current) and C(releases.json).
    type: path
    default: /srv/clinic
  to:
    description: Release id to roll back to; the previous good release when omitted.
    type: str
  mark:
    description: How the release left is marked.
    type: str
    choices: [rolled_back, bad]
    default: rolled_back
  reason:
    description: Reason kept in the release log.
    type: str
  force:
    description: Allow a target marked bad or unfinished.
    type: bool
    default: false
  service:
    description: systemd unit of the app, restarted after the switch.
    type: str
    required: true
  health_url:
    description: Readiness URL of the app itself; its body must name the release rolled back to.
    type: str
    required: true
  health_deadline:
    description: Seconds the release has to answer healthy.
    type: float
    default: 60
  owner:
    description: Lock owner (C(<run id>-<inventory host>), as M(clinicops.runbook.lock) is used by the roles).
    type: str
    required: true
  run_id:
    description: Run id recorded in the lock and the audit trail.
    type: str
    required: true
  who:
    description: Who runs the rollback.
    type: str
    default: unknown
  controller:
    description: Controller host name recorded in the lock.
    type: str
    default: unknown
  lock_path:
    description: The clinic lock file.
    type: path
    default: /var/lib/clinicops/clinic.lock
  lock_ttl:
    description: Seconds after which the lock of a killed rollback may be taken over.
    type: int
    default: 1800
  trail:
    description: The clinic's audit trail.
    type: path
    default: /var/log/clinicops/audit.jsonl
  details:
    description: More facts for the outcome record (scalars), e.g. whether the data is restored next.
    type: dict
    default: {}
seealso:
  - module: clinicops.runbook.release
  - module: clinicops.runbook.lock
"""

EXAMPLES = r"""
- name: Roll back to the previous good release
  clinicops.runbook.release_rollback:
    service: clinic-app
    health_url: http://127.0.0.1:8000/health
    owner: "{{ clinicops_run_id }}-{{ inventory_hostname }}"
    run_id: "{{ clinicops_run_id }}"
"""

RETURN = r"""
current:
  description: The release current after the task.
  returned: always
  type: str
  sample: 20261125T101500Z-2.3.0
switched_from:
  description: The release left, or null when nothing was switched.
  returned: always
  type: str
  sample: 20261126T090000Z-2.4.0
health:
  description: The last readiness answer (C(healthy), C(detail), C(status), C(latency_ms)).
  returned: when a switch happened outside check mode
  type: dict
  sample: {"healthy": true, "detail": "HTTP 200 in 3 ms", "status": 200}
seconds:
  description: Wall time of the whole task on the clinic.
  returned: always
  type: float
  sample: 2.1
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.audit_chain import append, procedure_record
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.clinic_lock import ClinicLock, LockError
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.health_probes import probe_http
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.release_store import (
    ReleaseError,
    ReleaseStepError,
    ReleaseStore,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import to_stamp, utcnow


def record(params, outcome, details):
    return procedure_record("rollback", outcome, params["run_id"], params["who"], to_stamp(utcnow()), details)


def wait_healthy(url, release, deadline):
    """Poll the readiness URL every 0.25 s until it answers 200 naming ``release``, or the deadline passes."""
    end = time.monotonic() + deadline
    while True:
        result = probe_http({"name": "app", "url": url, "body_contains": release, "timeout": 2})
        if result.healthy or time.monotonic() >= end:
            return result
        time.sleep(0.25)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_root=dict(type="path", default="/srv/clinic"),
            to=dict(type="str"),
            mark=dict(type="str", choices=["rolled_back", "bad"], default="rolled_back"),
            reason=dict(type="str"),
            force=dict(type="bool", default=False),
            service=dict(type="str", required=True),
            health_url=dict(type="str", required=True),
            health_deadline=dict(type="float", default=60),
            owner=dict(type="str", required=True),
            run_id=dict(type="str", required=True),
            who=dict(type="str", default="unknown"),
            controller=dict(type="str", default="unknown"),
            lock_path=dict(type="path", default="/var/lib/clinicops/clinic.lock"),
            lock_ttl=dict(type="int", default=1800),
            trail=dict(type="path", default="/var/log/clinicops/audit.jsonl"),
            details=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    params = module.params
    started = time.monotonic()
    store = ReleaseStore(params["app_root"])
    before = store.state()["current"]
    if module.check_mode:
        try:
            plan = store.rollback(params["to"], params["reason"], params["mark"], params["force"], check_mode=True)
        except ReleaseError as exc:
            module.fail_json(msg="rollback on %s: %s" % (store.app_root, exc), current=before, switched_from=None)
        module.exit_json(changed=plan["current"] != before, current=plan["current"],
                         switched_from=before if plan["current"] != before else None, seconds=0.0)

    lock = ClinicLock(params["lock_path"])
    request = dict(owner=params["owner"], run_id=params["run_id"], operation="rollback",
                   controller=params["controller"], user=params["who"])
    try:
        if not os.path.isdir(os.path.dirname(params["lock_path"])):
            os.makedirs(os.path.dirname(params["lock_path"]), 0o755)
        lock.acquire(request, params["lock_ttl"], utcnow())
    except (LockError, IOError, OSError) as exc:
        module.fail_json(msg="clinic lock %s: %s; nothing was changed" % (params["lock_path"], exc),
                         current=before, switched_from=None)
    outcome, failure, result, health = "failed", None, None, None
    try:
        append(params["trail"], [record(params, "started", {})])
        result = store.rollback(params["to"], params["reason"], params["mark"], params["force"])
        if result["current"] != before:
            rc, _out, err = module.run_command(["systemctl", "restart", params["service"]])
            if rc != 0:
                raise ReleaseError("switched to %s but `systemctl restart %s` failed: %s"
                                   % (result["current"], params["service"], err.strip()))
        health = wait_healthy(params["health_url"], result["current"], params["health_deadline"])
        if not health.healthy:
            raise ReleaseError("switched to %s and restarted %s, but it is not healthy after %ss: %s"
                               % (result["current"], params["service"], params["health_deadline"], health.detail))
        outcome = "ok"
    except (ReleaseError, ReleaseStepError, IOError, OSError) as exc:
        failure = str(exc)
    finally:
        details = dict(params["details"])
        details.update({"from": before if result and result["current"] != before else "",
                        "to": result["current"] if result else before, "mark": params["mark"], "fast": True})
        if failure:
            details["failure"] = failure[:500]
        try:
            append(params["trail"], [record(params, outcome, details)])
        except (IOError, OSError, ValueError) as exc:
            problem = "could not record the outcome in %s: %s" % (params["trail"], exc)
            failure = "%s; %s" % (failure, problem) if failure else problem
        finally:
            lock.release(params["owner"])
    current = result["current"] if result else before
    switched_from = before if current != before else None
    for note in (result or {}).get("drift", []):
        module.warn(note)
    answer = health.as_dict() if health is not None else None
    if failure:
        module.fail_json(msg="rollback on %s: %s" % (store.app_root, failure), current=current,
                         switched_from=switched_from, health=answer)
    module.exit_json(changed=switched_from is not None, current=current, switched_from=switched_from, health=answer,
                     seconds=round(time.monotonic() - started, 2))


if __name__ == "__main__":
    main()
