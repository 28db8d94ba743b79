"""``clinicops windows``: which clinics may be disrupted now, and when each next opens.

The answer comes from the collection's one window evaluator (module_utils maintenance_windows),
the code the in-play gate runs, over the inventory's window data: the CLI and the gate cannot
disagree about a window.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clinicops.errors import UsageError
from clinicops.inventory import Fleet
from clinicops.project import collections_root


def evaluator() -> Any:
    """The collection's evaluator module, imported from the collection tree Ansible loads."""
    root = str(collections_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops import maintenance_windows

    return maintenance_windows


def clinic_windows(
    fleet: Fleet, procedure: str | None, step_duration: int, now: datetime | None = None
) -> list[dict[str, Any]]:
    """One row per clinic: the gate's answer for ``procedure`` at ``now`` (default: the real time)."""
    windows = evaluator()
    moment = now or datetime.now(UTC)
    rows = []
    for host in fleet.hosts:
        facts: Mapping[str, Any] = fleet.hostvars.get(host, {})
        zone = facts.get("clinic_timezone")
        configured = facts.get("clinic_maintenance_windows") or []
        row: dict[str, Any] = {"clinic": host, "timezone": zone or ""}
        if not zone:
            row.update(state="invalid", allowed=False, reason="no clinic_timezone in the inventory")
        elif not configured:
            row.update(state="unrestricted", allowed=True, reason="no maintenance windows configured")
        else:
            try:
                row.update(
                    windows.evaluate(
                        zone,
                        configured,
                        facts.get("clinic_maintenance_exclusions") or [],
                        moment,
                        procedure=procedure,
                        step_duration=step_duration,
                        freeze=bool(facts.get("clinicops_freeze")),
                        freeze_reason=str(facts.get("clinicops_freeze_reason") or ""),
                        clinic=host,
                    )
                )
            except ValueError as exc:  # the evaluator's WindowError names clinic, window and field
                row.update(state="invalid", allowed=False, reason=str(exc))
        rows.append(row)
    return rows


def parse_step(text: str | None) -> int:
    """``45m`` / ``1h30m`` / minutes -> seconds, with the evaluator's own duration syntax."""
    if not text:
        return 0
    try:
        return int(evaluator().parse_duration(text, "--step").total_seconds())
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
