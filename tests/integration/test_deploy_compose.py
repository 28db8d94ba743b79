"""Deploy and rollback with ``deploy_strategy: compose`` on this machine's Docker engine.

The compose clinic is the controller itself (``ansible_connection: local``): its app root, clinic lock
and audit trail live in a temporary directory, its containers are named ``clinicops-compose-itest-*``
and labelled ``clinicops.itest=compose``, the app is published on a free localhost port. No registry
is reachable, so the images are built here from the lab's base image (Debian with python3), each with
a ten-line HTTP app whose /health names the version baked into the image and the release from its
environment: tags 1 and 2 answer 200, tag ``broken`` answers 503. The lab is not needed.

The tests run in file order; the last one removes the containers and images the module built.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml
from conftest import COLLECTION_PLAYBOOKS, ROOT

from clinicops.lab.image import BASE_REPOSITORY, ImageRecipe, ensure_image

HOST = "compose-itest"
LABEL = "clinicops.itest=compose"
REPOSITORY = "clinicops-compose-itest-app"
APP = "clinicops-compose-itest-app"
WORKER = "clinicops-compose-itest-worker"
TAGS = {"1": "ok", "2": "ok", "broken": "failing"}
RELEASE = {tag: f"compose-itest-{tag}" for tag in TAGS}

APP_PY = """\
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        ok = os.environ["APP_HEALTH"] == "ok"
        body = json.dumps({"status": "ok" if ok else "failing", "version": os.environ["APP_VERSION"],
                           "release": os.environ.get("CLINICOPS_RELEASE", "")}).encode()
        self.send_response(200 if ok and self.path == "/health" else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("0.0.0.0", 8000), Health).serve_forever()
"""

DOCKERFILE = """\
ARG BASE
FROM ${BASE}
ARG VERSION
ARG HEALTH
COPY app.py /opt/compose-itest/app.py
ENV APP_VERSION=${VERSION} APP_HEALTH=${HEALTH}
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/python3", "/opt/compose-itest/app.py"]
CMD []
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ours(client: docker.DockerClient) -> list:
    return client.containers.list(all=True, filters={"label": LABEL})


def cleanup(client: docker.DockerClient) -> None:
    """Remove every container and image this module built (by label and name)."""
    for container in ours(client):
        container.remove(force=True)
    for image in client.images.list(filters={"label": LABEL}):
        for tag in image.tags:
            if tag.startswith(f"{REPOSITORY}:"):
                client.images.remove(tag, force=True)


class Clinic:
    def __init__(self, root: Path, port: int, client: docker.DockerClient) -> None:
        self.root, self.port, self.client = root, port, client
        self.app_root = root / "app"
        self.inventory = root / "inventory.yml"
        self.lock = root / "clinic.lock"
        self.trail = root / "audit" / "audit.jsonl"

    def play(self, playbook: str, *extra: str, timeout: float = 600) -> tuple[int, str]:
        argv = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(self.inventory),
            str(COLLECTION_PLAYBOOKS / playbook),
            *extra,
        ]
        env = {
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_PIPELINING": "True",
        }
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        return done.returncode, done.stdout + done.stderr

    def deploy(self, tag: str, *extra: str) -> tuple[int, str]:
        return self.play("deploy.yml", "-e", f"deploy_version={tag}", "-e", f"deploy_release_id={RELEASE[tag]}", *extra)

    def current(self) -> str:
        return os.path.basename(os.readlink(self.app_root / "current"))

    def releases(self) -> dict[str, dict]:
        log = json.loads((self.app_root / "releases.json").read_text())
        return {entry["id"]: entry for entry in log["releases"]}

    def spec(self, release_id: str) -> dict:
        return json.loads((self.app_root / "releases" / release_id / "images.json").read_text())

    def served(self) -> dict:
        url = f"http://127.0.0.1:{self.port}/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return {"http": answer.status, **json.loads(answer.read())}
        except urllib.error.HTTPError as exc:
            return {"http": exc.code, **json.loads(exc.read())}

    def containers(self) -> dict[str, object]:
        return {container.name: container for container in ours(self.client)}

    def audit(self) -> list[dict]:
        return [json.loads(line) for line in self.trail.read_text().splitlines()]

    def unlocked(self) -> bool:
        return not self.lock.exists()


@pytest.fixture(scope="module")
def images(docker_client, tmp_path_factory):
    """Build the app's three tags from the lab's base image (built by the lab when absent)."""
    recipe = ImageRecipe(ROOT / "lab" / "image")
    base = f"{BASE_REPOSITORY}:{recipe.tag}"
    try:
        docker_client.images.get(base)
    except docker.errors.ImageNotFound:
        base = ensure_image(docker_client, recipe)
    context = tmp_path_factory.mktemp("compose-image")
    (context / "app.py").write_text(APP_PY)
    (context / "Dockerfile").write_text(DOCKERFILE)
    cleanup(docker_client)
    built = {}
    for tag, health in TAGS.items():
        image, _log = docker_client.images.build(
            path=str(context),
            tag=f"{REPOSITORY}:{tag}",
            buildargs={"BASE": base, "VERSION": tag, "HEALTH": health},
            labels={"clinicops.itest": "compose"},
            rm=True,
        )
        built[tag] = image.id
    yield built
    cleanup(docker_client)


@pytest.fixture(scope="module")
def clinic(images, docker_client, tmp_path_factory) -> Clinic:
    root = tmp_path_factory.mktemp("compose-clinic")
    clinic = Clinic(root, free_port(), docker_client)
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "ansible_become": False,
        "deploy_strategy": "compose",
        "clinic_host_app_root": str(clinic.app_root),
        "clinic_host_app_port": clinic.port,
        "clinic_host_app_name": APP,  # the default container: this name, 127.0.0.1:<port> -> 8000
        "deploy_compose_image": REPOSITORY,
        "deploy_compose_labels": {"clinicops.itest": "compose"},
        "deploy_compose_pull": "never",
        "deploy_compose_stop_timeout": 10,
        "deploy_backup": False,
        "deploy_health_deadline": 30,
        "rollback_health_deadline": 30,
        "procedure_guard_lock_path": str(clinic.lock),
        "procedure_guard_trail": str(clinic.trail),
    }
    clinic.inventory.write_text(yaml.safe_dump({"clinics": {"hosts": {HOST: host}}}))
    return clinic


WITH_WORKER = json.dumps(
    {
        "deploy_compose_containers": [
            {"name": APP, "published_ports": ["127.0.0.1:{{ clinic_host_app_port }}:8000"]},
            {"name": WORKER, "env": {"ROLE": "worker"}},
        ]
    }
)


@pytest.mark.parametrize(
    "extra",
    [
        ["-e", "deploy_compose_tag=latest"],
        ["-e", json.dumps({"deploy_compose_containers": [{"name": "bad name"}]})],
        ["-e", "deploy_artifact=/etc/hostname"],
    ],
)
def test_invalid_compose_inputs_are_refused_before_anything_changes(clinic, extra):
    code, output = clinic.deploy("1", *extra)
    assert code != 0 and "inputs are invalid" in output and "Nothing was changed" in output, output
    assert not clinic.app_root.exists() and not clinic.containers() and clinic.unlocked()


def test_a_first_compose_deploy_pins_tag_1_and_serves_it(clinic, images):
    code, output = clinic.deploy("1", "-e", WITH_WORKER)
    assert code == 0, output
    assert clinic.current() == RELEASE["1"]
    served = clinic.served()
    assert (served["http"], served["version"], served["release"]) == (200, "1", RELEASE["1"])
    spec = clinic.spec(RELEASE["1"])
    assert [(c["name"], c["image"], c["image_id"]) for c in spec["containers"]] == [
        (APP, f"{REPOSITORY}:1", images["1"]),
        (WORKER, f"{REPOSITORY}:1", images["1"]),
    ]
    env = {"ROLE": "worker", "CLINICOPS_RELEASE": RELEASE["1"], "CLINICOPS_VERSION": "1"}
    assert spec["containers"][1]["env"] == env
    running = clinic.containers()
    assert set(running) == {APP, WORKER}
    for container in running.values():
        assert container.status == "running" and container.image.id == images["1"]
        assert container.labels["clinicops.release"] == RELEASE["1"]
    assert clinic.releases()[RELEASE["1"]]["status"] == "active"
    assert not (clinic.app_root / "releases" / RELEASE["1"] / ".clinicops-unfinished").exists()
    record = clinic.audit()[-1]
    assert (record["procedure"], record["outcome"], record["details"]["release_id"]) == ("deploy", "ok", RELEASE["1"])
    assert clinic.unlocked()


def test_deploying_tag_2_replaces_the_containers_and_logs_both_releases(clinic, images):
    before = clinic.containers()[APP].id
    code, output = clinic.deploy("2")  # the inventory's containers: the app only, no worker
    assert code == 0, output
    assert clinic.current() == RELEASE["2"]
    served = clinic.served()
    assert (served["http"], served["version"], served["release"]) == (200, "2", RELEASE["2"])
    log = clinic.releases()
    assert (log[RELEASE["1"]]["status"], log[RELEASE["2"]]["status"]) == ("inactive", "active")
    assert list(log)[-2:] == [RELEASE["1"], RELEASE["2"]]
    running = clinic.containers()
    assert set(running) == {APP}, "the worker only release 1 had is removed"
    assert running[APP].id != before and running[APP].image.id == images["2"]
    assert running[APP].attrs["Config"]["Image"] == f"{REPOSITORY}:2"
    assert clinic.unlocked()


def test_deploying_the_same_release_again_changes_nothing(clinic):
    log = (clinic.app_root / "releases.json").read_bytes()
    container = clinic.containers()[APP]
    code, output = clinic.deploy("2")
    assert code == 0, output
    assert "is already active" in output, output
    assert (clinic.app_root / "releases.json").read_bytes() == log
    again = clinic.containers()[APP]
    assert (again.id, again.attrs["State"]["StartedAt"]) == (container.id, container.attrs["State"]["StartedAt"])
    assert clinic.audit()[-1]["details"]["deployed"] in (False, "False", "false")


def test_check_mode_deploy_and_rollback_change_nothing(clinic):
    log = (clinic.app_root / "releases.json").read_bytes()
    listing = sorted(path.name for path in (clinic.app_root / "releases").iterdir())
    container = clinic.containers()[APP]
    for code, output in (clinic.deploy("broken", "--check"), clinic.play("rollback.yml", "--check")):
        assert code == 0, output
    assert (clinic.app_root / "releases.json").read_bytes() == log
    assert sorted(path.name for path in (clinic.app_root / "releases").iterdir()) == listing
    assert clinic.current() == RELEASE["2"] and clinic.served()["release"] == RELEASE["2"]
    assert [c.id for c in clinic.containers().values()] == [container.id]
    assert clinic.unlocked()


def test_a_broken_tag_fails_its_health_gate_and_rolls_back_to_tag_2(clinic, images):
    code, output = clinic.deploy("broken", "-e", "deploy_health_deadline=10")
    assert code != 0
    assert (
        f"deploy of broken ({RELEASE['broken']}) failed its health gate on {HOST}: unhealthy: http app: HTTP 503 "
        f"(expected 200); rolled back automatically to {RELEASE['2']}, which is healthy" in output
    ), output
    assert clinic.current() == RELEASE["2"]
    served = clinic.served()
    assert (served["http"], served["version"], served["release"]) == (200, "2", RELEASE["2"])
    assert clinic.containers()[APP].image.id == images["2"]
    assert clinic.releases()[RELEASE["broken"]]["status"] == "bad"
    bad = json.loads((clinic.app_root / "releases" / RELEASE["broken"] / ".clinicops-bad").read_text())
    assert "health gate" in bad["reason"]
    record = clinic.audit()[-1]
    assert (record["procedure"], record["outcome"]) == ("deploy", "rolled_back")
    assert clinic.unlocked()


def test_an_operator_rollback_returns_to_tag_1_with_its_containers(clinic, images):
    code, output = clinic.play("rollback.yml")
    assert code == 0, output
    assert clinic.current() == RELEASE["1"]
    served = clinic.served()
    assert (served["http"], served["version"], served["release"]) == (200, "1", RELEASE["1"])
    running = clinic.containers()
    assert set(running) == {APP, WORKER}, "release 1's worker comes back with it"
    assert all(c.status == "running" and c.image.id == images["1"] for c in running.values())
    log = clinic.releases()
    assert (log[RELEASE["2"]]["status"], log[RELEASE["broken"]]["status"]) == ("rolled_back", "bad")
    record = clinic.audit()[-1]
    assert (record["procedure"], record["outcome"]) == ("rollback", "ok")
    assert (record["details"]["from"], record["details"]["to"]) == (RELEASE["2"], RELEASE["1"])
    assert clinic.unlocked()


def test_cleanup_removes_the_containers_and_images_it_built(clinic, docker_client):
    cleanup(docker_client)
    assert not ours(docker_client)
    assert not [tag for image in docker_client.images.list() for tag in image.tags if tag.startswith(REPOSITORY)]
