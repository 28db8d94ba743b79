"""What the benchmarks share: their log line, their error, the lab they run on, and text tables of
medians, spreads and ratios measured in the same run."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml
from docker.models.containers import Container

from clinicops.project import ansible_env

STARTED = time.monotonic()
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Labs that belong to something else: the demo's, the integration tests', bench/backup_restore.py's.
OTHER_LABS = ("lab", "itest", "bench")


class BenchError(Exception):
    """The benchmark could not measure something; the message says what."""


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def rotate(items: list[Any], index: int) -> list[Any]:
    """The order of the sides in run ``index``: each side goes first in turn."""
    shift = index % len(items)
    return items[shift:] + items[:shift]


# -- the lab -----------------------------------------------------------------------------------------------------------


def tool_env() -> dict[str, str]:
    """The environment the CLI gives Ansible, over this process's own."""
    return {**os.environ, **ansible_env(ROOT), "CLINICOPS_PROJECT_ROOT": str(ROOT)}


def lab_up(lab: str, count: int) -> None:
    """``clinicops lab up --name <lab> --clinics <count>``: creates what is missing, reuses what runs."""
    log(f"clinicops lab up --name {lab} --clinics {count}{' (several minutes the first time)' if count > 1 else ''}")
    argv = [str(BIN / "clinicops"), "lab", "up", "--name", lab, "--clinics", str(count)]
    done = subprocess.run(argv, stdout=sys.stderr, stderr=sys.stderr, env=tool_env(), check=False)
    if done.returncode != 0:
        raise BenchError(f"clinicops lab up --name {lab} exited {done.returncode}")


def lab_down(lab: str) -> None:
    log(f"clinicops lab down --name {lab}")
    subprocess.run([str(BIN / "clinicops"), "lab", "down", "--name", lab], env=tool_env(), check=False)


def inventory_clinics(inventory: Path) -> list[str]:
    """Hosts of the group ``clinics`` in the order the lab's inventory lists them."""
    data = yaml.safe_load((inventory / "hosts.yml").read_text())

    def walk(group: dict[str, Any]) -> list[str]:
        names = list((group or {}).get("hosts") or {})
        for child in ((group or {}).get("children") or {}).values():
            names += walk(child)
        return names

    return walk(data["all"]["children"]["clinics"])


def lab_containers(lab: str, inventory: Path, count: int) -> list[tuple[str, Container]]:
    """(host, container) of every clinic of the lab's inventory, in its order; at least ``count`` of them running."""
    found = docker.from_env().containers.list(filters={"label": [f"clinicops.lab={lab}", "clinicops.lab.role=clinic"]})
    by_host = {container.labels["clinicops.lab.host"]: container for container in found}
    order = inventory_clinics(inventory) if (inventory / "hosts.yml").is_file() else []
    missing = [host for host in order if host not in by_host]
    if missing or len(by_host) < count:
        raise BenchError(
            f"lab {lab!r} runs {len(by_host)} clinics, {count} needed (missing: {missing}); run without --no-lab-up"
        )
    return [(host, by_host[host]) for host in order]


def lab_parser(description: str, lab: str) -> argparse.ArgumentParser:
    """The options of a benchmark on a lab of its own: --lab, --no-lab-up, --json, --down (then its own)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--lab", default=lab, help=f"lab name (default {lab}; never another lab's)")
    parser.add_argument("--no-lab-up", action="store_true", help="use the running lab as it is")
    parser.add_argument("--json", type=Path, help="also write every sample to this JSON file")
    parser.add_argument("--down", action="store_true", help="take the lab down at the end")
    return parser


def lab_inventory(parser: argparse.ArgumentParser, lab: str) -> Path:
    """The lab's inventory directory; a usage error for a lab that belongs to something else."""
    if lab in OTHER_LABS:
        parser.error(f"lab {lab!r} belongs to something else; use a lab of its own")
    return ROOT / "inventories" / f"lab-{lab}"


def wind_up(args: argparse.Namespace, samples: dict[str, Any]) -> None:
    """At the end, after an error too: the samples to ``--json`` (when there are any), the lab down with ``--down``."""
    if args.json and samples.get("values"):
        args.json.write_text(json.dumps(samples, indent=2, default=str) + "\n")
    if args.down:
        lab_down(args.lab)


def measured(
    args: argparse.Namespace,
    samples: Samples,
    measure: Callable[[], None],
    report: Callable[[], str],
    argv: Iterable[str] | None,
    make_target: str,
) -> int:
    """Run a lab benchmark's ``measure``, wind up (after an error too), print its ``report`` and how to run it again.

    Exit code 1, with the reason, when it could not measure.
    """
    try:
        measure()
    except (BenchError, docker.errors.DockerException) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        wind_up(args, samples.dump())
    print(report())
    wall = time.monotonic() - STARTED
    script = Path(sys.argv[0]).name
    command = [".venv/bin/python", f"bench/{script}", *(argv if argv is not None else sys.argv[1:])]
    print(f"\nbenchmark wall time {wall / 60:.1f} min; reproduce: make {make_target} (or {' '.join(command)})")
    return 0


def machine_facts() -> dict[str, Any]:
    """What a report says about the machine and the checkout it measured."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    )
    return {
        "cpus": os.cpu_count(),
        "load at start": os.getloadavg()[0],
        "ansible": "ansible-core " + version("ansible-core"),
        "runner": "ansible-runner " + version("ansible-runner"),
        "python": platform.python_version(),
        "commit": commit.stdout.strip(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


# -- the report --------------------------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{min(values):6.2f}-{max(values):<6.2f}"


def verdict(ratio: float, target: float) -> str:
    return f"met (<= {target:.1f}x)" if ratio <= target else f"MISSED (> {target:.1f}x)"


class Table:
    """Lines of a report; ``width`` is the label column."""

    def __init__(self, width: int = 64) -> None:
        self.width = width
        self.lines: list[str] = []

    def title(self, text: str) -> None:
        self.lines += ["", text, "-" * len(text)]

    def row(
        self, label: str, values: list[float], baseline: list[float] | None = None, target: float | None = None
    ) -> None:
        """A measurement; with ``baseline``, the ratio of the medians and the median of the per-run ratios."""
        median = statistics.median(values)
        text = f"  {label:<{self.width}} {median:8.2f} s  {spread(values)} n={len(values)}"
        if baseline:
            ratio = median / statistics.median(baseline)
            paired = statistics.median(ours / theirs for ours, theirs in zip(values, baseline, strict=False))
            text += f"  {ratio:5.2f}x ({paired:4.2f}x)"
            if target is not None:
                text += f"  {verdict(ratio, target)}"
        self.lines.append(text)

    def header(self, section: str, ratio: str = "ours/runbook (paired)") -> str:
        return f"{section:<{self.width + 2}} {'median':>10}  {'min-max':<13} {'n':<3}  {ratio}"

    def text(self, label: str, value: str) -> None:
        self.lines.append(f"  {label:<{self.width}} {value}")

    def render(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Samples:
    """What a benchmark measured: seconds per key, per task of a scenario, every run in order, machine facts."""

    values: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    tasks: dict[str, dict[str, list[float]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    runs: list[dict[str, Any]] = field(default_factory=list)  # one record per measured command, in order
    facts: dict[str, Any] = field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        """Every sample, for ``--json``."""
        return {"values": self.values, "tasks": self.tasks, "runs": self.runs, "facts": self.facts}

    def add(self, key: str, value: float) -> None:
        self.values[key].append(value)

    def add_tasks(self, scenario: str, run: Any) -> None:
        """The task times of a playbook run (``.tasks``: name -> seconds; ``.wall``), and the rest of its wall time."""
        for name, seconds in run.tasks.items():
            self.tasks[scenario][name].append(seconds)
        self.tasks[scenario]["(ansible-playbook start-up, inventory, vault, between tasks)"].append(
            run.wall - sum(run.tasks.values())
        )
