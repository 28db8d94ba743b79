"""Clinic-side half of the backup/restore benchmark: times the steps of ``db_backup``/``db_restore`` one by one.

``backup_restore.py`` copies this file into the lab clinic and runs it there with the clinic's own
``python3`` (standard library + psycopg 3, as the modules use). It never touches the clinic's live
repository except to read it (restore profile), and works in ``/var/tmp/bench/probe``: scratch
spool, scratch restic repositories (own password), scratch databases named ``bench_probe_*``.

Each step repeats what the collection's code does, with the same argv (see
plugins/module_utils/_clinicops/backup_sources.py, restore_targets.py and restic_repo.py), so the
profile says where the module's time goes; the variants measure changes one could make to it.
Prints one JSON document: {"steps": {name: seconds}, "info": {...}}.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "clinicdb"
APP_ROLE = "clinic_app"
PASSFILE = "/etc/clinicops/pgpass"
LIVE_REPOSITORY = "/var/backups/clinicops/repo"
LIVE_PASSWORD_FILE = "/etc/clinicops/restic-password"
WORK = Path("/var/tmp/bench/probe")
SPOOL_SET = WORK / "spool" / "postgresql-clinicdb"  # same shape as the module's spool set dir
CHUNK = 1024 * 1024
SCRATCH_DB = "bench_probe_restore"
MIXED_DB = "bench_probe_mixed"


class Probe:
    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self.info: dict[str, Any] = {}

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        yield
        self.steps[name] = round(time.monotonic() - started, 3)


# -- processes -----------------------------------------------------------------------------------------


def run(argv: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None) -> str:
    done = subprocess.run(argv, input=stdin, capture_output=True, env={**os.environ, **(env or {})}, check=False)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise SystemExit(f"probe: {argv[0]} exited {done.returncode}: {' '.join(tail)}")
    return done.stdout.decode(errors="replace")


def as_postgres(tool: str, *args: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", str(PG_BIN / tool), *args]


def psql(sql: str, database: str = "postgres") -> str:
    return run(as_postgres("psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database), stdin=sql.encode())


def pg_env() -> dict[str, str]:
    return {"PGCONNECT_TIMEOUT": "10", "PGPASSFILE": PASSFILE}


def pg_dump_argv(snapshot: str, compress: str = "0") -> list[str]:
    """The module's pg_dump argv (backup_sources.dump_postgresql), compression level as given."""
    return [
        str(PG_BIN / "pg_dump"),
        "--format=custom",
        f"--compress={compress}",
        "--no-password",
        f"--snapshot={snapshot}",
        "--host=127.0.0.1",
        "--port=5432",
        f"--dbname={DATABASE}",
        f"--username={APP_ROLE}",
    ]


class Repo:
    """restic on one repository, the way restic_repo.ResticRepo calls it."""

    def __init__(self, path: str, password_file: str) -> None:
        self.env = {
            "RESTIC_REPOSITORY": path,
            "RESTIC_PASSWORD_FILE": password_file,
            "RESTIC_CACHE_DIR": str(WORK / "cache"),
            "RESTIC_PROGRESS_FPS": "0.1",
        }
        self.path = path

    def __call__(self, *args: str, stdin: bytes | None = None) -> str:
        return run(["restic", *args], env=self.env, stdin=stdin)

    def argv(self, *args: str) -> list[str]:
        return ["restic", *args]


def scratch_repo(name: str) -> Repo:
    path = WORK / name
    shutil.rmtree(path, ignore_errors=True)
    password = WORK / "restic-password"
    if not password.exists():
        password.write_text(secrets.token_urlsafe(24) + "\n")
        password.chmod(0o600)
    repo = Repo(str(path), str(password))
    repo("init", "--repository-version", "2")
    return repo


def summary(restic_json: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in restic_json.splitlines():
        if line.startswith("{") and '"summary"' in line:
            found = json.loads(line)
    return found


def du(path: str | Path) -> int:
    return int(run(["du", "-sb", str(path)]).split()[0])


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- PostgreSQL snapshot session (as the module holds it) ------------------------------------------------


@contextmanager
def exported_snapshot() -> Iterator[tuple[psycopg.Cursor[Any], str]]:
    session = psycopg.connect(
        dbname=DATABASE, host="127.0.0.1", port=5432, user=APP_ROLE, passfile=PASSFILE, connect_timeout=10
    )
    try:
        cursor = session.cursor()
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cursor.execute("SELECT pg_export_snapshot()")
        row = cursor.fetchone()
        assert row is not None
        yield cursor, row[0]
        session.rollback()
    finally:
        session.close()


def row_counts(cursor: psycopg.Cursor[Any]) -> dict[str, int]:
    cursor.execute(
        "SELECT schemaname, tablename FROM pg_tables"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
    )
    counts = {}
    for schema, table in cursor.fetchall():
        cursor.execute(f'SELECT count(*) FROM "{schema}"."{table}"')
        row = cursor.fetchone()
        assert row is not None
        counts[table] = row[0]
    return counts


def dump_to_file(argv: list[str], path: Path, hash_inline: bool = False) -> str:
    """pg_dump into ``path``; with ``hash_inline`` the stream is hashed on the way (no re-read)."""
    env = {**os.environ, **pg_env()}
    if not hash_inline:
        with path.open("wb") as out:
            subprocess.run(argv, stdout=out, env=env, check=True)
        return ""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
        assert process.stdout is not None
        for chunk in iter(lambda: process.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
            digest.update(chunk)
            out.write(chunk)
        if process.wait() != 0:
            raise SystemExit(f"probe: pg_dump exited {process.returncode}")
    return digest.hexdigest()


def fresh_spool() -> None:
    shutil.rmtree(SPOOL_SET.parent, ignore_errors=True)
    SPOOL_SET.mkdir(parents=True, mode=0o700)


def backup_tags() -> list[str]:
    tags = ["clinicops", "clinic=probe", "engine=postgresql", "dataset=postgresql:clinicdb", "date=20000101"]
    return [arg for item in tags for arg in ("--tag", item)]


# -- backup profile: the module's steps, one by one -----------------------------------------------------------


def backup_profile(probe: Probe) -> None:
    repo = scratch_repo("repo-profile")
    fresh_spool()
    dump = SPOOL_SET / f"{DATABASE}.pgdump"
    with probe.timed("preflight: restic cat config"):
        repo("cat", "config")
    with exported_snapshot() as (cursor, snapshot):
        with probe.timed("pg_dump -Fc --compress=0 to the spool"):
            dump_to_file(pg_dump_argv(snapshot), dump)
        with probe.timed("row counts (count(*) per table, same snapshot)"):
            counts = row_counts(cursor)
    with probe.timed("pg_dumpall --globals-only"), (SPOOL_SET / "globals.sql").open("wb") as out:
        subprocess.run(as_postgres("pg_dumpall", "--globals-only", "--no-role-passwords"), stdout=out, check=True)
    with probe.timed("sha256 of the spool files"):
        files = [
            {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
            for path in sorted(SPOOL_SET.iterdir())
        ]
    with probe.timed("restic version"):
        repo("version")
    (SPOOL_SET / "manifest.json").write_text(json.dumps({"files": files, "row_counts": counts}, indent=2))
    with probe.timed("restic backup, empty repository"):
        first = summary(repo("backup", "--json", "--host", "probe", *backup_tags(), str(SPOOL_SET)))
    snapshot_id = first["snapshot_id"]
    with probe.timed("restic dump manifest.json (read back)"):
        repo("dump", snapshot_id, str(SPOOL_SET / "manifest.json"))
    os.utime(dump)  # the module writes a new dump every run: restic must read it again
    with probe.timed("restic backup, same data again (dedup)"):
        second = summary(repo("backup", "--json", "--host", "probe", *backup_tags(), str(SPOOL_SET)))
    probe.info.update(
        dump_bytes=dump.stat().st_size,
        first_data_added=first.get("data_added"),
        second_data_added=second.get("data_added"),
        repo_bytes_after_two=du(repo.path),
        row_counts=counts,
    )
    shutil.rmtree(repo.path, ignore_errors=True)


# -- backup variants: what a change to the module would save --------------------------------------------------


def cold_backup(probe: Probe, label: str, compress: str, restic_compression: str) -> None:
    """pg_dump at ``compress`` into the spool, then restic (``restic_compression``) into an empty repository."""
    repo = scratch_repo("repo-variant")
    fresh_spool()
    dump = SPOOL_SET / f"{DATABASE}.pgdump"
    with exported_snapshot() as (_cursor, snapshot), probe.timed(f"{label}: pg_dump"):
        dump_to_file(pg_dump_argv(snapshot, compress), dump)
    with probe.timed(f"{label}: restic backup"):
        repo("backup", "--json", "--compression", restic_compression, "--host", "probe", str(SPOOL_SET))
    probe.steps[f"{label}: total"] = round(probe.steps[f"{label}: pg_dump"] + probe.steps[f"{label}: restic backup"], 3)
    probe.info[f"{label}: dump bytes"] = dump.stat().st_size
    probe.info[f"{label}: repository bytes"] = du(repo.path)
    shutil.rmtree(repo.path, ignore_errors=True)


def stream_backup(repo: Repo) -> tuple[str, dict[str, Any]]:
    """pg_dump | (sha256 on the way) | restic backup --stdin: no spool file, no second read."""
    digest = hashlib.sha256()
    output = WORK / "restic-stdin.json"
    with exported_snapshot() as (_cursor, snapshot), output.open("wb") as restic_out:
        restic = subprocess.Popen(
            [
                "restic",
                "backup",
                "--json",
                "--host",
                "probe",
                "--stdin",
                "--stdin-filename",
                f"{DATABASE}.pgdump",
                *backup_tags(),
            ],
            stdin=subprocess.PIPE,
            stdout=restic_out,
            env={**os.environ, **repo.env},
        )
        dump = subprocess.Popen(pg_dump_argv(snapshot), stdout=subprocess.PIPE, env={**os.environ, **pg_env()})
        assert dump.stdout is not None and restic.stdin is not None
        for chunk in iter(lambda: dump.stdout.read(CHUNK), b""):  # type: ignore[union-attr]
            digest.update(chunk)
            restic.stdin.write(chunk)
        restic.stdin.close()
        if dump.wait() != 0 or restic.wait() != 0:
            raise SystemExit(f"probe: streaming backup failed (pg_dump {dump.returncode}, restic {restic.returncode})")
    return digest.hexdigest(), summary(output.read_text())


def spool_backup(repo: Repo, compress: str) -> int:
    """One backup the module's way (dump to the spool, then restic) at ``compress``; the repository's growth."""
    before = du(repo.path)
    fresh_spool()
    with exported_snapshot() as (_cursor, snapshot):
        dump_to_file(pg_dump_argv(snapshot, compress), SPOOL_SET / f"{DATABASE}.pgdump")
    repo("backup", "--json", "--host", "probe", str(SPOOL_SET))
    return du(repo.path) - before


def changed_data_growth(probe: Probe) -> None:
    """Repository growth of the next backup after a little work (pgbench transactions): dedup vs compression.

    The change is real and stays (a clinic's day: updates and inserts); row counts of the big
    tables do not change, so the benchmark's data stays valid."""
    repos = {compress: scratch_repo(f"repo-growth-{compress}") for compress in ("0", "1")}
    for compress, repo in repos.items():
        probe.info[f"growth Z{compress}: first backup"] = spool_backup(repo, compress)
        probe.info[f"growth Z{compress}: same data again"] = spool_backup(repo, compress)
    run(as_postgres("pgbench", "--no-vacuum", "--transactions=500", DATABASE))
    for compress, repo in repos.items():
        probe.info[f"growth Z{compress}: after 500 pgbench transactions"] = spool_backup(repo, compress)
        shutil.rmtree(repo.path, ignore_errors=True)


def less_compressible(probe: Probe) -> None:
    """The compression choice again on data that compresses like real records (pgbench's blank filler
    compresses ~36:1 and flatters zlib): ~3 million rows of hex text and timestamps, in a scratch database."""
    psql(f"DROP DATABASE IF EXISTS {MIXED_DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {MIXED_DB}")
    psql(
        "CREATE TABLE notes AS SELECT i AS id, timestamp '2026-01-01' + i * interval '1 second' AS at,"
        " md5(i::text) || ' ' || md5((i * 31)::text) || ' ' || repeat(chr(97 + i % 26), 8) AS body"
        " FROM generate_series(1, 3000000) AS i",
        MIXED_DB,
    )
    psql("ALTER TABLE notes ADD PRIMARY KEY (id)", MIXED_DB)
    probe.info["hex text: database bytes"] = int(psql(f"SELECT pg_database_size('{MIXED_DB}')").strip())
    target = WORK.parent / "mixed.dump"  # /var/tmp/bench belongs to postgres
    for level, compression in (("0", "auto"), ("1", "auto"), ("6", "auto")):
        label = f"hex text: --compress={level} + restic {compression}"
        repo = scratch_repo("repo-mixed")
        with probe.timed(f"{label}: pg_dump"):
            run(as_postgres("pg_dump", "-Fc", f"--compress={level}", MIXED_DB, "-f", str(target)))
        spool = WORK / "mixed"
        shutil.rmtree(spool, ignore_errors=True)
        spool.mkdir()
        shutil.move(str(target), spool / "mixed.pgdump")
        with probe.timed(f"{label}: restic backup"):
            repo("backup", "--json", "--compression", compression, "--host", "probe", str(spool))
        probe.steps[f"{label}: total"] = round(
            probe.steps[f"{label}: pg_dump"] + probe.steps[f"{label}: restic backup"], 3
        )
        probe.info[f"{label}: dump bytes"] = (spool / "mixed.pgdump").stat().st_size
        probe.info[f"{label}: repository bytes"] = du(repo.path)
        shutil.rmtree(spool, ignore_errors=True)
        shutil.rmtree(repo.path, ignore_errors=True)
    psql(f"DROP DATABASE IF EXISTS {MIXED_DB} WITH (FORCE)")


def backup_variants(probe: Probe) -> None:
    fresh_spool()
    dump = SPOOL_SET / f"{DATABASE}.pgdump"
    # Row counts while pg_dump runs (the exporting session is idle during the dump).
    with (
        exported_snapshot() as (cursor, snapshot),
        dump.open("wb") as out,
        probe.timed("overlap: pg_dump + row counts concurrently"),
    ):
        process = subprocess.Popen(pg_dump_argv(snapshot), stdout=out, env={**os.environ, **pg_env()})
        row_counts(cursor)
        if process.wait() != 0:
            raise SystemExit("probe: pg_dump failed")
    # Hash while dumping instead of reading the dump again.
    fresh_spool()
    with exported_snapshot() as (_cursor, snapshot), probe.timed("inline hash: pg_dump through sha256 to the spool"):
        dump_to_file(pg_dump_argv(snapshot), dump, hash_inline=True)
    # Stream into restic: no spool file at all.
    repo = scratch_repo("repo-stream")
    with probe.timed("stream: pg_dump | sha256 | restic backup --stdin, empty repository"):
        _digest, first = stream_backup(repo)
    with probe.timed("stream: pg_dump | sha256 | restic backup --stdin, same data again"):
        _digest, second = stream_backup(repo)
    probe.info["stream: second data_added"] = second.get("data_added")
    probe.info["stream: repository bytes after two"] = du(repo.path)
    probe.info["stream: first data_added"] = first.get("data_added")
    shutil.rmtree(repo.path, ignore_errors=True)
    # The runbook's own invocation (as postgres, Unix socket, -f) at --compress=0 and 1: transport vs level.
    for level in ("0", "1"):
        target = WORK.parent / f"runbook-Z{level}.dump"  # /var/tmp/bench belongs to postgres
        with probe.timed(f"runbook argv (socket, -f) at --compress={level}"):
            run(as_postgres("pg_dump", "-Fc", f"--compress={level}", DATABASE, "-f", str(target)))
        target.unlink()
    # Compression: where it is done and how hard.
    changed_data_growth(probe)
    cold_backup(probe, "Z0 + restic auto (as now)", "0", "auto")
    cold_backup(probe, "Z0 + restic off", "0", "off")
    cold_backup(probe, "Z0 + restic max", "0", "max")
    cold_backup(probe, "zlib default + restic auto", "6", "auto")
    cold_backup(probe, "zlib 1 + restic auto", "1", "auto")
    less_compressible(probe)
    shutil.rmtree(SPOOL_SET.parent, ignore_errors=True)


# -- restore profile: db_restore's steps on the clinic's latest backup --------------------------------------------


def let_postgres_read(path: Path) -> None:
    entry = pwd.getpwnam("postgres")
    for parent in path.parents:
        parent.chmod(parent.stat().st_mode | 0o111)
        if parent == WORK:
            break
    os.chown(path, entry.pw_uid, entry.pw_gid)


def create_scratch() -> None:
    psql(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {SCRATCH_DB} OWNER {APP_ROLE} TEMPLATE template0")
    psql(f"COMMENT ON DATABASE {SCRATCH_DB} IS 'clinicops scratch restore'")


def drop_scratch() -> None:
    psql(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")


def pg_restore(dump: Path | str, jobs: int) -> list[str]:
    """The module's pg_restore argv (restore_targets.PostgresAdmin.restore)."""
    args = [f"--dbname={SCRATCH_DB}", "--no-owner", f"--role={APP_ROLE}", "--exit-on-error"]
    return as_postgres("pg_restore", *args, f"--jobs={jobs}", *([str(dump)] if dump != "-" else []))


def checkpoint() -> None:
    psql("CHECKPOINT")


def restore_profile(probe: Probe, clinic: str, variants: bool) -> None:
    live = Repo(LIVE_REPOSITORY, LIVE_PASSWORD_FILE)
    with probe.timed("restic snapshots (find the backup)"):
        found = json.loads(
            live("snapshots", "--json", "--tag", f"clinicops,clinic={clinic},dataset=postgresql:clinicdb") or "[]"
        )
    if not found:
        raise SystemExit("probe: no backup of clinicdb in the clinic's repository; run a backup first")
    snapshot = max(found, key=lambda item: item["time"])
    set_dir = next(path for path in snapshot["paths"] if "/spool/" in path)
    workdir = WORK / "restore"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(mode=0o700)
    with probe.timed("restic restore into the spool"):
        live("restore", snapshot["id"], "--target", str(workdir), "--include", set_dir)
    restored = workdir / set_dir.lstrip("/")
    manifest = json.loads((restored / "manifest.json").read_text())
    with probe.timed("sha256 check against the manifest"):
        for item in manifest["files"]:
            if sha256_file(restored / item["name"]) != item["sha256"]:
                raise SystemExit(f"probe: {item['name']} does not match its manifest")
    dump = restored / f"{DATABASE}.pgdump"
    let_postgres_read(dump)
    checkpoint()
    with probe.timed("create the scratch database"):
        create_scratch()
    with probe.timed("pg_restore --jobs=2 (as the module)"):
        run(pg_restore(dump, 2))
    with probe.timed("row counts (one psql per table)"):
        for table in sorted(manifest["row_counts"]):
            psql(f'SELECT count(*) FROM "{table}"', SCRATCH_DB)
    with probe.timed("drop the scratch database"):
        drop_scratch()
    probe.info["restored snapshot"] = snapshot["short_id"]
    if variants:
        checkpoint()
        create_scratch()
        with probe.timed("variant: pg_restore --jobs=1 of our (uncompressed) dump"):
            run(pg_restore(dump, 1))
        drop_scratch()
        checkpoint()
        create_scratch()
        with probe.timed("variant: restic dump | pg_restore (stream, 1 job, no spool)"):
            streamer = subprocess.Popen(
                ["restic", "dump", snapshot["id"], f"{set_dir}/{DATABASE}.pgdump"],
                stdout=subprocess.PIPE,
                env={**os.environ, **live.env},
            )
            loader = subprocess.run(pg_restore("-", 1), stdin=streamer.stdout, capture_output=True, check=False)
            if streamer.wait() != 0 or loader.returncode != 0:
                raise SystemExit(f"probe: streamed restore failed: {loader.stderr.decode(errors='replace')[-300:]}")
        drop_scratch()
        zlib1 = WORK / "zlib1.pgdump"
        with exported_snapshot() as (_cursor, snapshot):
            dump_to_file(pg_dump_argv(snapshot, "1"), zlib1)
        let_postgres_read(zlib1)
        checkpoint()
        create_scratch()
        with probe.timed("variant: pg_restore --jobs=2 of a --compress=1 dump"):
            run(pg_restore(zlib1, 2))
        drop_scratch()
        zlib1.unlink()
    shutil.rmtree(workdir, ignore_errors=True)


COMMANDS: dict[str, Callable[[Probe, list[str]], None]] = {
    "backup-profile": lambda probe, _args: backup_profile(probe),
    "backup-variants": lambda probe, _args: backup_variants(probe),
    "restore-profile": lambda probe, args: restore_profile(probe, args[0], variants=False),
    "restore-variants": lambda probe, args: restore_profile(probe, args[0], variants=True),
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: probe.py {{{'|'.join(COMMANDS)}}} [clinic]", file=sys.stderr)
        return 2
    WORK.mkdir(parents=True, exist_ok=True, mode=0o711)
    probe = Probe()
    COMMANDS[argv[0]](probe, argv[1:])
    json.dump({"steps": probe.steps, "info": probe.info}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
