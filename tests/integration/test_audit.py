"""The audit trail on the controller and on the clinic: chained, verifiable, free of secrets."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import PLAYBOOKS, ROOT, ansible_playbook, clinicops, health_json, lab_secret, ok_in


def test_a_run_is_recorded_per_clinic_and_the_chain_verifies(clinics, tmp_path: Path):
    home = {"CLINICOPS_HOME": str(tmp_path)}
    code, report = health_json(env=home)
    assert code == 0, report
    code, again = health_json(env=home)
    assert code == 0
    trail = tmp_path / "audit.jsonl"
    records = [json.loads(line) for line in trail.read_text().splitlines()]
    assert [(r["clinic"], r["procedure"], r["outcome"]) for r in records] == [
        ("kinshasa", "health", "ok"),
        ("lubumbashi", "health", "ok"),
    ] * 2
    assert {r["run_id"] for r in records} == {report["run_id"], again["run_id"]}
    assert all(r["who"]["user"] for r in records)

    verified = clinicops("audit", "verify", env=home)
    assert "4 records, chain intact" in verified.stdout

    lines = trail.read_text().splitlines()
    altered = json.loads(lines[1])
    altered["outcome"] = "failed"
    lines[1] = json.dumps(altered, sort_keys=True, separators=(",", ":"))
    trail.write_text("\n".join(lines) + "\n")
    broken = clinicops("audit", "verify", env=home, check=False)
    assert broken.returncode == 1
    assert "line 2 was altered" in broken.stdout


def test_no_secret_reaches_the_trail_or_the_run_directory(clinics, tmp_path: Path):
    secrets = [lab_secret(name) for name in clinics]
    code, _ = health_json(env={"CLINICOPS_HOME": str(tmp_path)})
    assert code == 0
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name == "audit.jsonl" for path in files)
    assert any("job_events" in path.parts for path in files)
    for path in files:
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a database password leaked into {path}"


def test_the_clinic_keeps_its_own_chained_record(clinics, tmp_path: Path):
    container = clinics["kinshasa"]
    trail = "/var/log/clinicops/test-audit.jsonl"
    ok_in(container, ["rm", "-f", trail])
    run = ansible_playbook(PLAYBOOKS / "audit_records.yml", "-e", f"target=kinshasa run_id=test-run trail={trail}")
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output
    lines = ok_in(container, ["cat", trail]).splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["outcome"] for r in records] == ["started", "ok"]
    assert records[1]["prev"] == records[0]["hash"]
    assert records[1]["details"] == {"db_password": "********", "release_id": "20260101T000000Z-1.0.0"}
    assert lab_secret("kinshasa") not in "\n".join(lines)
    assert ok_in(container, ["stat", "-c", "%a", trail]).strip() == "600"
    local = tmp_path / "clinic-audit.jsonl"
    local.write_text("\n".join(lines) + "\n")
    assert "2 records, chain intact" in clinicops("audit", "verify", "--trail", str(local)).stdout


def test_a_job_run_by_awx_is_recorded_under_its_job_id_and_user(clinics, tmp_path: Path):
    from clinicops.audit import CALLBACK

    trail = tmp_path / "audit.jsonl"
    env = {"ANSIBLE_CALLBACKS_ENABLED": CALLBACK, "CLINICOPS_AUDIT_TRAIL": str(trail)}
    extra = json.dumps({"awx_job_id": 4242, "awx_user_name": "ops-oncall", "awx_job_template_name": "health"})
    run = ansible_playbook(ROOT / "playbooks" / "health.yml", "--limit", "kinshasa", "-e", extra, env=env)
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    records = [json.loads(line) for line in trail.read_text().splitlines()]
    assert [(r["clinic"], r["run_id"], r["outcome"]) for r in records] == [("kinshasa", "awx-4242", "ok")]
    assert records[0]["who"]["awx_user_name"] == "ops-oncall" and records[0]["who"]["awx_job_id"] == "4242"
