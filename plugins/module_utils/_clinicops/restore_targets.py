# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading a verified backup set into a data store, and checking the result against its manifest.

PostgreSQL is always restored into a fresh database first. A scratch restore (drills) stops
there; a replace renames the live database aside (kept as ``<name>__before_<stamp>``) and the
restored one into its place, so the old data is never dropped by a restore.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pwd
import shutil
import sqlite3
import subprocess
from urllib.parse import quote as url_quote

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_sources import (
    BackupError,
    check_pg_name,
    pg_bin,
    quote_ident,
    sha256_file,
)

SCRATCH_COMMENT = "clinicops scratch restore"


def verify_set(set_dir, manifest):
    """Every file of the manifest is there with its size and SHA-256; raise naming the first that is not."""
    for item in manifest.get("files", []):
        path = os.path.join(set_dir, item["name"])
        if not os.path.isfile(path):
            raise BackupError("backup file %s is missing from the snapshot" % item["name"])
        if os.path.getsize(path) != item["bytes"] or sha256_file(path) != item["sha256"]:
            raise BackupError("backup file %s does not match its manifest checksum (corrupted)" % item["name"])


def run_checked(argv, what, input_text=None):
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate(input_text.encode("utf-8") if input_text is not None else None)
    if process.returncode != 0:
        tail = " ".join(err.decode("utf-8", "replace").strip().splitlines()[-3:])
        raise BackupError("%s failed (%s exited %s): %s" % (what, os.path.basename(argv[0]), process.returncode, tail))
    return out.decode("utf-8", "replace")


class PostgresAdmin(object):
    """psql/pg_restore as the PostgreSQL superuser's OS account (peer authentication, no password)."""

    def __init__(self, os_superuser, server_major):
        self.os_superuser = os_superuser
        self.server_major = server_major

    def argv(self, tool, *args):
        return ["runuser", "-u", self.os_superuser, "--", pg_bin(tool, self.server_major), *list(args)]

    def sql(self, sql, database="postgres"):
        return run_checked(self.argv("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database), "psql",
                           sql).strip()

    def exists(self, name):
        return self.sql("SELECT count(*) FROM pg_database WHERE datname = '%s'" % check_pg_name(name)) == "1"

    def comment(self, name):
        return self.sql("SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
                        "WHERE datname = '%s'" % check_pg_name(name))

    def create(self, name, owner):
        self.sql("CREATE DATABASE %s OWNER %s TEMPLATE template0" % (quote_ident(name), quote_ident(owner)))
        self.sql("COMMENT ON DATABASE %s IS '%s'" % (quote_ident(name), SCRATCH_COMMENT))

    def drop(self, name):
        self.sql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % quote_ident(check_pg_name(name)))

    def restore(self, dump_path, database, owner, jobs):
        run_checked(self.argv("pg_restore", "--dbname=%s" % database, "--no-owner", "--role=%s" % owner,
                              "--exit-on-error", "--jobs=%d" % jobs, dump_path), "pg_restore")

    def restore_tables(self, dump_path, database, tables, expected):
        """Replace the rows of ``tables`` (manifest names: ``table`` in public, else ``schema.table``) in
        ``database`` with those of the dump, in ONE transaction that also checks each table's count
        against ``expected``: any error or mismatch rolls everything back and the live rows stay."""
        unknown = [table for table in tables if table not in expected]
        if unknown:
            raise BackupError("table(s) %s are not in this backup (it holds: %s)"
                              % (", ".join(unknown), ", ".join(sorted(expected))))
        qualified = dict((table, split_table(table)) for table in tables)
        sql_file = os.path.join(os.path.dirname(dump_path), "tables.sql")
        selection = ["--schema=%s" % schema for schema in sorted(set(pair[0] for pair in qualified.values()))]
        selection += ["--table=%s" % pair[1] for pair in qualified.values()]
        selection.append(dump_path)
        # pg_restore runs as the PostgreSQL account, which cannot write into the root-only spool:
        # its output goes to a file opened here, as root.
        with open(sql_file, "wb") as handle:
            process = subprocess.Popen(self.argv("pg_restore", "--data-only", "--disable-triggers", "--file=-",
                                                 *selection), stdout=handle, stderr=subprocess.PIPE)
            _out, err = process.communicate()
        if process.returncode != 0:
            raise BackupError("pg_restore of tables %s failed (exit %s): %s"
                              % (", ".join(tables), process.returncode, err.decode("utf-8", "replace").strip()[-300:]))
        hand_to_account(sql_file, self.os_superuser)
        names = ", ".join("%s.%s" % (quote_ident(schema), quote_ident(name)) for schema, name in qualified.values())
        argv = self.argv("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d", database,
                         "-c", "TRUNCATE %s" % names, "-f", sql_file)
        for table in tables:
            schema, name = qualified[table]
            argv += ["-c", "DO $check$ BEGIN IF (SELECT count(*) FROM %s.%s) <> %d THEN RAISE EXCEPTION "
                           "'row count of %s differs from the manifest (%d)'; END IF; END $check$;"
                     % (quote_ident(schema), quote_ident(name), int(expected[table]), table, int(expected[table]))]
        run_checked(argv, "table restore (rolled back, the live rows are unchanged)")
        return self.row_counts(database, tables)

    def row_counts(self, database, tables):
        counts = {}
        for table in tables:
            parts = table.split(".")
            counts[table] = int(self.sql("SELECT count(*) FROM %s" % ".".join(quote_ident(p) for p in parts),
                                         database))
        return counts

    def swap_in(self, live, restored, aside):
        """Rename the live database aside and the restored one into its place (connections are ended)."""
        self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' AND pid <> "
                 "pg_backend_pid()" % check_pg_name(live))
        self.sql("ALTER DATABASE %s RENAME TO %s" % (quote_ident(live), quote_ident(aside)))
        self.sql("ALTER DATABASE %s RENAME TO %s" % (quote_ident(restored), quote_ident(live)))
        self.sql("COMMENT ON DATABASE %s IS NULL" % quote_ident(live))


def split_table(table):
    """A manifest table name -> (schema, table); both checked like database names."""
    schema, _dot, name = table.rpartition(".")
    return check_pg_name(schema or "public", "schema name"), check_pg_name(name, "table name")


def hand_to_account(path, account):
    """Let ``account`` read a root-made file in a root-only spool (owner change, mode 0600)."""
    entry = pwd.getpwnam(account)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, 0o600)


def compare_counts(expected, actual):
    """Tables whose row counts differ from the manifest: {table: [expected, actual]}."""
    return dict((table, [count, actual.get(table)]) for table, count in expected.items() if actual.get(table) != count)


def sqlite_counts(path):
    conn = sqlite3.connect("file:%s?mode=ro" % url_quote(path), uri=True)
    try:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError("restored SQLite file %s fails PRAGMA integrity_check" % path)
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
        return dict((table, conn.execute("SELECT count(*) FROM %s" % quote_ident(table)).fetchone()[0])
                    for table in tables)
    except sqlite3.Error as exc:  # "file is not a database", "database disk image is malformed"
        raise BackupError("restored SQLite file %s is not readable: %s" % (path, exc)) from exc
    finally:
        conn.close()


SQLITE_SIBLINGS = ("-wal", "-shm", "-journal")


def replace_sqlite(source, target, stamp):
    """Put the restored SQLite file ``source`` in place of ``target`` (its writers stopped).

    The replaced database is kept as ``<target>.before-<stamp>`` WITH its ``-wal``/``-shm``/``-journal``
    siblings moved beside it: they hold committed pages of the old database, and left next to the
    restored file SQLite would replay the old WAL into it. Returns the kept path."""
    previous = "%s.before-%s" % (target, stamp)
    shutil.copyfile(target, previous)
    for suffix in SQLITE_SIBLINGS:
        if os.path.exists(target + suffix):
            os.rename(target + suffix, previous + suffix)
    place_file(source, target)
    return previous


def place_file(source, target):
    """Copy ``source`` next to ``target`` and rename it into place (atomic on one file system)."""
    directory = os.path.dirname(target) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o750)
    temp = os.path.join(directory, ".%s.restoring" % os.path.basename(target))
    try:
        shutil.copyfile(source, temp)
        if os.path.exists(target):  # the replaced file's owner and mode, not root's defaults
            stat = os.stat(target)
            os.chown(temp, stat.st_uid, stat.st_gid)
            os.chmod(temp, stat.st_mode & 0o7777)
        os.rename(temp, target)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
