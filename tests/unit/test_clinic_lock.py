"""The per-clinic lock: take, renew, refuse, take over when expired, release only by the owner."""

from __future__ import annotations

import json
import multiprocessing
from datetime import timedelta
from pathlib import Path

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.clinic_lock import (
    ClinicLock,
    LockError,
    is_expired,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import (
    from_stamp,
    to_stamp,
    utcnow,
)


def request(owner: str, operation: str = "deploy") -> dict[str, str]:
    return {"owner": owner, "run_id": f"run-{owner}", "operation": operation, "controller": "ctl", "user": "ops"}


@pytest.fixture
def lock(tmp_path: Path) -> ClinicLock:
    return ClinicLock(str(tmp_path / "clinic.lock"))


def test_take_writes_a_whole_lock_with_expiry(lock: ClinicLock):
    now = utcnow()
    changed, action, previous, holder = lock.acquire(request("a"), 60, now)
    assert (changed, action, previous) == (True, "take", None)
    on_disk = json.loads(Path(lock.path).read_text())
    assert on_disk == holder
    assert on_disk["operation"] == "deploy"
    assert from_stamp(on_disk["expires"]) - from_stamp(on_disk["started"]) == timedelta(seconds=60)


def test_a_second_owner_is_refused_with_who_holds_it(lock: ClinicLock):
    now = utcnow()
    lock.acquire(request("a", "backup"), 600, now)
    with pytest.raises(LockError) as refused:
        lock.acquire(request("b"), 600, now + timedelta(seconds=5))
    message = str(refused.value)
    assert "run run-a" in message and "operation backup" in message and "since" in message
    assert json.loads(Path(lock.path).read_text())["owner"] == "a"


def test_the_owner_renews_keeping_the_start(lock: ClinicLock):
    now = utcnow()
    _, _, _, first = lock.acquire(request("a"), 60, now)
    _, action, _, second = lock.acquire(request("a"), 60, now + timedelta(seconds=30))
    assert action == "renew"
    assert second["started"] == first["started"]
    assert from_stamp(second["expires"]) > from_stamp(first["expires"])


def test_an_expired_lock_is_taken_over_and_reported(lock: ClinicLock):
    now = utcnow()
    lock.acquire(request("killed"), 10, now)
    with pytest.raises(LockError):
        lock.acquire(request("next"), 10, now + timedelta(seconds=9))
    _, action, previous, holder = lock.acquire(request("next"), 10, now + timedelta(seconds=10))
    assert action == "takeover"
    assert previous["owner"] == "killed"
    assert holder["owner"] == "next"


def test_check_mode_decides_but_writes_nothing(lock: ClinicLock):
    changed, action, _, _ = lock.acquire(request("a"), 60, utcnow(), check_mode=True)
    assert (changed, action) == (True, "take")
    assert not Path(lock.path).exists()


def test_only_the_owner_releases_unless_forced(lock: ClinicLock):
    lock.acquire(request("a"), 60, utcnow())
    with pytest.raises(LockError, match="held by run run-a"):
        lock.release("b")
    assert Path(lock.path).exists()
    changed, previous = lock.release("a")
    assert changed and previous["owner"] == "a"
    assert not Path(lock.path).exists()
    assert lock.release("a") == (False, None)


def test_force_release_returns_the_previous_holder(lock: ClinicLock):
    lock.acquire(request("a"), 60, utcnow())
    changed, previous = lock.release("b", force=True)
    assert changed and previous["owner"] == "a"
    assert not Path(lock.path).exists()


def test_unreadable_or_incomplete_locks_count_as_expired(lock: ClinicLock):
    Path(lock.path).write_text("{not json")
    assert is_expired(lock.read(), utcnow())
    assert is_expired({"owner": "x"}, utcnow())
    assert not is_expired({"expires": to_stamp(utcnow() + timedelta(minutes=1))}, utcnow())


def _contend(path: str, owner: str, start: multiprocessing.Event, results) -> None:
    start.wait()
    try:
        ClinicLock(path).acquire(request(owner), 600, utcnow())
        results.put(owner)
    except LockError:
        results.put("refused")


def test_concurrent_takers_exactly_one_wins(tmp_path: Path):
    path = str(tmp_path / "clinic.lock")
    start = multiprocessing.Event()
    results = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_contend, args=(path, f"w{i}", start, results)) for i in range(8)]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = [results.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    winners = [outcome for outcome in outcomes if outcome != "refused"]
    assert len(winners) == 1
    assert json.loads(Path(path).read_text())["owner"] == winners[0]
