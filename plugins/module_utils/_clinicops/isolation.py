# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data isolation check of a multi-clinic database: a query set run read-only under one clinic's id.

Each query of the set names what it checks (``name``, a table usually) and counts the rows visible
to the clinic that belong to another clinic (``sql``, with the clinic's id as ``%(clinic_id)s``, a
query parameter, never spliced into the text). A clinic is isolated when every query counts 0.
Each query runs in its own read-only transaction (``SET TRANSACTION READ ONLY``), rolled back: the
check can write nothing, and a query that fails (a missing table) is reported as an error without
spoiling the others. A query that cannot run proves nothing, so it fails the check too.

Works with any DB-API connection using the ``pyformat`` parameter style (psycopg, psycopg2).
Pure Python, no Ansible imports; private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

PARAM = "%(clinic_id)s"
NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def validate_queries(queries):
    """The problems of a query set (empty when it is usable): names, the parameter, one statement each."""
    problems = []
    if not queries:
        return ["the query set is empty: nothing would be checked"]
    seen = set()
    for index, query in enumerate(queries):
        name = str((query or {}).get("name") or "")
        sql = str((query or {}).get("sql") or "")
        label = name or "#%d" % (index + 1)
        if not NAME.match(name):
            problems.append("query %s: name must be 1-64 letters, digits, '_', '.', ':' or '-'" % label)
        elif name in seen:
            problems.append("query %s: the name is used twice" % label)
        seen.add(name)
        if PARAM not in sql:
            problems.append("query %s: the SQL must use the clinic's id as %s" % (label, PARAM))
        if ";" in sql.strip().rstrip(";"):
            problems.append("query %s: one statement only" % label)
    return problems


def count_of(row):
    """The count a query returned: the first column of its one row (no row counts as 0)."""
    if row is None:
        return 0
    value = row[0]
    if value is None:
        return 0
    if isinstance(value, bool) or (not isinstance(value, (int, float)) and not str(value).isdigit()):
        raise ValueError("the query must return a count of rows, got %r" % (value,))
    return int(value)


def run_query(connection, query, clinic_id, clean_error=str):
    """One query in its own read-only transaction, rolled back: ``{name, foreign_rows}`` or ``{name, error}``."""
    result = {"name": query["name"]}
    cursor = connection.cursor()
    try:
        cursor.execute("SET TRANSACTION READ ONLY")
        cursor.execute(query["sql"].strip().rstrip(";"), {"clinic_id": clinic_id})
        result["foreign_rows"] = count_of(cursor.fetchone())
    except Exception as exc:  # pylint: disable=broad-except
        result["error"] = " ".join(clean_error(exc).split())[:300]
    finally:
        try:
            connection.rollback()
        finally:
            cursor.close()
    return result


def run_queries(connection, queries, clinic_id, clean_error=str):
    return [run_query(connection, query, clinic_id, clean_error) for query in queries]


def evaluate(clinic_id, results):
    """The verdict on a clinic: isolated or not, the leaking queries, the failed ones, one line saying it."""
    leaks = dict((r["name"], r["foreign_rows"]) for r in results if r.get("foreign_rows"))
    errors = dict((r["name"], r["error"]) for r in results if r.get("error"))
    parts = []
    if leaks:
        parts.append("rows of another clinic visible under clinic %s: %s" % (
            clinic_id, ", ".join("%s (%d)" % (name, count) for name, count in sorted(leaks.items()))))
    if errors:
        parts.append("could not check: %s" % "; ".join("%s: %s" % item for item in sorted(errors.items())))
    summary = "; ".join(parts) if parts else "isolated: no row of another clinic in %d quer%s" % (
        len(results), "y" if len(results) == 1 else "ies")
    return {
        "isolated": not leaks and not errors,
        "leaks": leaks,
        "errors": errors,
        "checked": dict((r["name"], r.get("foreign_rows")) for r in results),
        "summary": summary,
    }
