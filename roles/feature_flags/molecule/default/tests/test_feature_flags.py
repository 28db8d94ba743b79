"""What setting feature flags leaves on a provisioned clinic (testinfra, run by `molecule verify`).

The flags come from the scenario's inventory and the paths from the roles' defaults, so the tests, the
roles and the scenario cannot drift apart.
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
FLAG_FILE = f"/etc/{HOST['clinic_host_app_name']}/flags.env"


@pytest.fixture(scope="module")
def wanted(host):
    """The scenario's feature_flags_set (literal values)."""
    return host.ansible.get_variables()["feature_flags_set"]


def test_flag_file_holds_the_flags_readable_by_the_app_only(host, wanted):
    flags = host.file(FLAG_FILE)
    assert (flags.user, flags.group, flags.mode) == ("root", HOST["clinic_host_app_group"], 0o640)
    lines = {line for line in flags.content_string.splitlines() if line and not line.startswith("#")}
    assert lines == {f"FEATURE_{name.upper()}={'true' if value else 'false'}" for name, value in wanted.items()}


def test_app_reports_the_flags_at_version(host, wanted):
    body = json.loads(host.check_output("curl -fsS http://127.0.0.1:%s/version", str(HOST["clinic_host_app_port"])))
    assert {name: body["flags"].get(name) for name in wanted} == wanted, body["flags"]


def test_app_unit_loads_the_flag_file_after_its_env_file(host):
    shown = host.check_output("systemctl show -p EnvironmentFiles %s", HOST["clinic_host_app_name"])
    assert shown.index("app.env") < shown.index(FLAG_FILE), shown


def test_lock_released(host):
    assert not host.file(GUARD["procedure_guard_lock_path"]).exists


def test_audit_trail_records_the_change_and_the_restart(host, wanted):
    lines = host.file(GUARD["procedure_guard_trail"]).content_string.split("\n")
    ok, _count, problem = audit_chain().verify_lines(lines)
    assert ok, problem
    ended = [
        json.loads(line)
        for line in lines
        if line.strip() and json.loads(line)["procedure"] == "feature_flag" and json.loads(line)["outcome"] != "started"
    ]
    # The converge wrote and restarted. The idempotence run (the same flags) skips the audit records
    # (tagged molecule-idempotence-notest); that it neither wrote nor restarted is molecule's own check.
    assert [record["outcome"] for record in ended] == ["ok"], ended
    (record,) = ended
    assert record["details"]["changed"] == sorted(wanted) and record["details"]["restarted"] is True
    assert record["details"]["flags"] == [f"{name}={str(value).lower()}" for name, value in sorted(wanted.items())]
