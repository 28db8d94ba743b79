"""Consistent copies of the data stores: names, tools, SQLite online backup, Redis BGSAVE.

Everything runs locally: real small commands for the process helpers, real SQLite files in tmp_path,
a tiny RESP server on loopback for Redis, and a scripted driver for the PostgreSQL orchestration.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops import backup_sources
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_sources import (
    BackupError,
    check_pg_name,
    describe_files,
    dump_postgresql,
    dump_redis,
    dump_sqlite,
    pg_bin,
    pg_client_major,
    pg_connect,
    quote_ident,
    read_redis_reply,
    redis_command,
    run_to_file,
    sha256_file,
    tool_version,
)

from .conftest import TcpServerFactory

# -- PostgreSQL names and tools --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["clinicdb", "_x", "a1", "Clinic_DB_2", "a" * 63])
def test_plain_identifiers_are_accepted(name: str) -> None:
    assert check_pg_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["clinic;rm -rf /", "db name", "x'--", "$(id)", "a" * 64, "", None, "1abc", "clinicdb\n", "clinic-db", "é"],
)
def test_anything_else_is_refused_saying_so(name: str | None) -> None:
    with pytest.raises(BackupError) as refused:
        check_pg_name(name)
    assert str(refused.value) == (
        f"database name {name!r} is not a plain PostgreSQL identifier (letters, digits, '_', at most 63); refusing it"
    )


def test_the_refusal_names_what_was_checked() -> None:
    with pytest.raises(BackupError, match=r"^owner role 'x;y' is not a plain PostgreSQL identifier"):
        check_pg_name("x;y", "owner role")


def test_quote_ident_doubles_quotes() -> None:
    assert quote_ident("patients") == '"patients"'
    assert quote_ident('a"b') == '"a""b"'


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 15),
        ("pg_dump (PostgreSQL) 16.2", 16),
        ("pg_dump (PostgreSQL) 17beta1", 17),
        ("pg_dump (PostgreSQL) 9.6.24", 9),
        ("pg_dump 14.1", 14),
    ],
)
def test_pg_client_major(text: str, major: int) -> None:
    assert pg_client_major(text) == major


def test_pg_client_major_without_a_version() -> None:
    with pytest.raises(BackupError, match=r"^cannot read the version of 'pg_dump: command not found'$"):
        pg_client_major("pg_dump: command not found")


def only_existing(monkeypatch: pytest.MonkeyPatch, *paths: str) -> list[str]:
    """Make os.path.exists true for ``paths`` only; return the list of paths asked about."""
    asked: list[str] = []

    def exists(path: str) -> bool:
        asked.append(path)
        return path in paths

    monkeypatch.setattr(backup_sources.os.path, "exists", exists)
    return asked


def test_pg_bin_prefers_the_servers_major_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = only_existing(monkeypatch, "/usr/lib/postgresql/16/bin/pg_dump")
    assert pg_bin("pg_dump", 16) == "/usr/lib/postgresql/16/bin/pg_dump"
    assert pg_bin("pg_dump", 15) == "pg_dump"
    assert pg_bin("pg_restore", 16) == "pg_restore"
    assert asked == [
        "/usr/lib/postgresql/16/bin/pg_dump",
        "/usr/lib/postgresql/15/bin/pg_dump",
        "/usr/lib/postgresql/16/bin/pg_restore",
    ]


# -- processes -------------------------------------------------------------------------------------


def test_run_to_file_streams_stdout_into_the_file(tmp_path: Path) -> None:
    out = tmp_path / "dump"
    assert run_to_file(["printf", "%s\\n", "one", "two"], str(out)) == 0
    assert out.read_bytes() == b"one\ntwo\n"


def test_run_to_file_passes_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "env"
    run_to_file(["sh", "-c", 'printf %s "$PGPASSFILE"'], str(out), env={"PGPASSFILE": "/etc/clinicops/pgpass"})
    assert out.read_text() == "/etc/clinicops/pgpass"


def test_run_to_file_failure_names_the_tool_and_its_last_stderr_lines(tmp_path: Path) -> None:
    script = "echo one >&2; echo two >&2; echo three >&2; echo err >&2; echo partial; exit 3"
    with pytest.raises(BackupError) as failed:
        run_to_file(["/bin/sh", "-c", script], str(tmp_path / "out"))
    assert str(failed.value) == "sh exited 3: two three err"


def test_run_to_file_of_a_missing_tool(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"^/nonexistent/pg_dump could not start: "):
        run_to_file(["/nonexistent/pg_dump", "--version"], str(tmp_path / "out"))


def test_tool_version(tmp_path: Path) -> None:
    assert tool_version(["sh", "-c", "echo 'pg_dump (PostgreSQL) 16.2'; echo >&2"]) == "pg_dump (PostgreSQL) 16.2"
    with pytest.raises(BackupError, match=r"^cannot run sh: "):
        tool_version(["sh", "-c", "exit 1"])
    with pytest.raises(BackupError, match=r"^cannot run /nonexistent/tool: "):
        tool_version(["/nonexistent/tool"])


# -- files of a set --------------------------------------------------------------------------------


def test_sha256_file(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk
    (tmp_path / "big").write_bytes(data)
    assert sha256_file(str(tmp_path / "big")) == hashlib.sha256(data).hexdigest()


def test_describe_files_lists_files_but_not_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "globals.sql").write_text("CREATE ROLE x;\n")
    (tmp_path / "clinicdb.pgdump").write_bytes(b"PGDMP" + bytes(10))
    (tmp_path / "subdir").mkdir()
    assert describe_files(str(tmp_path)) == [
        {"name": "clinicdb.pgdump", "bytes": 15, "sha256": hashlib.sha256(b"PGDMP" + bytes(10)).hexdigest()},
        {"name": "globals.sql", "bytes": 15, "sha256": hashlib.sha256(b"CREATE ROLE x;\n").hexdigest()},
    ]


# -- SQLite ----------------------------------------------------------------------------------------


def make_sqlite(path: Path, wal: bool = True) -> None:
    conn = sqlite3.connect(path)
    if wal:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)")
    conn.execute('CREATE TABLE "odd ""name""" (x)')
    conn.execute("CREATE TABLE sqlitex (x)")  # not SQLite's own: only sqlite_* names are
    conn.executemany("INSERT INTO patients (name) VALUES (?)", [(f"p{n}",) for n in range(24)])
    conn.executemany('INSERT INTO "odd ""name""" VALUES (?)', [(n,) for n in range(3)])
    conn.execute("INSERT INTO sqlitex VALUES (1)")
    conn.commit()
    conn.close()


EXPECTED_COUNTS = {"patients": 24, 'odd "name"': 3, "sqlitex": 1}  # sqlite_sequence is SQLite's own


def test_dump_sqlite_copies_a_live_wal_database(tmp_path: Path) -> None:
    source = tmp_path / "live" / "clinic.db"
    source.parent.mkdir()
    make_sqlite(source)
    spool = tmp_path / "spool"
    spool.mkdir()
    reader = sqlite3.connect(source)
    writer = sqlite3.connect(source, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM patients").fetchone() == (24,)  # an open read transaction
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO patients (name) VALUES ('uncommitted')")  # an open write transaction
        details = dump_sqlite(str(source), str(spool))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        reader.close()
    assert details == {
        "database": str(source),
        "row_counts": EXPECTED_COUNTS,
        "tools": {"sqlite": sqlite3.sqlite_version},
        "exit_codes": {"integrity_check": 0},
    }
    copy = sqlite3.connect(spool / "clinic.db")
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert copy.execute("SELECT count(*) FROM patients WHERE name = 'uncommitted'").fetchone() == (0,)
    copy.close()
    assert sorted(os.listdir(spool)) == ["clinic.db"]


def test_dump_sqlite_with_a_pending_rollback_journal_writer(tmp_path: Path) -> None:
    source = tmp_path / "clinic.db"
    make_sqlite(source, wal=False)
    (tmp_path / "spool").mkdir()
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM patients")
    try:
        details = dump_sqlite(str(source), str(tmp_path / "spool"))
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert details["row_counts"] == EXPECTED_COUNTS


def test_dump_sqlite_path_with_uri_characters(tmp_path: Path) -> None:
    """'?' and '#' are part of the file name, not the start of URI parameters (that opened another file)."""
    source = tmp_path / "odd?name#1 100%.db"
    make_sqlite(source, wal=False)
    (tmp_path / "spool").mkdir()
    assert dump_sqlite(str(source), str(tmp_path / "spool"))["row_counts"] == EXPECTED_COUNTS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd?name#1 100%.db", "spool"]


def test_dump_sqlite_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"^SQLite database /nonexistent/clinic.db does not exist$"):
        dump_sqlite("/nonexistent/clinic.db", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_dump_sqlite_of_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    source = tmp_path / "clinic.db"
    source.write_bytes(b"this is not SQLite " * 300)
    (tmp_path / "spool").mkdir()
    with pytest.raises(BackupError) as failed:
        dump_sqlite(str(source), str(tmp_path / "spool"))
    assert str(failed.value) == f"cannot copy SQLite database {source}: file is not a database"


def break_index(path: Path) -> None:
    """Make an index disagree with its table: PRAGMA integrity_check reports rows, nothing raises."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("CREATE INDEX IF NOT EXISTS by_name ON patients(name)")
    conn.commit()
    conn.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX by_name ON patients(id)' WHERE name = 'by_name'")
    conn.commit()
    conn.close()


def test_dump_sqlite_refuses_a_copy_failing_integrity_check(tmp_path: Path) -> None:
    source = tmp_path / "clinic.db"
    make_sqlite(source, wal=False)
    break_index(source)
    (tmp_path / "spool").mkdir()
    with pytest.raises(BackupError) as failed:
        dump_sqlite(str(source), str(tmp_path / "spool"))
    assert str(failed.value) == f"the copy of {source} failed PRAGMA integrity_check: row 1 missing from index by_name"


# -- Redis: the protocol ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (b"+OK\r\n", "OK"),
        (b":42\r\n", 42),
        (b":-1\r\n", -1),
        (b"$5\r\nhello\r\n", "hello"),
        (b"$0\r\n\r\n", ""),
        (b"$4\r\na\r\nb\r\n", "a\r\nb"),  # length-prefixed: CRLF inside is data
        (b"$-1\r\n", None),
        (b"*2\r\n$3\r\ndir\r\n$10\r\n/var/redis\r\n", ["dir", "/var/redis"]),
        (b"*3\r\n:1\r\n*1\r\n+x\r\n$-1\r\n", [1, ["x"], None]),
        (b"*0\r\n", []),
    ],
)
def test_read_redis_reply(wire: bytes, value: object) -> None:
    stream = io.BytesIO(wire + b"+NEXT\r\n")
    assert read_redis_reply(stream) == value
    assert read_redis_reply(stream) == "NEXT"  # consumed exactly one reply


def test_an_error_reply_raises() -> None:
    with pytest.raises(BackupError, match=r"^Redis answered an error: ERR Background save already in progress$"):
        read_redis_reply(io.BytesIO(b"-ERR Background save already in progress\r\n"))


@pytest.mark.parametrize(("wire", "shown"), [(b"%1\r\n", "'%1'"), (b"", "''"), (b"hello\r\n", "'hello'")])
def test_an_unexpected_reply_raises(wire: bytes, shown: str) -> None:
    with pytest.raises(BackupError) as failed:
        read_redis_reply(io.BytesIO(wire))
    assert str(failed.value) == f"unexpected Redis reply {shown}"


class Duplex:
    """A file-like pair: writes are collected, reads come from canned replies."""

    def __init__(self, replies: bytes) -> None:
        self.sent = io.BytesIO()
        self.replies = io.BytesIO(replies)
        self.write, self.readline, self.read = self.sent.write, self.replies.readline, self.replies.read

    def flush(self) -> None:
        pass


def test_redis_command_sends_a_resp_array_with_byte_lengths() -> None:
    conn = Duplex(b"+OK\r\n")
    assert redis_command(conn, "AUTH", "pässwörd") == "OK"
    assert conn.sent.getvalue() == b"*2\r\n$4\r\nAUTH\r\n$10\r\np\xc3\xa4ssw\xc3\xb6rd\r\n"


# -- Redis: dump_redis against a fake server -------------------------------------------------------


@dataclass
class RedisState:
    rdb_dir: str
    password: str | None = None
    polls_before_done: int = 1  # LASTSAVE answers the old value this often after BGSAVE
    finishes: bool = True
    bgsave_reply: bytes = b"+Background saving started\r\n"
    bgsave_status: str = "ok"
    lastsave: int = 1_764_000_000
    commands: list[list[str]] = field(default_factory=list)
    rdb_saves: int | None = None  # Redis 7 counts saves; None models an older Redis
    lastsave_frozen: bool = False  # the save finishes within the same second as the previous one

    def bgsave_done(self) -> bool:
        return "BGSAVE" in (c[0] for c in self.commands) and self.finishes and self.polls_before_done <= 0

    def answer(self, args: list[str]) -> bytes:
        verb = " ".join(args[:2]).upper() if args[0].upper() in ("INFO", "CONFIG") else args[0].upper()
        if verb == "AUTH":
            if args[1] == self.password:
                return b"+OK\r\n"
            return b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        if verb == "LASTSAVE":
            if self.lastsave_frozen:
                return b":%d\r\n" % self.lastsave
            if "BGSAVE" in (c[0] for c in self.commands) and self.finishes:
                if self.polls_before_done:
                    self.polls_before_done -= 1
                else:
                    return b":%d\r\n" % (self.lastsave + 1)
            return b":%d\r\n" % self.lastsave
        if verb == "BGSAVE":
            return self.bgsave_reply
        if verb == "INFO PERSISTENCE":
            lines = f"# Persistence\r\nrdb_bgsave_in_progress:0\r\nrdb_last_bgsave_status:{self.bgsave_status}\r\n"
            if self.rdb_saves is not None:
                if "BGSAVE" in (c[0] for c in self.commands) and self.finishes:
                    if self.polls_before_done > 0:
                        self.polls_before_done -= 1
                        lines = lines.replace("rdb_bgsave_in_progress:0", "rdb_bgsave_in_progress:1")
                    else:
                        lines += f"rdb_saves:{self.rdb_saves + 1}\r\n"
                        return bulk(lines)
                lines += f"rdb_saves:{self.rdb_saves}\r\n"
            return bulk(lines)
        if verb == "CONFIG GET":
            value = {"dir": self.rdb_dir, "dbfilename": "dump.rdb"}[args[2]]
            return b"*2\r\n" + bulk(args[2]) + bulk(value)
        if verb == "DBSIZE":
            return b":3\r\n"
        if verb == "INFO SERVER":
            return bulk("# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n")
        return b"-ERR unknown command '%s'\r\n" % args[0].encode()


def bulk(text: str) -> bytes:
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def serve(state: RedisState) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        while line := reader.readline():
            if not line.startswith(b"*"):
                conn.sendall(b"-ERR expected a RESP array\r\n")
                return
            args = []
            for _ in range(int(line[1:])):
                size = int(reader.readline()[1:])
                data = reader.read(size + 2)
                if data[-2:] != b"\r\n":  # the declared length was not the byte length
                    conn.sendall(b"-ERR Protocol error: invalid bulk length\r\n")
                    return
                args.append(data[:-2].decode())
            state.commands.append(args)
            conn.sendall(state.answer(args))

    return handle


@pytest.fixture
def redis_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "redis"
    directory.mkdir()
    (directory / "dump.rdb").write_bytes(b"REDIS0011" + bytes(range(256)) * 4)
    (tmp_path / "spool").mkdir()
    return directory


def start_redis(tcp_server: TcpServerFactory, redis_dir: Path, **options: Any) -> tuple[str, int, RedisState]:
    state = RedisState(str(redis_dir), **options)
    host, port = tcp_server(serve(state))
    return host, port, state


def test_dump_redis_waits_for_bgsave_and_copies_the_rdb(tcp_server: TcpServerFactory, redis_dir: Path) -> None:
    host, port, state = start_redis(tcp_server, redis_dir)
    spool = redis_dir.parent / "spool"
    details = dump_redis(host, port, str(spool), timeout=5)
    assert details == {
        "database": "redis",
        "row_counts": {"keys": 3},
        "tools": {"redis": "7.0.15"},
        "exit_codes": {"bgsave": 0},
    }
    assert (spool / "dump.rdb").read_bytes() == (redis_dir / "dump.rdb").read_bytes()
    assert state.commands == [
        ["INFO", "persistence"],
        ["LASTSAVE"],
        ["BGSAVE"],
        ["INFO", "persistence"],
        ["LASTSAVE"],  # still the old value (this Redis reports no rdb_saves): polled again
        ["INFO", "persistence"],
        ["LASTSAVE"],
        ["INFO", "persistence"],
        ["CONFIG", "GET", "dir"],
        ["CONFIG", "GET", "dbfilename"],
        ["DBSIZE"],
        ["INFO", "server"],
    ]


def test_dump_redis_authenticates_first(tcp_server: TcpServerFactory, redis_dir: Path) -> None:
    host, port, state = start_redis(tcp_server, redis_dir, password="pässwörd 1", polls_before_done=0)
    dump_redis(host, port, str(redis_dir.parent / "spool"), timeout=5, password="pässwörd 1")
    assert state.commands[0] == ["AUTH", "pässwörd 1"]
    assert state.commands[1] == ["INFO", "persistence"]


def test_dump_redis_with_a_wrong_password(tcp_server: TcpServerFactory, redis_dir: Path) -> None:
    host, port, state = start_redis(tcp_server, redis_dir, password="right")
    with pytest.raises(BackupError, match=r"^Redis answered an error: WRONGPASS invalid username-password pair"):
        dump_redis(host, port, str(redis_dir.parent / "spool"), password="wrong")
    assert [c[0] for c in state.commands] == ["AUTH"]


def test_a_failed_bgsave_is_an_error_and_nothing_is_copied(tcp_server: TcpServerFactory, redis_dir: Path) -> None:
    host, port, _state = start_redis(tcp_server, redis_dir, bgsave_status="err", polls_before_done=0)
    spool = redis_dir.parent / "spool"
    with pytest.raises(BackupError) as failed:
        dump_redis(host, port, str(spool), timeout=5)
    assert str(failed.value) == "Redis BGSAVE failed: rdb_last_bgsave_status is not ok"
    assert list(spool.iterdir()) == []


def test_a_refused_bgsave_is_an_error(tcp_server: TcpServerFactory, redis_dir: Path) -> None:
    host, port, _state = start_redis(
        tcp_server, redis_dir, bgsave_reply=b"-ERR Background save already in progress\r\n"
    )
    with pytest.raises(BackupError, match=r"^Redis answered an error: ERR Background save already in progress$"):
        dump_redis(host, port, str(redis_dir.parent / "spool"), timeout=5)


def test_a_bgsave_that_never_finishes_times_out(tcp_server: TcpServerFactory, redis_dir: Path) -> None:
    host, port, state = start_redis(tcp_server, redis_dir, finishes=False)
    with pytest.raises(BackupError, match=r"^Redis BGSAVE did not finish within 0.05s$"):
        dump_redis(host, port, str(redis_dir.parent / "spool"), timeout=0.05)
    assert ["CONFIG", "GET", "dir"] not in state.commands  # nothing was read or copied


def test_redis_7_save_counter_ends_the_wait_even_within_the_same_second(
    tcp_server: TcpServerFactory, redis_dir: Path
) -> None:
    # LASTSAVE never moves (the save finished in the same second as the previous one); the
    # rdb_saves counter of Redis 7 still says the save this run asked for has finished.
    host, port, state = start_redis(tcp_server, redis_dir, rdb_saves=7, polls_before_done=2, lastsave_frozen=True)
    details = dump_redis(host, port, str(redis_dir.parent / "spool"), timeout=5)
    assert details["row_counts"] == {"keys": 3}
    polls = [c for c in state.commands if c == ["INFO", "persistence"]]
    assert len(polls) >= 3  # in progress twice, then the counter moved


def test_dump_redis_connection_refused(closed_port: int, tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=rf"^cannot connect to Redis 127\.0\.0\.1:{closed_port}: "):
        dump_redis("127.0.0.1", closed_port, str(tmp_path))


# -- PostgreSQL: connection and the dump orchestration, with a scripted driver ---------------------


def test_pg_connect_without_a_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_sources, "pg_driver", None)
    monkeypatch.setattr(backup_sources, "PSYCOPG_IMPORT_ERROR", ImportError("No module named 'psycopg2'"))
    with pytest.raises(BackupError, match=r"^psycopg \(or psycopg2\) is needed on the clinic: No module named"):
        pg_connect({"database": "clinicdb", "host": "127.0.0.1", "port": 5432})


def test_pg_connect_refused(closed_port: int) -> None:
    if backup_sources.pg_driver is None:
        pytest.skip("no psycopg in this environment")
    with pytest.raises(BackupError, match=r"^cannot connect to database clinicdb: \S"):
        pg_connect({"database": "clinicdb", "host": "127.0.0.1", "port": closed_port, "user": "clinic_app"})


class FakeCursor:
    """Answers the queries dump_postgresql makes, in a schema with two tables."""

    def __init__(self, log: list[str], schema_table: bool = True) -> None:
        self.log = log
        self.schema_table = schema_table
        self.result: list[tuple[Any, ...]] = []

    def execute(self, sql: str) -> None:
        self.log.append(sql)
        answers: dict[str, list[tuple[Any, ...]]] = {
            "SELECT pg_export_snapshot()": [("00000003-0000001B-1", 160002)],
            "SELECT schemaname, tablename": [("audit", "events"), ("public", "patients")],
            'SELECT count(*) FROM "audit"."events"': [(7,)],
            'SELECT count(*) FROM "public"."patients"': [(24,)],
            "SELECT to_regclass": [(self.schema_table,)],
            "SELECT max(version)": [(12,)],
        }
        self.result = next((rows for start, rows in answers.items() if sql.startswith(start)), [])

    def fetchone(self) -> tuple[Any, ...]:
        return self.result[0]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.result


def test_schema_version_is_none_without_the_table() -> None:
    log: list[str] = []
    assert backup_sources.pg_schema_version(FakeCursor(log)) == 12
    assert backup_sources.pg_schema_version(FakeCursor(log, schema_table=False)) is None
    assert log == [
        "SELECT to_regclass('public.schema_version') IS NOT NULL",
        "SELECT max(version) FROM schema_version",
        "SELECT to_regclass('public.schema_version') IS NOT NULL",
    ]


class FakeSession:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.log)

    def rollback(self) -> None:
        self.log.append("rollback")

    def close(self) -> None:
        self.log.append("close")


@pytest.fixture
def pg_fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    fakes: dict[str, Any] = {"log": [], "runs": [], "version": "pg_dump (PostgreSQL) 16.2", "conn": []}

    def connect(conn: dict[str, Any]) -> FakeSession:
        fakes["conn"].append(conn)
        return FakeSession(fakes["log"])

    def run(argv: list[str], path: str, env: dict[str, str] | None = None) -> int:
        fakes["log"].append("run " + os.path.basename(argv[0]) + " " + argv[-1])
        fakes["runs"].append((argv, path, env))
        Path(path).write_bytes(b"dump")
        return 0

    monkeypatch.setattr(backup_sources, "pg_connect", connect)
    monkeypatch.setattr(backup_sources, "run_to_file", run)
    monkeypatch.setattr(backup_sources, "tool_version", lambda argv: fakes["version"])
    monkeypatch.setattr(backup_sources, "pg_bin", lambda tool, major: f"/usr/lib/postgresql/{major}/bin/{tool}")
    return fakes


CONN = {"database": "clinicdb", "host": "127.0.0.1", "port": 5432, "user": "clinic_app", "passfile": "/etc/pgpass"}


def test_dump_postgresql_dumps_and_counts_in_one_snapshot(pg_fakes: dict[str, Any], tmp_path: Path) -> None:
    details = dump_postgresql(dict(CONN), str(tmp_path), os_superuser="postgres")
    dump_argv, dump_path, env = pg_fakes["runs"][0]
    assert dump_argv == [
        "/usr/lib/postgresql/16/bin/pg_dump",
        "--format=custom",
        "--compress=0",
        "--no-password",
        "--snapshot=00000003-0000001B-1",
        "--host=127.0.0.1",
        "--port=5432",
        "--dbname=clinicdb",
        "--username=clinic_app",
    ]
    assert dump_path == str(tmp_path / "clinicdb.pgdump")
    assert env["PGPASSFILE"] == "/etc/pgpass" and env["PGCONNECT_TIMEOUT"] == "10"
    assert pg_fakes["runs"][1][:2] == (
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            "/usr/lib/postgresql/16/bin/pg_dumpall",
            "--globals-only",
            "--no-role-passwords",
        ],
        str(tmp_path / "globals.sql"),
    )
    log = pg_fakes["log"]
    assert log[0] == "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
    assert log[1].startswith("SELECT pg_export_snapshot()")
    # counted after the dump, before the exporting transaction ends
    dumped = log.index("run pg_dump --username=clinic_app")
    assert dumped < log.index('SELECT count(*) FROM "public"."patients"') < log.index("rollback")
    assert log.index("rollback") < log.index("close") < log.index("run runuser --no-role-passwords")
    assert details == {
        "database": "clinicdb",
        "row_counts": {"audit.events": 7, "patients": 24},
        "schema_version": 12,
        "server_version_num": 160002,
        "tools": {"pg_dump": "pg_dump (PostgreSQL) 16.2"},
        "exit_codes": {"pg_dump": 0, "pg_dumpall": 0},
        "dump_seconds": details["dump_seconds"],
    }


def test_dump_postgresql_refuses_an_older_client(pg_fakes: dict[str, Any], tmp_path: Path) -> None:
    pg_fakes["version"] = "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    with pytest.raises(BackupError) as refused:
        dump_postgresql(dict(CONN), str(tmp_path))
    assert str(refused.value) == (
        "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1) is older than the server (major 16); "
        "install the matching client"
    )
    assert pg_fakes["runs"] == []
    assert pg_fakes["log"][-1] == "close"


def test_dump_postgresql_refuses_a_bad_name_before_connecting(pg_fakes: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="refusing it"):
        dump_postgresql(dict(CONN, database="clinicdb; DROP TABLE patients"), str(tmp_path))
    assert pg_fakes["conn"] == []
