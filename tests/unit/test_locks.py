"""Controller-side clinic locks: flock per clinic, all or nothing, the holder named in a refusal."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinicops.errors import EXIT_REFUSED, RefusedError
from clinicops.locks import ControllerLocks


@pytest.fixture
def locks_dir(tmp_path: Path) -> Path:
    return tmp_path / "home" / "locks"


@pytest.fixture
def first(locks_dir: Path) -> Iterator[ControllerLocks]:
    locks = ControllerLocks(locks_dir, "20260101T000000Z-deploy-aaaaaa", "deploy")
    yield locks
    locks.release()


@pytest.fixture
def second(locks_dir: Path) -> Iterator[ControllerLocks]:
    locks = ControllerLocks(locks_dir, "20260101T000500Z-backup-bbbbbb", "backup")
    yield locks
    locks.release()


def test_two_runs_in_one_process_conflict(first: ControllerLocks, second: ControllerLocks) -> None:
    first.acquire(["paris", "kinshasa"])
    with pytest.raises(RefusedError) as refused:
        second.acquire(["kinshasa"])
    assert refused.value.exit_code == EXIT_REFUSED
    message = str(refused.value)
    assert "holds 1 of these clinics: kinshasa (run 20260101T000000Z-deploy-aaaaaa, deploy, " in message
    assert f"pid {os.getpid()}, since 20" in message
    assert "nothing was run" in message
    assert second.held == {}


def test_a_refusal_releases_what_it_took(first: ControllerLocks, second: ControllerLocks, locks_dir: Path) -> None:
    first.acquire(["kinshasa"])
    with pytest.raises(RefusedError, match="holds 1 of these clinics: kinshasa "):
        second.acquire(["paris", "kinshasa", "sydney"])  # paris was taken before kinshasa refused
    assert second.held == {}
    third = ControllerLocks(locks_dir, "20260101T001000Z-health-cccccc", "health")
    third.acquire(["paris", "sydney"])  # free again: the refused run kept nothing
    assert set(third.held) == {"paris", "sydney"}
    third.release()


def test_every_busy_clinic_is_named(first: ControllerLocks, second: ControllerLocks) -> None:
    first.acquire(["paris", "kinshasa"])
    with pytest.raises(RefusedError) as refused:
        second.acquire(["paris", "sydney", "kinshasa"])
    message = str(refused.value)
    assert "holds 2 of these clinics: paris (" in message
    assert "; kinshasa (" in message
    assert "sydney" not in message


def test_release_then_acquire_again(first: ControllerLocks, second: ControllerLocks) -> None:
    first.acquire(["paris"])
    first.release()
    assert first.held == {}
    second.acquire(["paris"])
    assert list(second.held) == ["paris"]
    with pytest.raises(RefusedError, match="20260101T000500Z-backup-bbbbbb"):
        first.acquire(["paris"])  # and now the other way round


def test_the_context_manager_releases(locks_dir: Path, second: ControllerLocks) -> None:
    with ControllerLocks(locks_dir, "run-1", "deploy") as locks:
        locks.acquire(["paris"])
        with pytest.raises(RefusedError):
            second.acquire(["paris"])
    second.acquire(["paris"])


def test_acquiring_a_clinic_already_held_by_the_same_run_is_a_no_op(first: ControllerLocks) -> None:
    first.acquire(["paris"])
    fd = first.held["paris"]
    first.acquire(["paris", "kinshasa"])
    assert first.held["paris"] == fd
    assert set(first.held) == {"paris", "kinshasa"}


def test_lock_files_are_private_and_name_the_holder(first: ControllerLocks, locks_dir: Path) -> None:
    first.acquire(["paris", "clinic/../etc"])
    assert stat.S_IMODE(locks_dir.stat().st_mode) == 0o700
    files = sorted(path.name for path in locks_dir.iterdir())
    assert files == ["clinic%2F..%2Fetc.lock", "paris.lock"]  # a host name never leaves the directory
    for name in files:
        assert stat.S_IMODE((locks_dir / name).stat().st_mode) == 0o600
    holder = json.loads((locks_dir / "paris.lock").read_text())
    assert holder["run_id"] == "20260101T000000Z-deploy-aaaaaa"
    assert holder["operation"] == "deploy"
    assert holder["pid"] == os.getpid()
    assert set(holder) == {"run_id", "operation", "pid", "controller", "user", "since"}


def test_a_holder_that_wrote_nothing_readable_is_unknown(locks_dir: Path, second: ControllerLocks) -> None:
    locks_dir.mkdir(parents=True)
    path = locks_dir / "paris.lock"
    path.write_text("not json")
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RefusedError, match=r"paris \(holder unknown\)"):
            second.acquire(["paris"])
    finally:
        os.close(fd)


HOLD = """
import sys
from pathlib import Path
from clinicops.locks import ControllerLocks
locks = ControllerLocks(Path(sys.argv[1]), "20260101T000000Z-deploy-child0", "deploy")
locks.acquire(["paris"])
print("held", flush=True)
sys.stdin.read()
"""


def test_a_killed_run_leaves_no_lock_behind(locks_dir: Path, second: ControllerLocks) -> None:
    argv = [sys.executable, "-c", HOLD, str(locks_dir)]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "held"
            with pytest.raises(RefusedError, match=f"deploy-child0, deploy, pid {child.pid}"):
                second.acquire(["paris"])
        finally:
            child.kill()
            child.wait(timeout=10)
    second.acquire(["paris"])  # the kernel dropped the dead run's lock
    assert list(second.held) == ["paris"]
