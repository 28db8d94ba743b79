"""Feature flags on the command line: ``NAME=VALUE`` assignments checked before anything runs, and
the fleet's flags (clinic x flag) from a ``flag get`` report.

The rules are the ``feature_flags`` role's: a name is 1-64 lowercase letters, digits or ``_`` (the
app sees it as ``FEATURE_<NAME>``), a value is ``true`` or ``false``. Checking them here refuses a
typo with exit 2 before a single clinic is reached; the role checks them again for AWX and
``ansible-playbook``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from clinicops.errors import UsageError
from clinicops.report import SUCCESS

FLAG_NAME = re.compile(r"^[a-z0-9_]{1,64}$")
VALUES = {"true": True, "false": False}
NOT_SET = "-"


def parse_assignment(text: str) -> tuple[str, bool]:
    """``ai_enabled=false`` -> ``("ai_enabled", False)``; anything else is a UsageError naming the rule."""
    name, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"{text!r} is not NAME=VALUE (e.g. ai_enabled=false); nothing was run")
    if not FLAG_NAME.match(name):
        raise UsageError(f"flag name {name!r} must be 1-64 lowercase letters, digits or _; nothing was run")
    if value.lower() not in VALUES:
        raise UsageError(f"flag {name} takes true or false, not {value!r}; nothing was run")
    return name, VALUES[value.lower()]


def parse_assignments(texts: Iterable[str]) -> dict[str, bool]:
    """Every assignment of the command line; one name given two different values is refused."""
    flags: dict[str, bool] = {}
    for text in texts:
        name, value = parse_assignment(text)
        if flags.get(name, value) != value:
            raise UsageError(f"flag {name} is given both true and false; nothing was run")
        flags[name] = value
    if not flags:
        raise UsageError("no flag to set: give NAME=VALUE (e.g. ai_enabled=false); nothing was run")
    return flags


def flag_names(report: Mapping[str, Any]) -> list[str]:
    """Every flag some clinic of the report has, sorted."""
    names: set[str] = set()
    for row in report.get("clinics", []):
        names |= set((row.get("details") or {}).get("flags") or {})
    return sorted(names)


def flag_cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return NOT_SET if value is None else str(value)


def flag_rows(report: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per clinic: its outcome and each flag's value (``-`` where the clinic does not set it)."""
    names = flag_names(report)
    rows = []
    for row in report.get("clinics", []):
        flags = (row.get("details") or {}).get("flags") or {}
        cells = {"clinic": row["clinic"], "outcome": row["outcome"]}
        cells.update({name: flag_cell(flags.get(name)) for name in names})
        cells["message"] = row.get("message", "") if row["outcome"] not in SUCCESS else ""
        rows.append(cells)
    return rows
