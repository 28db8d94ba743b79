"""What a confirmed restore over live data must leave behind (testinfra, run by `molecule verify`).

Paths come from the roles' defaults and expectations from the scenario's inventory (molecule.yml)
and from what prepare.yml recorded before it changed the rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

from clinicops.audit import audit_chain

testinfra_hosts = AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("clinics")

ROLES = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).parent
BACKUP = yaml.safe_load((ROLES / "backup/defaults/main.yml").read_text(encoding="utf-8"))
GUARD = yaml.safe_load((ROLES / "procedure_guard/defaults/main.yml").read_text(encoding="utf-8"))
DATABASE = "clinicdb"  # the default data set of the restore role (clinic_host's database)
# What prepare.yml left in the live database after the backup: every patient renamed, no
# appointment, one more patient.
CHANGED_COUNTS = {"patients": 6, "appointments": 0}


@pytest.fixture(scope="module")
def inventory(host):
    """The scenario's inventory variables of this host (literal values, not templated)."""
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def psql(host):
    def run(sql: str, database: str = "postgres") -> str:
        return host.check_output("runuser -u postgres -- psql -XAt -d %s -c %s", database, sql)

    return run


@pytest.fixture(scope="module")
def restic(host):
    def run(*args: str) -> str:
        command = "RESTIC_REPOSITORY=%s RESTIC_PASSWORD_FILE=%s restic --no-cache --quiet " + " ".join(
            ["%s"] * len(args)
        )
        return host.check_output(command, BACKUP["backup_repository"], BACKUP["backup_password_file"], *args)

    return run


@pytest.fixture(scope="module")
def snapshots(restic, inventory):
    """The database's snapshots, oldest first: prepare.yml's backup, then the restore's safety backup."""
    tags = f"clinicops,clinic={inventory['clinic_id']},dataset=postgresql:{DATABASE}"
    found = json.loads(restic("snapshots", "--json", "--tag", tags))
    return sorted(found, key=lambda snapshot: snapshot["time"])


@pytest.fixture(scope="module")
def restore_record(host):
    lines = host.file(GUARD["procedure_guard_trail"]).content_string.split("\n")
    ok, _count, problem = audit_chain().verify_lines(lines)
    assert ok, problem
    restores = [record for record in map(json.loads, filter(None, lines)) if record["procedure"] == "restore"]
    started, ended = restores[-2:]
    assert (started["outcome"], ended["outcome"]) == ("started", "ok")
    assert started["run_id"] == ended["run_id"]
    return ended


def test_rows_are_as_backed_up(host, psql, inventory):
    recorded = host.file("/var/lib/molecule/live-fingerprint").content_string.strip()
    assert psql(inventory["molecule_fingerprint_sql"], DATABASE) == recorded
    for table, rows in inventory["molecule_seed_row_counts"].items():
        assert psql(f"SELECT count(*) FROM {table}", DATABASE) == str(rows), table
    assert psql("SELECT count(*) FROM patients WHERE full_name IN ('CHANGED', 'Later')", DATABASE) == "0"


def test_restored_database_belongs_to_the_app(psql):
    assert psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{DATABASE}'") == "clinic_app"
    assert psql("SELECT tableowner FROM pg_tables WHERE tablename = 'patients'", DATABASE) == "clinic_app"


def test_replaced_database_is_kept_aside_with_the_changed_rows(psql, restore_record):
    previous = restore_record["details"]["previous"]
    assert previous.startswith(f"{DATABASE}__before_"), previous
    kept = psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{DATABASE}\\_\\_%'").split()
    assert kept == [previous], "only the replaced database is left beside the live one"
    for table, rows in CHANGED_COUNTS.items():
        assert psql(f"SELECT count(*) FROM {table}", previous) == str(rows), table


def test_safety_backup_holds_the_state_before_the_restore(restic, snapshots, restore_record):
    details = restore_record["details"]
    assert len(snapshots) == 2, [snapshot["short_id"] for snapshot in snapshots]
    backed_up, safety = snapshots
    assert details["restored_snapshot_id"] == backed_up["short_id"]
    assert details["safety_snapshot_id"] == safety["short_id"]
    (set_dir,) = [path for path in safety["paths"] if path.startswith(f"{BACKUP['backup_spool_dir']}/")]
    manifest = json.loads(restic("dump", safety["id"], f"{set_dir}/manifest.json"))
    for table, rows in CHANGED_COUNTS.items():
        assert manifest["row_counts"][table] == rows, table


def test_app_serves_the_restored_rows(host, inventory):
    assert host.service("clinic-app").is_running
    health = json.loads(host.check_output("curl -s --max-time 5 http://127.0.0.1/health"))
    assert health["status"] == "ok", health
    patients = json.loads(host.check_output("curl -s --max-time 5 http://127.0.0.1/api/patients"))
    assert patients["count"] == inventory["molecule_seed"]["patients"]


def test_lock_released_maintenance_off_spool_emptied(host):
    assert not host.file(GUARD["procedure_guard_lock_path"]).exists
    assert not host.file("/var/lib/clinicops/maintenance/on").exists
    assert host.file(BACKUP["backup_spool_dir"]).listdir() == []
