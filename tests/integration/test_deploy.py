"""Deploy and rollback on real clinics: release layout, waves, health gate, automatic rollback, data.

The tests run in file order on the test lab's two clinics (kinshasa is the canary: first in the
inventory). The last test rolls both clinics back to the bootstrap release and restores the data of
their pre-deploy backups, so the lab ends as it started (schema 1) for the other test modules.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from conftest import COLLECTION_PLAYBOOKS, ROOT, ansible_playbook, ok_in, play, psql, run_in, snapshots

BOOTSTRAP = "20260101T000000Z-1.0.0"
RELEASE = "itest-2.0.0"
ARTIFACTS = ROOT / "build" / "artifacts"
CLINICS = ("kinshasa", "lubumbashi")


def artifact(version: str) -> list[str]:
    return ["-e", f"deploy_version={version}", "-e", f"deploy_artifact={ARTIFACTS / f'clinic-app-{version}.tar.gz'}"]


def current(container) -> str:
    return os.path.basename(ok_in(container, ["readlink", "/srv/clinic/current"]).strip())


def releases(container) -> dict[str, dict]:
    log = json.loads(ok_in(container, ["cat", "/srv/clinic/releases.json"]))
    return {entry["id"]: entry for entry in log["releases"]}


def served(container) -> dict:
    return json.loads(ok_in(container, ["curl", "-s", "http://127.0.0.1/health"]))


def audit(container) -> list[dict]:
    return [json.loads(line) for line in ok_in(container, ["cat", "/var/log/clinicops/audit.jsonl"]).splitlines()]


def unlocked(container) -> bool:
    return run_in(container, ["test", "-e", "/var/lib/clinicops/clinic.lock"])[0] == 1


def address(container) -> str:
    container.reload()
    return next(iter(container.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]


class Poller(threading.Thread):
    """A client asking /health every 100 ms through nginx, as a monitor or a browser would."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.seen, self.stop = url, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=3) as answer:
                    self.seen.append((answer.status, ""))
            except urllib.error.HTTPError as exc:
                self.seen.append((exc.code, exc.read().decode(errors="replace")[:200]))
            except OSError as exc:
                self.seen.append(("error", str(exc)))
            self.stop.wait(0.1)


@pytest.fixture(scope="module")
def fleet(clinics):
    yield {name: clinics[name] for name in CLINICS}
    for name in CLINICS:  # safety net when a test failed half-way; the last test does this for real
        if current(clinics[name]) != BOOTSTRAP:
            play("rollback.yml", name, "-e", f"rollback_to={BOOTSTRAP}", "-e", "rollback_force=true")
        run_in(clinics[name], ["rm", "-f", "/var/lib/clinicops/clinic.lock"])


@pytest.mark.parametrize("release_id", ["../../etc", "a/b", "has space", "x..y"])
def test_a_bad_release_id_is_refused_before_anything_changes(fleet, release_id):
    before = {name: ok_in(c, ["ls", "/srv/clinic/releases"]) for name, c in fleet.items()}
    code, output = play(
        "deploy.yml", "clinics", *artifact("2.0.0"), "-e", json.dumps({"deploy_release_id": release_id})
    )
    assert code != 0
    assert json.dumps(release_id) in output and "Nothing was changed" in output, output
    for name, container in fleet.items():
        assert ok_in(container, ["ls", "/srv/clinic/releases"]) == before[name]
        assert current(container) == BOOTSTRAP and unlocked(container)


def test_a_missing_or_mismatched_artifact_is_refused_and_the_current_release_keeps_serving(fleet):
    code, output = play(
        "deploy.yml", "kinshasa", "-e", "deploy_version=2.0.0", "-e", "deploy_artifact=/nonexistent.tar.gz"
    )
    assert code != 0 and "/nonexistent.tar.gz does not exist on the controller" in output, output

    wrong = "sha256:" + "0" * 64
    code, output = play(
        "deploy.yml",
        "kinshasa",
        *artifact("2.0.0"),
        "-e",
        f"deploy_artifact_checksum={wrong}",
        "-e",
        "deploy_release_id=itest-wrong-sum",
    )
    assert code != 0 and f"expected {wrong}" in output and "was not activated" in output, output
    kinshasa = fleet["kinshasa"]
    assert current(kinshasa) == BOOTSTRAP and served(kinshasa)["version"] == "1.0.0"
    assert releases(kinshasa)["itest-wrong-sum"]["status"] == "unfinished"
    assert unlocked(kinshasa)


def test_a_good_deploy_goes_out_in_waves_with_one_release_id_and_no_client_sees_an_error(fleet):
    pollers = [Poller(f"http://{address(c)}/health") for c in fleet.values()]
    for poller in pollers:
        poller.start()
    try:
        code, output = play("deploy.yml", "clinics", *artifact("2.0.0"), "-e", f"deploy_release_id={RELEASE}")
    finally:
        for poller in pollers:
            poller.stop.set()
            poller.join()
    assert code == 0, output
    for poller in pollers:
        statuses = {status for status, _body in poller.seen}
        assert statuses <= {200, 503}, [seen for seen in poller.seen if seen[0] not in (200, 503)][:5]
        assert all("maintenance" in body for status, body in poller.seen if status == 503)
        assert len(poller.seen) > 50  # the client really polled during the deploy
    for container in fleet.values():
        assert current(container) == RELEASE
        health = served(container)
        assert (health["version"], health["release"], health["schema_version"]) == ("2.0.0", RELEASE, 2)
        entry = releases(container)[RELEASE]
        assert entry["status"] == "active" and entry["backup"]["postgresql:clinicdb"]
        assert releases(container)[BOOTSTRAP]["status"] == "inactive"
        bound = snapshots(container, "clinicops", f"release={RELEASE}")
        assert [snap["short_id"] for snap in bound] == [entry["backup"]["postgresql:clinicdb"]]
        record = audit(container)[-1]
        assert (record["procedure"], record["outcome"], record["details"]["release_id"]) == ("deploy", "ok", RELEASE)
        assert unlocked(container)
        assert run_in(container, ["test", "-e", f"/srv/clinic/releases/{RELEASE}/.clinicops-unfinished"])[0] == 1


def test_deploying_the_same_release_again_changes_nothing(fleet):
    logs = {name: ok_in(c, ["cat", "/srv/clinic/releases.json"]) for name, c in fleet.items()}
    count = {name: len(snapshots(c)) for name, c in fleet.items()}
    code, output = play("deploy.yml", "clinics", *artifact("2.0.0"), "-e", f"deploy_release_id={RELEASE}")
    assert code == 0, output
    assert output.count("is already active") == 2
    for name, container in fleet.items():
        assert ok_in(container, ["cat", "/srv/clinic/releases.json"]) == logs[name]
        assert len(snapshots(container)) == count[name], "no pre-deploy backup for a release already active"


def test_a_canary_failing_its_health_gate_rolls_back_and_stops_the_later_waves(fleet):
    kinshasa, lubumbashi = fleet["kinshasa"], fleet["lubumbashi"]
    code, output = play(
        "deploy.yml",
        "clinics",
        *artifact("2.1.0-broken-health"),
        "-e",
        "deploy_release_id=itest-broken",
        "-e",
        "deploy_health_deadline=8",
    )
    assert code != 0
    assert (
        f"failed its health gate on kinshasa: unhealthy: http app: HTTP 503 (expected 200); rolled back "
        f"automatically to {RELEASE}, which is healthy" in output
    ), output
    assert current(kinshasa) == RELEASE and served(kinshasa)["release"] == RELEASE
    assert releases(kinshasa)["itest-broken"]["status"] == "bad"
    assert "health gate" in ok_in(kinshasa, ["cat", "/srv/clinic/releases/itest-broken/.clinicops-bad"])
    assert audit(kinshasa)[-1]["outcome"] == "rolled_back"
    # The second wave never started: lubumbashi has no trace of the release.
    assert run_in(lubumbashi, ["test", "-e", "/srv/clinic/releases/itest-broken"])[0] == 1
    assert current(lubumbashi) == RELEASE
    assert unlocked(kinshasa) and unlocked(lubumbashi)


def test_a_failing_migration_never_activates_the_release_and_leaves_the_data_intact(fleet):
    kinshasa = fleet["kinshasa"]
    patients = psql(kinshasa, "SELECT count(*) FROM patients")
    code, output = play(
        "deploy.yml", "kinshasa", *artifact("2.2.0-broken-migration"), "-e", "deploy_release_id=itest-badmig"
    )
    assert code != 0
    assert "migration of 2.2.0-broken-migration (itest-badmig) failed on kinshasa" in output, output
    assert f"never activated, release {RELEASE} keeps serving" in output
    assert current(kinshasa) == RELEASE and served(kinshasa)["status"] == "ok"
    assert psql(kinshasa, "SELECT max(version) FROM schema_version") == "2"
    assert psql(kinshasa, "SELECT count(*) FROM patients") == patients
    assert releases(kinshasa)["itest-badmig"]["status"] == "bad"
    assert run_in(kinshasa, ["test", "-e", "/var/lib/clinicops/maintenance/on"])[0] == 1, "maintenance left on"
    assert unlocked(kinshasa)


def test_a_deploy_is_refused_while_a_backup_holds_the_clinic_lock(fleet):
    kinshasa = fleet["kinshasa"]
    holder = {
        "owner": "nightly-1",
        "run_id": "nightly-1",
        "operation": "backup",
        "controller": "kinshasa",
        "user": "systemd-timer",
        "started": "2026-01-01T00:00:00Z",
        "expires": "2999-01-01T00:00:00Z",
    }
    ok_in(kinshasa, ["sh", "-c", f"echo '{json.dumps(holder)}' > /var/lib/clinicops/clinic.lock"])
    try:
        code, output = play("deploy.yml", "kinshasa", *artifact("1.0.0"), "-e", "deploy_release_id=itest-locked")
        assert code != 0
        assert "locked by run nightly-1 (operation backup" in output and "nothing was changed" in output, output
        assert run_in(kinshasa, ["test", "-e", "/srv/clinic/releases/itest-locked"])[0] == 1
        assert current(kinshasa) == RELEASE
    finally:
        run_in(kinshasa, ["rm", "-f", "/var/lib/clinicops/clinic.lock"])


def test_a_git_ref_and_a_url_with_checksum_deploy_too(fleet, tmp_path):
    kinshasa = fleet["kinshasa"]
    # A repository on the clinic holding the app's files, tagged (a stand-in for the app's git server).
    ok_in(
        kinshasa,
        [
            "sh",
            "-c",
            (
                "rm -rf /tmp/appsrc /srv/git && mkdir -p /tmp/appsrc /srv/git"
                " && tar -xzf /var/cache/clinicops/artifacts/clinic-app-2.0.0.tar.gz -C /tmp/appsrc"
                " && git -C /tmp/appsrc init -q && git -C /tmp/appsrc add -A"
                " && git -C /tmp/appsrc -c user.email=ci@clinicops.invalid -c user.name=ci commit -qm app"
                " && git -C /tmp/appsrc tag v2-git && git clone -q --bare /tmp/appsrc /srv/git/clinic-app.git"
            ),
        ],
    )
    code, output = play(
        "deploy.yml",
        "kinshasa",
        "-e",
        "deploy_version=2.0.0-git",
        "-e",
        "deploy_release_id=itest-git",
        "-e",
        "deploy_git_repo=/srv/git/clinic-app.git",
        "-e",
        "deploy_git_ref=v2-git",
    )
    assert code == 0, output
    assert current(kinshasa) == "itest-git" and served(kinshasa)["release"] == "itest-git"
    assert run_in(kinshasa, ["test", "-e", "/srv/clinic/releases/itest-git/.git"])[0] == 1, "no repository in a release"
    mirrors = ok_in(kinshasa, ["ls", "/var/cache/clinicops/git"]).split()
    assert len(mirrors) == 1 and mirrors[0].endswith(".git")

    # A URL with its checksum: the artifacts served over HTTP from the controller.
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "--bind", "0.0.0.0", "--directory", str(ARTIFACTS), "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = int(server.stdout.readline().split(" port ")[1].split()[0])
        kinshasa.reload()
        gateway = next(iter(kinshasa.attrs["NetworkSettings"]["Networks"].values()))["Gateway"]
        url = f"http://{gateway}:{port}/clinic-app-1.0.0.tar.gz"
        checksum = "sha256:" + (ARTIFACTS / "clinic-app-1.0.0.tar.gz.sha256").read_text().split()[0]
        wrong = "sha256:" + "1" * 64
        code, output = play(
            "deploy.yml",
            "kinshasa",
            "-e",
            "deploy_version=1.0.0",
            "-e",
            "deploy_release_id=itest-badurl",
            "-e",
            f"deploy_artifact_url={url}",
            "-e",
            f"deploy_artifact_checksum={wrong}",
        )
        assert code != 0 and "did not match" in output, output
        assert current(kinshasa) == "itest-git"
        code, output = play(
            "deploy.yml",
            "kinshasa",
            "-e",
            "deploy_version=1.0.0",
            "-e",
            "deploy_release_id=itest-url",
            "-e",
            f"deploy_artifact_url={url}",
            "-e",
            f"deploy_artifact_checksum={checksum}",
        )
        assert code == 0, output
        assert current(kinshasa) == "itest-url" and served(kinshasa)["version"] == "1.0.0"
    finally:
        server.terminate()
        server.wait()
    code, output = play("rollback.yml", "kinshasa", "-e", f"rollback_to={RELEASE}")
    assert code == 0, output
    assert current(kinshasa) == RELEASE and unlocked(kinshasa)


def test_a_deploy_whose_controller_was_killed_converges_when_the_run_is_resumed(fleet):
    lubumbashi = fleet["lubumbashi"]
    run_id = "itest-killed-run"
    args = [*artifact("1.0.0"), "-e", "deploy_release_id=itest-resumed", "-e", f"clinicops_run_id={run_id}"]
    run = ansible_playbook(COLLECTION_PLAYBOOKS / "deploy.yml", "--limit", "lubumbashi", *args)
    deadline = time.monotonic() + 300
    while run_in(lubumbashi, ["test", "-d", "/srv/clinic/releases/itest-resumed"])[0] != 0:
        assert run.poll() is None, run.communicate()[0]
        assert time.monotonic() < deadline, "the release directory never appeared"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # the controller dies mid-deploy
    run.wait()
    assert json.loads(ok_in(lubumbashi, ["cat", "/var/lib/clinicops/clinic.lock"]))["run_id"] == run_id
    assert current(lubumbashi) == RELEASE, "killed before the switch: the old release still serves"

    code, output = play("deploy.yml", "lubumbashi", *args)
    assert code == 0, output
    assert "STALE LOCK on lubumbashi: this run (itest-killed-run) still held it" in output
    assert current(lubumbashi) == "itest-resumed" and served(lubumbashi)["release"] == "itest-resumed"
    assert run_in(lubumbashi, ["test", "-e", "/srv/clinic/releases/itest-resumed/.clinicops-unfinished"])[0] == 1
    assert unlocked(lubumbashi)


def test_an_operator_rollback_returns_to_the_previous_good_release(fleet):
    lubumbashi = fleet["lubumbashi"]
    code, output = play("rollback.yml", "lubumbashi")
    assert code == 0, output
    assert current(lubumbashi) == RELEASE and served(lubumbashi)["release"] == RELEASE
    assert releases(lubumbashi)["itest-resumed"]["status"] == "rolled_back"
    record = audit(lubumbashi)[-1]
    assert (record["procedure"], record["outcome"]) == ("rollback", "ok")
    assert (record["details"]["from"], record["details"]["to"]) == ("itest-resumed", RELEASE)

    # A release marked bad is not a target unless forced; a release that is gone never is.
    code, output = play("rollback.yml", "lubumbashi", "-e", "rollback_to=itest-gone")
    assert code != 0 and "releases/itest-gone does not exist" in output, output
    assert current(lubumbashi) == RELEASE and unlocked(lubumbashi)


def test_rolling_back_with_data_restores_the_backup_bound_to_the_release_left(fleet):
    for name, container in fleet.items():
        seeded = psql(container, "SELECT count(*) FROM patients")
        code, output = play(
            "rollback.yml",
            name,
            "-e",
            f"rollback_to={BOOTSTRAP}",
            "-e",
            "rollback_restore_data=true",
            "-e",
            f"rollback_confirm={name}",
        )
        assert code == 0, output
        health = served(container)
        assert (health["version"], health["release"], health["schema_version"]) == ("1.0.0", BOOTSTRAP, 1)
        assert psql(container, "SELECT count(*) FROM patients") == seeded
        restore = [r for r in audit(container) if r["procedure"] == "restore"][-1]
        bound = releases(container)[RELEASE]["backup"]["postgresql:clinicdb"]
        assert restore["outcome"] == "ok" and restore["details"]["restored_snapshot_id"] == bound
        assert unlocked(container)


def test_restoring_data_on_rollback_needs_the_clinic_named(fleet):
    code, output = play("rollback.yml", "kinshasa", "-e", "rollback_restore_data=true")
    assert code != 0 and "needs -e rollback_confirm=kinshasa" in output, output
    assert current(fleet["kinshasa"]) == BOOTSTRAP
