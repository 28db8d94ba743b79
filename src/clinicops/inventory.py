"""Which clinics a run targets, in inventory order, and the groups they belong to.

Resolved once per run, before anything acts, by ``ansible-inventory --list`` (Ansible's own
pattern semantics for ``--limit``: groups, ``!exclusions``, ``&intersections``, ``~regex``). Only
host names, group membership and a few non-secret variables (KEPT_HOSTVARS) are kept, and cached
for static inventories: the listing also holds decrypted variables, which are dropped here and
never written anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinicops.errors import UsageError
from clinicops.files import write_private
from clinicops.project import ansible_env, tool_dir

# Group every procedure playbook targets.
CLINICS_GROUP = "clinics"
# Host variables worth keeping for planning and display (never secrets).
KEPT_HOSTVARS = (
    "clinic_id",
    "clinic_timezone",
    "clinic_region",
    # The maintenance window data (clinicops windows answers from it, as the gate does).
    "clinic_maintenance_windows",
    "clinic_maintenance_exclusions",
    "clinicops_freeze",
    "clinicops_freeze_reason",
)


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
    cache = _cache_file(inventory, limit, vault_password_file, target)
    fleet = _read_cache(cache) if cache else None
    if fleet is None:
        fleet = fleet_from_listing(_listing(inventory, limit, vault_password_file), target)
        if cache:
            _write_cache(cache, fleet)
    if not fleet.hosts:
        scope = f" matching --limit {limit!r}" if limit else ""
        raise UsageError(f"no clinic in group {target!r} of {inventory}{scope}; nothing was run")
    return fleet


def _listing(inventory: Path, limit: str | None, vault_password_file: Path | None) -> dict[str, Any]:
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
        return json.loads(done.stdout)
    except ValueError as exc:
        raise UsageError(f"ansible-inventory printed no JSON for {inventory}: {exc}; nothing was run") from exc


# -- the fleet cache ------------------------------------------------------------------------------
# ``ansible-inventory --list`` costs a second Ansible start-up and a decryption of every vault
# file: about a second per run. The fleet it yields (names, groups, a few non-secret variables) is
# cached per inventory, limit and file state, for static inventories only: a script or an
# inventory plugin can answer differently at every call. CLINICOPS_INVENTORY_CACHE=0 turns it off.

CACHE_MAX_AGE = 7 * 24 * 3600


def _cache_file(inventory: Path, limit: str | None, vault: Path | None, target: str) -> Path | None:
    if os.environ.get("CLINICOPS_INVENTORY_CACHE", "1") == "0":
        return None
    root = inventory.resolve()
    files = [root] if root.is_file() else sorted(path for path in root.rglob("*") if path.is_file())
    digest = hashlib.sha256()
    for part in (_ansible_version(), str(root), limit or "", target, str(vault or "")):
        digest.update(part.encode() + b"\0")
    for path in files:
        if not _static(path, root):
            return None
        stat = path.stat()
        digest.update(f"{path.relative_to(root.parent)}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    return _cache_dir() / f"fleet-{digest.hexdigest()[:32]}.json"


def _static(path: Path, root: Path) -> bool:
    """False for what Ansible would run or hand to a plugin: executables, plugin configs."""
    if os.access(path, os.X_OK):
        return False
    inventory_source = path == root or path.parent == root
    if inventory_source and path.suffix in (".yml", ".yaml", ".json"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            head = path.read_text(encoding="utf-8")[:4096]
            return not any(line.startswith("plugin:") for line in head.splitlines())
        return False
    return True


def _ansible_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ansible-core")
    except PackageNotFoundError:
        return "unknown"


def _cache_dir() -> Path:
    from clinicops.runner import state_home

    return state_home() / "cache"


def _read_cache(path: Path) -> Fleet | None:
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        data = json.loads(path.read_text(encoding="utf-8"))
        return Fleet(
            hosts=tuple(data["hosts"]),
            groups={name: tuple(hosts) for name, hosts in data["groups"].items()},
            hostvars=data["hostvars"],
        )
    return None


def _write_cache(path: Path, fleet: Fleet) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = time.time()
        for old in path.parent.glob("fleet-*.json"):
            if now - old.stat().st_mtime > CACHE_MAX_AGE:
                old.unlink(missing_ok=True)
        data = {"hosts": list(fleet.hosts), "groups": {k: list(v) for k, v in fleet.groups.items()}}
        data["hostvars"] = {host: dict(values) for host, values in fleet.hostvars.items()}
        write_private(path, json.dumps(data))
