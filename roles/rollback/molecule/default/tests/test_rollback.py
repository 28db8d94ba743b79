"""What a rollback from release 2.0.0 to the bootstrap release must leave behind (testinfra, `molecule verify`).

Paths come from the roles' defaults and the releases from the scenario's inventory (molecule.yml), so
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
GUARD = yaml.safe_load((ROLES / "procedure_guard/defaults/main.yml").read_text(encoding="utf-8"))
APP_ROOT = HOST["clinic_host_app_root"]


@pytest.fixture(scope="module")
def inventory(host):
    """The scenario's inventory variables of this host (literal values, not templated)."""
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def target(inventory):
    """The release rolled back to: the bootstrap release."""
    return inventory["clinic_host_bootstrap_release_id"]


@pytest.fixture(scope="module")
def left(inventory):
    """The release rolled back from: the one prepare.yml deployed."""
    return inventory["molecule_release_id"]


@pytest.fixture(scope="module")
def releases(host):
    """The release log's entries by id."""
    log = json.loads(host.file(f"{APP_ROOT}/releases.json").content_string)
    return {entry["id"]: entry for entry in log["releases"]}


def test_current_points_at_the_release_rolled_back_to(host, target):
    current = host.file(f"{APP_ROOT}/current")
    assert current.is_symlink
    assert current.linked_to == f"{APP_ROOT}/releases/{target}"


def test_release_log_marks_the_release_left_rolled_back(releases, target, left):
    assert releases[target]["status"] == "active", releases[target]
    assert releases[left]["status"] == "rolled_back", releases[left]
    # Rolled back once: the second run found the target current and changed nothing.
    assert [item["status"] for item in releases[left]["history"]] == ["unfinished", "active", "rolled_back"]
    assert [entry["id"] for entry in releases.values() if entry["status"] == "active"] == [target]


def test_release_left_stays_on_disk_without_markers(host, left):
    """An operator's rollback keeps the release (cleanup decides later) and marks it bad only when asked."""
    assert host.file(f"{APP_ROOT}/releases/{left}").is_directory
    markers = host.check_output("find %s/releases -mindepth 2 -maxdepth 2 -name '.clinicops-*'", APP_ROOT)
    assert markers == ""


@pytest.mark.parametrize("port", [HOST["clinic_host_nginx_listen"], HOST["clinic_host_app_port"]], ids=["nginx", "app"])
def test_app_serves_the_release_rolled_back_to(host, port, target, inventory):
    health = json.loads(host.check_output("curl -s --max-time 5 http://127.0.0.1:%s/health", str(port)))
    assert health["status"] == "ok", health
    assert (health["version"], health["release"]) == ("1.0.0", target)
    # The code went back, the data did not (no rollback_restore_data): 2.0.0's migration stays, which
    # 1.0.0 accepts (it needs schema 1 or newer), and the seeded rows are still there.
    assert health["schema_version"] == 2, health
    assert health["patients"] == inventory["molecule_seed"]["patients"]


def test_lock_released_and_no_maintenance_left(host):
    assert not host.file(GUARD["procedure_guard_lock_path"]).exists
    assert not host.file(f"{HOST['clinic_host_maintenance_dir']}/on").exists


def test_audit_trail_records_the_rollback(host, target, left):
    lines = host.file(GUARD["procedure_guard_trail"]).content_string.split("\n")
    ok, _count, problem = audit_chain().verify_lines(lines)
    assert ok, problem
    records = [json.loads(line) for line in lines if line.strip()]
    rollbacks = [record for record in records if record["procedure"] == "rollback"]
    assert rollbacks, "no rollback in the audit trail"
    assert rollbacks[-1]["outcome"] == "ok", rollbacks[-1]
    # Exactly one run switched: a second rollback to the same release changes nothing.
    (switched,) = [record for record in rollbacks if record["details"].get("from")]
    assert switched["outcome"] == "ok"
    assert (switched["details"]["from"], switched["details"]["to"]) == (left, target)
    assert switched["details"]["restore_data"] is False
