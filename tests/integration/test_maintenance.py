"""The maintenance procedure on real clinics, each in its own time zone, at an injected instant.

Both clinics get the same window, Sunday 02:00-03:00 local time, and every run evaluates it at a
fixed instant (``clinicops_now``): at 02:30 WAT Kinshasa is inside it, while in Lubumbashi it is
03:30 CAT and the window is over. The playbook is the collection's own ``maintenance.yml``, run as
an operator (or AWX) runs it.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator

import pytest
from alertmanager import Alertmanager, running_alertmanager
from conftest import COLLECTION_PLAYBOOKS, ansible_playbook, ok_in, psql, run_in, run_report, snapshots

SUNDAY_0230_WAT = "2026-11-29T02:30:00+01:00"  # inside 02:00-03:00 in Kinshasa, after it in Lubumbashi
HOUR = {"name": "weekly", "rrule": "FREQ=WEEKLY;BYDAY=SU", "start": "02:00", "duration": "1h"}
TRAIL = "/var/log/clinicops/audit.jsonl"
STATS = (
    "SELECT coalesce(last_vacuum::text, '-') || '|' || coalesce(last_analyze::text, '-') "
    "FROM pg_stat_user_tables WHERE relname = 'patients'"
)
INDEX_FILE = "SELECT relfilenode FROM pg_class WHERE relname = 'patients_pkey'"
WATCHER = (
    "rm -f /tmp/mw-stop; while [ ! -e /tmp/mw-stop ]; do "
    "curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1/version >> /tmp/mw-codes; sleep 0.1; done"
)


def maintenance(*args: str, **extra: object) -> tuple[int, str]:
    """Run playbooks/maintenance.yml with the shared window at an injected instant: (exit code, output)."""
    extra = {
        "clinic_maintenance_windows": [HOUR],
        "clinicops_now": SUNDAY_0230_WAT,
        "maintenance_window_step_duration": "10m",
        **extra,
    }
    run = ansible_playbook(
        COLLECTION_PLAYBOOKS / "maintenance.yml", "-e", json.dumps(extra), *args,
        env={"ANSIBLE_SHOW_CUSTOM_STATS": "1"},
    )  # fmt: skip
    output, _ = run.communicate(timeout=900)
    return run.returncode, output


def audit(container, run_id: str) -> list[dict]:
    code, out = run_in(container, ["cat", TRAIL])
    records = [json.loads(line) for line in out.splitlines()] if code == 0 else []
    return [record for record in records if record.get("run_id") == run_id]


def served(container) -> str:
    return ok_in(container, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1/version"])


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[Alertmanager]:
    """A real Alertmanager on the controller's loopback (Debian's package, unpacked under build/)."""
    with running_alertmanager() as running:
        yield running


@pytest.fixture()
def watch_pages(clinics):
    """Record the HTTP status of each clinic's front page, every 100 ms, while a run goes on."""
    for container in clinics.values():
        ok_in(container, ["rm", "-f", "/tmp/mw-codes", "/tmp/mw-stop"])
        container.exec_run(["sh", "-c", WATCHER], detach=True)

    def stop() -> dict[str, list[str]]:
        codes = {}
        for name, container in clinics.items():
            ok_in(container, ["touch", "/tmp/mw-stop"])
            codes[name] = run_in(container, ["cat", "/tmp/mw-codes"])[1].split()
        return codes

    yield stop
    stop()


def test_the_open_clinic_is_maintained_and_the_closed_one_skipped_with_its_next_opening(
    clinics, watch_pages, alertmanager
):
    kinshasa, lubumbashi = clinics["kinshasa"], clinics["lubumbashi"]
    before = {name: psql(container, STATS) for name, container in clinics.items()}
    index_before = psql(kinshasa, INDEX_FILE)
    backups_before = len(snapshots(kinshasa))
    run_id = f"itest-maintenance-open-{secrets.token_hex(3)}"

    code, output = maintenance(clinicops_run_id=run_id, maintenance_window_alertmanager_url=alertmanager.url)
    codes = watch_pages()
    assert code == 0, output

    report = run_report(output)
    assert report["lubumbashi"] == {
        "outcome": "skipped",
        "reason": "closed: next opening Sun 2026-12-06 02:00 CAT (weekly window)",
        "next_opening": "2026-12-06T02:00:00+02:00",
    }
    done = report["kinshasa"]
    assert (done["window"], done["window_state"], done["window_end"]) == ("weekly", "open", "2026-11-29T03:00:00+01:00")
    assert 0 < done["time_left_s"] < 1800 and done["overrun"] is False  # 30 min left at the gate, minus the run
    assert set(done["durations"]) >= {"snapshot", "backup", "upkeep", "health"}
    assert done["upkeep"]["vacuumed"] >= 2 and done["upkeep"]["reindexed"] >= 1, done["upkeep"]
    assert done["backup"] and done["maintenance_page"] == "off"
    assert re.search(r"kinshasa: maintenance done in [\d.]+ s, \d+ min left in the weekly window", output)

    # VACUUM (ANALYZE) and REINDEX really ran on Kinshasa's database, and nothing ran on Lubumbashi's.
    after = psql(kinshasa, STATS)
    vacuumed, analyzed = after.split("|")
    assert after != before["kinshasa"] and vacuumed != "-" and analyzed != "-", (before, after)
    assert psql(kinshasa, INDEX_FILE) != index_before  # REINDEX CONCURRENTLY builds a new file
    assert psql(lubumbashi, STATS) == before["lubumbashi"]
    assert len(snapshots(kinshasa)) > backups_before

    # The maintenance page was served during the run, and is gone after it; never on the skipped clinic.
    assert "503" in codes["kinshasa"] and codes["kinshasa"][-1] == "200", codes["kinshasa"]
    assert served(kinshasa) == "200"
    assert "503" not in codes["lubumbashi"], codes["lubumbashi"]

    # Kinshasa's alerts were silenced until its window's end (03:00 WAT), and the silence went with the run.
    silenced = done["silence"]
    assert silenced["ends_at"].startswith("2026-11-29T02:00:00"), silenced
    silence = alertmanager.silence(silenced["id"])
    assert silence["status"]["state"] == "expired" and run_id in silence["comment"]
    assert [(m["name"], m["value"]) for m in silence["matchers"]] == [("clinic", "kinshasa")]
    assert [s for s in alertmanager.silences() if s["id"] != silenced["id"]] == []  # none for Lubumbashi

    # Audited, unlocked, with the system snapshot kept on the clinic.
    assert [r["outcome"] for r in audit(kinshasa, run_id) if r["procedure"] == "maintenance"] == ["started", "ok"]
    assert audit(lubumbashi, run_id) == []
    assert run_in(kinshasa, ["test", "-e", "/var/lib/clinicops/clinic.lock"])[0] == 1
    snapshot = json.loads(ok_in(kinshasa, ["cat", f"/var/lib/clinicops/snapshots/maintenance-{run_id}.json"]))
    assert snapshot["units"]["nginx"] == "running" and snapshot["packages"]["postgresql-15"]
    assert snapshot["release"] and snapshot["disk"]


def test_an_override_maintains_the_closed_clinic_and_is_recorded_in_its_audit_trail(clinics):
    lubumbashi = clinics["lubumbashi"]
    before = psql(lubumbashi, STATS)
    run_id = f"itest-maintenance-override-{secrets.token_hex(3)}"
    code, output = maintenance(
        "--limit", "lubumbashi",
        clinicops_run_id=run_id,
        window_gate_mode="override",
        window_gate_override_reason="INC-77: disk filling up, approved by on-call",
        maintenance_window_backup=False,
        maintenance_window_reindex="none",
    )  # fmt: skip
    assert code == 0, output
    records = audit(lubumbashi, run_id)
    assert [(r["procedure"], r["outcome"]) for r in records] == [
        ("maintenance", "override"),
        ("maintenance", "started"),
        ("maintenance", "ok"),
    ]
    override = records[0]["details"]
    assert override["reason"] == "INC-77: disk filling up, approved by on-call"
    assert override["overridden_state"] == "closed"
    assert override["evaluated_at"] == "2026-11-29T03:30:00+02:00"  # the injected instant, in the clinic's own zone
    assert psql(lubumbashi, STATS) != before
    done = run_report(output)["lubumbashi"]
    assert done["window_state"] == "override" and done["time_left_s"] is None and done["overrun"] is False


def test_a_run_past_the_window_end_is_reported_as_an_overrun(clinics):
    code, output = maintenance(
        "--limit", "kinshasa",
        clinicops_run_id="itest-maintenance-overrun",
        clinicops_now="2026-11-29T02:59:58+01:00",
        maintenance_window_step_duration=0,
        maintenance_window_backup=False,
        maintenance_window_reindex="none",
    )  # fmt: skip
    assert code == 0, output
    done = run_report(output)["kinshasa"]
    assert done["window_state"] == "open" and done["overrun"] is True and done["time_left_s"] < 0, done
    assert re.search(
        r"kinshasa: maintenance done in [\d.]+ s, OVERRUN: \d+ min past the end of the weekly window", output
    )


def test_a_failed_step_leaves_a_healthy_clinic_without_the_page_and_audits_the_failure(clinics):
    kinshasa = clinics["kinshasa"]
    run_id = f"itest-maintenance-failed-{secrets.token_hex(3)}"
    code, output = maintenance(
        "--limit", "kinshasa",
        clinicops_run_id=run_id,
        maintenance_window_backup=False,
        maintenance_window_databases=[{"engine": "postgresql", "name": "no_such_db"}],
    )  # fmt: skip
    assert code == 2, output
    assert "no_such_db" in output
    assert served(kinshasa) == "200"  # the app was healthy: the page went with the failure
    outcomes = [(r["outcome"], r.get("details", {}).get("failure", "")) for r in audit(kinshasa, run_id)]
    assert outcomes[0][0] == "started" and outcomes[-1][0] == "failed" and "no_such_db" in outcomes[-1][1]
    assert run_in(kinshasa, ["test", "-e", "/var/lib/clinicops/clinic.lock"])[0] == 1
