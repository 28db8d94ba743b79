"""Wave planning: which clinics go first (the canary), which follow, and in what batches.

A wave spec is a comma-separated list of steps, read like Ansible's ``serial`` list:

- ``N``: the next N clinics (in inventory order);
- ``P%``: the next P percent of the run's clinics (at least one);
- ``@group``: the clinics of an inventory group not yet planned (e.g. a region or time zone group).

As with ``serial``, the last count or percentage repeats until every clinic is planned. After a
last ``@group`` step, the clinics no step named form one final wave, ``rest``: a plan never
silently leaves a targeted clinic out. Empty waves are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clinicops.errors import UsageError
from clinicops.inventory import Fleet

_STEP = re.compile(r"^(?:(?P<count>[1-9]\d*)|(?P<percent>[1-9]\d*)%|@(?P<group>[A-Za-z_][A-Za-z0-9_.-]*))$")


@dataclass(frozen=True)
class Step:
    count: int | None = None
    percent: int | None = None
    group: str | None = None

    def __str__(self) -> str:
        if self.group:
            return f"@{self.group}"
        return f"{self.percent}%" if self.percent is not None else str(self.count)


@dataclass(frozen=True)
class Wave:
    index: int  # 1-based
    name: str
    hosts: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "hosts": list(self.hosts)}


def parse_wave_spec(text: str) -> list[Step]:
    """``1,25%,@region_europe,100%`` -> steps; a usage error names the bad part."""
    steps = []
    for part in (item.strip() for item in text.split(",")):
        match = _STEP.match(part)
        if not match or (match["percent"] and int(match["percent"]) > 100):
            raise UsageError(
                f"--waves {text!r}: {part!r} is not a wave; each wave is a clinic count (2), a percentage "
                "(25%) or an inventory group (@region_europe), e.g. 1,25%,100%"
            )
        if match["count"]:
            steps.append(Step(count=int(match["count"])))
        elif match["percent"]:
            steps.append(Step(percent=int(match["percent"])))
        else:
            steps.append(Step(group=match["group"]))
    return steps


def _size(step: Step, total: int) -> int:
    if step.count is not None:
        return step.count
    return max(1, total * (step.percent or 0) // 100)  # Ansible's serial rounding: down, at least 1


def plan_waves(fleet: Fleet, steps: list[Step]) -> list[Wave]:
    """Split the fleet's clinics into waves; every clinic is in exactly one wave."""
    if not steps:
        raise UsageError("no waves given")
    for step in steps:
        if step.group and step.group not in fleet.groups:
            known = ", ".join(sorted(fleet.groups)) or "none"
            raise UsageError(
                f"--waves: no targeted clinic is in group {step.group!r} (groups with targeted clinics: {known}); "
                "nothing was run"
            )
    remaining = list(fleet.hosts)
    total = len(remaining)
    batches: list[tuple[str, list[str]]] = []
    index = 0
    while remaining:
        step = steps[min(index, len(steps) - 1)]
        if index >= len(steps) and step.group:
            batches.append(("rest", remaining))
            break
        if step.group:
            members = set(fleet.groups[step.group])
            taken = [host for host in remaining if host in members]
            label = step.group
        else:
            taken = remaining[: _size(step, total)]
            label = ""
        done = set(taken)  # once per wave, not once per clinic
        remaining = [host for host in remaining if host not in done]
        if taken:
            batches.append((label, taken))
        index += 1
    waves = []
    for number, (label, hosts) in enumerate(batches, start=1):
        name = label or ("all" if len(batches) == 1 else "canary" if number == 1 else f"wave {number}")
        waves.append(Wave(index=number, name=name, hosts=tuple(hosts)))
    return waves
