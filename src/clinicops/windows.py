"""Maintenance windows in the CLI: ``clinicops windows``, and waiting for a window before a wave.

The answer comes from the gate's own decision (module_utils window_gate over the one window
evaluator, maintenance_windows), the code the in-play gate runs, over the inventory's window data:
the CLI and the gate cannot disagree about a clinic.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clinicops.errors import UsageError
from clinicops.inventory import Fleet
from clinicops.project import collections_root

# The longest wait --wait-for-window allows when given without a value.
DEFAULT_WAIT = "24h"


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


def parse_at(text: str | None, option: str = "--at") -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(
            f"{option} {text!r} is not an ISO 8601 time (e.g. 2026-11-29T02:30:00+01:00); nothing was run"
        ) from exc
    if moment.tzinfo is None:
        raise UsageError(f"{option} {text!r} needs a UTC offset (e.g. 2026-11-29T01:30:00Z or +01:00); nothing was run")
    return moment


def parse_duration(text: str, option: str) -> int:
    """``45m`` / ``1h30m`` / ``6h`` / ``1d`` -> seconds (more than 0), with the windows' own duration syntax.

    A bare number is refused: the windows read it as minutes and the gate's step duration as
    seconds, so it would mean different things to the two.
    """
    if "".join(str(text).split()).isdigit():
        raise UsageError(f"{option} {text!r}: give a unit (45m, 1h30m, 6h); nothing was run")
    module = _collection_module("maintenance_windows")
    try:
        seconds = int(module.parse_duration(text, option).total_seconds())
    except ValueError as exc:
        raise UsageError(f"{exc}; nothing was run") from exc
    if seconds <= 0:
        raise UsageError(f"{option} {text!r} must be more than 0; nothing was run")
    return seconds


def span_text(seconds: float) -> str:
    """A duration for people, as the gate words it: ``45 min``, ``3 h 12 min``, ``1 d 2 h``, ``30 s``."""
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds} s"
    days, rest = divmod(seconds // 60, 24 * 60)
    hours, minutes = divmod(rest, 60)
    words = (f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else "")
    return " ".join(word for word in words if word)


def local_text(opening: datetime, timezone: str | None) -> str:
    """``Sun 2026-11-29 02:00 WAT``: an instant in the clinic's own time zone."""
    try:
        local = opening.astimezone(ZoneInfo(timezone)) if timezone else opening
    except (ZoneInfoNotFoundError, ValueError):
        local = opening
    return local.strftime("%a %Y-%m-%d %H:%M %Z").strip()


def utc_now() -> datetime:
    return datetime.now(UTC)


def sleep_for(seconds: float) -> None:
    time.sleep(seconds)


@dataclass(frozen=True)
class Opening:
    """When the first clinic of a wave may start the procedure."""

    clinic: str
    at: datetime
    timezone: str | None


def earliest_opening(rows: Sequence[Mapping[str, Any]]) -> Opening | None:
    """The earliest next opening among the rows of ``clinic_windows`` (None: no window opens).

    A frozen clinic has none: the freeze has no end the windows know of.
    """
    openings = []
    for row in rows:
        if row.get("next_opening") and row.get("state") not in ("invalid", "frozen"):
            with_offset = datetime.fromisoformat(str(row["next_opening"]))
            openings.append(Opening(row["clinic"], with_offset, row.get("timezone") or None))
    return min(openings, key=lambda opening: opening.at, default=None)


@dataclass
class WindowWait:
    """Before each wave of a gated run: is any clinic of the wave open for the procedure?

    If none is and ``max_s`` allows it (``--wait-for-window``), wait until the earliest next opening
    of the wave's clinics, then ask again; when nothing opens within ``max_s`` of the first look,
    the wave runs at once and the gate skips what is closed. With ``max_s`` 0 it only says that the
    gate will skip the wave's clinics. A clinic without windows is open (unrestricted); one with
    invalid window data is not waited for (the gate fails it). ``clock`` and ``sleep`` are
    injectable, so the tests do not sleep.
    """

    fleet: Fleet
    procedure: str
    step_s: int = 0
    max_s: int = 0
    now: datetime | None = None  # --now: the windows are judged at this instant, and never waited for
    # The module's utc_now and sleep_for as they are when the wait is made (the CLI tests replace them).
    clock: Callable[[], datetime] = field(default_factory=lambda: utc_now)
    sleep: Callable[[float], None] = field(default_factory=lambda: sleep_for)
    tick_s: float = 1.0  # how often a wait looks for Ctrl-C

    def rows(self, hosts: Sequence[str], moment: datetime) -> list[dict[str, Any]]:
        return clinic_windows(self.fleet.only(list(hosts)), self.procedure, self.step_s, moment)

    def __call__(self, wave: Any, say: Callable[[str], None], stopped: Callable[[], bool]) -> bool:
        """Wait (or not) before ``wave``; False when the operator stopped the wait (Ctrl-C)."""
        deadline = self.clock() + timedelta(seconds=self.max_s)
        label = f"wave {wave.index} ({wave.name})"
        while True:
            moment = self.now or self.clock()
            try:
                rows = self.rows(wave.hosts, moment)
            except (ImportError, OSError, ValueError) as exc:  # the gate in the play has the last word anyway
                say(f"{label}: the maintenance windows cannot be evaluated here ({exc}); the gate decides")
                return True
            if any(row.get("allowed") for row in rows) or all(row.get("state") == "invalid" for row in rows):
                return True
            opening = earliest_opening(rows)
            if opening is None:
                say(
                    f"{label}: no {self.procedure} window of its clinics opens (frozen, or none within 8 years); "
                    "the gate will skip them"
                )
                return True
            local = local_text(opening.at, opening.timezone)
            delay = span_text((opening.at - moment).total_seconds())
            if self.max_s <= 0 or self.now is not None:
                say(
                    f"{label}: no clinic is in a {self.procedure} window, the gate will skip them; the first "
                    f"to open is {opening.clinic}, {local} (in {delay}); --wait-for-window waits for it"
                )
                return True
            if opening.at <= moment:  # never spin on an opening that is not ahead
                return True
            if opening.at > deadline:
                say(
                    f"{label}: the first window to open is {opening.clinic}'s, {local} (in {delay}), after the "
                    f"--wait-for-window limit of {span_text(self.max_s)}; the wave runs now and the gate "
                    "skips the clinics still closed"
                )
                return True
            say(f"waiting for the window of {opening.clinic} (opens {local}, in {delay}); Ctrl-C stops")
            while (current := self.clock()) < opening.at:
                if stopped():
                    return False
                self.sleep(min(self.tick_s, (opening.at - current).total_seconds()))
            if stopped():
                return False
