"""The clinicops CLI driving a fleet: waves across runs, reports, resume, Ctrl-C, controller locks, secrets.

A lab of its own (three clinics, `icli`): these tests deploy to every clinic of it, and other
modules keep the session lab's clinics on their bootstrap release. The lab is removed at the end.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, clinicops, lab_secret, ok_in, run_in

LAB = os.environ.get("CLINICOPS_CLI_TEST_LAB", "icli")  # another name runs this module beside a running suite
INVENTORY = ROOT / "inventories" / f"lab-{LAB}"
CLINICS = ("kinshasa", "lubumbashi", "paris")
ANSI = re.compile(r"\x1b\[|\r")


@pytest.fixture(scope="module")
def lab(docker_client):
    clinicops("lab", "up", "--name", LAB, "--clinics", str(len(CLINICS)))
    found = docker_client.containers.list(filters={"label": [f"clinicops.lab={LAB}", "clinicops.lab.role=clinic"]})
    yield {container.labels["clinicops.lab.host"]: container for container in found}
    clinicops("lab", "down", "--name", LAB, check=False)


def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return clinicops(*args, check=False, env={"CLINICOPS_HOME": str(home), **(env or {})})


def current(container) -> str:
    return os.path.basename(ok_in(container, ["readlink", "/srv/clinic/current"]).strip())


def unlocked(container) -> bool:
    return run_in(container, ["test", "-e", "/var/lib/clinicops/clinic.lock"])[0] == 1


def deploy_records(container, run_id: str) -> list[dict]:
    code, out = run_in(container, ["cat", "/var/log/clinicops/audit.jsonl"])
    records = [json.loads(line) for line in out.splitlines()] if code == 0 else []  # no trail: never touched
    return [r for r in records if r.get("procedure") == "deploy" and r.get("run_id") == run_id]


def rows(report: dict) -> dict[str, dict]:
    return {row["clinic"]: row for row in report["clinics"]}


def test_a_failed_clinic_stops_the_later_waves_and_resume_completes_the_run(lab, home):
    before = {name: current(container) for name, container in lab.items()}
    token = secrets.token_hex(16)  # an operator's exported secret: must reach no file of the run
    ok_in(lab["lubumbashi"], ["systemctl", "stop", "postgresql@15-main"])  # its pre-deploy backup fails
    try:
        first = cli(
            home, "deploy", "-i", str(INVENTORY), "--version", "2.0.0", "--waves", "2,100%", "--json",
            env={"CLINICOPS_TEST_TOKEN": token},
        )  # fmt: skip
    finally:
        ok_in(lab["lubumbashi"], ["systemctl", "start", "postgresql@15-main"])
    assert first.returncode == 1, first.stderr
    report = json.loads(first.stdout)
    run_id, release = report["run_id"], report["options"]["deploy_release_id"]
    by_clinic = rows(report)
    assert [by_clinic[name]["outcome"] for name in CLINICS] == ["ok", "failed", "not reached"]
    failed = by_clinic["lubumbashi"]
    assert failed["failed_task"] and "clinicdb" in failed["message"], failed
    assert [wave["status"] for wave in report["attempts"][0]["waves"]] == ["failed", "not started"]
    assert current(lab["kinshasa"]) == release
    assert current(lab["lubumbashi"]) == before["lubumbashi"]  # failed before its switch
    assert current(lab["paris"]) == before["paris"]  # its wave never started
    assert deploy_records(lab["paris"], run_id) == []
    assert all(unlocked(container) for container in lab.values())
    # Non-TTY progress: plain lines, the failure named as it happened, the stop explained.
    assert not ANSI.search(first.stderr), first.stderr
    assert re.search(r"^\d\d:\d\d:\d\d FAILED lubumbashi: ", first.stderr, re.M), first.stderr
    assert "stopping: wave 1 (canary) failed on 1 of 2 clinic(s)" in first.stderr
    markdown = (home / "runs" / run_id / "report.md").read_text()
    assert "| lubumbashi | failed | canary |" in markdown and failed["failed_task"] in markdown

    again = cli(home, "resume", run_id, "--json")
    assert again.returncode == 0, again.stderr
    final = json.loads(again.stdout)
    assert final["run_id"] == run_id and final["status"] == "ok" and len(final["attempts"]) == 2
    assert [wave["hosts"] for wave in final["attempts"][1]["waves"]] == [["lubumbashi"], ["paris"]]
    assert {row["outcome"] for row in final["clinics"]} == {"ok"}
    for name, container in lab.items():
        assert current(container) == release, name  # one release id on every clinic, across attempts
        assert unlocked(container)
    # kinshasa was done in the first attempt and was not deployed again.
    assert [r["outcome"] for r in deploy_records(lab["kinshasa"], run_id)] == ["started", "ok"]

    # The run directory holds no secret: not the clinics' passwords, not the vault's, not the environment's.
    known = [token, (INVENTORY / ".vault-pass").read_text().strip()]
    for name in CLINICS:
        known.append(lab_secret(name, lab=LAB))
        known.append(lab_secret(name, lab=LAB, file="vault_backup.yml", key="backup_repository_password"))
    leaks = [
        str(path)
        for path in (home / "runs" / run_id).rglob("*")
        if path.is_file() and any(secret in path.read_text(errors="replace") for secret in known)
    ]
    assert leaks == []
    command = next((home / "runs" / run_id / "runner" / "01-01").glob("artifacts/*/command"))  # the token's run
    assert json.loads(command.read_text())["env"]["CLINICOPS_TEST_TOKEN"] == "<not recorded>"

    shown = cli(home, "show", run_id[-6:])
    assert shown.returncode == 0 and "lubumbashi" in shown.stdout and not ANSI.search(shown.stdout)
    listed = json.loads(cli(home, "runs", "--json").stdout)
    assert [(r["run_id"], r["status"], r["attempts"]) for r in listed] == [(run_id, "ok", 2)]
    assert cli(home, "resume", run_id).stdout.startswith(f"run {run_id} has nothing to resume")


def test_ctrl_c_finishes_the_running_wave_then_stops_leaving_clinics_healthy_and_unlocked(lab, home):
    argv = [str(Path(sys.executable).parent / "clinicops"), "deploy", "-i", str(INVENTORY), "--version", "1.0.0"]
    env = {**os.environ, "CLINICOPS_PROJECT_ROOT": str(ROOT), "CLINICOPS_HOME": str(home)}
    run = subprocess.Popen(
        [*argv, "--waves", "1,100%", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    seen = []
    for line in run.stderr:  # wait for the first wave to start: no sleep
        seen.append(line)
        if "wave 1/2 canary started" in line:
            run.send_signal(signal.SIGINT)
            break
    out, err = run.communicate(timeout=600)
    err = "".join(seen) + err
    assert run.returncode == 130, err
    report = json.loads(out)
    assert report["status"] == "stopped" and report["interrupted"] == "stopped after the wave"
    assert [rows(report)[name]["outcome"] for name in CLINICS] == ["ok", "not reached", "not reached"]
    assert "Ctrl-C: the running wave finishes" in err
    assert current(lab["kinshasa"]).endswith("-1.0.0")
    assert all(unlocked(container) for container in lab.values())
    health = cli(home, "health", "-i", str(INVENTORY), "--json")
    assert health.returncode == 0 and {row["outcome"] for row in json.loads(health.stdout)["clinics"]} == {"healthy"}
    # The controller's locks went with the run: a new run may take every clinic.
    done = cli(home, "resume", report["run_id"], "--quiet")
    assert done.returncode == 0, done.stderr
    assert {current(container) for container in lab.values()} == {report["options"]["deploy_release_id"]}


def test_an_abort_mid_wave_is_reported_and_resume_takes_the_left_locks_back(lab, home):
    argv = [str(Path(sys.executable).parent / "clinicops"), "deploy", "-i", str(INVENTORY), "--version", "2.0.0"]
    env = {**os.environ, "CLINICOPS_PROJECT_ROOT": str(ROOT), "CLINICOPS_HOME": str(home)}
    run = subprocess.Popen(
        [*argv, "--waves", "100%", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    seen: list[str] = []
    first_press_taken = threading.Event()

    def read_progress() -> None:  # drains stderr so the run never blocks on a full pipe
        for line in run.stderr:
            seen.append(line)
            if "Ctrl-C: the running wave finishes" in line:
                first_press_taken.set()

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while all(unlocked(container) for container in lab.values()):  # the play has taken a clinic lock
            assert run.poll() is None and time.monotonic() < deadline, "no clinic was ever locked"
            time.sleep(0.2)  # polling the clinics' lock files: nothing to wait on
        # Two signals sent back to back may reach the process as one (the kernel does not queue them):
        # the second press goes only once the first has been taken.
        run.send_signal(signal.SIGINT)
        assert first_press_taken.wait(timeout=60), "".join(seen)
        run.send_signal(signal.SIGINT)
        out = run.stdout.read()
        run.wait(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    reader.join(timeout=60)
    assert run.returncode == 1, "".join(seen)
    assert "aborting: Ansible is being stopped" in "".join(seen)
    report = json.loads(out)
    assert report["status"] == "aborted" and report["attempts"][0]["waves"][0]["status"] == "aborted"
    assert "aborted" in {row["outcome"] for row in report["clinics"]}
    left = [name for name, container in lab.items() if not unlocked(container)]
    assert left, "the abort left no clinic lock: nothing for resume to take back"

    done = cli(home, "resume", report["run_id"], "--json", "-v")
    assert done.returncode == 0, done.stderr
    release = report["options"]["deploy_release_id"]
    assert {current(container) for container in lab.values()} == {release}
    assert all(unlocked(container) for container in lab.values())
    output = "".join(
        path.read_text() for path in (home / "runs" / report["run_id"] / "runner" / "02-01").rglob("stdout")
    )
    for name in left:
        assert f"STALE LOCK on {name}: this run ({report['run_id']}) still held it" in output, name


def test_a_second_run_on_a_clinic_held_by_a_running_run_is_refused(lab, home):
    from clinicops.locks import ControllerLocks

    held = ControllerLocks(home / "locks", "20261126T000000Z-restore-abcdef", "restore")
    held.acquire(["paris"])
    try:
        done = cli(home, "backup", "-i", str(INVENTORY))
    finally:
        held.release()
    assert done.returncode == 3, done.stderr
    assert "paris (run 20261126T000000Z-restore-abcdef, restore" in done.stderr and "nothing was run" in done.stderr
    assert not [path for path in (home / "runs").iterdir() if "backup" in path.name]


def test_waves_by_group_and_bad_input_are_usage_errors_before_anything_runs(lab, home):
    before = sorted(path.name for path in (home / "runs").iterdir())
    for args, message in (
        (["--waves", "1,@no_such_group"], "no targeted clinic is in group 'no_such_group'"),
        (["--waves", "1;rm -rf /"], "is not a wave"),
        (["--limit", "atlantis"], "no clinic in group 'clinics'"),
        (["--max-fail-percentage", "150"], "--max-fail-percentage must be 0..100"),
    ):
        done = cli(home, "backup", "-i", str(INVENTORY), *args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
    assert sorted(path.name for path in (home / "runs").iterdir()) == before
    done = cli(home, "health", "-i", str(INVENTORY), "--waves", "@region_europe", "--json")
    assert done.returncode == 0, done.stderr
    waves = json.loads(done.stdout)["attempts"][0]["waves"]
    assert [(wave["name"], wave["hosts"]) for wave in waves] == [
        ("region_europe", ["paris"]),
        ("rest", ["kinshasa", "lubumbashi"]),
    ]
