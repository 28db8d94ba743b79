"""The run's clinics from the inventory: ``ansible-inventory --list`` JSON, and the real tool on a tiny inventory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clinicops import inventory as inventory_module
from clinicops.errors import UsageError
from clinicops.inventory import KEPT_HOSTVARS, Fleet, fleet_from_listing, resolve_fleet
from clinicops.project import ansible_env

SECRET = "Pg-S3cret-decrypted-by-vault"


def clinic_vars(clinic_id: str, timezone: str, region: str) -> dict[str, Any]:
    """Host variables as ansible-inventory prints them: connection settings, desired state, decrypted secrets."""
    return {
        "ansible_host": "10.20.0.11",
        "ansible_user": "clinicops",
        "ansible_become": True,
        "clinic_id": clinic_id,
        "clinic_timezone": timezone,
        "clinic_region": region,
        "clinic_host_db_name": "clinicdb",
        "clinic_host_db_password": SECRET,
        "vault_clinic_db_passwords": {"clinic-gombe": SECRET},
    }


# The shape of `ansible-inventory -i <dir> --list`: top-level keys sorted, children and hosts in
# definition order, groups nested (clinics > region_drc > region_drc_*), a host in several groups.
LISTING: dict[str, Any] = {
    "_meta": {
        "hostvars": {
            "backup-vault": {"ansible_user": "clinicops", "restic_password": SECRET},
            "clinic-brooklyn": clinic_vars("US-NYC-001", "America/New_York", "us_east"),
            "clinic-goma": clinic_vars("CD-GOM-001", "Africa/Lubumbashi", "drc_east"),
            "clinic-gombe": clinic_vars("CD-KIN-001", "Africa/Kinshasa", "drc_west"),
            "clinic-limete": clinic_vars("CD-KIN-002", "Africa/Kinshasa", "drc_west"),
            "clinic-paris-11": clinic_vars("FR-PAR-011", "Europe/Paris", "europe"),
        },
        "profile": "inventory_legacy",
    },
    "all": {"children": ["ungrouped", "clinics", "vaults", "tz_africa"]},
    "clinics": {"children": ["region_drc", "region_europe", "region_us_east"]},
    "region_drc": {"children": ["region_drc_west", "region_drc_east"]},
    "region_drc_east": {"hosts": ["clinic-goma"]},
    "region_drc_west": {"hosts": ["clinic-gombe", "clinic-limete"]},
    "region_europe": {"hosts": ["clinic-paris-11"]},
    "region_us_east": {"hosts": ["clinic-brooklyn"]},
    "tz_africa": {"hosts": ["clinic-goma", "clinic-gombe", "clinic-limete"]},
    "vaults": {"hosts": ["backup-vault"]},
}
CLINICS = ("clinic-gombe", "clinic-limete", "clinic-goma", "clinic-paris-11", "clinic-brooklyn")


def test_hosts_of_the_clinics_group_in_definition_order() -> None:
    fleet = fleet_from_listing(LISTING)
    assert fleet.hosts == CLINICS
    assert "backup-vault" not in fleet.hosts  # not a clinic: never planned, never in a wave


def test_groups_hold_only_the_targeted_clinics_in_fleet_order() -> None:
    groups = fleet_from_listing(LISTING).groups
    assert groups["clinics"] == CLINICS
    assert groups["all"] == CLINICS  # the vault host is in all, but not targeted
    assert groups["region_drc"] == ("clinic-gombe", "clinic-limete", "clinic-goma")  # through its children
    assert groups["tz_africa"] == ("clinic-gombe", "clinic-limete", "clinic-goma")  # fleet order, not its own
    assert groups["region_europe"] == ("clinic-paris-11",)
    assert "vaults" not in groups and "ungrouped" not in groups and "_meta" not in groups


def test_a_host_in_two_groups_is_planned_once() -> None:
    listing = {
        "clinics": {"hosts": ["clinic-paris-11"], "children": ["canary", "region_europe"]},
        "canary": {"hosts": ["clinic-lyon"]},
        "region_europe": {"hosts": ["clinic-lyon", "clinic-paris-11", "clinic-nice"]},
    }
    fleet = fleet_from_listing(listing)
    assert fleet.hosts == ("clinic-paris-11", "clinic-lyon", "clinic-nice")  # first seen wins
    assert fleet.groups["region_europe"] == ("clinic-paris-11", "clinic-lyon", "clinic-nice")
    assert fleet.groups["canary"] == ("clinic-lyon",)


def test_only_the_kept_host_variables_survive_and_no_secret() -> None:
    fleet = fleet_from_listing(LISTING)
    assert set(fleet.hostvars) == set(CLINICS)
    assert fleet.hostvars["clinic-goma"] == {
        "clinic_id": "CD-GOM-001",
        "clinic_timezone": "Africa/Lubumbashi",
        "clinic_region": "drc_east",
    }
    for values in fleet.hostvars.values():
        assert set(values) <= set(KEPT_HOSTVARS)
    assert SECRET not in repr(fleet)
    assert "clinic_host_db_password" not in repr(fleet) and "ansible_host" not in repr(fleet)


def test_another_target_group() -> None:
    fleet = fleet_from_listing(LISTING, target="vaults")
    assert fleet.hosts == ("backup-vault",)
    assert fleet.hostvars == {"backup-vault": {}}


def test_a_limited_listing_without_some_groups() -> None:
    """ansible-inventory --limit drops the groups left empty but still names them as children."""
    listing = {key: value for key, value in LISTING.items() if key not in ("region_drc_west", "region_us_east")}
    fleet = fleet_from_listing(listing)
    assert fleet.hosts == ("clinic-goma", "clinic-paris-11")
    assert "region_us_east" not in fleet.groups
    assert set(fleet.hostvars) == {"clinic-goma", "clinic-paris-11"}  # _meta lists more; only targeted kept


def test_a_cycle_in_children_ends() -> None:
    listing = {"clinics": {"hosts": ["a"], "children": ["loop"]}, "loop": {"hosts": ["b"], "children": ["clinics"]}}
    assert fleet_from_listing(listing).hosts == ("a", "b")


def test_an_empty_listing_is_an_empty_fleet() -> None:
    assert fleet_from_listing({"_meta": {"hostvars": {}}, "all": {"children": ["ungrouped"]}}) == Fleet(hosts=())


def test_only_restricts_hosts_groups_and_hostvars() -> None:
    fleet = fleet_from_listing(LISTING).only(["clinic-brooklyn", "clinic-goma", "not-in-fleet"])
    assert fleet.hosts == ("clinic-goma", "clinic-brooklyn")
    assert fleet.groups["region_drc"] == ("clinic-goma",)
    assert "region_europe" not in fleet.groups  # nothing of it left
    assert set(fleet.hostvars) == {"clinic-goma", "clinic-brooklyn"}


# -- resolve_fleet: the real ansible-inventory on a tiny inventory ---------------------------------


@pytest.fixture(autouse=True)
def _private_home(clinicops_home: Path) -> Path:
    """Each test its own state home: the fleet cache of one test never answers another."""
    return clinicops_home


HOSTS_YML = """\
all:
  children:
    clinics:
      children:
        region_drc:
          hosts:
            clinic-gombe:
              clinic_id: CD-KIN-001
            clinic-goma:
              clinic_id: CD-GOM-001
        region_europe:
          hosts:
            clinic-paris-11:
              clinic_id: FR-PAR-011
              clinic_timezone: Europe/Paris
    tz_africa:
      hosts:
        clinic-gombe:
        clinic-goma:
    vaults:
      hosts:
        backup-vault:
"""


@pytest.fixture(scope="module")
def tiny_inventory(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An inventory directory whose clinics group_vars are vault-encrypted; returns (inventory, password file)."""
    base = tmp_path_factory.mktemp("tiny")
    inventory = base / "inventory"
    (inventory / "group_vars" / "clinics").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(HOSTS_YML)
    vault = inventory / "group_vars" / "clinics" / "vault.yml"
    vault.write_text(f"clinic_host_db_password: {SECRET}\n")
    password = base / "vault-pass"
    password.write_text("unit-test-vault-password\n")
    password.chmod(0o600)
    tool = Path(sys.executable).parent / "ansible-vault"
    subprocess.run(
        [str(tool), "encrypt", "--vault-password-file", str(password), str(vault)],
        check=True,
        capture_output=True,
        env={**os.environ, **ansible_env()},
    )
    assert SECRET not in vault.read_text()
    return inventory, password


def test_resolve_the_whole_fleet_and_drop_the_decrypted_secret(tiny_inventory: tuple[Path, Path]) -> None:
    inventory, password = tiny_inventory
    fleet = resolve_fleet(inventory, vault_password_file=password)
    assert fleet.hosts == ("clinic-gombe", "clinic-goma", "clinic-paris-11")
    assert fleet.groups["tz_africa"] == ("clinic-gombe", "clinic-goma")
    assert fleet.hostvars["clinic-paris-11"] == {"clinic_id": "FR-PAR-011", "clinic_timezone": "Europe/Paris"}
    assert SECRET not in repr(fleet)


@pytest.mark.parametrize(
    ("limit", "hosts"),
    [
        ("region_europe", ("clinic-paris-11",)),
        ("clinics:!clinic-goma", ("clinic-gombe", "clinic-paris-11")),
        ("tz_africa:&region_drc", ("clinic-gombe", "clinic-goma")),
        ("clinic-goma,backup-vault", ("clinic-goma",)),  # the vault is not a clinic
    ],
)
def test_resolve_with_ansible_limit_patterns(
    tiny_inventory: tuple[Path, Path], limit: str, hosts: tuple[str, ...]
) -> None:
    inventory, password = tiny_inventory
    assert resolve_fleet(inventory, limit, password).hosts == hosts


def test_resolve_with_no_clinic_matched_is_a_usage_error(tiny_inventory: tuple[Path, Path]) -> None:
    inventory, password = tiny_inventory
    limit = "backup-vault"  # a host of the inventory, but no clinic
    with pytest.raises(UsageError) as error:
        resolve_fleet(inventory, limit, password)
    message = str(error.value)
    assert f"no clinic in group 'clinics' of {inventory} matching --limit {limit!r}; nothing was run" in message


def test_resolve_without_the_vault_password_is_a_usage_error(tiny_inventory: tuple[Path, Path]) -> None:
    inventory, _password = tiny_inventory
    with pytest.raises(UsageError, match=r"cannot read the inventory .*vault.*; nothing was run"):
        resolve_fleet(inventory)


def test_resolve_a_missing_inventory_runs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_subprocess(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("ansible-inventory must not run")

    monkeypatch.setattr(inventory_module.subprocess, "run", no_subprocess)
    with pytest.raises(UsageError, match=r"inventory not found: .*absent; nothing was run"):
        resolve_fleet(tmp_path / "absent")


def fake_inventory_tool(monkeypatch: pytest.MonkeyPatch, stdout: str, returncode: int = 0) -> list[list[str]]:
    calls: list[list[str]] = []

    def run(argv: list[str], **_kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, returncode, stdout=stdout, stderr="")

    monkeypatch.setattr(inventory_module.subprocess, "run", run)
    return calls


def test_resolve_passes_limit_and_vault_file_to_the_venv_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_inventory_tool(monkeypatch, '{"clinics": {"hosts": ["paris"]}}')
    vault = tmp_path / "my vault pass"
    assert resolve_fleet(tmp_path, "paris", vault).hosts == ("paris",)
    (argv,) = calls
    assert argv[0] == str(Path(sys.executable).parent / "ansible-inventory")
    assert argv[1:4] == ["-i", str(tmp_path), "--list"]
    assert argv[argv.index("--limit") + 1] == "paris"
    assert argv[argv.index("--vault-password-file") + 1] == str(vault)


def test_resolve_with_output_that_is_not_json_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_inventory_tool(monkeypatch, "[WARNING]: something\n")
    with pytest.raises(UsageError, match="printed no JSON"):
        resolve_fleet(tmp_path)


# -- the fleet cache -------------------------------------------------------------------------------


def copy_inventory(tiny_inventory: tuple[Path, Path], tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "inventory"
    shutil.copytree(tiny_inventory[0], copy)
    return copy


def forbid_ansible_inventory(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_subprocess(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("ansible-inventory ran although the fleet was cached")

    monkeypatch.setattr(inventory_module.subprocess, "run", no_subprocess)


def test_a_static_inventory_is_resolved_once_then_read_from_the_cache(
    tiny_inventory: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clinicops_home: Path
) -> None:
    inventory, password = copy_inventory(tiny_inventory, tmp_path), tiny_inventory[1]
    first = resolve_fleet(inventory, "clinics:!clinic-goma", password)
    (cached,) = (clinicops_home / "cache").glob("fleet-*.json")
    assert cached.stat().st_mode & 0o777 == 0o600
    assert SECRET not in cached.read_text()
    forbid_ansible_inventory(monkeypatch)
    assert resolve_fleet(inventory, "clinics:!clinic-goma", password) == first


def test_a_changed_inventory_file_or_another_limit_is_resolved_again(
    tiny_inventory: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory, password = copy_inventory(tiny_inventory, tmp_path), tiny_inventory[1]
    assert resolve_fleet(inventory, None, password).hosts == ("clinic-gombe", "clinic-goma", "clinic-paris-11")
    hosts = inventory / "hosts.yml"
    hosts.write_text(
        hosts.read_text().replace("clinic-goma:\n              clinic_id", "clinic-bukavu:\n              clinic_id")
    )
    os.utime(hosts, ns=(hosts.stat().st_atime_ns, hosts.stat().st_mtime_ns + 10**9))
    assert "clinic-bukavu" in resolve_fleet(inventory, None, password).hosts
    assert resolve_fleet(inventory, "region_europe", password).hosts == ("clinic-paris-11",)


@pytest.mark.parametrize("dynamic", ["script", "plugin", "disabled"])
def test_dynamic_inventories_and_the_switch_bypass_the_cache(
    tiny_inventory: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dynamic: str
) -> None:
    inventory, password = copy_inventory(tiny_inventory, tmp_path), tiny_inventory[1]
    if dynamic == "script":
        script = inventory / "list.sh"
        script.write_text('#!/bin/sh\necho \'{"_meta": {"hostvars": {}}}\'\n')
        script.chmod(0o755)
    elif dynamic == "plugin":
        (inventory / "cloud.yml").write_text("plugin: ansible.builtin.constructed\nstrict: false\n")
    else:
        monkeypatch.setenv("CLINICOPS_INVENTORY_CACHE", "0")
    resolve_fleet(inventory, None, password)
    assert inventory_module._cache_file(inventory, None, password, "clinics") is None
    assert not (Path(os.environ["CLINICOPS_HOME"]) / "cache").exists()


def test_an_unreadable_cache_entry_is_resolved_again(
    tiny_inventory: tuple[Path, Path], tmp_path: Path, clinicops_home: Path
) -> None:
    inventory, password = copy_inventory(tiny_inventory, tmp_path), tiny_inventory[1]
    first = resolve_fleet(inventory, None, password)
    (cached,) = (clinicops_home / "cache").glob("fleet-*.json")
    cached.write_text("{not json")
    assert resolve_fleet(inventory, None, password) == first
