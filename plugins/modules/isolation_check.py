#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: isolation_check
short_description: Prove that a clinic sees no row of another clinic in a multi-clinic database
version_added: 0.1.0
description:
  - Runs a query set under the clinic's id, as the app's database role, each query in its own
    read-only transaction (C(SET TRANSACTION READ ONLY)), rolled back. Each query counts the rows
    visible to the clinic whose clinic id is not its own, with the id as the query parameter
    C(%(clinic_id\)s).
  - The clinic is isolated when every query counts 0. A query that cannot run (a missing table or
    column) proves nothing and fails the check too, named with its error.
  - Connects like M(clinicops.runbook.health_check) does, with a root-only libpq password file; the
    password is never an argument, and error texts carry none.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details: The queries are read-only; check mode runs them too.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: Reads only; never reports a change.
options:
  clinic_id:
    description: The clinic's id, as its rows carry it.
    type: str
    required: true
  queries:
    description:
      - The query set. Each C(name) (what is checked, e.g. the table) and C(sql), a single statement
        returning one count of rows of another clinic, with C(%(clinic_id\)s) for the clinic's id.
    type: list
    elements: dict
    required: true
  database:
    description: Database to check.
    type: str
    required: true
  user:
    description: Role to connect as (the app's, so that the check sees what the app sees).
    type: str
  host:
    description: PostgreSQL address (a directory for a local socket).
    type: str
    default: /var/run/postgresql
  port:
    description: PostgreSQL port.
    type: int
    default: 5432
  passfile:
    description: libpq password file for the role (root-only).
    type: path
  fail_on_leak:
    description: Fail when the clinic is not isolated (after reporting). V(false) for surveys that report first.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Check that no row of another clinic is visible
  clinicops.runbook.isolation_check:
    clinic_id: kinshasa
    database: clinicdb
    user: clinic_app
    host: 127.0.0.1
    passfile: /etc/clinicops/pgpass
    queries:
      - name: patients
        sql: SELECT count(*) FROM patients WHERE clinic_id IS DISTINCT FROM %(clinic_id)s
"""

RETURN = r"""
isolated:
  description: No query found a row of another clinic and every query ran.
  returned: always
  type: bool
leaks:
  description: Queries that found rows of another clinic, with how many.
  returned: always
  type: dict
  sample: {"patients": 1}
errors:
  description: Queries that could not run, with the error.
  returned: always
  type: dict
checked:
  description: Every query with its count (null when it failed).
  returned: always
  type: dict
  sample: {"patients": 0, "appointments": 0}
summary:
  description: One line saying it.
  returned: always
  type: str
  sample: "rows of another clinic visible under clinic kinshasa: patients (1)"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.health_probes import redact
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.isolation import (
    evaluate,
    run_queries,
    validate_queries,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.pg_driver import (
    PSYCOPG_IMPORT_ERROR,
    pg_driver,
)


def connect(params):
    args = {"dbname": params["database"], "host": params["host"], "port": params["port"], "connect_timeout": 10}
    for key in ("user", "passfile"):
        if params[key]:
            args[key] = params[key]
    return pg_driver.connect(**args)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            clinic_id=dict(type="str", required=True),
            queries=dict(type="list", elements="dict", required=True),
            database=dict(type="str", required=True),
            user=dict(type="str"),
            host=dict(type="str", default="/var/run/postgresql"),
            port=dict(type="int", default=5432),
            passfile=dict(type="path", no_log=False),
            fail_on_leak=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    problems = validate_queries(params["queries"])
    if problems:
        module.fail_json(msg="isolation check of %s: %s; nothing was run" % (params["clinic_id"], "; ".join(problems)))
    if pg_driver is None:
        module.fail_json(msg="isolation check needs psycopg or psycopg2 on the clinic: %s" % PSYCOPG_IMPORT_ERROR)
    try:
        connection = connect(params)
    except Exception as exc:  # pylint: disable=broad-except
        module.fail_json(msg="isolation check of %s: cannot connect to %s: %s" % (
            params["clinic_id"], params["database"], redact(exc, [])))
    try:
        results = run_queries(connection, params["queries"], params["clinic_id"], lambda exc: redact(exc, []))
    finally:
        connection.close()
    verdict = evaluate(params["clinic_id"], results)
    if not verdict["isolated"] and params["fail_on_leak"]:
        module.fail_json(msg="isolation check: %s" % verdict["summary"], changed=False, **verdict)
    module.exit_json(changed=False, **verdict)


if __name__ == "__main__":
    main()
