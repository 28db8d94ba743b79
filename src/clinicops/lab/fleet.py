"""The embedded lab: clinic containers running systemd, a vault host, and their inventory.

``up`` converges the lab to N clinics: it creates what is missing, starts what is stopped, keeps
what already runs the current image, removes clinics beyond N, writes a directory inventory and
provisions the clinics with the collection's own ``clinic_host`` role (the lab only makes the
machines; production code sets them up). Everything it creates carries the label
``clinicops.lab=<name>`` and ``down`` removes exactly that.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from clinicops.errors import ClinicopsError, UsageError
from clinicops.lab import MARKER, lab_vault_password_file  # noqa: F401 (re-exported)
from clinicops.lab.artifacts import Artifact, build_artifacts
from clinicops.lab.engine import ensure_engine
from clinicops.lab.image import ImageRecipe, ensure_image
from clinicops.project import ansible_env, project_root, tool_dir
from clinicops.runner import PlaybookRun, new_run_id, run_playbook, state_home

LABEL = "clinicops.lab"
ROLE_LABEL = "clinicops.lab.role"
PROVISION_STAMP = "/etc/clinicops/lab-provisioned"
BOOTSTRAP_VERSION = "1.0.0"
READY_TIMEOUT = 90.0
MAX_CLINICS = 30

# Secrets each lab clinic gets, one vault-encrypted file each (made once, never rewritten).
LAB_SECRETS = (
    ("vault.yml", "clinic_host_db_password"),
    ("vault_backup.yml", "backup_repository_password"),
    ("vault_offsite.yml", "backup_offsite_password"),
)

# Lab clinics: name, IANA time zone, region group. Beyond this list, names are numbered and the
# zones cycle.
CLINIC_CATALOGUE = (
    ("kinshasa", "Africa/Kinshasa", "africa"),
    ("lubumbashi", "Africa/Lubumbashi", "africa"),
    ("paris", "Europe/Paris", "europe"),
    ("newyork", "America/New_York", "americas"),
    ("saopaulo", "America/Sao_Paulo", "americas"),
    ("sydney", "Australia/Sydney", "oceania"),
    ("lordhowe", "Australia/Lord_Howe", "oceania"),
    ("kolkata", "Asia/Kolkata", "asia"),
)


# systemd as PID 1 without --privileged (which this kind of VM refuses): the options of every clinic container.
SYSTEMD_CONTAINER: dict = {
    # SYS_PTRACE: root reads every process's open files (/proc/<pid>/fd), as on a real clinic, so the log
    # archive can tell a rotated file still open by a writer.
    "cap_add": ["SYS_ADMIN", "SYS_PTRACE"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "cgroupns": "host",
    "volumes": {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
    "tmpfs": {"/run": "", "/run/lock": ""},
    "stop_signal": "SIGRTMIN+3",
}


@dataclass(frozen=True)
class LabClinic:
    name: str
    timezone: str
    region: str


def lab_clinics(count: int) -> list[LabClinic]:
    if not 1 <= count <= MAX_CLINICS:
        raise UsageError(f"--clinics must be between 1 and {MAX_CLINICS}, got {count}; nothing was changed")
    clinics = []
    for index in range(count):
        name, zone, region = CLINIC_CATALOGUE[index % len(CLINIC_CATALOGUE)]
        if index >= len(CLINIC_CATALOGUE):
            name = f"clinic{index + 1:02d}"
        clinics.append(LabClinic(name, zone, region))
    return clinics


@dataclass
class Lab:
    """One named lab. The default lab's inventory is ``inventories/lab``."""

    name: str = "lab"
    root: Path = field(default_factory=project_root)
    log: object = print

    def __post_init__(self) -> None:
        # ASCII only: the name goes into Docker object names ([a-zA-Z0-9][a-zA-Z0-9_.-]*).
        name = self.name
        if not (name.isascii() and name.replace("-", "").isalnum() and name[0].isalpha() and len(name) <= 20):
            raise UsageError(f"lab name {self.name!r}: use up to 20 letters, digits or '-', starting with a letter")

    # -- names -----------------------------------------------------------------------------------
    @property
    def inventory_dir(self) -> Path:
        suffix = "" if self.name == "lab" else f"-{self.name}"
        return self.root / "inventories" / f"lab{suffix}"

    @property
    def network_name(self) -> str:
        return f"clinicops-{self.name}"

    def container_name(self, host: str) -> str:
        return f"clinicops-{self.name}-{host}"

    @property
    def vault_password_file(self) -> Path:
        return self.inventory_dir / ".vault-pass"

    # -- docker objects ----------------------------------------------------------------------------
    def _containers(self, client: docker.DockerClient) -> dict[str, Container]:
        found = client.containers.list(all=True, filters={"label": f"{LABEL}={self.name}"})
        return {container.labels.get("clinicops.lab.host", container.name): container for container in found}

    def _network(self, client: docker.DockerClient):
        for network in client.networks.list(names=[self.network_name]):
            if network.name == self.network_name:
                return network
        return client.networks.create(self.network_name, driver="bridge", labels={LABEL: self.name})

    def _run_container(self, client: docker.DockerClient, image: str, host: str, role: str) -> Container:
        return client.containers.run(
            image,
            name=self.container_name(host),
            hostname=host,
            detach=True,
            network=self.network_name,
            labels={LABEL: self.name, ROLE_LABEL: role, "clinicops.lab.host": host},
            **SYSTEMD_CONTAINER,
        )

    def _converge_container(
        self, client: docker.DockerClient, existing: Container | None, image: str, host: str, role: str
    ) -> tuple[Container, str]:
        same_options = existing is not None and set(existing.attrs.get("HostConfig", {}).get("CapAdd") or []) >= set(
            SYSTEMD_CONTAINER["cap_add"]
        )
        if existing is not None and existing.image.tags and image in existing.image.tags and same_options:
            if existing.status != "running":
                existing.start()
                return existing, "started"
            return existing, "kept"
        if existing is not None:
            existing.remove(force=True)
            why = "new options" if image in existing.image.tags else "new image"
            return self._run_container(client, image, host, role), f"recreated ({why})"
        return self._run_container(client, image, host, role), "created"

    # -- readiness ---------------------------------------------------------------------------------
    def wait_ready(self, container: Container) -> None:
        """Wait until systemd in the container has finished booting; fail on failed units."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            result = container.exec_run(["systemctl", "is-system-running", "--wait"])
            state = result.output.decode(errors="replace").strip()
            if state in ("running", "degraded"):
                break
            if time.monotonic() > deadline:
                raise ClinicopsError(f"{container.name}: systemd did not finish booting ({state})")
            time.sleep(0.2)  # systemd's bus socket is not there yet; nothing to wait on but time
        if state == "degraded":
            failed = container.exec_run(["systemctl", "--failed", "--no-legend", "--plain"]).output.decode()
            raise ClinicopsError(f"{container.name}: systemd units failed at boot: {failed.strip()}")

    # -- inventory ---------------------------------------------------------------------------------
    def _vault_password(self) -> Path:
        path = self.vault_password_file
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32) + "\n")
        return path

    def _encrypt(self, plaintext: str, out: Path) -> None:
        vault = tool_dir() / "ansible-vault"
        argv = [
            str(vault),
            "encrypt",
            "--vault-password-file",
            str(self._vault_password()),
            "--output",
            str(out),
            "-",
        ]
        done = subprocess.run(
            argv,
            input=plaintext,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **ansible_env()},
        )
        if done.returncode != 0:
            raise ClinicopsError(f"ansible-vault could not encrypt {out}: {done.stderr.strip()}")
        out.chmod(0o600)

    def write_inventory(self, clinics: list[LabClinic], bootstrap: Artifact) -> None:
        inv = self.inventory_dir
        for sub in ("group_vars", "host_vars"):
            (inv / sub).mkdir(parents=True, exist_ok=True)
        regions: dict[str, list[str]] = {}
        for clinic in clinics:
            regions.setdefault(f"region_{clinic.region}", []).append(clinic.name)
        hosts = {
            "all": {
                "children": {
                    "clinics": {
                        "children": {
                            group: {"hosts": {name: None for name in names}} for group, names in regions.items()
                        }
                    },
                    "vaults": {"hosts": {"vault": None}},
                }
            }
        }
        header = f"# Written by `clinicops lab up` for lab {self.name!r}; `clinicops lab down` removes it.\n"
        _write_if_changed(
            inv / "hosts.yml", header + "# Groups only: per-clinic facts are in host_vars/.\n" + _yaml(hosts)
        )
        _write_if_changed(
            inv / "group_vars" / "all.yml",
            header
            + _yaml(
                {
                    "ansible_connection": "community.docker.docker",
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "ansible_pipelining": True,
                }
            ),
        )
        _write_if_changed(
            inv / "group_vars" / "clinics.yml",
            header
            + _yaml(
                {
                    "clinic_host_bootstrap_artifact": str(bootstrap.path),
                    "clinic_host_bootstrap_checksum": f"sha256:{bootstrap.sha256}",
                    "clinic_host_bootstrap_release_id": f"20260101T000000Z-{bootstrap.version}",
                    # Backups are copied off-site to the lab's vault host over SFTP.
                    "backup_offsite_host": "vault",
                    # Lab clinics reach no package mirror (tests talk to loopback and their own containers
                    # only): maintenance updates packages from the lists the image has, never fetching new ones.
                    "maintenance_window_os_update_cache": False,
                }
            ),
        )
        wanted = {clinic.name for clinic in clinics} | {"vault"}
        for clinic in [*clinics, LabClinic("vault", "UTC", "vault")]:
            host_dir = inv / "host_vars" / clinic.name
            host_dir.mkdir(exist_ok=True)
            facts = {"ansible_host": self.container_name(clinic.name)}
            if clinic.name != "vault":
                facts |= {
                    "clinic_id": clinic.name,
                    "clinic_timezone": clinic.timezone,
                    "clinic_region": clinic.region,
                }
            _write_if_changed(host_dir / "main.yml", header + _yaml(facts))
            if clinic.name != "vault":
                for filename, variable in LAB_SECRETS:
                    if not (host_dir / filename).exists():
                        self._encrypt(_yaml({variable: secrets.token_urlsafe(32)}), host_dir / filename)
        for stale in (inv / "host_vars").iterdir():
            if stale.name not in wanted:
                shutil.rmtree(stale)
        _write_if_changed(inv / MARKER, json.dumps({"lab": self.name, "vault_password_file": ".vault-pass"}) + "\n")

    # -- provisioning --------------------------------------------------------------------------------
    def _fingerprint(self, host: str) -> str:
        digest = hashlib.sha256()
        sources = [self.root / "roles" / "clinic_host", self.root / "roles" / "offsite_vault"]
        sources += [self.root / "playbooks" / "provision.yml"]
        sources += [self.root / "lab" / "provision.yml", self.inventory_dir / "group_vars"]
        sources += [self.inventory_dir / "host_vars" / host / "main.yml"]
        for source in sources:
            paths = sorted(source.rglob("*")) if source.is_dir() else [source]
            for path in paths:
                # Test scenarios and caches beside the role do not change what it provisions.
                if path.is_file() and not {"molecule", "__pycache__"} & set(path.parts):
                    digest.update(str(path.relative_to(self.root)).encode() + path.read_bytes())
        return digest.hexdigest()

    @staticmethod
    def _stamp(container: Container) -> str:
        result = container.exec_run(["cat", PROVISION_STAMP])
        return result.output.decode().strip() if result.exit_code == 0 else ""

    @staticmethod
    def _write_stamp(container: Container, value: str) -> None:
        data = (value + "\n").encode()
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo(Path(PROVISION_STAMP).name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        container.exec_run(["mkdir", "-p", str(Path(PROVISION_STAMP).parent)])
        container.put_archive(str(Path(PROVISION_STAMP).parent), archive.getvalue())

    def provision(self, containers: dict[str, Container], force: bool = False) -> list[str]:
        wanted = {host: self._fingerprint(host) for host in containers}
        todo = [host for host, print_ in wanted.items() if force or self._stamp(containers[host]) != print_]
        if not todo:
            return []
        self.log(f"provisioning {', '.join(todo)} (clinicops.runbook.clinic_host, offsite_vault)")
        run_id = new_run_id("lab-provision")
        result = run_playbook(
            PlaybookRun(
                playbook=self.root / "lab" / "provision.yml",
                inventory=self.inventory_dir,
                operation="lab-provision",
                run_id=run_id,
                limit=",".join(todo),
                vault_password_file=self.vault_password_file,
            ),
            state_home() / "runs" / run_id,
        )
        failed = {name: host for name, host in result.hosts.items() if host.outcome in ("failed", "unreachable")}
        if failed or result.rc != 0:
            detail = "; ".join(f"{name}: {host.failed_task}: {host.message}" for name, host in failed.items())
            raise ClinicopsError(
                f"provisioning failed (run {result.run_id}, artifacts in {result.run_dir}): {detail or result.status}"
            )
        for host in todo:
            self._write_stamp(containers[host], wanted[host])
        return todo

    # -- commands --------------------------------------------------------------------------------------
    def up(self, count: int = 3, reprovision: bool = False) -> dict[str, str]:
        clinics = lab_clinics(count)
        client = ensure_engine(self.log)
        image = ensure_image(client, ImageRecipe(self.root / "lab" / "image"), self.log)
        artifacts = build_artifacts(self.root / "lab" / "app", self.root / "build" / "artifacts")
        self._network(client)
        existing = self._containers(client)
        actions: dict[str, str] = {}
        wanted = {clinic.name: "clinic" for clinic in clinics} | {"vault": "vault"}
        for host, container in existing.items():
            if host not in wanted:
                container.remove(force=True)
                actions[host] = "removed"
        running: dict[str, Container] = {}
        for host, role in wanted.items():
            running[host], actions[host] = self._converge_container(client, existing.get(host), image, host, role)
        for container in running.values():
            self.wait_ready(container)
        self.write_inventory(clinics, artifacts[BOOTSTRAP_VERSION])
        for host in self.provision(running, force=reprovision):
            actions[host] += ", provisioned"
        return actions

    def down(self) -> list[str]:
        client = ensure_engine(self.log)
        removed = []
        for host, container in sorted(self._containers(client).items()):
            container.remove(force=True)
            removed.append(host)
        for network in client.networks.list(filters={"label": f"{LABEL}={self.name}"}):
            network.remove()
        if (self.inventory_dir / MARKER).is_file():
            shutil.rmtree(self.inventory_dir)
        return removed

    def status(self) -> list[dict[str, str]]:
        client = ensure_engine(self.log)
        rows = []
        for host, container in sorted(self._containers(client).items()):
            rows.append(
                {
                    "host": host,
                    "container": container.name,
                    "role": container.labels.get(ROLE_LABEL, ""),
                    "state": container.status,
                    "image": (container.image.tags or ["?"])[0],
                }
            )
        return rows


def _write_if_changed(path: Path, content: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != content:
        path.write_text(content, encoding="utf-8")


def _yaml(data: object) -> str:
    """YAML for the inventory files (JSON is YAML; a block layout reads better, so indent)."""
    import yaml  # ansible-core depends on PyYAML

    return "---\n" + yaml.safe_dump(data, default_flow_style=False, sort_keys=False)
