"""The ``clinicops`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clinicops import __version__
from clinicops.errors import EXIT_FAILED, EXIT_OK, ClinicopsError, UsageError
from clinicops.survey import render_survey, survey_rows


def _log(message: str) -> None:
    print(f"clinicops: {message}", file=sys.stderr, flush=True)


def _default_inventory() -> Path:
    from clinicops.lab.fleet import Lab

    inventory = Lab(log=_log).inventory_dir
    if not inventory.is_dir():
        raise UsageError("no inventory given (-i) and the lab is not up (`clinicops lab up`)")
    return inventory


def _vault_file(args: argparse.Namespace, inventory: Path) -> Path | None:
    from clinicops.lab.fleet import lab_vault_password_file

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


def _run(args: argparse.Namespace, playbook: str, extravars: dict | None = None):
    from clinicops.runner import PlaybookRun, new_run_id, playbook_path, run_playbook

    inventory = Path(args.inventory) if args.inventory else _default_inventory()
    run = PlaybookRun(
        playbook=playbook_path(playbook),
        inventory=inventory,
        operation=args.command,
        run_id=new_run_id(args.command),
        limit=args.limit,
        extravars=extravars or {},
        check=getattr(args, "check", False),
        verbosity=args.verbose,
        vault_password_file=_vault_file(args, inventory),
    )
    return run_playbook(run)


def cmd_health(args: argparse.Namespace) -> int:
    result = _run(args, "health")
    rows = survey_rows(result)
    if args.json:
        print(json.dumps({"run_id": result.run_id, "clinics": rows}, indent=2))
    else:
        render_survey(rows, result)
    unhealthy = [row for row in rows if row["outcome"] != "healthy"]
    return EXIT_FAILED if unhealthy or result.rc != 0 else EXIT_OK


def parse_waves(text: str) -> list[int | str]:
    """``1,25%,100%`` -> ``[1, "25%", "100%"]`` (Ansible's serial list): counts or percentages."""
    waves: list[int | str] = []
    for part in (item.strip() for item in text.split(",")):
        number = part[:-1] if part.endswith("%") else part
        if not number.isdigit() or int(number) == 0 or (part.endswith("%") and int(number) > 100):
            raise UsageError(f"--waves {text!r}: each wave is a clinic count or a percentage (e.g. 1,25%,100%)")
        waves.append(part if part.endswith("%") else int(part))
    return waves


def deploy_vars(args: argparse.Namespace) -> dict:
    """Extra vars of a deploy: the version, exactly one source, one release id for every wave."""
    from datetime import UTC, datetime

    from clinicops.project import project_root

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
    extravars: dict = {
        "deploy_version": args.version,
        "deploy_release_id": release_id,
        "deploy_waves": parse_waves(args.waves),
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


def rollback_vars(args: argparse.Namespace) -> dict:
    extravars: dict = {"rollback_to": args.to or "", "rollback_force": args.force}
    if args.restore_data:
        extravars.update(rollback_restore_data=True, rollback_confirm=args.confirm or "")
    return extravars


# Procedure commands: command -> (playbook, title, extra vars built from the options).
PROCEDURES = {
    "deploy": ("deploy", "deploy", deploy_vars),
    "rollback": ("rollback", "rollback", rollback_vars),
    "backup": ("backup", "backup", lambda a: {"backup_release_id": a.release_id} if a.release_id else {}),
    "drill": ("restore_drill", "restore drill", lambda a: {"restore_snapshot": a.snapshot}),
    "restore": (
        "restore",
        "restore",
        lambda a: {"restore_snapshot": a.snapshot, "restore_confirm": a.confirm or "", "restore_tables": a.table or []},
    ),
}


def cmd_procedure(args: argparse.Namespace) -> int:
    from clinicops.run_report import outcome_rows, render_outcomes

    playbook, title, extravars = PROCEDURES[args.command]
    result = _run(args, playbook, extravars(args))
    rows = outcome_rows(result)
    if args.json:
        print(json.dumps({"run_id": result.run_id, "status": result.status, "clinics": rows}, indent=2))
    else:
        render_outcomes(title, rows, result)
    failed = [row for row in rows if row["outcome"] != "ok"]
    return EXIT_FAILED if failed or result.rc != 0 else EXIT_OK


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


def _fleet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--inventory", help="inventory directory or file (default: the lab)")
    parser.add_argument("--limit", help="clinics or groups (Ansible --limit pattern)")
    parser.add_argument("--vault-password-file", help="vault password file for the inventory")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="pass verbosity to Ansible")


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

    health = sub.add_parser("health", help="health survey of the clinics")
    _fleet_arguments(health)
    health.set_defaults(func=cmd_health)

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
    _fleet_arguments(deploy)
    deploy.add_argument("--version", required=True, help="version to deploy (e.g. 2.0.0)")
    deploy.add_argument("--artifact", help="release tarball (default in the lab: build/artifacts/clinic-app-VERSION)")
    deploy.add_argument("--url", help="release tarball URL (needs --checksum)")
    deploy.add_argument("--checksum", help="sha256:<hex> of the artifact (default: the .sha256 file beside it)")
    deploy.add_argument("--git-repo", help="git repository to deploy from (with --git-ref)")
    deploy.add_argument("--git-ref", help="tag, branch or commit")
    deploy.add_argument("--image", help="compose clinics: image repository, tagged with --version")
    deploy.add_argument("--release-id", help="release id (default: UTC time + version, one for the whole run)")
    deploy.add_argument("--waves", default="1,25%,100%", help="batches: counts or percentages (default 1,25%%,100%%)")
    deploy.add_argument(
        "--max-fail-percentage", type=int, default=0, help="failed clinics tolerated per wave (default 0)"
    )
    deploy.add_argument("--health-deadline", type=int, help="seconds a new release has to become healthy")
    rollback = sub.add_parser("rollback", help="roll back to the previous good release (or --to), health-gated")
    _fleet_arguments(rollback)
    rollback.add_argument("--to", help="release id to roll back to (default: the previous good release)")
    rollback.add_argument("--force", action="store_true", help="allow a target marked bad or unfinished")
    rollback.add_argument(
        "--restore-data", action="store_true", help="also restore the database bound to the release left"
    )
    rollback.add_argument("--confirm", help="the clinic's id: required with --restore-data")
    for child in (backup, drill, restore, deploy, rollback):
        child.add_argument("--check", action="store_true", help="dry run: report what would change")
        child.set_defaults(func=cmd_procedure)

    audit = sub.add_parser("audit", help="the controller's audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="check the hash chain; exit 1 naming the first bad line")
    show = audit_sub.add_parser("show", help="print the last records")
    show.add_argument("-n", "--last", type=int, default=20, help="how many records (default 20)")
    show.add_argument("--json", action="store_true", help="one JSON record per line")
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
        return 130


if __name__ == "__main__":
    sys.exit(main())
