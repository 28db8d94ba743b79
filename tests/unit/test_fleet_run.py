"""Fleet runs in waves, with ansible_runner.run replaced by a scripted fake (no Ansible, no clinic).

The fake plays each clinic of ``--limit`` as told (ok, failed, unreachable, refused, or skipped by
the maintenance window gate) and can act from inside the run: send the process a signal, look at
the controller locks, read the report.
"""

from __future__ import annotations

import io
import json
import signal
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from clinicops import report, runner
from clinicops.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, RefusedError, UsageError
from clinicops.fleet_run import FleetRun, Interrupts, RunSpec, ask, refuse_if_not_confirmed, runs_dir
from clinicops.inventory import Fleet
from clinicops.locks import ControllerLocks
from clinicops.progress import Display
from clinicops.runner import REPORT_STATS_KEY, state_home
from clinicops.waves import Wave, parse_wave_spec, plan_waves

RUN_ID = "20260101T000000Z-backup-abc123"
CLINICS = ("c1", "c2", "c3", "c4", "c5")
# What the window gate role publishes for a clinic it skips (set_stats), before meta: end_host.
GATE_SKIP = {
    "outcome": "skipped",
    "reason": "closed: next opening Sun 2026-12-06 02:00 CAT (weekly window)",
    "next_opening": "2026-12-06T02:00:00+02:00",
}


class RecordingDisplay(Display):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.finished: list[tuple[int, list[str]]] = []

    def message(self, text: str) -> None:
        self.messages.append(text)

    def wave_finished(self, wave: Wave, total: int, rows: Any, seconds: float) -> None:
        self.finished.append((wave.index, [row["outcome"] for row in rows]))


def event(kind: str, host: str | None = None, task: str = "", **data: Any) -> dict[str, Any]:
    event_data: dict[str, Any] = {"task": task, **data}
    if host is not None:
        event_data["host"] = host
    return {"event": kind, "event_data": event_data}


class FakeAnsible:
    """``ansible_runner.run``: plays the clinics of ``limit`` as scripted and records every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        # clinic -> ok | failed | unreachable | refused | skipped (default ok)
        self.outcomes: dict[str, str] = {}
        self.reports: dict[str, dict[str, Any]] = {}
        self.skips: dict[str, dict[str, Any]] = {}  # what the gate publishes for a skipped clinic (GATE_SKIP)
        self.before_clinic: Callable[[dict[str, Any], str], None] | None = None  # (call, clinic)

    def __call__(
        self,
        event_handler: Callable[[dict[str, Any]], bool],
        status_handler: Callable[..., None],
        cancel_callback: Callable[[], bool],
        **kwargs: Any,
    ) -> SimpleNamespace:
        private = Path(kwargs["private_data_dir"])
        call = {**kwargs, "fresh": private.is_dir() and not any(private.iterdir()), "cancel_seen": []}
        self.calls.append(call)
        status_handler({"status": "starting", "runner_ident": "run"}, runner_config=None)
        status_handler({"status": "running", "runner_ident": "run"}, runner_config=None)
        failures: dict[str, int] = {}
        dark: dict[str, int] = {}
        published = dict(self.reports)
        for clinic in kwargs["limit"].split(","):
            if self.before_clinic:
                self.before_clinic(call, clinic)
            call["cancel_seen"].append(cancel_callback())
            if call["cancel_seen"][-1]:  # runner kills Ansible: no more events, no stats
                return SimpleNamespace(status="canceled", rc=254)
            outcome = self.outcomes.get(clinic, "ok")
            if outcome == "skipped":  # the gate: asked, publishes the skip, then end_host (no failure)
                skip = self.skips.get(clinic, GATE_SKIP)
                event_handler(event("runner_on_ok", clinic, task="Ask the maintenance window gate", res={}))
                stats = {"data": {REPORT_STATS_KEY: {clinic: skip}}, "per_host": False, "aggregate": True}
                res = {"changed": False, "ansible_stats": stats}
                event_handler(event("runner_on_ok", clinic, task="Report the skipped clinic", res=res))
                published[clinic] = skip
                continue
            event_handler(event("runner_on_start", clinic, task="Take the backup"))
            event_handler(event("runner_on_ok", clinic, task="Take the backup", res={"changed": True}))
            if outcome in ("failed", "refused"):
                res = {"msg": f"{clinic}: it broke", "refused": outcome == "refused"}
                event_handler(event("runner_on_failed", clinic, task="Verify the snapshot", res=res))
                failures[clinic] = 1
            elif outcome == "unreachable":
                event_handler(event("runner_on_unreachable", clinic, task="Gathering Facts", res={"msg": "timed out"}))
                dark[clinic] = 1
        stats = {REPORT_STATS_KEY: published}
        event_handler(event("playbook_on_stats", failures=failures, dark=dark, artifact_data=stats))
        failed = bool(failures or dark)
        return SimpleNamespace(status="failed" if failed else "successful", rc=2 if failed else 0)


@pytest.fixture
def home(clinicops_home: Path) -> Path:
    return clinicops_home


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, home: Path) -> FakeAnsible:
    fake = FakeAnsible()
    monkeypatch.setattr(runner.ansible_runner, "run", fake)
    return fake


@pytest.fixture
def inventory(inventory_dir: Path) -> Path:
    return inventory_dir


@pytest.fixture
def sigint_handler() -> Iterator[Any]:
    """The SIGINT handler in force before a run (a run must put it back)."""
    yield signal.getsignal(signal.SIGINT)


def make_spec(inventory: Path, **overrides: Any) -> RunSpec:
    fields: dict[str, Any] = {
        "run_id": RUN_ID,
        "command": "backup",
        "title": "backup",
        "playbook": "backup",
        "inventory": str(inventory),
        "extravars": {"backup_release_id": "20260101T000000Z-2.0.0"},
        "options": {"backup_release_id": "20260101T000000Z-2.0.0"},
        "waves": "1,2",
    }
    return RunSpec(**(fields | overrides))


def waves_of(spec: str, hosts: tuple[str, ...] = CLINICS) -> list[Wave]:
    return plan_waves(Fleet(hosts=hosts), parse_wave_spec(spec))


def start(inventory: Path, spec: str = "1,2", display: Display | None = None, **overrides: Any) -> dict[str, Any]:
    return FleetRun(make_spec(inventory, waves=spec, **overrides), display or RecordingDisplay()).start(waves_of(spec))


def outcomes(state: dict[str, Any]) -> dict[str, str]:
    return {row["clinic"]: row["outcome"] for row in state["clinics"]}


def run_dir() -> Path:
    return runs_dir() / RUN_ID


def send_from_inside(signum: signal.Signals, times: int = 1) -> None:
    """Signal this process as an operator would, but only while the run's own handler is installed."""
    handler = signal.getsignal(signum)
    if not isinstance(getattr(handler, "__self__", None), Interrupts):
        raise AssertionError(f"the run did not install its {signum.name} handler (found {handler!r})")
    for _ in range(times):
        signal.raise_signal(signum)


# -- waves in order, one run id ----------------------------------------------------------------------


def test_waves_run_in_order_with_the_same_run_id_and_extra_vars(inventory: Path, fake: FakeAnsible, home: Path) -> None:
    state = start(inventory)
    assert [call["limit"] for call in fake.calls] == ["c1", "c2,c3", "c4,c5"]
    extravars = fake.calls[0]["extravars"]
    assert extravars["backup_release_id"] == "20260101T000000Z-2.0.0"
    assert extravars["clinicops_run_id"] == RUN_ID
    for call in fake.calls:
        assert call["extravars"] == extravars  # every wave: the same run, the same release
        assert call["envvars"]["CLINICOPS_RUN_ID"] == RUN_ID
        assert call["playbook"] == "backup.yml"
    assert [call["private_data_dir"] for call in fake.calls] == [
        str(home / "runs" / RUN_ID / "runner" / name) for name in ("01-01", "01-02", "01-03")
    ]
    assert (state["exit_code"], state["status"]) == (EXIT_OK, "ok")
    assert [(row["clinic"], row["wave"], row["attempt"], row["outcome"]) for row in state["clinics"]] == [
        ("c1", "canary", 1, "ok"),
        ("c2", "wave 2", 1, "ok"),
        ("c3", "wave 2", 1, "ok"),
        ("c4", "wave 3", 1, "ok"),
        ("c5", "wave 3", 1, "ok"),
    ]
    assert state["counts"] == {"ok": 5}
    (attempt,) = state["attempts"]
    assert attempt["kind"] == "run" and attempt["ended"]
    assert [(wave["status"], wave["runner_dir"]) for wave in attempt["waves"]] == [
        ("ok", "runner/01-01"),
        ("ok", "runner/01-02"),
        ("ok", "runner/01-03"),
    ]


def test_the_run_leaves_its_spec_and_reports(inventory: Path, fake: FakeAnsible) -> None:
    state = start(inventory)
    assert report.load(run_dir()) == state
    assert RunSpec.load(run_dir()) == make_spec(inventory)
    for name in ("run.json", "report.json", "report.md"):
        assert stat.S_IMODE((run_dir() / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(run_dir().stat().st_mode) == 0o700
    assert state["report_path"] == str(run_dir() / "report.md")
    assert "| c5 | ok | wave 3 | 1 |" in (run_dir() / "report.md").read_text()


def test_the_report_is_saved_after_every_wave(inventory: Path, fake: FakeAnsible) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    def read_report(call: dict[str, Any], clinic: str) -> None:
        if clinic in ("c2", "c4"):  # the first clinic of waves 2 and 3
            saved = json.loads((run_dir() / "report.json").read_text())
            seen.append((saved["status"], outcomes(saved)))

    fake.before_clinic = read_report
    start(inventory)
    assert seen == [
        ("running", {"c1": "ok", "c2": "not reached", "c3": "not reached", "c4": "not reached", "c5": "not reached"}),
        ("running", {"c1": "ok", "c2": "ok", "c3": "ok", "c4": "not reached", "c5": "not reached"}),
    ]


# -- a failing wave stops the run ------------------------------------------------------------------


def test_a_failing_canary_stops_the_later_waves(inventory: Path, fake: FakeAnsible) -> None:
    fake.outcomes["c1"] = "failed"
    display = RecordingDisplay()
    state = start(inventory, display=display)
    assert [call["limit"] for call in fake.calls] == ["c1"]
    assert outcomes(state) == {"c1": "failed"} | dict.fromkeys(("c2", "c3", "c4", "c5"), "not reached")
    c1 = state["clinics"][0]
    assert (c1["failed_task"], c1["message"]) == ("Verify the snapshot", "c1: it broke")
    assert (state["exit_code"], state["status"]) == (EXIT_FAILED, "failed")
    assert [wave["status"] for wave in state["attempts"][0]["waves"]] == ["failed", "not started", "not started"]
    assert display.messages == [
        "stopping: wave 1 (canary) failed on 1 of 1 clinic(s) (c1; --max-fail-percentage 0); later waves were not "
        "started"
    ]
    assert report.load(run_dir()) == state
    markdown = (run_dir() / "report.md").read_text()
    assert "| c2 | not reached | wave 2 | 1 |" in markdown
    assert "Verify the snapshot: c1: it broke" in markdown
    assert f"`clinicops resume {RUN_ID}`" in markdown


def test_an_unreachable_clinic_fails_its_wave(inventory: Path, fake: FakeAnsible) -> None:
    fake.outcomes["c3"] = "unreachable"
    state = start(inventory)
    assert len(fake.calls) == 2
    assert outcomes(state) == {"c1": "ok", "c2": "ok", "c3": "unreachable", "c4": "not reached", "c5": "not reached"}
    assert state["exit_code"] == EXIT_FAILED


def test_a_refused_clinic_stops_the_run_and_exits_3(inventory: Path, fake: FakeAnsible) -> None:
    fake.outcomes["c1"] = "refused"  # e.g. the lock on the clinic is held by AWX
    state = start(inventory)
    assert len(fake.calls) == 1
    assert state["clinics"][0]["outcome"] == "refused"
    assert (state["exit_code"], state["status"]) == (EXIT_REFUSED, "refused")


@pytest.mark.parametrize(("max_fail", "waves_run"), [(0, 1), (24, 1), (25, 2), (100, 2)])
def test_max_fail_percentage_is_the_tolerance_of_a_wave(
    inventory: Path, fake: FakeAnsible, max_fail: int, waves_run: int
) -> None:
    hosts = tuple(f"c{number}" for number in range(1, 9))
    fake.outcomes["c2"] = "failed"  # 1 of the 4 clinics of wave 1: 25 %
    spec = make_spec(inventory, waves="4", max_fail_percentage=max_fail)
    state = FleetRun(spec, RecordingDisplay()).start(waves_of("4", hosts))
    assert len(fake.calls) == waves_run
    assert state["exit_code"] == EXIT_FAILED  # tolerated or not, the clinic failed
    later = {row["outcome"] for row in state["clinics"][4:]}
    assert later == ({"ok"} if waves_run == 2 else {"not reached"})


# -- clinics skipped by the maintenance window gate ----------------------------------------------


def test_a_skipped_clinic_is_no_failure_of_its_wave_and_the_run_is_partial(inventory: Path, fake: FakeAnsible) -> None:
    fake.outcomes["c2"] = "skipped"
    display = RecordingDisplay()
    state = start(inventory, display=display)
    assert [call["limit"] for call in fake.calls] == ["c1", "c2,c3", "c4,c5"]  # max-fail-percentage 0: no stop
    assert outcomes(state) == {"c1": "ok", "c2": "skipped", "c3": "ok", "c4": "ok", "c5": "ok"}
    c2 = state["clinics"][1]
    assert c2["message"] == GATE_SKIP["reason"]
    assert c2["details"] == {"next_opening": "2026-12-06T02:00:00+02:00"}
    assert (c2["failed"], c2["failed_task"]) == (0, "")
    assert (state["exit_code"], state["status"], state["counts"]) == (EXIT_OK, "partial", {"ok": 4, "skipped": 1})
    assert [wave["status"] for wave in state["attempts"][0]["waves"]] == ["ok", "partial", "ok"]
    assert display.finished[1] == (2, ["skipped", "ok"])
    assert display.messages == []
    markdown = (run_dir() / "report.md").read_text()
    assert f"Run the skipped clinics once their window opens: `clinicops resume {RUN_ID} --wait-for-window`" in markdown


def test_a_failure_beside_a_skip_still_stops_the_run(inventory: Path, fake: FakeAnsible) -> None:
    fake.outcomes.update(c2="skipped", c3="failed")
    state = start(inventory)
    assert len(fake.calls) == 2
    assert outcomes(state) == {"c1": "ok", "c2": "skipped", "c3": "failed", "c4": "not reached", "c5": "not reached"}
    assert (state["exit_code"], state["status"]) == (EXIT_FAILED, "failed")


def test_a_canary_every_clinic_of_which_was_skipped_is_said(inventory: Path, fake: FakeAnsible) -> None:
    fake.outcomes.update(dict.fromkeys(CLINICS, "skipped"))
    display = RecordingDisplay()
    state = start(inventory, display=display)
    assert len(fake.calls) == 3
    assert (state["exit_code"], state["status"]) == (EXIT_OK, "skipped")
    assert [wave["status"] for wave in state["attempts"][0]["waves"]] == ["skipped"] * 3
    assert display.messages == [
        "wave 1 (canary): every clinic was skipped by its maintenance window; the next wave goes on without its result",
        "wave 2 (wave 2): every clinic was skipped by its maintenance window; the next wave goes on without its result",
    ]


def test_resume_runs_the_skipped_clinics_again(inventory: Path, fake: FakeAnsible) -> None:
    fake.outcomes.update(c2="skipped", c5="skipped")
    start(inventory)
    fake.outcomes.clear()
    fake.calls.clear()
    resumed = FleetRun(RunSpec.load(run_dir()), RecordingDisplay(), run_dir=run_dir())
    state, waves = resumed.resume()
    assert waves == [Wave(2, "wave 2", ("c2",)), Wave(3, "wave 3", ("c5",))]
    final = resumed.continue_run(state, waves)
    assert [call["limit"] for call in fake.calls] == ["c2", "c5"]
    assert (final["status"], final["exit_code"]) == ("ok", EXIT_OK)
    assert [(row["clinic"], row["attempt"]) for row in final["clinics"]] == [
        ("c1", 1),
        ("c2", 2),
        ("c3", 1),
        ("c4", 1),
        ("c5", 2),
    ]


def test_a_skip_seen_before_an_abort_stays_a_skip(inventory: Path, fake: FakeAnsible, sigint_handler: Any) -> None:
    fake.outcomes["c1"] = "skipped"
    fake.before_clinic = lambda call, clinic: send_from_inside(signal.SIGINT, times=2) if clinic == "c2" else None
    state = start(inventory, spec="2")
    # c1 was skipped (nothing done on it) before Ansible was stopped; c2 was cut short
    assert outcomes(state) == {"c1": "skipped", "c2": "aborted"} | dict.fromkeys(("c3", "c4", "c5"), "not reached")
    assert state["clinics"][0]["message"] == GATE_SKIP["reason"]


# -- waiting for a maintenance window before a wave -------------------------------------------------


class ScriptedWait:
    """The wait before each wave: records the waves it saw and answers as scripted."""

    def __init__(self, answers: dict[int, bool] | None = None, inside: Callable[[], None] | None = None) -> None:
        self.answers = answers or {}
        self.inside = inside
        self.seen: list[tuple[int, bool]] = []

    def __call__(self, wave: Wave, say: Callable[[str], None], stopped: Callable[[], bool]) -> bool:
        if self.inside:
            self.inside()
        self.seen.append((wave.index, stopped()))
        say(f"looked at wave {wave.index}")
        return self.answers.get(wave.index, True) and not stopped()


def test_the_wait_is_asked_before_each_wave(inventory: Path, fake: FakeAnsible) -> None:
    wait = ScriptedWait()
    display = RecordingDisplay()
    state = FleetRun(make_spec(inventory), display, wait=wait).start(waves_of("1,2"))
    assert wait.seen == [(1, False), (2, False), (3, False)]
    assert display.messages == ["looked at wave 1", "looked at wave 2", "looked at wave 3"]
    assert state["status"] == "ok" and len(fake.calls) == 3


def test_a_wait_stopped_by_the_operator_stops_the_run_before_its_wave(inventory: Path, fake: FakeAnsible) -> None:
    display = RecordingDisplay()
    state = FleetRun(make_spec(inventory), display, wait=ScriptedWait({2: False})).start(waves_of("1,2"))
    assert [call["limit"] for call in fake.calls] == ["c1"]
    assert outcomes(state) == {"c1": "ok"} | dict.fromkeys(("c2", "c3", "c4", "c5"), "not reached")
    assert state["interrupted"] == "stopped while waiting for a maintenance window"
    assert (state["exit_code"], state["status"]) == (EXIT_INTERRUPTED, "stopped")
    assert [wave["status"] for wave in state["attempts"][0]["waves"]] == ["ok", "not started", "not started"]
    assert display.messages[-1] == "stopped before wave 2 (wave 2); later waves were not started"


def test_ctrl_c_during_the_wait_stops_the_run(inventory: Path, fake: FakeAnsible, sigint_handler: Any) -> None:
    display = RecordingDisplay()
    wait = ScriptedWait(inside=lambda: send_from_inside(signal.SIGINT))
    state = FleetRun(make_spec(inventory), display, wait=wait).start(waves_of("1,2"))
    assert wait.seen == [(1, True)]
    assert fake.calls == []
    assert set(outcomes(state).values()) == {"not reached"}
    assert (state["exit_code"], state["status"]) == (EXIT_INTERRUPTED, "stopped")
    assert display.messages[0] == "Ctrl-C: the wait for the window stops, and the run with it"
    assert signal.getsignal(signal.SIGINT) is sigint_handler


def test_sigterm_during_the_wait_stops_the_run_and_aborts_nothing(
    inventory: Path, fake: FakeAnsible, sigint_handler: Any
) -> None:
    display = RecordingDisplay()
    wait = ScriptedWait(inside=lambda: send_from_inside(signal.SIGTERM))
    state = FleetRun(make_spec(inventory), display, wait=wait).start(waves_of("1,2"))
    assert fake.calls == []
    assert (state["exit_code"], state["status"]) == (EXIT_INTERRUPTED, "stopped")  # nothing was cut short
    assert display.messages[0] == "Ctrl-C: the wait for the window stops, and the run with it"


def test_the_time_a_wave_waited_is_in_the_report(
    inventory: Path, fake: FakeAnsible, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.monotonic
    offset = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: real() + offset[0])
    waits = iter([0.0, 11520.0, 0.0])  # wave 2 waited 3 h 12 min for its window
    wait = ScriptedWait(inside=lambda: offset.__setitem__(0, offset[0] + next(waits)))
    state = FleetRun(make_spec(inventory), RecordingDisplay(), wait=wait).start(waves_of("1,2"))
    assert [wave.get("waited_s") for wave in state["attempts"][0]["waves"]] == [None, pytest.approx(11520, abs=1), None]
    assert "| 2. wave 2 | c2, c3 | ok (waited 3 h 12 min for a maintenance window) |" in (
        (run_dir() / "report.md").read_text()
    )


# -- resume ----------------------------------------------------------------------------------------


def test_resume_reruns_only_what_did_not_succeed_with_the_same_run_id(
    inventory: Path, fake: FakeAnsible, home: Path
) -> None:
    fake.outcomes["c3"] = "failed"
    first = start(inventory)
    assert outcomes(first) == {"c1": "ok", "c2": "ok", "c3": "failed", "c4": "not reached", "c5": "not reached"}
    fake.outcomes.clear()
    fake.calls.clear()

    resumed = FleetRun(RunSpec.load(run_dir()), RecordingDisplay(), run_dir=run_dir())
    state, waves = resumed.resume()
    assert waves == [Wave(2, "wave 2", ("c3",)), Wave(3, "wave 3", ("c4", "c5"))]  # the run's order, names, numbers
    final = resumed.continue_run(state, waves)

    assert [call["limit"] for call in fake.calls] == ["c3", "c4,c5"]
    assert {call["extravars"]["clinicops_run_id"] for call in fake.calls} == {RUN_ID}
    assert [call["private_data_dir"] for call in fake.calls] == [
        str(home / "runs" / RUN_ID / "runner" / name) for name in ("02-02", "02-03")
    ]
    assert (final["exit_code"], final["status"], final["run_id"]) == (EXIT_OK, "ok", RUN_ID)
    assert [attempt["kind"] for attempt in final["attempts"]] == ["run", "resume"]
    assert [(row["clinic"], row["wave"], row["attempt"], row["outcome"]) for row in final["clinics"]] == [
        ("c1", "canary", 1, "ok"),
        ("c2", "wave 2", 1, "ok"),
        ("c3", "wave 2", 2, "ok"),
        ("c4", "wave 3", 2, "ok"),
        ("c5", "wave 3", 2, "ok"),
    ]
    assert final["started"] == first["started"]
    assert report.load(run_dir()) == final
    assert "## Attempt 2 (resume" in (run_dir() / "report.md").read_text()
    assert "clinicops resume" not in (run_dir() / "report.md").read_text()


def test_a_resume_of_a_finished_run_has_nothing_to_do(inventory: Path, fake: FakeAnsible) -> None:
    start(inventory)
    state, waves = FleetRun(RunSpec.load(run_dir()), RecordingDisplay(), run_dir=run_dir()).resume()
    assert waves == []
    assert state["status"] == "ok"


def test_private_dirs_are_never_reused(inventory: Path, fake: FakeAnsible) -> None:
    fake.outcomes["c1"] = "failed"
    start(inventory)
    for _ in range(2):  # a resume that fails again, then one that succeeds
        resumed = FleetRun(RunSpec.load(run_dir()), RecordingDisplay(), run_dir=run_dir())
        resumed.continue_run(*resumed.resume())
        fake.outcomes.clear()
    dirs = [call["private_data_dir"] for call in fake.calls]
    assert len(dirs) == len(set(dirs)) == 1 + 1 + 3
    assert all(call["fresh"] for call in fake.calls)


def test_a_run_id_is_never_started_twice(inventory: Path, fake: FakeAnsible) -> None:
    first = start(inventory)
    fake.calls.clear()
    with pytest.raises(UsageError, match="refusing to reuse"):
        start(inventory)
    assert fake.calls == []
    assert report.load(run_dir()) == first


# -- Ctrl-C and SIGTERM ----------------------------------------------------------------------------


def test_first_ctrl_c_finishes_the_wave_then_stops(inventory: Path, fake: FakeAnsible, sigint_handler: Any) -> None:
    fake.before_clinic = lambda call, clinic: send_from_inside(signal.SIGINT) if clinic == "c2" else None
    display = RecordingDisplay()
    state = start(inventory, spec="2", display=display)
    assert [call["limit"] for call in fake.calls] == ["c1,c2"]  # wave 2 never started
    assert fake.calls[0]["cancel_seen"] == [False, False]  # Ansible was not stopped
    assert outcomes(state) == {"c1": "ok", "c2": "ok", "c3": "not reached", "c4": "not reached", "c5": "not reached"}
    assert (state["exit_code"], state["status"]) == (EXIT_INTERRUPTED, "stopped")
    assert state["interrupted"] == "stopped after the wave"
    assert display.messages[0].startswith("Ctrl-C: the running wave finishes")
    assert report.load(run_dir())["status"] == "stopped"
    assert signal.getsignal(signal.SIGINT) is sigint_handler


def test_second_ctrl_c_aborts_the_running_wave(inventory: Path, fake: FakeAnsible, sigint_handler: Any) -> None:
    fake.before_clinic = lambda call, clinic: send_from_inside(signal.SIGINT, times=2) if clinic == "c2" else None
    state = start(inventory, spec="2")
    (call,) = fake.calls
    assert call["cancel_seen"] == [False, True]  # runner's cancel_callback said stop
    assert outcomes(state) == {"c1": "aborted", "c2": "aborted"} | dict.fromkeys(("c3", "c4", "c5"), "not reached")
    assert state["status"] == "aborted"
    assert state["interrupted"] == "aborted"
    assert state["exit_code"] == EXIT_FAILED  # clinics were left mid-procedure
    assert state["attempts"][0]["waves"][0]["status"] == "aborted"
    assert signal.getsignal(signal.SIGINT) is sigint_handler

    fake.before_clinic = None  # and the aborted clinics are resumed like any other
    resumed = FleetRun(RunSpec.load(run_dir()), RecordingDisplay(), run_dir=run_dir())
    final = resumed.continue_run(*resumed.resume())
    assert [call["limit"] for call in fake.calls[1:]] == ["c1,c2", "c3,c4", "c5"]
    assert (final["status"], final["exit_code"]) == ("ok", EXIT_OK)
    assert "interrupted" not in final


def test_sigterm_aborts_at_once(inventory: Path, fake: FakeAnsible) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    fake.before_clinic = lambda call, clinic: send_from_inside(signal.SIGTERM) if clinic == "c1" else None
    state = start(inventory, spec="2")
    assert fake.calls[0]["cancel_seen"] == [True]
    assert state["status"] == "aborted"
    assert set(outcomes(state).values()) == {"aborted", "not reached"}
    assert signal.getsignal(signal.SIGTERM) is previous


def test_interrupts_count_presses() -> None:
    display = RecordingDisplay()
    interrupts = Interrupts(display)
    assert (interrupts.stop, interrupts.abort) == (False, False)
    interrupts.handle(signal.SIGINT, None)
    assert (interrupts.stop, interrupts.abort) == (True, False)
    interrupts.handle(signal.SIGINT, None)
    assert (interrupts.stop, interrupts.abort) == (True, True)
    assert len(display.messages) == 2 and display.messages[1].startswith("aborting")


# -- pauses between waves --------------------------------------------------------------------------


def test_wave_pause_asks_before_each_next_wave(inventory: Path, fake: FakeAnsible) -> None:
    prompts: list[str] = []
    spec = make_spec(inventory, wave_pause=True)
    FleetRun(spec, RecordingDisplay(), confirm=lambda prompt: prompts.append(prompt) or True).start(waves_of("1,2"))
    assert len(fake.calls) == 3
    assert prompts == ["start wave 2 (wave 2: c2, c3)? [y/N] ", "start wave 3 (wave 3: c4, c5)? [y/N] "]


def test_no_at_the_wave_pause_stops_the_run(inventory: Path, fake: FakeAnsible) -> None:
    spec = make_spec(inventory, wave_pause=True)
    state = FleetRun(spec, RecordingDisplay(), confirm=lambda prompt: False).start(waves_of("1,2"))
    assert len(fake.calls) == 1
    assert state["interrupted"] == "stopped at the wave pause"
    assert (state["exit_code"], state["status"]) == (EXIT_INTERRUPTED, "stopped")


# -- controller locks ------------------------------------------------------------------------------


def intruder() -> ControllerLocks:
    return ControllerLocks(state_home() / "locks", "20260101T000100Z-deploy-ffffff", "deploy")


def test_controller_locks_are_held_during_the_run_and_released_after(inventory: Path, fake: FakeAnsible) -> None:
    refusals: list[str] = []

    def try_to_take(call: dict[str, Any], clinic: str) -> None:
        other = intruder()
        for host in CLINICS:  # every clinic of the run, from before the first wave to after the last
            with pytest.raises(RefusedError, match=RUN_ID):
                other.acquire([host])
            refusals.append(host)

    fake.before_clinic = try_to_take
    start(inventory)
    assert len(refusals) == len(CLINICS) * len(CLINICS)
    other = intruder()
    other.acquire(list(CLINICS))
    other.release()


def test_a_clinic_locked_by_another_run_refuses_the_whole_run(inventory: Path, fake: FakeAnsible) -> None:
    other = intruder()
    other.acquire(["c4"])
    try:
        with pytest.raises(RefusedError, match=r"holds 1 of these clinics: c4 \(run 20260101T000100Z-deploy-ffffff"):
            start(inventory)
    finally:
        other.release()
    assert fake.calls == []
    assert not run_dir().exists()
    intruder().acquire(list(CLINICS[:3]))  # the refused run kept none of the others


def test_a_procedure_without_locks_takes_none(inventory: Path, fake: FakeAnsible) -> None:
    taken: list[str] = []

    def take(call: dict[str, Any], clinic: str) -> None:
        other = intruder()
        other.acquire([clinic])
        taken.append(clinic)
        other.release()

    fake.before_clinic = take
    fake.reports = {clinic: {"healthy": True} for clinic in CLINICS}
    state = start(inventory, spec="100%", command="health", playbook="health", locks=False)
    assert taken == list(CLINICS)
    assert set(outcomes(state).values()) == {"healthy"}


def test_a_crash_inside_a_wave_releases_locks_and_signal_handlers(
    inventory: Path, fake: FakeAnsible, sigint_handler: Any
) -> None:
    def crash(call: dict[str, Any], clinic: str) -> None:
        raise RuntimeError("runner blew up")

    fake.before_clinic = crash
    with pytest.raises(RuntimeError, match="runner blew up"):
        start(inventory)
    assert signal.getsignal(signal.SIGINT) is sigint_handler
    intruder().acquire(list(CLINICS))


# -- run.json, confirmations -----------------------------------------------------------------------


def test_run_spec_round_trip_ignores_unknown_keys(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, check=True, verbosity=2, max_fail_percentage=10)
    spec.save(tmp_path)
    data = json.loads((tmp_path / "run.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps(data | {"added_later": 1}))
    assert RunSpec.load(tmp_path) == spec


@pytest.mark.parametrize("content", [None, "not json", '{"run_id": "x"}'])
def test_a_run_without_a_usable_spec_cannot_be_resumed(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "run.json").write_text(content)
    with pytest.raises(UsageError, match="cannot be resumed"):
        RunSpec.load(tmp_path)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_confirmation_given_or_yes() -> None:
    assert refuse_if_not_confirmed("restore paris", "paris", "paris", yes=False) == "paris"
    assert refuse_if_not_confirmed("restore paris", "paris", "x", yes=True) == "x"  # the caller compares
    assert refuse_if_not_confirmed("restore paris", "paris", None, yes=True) == "paris"


def test_confirmation_without_a_terminal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("paris\n"))
    with pytest.raises(RefusedError, match="give --confirm paris or --yes; nothing was changed"):
        refuse_if_not_confirmed("restore paris", "paris", None, yes=False)


def test_confirmation_typed_at_the_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("paris\n"))
    assert refuse_if_not_confirmed("restore paris", "paris", None, yes=False) == "paris"
    assert "type paris to go on" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", Terminal("pari\n"))
    with pytest.raises(RefusedError, match="'pari' is not 'paris'"):
        refuse_if_not_confirmed("restore paris", "paris", None, yes=False)


@pytest.mark.parametrize(("typed", "answer"), [("y\n", True), ("YES\n", True), ("n\n", False), ("", False)])
def test_ask(monkeypatch: pytest.MonkeyPatch, typed: str, answer: bool) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    assert ask("go? ") is answer
