"""The controller's audit trail: where it is, and checking its hash chain.

The chain format lives once, in the collection's ``audit_chain`` module_utils (pure Python, no
Ansible imports); the CLI loads it from the collection tree rather than keeping a copy.

``clinicops audit verify --trail PATH`` takes the live trail file or its directory. A trail that was
never rotated (no ``<trail>-YYYYMMDD-HHMMSS[.gz|.zst]`` beside it or under ``archive/``, no
``<trail>.head``) is checked exactly as before, from ``GENESIS``. Otherwise every segment is
checked, oldest first, with the link between each and the one before, and one line per segment is
printed before the summary.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from clinicops.errors import UsageError
from clinicops.project import collections_root

CALLBACK = "clinicops.runbook.audit"


def audit_chain() -> ModuleType:
    root = str(collections_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module("ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.audit_chain")


def default_trail(home: Path) -> Path:
    return home / "audit.jsonl"


def live_file(trail: Path) -> Path:
    """The live trail file of ``trail`` (itself, or ``<dir>/audit.jsonl`` for a directory)."""
    return trail / audit_chain().DEFAULT_TRAIL if trail.is_dir() else trail


def verify_report(trail: Path) -> dict[str, Any]:
    """The whole check of ``trail`` (file or directory): ``audit_chain.verify_trail``'s dict."""
    chain = audit_chain()
    live = live_file(trail)
    if not live.is_file() and not (live.parent.is_dir() and chain.segment_paths(str(live))):
        raise UsageError(f"no audit trail at {trail}")
    return chain.verify_trail(str(trail))


def segment_lines(report: dict[str, Any]) -> list[str]:
    """One line per segment (and per note on the whole trail), or none for a lone file with nothing to say."""
    segments = report["segments"]
    quiet = {None, "starts at GENESIS"}
    if len(segments) <= 1 and not report["notes"] and all(segment["note"] in quiet for segment in segments):
        return []
    lines = []
    for segment in segments:
        if segment["problem"]:
            state = f"BROKEN: {segment['problem']}"
        else:
            state = "intact" + (f" ({segment['note']})" if segment["note"] else "")
        lines.append(f"  {segment['name']}: {segment['records']} records, {state}")
    lines.extend(f"  note: {note}" for note in report["notes"])
    return lines


def verify(trail: Path, out: TextIO | None = None) -> tuple[bool, int, str | None]:
    """Check ``trail`` (file or directory, with its rotated segments); print per-segment lines to ``out``.

    Returns (ok, records, first problem or None), as before.
    """
    report = verify_report(trail)
    for line in segment_lines(report):
        print(line, file=out or sys.stdout)
    return report["ok"], report["records"], report["problem"]


def tail(trail: Path, count: int) -> list[dict[str, Any]]:
    trail = live_file(trail)
    if not trail.is_file():
        raise UsageError(f"no audit trail at {trail}")
    # split on "\n" only: records are written with ensure_ascii=False, so U+2028 may sit inside a line
    lines = [line for line in trail.read_text(encoding="utf-8").split("\n") if line.strip()]
    return [json.loads(line) for line in lines[-count:]]
