"""Checking a fetched backup set, SQLite restores, placing files, and the PostgreSQL admin commands."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops import restore_targets
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_sources import (
    BackupError,
    describe_files,
    dump_sqlite,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restore_targets import (
    SCRATCH_COMMENT,
    PostgresAdmin,
    compare_counts,
    place_file,
    replace_sqlite,
    run_checked,
    sqlite_counts,
    verify_set,
)

# -- verify_set ------------------------------------------------------------------------------------


@pytest.fixture
def backup_set(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    set_dir = tmp_path / "postgresql-clinicdb"
    set_dir.mkdir()
    (set_dir / "clinicdb.pgdump").write_bytes(b"PGDMP" + os.urandom(4096))
    (set_dir / "globals.sql").write_text("CREATE ROLE clinic_app;\n")
    manifest = {"format": 1, "files": describe_files(str(set_dir))}
    (set_dir / "manifest.json").write_text("{}")
    return set_dir, manifest


def test_an_intact_set_verifies(backup_set: tuple[Path, dict[str, Any]]) -> None:
    set_dir, manifest = backup_set
    assert [item["name"] for item in manifest["files"]] == ["clinicdb.pgdump", "globals.sql"]
    assert verify_set(str(set_dir), manifest) is None


def test_a_missing_file_is_named(backup_set: tuple[Path, dict[str, Any]]) -> None:
    set_dir, manifest = backup_set
    (set_dir / "globals.sql").unlink()
    with pytest.raises(BackupError) as failed:
        verify_set(str(set_dir), manifest)
    assert str(failed.value) == "backup file globals.sql is missing from the snapshot"


def test_a_size_mismatch_is_corruption(backup_set: tuple[Path, dict[str, Any]]) -> None:
    set_dir, manifest = backup_set
    with open(set_dir / "clinicdb.pgdump", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BackupError) as failed:
        verify_set(str(set_dir), manifest)
    assert str(failed.value) == "backup file clinicdb.pgdump does not match its manifest checksum (corrupted)"


def test_same_size_different_bytes_is_corruption(backup_set: tuple[Path, dict[str, Any]]) -> None:
    set_dir, manifest = backup_set
    dump = set_dir / "clinicdb.pgdump"
    data = bytearray(dump.read_bytes())
    data[2000] ^= 0x01  # one bit
    dump.write_bytes(bytes(data))
    assert dump.stat().st_size == manifest["files"][0]["bytes"]
    with pytest.raises(BackupError, match=r"^backup file clinicdb.pgdump does not match .* \(corrupted\)$"):
        verify_set(str(set_dir), manifest)


# -- row counts ------------------------------------------------------------------------------------


def test_compare_counts() -> None:
    expected = {"patients": 24, "appointments": 40, "audit.events": 7}
    assert compare_counts(expected, dict(expected)) == {}
    assert compare_counts(expected, {**expected, "extra": 1}) == {}  # only the manifest's tables are checked
    assert compare_counts(expected, {"patients": 23, "appointments": 40}) == {
        "patients": [24, 23],
        "audit.events": [7, None],
    }
    assert compare_counts({"empty": 0}, {}) == {"empty": [0, None]}
    assert compare_counts({}, {"patients": 1}) == {}


def make_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)")
    conn.execute("CREATE TABLE appointments (id INTEGER PRIMARY KEY, at TEXT)")
    conn.execute("CREATE TABLE sqliteish (x)")
    conn.executemany("INSERT INTO patients (name) VALUES (?)", [(f"p{n}",) for n in range(24)])
    conn.executemany("INSERT INTO appointments (at) VALUES (?)", [(f"d{n}",) for n in range(40)])
    conn.commit()
    conn.close()


def test_sqlite_counts(tmp_path: Path) -> None:
    make_sqlite(tmp_path / "clinic.db")
    assert sqlite_counts(str(tmp_path / "clinic.db")) == {"patients": 24, "appointments": 40, "sqliteish": 0}


def test_sqlite_counts_agree_with_the_backup(tmp_path: Path) -> None:
    make_sqlite(tmp_path / "clinic.db")
    (tmp_path / "spool").mkdir()
    manifest = dump_sqlite(str(tmp_path / "clinic.db"), str(tmp_path / "spool"))
    restored = sqlite_counts(str(tmp_path / "spool" / "clinic.db"))
    assert compare_counts(manifest["row_counts"], restored) == {}
    assert restored == manifest["row_counts"]


def test_sqlite_counts_of_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    path.write_bytes(b"\x00garbage" * 512)
    with pytest.raises(BackupError) as failed:
        sqlite_counts(str(path))
    assert str(failed.value) == f"restored SQLite file {path} is not readable: file is not a database"


def test_sqlite_counts_of_a_damaged_page(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [("x" * 200,) for _ in range(500)])
    conn.commit()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    data[3 * page_size : 4 * page_size] = b"\xab" * page_size  # one table page overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"^restored SQLite file .* (fails PRAGMA integrity_check|is not readable)"):
        sqlite_counts(str(path))


def test_sqlite_counts_of_an_inconsistent_index(tmp_path: Path) -> None:
    path = tmp_path / "clinic.db"
    make_sqlite(path)
    conn = sqlite3.connect(path)
    conn.execute("CREATE INDEX by_name ON patients(name)")
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX by_name ON patients(id)' WHERE name = 'by_name'")
    conn.commit()
    conn.close()
    with pytest.raises(BackupError) as failed:
        sqlite_counts(str(path))
    assert str(failed.value) == f"restored SQLite file {path} fails PRAGMA integrity_check"


# -- place_file ------------------------------------------------------------------------------------


def test_place_file_replaces_the_target_by_rename(tmp_path: Path) -> None:
    source = tmp_path / "restored.db"
    source.write_bytes(b"new contents")
    target = tmp_path / "live" / "clinic.db"
    target.parent.mkdir()
    target.write_bytes(b"old contents, longer than the new ones")
    os.chmod(target, 0o640)
    with open(target, "rb") as still_open:
        place_file(str(source), str(target))
        assert still_open.read() == b"old contents, longer than the new ones"  # a new inode, not rewritten
    assert target.read_bytes() == b"new contents"
    assert sorted(os.listdir(target.parent)) == ["clinic.db"]  # no .clinic.db.restoring left
    assert source.read_bytes() == b"new contents"  # copied, not moved


def test_place_file_keeps_the_replaced_files_owner_and_mode(tmp_path: Path) -> None:
    source = tmp_path / "restored.db"
    source.write_bytes(b"new")
    os.chmod(source, 0o600)
    target = tmp_path / "clinic.db"
    target.write_bytes(b"old")
    os.chmod(target, 0o660)
    before = target.stat()
    place_file(str(source), str(target))
    after = target.stat()
    assert stat.S_IMODE(after.st_mode) == 0o660
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino


def test_place_file_creates_the_parent(tmp_path: Path) -> None:
    source = tmp_path / "restored.db"
    source.write_bytes(b"data")
    target = tmp_path / "srv" / "clinic" / "data" / "clinic.db"
    place_file(str(source), str(target))
    assert target.read_bytes() == b"data"
    assert sorted(os.listdir(target.parent)) == ["clinic.db"]


def test_a_failed_copy_leaves_the_target_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "clinic.db"
    target.write_bytes(b"live")
    with pytest.raises(FileNotFoundError):
        place_file(str(tmp_path / "missing.db"), str(target))
    assert target.read_bytes() == b"live"
    assert sorted(os.listdir(tmp_path)) == ["clinic.db"]


def test_a_failed_rename_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "restored.db").write_bytes(b"data")
    target = tmp_path / "live" / "clinic.db"
    target.mkdir(parents=True)  # a directory where the file should go: the rename fails
    with pytest.raises(IsADirectoryError):
        place_file(str(tmp_path / "restored.db"), str(target))
    assert sorted(os.listdir(target.parent)) == ["clinic.db"]
    assert target.is_dir()


# -- PostgreSQL administration: argv, never a shell ------------------------------------------------


def test_run_checked_feeds_stdin_and_returns_stdout() -> None:
    assert run_checked(["sh", "-c", "cat; printf ' done'"], "psql", "SELECT 1;") == "SELECT 1; done"
    assert run_checked(["printf", "%s", "$(id) ;"], "psql") == "$(id) ;"  # arguments reach the tool verbatim


def test_run_checked_failure_names_the_step_tool_and_stderr() -> None:
    with pytest.raises(BackupError) as failed:
        run_checked(["/bin/sh", "-c", "echo 'ERROR:  database \"x\" does not exist' >&2; exit 2"], "pg_restore")
    assert str(failed.value) == 'pg_restore failed (sh exited 2): ERROR:  database "x" does not exist'


def test_argv_runs_the_tool_as_the_os_superuser(monkeypatch: pytest.MonkeyPatch) -> None:
    installed = {"/usr/lib/postgresql/16/bin/psql"}
    monkeypatch.setattr(restore_targets.os.path, "exists", lambda path: path in installed)
    admin = PostgresAdmin("postgres", 16)
    assert admin.argv("psql", "-X", "-d", "clinicdb; DROP DATABASE x") == [
        "runuser",
        "-u",
        "postgres",
        "--",
        "/usr/lib/postgresql/16/bin/psql",
        "-X",
        "-d",
        "clinicdb; DROP DATABASE x",  # one argument, never parsed by a shell
    ]
    assert PostgresAdmin("pgadmin", 15).argv("pg_restore", "--list") == [
        "runuser",
        "-u",
        "pgadmin",
        "--",
        "pg_restore",
        "--list",
    ]


@dataclass
class Recorder:
    """Stands in for run_checked: records each call and answers with the next queued output (default '')."""

    answers: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, argv: list[str], what: str, input_text: str | None = None) -> str:
        self.calls.append({"argv": argv, "what": what, "sql": input_text})
        return "%s\n" % (self.answers.pop(0) if self.answers else "")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    fake = Recorder()
    monkeypatch.setattr(restore_targets, "pg_bin", lambda tool, major: tool)
    monkeypatch.setattr(restore_targets, "run_checked", fake)
    return fake


def test_sql_goes_to_psql_on_stdin(recorder: Recorder) -> None:
    recorder.answers += ["1", "0", SCRATCH_COMMENT]
    admin = PostgresAdmin("postgres", 16)
    assert admin.exists("clinicdb_drill") is True
    assert admin.exists("other") is False
    assert admin.comment("clinicdb_drill") == SCRATCH_COMMENT
    assert recorder.calls[0] == {
        "argv": [
            "runuser",
            "-u",
            "postgres",
            "--",
            "psql",
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
        ],
        "what": "psql",
        "sql": "SELECT count(*) FROM pg_database WHERE datname = 'clinicdb_drill'",
    }
    assert "shobj_description" in recorder.calls[2]["sql"] and "'clinicdb_drill'" in recorder.calls[2]["sql"]


@pytest.mark.parametrize("name", ["x'; DROP DATABASE clinicdb; --", "clinic db", ""])
def test_names_are_checked_before_any_sql_is_run(recorder: Recorder, name: str) -> None:
    admin = PostgresAdmin("postgres", 16)
    for action in (admin.exists, admin.comment, admin.drop):
        with pytest.raises(BackupError, match="refusing it"):
            action(name)
    with pytest.raises(BackupError, match="refusing it"):
        admin.swap_in(name, "clinicdb__restore_1", "clinicdb__before_1")
    assert recorder.calls == []


def test_create_restore_count_swap_and_drop(recorder: Recorder) -> None:
    admin = PostgresAdmin("postgres", 16)
    loading = "clinicdb__restore_20261125T232422Z"
    admin.create(loading, "clinic_app")
    admin.restore("/spool/restore-x/clinicdb.pgdump", loading, "clinic_app", 2)
    recorder.answers += ["24", "40"]
    counts = admin.row_counts(loading, ["patients", "audit.events"])
    admin.swap_in("clinicdb", loading, "clinicdb__before_20261125T232422Z")
    admin.drop("clinicdb_drill")
    assert counts == {"patients": 24, "audit.events": 40}
    assert [call["sql"] for call in recorder.calls] == [
        f'CREATE DATABASE "{loading}" OWNER "clinic_app" TEMPLATE template0',
        f"COMMENT ON DATABASE \"{loading}\" IS 'clinicops scratch restore'",
        None,
        'SELECT count(*) FROM "patients"',
        'SELECT count(*) FROM "audit"."events"',
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'clinicdb' AND pid <> pg_backend_pid()",
        'ALTER DATABASE "clinicdb" RENAME TO "clinicdb__before_20261125T232422Z"',
        f'ALTER DATABASE "{loading}" RENAME TO "clinicdb"',
        'COMMENT ON DATABASE "clinicdb" IS NULL',
        'DROP DATABASE IF EXISTS "clinicdb_drill" WITH (FORCE)',
    ]
    assert recorder.calls[2]["argv"] == [
        "runuser",
        "-u",
        "postgres",
        "--",
        "pg_restore",
        f"--dbname={loading}",
        "--no-owner",
        "--role=clinic_app",
        "--exit-on-error",
        "--jobs=2",
        "/spool/restore-x/clinicdb.pgdump",
    ]
    assert recorder.calls[2]["what"] == "pg_restore"
    assert recorder.calls[3]["argv"][-2:] == ["-d", loading]  # counted in the restored database


def test_sha_of_placed_file_matches_source(tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024 + 3)
    (tmp_path / "src").write_bytes(data)
    place_file(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert hashlib.sha256((tmp_path / "dst").read_bytes()).digest() == hashlib.sha256(data).digest()


def test_replacing_a_wal_database_moves_its_wal_aside_with_the_old_copy(tmp_path: Path) -> None:
    """A stale -wal beside the restored file would be replayed into it; it goes with the kept copy."""
    live = tmp_path / "clinic.sqlite"
    # The app dies (as when its service is stopped hard) after committing into the WAL, before any
    # checkpoint: the rows exist only in clinic.sqlite-wal.
    writer = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        "db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA wal_autocheckpoint=0')\n"
        "db.execute('CREATE TABLE visits (id INTEGER PRIMARY KEY, note TEXT)')\n"
        "db.executemany('INSERT INTO visits (note) VALUES (?)', [('live',)] * 5); db.commit()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", writer, str(live)], check=True)
    assert (tmp_path / "clinic.sqlite-wal").stat().st_size > 0
    restored = tmp_path / "restored.sqlite"
    backup = sqlite3.connect(restored)
    backup.execute("CREATE TABLE visits (id INTEGER PRIMARY KEY, note TEXT)")
    backup.executemany("INSERT INTO visits (note) VALUES (?)", [("restored",)] * 2)
    backup.commit()
    backup.close()

    previous = replace_sqlite(str(restored), str(live), "20261126T000000Z")

    assert not (tmp_path / "clinic.sqlite-wal").exists() and not (tmp_path / "clinic.sqlite-shm").exists()
    assert sqlite_counts(str(live)) == {"visits": 2}
    assert [row[0] for row in sqlite3.connect(live).execute("SELECT DISTINCT note FROM visits")] == ["restored"]
    # The kept copy still has every committed row of the old database, WAL included.
    assert sqlite3.connect(previous).execute("SELECT count(*) FROM visits").fetchone()[0] == 5
