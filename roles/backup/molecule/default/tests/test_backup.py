"""What a backup of a seeded clinic must leave behind (testinfra, run by `molecule verify`).

Paths come from the roles' defaults and expectations from the scenario's inventory (molecule.yml),
so the tests, the role and prepare.yml cannot drift apart.
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
# The role's default data sets (their names are templates with these defaults): engine -> data set
# and its snapshot tag (restic tags cannot hold '/').
DATASETS = {
    "postgresql": ("postgresql:clinicdb", "dataset=postgresql:clinicdb"),
    "redis": ("redis:redis", "dataset=redis:redis"),
    "files": ("files:/srv/clinic/shared/uploads", "dataset=files:/srv/clinic/shared/uploads"),
}
SPOOL = BACKUP["backup_spool_dir"]


@pytest.fixture(scope="module")
def inventory(host):
    """The scenario's inventory variables of this host (literal values, not templated)."""
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def restic(host):
    def run(*args: str) -> str:
        command = "RESTIC_REPOSITORY=%s RESTIC_PASSWORD_FILE=%s restic --no-cache --quiet " + " ".join(
            ["%s"] * len(args)
        )
        return host.check_output(command, BACKUP["backup_repository"], BACKUP["backup_password_file"], *args)

    return run


@pytest.fixture(scope="module")
def latest(restic, inventory):
    """The newest snapshot of each engine's data set, as `restic snapshots --json` lists it."""
    found = json.loads(restic("snapshots", "--json", "--tag", f"clinicops,clinic={inventory['clinic_id']}"))
    newest = {}
    for engine, (dataset, dataset_tag) in DATASETS.items():
        of_set = [snap for snap in found if dataset_tag in snap["tags"]]
        assert of_set, f"no snapshot of {dataset}"
        newest[engine] = max(of_set, key=lambda snap: snap["time"])
    return newest


def manifest_of(restic, snapshot) -> dict:
    (set_dir,) = [path for path in snapshot["paths"] if path.startswith(f"{SPOOL}/")]
    return json.loads(restic("dump", snapshot["id"], f"{set_dir}/manifest.json"))


def test_repository_exists_and_is_root_only(host):
    repository = BACKUP["backup_repository"]
    for directory in (os.path.dirname(repository), repository):
        found = host.file(directory)
        assert found.is_directory, directory
        assert (found.user, found.group, found.mode) == ("root", "root", 0o700), directory
    assert host.file(f"{repository}/config").is_file
    # restic's own files inside: nothing readable or writable by anyone but root.
    assert host.check_output("find %s ! -user root -o -perm /077", repository) == ""


def test_password_file_is_root_only_and_holds_the_password(host, inventory):
    password = host.file(BACKUP["backup_password_file"])
    assert (password.user, password.group, password.mode) == ("root", "root", 0o600)
    assert password.content_string == f"{inventory['backup_repository_password']}\n"


def test_password_is_nowhere_else(host, inventory):
    found = host.run(
        "grep -rlF -e %s /etc /root /tmp /var/log /var/backups /var/cache/clinicops /var/lib/clinicops",
        inventory["backup_repository_password"],
    )
    assert found.stdout.split() == [BACKUP["backup_password_file"]], found.stdout


def test_snapshots_are_tagged_for_the_clinic_engine_and_dataset(latest, inventory):
    for engine, snapshot in latest.items():
        tags = set(snapshot["tags"])
        assert {"clinicops", f"clinic={inventory['clinic_id']}", f"engine={engine}", DATASETS[engine][1]} <= tags
        assert any(tag.startswith("date=") for tag in tags), tags
        assert not any(tag.startswith("release=") for tag in tags), "no release: not a pre-deploy backup"


def test_postgresql_manifest_counts_the_seeded_rows(restic, latest, inventory):
    manifest = manifest_of(restic, latest["postgresql"])
    assert manifest["clinic"] == inventory["clinic_id"]
    assert manifest["dataset"] == "postgresql:clinicdb"
    assert manifest["row_counts"] == inventory["molecule_seed_row_counts"]
    assert manifest["schema_version"] == 1
    assert {item["name"] for item in manifest["files"]} == {"clinicdb.pgdump", "globals.sql"}
    assert all(len(item["sha256"]) == 64 and item["bytes"] > 0 for item in manifest["files"])


def test_redis_snapshot_holds_its_rdb(restic, latest):
    manifest = manifest_of(restic, latest["redis"])
    assert manifest["engine"] == "redis"
    assert manifest["files"], "no RDB file in the redis snapshot"
    assert "keys" in manifest["row_counts"]


def test_files_snapshot_holds_the_uploaded_file(restic, latest, inventory):
    upload = inventory["molecule_upload"]
    assert restic("dump", latest["files"]["id"], upload["path"]) == upload["content"].rstrip("\n")
    manifest = manifest_of(restic, latest["files"])
    assert manifest["tree"]["files"] >= 1


def test_repository_is_encrypted_at_rest(host, inventory):
    name = host.check_output(
        "runuser -u postgres -- psql -XAt -d clinicdb -c %s", "SELECT full_name FROM patients ORDER BY id LIMIT 1"
    )
    assert name
    for secret in (name, inventory["molecule_upload"]["content"].strip()):
        assert host.run("grep -rqF -e %s %s", secret, BACKUP["backup_repository"]).rc == 1, secret


def test_no_spool_leftovers(host):
    spool = host.file(SPOOL)
    assert spool.is_directory
    assert (spool.user, spool.group, spool.mode) == ("root", "root", 0o700)
    assert spool.listdir() == []


def test_clinic_lock_released(host):
    assert not host.file(GUARD["procedure_guard_lock_path"]).exists


def test_audit_records_of_the_backup(host, latest):
    trail = host.file(GUARD["procedure_guard_trail"])
    assert (trail.user, trail.group, trail.mode) == ("root", "root", 0o600)
    lines = trail.content_string.split("\n")
    ok, _count, problem = audit_chain().verify_lines(lines)
    assert ok, problem
    backups = [record for record in map(json.loads, filter(None, lines)) if record["procedure"] == "backup"]
    started, ended = backups[-2:]
    assert (started["outcome"], ended["outcome"]) == ("started", "ok")
    assert started["run_id"] == ended["run_id"]
    details = ended["details"]
    assert details["offsite"] == "not configured"
    assert {dataset: details.get(dataset) for dataset, _tag in DATASETS.values()} == {
        DATASETS[engine][0]: snapshot["short_id"] for engine, snapshot in latest.items()
    }
