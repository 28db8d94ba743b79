"""What a deploy of release 2.0.0 over the bootstrap release must leave behind (testinfra, `molecule verify`).

Paths come from the roles' defaults and the release from the scenario's inventory (molecule.yml), so
the tests, the roles and the scenario cannot drift apart.
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
HOST = yaml.safe_load((ROLES / "clinic_host/defaults/main.yml").read_text(encoding="utf-8"))
BACKUP = yaml.safe_load((ROLES / "backup/defaults/main.yml").read_text(encoding="utf-8"))
GUARD = yaml.safe_load((ROLES / "procedure_guard/defaults/main.yml").read_text(encoding="utf-8"))
APP_ROOT = HOST["clinic_host_app_root"]
DATASET = "postgresql:clinicdb"  # the deploy role's default pre-deploy backup (clinic_host's database)


@pytest.fixture(scope="module")
def inventory(host):
    """The scenario's inventory variables of this host (literal values, not templated)."""
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def release_id(inventory):
    return inventory["molecule_release_id"]


@pytest.fixture(scope="module")
def releases(host):
    """The release log's entries by id."""
    log = json.loads(host.file(f"{APP_ROOT}/releases.json").content_string)
    return {entry["id"]: entry for entry in log["releases"]}


@pytest.fixture(scope="module")
def trail(host):
    lines = host.file(GUARD["procedure_guard_trail"]).content_string.split("\n")
    ok, _count, problem = audit_chain().verify_lines(lines)
    assert ok, problem
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def release_snapshots(host, release_id):
    """The snapshots tagged with the deployed release, as `restic snapshots --json` lists them."""
    return json.loads(
        host.check_output(
            "RESTIC_REPOSITORY=%s RESTIC_PASSWORD_FILE=%s restic --no-cache --quiet snapshots --json --tag %s",
            BACKUP["backup_repository"],
            BACKUP["backup_password_file"],
            f"release={release_id}",
        )
    )


def test_current_points_at_the_new_release(host, release_id):
    current = host.file(f"{APP_ROOT}/current")
    assert current.is_symlink
    assert current.linked_to == f"{APP_ROOT}/releases/{release_id}"
    assert host.file(f"{APP_ROOT}/releases/{release_id}/clinic_app.py").is_file


def test_release_log_has_the_new_release_active_with_its_backup(releases, release_id, inventory):
    entry = releases[release_id]
    assert entry["status"] == "active", entry
    assert entry["version"] == inventory["molecule_version"]
    assert set(entry["backup"]) == {DATASET}, entry["backup"]
    assert entry["backup"][DATASET], "no snapshot id bound to the release"
    assert [item["status"] for item in entry["history"]] == ["unfinished", "active"], "deployed once, never again"


def test_bootstrap_release_is_inactive(releases, inventory):
    bootstrap = releases[inventory["clinic_host_bootstrap_release_id"]]
    assert bootstrap["status"] == "inactive", bootstrap
    assert [entry["id"] for entry in releases.values() if entry["status"] == "active"] == [
        inventory["molecule_release_id"]
    ]


def test_no_release_is_left_unfinished_or_bad(host):
    markers = host.check_output("find %s/releases -mindepth 2 -maxdepth 2 -name '.clinicops-*'", APP_ROOT)
    assert markers == ""


@pytest.mark.parametrize("port", [HOST["clinic_host_nginx_listen"], HOST["clinic_host_app_port"]], ids=["nginx", "app"])
def test_app_serves_the_new_release(host, port, release_id, inventory):
    health = json.loads(host.check_output("curl -s --max-time 5 http://127.0.0.1:%s/health", str(port)))
    assert health["status"] == "ok", health
    assert (health["version"], health["release"]) == (inventory["molecule_version"], release_id)
    # 2.0.0 ships migration 0002: the deploy applied it; the seeded rows are still there.
    assert health["schema_version"] == health["schema_required"] == 2, health
    assert health["patients"] == inventory["molecule_seed"]["patients"]


def test_lock_released_and_no_maintenance_left(host):
    assert not host.file(GUARD["procedure_guard_lock_path"]).exists
    assert not host.file(f"{HOST['clinic_host_maintenance_dir']}/on").exists


def test_audit_trail_records_the_deploy(trail, releases, release_id, inventory):
    deploys = [record for record in trail if record["procedure"] == "deploy"]
    assert deploys, "no deploy in the audit trail"
    assert deploys[-1]["outcome"] == "ok", deploys[-1]
    # Exactly one run deployed the release: a second deploy of it changes nothing.
    (deployed,) = [record for record in deploys if record["details"].get("deployed") is True]
    assert deployed["outcome"] == "ok"
    started = [
        record for record in deploys if record["outcome"] == "started" and record["run_id"] == deployed["run_id"]
    ]
    assert len(started) == 1, "the deploy's start is recorded once"
    details = deployed["details"]
    assert details["release_id"] == release_id
    assert details["version"] == inventory["molecule_version"]
    assert details["previous"] == inventory["clinic_host_bootstrap_release_id"]
    assert details["backup"] == releases[release_id]["backup"][DATASET]


def test_pre_deploy_backup_is_tagged_with_the_release(release_snapshots, releases, release_id, inventory):
    # One pre-deploy backup: the second deploy of the same release made none.
    (snapshot,) = release_snapshots
    assert snapshot["short_id"] == releases[release_id]["backup"][DATASET]
    assert {
        "clinicops",
        f"clinic={inventory['clinic_id']}",
        "engine=postgresql",
        f"dataset={DATASET}",
        f"release={release_id}",
    } <= set(snapshot["tags"])
