"""The controller's audit trail: where it is, and checking its hash chain.

The chain format lives once, in the collection's ``audit_chain`` module_utils (pure Python, no
Ansible imports); the CLI loads it from the collection tree rather than keeping a copy.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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


def verify(trail: Path) -> tuple[bool, int, str | None]:
    if not trail.is_file():
        raise UsageError(f"no audit trail at {trail}")
    return audit_chain().verify_file(str(trail))


def tail(trail: Path, count: int) -> list[dict[str, Any]]:
    if not trail.is_file():
        raise UsageError(f"no audit trail at {trail}")
    lines = [line for line in trail.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line) for line in lines[-count:]]
