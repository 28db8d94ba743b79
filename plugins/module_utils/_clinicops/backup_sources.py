# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Consistent copies of a clinic's data stores into a spool directory, with what the manifest needs.

Each ``dump_*`` function writes its files into ``set_dir`` and returns a dict of manifest fields
(row counts, tool versions, exit codes). Every external process is run with an argv list, its
exit code is checked and its stderr kept for the error message; a failed step raises
``BackupError`` and the caller removes the spool, so a failed dump never becomes a snapshot.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import socket
import sqlite3
import subprocess
import time
from urllib.parse import quote as url_quote

PG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}\Z")  # \Z: '$' would let a trailing newline in
CHUNK = 1024 * 1024

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.pg_driver import (
    PSYCOPG_IMPORT_ERROR,
    pg_driver,
    quote_ident,
)


class BackupError(Exception):
    """A backup step failed; the message says which and why."""


def check_pg_name(name, what="database name"):
    if not PG_NAME.match(name or ""):
        raise BackupError("%s %r is not a plain PostgreSQL identifier (letters, digits, '_', at most 63); "
                          "refusing it" % (what, name))
    return name


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(set_dir):
    files = []
    for name in sorted(os.listdir(set_dir)):
        path = os.path.join(set_dir, name)
        if os.path.isfile(path) and name != "manifest.json":
            files.append({"name": name, "bytes": os.path.getsize(path), "sha256": sha256_file(path)})
    return files


def run_to_file(argv, path, env=None):
    """Run argv with stdout streamed into ``path``; raise BackupError naming argv[0] on failure."""
    with open(path, "wb") as out:
        try:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=env)
        except OSError as exc:
            raise BackupError("%s could not start: %s" % (argv[0], exc)) from exc
        _stdout, stderr = process.communicate()
    if process.returncode != 0:
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise BackupError("%s exited %s: %s" % (os.path.basename(argv[0]), process.returncode, " ".join(tail)))
    return process.returncode


def tool_version(argv):
    try:
        return subprocess.check_output(argv, stderr=subprocess.STDOUT).decode("utf-8", "replace").strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BackupError("cannot run %s: %s" % (argv[0], exc)) from exc


def pg_bin(tool, server_major):
    """The client tool of the server's major version (Debian layout), else the one on PATH."""
    candidate = "/usr/lib/postgresql/%s/bin/%s" % (server_major, tool)
    return candidate if os.path.exists(candidate) else tool


def pg_client_major(version_text):
    match = re.search(r"\)\s+(\d+)", version_text) or re.search(r"(\d+)\.\d+", version_text)
    if not match:
        raise BackupError("cannot read the version of %r" % version_text)
    return int(match.group(1))


def pg_connect(conn):
    if pg_driver is None:
        raise BackupError("psycopg (or psycopg2) is needed on the clinic: %s" % PSYCOPG_IMPORT_ERROR)
    params = {"dbname": conn["database"], "host": conn["host"], "port": conn["port"], "connect_timeout": 10}
    for key in ("user", "passfile"):
        if conn.get(key):
            params[key] = conn[key]
    try:
        return pg_driver.connect(**params)
    except Exception as exc:  # pylint: disable=broad-except
        raise BackupError("cannot connect to database %s: %s" % (conn["database"], " ".join(str(exc).split()))) from exc


def pg_tables(cursor):
    cursor.execute("SELECT schemaname, tablename FROM pg_tables"
                   " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2")
    return [tuple(row) for row in cursor.fetchall()]


def pg_row_counts(cursor):
    counts = {}
    for schema, table in pg_tables(cursor):
        cursor.execute("SELECT count(*) FROM %s.%s" % (quote_ident(schema), quote_ident(table)))
        key = table if schema == "public" else "%s.%s" % (schema, table)
        counts[key] = cursor.fetchone()[0]
    return counts


def pg_schema_version(cursor):
    cursor.execute("SELECT to_regclass('public.schema_version') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return None
    cursor.execute("SELECT max(version) FROM schema_version")
    return cursor.fetchone()[0]


def dump_postgresql(conn, set_dir, os_superuser="postgres"):
    """pg_dump (custom format) and row counts taken from one exported snapshot, plus the globals.

    The counts and the dump see exactly the same data, so a restore can be checked against them.
    """
    check_pg_name(conn["database"])
    session = pg_connect(conn)
    try:
        cursor = session.cursor()
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version_num')::int")
        snapshot, server_num = cursor.fetchone()
        server_major = server_num // 10000
        pg_dump = pg_bin("pg_dump", server_major)
        client_version = tool_version([pg_dump, "--version"])
        if pg_client_major(client_version) < server_major:
            raise BackupError("%s is older than the server (major %s); install the matching client" % (
                client_version, server_major))
        env = dict(os.environ, PGCONNECT_TIMEOUT="10")
        if conn.get("passfile"):
            env["PGPASSFILE"] = conn["passfile"]
        dump_path = os.path.join(set_dir, "%s.pgdump" % conn["database"])
        argv = [pg_dump, "--format=custom", "--compress=0", "--no-password", "--snapshot=%s" % snapshot,
                "--host=%s" % conn["host"], "--port=%s" % conn["port"], "--dbname=%s" % conn["database"]]
        if conn.get("user"):
            argv.append("--username=%s" % conn["user"])
        started = time.time()
        run_to_file(argv, dump_path, env)
        dump_seconds = round(time.time() - started, 2)
        counts = pg_row_counts(cursor)
        schema_version = pg_schema_version(cursor)
        session.rollback()
    finally:
        session.close()
    pg_dumpall = pg_bin("pg_dumpall", server_major)
    run_to_file(["runuser", "-u", os_superuser, "--", pg_dumpall, "--globals-only", "--no-role-passwords"],
                os.path.join(set_dir, "globals.sql"))
    return {
        "database": conn["database"],
        "row_counts": counts,
        "schema_version": schema_version,
        "server_version_num": server_num,
        "tools": {"pg_dump": client_version},
        "exit_codes": {"pg_dump": 0, "pg_dumpall": 0},
        "dump_seconds": dump_seconds,
    }


def dump_sqlite(path, set_dir):
    """SQLite's online backup API into the spool, then PRAGMA integrity_check on the copy."""
    if not os.path.isfile(path):
        raise BackupError("SQLite database %s does not exist" % path)
    target = os.path.join(set_dir, os.path.basename(path))
    # quoted: a '?' or '#' in the path would otherwise end the file name and open (create) another file
    source = sqlite3.connect("file:%s?mode=ro" % url_quote(path), uri=True, timeout=30)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        check = copy.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError("the copy of %s failed PRAGMA integrity_check: %s" % (path, check))
        tables = [row[0] for row in copy.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "ORDER BY name")]
        counts = dict((table, copy.execute("SELECT count(*) FROM %s" % quote_ident(table)).fetchone()[0])
                      for table in tables)
    except sqlite3.Error as exc:  # a damaged source ("file is not a database", "malformed")
        raise BackupError("cannot copy SQLite database %s: %s" % (path, exc)) from exc
    finally:
        copy.close()
        source.close()
    return {"database": path, "row_counts": counts, "tools": {"sqlite": sqlite3.sqlite_version},
            "exit_codes": {"integrity_check": 0}}


def redis_command(sock_file, *parts):
    encoded = [str(p).encode("utf-8") for p in parts]  # RESP lengths count bytes, not characters
    payload = b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)
    sock_file.write(payload)
    sock_file.flush()
    return read_redis_reply(sock_file)


def read_redis_reply(sock_file):
    line = sock_file.readline().decode().rstrip("\r\n")
    kind, rest = line[:1], line[1:]
    if kind == "+":
        return rest
    if kind == "-":
        raise BackupError("Redis answered an error: %s" % rest)
    if kind == ":":
        return int(rest)
    if kind == "$":
        size = int(rest)
        if size < 0:
            return None
        data = sock_file.read(size + 2)[:-2]
        return data.decode("utf-8", "replace")
    if kind == "*":
        return [read_redis_reply(sock_file) for _index in range(int(rest))]
    raise BackupError("unexpected Redis reply %r" % line)


def save_progress(conn):
    """(saves since start or None, LASTSAVE, a save in progress) from Redis."""
    info = redis_command(conn, "INFO", "persistence")
    saves = re.search(r"rdb_saves:(\d+)", info)
    in_progress = "rdb_bgsave_in_progress:1" in info
    return (int(saves.group(1)) if saves else None, redis_command(conn, "LASTSAVE"), in_progress)


def save_finished(before, now):
    """A save started after ``before`` has finished. Redis 7 counts saves (rdb_saves); older ones
    only move LASTSAVE, whole seconds, which a save finishing in the same second would not move."""
    saves_before, lastsave_before, _in_progress = before
    saves_now, lastsave_now, in_progress = now
    if in_progress:
        return False
    if saves_before is not None and saves_now is not None:
        return saves_now > saves_before
    return lastsave_now != lastsave_before


def dump_redis(host, port, set_dir, timeout=120, password=None):
    """BGSAVE, wait until that save has finished and reports ok, then copy the RDB file."""
    try:
        sock = socket.create_connection((host, port), timeout=10)
    except OSError as exc:
        raise BackupError("cannot connect to Redis %s:%s: %s" % (host, port, exc)) from exc
    with sock, sock.makefile("rwb") as conn:
        if password:
            redis_command(conn, "AUTH", password)
        before = save_progress(conn)
        redis_command(conn, "BGSAVE")
        deadline = time.time() + timeout
        while not save_finished(before, save_progress(conn)):
            if time.time() > deadline:
                raise BackupError("Redis BGSAVE did not finish within %ss" % timeout)
            time.sleep(0.1)  # Redis signals completion only through these counters
        info = redis_command(conn, "INFO", "persistence")
        if "rdb_last_bgsave_status:ok" not in info:
            raise BackupError("Redis BGSAVE failed: rdb_last_bgsave_status is not ok")
        directory = redis_command(conn, "CONFIG", "GET", "dir")[1]
        filename = redis_command(conn, "CONFIG", "GET", "dbfilename")[1]
        keys = redis_command(conn, "DBSIZE")
        version = re.search(r"redis_version:(\S+)", redis_command(conn, "INFO", "server"))
    source = os.path.join(directory, filename)
    target = os.path.join(set_dir, "dump.rdb")
    with open(source, "rb") as src, open(target, "wb") as dst:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            dst.write(chunk)
    return {"database": "redis", "row_counts": {"keys": keys},
            "tools": {"redis": version.group(1) if version else "?"}, "exit_codes": {"bgsave": 0}}
