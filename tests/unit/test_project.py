"""Where the collection's files are, and the collection tree Ansible loads them from."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from clinicops.errors import UsageError
from clinicops.project import COLLECTION_CONTENT, ansible_env, collections_root, project_root, tool_dir


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A minimal source checkout: collection content plus things that must stay out of the tree."""
    root = tmp_path / "checkout"
    for directory in ("playbooks", "roles/health", "plugins/modules", "inventories/example", "inventories/lab", "lab"):
        (root / directory).mkdir(parents=True)
    (root / "galaxy.yml").write_text("namespace: clinicops\nname: runbook\n")
    (root / "inventories" / "lab" / "vault.yml").write_text("secret\n")
    (root / ".venv").mkdir()
    return root


def test_project_root_is_this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLINICOPS_PROJECT_ROOT", raising=False)
    root = project_root()
    assert (root / "galaxy.yml").is_file()
    assert (root / "src" / "clinicops" / "project.py").is_file()


def test_project_root_from_environment(monkeypatch: pytest.MonkeyPatch, checkout: Path) -> None:
    monkeypatch.setenv("CLINICOPS_PROJECT_ROOT", str(checkout))
    assert project_root() == checkout


def test_project_root_ignores_an_environment_path_that_is_no_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLINICOPS_PROJECT_ROOT", str(tmp_path))
    assert project_root() != tmp_path


def test_project_root_not_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import clinicops.project as project

    monkeypatch.setenv("CLINICOPS_PROJECT_ROOT", str(tmp_path))
    monkeypatch.setattr(project, "__file__", str(tmp_path / "a" / "b" / "project.py"))
    with pytest.raises(UsageError, match="CLINICOPS_PROJECT_ROOT"):
        project.project_root()


def test_collection_tree_links_only_collection_content(checkout: Path) -> None:
    base = collections_root(checkout)
    tree = base / "ansible_collections" / "clinicops" / "runbook"
    assert base == checkout / "build" / "collections"
    linked = sorted(str(path.relative_to(tree)) for path in tree.rglob("*") if path.is_symlink())
    assert linked == ["galaxy.yml", "inventories/example", "playbooks", "plugins", "roles"]
    for name in linked:
        assert (tree / name).resolve() == (checkout / name).resolve()
    assert not (tree / "lab").exists()
    assert not (tree / ".venv").exists()
    assert not (tree / "inventories" / "lab").exists()


def test_collection_tree_is_idempotent(checkout: Path) -> None:
    collections_root(checkout)
    tree = checkout / "build" / "collections" / "ansible_collections" / "clinicops" / "runbook"
    before = {path: os.readlink(path) for path in tree.rglob("*") if path.is_symlink()}
    collections_root(checkout)
    assert {path: os.readlink(path) for path in tree.rglob("*") if path.is_symlink()} == before


def test_collection_tree_drops_a_stale_inventories_link(checkout: Path) -> None:
    tree = checkout / "build" / "collections" / "ansible_collections" / "clinicops" / "runbook"
    tree.mkdir(parents=True)
    (tree / "inventories").symlink_to(checkout / "inventories")
    collections_root(checkout)
    assert not (tree / "inventories").is_symlink()
    assert (tree / "inventories" / "example").is_symlink()
    assert not (tree / "inventories" / "lab").exists()


def test_collection_tree_repoints_a_moved_link(checkout: Path, tmp_path: Path) -> None:
    tree = checkout / "build" / "collections" / "ansible_collections" / "clinicops" / "runbook"
    tree.mkdir(parents=True)
    (tree / "playbooks").symlink_to(tmp_path)
    collections_root(checkout)
    assert (tree / "playbooks").resolve() == (checkout / "playbooks").resolve()


def test_collection_content_holds_no_lab_inventory() -> None:
    assert "inventories" not in COLLECTION_CONTENT
    assert not any(name.startswith("inventories/lab") for name in COLLECTION_CONTENT)


def test_ansible_env_puts_this_interpreters_tools_first(checkout: Path) -> None:
    env = ansible_env(checkout)
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent) == str(tool_dir())
    assert env["ANSIBLE_COLLECTIONS_PATH"] == str(checkout / "build" / "collections")
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "False"
