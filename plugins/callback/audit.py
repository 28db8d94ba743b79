# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: audit
type: notification
short_description: Append a tamper-evident audit record of every run to a trail on the controller
version_added: 0.1.0
description:
  - At the end of each playbook run, appends one JSON line per clinic to the controller's audit
    trail, with the run id, who ran it (the user, or the AWX/AAP job and launcher when present),
    the playbook and procedure, the clinic, start and end, the outcome, the failed tasks and the
    release, backup or snapshot ids the run reported touching.
  - Each record carries the hash of the one before it, so any edit, deletion or reordering is
    detected by C(clinicops audit verify).
  - Only names, ids, counts and times are recorded, never task arguments or results, so secrets
    cannot reach the trail.
  - The clinicops CLI enables this callback for its runs; for C(ansible-playbook) or AWX add
    C(clinicops.runbook.audit) to C(callbacks_enabled).
author:
  - clinicops project (!UNKNOWN)
requirements:
  - enable in configuration (C(callbacks_enabled))
options:
  trail:
    description: Path of the controller's audit trail (JSON lines, created with mode 0600).
    type: path
    default: ~/.clinicops/audit.jsonl
    env:
      - name: CLINICOPS_AUDIT_TRAIL
    ini:
      - section: clinicops_audit
        key: trail
"""

import getpass
import os
import socket

from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.audit_chain import append
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import to_stamp, utcnow

# Ids a procedure may publish in its per-clinic report (set_stats key clinicops_report).
REPORTED_IDS = ("release_id", "previous_release_id", "backup_id", "snapshot_id", "restored_snapshot_id")


def outcome_of(summary):
    if summary.get("unreachable"):
        return "unreachable"
    if summary.get("failures"):
        return "failed"
    return "ok"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "clinicops.runbook.audit"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display=display)
        self.playbook = None
        self.started = None
        self.extra_vars = {}
        self.failed_tasks = {}

    def v2_playbook_on_start(self, playbook):
        self.playbook = os.path.basename(playbook._file_name)
        self.started = utcnow()

    def v2_playbook_on_play_start(self, play):
        if not self.extra_vars:
            manager = play.get_variable_manager()
            self.extra_vars = dict(manager.extra_vars) if manager is not None else {}

    def _note_failure(self, result):
        host = result._host.get_name()
        self.failed_tasks.setdefault(host, []).append(result._task.get_name())

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if not ignore_errors:
            self._note_failure(result)

    def v2_runner_on_unreachable(self, result):
        self._note_failure(result)

    def who(self):
        extra = self.extra_vars
        who = {"user": getpass.getuser(), "controller": socket.gethostname()}
        for key in ("awx_job_id", "awx_job_template_name", "awx_user_name", "awx_schedule_name"):
            if extra.get(key) not in (None, ""):
                who[key] = str(extra[key])
        return who

    def v2_playbook_on_stats(self, stats):
        ended = utcnow()
        # The same run id the playbooks use (run_context.yml): the caller's, else AWX's job id.
        awx_job = self.extra_vars.get("awx_job_id")
        run_id = self.extra_vars.get("clinicops_run_id") or os.environ.get("CLINICOPS_RUN_ID") or (
            "awx-%s" % awx_job if awx_job not in (None, "") else
            "%s-%s" % (ended.strftime("%Y%m%dT%H%M%SZ"), os.getpid()))
        reports = (getattr(stats, "custom", {}) or {}).get("_run", {}).get("clinicops_report", {}) or {}
        playbook = self.playbook or "unknown"
        records = []
        for host in sorted(stats.processed):
            report = reports.get(host) or {}
            record = {
                "kind": "run",
                "run_id": str(run_id),
                "who": self.who(),
                "playbook": playbook,
                "procedure": playbook.rsplit(".", 1)[0],
                "clinic": host,
                "started": to_stamp(self.started or ended),
                "ended": to_stamp(ended),
                "outcome": outcome_of(stats.summarize(host)),
                "failed_tasks": self.failed_tasks.get(host, [])[:10],
                "check_mode": bool(context.CLIARGS.get("check", False)),
            }
            ids = dict((key, str(report[key])) for key in REPORTED_IDS if report.get(key))
            if ids:
                record["ids"] = ids
            records.append(record)
        if not records:
            return
        trail = os.path.expanduser(self.get_option("trail"))
        try:
            append(trail, records)
        except (IOError, OSError) as exc:
            self._display.warning("clinicops audit: could not append to %s: %s" % (trail, exc))
