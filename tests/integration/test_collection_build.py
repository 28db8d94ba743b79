"""`ansible-galaxy collection build` gives a tarball that installs and whose plugins ansible-doc lists."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

from conftest import ROOT

BIN = Path(sys.executable).parent


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    assert done.returncode == 0, f"{argv} exited {done.returncode}: {done.stdout}\n{done.stderr}"
    return done


def test_build_install_and_document(tmp_path: Path):
    run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(ROOT)])
    tarball = tmp_path / "clinicops-runbook-0.1.0.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "plugins/modules/health_check.py" in names
    assert "roles/clinic_host/tasks/main.yml" in names
    assert "playbooks/health.yml" in names
    forbidden = ("src/", "lab/", ".venv/", "build/", "tests/unit/", "tests/integration/", "inventories/lab")
    assert not [name for name in names if name.startswith(forbidden)]
    with tarfile.open(tarball) as tar:
        encrypted = [
            member.name
            for member in tar.getmembers()
            if member.isfile() and tar.extractfile(member).read().startswith(b"$ANSIBLE_VAULT;")
        ]
    assert encrypted == [], "vault-encrypted files (lab secrets) must never ship in the collection"

    installed = tmp_path / "collections"
    run(
        [
            str(BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--force",
            "--no-deps",
            "-p",
            str(installed),
            str(tarball),
        ]
    )
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(installed)}
    listing = run([str(BIN / "ansible-doc"), "-t", "module", "-l", "clinicops.runbook"], env=env).stdout
    assert "clinicops.runbook.health_check" in listing
    doc = run([str(BIN / "ansible-doc"), "-t", "module", "clinicops.runbook.health_check"], env=env).stdout
    assert "fail_on_unhealthy" in doc
    roles = run([str(BIN / "ansible-doc"), "-t", "role", "-l", "clinicops.runbook"], env=env).stdout
    assert "clinic_host" in roles
