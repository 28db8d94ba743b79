"""The lab's clinic catalogue, lab names and the inventory it writes (no Docker needed)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret

from clinicops.errors import EXIT_USAGE, ClinicopsError, UsageError
from clinicops.lab import fleet
from clinicops.lab.artifacts import Artifact
from clinicops.lab.fleet import (
    CLINIC_CATALOGUE,
    LAB_SECRETS,
    MARKER,
    MAX_CLINICS,
    Lab,
    lab_clinics,
    lab_vault_password_file,
)

FAKE_VAULT_HEADER = "# FAKE VAULT (plaintext stand-in for ansible-vault in unit tests)\n"
BOOTSTRAP = Artifact(
    version="1.0.0",
    path=Path("/srv/artifacts/clinic-app-1.0.0.tar.gz"),
    sha256="ab" * 32,
    fault=None,
    migrations=("0001_init.sql",),
)


# -- lab_clinics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 3, len(CLINIC_CATALOGUE), len(CLINIC_CATALOGUE) + 1, MAX_CLINICS])
def test_lab_clinics_returns_count_distinct_clinics(count: int) -> None:
    clinics = lab_clinics(count)
    assert len(clinics) == count
    assert len({clinic.name for clinic in clinics}) == count


def test_first_four_clinics_are_in_distinct_time_zones() -> None:
    zones = [clinic.timezone for clinic in lab_clinics(4)]
    assert len(set(zones)) == 4


def test_first_clinics_follow_the_catalogue() -> None:
    clinics = lab_clinics(len(CLINIC_CATALOGUE))
    assert [(c.name, c.timezone, c.region) for c in clinics] == list(CLINIC_CATALOGUE)


def test_clinics_beyond_the_catalogue_are_numbered_and_cycle_zones() -> None:
    clinics = lab_clinics(len(CLINIC_CATALOGUE) + 3)
    extra = clinics[len(CLINIC_CATALOGUE) :]
    assert [clinic.name for clinic in extra] == ["clinic09", "clinic10", "clinic11"]
    assert [(c.timezone, c.region) for c in extra] == [(zone, region) for _name, zone, region in CLINIC_CATALOGUE[:3]]


def test_thirtieth_clinic_name() -> None:
    assert lab_clinics(MAX_CLINICS)[-1].name == f"clinic{MAX_CLINICS:02d}"


@pytest.mark.parametrize("count", [0, -1, MAX_CLINICS + 1, 1000])
def test_bad_clinic_counts_are_usage_errors(count: int) -> None:
    with pytest.raises(UsageError, match="between 1 and") as raised:
        lab_clinics(count)
    assert raised.value.exit_code == EXIT_USAGE


# -- Lab names and paths ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", "../x", "a b", "a/b", "1lab", "-lab", "lab_x", "lab.x", "x" * 21, "läb", "lab\n", "lab;rm"],
)
def test_bad_lab_names_are_rejected(name: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="lab name"):
        Lab(name=name, root=tmp_path)


@pytest.mark.parametrize("name", ["lab", "dev", "dev-2", "a", "Lab2", "x" * 20])
def test_good_lab_names_are_accepted(name: str, tmp_path: Path) -> None:
    assert Lab(name=name, root=tmp_path).name == name


def test_default_lab_inventory_dir(tmp_path: Path) -> None:
    assert Lab(root=tmp_path).inventory_dir == tmp_path / "inventories" / "lab"


def test_named_lab_inventory_dir(tmp_path: Path) -> None:
    lab = Lab(name="itest", root=tmp_path)
    assert lab.inventory_dir == tmp_path / "inventories" / "lab-itest"
    assert lab.vault_password_file == tmp_path / "inventories" / "lab-itest" / ".vault-pass"


def test_docker_names_carry_the_lab_name(tmp_path: Path) -> None:
    lab = Lab(name="itest", root=tmp_path)
    assert lab.network_name == "clinicops-itest"
    assert lab.container_name("paris") == "clinicops-itest-paris"


# -- lab_vault_password_file -----------------------------------------------------------------------


def test_vault_password_file_of_a_lab_inventory(tmp_path: Path) -> None:
    (tmp_path / MARKER).write_text(json.dumps({"lab": "lab", "vault_password_file": ".vault-pass"}))
    assert lab_vault_password_file(tmp_path) == tmp_path / ".vault-pass"


def test_no_vault_password_file_without_the_marker(tmp_path: Path) -> None:
    assert lab_vault_password_file(tmp_path) is None


def test_no_vault_password_file_for_an_inventory_file(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    assert lab_vault_password_file(inventory) is None


def test_no_vault_password_file_for_a_missing_inventory(tmp_path: Path) -> None:
    assert lab_vault_password_file(tmp_path / "absent") is None


# -- write_inventory (ansible-vault replaced by a plaintext stand-in) ------------------------------


@pytest.fixture
def fake_vault(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace Lab._encrypt by a plaintext writer; returns the files it was asked to write."""
    written: list[Path] = []

    def encrypt(self: Lab, plaintext: str, out: Path) -> None:
        self._vault_password()
        out.write_text(FAKE_VAULT_HEADER + plaintext)
        out.chmod(0o600)
        written.append(out)

    monkeypatch.setattr(Lab, "_encrypt", encrypt)
    return written


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(name="unit", root=tmp_path, log=lambda message: None)


def load(path: Path) -> object:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def tree(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``directory`` with its mtime and content."""
    return {
        str(path.relative_to(directory)): (path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def backdate(directory: Path) -> None:
    """Set an old mtime on every file so that any rewrite shows, whatever the clock granularity."""
    for path in directory.rglob("*"):
        if path.is_file():
            os.utime(path, (1_000_000_000, 1_000_000_000))


def test_hosts_yml_has_groups_only(lab: Lab, fake_vault: list[Path]) -> None:
    lab.write_inventory(lab_clinics(4), BOOTSTRAP)
    hosts = load(lab.inventory_dir / "hosts.yml")
    assert hosts == {
        "all": {
            "children": {
                "clinics": {
                    "children": {
                        "region_africa": {"hosts": {"kinshasa": None, "lubumbashi": None}},
                        "region_europe": {"hosts": {"paris": None}},
                        "region_americas": {"hosts": {"newyork": None}},
                    }
                },
                "vaults": {"hosts": {"vault": None}},
            }
        }
    }


def test_host_vars_hold_the_facts_of_each_clinic(lab: Lab, fake_vault: list[Path]) -> None:
    lab.write_inventory(lab_clinics(3), BOOTSTRAP)
    host_vars = lab.inventory_dir / "host_vars"
    assert sorted(path.name for path in host_vars.iterdir()) == ["kinshasa", "lubumbashi", "paris", "vault"]
    assert load(host_vars / "paris" / "main.yml") == {
        "ansible_host": "clinicops-unit-paris",
        "clinic_id": "paris",
        "clinic_timezone": "Europe/Paris",
        "clinic_region": "europe",
    }
    assert load(host_vars / "vault" / "main.yml") == {"ansible_host": "clinicops-unit-vault"}


def test_group_vars_point_at_the_bootstrap_artifact(lab: Lab, fake_vault: list[Path]) -> None:
    lab.write_inventory(lab_clinics(1), BOOTSTRAP)
    clinics = load(lab.inventory_dir / "group_vars" / "clinics.yml")
    assert clinics == {
        "clinic_host_bootstrap_artifact": str(BOOTSTRAP.path),
        "clinic_host_bootstrap_checksum": f"sha256:{BOOTSTRAP.sha256}",
        "clinic_host_bootstrap_release_id": "20260101T000000Z-1.0.0",
        "backup_offsite_host": "vault",
        "maintenance_window_os_update_cache": False,
    }
    assert load(lab.inventory_dir / "group_vars" / "all.yml")["ansible_connection"] == "community.docker.docker"


def test_each_clinic_gets_its_own_vault_but_the_vault_host_none(lab: Lab, fake_vault: list[Path]) -> None:
    lab.write_inventory(lab_clinics(3), BOOTSTRAP)
    host_vars = lab.inventory_dir / "host_vars"
    clinics = ("kinshasa", "lubumbashi", "paris")
    assert len(LAB_SECRETS) >= 3  # database, backup repository, off-site repository
    expected = [host_vars / name / filename for name in clinics for filename, _ in LAB_SECRETS]
    assert sorted(fake_vault) == sorted(expected)
    assert not [path for path in (host_vars / "vault").iterdir() if path.name != "main.yml"]
    values = [load(host_vars / name / filename)[variable] for name in clinics for filename, variable in LAB_SECRETS]  # type: ignore[index]
    assert len(set(values)) == len(values), "every secret of every clinic is distinct"


def test_marker_names_the_vault_password_file(lab: Lab, fake_vault: list[Path]) -> None:
    lab.write_inventory(lab_clinics(1), BOOTSTRAP)
    marker = json.loads((lab.inventory_dir / MARKER).read_text())
    assert marker == {"lab": "unit", "vault_password_file": ".vault-pass"}
    assert lab_vault_password_file(lab.inventory_dir) == lab.vault_password_file
    assert stat.S_IMODE(lab.vault_password_file.stat().st_mode) == 0o600


def test_second_write_changes_no_file(lab: Lab, fake_vault: list[Path]) -> None:
    lab.write_inventory(lab_clinics(3), BOOTSTRAP)
    backdate(lab.inventory_dir)
    before = tree(lab.inventory_dir)
    lab.write_inventory(lab_clinics(3), BOOTSTRAP)
    assert tree(lab.inventory_dir) == before
    assert len(fake_vault) == 3 * len(LAB_SECRETS)  # no clinic's secret was regenerated


def test_shrinking_removes_stale_host_vars(lab: Lab, fake_vault: list[Path]) -> None:
    lab.write_inventory(lab_clinics(5), BOOTSTRAP)
    lab.write_inventory(lab_clinics(2), BOOTSTRAP)
    host_vars = lab.inventory_dir / "host_vars"
    assert sorted(path.name for path in host_vars.iterdir()) == ["kinshasa", "lubumbashi", "vault"]
    hosts = load(lab.inventory_dir / "hosts.yml")
    assert hosts["all"]["children"]["clinics"]["children"] == {  # type: ignore[index]
        "region_africa": {"hosts": {"kinshasa": None, "lubumbashi": None}}
    }


def test_growing_keeps_existing_secrets(lab: Lab, fake_vault: list[Path]) -> None:
    lab.write_inventory(lab_clinics(1), BOOTSTRAP)
    first = (lab.inventory_dir / "host_vars" / "kinshasa" / "vault.yml").read_text()
    lab.write_inventory(lab_clinics(2), BOOTSTRAP)
    assert (lab.inventory_dir / "host_vars" / "kinshasa" / "vault.yml").read_text() == first
    assert (lab.inventory_dir / "host_vars" / "lubumbashi" / "vault.yml").is_file()


# -- write_inventory with the real ansible-vault ---------------------------------------------------


@pytest.fixture(scope="module")
def real_inventory(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    lab = Lab(name="unitvault", root=tmp_path_factory.mktemp("root"), log=lambda message: None)
    lab.write_inventory(lab_clinics(2), BOOTSTRAP)
    return lab


def vault_files(lab: Lab) -> list[Path]:
    return sorted((lab.inventory_dir / "host_vars").glob("*/vault.yml"))


def test_real_vault_files_are_encrypted_and_private(real_inventory: Lab) -> None:
    files = vault_files(real_inventory)
    assert [path.parent.name for path in files] == ["kinshasa", "lubumbashi"]
    for path in files:
        text = path.read_text()
        assert text.startswith("$ANSIBLE_VAULT;1.1;AES256\n")
        assert "clinic_host_db_password" not in text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_real_vault_files_decrypt_with_the_lab_password(real_inventory: Lab) -> None:
    password = real_inventory.vault_password_file.read_bytes().strip()
    vault = VaultLib([("default", VaultSecret(password))])
    for path in vault_files(real_inventory):
        secrets = yaml.safe_load(vault.decrypt(path.read_bytes()))
        assert set(secrets) == {"clinic_host_db_password"}
        assert len(secrets["clinic_host_db_password"]) >= 24


def test_real_second_write_changes_no_file(real_inventory: Lab) -> None:
    backdate(real_inventory.inventory_dir)
    before = tree(real_inventory.inventory_dir)
    real_inventory.write_inventory(lab_clinics(2), BOOTSTRAP)
    assert tree(real_inventory.inventory_dir) == before


def test_encrypt_failure_is_reported(lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_tools = tmp_path / "bin"
    fake_tools.mkdir()
    script = fake_tools / "ansible-vault"
    script.write_text("#!/bin/sh\necho 'vault exploded' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setattr(fleet, "tool_dir", lambda: fake_tools)
    with pytest.raises(ClinicopsError, match="vault exploded"):
        lab._encrypt("a: 1\n", tmp_path / "out.yml")
