#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: log_scan
short_description: Scan a clinic's logs over a time window for errors, 4xx/5xx rates, attacks and privilege changes
version_added: 0.1.0
description:
  - Reads the logs named in O(logs) over the last O(hours) hours, rotated copies included
    (C(<log>.1), C(<log>-YYYYMMDD), C(.gz), C(.zst) files changed within the window), and counts, per
    kind of log, what follows.
  - C(nginx) (the C(combined) format) requests, 4xx and 5xx answers and their rates, the busiest
    client addresses, and requests matching suspicious patterns (SQL injection such as C(union select)
    or C(' or 1=1), C(<script), path traversal such as C(../)).
  - C(app) (the clinic app's lines, an ISO 8601 time first) error lines and 5xx answers, and failed
    logins (C(auth failed user=U ip=IP)).
  - C(auth) failed logins of sshd (C(Failed password for U from IP)) or of the app.
  - Request lines may hold patient data. No request line is returned; a suspicious request is reported
    by pattern, client address, status and its path without the query string, cut to 60 characters.
  - With O(privilege_baseline), also compares the members of the privileged groups (O(privilege_groups)
    in C(/etc/group)) and the files of C(/etc/sudoers.d) with a baseline kept on the clinic, written on
    the first run, and reports every addition. Delete the baseline file to accept the current state.
  - O(fail_on) sets thresholds; a value above its threshold fails the task (after the whole report is
    made) unless O(fail_on_threshold=false). Rates are judged only over 20 requests or more.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details:
      - Scans the same way; the privilege baseline of a first run is not written (RV(baseline_written)
        says it would be).
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Only the first run writes the privilege baseline.
options:
  logs:
    description: The logs to scan.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: The current log file (its rotated copies are found beside it); a glob is allowed.
        type: path
        required: true
      kind:
        description: Its format.
        type: str
        choices: [nginx, app, auth]
        required: true
  hours:
    description: The window, in hours before O(now).
    type: float
    default: 24
  now:
    description: End of the window, ISO 8601 with an offset (default the current time). For tests and drills.
    type: str
  fail_on:
    description:
      - Thresholds; a value above one fails the scan. Keys C(requests_5xx_rate), C(requests_4xx_rate)
        (fractions, 0.05 is 5%), C(requests_5xx), C(app_errors), C(failed_logins), C(failed_logins_per_ip),
        C(suspicious_requests), C(privilege_changes).
    type: dict
    default: {}
  fail_on_threshold:
    description: Fail the task when a threshold is crossed (the report is returned either way).
    type: bool
    default: true
  privilege_baseline:
    description: JSON file on the clinic keeping the privileged accounts seen first. Empty skips the check.
    type: path
  privilege_groups:
    description: Groups whose members are privileged.
    type: list
    elements: str
    default: [sudo, adm, wheel]
  group_file:
    description: The group database.
    type: path
    default: /etc/group
  sudoers_dir:
    description: Directory of sudoers drop-ins.
    type: path
    default: /etc/sudoers.d
"""

EXAMPLES = r"""
- name: The evening checklist's log figures of the last 24 hours
  clinicops.runbook.log_scan:
    logs:
      - path: /var/log/nginx/clinic-app.access.log
        kind: nginx
      - path: /var/log/clinic-app/app.log
        kind: app
    fail_on:
      requests_5xx_rate: 0.05

- name: Security scan with a privilege baseline
  clinicops.runbook.log_scan:
    logs:
      - path: /var/log/nginx/clinic-app.access.log
        kind: nginx
      - path: /var/log/clinic-app/app.log
        kind: app
      - path: /var/log/auth.log
        kind: auth
    privilege_baseline: /var/lib/clinicops/privilege-baseline.json
    fail_on:
      failed_logins_per_ip: 10
      suspicious_requests: 0
      privilege_changes: 0
"""

RETURN = r"""
window:
  description: The window scanned (UTC).
  returned: always
  type: dict
  sample: {"since": "2026-11-25T12:00:00Z", "until": "2026-11-26T12:00:00Z", "hours": 24}
files_read:
  description: Log files read, rotated copies included.
  returned: always
  type: list
  elements: str
files_missing:
  description: Logs of O(logs) with no file.
  returned: always
  type: list
  elements: str
requests:
  description: nginx requests in the window.
  returned: always
  type: int
requests_4xx:
  description: Of them answered 4xx.
  returned: always
  type: int
requests_5xx:
  description: Of them answered 5xx.
  returned: always
  type: int
requests_4xx_rate:
  description: 4xx answers over requests (0 when there were none).
  returned: always
  type: float
requests_5xx_rate:
  description: 5xx answers over requests.
  returned: always
  type: float
top_client_ips:
  description: The busiest client addresses (C(ip), C(requests)).
  returned: always
  type: list
  elements: dict
suspicious_requests:
  description: Requests matching a suspicious pattern.
  returned: always
  type: int
suspicious_by_pattern:
  description: Those requests per pattern (C(sql_injection), C(script_injection), C(path_traversal)).
  returned: always
  type: dict
suspicious_samples:
  description: Up to 10 of them (C(pattern), C(ip), C(status), C(path) without the query, cut short).
  returned: always
  type: list
  elements: dict
failed_logins:
  description: Failed logins in the window.
  returned: always
  type: int
failed_logins_by_ip:
  description: Failed logins per source address, most first.
  returned: always
  type: dict
  sample: {"203.0.113.7": 25}
app_errors:
  description: App log lines reporting an error or a 5xx answer.
  returned: always
  type: int
privilege_additions:
  description: "Privileges added since the baseline: C(group sudo: +mallory), C(sudoers.d: +99-x)."
  returned: always
  type: list
  elements: str
baseline_written:
  description: The privilege baseline was written by this run (would be, in check mode).
  returned: always
  type: bool
crossed:
  description: The thresholds crossed, one sentence each.
  returned: always
  type: list
  elements: str
passed:
  description: No threshold crossed.
  returned: always
  type: bool
summary:
  description: One line for the report.
  returned: always
  type: str
"""

import json
import os
from datetime import datetime, timedelta, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.atomic_files import (
    read_json,
    write_atomic,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_scan import (
    LogScanError,
    judge,
    parse_iso_time,
    privilege_additions,
    read_privileges,
    scan_files,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import to_stamp


def argument_spec():
    return dict(
        logs=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                path=dict(type="path", required=True),
                kind=dict(type="str", required=True, choices=["nginx", "app", "auth"]),
            ),
        ),
        hours=dict(type="float", default=24),
        now=dict(type="str"),
        fail_on=dict(type="dict", default={}),
        fail_on_threshold=dict(type="bool", default=True),
        privilege_baseline=dict(type="path"),
        privilege_groups=dict(type="list", elements="str", default=["sudo", "adm", "wheel"]),
        group_file=dict(type="path", default="/etc/group"),
        sudoers_dir=dict(type="path", default="/etc/sudoers.d"),
    )


def check_privileges(params, check_mode):
    """(additions, baseline_written): the baseline is the state first seen, written once."""
    path = params["privilege_baseline"]
    if not path:
        return [], False
    current = read_privileges(params["group_file"], params["privilege_groups"], params["sudoers_dir"])
    try:
        baseline = read_json(path)
    except ValueError as exc:
        raise LogScanError("privilege baseline %s is not JSON (%s); delete it to take a new one" % (path, exc)) from exc
    if baseline is not None:
        return privilege_additions(baseline, current), False
    if not check_mode:
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o750)
        write_atomic(
            path,
            json.dumps(dict(current, taken=to_stamp(datetime.now(timezone.utc))), indent=2, sort_keys=True) + "\n",
            mode=0o600,
        )
    return [], True


def run_scan(params, check_mode):
    if params["hours"] <= 0:
        raise LogScanError("hours must be above 0, got %s" % params["hours"])
    until = parse_iso_time(params["now"]) if params["now"] else datetime.now(timezone.utc)
    since = until - timedelta(hours=params["hours"])
    totals, read, missing = scan_files(params["logs"], since, until)
    report = totals.as_dict()
    additions, written = check_privileges(params, check_mode)
    report.update(
        window={"since": to_stamp(since), "until": to_stamp(until), "hours": params["hours"]},
        files_read=read,
        files_missing=missing,
        privilege_additions=additions,
        baseline_written=written,
    )
    report["crossed"] = judge(report, params["fail_on"])
    report["passed"] = not report["crossed"]
    report["summary"] = summary_line(report)
    report["changed"] = written
    return report


def summary_line(report):
    figures = "%d requests, %d 4xx (%.1f%%), %d 5xx (%.1f%%), %d app errors, %d failed logins, %d suspicious" % (
        report["requests"],
        report["requests_4xx"],
        report["requests_4xx_rate"] * 100,
        report["requests_5xx"],
        report["requests_5xx_rate"] * 100,
        report["app_errors"],
        report["failed_logins"],
        report["suspicious_requests"],
    )
    if report["privilege_additions"]:
        figures += ", privileges added: %s" % ", ".join(report["privilege_additions"])
    if report["crossed"]:
        return "thresholds crossed: %s; %s" % ("; ".join(report["crossed"]), figures)
    return "passed: %s" % figures


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        report = run_scan(module.params, module.check_mode)
    except (LogScanError, ValueError, OSError) as exc:
        module.fail_json(msg="log scan failed: %s; nothing was changed" % exc)
    if report["crossed"] and module.params["fail_on_threshold"]:
        module.fail_json(msg=report["summary"], **report)
    module.exit_json(**report)


if __name__ == "__main__":
    main()
