"""Benchmark: the log_archive module's archive step against the runbook's ``find -delete`` + ``tar czf``.

On demand only (never part of ``make test``); no container, no lab. It writes a data set of rotated
logs (``--size``, default 2G, over ``--files`` files, modification times spread over 90 days, plus
live ``*.log`` files) into a temporary directory on this machine, then, for each run and each side
in turn, hard-links a fresh copy of it (untimed) and times the side on the copy:

- runbook: ``find DIR -name '*.log.*' -mtime +30 -delete``, then ``tar czf`` of the rotated files
  left, removed once in the tarball (``--remove-files``), as the runbook's rotation does;
- ours, zstd and gzip: the module's own step (``check_options`` + ``archive_logs`` from its
  module_utils, called in this process): prune older than 30 days, compress the rest into the dated
  archive, each copy proven by decompressing it again, sources removed after an fsync.

It prints the median time of each side, the ratio ours/runbook measured in the same run, and the
bytes each side leaves in the directory. It asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Table, log, machine_facts, rotate  # bench/ is the script's own directory

from clinicops.project import collections_root

sys.path.insert(0, str(collections_root()))

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops import log_archive_files
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_archive import (
    LogArchiveError,
    check_options,
    format_size,
    parse_size,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_archive_files import (
    archive_logs,
)

MAX_AGE_DAYS = 30
SPREAD_DAYS = 90
POOL_BYTES = 64 * 1024 * 1024  # distinct log text the files are cut from, so they compress like real logs
PATHS = [
    "/api/patients/%d",
    "/api/appointments/%d/slots",
    "/static/app.%x.js",
    "/api/invoices/%d/pdf",
    "/health?probe=%d",
]


def log_pool(seed: int) -> bytes:
    """Access-log lines with varied ids, times, statuses and latencies (they compress about 5-8:1 like nginx logs)."""
    rng = random.Random(seed)
    lines, size = [], 0
    moment = 1767225600
    while size < POOL_BYTES:
        moment += rng.randint(0, 3)
        address = f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        target = rng.choice(PATHS) % rng.randint(1, 10**6)
        status = rng.choice((200, 200, 200, 200, 201, 204, 304, 404, 500))
        line = (
            f'{address} - - [{moment}] "GET {target} HTTP/1.1" {status} {rng.randint(120, 90000)} '
            f'{rng.random() * 2:.3f} "clinic-app/{rng.randint(1, 3)}.{rng.randint(0, 20)}" '
            f"req={rng.getrandbits(64):016x}\n"
        )
        lines.append(line)
        size += len(line)
    return "".join(lines).encode()


def make_data_set(directory: Path, total: int, files: int, now: float) -> None:
    """``files`` rotated logs of ``total`` bytes in all, named as logrotate names them, with spread ages."""
    rng = random.Random(7)
    pool = log_pool(1)
    per_file = max(total // files, 1)
    for index in range(files):
        name = f"svc{index % 40:02d}.log.{index // 40 + 1}"
        start = rng.randrange(0, max(len(pool) - per_file, 1))
        data = pool[start : start + per_file]
        if len(data) < per_file:  # a file larger than the pool: repeat it
            data = (pool * (per_file // len(pool) + 1))[start : start + per_file]
        path = directory / name
        path.write_bytes(data)
        moment = now - rng.uniform(0.1, SPREAD_DAYS) * 86400
        os.utime(path, (moment, moment))
    for index in range(40):
        (directory / f"svc{index:02d}.log").write_bytes(b"live\n")


def directory_bytes(directory: Path) -> tuple[int, int]:
    """(bytes, files) under ``directory``."""
    size = count = 0
    for folder, _dirs, names in os.walk(directory):
        for name in names:
            size += os.lstat(os.path.join(folder, name)).st_size
            count += 1
    return size, count


def readable_processes_view(directory: Path, scratch: Path) -> None:
    """Where this machine hides some processes' descriptors (a sandbox's PID 1), scan the readable ones only.

    The module refuses rather than guess there; the benchmark's data set is its own, so it measures the
    step with the processes it can see (the scan's cost grows with them) and says so.
    """
    try:
        log_archive_files.open_paths([str(directory)])
        return
    except LogArchiveError as exc:
        log(f"the module would refuse here ({exc}); scanning only the processes whose descriptors are readable")
    view = scratch / "proc"
    view.mkdir()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for descriptor in os.listdir(f"/proc/{pid}/fd"):
                os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except OSError:
            continue
        (view / pid).symlink_to(f"/proc/{pid}")
    log_archive_files.PROC = str(view)


def runbook(directory: Path) -> None:
    subprocess.run(["find", str(directory), "-name", "*.log.*", "-mtime", f"+{MAX_AGE_DAYS}", "-delete"], check=True)
    rotated = sorted(path.name for path in directory.glob("*.log.*"))
    subprocess.run(
        ["tar", "czf", "rotated.tar.gz", "--remove-files", *rotated],
        cwd=directory,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def ours(directory: Path, method: str) -> dict:
    params = {
        "path": str(directory),
        "patterns": ["*.log.*", "*.log-*"],
        "archive_dir": None,
        "compress": method,
        "max_age_days": MAX_AGE_DAYS,
        "max_total_size": "0",
        "protect": [],
        "min_age": 60,
        "checksums": False,
    }
    return archive_logs(check_options(params, zstd_available=shutil.which("zstd") is not None), False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2G", help="bytes of rotated logs to generate: 2G (default), 200M...")
    parser.add_argument("--files", type=int, default=400, help="number of rotated files (default 400)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each side (default 3)")
    parser.add_argument("--tmp", type=Path, default=None, help="where to make the temporary directory")
    parser.add_argument("--json", type=Path, help="also write every sample to this JSON file")
    args = parser.parse_args()
    total = parse_size(args.size, "--size")
    if total <= 0 or args.files <= 0 or args.runs <= 0:
        parser.error("--size, --files and --runs must be positive")
    sides = ["runbook", "ours zstd", "ours gzip"]
    if shutil.which("zstd") is None:
        sides.remove("ours zstd")
        log("no zstd program here: measuring gzip only")
    times: dict[str, list[float]] = {side: [] for side in sides}
    kept: dict[str, tuple[int, int]] = {}
    facts = machine_facts()
    with tempfile.TemporaryDirectory(prefix="clinicops-bench-logs-", dir=args.tmp) as scratch:
        template = Path(scratch) / "template"
        template.mkdir()
        log(f"writing {format_size(total)} of rotated logs in {args.files} files into {template}")
        make_data_set(template, total, args.files, time.time())
        before = directory_bytes(template)
        readable_processes_view(template, Path(scratch))
        for run in range(args.runs):
            for side in rotate(sides, run):
                work = Path(scratch) / "work"
                subprocess.run(
                    ["cp", "-al", str(template), str(work)], check=True
                )  # untimed; neither side edits in place
                log(f"run {run + 1}: {side}")
                started = time.monotonic()
                if side == "runbook":
                    runbook(work)
                else:
                    report = ours(work, side.split()[1])
                    assert report["changed"], report["msg"]
                times[side].append(time.monotonic() - started)
                kept[side] = directory_bytes(work)
                shutil.rmtree(work)

    table = Table(width=52)
    table.lines.append(f"machine: {json.dumps(facts)}")
    table.lines.append(f"data set: {format_size(before[0])} in {before[1] - 40} files (+ 40 live logs)")
    table.title(table.header("archive step", "ours/runbook (paired)"))
    table.row("runbook: find -mtime +30 -delete; tar czf --remove-files", times["runbook"])
    for side in sides[1:]:
        table.row(f"{side}: prune by age, compress, prove, move", times[side], baseline=times["runbook"])
    table.title("bytes left in the directory (files)")
    for side in sides:
        size, count = kept[side]
        table.text(side, f"{format_size(size)} ({count} files; {100.0 * size / before[0]:.1f}% of the data set)")
    print(table.render())
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "facts": facts,
                    "times": times,
                    "kept": kept,
                    "median": {side: statistics.median(values) for side, values in times.items()},
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
