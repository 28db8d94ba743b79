"""Log rotation on a real clinic: the collection's ``rotate_logs.yml`` run as an operator (or AWX) runs it.

The tests run in file order on one lab clinic: a dry run that writes nothing, the install, a second
run that changes nothing, forced rotations (with the real clinic app writing numbered lines while its
log is rotated under it, and the audit trail), refusals of bad policies with nothing written, and
exclusive removal. The clinic's logrotate and journald configuration is put back to the distribution's
first, so a kept lab gives the same results on every run.
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
import yaml
from conftest import COLLECTION_PLAYBOOKS, ansible_playbook, ok_in, run_in, run_report

from clinicops.project import collections_root, project_root

sys.path.insert(0, str(collections_root()))
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.audit_chain import (
    verify_lines,
    verify_segment,
)

CLINIC = "lubumbashi"
DROPINS = "/etc/logrotate.d"
JOURNALD = "/etc/systemd/journald.conf.d/clinicops.conf"
APP_LOG = "/var/log/clinic-app/app.log"
TRAIL = "/var/log/clinicops/audit.jsonl"
AUDIT_ARCHIVE = "/var/log/clinicops/archive"
MANIFEST = "/var/lib/clinicops/audit-archive.json"
REPOSITORY = "/var/backups/clinicops/repo"
DEFAULTS = yaml.safe_load((project_root() / "roles/log_rotation/defaults/main.yml").read_text(encoding="utf-8"))
DEFAULT_ENTRIES = DEFAULTS["log_rotation_entries"]
# The suffix the profiles give rotated files: date and time of day, then .gz once compressed.
ROTATED = r"-\d{8}-\d{6}(\.gz)?"
# The tasks of procedure_guard, which act on every run by design (lock taken and released, audit records).
GUARD_TASKS = {
    "Take the clinic lock",
    "Record the start on the clinic",
    "Record the outcome on the clinic",
    "Release the clinic lock",
}
# Requests the writer sends to the app, each logged with its number; the rotations happen meanwhile.
REQUESTS = 4000
WRITER = f"""
import pathlib, urllib.request
for number in range(1, {REQUESTS} + 1):
    urllib.request.urlopen(f"http://127.0.0.1:8000/health/live?n={{number}}").read()
pathlib.Path("/run/lr-writer-done").write_text("done")
"""


def rotate_logs(*args: str, extra: dict | None = None) -> tuple[int, str]:
    """Run playbooks/rotate_logs.yml on the clinic: (exit code, output)."""
    extra_args = ("-e", json.dumps(extra)) if extra else ()
    run = ansible_playbook(
        COLLECTION_PLAYBOOKS / "rotate_logs.yml", "--limit", CLINIC, *extra_args, *args,
        env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"},
    )  # fmt: skip
    output, _ = run.communicate(timeout=900)
    return run.returncode, output


def changed_tasks(output: str) -> set[str]:
    """The names of the tasks that reported a change on the clinic."""
    changed, task = set(), ""
    for line in output.splitlines():
        header = re.match(r"^(?:TASK|RUNNING HANDLER) \[(?:[\w.]+ : )?(.*?)\] \*+$", line)
        if header:
            task = header.group(1)
        elif line.startswith(f"changed: [{CLINIC}]"):
            changed.add(task)
    return changed


def listing(container, directory: str) -> dict[str, str]:
    """Every file of a directory with its checksum."""
    out = ok_in(container, ["find", directory, "-maxdepth", "1", "-type", "f", "-exec", "sha256sum", "{}", "+"])
    return {path: digest for digest, path in (line.split(maxsplit=1) for line in out.splitlines())}


def stat(container, path: str) -> tuple[str, str, str]:
    """(owner, group, octal mode) of a file."""
    owner, group, mode = ok_in(container, ["stat", "-c", "%U %G %a", path]).split()
    return owner, group, mode


def files_in(container, directory: str) -> list[str]:
    return sorted(ok_in(container, ["ls", "-1", directory]).split())


def next_second(previous: int) -> None:
    """Wait for the clock to pass ``previous`` (a rotation's second): the suffix has a one-second resolution."""
    while int(time.time()) <= previous:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def clinic(clinics):
    """The clinic, with the distribution's logrotate and journald configuration back in place."""
    container = clinics[CLINIC]
    script = (
        f"rm -f {DROPINS}/clinicops-* {DROPINS}/zz-foreign {JOURNALD}; "
        f"if [ -e {DROPINS}/nginx.disabled ]; then mv -f {DROPINS}/nginx.disabled {DROPINS}/nginx; fi; "
        # Rotated and archived files of an earlier run on a kept lab would be archived by a later run here.
        "rm -rf /var/log/clinic-app/app.log-* /var/log/clinic-app/archive /var/log/nginx/*.log-* "
        f"/var/log/nginx/archive /var/log/clinicops/audit.jsonl-* {AUDIT_ARCHIVE} {MANIFEST}"
    )
    ok_in(container, ["sh", "-c", script])
    return container


def test_check_mode_reports_the_policies_and_writes_nothing(clinic):
    before = listing(clinic, DROPINS)
    code, output = rotate_logs("--check")
    assert code == 0, output
    changed = changed_tasks(output)
    assert {"Install each entry's drop-in", "Disable the distribution drop-ins an entry replaces"} <= changed, changed
    assert listing(clinic, DROPINS) == before
    assert run_in(clinic, ["test", "-e", JOURNALD])[0] == 1


def test_apply_installs_one_drop_in_per_entry_and_journald_limits(clinic):
    code, output = rotate_logs()
    assert code == 0, output
    names = files_in(clinic, DROPINS)
    assert {"clinicops-clinic-app", "clinicops-nginx", "clinicops-audit", "nginx.disabled"} <= set(names)
    assert "nginx" not in names  # Debian's own nginx drop-in would rotate the same files a second time
    app = ok_in(clinic, ["cat", f"{DROPINS}/clinicops-clinic-app"])
    # The app's log directory belongs to the app user (clinic, 0750): rotated as that user.
    for directive in ("create", "sharedscripts", "dateext", "dateformat -%Y%m%d-%H%M%S", "su clinic clinic"):
        assert re.search(rf"^\s+{re.escape(directive)}$", app, re.M), (directive, app)
    assert "copytruncate" not in app
    assert "systemctl kill --kill-whom=main --signal=SIGHUP clinic-app.service" in app
    audit = ok_in(clinic, ["cat", f"{DROPINS}/clinicops-audit"])
    assert "maxage" not in audit and "copytruncate" not in audit and "su " not in audit
    assert re.search(r"^\s+rotate 100000$", audit, re.M) and re.search(r"^\s+delaycompress$", audit, re.M)
    journald = ok_in(clinic, ["cat", JOURNALD])
    assert {"SystemMaxUse=500M", "SystemKeepFree=1G", "MaxRetentionSec=1month"} <= set(journald.splitlines())
    # journald runs with the new limits (it was restarted): its own view of its configuration.
    assert ok_in(clinic, ["systemctl", "is-active", "systemd-journald"]).strip() == "active"
    assert "Restart journald" in changed_tasks(output)
    report = run_report(output)[CLINIC]["log_rotation"]
    assert report["entries"] == ["clinic-app", "nginx", "audit"]
    assert sorted(report["changed"]) == ["audit", "clinic-app", "nginx"]
    assert report["replaced"] == [f"{DROPINS}/nginx"]
    assert report["disk_pressure"] is False and report["largest_consumers"] == []
    # The archive step ran on each log directory (the audit one too); nothing was rotated yet to archive.
    archived = [line.split(":")[0] for line in report["archive"]["logs"] + report["archive"]["audit"]]
    assert "log archive of /var/log/clinic-app" in archived and "log archive of /var/log/nginx" in archived, archived
    # The whole configuration passes logrotate's own dry run.
    code, dry = run_in(clinic, ["logrotate", "--debug", "/etc/logrotate.conf"])
    assert code == 0 and not re.search(r"^error:", dry, re.M), dry


def test_second_run_changes_nothing_but_its_lock_and_audit_records(clinic):
    code, output = rotate_logs()
    assert code == 0, output
    assert changed_tasks(output) <= GUARD_TASKS, changed_tasks(output)
    code, output = rotate_logs("--check")
    assert code == 0, output
    assert changed_tasks(output) <= GUARD_TASKS, changed_tasks(output)


def test_disk_pressure_is_reported_with_the_largest_consumers(clinic):
    code, output = rotate_logs(extra={"log_rotation_free_threshold_percent": 100})
    assert code == 0, output  # a report, not a failure
    report = run_report(output)[CLINIC]["log_rotation"]
    assert report["disk_pressure"] is True
    assert "/var/log" in report["low_free_space"]
    largest = report["largest_consumers"]
    assert 1 <= len(largest) <= 5
    assert [item["bytes"] for item in largest] == sorted((item["bytes"] for item in largest), reverse=True)
    du = {
        path: int(size)
        for size, path in (
            line.split("\t") for line in ok_in(clinic, ["du", "-b", "-a", "-d", "1", "-x", "/var/log"]).splitlines()
        )
    }
    biggest = max((size, path) for path, size in du.items() if path != "/var/log")
    assert largest[0]["path"] == biggest[1]


def test_app_log_rotated_while_the_app_writes_loses_no_line(clinic):
    owner_before = stat(clinic, APP_LOG)
    # Only this test's lines: rotated files of earlier runs go, the live file is emptied in place.
    ok_in(clinic, ["sh", "-c", f"rm -f /run/lr-writer-done {APP_LOG}-*; truncate -s 0 {APP_LOG}"])
    clinic.exec_run(["python3", "-c", WRITER], detach=True)
    # The writer is running once its first numbered lines are in the log.
    deadline = time.monotonic() + 60
    while run_in(clinic, ["grep", "-q", "live?n=", APP_LOG])[0] != 0:
        assert time.monotonic() < deadline, "the app logged none of the writer's requests"
        time.sleep(0.05)
    rotations, last = 0, 0
    while run_in(clinic, ["test", "-e", "/run/lr-writer-done"])[0] != 0 and rotations < 3:
        next_second(last)
        code, out = run_in(clinic, ["logrotate", "--force", f"{DROPINS}/clinicops-clinic-app"])
        assert code == 0, out
        last, rotations = int(time.time()), rotations + 1
    assert rotations >= 2, f"the writer finished after {rotations} rotation(s): raise REQUESTS"
    deadline = time.monotonic() + 300
    while run_in(clinic, ["test", "-e", "/run/lr-writer-done"])[0] != 0:
        assert time.monotonic() < deadline, "the writer did not finish"
        time.sleep(0.2)
    names = files_in(clinic, "/var/log/clinic-app")
    rotated = [name for name in names if name.startswith("app.log-")]  # not the live log, not archive/
    assert len(rotated) >= rotations and all(re.fullmatch(rf"app\.log{ROTATED}", name) for name in rotated), names
    # delaycompress: the newest rotated file stays plain, the older ones are compressed.
    newest = max(rotated, key=lambda name: name.removesuffix(".gz"))
    assert not newest.endswith(".gz") and any(name.endswith(".gz") for name in rotated), rotated
    # create: the new file has the owner and mode of the one it replaced, and so do the rotated ones.
    assert stat(clinic, APP_LOG) == owner_before
    for name in rotated:
        assert stat(clinic, f"/var/log/clinic-app/{name}")[:2] == owner_before[:2], name
    text = ok_in(clinic, ["sh", "-c", "cd /var/log/clinic-app && zcat -f app.log*"])
    numbers = [int(found) for found in re.findall(r"GET /health/live\?n=(\d+) ", text)]
    counts = {number: numbers.count(number) for number in set(numbers)}
    assert sorted(counts) == list(range(1, REQUESTS + 1)), "lines were lost"
    assert {number for number, count in counts.items() if count != 1} == set(), "lines were duplicated"


def test_audit_trail_rotates_whole_and_root_only(clinic):
    before = ok_in(clinic, ["cat", TRAIL])
    assert before.strip()
    code, out = run_in(clinic, ["logrotate", "--force", f"{DROPINS}/clinicops-audit"])
    assert code == 0, out
    rotated = [name for name in files_in(clinic, "/var/log/clinicops") if name.startswith("audit.jsonl-")]
    newest = max(rotated, key=lambda name: name.removesuffix(".gz"))
    assert re.fullmatch(r"audit\.jsonl-\d{8}-\d{6}", newest), rotated
    assert ok_in(clinic, ["cat", f"/var/log/clinicops/{newest}"]) == before  # whole, not compressed yet
    assert stat(clinic, f"/var/log/clinicops/{newest}") == ("root", "root", "600")
    assert stat(clinic, TRAIL) == ("root", "root", "600")
    ok, count, problem = verify_lines(before.split("\n"), prev=None)
    assert ok and count > 0, problem
    # The next procedure's records go to the new file, whose chain continues from the rotated file's last record.
    code, output = rotate_logs()
    assert code == 0, output
    ok, count, problem, first_prev, _last = verify_segment(ok_in(clinic, ["cat", TRAIL]).split("\n"))
    assert ok and count >= 2, problem
    assert first_prev == json.loads(before.strip().splitlines()[-1])["hash"]


def restic_in(container, *args: str) -> str:
    """restic on the clinic's backup repository (its own password file)."""
    env = ["env", f"RESTIC_REPOSITORY={REPOSITORY}", "RESTIC_PASSWORD_FILE=/etc/clinicops/restic-password",
           "RESTIC_CACHE_DIR=/var/cache/clinicops/restic"]  # fmt: skip
    return ok_in(container, [*env, "restic", *args])


def archived_audit(container) -> list[str]:
    """The archived audit files (without their .sha256 side files)."""
    out = ok_in(container, ["find", AUDIT_ARCHIVE, "-type", "f", "!", "-name", "*.sha256"])
    return sorted(out.split())


def test_audit_files_reach_the_repository_verified_before_any_local_deletion(clinic):
    """The audit path end to end: rotated -> compressed with a checksum -> copied and read back -> deleted only
    after the copy is verified and the local retention has passed; what the repository holds still verifies."""
    ok_in(clinic, ["rm", "-rf", AUDIT_ARCHIVE, MANIFEST])
    code, out = run_in(clinic, ["logrotate", "--force", f"{DROPINS}/clinicops-audit"])
    assert code == 0, out
    rotated = [name for name in files_in(clinic, "/var/log/clinicops") if re.fullmatch(r"audit\.jsonl-.+", name)]
    assert rotated

    # Not shipped (log_rotation_audit_ship false): archived and checksummed, but never deleted, however old.
    code, output = rotate_logs(extra={"log_rotation_archive_min_age": 0, "log_rotation_audit_ship": False})
    assert code == 0, output
    files = archived_audit(clinic)
    assert len(files) == len(rotated) and all(re.search(r"/\d{4}/\d{2}/audit\.jsonl-", path) for path in files), files
    for path in files:
        ok_in(clinic, ["sh", "-c", f"cd {path.rsplit('/', 1)[0]} && sha256sum -c {path.rsplit('/', 1)[1]}.sha256"])
        ok_in(clinic, ["touch", "-d", "200 days ago", path])
    assert [name for name in files_in(clinic, "/var/log/clinicops") if name.startswith("audit.jsonl-")] == []
    code, output = rotate_logs(extra={"log_rotation_audit_ship": False})
    assert code == 0, output
    assert archived_audit(clinic) == files  # no verified copy: nothing deleted

    # Shipped: each file is copied into the repository and read back; the 200-day-old ones go only now.
    code, output = rotate_logs()
    assert code == 0, output
    archive = run_report(output)[CLINIC]["log_rotation"]["archive"]
    assert sorted(archive["audit_shipped"]) == files and sorted(archive["audit_verified"]) == files, archive
    assert sorted(archive["audit_deleted"]) == files, archive
    assert archived_audit(clinic) == []
    snapshots = json.loads(restic_in(clinic, "snapshots", "--json", "--tag", "kind=audit-log"))
    held = [snapshot for snapshot in snapshots if snapshot["id"].startswith(archive["audit_snapshots"][0])]
    assert held and sorted(held[0]["paths"]) == files, snapshots
    # What the repository holds is the whole trail: restored, decompressed, it verifies record by record.
    restored = "/tmp/lr-audit-restored"
    ok_in(clinic, ["rm", "-rf", restored])
    restic_in(clinic, "restore", held[0]["id"], "--target", restored)
    for path in files:
        text = ok_in(clinic, ["sh", "-c", f"zstd -dc {restored}{path} 2>/dev/null || zcat -f {restored}{path}"])
        ok, count, problem = verify_lines(text.split("\n"), prev=None)
        assert ok and count > 0, (path, problem)
    manifest = json.loads(ok_in(clinic, ["cat", MANIFEST]))
    assert all(manifest["files"][path]["snapshot"] == held[0]["id"] and "deleted_at" in manifest["files"][path]
               for path in files)  # fmt: skip
    assert stat(clinic, MANIFEST)[2] == "600"


def test_a_young_audit_file_stays_on_the_clinic_after_its_copy(clinic):
    code, out = run_in(clinic, ["logrotate", "--force", f"{DROPINS}/clinicops-audit"])
    assert code == 0, out
    code, output = rotate_logs(extra={"log_rotation_archive_min_age": 0})
    assert code == 0, output
    archive = run_report(output)[CLINIC]["log_rotation"]["archive"]
    kept = archived_audit(clinic)
    assert kept and sorted(archive["audit_verified"]) == kept and archive["audit_deleted"] == [], archive
    # A second run copies nothing again.
    code, output = rotate_logs()
    assert code == 0, output
    again = run_report(output)[CLINIC]["log_rotation"]["archive"]
    assert again["audit_shipped"] == [] and again["audit_deleted"] == [] and archived_audit(clinic) == kept


def test_app_logs_are_archived_but_a_rotated_file_still_open_is_not_touched(clinic):
    ok_in(clinic, ["sh", "-c", f"rm -rf /var/log/clinic-app/archive {APP_LOG}-*"])
    ok_in(clinic, ["sh", "-c", "printf 'held open\\n' > /var/log/clinic-app/app.log-20200101-000000"])
    ok_in(clinic, ["sh", "-c", "printf 'old\\n' > /var/log/clinic-app/app.log-20200102-000000"])
    holder = clinic.exec_run(["sh", "-c", "exec 3</var/log/clinic-app/app.log-20200101-000000; "
                                          "touch /run/lr-holding; while [ -e /run/lr-holding ]; do sleep 0.2; done"],
                             detach=True)  # fmt: skip
    assert holder is not None
    deadline = time.monotonic() + 30
    while run_in(clinic, ["test", "-e", "/run/lr-holding"])[0] != 0:
        assert time.monotonic() < deadline, "the holder did not start"
        time.sleep(0.05)
    try:
        code, output = rotate_logs(extra={"log_rotation_archive_min_age": 0})
        assert code == 0, output
        archive = run_report(output)[CLINIC]["log_rotation"]["archive"]
        assert "/var/log/clinic-app/app.log-20200101-000000" in archive["skipped_open"], archive
        names = files_in(clinic, "/var/log/clinic-app")
        assert "app.log-20200101-000000" in names and "app.log-20200102-000000" not in names, names
        found = ok_in(clinic, ["find", "/var/log/clinic-app/archive", "-type", "f"]).split()
        assert any(path.endswith("app.log-20200102-000000.zst") or path.endswith("app.log-20200102-000000.gz")
                   for path in found), found  # fmt: skip
    finally:
        ok_in(clinic, ["rm", "-f", "/run/lr-holding"])


def test_whole_configuration_rotates_each_nginx_log_once(clinic):
    ok_in(clinic, ["curl", "-s", "-o", "/dev/null", "http://127.0.0.1/health/live"])
    before = set(files_in(clinic, "/var/log/nginx"))
    code, out = run_in(clinic, ["logrotate", "--verbose", "--force", "/etc/logrotate.conf"])
    assert code == 0, out
    assert "duplicate log entry" not in out
    new = set(files_in(clinic, "/var/log/nginx")) - before
    assert [name for name in new if name.startswith("clinic-app.access.log-")] != [], new
    assert all(re.fullmatch(rf"[\w.-]+\.log{ROTATED}", name) for name in new), new
    # nginx reopened its log: a new request lands in the new file.
    ok_in(clinic, ["curl", "-s", "-o", "/dev/null", "http://127.0.0.1/health/live?after-rotation"])
    assert "after-rotation" in ok_in(clinic, ["cat", "/var/log/nginx/clinic-app.access.log"])


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {
                "log_rotation_profiles": {"twice": {"daily": True, "weekly": True, "rotate": 3, "create": True}},
                "log_rotation_entries": [
                    {"name": "bad-frequency", "paths": ["/var/log/bad/*.log"], "profile": "twice"}
                ],
            },
            r"log rotation entry bad-frequency .*profile twice sets daily and weekly together.*Nothing was written",
        ),
        (
            {
                "log_rotation_entries": [
                    {"name": "bad-option", "paths": ["/var/log/bad/*.log"], "options": {"bogus": True}}
                ]
            },
            r"log rotation entry bad-option .*unknown option bogus.*Nothing was written",
        ),
        (
            {
                "log_rotation_entries": [
                    {"name": "bad-truncate", "paths": ["/var/log/clinicops/*.jsonl"], "profile": "audit",
                     "options": {"copytruncate": True}, "accept_copytruncate": True}
                ]
            },
            r"log rotation entry bad-truncate .*copytruncate is never used for audit logs.*Nothing was written",
        ),
        (
            # The role's checks pass; logrotate's dry run of the whole configuration finds dpkg's drop-in.
            {"log_rotation_entries": [{"name": "bad-twice", "paths": ["/var/log/dpkg.log"]}]},
            r"refused by logrotate -d on the whole configuration: .*error: dpkg:\d+ duplicate log entry for "
            r"/var/log/dpkg.log.*list it in replaces of the entry. Nothing was written",
        ),
    ],
    ids=["daily-and-weekly", "unknown-option", "audit-copytruncate", "rotated-twice"],
)  # fmt: skip
def test_bad_policy_is_refused_before_anything_is_written(clinic, extra, expected):
    before = listing(clinic, DROPINS)
    trail = ok_in(clinic, ["cat", TRAIL])
    code, output = rotate_logs(extra=extra)
    assert code != 0, output
    assert re.search(expected, " ".join(output.split())), output
    assert listing(clinic, DROPINS) == before
    assert ok_in(clinic, ["cat", TRAIL]) == trail  # refused before the lock: not even an audit record


def test_exclusive_removes_dropped_entries_and_never_a_foreign_file(clinic):
    ok_in(clinic, ["sh", "-c", f"printf '/var/log/zz-foreign.log {{\\n missingok\\n}}\\n' > {DROPINS}/zz-foreign"])
    scratch = {"name": "scratch", "paths": ["/var/log/lr-scratch/*.log"], "profile": "debug"}
    code, output = rotate_logs(extra={"log_rotation_entries": [*DEFAULT_ENTRIES, scratch]})
    assert code == 0, output
    assert "clinicops-scratch" in files_in(clinic, DROPINS)
    assert "/var/log/lr-scratch" in run_report(output)[CLINIC]["log_rotation"]["missing_dirs"]

    # Without nginx and scratch: both drop-ins go, Debian's nginx drop-in comes back, the foreign file stays.
    kept = [entry for entry in DEFAULT_ENTRIES if entry["name"] != "nginx"]
    code, output = rotate_logs(extra={"log_rotation_entries": kept})
    assert code == 0, output
    names = files_in(clinic, DROPINS)
    assert "clinicops-scratch" not in names and "clinicops-nginx" not in names, names
    assert {"nginx", "zz-foreign", "clinicops-clinic-app", "clinicops-audit"} <= set(names), names
    assert "nginx.disabled" not in names
    report = run_report(output)[CLINIC]["log_rotation"]
    assert sorted(report["removed"]) == ["clinicops-nginx", "clinicops-scratch"]
    assert report["restored"] == [f"{DROPINS}/nginx"]

    # Not exclusive: an unlisted drop-in stays.
    code, output = rotate_logs(extra={"log_rotation_entries": DEFAULT_ENTRIES[:1], "log_rotation_exclusive": False})
    assert code == 0, output
    assert "clinicops-audit" in files_in(clinic, DROPINS)

    code, output = rotate_logs()  # back to the defaults
    assert code == 0, output
    assert {"clinicops-nginx", "nginx.disabled", "zz-foreign"} <= set(files_in(clinic, DROPINS))
    ok_in(clinic, ["rm", "-f", f"{DROPINS}/zz-foreign"])
