"""Which clinics a run targets, in inventory order, and the groups they belong to.

Resolved once per run, before anything acts, by ``ansible-inventory --list`` (Ansible's own
pattern semantics for ``--limit``: groups, ``!exclusions``, ``&intersections``, ``~regex``). Only
host names and group membership are kept: the listing also holds decrypted variables, which are
dropped here and never written anywhere.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinicops.errors import UsageError
from clinicops.project import ansible_env, tool_dir

# Group every procedure playbook targets.
CLINICS_GROUP = "clinics"
# Host variables worth keeping for planning and display (never secrets).
KEPT_HOSTVARS = ("clinic_id", "clinic_timezone", "clinic_region")


@dataclass(frozen=True)
class Fleet:
    """The clinics of one run: ``hosts`` in inventory order, ``groups`` restricted to them."""

    hosts: tuple[str, ...]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hostvars: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def only(self, hosts: list[str] | tuple[str, ...]) -> Fleet:
        """The same fleet restricted to ``hosts`` (order kept from the fleet; groups left empty dropped)."""
        wanted = set(hosts)
        kept = {name: tuple(h for h in members if h in wanted) for name, members in self.groups.items()}
        return Fleet(
            hosts=tuple(host for host in self.hosts if host in wanted),
            groups={name: members for name, members in kept.items() if members},
            hostvars={host: values for host, values in self.hostvars.items() if host in wanted},
        )


def fleet_from_listing(listing: Mapping[str, Any], target: str = CLINICS_GROUP) -> Fleet:
    """Build the fleet from ``ansible-inventory --list`` JSON (already limited)."""
    meta = listing.get("_meta") or {}

    def members(group: str, seen: set[str]) -> list[str]:
        if group in seen:  # a cycle in children: Ansible refuses it too, but never loop
            return []
        seen.add(group)
        entry = listing.get(group) or {}
        found = list(entry.get("hosts") or [])
        for child in entry.get("children") or []:
            found += members(child, seen)
        return found

    ordered = list(dict.fromkeys(members(target, set())))  # first seen wins; group host lists are already limited
    targeted = set(ordered)
    groups: dict[str, tuple[str, ...]] = {}
    for name in listing:
        if name == "_meta":
            continue
        wanted = set(members(name, set()))  # once per group, not once per host
        group_hosts = [host for host in ordered if host in wanted]
        if group_hosts:
            groups[name] = tuple(group_hosts)
    hostvars = {
        host: {key: values[key] for key in KEPT_HOSTVARS if key in values}
        for host, values in (meta.get("hostvars") or {}).items()
        if host in targeted and isinstance(values, Mapping)
    }
    return Fleet(hosts=tuple(ordered), groups=groups, hostvars=hostvars)


def resolve_fleet(
    inventory: Path, limit: str | None = None, vault_password_file: Path | None = None, target: str = CLINICS_GROUP
) -> Fleet:
    """The clinics of ``target`` matched by ``limit`` in ``inventory``; a usage error if none."""
    if not inventory.exists():
        raise UsageError(f"inventory not found: {inventory}; nothing was run")
    argv = [str(tool_dir() / "ansible-inventory"), "-i", str(inventory), "--list"]
    if limit:
        argv += ["--limit", limit]
    if vault_password_file:
        argv += ["--vault-password-file", str(vault_password_file)]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, env={**os.environ, **ansible_env()}, timeout=300
    )
    if done.returncode != 0:
        problem = " ".join(done.stderr.split())[-600:] or f"exit {done.returncode}"
        raise UsageError(f"cannot read the inventory {inventory}: {problem}; nothing was run")
    try:
        listing = json.loads(done.stdout)
    except ValueError as exc:
        raise UsageError(f"ansible-inventory printed no JSON for {inventory}: {exc}; nothing was run") from exc
    fleet = fleet_from_listing(listing, target)
    if not fleet.hosts:
        scope = f" matching --limit {limit!r}" if limit else ""
        raise UsageError(f"no clinic in group {target!r} of {inventory}{scope}; nothing was run")
    return fleet
