#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: health_check
short_description: Check a whole clinic stack in one task and report what is unhealthy
version_added: 0.1.0
description:
  - Runs read-only checks of a clinic host and returns a structured report covering HTTP endpoints
    (status, body match, latency), TCP ports, PostgreSQL (connect, C(SELECT 1), connections against
    the limit, optional schema version and row counts), Redis (C(PING)), systemd units, free disk
    space and inodes, and TLS certificate expiry.
  - Retries the whole set with a delay until every check passes or the deadline passes, which
    makes it usable as a health gate after a restart.
  - Fails with a one-line summary naming each unhealthy component, unless O(fail_on_unhealthy=false).
  - Passwords are never returned; connection errors are reported with them removed.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details: Every check is read-only, so check mode runs them all.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: The module never changes anything.
options:
  http:
    description: HTTP(S) endpoints to request with C(GET).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the check in the report (default the URL).
        type: str
      url:
        description: URL to request.
        type: str
        required: true
      status:
        description: Accepted status codes.
        type: list
        elements: int
        default: [200]
      body_contains:
        description: Text the body must contain.
        type: str
      json:
        description: Parse the body as JSON and return it as RV(checks[].json).
        type: bool
        default: false
      timeout:
        description: Seconds to wait for the answer.
        type: float
        default: 5
      max_latency_ms:
        description: Slower answers count as unhealthy.
        type: float
      validate_certs:
        description: Verify the server certificate of HTTPS URLs.
        type: bool
        default: true
      headers:
        description: Request headers.
        type: dict
  tcp:
    description: TCP ports that must accept connections.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the check in the report.
        type: str
      host:
        description: Address to connect to.
        type: str
        default: 127.0.0.1
      port:
        description: Port to connect to.
        type: int
        required: true
      timeout:
        description: Seconds to wait.
        type: float
        default: 3
  postgresql:
    description: A PostgreSQL database to connect to and query (read-only session).
    type: dict
    suboptions:
      name:
        description: Name of the check in the report.
        type: str
        default: postgresql
      database:
        description: Database name.
        type: str
        required: true
      host:
        description: Host name, address or Unix socket directory.
        type: str
        default: /var/run/postgresql
      port:
        description: Port.
        type: int
        default: 5432
      user:
        description: Role to connect as.
        type: str
      password:
        description: Password of O(postgresql.user). Prefer O(postgresql.passfile).
        type: str
      passfile:
        description: A libpq password file (C(host:port:db:user:password)) readable by the module.
        type: path
      connect_timeout:
        description: Seconds to wait for the connection.
        type: int
        default: 5
      schema_version_query:
        description: A read-only query returning the schema version as one value.
        type: str
      count_tables:
        description: Tables whose rows to count (C(schema.table) or C(table)).
        type: list
        elements: str
        default: []
      max_connection_usage:
        description: Connections in use over C(max_connections) above this ratio count as unhealthy.
        type: float
        default: 0.9
      max_query_seconds:
        description: A client statement running longer than this many seconds counts as unhealthy (none by default).
        type: float
  redis:
    description: A Redis server to C(PING).
    type: dict
    suboptions:
      name:
        description: Name of the check in the report.
        type: str
        default: redis
      host:
        description: Address.
        type: str
        default: 127.0.0.1
      port:
        description: Port.
        type: int
        default: 6379
      password:
        description: Password for C(AUTH).
        type: str
      timeout:
        description: Seconds to wait.
        type: float
        default: 3
  systemd_units:
    description: systemd units that must be active.
    type: list
    elements: str
    default: []
  disk:
    description: Paths whose file system must have free space and inodes.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: A path on the file system to check.
        type: path
        required: true
      min_free_percent:
        description: Minimum free space in percent.
        type: float
        default: 5
      min_free_bytes:
        description: Minimum free space in bytes.
        type: int
      min_free_inodes_percent:
        description: Minimum free inodes in percent.
        type: float
        default: 5
  tls:
    description: TLS endpoints whose certificate must not expire soon.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the check in the report.
        type: str
      host:
        description: Address to connect to.
        type: str
        required: true
      port:
        description: Port.
        type: int
        default: 443
      server_name:
        description: SNI name to send (default O(tls[].host)).
        type: str
      min_days:
        description: Fewer days left than this counts as unhealthy.
        type: float
        default: 14
      timeout:
        description: Seconds to wait.
        type: float
        default: 5
  recent_procedures:
    description:
      - When procedures (C(backup), C(restore_drill), ...) last succeeded on the clinic, read from its audit
        trail (the C(ok) records that M(clinicops.runbook.audit_record) appends).
    type: dict
    suboptions:
      trail:
        description: The clinic's audit trail.
        type: path
        default: /var/log/clinicops/audit.jsonl
      procedures:
        description: The procedures to look for.
        type: list
        elements: dict
        required: true
        suboptions:
          name:
            description: Procedure name as the trail records it.
            type: str
            required: true
          max_age_hours:
            description: Older (or none at all) counts as unhealthy. Without it the age is only reported.
            type: float
  retries:
    description: How many more times to run all checks while any is unhealthy.
    type: int
    default: 0
  delay:
    description: Seconds between attempts.
    type: float
    default: 2
  deadline:
    description: Stop retrying after this many seconds from the start, whatever O(retries) says.
    type: float
  fail_on_unhealthy:
    description: Fail the task when a check is unhealthy after the last attempt.
    type: bool
    default: true
requirements:
  - psycopg (3) or psycopg2 on the host, for O(postgresql)
  - openssl on the host, for O(tls)
notes:
  - A health survey uses O(fail_on_unhealthy=false) and reads RV(healthy); a health gate keeps the default.
seealso:
  - module: ansible.builtin.uri
"""

EXAMPLES = r"""
- name: Health gate after a restart (fails naming what is unhealthy)
  clinicops.runbook.health_check:
    http:
      - name: app
        url: http://127.0.0.1/health
        body_contains: '"status": "ok"'
    postgresql:
      database: clinicdb
      host: 127.0.0.1
      user: clinic_app
      passfile: /etc/clinicops/pgpass
      schema_version_query: SELECT max(version) FROM schema_version
    redis: {}
    systemd_units: [clinic-app, nginx, postgresql, redis-server]
    disk:
      - path: /srv/clinic
        min_free_percent: 10
    retries: 15
    delay: 2
    deadline: 60

- name: Survey without failing, to report on every clinic
  clinicops.runbook.health_check:
    http:
      - url: http://127.0.0.1/health
        json: true
    fail_on_unhealthy: false
  register: clinic_health
"""

RETURN = r"""
healthy:
  description: Whether every check passed on the last attempt.
  returned: always
  type: bool
  sample: false
summary:
  description: One line naming every unhealthy component, or C(healthy (N checks)).
  returned: always
  type: str
  sample: "unhealthy: postgresql postgresql: cannot connect: connection refused"
unhealthy:
  description: Names of the unhealthy checks.
  returned: always
  type: list
  elements: str
  sample: [postgresql]
attempts:
  description: How many times the checks ran.
  returned: always
  type: int
  sample: 1
checks:
  description: One entry per check with what was observed (keys depend on the kind).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the check.
      type: str
      sample: app
    kind:
      description: One of C(http), C(tcp), C(postgresql), C(redis), C(systemd), C(disk), C(tls), C(procedure).
      type: str
      sample: http
    healthy:
      description: Whether the check passed.
      type: bool
      sample: true
    detail:
      description: What was seen, in words.
      type: str
      sample: HTTP 200 in 4 ms
    latency_ms:
      description: Time the check took (http, tcp, postgresql, redis).
      type: float
      sample: 3.2
    json:
      description: Parsed body of an HTTP check with C(json=true).
      type: raw
      sample: {"status": "ok", "version": "2.0.0"}
    row_counts:
      description: Rows per table of O(postgresql.count_tables).
      type: dict
      sample: {"patients": 24}
    free_bytes:
      description: Free bytes on a disk check's file system.
      type: int
      sample: 53687091200
    longest_query_s:
      description: Seconds the oldest running client statement has been running (postgresql).
      type: float
      sample: 0.0
    database_size_bytes:
      description: Size of the database (postgresql).
      type: int
      sample: 9437184
    days_left:
      description: Days until the certificate expires (tls).
      type: float
      sample: 80.5
    age_hours:
      description: Hours since the procedure last succeeded, null when never (procedure).
      type: float
      sample: 3.5
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.health_probes import (
    probe_disk,
    probe_http,
    probe_postgresql,
    probe_recent_procedures,
    probe_redis,
    probe_systemd_unit,
    probe_tcp,
    probe_tls,
    summarize,
)

CHECK_KINDS = ("http", "tcp", "postgresql", "redis", "systemd_units", "disk", "tls", "recent_procedures")


def argument_spec():
    return dict(
        http=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str"),
            url=dict(type="str", required=True),
            status=dict(type="list", elements="int", default=[200]),
            body_contains=dict(type="str"),
            json=dict(type="bool", default=False),
            timeout=dict(type="float", default=5),
            max_latency_ms=dict(type="float"),
            validate_certs=dict(type="bool", default=True),
            headers=dict(type="dict"),
        )),
        tcp=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str"),
            host=dict(type="str", default="127.0.0.1"),
            port=dict(type="int", required=True),
            timeout=dict(type="float", default=3),
        )),
        postgresql=dict(type="dict", options=dict(
            name=dict(type="str", default="postgresql"),
            database=dict(type="str", required=True),
            host=dict(type="str", default="/var/run/postgresql"),
            port=dict(type="int", default=5432),
            user=dict(type="str"),
            password=dict(type="str", no_log=True),
            passfile=dict(type="path", no_log=False),
            connect_timeout=dict(type="int", default=5),
            schema_version_query=dict(type="str"),
            count_tables=dict(type="list", elements="str", default=[]),
            max_connection_usage=dict(type="float", default=0.9),
            max_query_seconds=dict(type="float"),
        )),
        redis=dict(type="dict", options=dict(
            name=dict(type="str", default="redis"),
            host=dict(type="str", default="127.0.0.1"),
            port=dict(type="int", default=6379),
            password=dict(type="str", no_log=True),
            timeout=dict(type="float", default=3),
        )),
        systemd_units=dict(type="list", elements="str", default=[]),
        disk=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="path", required=True),
            min_free_percent=dict(type="float", default=5),
            min_free_bytes=dict(type="int"),
            min_free_inodes_percent=dict(type="float", default=5),
        )),
        tls=dict(type="list", elements="dict", default=[], options=dict(
            name=dict(type="str"),
            host=dict(type="str", required=True),
            port=dict(type="int", default=443),
            server_name=dict(type="str"),
            min_days=dict(type="float", default=14),
            timeout=dict(type="float", default=5),
        )),
        recent_procedures=dict(type="dict", options=dict(
            trail=dict(type="path", default="/var/log/clinicops/audit.jsonl"),
            procedures=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                max_age_hours=dict(type="float"),
            )),
        )),
        retries=dict(type="int", default=0),
        delay=dict(type="float", default=2),
        deadline=dict(type="float"),
        fail_on_unhealthy=dict(type="bool", default=True),
    )


def run_checks(module):
    params = module.params
    results = [probe_http(spec) for spec in params["http"]]
    results += [probe_tcp(spec) for spec in params["tcp"]]
    if params["postgresql"]:
        results.append(probe_postgresql(params["postgresql"]))
    if params["redis"]:
        results.append(probe_redis(params["redis"]))
    results += [probe_systemd_unit(unit, module.run_command) for unit in params["systemd_units"]]
    results += [probe_disk(spec) for spec in params["disk"]]
    results += [probe_tls(spec, module.run_command) for spec in params["tls"]]
    if params["recent_procedures"]:
        results += probe_recent_procedures(params["recent_procedures"])
    return results


def check_until_healthy(module):
    params = module.params
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        results = run_checks(module)
        healthy = all(result.healthy for result in results)
        next_attempt_at = time.monotonic() - started + params["delay"]
        out_of_time = params["deadline"] is not None and next_attempt_at > params["deadline"]
        if healthy or attempts > params["retries"] or out_of_time:
            return results, attempts
        time.sleep(params["delay"])  # the next attempt is the condition being awaited


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if module.params["retries"] < 0 or module.params["delay"] < 0:
        module.fail_json(msg="retries and delay must not be negative")
    if not any(module.params[kind] for kind in CHECK_KINDS):
        module.fail_json(msg="no checks given: set at least one of %s" % ", ".join(CHECK_KINDS))
    results, attempts = check_until_healthy(module)
    summary = summarize(results)
    report = dict(
        changed=False,
        healthy=all(result.healthy for result in results),
        summary=summary,
        unhealthy=[result.name for result in results if not result.healthy],
        attempts=attempts,
        checks=[result.as_dict() for result in results],
    )
    if not report["healthy"] and module.params["fail_on_unhealthy"]:
        module.fail_json(msg=summary, **report)
    module.exit_json(**report)


if __name__ == "__main__":
    main()
