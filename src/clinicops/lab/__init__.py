"""The embedded lab of clinic containers.

What procedure commands need of a lab inventory lives here, so they do not import the lab's
machinery (the Docker SDK) just to find a vault password file.
"""

from __future__ import annotations

import json
from pathlib import Path

# Written into every inventory the lab makes: which lab, and its vault password file.
MARKER = ".clinicops-lab.json"


def lab_vault_password_file(inventory: Path) -> Path | None:
    """The vault password file of an inventory written by the lab, if that is what it is."""
    marker = inventory / MARKER if inventory.is_dir() else None
    if marker is None or not marker.is_file():
        return None
    return inventory / json.loads(marker.read_text())["vault_password_file"]
