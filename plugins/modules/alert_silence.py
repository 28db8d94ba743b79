#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: alert_silence
short_description: Silence a clinic's alerts in Prometheus Alertmanager for a maintenance window
version_added: 0.1.0
description:
  - Sets, through Alertmanager's HTTP API v2, the silence of one run for one clinic's alerts
    (O(state=present)), or expires it at the end of the maintenance window (O(state=absent)).
  - The silence always ends (O(ends_at) or O(duration)), so a run that dies halfway never leaves
    the clinic silenced for longer than its window; a silence of more than 7 days (the longest
    maintenance window) is refused.
  - The silence of a run is found again by the marker C([clinicops run <run_id>]) that ends its
    comment, together with exactly the same set of O(matchers). Only such a silence is ever updated
    or expired; silences set by people, by other runs, or for other matchers are left alone.
  - With O(state=present), a rerun keeps the run's silence when its end, comment and author are the
    wanted ones (ends are compared to the second), and updates it otherwise (to extend or shorten
    the window). Alertmanager updates a silence in place, keeping its id, when its matchers are
    unchanged, its new end is not in the past and, once it is active, its start is unchanged; the
    module never moves the start of an active silence. Otherwise Alertmanager expires the old
    silence and creates a new one, reported as RV(silence_action=replaced) with the old id in RV(expired).
    Duplicates of the run's silence (two runs raced) are expired, keeping the one ending last.
  - With O(state=absent), every active or pending silence of the run with the same matchers is
    expired (Alertmanager keeps expired silences for its retention time).
  - Runs on the controller; delegate it to C(localhost). Bad input (no matchers, matchers that
    would silence every alert, an end in the past or not after the start, a malformed URL) fails
    before Alertmanager is contacted; an unreachable Alertmanager fails the task with the reason,
    and the play decides whether that is fatal.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details:
      - Lists the silences (a read), and reports the silence that would be created, updated or expired
        in RV(silence) and RV(msg); nothing is changed in Alertmanager.
  diff_mode:
    support: full
    details: The run's silences before and after, keyed by id (C(new) for a silence to create).
  idempotent:
    support: full
    details:
      - A second run with the same options reports no change. With O(duration) and no O(starts_at),
        the duration counts from the start of the run's active silence, so a rerun keeps the same end.
options:
  url:
    description:
      - Base URL of Alertmanager, C(http://host[:port][/route-prefix]) or C(https://...), without credentials,
        a query or a fragment.
    type: str
    required: true
  state:
    description:
      - V(present) sets the run's silence; V(absent) expires it.
    type: str
    choices: [present, absent]
    default: present
  run_id:
    description:
      - Id of the run (the release id of a fleet run), stored in the comment as C([clinicops run <run_id>])
        so that this run finds its silence again. 1 to 200 characters, without brackets or line breaks.
    type: str
    required: true
  matchers:
    description:
      - The alerts to silence, usually the clinic's label (V(name=clinic), V(value=<clinic id>)). At least
        one matcher is required, and at least one must not match an alert without the label (a silence
        of every alert is refused, as Alertmanager refuses it).
      - The same set of matchers identifies the run's silence for O(state=absent) and for reruns.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Label name.
        type: str
        required: true
      value:
        description: Label value, or a regular expression (Go RE2 syntax, anchored) when O(matchers[].is_regex=true).
        type: str
        required: true
      is_regex:
        description: Match O(matchers[].value) as a regular expression.
        type: bool
        default: false
      is_equal:
        description: V(false) silences the alerts whose label does not match (C(!=), C(!~)).
        type: bool
        default: true
  starts_at:
    description:
      - Start of the silence, ISO 8601 with a UTC offset (V(2026-11-29T02:00:00+01:00), V(2026-11-29T01:00:00Z)).
        Default now. A start in the past is moved to now by Alertmanager.
      - The start of a silence that is already active is never changed.
    type: str
  ends_at:
    description:
      - End of the silence (the end of the maintenance window), ISO 8601 with a UTC offset. It must be in
        the future and after the start.
      - Required with O(state=present) unless O(duration) is given.
    type: str
  duration:
    description:
      - Length of the silence, in the syntax of maintenance windows (V(2h), V(90m), V(1h30m), V(1d), or a
        number of minutes), counted from O(starts_at) when it is given, else from the start of the run's
        active silence (so a rerun keeps its end), else from now.
      - Required with O(state=present) unless O(ends_at) is given.
    type: str
  comment:
    description: Comment of the silence; the run's marker is appended to it.
    type: str
    default: clinicops maintenance window
  created_by:
    description: Author of the silence, as Alertmanager shows it.
    type: str
    default: clinicops
  bearer_token:
    description: "Token sent as C(Authorization: Bearer <token>) (Alertmanager behind an authenticating proxy)."
    type: str
  url_username:
    description: User for HTTP basic authentication (sent with the first request).
    type: str
  url_password:
    description: Password for HTTP basic authentication.
    type: str
  headers:
    description: Further HTTP headers, such as C(X-Scope-OrgID) of a multi-tenant Alertmanager.
    type: dict
    default: {}
  validate_certs:
    description: Verify the TLS certificate of an C(https) URL.
    type: bool
    default: true
  ca_path:
    description: PEM file of the certificate authorities to trust for an C(https) URL.
    type: path
  timeout:
    description: Seconds to wait for each answer of Alertmanager.
    type: int
    default: 10
notes:
  - The values of O(bearer_token), O(url_password) and O(headers) are never logged nor returned.
seealso:
  - module: clinicops.runbook.window_gate
  - name: Alertmanager silences
    description: What a silence is, and its matchers.
    link: https://prometheus.io/docs/alerting/latest/alertmanager/#silences
  - name: Alertmanager API v2
    description: The OpenAPI specification of the silence endpoints.
    link: https://github.com/prometheus/alertmanager/blob/main/api/v2/openapi.yaml
"""

EXAMPLES = r"""
- name: Silence the clinic's alerts until the end of its maintenance window
  clinicops.runbook.alert_silence:
    url: https://alertmanager.example.org
    bearer_token: "{{ alertmanager_token }}"
    run_id: "{{ clinicops_run_id }}"
    matchers:
      - name: clinic
        value: "{{ clinic_id }}"
    ends_at: "{{ window_gate_result.window.end }}"
    comment: "maintenance of {{ clinic_id }}"
    created_by: "{{ clinicops_who | default('clinicops') }}"
  delegate_to: localhost
  register: clinic_silence

- name: Silence two hours of the clinic's backup alerts, from the start of the window
  clinicops.runbook.alert_silence:
    url: http://alertmanager.internal:9093
    run_id: "{{ clinicops_run_id }}"
    matchers:
      - name: clinic
        value: "{{ clinic_id }}"
      - name: alertname
        value: "Backup.*"
        is_regex: true
    starts_at: "2026-11-29T02:00:00+01:00"
    duration: 2h
  delegate_to: localhost

- name: Lift the silence at the end of the maintenance (the alerts speak again)
  clinicops.runbook.alert_silence:
    url: https://alertmanager.example.org
    bearer_token: "{{ alertmanager_token }}"
    run_id: "{{ clinicops_run_id }}"
    matchers:
      - name: clinic
        value: "{{ clinic_id }}"
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
msg:
  description: One line saying what was done (or would be, in check mode).
  returned: always
  type: str
  sample: 'created silence 5c1b1f0e-0d7a-4f55-9d0b-7f4a6e1c2b3d for {clinic="kinshasa"} of run 20261129T010000Z-2.4.1
    until 2026-11-29T03:00:00.000Z'
silence_action:
  description:
    - What was done to the run's silence, V(created), V(updated), V(replaced) (Alertmanager expired the old
      silence and created a new one), V(unchanged), V(expired), or V(absent) (no silence of the run to expire);
      in check mode, what would be done. (Not C(action), which callbacks overwrite with the module's name.)
  returned: always
  type: str
  sample: created
silence_id:
  description:
    - Id of the run's silence (for O(state=absent), of the first silence expired). V(null) when there is
      none, or when one would be created in check mode.
  returned: always
  type: str
  sample: 5c1b1f0e-0d7a-4f55-9d0b-7f4a6e1c2b3d
silence:
  description:
    - The silence as Alertmanager returns it after the change (C(GET /api/v2/silence/<id>)); in check mode
      the silence as it is, or as it would be sent. V(null) when there is none.
  returned: always
  type: dict
  sample:
    id: 5c1b1f0e-0d7a-4f55-9d0b-7f4a6e1c2b3d
    status: {state: active}
    matchers: [{name: clinic, value: kinshasa, isRegex: false, isEqual: true}]
    startsAt: "2026-11-29T01:00:02.311Z"
    endsAt: "2026-11-29T03:00:00.000Z"
    updatedAt: "2026-11-29T01:00:02.311Z"
    createdBy: clinicops
    comment: clinicops maintenance window [clinicops run 20261129T010000Z-2.4.1]
expired:
  description: Ids of the silences expired (or that would be, in check mode), including a replaced one.
  returned: always
  type: list
  elements: str
  sample: [5c1b1f0e-0d7a-4f55-9d0b-7f4a6e1c2b3d]
alertmanager_unreachable:
  description:
    - Whether the task failed because Alertmanager did not answer (refused, timed out, TLS failure), so that
      a play can go on without the silence (C(failed_when) or C(ignore_errors)) but not with a bad input.
  returned: failure
  type: bool
  sample: true
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.alert_silence import (
    AlertmanagerClient,
    AlertmanagerUnreachableError,
    SilenceError,
    SilenceKeeper,
    open_url_transport,
    silence_spec,
)


def argument_spec():
    return dict(
        url=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        run_id=dict(type="str", required=True),
        matchers=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                name=dict(type="str", required=True),
                value=dict(type="str", required=True),
                is_regex=dict(type="bool", default=False),
                is_equal=dict(type="bool", default=True),
            ),
        ),
        starts_at=dict(type="str"),
        ends_at=dict(type="str"),
        duration=dict(type="str"),
        comment=dict(type="str", default="clinicops maintenance window"),
        created_by=dict(type="str", default="clinicops"),
        bearer_token=dict(type="str", no_log=True),
        url_username=dict(type="str"),
        url_password=dict(type="str", no_log=True),
        headers=dict(type="dict", default={}, no_log=True),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        timeout=dict(type="int", default=10),
    )


def keeper(module):
    params = module.params
    if params["timeout"] <= 0:
        raise SilenceError("timeout must be a positive number of seconds, got %s" % params["timeout"])
    spec = silence_spec(
        params["matchers"],
        params["run_id"],
        params["comment"],
        params["created_by"],
        starts_at=params["starts_at"],
        ends_at=params["ends_at"],
        duration=params["duration"],
    )
    transport = open_url_transport(
        timeout=params["timeout"],
        validate_certs=params["validate_certs"],
        ca_path=params["ca_path"],
        headers=params["headers"],
        bearer_token=params["bearer_token"],
        url_username=params["url_username"],
        url_password=params["url_password"],
    )
    client = AlertmanagerClient(params["url"], transport)
    return SilenceKeeper(client, spec, datetime.now(timezone.utc), module.check_mode)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("ends_at", "duration"), ("bearer_token", "url_username")],
        required_if=[("state", "present", ("ends_at", "duration"), True)],
        required_together=[("url_username", "url_password")],
        supports_check_mode=True,
    )
    present = module.params["state"] == "present"
    silences = None
    try:
        silences = keeper(module)
        result = silences.present() if present else silences.absent()
    except SilenceError as exc:
        done = "; ".join(silences.done) if silences is not None else ""
        outcome = ("done before the failure: %s" % done) if done else "nothing was changed in Alertmanager"
        # Not "unreachable": Ansible would take the host itself for unreachable.
        module.fail_json(
            msg="alert silence: %s; %s" % (exc, outcome),
            alertmanager_unreachable=isinstance(exc, AlertmanagerUnreachableError),
        )
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
