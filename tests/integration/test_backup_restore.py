"""Backup, restore and drills on real clinics: real dumps, a real encrypted repository, real data back.

Each test runs the collection's playbooks with ansible-playbook against the test lab and asserts
what is in PostgreSQL, in the restic repository and in the clinic's audit trail afterwards.
"""

from __future__ import annotations

import json

import pytest
from conftest import ok_in, play, psql, run_in, snapshots

CLINIC = "kinshasa"
PATIENTS = "SELECT string_agg(id || ':' || full_name, ',' ORDER BY id) FROM patients"


@pytest.fixture(scope="module")
def clinic(clinics):
    container = clinics[CLINIC]
    seed = psql(container, PATIENTS)
    code, output = play("backup.yml", CLINIC)
    assert code == 0, output
    yield container
    # Leave the clinic's data as the lab seeded it: other modules count the seed rows.
    ok_in(
        container,
        ["psql", "-d", "clinicdb", "-c", "DELETE FROM patients WHERE full_name = 'Round Trip'"],
        user="postgres",
    )
    assert psql(container, PATIENTS) == seed


def clinic_audit(container) -> list[dict]:
    code, out = run_in(container, ["cat", "/var/log/clinicops/audit.jsonl"])
    return [json.loads(line) for line in out.splitlines()] if code == 0 else []


def assert_unlocked_and_serving(container) -> None:
    assert run_in(container, ["test", "-e", "/var/lib/clinicops/clinic.lock"])[0] == 1, "the clinic lock was left"
    assert run_in(container, ["test", "-e", "/var/lib/clinicops/maintenance/on"])[0] == 1, "maintenance left on"
    health = json.loads(ok_in(container, ["curl", "-s", "http://127.0.0.1/health"]))
    assert health["status"] == "ok", health


def test_backup_makes_tagged_encrypted_snapshots_with_manifests(clinic):
    found = snapshots(clinic, "clinicops", f"clinic={CLINIC}")
    datasets = {tag.split("=", 1)[1] for snap in found for tag in snap["tags"] if tag.startswith("dataset=")}
    assert {"postgresql:clinicdb", "redis:redis", "files:/srv/clinic/shared/uploads"} <= datasets
    latest_db = max((s for s in found if "dataset=postgresql:clinicdb" in s["tags"]), key=lambda s: s["time"])
    set_dir = "/var/backups/clinicops/spool/postgresql-clinicdb"
    env = {"RESTIC_REPOSITORY": "/var/backups/clinicops/repo", "RESTIC_PASSWORD_FILE": "/etc/clinicops/restic-password"}
    manifest = json.loads(
        ok_in(clinic, ["restic", "--no-cache", "dump", latest_db["id"], f"{set_dir}/manifest.json"], env=env)
    )
    assert manifest["row_counts"]["patients"] == int(psql(clinic, "SELECT count(*) FROM patients"))
    assert manifest["schema_version"] == 1
    assert {f["name"] for f in manifest["files"]} == {"clinicdb.pgdump", "globals.sql"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"])
    # Encrypted at rest: no patient name appears in any file of the repository.
    name = psql(clinic, "SELECT full_name FROM patients ORDER BY id LIMIT 1")
    assert run_in(clinic, ["grep", "-rqF", name, "/var/backups/clinicops/repo"])[0] == 1
    assert ok_in(clinic, ["stat", "-c", "%a", "/etc/clinicops/restic-password"]).strip() == "600"
    assert_unlocked_and_serving(clinic)


def test_rows_written_backup_rows_changed_restore_rows_as_written(clinic):
    ok_in(
        clinic,
        [
            "psql",
            "-d",
            "clinicdb",
            "-c",
            "INSERT INTO patients (clinic_id, full_name, birth_date) VALUES ('kinshasa', 'Round Trip', '2001-02-03')",
        ],
        user="postgres",
    )
    written = psql(clinic, PATIENTS)
    code, output = play("backup.yml", CLINIC)
    assert code == 0, output

    ok_in(
        clinic,
        [
            "psql",
            "-d",
            "clinicdb",
            "-c",
            (
                "DELETE FROM appointments; UPDATE patients SET full_name = 'CHANGED';"
                " INSERT INTO patients (clinic_id, full_name, birth_date) VALUES ('x', 'Later', '1999-01-01')"
            ),
        ],
        user="postgres",
    )
    assert psql(clinic, PATIENTS) != written

    code, output = play("restore.yml", CLINIC, "-e", f"restore_confirm={CLINIC}")
    assert code == 0, output
    assert psql(clinic, PATIENTS) == written
    assert int(psql(clinic, "SELECT count(*) FROM appointments")) == 40
    kept = psql(
        clinic, "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE 'clinicdb__before_%'", "postgres"
    )
    assert kept, "the replaced database is kept aside"
    records = clinic_audit(clinic)
    restore = [r for r in records if r["procedure"] == "restore"]
    assert [r["outcome"] for r in restore[-2:]] == ["started", "ok"]
    assert restore[-1]["details"]["safety_snapshot_id"]
    assert_unlocked_and_serving(clinic)


def newest_regular_db_snapshot(container) -> dict:
    found = snapshots(container, "clinicops", f"clinic={CLINIC}", "dataset=postgresql:clinicdb", "kind=backup")
    return max(found, key=lambda snap: snap["time"])


def test_a_partial_restore_replaces_named_tables_only_and_a_retry_never_picks_the_safety_snapshot(clinic):
    code, output = play("backup.yml", CLINIC)
    assert code == 0, output
    backup = newest_regular_db_snapshot(clinic)
    written = psql(clinic, PATIENTS)
    psql(clinic, "UPDATE patients SET full_name = full_name || ' (edited)'")
    psql(clinic, "INSERT INTO audit_log (actor, action, detail) VALUES ('test', 'partial', 'kept-marker')")
    edited = psql(clinic, PATIENTS)

    code, output = play(
        "restore.yml",
        CLINIC,
        "-e",
        f"restore_confirm={CLINIC}",
        "-e",
        '{"restore_tables": ["patients; DROP TABLE audit_log"]}',
    )
    assert code != 0 and "restore_tables" in output and "Nothing was changed" in output, output

    # appointments references patients: restoring patients alone is refused in its transaction.
    code, output = play(
        "restore.yml", CLINIC, "-e", f"restore_confirm={CLINIC}", "-e", '{"restore_tables": ["patients"]}'
    )
    assert code != 0
    assert 'Table "appointments" references "patients"' in output and "rolled back" in output, output
    assert psql(clinic, PATIENTS) == edited

    # The failed attempt took a safety snapshot of the edited rows; "latest" still means the backup.
    code, output = play(
        "restore.yml",
        CLINIC,
        "-e",
        f"restore_confirm={CLINIC}",
        "-e",
        '{"restore_tables": ["patients", "appointments"]}',
    )
    assert code == 0, output
    assert psql(clinic, PATIENTS) == written
    assert psql(clinic, "SELECT count(*) FROM audit_log WHERE detail = 'kept-marker'") == "1", "other tables untouched"
    record = [r for r in clinic_audit(clinic) if r["procedure"] == "restore"][-1]
    assert record["outcome"] == "ok" and record["details"]["tables"] == "patients,appointments"
    assert record["details"]["restored_snapshot_id"] == backup["short_id"]
    safety = snapshots(clinic, "clinicops", f"clinic={CLINIC}", "dataset=postgresql:clinicdb", "kind=safety")
    assert record["details"]["safety_snapshot_id"] in {snap["short_id"] for snap in safety}
    assert_unlocked_and_serving(clinic)
    psql(clinic, "DELETE FROM audit_log WHERE detail = 'kept-marker'")


def test_restore_without_confirmation_is_refused_and_changes_nothing(clinic):
    before = psql(clinic, PATIENTS)
    count = len(snapshots(clinic))
    code, output = play("restore.yml", CLINIC)
    assert code != 0
    assert f"needs -e restore_confirm={CLINIC}; nothing was changed" in output
    assert psql(clinic, PATIENTS) == before
    assert len(snapshots(clinic)) == count  # not even a safety backup: nothing was started
    assert_unlocked_and_serving(clinic)


def test_a_missing_snapshot_is_named_and_nothing_is_touched(clinic):
    before = psql(clinic, PATIENTS)
    code, output = play("restore.yml", CLINIC, "-e", f"restore_confirm={CLINIC} restore_snapshot=deadbeef00")
    assert code != 0
    assert "no snapshot deadbeef00 in this data set" in output
    assert "nothing was restored" in output
    assert psql(clinic, PATIENTS) == before
    assert clinic_audit(clinic)[-1]["outcome"] == "failed"
    assert_unlocked_and_serving(clinic)


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ({"engine": "postgresql", "name": "clinicdb; rm -rf /"}, "is not a plain PostgreSQL identifier"),
        ({"engine": "postgresql", "name": "$(reboot)"}, "is not a plain PostgreSQL identifier"),
        ({"engine": "postgresql", "name": "nosuchdb"}, "cannot connect to database nosuchdb"),
        (
            {"engine": "mongodb", "name": "clinic"},
            "every data set needs an engine among postgresql, sqlite, redis, files",
        ),
    ],
)
def test_bad_data_sets_are_refused_and_leave_no_snapshot(clinic, dataset, message):
    count = len(snapshots(clinic))
    extra = json.dumps({"backup_datasets": [dataset]})
    code, output = play("backup.yml", CLINIC, "-e", extra)
    assert code != 0
    assert message in output
    assert len(snapshots(clinic)) == count
    assert_unlocked_and_serving(clinic)


def test_a_drill_restores_into_scratch_compares_and_drops_it(clinic):
    code, output = play("restore_drill.yml", CLINIC)
    assert code == 0, output
    databases = psql(clinic, "SELECT string_agg(datname, ',') FROM pg_database", "postgres").split(",")
    assert "clinicdb_drill" not in databases
    drill = [r for r in clinic_audit(clinic) if r["procedure"] == "restore_drill"][-1]
    assert drill["outcome"] == "ok"
    assert drill["details"]["verified"] is True
    assert int(drill["details"]["rows"]) > 0
    assert float(drill["details"]["backup_age_hours"]) < 1
    assert_unlocked_and_serving(clinic)


def test_a_full_spool_disk_fails_clearly_and_keeps_earlier_backups(clinic):
    count = len(snapshots(clinic))
    ok_in(clinic, ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", "/var/backups/clinicops/spool"])
    try:
        code, output = play("backup.yml", CLINIC)
    finally:
        ok_in(clinic, ["umount", "/var/backups/clinicops/spool"])
    assert code != 0
    assert "bytes free under /var/backups/clinicops/spool" in output
    assert "no snapshot was made and earlier backups are untouched" in output
    assert len(snapshots(clinic)) == count
    code, output = play("restore_drill.yml", CLINIC)
    assert code == 0, output


SFTP = (
    "ssh -i /etc/clinicops/offsite_ed25519 -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new"
    " -o UserKnownHostsFile=/etc/clinicops/offsite_known_hosts -o ConnectTimeout=10"
)


def offsite_snapshots(container, vault_address: str) -> list[dict]:
    env = {"RESTIC_PASSWORD_FILE": "/etc/clinicops/offsite-password"}
    argv = [
        "restic", "--no-cache", "-o", f"sftp.command={SFTP} -l clinicops-{CLINIC} {vault_address} -s sftp",
        "-r", f"sftp:clinicops-{CLINIC}@{vault_address}:/repo", "snapshots", "--json",
    ]  # fmt: skip
    return json.loads(ok_in(container, argv, env=env) or "[]") or []


@pytest.fixture
def vault(docker_client):
    from conftest import LAB

    container = docker_client.containers.get(f"clinicops-{LAB}-vault")
    yield container
    ok_in(container, ["systemctl", "start", "ssh"])


def test_backups_are_copied_off_site_and_each_clinic_sees_only_its_own(clinic, vault):
    # After a backup run, every local snapshot is off-site, including ones made since the last run
    # without an off-site step (the safety backup of a restore).
    code, output = play("backup.yml", CLINIC)
    assert code == 0, output
    local = {snap["id"] for snap in snapshots(clinic)}
    remote = offsite_snapshots(clinic, vault.name)
    assert local <= {snap.get("original") or snap["id"] for snap in remote}
    # The vault holds only ciphertext: no patient name appears in the clinic's off-site repository.
    name = psql(clinic, "SELECT full_name FROM patients ORDER BY id LIMIT 1")
    assert run_in(vault, ["grep", "-rqF", name, f"/srv/clinicops-offsite/clinicops-{CLINIC}"])[0] == 1
    # The clinic's key opens its own SFTP account only: no shell, no other clinic's account.
    _code, shell = run_in(clinic, [*SFTP.split(), "-l", f"clinicops-{CLINIC}", vault.name, "id"])
    assert "uid=" not in shell  # ForceCommand internal-sftp: the command never runs
    sftp_options = ["-o", "IdentityFile=/etc/clinicops/offsite_ed25519", "-o", "BatchMode=yes"]
    sftp_options += [
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "UserKnownHostsFile=/etc/clinicops/offsite_known_hosts",
    ]
    assert run_in(clinic, ["sftp", "-b", "/dev/null", *sftp_options, f"clinicops-{CLINIC}@{vault.name}"])[0] == 0
    code, _ = run_in(clinic, ["sftp", "-b", "/dev/null", *sftp_options, f"clinicops-lubumbashi@{vault.name}"])
    assert code != 0


def test_an_unreachable_vault_keeps_the_local_backup_prunes_nothing_and_is_retried(clinic, vault):
    ok_in(vault, ["systemctl", "stop", "ssh"])
    before = len(snapshots(clinic))
    code, output = play("backup.yml", CLINIC)
    assert code == 0, output
    assert f"WARNING {CLINIC}: off-site copy failed" in output
    assert "is unreachable" in output and "retried on the next run" in output
    assert len(snapshots(clinic)) == before + 3  # the local backup of every data set succeeded
    assert "Apply the retention policy" not in output  # nothing pruned while off-site lags behind
    record = clinic_audit(clinic)[-1]
    assert record["outcome"] == "ok" and record["details"]["offsite"].startswith("failed: ")

    ok_in(vault, ["systemctl", "start", "ssh"])
    code, output = play("backup.yml", CLINIC)
    assert code == 0, output
    assert clinic_audit(clinic)[-1]["details"]["offsite"] == "ok"
    local = {snap["id"] for snap in snapshots(clinic)}
    assert local <= {snap.get("original") or snap["id"] for snap in offsite_snapshots(clinic, vault.name)}


PACKS = ["find", "/var/backups/clinicops/repo/data", "-type", "f"]
BULK_AUDIT_ROWS = (
    "INSERT INTO audit_log (actor, action, detail) SELECT 'test', 'bulk', md5(g::text) FROM generate_series(1, 20000) g"
)
FLIP_MIDDLE_BYTES = (
    'size=$(stat -c %s "$1");'
    ' printf "\\377\\377\\377\\377" | dd of="$1" bs=1 seek=$((size / 2)) conv=notrunc status=none'
)
BULK_TABLE = (
    "CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 8) AS filler FROM generate_series(1, 400000) g;"
    " ALTER TABLE bulk OWNER TO clinic_app"
)
KILL_PG_DUMP = (
    "SELECT string_agg(pg_terminate_backend(pid)::text, ',') FROM pg_stat_activity"
    " WHERE application_name = 'pg_dump' AND state = 'active'"
)
DB_ONLY = json.dumps(
    {"backup_datasets": [{"engine": "postgresql", "name": "clinicdb", "user": "clinic_app"}], "backup_prune": False}
)  # no pruning: GFS keeps one snapshot per day, and these tests compare same-day snapshots


def db_snapshots(container) -> list[dict]:
    return sorted(snapshots(container, "dataset=postgresql:clinicdb"), key=lambda snap: snap["time"])


def test_a_corrupted_pack_is_refused_and_older_backups_still_restore(clinic):
    older = db_snapshots(clinic)[-1]["id"]
    before = set(ok_in(clinic, PACKS).split())
    ok_in(
        clinic,
        [
            "psql",
            "-d",
            "clinicdb",
            "-c",
            BULK_AUDIT_ROWS,
        ],
        user="postgres",
    )
    code, output = play("backup.yml", CLINIC, "-e", DB_ONLY)
    assert code == 0, output
    new_packs = sorted(set(ok_in(clinic, PACKS).split()) - before)
    assert new_packs, "the new backup wrote packs of its own"
    for path in new_packs:  # keep pristine copies on the clinic, outside the repository
        ok_in(clinic, ["cp", "-p", path, f"/var/tmp/{path.rsplit('/', 1)[1]}.pristine"])
    try:
        for path in new_packs:  # flip bytes in the middle of every new pack
            ok_in(
                clinic,
                [
                    "sh",
                    "-c",
                    FLIP_MIDDLE_BYTES,
                    "flip",
                    path,
                ],
            )
        code, output = play("restore_drill.yml", CLINIC)
        assert code != 0
        assert "restore of postgresql:clinicdb on kinshasa failed" in output
        assert "the live data was left as it was" in output
        code, output = play("restore_drill.yml", CLINIC, "-e", f"restore_snapshot={older}")
        assert code == 0, output
    finally:
        for path in new_packs:
            ok_in(clinic, ["mv", f"/var/tmp/{path.rsplit('/', 1)[1]}.pristine", path])
        ok_in(clinic, ["psql", "-d", "clinicdb", "-c", "DELETE FROM audit_log WHERE action = 'bulk'"], user="postgres")
    code, output = play("restore_drill.yml", CLINIC)
    assert code == 0, output
    assert_unlocked_and_serving(clinic)


def test_postgresql_killing_the_dump_fails_the_backup_without_a_snapshot(clinic):
    import time

    from conftest import COLLECTION_PLAYBOOKS, ansible_playbook

    ok_in(
        clinic,
        [
            "psql",
            "-d",
            "clinicdb",
            "-c",
            BULK_TABLE,
        ],
        user="postgres",
    )
    count = len(db_snapshots(clinic))
    try:
        run = ansible_playbook(COLLECTION_PLAYBOOKS / "backup.yml", "--limit", CLINIC, "-e", DB_ONLY)
        killed = ""
        deadline = time.monotonic() + 180
        while not killed and run.poll() is None and time.monotonic() < deadline:
            killed = psql(
                clinic,
                KILL_PG_DUMP,
                "postgres",
            )
            time.sleep(0.05)  # polling pg_stat_activity for the dump's backend to appear
        output, _ = run.communicate(timeout=300)
        assert killed.startswith("t"), "the test never saw pg_dump running"
        assert run.returncode != 0
        assert "backup of postgresql:clinicdb on kinshasa failed: pg_dump exited 1" in output
        assert "no snapshot was made and earlier backups are untouched" in output
        assert len(db_snapshots(clinic)) == count
        assert run_in(clinic, ["sh", "-c", "ls /var/backups/clinicops/spool | grep -q ."])[0] == 1, "spool left behind"
    finally:
        ok_in(clinic, ["psql", "-d", "clinicdb", "-c", "DROP TABLE IF EXISTS bulk"], user="postgres")
    code, output = play("restore_drill.yml", CLINIC)
    assert code == 0, output
    assert_unlocked_and_serving(clinic)
