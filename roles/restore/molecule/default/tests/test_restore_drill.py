"""What a restore drill must leave behind (testinfra, run by `molecule verify`).

Paths come from the roles' defaults and expectations from the scenario's inventory (molecule.yml)
and from what prepare.yml recorded, so the tests, the roles and the scenario cannot drift apart.
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
DATASET_TAG = f"dataset=postgresql:{DATABASE}"


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
def backup_snapshot(host, inventory):
    """The newest backup of the database (prepare.yml made it; the drill's `latest`)."""
    found = json.loads(
        host.check_output(
            "RESTIC_REPOSITORY=%s RESTIC_PASSWORD_FILE=%s restic --no-cache --quiet snapshots --json --tag %s",
            BACKUP["backup_repository"],
            BACKUP["backup_password_file"],
            f"clinicops,clinic={inventory['clinic_id']},{DATASET_TAG}",
        )
    )
    assert found, "no backup of the database"
    return max(found, key=lambda snapshot: snapshot["time"])


@pytest.fixture(scope="module")
def trail(host):
    lines = host.file(GUARD["procedure_guard_trail"]).content_string.split("\n")
    ok, _count, problem = audit_chain().verify_lines(lines)
    assert ok, problem
    return [json.loads(line) for line in lines if line.strip()]


def test_drill_recorded_its_evidence(trail, backup_snapshot, inventory):
    drills = [record for record in trail if record["procedure"] == "restore_drill"]
    started, ended = drills[-2:]
    assert (started["outcome"], ended["outcome"]) == ("started", "ok")
    assert started["run_id"] == ended["run_id"]
    evidence = ended["details"]
    assert evidence["verified"] is True
    assert evidence["snapshot_id"] == backup_snapshot["short_id"]
    # db_restore fails the drill on any table whose count differs from the manifest; the evidence
    # keeps their sum, which must be the seeded rows.
    assert evidence["rows"] == sum(inventory["molecule_seed_row_counts"].values())
    assert 0 <= evidence["backup_age_hours"] < 24


def test_no_scratch_database_left(psql):
    databases = set(psql("SELECT datname FROM pg_database").split())
    assert databases == {"postgres", "template0", "template1", DATABASE}, "only the live database may remain"


def test_live_data_untouched(host, psql, inventory):
    recorded = host.file("/var/lib/molecule/live-fingerprint").content_string.strip()
    assert psql(inventory["molecule_fingerprint_sql"], DATABASE) == recorded
    for table, rows in inventory["molecule_seed_row_counts"].items():
        assert psql(f"SELECT count(*) FROM {table}", DATABASE) == str(rows), table


def test_app_still_serves_the_live_data(host, inventory):
    health = json.loads(host.check_output("curl -s --max-time 5 http://127.0.0.1/health"))
    assert health["status"] == "ok", health
    patients = json.loads(host.check_output("curl -s --max-time 5 http://127.0.0.1/api/patients"))
    assert patients["count"] == inventory["molecule_seed"]["patients"]


def test_lock_released_and_no_maintenance_left(host):
    assert not host.file(GUARD["procedure_guard_lock_path"]).exists
    assert not host.file("/var/lib/clinicops/maintenance/on").exists


def test_spool_emptied(host):
    assert host.file(BACKUP["backup_spool_dir"]).listdir() == []


def test_backup_directories_stay_root_only(host):
    """The restore lets the postgres account traverse to the dump only while it loads it."""
    for directory in (os.path.dirname(BACKUP["backup_repository"]), BACKUP["backup_spool_dir"]):
        assert host.file(directory).mode == 0o700, directory
