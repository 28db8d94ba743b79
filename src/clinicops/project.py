"""Where the collection's files are, and the collection tree Ansible loads them from.

The CLI runs the collection's playbooks from a source checkout (editable install). Ansible finds
the collection through ``build/collections/ansible_collections/clinicops/runbook``, a directory
of links to the collection content only (no venv, no lab, no CLI sources), which is also the tree
``ansible-test`` runs in.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from clinicops.errors import UsageError

# Repository paths that are collection content (everything else is build_ignore'd in galaxy.yml).
# Only the example inventory: lab inventories hold vault files and must never be in this tree.
COLLECTION_CONTENT = (
    ".ansible-lint",
    "COPYING",
    "README.md",
    "changelogs",
    "docs",
    "galaxy.yml",
    "meta",
    "playbooks",
    "plugins",
    "roles",
    "inventories/example",
    "tests/sanity",
)


def project_root() -> Path:
    """The source checkout: $CLINICOPS_PROJECT_ROOT, else the checkout this package lives in."""
    env = os.environ.get("CLINICOPS_PROJECT_ROOT")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2])
    for candidate in candidates:
        if (candidate / "galaxy.yml").is_file() and (candidate / "playbooks").is_dir():
            return candidate
    raise UsageError(
        "cannot find the clinicops collection sources (galaxy.yml + playbooks/); "
        "set CLINICOPS_PROJECT_ROOT to the checkout"
    )


def collections_root(root: Path | None = None) -> Path:
    """Create (idempotently) and return the collections path holding clinicops.runbook."""
    root = root or project_root()
    base = root / "build" / "collections"
    tree = base / "ansible_collections" / "clinicops" / "runbook"
    tree.mkdir(parents=True, exist_ok=True)
    stale = tree / "inventories"
    if stale.is_symlink():  # trees made by older versions linked every inventory; before linking into it
        stale.unlink()
    for name in COLLECTION_CONTENT:
        _link(tree / name, root / name)
    return base


def _link(link: Path, target: Path) -> None:
    if not target.exists():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.is_symlink():
        link.unlink()
    link.symlink_to(target)


def ansible_env(root: Path | None = None) -> dict[str, str]:
    """Environment every Ansible process started by the CLI gets (runner runs, ansible-vault)."""
    root = root or project_root()
    return {
        # The Ansible tools installed beside this interpreter (the venv) come first.
        "PATH": os.pathsep.join([str(tool_dir()), os.environ.get("PATH", "/usr/bin:/bin")]),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_root(root)),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_FORCE_COLOR": "False",
        "ANSIBLE_NOCOLOR": "True",
    }


def tool_dir() -> Path:
    """The directory of this interpreter's console scripts (ansible-playbook, ansible-vault)."""
    return Path(sys.executable).parent
