"""``clinicops windows``: which clinics may be disrupted now, and when each next opens.

The answer comes from the gate's own decision (module_utils window_gate over the one window
evaluator, maintenance_windows), the code the in-play gate runs, over the inventory's window data:
the CLI and the gate cannot disagree about a clinic.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clinicops.errors import UsageError
from clinicops.inventory import Fleet
from clinicops.project import collections_root


def _collection_module(name: str) -> Any:
    """A module_utils module of the collection, imported from the collection tree Ansible loads."""
    import importlib

    root = str(collections_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(f"ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.{name}")


def clinic_windows(
    fleet: Fleet, procedure: str, step_duration: int | str, now: datetime | None = None
) -> list[dict[str, Any]]:
    """One row per clinic: what the gate (window_gate.decide, enforce mode) answers at ``now``."""
    gate = _collection_module("window_gate")
    moment = now or datetime.now(UTC)
    rows = []
    for host in fleet.hosts:
        facts: Mapping[str, Any] = fleet.hostvars.get(host, {})
        row: dict[str, Any] = {"clinic": host, "timezone": facts.get("clinic_timezone") or ""}
        try:
            answer = gate.decide(
                procedure,
                facts.get("clinic_timezone"),
                facts.get("clinic_maintenance_windows"),
                facts.get("clinic_maintenance_exclusions"),
                moment,
                step_duration=step_duration,
                freeze=bool(facts.get("clinicops_freeze")),
                freeze_reason=str(facts.get("clinicops_freeze_reason") or ""),
                clinic=host,
            )
        except ValueError as exc:  # GateError, WindowError: they name clinic, window and field
            row.update(state="invalid", allowed=False, reason=str(exc))
        else:
            row.update(answer["window"])
            row.update(allowed=answer["allowed"], reason=answer["message"])
        rows.append(row)
    return rows


def parse_step(text: str | None) -> int:
    """``45m`` / ``1h30m`` / ``90s`` / seconds -> seconds, as the gate's ``step_duration`` reads it."""
    if not text:
        return 0
    try:
        return int(_collection_module("window_gate").step_seconds(text))
    except ValueError as exc:
        raise UsageError(f"--step {text!r}: {exc}") from exc


def parse_at(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"--at {text!r} is not an ISO 8601 time (e.g. 2026-11-29T02:30:00+01:00)") from exc
    if moment.tzinfo is None:
        raise UsageError(f"--at {text!r} needs a UTC offset (e.g. 2026-11-29T01:30:00Z or +01:00)")
    return moment
