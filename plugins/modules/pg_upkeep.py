#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_upkeep
short_description: Run the PostgreSQL upkeep of a maintenance window in one task (VACUUM, REINDEX, long queries, report)
version_added: 0.1.0
description:
  - Connects to one database of the clinic's PostgreSQL server with psycopg and, in this order,
    reports connection use, reports (and when asked terminates) long-running queries, drops the
    invalid leftovers of an interrupted C(REINDEX CONCURRENTLY) when asked, runs C(VACUUM (ANALYZE\))
    per table, rebuilds each index with C(REINDEX INDEX CONCURRENTLY), reads the statistics back
    from C(pg_stat_user_tables), and reports the slowest statements from C(pg_stat_statements).
  - Long queries are handled first because a running query holds a snapshot that
    C(REINDEX CONCURRENTLY) has to wait for.
  - Every statement runs under O(lock_timeout) and O(statement_timeout), so upkeep never queues
    for long behind the clinic app nor holds a lock for long. A table or index that times out, loses
    a deadlock, or that the login role may not maintain is skipped and reported, and the run goes on
    (O(fail_on_skip=true) then fails the task); other errors fail the task at the end, after the
    remaining items were done.
  - C(VACUUM FULL) (O(vacuum=full)) rewrites each table under an C(ACCESS EXCLUSIVE) lock, so the
    clinic app can neither read nor write that table until it is done, and the rewrite needs as much
    free disk space as the table. It runs only when asked.
  - Indexes that cannot be rebuilt concurrently are skipped with the reason (indexes of exclusion
    constraints; every index on PostgreSQL older than 12), or rebuilt blocking with
    O(reindex_fallback=true). System catalogs, C(information_schema) and TOAST indexes are never
    touched. Partitioned tables are maintained through their partitions.
  - Invalid indexes named C(*_ccnew) or C(*_ccold) are what an interrupted C(REINDEX CONCURRENTLY)
    leaves; they are never rebuilt, always reported, and dropped (with C(DROP INDEX CONCURRENTLY))
    when O(drop_invalid_leftovers=true). A leftover left by a rebuild of this run that timed out is
    always dropped, so the module leaves none of its own.
  - Table and schema names given in O(tables) and O(schemas) must be plain identifiers; any other
    name (quotes, semicolons, spaces, shell characters) is refused before anything is done. Names
    read from the catalogs are always quoted.
  - Query texts in the report are cut to O(query_text_length) characters and their string literals
    are masked (C('?')), since they may hold patient data; C(pg_stat_statements) texts carry no
    parameter values to begin with.
  - On a standby (a server in recovery) nothing is vacuumed, rebuilt or dropped; the rest is reported.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the catalogs and reports the tables that would be vacuumed, the indexes that would be
        rebuilt (and how), the leftovers that would be dropped and the long queries that would be
        terminated, with the statements in RV(queries). The session is read-only; nothing is changed.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run vacuums and rebuilds again (and reports C(changed)); that is the point of upkeep.
options:
  database:
    description: Database to maintain (a plain identifier).
    type: str
    required: true
    aliases: [login_db, db]
  login_user:
    description:
      - Role to connect as. It must own the tables and indexes (or be a superuser) for C(VACUUM) and
        C(REINDEX) to act on them; the others are reported as skipped. (PostgreSQL only warns when
        it skips a table the role may not vacuum; the module sees it in the statistics.)
      - With the default host (the Unix socket) and no password, C(postgres) authenticates by peer
        authentication, so run the task with C(become_user=postgres).
    type: str
    default: postgres
  login_password:
    description: Password of O(login_user). Prefer peer authentication or O(passfile).
    type: str
  login_host:
    description: Host name, address, or Unix socket directory of the server.
    type: str
    default: /var/run/postgresql
  login_port:
    description: Port of the server.
    type: int
    default: 5432
  passfile:
    description: A libpq password file (C(host:port:db:user:password)) readable by the module.
    type: path
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 10
  vacuum:
    description:
      - V(analyze) runs C(VACUUM (ANALYZE\)), which works beside the clinic app (it takes a
        C(SHARE UPDATE EXCLUSIVE) lock that blocks neither reads nor writes).
      - V(full) runs C(VACUUM (FULL, ANALYZE\)), which takes an C(ACCESS EXCLUSIVE) lock on each table
        while rewriting it (the app waits) and needs free disk space the size of the table.
      - V(none) vacuums nothing.
    type: str
    choices: [analyze, full, none]
    default: analyze
  vacuum_scope:
    description:
      - V(table) vacuums one table after the other, each with its own duration, lock timeout and result.
      - V(database) runs one C(VACUUM) of the whole database (system catalogs included); a lock
        timeout then skips the whole database. Cannot be combined with O(tables) or O(schemas).
    type: str
    choices: [table, database]
    default: table
  reindex:
    description:
      - V(concurrently) rebuilds each index with C(REINDEX INDEX CONCURRENTLY) (PostgreSQL 12 and later),
        which lets the app read and write the table meanwhile.
      - V(blocking) runs C(REINDEX INDEX), which blocks writes to the table and reads that use the
        index until the rebuild ends.
      - V(none) rebuilds nothing (leftovers are still reported, and dropped when asked).
    type: str
    choices: [concurrently, blocking, none]
    default: concurrently
  reindex_fallback:
    description:
      - With O(reindex=concurrently), rebuild blocking the indexes that cannot be rebuilt concurrently
        instead of skipping them.
    type: bool
    default: false
  drop_invalid_leftovers:
    description: Drop the invalid C(*_ccnew)/C(*_ccold) indexes of an earlier interrupted C(REINDEX CONCURRENTLY) first.
    type: bool
    default: false
  tables:
    description:
      - Tables to maintain, as C(table) (in every selected schema) or C(schema.table); default every
        table of the selected schemas. A name not found is reported as skipped.
    type: list
    elements: str
    default: []
  schemas:
    description: Schemas whose tables to maintain; default every user schema.
    type: list
    elements: str
    default: []
  lock_timeout:
    description:
      - Seconds any statement may wait for a lock (also what C(REINDEX CONCURRENTLY) waits for older
        transactions). The item is then skipped. V(0) waits for ever.
    type: float
    default: 5
  statement_timeout:
    description: Seconds any one statement may run before it is cancelled and its item skipped. V(0) means no limit.
    type: float
    default: 900
  fail_on_skip:
    description: Fail the task when anything was skipped (after doing everything else).
    type: bool
    default: false
  long_query_threshold:
    description:
      - Queries of this database running longer than this many seconds are reported (for a session
        idle in a transaction, the age of the transaction counts).
    type: float
    default: 300
  terminate_long_queries:
    description:
      - Terminate the long queries with C(pg_terminate_backend), before the upkeep. A backend is
        terminated only if it still runs the query that was reported. The module's own backend is
        never terminated, nor superuser or replication sessions unless O(terminate_superuser=true).
    type: bool
    default: false
  terminate_superuser:
    description: Let O(terminate_long_queries) terminate superuser and replication sessions too.
    type: bool
    default: false
  slow_statements:
    description: How many of the slowest statements of C(pg_stat_statements) to report (V(0) for none).
    type: int
    default: 10
  slow_statements_by:
    description: Rank the slow statements by their V(total) or their V(mean) execution time.
    type: str
    choices: [total, mean]
    default: total
  query_text_length:
    description: Query texts in the report are cut to this many characters.
    type: int
    default: 200
requirements:
  - psycopg (3) or psycopg2 on the clinic host
notes:
  - C(last_vacuum) is not set by C(VACUUM FULL) (PostgreSQL counts it as a rewrite); with
    O(vacuum=full) the proof that the table was maintained is C(last_analyze).
  - C(pg_stat_statements) must be in C(shared_preload_libraries) and created in the database
    (C(CREATE EXTENSION pg_stat_statements)); otherwise RV(pg_stat_statements) says what is missing.
seealso:
  - module: clinicops.runbook.health_check
  - name: Routine vacuuming
    description: What VACUUM and ANALYZE do, and the locks they take.
    link: https://www.postgresql.org/docs/current/routine-vacuuming.html
  - name: REINDEX
    description: Rebuilding indexes concurrently, and what an interrupted rebuild leaves.
    link: https://www.postgresql.org/docs/current/sql-reindex.html
"""

EXAMPLES = r"""
- name: PostgreSQL upkeep of the clinic database (peer authentication as postgres)
  clinicops.runbook.pg_upkeep:
    database: clinicdb
  become: true
  become_user: postgres
  register: upkeep

- name: Upkeep that ends queries running for more than 10 minutes and cleans up after an interrupted rebuild
  clinicops.runbook.pg_upkeep:
    database: clinicdb
    long_query_threshold: 600
    terminate_long_queries: true
    drop_invalid_leftovers: true
    lock_timeout: 3
  become: true
  become_user: postgres

- name: Only the busy tables, as the app's role over TCP, failing if any table could not be done
  clinicops.runbook.pg_upkeep:
    database: clinicdb
    login_host: 127.0.0.1
    login_user: clinic_app
    passfile: /etc/clinicops/pgpass
    tables: [appointments, public.audit_log]
    reindex: none
    fail_on_skip: true

- name: Report only (connections, long queries, slow statements), nothing maintained
  clinicops.runbook.pg_upkeep:
    database: clinicdb
    vacuum: none
    reindex: none
    slow_statements: 5
    slow_statements_by: mean
  become: true
  become_user: postgres
"""

RETURN = r"""
summary:
  description: One line saying what was done (or would be), skipped, failed and observed.
  returned: always
  type: str
  sample: "clinicdb: vacuumed (analyze) 4/4 tables, reindexed 6/6 indexes, no long queries, 0 skipped,
    connections 3/100, pg_stat_statements: not installed, 0.42 s"
database:
  description: The database maintained.
  returned: always
  type: str
  sample: clinicdb
server_version:
  description: Version of the PostgreSQL server.
  returned: always
  type: str
  sample: "15.8 (Debian 15.8-0+deb12u1)"
vacuum:
  description: One entry per table in scope, in order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The table (C(schema.table) outside C(public)).
      type: str
      sample: patients
    schema:
      description: Its schema.
      type: str
      sample: public
    table:
      description: Its name.
      type: str
      sample: patients
    mode:
      description: C(analyze) or C(full).
      type: str
      sample: analyze
    status:
      description: C(vacuumed), C(would vacuum) (check mode), C(skipped) or C(failed).
      type: str
      sample: vacuumed
    reason:
      description: Why it was skipped or failed.
      type: str
      sample: lock timeout (5 s)
    seconds:
      description: How long its C(VACUUM) took (none with O(vacuum_scope=database)).
      type: float
      sample: 0.031
    last_vacuum:
      description: C(last_vacuum) of C(pg_stat_user_tables), read back after the run (UTC, ISO 8601).
      type: str
      sample: "2026-11-29T01:04:12.381275+00:00"
    last_analyze:
      description: C(last_analyze) of C(pg_stat_user_tables), read back after the run.
      type: str
      sample: "2026-11-29T01:04:12.402010+00:00"
    last_autovacuum:
      description: C(last_autovacuum) of C(pg_stat_user_tables).
      type: str
      sample: null
    last_autoanalyze:
      description: C(last_autoanalyze) of C(pg_stat_user_tables).
      type: str
      sample: "2026-11-28T14:00:51.110094+00:00"
    vacuum_count:
      description: Manual vacuums of the table so far (one more than before when it was vacuumed).
      type: int
      sample: 3
    analyze_count:
      description: Manual analyzes of the table so far.
      type: int
      sample: 3
    live_tuples:
      description: Estimated live rows after the run.
      type: int
      sample: 24
    dead_tuples_before:
      description: Estimated dead rows before the run.
      type: int
      sample: 12
    dead_tuples:
      description: Estimated dead rows after the run.
      type: int
      sample: 0
reindex:
  description: One entry per index rebuilt, tried, or that would be rebuilt.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The index (C(schema.index) outside C(public)).
      type: str
      sample: patients_pkey
    schema:
      description: Its schema.
      type: str
      sample: public
    table:
      description: Its table.
      type: str
      sample: patients
    index:
      description: Its name.
      type: str
      sample: patients_pkey
    mode:
      description: C(concurrently) or C(blocking).
      type: str
      sample: concurrently
    status:
      description: C(reindexed), C(would reindex) (check mode), C(skipped) or C(failed).
      type: str
      sample: reindexed
    reason:
      description: Why it was skipped or failed.
      type: str
      sample: statement timeout (900 s)
    note:
      description: Why a blocking rebuild was chosen under O(reindex=concurrently) (O(reindex_fallback)).
      type: str
      sample: index of an exclusion constraint cannot be rebuilt concurrently; rebuilt blocking (reindex_fallback)
    was_invalid:
      description: The index was invalid before (a failed C(CREATE INDEX CONCURRENTLY)); a rebuild makes it valid.
      type: bool
      sample: false
    seconds:
      description: How long the rebuild took.
      type: float
      sample: 0.084
    size_before:
      description: Bytes of the index before.
      type: int
      sample: 16384
    size_after:
      description: Bytes of the index after the rebuild.
      type: int
      sample: 16384
leftovers:
  description: Invalid C(*_ccnew)/C(*_ccold) indexes found (and what became of them).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The index.
      type: str
      sample: patients_email_ccnew
    table:
      description: Its table.
      type: str
      sample: patients
    status:
      description: C(dropped), C(would drop) (check mode), C(kept), C(skipped) or C(failed).
      type: str
      sample: dropped
    created_by_this_run:
      description: Left by a rebuild of this run that was interrupted (always dropped).
      type: bool
      sample: false
skipped_items:
  description:
    - Everything not done, with the reason (tables, indexes, leftovers, protected queries).
    - Not named C(skipped), since Ansible reads that key as "the task was skipped".
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: C(table), C(index), C(leftover), C(database) or C(query).
      type: str
      sample: table
    name:
      description: What was skipped.
      type: str
      sample: audit_log
    reason:
      description: Why.
      type: str
      sample: lock timeout (5 s)
long_queries:
  description: Queries of this database running longer than O(long_query_threshold), longest first.
  returned: always
  type: list
  elements: dict
  contains:
    pid:
      description: Backend process id.
      type: int
      sample: 4182
    user:
      description: Role running it.
      type: str
      sample: clinic_app
    application_name:
      description: Application name of the session.
      type: str
      sample: psql
    client_addr:
      description: Client address (none for a Unix socket).
      type: str
      sample: 127.0.0.1
    state:
      description: State of the backend (C(active), C(idle in transaction), ...).
      type: str
      sample: active
    backend_type:
      description: C(client backend) or C(walsender).
      type: str
      sample: client backend
    superuser:
      description: Whether the role is a superuser.
      type: bool
      sample: false
    duration_seconds:
      description: How long the query (or the idle transaction) has run.
      type: float
      sample: 612.4
    query_start:
      description: When the query started (UTC, ISO 8601).
      type: str
      sample: "2026-11-29T00:54:00.120004+00:00"
    query:
      description: The query text, literals masked, cut to O(query_text_length).
      type: str
      sample: SELECT pg_sleep(600)
    action:
      description:
        - C(reported), C(terminated), C(would terminate) (check mode), C(protected) (never terminated,
          see RV(long_queries[].reason)), C(gone) (ended before it could be terminated) or C(failed).
      type: str
      sample: terminated
    reason:
      description: Why it was protected, or why terminating it failed.
      type: str
      sample: superuser session (set terminate_superuser to include it)
terminated:
  description: Process ids of the backends terminated.
  returned: always
  type: list
  elements: int
  sample: [4182]
connections:
  description: Client connections of the server against its limit (taken before the upkeep, the module's included).
  returned: always
  type: dict
  contains:
    total:
      description: Client backends connected to the server.
      type: int
      sample: 7
    active:
      description: Of which running a query.
      type: int
      sample: 1
    idle:
      description: Of which idle.
      type: int
      sample: 5
    idle_in_transaction:
      description: Of which idle in a transaction.
      type: int
      sample: 1
    this_database:
      description: Of which connected to O(database).
      type: int
      sample: 6
    max_connections:
      description: The server's C(max_connections).
      type: int
      sample: 100
    superuser_reserved_connections:
      description: The server's C(superuser_reserved_connections).
      type: int
      sample: 3
    reserved_connections:
      description: The server's C(reserved_connections) (PostgreSQL 16 and later, else 0).
      type: int
      sample: 0
    available:
      description: Connections still open to the clinic app (non-superusers).
      type: int
      sample: 90
    usage_percent:
      description: RV(connections.total) over C(max_connections), in percent.
      type: float
      sample: 7.0
pg_stat_statements:
  description:
    - C(installed (<version>\)), C(not installed), or what stops it from being read, such as
      C(installed (1.10\) but not loaded) and the remedy when it is missing from C(shared_preload_libraries).
  returned: always
  type: str
  sample: not installed
slow_statements:
  description: The slowest statements of this database, by O(slow_statements_by) (empty unless readable).
  returned: always
  type: list
  elements: dict
  contains:
    query:
      description: Normalized statement text (no parameter values), literals masked, cut to O(query_text_length).
      type: str
      sample: SELECT * FROM appointments WHERE starts_at > $1
    user:
      description: Role that ran it.
      type: str
      sample: clinic_app
    calls:
      description: Times it ran.
      type: int
      sample: 5120
    total_time_ms:
      description: Total execution time in milliseconds.
      type: float
      sample: 8312.4
    mean_time_ms:
      description: Mean execution time in milliseconds.
      type: float
      sample: 1.62
    rows:
      description: Rows it returned or affected in total.
      type: int
      sample: 40960
terminated_count:
  description: How many backends were terminated (the length of RV(terminated)).
  returned: always
  type: int
  sample: 1
queries:
  description: The statements that changed something, in order (in check mode, those that would run).
  returned: always
  type: list
  elements: str
  sample: ['VACUUM (ANALYZE) "public"."patients"', 'REINDEX INDEX CONCURRENTLY "public"."patients_pkey"']
durations:
  description:
    - Seconds spent per step (C(long_queries), C(leftovers), C(vacuum), C(reindex), C(own_leftovers) when a
      rebuild of this run was interrupted, C(slow_statements)) and in C(total).
  returned: always
  type: dict
  sample: {"long_queries": 0.002, "leftovers": 0.0, "vacuum": 0.151, "reindex": 0.233, "slow_statements": 0.001,
    "total": 0.43}
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.health_probes import redact
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.pg_driver import (
    PSYCOPG_IMPORT_ERROR,
    pg_driver,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.pg_upkeep import (
    NOT_LOADED_STATE,
    UpkeepError,
    check_identifier,
    connection_usage,
    display,
    drop_index_statement,
    error_text,
    is_leftover,
    iso_utc,
    milliseconds_setting,
    parse_filters,
    plan_long_queries,
    plan_reindex,
    qualified,
    quote_ident,
    reindex_statement,
    select_tables,
    short_query,
    skip_entry,
    skip_reason,
    snapshot_wait_note,
    sqlstate,
    statement_time_columns,
    still_running,
    summarize,
    vacuum_statement,
)

APPLICATION_NAME = "clinicops pg_upkeep"
TERMINATION_WAIT = 5.0  # seconds to see a terminated backend go
READ_BACK_WAIT = 3.0  # seconds for the statistics to show a vacuum (PostgreSQL < 15 reports them asynchronously)
POLL = 0.1

SERVER_SQL = ("SELECT current_setting('server_version'), current_setting('server_version_num')::int,"
              " pg_is_in_recovery(), pg_backend_pid()")
SESSION_SQL = "SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)"
READ_ONLY_SQL = "SELECT set_config('default_transaction_read_only', 'on', false)"
IDLE_IN_TRANSACTION = "('idle in transaction', 'idle in transaction (aborted)')"
CONNECTIONS_SQL = """
SELECT count(*) FILTER (WHERE backend_type = 'client backend'),
       count(*) FILTER (WHERE backend_type = 'client backend' AND state = 'active'),
       count(*) FILTER (WHERE backend_type = 'client backend' AND state = 'idle'),
       count(*) FILTER (WHERE backend_type = 'client backend' AND state IN %s),
       count(*) FILTER (WHERE backend_type = 'client backend' AND datname = current_database()),
       current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int,
       coalesce(current_setting('reserved_connections', true), '0')::int
FROM pg_stat_activity""" % IDLE_IN_TRANSACTION
# An idle-in-transaction session is as old as its transaction: that is what holds locks and snapshots.
LONG_QUERIES_SQL = """
SELECT a.pid, a.usename, a.application_name, host(a.client_addr), a.state, a.backend_type,
       a.backend_start, a.query_start, extract(epoch FROM now() - s.since)::float8, left(a.query, %%s),
       coalesce(r.rolsuper, false), coalesce(r.rolreplication, false)
FROM pg_stat_activity a
CROSS JOIN LATERAL (SELECT CASE WHEN a.state IN %s THEN a.xact_start ELSE a.query_start END AS since) s
LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
  AND a.backend_type IN ('client backend', 'walsender') AND a.state <> 'idle'
  AND s.since < now() - make_interval(secs => %%s)
ORDER BY s.since""" % IDLE_IN_TRANSACTION
# Only the backend that still runs the reported query: a pid can be reused, a session can move on.
TERMINATE_SQL = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                 " WHERE pid = %s AND backend_start = %s AND query_start IS NOT DISTINCT FROM %s")
BACKEND_ALIVE_SQL = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND backend_start = %s"
USER_RELATIONS = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'"
TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' AND %s
ORDER BY 1, 2""" % USER_RELATIONS
INDEXES_SQL = """
SELECT n.nspname, t.relname, i.relname, x.indisvalid,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.oid AND k.contype = 'x'),
       pg_relation_size(i.oid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE i.relkind = 'i' AND t.relkind IN ('r', 'm') AND t.relpersistence <> 't' AND %s
ORDER BY 1, 2, 3""" % USER_RELATIONS
STATS_SQL = """
SELECT schemaname, relname, last_vacuum, last_autovacuum, last_analyze, last_autoanalyze,
       vacuum_count, analyze_count, n_live_tup, n_dead_tup
FROM pg_stat_user_tables"""
CLEAR_STATS_SNAPSHOT_SQL = "SELECT pg_stat_clear_snapshot()"
INDEX_SIZE_SQL = "SELECT pg_relation_size(to_regclass(%s))"
EXTENSION_SQL = ("SELECT e.extversion, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
                 " WHERE e.extname = 'pg_stat_statements'")
SLOW_STATEMENTS_SQL = """
SELECT left(s.query, %s), r.rolname, s.calls, s.{total}, s.{mean}, s.rows
FROM {schema}.pg_stat_statements s LEFT JOIN pg_roles r ON r.oid = s.userid
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.{order} DESC NULLS LAST
LIMIT %s"""
STATS_FIELDS = ("last_vacuum", "last_autovacuum", "last_analyze", "last_autoanalyze", "vacuum_count",
                "analyze_count", "live_tuples", "dead_tuples")


def argument_spec():
    return dict(
        database=dict(type="str", required=True, aliases=["login_db", "db"]),
        login_user=dict(type="str", default="postgres"),
        login_password=dict(type="str", no_log=True),
        login_host=dict(type="str", default="/var/run/postgresql"),
        login_port=dict(type="int", default=5432),
        passfile=dict(type="path", no_log=False),
        connect_timeout=dict(type="int", default=10),
        vacuum=dict(type="str", choices=["analyze", "full", "none"], default="analyze"),
        vacuum_scope=dict(type="str", choices=["table", "database"], default="table"),
        reindex=dict(type="str", choices=["concurrently", "blocking", "none"], default="concurrently"),
        reindex_fallback=dict(type="bool", default=False),
        drop_invalid_leftovers=dict(type="bool", default=False),
        tables=dict(type="list", elements="str", default=[]),
        schemas=dict(type="list", elements="str", default=[]),
        lock_timeout=dict(type="float", default=5),
        statement_timeout=dict(type="float", default=900),
        fail_on_skip=dict(type="bool", default=False),
        long_query_threshold=dict(type="float", default=300),
        terminate_long_queries=dict(type="bool", default=False),
        terminate_superuser=dict(type="bool", default=False),
        slow_statements=dict(type="int", default=10),
        slow_statements_by=dict(type="str", choices=["total", "mean"], default="total"),
        query_text_length=dict(type="int", default=200),
    )


def validate(params):
    """Refuse what cannot be right before connecting: ([(schema, table)], [schema]) of the filters."""
    check_identifier(params["database"], "database")
    for option in ("lock_timeout", "statement_timeout", "long_query_threshold", "slow_statements"):
        if params[option] < 0:
            raise UpkeepError("%s must not be negative; nothing was done" % option)
    if params["query_text_length"] < 1:
        raise UpkeepError("query_text_length must be at least 1; nothing was done")
    if params["vacuum_scope"] == "database" and (params["tables"] or params["schemas"]):
        raise UpkeepError("vacuum_scope=database vacuums every table: it cannot be combined with tables or "
                          "schemas; nothing was done")
    return parse_filters(params["tables"], params["schemas"])


def connect(params):
    if pg_driver is None:
        raise UpkeepError("psycopg (3) or psycopg2 is needed on the clinic host: %s; nothing was done"
                          % PSYCOPG_IMPORT_ERROR)
    where = "%s as %s on %s:%s" % (params["database"], params["login_user"], params["login_host"],
                                   params["login_port"])
    options = {"dbname": params["database"], "user": params["login_user"], "host": params["login_host"],
               "port": params["login_port"], "connect_timeout": params["connect_timeout"],
               "application_name": APPLICATION_NAME}
    if params["login_password"]:
        options["password"] = params["login_password"]
    if params["passfile"]:
        options["passfile"] = params["passfile"]
    try:
        conn = pg_driver.connect(**options)
    except Exception as exc:  # pylint: disable=broad-except
        text = redact(exc, [params["login_password"]])
        hint = ""
        if "peer authentication failed" in text.lower():
            hint = " (peer authentication: run the task as the OS user of that role, e.g. become_user: postgres)"
        raise UpkeepError("cannot connect to %s: %s%s; nothing was done" % (where, text, hint)) from exc
    conn.autocommit = True  # VACUUM, REINDEX CONCURRENTLY and DROP INDEX CONCURRENTLY refuse transaction blocks
    return conn


class Upkeep(object):
    """One upkeep session on an open connection: what it found, ran, skipped, and how long each step took."""

    def __init__(self, params, check_mode, conn):
        self.params = params
        self.check_mode = check_mode
        self.conn = conn
        self.cursor = conn.cursor()
        self.queries = []
        self.skipped = []
        self.durations = {}
        self.server = {}

    # -- reading and acting ----------------------------------------------------------------------

    def rows(self, query, args=None):
        self.cursor.execute(query, args)
        return self.cursor.fetchall()

    def row(self, query, args=None):
        self.cursor.execute(query, args)
        return self.cursor.fetchone()

    def act(self, statement, args=None, shown=None):
        """Run one statement that changes something: (status, seconds, reason), status done/skipped/failed."""
        self.queries.append(shown or statement)
        started = time.monotonic()
        try:
            self.cursor.execute(statement, args)
        except pg_driver.Error as exc:
            seconds = round(time.monotonic() - started, 3)
            if getattr(self.conn, "closed", False) or getattr(self.conn, "broken", False):
                raise UpkeepError("the connection was lost during %s: %s" % (shown or statement,
                                                                             error_text(exc))) from exc
            reason = skip_reason(exc, self.params["lock_timeout"], self.params["statement_timeout"])
            return ("skipped", seconds, reason) if reason else ("failed", seconds, error_text(exc))
        return "done", round(time.monotonic() - started, 3), None

    def timed(self, step, work, *args):
        started = time.monotonic()
        try:
            return work(*args)
        finally:
            self.durations[step] = round(time.monotonic() - started, 3)

    # -- the run ---------------------------------------------------------------------------------

    def run(self, wanted_tables, wanted_schemas):
        started = time.monotonic()
        self.read_server()
        self.configure_session()
        report = dict(database=self.params["database"], server_version=self.server["version"])
        report["connections"] = self.read_connections()
        report["long_queries"] = self.timed("long_queries", self.handle_long_queries)
        tables, table_skips = select_tables(self.rows(TABLES_SQL), wanted_tables, wanted_schemas)
        self.skipped += table_skips
        rebuilds, leftovers, index_skips = plan_reindex(
            self.read_indexes(), tables, self.params["reindex"], self.server["version_num"],
            self.params["reindex_fallback"])
        self.skipped += index_skips
        before = self.read_stats()
        report["leftovers"] = self.timed("leftovers", self.handle_leftovers, leftovers)
        report["vacuum"] = self.timed("vacuum", self.vacuum, tables, before)
        report["reindex"] = self.timed("reindex", self.rebuild, rebuilds, still_running(report["long_queries"]))
        report["leftovers"] += self.sweep_own_leftovers(report["reindex"], leftovers, tables)
        report["pg_stat_statements"], report["slow_statements"] = self.timed("slow_statements", self.slow_statements)
        report.update(
            terminated=[query["pid"] for query in report["long_queries"] if query["action"] == "terminated"],
            skipped_items=self.skipped, queries=self.queries)
        report["terminated_count"] = len(report["terminated"])
        self.durations["total"] = round(time.monotonic() - started, 3)
        report["durations"] = self.durations
        report["summary"] = summarize(report, self.params, self.check_mode)
        report["changed"] = changed(report)
        return report

    def read_server(self):
        version, version_num, in_recovery, pid = self.row(SERVER_SQL)
        self.server = dict(version=version, version_num=version_num, in_recovery=in_recovery, pid=pid)

    def configure_session(self):
        self.row(SESSION_SQL, (milliseconds_setting(self.params["lock_timeout"]),
                               milliseconds_setting(self.params["statement_timeout"])))
        if self.check_mode:  # belt and braces: check mode only reads, and the session says so
            self.row(READ_ONLY_SQL)

    def read_connections(self):
        total, active, idle, idle_in_tx, this_db, max_conn, su_reserved, reserved = self.row(CONNECTIONS_SQL)
        counts = dict(total=total, active=active, idle=idle, idle_in_transaction=idle_in_tx, this_database=this_db)
        return connection_usage(counts, max_conn, su_reserved, reserved)

    # -- long queries ----------------------------------------------------------------------------

    def handle_long_queries(self):
        length = self.params["query_text_length"]
        found = []
        for row in self.rows(LONG_QUERIES_SQL, (length * 4, self.params["long_query_threshold"])):
            pid, user, app, client, state, backend_type, backend_start, query_start, seconds, text, su, repl = row
            found.append(dict(pid=pid, user=user, application_name=app, client_addr=client, state=state,
                              backend_type=backend_type, backend_start=backend_start, query_start=query_start,
                              duration_seconds=round(seconds, 1), query=short_query(text, length),
                              superuser=su, replication=repl))
        planned = plan_long_queries(found, self.server["pid"], self.params["terminate_long_queries"],
                                    self.params["terminate_superuser"])
        for query in planned:
            if query["action"] == "protected":
                self.skipped.append(skip_entry("query", "pid %s" % query["pid"], query["reason"]))
            elif query["action"] == "terminate":
                self.terminate(query)
        return [public_query(query) for query in planned]

    def terminate(self, query):
        shown = "SELECT pg_terminate_backend(%d)" % query["pid"]
        if self.check_mode:
            self.queries.append(shown)
            query["action"] = "would terminate"
            return
        status, _seconds, reason = self.act(TERMINATE_SQL, (query["pid"], query["backend_start"],
                                                            query["query_start"]), shown)
        answer = self.cursor.fetchone() if status == "done" else None
        if status != "done":
            query.update(action="failed", reason=reason)
        elif answer is None:
            query["action"] = "gone"  # it ended (or moved on to another query) before it could be terminated
        elif not answer[0]:
            query.update(action="failed", reason="pg_terminate_backend returned false")
        elif self.wait_gone(query):
            query["action"] = "terminated"
        else:
            query.update(action="failed", reason="signalled, still running after %d s" % TERMINATION_WAIT)

    def wait_gone(self, query):
        deadline = time.monotonic() + TERMINATION_WAIT
        while self.row(BACKEND_ALIVE_SQL, (query["pid"], query["backend_start"]))[0]:
            if time.monotonic() > deadline:
                return False
            time.sleep(POLL)  # the backend exits asynchronously after SIGTERM
        return True

    # -- catalogs and statistics -----------------------------------------------------------------

    def read_indexes(self):
        return [dict(schema=schema, table=table, index=index, valid=valid, exclusion=exclusion, size=size)
                for schema, table, index, valid, exclusion, size in self.rows(INDEXES_SQL)]

    def read_stats(self):
        stats = {}
        for row in self.rows(STATS_SQL):
            values = row[2:]  # in the order of STATS_FIELDS
            stats[(row[0], row[1])] = dict((key, values[position]) for position, key in enumerate(STATS_FIELDS))
        return stats

    def read_back(self, done, before):
        """Statistics after the vacuum, waiting (briefly) until they show every vacuumed table vacuumed."""
        deadline = time.monotonic() + READ_BACK_WAIT
        while True:
            after = self.read_stats()
            unproven = [pair for pair in done
                        if not proves_vacuum(before.get(pair), after.get(pair), self.params["vacuum"])]
            if not unproven or time.monotonic() > deadline:
                return after, unproven
            time.sleep(POLL)  # PostgreSQL < 15 sends statistics to its collector asynchronously
            self.row(CLEAR_STATS_SNAPSHOT_SQL)

    # -- leftovers -------------------------------------------------------------------------------

    def handle_leftovers(self, leftovers, created_by_this_run=False):
        handled = []
        for leftover in leftovers:
            name = display(leftover["schema"], leftover["index"])
            entry = dict(name=name, schema=leftover["schema"], table=leftover["table"], index=leftover["index"],
                         created_by_this_run=created_by_this_run)
            if not (created_by_this_run or self.params["drop_invalid_leftovers"]):
                entry["status"] = "kept"
                self.skipped.append(skip_entry("leftover", name, "invalid leftover of an interrupted REINDEX "
                                                                 "CONCURRENTLY; set drop_invalid_leftovers to drop it"))
            else:
                self.maintain(entry, "leftover", drop_index_statement(leftover["schema"], leftover["index"]),
                              "dropped", "would drop")
            handled.append(entry)
        return handled

    def sweep_own_leftovers(self, rebuilt, known, tables):
        """Drop the _ccnew/_ccold a concurrent rebuild of this run left when it was interrupted."""
        interrupted = [entry for entry in rebuilt
                       if entry["mode"] == "concurrently" and entry["status"] in ("skipped", "failed")]
        if not interrupted:
            return []
        seen = set((leftover["schema"], leftover["index"]) for leftover in known)
        wanted = set(tables)
        new = [index for index in self.read_indexes()
               if (index["schema"], index["table"]) in wanted and is_leftover(index["index"], index["valid"])
               and (index["schema"], index["index"]) not in seen]
        return self.timed("own_leftovers", self.handle_leftovers, new, True)

    # -- vacuum and reindex ----------------------------------------------------------------------

    def maintain(self, entry, kind, statement, done_status, planned_status, timeout_note=None):
        """Run (or in check mode plan) one item's statement and record its outcome in ``entry``.

        ``timeout_note`` is added to the reason of a lock timeout (what it most likely waited for).
        """
        if self.server["in_recovery"]:
            entry["status"] = "skipped"
            entry["reason"] = "the server is a standby (in recovery): upkeep runs on the primary"
            self.skipped.append(skip_entry(kind, entry["name"], entry["reason"]))
            return False
        if self.check_mode:
            self.queries.append(statement)
            entry["status"] = planned_status
            return False
        status, seconds, reason = self.act(statement)
        entry["seconds"] = seconds
        if status == "done":
            entry["status"] = done_status
            return True
        if timeout_note and reason.startswith("lock timeout"):
            reason = "%s; %s" % (reason, timeout_note)
        entry.update(status=status, reason=reason)
        if status == "skipped":
            self.skipped.append(skip_entry(kind, entry["name"], reason))
        return False

    def vacuum(self, tables, before):
        mode = self.params["vacuum"]
        if mode == "none":
            return []
        entries = [dict(name=display(schema, table), schema=schema, table=table, mode=mode) for schema, table in tables]
        if self.params["vacuum_scope"] == "database":
            whole = dict(name=self.params["database"])
            self.maintain(whole, "database", vacuum_statement(mode), "vacuumed", "would vacuum")
            for entry in entries:
                entry.update((key, value) for key, value in whole.items() if key in ("status", "reason"))
        else:
            for entry in entries:
                self.maintain(entry, "table", vacuum_statement(mode, entry["schema"], entry["table"]), "vacuumed",
                              "would vacuum")
        done = [(entry["schema"], entry["table"]) for entry in entries if entry["status"] == "vacuumed"]
        after, unproven = self.read_back(done, before) if done else (before, [])
        for entry in entries:
            pair = (entry["schema"], entry["table"])
            entry.update(stats_fields(before.get(pair), after.get(pair)))
            if pair in unproven:
                entry.update(status="skipped", reason="PostgreSQL did not vacuum it: pg_stat_user_tables shows no new "
                                                      "vacuum or analyze (the login role must own the table)")
                self.skipped.append(skip_entry("table", entry["name"], entry["reason"]))
        return entries

    def rebuild(self, rebuilds, running_pids):
        """Rebuild each index; once a concurrent rebuild timed out behind long queries, stop queueing behind them."""
        entries, given_up = [], None
        waiting = snapshot_wait_note(running_pids) if running_pids else None
        for index in rebuilds:
            entry = dict(name=display(index["schema"], index["index"]), schema=index["schema"], table=index["table"],
                         index=index["index"], mode=index["mode"], was_invalid=not index["valid"],
                         size_before=index["size"])
            if index.get("note"):
                entry["note"] = index["note"]
            concurrent = index["mode"] == "concurrently"
            statement = reindex_statement(index["mode"], index["schema"], index["index"])
            note = waiting if concurrent else None
            if given_up and concurrent:
                entry.update(status="skipped", reason=given_up)
                self.skipped.append(skip_entry("index", entry["name"], given_up))
            elif self.maintain(entry, "index", statement, "reindexed", "would reindex", note):
                entry["size_after"] = self.row(INDEX_SIZE_SQL, (qualified(index["schema"], index["index"]),))[0]
            elif concurrent and waiting and entry.get("reason", "").startswith("lock timeout"):
                given_up = ("not tried: it would wait for the same long queries (pid %s); end them "
                            "(terminate_long_queries) or rebuild later" % ", ".join(str(pid) for pid in running_pids))
            entries.append(entry)
        return entries

    # -- pg_stat_statements ----------------------------------------------------------------------

    def slow_statements(self):
        extension = self.row(EXTENSION_SQL)
        if extension is None:
            return "not installed", []
        version, schema = extension
        status = "installed (%s)" % version
        if not self.params["slow_statements"]:
            return status, []
        total, mean = statement_time_columns(version)
        order = total if self.params["slow_statements_by"] == "total" else mean
        query = SLOW_STATEMENTS_SQL.format(schema=quote_ident(schema), total=total, mean=mean, order=order)
        length = self.params["query_text_length"]
        try:
            found = self.rows(query, (length * 4, self.params["slow_statements"]))
        except pg_driver.Error as exc:
            if sqlstate(exc) == NOT_LOADED_STATE:
                return status + " but not loaded: add pg_stat_statements to shared_preload_libraries", []
            return status + " but not readable: %s" % error_text(exc), []
        return status, [dict(query=short_query(text, length), user=user, calls=calls,
                             total_time_ms=round(total_ms, 3), mean_time_ms=round(mean_ms, 3), rows=rows)
                        for text, user, calls, total_ms, mean_ms, rows in found]


def public_query(query):
    """A long query as returned: timestamps as text, internals dropped."""
    shown = dict(query)
    shown.pop("backend_start", None)
    shown.pop("replication", None)
    shown["query_start"] = iso_utc(shown["query_start"])
    return shown


def proves_vacuum(before, after, mode):
    """Whether the statistics counted this run's VACUUM (FULL counts only as an analyze)."""
    counter = "analyze_count" if mode == "full" else "vacuum_count"
    return after is not None and after[counter] > (before or {}).get(counter, 0)


def stats_fields(before, after):
    fields = {}
    for key in STATS_FIELDS:
        value = (after or {}).get(key)
        fields[key] = iso_utc(value) if key.startswith("last_") else value
    fields["dead_tuples_before"] = (before or {}).get("dead_tuples")
    return fields


def changed(report):
    acted = ("vacuumed", "reindexed", "dropped", "would vacuum", "would reindex", "would drop")
    entries = report["vacuum"] + report["reindex"] + report["leftovers"]
    return (any(entry.get("status") in acted for entry in entries)
            or any(query["action"] in ("terminated", "would terminate") for query in report["long_queries"]))


def failures(report):
    failed = ["%s %s: %s" % (kind, entry["name"], entry.get("reason"))
              for kind in ("vacuum", "reindex", "leftovers")
              for entry in report[kind] if entry.get("status") == "failed"]
    failed += ["terminate pid %s: %s" % (query["pid"], query.get("reason"))
               for query in report["long_queries"] if query["action"] == "failed"]
    return failed


def run_upkeep(params, check_mode):
    wanted_tables, wanted_schemas = validate(params)
    conn = connect(params)
    try:
        return Upkeep(params, check_mode, conn).run(wanted_tables, wanted_schemas)
    finally:
        conn.close()


def driver_error():
    """The driver's base error class (an exception class that never matches when there is no driver)."""
    return pg_driver.Error if pg_driver is not None else UpkeepError


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    database = module.params["database"]
    try:
        report = run_upkeep(module.params, module.check_mode)
    except (UpkeepError, driver_error()) as exc:
        module.fail_json(msg="upkeep of %s failed: %s" % (database, redact(exc, [module.params["login_password"]])))
    failed = failures(report)
    if failed:
        module.fail_json(msg="upkeep of %s: %d step(s) failed: %s; %s" % (database, len(failed), "; ".join(failed),
                                                                          report["summary"]), **report)
    skipped = report["skipped_items"]
    if skipped and module.params["fail_on_skip"]:
        listed = "; ".join("%s %s: %s" % (item["kind"], item["name"], item["reason"]) for item in skipped)
        module.fail_json(msg="upkeep of %s skipped %d item(s) (fail_on_skip): %s; %s" % (
            database, len(skipped), listed, report["summary"]), **report)
    module.exit_json(**report)


if __name__ == "__main__":
    main()
