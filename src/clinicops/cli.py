"""The ``clinicops`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from clinicops import __version__
from clinicops.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ClinicopsError,
    RefusedError,
    UsageError,
)


def _log(message: str) -> None:
    print(f"clinicops: {message}", file=sys.stderr, flush=True)


def _default_inventory() -> Path:
    from clinicops.lab.fleet import Lab

    inventory = Lab(log=_log).inventory_dir
    if not inventory.is_dir():
        raise UsageError("no inventory given (-i) and the lab is not up (`clinicops lab up`)")
    return inventory


def _vault_file(args: argparse.Namespace, inventory: Path) -> Path | None:
    from clinicops.lab import lab_vault_password_file

    if args.vault_password_file:
        return Path(args.vault_password_file)
    return lab_vault_password_file(inventory)


def cmd_lab(args: argparse.Namespace) -> int:
    from clinicops.lab.fleet import Lab

    if args.lab_command == "image":
        from clinicops.lab.engine import ensure_engine
        from clinicops.lab.image import ImageRecipe, ensure_image
        from clinicops.project import project_root

        print(ensure_image(ensure_engine(_log), ImageRecipe(project_root() / "lab" / "image"), _log))
        return EXIT_OK
    lab = Lab(name=args.name, log=_log)
    if args.lab_command == "up":
        actions = lab.up(args.clinics, reprovision=args.reprovision)
        for host, action in actions.items():
            print(f"{host:<12} {action}")
        print(f"inventory: {lab.inventory_dir}")
    elif args.lab_command == "down":
        removed = lab.down()
        print(f"removed: {', '.join(removed) if removed else 'nothing (lab was not up)'}")
    else:
        rows = lab.status()
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print(f"lab {args.name!r} is not up")
        for row in rows if not args.json else []:
            print(f"{row['host']:<12} {row['role']:<7} {row['state']:<9} {row['container']}  {row['image']}")
    return EXIT_OK


def deploy_vars(args: argparse.Namespace) -> dict:
    """Extra vars of a deploy: the version, exactly one source, one release id for every wave."""
    from datetime import UTC, datetime

    from clinicops.project import project_root
    from clinicops.waves import parse_wave_spec

    sources = [name for name in ("artifact", "url", "git_repo", "image") if getattr(args, name)]
    artifact = args.artifact
    if len(sources) > 1:
        raise UsageError("give only one of --artifact, --url, --git-repo, --image")
    if not sources:
        # The lab's fixture artifact when there is one; otherwise the inventory decides (compose
        # clinics need no source, release clinics refuse in their preflight, naming what is missing).
        lab_artifact = project_root() / "build" / "artifacts" / f"clinic-app-{args.version}.tar.gz"
        artifact = str(lab_artifact) if lab_artifact.is_file() else None
    if args.url and not args.checksum:
        raise UsageError("--url needs --checksum sha256:<hex>")
    if args.git_repo and not args.git_ref:
        raise UsageError("--git-repo needs --git-ref")
    release_id = args.release_id or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{args.version}"
    if args.waves:  # None when not given: the procedure's default plan
        parse_wave_spec(args.waves)  # a bad --waves is a usage error before anything else
    extravars: dict = {
        "deploy_version": args.version,
        "deploy_release_id": release_id,
        # The CLI runs each wave as its own run; inside one, every clinic of the wave goes at once.
        "deploy_waves": ["100%"],
        "deploy_max_fail_percentage": args.max_fail_percentage,
    }
    if artifact:
        extravars["deploy_artifact"] = str(Path(artifact).resolve())
    if args.url:
        extravars["deploy_artifact_url"] = args.url
    if args.checksum:
        extravars["deploy_artifact_checksum"] = args.checksum
    if args.git_repo:
        extravars.update(deploy_git_repo=args.git_repo, deploy_git_ref=args.git_ref)
    if args.image:
        extravars.update(deploy_strategy="compose", deploy_compose_image=args.image)
    if args.health_deadline:
        extravars["deploy_health_deadline"] = args.health_deadline
    return extravars


def health_vars(args: argparse.Namespace) -> dict:
    return {"health_checklist": args.checklist} if args.checklist else {}


def rollback_vars(args: argparse.Namespace) -> dict:
    extravars: dict = {"rollback_to": args.to or "", "rollback_force": args.force}
    if args.restore_data:
        extravars.update(rollback_restore_data=True, rollback_confirm=args.confirm or "")
    return extravars


def restore_vars(args: argparse.Namespace) -> dict:
    return {
        "restore_snapshot": args.snapshot,
        "restore_confirm": args.confirm or "",
        "restore_tables": args.table or [],
    }


def flag_set_vars(args: argparse.Namespace) -> dict:
    from clinicops.flags import parse_assignments

    return {"feature_flags_set": parse_assignments(args.assignments), "feature_flags_assignments": ""}


def flag_get_vars(_args: argparse.Namespace) -> dict:
    # Explicitly nothing to set: a get never writes, whatever an inventory might say.
    return {"feature_flags_set": {}, "feature_flags_assignments": ""}


def cache_flush_vars(args: argparse.Namespace) -> dict:
    if not args.limit:
        raise UsageError(
            "cache-flush goes one clinic at a time: give --limit CLINIC and --confirm CLINIC; nothing was run"
        )
    return {"cache_flush_confirm": ""}  # set by the confirmation, once it names the clinic


# The maintenance command's choices: option -> extra var maintenance_window_<option>.
MAINTENANCE_CHOICES = {
    "os_updates": ("security", "all", "none"),
    "vacuum": ("analyze", "full", "none"),
    "reindex": ("concurrently", "blocking", "none"),
}
MAINTENANCE_FLAGS = ("terminate_long_queries", "backup")


def maintenance_vars(args: argparse.Namespace) -> dict:
    """Extra vars of a maintenance run: only what the operator gave (the role's defaults do the rest)."""
    from clinicops.windows import parse_duration

    extravars: dict = {}
    for name in (*MAINTENANCE_CHOICES, *MAINTENANCE_FLAGS):
        value = getattr(args, name)
        if value is not None:
            extravars[f"maintenance_window_{name}"] = value
    if args.step_duration is not None:
        parse_duration(args.step_duration, "--step-duration")
        extravars["maintenance_window_step_duration"] = "".join(args.step_duration.split())
    return extravars


def window_vars(args: argparse.Namespace) -> dict:
    """Extra vars of the window gate of a gated procedure: mode, override reason, the instant judged."""
    from clinicops.windows import parse_at

    mode = args.window_mode
    given = args.override_reason
    reason = " ".join((given or "").split())
    if given is not None and not reason:
        raise UsageError("--override-reason is blank: say why the window is overridden; nothing was run")
    if mode == "override" and not reason:
        raise UsageError(
            "--window-mode override needs --override-reason TEXT (recorded in each clinic's audit trail and in "
            "the run report); nothing was run"
        )
    if reason and mode != "override":
        raise UsageError(
            "--override-reason is only for --window-mode override (without it, it would look like an override "
            "and not be one); nothing was run"
        )
    extravars: dict = {}
    if mode:
        extravars["window_gate_mode"] = mode
    if reason:
        extravars["window_gate_override_reason"] = reason
    moment = parse_at(args.now, "--now")
    if moment is not None:
        extravars["clinicops_now"] = moment.isoformat()
    return extravars


def wait_seconds(wait: str | None, extravars: dict) -> int:
    """--wait-for-window[=MAX] in seconds (0: not asked), refused where waiting cannot help."""
    from clinicops.windows import parse_duration

    if wait is None:
        return 0
    if extravars.get("clinicops_now"):
        raise UsageError(
            "--wait-for-window waits for real time to pass, while --now judges every window at one fixed "
            "instant: give one of them; nothing was run"
        )
    mode = extravars.get("window_gate_mode", "enforce")
    if mode != "enforce":
        raise UsageError(
            f"--wait-for-window waits for the windows the gate enforces; with --window-mode {mode} the gate lets "
            "every clinic through, so there is nothing to wait for; nothing was run"
        )
    return parse_duration(wait, "--wait-for-window")


@dataclass(frozen=True)
class Procedure:
    playbook: str
    title: str
    extravars: Callable[[argparse.Namespace], dict]
    waves: str = "100%"  # default wave plan
    locks: bool = True  # disruptive: takes the controller's clinic locks
    confirm: str = ""  # extra var holding the clinic's id, when acting on live data needs it
    confirm_question: str = "replaces the live data of {clinic} with a backup"  # what the confirmation is for
    options: tuple[str, ...] = ()  # extra vars shown in the report
    # Gated by the maintenance window gate (procedure name = the command): the step duration its
    # playbook gives the gate by default (window_gate_step_duration), for the CLI's own evaluation.
    window_step: str | None = None

    @property
    def gated(self) -> bool:
        return self.window_step is not None


# Extra vars of the window gate shown in the report of a gated run (not secrets).
WINDOW_OPTIONS = ("window_gate_mode", "window_gate_override_reason", "clinicops_now")


PROCEDURES = {
    "health": Procedure("health", "clinic health", health_vars, locks=False, options=("health_checklist",)),
    # Read-only but for the privilege baseline its first run writes: no lock, like the survey.
    "security-scan": Procedure("security_scan", "security scan", lambda a: {}, locks=False),
    "deploy": Procedure(
        "deploy",
        "deploy",
        deploy_vars,
        waves="1,25%,100%",
        options=("deploy_version", "deploy_release_id", *WINDOW_OPTIONS),
        window_step="15m",
    ),
    "rollback": Procedure(
        "rollback",
        "rollback",
        rollback_vars,
        confirm="rollback_confirm",
        options=("rollback_to", *WINDOW_OPTIONS),
        window_step="5m",
    ),
    "backup": Procedure(
        "backup",
        "backup",
        lambda a: {"backup_release_id": a.release_id} if a.release_id else {},
        options=("backup_release_id",),
    ),
    "drill": Procedure(
        "restore_drill", "restore drill", lambda a: {"restore_snapshot": a.snapshot}, options=("restore_snapshot",)
    ),
    "restore": Procedure(
        "restore",
        "restore",
        restore_vars,
        confirm="restore_confirm",
        options=("restore_snapshot", "restore_tables", *WINDOW_OPTIONS),
        window_step="30m",
    ),
    "maintenance": Procedure(
        "maintenance",
        "maintenance",
        maintenance_vars,
        waves="1,100%",  # a canary clinic first: OS updates can break a clinic
        options=(
            *(f"maintenance_window_{name}" for name in (*MAINTENANCE_CHOICES, *MAINTENANCE_FLAGS)),
            "maintenance_window_step_duration",
            *WINDOW_OPTIONS,
        ),
        window_step="45m",
    ),
    "rotate-logs": Procedure("rotate_logs", "log rotation", lambda a: {}),
    # The kill switch: not gated by a window (it must work at any hour); the role's health gate puts
    # the previous flags back on a clinic whose app does not come back healthy.
    "flag-set": Procedure("feature_flags", "feature flags", flag_set_vars, options=("feature_flags_set",)),
    "flag-get": Procedure("feature_flags", "feature flags", flag_get_vars, locks=False),
    "cache-flush": Procedure(
        "cache_flush",
        "cache flush",
        cache_flush_vars,
        confirm="cache_flush_confirm",
        confirm_question="empties the app cache (its Redis database) of {clinic}",
    ),
    # Read-only: no lock, no window; a clinic that sees rows of another clinic fails (exit 1).
    "isolation-check": Procedure("isolation_check", "data isolation check", lambda a: {}, locks=False),
}


def _confirmation(args: argparse.Namespace, procedure: Procedure, extravars: dict, fleet) -> None:
    """Acting on live data needs the clinic's id: --confirm, --yes, or typed at the terminal."""
    from clinicops.fleet_run import refuse_if_not_confirmed

    if not procedure.confirm or (args.command == "rollback" and not args.restore_data):
        return
    if len(fleet.hosts) != 1:
        raise UsageError(
            f"{args.command} goes one clinic at a time; --limit matched {len(fleet.hosts)} "
            f"({', '.join(fleet.hosts[:5])}); nothing was changed"
        )
    host = fleet.hosts[0]
    expected = str(fleet.hostvars.get(host, {}).get("clinic_id") or host)
    given = refuse_if_not_confirmed(
        f"{args.command} {procedure.confirm_question.format(clinic=expected)}",
        expected,
        args.confirm,
        args.yes,
    )
    if given != expected:
        raise RefusedError(f"--confirm {given!r} is not the clinic's id {expected!r}; nothing was changed")
    extravars[procedure.confirm] = given


def _display(args: argparse.Namespace):
    from clinicops.progress import make_display

    return make_display(quiet=args.quiet, verbose=args.verbose > 0)


def _wave_confirm(args: argparse.Namespace):
    from clinicops.fleet_run import ask

    if not getattr(args, "wave_pause", False):
        return None
    if not sys.stdin.isatty():
        raise UsageError("--wave-pause asks at the terminal between waves and there is none (in AWX: approval nodes)")
    return ask


def _finish(args: argparse.Namespace, state: dict) -> int:
    from clinicops.report import counts_text

    if args.json:
        print(json.dumps(state, indent=2))
    elif args.quiet:
        counts = counts_text(state["counts"])
        print(f"{state['command']} run {state['run_id']}: {state['status']} ({counts}); report: {state['report_path']}")
    else:
        render_state(state)
    return int(state["exit_code"])


def render_state(state: dict) -> None:
    """A run's table as its command shows it: the survey, the fleet's flags, or one row per clinic."""
    from clinicops.run_report import render_outcomes
    from clinicops.survey import render_survey

    if state["command"] == "health":
        render_survey(state)
    elif state["command"] == "flag-get":
        render_flags(state)
    else:
        render_outcomes(state)


def render_flags(state: dict) -> None:
    """``flag get``: the fleet's flags, one row per clinic, one column per flag."""
    from rich.table import Table
    from rich.text import Text

    from clinicops.flags import flag_names, flag_rows
    from clinicops.run_report import footer, outcome_style, stdout_console

    console = stdout_console()
    names = flag_names(state)
    table = Table(title=f"feature flags — run {state['run_id']} — {state['status']}", title_justify="left")
    for column in ("clinic", *names, "outcome"):
        table.add_column(column, overflow="fold")
    for row in flag_rows(state):
        cells = [Text(row[name], style="green" if row[name] == "true" else "") for name in names]
        outcome = row["outcome"] + (f": {row['message']}" if row["message"] else "")
        table.add_row(Text(row["clinic"]), *cells, Text(outcome, style=outcome_style(row["outcome"])))
    console.print(table)
    footer(state, console)


def window_wait(procedure: Procedure, fleet, extravars: dict, max_s: int):
    """The wait before each wave of a gated run in enforce mode (windows.WindowWait), else None."""
    from clinicops.windows import WindowWait, parse_at, parse_step

    if not procedure.gated or extravars.get("window_gate_mode", "enforce") != "enforce":
        return None
    step = extravars.get("maintenance_window_step_duration") if procedure.playbook == "maintenance" else None
    return WindowWait(
        fleet=fleet,
        procedure=procedure.playbook,
        step_s=parse_step(step or procedure.window_step),
        max_s=max_s,
        now=parse_at(extravars.get("clinicops_now")),
    )


def cmd_procedure(args: argparse.Namespace) -> int:
    from clinicops.fleet_run import FleetRun, RunSpec
    from clinicops.inventory import resolve_fleet
    from clinicops.runner import new_run_id
    from clinicops.waves import parse_wave_spec, plan_waves

    procedure = PROCEDURES[args.command]
    extravars = procedure.extravars(args)
    wait_s = 0
    if procedure.gated:
        extravars.update(window_vars(args))
        wait_s = wait_seconds(args.wait_for_window, extravars)
    steps = parse_wave_spec(args.waves or procedure.waves)
    if not 0 <= args.max_fail_percentage <= 100:
        raise UsageError(f"--max-fail-percentage must be 0..100, got {args.max_fail_percentage}")
    confirm = _wave_confirm(args)
    inventory = Path(args.inventory) if args.inventory else _default_inventory()
    vault = _vault_file(args, inventory)
    fleet = resolve_fleet(inventory, args.limit, vault)
    waves = plan_waves(fleet, steps)
    _confirmation(args, procedure, extravars, fleet)
    spec = RunSpec(
        run_id=new_run_id(args.command),
        command=args.command,
        title=_title(args, extravars, procedure),
        playbook=procedure.playbook,
        inventory=str(inventory.resolve()),
        limit=args.limit,
        vault_password_file=str(vault.resolve()) if vault else None,
        extravars=extravars,
        options={key: extravars[key] for key in procedure.options if extravars.get(key) not in (None, "", [])},
        check=getattr(args, "check", False),
        verbosity=args.verbose,
        waves=args.waves or procedure.waves,
        max_fail_percentage=args.max_fail_percentage,
        wave_pause=bool(confirm),
        locks=procedure.locks,
        wait_for_window_s=wait_s,
    )
    wait = window_wait(procedure, fleet, extravars, wait_s)
    state = FleetRun(spec, _display(args), confirm=confirm, wait=wait).start(waves)
    return _finish(args, state)


def _title(args: argparse.Namespace, extravars: dict, procedure: Procedure) -> str:
    title = procedure.title
    if extravars.get("health_checklist"):
        title = f"{title} — {extravars['health_checklist']} checklist"
    if args.command == "deploy":
        title = f"deploy {extravars['deploy_version']} (release {extravars['deploy_release_id']})"
    mode = extravars.get("window_gate_mode", "enforce")
    return title if mode == "enforce" else f"{title} — window {mode}"


def cmd_diagnose(args: argparse.Namespace) -> int:
    """One clinic's incident: the diagnostics bundle, then the incident record and the post-mortem draft."""
    from clinicops import incident
    from clinicops.fleet_run import FleetRun, RunSpec
    from clinicops.inventory import resolve_fleet
    from clinicops.runner import new_run_id, state_home
    from clinicops.waves import Wave

    severity = incident.check_severity(args.severity)
    opened = incident.utc_now()
    since = incident.parse_since(args.since, opened)
    ident = incident.incident_id(args.clinic, opened)  # checks the name before the inventory is read
    inventory = Path(args.inventory) if args.inventory else _default_inventory()
    vault = _vault_file(args, inventory)
    fleet = resolve_fleet(inventory, args.clinic, vault)
    if list(fleet.hosts) != [args.clinic]:
        raise UsageError(
            f"diagnose takes one clinic by its inventory name; {args.clinic!r} matched {', '.join(fleet.hosts[:5])}; "
            "nothing was run"
        )
    incidents = incident.incidents_dir(state_home())
    spec = RunSpec(
        run_id=new_run_id("diagnose"),
        command="diagnose",
        title=f"diagnostics {ident}",
        playbook="diagnostics",
        inventory=str(inventory.resolve()),
        limit=args.clinic,
        vault_password_file=str(vault.resolve()) if vault else None,
        extravars={
            "diagnostics_incident_id": ident,
            "diagnostics_controller_dir": str(incidents),
            "diagnostics_journal_since": incident.journal_since(since),
        },
        options={"incident_id": ident},
        verbosity=args.verbose,
        locks=False,  # read-only on the clinic
    )
    state = FleetRun(spec, _display(args)).start([Wave(index=1, name="all", hosts=(args.clinic,))])
    record, draft = _record_incident(args, state, ident, severity, opened, since, incidents / ident)
    if args.json:
        print(json.dumps({**state, "incident": json.loads(record.read_text(encoding="utf-8"))}, indent=2))
        return int(state["exit_code"])
    _finish(args, state)
    facts = json.loads(record.read_text(encoding="utf-8"))
    print(f"incident: {ident} — {facts['severity']} ({incident.SEVERITIES[facts['severity']]})")
    print(f"record: {record}\npost-mortem draft: {draft}")
    if facts["bundle"]:
        print(f"bundle: {facts['bundle']}")
    return int(state["exit_code"])


def _record_incident(
    args: argparse.Namespace,
    state: dict,
    ident: str,
    severity: str | None,
    opened: datetime,
    since: datetime | None,
    directory: Path,
) -> tuple[Path, Path]:
    """incident.json and postmortem.md beside the bundle; written even when no bundle came (unreachable)."""
    import getpass
    import socket

    from clinicops import incident
    from clinicops.audit import default_trail, tail
    from clinicops.runner import state_home

    row = state["clinics"][0] if state["clinics"] else {}
    details = row.get("details") or {}
    bundle = Path(details["bundle"]) if details.get("bundle") else None
    health_state = details.get("health_state")
    window_start = since or opened - incident.DEFAULT_LOOKBACK
    entry = incident.Incident(
        id=ident,
        clinic=args.clinic,
        severity=severity or incident.default_severity(health_state),
        severity_source="operator" if severity else "health",
        opened_at=incident.stamp(opened),
        timeline_start=incident.stamp(since or opened),
        window_start=incident.stamp(window_start),
        opened_by=getpass.getuser(),
        controller=socket.gethostname(),
        run_id=state["run_id"],
        health_state=health_state,
        health_summary=details.get("health_summary"),
        bundle=str(bundle) if bundle and bundle.is_file() else None,
        bundle_files=int(details.get("bundle_files") or 0),
        redacted=int(details.get("redacted") or 0),
        collection=row.get("outcome", "not run") + (f": {row['message']}" if row.get("message") else ""),
    )
    clinic_records = incident.bundle_audit_records(bundle) if entry.bundle else []
    try:
        controller_records = tail(default_trail(state_home()), 100_000)
    except UsageError:  # no controller trail yet
        controller_records = []
    entries = incident.clinic_entries(clinic_records) + incident.controller_entries(controller_records, args.clinic)
    return incident.write_incident(directory, entry, incident.timeline(entries, window_start, incident.utc_now()))


def cmd_resume(args: argparse.Namespace) -> int:
    from clinicops.fleet_run import FleetRun, RunSpec, runs_dir
    from clinicops.inventory import resolve_fleet
    from clinicops.report import find_run

    run_dir = find_run(runs_dir(), args.run)
    spec = RunSpec.load(run_dir)
    spec.verbosity = args.verbose or spec.verbosity
    procedure = PROCEDURES.get(spec.command)
    if args.wait_for_window is not None:
        if procedure is None or not procedure.gated:
            raise UsageError(
                f"--wait-for-window: {spec.command} runs are not gated by maintenance windows; nothing was run"
            )
        spec.wait_for_window_s = wait_seconds(args.wait_for_window, spec.extravars)
    confirm = _wave_confirm(args)
    spec.wave_pause = bool(confirm)
    fleet_run = FleetRun(spec, _display(args), confirm=confirm, run_dir=run_dir)
    state, waves = fleet_run.resume()
    if not waves:
        print(f"run {spec.run_id} has nothing to resume: every clinic finished ({state['status']})")
        return EXIT_OK
    todo = [host for wave in waves for host in wave.hosts]
    vault = Path(spec.vault_password_file) if spec.vault_password_file else None
    fleet = resolve_fleet(Path(spec.inventory), ",".join(todo), vault)
    missing = sorted(set(todo) - set(fleet.hosts))
    if missing:
        raise UsageError(
            f"clinics of run {spec.run_id} are no longer in {spec.inventory}: {', '.join(missing)}; nothing was run"
        )
    if procedure is not None:
        fleet_run.wait = window_wait(procedure, fleet, spec.extravars, spec.wait_for_window_s)
    return _finish(args, fleet_run.continue_run(state, waves))


def cmd_runs(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from clinicops.fleet_run import runs_dir
    from clinicops.report import counts_text, list_runs
    from clinicops.run_report import STATUS_STYLE, stdout_console

    rows = list_runs(runs_dir(), args.last)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(f"no runs yet in {runs_dir()}")
        return EXIT_OK
    table = Table(title=f"clinicops runs ({runs_dir()})", title_justify="left")
    for column in ("run", "command", "status", "clinics", "started", "duration", "attempts"):
        table.add_column(column)
    for row in rows:
        counts = counts_text(row["counts"])
        style = STATUS_STYLE.get(row["status"], "red")
        table.add_row(
            Text(row["run_id"]),
            Text(row["command"]),
            Text(row["status"], style=style),
            Text(counts),
            Text(row["started"]),
            f"{row.get('duration_s', 0):.0f}s",
            str(row.get("attempts", "")),
        )
    stdout_console().print(table)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from clinicops.fleet_run import runs_dir
    from clinicops.report import REPORT_MD, find_run, load

    run_dir = find_run(runs_dir(), args.run)
    state = load(run_dir)
    if args.json:
        print(json.dumps(state, indent=2))
    elif args.markdown:
        print((run_dir / REPORT_MD).read_text(encoding="utf-8"), end="")
    else:
        render_state(state)
    return EXIT_OK


def cmd_windows(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from clinicops.inventory import resolve_fleet
    from clinicops.run_report import stdout_console
    from clinicops.windows import clinic_windows, parse_at, parse_step

    gated = PROCEDURES.get(args.procedure)
    step_text = args.step if args.step is not None else (gated.window_step if gated else None)
    step, moment = parse_step(step_text), parse_at(args.at)
    inventory = Path(args.inventory) if args.inventory else _default_inventory()
    fleet = resolve_fleet(inventory, args.limit, _vault_file(args, inventory))
    rows = clinic_windows(fleet, args.procedure, step, moment)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        what = args.procedure + (f", a {step_text} step" if step else "")
        table = Table(title=f"maintenance windows — {what}", title_justify="left")
        for column in ("clinic", "time zone", "state", "until", "next opening", "reason"):
            table.add_column(column, overflow="fold")
        for row in rows:
            style = "green" if row.get("allowed") else "red" if row["state"] == "invalid" else "yellow"
            table.add_row(
                Text(row["clinic"]),
                Text(row["timezone"]),
                Text(row["state"], style=style),
                Text(str(row.get("end") or "") if row.get("allowed") else ""),
                Text(str(row.get("next_opening") or "")),
                Text(row.get("reason", "")),
            )
        stdout_console().print(table)
    return EXIT_USAGE if any(row["state"] == "invalid" for row in rows) else EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from clinicops.audit import default_trail, tail, verify
    from clinicops.runner import state_home

    trail = Path(args.trail) if args.trail else default_trail(state_home())
    if args.audit_command == "verify":
        ok, count, problem = verify(trail)
        if ok:
            print(f"{trail}: {count} records, chain intact")
            return EXIT_OK
        print(f"{trail}: chain broken after {count} good records: {problem}")
        return EXIT_FAILED
    for record in tail(trail, args.last):
        if args.json:
            print(json.dumps(record, sort_keys=True))
            continue
        when = record.get("ended") or record.get("at", "")
        what = record.get("procedure", "?")
        who = record.get("who", {})
        user = who.get("awx_user_name") or who.get("user", "?") if isinstance(who, dict) else who
        ids = " ".join(f"{key}={value}" for key, value in (record.get("ids") or record.get("details") or {}).items())
        print(
            f"{when}  {record.get('clinic', ''):<12} {what:<12} {record.get('outcome', ''):<11} {user:<10} "
            f"{record.get('run_id', '')}  {ids}".rstrip()
        )
    return EXIT_OK


def _output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout (for scripts)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress; one line at the end")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="pass verbosity to Ansible (-vvv)")


def _fleet_arguments(parser: argparse.ArgumentParser, waves: str = "100%") -> None:
    parser.add_argument("-i", "--inventory", help="inventory directory or file (default: the lab)")
    parser.add_argument("--limit", help="clinics or groups (Ansible --limit pattern)")
    parser.add_argument("--vault-password-file", help="vault password file for the inventory")
    parser.add_argument(
        "--waves",
        help=f"waves: counts, percentages or @group, canary first (default {waves.replace('%', '%%')})",
    )
    parser.add_argument(
        "--max-fail-percentage",
        type=int,
        default=0,
        help="failed clinics a wave may have before the run stops (default 0)",
    )
    parser.add_argument("--wave-pause", action="store_true", help="ask before starting each next wave")
    parser.add_argument("-y", "--yes", action="store_true", help="answer yes to confirmations")
    _output_arguments(parser)


def _wait_argument(parser: argparse.ArgumentParser) -> None:
    from clinicops.windows import DEFAULT_WAIT

    parser.add_argument(
        "--wait-for-window",
        nargs="?",
        const=DEFAULT_WAIT,
        metavar="MAX",
        help="before each wave, when none of its clinics is in a maintenance window, wait for the first to open, "
        f"at most MAX (a duration: 6h, 90m; default {DEFAULT_WAIT}); write --wait-for-window=MAX",
    )


def _window_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the commands gated by the maintenance window gate."""
    parser.add_argument(
        "--window-mode",
        choices=("enforce", "warn", "override"),
        help="the window gate: enforce (default: a clinic whose window is closed is skipped), warn (goes on, "
        "with a warning), override (break-glass: needs --override-reason, audited)",
    )
    parser.add_argument("--override-reason", metavar="TEXT", help="why the window is overridden (with override)")
    parser.add_argument(
        "--now",
        metavar="ISO",
        help="judge the windows at this ISO 8601 time (with an offset) instead of now: for tests and drills",
    )
    _wait_argument(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clinicops", description="Run clinic operations runbooks across a fleet of clinics."
    )
    parser.add_argument("--version", action="version", version=f"clinicops {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    lab = sub.add_parser("lab", help="the embedded lab: clinic containers on this machine")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    up = lab_sub.add_parser("up", help="start (or converge) the lab")
    up.add_argument("--clinics", type=int, default=3, help="number of clinics (default 3)")
    up.add_argument("--reprovision", action="store_true", help="run the clinic_host role even if up to date")
    lab_sub.add_parser("down", help="remove everything the lab created")
    lab_sub.add_parser("image", help="build the clinic host image if its recipe changed; print its name")
    status = lab_sub.add_parser("status", help="list the lab's containers")
    status.add_argument("--json", action="store_true")
    for child in lab_sub.choices.values():
        child.add_argument("--name", default="lab", help="lab name (default: lab)")
    lab.set_defaults(func=cmd_lab)

    health = sub.add_parser("health", help="health survey of the clinics (with --checklist: the runbook's checklist)")
    _fleet_arguments(health)
    health.add_argument(
        "--checklist",
        choices=("morning", "evening"),
        help="also run the runbook's checklist: morning (services, endpoints, pg_isready, redis, errors of the last "
        "24 h, disk, backups) or evening (slow queries, backup verified, failed logins, top client IPs, 4xx/5xx rates)",
    )
    health.set_defaults(func=cmd_procedure)
    security = sub.add_parser(
        "security-scan",
        help="failed logins by source IP, suspicious requests, privilege changes; exit 1 when thresholds are crossed",
    )
    _fleet_arguments(security)
    security.set_defaults(func=cmd_procedure)

    backup = sub.add_parser("backup", help="back up the clinics (encrypted, verified, off-site)")
    _fleet_arguments(backup)
    backup.add_argument("--release-id", help="bind the backup to this release id")
    drill = sub.add_parser("drill", help="prove each clinic's backup restores (scratch copy, compared, dropped)")
    _fleet_arguments(drill)
    restore = sub.add_parser("restore", help="restore a clinic's data over the live data (needs --confirm)")
    _fleet_arguments(restore)
    restore.add_argument("--confirm", help="the clinic's id: required to restore over its live data")
    restore.add_argument(
        "--table", action="append", help="restore only this table (repeat; PostgreSQL; table or schema.table)"
    )
    for child in (drill, restore):
        child.add_argument(
            "--snapshot", default="latest", help="latest, a snapshot id, YYYYMMDD_HHMMSS (UTC) or release:<id>"
        )
    deploy = sub.add_parser("deploy", help="deploy a release in waves (canary first), health-gated, auto rollback")
    _fleet_arguments(deploy, PROCEDURES["deploy"].waves)
    deploy.add_argument("--version", required=True, help="version to deploy (e.g. 2.0.0)")
    deploy.add_argument("--artifact", help="release tarball (default in the lab: build/artifacts/clinic-app-VERSION)")
    deploy.add_argument("--url", help="release tarball URL (needs --checksum)")
    deploy.add_argument("--checksum", help="sha256:<hex> of the artifact (default: the .sha256 file beside it)")
    deploy.add_argument("--git-repo", help="git repository to deploy from (with --git-ref)")
    deploy.add_argument("--git-ref", help="tag, branch or commit")
    deploy.add_argument("--image", help="compose clinics: image repository, tagged with --version")
    deploy.add_argument("--release-id", help="release id (default: UTC time + version, one for the whole run)")
    deploy.add_argument("--health-deadline", type=int, help="seconds a new release has to become healthy")
    rollback = sub.add_parser("rollback", help="roll back to the previous good release (or --to), health-gated")
    _fleet_arguments(rollback)
    rollback.add_argument("--to", help="release id to roll back to (default: the previous good release)")
    rollback.add_argument("--force", action="store_true", help="allow a target marked bad or unfinished")
    rollback.add_argument(
        "--restore-data", action="store_true", help="also restore the database bound to the release left"
    )
    rollback.add_argument("--confirm", help="the clinic's id: required with --restore-data")
    maintenance = sub.add_parser(
        "maintenance", help="maintain the clinics inside their maintenance windows (canary first): upkeep, OS updates"
    )
    _fleet_arguments(maintenance, PROCEDURES["maintenance"].waves)
    maintenance.add_argument(
        "--os-updates", choices=MAINTENANCE_CHOICES["os_updates"], help="OS package updates (default security)"
    )
    maintenance.add_argument(
        "--vacuum", choices=MAINTENANCE_CHOICES["vacuum"], help="database VACUUM (default analyze; full locks tables)"
    )
    maintenance.add_argument(
        "--reindex", choices=MAINTENANCE_CHOICES["reindex"], help="database REINDEX (default concurrently)"
    )
    maintenance.add_argument(
        "--terminate-long-queries",
        action=argparse.BooleanOptionalAction,
        help="terminate queries running too long (default: only report them)",
    )
    maintenance.add_argument(
        "--backup", action=argparse.BooleanOptionalAction, help="back up every data set first (default yes)"
    )
    maintenance.add_argument(
        "--step-duration",
        metavar="DURATION",
        help="the longest disruptive step (default 45m): it must end before the window's cutoff",
    )
    rotate = sub.add_parser(
        "rotate-logs", help="install the log rotation policies (validated first); report disk pressure"
    )
    _fleet_arguments(rotate)
    flag = sub.add_parser("flag", help="the clinic app's feature flags: set (a kill switch, health-gated) or get")
    flag_sub = flag.add_subparsers(dest="flag_command", required=True)
    flag_set = flag_sub.add_parser(
        "set", help="set flags (NAME=true|false), restart the app where they changed, wait until it reports them"
    )
    flag_set.add_argument("assignments", nargs="+", metavar="NAME=VALUE", help="e.g. ai_enabled=false")
    _fleet_arguments(flag_set)
    flag_set.set_defaults(command="flag-set")
    flag_get = flag_sub.add_parser("get", help="the flags each clinic's app reports (a table clinic x flag)")
    _fleet_arguments(flag_get)
    flag_get.set_defaults(command="flag-get", func=cmd_procedure)
    flush = sub.add_parser(
        "cache-flush", help="empty one clinic's app cache (Redis FLUSHDB of its database; needs --confirm)"
    )
    _fleet_arguments(flush)
    flush.add_argument("--confirm", help="the clinic's id: required to empty its cache")
    isolation = sub.add_parser(
        "isolation-check", help="prove, read-only, that no clinic sees rows of another clinic (exit 1 naming the table)"
    )
    _fleet_arguments(isolation)
    isolation.set_defaults(func=cmd_procedure)
    diagnose = sub.add_parser(
        "diagnose",
        help="an incident: one clinic's redacted diagnostics bundle, an incident record, a post-mortem draft",
    )
    diagnose.add_argument("clinic", help="the clinic (its inventory name)")
    diagnose.add_argument(
        "--severity",
        help="P1 clinic down or patient data at risk, P2 major feature down, "
        "P3 degraded, P4 minor (default: P2 when the clinic is unhealthy, else P3)",
    )
    diagnose.add_argument(
        "--since",
        help="when the incident started: ISO 8601 time with an offset, or a duration "
        "ago (2h, 90m); default now (the post-mortem's timeline then looks back 24 h)",
    )
    diagnose.add_argument("-i", "--inventory", help="inventory directory or file (default: the lab)")
    diagnose.add_argument("--vault-password-file", help="vault password file for the inventory")
    _output_arguments(diagnose)
    diagnose.set_defaults(func=cmd_diagnose)
    for child in (restore, deploy, rollback, maintenance):
        _window_arguments(child)
    for child in (backup, drill, restore, deploy, rollback, maintenance, rotate, flag_set, flush):
        child.add_argument("--check", action="store_true", help="dry run: report what would change")
        child.set_defaults(func=cmd_procedure)

    windows = sub.add_parser("windows", help="which clinics are in a maintenance window now; when each next opens")
    windows.add_argument("-i", "--inventory", help="inventory directory or file (default: the lab)")
    windows.add_argument("--limit", help="clinics or groups (Ansible --limit pattern)")
    windows.add_argument("--vault-password-file", help="vault password file for the inventory")
    gated = ", ".join(name for name, procedure in PROCEDURES.items() if procedure.gated)
    windows.add_argument(
        "--procedure",
        default="maintenance",
        help=f"the procedure to ask for: {gated} (default maintenance), or another a window names",
    )
    windows.add_argument(
        "--step",
        help="how long the step takes (45m, 1h30m, 90s): must end before the cutoff (default: the step the "
        "procedure's playbook gives the gate, e.g. 45m for maintenance, 15m for deploy; 0 for none)",
    )
    windows.add_argument("--at", help="evaluate at this ISO 8601 time instead of now (with an offset)")
    windows.add_argument("--json", action="store_true", help="one JSON object per clinic")
    windows.set_defaults(func=cmd_windows)

    runs = sub.add_parser("runs", help="past runs, newest first")
    runs.add_argument("-n", "--last", type=int, default=20, help="how many runs (default 20)")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)
    show = sub.add_parser("show", help="one run's per-clinic report")
    show.add_argument("run", help="run id, a unique prefix or suffix, or 'last'")
    show.add_argument("--json", action="store_true", help="the report as JSON")
    show.add_argument("--markdown", action="store_true", help="the Markdown report")
    show.set_defaults(func=cmd_show)
    resume = sub.add_parser(
        "resume", help="re-run the clinics of a run that failed, were skipped by their window or were not reached"
    )
    resume.add_argument("run", help="run id, a unique prefix or suffix, or 'last'")
    resume.add_argument("--wave-pause", action="store_true", help="ask before starting each next wave")
    _wait_argument(resume)
    _output_arguments(resume)
    resume.set_defaults(func=cmd_resume)

    audit = sub.add_parser("audit", help="the controller's audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check the hash chain; exit 1 naming the first bad line")
    audit_show = audit_sub.add_parser("show", help="print the last records")
    audit_show.add_argument("-n", "--last", type=int, default=20, help="how many records (default 20)")
    audit_show.add_argument("--json", action="store_true", help="one JSON record per line")
    for child in audit_sub.choices.values():
        child.add_argument("--trail", help="trail file (default: $CLINICOPS_HOME/audit.jsonl)")
    audit.set_defaults(func=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ClinicopsError as exc:
        _log(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _log("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
