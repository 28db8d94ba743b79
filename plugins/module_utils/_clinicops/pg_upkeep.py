# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planning of PostgreSQL upkeep (VACUUM, REINDEX, leftovers, long queries) for the pg_upkeep module.

Nothing here talks to a server: the module reads the catalogs, hands the rows to these functions,
and runs the statements they return. That keeps every decision (what is vacuumed, what is rebuilt
and how, what is skipped and why, which backend may be terminated) testable without PostgreSQL.

Names given by the operator must be plain identifiers (letters, digits and ``_``, at most 63,
not starting with a digit) and are refused otherwise, before anything is done. Names read back
from the catalogs are always double-quoted by ``quote_ident``, so no name ever reaches SQL unquoted.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from datetime import timezone

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.pg_driver import (
    quote_ident as pg_quote_ident,
)

# fullmatch: "$" would let a trailing newline through.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
# The transient (_ccnew) and old (_ccold) indexes an interrupted REINDEX CONCURRENTLY leaves, invalid.
LEFTOVER_NAME = re.compile(r".+_cc(new|old)[0-9]*")
# String literals and dollar-quoted bodies: masked in reported query texts (they may hold patient data).
# The tag group always takes part (maybe empty), so the closing ``$tag$`` back-reference matches ``$$`` too.
STRING_LITERAL = re.compile(r"'(?:[^']|'')*(?:'|$)|\$([A-Za-z_][A-Za-z0-9_]*|)\$.*?(?:\$\1\$|$)", re.DOTALL)
FIRST_CONCURRENT_REINDEX = 120000  # REINDEX ... CONCURRENTLY appeared in PostgreSQL 12
FIRST_EXEC_TIME_COLUMNS = (1, 8)  # pg_stat_statements 1.8 renamed total_time/mean_time to *_exec_time

# SQLSTATEs that mean "not this item, not now" rather than "broken": the item is skipped, not failed. A role
# that does not own a table is treated alike for VACUUM (PostgreSQL only warns) and REINDEX (it errs).
SKIP_STATES = {
    "55P03": "lock timeout",  # lock_not_available
    "57014": "statement timeout",  # query_canceled (statement_timeout; also a cancel by an operator)
    "40P01": "deadlock with another session",  # deadlock_detected
    "42501": "not permitted",  # insufficient_privilege: the login role does not own it (PostgreSQL names what)
}
NOT_LOADED_STATE = "55000"  # object_not_in_prerequisite_state: pg_stat_statements not in shared_preload_libraries

VACUUM_OPTIONS = {"analyze": "ANALYZE", "full": "FULL, ANALYZE"}


class UpkeepError(Exception):
    """A request refused, or upkeep stopped; the message says why and what was (not) done."""


# -- names -----------------------------------------------------------------------------------------


def check_identifier(name, what):
    """Return ``name`` if it is a plain identifier, else refuse it (nothing has been done yet)."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise UpkeepError("refusing %s %r: not a plain PostgreSQL identifier (letters, digits and '_', "
                          "at most 63, not starting with a digit); nothing was done" % (what, name))
    return name


def quote_ident(name):
    """Double-quote a name for SQL (pg_driver.quote_ident); a NUL byte is an UpkeepError."""
    try:
        return pg_quote_ident(name)
    except ValueError as exc:
        raise UpkeepError(str(exc)) from None


def qualified(schema, name):
    return "%s.%s" % (quote_ident(schema), quote_ident(name))


def display(schema, name):
    """How a relation is named in reports: ``table`` in public, else ``schema.table``."""
    return name if schema == "public" else "%s.%s" % (schema, name)


def parse_filters(tables, schemas):
    """Validate the tables/schemas filters: ([(schema or None, table)], [schema]); refuse anything else."""
    wanted_schemas = []
    for schema in schemas or []:
        check_identifier(schema, "schema")
        if schema in SYSTEM_SCHEMAS or schema.startswith("pg_"):
            raise UpkeepError("refusing schema %r: system catalogs are not maintained by upkeep (only user "
                              "schemas are); nothing was done" % schema)
        wanted_schemas.append(schema)
    wanted_tables = []
    for entry in tables or []:
        parts = entry.split(".") if isinstance(entry, str) else [entry]
        if len(parts) > 2:
            raise UpkeepError("refusing table %r: give 'table' or 'schema.table'; nothing was done" % (entry,))
        for position, part in enumerate(parts):
            check_identifier(part, "table" if position == len(parts) - 1 else "schema of table %r" % (entry,))
        wanted_tables.append((parts[0], parts[1]) if len(parts) == 2 else (None, parts[0]))
    return wanted_tables, wanted_schemas


# -- planning --------------------------------------------------------------------------------------


def select_tables(catalog, wanted_tables, wanted_schemas):
    """The (schema, table) pairs of ``catalog`` the filters select, and a skipped entry per unmatched filter.

    No filters select every user table. A bare table name matches that name in every selected schema.
    """
    in_scope = [(schema, table) for schema, table in catalog if not wanted_schemas or schema in wanted_schemas]
    if not wanted_tables:
        return in_scope, []
    selected, skipped = [], []
    for schema, table in wanted_tables:
        matches = [pair for pair in in_scope if pair[1] == table and (schema is None or pair[0] == schema)]
        if not matches:
            name = table if schema is None else "%s.%s" % (schema, table)
            where = "schemas %s" % ", ".join(wanted_schemas) if wanted_schemas else "this database"
            skipped.append(skip_entry("table", name, "no such table in %s" % where))
        selected += [pair for pair in matches if pair not in selected]
    return sorted(selected), skipped


def skip_entry(kind, name, reason):
    return {"kind": kind, "name": name, "reason": reason}


def is_leftover(index_name, valid):
    """An invalid index named like the transient copies of REINDEX CONCURRENTLY (``*_ccnew``, ``*_ccold``)."""
    return not valid and bool(LEFTOVER_NAME.fullmatch(index_name))


def plan_reindex(indexes, selected_tables, mode, server_version_num, fallback):
    """Decide, per index of the selected tables, whether and how it is rebuilt.

    ``indexes`` rows: dicts with schema, table, index, valid, exclusion (and anything else, kept).
    Returns (rebuilds, leftovers, skipped): rebuilds carry the ``mode`` to use; leftovers are found
    whatever ``mode`` (even ``none``) and never rebuilt (rebuilding a ``_ccnew`` would only make a
    ``_ccnew_ccnew``): the caller drops or keeps them.
    """
    wanted = set(selected_tables)
    rebuilds, leftovers, skipped = [], [], []
    for index in indexes:
        if (index["schema"], index["table"]) not in wanted:
            continue
        name = display(index["schema"], index["index"])
        if is_leftover(index["index"], index["valid"]):
            leftovers.append(dict(index))
            continue
        if mode == "none":
            continue
        how, reason = reindex_mode(index, mode, server_version_num, fallback)
        if how is None:
            skipped.append(skip_entry("index", name, reason))
        else:
            rebuilds.append(dict(index, mode=how, note=reason) if reason else dict(index, mode=how))
    return rebuilds, leftovers, skipped


def reindex_mode(index, mode, server_version_num, fallback):
    """(mode, note) for one index: ``concurrently``, ``blocking``, or (None, why it is skipped)."""
    if mode == "blocking":
        return "blocking", None
    if server_version_num < FIRST_CONCURRENT_REINDEX:
        why = "PostgreSQL %s has no REINDEX CONCURRENTLY" % version_label(server_version_num)
    elif index.get("exclusion"):
        why = "index of an exclusion constraint: cannot be rebuilt concurrently"
    else:
        return "concurrently", None
    if fallback:
        return "blocking", why + "; rebuilt blocking (reindex_fallback)"
    return None, why + "; set reindex_fallback to rebuild it blocking (takes locks)"


def version_label(server_version_num):
    major = server_version_num // 10000
    return str(major) if major >= 10 else "%d.%d" % (major, server_version_num // 100 % 100)


# -- statements ------------------------------------------------------------------------------------


def vacuum_statement(mode, schema=None, table=None):
    """``VACUUM (ANALYZE) "s"."t"``; without a table, the whole database."""
    statement = "VACUUM (%s)" % VACUUM_OPTIONS[mode]
    return statement if table is None else "%s %s" % (statement, qualified(schema, table))


def reindex_statement(mode, schema, index):
    return "REINDEX INDEX %s%s" % ("CONCURRENTLY " if mode == "concurrently" else "", qualified(schema, index))


def drop_index_statement(schema, index):
    # CONCURRENTLY: dropping a leftover must not block the table it belongs to.
    return "DROP INDEX CONCURRENTLY IF EXISTS %s" % qualified(schema, index)


def milliseconds_setting(seconds):
    """A timeout in seconds as a setting value; 0 (or less) turns the timeout off."""
    return "%dms" % max(0, round(seconds * 1000))


# -- errors ----------------------------------------------------------------------------------------


def sqlstate(exc):
    """SQLSTATE of a psycopg (``sqlstate``) or psycopg2 (``pgcode``) error, else None."""
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


def error_text(exc):
    """First line of a driver error, whitespace squeezed (psycopg2 appends CONTEXT lines)."""
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split())[:300] if lines else exc.__class__.__name__


def skip_reason(exc, lock_timeout, statement_timeout):
    """Why a statement that did not get its turn was skipped, or None when the error is a real failure."""
    state = sqlstate(exc)
    if state not in SKIP_STATES:
        return None
    reason = SKIP_STATES[state]
    if state == "55P03":
        reason += " (%s s)" % format_seconds(lock_timeout)
    elif state == "57014" and "statement timeout" in str(exc):
        reason += " (%s s)" % format_seconds(statement_timeout)
    elif state == "57014":
        reason = "cancelled: %s" % error_text(exc)
    elif state == "42501":
        reason = "%s: %s" % (reason, error_text(exc))
    return reason


def format_seconds(seconds):
    return ("%.3f" % seconds).rstrip("0").rstrip(".")


# -- long queries ----------------------------------------------------------------------------------


def mask_literals(text):
    """Replace string literals and dollar-quoted bodies by ``'?'``: reported query texts keep their shape only."""
    return STRING_LITERAL.sub("'?'", text or "")


def short_query(text, length):
    """A query text for a report: literals masked, whitespace squeezed, cut to ``length`` characters."""
    text = " ".join(mask_literals(text).split())
    return text if len(text) <= length else text[:max(length - 3, 0)] + "..."


def termination_guard(query, own_pid, terminate_superuser):
    """Why this backend must not be terminated, or None when it may be."""
    if query["pid"] == own_pid:
        return "the module's own backend"
    if terminate_superuser:
        return None
    if query.get("backend_type") == "walsender":
        return "replication connection (set terminate_superuser to include it)"
    if query.get("superuser"):
        return "superuser session (set terminate_superuser to include it)"
    if query.get("replication"):
        return "session of a replication role (set terminate_superuser to include it)"
    return None


def plan_long_queries(queries, own_pid, terminate, terminate_superuser):
    """Give each long query an ``action``: reported, terminate (to be done) or protected (with the reason)."""
    planned = []
    for query in queries:
        entry = dict(query)
        guard = termination_guard(query, own_pid, terminate_superuser)
        if not terminate:
            entry["action"] = "reported"
        elif guard:
            entry["action"] = "protected"
            entry["reason"] = guard
        else:
            entry["action"] = "terminate"
        planned.append(entry)
    return planned


def still_running(long_queries):
    """Pids of the long queries left running: their snapshots are what REINDEX CONCURRENTLY waits for."""
    return [query["pid"] for query in long_queries if query.get("action") in ("reported", "protected", "failed")]


def snapshot_wait_note(pids):
    return ("REINDEX CONCURRENTLY waits for every older transaction of the database, and long queries still run "
            "(pid %s)" % ", ".join(str(pid) for pid in pids))


# -- connections and pg_stat_statements -------------------------------------------------------------


def connection_usage(counts, max_connections, superuser_reserved, reserved=0):
    """Client connections against the limit, and what is left for the clinic app (non-superusers)."""
    current = counts.get("total", 0)
    usage = dict(counts)
    usage.update(
        max_connections=max_connections,
        superuser_reserved_connections=superuser_reserved,
        reserved_connections=reserved,
        available=max(0, max_connections - superuser_reserved - reserved - current),
        usage_percent=round(100.0 * current / max_connections, 1) if max_connections else 0.0,
    )
    return usage


def parse_extension_version(text):
    """'1.10' -> (1, 10); anything unreadable -> (0,)."""
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return (0,)


def statement_time_columns(extension_version):
    """(total, mean) time columns of pg_stat_statements at this extension version."""
    if parse_extension_version(extension_version) >= FIRST_EXEC_TIME_COLUMNS:
        return "total_exec_time", "mean_exec_time"
    return "total_time", "mean_time"


# -- report ----------------------------------------------------------------------------------------


def iso_utc(moment):
    """A timestamp from the server as ISO 8601 in UTC (None stays None)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat()


def count_status(entries, status):
    return sum(1 for entry in entries if entry.get("status") == status)


def summarize(report, options, check_mode):
    """One line for the person reading the play: what was done (or would be), skipped, failed and observed.

    ``options`` are the module's parameters (vacuum, reindex, long_query_threshold are read).
    """
    parts = ["check mode"] if check_mode else []
    if options["vacuum"] != "none":
        verb = "would vacuum" if check_mode else "vacuumed"
        parts.append("%s (%s) %d/%d tables" % (verb, options["vacuum"], count_status(report["vacuum"], verb),
                                               len(report["vacuum"])))
    if options["reindex"] != "none":
        verb = "would reindex" if check_mode else "reindexed"
        parts.append("%s %d/%d indexes" % (verb, count_status(report["reindex"], verb), len(report["reindex"])))
    leftovers = report["leftovers"]
    if leftovers:
        verb = "would drop" if check_mode else "dropped"
        parts.append("%d invalid leftover index(es) (%d %s)" % (len(leftovers), count_status(leftovers, verb), verb))
    parts.append(describe_long_queries(report["long_queries"], options["long_query_threshold"], check_mode))
    parts.append("%d skipped" % len(report["skipped_items"]))
    failed = sum(count_status(report[kind], "failed") for kind in ("vacuum", "reindex", "leftovers"))
    failed += sum(1 for query in report["long_queries"] if query.get("action") == "failed")
    if failed:
        parts.append("%d failed" % failed)
    connections = report["connections"]
    parts.append("connections %d/%d" % (connections.get("total", 0), connections.get("max_connections", 0)))
    parts.append("pg_stat_statements: %s" % report["pg_stat_statements"])
    parts.append("%s s" % format_seconds(report["durations"].get("total", 0)))
    return "%s: %s" % (report["database"], ", ".join(parts))


def describe_long_queries(long_queries, threshold, check_mode):
    if not long_queries:
        return "no long queries (over %s s)" % format_seconds(threshold)
    verb = "would terminate" if check_mode else "terminated"
    ended = sum(1 for query in long_queries if query.get("action") == verb)
    return "%d long quer%s over %s s (%d %s)" % (len(long_queries), "y" if len(long_queries) == 1 else "ies",
                                                 format_seconds(threshold), ended, verb)
