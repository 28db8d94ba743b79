"""Benchmark: our rollback against the bare minimum by hand, and a deploy to 1 clinic against 10.

On demand only (``make bench-deploy``; never part of ``make test``). It brings up (or reuses) the
lab ``benchdeploy`` with ten clinics, then measures, N times each:

- rollback, on one clinic, alternating the order of the two sides: ``playbooks/rollback.yml
  --limit <clinic> -e rollback_to=<release>`` (lock, audit, switch, restart, health gate, audit,
  unlock) against one ad-hoc ``ansible <clinic> -m shell`` that swaps the ``current`` link
  atomically and restarts the app, followed by polling ``/health`` through nginx every 100 ms
  until it answers 200 naming the release. Two good releases (``bench-a`` = 2.0.0,
  ``bench-b`` = 1.0.0) are set up first; every run switches to the one that is not current.
- deploy: ``playbooks/deploy.yml`` in one wave (``deploy_waves: ["100%"]``) to one clinic and to
  all ten, with pipelining and 10 forks. Each run has a fresh release id and the version that is
  not active on its clinics (2.0.0 and 1.0.0 in turn), so that every run really deploys.

Every time is wall clock measured on this machine around the command. It prints medians, min-max,
n, the ratios ours/by hand and 10/1 measured in the same run, whether they meet the targets
(rollback <= 2x, 10 clinics <= 3x one clinic) and how many tasks a deploy runs on each clinic.
It asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import (  # bench/ is the script's own directory
    BIN,
    ROOT,
    BenchError,
    Samples,
    Table,
    lab_containers,
    lab_inventory,
    lab_parser,
    lab_up,
    log,
    machine_facts,
    measured,
    tool_env,
)
from docker.models.containers import Container

from clinicops.lab.fleet import lab_vault_password_file

ARTIFACTS = ROOT / "build" / "artifacts"

CLINICS = 10
FORKS = 10
APP_ROOT = "/srv/clinic"
APP_SERVICE = "clinic-app"
LOCK = "/var/lib/clinicops/clinic.lock"
MARKERS = (".clinicops-unfinished", ".clinicops-bad")
GOOD = ("active", "inactive", "rolled_back")  # statuses a release may be named as a rollback target in
# The two releases the rollback switches between; each run goes to the one that is not current.
PAIR = {"bench-a": "2.0.0", "bench-b": "1.0.0"}
VERSIONS = ("2.0.0", "1.0.0")
ONE_WAVE = {"deploy_waves": ["100%"]}
POLL_INTERVAL = 0.1
POLL_DEADLINE = 90.0

ROLLBACK_TARGET = 2.0
FLEET_TARGET = 3.0

# What the task counts of a deploy show, per clinic (from the JSON callback's results and its PLAY RECAP).
COUNTS = (
    ("remote", "tasks run on the clinic (modules; the figure)"),
    ("items", "  module runs on the clinic, loop items counted"),
    ("controller", "tasks on the controller (set_fact, assert, include..)"),
    ("skipped", "tasks skipped (not counted above)"),
    ("recap", "PLAY RECAP ok + failed (ok includes changed)"),
    ("changed", "PLAY RECAP changed"),
)

# Actions that run on the controller, not on the clinic: not counted as remote tasks.
CONTROLLER_ACTIONS = frozenset(
    {
        "assert",
        "debug",
        "fail",
        "set_fact",
        "set_stats",
        "include_tasks",
        "include_role",
        "import_tasks",
        "import_role",
        "include_vars",
        "meta",
        "add_host",
        "group_by",
        "pause",
        "validate_argument_spec",
    }
)


# -- the lab ----------------------------------------------------------------------------------------------------------


@dataclass
class Clinic:
    container: Container
    host: str
    address: str

    def run(self, argv: list[str]) -> str:
        result = self.container.exec_run(argv)
        output = result.output.decode(errors="replace")
        if result.exit_code != 0:
            raise BenchError(f"{' '.join(argv)} exited {result.exit_code} in {self.container.name}: {output[-2000:]}")
        return output

    def current(self) -> str:
        return os.path.basename(self.run(["readlink", f"{APP_ROOT}/current"]).strip())

    def releases(self) -> dict[str, dict[str, Any]]:
        found = self.container.exec_run(["cat", f"{APP_ROOT}/releases.json"])
        if found.exit_code != 0:
            return {}
        return {entry["id"]: entry for entry in json.loads(found.output)["releases"]}

    def active_version(self) -> str:
        return json.loads(self.run(["cat", f"{APP_ROOT}/current/RELEASE.json"]))["version"]

    def usable(self, release_id: str) -> bool:
        """The release can be named as a rollback target: its directory is there, unmarked, good in the log."""
        entry = self.releases().get(release_id)
        if entry is None or entry.get("status") not in GOOD:
            return False
        probe = " && ".join(f"test ! -e {APP_ROOT}/releases/{release_id}/{marker}" for marker in MARKERS)
        return (
            self.container.exec_run(["sh", "-c", f"test -d {APP_ROOT}/releases/{release_id} && {probe}"]).exit_code == 0
        )

    def locked(self) -> bool:
        return self.container.exec_run(["test", "-e", LOCK]).exit_code == 0

    def health(self, timeout: float = 2.0) -> tuple[int | str, dict[str, Any]]:
        """/health through nginx on the container's address, from this machine, as a client sees it."""
        try:
            with urllib.request.urlopen(f"http://{self.address}/health", timeout=timeout) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}
        except (OSError, ValueError) as exc:
            return type(exc).__name__, {}


def lab_clinics(lab: str, inventory: Path, bring_up: bool, count: int = CLINICS) -> list[Clinic]:
    if bring_up:
        lab_up(lab, count)
    clinics = []
    for host, container in lab_containers(lab, inventory, count):
        networks = container.attrs["NetworkSettings"]["Networks"]
        clinics.append(Clinic(container, host, next(iter(networks.values()))["IPAddress"]))
    return clinics


# -- ansible-playbook and ansible -------------------------------------------------------------------------------------


def _seconds(duration: dict[str, str]) -> float:
    if "end" not in duration:
        return 0.0
    start, end = (datetime.fromisoformat(duration[key].replace("Z", "+00:00")) for key in ("start", "end"))
    return (end - start).total_seconds()


def _short(action: str) -> str:
    return action.rsplit(".", 1)[-1]


@dataclass
class PlaybookRun:
    wall: float
    tasks: dict[str, float] = field(default_factory=dict)  # task name (without the role) -> seconds
    # host -> {"remote tasks", "module runs", "controller tasks", "delegated", "skipped"} counted from the results
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    remote_names: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    recap: dict[str, dict[str, int]] = field(default_factory=dict)  # host -> the PLAY RECAP counts
    warnings: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    notes: list[str] = field(default_factory=list)  # debug messages (e.g. "is already active")


class Ansible:
    def __init__(self, inventory: Path) -> None:
        self.inventory = inventory
        vault = lab_vault_password_file(inventory) or inventory / ".vault-pass"
        self.common = ["-i", str(inventory), "--vault-password-file", str(vault)]
        # As the Makefile and the CLI run Ansible: pipelining on; forks enough for ten clinics at once.
        self.env = {**tool_env(), "ANSIBLE_PIPELINING": "True", "ANSIBLE_FORKS": str(FORKS)}

    def playbook(self, playbook: str, limit: str, extra_vars: dict[str, Any]) -> PlaybookRun:
        """Run one of the collection's playbooks as an operator would, with the JSON callback; timed around it."""
        argv = [str(BIN / "ansible-playbook"), *self.common, "--limit", limit, str(ROOT / "playbooks" / playbook)]
        argv += ["-e", json.dumps(extra_vars)]
        env = {**self.env, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        wall = time.monotonic() - started
        if done.returncode != 0:
            raise BenchError(
                f"{playbook} --limit {limit} exited {done.returncode}:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
            )
        return parse_run(wall, json.loads(done.stdout[done.stdout.index("{") :]))

    def shell(self, host: str, command: str) -> tuple[float, str]:
        """One ad-hoc ``ansible <host> -m ansible.builtin.shell -a <command>``; (wall seconds, output)."""
        argv = [str(BIN / "ansible"), host, *self.common, "-m", "ansible.builtin.shell", "-a", command]
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, check=False)
        wall = time.monotonic() - started
        if done.returncode != 0:
            raise BenchError(
                f"ansible {host} -m shell exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
            )
        return wall, done.stdout


def parse_run(wall: float, report: dict[str, Any]) -> PlaybookRun:
    """Task times, and per host what ran where: on the clinic, on the controller, delegated, skipped."""
    run = PlaybookRun(wall, recap=report.get("stats", {}))
    for play in report["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"].split(" : ", 1)[-1]
            run.tasks[name] = run.tasks.get(name, 0.0) + _seconds(task["task"]["duration"])
            for host, result in task["hosts"].items():
                counts = run.counts[host]
                run.warnings[host] += [str(w) for w in result.get("warnings") or []]
                if result.get("skipped"):
                    counts["skipped"] += 1
                    continue
                if _short(result.get("action", "")) in CONTROLLER_ACTIONS:
                    counts["controller tasks"] += 1
                    if _short(result.get("action", "")) == "debug" and result.get("msg"):
                        run.notes.append(str(result["msg"]))
                    continue
                if result.get("_ansible_delegated_vars"):  # delegate_to: ran on another host
                    counts["delegated"] += 1
                    continue
                counts["remote tasks"] += 1
                items = result.get("results")
                if isinstance(items, list):
                    counts["module runs"] += sum(1 for item in items if not item.get("skipped"))
                else:
                    counts["module runs"] += 1
                run.remote_names[host].append(name)
    return run


# -- rollback: ours against the bare minimum by hand ------------------------------------------------------------------


def deploy_vars(version: str, release_id: str, force: bool = False) -> dict[str, Any]:
    artifact = ARTIFACTS / f"clinic-app-{version}.tar.gz"
    if not artifact.is_file():
        raise BenchError(f"{artifact} is missing (the lab builds the artifacts: clinicops lab up)")
    values = {"deploy_version": version, "deploy_artifact": str(artifact), "deploy_release_id": release_id, **ONE_WAVE}
    return {**values, "deploy_force": True} if force else values


def prepare_pair(clinic: Clinic, ansible: Ansible) -> None:
    """bench-a (2.0.0) and bench-b (1.0.0) both present and good on the clinic; deployed (forced) when not."""
    if all(clinic.usable(release_id) for release_id in PAIR):
        log(f"rollback set-up: {' and '.join(PAIR)} already on {clinic.host}")
        return
    # Both, in this order: the second deploy leaves the first inactive (its previous release), so its cleanup keeps it.
    for release_id, version in PAIR.items():
        log(f"rollback set-up: deploy {version} as {release_id} on {clinic.host} (forced, untimed)")
        ansible.playbook("deploy.yml", clinic.host, deploy_vars(version, release_id, force=True))


def other(current: str) -> str:
    return "bench-b" if current == "bench-a" else "bench-a"


def check_consistent(clinic: Clinic, target: str, where: str) -> dict[str, Any]:
    """After a run: the link, what nginx serves, the log and the lock. Raises when the next run could not start."""
    current = clinic.current()
    status, body = clinic.health()
    log_active = [entry_id for entry_id, entry in clinic.releases().items() if entry.get("status") == "active"]
    state = {
        "current": current,
        "served": body.get("release"),
        "http": status,
        "log active": log_active,
        "log agrees": log_active == [current],
        "locked": clinic.locked(),
    }
    if current != target or status != 200 or body.get("release") != target or state["locked"]:
        raise BenchError(f"after {where} on {clinic.host}, expected {target} current, served and unlocked: {state}")
    return state


def our_rollback(clinic: Clinic, ansible: Ansible, target: str, samples: Samples | None) -> None:
    run = ansible.playbook("rollback.yml", clinic.host, {"rollback_to": target})
    state = check_consistent(clinic, target, "rollback.yml")
    if not state["log agrees"]:
        raise BenchError(f"rollback.yml left the release log disagreeing with the link on {clinic.host}: {state}")
    drift = [w for w in run.warnings.get(clinic.host, []) if "current" in w or "drift" in w or "log" in w]
    log(f"  ours: {run.wall:.2f} s to {target}" + (f"; the release module reported drift: {drift}" if drift else ""))
    if samples is not None:
        samples.add("rollback: ours", run.wall)
        samples.add("rollback: ours: remote tasks", float(run.counts[clinic.host]["remote tasks"]))
        samples.add_tasks("rollback", run)
        samples.facts["rollback remote task names"] = run.remote_names[clinic.host]
        samples.runs.append(
            {"what": "rollback ours", "target": target, "seconds": run.wall, "drift warnings": drift, "state": state}
        )


def by_hand(clinic: Clinic, ansible: Ansible, target: str, samples: Samples) -> None:
    """The bare minimum an operator types: swap the link atomically, restart; then wait until nginx serves it."""
    command = (
        f"cd {APP_ROOT} && ln -sfn releases/{target} current.bench-tmp && mv -T current.bench-tmp current"
        f" && systemctl restart {APP_SERVICE}"
    )
    started = time.monotonic()
    command_seconds, _output = ansible.shell(clinic.host, command)
    seen: dict[str, int] = defaultdict(int)
    while True:
        status, body = clinic.health(timeout=1.0)
        if status == 200 and body.get("release") == target:
            break
        seen[str(status) if status != 200 else f"200 from {body.get('release')}"] += 1
        if time.monotonic() - started > POLL_DEADLINE:
            raise BenchError(
                f"by hand: {clinic.host} did not serve {target} within {POLL_DEADLINE:.0f} s: {dict(seen)}"
            )
        time.sleep(POLL_INTERVAL)
    wall = time.monotonic() - started
    state = check_consistent(clinic, target, "the swap by hand")
    log(
        f"  by hand: {wall:.2f} s to {target} (ansible shell {command_seconds:.2f} s, then {sum(seen.values())} polls "
        f"not yet serving it: {dict(seen) or 'none'}); release log agrees with the link: {state['log agrees']}"
    )
    samples.add("rollback: by hand", wall)
    samples.add("rollback: by hand, ansible shell alone", command_seconds)
    samples.add("rollback: by hand, wait for /health after it", wall - command_seconds)
    samples.runs.append(
        {
            "what": "rollback by hand",
            "target": target,
            "seconds": wall,
            "shell seconds": command_seconds,
            "polls before 200": dict(seen),
            "state": state,
        }
    )


def rotate(items: list[Any], index: int) -> list[Any]:
    shift = index % len(items)
    return items[shift:] + items[:shift]


def measure_rollback(clinic: Clinic, ansible: Ansible, runs: int, samples: Samples) -> None:
    prepare_pair(clinic, ansible)
    current = clinic.current()
    # Untimed warm-up, also the start of the a/b cycle (and the log in line with the link, whatever came before).
    target = other(current) if current in PAIR else "bench-b"
    log(f"rollback warm-up: rollback.yml to {target} (untimed)")
    our_rollback(clinic, ansible, target, None)
    current = target
    last = "ours"
    for index in range(runs):
        for side in rotate(["by hand", "ours"], index):
            target = other(current)
            log(f"rollback run {index + 1}/{runs}: {side} to {target}")
            if side == "ours":
                our_rollback(clinic, ansible, target, samples)
            else:
                by_hand(clinic, ansible, target, samples)
            current, last = target, side
    if last == "by hand":  # the swap by hand left the log behind the link: one more rollback writes it back in line
        log(f"rollback: untimed rollback.yml to {other(current)}, so the release log agrees with the link again")
        our_rollback(clinic, ansible, other(current), None)
    after = [
        r
        for i, r in enumerate(samples.runs)
        if r["what"] == "rollback ours" and i and "by hand" in samples.runs[i - 1]["what"]
    ]
    samples.facts["ours-runs right after a swap by hand"] = len(after)
    samples.facts["ours-runs right after a swap by hand, drift reported"] = sum(1 for r in after if r["drift warnings"])


# -- deploy: one clinic against ten -----------------------------------------------------------------------------------


def release_id(kind: str, version: str) -> str:
    return f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{kind}-{version}"


def fleet_versions(clinics: list[Clinic]) -> dict[str, str]:
    return {clinic.host: clinic.active_version() for clinic in clinics}


def deploy(
    clinics: list[Clinic], ansible: Ansible, kind: str, samples: Samples | None, force: bool = False, version: str = ""
) -> None:
    """One deploy.yml run to ``clinics``: the version none of them runs, a fresh release id; checked afterwards."""
    active = set(fleet_versions(clinics).values())
    if not version:
        if len(active) != 1:
            raise BenchError(f"the clinics run different versions {active}; a deploy would be a no-op on some")
        version = next(v for v in VERSIONS if v not in active)
    new = release_id(kind, version)
    limit = clinics[0].host if len(clinics) == 1 else "clinics"
    run = ansible.playbook("deploy.yml", limit, deploy_vars(version, new, force))
    wrong = {clinic.host: clinic.current() for clinic in clinics if clinic.current() != new}
    if wrong or any("already active" in note for note in run.notes):
        raise BenchError(f"deploy of {new} did not switch every clinic: {wrong or run.notes}")
    locked = [clinic.host for clinic in clinics if clinic.locked()]
    if locked:
        raise BenchError(f"deploy of {new} left the clinic lock on {locked}")
    remote = sorted(run.counts[clinic.host]["remote tasks"] for clinic in clinics)
    log(f"  {len(clinics)} clinic(s): {run.wall:.2f} s ({new}; remote tasks per clinic {remote[0]}-{remote[-1]})")
    if samples is None:
        return
    key = f"deploy: {len(clinics)} clinic{'s' if len(clinics) > 1 else ''}"
    samples.add(key, run.wall)
    samples.add_tasks(key, run)
    for clinic in clinics:
        counts = run.counts[clinic.host]
        recap = run.recap.get(clinic.host, {})
        for name, value in (
            ("remote", counts["remote tasks"]),
            ("items", counts["module runs"]),
            ("controller", counts["controller tasks"]),
            ("skipped", counts["skipped"]),
            ("recap", recap.get("ok", 0) + recap.get("failures", 0)),
            ("changed", recap.get("changed", 0)),
        ):
            samples.add(f"{key}: {name}", float(value))
    samples.facts.setdefault("remote task names (one clinic)", run.remote_names[clinics[0].host])
    samples.runs.append(
        {
            "what": key,
            "release": new,
            "version": version,
            "seconds": run.wall,
            "counts": {host: dict(counts) for host, counts in run.counts.items()},
            "recap": run.recap,
        }
    )


def fleet_order(runs: int) -> list[str]:
    """10, 1, 1, 10, 10, 1, ...: alternating, and the one clinic is back on the fleet's version before a fleet run."""
    pattern = ["10", "1", "1", "10"]
    return [pattern[index % len(pattern)] for index in range(2 * runs)]


def measure_deploy(clinics: list[Clinic], ansible: Ansible, runs: int, samples: Samples) -> None:
    # Untimed warm-up: every clinic deploys both versions once (forced), so that the restic repository, the artifact
    # cache and the schema are in place and every clinic runs the same version before the first measured run.
    for version in VERSIONS:
        log(f"deploy warm-up: {version} to all {len(clinics)} clinics (forced, untimed)")
        deploy(clinics, ansible, "warm", None, force=True, version=version)
    for index, kind in enumerate(fleet_order(runs)):
        targets = clinics if kind == "10" else clinics[:1]
        log(f"deploy run {index + 1}/{2 * runs}: {len(targets)} clinic(s)")
        deploy(targets, ansible, f"{kind}c", samples)


# -- the report -------------------------------------------------------------------------------------------------------


def task_table(table: Table, samples: Samples, scenarios: list[str], title: str, least: float) -> None:
    table.title(title)
    names: list[str] = []
    for scenario in scenarios:
        names += [name for name in samples.tasks[scenario] if name not in names]
    shown = []
    for name in names:
        cells = [samples.tasks[s].get(name) for s in scenarios]
        medians = [statistics.median(cell) if cell else 0.0 for cell in cells]
        if max(medians) >= least:
            shown.append((name, medians))
    shown_names = {name for name, _ in shown}
    small = [sum(statistics.median(v) for n, v in samples.tasks[s].items() if n not in shown_names) for s in scenarios]
    for name, medians in [*shown, (f"(other tasks, each < {least:.2f} s)", small)]:
        table.text(name[:60], " / ".join(f"{value:6.2f}" for value in medians))


def report(samples: Samples, args: argparse.Namespace) -> str:
    table = Table(width=60)
    facts = samples.facts
    values = samples.values
    table.lines.append(
        f"clinicops deploy/rollback benchmark - lab {args.lab!r} ({CLINICS} clinics), rollback on {facts['clinic']}, "
        f"{args.runs} runs per measurement (order alternating), medians"
    )
    table.lines.append(
        f"{facts['cpus']} CPUs, {facts['ansible']}, pipelining on, forks {FORKS}, checkout {facts['commit']}; "
        "wall clock seconds measured on the controller"
    )
    table.lines.append(
        "machine load average (1 min) at start / end: {:.2f} / {:.2f} (shared machine: other labs, tests may run; "
        "see bench/README.md)".format(facts["load at start"], os.getloadavg()[0])
    )
    if "rollback: ours" in values:
        hand = values["rollback: by hand"]
        table.title(table.header("ROLLBACK (one clinic, to the other good release)", "ours/by hand (paired)"))
        table.row("by hand: ansible -m shell (ln -sfn + mv -T + restart) + /health", hand)
        table.row("  of which the ansible shell command", values["rollback: by hand, ansible shell alone"], hand)
        table.row(
            "  of which waiting for 200 naming the release (100 ms polls)",
            values["rollback: by hand, wait for /health after it"],
            hand,
        )
        table.row(
            "ours: rollback.yml -e rollback_to=... (incl. its health gate)",
            values["rollback: ours"],
            hand,
            ROLLBACK_TARGET,
        )
        table.text(
            "ours-runs right after a swap by hand (log behind the link)",
            f"{facts['ours-runs right after a swap by hand']}, drift reported by the release module in "
            f"{facts['ours-runs right after a swap by hand, drift reported']}; "
            "every ours-run succeeded and left log = link",
        )
        remote = values["rollback: ours: remote tasks"]
        table.text("tasks rollback.yml runs on the clinic (JSON callback)", f"{statistics.median(remote):.0f}:")
        for line in textwrap.wrap(", ".join(facts["rollback remote task names"]), 100):
            table.text(f"  {line}", "")
    if "deploy: 1 clinic" in values:
        one = values["deploy: 1 clinic"]
        table.title(table.header("DEPLOY (one wave, fresh release id, 2.0.0 and 1.0.0 in turn)", "10/1 (paired)"))
        table.row(f"deploy.yml to 1 clinic ({facts['clinic']})", one)
        table.row(f"deploy.yml to {CLINICS} clinics", values[f"deploy: {CLINICS} clinics"], one, FLEET_TARGET)
        heading = "TASKS PER DEPLOY PER CLINIC (JSON callback, per clinic and run)"
        table.title(f"{heading:<62} {'1 clinic':>10}  {CLINICS} clinics")
        for name, label in COUNTS:
            cells = [values[f"deploy: {kind}: {name}"] for kind in ("1 clinic", f"{CLINICS} clinics")]
            table.text(
                label, "".join(f"{statistics.median(c):6.0f} {f'({min(c):.0f}-{max(c):.0f})':<9}" for c in cells)
            )
        table.text("a deploy's tasks run on the clinic, in order:", "")
        for line in textwrap.wrap(", ".join(facts["remote task names (one clinic)"]), 100):
            table.text(f"  {line}", "")
    if samples.tasks.get("rollback"):
        task_table(table, samples, ["rollback"], "WHERE OURS SPENDS ITS TIME - rollback.yml tasks (median, s)", 0.25)
    if samples.tasks.get("deploy: 1 clinic"):
        task_table(
            table,
            samples,
            ["deploy: 1 clinic", f"deploy: {CLINICS} clinics"],
            f"WHERE THE DEPLOY SPENDS ITS TIME - deploy.yml tasks (median, s; 1 clinic / {CLINICS} clinics)",
            1.0,
        )
    return table.render()


def main(argv: list[str] | None = None) -> int:
    parser = lab_parser(__doc__.split("\n\n")[0], "benchdeploy")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement, order alternating (default 3)")
    parser.add_argument("--only", choices=["rollback", "deploy"], help="measure only this")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    inventory = lab_inventory(parser, args.lab)
    samples = Samples()

    def measure() -> None:
        # The rollback needs one clinic; the deploy comparison needs ten.
        count = 1 if args.only == "rollback" else CLINICS
        clinics = lab_clinics(args.lab, inventory, bring_up=not args.no_lab_up, count=count)
        ansible = Ansible(inventory)
        samples.facts.update(
            {"clinic": clinics[0].host, "clinics": [clinic.host for clinic in clinics], **machine_facts()}
        )
        log(f"clinics {', '.join(samples.facts['clinics'])}; rollback and the 1-clinic deploy on {clinics[0].host}")
        if args.only in (None, "rollback"):
            measure_rollback(clinics[0], ansible, args.runs, samples)
        if args.only in (None, "deploy"):
            measure_deploy(clinics, ansible, args.runs, samples)

    return measured(args, samples, measure, lambda: report(samples, args), argv, "bench-deploy")


if __name__ == "__main__":
    sys.exit(main())
