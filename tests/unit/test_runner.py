"""The ansible-runner wrapper: invocation arguments, event collection and run directories."""

from __future__ import annotations

import getpass
import json
import os
import re
import shlex
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from clinicops import runner
from clinicops.errors import UsageError
from clinicops.project import ansible_env
from clinicops.runner import (
    REPORT_STATS_KEY,
    EventCollector,
    HostOutcome,
    PlaybookRun,
    RunResult,
    failure_message,
    new_run_id,
    playbook_path,
    run_playbook,
    skip_report,
    skip_text,
    state_home,
)

RUN_ID = "20260101T000000Z-health-abc123"


@pytest.fixture
def playbook_and_inventory(tmp_path: Path) -> tuple[Path, Path]:
    playbook = tmp_path / "project" / "health.yml"
    playbook.parent.mkdir()
    playbook.write_text("- hosts: all\n  tasks: []\n")
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text("all: {}\n")
    return playbook, inventory


def make_run(paths: tuple[Path, Path], **overrides: Any) -> PlaybookRun:
    playbook, inventory = paths
    fields: dict[str, Any] = {"playbook": playbook, "inventory": inventory, "operation": "health", "run_id": RUN_ID}
    return PlaybookRun(**(fields | overrides))


# -- PlaybookRun.runner_kwargs ---------------------------------------------------------------------


def test_runner_kwargs_basics(playbook_and_inventory: tuple[Path, Path], tmp_path: Path) -> None:
    playbook, inventory = playbook_and_inventory
    kwargs = make_run(playbook_and_inventory).runner_kwargs(tmp_path / "private")
    assert kwargs["private_data_dir"] == str(tmp_path / "private")
    assert kwargs["project_dir"] == str(playbook.parent)
    assert kwargs["playbook"] == "health.yml"
    assert kwargs["inventory"] == str(inventory.resolve())
    assert kwargs["suppress_env_files"] is True
    assert kwargs["quiet"] is True
    assert kwargs["verbosity"] is None
    assert "limit" not in kwargs


def test_runner_kwargs_extravars_are_given_vars_and_who_ran_them(playbook_and_inventory: tuple[Path, Path]) -> None:
    run = make_run(playbook_and_inventory, extravars={"health_retries": 3})
    kwargs = run.runner_kwargs(Path("/tmp/unused"))
    assert kwargs["extravars"] == {
        "health_retries": 3,
        "clinicops_run_id": RUN_ID,
        "clinicops_who": getpass.getuser(),
        "clinicops_controller": socket.gethostname(),
    }


def test_runner_kwargs_run_id_and_who_are_not_overridable(playbook_and_inventory: tuple[Path, Path]) -> None:
    given = {"clinicops_run_id": "forged", "clinicops_who": "someone-else", "clinicops_controller": "elsewhere"}
    extravars = make_run(playbook_and_inventory, extravars=given).runner_kwargs(Path("/tmp/unused"))["extravars"]
    assert extravars["clinicops_run_id"] == RUN_ID
    assert extravars["clinicops_who"] == getpass.getuser()
    assert extravars["clinicops_controller"] == socket.gethostname()


def test_runner_kwargs_pass_no_secret_from_the_environment(
    playbook_and_inventory: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "Pg-S3cret-From-Env"
    monkeypatch.setenv("PGPASSWORD", secret)
    monkeypatch.setenv("CLINIC_DB_PASSWORD", secret)
    kwargs = make_run(playbook_and_inventory).runner_kwargs(Path("/tmp/unused"))
    envvars = kwargs["envvars"]
    assert ansible_env().items() <= envvars.items()
    assert envvars["CLINICOPS_RUN_ID"] == RUN_ID
    assert "PGPASSWORD" not in envvars
    assert "CLINIC_DB_PASSWORD" not in envvars
    assert secret not in json.dumps(kwargs)


def test_runner_kwargs_cmdline_check_and_vault(playbook_and_inventory: tuple[Path, Path], tmp_path: Path) -> None:
    vault = tmp_path / ".vault-pass"
    kwargs = make_run(playbook_and_inventory, check=True, vault_password_file=vault, forks=7).runner_kwargs(tmp_path)
    args = shlex.split(kwargs["cmdline"])
    assert "--check" in args
    assert args[args.index("--vault-password-file") + 1] == str(vault)
    assert args[args.index("--forks") + 1] == "7"


def test_runner_kwargs_cmdline_without_check_or_vault(playbook_and_inventory: tuple[Path, Path]) -> None:
    args = shlex.split(make_run(playbook_and_inventory).runner_kwargs(Path("/tmp/unused"))["cmdline"])
    assert args == ["--forks", "25"]


def test_runner_kwargs_vault_path_with_spaces_survives_runner_parsing(
    playbook_and_inventory: tuple[Path, Path], tmp_path: Path
) -> None:
    """ansible-runner shlex-splits cmdline: a path with spaces must come back as one argument."""
    vault = tmp_path / "My Labs" / "it's here" / ".vault-pass"
    kwargs = make_run(playbook_and_inventory, vault_password_file=vault).runner_kwargs(tmp_path)
    args = shlex.split(kwargs["cmdline"])
    assert args[args.index("--vault-password-file") + 1] == str(vault)


def test_runner_kwargs_limit_and_verbosity(playbook_and_inventory: tuple[Path, Path]) -> None:
    kwargs = make_run(playbook_and_inventory, limit="paris,region_africa", verbosity=2).runner_kwargs(Path("/x"))
    assert kwargs["limit"] == "paris,region_africa"
    assert kwargs["verbosity"] == 2


def test_runner_kwargs_missing_playbook_is_usage_error(playbook_and_inventory: tuple[Path, Path]) -> None:
    _playbook, inventory = playbook_and_inventory
    run = make_run(playbook_and_inventory, playbook=inventory / "nope.yml")
    with pytest.raises(UsageError, match="playbook not found"):
        run.runner_kwargs(Path("/tmp/unused"))


def test_runner_kwargs_missing_inventory_is_usage_error(
    playbook_and_inventory: tuple[Path, Path], tmp_path: Path
) -> None:
    run = make_run(playbook_and_inventory, inventory=tmp_path / "absent")
    with pytest.raises(UsageError, match="inventory not found"):
        run.runner_kwargs(Path("/tmp/unused"))


# -- EventCollector --------------------------------------------------------------------------------


def event(kind: str, host: str | None = None, task: str = "", **data: Any) -> dict[str, Any]:
    event_data: dict[str, Any] = {"task": task, **data}
    if host is not None:
        event_data["host"] = host
    return {"event": kind, "event_data": event_data}


def feed(collector: EventCollector, *events: dict[str, Any]) -> None:
    for item in events:
        assert collector(item) is True


def test_ok_and_changed_are_counted() -> None:
    collector = EventCollector()
    feed(
        collector,
        event("runner_on_start", "paris", task="Check the clinic stack"),
        event("runner_on_ok", "paris", task="Check the clinic stack", res={"changed": False}),
        event("runner_on_ok", "paris", task="Write config", res={"changed": True}),
    )
    paris = collector.hosts["paris"]
    assert (paris.ok, paris.changed, paris.failed, paris.skipped) == (2, 1, 0, 0)
    assert paris.current_task == "Check the clinic stack"
    assert paris.outcome == "ok"


def test_failure_is_counted_with_task_and_message() -> None:
    collector = EventCollector()
    feed(
        collector,
        event("runner_on_ok", "kinshasa", res={}),
        event("runner_on_failed", "kinshasa", task="Migrate", res={"msg": "migration 0003 failed\n  halfway"}),
    )
    kinshasa = collector.hosts["kinshasa"]
    assert kinshasa.failed == 1
    assert kinshasa.failed_task == "Migrate"
    assert kinshasa.message == "migration 0003 failed halfway"
    assert kinshasa.outcome == "failed"


def test_ignored_failures_are_not_counted() -> None:
    collector = EventCollector()
    feed(
        collector,
        event("runner_on_failed", "paris", task="Probe", ignore_errors=True, res={"msg": "expected"}),
        event("runner_on_ok", "paris", res={}),
    )
    paris = collector.hosts["paris"]
    assert paris.failed == 0
    assert paris.failed_task == ""
    assert paris.message == ""
    assert paris.outcome == "ok"


def test_unreachable_host() -> None:
    collector = EventCollector()
    feed(collector, event("runner_on_unreachable", "sydney", task="Gathering", res={"msg": "ssh: timed out"}))
    sydney = collector.hosts["sydney"]
    assert sydney.unreachable
    assert sydney.failed_task == "Gathering"
    assert sydney.message == "ssh: timed out"
    assert sydney.outcome == "unreachable"


def test_skipped_only_host_did_not_run() -> None:
    collector = EventCollector()
    feed(collector, event("runner_on_skipped", "paris"), event("runner_on_skipped", "paris"))
    assert collector.hosts["paris"].skipped == 2
    assert collector.hosts["paris"].outcome == "not run"


def test_hosts_are_kept_apart() -> None:
    collector = EventCollector()
    feed(
        collector,
        event("runner_on_ok", "paris", res={}),
        event("runner_on_failed", "kinshasa", res={"stderr": "boom"}),
    )
    assert collector.hosts["paris"].outcome == "ok"
    assert collector.hosts["kinshasa"].outcome == "failed"


def test_events_without_host_create_no_host() -> None:
    collector = EventCollector()
    feed(collector, event("playbook_on_start"), event("playbook_on_task_start", task="x"), event("verbose"))
    assert collector.hosts == {}


def test_stats_event_carries_the_report() -> None:
    report = {"paris": {"healthy": True, "summary": "healthy (5 checks)"}}
    collector = EventCollector()
    feed(collector, event("playbook_on_stats", artifact_data={REPORT_STATS_KEY: report, "other": 1}))
    assert collector.stats_report == report
    assert collector.hosts == {}


def test_stats_event_without_report_is_empty() -> None:
    collector = EventCollector()
    feed(collector, event("playbook_on_stats", artifact_data=None))
    assert collector.stats_report == {}


def test_on_event_sees_every_event() -> None:
    seen: list[str] = []
    collector = EventCollector(on_event=lambda item: seen.append(item["event"]))
    feed(collector, event("playbook_on_start"), event("runner_on_ok", "paris", res={}))
    assert seen == ["playbook_on_start", "runner_on_ok"]


def test_callback_exception_never_propagates() -> None:
    def explode(_item: dict[str, Any]) -> None:
        raise RuntimeError("display bug")

    collector = EventCollector(on_event=explode)
    assert collector(event("runner_on_ok", "paris", res={"changed": True})) is True
    assert collector.hosts["paris"].ok == 1


@pytest.mark.parametrize(
    "malformed",
    [
        {},
        {"event": "runner_on_ok", "event_data": ["not", "a", "dict"]},
        {"event": "runner_on_ok", "event_data": {"host": "paris", "res": "not a dict"}},
        {"event": "playbook_on_stats", "event_data": {"artifact_data": {REPORT_STATS_KEY: ["not", "a", "dict"]}}},
    ],
)
def test_malformed_events_never_raise(malformed: dict[str, Any]) -> None:
    assert EventCollector()(malformed) is True


def test_a_refusal_is_told_from_a_failure_and_stays_one() -> None:
    collector = EventCollector()
    held = {"msg": "clinic lock /var/lib/clinicops/clinic.lock: held by run r0", "refused": True}
    feed(
        collector,
        event("runner_on_failed", "paris", task="Take the clinic lock", res=held),
        # the rescue re-raises with a plain fail: still a refusal
        event("runner_on_failed", "paris", task="Fail with the reason", res={"msg": "refused: lock held"}),
        event("runner_on_failed", "kinshasa", task="Migrate", res={"msg": "boom", "refused": False}),
    )
    assert collector.hosts["paris"].refused and collector.hosts["paris"].outcome == "refused"
    assert collector.hosts["paris"].message == "refused: lock held"
    assert collector.hosts["kinshasa"].outcome == "failed"


def test_the_stats_tally_wins_over_the_events() -> None:
    collector = EventCollector()
    feed(
        collector,
        # a failure a block rescued: an event, but no failure of the host in Ansible's tally
        event("runner_on_failed", "paris", task="Try the fast path", res={"msg": "no fast path"}),
        event("runner_on_ok", "paris", task="Slow path", res={}),
        event("runner_on_ok", "sydney", task="Gathering Facts", res={}),
        event("runner_on_ok", "kinshasa", task="Gathering Facts", res={}),
        event("playbook_on_stats", failures={"kinshasa": 1}, dark={"sydney": 1}, ok={"paris": 1}),
    )
    assert collector.finished
    assert collector.hosts["paris"].outcome == "ok"
    assert collector.hosts["sydney"].outcome == "unreachable"
    assert collector.hosts["kinshasa"].outcome == "failed"


GATE_SKIP = {
    "outcome": "skipped",
    "reason": "cutoff: the step needs 45 min and the weekly window closes for new steps at 03:30 WAT",
    "next_opening": "2026-12-06T02:00:00+01:00",
}


def published(host: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The event of a set_stats task publishing ``entry`` for ``host`` (what its result carries)."""
    stats = {"data": {REPORT_STATS_KEY: {host: entry}}, "per_host": False, "aggregate": True}
    return event("runner_on_ok", host, task="Report the skipped clinic", res={"changed": False, "ansible_stats": stats})


def test_a_clinic_the_gate_skipped_is_skipped_the_moment_it_is_published() -> None:
    collector = EventCollector()
    feed(collector, event("runner_on_ok", "kinshasa", task="Ask the gate", res={}), published("kinshasa", GATE_SKIP))
    kinshasa = collector.hosts["kinshasa"]
    assert (kinshasa.outcome, kinshasa.report) == ("skipped", GATE_SKIP)
    # end_host: no failure in Ansible's tally; the final stats carry the same report
    feed(collector, event("playbook_on_stats", failures={}, dark={}, artifact_data={REPORT_STATS_KEY: {}}))
    assert kinshasa.outcome == "skipped"


def test_only_a_skip_of_the_event_host_counts() -> None:
    collector = EventCollector()
    other = published("paris", GATE_SKIP)
    other["event_data"]["host"] = "kinshasa"  # a run_once task publishing for another clinic
    feed(collector, other, published("sydney", {"reached": False}), published("lyon", {"outcome": "ok"}))
    assert {name: host.outcome for name, host in collector.hosts.items()} == {
        "kinshasa": "ok",
        "sydney": "ok",
        "lyon": "ok",
    }
    assert all(host.report == {} for host in collector.hosts.values())


@pytest.mark.parametrize(
    "data",
    [
        {"host": "paris", "res": {}},
        {"host": "paris", "res": {"ansible_stats": "not a dict"}},
        {"host": "paris", "res": {"ansible_stats": {"data": {REPORT_STATS_KEY: ["x"]}}}},
        {"host": "paris", "res": {"ansible_stats": {"data": {REPORT_STATS_KEY: {"paris": "skipped"}}}}},
    ],
)
def test_skip_report_of_other_results_is_none(data: dict[str, Any]) -> None:
    assert skip_report(data) is None


@pytest.mark.parametrize(
    ("report", "text"),
    [
        (GATE_SKIP, f"{GATE_SKIP['reason']}; next opening 2026-12-06T02:00:00+01:00"),
        (  # the evaluator's reason for a closed window names the next opening already
            {"reason": "closed: next opening Sun 2026-12-06 02:00 CAT (weekly window)", "next_opening": "x"},
            "closed: next opening Sun 2026-12-06 02:00 CAT (weekly window)",
        ),
        ({"reason": "frozen: year-end\n close", "next_opening": None}, "frozen: year-end close; no next opening"),
        ({}, "window closed; no next opening"),
    ],
)
def test_skip_text(report: dict[str, Any], text: str) -> None:
    assert skip_text(report) == text


def test_stats_without_a_tally_keep_the_event_counts() -> None:
    collector = EventCollector()
    feed(collector, event("runner_on_failed", "paris", res={"msg": "x"}), event("playbook_on_stats"))
    assert collector.finished
    assert collector.hosts["paris"].outcome == "failed"


def test_a_run_without_stats_is_not_finished() -> None:
    collector = EventCollector()
    feed(collector, event("runner_on_ok", "paris", res={}))
    assert not collector.finished


def test_first_and_last_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([100.0, 104.5, 107.25])
    monkeypatch.setattr(runner.time, "monotonic", lambda: next(clock))
    collector = EventCollector()
    feed(
        collector,
        event("runner_on_start", "paris", task="a"),
        event("runner_on_ok", "paris", task="a", res={}),
        event("runner_on_ok", "paris", task="b", res={}),
    )
    paris = collector.hosts["paris"]
    assert (paris.first_seen, paris.last_seen) == (100.0, 107.25)


# -- HostOutcome, failure_message, RunResult -------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "outcome"),
    [
        ({}, "not run"),
        ({"ok": 1}, "ok"),
        ({"changed": 1}, "ok"),
        ({"ok": 3, "failed": 1}, "failed"),
        ({"ok": 3, "failed": 1, "unreachable": True}, "unreachable"),
        ({"ok": 3, "failed": 1, "refused": True}, "refused"),
        ({"ok": 3, "refused": True}, "ok"),  # a refusal a rescue absorbed
        ({"ok": 2, "report": {"outcome": "skipped"}}, "skipped"),  # the window gate kept it out
        ({"report": {"outcome": "skipped"}}, "skipped"),
        ({"ok": 2, "failed": 1, "report": {"outcome": "skipped"}}, "failed"),  # a failure is a failure
        ({"unreachable": True, "report": {"outcome": "skipped"}}, "unreachable"),
        ({"ok": 2, "report": {"outcome": "ok"}}, "ok"),
    ],
)
def test_host_outcome(fields: dict[str, Any], outcome: str) -> None:
    assert HostOutcome(host="paris", **fields).outcome == outcome


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"msg": "the msg", "stderr": "the stderr"}, "the msg"),
        ({"msg": "", "stderr": "the stderr"}, "the stderr"),
        ({"reason": "host key mismatch"}, "host key mismatch"),
        ({"message": "module says no"}, "module says no"),
        ({"rc": 1}, "failed (no message)"),
        ({"msg": "  several\n\tlines \n of text "}, "several lines of text"),
    ],
)
def test_failure_message_picks_the_best_field(result: dict[str, Any], message: str) -> None:
    assert failure_message(result) == message


def test_failure_message_is_bounded() -> None:
    assert len(failure_message({"msg": "x" * 5000})) == 500


def test_run_result_failed_hosts() -> None:
    hosts = {
        "paris": HostOutcome("paris", ok=2),
        "kinshasa": HostOutcome("kinshasa", ok=1, failed=1),
        "sydney": HostOutcome("sydney", unreachable=True),
        "kolkata": HostOutcome("kolkata"),
    }
    result = RunResult(RUN_ID, "failed", 2, 1.0, hosts, Path("/tmp/run"))
    assert result.failed_hosts == ["kinshasa", "sydney"]


# -- run ids, state home, playbooks ----------------------------------------------------------------


def test_new_run_id_format_and_uniqueness() -> None:
    first, second = new_run_id("deploy"), new_run_id("deploy")
    assert re.fullmatch(r"\d{8}T\d{6}Z-deploy-[0-9a-f]{6}", first)
    assert first != second


def test_state_home_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLINICOPS_HOME", str(tmp_path))
    assert state_home() == tmp_path


def test_state_home_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CLINICOPS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert state_home() == tmp_path / ".clinicops"


def test_playbook_path_of_the_collection() -> None:
    assert playbook_path("health").name == "health.yml"
    assert playbook_path("health").is_file()


def test_playbook_path_unknown_is_usage_error() -> None:
    with pytest.raises(UsageError, match="no such playbook"):
        playbook_path("no-such-runbook")


# -- run_playbook (ansible_runner.run replaced by a fake that replays events) ----------------------


@pytest.fixture
def private(clinicops_home: Path) -> Path:
    return clinicops_home / "runs" / RUN_ID / "runner" / "01-01"


def write_command_artifact(private_data_dir: Path, env: dict[str, str]) -> Path:
    """What ansible-runner writes before Ansible starts: the command line and its whole environment."""
    command = private_data_dir / "artifacts" / "run" / "command"
    command.parent.mkdir(parents=True, exist_ok=True)
    command.write_text(
        json.dumps({"command": ["ansible-playbook", "health.yml"], "cwd": str(private_data_dir), "env": env})
    )
    command.chmod(0o600)
    return command


@pytest.fixture
def fake_runner(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """ansible_runner.run replaying a small health run; returns the kwargs of each call."""
    calls: list[dict[str, Any]] = []

    def run(
        event_handler: Callable[[dict[str, Any]], bool],
        status_handler: Callable[..., None],
        cancel_callback: Callable[[], bool],
        **kwargs: Any,
    ) -> SimpleNamespace:
        calls.append({**kwargs, "status_handler": status_handler, "cancel_callback": cancel_callback})
        assert Path(kwargs["private_data_dir"]).is_dir()
        for item in (
            event("runner_on_ok", "paris", task="Check", res={}),
            event("runner_on_failed", "kinshasa", task="Check", res={"msg": "HTTP 503"}),
            event(
                "playbook_on_stats",
                artifact_data={REPORT_STATS_KEY: {"paris": {"healthy": True}, "kinshasa": {"healthy": False}}},
            ),
        ):
            assert event_handler(item) is True
        return SimpleNamespace(status="failed", rc=2)

    monkeypatch.setattr(runner.ansible_runner, "run", run)
    return calls


def test_run_playbook_collects_outcomes_and_reports(
    playbook_and_inventory: tuple[Path, Path], private: Path, fake_runner: list[dict[str, Any]]
) -> None:
    seen: list[dict[str, Any]] = []
    result = run_playbook(make_run(playbook_and_inventory), private, on_event=seen.append)
    assert (result.run_id, result.status, result.rc) == (RUN_ID, "failed", 2)
    assert result.run_dir == private
    assert fake_runner[0]["private_data_dir"] == str(private)
    assert result.hosts["paris"].report == {"healthy": True}
    assert result.hosts["kinshasa"].report == {"healthy": False}
    assert result.hosts["kinshasa"].message == "HTTP 503"
    assert result.failed_hosts == ["kinshasa"]
    assert result.finished is True
    assert len(seen) == 3
    assert result.duration >= 0


def test_run_playbook_uses_the_given_collector(
    playbook_and_inventory: tuple[Path, Path], private: Path, fake_runner: list[dict[str, Any]]
) -> None:
    collector = EventCollector()
    collector.host("lyon")  # known before the run: a clinic of the wave without any event
    result = run_playbook(make_run(playbook_and_inventory), private, collector=collector)
    assert result.hosts is collector.hosts
    assert set(result.hosts) == {"lyon", "paris", "kinshasa"}
    assert result.hosts["lyon"].outcome == "not run"


def test_run_playbook_passes_the_cancel_callback(
    playbook_and_inventory: tuple[Path, Path], private: Path, fake_runner: list[dict[str, Any]]
) -> None:
    answers = iter([False, True])
    run_playbook(make_run(playbook_and_inventory), private / "a", cancel=lambda: next(answers))
    run_playbook(make_run(playbook_and_inventory), private / "b")
    given, default = (call["cancel_callback"] for call in fake_runner)
    assert (given(), given()) == (False, True)
    # Never None: runner would then install its own SIGINT/SIGTERM handlers over the CLI's.
    assert default() is False


def test_run_playbook_killed_before_the_stats_is_not_finished(
    playbook_and_inventory: tuple[Path, Path], private: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(event_handler: Callable[[dict[str, Any]], bool], **_kwargs: Any) -> SimpleNamespace:
        event_handler(event("runner_on_ok", "paris", task="Stop the app", res={"changed": True}))
        return SimpleNamespace(status="canceled", rc=254)

    monkeypatch.setattr(runner.ansible_runner, "run", run)
    result = run_playbook(make_run(playbook_and_inventory), private)
    assert (result.status, result.finished) == ("canceled", False)
    assert result.hosts["paris"].outcome == "ok"  # what ran; the report decides it is "aborted"


def test_run_playbook_run_dir_is_private(
    playbook_and_inventory: tuple[Path, Path], private: Path, fake_runner: list[dict[str, Any]]
) -> None:
    result = run_playbook(make_run(playbook_and_inventory), private)
    assert stat.S_IMODE(result.run_dir.stat().st_mode) == 0o700


def test_run_playbook_report_of_a_host_without_events(
    playbook_and_inventory: tuple[Path, Path], private: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(event_handler: Callable[[dict[str, Any]], bool], **_kwargs: Any) -> SimpleNamespace:
        event_handler(event("playbook_on_stats", artifact_data={REPORT_STATS_KEY: {"lordhowe": None}}))
        return SimpleNamespace(status="successful", rc=0)

    monkeypatch.setattr(runner.ansible_runner, "run", run)
    result = run_playbook(make_run(playbook_and_inventory), private)
    assert result.hosts["lordhowe"].report == {}


def test_run_playbook_refuses_an_existing_run_dir(
    playbook_and_inventory: tuple[Path, Path], private: Path, fake_runner: list[dict[str, Any]]
) -> None:
    private.mkdir(parents=True)
    (private / "keep").write_text("earlier run")
    with pytest.raises(UsageError, match="refusing to reuse"):
        run_playbook(make_run(playbook_and_inventory), private)
    assert fake_runner == []
    assert (private / "keep").read_text() == "earlier run"


def test_run_playbook_twice_in_one_dir_is_refused(
    playbook_and_inventory: tuple[Path, Path], private: Path, fake_runner: list[dict[str, Any]]
) -> None:
    run_playbook(make_run(playbook_and_inventory), private)
    with pytest.raises(UsageError):
        run_playbook(make_run(playbook_and_inventory), private)
    assert len(fake_runner) == 1


def test_run_playbook_usage_error_leaves_no_run_dir(
    playbook_and_inventory: tuple[Path, Path],
    private: Path,
    fake_runner: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    with pytest.raises(UsageError, match="inventory not found"):
        run_playbook(make_run(playbook_and_inventory, inventory=tmp_path / "absent"), private)
    assert fake_runner == []
    assert not private.exists()


# -- the command artifact: no secret of the controller's environment --------------------------------

OPERATOR_SECRET = "ghp_operatorTokenExportedInTheShell"


def test_scrub_keeps_names_and_our_values_only(tmp_path: Path) -> None:
    env = {
        "GITHUB_TOKEN": OPERATOR_SECRET,
        "PGPASSWORD": OPERATOR_SECRET,
        "HOME": "/home/operator",
        "CLINICOPS_RUN_ID": RUN_ID,
        "ANSIBLE_NOCOLOR": "True",
    }
    command = write_command_artifact(tmp_path, env)
    runner.scrub_command_artifact(tmp_path, {"CLINICOPS_RUN_ID": RUN_ID, "ANSIBLE_NOCOLOR": "True", "UNUSED": "x"})
    text = command.read_text()
    assert OPERATOR_SECRET not in text
    data = json.loads(text)
    assert data["env"] == {
        "ANSIBLE_NOCOLOR": "True",
        "CLINICOPS_RUN_ID": RUN_ID,
        "GITHUB_TOKEN": "<not recorded>",
        "HOME": "<not recorded>",
        "PGPASSWORD": "<not recorded>",
    }
    assert data["command"] == ["ansible-playbook", "health.yml"]  # the rest is kept
    assert data["cwd"] == str(tmp_path)
    assert stat.S_IMODE(command.stat().st_mode) == 0o600
    assert sorted(path.name for path in command.parent.iterdir()) == ["command"]  # no scratch file left


def test_scrub_leaves_what_it_cannot_read(tmp_path: Path) -> None:
    runner.scrub_command_artifact(tmp_path, {})  # no artifacts yet: nothing to do
    command = tmp_path / "artifacts" / "run" / "command"
    command.parent.mkdir(parents=True)
    command.write_text("not json")
    runner.scrub_command_artifact(tmp_path, {})
    assert command.read_text() == "not json"


def test_run_playbook_scrubs_the_command_before_ansible_starts_and_after(
    playbook_and_inventory: tuple[Path, Path], private: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPERATOR_TOKEN", OPERATOR_SECRET)
    seen_while_running: list[str] = []

    def run(
        event_handler: Callable[[dict[str, Any]], bool], status_handler: Callable[..., None], **kwargs: Any
    ) -> SimpleNamespace:
        # Like runner: the command file holds the whole environment of the Ansible process.
        command = write_command_artifact(Path(kwargs["private_data_dir"]), {**os.environ, **kwargs["envvars"]})
        status_handler({"status": "starting", "runner_ident": "run"}, runner_config=None)
        status_handler({"status": "running", "runner_ident": "run"}, runner_config=None)
        seen_while_running.append(command.read_text())
        write_command_artifact(Path(kwargs["private_data_dir"]), {"OPERATOR_TOKEN": OPERATOR_SECRET})
        return SimpleNamespace(status="successful", rc=0)

    monkeypatch.setattr(runner.ansible_runner, "run", run)
    run_playbook(make_run(playbook_and_inventory), private)
    (while_running,) = seen_while_running
    assert OPERATOR_SECRET not in while_running
    env = json.loads(while_running)["env"]
    assert env["OPERATOR_TOKEN"] == "<not recorded>"
    assert env["CLINICOPS_RUN_ID"] == RUN_ID  # a value clinicops set itself
    after = (private / "artifacts" / "run" / "command").read_text()
    assert OPERATOR_SECRET not in after  # scrubbed again once runner returned


def test_run_playbook_scrubs_even_when_runner_raises(
    playbook_and_inventory: tuple[Path, Path], private: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(**kwargs: Any) -> SimpleNamespace:
        write_command_artifact(Path(kwargs["private_data_dir"]), {"OPERATOR_TOKEN": OPERATOR_SECRET})
        raise OSError("runner could not start ansible-playbook")

    monkeypatch.setattr(runner.ansible_runner, "run", run)
    with pytest.raises(OSError, match="could not start"):
        run_playbook(make_run(playbook_and_inventory), private)
    assert OPERATOR_SECRET not in (private / "artifacts" / "run" / "command").read_text()
