"""The example inventory parses and gives every clinic a time zone (no connection is made)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_example_inventory_resolves_every_clinic():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(ROOT / "inventories" / "example"), "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    inventory = json.loads(done.stdout)
    clinics = [host for group in inventory["clinics"]["children"] for host in inventory[group]["hosts"]]
    assert len(clinics) == 6
    hostvars = inventory["_meta"]["hostvars"]
    for clinic in clinics:
        assert "/" in hostvars[clinic]["clinic_timezone"]
    assert hostvars["clinic-goma.example.org"]["clinic_host_db_port"] == 5433
    assert hostvars["clinic-paris-11.example.org"]["clinic_timezone"] == "Europe/Paris"
