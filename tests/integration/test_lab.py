"""`clinicops lab up|down`: real clinics with PostgreSQL, nginx, the app and systemd."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import LAB, LAB_CLINICS, clinicops, ok_in, psql, run_in

STACK_UNITS = ["clinic-app", "nginx", "postgresql@15-main", "redis-server", "ssh"]


def test_lab_up_starts_the_requested_clinics_and_a_vault(lab_up, clinics, docker_client):
    assert sorted(clinics) == ["kinshasa", "lubumbashi"]
    vaults = docker_client.containers.list(filters={"label": [f"clinicops.lab={LAB}", "clinicops.lab.role=vault"]})
    assert len(vaults) == 1
    assert "provisioned" in lab_up.stdout


def test_postgresql_accepts_connections_and_holds_the_seed_rows(clinics):
    for container in clinics.values():
        assert int(psql(container, "SELECT count(*) FROM patients")) == 24
        assert int(psql(container, "SELECT count(*) FROM appointments")) == 40
        assert int(psql(container, "SELECT count(*) FROM audit_log")) >= 1
        assert psql(container, "SELECT max(version) FROM schema_version") == "1"


def test_app_answers_health_through_nginx(clinics):
    for name, container in clinics.items():
        body = ok_in(container, ["curl", "-s", "-w", "\n%{http_code}", "http://127.0.0.1/health"])
        payload, status = body.rsplit("\n", 1)
        assert status == "200"
        health = json.loads(payload)
        assert health["status"] == "ok"
        assert health["version"] == "1.0.0"
        assert health["clinic_id"] == name
        server = ok_in(container, ["curl", "-s", "-o", "/dev/null", "-D", "-", "http://127.0.0.1/health"])
        assert "Server: nginx" in server


def test_systemd_reports_the_stack_units_active(clinics):
    for container in clinics.values():
        code, out = run_in(container, ["systemctl", "is-active", *STACK_UNITS])
        assert code == 0, out
        assert out.split() == ["active"] * len(STACK_UNITS)
        assert ok_in(container, ["systemctl", "is-system-running"]).strip() == "running"


def test_each_clinic_runs_in_its_own_time_zone(clinics, inventory):
    zones = set()
    for name, container in clinics.items():
        facts = yaml.safe_load((inventory / "host_vars" / name / "main.yml").read_text())
        assert ok_in(container, ["cat", "/etc/timezone"]).strip() == facts["clinic_timezone"]
        assert ok_in(container, ["readlink", "/etc/localtime"]).strip().endswith(facts["clinic_timezone"])
        zones.add(facts["clinic_timezone"])
    assert len(zones) == LAB_CLINICS


def test_inventory_holds_groups_only_and_encrypted_secrets(inventory):
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    clinics_group = hosts["all"]["children"]["clinics"]
    assert set(clinics_group) == {"children"}
    assert set(clinics_group["children"]) == {"region_africa"}
    for name in ("kinshasa", "lubumbashi"):
        secret = inventory / "host_vars" / name / "vault.yml"
        assert secret.read_text().startswith("$ANSIBLE_VAULT;")
        assert secret.stat().st_mode & 0o777 == 0o600
    assert (inventory / ".vault-pass").stat().st_mode & 0o777 == 0o600


def test_second_lab_up_recreates_nothing(lab_up, clinics, docker_client):
    before = {c.name: c.id for c in docker_client.containers.list(filters={"label": f"clinicops.lab={LAB}"})}
    again = clinicops("lab", "up", "--name", LAB, "--clinics", str(LAB_CLINICS))
    after = {c.name: c.id for c in docker_client.containers.list(filters={"label": f"clinicops.lab={LAB}"})}
    assert after == before
    lines = [line.split(None, 1) for line in again.stdout.splitlines() if not line.startswith("inventory:")]
    assert {host: action for host, action in lines} == {
        "kinshasa": "kept",
        "lubumbashi": "kept",
        "vault": "kept",
    }


def test_health_survey_reports_every_clinic_healthy(clinics):
    from conftest import health_json

    code, report = health_json()
    assert code == 0, report
    rows = {row["clinic"]: row for row in report["clinics"]}
    assert set(rows) == set(clinics)
    for row in rows.values():
        assert row["outcome"] == "healthy"
        assert row["version"] == "1.0.0"
        assert row["database"] == "up"
        assert row["rows"] == 64
        assert row["disk_free_bytes"] > 0


def test_health_survey_names_a_stopped_postgresql(clinics):
    from conftest import health_json

    broken = clinics["lubumbashi"]
    ok_in(broken, ["systemctl", "stop", "postgresql@15-main"])
    try:
        code, report = health_json()
    finally:
        ok_in(broken, ["systemctl", "start", "postgresql@15-main"])
    assert code == 1
    rows = {row["clinic"]: row for row in report["clinics"]}
    assert rows["kinshasa"]["outcome"] == "healthy"
    assert rows["lubumbashi"]["outcome"] == "unhealthy"
    assert rows["lubumbashi"]["database"] == "down"
    assert "postgresql" in rows["lubumbashi"]["summary"]
    assert "systemd postgresql@15-main: inactive" in rows["lubumbashi"]["summary"]


@pytest.mark.lab_teardown
def test_lab_down_removes_only_what_the_lab_created(lab_up, docker_client, inventory):
    image = clinicops("lab", "image").stdout.strip()
    bystander = docker_client.containers.run(
        image, ["sleep", "300"], detach=True, labels={"clinicops.test": "bystander"}
    )
    try:
        down = clinicops("lab", "down", "--name", LAB)
        assert "kinshasa" in down.stdout
        assert docker_client.containers.list(all=True, filters={"label": f"clinicops.lab={LAB}"}) == []
        assert docker_client.networks.list(filters={"label": f"clinicops.lab={LAB}"}) == []
        assert not inventory.exists()
        bystander.reload()
        assert bystander.status == "running"
    finally:
        bystander.remove(force=True)
