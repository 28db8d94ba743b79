#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: release
short_description: Prepare, switch, roll back and clean up the app releases of a clinic
version_added: 0.1.0
description:
  - Owns the release layout of the clinic app under O(app_root) as deploy and rollback change it,
    with C(releases/<id>/) per release, C(shared/) for what every release links to, and C(current),
    a symlink to the release the app runs.
  - Keeps a JSON release log, C(<app_root>/releases.json), with each release's version, who
    deployed it, run id, bound backup snapshots, times and status (C(unfinished), C(active),
    C(inactive), C(bad), C(rolled_back)) with its history. The log lists releases in the order
    they last became current; previous and keep-N follow that order, never file times.
  - The current release is always read from the C(current) link. When the log disagrees, the link
    wins and the difference is returned in RV(drift); the next change writes the log back in line.
    A host provisioned before the log existed (a C(current) link, no log) is adopted, its release
    active.
  - C(current) is switched by renaming a new symlink over it, so it always points at a whole
    release. A release carries C(.clinicops-unfinished) from O(state=prepared) until it is
    activated, and C(.clinicops-bad) (reason and time) once marked bad; rollback never chooses
    either by itself.
  - Refusals (an invalid id, a bad or missing release, nothing to roll back to) fail before
    anything is changed, with a message naming what was wrong.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details: Plans on the same code path and returns the actions, log and link it would leave; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details:
      - A second run with the same arguments changes nothing, except O(state=rolled_back) without
        O(to), which steps one more good release back each time; pass O(to) to make it idempotent.
options:
  app_root:
    description: The app root holding C(releases/), C(shared/), C(current) and the release log.
    type: path
    default: /srv/clinic
  state:
    description:
      - C(query) returns the state and changes nothing.
      - C(prepared) creates C(releases/<release_id>/) with its unfinished marker and log entry, or
        resumes it when it is still unfinished. The active release is left alone (reported in
        RV(notes)); a bad release is prepared again only with O(force=true).
      - C(linked) links O(shared_files) and O(shared_dirs) from C(shared/) into the release.
      - C(active) switches C(current) to the release and removes its unfinished marker; the
        release it replaces becomes C(inactive).
      - C(rolled_back) switches C(current) to O(to) (default the previous good release) and marks
        the release left with O(rollback_mark).
      - C(bad) marks a release that failed before it became current (build, migration) as bad.
      - C(cleaned) removes releases beyond the O(keep) newest good ones.
    type: str
    choices: [query, prepared, linked, active, rolled_back, bad, cleaned]
    default: query
  release_id:
    description:
      - The release, made once per fleet run by the caller (UTC timestamp and version), identical
        on every clinic. 1 to 128 letters, digits, C(.), C(_) or C(-), starting with a letter or
        digit, without C(..).
      - Required with O(state=prepared), O(state=linked), O(state=active) and O(state=bad).
    type: str
  version:
    description: App version of the release, recorded in the log with O(state=prepared).
    type: str
  who:
    description: Who deploys (user, or AWX job and launcher), recorded with O(state=prepared).
    type: str
  run_id:
    description: Run that prepares the release, recorded with O(state=prepared).
    type: str
  backup:
    description:
      - Backup snapshot ids bound to the release (for example the pre-deploy database backup),
        recorded with O(state=prepared) so a rollback can find them.
    type: dict
  seed_from_current:
    description:
      - With O(state=prepared), when the release directory is new, hard-link every file of the
        current release into it (like C(cp -al)), so unpacking or C(rsync) then only changes what
        differs.
      - Whatever fills the release afterwards must replace files (C(rsync) without C(--inplace),
        C(unarchive)), never write into them, or it would change the current release too.
    type: bool
    default: false
  shared_files:
    description:
      - With O(state=linked), files under C(shared/) (paths relative to it, such as C(app.env)) to
        link into the release at the same relative path.
      - Links are relative (C(../../shared/app.env)). The shared file must exist. Whatever the
        release holds at that path is replaced, which is allowed only while it is unfinished.
    type: list
    elements: str
  shared_dirs:
    description: With O(state=linked), directories under C(shared/) (such as C(uploads)) to link like O(shared_files).
    type: list
    elements: str
  to:
    description: With O(state=rolled_back), the release to switch to. Default the previous good release.
    type: str
  reason:
    description: Why a release is rolled back or marked bad; kept in its history and bad marker.
    type: str
  rollback_mark:
    description:
      - With O(state=rolled_back), how the release left behind is marked. C(bad) after a failed
        health gate (never chosen again), C(rolled_back) when an operator rolls back.
    type: str
    choices: [bad, rolled_back]
    default: rolled_back
  force:
    description:
      - Prepare or activate a bad release, roll back to an unfinished or bad one, or prepare over a
        release directory the log does not list. A release whose directory is gone is never used.
    type: bool
    default: false
  keep:
    description:
      - With O(state=cleaned), how many good releases (active and inactive, newest in log order)
        to keep. The current release and the previous good one are never removed.
      - Unfinished, bad and rolled-back releases do not count and are removed, except O(exclude).
    type: int
    default: 5
  exclude:
    description: With O(state=cleaned), a release never removed, such as the one being deployed.
    type: str
notes:
  - Run it under the clinic lock (M(clinicops.runbook.lock)); the module itself does not serialise runs.
  - A release directory is removed without following symlinks, so nothing outside C(releases/) is touched.
seealso:
  - module: clinicops.runbook.lock
  - name: Contracts between the parts of clinicops
    description: The release state contract.
    link: https://example.invalid/clinicops/runbook/docs/contracts.md
"""

EXAMPLES = r"""
- name: Prepare the release, seeded from the current one
  clinicops.runbook.release:
    state: prepared
    release_id: "{{ deploy_release_id }}"
    version: "{{ deploy_version }}"
    who: "{{ awx_user_name | default(lookup('ansible.builtin.env', 'USER')) }}"
    run_id: "{{ clinicops_run_id }}"
    backup: "{{ {'postgresql': pre_deploy_backup.snapshot_id} }}"
    seed_from_current: true

- name: Link the shared env file and uploads into it
  clinicops.runbook.release:
    state: linked
    release_id: "{{ deploy_release_id }}"
    shared_files: [app.env]
    shared_dirs: [uploads]

- name: Switch current to it
  clinicops.runbook.release:
    state: active
    release_id: "{{ deploy_release_id }}"
  notify: Restart the clinic app

- name: Roll back automatically after a failed health gate
  clinicops.runbook.release:
    state: rolled_back
    rollback_mark: bad
    reason: "health gate failed: {{ health.failed_checks | join(', ') }}"

- name: Keep five good releases, never the one being deployed
  clinicops.runbook.release:
    state: cleaned
    keep: 5
    exclude: "{{ deploy_release_id }}"
  register: release_cleanup
"""

RETURN = r"""
current:
  description: The release C(current) points at after the task (what it would point at, in check mode).
  returned: always
  type: str
  sample: 20261125T101500Z-2.4.0
previous:
  description: The release a rollback without O(to) would choose now, or null.
  returned: always
  type: str
  sample: 20261101T020000Z-2.3.1
releases:
  description: The release log after the task, in the order the releases last became current.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "20261125T101500Z-2.4.0", "version": "2.4.0", "who": "ops",
            "run_id": "20261125T101500Z-deploy-1a2b3c", "created": "2026-11-25T10:15:09Z",
            "activated": "2026-11-25T10:19:40Z", "status": "active", "backup": {"postgresql": "4f2a9c1e"},
            "history": [{"status": "unfinished", "at": "2026-11-25T10:15:09Z",
                         "reason": "prepared by run 20261125T101500Z-deploy-1a2b3c"},
                        {"status": "active", "at": "2026-11-25T10:19:40Z", "reason": "activated"}]}]
removed:
  description: Releases removed (directory and log entry) by O(state=cleaned).
  returned: always
  type: list
  elements: str
  sample: ["20260901T020000Z-2.1.0"]
drift:
  description: Where the release log disagreed with the C(current) link or the markers on disk (link and markers win).
  returned: always
  type: list
  elements: str
  sample: ["release 20260101T000000Z-1.0.0 is current but there is no release log yet; adopted as active"]
actions:
  description: What the task did, or would do in check mode, in order.
  returned: always
  type: list
  elements: str
  sample: ["switch current to releases/20261125T101500Z-2.4.0",
           "remove releases/20261125T101500Z-2.4.0/.clinicops-unfinished",
           "write the release log /srv/clinic/releases.json"]
notes:
  description: Why nothing was done where that may surprise, such as a release that is already active.
  returned: always
  type: list
  elements: str
  sample: ["release 20261125T101500Z-2.4.0 is already active; nothing to prepare"]
switched_from:
  description:
    - The release that was current before this task switched away from it (V(active), V(rolled_back)).
    - Null when nothing was switched.
  returned: always
  type: str
  sample: 20261125T101500Z-2.4.0
release_dir:
  description: Directory of O(release_id), or of the current release when no O(release_id) is given; null if neither.
  returned: always
  type: str
  sample: /srv/clinic/releases/20261125T101500Z-2.4.0
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.release_store import (
    ReleaseError,
    ReleaseStepError,
    ReleaseStore,
)

NEEDS_RELEASE_ID = ("prepared", "linked", "active", "bad")


def argument_spec():
    return dict(
        app_root=dict(type="path", default="/srv/clinic"),
        state=dict(type="str", default="query",
                   choices=["query", "prepared", "linked", "active", "rolled_back", "bad", "cleaned"]),
        release_id=dict(type="str"),
        version=dict(type="str"),
        who=dict(type="str"),
        run_id=dict(type="str"),
        backup=dict(type="dict"),
        seed_from_current=dict(type="bool", default=False),
        shared_files=dict(type="list", elements="str"),
        shared_dirs=dict(type="list", elements="str"),
        to=dict(type="str"),
        reason=dict(type="str"),
        rollback_mark=dict(type="str", choices=["bad", "rolled_back"], default="rolled_back"),
        force=dict(type="bool", default=False),
        keep=dict(type="int", default=5),
        exclude=dict(type="str"),
    )


def run(store, params, check_mode):
    """Call the ReleaseStore operation the requested state names."""
    state, release_id = params["state"], params["release_id"]
    if state == "query":
        return dict(store.state(), changed=False, actions=[], notes=[], removed=[])
    if state == "prepared":
        return store.prepare(release_id, params["version"], params["who"], params["run_id"], params["backup"],
                             params["seed_from_current"], params["force"], check_mode)
    if state == "linked":
        return store.link_shared(release_id, params["shared_files"] or [], params["shared_dirs"] or [], check_mode)
    if state == "active":
        return store.activate(release_id, params["force"], check_mode)
    if state == "rolled_back":
        return store.rollback(params["to"], params["reason"], params["rollback_mark"], params["force"], check_mode)
    if state == "bad":
        return store.mark_bad(release_id, params["reason"], check_mode)
    return store.cleanup(params["keep"], params["exclude"], check_mode)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("state", state, ["release_id"]) for state in NEEDS_RELEASE_ID],
        supports_check_mode=True,
    )
    store = ReleaseStore(module.params["app_root"])
    release_id = module.params["release_id"]
    what = "release %s in %s" % (release_id, store.app_root) if release_id else "releases in %s" % store.app_root
    try:
        before = store.state()["current"] if module.params["state"] in ("active", "rolled_back") else None
        result = run(store, module.params, module.check_mode)
    except ReleaseError as exc:
        module.fail_json(msg="%s: %s" % (what, exc))
    except ReleaseStepError as exc:
        module.fail_json(msg="%s: %s; done before it: %s; the release log was not updated" % (
            what, exc, "; ".join(exc.done) or "nothing"), done=exc.done)
    except (IOError, OSError) as exc:
        module.fail_json(msg="%s: %s; nothing was changed" % (what, exc))
    for note in result["drift"]:
        module.warn(note)
    shown = release_id or result["current"]
    result["switched_from"] = before if before != result["current"] else None
    module.exit_json(release_dir=store.release_dir(shown) if shown else None, **result)


if __name__ == "__main__":
    main()
