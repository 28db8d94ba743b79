"""Run one of the collection's playbooks through ansible-runner and collect per-clinic outcomes.

Only the public ``ansible_runner.run`` API is used. Every run gets a fresh ``private_data_dir``
(runner would otherwise leak extra vars from one run into the next), env files are suppressed,
and secrets are never passed as extra vars or environment: they reach Ansible only through
inventory files (vault-encrypted) and a vault password file.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import shlex
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ansible_runner

from clinicops.audit import CALLBACK as AUDIT_CALLBACK
from clinicops.audit import default_trail
from clinicops.errors import UsageError
from clinicops.project import ansible_env, project_root

# The per-clinic summary every clinicops playbook publishes with ``set_stats`` (aggregated), read
# back from runner's final stats event: {"clinicops_report": {"<clinic>": {...}}}.
REPORT_STATS_KEY = "clinicops_report"
# The outcome a clinic's report carries when the maintenance window gate kept it out of the run: it
# ended the play for the clinic (meta: end_host), which Ansible counts as no failure.
SKIPPED = "skipped"

EventCallback = Callable[[dict[str, Any]], None]


def state_home() -> Path:
    """Where run directories live: $CLINICOPS_HOME or ~/.clinicops."""
    return Path(os.environ.get("CLINICOPS_HOME") or Path.home() / ".clinicops")


def new_run_id(operation: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{operation}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class PlaybookRun:
    """Everything one ansible-runner invocation needs, frozen before it starts."""

    playbook: Path
    inventory: Path
    operation: str
    run_id: str
    limit: str | None = None
    extravars: Mapping[str, Any] = field(default_factory=dict)
    check: bool = False
    verbosity: int = 0
    forks: int = 25
    vault_password_file: Path | None = None

    def runner_kwargs(self, private_data_dir: Path) -> dict[str, Any]:
        if not self.playbook.is_file():
            raise UsageError(f"playbook not found: {self.playbook}")
        if not self.inventory.exists():
            raise UsageError(f"inventory not found: {self.inventory}")
        cmdline = ["--forks", str(self.forks)]
        if self.check:
            cmdline.append("--check")
        if self.vault_password_file:
            cmdline += ["--vault-password-file", str(self.vault_password_file)]
        envvars = dict(ansible_env())
        envvars["CLINICOPS_RUN_ID"] = self.run_id
        # Every run leaves a record in the controller's tamper-evident audit trail.
        envvars["ANSIBLE_CALLBACKS_ENABLED"] = AUDIT_CALLBACK
        envvars["CLINICOPS_AUDIT_TRAIL"] = str(default_trail(state_home()))
        kwargs: dict[str, Any] = {
            "private_data_dir": str(private_data_dir),
            "project_dir": str(self.playbook.parent),
            "playbook": self.playbook.name,
            "inventory": str(self.inventory.resolve()),
            # Not overridable: the run id, and who runs it from where (for locks and the audit trail).
            "extravars": {
                **self.extravars,
                "clinicops_run_id": self.run_id,
                "clinicops_who": getpass.getuser(),
                "clinicops_controller": socket.gethostname(),
            },
            "envvars": envvars,
            "cmdline": shlex.join(cmdline),  # runner shlex-splits it: quote paths
            "ident": "run",
            "quiet": True,
            "suppress_env_files": True,
            "verbosity": self.verbosity or None,
            "settings": {"suppress_ansible_output": True},
        }
        if self.limit:
            kwargs["limit"] = self.limit
        return kwargs


@dataclass
class HostOutcome:
    """What happened on one clinic during one run."""

    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: bool = False
    skipped: int = 0
    current_task: str = ""
    failed_task: str = ""
    message: str = ""
    refused: bool = False  # failed because something refused to act (a lock held, a window closed)
    first_seen: float = 0.0  # monotonic time of the host's first and last event
    last_seen: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "refused" if self.refused else "failed"
        if self.report.get("outcome") == SKIPPED:
            return SKIPPED
        if self.ok or self.changed:
            return "ok"
        return "not run"


@dataclass
class RunResult:
    run_id: str
    status: str
    rc: int
    duration: float
    hosts: dict[str, HostOutcome]
    run_dir: Path
    finished: bool = True  # Ansible reached its final stats (not killed or aborted)

    @property
    def failed_hosts(self) -> list[str]:
        return [name for name, host in self.hosts.items() if host.outcome in ("failed", "unreachable")]


def skip_report(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The gate's skip of a clinic, from the ``set_stats`` task that publishes it, else None.

    ``data`` is the event data of a ``runner_on_ok``: the result of ``set_stats`` carries what it
    publishes (``ansible_stats``), so the skip is known the moment it happens, not only from the
    final stats.
    """
    stats = (data.get("res") or {}).get("ansible_stats")
    published = ((stats.get("data") or {}) if isinstance(stats, Mapping) else {}).get(REPORT_STATS_KEY)
    entry = published.get(data.get("host")) if isinstance(published, Mapping) else None
    if isinstance(entry, Mapping) and entry.get("outcome") == SKIPPED:
        return entry
    return None


def skip_text(report: Mapping[str, Any]) -> str:
    """``closed: ... ; next opening <ts>``: why a clinic was skipped and when its window next opens."""
    reason = " ".join(str(report.get("reason") or "window closed").split())
    if "next opening" in reason:  # the evaluator's own words for a closed window already say it
        return reason
    opening = report.get("next_opening")
    return f"{reason}; next opening {opening}" if opening else f"{reason}; no next opening"


def failure_message(result: Mapping[str, Any]) -> str:
    """One line saying why a task failed: a failed loop's items' messages, else msg or stderr."""
    items = [item for item in result.get("results") or [] if isinstance(item, Mapping) and item.get("failed")]
    if items:  # the loop's own msg, "One or more items failed", names nothing
        return "; ".join(failure_message(item) for item in items)[:500]
    for key in ("msg", "stderr", "reason", "message"):
        value = result.get(key)
        if value:
            return " ".join(str(value).split())[:500]
    return "failed (no message)"


class EventCollector:
    """runner's event_handler: O(1) per event, never raises, always lets runner keep the event."""

    def __init__(self, on_event: EventCallback | None = None) -> None:
        self.hosts: dict[str, HostOutcome] = {}
        self.stats_report: dict[str, Any] = {}
        self.finished = False
        self.on_event = on_event

    def host(self, name: str) -> HostOutcome:
        outcome = self.hosts.get(name)
        if outcome is None:
            outcome = self.hosts[name] = HostOutcome(host=name)
        return outcome

    def __call__(self, event: dict[str, Any]) -> bool:
        # A display or bookkeeping bug must never stop a run.
        with contextlib.suppress(Exception):
            self.handle(event)
        return True

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        name = data.get("host")
        if kind == "playbook_on_stats":
            self.finished = True
            self.stats_report = dict((data.get("artifact_data") or {}).get(REPORT_STATS_KEY) or {})
            # Ansible's own tally wins: a failure a block rescued is no failure of the host.
            failures, dark = data.get("failures") or {}, data.get("dark") or {}
            for host in self.hosts.values():
                if "failures" in data:
                    host.failed = int(failures.get(host.host, 0))
                if "dark" in data:
                    host.unreachable = bool(dark.get(host.host, 0))
        elif name:
            host = self.host(name)
            host.last_seen = time.monotonic()
            if not host.first_seen:
                host.first_seen = host.last_seen
            task = data.get("task", "")
            if kind == "runner_on_start":
                host.current_task = task
            elif kind == "runner_on_ok":
                host.ok += 1
                host.changed += bool((data.get("res") or {}).get("changed"))
                skipped = skip_report(data)
                if skipped is not None:  # the final stats replace it; a killed run keeps it
                    host.report = dict(skipped)
            elif kind == "runner_on_failed" and not data.get("ignore_errors"):
                host.failed += 1
                host.failed_task = task
                host.message = failure_message(data.get("res") or {})
                # Sticky: the rescue that re-raises a refusal (e.g. a held lock) is still a refusal.
                host.refused = host.refused or bool((data.get("res") or {}).get("refused"))
            elif kind == "runner_on_unreachable":
                host.unreachable = True
                host.failed_task = task
                host.message = failure_message(data.get("res") or {})
            elif kind == "runner_on_skipped":
                host.skipped += 1
        if self.on_event is not None:
            self.on_event(event)


def scrub_command_artifact(private_data_dir: Path, keep: Mapping[str, str]) -> None:
    """Rewrite runner's ``artifacts/<ident>/command`` without the controller's environment.

    runner records the whole environment of the Ansible process there (an operator's exported
    tokens included). Only the names survive, and the values clinicops set itself.
    """
    for command_file in private_data_dir.glob("artifacts/*/command"):
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(command_file.read_text(encoding="utf-8"))
            env = data.get("env") or {}
            data["env"] = {name: keep.get(name, "<not recorded>") for name in sorted(env)}
            scratch = command_file.with_name(".command.scrubbed")
            scratch.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            scratch.chmod(0o600)
            scratch.replace(command_file)


def run_playbook(
    run: PlaybookRun,
    private_data_dir: Path,
    on_event: EventCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    collector: EventCollector | None = None,
) -> RunResult:
    """One ansible-runner invocation in a fresh ``private_data_dir`` (refused if it exists)."""
    if private_data_dir.exists():
        raise UsageError(f"run directory already exists, refusing to reuse it: {private_data_dir}")
    kwargs = run.runner_kwargs(private_data_dir)  # validates first: a usage error leaves no run directory
    private_data_dir.mkdir(parents=True, mode=0o700)
    collector = collector or EventCollector(on_event)
    known = dict(kwargs["envvars"])

    def status_handler(status: Mapping[str, Any], runner_config: Any = None) -> None:
        # 'running' comes after runner wrote the command file and before Ansible starts.
        if status.get("status") == "running":
            scrub_command_artifact(private_data_dir, known)

    started = time.monotonic()
    try:
        runner = ansible_runner.run(
            event_handler=collector,
            status_handler=status_handler,
            # Our own callback, so runner installs no signal handlers: the CLI owns Ctrl-C.
            cancel_callback=cancel or (lambda: False),
            **kwargs,
        )
    finally:
        scrub_command_artifact(private_data_dir, known)
    for name, report in collector.stats_report.items():
        collector.host(name).report = dict(report or {})
    return RunResult(
        run_id=run.run_id,
        status=runner.status,
        rc=runner.rc,
        duration=time.monotonic() - started,
        hosts=collector.hosts,
        run_dir=private_data_dir,
        finished=collector.finished,
    )


def playbook_path(name: str) -> Path:
    """A playbook of the collection by its short name, e.g. ``health``."""
    path = project_root() / "playbooks" / f"{name}.yml"
    if not path.is_file():
        raise UsageError(f"no such playbook in the collection: {name}.yml")
    return path
