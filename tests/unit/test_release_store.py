"""The release state on a clinic host: ids, adoption, prepare, atomic switch, rollback, cleanup, drift, dry runs.

Everything runs on a real release layout in a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.release_store import (
    BAD_MARKER,
    UNFINISHED_MARKER,
    ReleaseError,
    ReleaseStore,
    validate_release_id,
)

BOOTSTRAP = "20260101T000000Z-1.0.0"


class Clock:
    """A clock that moves one second per reading, so every timestamp differs."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


def make_release(root: Path, release_id: str, version: str = "1.0.0") -> Path:
    """A release directory as an artifact unpacks it: code, a nested package, a symlink."""
    path = root / "releases" / release_id
    (path / "pkg").mkdir(parents=True)
    (path / "clinic_app.py").write_text(f"VERSION = {version!r}\n")
    (path / "pkg" / "views.py").write_text("# views\n")
    (path / "static").symlink_to("pkg")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A provisioned host: layout, shared files, the first release and an absolute current link, no log."""
    app_root = tmp_path / "clinic"
    (app_root / "shared" / "uploads").mkdir(parents=True)
    (app_root / "shared" / "app.env").write_text("DATABASE_URL=postgresql:///clinicdb\n")
    make_release(app_root, BOOTSTRAP)
    (app_root / "current").symlink_to(app_root / "releases" / BOOTSTRAP)
    return app_root


@pytest.fixture
def store(root: Path) -> ReleaseStore:
    return ReleaseStore(str(root), clock=Clock())


def deploy(store: ReleaseStore, release_id: str) -> dict[str, Any]:
    store.prepare(release_id, version=release_id, who="ops", run_id=f"run-{release_id}")
    return store.activate(release_id)


def log_of(root: Path) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in json.loads((root / "releases.json").read_text())["releases"]}


def statuses(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(entry["id"], entry["status"]) for entry in result["releases"]]


def current_of(root: Path) -> str:
    return Path(os.readlink(root / "current")).name


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under ``root``: kind, mode, inode, mtime, and link target or content."""
    tree: dict[str, tuple[Any, ...]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            info = path.lstat()
            if path.is_symlink():
                content: Any = os.readlink(path)
            else:
                content = path.read_bytes() if path.is_file() else None
            tree[str(path.relative_to(root))] = (info.st_mode, info.st_ino, info.st_mtime_ns, content)
    return tree


# -- release ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "a b", "", "x" * 129, "a..b", ".hidden", "-x", "x\n"])
def test_invalid_release_ids_are_refused_by_name(bad_id: str) -> None:
    with pytest.raises(ReleaseError) as refused:
        validate_release_id(bad_id)
    assert repr(bad_id) in str(refused.value)
    assert str(refused.value).endswith("nothing was changed")


@pytest.mark.parametrize("good_id", ["a", "x" * 128, "20261125T101500Z-2.4.0", "v2_rc.1"])
def test_valid_release_ids_pass(good_id: str) -> None:
    assert validate_release_id(good_id) == good_id


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "a b", "", "x" * 129])
def test_every_operation_refuses_an_invalid_id_without_touching_disk(
    root: Path, store: ReleaseStore, bad_id: str
) -> None:
    before = snapshot(root)
    operations: list[Callable[[], object]] = [
        lambda: store.prepare(bad_id),
        lambda: store.link_shared(bad_id, ["app.env"]),
        lambda: store.activate(bad_id),
        lambda: store.rollback(to=bad_id),
        lambda: store.mark_bad(bad_id),
        lambda: store.cleanup(exclude=bad_id),
    ]
    for operation in operations:
        with pytest.raises(ReleaseError, match="nothing was changed"):
            operation()
    assert snapshot(root) == before


# -- adoption and drift ----------------------------------------------------------------------------


def test_a_provisioned_host_without_log_is_adopted(root: Path, store: ReleaseStore) -> None:
    state = store.state()
    assert state["current"] == BOOTSTRAP
    assert statuses(state) == [(BOOTSTRAP, "active")]
    assert "no release log yet" in state["drift"][0]
    assert not (root / "releases.json").exists()  # reading writes nothing

    again = store.activate(BOOTSTRAP)  # already current, nothing to do: no log written either
    assert not again["changed"] and again["notes"] == [f"release {BOOTSTRAP} is already active"]
    assert not (root / "releases.json").exists()

    deploy(store, "r2")
    log = log_of(root)
    assert (log[BOOTSTRAP]["status"], log["r2"]["status"]) == ("inactive", "active")
    assert store.state()["previous"] == BOOTSTRAP
    assert store.state()["drift"] == []
    assert stat.S_IMODE((root / "releases.json").stat().st_mode) == 0o644


def test_the_link_wins_over_the_log_and_drift_is_reported(root: Path, store: ReleaseStore) -> None:
    deploy(store, "r2")
    deploy(store, "r3")
    (root / "current").unlink()
    (root / "current").symlink_to("releases/r2")  # switched by hand behind the log's back
    state = store.state()
    assert state["current"] == "r2"
    assert dict(statuses(state)) == {BOOTSTRAP: "inactive", "r2": "active", "r3": "inactive"}
    assert any("says release r3 is active, but current points at r2" in note for note in state["drift"])
    assert any("says release r2 is inactive, but current points at it" in note for note in state["drift"])
    assert log_of(root)["r3"]["status"] == "active"  # a query leaves the log alone

    store.prepare("r4")  # the next change writes the log back in line
    assert log_of(root)["r2"]["status"] == "active" and log_of(root)["r3"]["status"] == "inactive"
    assert store.state()["drift"] == []


def test_markers_and_missing_directories_are_drift(root: Path, store: ReleaseStore) -> None:
    deploy(store, "r2")
    deploy(store, "r3")
    (root / "releases" / "r2" / BAD_MARKER).write_text("{}")
    os.rename(root / "releases" / BOOTSTRAP, root / "elsewhere")
    (root / "releases" / "stray").mkdir()
    state = store.state()
    assert dict(statuses(state))["r2"] == "bad"
    assert state["previous"] is None  # neither the marked release nor the vanished one is eligible
    drift = " | ".join(state["drift"])
    assert "releases/r2 has a bad marker" in drift
    assert f"releases/{BOOTSTRAP} is in the release log but its directory is gone" in drift
    assert "releases/stray is not in the release log; left alone" in drift


def test_a_dangling_or_foreign_current_link_is_reported(root: Path, store: ReleaseStore) -> None:
    (root / "current").unlink()
    (root / "current").symlink_to("/opt/elsewhere")
    state = store.state()
    assert state["current"] is None and "outside" in state["drift"][0]
    (root / "current").unlink()
    (root / "current").symlink_to("releases/gone")
    assert store.state()["current"] == "gone"
    assert "releases/gone, which does not exist" in store.state()["drift"][0]


def test_an_unreadable_log_is_refused_not_overwritten(root: Path, store: ReleaseStore) -> None:
    (root / "releases.json").write_text("{not json")
    with pytest.raises(ReleaseError, match=r"not valid JSON.*nothing was changed"):
        store.prepare("r2")
    assert (root / "releases.json").read_text() == "{not json"
    assert not (root / "releases" / "r2").exists()


# -- prepare ---------------------------------------------------------------------------------------


def test_prepare_creates_the_release_with_marker_and_entry(root: Path, store: ReleaseStore) -> None:
    result = store.prepare("r2", version="2.0.0", who="ops", run_id="run-1", backup={"postgresql": "4f2a"})
    assert result["changed"]
    assert (root / "releases" / "r2" / UNFINISHED_MARKER).is_file()
    entry = log_of(root)["r2"]
    assert {key: entry[key] for key in ("version", "who", "run_id", "status", "backup", "activated")} == {
        "version": "2.0.0", "who": "ops", "run_id": "run-1", "status": "unfinished",
        "backup": {"postgresql": "4f2a"}, "activated": None,
    }  # fmt: skip
    assert entry["history"][0]["status"] == "unfinished"
    assert current_of(root) == BOOTSTRAP  # preparing never switches


def test_prepare_is_idempotent_and_resumes(root: Path, store: ReleaseStore) -> None:
    store.prepare("r2", version="2.0.0", run_id="run-1")
    before = snapshot(root)
    again = store.prepare("r2", version="2.0.0", run_id="run-1")
    assert not again["changed"] and again["actions"] == []
    assert snapshot(root) == before

    (root / "releases" / "r2" / UNFINISHED_MARKER).unlink()  # a run killed half-way
    resumed = store.prepare("r2", version="2.0.0", run_id="run-2")
    assert resumed["changed"]
    assert (root / "releases" / "r2" / UNFINISHED_MARKER).exists()
    entry = log_of(root)["r2"]
    assert entry["run_id"] == "run-2" and entry["history"][-1]["reason"] == "resumed by run run-2"


def test_a_directory_left_by_a_killed_prepare_is_resumed(root: Path, store: ReleaseStore) -> None:
    store.prepare("r2", check_mode=False)
    (root / "releases.json").unlink()  # killed after the directory, before the log
    result = store.prepare("r2", run_id="run-2")
    assert result["changed"] and log_of(root)["r2"]["status"] == "unfinished"


def test_a_foreign_directory_is_prepared_only_when_forced(root: Path, store: ReleaseStore) -> None:
    (root / "releases" / "r2").mkdir()
    with pytest.raises(ReleaseError, match=r"no unfinished marker.*nothing was changed"):
        store.prepare("r2")
    store.prepare("r2", force=True)
    assert (root / "releases" / "r2" / UNFINISHED_MARKER).exists()


def test_preparing_the_active_release_changes_nothing(root: Path, store: ReleaseStore) -> None:
    deploy(store, "r2")
    before = snapshot(root)
    result = store.prepare("r2", version="2.0.0", seed_from_current=True)
    assert not result["changed"]
    assert result["notes"] == ["release r2 is already active; nothing to prepare"]
    assert snapshot(root) == before


def test_a_bad_release_is_prepared_again_only_when_forced(root: Path, store: ReleaseStore) -> None:
    store.prepare("r2")
    store.mark_bad("r2", "migration 0042 failed")
    with pytest.raises(ReleaseError, match=r"r2 is marked bad \(migration 0042 failed\).*nothing was changed"):
        store.prepare("r2")
    store.prepare("r2", force=True)
    assert log_of(root)["r2"]["status"] == "unfinished"
    assert not (root / "releases" / "r2" / BAD_MARKER).exists()


def test_seeding_hard_links_the_current_release(root: Path, store: ReleaseStore) -> None:
    (root / "releases" / BOOTSTRAP / "uploads").symlink_to("../../shared/uploads")
    result = store.prepare("r2", seed_from_current=True)
    assert any("seed releases/r2" in action for action in result["actions"])
    old, new = root / "releases" / BOOTSTRAP, root / "releases" / "r2"
    for name in ("clinic_app.py", "pkg/views.py"):
        assert (new / name).stat().st_ino == (old / name).stat().st_ino
    assert (new / "pkg").is_dir() and not (new / "pkg").is_symlink()
    assert (new / "pkg").stat().st_ino != (old / "pkg").stat().st_ino
    assert os.readlink(new / "static") == "pkg" and os.readlink(new / "uploads") == "../../shared/uploads"
    assert not (old / UNFINISHED_MARKER).exists()  # the new release's marker is its own


def test_an_existing_release_is_not_seeded_again(root: Path, store: ReleaseStore) -> None:
    store.prepare("r2")
    result = store.prepare("r2", seed_from_current=True)
    assert not result["changed"] and "not seeded" in result["notes"][0]
    assert not (root / "releases" / "r2" / "clinic_app.py").exists()


# -- shared links ----------------------------------------------------------------------------------


def test_shared_links_are_relative_idempotent_and_replace_artifact_copies(root: Path, store: ReleaseStore) -> None:
    store.prepare("r2")
    release = root / "releases" / "r2"
    (release / "uploads").mkdir()
    (release / "uploads" / "sample.png").write_text("shipped by mistake")
    (release / "app.env").write_text("from the artifact")
    result = store.link_shared("r2", files=["app.env"], dirs=["uploads"])
    assert result["changed"]
    assert os.readlink(release / "app.env") == "../../shared/app.env"
    assert (release / "app.env").read_text().startswith("DATABASE_URL")
    assert (release / "uploads").resolve() == (root / "shared" / "uploads").resolve()
    assert not store.link_shared("r2", files=["app.env"], dirs=["uploads"])["changed"]


def test_shared_links_in_nested_paths(root: Path, store: ReleaseStore) -> None:
    (root / "shared" / "config").mkdir()
    (root / "shared" / "config" / "local.ini").write_text("[app]\n")
    store.prepare("r2")
    store.link_shared("r2", files=["config/local.ini"])
    link = root / "releases" / "r2" / "config" / "local.ini"
    assert os.readlink(link) == "../../../shared/config/local.ini" and link.read_text() == "[app]\n"


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "a/../b", "", ".clinicops-bad"])
def test_invalid_shared_names_are_refused(store: ReleaseStore, name: str) -> None:
    store.prepare("r2")
    with pytest.raises(ReleaseError, match="nothing was changed"):
        store.link_shared("r2", files=[name])


def test_shared_links_refuse_a_missing_target_or_a_finished_release(root: Path, store: ReleaseStore) -> None:
    store.prepare("r2")
    with pytest.raises(ReleaseError, match=r"shared/missing\.env does not exist"):
        store.link_shared("r2", files=["missing.env"])
    with pytest.raises(ReleaseError, match="is not a directory"):
        store.link_shared("r2", dirs=["app.env"])
    store.activate("r2")
    with pytest.raises(ReleaseError, match="release r2 is active; a release is changed only while unfinished"):
        store.link_shared("r2", files=["app.env"])


def test_shared_links_never_escape_the_release_through_a_symlink(
    root: Path, store: ReleaseStore, tmp_path: Path
) -> None:
    (root / "shared" / "config").mkdir()
    (root / "shared" / "config" / "local.ini").write_text("[app]\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    store.prepare("r2")
    (root / "releases" / "r2" / "config").symlink_to(outside)
    with pytest.raises(ReleaseError, match="outside the release"):
        store.link_shared("r2", files=["config/local.ini"])
    assert list(outside.iterdir()) == []


# -- activation ------------------------------------------------------------------------------------


def test_activation_switches_with_a_rename_and_records_statuses(root: Path, store: ReleaseStore) -> None:
    store.prepare("r2")
    result = store.activate("r2")
    assert result["actions"][:2] == ["switch current to releases/r2", "remove releases/r2/.clinicops-unfinished"]
    assert os.readlink(root / "current") == "releases/r2"
    assert not (root / "releases" / "r2" / UNFINISHED_MARKER).exists()
    log = log_of(root)
    assert log["r2"]["status"] == "active" and log["r2"]["activated"]
    assert log[BOOTSTRAP]["history"][-1] == {
        "status": "inactive", "at": log[BOOTSTRAP]["history"][-1]["at"], "reason": "replaced by r2"
    }  # fmt: skip
    assert not store.activate("r2")["changed"]
    assert [name for name in os.listdir(root) if "tmp" in name] == []


def test_current_is_never_missing_while_switching(root: Path, store: ReleaseStore, monkeypatch) -> None:
    """Every os call the switch makes is watched: current resolves before and after it, and is never unlinked."""
    current = str(root / "current")
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def watched(name: str) -> Callable[..., Any]:
        real = getattr(os, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append((name, args))
            assert os.path.exists(current), f"current missing before os.{name}{args}"
            result = real(*args, **kwargs)
            assert os.path.exists(current), f"current missing after os.{name}{args}"
            return result

        return call

    store.prepare("r2")
    for name in ("replace", "rename", "unlink", "remove", "rmdir", "symlink"):
        monkeypatch.setattr(os, name, watched(name))
    store.activate("r2")
    store.rollback(reason="drill")
    monkeypatch.undo()
    assert [args[1] for name, args in calls if name == "replace" and args[1] == current] == [current, current]
    assert not [call for call in calls if call[0] in ("unlink", "remove", "rmdir") and call[1][0] == current]


def test_a_reader_always_finds_current_during_many_switches(root: Path, store: ReleaseStore) -> None:
    store.prepare("r2")
    store.activate("r2")
    releases = {str(root / "releases" / name) for name in (BOOTSTRAP, "r2")}
    stop = threading.Event()
    misses: list[str] = []

    def read() -> None:
        while not stop.is_set():
            try:
                target = os.path.realpath(root / "current", strict=True)
            except OSError as exc:
                misses.append(repr(exc))
                continue
            if target not in releases:
                misses.append(target)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for turn in range(100):
            store.activate(BOOTSTRAP if turn % 2 == 0 else "r2")
    finally:
        stop.set()
        reader.join()
    assert misses == []


def test_activation_refuses_unknown_missing_and_bad_releases(root: Path, store: ReleaseStore) -> None:
    with pytest.raises(ReleaseError, match="not in the release log; prepare it first"):
        store.activate("r9")
    store.prepare("r2")
    store.mark_bad("r2", "build failed")
    with pytest.raises(ReleaseError, match="marked bad"):
        store.activate("r2")
    store.prepare("r3")
    (root / "releases" / "r3" / UNFINISHED_MARKER).unlink()
    (root / "releases" / "r3").rmdir()
    with pytest.raises(ReleaseError, match="releases/r3 does not exist"):
        store.activate("r3")
    assert current_of(root) == BOOTSTRAP
    store.activate("r2", force=True)
    assert current_of(root) == "r2" and not (root / "releases" / "r2" / BAD_MARKER).exists()


def test_current_as_a_real_directory_is_never_switched(root: Path, store: ReleaseStore) -> None:
    (root / "current").unlink()
    (root / "current").mkdir()
    store.prepare("r2")
    with pytest.raises(ReleaseError, match=r"is not a symlink.*nothing was changed"):
        store.activate("r2")
    assert (root / "current").is_dir() and not (root / "current").is_symlink()


# -- rollback --------------------------------------------------------------------------------------


def test_rollback_picks_the_previous_release_by_log_order_not_mtime(root: Path, store: ReleaseStore) -> None:
    for release_id in ("r2", "r3", "r4"):
        deploy(store, release_id)
    for age, release_id in enumerate((BOOTSTRAP, "r2", "r3", "r4")):  # the oldest release looks newest on disk
        stamp = 2_000_000_000 - age * 86_400
        os.utime(root / "releases" / release_id, (stamp, stamp))
    assert store.state()["previous"] == "r3"
    result = store.rollback(reason="clinic reports slow pages")
    assert current_of(root) == "r3"
    assert dict(statuses(result))["r4"] == "rolled_back"
    assert not (root / "releases" / "r4" / BAD_MARKER).exists()
    assert result["previous"] == "r2"
    assert [entry["id"] for entry in result["releases"]][-1] == "r3"  # the log follows activation order

    store.rollback(to=BOOTSTRAP)  # an older release made current again...
    deploy(store, "r5")
    assert store.state()["previous"] == BOOTSTRAP  # ...is the newest previous, whatever its age


def test_an_automatic_rollback_marks_the_release_bad(root: Path, store: ReleaseStore) -> None:
    deploy(store, "r2")
    result = store.rollback(reason="health gate failed: database", mark="bad")
    assert current_of(root) == BOOTSTRAP and dict(statuses(result))["r2"] == "bad"
    marker = json.loads((root / "releases" / "r2" / BAD_MARKER).read_text())
    assert marker["reason"] == "health gate failed: database" and marker["at"].endswith("Z")
    deploy(store, "r3")
    assert store.state()["previous"] == BOOTSTRAP  # a bad release is never chosen again


def test_rollback_refusals_and_force(root: Path, store: ReleaseStore) -> None:
    store.prepare("unfinished")
    store.prepare("broken")
    store.mark_bad("broken", "migration failed")
    deploy(store, "r2")
    deploy(store, "gone")
    deploy(store, "r3")
    shutil.rmtree(root / "releases" / "gone")
    (root / "releases" / "unlisted").mkdir()
    before = snapshot(root)
    with pytest.raises(ReleaseError, match=r"releases/gone does not exist.*nothing was changed"):
        store.rollback(to="gone", force=True)
    with pytest.raises(ReleaseError, match="it is unfinished; set force"):
        store.rollback(to="unfinished")
    with pytest.raises(ReleaseError, match="it is bad; set force"):
        store.rollback(to="broken")
    with pytest.raises(ReleaseError, match="the release log does not list it"):
        store.rollback(to="unlisted", force=True)
    assert snapshot(root) == before
    assert store.state()["previous"] == "r2"  # the gone release is skipped

    store.rollback(to="broken", force=True)
    assert current_of(root) == "broken" and not (root / "releases" / "broken" / BAD_MARKER).exists()
    store.rollback(to="unfinished", force=True)
    assert current_of(root) == "unfinished"
    assert not (root / "releases" / "unfinished" / UNFINISHED_MARKER).exists()


def test_rollback_without_a_previous_good_release_is_refused(root: Path, store: ReleaseStore) -> None:
    with pytest.raises(ReleaseError, match=r"no previous good release.*nothing was changed"):
        store.rollback()
    deploy(store, "r2")
    assert not store.rollback(to="r2")["changed"]  # already current
    with pytest.raises(ReleaseError, match="mark 'broken'"):
        store.rollback(mark="broken")


# -- mark bad --------------------------------------------------------------------------------------


def test_mark_bad_records_reason_and_time_once(root: Path, store: ReleaseStore) -> None:
    store.prepare("r2")
    result = store.mark_bad("r2", "migration 0042 failed")
    assert result["changed"] and dict(statuses(result))["r2"] == "bad"
    marker = json.loads((root / "releases" / "r2" / BAD_MARKER).read_text())
    assert marker["reason"] == "migration 0042 failed"
    assert not store.mark_bad("r2", "again")["changed"]
    with pytest.raises(ReleaseError, match="is current; roll back"):
        store.mark_bad(BOOTSTRAP)
    with pytest.raises(ReleaseError, match="neither in the release log nor under releases/"):
        store.mark_bad("r9")


# -- cleanup ---------------------------------------------------------------------------------------


def test_cleanup_keeps_the_newest_good_releases(root: Path, store: ReleaseStore) -> None:
    for release_id in ("r2", "r3", "r4", "r5"):
        deploy(store, release_id)
    result = store.cleanup(keep=3)
    assert result["removed"] == [BOOTSTRAP, "r2"]
    assert sorted(os.listdir(root / "releases")) == ["r3", "r4", "r5"]
    assert list(log_of(root)) == ["r3", "r4", "r5"]
    assert not store.cleanup(keep=3)["changed"]


def test_cleanup_never_removes_the_active_or_last_good_release(root: Path, store: ReleaseStore) -> None:
    for release_id in ("r2", "r3", "r4"):
        deploy(store, release_id)
    store.rollback(to="r2")  # the active release is now an old one; r4 was rolled back
    result = store.cleanup(keep=0)
    assert sorted(os.listdir(root / "releases")) == ["r2", "r3"]  # active, and the newest previous good
    assert sorted(result["removed"]) == sorted([BOOTSTRAP, "r4"])
    assert store.state()["previous"] == "r3"


def test_a_release_rolled_back_from_stays_within_keep_to_roll_forward_to(root: Path, store: ReleaseStore) -> None:
    for release_id in ("r2", "r3"):
        deploy(store, release_id)
    store.rollback()  # operator: r3 -> r2, r3 marked rolled_back
    deploy(store, "r4")
    result = store.cleanup(keep=3)
    assert "r3" not in result["removed"] and (root / "releases" / "r3").is_dir()
    assert store.state()["previous"] == "r2"  # never chosen automatically
    assert store.rollback(to="r3")["current"] == "r3"  # but still there to roll forward to by name


def test_bad_and_unfinished_releases_do_not_count_toward_keep(root: Path, store: ReleaseStore) -> None:
    deploy(store, "r2")
    store.prepare("broken")
    store.mark_bad("broken", "build failed")
    store.prepare("stale")
    store.prepare("deploying")
    (root / "releases" / "orphan").mkdir()
    (root / "releases" / "orphan" / UNFINISHED_MARKER).write_text("{}")
    (root / "releases" / "foreign").mkdir()
    result = store.cleanup(keep=2, exclude="deploying")
    assert sorted(result["removed"]) == ["broken", "orphan", "stale"]
    assert sorted(os.listdir(root / "releases")) == sorted([BOOTSTRAP, "r2", "deploying", "foreign"])


def test_cleanup_never_follows_symlinks_out_of_releases(root: Path, store: ReleaseStore, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "patients.db").write_text("do not delete")
    store.prepare("r2")
    (root / "releases" / "r2" / "data").symlink_to(precious)
    store.mark_bad("r2", "build failed")
    (root / "releases" / "linked").symlink_to(precious)  # a release "directory" that is a link
    store.prepare("r3")
    (root / "releases" / "r3" / UNFINISHED_MARKER).unlink()
    (root / "releases" / "r3").rmdir()
    (root / "releases" / "r3").symlink_to(precious)
    store.cleanup(keep=1)
    assert (precious / "patients.db").read_text() == "do not delete"
    assert not (root / "releases" / "r2").exists() and not os.path.lexists(root / "releases" / "r3")
    assert (root / "releases" / "linked").is_symlink()  # not a release: left alone


def test_cleanup_drops_log_entries_whose_directory_is_gone(root: Path, store: ReleaseStore) -> None:
    deploy(store, "r2")
    deploy(store, "r3")
    os.rename(root / "releases" / BOOTSTRAP, root / "moved-away")
    result = store.cleanup(keep=5)
    assert result["removed"] == [BOOTSTRAP] and BOOTSTRAP not in log_of(root)
    assert (root / "moved-away" / "clinic_app.py").exists()


def test_cleanup_refuses_a_negative_keep(store: ReleaseStore) -> None:
    with pytest.raises(ReleaseError, match="keep must be"):
        store.cleanup(keep=-1)


# -- dry runs --------------------------------------------------------------------------------------


@pytest.fixture
def busy_root(root: Path) -> Iterator[Path]:
    """A host with history: good, bad and unfinished releases."""
    store = ReleaseStore(str(root), clock=Clock())
    for release_id in ("r2", "r3", "r4"):
        deploy(store, release_id)
    store.prepare("broken")
    store.mark_bad("broken", "build failed")
    store.prepare("r5")
    yield root


DRY_RUNS: dict[str, Callable[[ReleaseStore, bool], dict[str, Any]]] = {
    "prepare": lambda s, check: s.prepare("r6", version="6", run_id="run-6", seed_from_current=True, check_mode=check),
    "resume": lambda s, check: s.prepare("r5", run_id="run-again", check_mode=check),
    "link": lambda s, check: s.link_shared("r5", ["app.env"], ["uploads"], check_mode=check),
    "activate": lambda s, check: s.activate("r5", check_mode=check),
    "rollback": lambda s, check: s.rollback(reason="drill", mark="bad", check_mode=check),
    "rollback-to": lambda s, check: s.rollback(to="r2", check_mode=check),
    "mark-bad": lambda s, check: s.mark_bad("r5", "failed", check_mode=check),
    "cleanup": lambda s, check: s.cleanup(keep=1, exclude="r5", check_mode=check),
}


@pytest.mark.parametrize("operation", sorted(DRY_RUNS))
def test_a_dry_run_changes_nothing_and_predicts_the_real_run(busy_root: Path, operation: str) -> None:
    frozen = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
    store = ReleaseStore(str(busy_root), clock=lambda: frozen)
    before = snapshot(busy_root)
    predicted = DRY_RUNS[operation](store, True)
    assert snapshot(busy_root) == before
    assert predicted["changed"] and predicted["actions"]
    applied = DRY_RUNS[operation](store, False)
    assert applied == predicted
    assert snapshot(busy_root) != before
    assert store.state()["current"] == predicted["current"]
