"""The log_archive module in a clinic container, through ansible-playbook over the Docker connection.

The test starts its own container from the lab's clinic image (``clinicops-logarch-<random>``,
removed at the end; the session lab is not used). In ``/var/log/clinicops-test`` it writes a live
log and rotated files with old modification times, one of them held open by a process that keeps
running in the container, and an audit log that must be kept. Then: check mode (reports, changes
nothing) -> apply (dated zstd archive that decompresses to the originals, the open and the protected
files untouched, the old file pruned) -> apply again (no change) -> check again (no change).

Docker gives root no CAP_SYS_PTRACE, so root cannot read the ``/proc/<pid>/fd`` of the services
running as other users (postgres, redis, www-data...): the first test shows that the module then
refuses and changes nothing; the services are stopped before the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from conftest import PLAYBOOKS, container_inventory, marked_result, ok_in, own_clinic_container, run_playbook

pytestmark = pytest.mark.lab

LOG_DIR = "/var/log/clinicops-test"
MARKER = "LOG_ARCHIVE "
DAY = 86400
# name -> age in days; content is made from the name so each file differs.
ROTATED = {
    "app.log.1": 2,
    "app.log.2": 40,  # older than max_age_days: pruned, never compressed
    "app.log.3.gz": 12,  # already compressed: moved as it is
    "api.log-20260101": 70 / 24,
    "held.log.1": 3,  # open in a running process
    "audit.log.1": 400,  # protected
}
MAKE_LOGS = """
import gzip, hashlib, json, os, sys, time
directory, ages = sys.argv[1], json.loads(sys.argv[2])
os.makedirs(directory)
now, sums = time.time(), {}
with open(os.path.join(directory, "app.log"), "w") as live:
    live.write("live line\\n")
for name, age in ages.items():
    text = "".join("2026-01-06T12:00:00 %s GET /patients/%d 200\\n" % (name, i) for i in range(40000)).encode()
    data = gzip.compress(text) if name.endswith(".gz") else text
    path = os.path.join(directory, name)
    with open(path, "wb") as handle:
        handle.write(data)
    os.utime(path, (now - age * 86400, now - age * 86400))
    sums[name] = hashlib.sha256(data).hexdigest()
print(json.dumps({"sums": sums, "now": now}))
"""
# Prints "open by <pid>" for each holder of argv[1], "unreadable <pid> <systemd unit>" for each process whose
# descriptors it cannot read.
FD_SCAN = """
import os, sys
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        targets = [os.readlink("/proc/%s/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%s/fd" % pid)]
    except FileNotFoundError:
        continue
    except PermissionError:
        print("unreadable", pid, open("/proc/%s/cgroup" % pid).read().strip().rsplit("/", 1)[1])
        continue
    if sys.argv[1] in targets:
        print("open by", pid)
"""
OPEN_BY = "open by "
HOLD_OPEN = f"exec 3>>{LOG_DIR}/held.log.1; exec sleep infinity"
TREE = f"find {LOG_DIR} -printf '%P %y %s %T@\\n' | sort; find {LOG_DIR} -type f -exec sha256sum {{}} + | sort"


@pytest.fixture(scope="module")
def container(docker_client) -> Iterator[object]:
    # Docker's default for root: no CAP_SYS_PTRACE (the lab's clinics get it), to prove the refusal without it.
    with own_clinic_container(
        docker_client,
        "clinicops-logarch",
        hostname="logarch",
        labels={"clinicops.itest": "log-archive"},
        cap_add=["SYS_ADMIN"],
    ) as started:
        yield started


@pytest.fixture(scope="module")
def logs(container) -> dict:
    """The rotated logs written, ``held.log.1`` open in a running process: their sha256 and the time they were made."""
    made = json.loads(ok_in(container, ["python3", "-c", MAKE_LOGS, LOG_DIR, json.dumps(ROTATED)]))
    container.exec_run(["sh", "-c", HOLD_OPEN], detach=True)
    deadline = time.monotonic() + 30
    while OPEN_BY not in ok_in(container, ["python3", "-c", FD_SCAN, f"{LOG_DIR}/held.log.1"]):
        assert time.monotonic() < deadline, "the process holding held.log.1 open did not start"
    return made


@pytest.fixture(scope="module")
def quiet(container, logs) -> None:
    """Only root's processes left: Docker gives root no CAP_SYS_PTRACE, so it cannot read other users' /proc/*/fd."""
    scan = ok_in(container, ["python3", "-c", FD_SCAN, f"{LOG_DIR}/held.log.1"])
    units = {line.split()[2] for line in scan.splitlines() if line.startswith("unreadable ")}
    assert units, f"every process's descriptors were readable already:\n{scan}"
    sockets = [unit.replace(".service", ".socket") for unit in units if unit == "dbus.service"]  # would restart it
    ok_in(container, ["systemctl", "stop", *sockets, *sorted(units)])
    assert "unreadable" not in ok_in(container, ["python3", "-c", FD_SCAN, f"{LOG_DIR}/held.log.1"])


@pytest.fixture(scope="module")
def run(container, tmp_path_factory):
    """Run tests/integration/playbooks/log_archive.yml in the container: (exit code, output, the module's result)."""
    inventory = container_inventory(
        tmp_path_factory.mktemp("log_archive") / "hosts.yml", "clinic", "logarch", container
    )

    def play(*args: str, **extra: object) -> tuple[int, str, dict]:
        done = run_playbook(inventory, PLAYBOOKS / "log_archive.yml", *args, extra={"log_dir": LOG_DIR, **extra})
        result = marked_result(done.stdout, MARKER)
        assert result is not None, f"no result in the output:\n{done.stdout}\n{done.stderr}"
        return done.returncode, done.stdout, result

    return play


def month(made: dict, age_days: float) -> str:
    return time.strftime("%Y/%m", time.gmtime(made["now"] - age_days * DAY))


OPTIONS = {"max_age_days": 30, "protect": ["audit*"], "checksums": True}


def test_open_files_that_cannot_be_read_make_it_refuse_and_change_nothing(container, logs, run):
    tree = ok_in(container, ["sh", "-c", TREE])
    _code, output, refused = run(**OPTIONS)
    assert refused["failed"], output
    assert refused["msg"].startswith(f"log archive of {LOG_DIR} refused: cannot read the open files of process ")
    assert "Permission denied; reading them needs root with CAP_SYS_PTRACE" in refused["msg"]
    assert refused["msg"].endswith("nothing was changed")
    assert ok_in(container, ["sh", "-c", TREE]) == tree


def test_rotated_logs_are_archived_dated_and_pruned_never_the_open_or_protected_ones(container, logs, quiet, run):
    tree = ok_in(container, ["sh", "-c", TREE])

    code, output, predicted = run("--check", **OPTIONS)
    assert code == 0 and not predicted.get("failed"), output
    assert predicted["changed"] and predicted["compression"] == "zstd"
    assert ok_in(container, ["sh", "-c", TREE]) == tree  # check mode changed nothing

    code, output, done = run(**OPTIONS)
    assert code == 0 and not done.get("failed"), output
    archive = f"{LOG_DIR}/archive"
    assert {item["src"]: item["dest"] for item in done["compressed"]} == {
        f"{LOG_DIR}/api.log-20260101": f"{archive}/{month(logs, ROTATED['api.log-20260101'])}/api.log-20260101.zst",
        f"{LOG_DIR}/app.log.1": f"{archive}/{month(logs, 2)}/app.log.1.zst",
    }
    assert [item["dest"] for item in done["moved"]] == [f"{archive}/{month(logs, 12)}/app.log.3.gz"]
    assert done["pruned"] == [{"path": f"{LOG_DIR}/app.log.2", "bytes": done["pruned"][0]["bytes"], "reason": "age"}]
    assert done["skipped_open"] == [f"{LOG_DIR}/held.log.1"] and done["protected"] == 1
    assert [item["dest"] for item in done["compressed"]] == [item["dest"] for item in predicted["compressed"]]

    for item in done["compressed"]:  # zstd files decompress to the original content
        name = item["src"].rsplit("/", 1)[1]
        restored = ok_in(container, ["sh", "-c", f"zstd -q -d -c {item['dest']} | sha256sum"]).split()[0]
        assert restored == logs["sums"][name]
    moved = done["moved"][0]["dest"]
    assert ok_in(container, ["sha256sum", moved]).split()[0] == logs["sums"]["app.log.3.gz"]
    checked = ok_in(container, ["sh", "-c", f"cd {archive}/{month(logs, 2)} && sha256sum -c app.log.1.zst.sha256"])
    assert checked.strip() == "app.log.1.zst: OK"

    for name in ("held.log.1", "audit.log.1"):  # open and protected: untouched, still where they were
        assert ok_in(container, ["sha256sum", f"{LOG_DIR}/{name}"]).split()[0] == logs["sums"][name]
    assert ok_in(container, ["cat", f"{LOG_DIR}/app.log"]) == "live line\n"
    remaining = set(ok_in(container, ["find", LOG_DIR, "-maxdepth", "1", "-type", "f", "-printf", "%f\n"]).split())
    assert remaining == {"app.log", "held.log.1", "audit.log.1"}  # app.log.2 pruned, the others archived
    assert not ok_in(container, ["find", archive, "-name", "app.log.2*"]).strip()

    settled = ok_in(container, ["sh", "-c", TREE])
    for args in ((), ("--check",)):
        code, output, again = run(*args, **OPTIONS)
        assert code == 0 and not again["changed"], output
        assert again["compressed"] == again["moved"] == again["pruned"] == []
        assert again["skipped_open"] == [f"{LOG_DIR}/held.log.1"] and again["kept"] == 3
        assert ok_in(container, ["sh", "-c", TREE]) == settled


def test_a_system_directory_is_refused_and_nothing_changes(container, logs, run):
    tree = ok_in(container, ["sh", "-c", TREE])
    _code, output, refused = run(log_dir="/var")
    assert refused["failed"], output
    assert refused["msg"].startswith("log archive of /var refused: path: /var is a system directory")
    assert refused["msg"].endswith("nothing was changed")
    assert ok_in(container, ["sh", "-c", TREE]) == tree
