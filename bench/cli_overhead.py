"""Benchmark: the CLI's controller overhead, ``clinicops health`` against ``ansible-playbook`` on the same playbook.

On demand only (``make bench-cli``; never part of ``make test``). It brings up (or reuses) the lab
``benchdeploy`` with ten clinics, the lab of bench/deploy_rollback.py, then runs N times each, in
the same run, with the order rotating so that neither side always goes first:

- direct: ``ansible-playbook -i <inventory> --vault-password-file <inventory>/.vault-pass
  --forks 25 playbooks/health.yml -e clinicops_run_id=<id>``, with the environment the CLI gives
  Ansible (``clinicops.project.ansible_env()``: pipelining on) and the CLI's 25 forks;
- ours: ``clinicops health -i <inventory> --quiet``, with one ``CLINICOPS_HOME`` (a temporary
  directory) for all its runs, as an operator has one: the warm-up run resolves the inventory
  (``ansible-inventory --list``) and fills the fleet cache the timed runs read. Each plans the wave,
  runs the same playbook through ansible-runner with the audit callback, and saves its report.

``--decompose`` adds two sides to the same rotation, to say where the difference goes: the direct
command with the audit callback enabled as the CLI enables it, and ``clinicops.runner.run_playbook``
called alone (ansible-runner and the audit callback, without the CLI's inventory resolution and
report).

Every time is wall clock measured on this machine around the command. The timestamps the runs leave
behind (the CLI's run.json and report.json, the runner's job events, the direct run's PLAY and
PLAY RECAP lines) split each time into start-up, the play and the end. It prints medians, min-max,
n and the ratio ours/direct measured in the same run against the target (<= 1.1x). It asserts
nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from common import (  # bench/ is the script's own directory
    BIN,
    ROOT,
    BenchError,
    Table,
    lab_containers,
    lab_inventory,
    lab_parser,
    lab_up,
    log,
    machine_facts,
    measured,
    rotate,
    tool_env,
)
from common import Samples as BaseSamples

from clinicops.lab.fleet import lab_vault_password_file

CLINICS = 10
FORKS = 25  # what the CLI passes to ansible-playbook (clinicops.runner.PlaybookRun.forks)
TARGET = 1.1
PLAYBOOK = ROOT / "playbooks" / "health.yml"
SIDES = ["direct", "ours"]
DECOMPOSE = ["audit", "runner"]
AUDIT_CALLBACK = "clinicops.runbook.audit"
RECAP_LINE = re.compile(r"^\S+\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0\b")

# ``clinicops.runner.run_playbook`` alone, as the CLI calls it for one wave: no inventory resolution, no report.
RUNNER_ALONE = """
import sys
from pathlib import Path
from clinicops.runner import PlaybookRun, playbook_path, run_playbook
inventory, vault, run_id, private = sys.argv[1:5]
run = PlaybookRun(playbook=playbook_path("health"), inventory=Path(inventory), operation="health", run_id=run_id,
                  vault_password_file=Path(vault))
result = run_playbook(run, Path(private))
print(sum(host.outcome == "ok" for host in result.hosts.values()))
sys.exit(0 if result.rc == 0 and result.finished else 1)
"""


@dataclass
class Timed:
    wall: float
    marks: dict[str, float] = field(default_factory=dict)  # seconds from the command's start


def children_cpu() -> float:
    """CPU seconds (user + sys) of this process's children that have ended and been waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Samples(BaseSamples):
    """Each side's wall time, and the parts of it its timestamps mark."""

    def add(self, side: str, timed: Timed) -> None:  # type: ignore[override]
        self.values[side].append(timed.wall)
        for name, seconds in timed.marks.items():
            self.values[f"{side}: {name}"].append(seconds)


class Sides:
    """The commands compared, each timed around the whole process, on the same inventory."""

    def __init__(self, inventory: Path, clinics: list[str], scratch: Path) -> None:
        self.inventory = inventory
        self.vault = lab_vault_password_file(inventory) or inventory / ".vault-pass"
        self.clinics = clinics
        self.scratch = scratch
        self.count = 0

    def _home(self, side: str) -> Path:
        self.count += 1
        return self.scratch / f"{self.count:03d}-{side}"

    def run(self, side: str) -> Timed:
        if side in ("direct", "audit"):
            return self.direct(audit=side == "audit")
        return self.ours() if side == "ours" else self.runner_alone()

    def direct(self, audit: bool) -> Timed:
        run_id = f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-direct"
        argv = [str(BIN / "ansible-playbook"), "-i", str(self.inventory), "--vault-password-file", str(self.vault)]
        argv += ["--forks", str(FORKS), str(PLAYBOOK), "-e", f"clinicops_run_id={run_id}"]
        env = tool_env()
        if audit:  # as clinicops.runner.PlaybookRun enables it
            home = self._home("audit")
            home.mkdir(parents=True)
            env |= {"ANSIBLE_CALLBACKS_ENABLED": AUDIT_CALLBACK, "CLINICOPS_AUDIT_TRAIL": str(home / "audit.jsonl")}
        timed = Timed(0.0)
        lines = []
        cpu = children_cpu()
        started = time.monotonic()
        # Ansible flushes every line it displays: the banners' arrival times mark the play's start and end.
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("PLAY RECAP"):
                    timed.marks.setdefault("stats", time.monotonic() - started)
                elif line.startswith("PLAY ["):
                    timed.marks.setdefault("play", time.monotonic() - started)
                lines.append(line)
            code = process.wait()
        timed.wall = time.monotonic() - started
        timed.marks["cpu"] = children_cpu() - cpu
        output = "".join(lines)
        healthy = sum(1 for line in lines if RECAP_LINE.match(line))
        if code != 0 or healthy != len(self.clinics) or not {"play", "stats"} <= timed.marks.keys():
            raise BenchError(
                f"ansible-playbook health.yml exited {code}, {healthy} of {len(self.clinics)} clinics without "
                f"failure in its recap:\n{output[-4000:]}"
            )
        return timed

    def ours(self) -> Timed:
        # One state home for every run of this side, as an operator has: the fleet cache the
        # warm-up run filled answers the timed runs (an inventory change would resolve it again).
        home = self.scratch / "ours-home"
        before = set((home / "runs").glob("*/report.json"))
        timed, epoch = self._timed(["clinicops", "health", "-i", str(self.inventory), "--quiet"], home, 0)
        found = sorted(set((home / "runs").glob("*/report.json")) - before)
        if len(found) != 1:
            raise BenchError(f"clinicops health left {len(found)} new run reports in {home / 'runs'}, 1 expected")
        run_dir = found[0].parent
        report = json.loads(found[0].read_text())
        outcomes = [row["outcome"] for row in report["clinics"]]
        if report["exit_code"] != 0 or outcomes != ["healthy"] * len(self.clinics):
            raise BenchError(f"clinicops health reported {report['counts']} (exit {report['exit_code']}): {run_dir}")
        timed.marks["spec"] = (run_dir / "run.json").stat().st_mtime - epoch
        timed.marks |= event_marks(run_dir, epoch)
        timed.marks["report"] = (run_dir / "report.json").stat().st_mtime - epoch
        return timed

    def runner_alone(self) -> Timed:
        home = self._home("runner")
        run_id = f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-runner"
        argv = ["python", "-c", RUNNER_ALONE, str(self.inventory), str(self.vault), run_id, str(home / "runner")]
        timed, epoch = self._timed(argv, home, len(self.clinics))
        timed.marks |= event_marks(home / "runner", epoch)
        return timed

    def _timed(self, argv: list[str], home: Path, printed: int) -> tuple[Timed, float]:
        """One of the venv's commands with CLINICOPS_HOME=``home``; (its time, when it started as a Unix time)."""
        env = tool_env() | {"CLINICOPS_HOME": str(home)}
        cpu = children_cpu()
        epoch = time.time()
        started = time.monotonic()
        done = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, env=env, check=False)
        timed = Timed(time.monotonic() - started, {"cpu": children_cpu() - cpu})
        if done.returncode != 0 or (printed and done.stdout.strip() != str(printed)):
            raise BenchError(
                f"{' '.join(argv[:2])} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        return timed, epoch

    def inventory_list(self) -> Timed:
        """``ansible-inventory --list``, what the CLI runs before anything (clinicops.inventory.resolve_fleet)."""
        argv = [str(BIN / "ansible-inventory"), "-i", str(self.inventory), "--list"]
        argv += ["--vault-password-file", str(self.vault)]
        cpu = children_cpu()
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, env=tool_env(), check=False)
        timed = Timed(time.monotonic() - started, {"cpu": children_cpu() - cpu})
        if done.returncode != 0:
            raise BenchError(f"ansible-inventory --list exited {done.returncode}: {done.stderr[-2000:]}")
        return timed


def event_marks(private_data_dir: Path, epoch: float) -> dict[str, float]:
    """When the play started and when its stats came, from the runner's job events (seconds after ``epoch``)."""
    created: dict[str, float] = {}
    for path in private_data_dir.glob("**/job_events/*.json"):
        event = json.loads(path.read_text())
        if event.get("event") in ("playbook_on_play_start", "playbook_on_stats"):
            at = datetime.fromisoformat(event["created"]).timestamp() - epoch
            created[event["event"]] = min(at, created.get(event["event"], at))
    if len(created) != 2:
        raise BenchError(f"no play start or no stats among the job events of {private_data_dir}")
    return {"play": created["playbook_on_play_start"], "stats": created["playbook_on_stats"]}


def measure_sides(sides: Sides, names: list[str], runs: int, samples: Samples) -> None:
    log(f"warm-up: one untimed run of each side ({', '.join(names)})")
    for side in names:
        sides.run(side)
    for index in range(runs):
        for side in rotate(names, index):
            load = os.getloadavg()[0]
            timed = sides.run(side)
            log(f"run {index + 1}/{runs}: {side:<6} {timed.wall:6.2f} s (load {load:.1f})")
            samples.add(side, timed)
            samples.values["load before a run"].append(load)
            samples.runs.append({"run": index + 1, "side": side, "seconds": timed.wall, "marks": timed.marks})
        samples.add("ansible-inventory --list", sides.inventory_list())


# -- the report -------------------------------------------------------------------------------------------------------


def parts(values: dict[str, list[float]], side: str) -> dict[str, list[float]]:
    """The side's wall time cut at its marks, run by run."""

    def between(start: str | None, end: str | None) -> list[float]:
        ends = values[f"{side}: {end}"] if end else values[side]
        starts = values[f"{side}: {start}"] if start else [0.0] * len(ends)
        return [b - a for a, b in zip(starts, ends, strict=True)]

    found = {
        "start-up": between(None, "play"),
        "play": between("play", "stats"),
        "after": between("stats", None),
    }
    if f"{side}: spec" in values:
        found |= {
            "cli": between(None, "spec"),
            "runner start": between("spec", "play"),
            "runner end": between("stats", "report"),
            "exit": between("report", None),
        }
    return found


def report(samples: Samples, args: argparse.Namespace, names: list[str]) -> str:
    table = Table(width=66)
    facts = samples.facts
    values = samples.values
    load = values["load before a run"]
    table.lines.append(
        f"clinicops CLI overhead benchmark - lab {args.lab!r} ({facts['clinics']} clinics), playbooks/health.yml, "
        f"{args.runs} runs per side (order rotating), medians"
    )
    table.lines.append(
        f"{facts['cpus']} CPUs, {facts['ansible']}, {facts['runner']}, pipelining on, forks {FORKS}, "
        f"checkout {facts['commit']}; wall clock seconds measured on the controller"
    )
    table.lines.append(
        f"machine load average (1 min) at start / before the runs (min-max) / end: {facts['load at start']:.2f} / "
        f"{min(load):.2f}-{max(load):.2f} / {os.getloadavg()[0]:.2f} (shared machine; see bench/README.md)"
    )
    direct = values["direct"]
    table.title(table.header(f"HEALTH SURVEY OF {facts['clinics']} CLINICS", "ours/direct (paired)"))
    table.row("direct: ansible-playbook playbooks/health.yml (forks 25)", direct)
    table.row("ours: clinicops health -i <inventory> --quiet", values["ours"], direct, TARGET)
    table.row("  ours - direct (per run)", [o - d for o, d in zip(values["ours"], direct, strict=True)])
    if "audit" in names:
        table.row("direct + the audit callback (as the CLI enables it)", values["audit"], direct)
        table.row("clinicops.runner.run_playbook alone (ansible-runner + audit)", values["runner"], direct)

    table.title(table.header("CPU SECONDS ON THE CONTROLLER (user + sys, with children)", "x direct (paired)"))
    table.row("direct", values["direct: cpu"])
    table.row("ours", values["ours: cpu"], values["direct: cpu"])
    for side, label in (("audit", "direct + the audit callback"), ("runner", "run_playbook alone")):
        if side in names:
            table.row(label, values[f"{side}: cpu"], values["direct: cpu"])
    table.row("ansible-inventory --list alone (once per round, apart)", values["ansible-inventory --list: cpu"])

    table.title(table.header("WHERE THE TIME GOES (from each command's start)", "x the direct part (paired)"))
    base = parts(values, "direct")
    table.row("direct: start-up until PLAY [ (Python, Ansible, inventory, vault)", base["start-up"])
    table.row("direct: the play (PLAY [ to PLAY RECAP)", base["play"])
    table.row("direct: after PLAY RECAP until it exits", base["after"])
    ours = parts(values, "ours")
    table.row("ours: start-up until the play starts", ours["start-up"], base["start-up"])
    table.row("  CLI start-up, fleet (cached), plan (until run.json)", ours["cli"])
    table.row("  runner set-up + ansible-playbook start-up (run.json to play)", ours["runner start"])
    table.row("ours: the play (play start to stats events)", ours["play"], base["play"])
    table.row("ours: after the play until it exits", ours["after"], base["after"])
    table.row("  audit callback, runner's end, report saved (report.json)", ours["runner end"])
    table.row("  the summary line and the process exit", ours["exit"])
    table.row("ansible-inventory --list alone (once per round, apart)", values["ansible-inventory --list"])
    if "audit" in names:
        for side, label in (("audit", "direct + audit callback"), ("runner", "run_playbook alone")):
            split = parts(values, side)
            table.row(f"{label}: start-up until the play starts", split["start-up"], base["start-up"])
            table.row(f"{label}: the play", split["play"], base["play"])
            table.row(f"{label}: after the play until it exits", split["after"], base["after"])
    return table.render()


def main(argv: list[str] | None = None) -> int:
    parser = lab_parser(__doc__.split("\n\n")[0], "benchdeploy")
    parser.add_argument("--runs", type=int, default=5, help="runs per side, order rotating (default 5)")
    parser.add_argument(
        "--decompose",
        action="store_true",
        help="also run the direct command with the audit callback, and clinicops.runner.run_playbook alone",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    inventory = lab_inventory(parser, args.lab)
    names = SIDES + (DECOMPOSE if args.decompose else [])
    samples = Samples()

    def measure() -> None:
        if not args.no_lab_up:
            lab_up(args.lab, CLINICS)
        clinics = [host for host, _container in lab_containers(args.lab, inventory, CLINICS)]
        samples.facts.update({"clinics": len(clinics), **machine_facts()})
        log(f"{len(clinics)} clinics: {', '.join(clinics)}; sides {', '.join(names)}")
        with tempfile.TemporaryDirectory(prefix="clinicops-bench-cli-") as scratch:
            measure_sides(Sides(inventory, clinics, Path(scratch)), names, args.runs, samples)

    return measured(args, samples, measure, lambda: report(samples, args, names), argv, "bench-cli")


if __name__ == "__main__":
    sys.exit(main())
