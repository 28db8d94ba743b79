"""A fleet run: one procedure over the planned waves, one ansible-runner invocation per wave.

Contracts kept here:

- one run id (and so one release id, one lock owner on each clinic) for every wave and every
  ``resume`` of the run;
- a fresh runner ``private_data_dir`` per wave and attempt, never reused;
- the controller's clinic locks are held from before the first wave to after the last;
- a wave that failed more clinics than ``--max-fail-percentage`` allows stops the run: the later
  waves do not start and their clinics are reported ``not reached``;
- Ctrl-C once: the running wave finishes, no further wave starts. Twice (or SIGTERM): runner's
  ``cancel_callback`` stops Ansible now; the clinics of that wave are reported ``aborted``.
- a gated run may wait for a maintenance window before a wave (``--wait-for-window``); Ctrl-C
  during the wait stops the run there;
- a clinic skipped by the window gate is no failure of its wave (``--max-fail-percentage``), and
  not done: ``resume`` runs it again.
- the report is saved after every wave, so even a killed run says how far it got.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clinicops import __version__, report
from clinicops.errors import RefusedError, UsageError
from clinicops.files import write_private
from clinicops.locks import ControllerLocks
from clinicops.progress import Display
from clinicops.runner import EventCollector, PlaybookRun, playbook_path, run_playbook, state_home
from clinicops.waves import Wave

RUN_SPEC = "run.json"

# Called before a wave with (wave, say, stopped): waits as it sees fit; False when Ctrl-C stopped it.
WaveWait = Callable[[Wave, Callable[[str], None], Callable[[], bool]], bool]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class RunSpec:
    """Everything needed to run (and later resume) a procedure; saved as run.json. No secrets."""

    run_id: str
    command: str
    title: str
    playbook: str
    inventory: str
    limit: str | None = None
    vault_password_file: str | None = None
    extravars: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # shown in reports (version, release id, ...)
    check: bool = False
    verbosity: int = 0
    waves: str = "100%"
    max_fail_percentage: int = 0
    wave_pause: bool = False
    locks: bool = True
    wait_for_window_s: int = 0  # --wait-for-window: the longest wait for a window before a wave

    def save(self, run_dir: Path) -> None:
        write_private(run_dir / RUN_SPEC, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> RunSpec:
        try:
            data = json.loads((run_dir / RUN_SPEC).read_text(encoding="utf-8"))
            return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})
        except (OSError, ValueError, TypeError) as exc:
            raise UsageError(f"run {run_dir.name} cannot be resumed: {run_dir / RUN_SPEC}: {exc}") from exc


class Interrupts:
    """SIGINT/SIGTERM while a run is in progress: first press stops after the wave, second aborts."""

    def __init__(self, display: Display) -> None:
        self.display = display
        self.count = 0
        self.previous: dict[int, Any] = {}
        self.waiting = False  # between waves, waiting for a maintenance window: nothing runs

    @property
    def stop(self) -> bool:
        return self.count >= 1

    @property
    def abort(self) -> bool:
        return self.count >= 2

    def handle(self, signum: int, _frame: Any) -> None:
        first = self.count == 0
        if signum == signal.SIGTERM:
            self.count = max(self.count, 1)
        self.count += 1
        if self.waiting:  # nothing runs: any signal stops the wait, and the run before its next wave
            if first:
                self.display.message("Ctrl-C: the wait for the window stops, and the run with it")
        elif self.count == 1:
            self.display.message("Ctrl-C: the running wave finishes, then the run stops (Ctrl-C again aborts now)")
        elif self.count == 2:
            self.display.message("aborting: Ansible is being stopped; the clinics of this wave will show as aborted")

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


class FleetRun:
    def __init__(
        self,
        spec: RunSpec,
        display: Display,
        confirm: Callable[[str], bool] | None = None,
        run_dir: Path | None = None,
        wait: WaveWait | None = None,
    ) -> None:
        self.spec = spec
        self.display = display
        self.confirm = confirm  # asks the operator between waves (--wave-pause); None: never asks
        self.wait = wait  # before each wave of a gated run: the maintenance windows (windows.WindowWait)
        self.run_dir = run_dir or runs_dir() / spec.run_id
        self.base_duration = 0.0

    # -- the run ------------------------------------------------------------------------------

    def start(self, waves: list[Wave]) -> dict[str, Any]:
        """A new run: lock, record the plan, run the waves."""
        if self.run_dir.exists():
            raise UsageError(f"run directory already exists, refusing to reuse it: {self.run_dir}")
        hosts = [host for wave in waves for host in wave.hosts]
        with self._locks(hosts):
            self.run_dir.mkdir(parents=True, mode=0o700)
            self.spec.save(self.run_dir)
            state = self._new_report(waves)
            return self._attempt(state, waves, kind="run")

    def resume(self) -> tuple[dict[str, Any], list[Wave]]:
        """The waves still to do: the clinics of the run that did not succeed, in their waves."""
        state = report.load(self.run_dir)
        first = state["attempts"][0]["waves"] if state.get("attempts") else []
        todo = {row["clinic"] for row in state["clinics"] if row["outcome"] not in report.SUCCESS}
        waves = []
        for wave in first:
            hosts = tuple(host for host in wave["hosts"] if host in todo)
            if hosts:  # the wave keeps its number and name: "wave 3 of the run", not of this attempt
                waves.append(Wave(index=int(wave["index"]), name=wave["name"], hosts=hosts))
        return state, waves

    def continue_run(self, state: dict[str, Any], waves: list[Wave]) -> dict[str, Any]:
        hosts = [host for wave in waves for host in wave.hosts]
        with self._locks(hosts):
            state.pop("interrupted", None)
            return self._attempt(state, waves, kind="resume")

    def _locks(self, hosts: list[str]) -> contextlib.AbstractContextManager[Any]:
        if not self.spec.locks:
            return contextlib.nullcontext()
        locks = ControllerLocks(state_home() / "locks", self.spec.run_id, self.spec.command)
        locks.acquire(hosts)
        return locks

    def _new_report(self, waves: list[Wave]) -> dict[str, Any]:
        return {
            "run_id": self.spec.run_id,
            "command": self.spec.command,
            "title": self.spec.title,
            "status": "running",
            "exit_code": None,
            "started": _now(),
            "ended": None,
            "duration_s": 0,
            "user": getpass.getuser(),
            "controller": socket.gethostname(),
            "cli_version": __version__,
            "inventory": self.spec.inventory,
            "limit": self.spec.limit,
            "check": self.spec.check,
            "options": dict(self.spec.options),
            "report_path": str(self.run_dir / report.REPORT_MD),
            "attempts": [],
            "clinics": [report.not_reached(host, wave.name, 1) for wave in waves for host in wave.hosts],
            "counts": {},
        }

    def _attempt(self, state: dict[str, Any], waves: list[Wave], kind: str) -> dict[str, Any]:
        number = len(state["attempts"]) + 1
        attempt = {"attempt": number, "kind": kind, "started": _now(), "ended": None, "waves": []}
        for wave in waves:
            attempt["waves"].append({**wave.as_dict(), "status": "not started", "runner_dir": None})
        state["attempts"].append(attempt)
        for wave in waves:  # clinics of this attempt start as "not reached" until their wave runs
            self._put_rows(state, [report.not_reached(host, wave.name, number) for host in wave.hosts])
        started = time.monotonic()
        self.base_duration = float(state.get("duration_s") or 0)  # earlier attempts of the run
        note = f" (resume, attempt {number})" if kind == "resume" else ""
        self.display.plan(self.spec.title, self.spec.run_id, waves, note + (" — dry run" if self.spec.check else ""))
        self._save(state, started)
        total = max((wave.index for wave in waves), default=0)
        try:
            with Interrupts(self.display) as interrupts:
                self._waves(state, waves, number, total, attempt, interrupts, started)
        except Exception as exc:
            # A crash of the CLI itself (runner, disk): the report still says how far the run got.
            state["interrupted"] = f"aborted: {type(exc).__name__}: {exc}"
            attempt["ended"] = state["ended"] = _now()
            self._save(state, started, final=True)
            raise
        attempt["ended"] = _now()
        state["ended"] = attempt["ended"]
        return self._save(state, started, final=True)

    def _waves(
        self,
        state: dict[str, Any],
        waves: list[Wave],
        number: int,
        total: int,
        attempt: dict[str, Any],
        interrupts: Interrupts,
        started: float,
    ) -> None:
        for position, wave in enumerate(waves):
            record = attempt["waves"][position]
            if not self._wait(wave, record, interrupts):
                state["interrupted"] = "stopped while waiting for a maintenance window"
                self.display.message(f"stopped before wave {wave.index} ({wave.name}); later waves were not started")
                return
            rows = self._wave(wave, total, number, record, interrupts)
            self._put_rows(state, rows)
            self._save(state, started)
            if position + 1 < len(waves) and rows and all(row["outcome"] == report.SKIPPED for row in rows):
                if position == 0 and self.spec.command == "deploy":
                    # A canary that did not run proved nothing about the release: the fleet waits for it.
                    self.display.message(
                        f"stopping: the canary ({', '.join(wave.hosts)}) was skipped by its maintenance window, and "
                        "a deploy does not go on without its canary; later waves were not started "
                        f"(clinicops resume {self.spec.run_id} --wait-for-window, once its window opens)"
                    )
                    state["interrupted"] = "stopped: the canary was skipped by its maintenance window"
                    return
                self.display.message(
                    f"wave {wave.index} ({wave.name}): every clinic was skipped by its maintenance window; "
                    "the next wave goes on without its result"
                )
            stop = self._stop_reason(wave, rows, interrupts)
            if stop:
                if position + 1 < len(waves):
                    self.display.message(f"stopping: {stop}; later waves were not started")
                if interrupts.abort or (interrupts.stop and position + 1 < len(waves)):
                    state["interrupted"] = "aborted" if interrupts.abort else "stopped after the wave"
                return
            if position + 1 < len(waves) and self.spec.wave_pause and not self._confirm_next(waves[position + 1]):
                state["interrupted"] = "stopped at the wave pause"
                return

    def _wait(self, wave: Wave, record: dict[str, Any], interrupts: Interrupts) -> bool:
        """The maintenance window wait before a wave (none: go); False when Ctrl-C stopped it."""
        if self.wait is None:
            return True
        began = time.monotonic()
        interrupts.waiting = True
        try:
            go = self.wait(wave, self.display.message, lambda: interrupts.stop)
        finally:
            interrupts.waiting = False
        waited = round(time.monotonic() - began, 1)
        if waited >= 1:
            record["waited_s"] = waited
        return go and not interrupts.stop

    def _wave(
        self, wave: Wave, total: int, attempt: int, record: dict[str, Any], interrupts: Interrupts
    ) -> list[dict[str, Any]]:
        private = self.run_dir / "runner" / f"{attempt:02d}-{wave.index:02d}"
        record.update(status="running", runner_dir=str(private.relative_to(self.run_dir)), started=_now())
        collector = EventCollector(self.display.on_event)
        for host in wave.hosts:  # known up front: the live view iterates them from another thread
            collector.host(host)
        self.display.wave_started(wave, total, collector.hosts)
        run = PlaybookRun(
            playbook=playbook_path(self.spec.playbook),
            inventory=Path(self.spec.inventory),
            operation=self.spec.command,
            run_id=self.spec.run_id,
            limit=",".join(wave.hosts),
            extravars=self.spec.extravars,
            check=self.spec.check,
            verbosity=self.spec.verbosity,
            vault_password_file=Path(self.spec.vault_password_file) if self.spec.vault_password_file else None,
        )
        started = time.monotonic()
        try:
            result = run_playbook(run, private, collector=collector, cancel=lambda: interrupts.abort)
        finally:
            self.display.pause()
        rows = [
            report.clinic_row(host, wave.name, attempt, result.hosts.get(host), result.finished, self.spec.command)
            for host in wave.hosts
        ]
        record.update(
            status="aborted" if interrupts.abort else report.group_status(row["outcome"] for row in rows),
            rc=result.rc,
            duration_s=round(time.monotonic() - started, 1),
        )
        self.display.wave_finished(wave, total, rows, time.monotonic() - started)
        return rows

    def _stop_reason(self, wave: Wave, rows: list[dict[str, Any]], interrupts: Interrupts) -> str:
        if interrupts.abort:
            return "aborted by the operator"
        bad = [row["clinic"] for row in rows if row["outcome"] not in report.NOT_FAILED]
        if bad and len(bad) * 100 > self.spec.max_fail_percentage * len(rows):
            return (
                f"wave {wave.index} ({wave.name}) failed on {len(bad)} of {len(rows)} clinic(s) "
                f"({', '.join(bad)}; --max-fail-percentage {self.spec.max_fail_percentage})"
            )
        if interrupts.stop:
            return "Ctrl-C: stopped after the wave"
        return ""

    def _confirm_next(self, wave: Wave) -> bool:
        if self.confirm is None:
            return True
        self.display.pause()
        return self.confirm(f"start wave {wave.index} ({wave.name}: {', '.join(wave.hosts)})? [y/N] ")

    # -- the report ---------------------------------------------------------------------------

    @staticmethod
    def _put_rows(state: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        index = {row["clinic"]: position for position, row in enumerate(state["clinics"])}
        for row in rows:
            if row["clinic"] in index:
                state["clinics"][index[row["clinic"]]] = row
            else:
                state["clinics"].append(row)

    def _save(self, state: dict[str, Any], started: float, final: bool = False) -> dict[str, Any]:
        state["counts"] = report.summarize(state["clinics"])
        state["duration_s"] = round(self.base_duration + time.monotonic() - started, 1)
        if final:
            state["exit_code"] = report.exit_code(state)
            state["status"] = report.status_of(state)
        else:
            state["status"] = "running"
        report.save(self.run_dir, state)
        return state


def ask(prompt: str) -> bool:
    """A yes/no question on the terminal; Ctrl-C or end of input is a no."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return False
    finally:
        signal.signal(signal.SIGINT, previous)
    return answer.strip().lower() in ("y", "yes")


def refuse_if_not_confirmed(question: str, expected: str, given: str | None, yes: bool) -> str:
    """The confirmation a procedure needs: --confirm, --yes, or typed at the terminal."""
    if given is not None:
        return given
    if yes:
        return expected
    if not sys.stdin.isatty():
        raise RefusedError(f"{question}: give --confirm {expected} or --yes; nothing was changed")
    sys.stderr.write(f"{question}\ntype {expected} to go on: ")
    sys.stderr.flush()
    typed = sys.stdin.readline().strip()
    if typed != expected:
        raise RefusedError(f"confirmation {typed!r} is not {expected!r}; nothing was changed")
    return typed


def runs_dir() -> Path:
    return state_home() / "runs"
