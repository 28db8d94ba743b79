"""Benchmark: the collection's PostgreSQL backup and restore against the runbook's pg_dump / pg_restore.

On demand only (``make bench``; never part of ``make test``). It brings up (or reuses) the lab
``bench`` with one clinic, makes the clinic database large with pgbench, then measures, N times
each and alternating the order of the two sides:

- backup: the runbook's ``pg_dump -Fc clinicdb -f ...`` against the collection's backup playbook
  limited to the PostgreSQL data set (dump, restic repository, manifest, read-back, lock, audit),
  both the first backup into an empty repository and the next one with no data change;
- restore: ``createdb`` + ``pg_restore`` of the runbook's dump (1 job as the runbook does, and
  ``-j 2``) against the restore drill playbook (restic restore, checksums, ``pg_restore``, row
  counts, schema version, drop).

Every time is wall clock measured on this machine around the command (``docker exec`` for the
runbook side, ``ansible-playbook`` for ours), so both sides pay for getting into the container.
The "step" rows are the db_backup/db_restore task's own duration from Ansible's JSON callback.
It prints medians, ratios ours/runbook and whether they meet the targets (backup <= 1.0x,
restore <= 1.2x), then sizes and where our time goes. It asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
from common import (  # bench/ is the script's own directory
    BIN,
    ROOT,
    STARTED,
    BenchError,
    Samples,
    Table,
    lab_down,
    lab_up,
    log,
    rotate,
    tool_env,
)
from docker.models.containers import Container

PROBE = Path(__file__).resolve().parent / "probe.py"

PG_BIN = "/usr/lib/postgresql/15/bin"
DATABASE = "clinicdb"
APP_ROLE = "clinic_app"
BENCH_DIR = "/var/tmp/bench"  # in the clinic: the runbook's dump, the probe and its scratch files
RUNBOOK_DUMP = f"{BENCH_DIR}/runbook.dump"
RESTORE_DB = "bench_restore"
DRILL_DB = f"{DATABASE}_drill"
REPOSITORY = "/var/backups/clinicops/repo"
RESTIC_CACHE = "/var/cache/clinicops/restic"
RESTIC_ENV = {"RESTIC_REPOSITORY": REPOSITORY, "RESTIC_PASSWORD_FILE": "/etc/clinicops/restic-password"}
PGBENCH_TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")

BACKUP_TARGET = 1.0
RESTORE_TARGET = 1.2
# Only the PostgreSQL data set, no retention, no off-site copy: the same work as the runbook's dump.
BACKUP_VARS = {
    "backup_datasets": [{"engine": "postgresql", "name": DATABASE, "user": APP_ROLE}],
    "backup_prune": False,
    "backup_offsite_host": "",
}
BACKUP_TASK = "Back up each data set"
DRILL_TASK = "Restore into a scratch copy and prove it against the manifest"


# -- the clinic container ----------------------------------------------------------------------------------------


@dataclass
class Clinic:
    container: Container
    host: str

    def exec(self, argv: list[str], user: str = "", env: dict[str, str] | None = None) -> tuple[float, str]:
        """Run argv in the clinic; (wall seconds measured here, output). Raises on a non-zero exit."""
        started = time.monotonic()
        result = self.container.exec_run(argv, user=user, environment=env or {})
        seconds = time.monotonic() - started
        output = result.output.decode(errors="replace")
        if result.exit_code != 0:
            raise BenchError(f"{' '.join(argv)} exited {result.exit_code} in {self.container.name}: {output[-2000:]}")
        return seconds, output

    def run(self, argv: list[str], user: str = "", env: dict[str, str] | None = None) -> str:
        return self.exec(argv, user, env)[1]

    def psql(self, sql: str, database: str = DATABASE) -> str:
        argv = [f"{PG_BIN}/psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql]
        return self.run(argv, user="postgres").strip()

    def checkpoint(self) -> None:
        """Flush PostgreSQL's dirty buffers before a measurement, so no run pays for the previous one."""
        self.psql("CHECKPOINT", "postgres")

    def drop_database(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", "postgres")

    def restic(self, *args: str) -> str:
        return self.run(["restic", "--no-cache", *args], env=RESTIC_ENV)

    def size(self, path: str) -> int:
        return int(self.run(["du", "-sb", path]).split()[0])

    def put(self, source: Path, directory: str) -> None:
        data = source.read_bytes()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(source.name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        self.container.put_archive(directory, archive.getvalue())


def lab_clinic(lab: str, bring_up: bool) -> Clinic:
    if bring_up:
        lab_up(lab, 1)
    client = docker.from_env()
    found = client.containers.list(filters={"label": [f"clinicops.lab={lab}", "clinicops.lab.role=clinic"]})
    if not found:
        raise BenchError(f"lab {lab!r} has no running clinic (run without --no-lab-up)")
    container = sorted(found, key=lambda item: item.labels["clinicops.lab.host"])[0]
    return Clinic(container, container.labels["clinicops.lab.host"])


def prepare_data(clinic: Clinic, scale: int) -> None:
    """pgbench tables at ``scale`` in clinicdb, owned by the app role (the backup dumps as that role)."""
    expected = {"pgbench_accounts": scale * 100_000, "pgbench_branches": scale}
    present = clinic.psql("SELECT to_regclass('public.pgbench_accounts') IS NOT NULL") == "t"
    counts = {table: int(clinic.psql(f"SELECT count(*) FROM {table}")) for table in expected} if present else {}
    if counts != expected:
        log(f"pgbench --initialize --scale={scale} into {DATABASE} (about {scale * 15} MB; found {counts or 'none'})")
        clinic.run([f"{PG_BIN}/pgbench", "--initialize", f"--scale={scale}", "--quiet", DATABASE], user="postgres")
    else:
        log(f"pgbench data at scale {scale} already there; not initialising again")
    for table in PGBENCH_TABLES:
        clinic.psql(f"ALTER TABLE {table} OWNER TO {APP_ROLE}")
    clinic.run(["install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0755", BENCH_DIR])
    clinic.put(PROBE, BENCH_DIR)


def prepare_notes(clinic: Clinic, rows: int) -> None:
    """Optional table of hex text (compresses ~2.5:1 like real records, unlike pgbench's blank filler)."""
    present = clinic.psql("SELECT to_regclass('public.bench_notes') IS NOT NULL") == "t"
    if rows == 0:
        if present:
            log("dropping bench_notes (--hex-rows 0)")
            clinic.psql("DROP TABLE bench_notes")
        return
    if (int(clinic.psql("SELECT count(*) FROM bench_notes")) if present else -1) != rows:
        log(f"creating bench_notes: {rows:,} rows of hex text")
        clinic.psql("DROP TABLE IF EXISTS bench_notes")
        clinic.psql(
            "CREATE TABLE bench_notes AS SELECT i AS id, timestamp '2026-01-01' + i * interval '1 second' AS at,"
            " md5(i::text) || ' ' || md5((i * 31)::text) || ' ' || repeat(chr(97 + i % 26), 8) AS body"
            f" FROM generate_series(1, {rows}) AS i"
        )
        clinic.psql("ALTER TABLE bench_notes ADD PRIMARY KEY (id)")
    clinic.psql(f"ALTER TABLE bench_notes OWNER TO {APP_ROLE}")


# -- ansible-playbook ------------------------------------------------------------------------------------------------


def _seconds(duration: dict[str, str]) -> float:
    if "end" not in duration:
        return 0.0
    start, end = (datetime.fromisoformat(duration[key].replace("Z", "+00:00")) for key in ("start", "end"))
    return (end - start).total_seconds()


@dataclass
class PlaybookRun:
    wall: float
    tasks: dict[str, float] = field(default_factory=dict)  # task name (without the role) -> seconds
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # task name -> the host's result


def run_playbook(inventory: Path, playbook: str, host: str, extra_vars: dict[str, Any] | None = None) -> PlaybookRun:
    """Run one of the collection's playbooks on the clinic, as an operator would, with the JSON callback."""
    argv = [
        str(BIN / "ansible-playbook"),
        "-i",
        str(inventory),
        "--vault-password-file",
        str(inventory / ".vault-pass"),
        "--limit",
        host,
        str(ROOT / "playbooks" / playbook),
    ]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    env = {**tool_env(), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise BenchError(f"{playbook} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout[done.stdout.index("{") :])
    run = PlaybookRun(wall)
    for play in report["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"].split(" : ", 1)[-1]
            run.tasks[name] = run.tasks.get(name, 0.0) + _seconds(task["task"]["duration"])
            if host in task["hosts"]:
                run.results[name] = task["hosts"][host]
    return run


# -- the two sides ----------------------------------------------------------------------------------------------------


def runbook_backup(clinic: Clinic) -> float:
    clinic.run(["rm", "-f", RUNBOOK_DUMP])
    clinic.checkpoint()
    return clinic.exec(["pg_dump", "-Fc", DATABASE, "-f", RUNBOOK_DUMP], user="postgres")[0]


def runbook_restore(clinic: Clinic, jobs: int) -> float:
    clinic.drop_database(RESTORE_DB)
    clinic.checkpoint()
    created = clinic.exec(["createdb", RESTORE_DB], user="postgres")[0]
    parallel = ["-j", str(jobs)] if jobs > 1 else []
    restored = clinic.exec(["pg_restore", "-d", RESTORE_DB, *parallel, RUNBOOK_DUMP], user="postgres")[0]
    clinic.drop_database(RESTORE_DB)
    return created + restored


def our_backup(clinic: Clinic, inventory: Path, samples: Samples, kind: str) -> None:
    clinic.checkpoint()
    run = run_playbook(inventory, "backup.yml", clinic.host, BACKUP_VARS)
    result = run.results[BACKUP_TASK]["results"][0]
    samples.add(f"backup {kind}: role", run.wall)
    samples.add(f"backup {kind}: step", run.tasks[BACKUP_TASK])
    samples.add(f"backup {kind}: module seconds", float(result["seconds"]))
    samples.add(f"backup {kind}: pg_dump in module", float(result["manifest"]["dump_seconds"]))
    samples.add(f"backup {kind}: restic data_added", float(result["added_bytes"]))
    samples.add(f"backup {kind}: repository bytes", float(clinic.size(REPOSITORY)))
    samples.add_tasks(f"backup {kind}", run)
    dumps = [item["bytes"] for item in result["manifest"]["files"] if item["name"].endswith(".pgdump")]
    samples.facts["our dump bytes"] = dumps[0]


def our_drill(clinic: Clinic, inventory: Path, samples: Samples) -> None:
    clinic.drop_database(DRILL_DB)
    clinic.checkpoint()
    run = run_playbook(inventory, "restore_drill.yml", clinic.host)
    samples.add("drill: role", run.wall)
    samples.add("drill: step", run.tasks[DRILL_TASK])
    samples.add_tasks("drill", run)
    rows = sum(run.results[DRILL_TASK].get("row_counts", {}).values())
    samples.facts["drill rows verified"] = rows


def backup_side(side: str, clinic: Clinic, inventory: Path, samples: Samples, label: str) -> None:
    if side == "runbook":
        log(f"{label}: runbook pg_dump -Fc")
        samples.add("backup: runbook", runbook_backup(clinic))
        return
    # Ours: the first backup into an empty repository, then the next one with the data unchanged.
    clinic.run(["rm", "-rf", REPOSITORY, RESTIC_CACHE])
    for kind in ("first", "next"):
        log(f"{label}: ours, {kind} backup (backup.yml)")
        our_backup(clinic, inventory, samples, kind)


def restore_side(side: str, clinic: Clinic, inventory: Path, samples: Samples, label: str) -> None:
    if side == "drill":
        log(f"{label}: ours, restore_drill.yml")
        our_drill(clinic, inventory, samples)
        return
    jobs = 1 if side == "serial" else 2
    log(f"{label}: runbook createdb + pg_restore{' -j 2' if jobs > 1 else ''}")
    samples.add(f"restore: runbook {jobs} job{'s' if jobs > 1 else ''}", runbook_restore(clinic, jobs))


def measure(clinic: Clinic, inventory: Path, runs: int, samples: Samples) -> None:
    log("warm-up: one untimed runbook dump (reads the tables into the page cache)")
    runbook_backup(clinic)
    for index in range(runs):
        for side in rotate(["runbook", "ours"], index):
            backup_side(side, clinic, inventory, samples, f"backup run {index + 1}/{runs}")
    samples.facts["runbook dump bytes"] = int(clinic.run(["stat", "-c", "%s", RUNBOOK_DUMP]).strip())
    for index in range(runs):
        for side in rotate(["serial", "drill", "parallel"], index):
            restore_side(side, clinic, inventory, samples, f"restore run {index + 1}/{runs}")


def collect_sizes(clinic: Clinic, samples: Samples) -> None:
    samples.facts["database bytes"] = int(clinic.psql(f"SELECT pg_database_size('{DATABASE}')"))
    stats = json.loads(clinic.restic("stats", "--mode", "raw-data", "--json"))
    samples.facts["restic raw-data"] = stats
    samples.facts["server"] = clinic.psql("SHOW server_version")
    samples.facts["restic"] = clinic.run(["restic", "version"]).split(" compiled")[0]
    samples.facts["cpus"] = clinic.run(["nproc"]).strip()


def probe(clinic: Clinic, command: str) -> dict[str, Any]:
    """Run a probe.py command in the clinic; a failure is reported in its table, not fatal."""
    log(f"profile: probe.py {command} (in the clinic)")
    try:
        output = clinic.run(["python3", f"{BENCH_DIR}/probe.py", command, clinic.host])
    except BenchError as exc:
        log(f"probe.py {command} failed: {exc}")
        return {"steps": {}, "info": {"FAILED": str(exc)[-300:]}}
    return json.loads(output.strip().splitlines()[-1])


# -- the report -------------------------------------------------------------------------------------------------------


def mib(value: float) -> str:
    return f"{value:,.0f} B ({value / 2**20:,.1f} MiB)"


def report(samples: Samples, args: argparse.Namespace, profiles: dict[str, dict[str, Any]]) -> str:
    table = Table()
    facts = samples.facts
    values = samples.values
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    table.lines.append(
        f"clinicops backup/restore benchmark - lab {args.lab!r}, clinic {facts['clinic']}, pgbench scale {args.scale}"
        + (f" + {args.hex_rows:,} rows of hex text" if args.hex_rows else "")
        + ", "
        f"{args.runs} runs per measurement (order alternating), medians"
    )
    table.lines.append(
        f"PostgreSQL {facts['server']}, {facts['restic']}, {facts['cpus']} CPUs, checkout {commit}; "
        "wall clock seconds measured on the controller"
    )
    table.lines.append(
        "machine load average (1 min) at start / end: {:.2f} / {:.2f} (other labs, tests: see bench/README.md)".format(
            facts["load at start"], os.getloadavg()[0]
        )
    )
    base = values["backup: runbook"]
    table.title(table.header("BACKUP"))
    table.row("runbook: pg_dump -Fc clinicdb -f ... (docker exec)", values["backup: runbook"])
    for kind, what in (("first", "first backup, empty repository"), ("next", "next backup, no data change")):
        step = values[f"backup {kind}: step"]
        table.row(f"ours: backup step ({what})", step, base, BACKUP_TARGET)
        role = values[f"backup {kind}: role"]
        table.row(f"ours: backup.yml end to end ({what})", role, base, BACKUP_TARGET)
    for kind in ("first", "next"):
        module = values[f"backup {kind}: module seconds"]
        table.row(f"  db_backup's own `seconds` ({kind})", module, base)
        dump = values[f"backup {kind}: pg_dump in module"]
        table.row(f"  of which pg_dump --compress=0 ({kind}, dump_seconds)", dump, base)

    serial = values["restore: runbook 1 job"]
    parallel = values["restore: runbook 2 jobs"]
    table.title(table.header("RESTORE"))
    table.row("runbook: createdb + pg_restore (1 job, as the runbook)", values["restore: runbook 1 job"])
    table.row("runbook: createdb + pg_restore -j 2", values["restore: runbook 2 jobs"], serial)
    drill_rows = (
        ("drill: step", "drill restore step (db_restore task)"),
        ("drill: role", "restore_drill.yml end to end"),
    )
    for key, what in drill_rows:
        table.row(f"ours: {what}", values[key], serial, RESTORE_TARGET)
        table.row("  same, against pg_restore -j 2", values[key], parallel)
    table.text("rows verified by the drill (all tables)", f"{facts.get('drill rows verified', 0):,}")

    table.title("SIZES")
    table.text("database (pg_database_size)", mib(facts["database bytes"]))
    table.text("runbook dump (pg_dump -Fc, zlib)", mib(facts["runbook dump bytes"]))
    table.text("our dump in the spool (--compress=0, before restic)", mib(facts["our dump bytes"]))
    first_repo = statistics.median(values["backup first: repository bytes"])
    next_repo = statistics.median(values["backup next: repository bytes"])
    table.text("repository after the first backup (du -sb)", mib(first_repo))
    table.text("repository after the second backup (du -sb)", mib(next_repo))
    table.text("added by the second backup, no data change (du delta)", mib(next_repo - first_repo))
    table.text(
        "  restic data_added (uncompressed) first / second",
        f"{statistics.median(values['backup first: restic data_added']):,.0f} / "
        f"{statistics.median(values['backup next: restic data_added']):,.0f} B",
    )
    stats = facts["restic raw-data"]
    table.text(
        "restic stats --mode raw-data (2 snapshots)",
        f"{mib(stats['total_size'])}, {stats['total_blob_count']} blobs, {stats['snapshots_count']} snapshots",
    )

    table.title("WHERE OUR TIME GOES - Ansible tasks (median; first backup / next backup / drill)")
    names: list[str] = []
    for scenario in ("backup first", "backup next", "drill"):
        names += [name for name in samples.tasks[scenario] if name not in names]
    rows = []
    for name in names:
        cells = [samples.tasks[s].get(name) for s in ("backup first", "backup next", "drill")]
        medians = [statistics.median(cell) if cell else 0.0 for cell in cells]
        if max(medians) >= 0.25:
            rows.append((name, medians))
    small = [
        sum(statistics.median(v) for n, v in samples.tasks[s].items() if n not in {r[0] for r in rows})
        for s in ("backup first", "backup next", "drill")
    ]
    for name, medians in [*rows, ("(other tasks, each < 0.25 s)", small)]:
        table.text(name[:64], " / ".join(f"{value:6.2f}" for value in medians))
    for kind in ("first", "next"):
        step = samples.median(f"backup {kind}: step")
        module = samples.median(f"backup {kind}: module seconds")
        role = samples.median(f"backup {kind}: role")
        table.text(
            f"backup ({kind}): role - step = Ansible around the backup",
            f"{role - step:6.2f} s; step - module = {step - module:.2f} s (module transfer and start)",
        )
    drill_role, drill_step = samples.median("drill: role"), samples.median("drill: step")
    table.text("drill: role - step = Ansible around the restore", f"{drill_role - drill_step:6.2f} s")

    for name, title in (
        ("backup-profile", "WHERE OUR TIME GOES - db_backup's steps one by one in the clinic (probe.py, one run)"),
        ("restore-profile", "WHERE OUR TIME GOES - db_restore's steps one by one in the clinic (probe.py, one run)"),
        ("restore-variants", "WHERE OUR TIME GOES - db_restore's steps one by one + variants (probe.py, one run)"),
        ("backup-variants", "VARIANTS - what a change to db_backup would cost or save (probe.py, one run)"),
    ):
        if name not in profiles:
            continue
        table.title(title)
        steps = profiles[name]["steps"]
        for step, seconds in steps.items():
            table.text(step[:64], f"{seconds:8.2f} s")
        if name == "backup-profile":
            first = sum(s for k, s in steps.items() if "same data again" not in k)
            again = sum(s for k, s in steps.items() if "empty repository" not in k)
            table.text("sum: first backup / next backup", f"{first:8.2f} s / {again:.2f} s")
        for key, value in profiles[name]["info"].items():
            if key != "row_counts":
                table.text(key[:64], f"{value:,}" if isinstance(value, int) else str(value))
    return table.render()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lab", default="bench", help="lab name (default bench; never another lab's)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement, order alternating (default 3)")
    parser.add_argument("--scale", type=int, default=50, help="pgbench scale, 15 MB each (default 50: ~750 MB)")
    parser.add_argument(
        "--hex-rows",
        type=int,
        default=0,
        help="also put this many rows of hex text (~150 B each, compresses like real records) in table bench_notes; "
        "0 (default) drops that table",
    )
    parser.add_argument("--no-lab-up", action="store_true", help="use the running lab as it is")
    parser.add_argument("--no-profile", action="store_true", help="skip the step-by-step profile in the clinic")
    parser.add_argument(
        "--experiments",
        action="store_true",
        help="also measure variants of db_backup/db_restore (compression, streaming; adds ~3 min and 500 pgbench "
        "transactions to the bench database)",
    )
    parser.add_argument("--json", type=Path, help="also write every sample to this JSON file")
    parser.add_argument("--down", action="store_true", help="take the lab down at the end")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.scale < 1 or args.hex_rows < 0:
        parser.error("--runs and --scale must be at least 1, --hex-rows at least 0")
    inventory = ROOT / "inventories" / f"lab-{args.lab}"
    try:
        clinic = lab_clinic(args.lab, bring_up=not args.no_lab_up)
        log(f"clinic {clinic.host} ({clinic.container.name})")
        prepare_data(clinic, args.scale)
        prepare_notes(clinic, args.hex_rows)
        samples = Samples()
        samples.facts["clinic"] = clinic.host
        samples.facts["load at start"] = os.getloadavg()[0]
        measure(clinic, inventory, args.runs, samples)
        collect_sizes(clinic, samples)
        profiles: dict[str, dict[str, Any]] = {}
        if not args.no_profile:
            profiles["backup-profile"] = probe(clinic, "backup-profile")
            restore = "restore-variants" if args.experiments else "restore-profile"
            profiles[restore] = probe(clinic, restore)
        if args.experiments:
            profiles["backup-variants"] = probe(clinic, "backup-variants")
        clinic.run(["rm", "-rf", f"{BENCH_DIR}/probe"])
    except (BenchError, docker.errors.DockerException) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.down:
            lab_down(args.lab)
    print(report(samples, args, profiles))
    wall = time.monotonic() - STARTED
    print(f"\nbenchmark wall time {wall / 60:.1f} min; reproduce: make bench (or {' '.join(_command(argv))})")
    if args.json:
        data = {"values": samples.values, "tasks": samples.tasks, "facts": samples.facts, "profiles": profiles}
        args.json.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


def _command(argv: Iterable[str] | None) -> list[str]:
    return [".venv/bin/python", "bench/backup_restore.py", *(argv if argv is not None else sys.argv[1:])]


if __name__ == "__main__":
    sys.exit(main())
