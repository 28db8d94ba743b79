#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: diag_bundle
short_description: Collect a clinic's diagnostics bundle (redacted on the clinic) into one archive
version_added: 0.1.0
description:
  - Collects what an incident responder looks at first, each item one file of the archive
    C(<dest_dir>/<name>.tar.gz), under C(<name>/).
  - C(services.txt) the failed systemd units and the status of the clinic's units; C(journal.txt) the
    journal since O(journal_since), at most O(journal_lines) lines; C(logs/<file>) the last O(log_lines)
    lines of each of O(log_files) (app and nginx logs).
  - C(pg_stat_activity.csv) the database sessions (as the PostgreSQL superuser, C(psql -X --csv), query
    texts cut to O(postgresql.query_chars) characters); C(disk.txt) C(df -h) and C(df -i); C(memory.txt)
    C(free -m); C(releases.json) the release log; C(audit.jsonl) the last O(audit_records) records of the
    clinic's audit trail; C(health.json) the clinic's units and readiness URL as the health check sees
    them; C(manifest.json) what was collected, what could not be and why, and how much was redacted.
  - Every item is held in memory, bounded, and redacted before it is written, so no unredacted copy
    touches the disk and no secret leaves the clinic. Redaction masks the clinic's known secrets
    (O(secrets), given with C(no_log)) and generic shapes (C(password=), C(PGPASSWORD), C(token=),
    C(secret), C(Authorization:) headers, C(PASSWORD '...') in SQL, credentials of connection URLs).
  - Read-only on the clinic apart from the archive, written root-only (C(0600) in a C(0700)
    directory) to a temporary name and renamed into place. An item that cannot be collected (no
    such log, PostgreSQL down) is noted in the manifest; the bundle is still made.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details: Reports the items it would collect and the archive it would write; runs and writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every call collects a new bundle; that is its purpose.
options:
  name:
    description: The archive's name (the incident id), letters, digits, C(.), C(_), C(-).
    type: str
    required: true
  dest_dir:
    description: Directory of the archive on the clinic (created C(0700) root-only).
    type: path
    default: /var/lib/clinicops/diagnostics
  units:
    description: The clinic's systemd units (their status goes into C(services.txt)).
    type: list
    elements: str
    default: []
  health_url:
    description: The app's readiness URL, probed once for C(health.json) and RV(healthy). Empty for none.
    type: str
    default: ""
  journal_since:
    description: C(journalctl --since) value (C(-2h), or a time such as C(2026-11-26 10:00:00 UTC)).
    type: str
    default: -2h
  journal_lines:
    description: At most this many journal lines, the newest since O(journal_since), in time order.
    type: int
    default: 2000
  log_files:
    description: Log files whose tails go into C(logs/) (a missing one is noted in the manifest).
    type: list
    elements: path
    default: []
  log_lines:
    description: Lines of each log file's tail.
    type: int
    default: 500
  release_log:
    description: The release log (C(<app_root>/releases.json)). Empty for none.
    type: path
  audit_trail:
    description: The clinic's audit trail.
    type: path
    default: /var/log/clinicops/audit.jsonl
  audit_records:
    description: The last this many audit records.
    type: int
    default: 200
  postgresql:
    description: The database whose sessions are listed; omit for none.
    type: dict
    suboptions:
      database:
        description: Database psql connects to.
        type: str
        default: postgres
      port:
        description: PostgreSQL port (local socket).
        type: int
        default: 5432
      os_user:
        description: The superuser account psql runs as (peer authentication on the local socket).
        type: str
        default: postgres
      query_chars:
        description: Query texts are cut to this many characters.
        type: int
        default: 200
  secrets:
    description: The clinic's known secrets (database, repository, Redis passwords), masked wherever they appear.
    type: list
    elements: str
    default: []
  command_timeout:
    description: Seconds each command may take.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Collect the incident bundle on the clinic
  clinicops.runbook.diag_bundle:
    name: INC-20261126-101500-kinshasa
    units: [clinic-app, nginx, postgresql@15-main, redis-server]
    health_url: http://127.0.0.1/health
    log_files:
      - /var/log/clinic-app/app.log
      - /var/log/nginx/clinic-app.error.log
    release_log: /srv/clinic/releases.json
    postgresql:
      database: clinicdb
    secrets:
      - "{{ clinic_host_db_password }}"
      - "{{ backup_repository_password }}"
  no_log: false
  register: bundle
"""

RETURN = r"""
archive:
  description: Path of the archive on the clinic (none in check mode).
  returned: always
  type: str
  sample: /var/lib/clinicops/diagnostics/INC-20261126-101500-kinshasa.tar.gz
would_write:
  description: In check mode, the archive it would write.
  returned: check mode
  type: str
  sample: /var/lib/clinicops/diagnostics/INC-20261126-101500-kinshasa.tar.gz
files:
  description: The archive's files (relative to its top directory).
  returned: always
  type: list
  elements: str
  sample: [services.txt, journal.txt, logs/app.log, pg_stat_activity.csv, manifest.json]
missing:
  description: Items that could not be collected, with the reason.
  returned: always
  type: dict
  sample: {"logs/app.log": "no such file"}
redactions:
  description: How many secrets were masked, by rule (C(known_value), C(named_value), C(url_credentials), ...).
  returned: always
  type: dict
  sample: {"known_value": 2, "named_value": 5}
healthy:
  description: Every unit active and the readiness URL answering 200.
  returned: always
  type: bool
health_summary:
  description: One line, as M(clinicops.runbook.health_check) words it.
  returned: always
  type: str
  sample: "unhealthy: systemd clinic-app: failed"
size_bytes:
  description: Size of the archive.
  returned: success
  type: int
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.health_probes import (
    probe_http,
    probe_systemd_unit,
    summarize,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.incident_bundle import (
    bounded,
    check_name,
    tail_lines,
    write_archive,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.redaction import Redactor
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import to_stamp, utcnow

# Columns of pg_stat_activity worth reading in an incident; the query text is cut (and redacted).
ACTIVITY_SQL = (
    "SELECT pid, usename, datname, application_name, client_addr, state, backend_start, xact_start, "
    "query_start, state_change, wait_event_type, wait_event, backend_type, left(query, %d) AS query "
    "FROM pg_stat_activity ORDER BY pid"
)


class Collector(object):
    """Runs the commands of the bundle and keeps each item's bytes, or why it is missing."""

    def __init__(self, module):
        self.module = module
        self.items = []
        self.missing = {}

    def command(self, argv):
        # coreutils timeout: a hung command (a stuck psql, a huge journal) never hangs the bundle
        command = ["timeout", str(self.module.params["command_timeout"])]
        command.extend(argv)
        rc, out, err = self.module.run_command(command, cwd="/", environ_update={"LC_ALL": "C", "SYSTEMD_PAGER": ""},
                                               binary_data=True, encoding=None)
        return rc, out or b"", err or b""

    def add(self, member, data):
        self.items.append((member, bounded(data)))

    def add_commands(self, member, commands, ok_codes=(0,)):
        """One item from several commands, each under a ``$ argv`` header with its exit code when not ok.

        A command is ``(argv, ok codes)``, or ``(argv, ok codes, transform)`` whose transform is applied to
        its output.
        """
        parts = []
        for entry in commands:
            argv, codes = entry[0], entry[1]
            rc, out, err = self.command(argv)
            if len(entry) > 2:
                out = entry[2](out)
            header = b"$ " + " ".join(argv).encode("utf-8")
            if rc == 124:
                header += b"   [timed out]"
            if rc not in (codes or ok_codes):
                header += b"   [exit %d]" % rc
            parts.append(header + b"\n" + out + (err if rc not in (codes or ok_codes) else b""))
        self.add(member, b"\n".join(parts))

    def add_file_tail(self, member, path, lines):
        try:
            self.add(member, tail_lines(path, lines))
        except (IOError, OSError) as exc:
            self.missing[member] = "%s: %s" % (path, exc.strerror or exc)


def oldest_first(output):
    """``journalctl --reverse`` output in time order again."""
    return b"".join(reversed(output.splitlines(True)))


def log_members(paths):
    """``logs/<name>`` for each log file; two files with one name get their parent directory's name too."""
    names = [os.path.basename(path) for path in paths]
    members = []
    for path in paths:
        name = os.path.basename(path)
        if names.count(name) > 1:
            name = "%s_%s" % (os.path.basename(os.path.dirname(path)), name)
        members.append("logs/" + name)
    return members


def planned_items(params):
    items = ["services.txt", "journal.txt"]
    items += log_members(params["log_files"])
    if params["postgresql"]:
        items.append("pg_stat_activity.csv")
    items += ["disk.txt", "memory.txt"]
    if params["release_log"]:
        items.append("releases.json")
    items += ["audit.jsonl", "health.json", "manifest.json"]
    return items


def collect(module, collector):
    params = module.params
    units = params["units"]
    collector.add_commands("services.txt", [
        (["systemctl", "list-units", "--failed", "--no-pager", "--plain", "--no-legend"], None),
    ] + [(["systemctl", "status", "--no-pager", "--lines=20", "--", unit], (0, 3)) for unit in units])
    # With --since, -n keeps the oldest entries: --reverse makes it keep the newest (the incident's), and
    # the lines are put back in time order.
    collector.add_commands("journal.txt", [
        (["journalctl", "--no-pager", "-o", "short-iso", "--since=" + params["journal_since"], "--reverse",
          "-n", str(params["journal_lines"])], None, oldest_first),
    ])
    members = log_members(params["log_files"])
    for index, path in enumerate(params["log_files"]):
        collector.add_file_tail(members[index], path, params["log_lines"])
    pg = params["postgresql"]
    if pg:
        rc, out, err = collector.command([
            "runuser", "-u", pg["os_user"], "--", "psql", "-X", "--csv", "-v", "ON_ERROR_STOP=1",
            "-p", str(pg["port"]), "-d", pg["database"], "-c", ACTIVITY_SQL % max(int(pg["query_chars"]), 0)])
        if rc == 0:
            collector.add("pg_stat_activity.csv", out)
        else:
            problem = err.decode("utf-8", "replace")[:300]
            collector.missing["pg_stat_activity.csv"] = "psql exited %d: %s" % (rc, problem)
    collector.add_commands("disk.txt", [(["df", "-h"], None), (["df", "-i"], None)])
    collector.add_commands("memory.txt", [(["free", "-m"], None)])
    if params["release_log"]:
        try:
            with open(params["release_log"], "rb") as handle:
                collector.add("releases.json", handle.read())
        except (IOError, OSError) as exc:
            collector.missing["releases.json"] = "%s: %s" % (params["release_log"], exc.strerror or exc)
    collector.add_file_tail("audit.jsonl", params["audit_trail"], params["audit_records"])


def health(module):
    params = module.params
    results = [probe_systemd_unit(unit, module.run_command) for unit in params["units"]]
    if params["health_url"]:
        results.append(probe_http({"name": "app", "url": params["health_url"], "timeout": 5}))
    return results


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            dest_dir=dict(type="path", default="/var/lib/clinicops/diagnostics"),
            units=dict(type="list", elements="str", default=[]),
            health_url=dict(type="str", default=""),
            journal_since=dict(type="str", default="-2h"),
            journal_lines=dict(type="int", default=2000),
            log_files=dict(type="list", elements="path", default=[]),
            log_lines=dict(type="int", default=500),
            release_log=dict(type="path"),
            audit_trail=dict(type="path", default="/var/log/clinicops/audit.jsonl"),
            audit_records=dict(type="int", default=200),
            postgresql=dict(type="dict", options=dict(
                database=dict(type="str", default="postgres"),
                port=dict(type="int", default=5432),
                os_user=dict(type="str", default="postgres"),
                query_chars=dict(type="int", default=200),
            )),
            secrets=dict(type="list", elements="str", default=[], no_log=True),
            command_timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        name = check_name(params["name"])
    except ValueError as exc:
        module.fail_json(msg="diagnostics bundle: %s; nothing was collected" % exc)
    redactor = Redactor(params["secrets"])
    if redactor.too_short:
        module.warn("%d known secret(s) shorter than 6 characters are not masked by value" % len(redactor.too_short))
    archive = os.path.join(params["dest_dir"], name + ".tar.gz")
    if module.check_mode:
        module.exit_json(changed=True, archive=None, would_write=archive, files=planned_items(params), missing={},
                         redactions={}, healthy=True, health_summary="not checked in check mode")
    collector = Collector(module)
    collect(module, collector)
    results = health(module)
    healthy = all(result.healthy for result in results)
    summary = summarize(results) if results else "no checks"
    snapshot = {"healthy": healthy, "summary": summary, "checks": [result.as_dict() for result in results]}
    collector.add("health.json", json.dumps(snapshot, indent=2, sort_keys=True, default=str).encode("utf-8"))
    redacted = [(member, redactor.redact_bytes(data)) for member, data in collector.items]
    manifest = {
        "name": name,
        "collected_at": to_stamp(utcnow()),
        "files": [member for member, _data in redacted] + ["manifest.json"],
        "missing": collector.missing,
        "redactions": dict(redactor.counts),
        "journal_since": params["journal_since"],
        "bounds": {"journal_lines": params["journal_lines"], "log_lines": params["log_lines"],
                   "audit_records": params["audit_records"]},
    }
    redacted.append(("manifest.json", redactor.redact(json.dumps(manifest, indent=2, sort_keys=True)).encode("utf-8")))
    try:
        if not os.path.isdir(params["dest_dir"]):
            os.makedirs(params["dest_dir"], 0o700)
        os.chmod(params["dest_dir"], 0o700)
        path = write_archive(params["dest_dir"], name, redacted)
    except (IOError, OSError) as exc:
        module.fail_json(msg="diagnostics bundle %s: cannot write %s: %s; nothing was kept" % (name, archive, exc))
    module.exit_json(
        changed=True,
        archive=path,
        files=manifest["files"],
        missing=collector.missing,
        redactions=manifest["redactions"],
        healthy=healthy,
        health_summary=summary,
        size_bytes=os.path.getsize(path),
    )


if __name__ == "__main__":
    main()
