"""Incident diagnostics and the data isolation check on a real lab clinic.

``clinicops diagnose`` collects the clinic's bundle through the real systemd, journal, nginx, app logs and
PostgreSQL, redacted on the clinic: the clinic's real database and repository passwords, planted in its app
log and journal, are nowhere in the bundle (nor in the run's directory). The incident record and the
post-mortem draft carry the timeline from the clinic's audit trail and the controller's.
``clinicops isolation-check`` passes on a clean clinic and fails, naming the table, once a row of another
clinic is in its database.
"""

from __future__ import annotations

import json
import secrets
import tarfile
from pathlib import Path

from conftest import cli_state, lab_secret, ok_in, psql, run_in

CLINIC = "kinshasa"
TRAIL = "/var/log/clinicops/audit.jsonl"
INTRUDER = "'intruder'"  # the clinic id of a row that is not the clinic's own (an SQL literal)
EXPECTED_FILES = {
    "services.txt",
    "journal.txt",
    "logs/app.log",
    "logs/clinic-app.access.log",
    "logs/clinic-app.error.log",
    "pg_stat_activity.csv",
    "disk.txt",
    "memory.txt",
    "releases.json",
    "audit.jsonl",
    "health.json",
    "manifest.json",
}


def bundle_contents(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as archive:
        return {
            member.name.split("/", 1)[1]: archive.extractfile(member).read() for member in archive if member.isfile()
        }


def test_diagnose_brings_a_redacted_bundle_an_incident_record_and_a_postmortem(clinics, inventory, home):
    clinic = clinics[CLINIC]
    db_password = lab_secret(CLINIC)
    repo_password = lab_secret(CLINIC, file="vault_backup.yml", key="backup_repository_password")
    # The secrets where an incident would find them: the app's log and the journal.
    tag = f"diag-itest-{secrets.token_hex(3)}"  # this run's: a kept lab's journal has earlier runs' lines
    planted = f"{tag} connecting postgres://clinic_app:{db_password}@127.0.0.1/clinicdb repo={repo_password}"
    ok_in(clinic, ["sh", "-c", 'echo "$1" >> /var/log/clinic-app/app.log', "sh", planted])
    # A busy hour before it (more entries than the bundle keeps): the bundle must keep the newest, not the oldest.
    flood = "import syslog\nfor n in range(2500): syslog.syslog('diag-flood %d' % n)"
    ok_in(clinic, ["python3", "-c", flood])
    ok_in(clinic, ["logger", "-t", tag, f"PGPASSWORD={db_password} {repo_password}"])
    # A procedure in the incident's window: a record in the clinic's trail and one in the controller's.
    code, _state, out = cli_state(
        home, "cache-flush", "-i", str(inventory), "--limit", CLINIC, "--confirm", CLINIC, "-q"
    )
    assert code == 0, out

    code, state, out = cli_state(home, "diagnose", CLINIC, "-i", str(inventory), "--json", "--since", "1h")
    assert code == 0, out
    record = state["incident"]
    ident = record["id"]
    assert ident.startswith("INC-") and ident.endswith(f"-{CLINIC}")
    directory = home / "incidents" / ident
    assert directory.stat().st_mode & 0o777 == 0o700
    assert sorted(path.name for path in directory.iterdir()) == ["bundle.tar.gz", "incident.json", "postmortem.md"]

    contents = bundle_contents(directory / "bundle.tar.gz")
    missing = json.loads(contents["manifest.json"])["missing"]
    # A clinic never deployed to has no release log yet: the manifest says so, the bundle is still made.
    assert set(missing) <= {"releases.json"}, missing
    assert set(contents) | set(missing) == EXPECTED_FILES, sorted(contents)
    assert (directory / "bundle.tar.gz").stat().st_mode & 0o777 == 0o600
    for secret in (db_password, repo_password):
        assert not [name for name, data in contents.items() if secret.encode() in data]
    assert f"{tag} connecting postgres://clinic_app:********@".encode() in contents["logs/app.log"]
    assert tag.encode() in contents["journal.txt"]
    assert contents["pg_stat_activity.csv"].startswith(b"pid,usename,datname")
    assert json.loads(contents["health.json"])["healthy"] is True
    assert b"clinic-app.service" in contents["services.txt"]
    # ... nor anywhere in what the run left on the controller
    for path in home.rglob("*"):
        if path.is_file() and path.suffix != ".gz":
            data = path.read_bytes()
            assert db_password.encode() not in data and repo_password.encode() not in data, path

    assert record["severity"] == "P3" and record["severity_source"] == "health"  # healthy: degraded at most
    assert record["bundle"] == str(directory / "bundle.tar.gz") and record["bundle_files"] == len(contents)
    sources = {(entry["source"], entry["event"].split(" ")[0]) for entry in record["timeline"]}
    assert ("clinic", "cache_flush") in sources and ("controller", "cache_flush") in sources
    draft = (directory / "postmortem.md").read_text()
    for section in ("## Summary", "## Impact", "## Timeline", "## Root cause", "## Resolution", "## Action items"):
        assert section in draft
    assert "| clinic | cache_flush ok" in draft and "| controller | cache_flush run ok" in draft

    # Read-only on the clinic: the archive is gone, the diagnosis is in its audit trail.
    code, leftover = run_in(clinic, ["sh", "-c", "ls /var/lib/clinicops/diagnostics"])
    assert code == 0 and leftover.strip() == ""
    records = [json.loads(line) for line in ok_in(clinic, ["cat", TRAIL]).splitlines()]
    assert records[-1]["procedure"] == "diagnose" and records[-1]["outcome"] == "ok"
    assert records[-1]["details"]["incident_id"] == ident


def test_diagnose_refuses_a_group_and_a_bad_severity(inventory, home):
    code, _state, out = cli_state(home, "diagnose", "clinics", "-i", str(inventory))
    assert code == 2 and "one clinic" in out
    code, _state, out = cli_state(home, "diagnose", CLINIC, "-i", str(inventory), "--severity", "P0")
    assert code == 2 and "P1, P2, P3, P4" in out


def test_isolation_check_passes_clean_and_names_the_table_of_a_foreign_row(clinics, inventory, home):
    code, state, out = cli_state(home, "isolation-check", "-i", str(inventory), "--json")
    assert code == 0, out
    for row in state["clinics"]:
        assert row["outcome"] == "ok" and row["details"]["foreign_rows"] == {"patients": 0, "appointments": 0}

    clinic = clinics[CLINIC]
    # A row of another clinic in this clinic's database, as a bad import or a restore into the wrong clinic leaves it.
    psql(
        clinic, f"INSERT INTO patients (clinic_id, full_name, birth_date) VALUES ({INTRUDER}, 'Not Ours', '1980-01-01')"
    )
    try:
        code, state, out = cli_state(home, "isolation-check", "-i", str(inventory), "--json")
        assert code == 1, out
        rows = {row["clinic"]: row for row in state["clinics"]}
        assert rows[CLINIC]["outcome"] == "failed"
        assert "patients (1)" in rows[CLINIC]["message"] and "appointments" not in rows[CLINIC]["message"]
        assert all(row["outcome"] == "ok" for name, row in rows.items() if name != CLINIC)
    finally:
        psql(clinic, f"DELETE FROM patients WHERE clinic_id = {INTRUDER}")
