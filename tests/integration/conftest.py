"""Integration tests run against a real lab named ``itest`` (2 clinics + vault) on this machine.

The lab is brought up once per session through the CLI, exactly as an operator would, and taken
down at the end (the last test of test_lab.py asserts what ``lab down`` leaves behind).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
import pytest
import yaml
from docker.models.containers import Container

ROOT = Path(__file__).resolve().parents[2]
LAB = os.environ.get("CLINICOPS_TEST_LAB", "itest")  # another name runs a module beside a running suite
KEEP_LAB = os.environ.get("CLINICOPS_TEST_KEEP_LAB") == "1"  # leaves the lab up, to iterate on one module
LAB_CLINICS = 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``lab_teardown`` (they take the lab down) run after every other test."""
    items.sort(key=lambda item: item.get_closest_marker("lab_teardown") is not None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab_teardown: takes the session's lab down; runs last")


def clinicops(
    *args: str, check: bool = True, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would (the venv's console script)."""
    argv = [str(Path(sys.executable).parent / "clinicops"), *args]
    env = {**os.environ, "CLINICOPS_PROJECT_ROOT": str(ROOT), **(env or {})}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CLI's state home (runs, controller locks and audit trail, incidents) for one test module."""
    return tmp_path_factory.mktemp("clinicops-home")


def cli_state(home: Path, *args: str) -> tuple[int, dict, str]:
    """The CLI with ``home`` as its state home: (exit code, the --json state printed or {}, stdout + stderr)."""
    done = clinicops(*args, check=False, env={"CLINICOPS_HOME": str(home)})
    state = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, state, done.stdout + done.stderr


def run_in(container, argv: list[str], env: dict[str, str] | None = None, user: str = "") -> tuple[int, str]:
    result = container.exec_run(argv, environment=env or {}, user=user, demux=False)
    return result.exit_code, result.output.decode(errors="replace")


def ok_in(container, argv: list[str], env: dict[str, str] | None = None, user: str = "") -> str:
    code, out = run_in(container, argv, env, user)
    assert code == 0, f"{argv} exited {code} in {container.name}: {out}"
    return out


def psql(container, sql: str, database: str = "clinicdb") -> str:
    return ok_in(container, ["psql", "-X", "-A", "-t", "-d", database, "-c", sql], user="postgres").strip()


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    return docker.from_env()


@pytest.fixture(scope="session")
def lab_up() -> Iterator[subprocess.CompletedProcess[str]]:
    first = clinicops("lab", "up", "--name", LAB, "--clinics", str(LAB_CLINICS))
    yield first
    if not KEEP_LAB:
        clinicops("lab", "down", "--name", LAB, check=False)


@pytest.fixture(scope="session")
def inventory(lab_up) -> Path:
    return ROOT / "inventories" / f"lab-{LAB}"


@pytest.fixture(scope="session")
def clinics(lab_up, docker_client) -> dict[str, object]:
    found = docker_client.containers.list(filters={"label": [f"clinicops.lab={LAB}", "clinicops.lab.role=clinic"]})
    return {container.labels["clinicops.lab.host"]: container for container in found}


def health_json(*extra: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    done = clinicops("health", "-i", str(ROOT / "inventories" / f"lab-{LAB}"), "--json", *extra, check=False, env=env)
    return done.returncode, json.loads(done.stdout)


def ansible_playbook(playbook: Path, *args: str, **popen) -> subprocess.Popen[str]:
    """Start ansible-playbook on the test lab, as an operator (or AWX) would, without waiting."""
    inventory = ROOT / "inventories" / f"lab-{LAB}"
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        str(inventory),
        "--vault-password-file",
        str(inventory / ".vault-pass"),
        str(playbook),
        *args,
    ]
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"), "ANSIBLE_NOCOLOR": "1"}
    env.update(popen.pop("env", {}))
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True, **popen
    )


PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
BOOT_TIMEOUT = 120


@contextmanager
def own_clinic_container(client: docker.DockerClient, prefix: str, **options: object) -> Iterator[Container]:
    """A container of the lab's clinic image for one test module (not part of any lab), booted, removed at the end.

    It runs systemd as PID 1 with the lab's options; ``options`` adds hostname, labels, network_mode... or
    replaces one of the lab's options (cap_add).
    """
    from clinicops.lab.fleet import SYSTEMD_CONTAINER
    from clinicops.lab.image import ImageRecipe, ensure_image

    image = ensure_image(client, ImageRecipe(ROOT / "lab" / "image"))
    container = client.containers.run(
        image, name=f"{prefix}-{secrets.token_hex(4)}", detach=True, **{**SYSTEMD_CONTAINER, **options}
    )
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while True:
            _code, state = run_in(container, ["systemctl", "is-system-running", "--wait"])
            if state.strip() in ("running", "degraded"):
                break
            assert time.monotonic() < deadline, f"{container.name}: systemd did not finish booting ({state.strip()})"
            time.sleep(0.2)  # systemd's bus socket is not there yet; nothing to wait on but time
        yield container
    finally:
        container.remove(force=True)


def container_inventory(path: Path, group: str, name: str, container: Container, **variables: object) -> Path:
    """Write an inventory at ``path`` reaching ``container`` through the docker connection, as host ``name``."""
    host = {
        "ansible_connection": "community.docker.docker",
        "ansible_host": container.name,
        "ansible_python_interpreter": "/usr/bin/python3",
        **variables,
    }
    path.write_text(yaml.safe_dump({"all": {"children": {group: {"hosts": {name: host}}}}}))
    return path


def run_playbook(
    inventory: Path, playbook: Path, *args: str, extra: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ansible-playbook with an inventory of the test's own and the collection under test; wait for it."""
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook), *args]
    if extra is not None:
        argv += ["-e", json.dumps(extra)]
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def msg_of(line: str) -> str:
    """The text of a debug task's ``"msg": "..."`` output line."""
    return json.loads("{" + line.strip().rstrip(",") + "}")["msg"]


def marked_result(output: str, marker: str) -> dict | None:
    """The JSON a test playbook printed with ``debug: msg="<marker>{{ result | to_json }}"``; None when absent."""
    line = next((line for line in output.splitlines() if f'"msg": "{marker}' in line), None)
    return None if line is None else json.loads(msg_of(line).removeprefix(marker))


def run_report(output: str) -> dict:
    """The clinicops_report a play published with set_stats (what the CLI's report reads).

    The play must run with ANSIBLE_SHOW_CUSTOM_STATS=1; {} when it published nothing.
    """
    line = next((line for line in output.splitlines() if line.startswith("\tRUN: ")), None)
    return json.loads(line.split(": ", 1)[1])["clinicops_report"] if line else {}


def lab_secret(clinic: str, lab: str = LAB, file: str = "vault.yml", key: str = "clinic_host_db_password") -> str:
    """A secret of the clinic, decrypted from the lab's vault file (to grep for it)."""
    inventory = ROOT / "inventories" / f"lab-{lab}"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-vault"),
            "view",
            "--vault-password-file",
            str(inventory / ".vault-pass"),
            str(inventory / "host_vars" / clinic / file),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    secret = yaml.safe_load(done.stdout)[key]
    assert len(secret) >= 12
    return secret


COLLECTION_PLAYBOOKS = ROOT / "playbooks"


def play(playbook: str, limit: str, *extra: str, timeout: float = 600) -> tuple[int, str]:
    """Run one of the collection's playbooks on the test lab and wait for it: (exit code, output)."""
    run = ansible_playbook(COLLECTION_PLAYBOOKS / playbook, "--limit", limit, *extra)
    output, _ = run.communicate(timeout=timeout)
    return run.returncode, output


def restic(container, *args: str) -> str:
    """restic on the clinic's own repository (as the backup role set it up)."""
    env = {"RESTIC_REPOSITORY": "/var/backups/clinicops/repo", "RESTIC_PASSWORD_FILE": "/etc/clinicops/restic-password"}
    return ok_in(container, ["restic", "--no-cache", *args], env=env)


def snapshots(container, *tags: str) -> list[dict]:
    args = ["snapshots", "--json"] + (["--tag", ",".join(tags)] if tags else [])
    return json.loads(restic(container, *args) or "[]") or []
