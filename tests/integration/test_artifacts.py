"""The fixture app's release artifacts behave as the later deploy tests need them to.

Each artifact is unpacked in a lab clinic and run against a scratch database there: v1 creates
the schema, v2's migration applies on v1's schema, the broken-migration variant fails halfway and
leaves the schema as it was, and the broken-health variant starts but fails its health check.
"""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest
from conftest import ROOT, ok_in, psql, run_in

SCRATCH_DB = "artifact_probe"
APPOINTMENT_COLUMNS = (
    "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns"
    " WHERE table_name = 'appointments'"
)
APPOINTMENT_COLUMNS = (
    "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns"
    " WHERE table_name = 'appointments'"
)
PG_ENV = {"PGHOST": "/var/run/postgresql", "PGUSER": "postgres", "PGDATABASE": SCRATCH_DB}


@pytest.fixture(scope="module")
def clinic(clinics):
    container = clinics["kinshasa"]
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for path in sorted((ROOT / "build" / "artifacts").glob("clinic-app-*.tar.gz")):
            tar.add(path, arcname=path.name)
    ok_in(container, ["mkdir", "-p", "/tmp/artifacts"])
    container.put_archive("/tmp/artifacts", archive.getvalue())
    ok_in(container, ["dropdb", "--if-exists", SCRATCH_DB], user="postgres")
    ok_in(container, ["createdb", SCRATCH_DB], user="postgres")
    yield container
    ok_in(container, ["dropdb", "--if-exists", SCRATCH_DB], user="postgres")
    ok_in(container, ["rm", "-rf", "/tmp/artifacts", "/tmp/releases"])


def unpack(container, version: str) -> str:
    target = f"/tmp/releases/{version}"
    ok_in(container, ["mkdir", "-p", target])
    ok_in(container, ["tar", "-xzf", f"/tmp/artifacts/clinic-app-{version}.tar.gz", "-C", target])
    ok_in(container, ["chmod", "-R", "a+rX", "/tmp/releases"])
    return target


def migrate(container, release: str) -> tuple[int, str]:
    return run_in(container, ["python3", f"{release}/clinic_app.py", "migrate"], env=PG_ENV, user="postgres")


def test_every_artifact_unpacks_with_its_release_file(clinic):
    for version in ("1.0.0", "2.0.0", "2.1.0-broken-health", "2.2.0-broken-migration"):
        release = unpack(clinic, version)
        info = json.loads(ok_in(clinic, ["cat", f"{release}/RELEASE.json"]))
        assert info["version"] == version
        assert ok_in(clinic, ["python3", f"{release}/clinic_app.py", "--help"]).startswith("usage")


def test_v1_creates_the_schema_and_v2_migrates_it(clinic):
    code, out = migrate(clinic, unpack(clinic, "1.0.0"))
    assert code == 0, out
    assert json.loads(out)["applied"] == ["0001_init.sql"]
    ok_in(
        clinic,
        [
            "psql",
            "-d",
            SCRATCH_DB,
            "-c",
            "INSERT INTO patients (clinic_id, full_name, birth_date) VALUES ('k', 'A B', '1990-01-01')",
        ],
        user="postgres",
    )

    code, out = migrate(clinic, unpack(clinic, "2.0.0"))
    assert code == 0, out
    assert json.loads(out)["applied"] == ["0002_patient_email.sql"]
    assert psql(clinic, "SELECT max(version) FROM schema_version", SCRATCH_DB) == "2"
    assert psql(clinic, "SELECT count(email) || '/' || count(*) FROM patients", SCRATCH_DB) == "0/1"

    code, out = migrate(clinic, "/tmp/releases/2.0.0")
    assert (code, json.loads(out)["applied"]) == (0, [])


def test_broken_migration_fails_halfway_and_changes_nothing(clinic):
    before = psql(clinic, APPOINTMENT_COLUMNS, SCRATCH_DB)
    code, out = migrate(clinic, unpack(clinic, "2.2.0-broken-migration"))
    assert code == 1
    error = json.loads(out.strip().splitlines()[-1])
    assert error["failed"] == "0003_broken_halfway.sql"
    assert "rooms" in error["error"]
    assert psql(clinic, "SELECT max(version) FROM schema_version", SCRATCH_DB) == "2"
    after = psql(clinic, APPOINTMENT_COLUMNS, SCRATCH_DB)
    assert after == before
    assert "room" not in after.split(",")


def test_broken_health_starts_but_fails_its_health_check(clinic):
    release = unpack(clinic, "2.1.0-broken-health")
    env = [f"--setenv={key}={value}" for key, value in {**PG_ENV, "APP_PORT": "8099"}.items()]
    ok_in(
        clinic,
        [
            "systemd-run",
            "--unit=artifact-probe-health",
            "--uid=postgres",
            *env,
            "python3",
            f"{release}/clinic_app.py",
            "serve",
        ],
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            code, live = run_in(clinic, ["curl", "-s", "-w", "\n%{http_code}", "http://127.0.0.1:8099/health/live"])
            if code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # polling a port that is not listening yet
        assert live.endswith("200"), live
        body = ok_in(clinic, ["curl", "-s", "-w", "\n%{http_code}", "http://127.0.0.1:8099/health"])
        payload, status = body.rsplit("\n", 1)
        assert status == "503"
        assert json.loads(payload)["reason"] == "fixture fault: health"
    finally:
        run_in(clinic, ["systemctl", "stop", "artifact-probe-health"])
