"""The per-clinic lock across real playbook runs: one winner, clear refusals, stale-lock takeover."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import PLAYBOOKS, ansible_playbook, ok_in, run_in

LOCK = "/var/lib/clinicops/clinic.lock"


def read_lock(container) -> dict | None:
    code, out = run_in(container, ["cat", LOCK])
    return json.loads(out) if code == 0 else None


def wait_for_lock(container, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (holder := read_lock(container)) is None:
        assert time.monotonic() < deadline, "no run took the lock"
        time.sleep(0.1)  # polling the clinic's file system for the lock to appear
    return holder


def hold(owner: str, ttl: int = 600):
    return ansible_playbook(PLAYBOOKS / "hold_lock.yml", "-e", f"target=kinshasa owner={owner} ttl={ttl}")


@pytest.fixture
def clinic(clinics):
    container = clinics["kinshasa"]
    run_in(container, ["rm", "-f", LOCK])
    yield container
    run_in(container, ["sh", "-c", "rm -f /tmp/clinicops-test-release-*"])
    run_in(container, ["rm", "-f", LOCK])


def test_two_concurrent_runs_exactly_one_proceeds(clinic):
    runs = {owner: hold(owner) for owner in ("run-a", "run-b")}
    winner = wait_for_lock(clinic)["owner"]
    loser = "run-b" if winner == "run-a" else "run-a"
    loser_output, _ = runs[loser].communicate(timeout=120)
    assert runs[loser].returncode == 2, loser_output
    assert f"locked by run {winner} (operation test, user tester on pytest)" in loser_output
    assert "nothing was changed" in loser_output
    assert read_lock(clinic)["owner"] == winner

    ok_in(clinic, ["touch", f"/tmp/clinicops-test-release-{winner}"])
    winner_output, _ = runs[winner].communicate(timeout=120)
    assert runs[winner].returncode == 0, winner_output
    assert read_lock(clinic) is None


def test_a_killed_run_leaves_a_lock_that_is_reported_then_taken_over(clinic):
    killed = hold("run-killed", ttl=8)
    stale = wait_for_lock(clinic)
    os.killpg(killed.pid, signal.SIGKILL)  # no always:, no cleanup: the lock stays behind
    killed.wait(timeout=30)
    assert read_lock(clinic)["owner"] == "run-killed"

    ok_in(clinic, ["touch", "/tmp/clinicops-test-release-run-next"])
    refused, _ = hold("run-next").communicate(timeout=120)
    assert "locked by run run-killed" in refused
    assert f"expires {stale['expires']}" in refused

    # Wait for the stale lock's expiry, read from the lock itself.
    now = ok_in(clinic, ["date", "-u", "+%s"])
    expires = ok_in(clinic, ["date", "-u", "-d", stale["expires"], "+%s"])
    time.sleep(max(0, int(expires) - int(now) + 1))
    takeover = hold("run-next")
    output, _ = takeover.communicate(timeout=120)
    assert takeover.returncode == 0, output
    assert "took over an expired lock of run run-killed" in output
    assert read_lock(clinic) is None
