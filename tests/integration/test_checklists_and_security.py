"""The health survey, the runbook checklists and the security scan on real lab clinics.

Each scenario breaks one clinic the way the runbooks describe (PostgreSQL stopped, a burst of 5xx
answers in nginx's access log, failed logins from one address, a user added to ``sudo``) and runs
the CLI as an operator runs it; the other clinic stays clean and must pass. Log lines are appended
with the current time to the clinic's real logs, the ones the collection's log_scan module reads.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from conftest import cli_state, clinicops, ok_in, run_in

CLINIC = "kinshasa"
CLEAN = "lubumbashi"
ATTACKER = "203.0.113.7"
ACCESS_LOG = "/var/log/nginx/clinic-app.access.log"
APP_LOG = "/var/log/clinic-app/app.log"
BASELINE = "/var/lib/clinicops/privilege-baseline.json"
POSTGRESQL = "postgresql@15-main"


def cli(home: Path, inventory: Path, *args: str) -> tuple[int, dict, str]:
    """The CLI with --json on the test lab: (exit code, the run's state or {}, its output)."""
    return cli_state(home, *args, "-i", str(inventory), "--json")


def rows(state: dict) -> dict[str, dict]:
    return {row["clinic"]: row for row in state["clinics"]}


def append(container, path: str, lines: list[str]) -> None:
    """Append lines to a log on the clinic (as its writer would: the same file, no rotation)."""
    text = "".join(line + "\n" for line in lines)
    ok_in(container, ["python3", "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2])", path, text])


def nginx_line(ip: str, request: str, status: int) -> str:
    return f'{ip} - - [{datetime.now(UTC):%d/%b/%Y:%H:%M:%S +0000}] "{request}" {status} 17 "-" "itest"'


def wait_healthy(container) -> None:
    for _ in range(60):
        code, _out = run_in(container, ["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1/health"])
        if code == 0:
            return
        time.sleep(1)
    raise AssertionError(f"{container.name}: /health not 200 after PostgreSQL was started again")


def test_security_scan_of_clean_clinics_passes_and_takes_the_baseline(clinics, inventory, home):
    code, state, err = cli(home, inventory, "security-scan")
    clean = rows(state)[CLEAN]
    assert clean["outcome"] == "ok" and "crossed" not in clean["details"], (err, clean)
    # (the other clinic keeps the failed logins of an earlier run of this module for 24 h)
    assert code == (0 if rows(state)[CLINIC]["outcome"] == "ok" else 1), (err, state)
    for name in rows(state):
        baseline = json.loads(ok_in(clinics[name], ["cat", BASELINE]))
        assert "sudo" in baseline["groups"]
        assert ok_in(clinics[name], ["stat", "-c", "%a", BASELINE]).strip() == "600"


def test_survey_reports_the_database_and_a_stopped_postgresql_fails_the_run(clinics, inventory, home):
    code, state, err = cli(home, inventory, "health")
    assert code == 0, (err, state)
    row = rows(state)[CLINIC]
    assert row["outcome"] == "healthy" and row["database"] == "up"
    assert row["db_size_bytes"] > 0 and "/" in row["db_connections"] and row["longest_query_s"] >= 0
    assert row["app_latency_ms"] > 0
    clinic = clinics[CLINIC]
    ok_in(clinic, ["systemctl", "stop", POSTGRESQL])
    try:
        code, state, err = cli(home, inventory, "health")
        assert code == 1, (err, state)
        stopped, clean = rows(state)[CLINIC], rows(state)[CLEAN]
        assert stopped["outcome"] == "unhealthy" and stopped["database"] == "down"
        assert POSTGRESQL in stopped["summary"] and "postgresql" in stopped["summary"]
        assert clean["outcome"] == "healthy", clean
        # The table an operator reads names the clinic and why.
        table = clinicops("show", state["run_id"], check=False, env={"CLINICOPS_HOME": str(home)}).stdout
        assert CLINIC in table and "unhealthy" in table
    finally:
        ok_in(clinic, ["systemctl", "start", POSTGRESQL])
        wait_healthy(clinic)


def test_evening_checklist_reports_the_5xx_rate(clinics, inventory, home):
    append(clinics[CLINIC], ACCESS_LOG, [nginx_line("198.51.100.20", "GET /api/patients HTTP/1.1", 502)] * 40)
    code, state, err = cli(home, inventory, "health", "--checklist", "evening")
    assert code == 1, (err, state)  # the 5xx rate crosses its threshold (and the lab has no restore drill yet)
    assert "evening checklist" in state["title"]
    row = rows(state)[CLINIC]
    items = {item["item"]: item for item in row["checklist_items"]}
    assert set(items) == {"slow queries", "backup verified", "failed logins", "top client IPs", "4xx/5xx rates"}
    assert items["4xx/5xx rates"]["ok"] is False
    assert "requests 5xx rate" in items["4xx/5xx rates"]["detail"]
    assert row["details"]["requests_5xx_rate"] > 0.05
    assert "198.51.100.20" in items["top client IPs"]["detail"]
    assert items["slow queries"]["ok"] is True
    clean = {item["item"]: item for item in rows(state)[CLEAN]["checklist_items"]}
    assert clean["4xx/5xx rates"]["ok"] is True


def test_morning_checklist_lists_the_runbook_items(clinics, inventory, home):
    code, state, err = cli(home, inventory, "health", "--checklist", "morning", "--limit", CLEAN)
    items = {item["item"]: item for item in rows(state)[CLEAN]["checklist_items"]}
    assert set(items) == {
        "services up",
        "health endpoints",
        "pg_isready",
        "redis ping",
        "errors in the last 24 h",
        "disk",
        "backups present",
    }, items
    for name in ("services up", "health endpoints", "pg_isready", "redis ping", "disk"):
        assert items[name]["ok"] is True, items[name]
    assert code == (0 if items["backups present"]["ok"] else 1), (err, state)


def test_security_scan_names_the_attacking_ip_and_the_new_sudoer(clinics, inventory, home):
    clinic = clinics[CLINIC]
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    append(clinic, APP_LOG, [f"{stamp} auth failed user=admin ip={ATTACKER}"] * 12)
    append(clinic, ACCESS_LOG, [nginx_line(ATTACKER, "GET /api/patients?name=Jane%27%20or%201=1-- HTTP/1.1", 400)])
    # The app's own failed login, through nginx: the app logs it with the client address nginx forwards.
    answer = ok_in(
        clinic, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-d", "user=eve", "http://127.0.0.1/login"]
    )
    assert answer == "401"
    assert "auth failed user=eve ip=127.0.0.1" in ok_in(clinic, ["tail", "-n", "5", APP_LOG])
    ok_in(clinic, ["gpasswd", "-a", "clinic", "sudo"])
    try:
        code, state, err = cli(home, inventory, "security-scan")
        assert code == 1, (err, state)
        attacked, clean = rows(state)[CLINIC], rows(state)[CLEAN]
        assert attacked["outcome"] == "failed"
        # (12 from this run; an earlier run of this module within 24 h adds its own)
        assert re.search(rf"\b\d+ failed logins from {re.escape(ATTACKER)} \(threshold 10\)", attacked["message"])
        assert "privilege changes 1 (threshold 0)" in attacked["message"]
        details = attacked["details"]
        assert details["failed_logins_by_ip"][ATTACKER] >= 12 and details["failed_logins_by_ip"]["127.0.0.1"] >= 1
        assert details["privilege_additions"] == ["group sudo: +clinic"]
        assert details["suspicious_by_pattern"]["sql_injection"] >= 1
        assert "Jane" not in json.dumps(state)  # the query string (patient data) never leaves the clinic
        assert clean["outcome"] == "ok", clean
    finally:
        ok_in(clinic, ["gpasswd", "-d", "clinic", "sudo"])
