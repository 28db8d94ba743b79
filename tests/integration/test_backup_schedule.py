"""The nightly backup a clinic runs by itself (systemd timer), for nights the controller cannot reach it.

The role installs the timer; the tests then fire the job the way systemd does (``systemctl start``)
and assert that it made the same backup as the controller's run: tagged, verified snapshots with
manifests, the audit trail, the lock respected, and a drill that restores what it stored.
"""

from __future__ import annotations

import json

import pytest
from conftest import PLAYBOOKS, ansible_playbook, ok_in, play, psql, restic, run_in, snapshots

CLINIC = "lubumbashi"
ZONE = "Africa/Lubumbashi"
NIGHTLY_ROW = "Nightly Timer Row"
JOB = "ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.scheduled_backup"


@pytest.fixture(scope="module")
def clinic(clinics):
    container = clinics[CLINIC]
    code, output = play("backup.yml", CLINIC, "-e", "backup_schedule_enabled=true")
    assert code == 0, output
    yield container
    ok_in(
        container,
        ["psql", "-d", "clinicdb", "-c", f"DELETE FROM patients WHERE full_name = '{NIGHTLY_ROW}'"],
        user="postgres",
    )
    run_in(container, ["rm", "-f", "/var/lib/clinicops/clinic.lock"])


def timer_property(container, name: str) -> str:
    return ok_in(container, ["systemctl", "show", "clinicops-backup.timer", "-p", name, "--value"]).strip()


def timer_snapshots(container) -> list[dict]:
    return snapshots(container, "clinicops", f"clinic={CLINIC}", "trigger=timer")


def audit_records(container) -> list[dict]:
    return [json.loads(line) for line in ok_in(container, ["cat", "/var/log/clinicops/audit.jsonl"]).splitlines()]


def test_the_timer_fires_at_two_in_the_morning_clinic_time(clinic):
    assert ok_in(clinic, ["systemctl", "is-enabled", "clinicops-backup.timer"]).strip() == "enabled"
    assert f"*-*-* 02:00:00 {ZONE}" in timer_property(clinic, "TimersCalendar")
    assert timer_property(clinic, "Persistent") == "yes"
    config = json.loads(ok_in(clinic, ["cat", "/etc/clinicops/backup-job.json"]))
    assert config["clinic"] == CLINIC and config["offsite"]["repository"].startswith("sftp:")
    # Paths only: the job's configuration holds no password.
    password = ok_in(clinic, ["cat", "/etc/clinicops/restic-password"]).strip()
    assert password not in json.dumps(config)
    assert ok_in(clinic, ["stat", "-c", "%a %U", "/etc/clinicops/backup-job.json"]).strip() == "600 root"


def test_the_nightly_job_makes_the_same_verified_backup_and_it_restores(clinic):
    before = {snap["id"] for snap in timer_snapshots(clinic)}
    psql(
        clinic,
        f"INSERT INTO patients (clinic_id, full_name, birth_date) VALUES ('{CLINIC}', '{NIGHTLY_ROW}', '2002-03-04')",
    )
    patients = int(psql(clinic, "SELECT count(*) FROM patients"))

    ok_in(clinic, ["systemctl", "start", "clinicops-backup.service"])  # returns when the oneshot job ends

    made = [snap for snap in timer_snapshots(clinic) if snap["id"] not in before]
    datasets = {tag for snap in made for tag in snap["tags"] if tag.startswith("dataset=")}
    assert datasets == {
        "dataset=postgresql:clinicdb",
        "dataset=redis:redis",
        "dataset=files:/srv/clinic/shared/uploads",
    }
    db_snapshot = next(snap for snap in made if "dataset=postgresql:clinicdb" in snap["tags"])
    manifest = json.loads(
        restic(clinic, "dump", db_snapshot["id"], "/var/backups/clinicops/spool/postgresql-clinicdb/manifest.json")
    )
    assert manifest["row_counts"]["patients"] == patients
    status = json.loads(ok_in(clinic, ["cat", "/var/lib/clinicops/backup-last.json"]))
    assert status["outcome"] == "ok" and status["offsite"] == "ok", status
    assert status["datasets"]["postgresql:clinicdb"]["snapshot_id"] == db_snapshot["short_id"]
    trail = [r for r in audit_records(clinic) if r["run_id"] == status["run_id"]]
    assert [r["outcome"] for r in trail] == ["started", "ok"] and trail[0]["who"] == "systemd-timer"
    assert run_in(clinic, ["test", "-e", "/var/lib/clinicops/clinic.lock"])[0] == 1, "the job left the clinic lock"
    assert run_in(clinic, ["ls", "-A", "/var/backups/clinicops/spool"])[1].strip() == "", "spool left behind"

    # The drill restores the newest backup (the one the timer made) and checks it against its manifest.
    code, output = play("restore_drill.yml", CLINIC)
    assert code == 0, output
    drill = [r for r in audit_records(clinic) if r["procedure"] == "restore_drill"][-1]
    assert drill["outcome"] == "ok", drill


def test_the_nightly_job_waits_for_a_held_lock_then_gives_up_without_touching_it(clinic):
    holder = {
        "owner": "deploy-run-1",
        "run_id": "deploy-run-1",
        "operation": "deploy",
        "controller": "ops-1",
        "user": "operator",
        "started": "2026-01-01T00:00:00Z",
        "expires": "2999-01-01T00:00:00Z",
    }
    ok_in(clinic, ["sh", "-c", f"echo '{json.dumps(holder)}' > /var/lib/clinicops/clinic.lock"])
    config = json.loads(ok_in(clinic, ["cat", "/etc/clinicops/backup-job.json"]))
    config["lock_wait"] = 1
    ok_in(clinic, ["sh", "-c", f"echo '{json.dumps(config)}' > /tmp/job-short-wait.json"])
    before = len(timer_snapshots(clinic))
    try:
        code, out = run_in(
            clinic, ["env", "PYTHONPATH=/usr/local/lib/clinicops", "python3", "-m", JOB, "/tmp/job-short-wait.json"]
        )
        assert code == 75, out
        assert "deploy-run-1" in out
        status = json.loads(ok_in(clinic, ["cat", "/var/lib/clinicops/backup-last.json"]))
        assert status["outcome"] == "skipped" and "deploy-run-1" in status["reason"], status
        assert len(timer_snapshots(clinic)) == before
        assert json.loads(ok_in(clinic, ["cat", "/var/lib/clinicops/clinic.lock"]))["owner"] == "deploy-run-1"
        assert audit_records(clinic)[-1]["outcome"] == "skipped"
    finally:
        run_in(clinic, ["rm", "-f", "/var/lib/clinicops/clinic.lock", "/tmp/job-short-wait.json"])


@pytest.mark.parametrize(
    ("variable", "value"),
    [("backup_schedule_time", "25:00"), ("backup_schedule_timezone", "Mars/Olympus_Mons")],
)
def test_a_bad_schedule_is_refused_before_anything_changes(clinic, variable, value):
    calendar = timer_property(clinic, "TimersCalendar")
    count = len(snapshots(clinic, "clinicops", f"clinic={CLINIC}"))
    code, output = play("backup.yml", CLINIC, "-e", "backup_schedule_enabled=true", "-e", f"{variable}={value}")
    assert code != 0
    assert value in output and "no timer was installed or changed" in output, output
    assert len(snapshots(clinic, "clinicops", f"clinic={CLINIC}")) == count
    assert timer_property(clinic, "TimersCalendar") == calendar
    assert run_in(clinic, ["test", "-e", "/var/lib/clinicops/clinic.lock"])[0] == 1


def test_turning_the_schedule_off_removes_the_timer(clinic):
    code, output = play("backup_schedule.yml", CLINIC, "-e", "backup_schedule_enabled=false")
    assert code == 0, output
    assert run_in(clinic, ["systemctl", "is-enabled", "clinicops-backup.timer"])[0] != 0
    for path in (
        "/etc/systemd/system/clinicops-backup.timer",
        "/etc/systemd/system/clinicops-backup.service",
        "/etc/clinicops/backup-job.json",
    ):
        assert run_in(clinic, ["test", "-e", path])[0] == 1, path
    # Turning it back on through the schedule-only playbook installs it without a backup run.
    count = len(snapshots(clinic, "clinicops", f"clinic={CLINIC}"))
    code, output = play("backup_schedule.yml", CLINIC, "-e", "backup_schedule_enabled=true")
    assert code == 0, output
    assert ok_in(clinic, ["systemctl", "is-enabled", "clinicops-backup.timer"]).strip() == "enabled"
    assert len(snapshots(clinic, "clinicops", f"clinic={CLINIC}")) == count


def test_retention_in_check_mode_lists_exactly_what_it_would_remove_and_removes_nothing(clinic, tmp_path):
    """Two backups of the same day: the GFS policy keeps the newest; the dry run names the older one."""
    db_only = json.dumps(
        {"backup_prune": False, "backup_datasets": [{"engine": "postgresql", "name": "clinicdb", "user": "clinic_app"}]}
    )
    for _ in range(2):
        code, output = play("backup.yml", CLINIC, "-e", db_only)
        assert code == 0, output
    tags = ("clinicops", f"clinic={CLINIC}", "dataset=postgresql:clinicdb", "kind=backup")
    before = sorted(snapshots(clinic, *tags), key=lambda snap: snap["time"])
    assert len(before) >= 2
    expected = {snap["short_id"] for snap in before[:-1] if snap["time"][:10] == before[-1]["time"][:10]}
    assert expected, "the older backup of the same day is what the daily rule drops"
    out = tmp_path / "dry-run.json"
    run = ansible_playbook(
        PLAYBOOKS / "retention_dry_run.yml", "-e", f"target={CLINIC} fresh={before[-1]['short_id']} out={out}"
    )
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    answer = json.loads(out.read_text())
    assert set(answer["removed"]) == expected
    assert answer["restic_flags"] == ["--keep-daily", "30", "--keep-weekly", "12", "--keep-monthly", "12"]
    assert sorted(snap["id"] for snap in snapshots(clinic, *tags)) == sorted(snap["id"] for snap in before)
