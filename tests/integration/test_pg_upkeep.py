"""PostgreSQL upkeep on a real clinic: VACUUM/REINDEX proven from pg_stat_user_tables, long queries ended.

Every test leaves the clinic as it found it: no sleeping query, no invalid index.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from conftest import PLAYBOOKS, ansible_playbook, marked_result, psql

CLINIC = "kinshasa"
TAG = "clinicops-itest-sleeper"
TABLES = ["appointments", "audit_log", "patients", "schema_version"]
STATS = (
    "SELECT relname, vacuum_count, analyze_count, coalesce(extract(epoch FROM last_vacuum)::text, ''),"
    " coalesce(extract(epoch FROM last_analyze)::text, '') FROM pg_stat_user_tables ORDER BY relname"
)
INVALID_INDEXES = "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
SLEEPERS = f"SELECT pid FROM pg_stat_activity WHERE query LIKE '%{TAG}%' AND pid <> pg_backend_pid() ORDER BY pid"


def upkeep(*args: str, **extra: object) -> tuple[int, str, dict | None]:
    """Run the test playbook on the clinic: (exit code, output, the module's result or None if it failed)."""
    run = ansible_playbook(PLAYBOOKS / "pg_upkeep.yml", "-e", json.dumps({"target": CLINIC, **extra}), *args)
    output, _ = run.communicate(timeout=300)
    return run.returncode, output, marked_result(output, "UPKEEP ")


def stats(container) -> dict[str, tuple[int, int, str, str]]:
    """Per table: (vacuum_count, analyze_count, last_vacuum, last_analyze as epoch text or '')."""
    rows = [line.split("|") for line in psql(container, STATS).splitlines()]
    return {row[0]: (int(row[1]), int(row[2]), row[3], row[4]) for row in rows}


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


@pytest.fixture
def clinic(clinics):
    container = clinics[CLINIC]
    yield container
    psql(container, f"SELECT pg_terminate_backend(pid) FROM ({SLEEPERS}) AS sleepers")
    assert psql(container, INVALID_INDEXES) == "0", "upkeep left an invalid index behind"


@pytest.fixture
def sleeper(clinic) -> Iterator[Callable[[str], int]]:
    """Start ``SELECT pg_sleep(600)`` in the clinic as the app's role or as postgres; returns its pid."""

    def start(role: str) -> int:
        tag = f"{TAG}-{role}"
        query = f"SELECT pg_sleep(600) /* {tag} */"
        if role == "postgres":
            clinic.exec_run(["psql", "-X", "-d", "clinicdb", "-c", query], user="postgres", detach=True)
        else:  # over TCP with the app's password file, as the clinic app connects
            argv = ["psql", "-X", "-h", "127.0.0.1", "-U", role, "-d", "clinicdb", "-c", query]
            clinic.exec_run(argv, environment={"PGPASSFILE": "/etc/clinicops/pgpass"}, detach=True)
        running = (
            f"SELECT pid FROM pg_stat_activity WHERE query LIKE '%{tag} */' AND pid <> pg_backend_pid()"
            " AND now() - query_start > interval '2 s'"
        )
        deadline = time.monotonic() + 30
        while not (pid := psql(clinic, running)):
            assert time.monotonic() < deadline, f"the sleeping query of {role} did not start"
            time.sleep(0.2)  # polling the server until the query has run long enough to count as long
        return int(pid)

    yield start


def test_check_mode_then_upkeep_proven_by_pg_stat_user_tables(clinic):
    before = stats(clinic)
    assert sorted(before) == TABLES

    code, output, predicted = upkeep("--check")
    assert code == 0, output
    assert predicted["changed"]
    assert {entry["name"]: entry["status"] for entry in predicted["vacuum"]} == dict.fromkeys(TABLES, "would vacuum")
    assert {entry["status"] for entry in predicted["reindex"]} == {"would reindex"}
    assert stats(clinic) == before  # check mode vacuumed nothing

    code, output, done = upkeep()
    assert code == 0, output
    assert done["changed"] and done["skipped_items"] == [] and done["leftovers"] == []
    after = stats(clinic)
    for entry in done["vacuum"]:
        name = entry["name"]
        assert entry["status"] == "vacuumed", entry
        assert after[name][:2] == (before[name][0] + 1, before[name][1] + 1)  # one more VACUUM and ANALYZE each
        assert entry["last_vacuum"] and epoch(entry["last_vacuum"]) == pytest.approx(float(after[name][2]), abs=1e-3)
        assert entry["last_analyze"] and epoch(entry["last_analyze"]) == pytest.approx(float(after[name][3]), abs=1e-3)
        assert entry["vacuum_count"] == after[name][0]
    indexes = psql(clinic, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'")
    assert [entry["status"] for entry in done["reindex"]] == ["reindexed"] * int(indexes)
    assert {entry["mode"] for entry in done["reindex"]} == {"concurrently"}
    assert done["connections"]["max_connections"] == int(psql(clinic, "SHOW max_connections"))
    assert done["pg_stat_statements"] == "not installed" and done["slow_statements"] == []
    assert done["summary"].startswith(f"clinicdb: vacuumed (analyze) 4/4 tables, reindexed {indexes}/{indexes} indexes")
    assert psql(clinic, INVALID_INDEXES) == "0"


def test_a_long_query_is_reported_then_terminated_when_asked(clinic, sleeper):
    app = sleeper("clinic_app")
    superuser = sleeper("postgres")
    options = {"long_query_threshold": 1, "tables": ["audit_log"], "lock_timeout": 1}

    code, output, reported = upkeep(**options)
    assert code == 0, output
    long_queries = {query["pid"]: query for query in reported["long_queries"]}
    assert {pid: long_queries[pid]["action"] for pid in (app, superuser)} == {app: "reported", superuser: "reported"}
    assert long_queries[app]["user"] == "clinic_app"
    assert f"pg_sleep(600) /* {TAG}-clinic_app */" in long_queries[app]["query"]
    assert long_queries[app]["duration_seconds"] >= 1
    # REINDEX CONCURRENTLY waits for the sleepers' snapshots: skipped, and its _ccnew dropped, not left behind.
    assert reported["reindex"][0]["status"] == "skipped"
    assert "older transaction" in reported["reindex"][0]["reason"]
    assert {leftover["status"] for leftover in reported["leftovers"]} <= {"dropped"}
    assert psql(clinic, INVALID_INDEXES) == "0"
    assert psql(clinic, SLEEPERS).split() == sorted([str(app), str(superuser)])

    code, output, ended = upkeep(**options, terminate=True)
    assert code == 0, output
    actions = {query["pid"]: query["action"] for query in ended["long_queries"]}
    assert actions[app] == "terminated" and actions[superuser] == "protected"
    assert ended["terminated"] == [app]
    assert psql(clinic, SLEEPERS) == str(superuser)

    code, output, everyone = upkeep(**options, terminate=True, terminate_superuser=True)
    assert code == 0, output
    assert everyone["terminated"] == [superuser]
    assert psql(clinic, SLEEPERS) == ""
    assert [entry["status"] for entry in everyone["reindex"]] == ["reindexed"]  # nothing older to wait for now


def test_a_name_with_sql_characters_is_refused_and_nothing_is_done(clinic):
    before = stats(clinic)
    code, output, result = upkeep(tables=["patients; DROP TABLE patients"])
    assert code != 0 and result is None
    assert "refusing table 'patients; DROP TABLE patients': not a plain PostgreSQL identifier" in output
    assert "nothing was done" in output
    assert stats(clinic) == before
    assert psql(clinic, "SELECT count(*) FROM patients") == "24"
