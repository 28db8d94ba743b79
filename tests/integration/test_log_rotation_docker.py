"""Docker's json-file log limits of the log_rotation role, against a real dockerd inside a clinic container.

The test starts its own container from the lab's clinic image (``clinicops-ldk-<random>``, removed at
the end; the session lab is not used). First without Docker: reported not installed, nothing written.
Then this machine's own Docker binaries (dockerd, containerd, runc, the CLI) are copied in with a
docker.service unit, vfs storage and no bridge/iptables (a container in a container), a tiny image is
imported and a container created before the limits. The role's docker tasks run through
ansible-playbook over the Docker connection, at fixed instants (``clinicops_now``) outside and inside
the clinic's weekly window: check mode (predicts, writes nothing) -> outside (daemon.json merged, other
keys kept, dockerd not restarted, restart pending with the next opening) -> again outside (no change,
still pending) -> inside (dockerd restarted, a new container gets the limits, the old one is listed
as stale) -> again inside (nothing to do) -> another log driver left alone -> invalid JSON refused
with the file untouched.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, container_inventory, marked_result, ok_in, own_clinic_container, run_in, run_playbook

pytestmark = pytest.mark.lab

HOST = "ldk"
DAEMON_JSON = "/etc/docker/daemon.json"
MARKER = "/var/lib/clinicops/docker-restart-pending"
REPORT = "DOCKER_REPORT "
# This machine's Docker (Debian's docker.io), copied into the clinic: source -> path in the clinic.
BINARIES = {
    "/usr/sbin/dockerd": "/usr/bin/dockerd",
    "/usr/bin/containerd": "/usr/bin/containerd",
    "/usr/bin/containerd-shim-runc-v2": "/usr/bin/containerd-shim-runc-v2",
    "/usr/sbin/runc": "/usr/bin/runc",
    "/usr/bin/docker": "/usr/bin/docker",
}
UNIT = """[Unit]
Description=Docker Application Container Engine (test copy)

[Service]
Type=notify
ExecStart=/usr/bin/dockerd -H unix:///run/docker.sock
ExecReload=/bin/kill -s HUP $MAINPID
Delegate=yes
KillMode=process
TimeoutStartSec=120

[Install]
WantedBy=multi-user.target
"""
# A container in a container: vfs (no overlay on overlay), no bridge and no iptables (none in the image).
# The test's own keys, which the role must keep.
BASE_CONFIG = {"storage-driver": "vfs", "iptables": False, "ip-forward": False, "bridge": "none", "debug": False}
LIMITS = {"max-size": "50m", "max-file": "5"}
TIMEZONE = "Africa/Kinshasa"
WINDOWS = [
    {
        "name": "weekly",
        "rrule": "FREQ=WEEKLY;BYDAY=SU",
        "start": "02:00",
        "duration": "2h",
        "cutoff": "15m",
        "procedures": ["rotate_logs"],
    }
]
OUTSIDE = "2026-11-26T12:00:00+01:00"  # a Thursday
INSIDE = "2026-11-29T02:30:00+01:00"  # Sunday, in the weekly window
NEXT_OPENING = "2026-11-29T02:00:00+01:00"
PLAYBOOK = """
- name: Docker's log limits of the log_rotation role
  hosts: clinics
  become: true
  gather_facts: false
  tasks:
    - name: Run the role's docker tasks
      ansible.builtin.include_role:
        name: clinicops.runbook.log_rotation
        tasks_from: docker

    - name: Print the report
      ansible.builtin.debug:
        msg: "DOCKER_REPORT {{ __log_rotation_docker_report | to_json }}"
"""


def tar_of(files: dict[str, bytes | Path], mode: int = 0o755) -> bytes:
    """A tar archive of {path in the archive: content or a local file} (for put_archive at /)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, source in files.items():
            data = source.read_bytes() if isinstance(source, Path) else source
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clinic(docker_client) -> Iterator[object]:
    with own_clinic_container(
        docker_client, "clinicops-ldk", hostname=HOST, labels={"clinicops.itest": "log-rotation-docker"}
    ) as started:
        yield started


@pytest.fixture(scope="module")
def play(clinic, tmp_path_factory):
    """Run the role's docker tasks on the clinic at an instant: (exit code, output, the report or None)."""
    workdir = tmp_path_factory.mktemp("log_rotation_docker")
    variables = {"clinic_timezone": TIMEZONE, "clinic_maintenance_windows": WINDOWS}
    inventory = container_inventory(workdir / "hosts.yml", "clinics", HOST, clinic, **variables)
    playbook = workdir / "docker_limits.yml"
    playbook.write_text(PLAYBOOK)

    def run(*args: str, now: str = OUTSIDE, book: Path = playbook, **extra: object) -> tuple[int, str, dict | None]:
        done = run_playbook(inventory, book, *args, extra={"clinicops_now": now, **extra}, timeout=600)
        return done.returncode, done.stdout + done.stderr, marked_result(done.stdout, REPORT)

    return run


def read(container, argv: list[str]) -> str:
    """The output of a command that always prints something (the Docker API loses a short exec's output at times)."""
    for _attempt in range(5):
        out = ok_in(container, argv)
        if out.strip():
            return out
    raise AssertionError(f"{argv} printed nothing in {container.name}")


def checksum(container) -> str:
    return read(container, ["sha256sum", DAEMON_JSON])


def changed_count(output: str) -> int:
    found = re.search(rf"^{HOST}\s*:\s*ok=\d+\s+changed=(\d+)", output, re.M)
    assert found, output
    return int(found.group(1))


def started_at(clinic) -> str:
    """When docker.service last became active (monotonic µs): changes on every restart."""
    return read(clinic, ["systemctl", "show", "docker.service", "-p", "ActiveEnterTimestampMonotonic"]).strip()


def daemon_json(clinic) -> dict:
    return json.loads(read(clinic, ["cat", DAEMON_JSON]))


def log_config(clinic, container: str) -> dict:
    return json.loads(read(clinic, ["docker", "inspect", "--format", "{{json .HostConfig.LogConfig}}", container]))


def test_a_clinic_without_docker_is_reported_and_nothing_is_written(clinic, play):
    code, output, report = play()
    assert code == 0, output
    assert report == {"installed": False}
    assert run_in(clinic, ["test", "-e", "/etc/docker"])[0] == 1
    assert changed_count(output) == 0


@pytest.fixture(scope="module")
def docker(clinic) -> object:
    """dockerd running in the clinic under systemd, with an image and a container created before the limits."""
    missing = [source for source in BINARIES if not Path(source).exists()]
    if missing:
        pytest.skip(f"this machine has no {', '.join(missing)} to copy into the clinic")
    clinic.put_archive("/", tar_of({target: Path(source) for source, target in BINARIES.items()}))
    config = json.dumps(BASE_CONFIG, indent=4).encode()
    clinic.put_archive("/", tar_of({"/etc/systemd/system/docker.service": UNIT.encode()}, mode=0o644))
    clinic.put_archive("/", tar_of({DAEMON_JSON: config}, mode=0o644))
    ok_in(clinic, ["systemctl", "daemon-reload"])
    ok_in(clinic, ["systemctl", "start", "docker.service"])  # Type=notify: returns once dockerd is ready
    # One text file: nothing runs in it, `docker create` is what takes the daemon's log options.
    ok_in(clinic, ["sh", "-c", "mkdir -p /tmp/tiny && echo tiny > /tmp/tiny/README"])
    ok_in(clinic, ["sh", "-c", "tar -C /tmp/tiny -c . | docker import - clinicops-ldk/tiny:1"])
    ok_in(clinic, ["docker", "create", "--name", "before", "clinicops-ldk/tiny:1", "/README"])
    assert log_config(clinic, "before") == {"Type": "json-file", "Config": {}}
    return clinic


def test_check_mode_predicts_the_change_and_writes_nothing(docker, play):
    before, since = checksum(docker), started_at(docker)
    code, output, report = play("--check")
    assert code == 0, output
    assert report["installed"] and report["changed"] and report["restart"] == "pending", report
    assert checksum(docker) == before
    assert run_in(docker, ["test", "-e", MARKER])[0] == 1
    assert started_at(docker) == since


def test_outside_the_window_the_file_is_merged_and_the_restart_is_pending(docker, play):
    since = started_at(docker)
    code, output, report = play()
    assert code == 0, output
    assert daemon_json(docker) == {**BASE_CONFIG, "log-driver": "json-file", "log-opts": LIMITS}
    assert ok_in(docker, ["stat", "-c", "%U %G %a", DAEMON_JSON]).split() == ["root", "root", "644"]
    backups = ok_in(docker, ["sh", "-c", f"ls {DAEMON_JSON}.*~"]).split()
    assert len(backups) == 1 and json.loads(ok_in(docker, ["cat", backups[0]])) == BASE_CONFIG
    assert run_in(docker, ["test", "-f", MARKER])[0] == 0
    assert started_at(docker) == since  # dockerd was not restarted
    assert report["installed"] and report["changed"] and report["daemon"] == "active"
    assert report["log_driver"] == "json-file" and report["limits_applied"]
    assert report["restart"] == "pending"
    assert report["restart_reason"].startswith("daemon.json changed; skipped: "), report
    assert report["next_opening"] == NEXT_OPENING
    assert [item["name"] for item in report["stale_containers"]] == ["before"]
    stale = report["stale_containers"][0]
    assert stale["image"] == "clinicops-ldk/tiny:1" and stale["log_opts"] == {} and stale["created"]
    assert "restart PENDING" in output


def test_again_outside_nothing_changes_and_the_restart_stays_pending(docker, play):
    before, since = checksum(docker), started_at(docker)
    code, output, report = play()
    assert code == 0, output
    assert changed_count(output) == 0
    assert not report["changed"] and report["restart"] == "pending"
    assert f"daemon.json changed in an earlier run ({MARKER})" in report["restart_reason"]
    assert report["next_opening"] == NEXT_OPENING
    assert checksum(docker) == before and started_at(docker) == since


def test_inside_the_window_dockerd_restarts_and_new_containers_get_the_limits(docker, play):
    since = started_at(docker)
    code, output, report = play(now=INSIDE)
    assert code == 0, output
    assert started_at(docker) != since
    assert ok_in(docker, ["systemctl", "is-active", "docker.service"]).strip() == "active"
    assert run_in(docker, ["test", "-e", MARKER])[0] == 1
    assert not report["changed"] and report["restart"] == "done" and report["next_opening"] is None, report
    # The container created before keeps its options until it is re-created; it is still listed.
    assert [item["name"] for item in report["stale_containers"]] == ["before"]
    ok_in(docker, ["docker", "create", "--name", "after", "clinicops-ldk/tiny:1", "/README"])
    assert log_config(docker, "after") == {"Type": "json-file", "Config": LIMITS}
    assert log_config(docker, "before") == {"Type": "json-file", "Config": {}}


def test_again_inside_there_is_nothing_to_do(docker, play):
    before, since = checksum(docker), started_at(docker)
    for args in ((), ("--check",)):
        code, output, report = play(*args, now=INSIDE)
        assert code == 0, output
        assert changed_count(output) == 0
        assert not report["changed"] and report["restart"] == "not needed", report
        assert [item["name"] for item in report["stale_containers"]] == ["before"]  # "after" has the limits
        assert checksum(docker) == before and started_at(docker) == since


def test_the_collections_playbook_runs_the_docker_step_under_the_clinic_lock(docker, play):
    before, since = checksum(docker), started_at(docker)
    book = ROOT / "playbooks" / "rotate_logs.yml"
    code, output, _report = play(now=INSIDE, book=book, log_rotation_archive=False, log_rotation_audit_ship=False)
    assert code == 0, output
    assert "TASK [clinicops.runbook.log_rotation : Keep Docker's log limits for the report]" in output
    assert checksum(docker) == before and started_at(docker) == since
    trail = [json.loads(line) for line in ok_in(docker, ["cat", "/var/log/clinicops/audit.jsonl"]).splitlines()]
    assert [record["procedure"] for record in trail[-2:]] == ["rotate_logs", "rotate_logs"], trail[-2:]


def test_another_log_driver_is_left_alone(docker, play):
    config = {**BASE_CONFIG, "log-driver": "local", "log-opts": {"max-size": "20m"}}
    docker.put_archive("/", tar_of({DAEMON_JSON: json.dumps(config).encode()}, mode=0o644))
    ok_in(docker, ["touch", "-d", "2020-01-01", DAEMON_JSON])  # older than dockerd: nothing to restart for
    before = checksum(docker)
    code, output, report = play(now=INSIDE)
    assert code == 0, output
    assert changed_count(output) == 0
    assert checksum(docker) == before
    assert report["log_driver"] == "local" and not report["limits_applied"] and not report["changed"]
    assert report["limits_reason"].startswith(f"log-driver local is configured in {DAEMON_JSON}; it was left as it is")
    assert report["stale_containers"] == [] and report["restart"] == "not needed"


def test_invalid_json_is_refused_and_the_file_left_untouched(docker, play):
    broken = b'{"storage-driver": "vfs",\n  "log-driver": json-file}\n'
    docker.put_archive("/", tar_of({DAEMON_JSON: broken}, mode=0o644))
    before, since = checksum(docker), started_at(docker)
    code, output, report = play(now=INSIDE)
    assert code != 0 and report is None, output
    message = " ".join(output.split())
    assert f"Docker's log limits on {HOST} are refused: {DAEMON_JSON} is not valid JSON (" in message, output
    assert f"{DAEMON_JSON} was left untouched and dockerd was not restarted" in message
    assert checksum(docker) == before and started_at(docker) == since
