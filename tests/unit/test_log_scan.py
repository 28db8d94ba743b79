"""The log_scan module: line parsing, windows, thresholds and privilege baselines with plain data,
rotated and compressed files on tmp_path, and the module's ``main()`` on them.

The whole module on a lab clinic's real logs is exercised by
tests/integration/test_checklists_and_security.py.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_scan import (
    LogScanError,
    LogTotals,
    judge,
    parse_iso_time,
    parse_syslog_time,
    privilege_additions,
    read_privileges,
    request_path,
    rotated_files,
    scan_files,
    scan_lines,
    suspicious_kind,
)
from ansible_collections.clinicops.runbook.plugins.modules import log_scan

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(hours=24)


def nginx(ip: str, request: str, status: int, at: datetime = NOW - timedelta(hours=1)) -> str:
    return f'{ip} - - [{at:%d/%b/%Y:%H:%M:%S +0000}] "{request}" {status} 12 "-" "curl/7.88"\n'


def app(text: str, at: datetime = NOW - timedelta(hours=1)) -> str:
    return f"{at.isoformat(timespec='seconds')} {text}\n"


def scan(kind: str, lines: list[str]) -> dict:
    return scan_lines(LogTotals(), kind, lines, SINCE, NOW).as_dict()


def test_nginx_counts_statuses_rates_and_clients() -> None:
    lines = [nginx("10.0.0.1", "GET /health HTTP/1.1", 200)] * 6 + [
        nginx("10.0.0.2", "GET /api/patients HTTP/1.1", 404),
        nginx("10.0.0.2", "GET /api/patients HTTP/1.1", 502),
        nginx("10.0.0.2", "GET /api/patients HTTP/1.1", 503),
        nginx("10.0.0.3", "GET /old HTTP/1.1", 500, at=NOW - timedelta(hours=30)),  # before the window
        "garbage\n",
    ]
    report = scan("nginx", lines)
    assert (report["requests"], report["requests_4xx"], report["requests_5xx"]) == (9, 1, 2)
    assert report["requests_5xx_rate"] == round(2 / 9, 4)
    assert report["top_client_ips"][0] == {"ip": "10.0.0.1", "requests": 6}
    assert report["lines_unparsed"] == 1


@pytest.mark.parametrize(
    ("request_line", "kind"),
    [
        ("GET /api/patients?id=1%20UNION%20SELECT%20password HTTP/1.1", "sql_injection"),
        ("GET /api/patients?name=x'%20or%201=1-- HTTP/1.1", "sql_injection"),
        ("GET /search?q=<script>alert(1)</script> HTTP/1.1", "script_injection"),
        ("GET /search?q=%3Cscript%3E HTTP/1.1", "script_injection"),
        ("GET /static/../../etc/passwd HTTP/1.1", "path_traversal"),
        ("GET /static/..%2f..%2fetc HTTP/1.1", "path_traversal"),
        ("GET /api/patients?name=Union%20Street HTTP/1.1", None),
        ("GET /api/appointments?day=2026-11-26 HTTP/1.1", None),
    ],
)
def test_suspicious_patterns(request_line: str, kind: str | None) -> None:
    assert suspicious_kind(request_line) == kind


def test_suspicious_samples_never_keep_the_query() -> None:
    report = scan("nginx", [nginx("198.51.100.9", "GET /api/patients?name=Jane%20Doe'%20or%201=1 HTTP/1.1", 400)])
    assert report["suspicious_by_pattern"] == {"sql_injection": 1}
    assert report["suspicious_samples"] == [
        {"pattern": "sql_injection", "ip": "198.51.100.9", "path": "/api/patients", "status": 400}
    ]
    assert "Jane" not in json.dumps(report)
    assert request_path("GET /" + "a" * 100 + " HTTP/1.1").endswith("...")


def test_app_lines_errors_and_failed_logins() -> None:
    lines = [
        app('127.0.0.1 "GET /health HTTP/1.1" 200 -'),
        app('127.0.0.1 "GET /api/patients HTTP/1.1" 503 -'),
        app("ERROR cannot reach the database"),
        app("auth failed user=admin ip=203.0.113.7"),
        app("auth failed user=root ip=203.0.113.7"),
        app("auth failed user=admin ip=198.51.100.1"),
        app("auth failed user=admin ip=203.0.113.7", at=NOW - timedelta(days=3)),
    ]
    report = scan("app", lines)
    assert report["app_errors"] == 2
    assert report["failed_logins_by_ip"] == {"203.0.113.7": 2, "198.51.100.1": 1}
    assert report["requests"] == 0  # nginx counts requests, with the real client address


def test_auth_log_sshd_lines() -> None:
    lines = [
        "Nov 26 11:00:00 kinshasa sshd[42]: Failed password for invalid user bob from 203.0.113.7 port 22 ssh2\n",
        "Nov 26 11:00:01 kinshasa sshd[42]: Accepted publickey for ops from 10.0.0.5 port 22 ssh2\n",
        "2026-11-26T11:00:02.123456+00:00 kinshasa sshd[42]: Failed password for root from 203.0.113.8 port 2\n",
    ]
    assert scan("auth", lines)["failed_logins_by_ip"] == {"203.0.113.7": 1, "203.0.113.8": 1}


def test_time_parsing() -> None:
    assert parse_iso_time("2026-11-26T11:00:00") == datetime(2026, 11, 26, 11, tzinfo=UTC)
    assert parse_iso_time("2026-11-26T12:00:00+0100") == datetime(2026, 11, 26, 11, tzinfo=UTC)
    # A syslog time ahead of now by months belongs to last year.
    assert parse_syslog_time("Dec 31 23:00:00", NOW).year == 2025
    assert parse_syslog_time("Nov  26 11:00:00", NOW).year == 2026


def test_thresholds() -> None:
    report = {
        "requests": 100,
        "requests_5xx_rate": 0.08,
        "requests_4xx_rate": 0.01,
        "failed_logins_by_ip": {"203.0.113.7": 25, "198.51.100.1": 2},
        "suspicious_requests": 0,
        "privilege_additions": ["group sudo: +mallory"],
    }
    crossed = judge(
        report,
        {"requests_5xx_rate": 0.05, "requests_4xx_rate": 0.05, "failed_logins_per_ip": 10, "privilege_changes": 0},
    )
    assert crossed == [
        "requests 5xx rate 8.0% (threshold 5.0%)",
        "25 failed logins from 203.0.113.7 (threshold 10)",
        "privilege changes 1 (threshold 0)",
    ]
    # Too few requests for a rate to mean anything: reported, not judged.
    assert judge(report | {"requests": 5}, {"requests_5xx_rate": 0.05}) == []
    with pytest.raises(LogScanError, match="unknown threshold"):
        judge(report, {"5xx": 1})


def test_privileges_against_a_baseline(tmp_path: Path) -> None:
    group = tmp_path / "group"
    group.write_text("root:x:0:\nsudo:x:27:ops\nadm:x:4:syslog,ops\nusers:x:100:alice\n")
    sudoers = tmp_path / "sudoers.d"
    sudoers.mkdir()
    (sudoers / "README").write_text("")
    baseline = read_privileges(str(group), ["sudo", "adm", "wheel"], str(sudoers))
    assert baseline == {"groups": {"sudo": ["ops"], "adm": ["ops", "syslog"], "wheel": []}, "sudoers_d": ["README"]}
    group.write_text("root:x:0:\nsudo:x:27:ops,mallory\nadm:x:4:syslog\n")
    (sudoers / "99-backdoor").write_text("")
    current = read_privileges(str(group), ["sudo", "adm", "wheel"], str(sudoers))
    assert privilege_additions(baseline, current) == ["group sudo: +mallory", "sudoers.d: +99-backdoor"]


def test_rotated_and_compressed_files(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(nginx("10.0.0.1", "GET / HTTP/1.1", 500))
    (tmp_path / "access.log.1").write_text(nginx("10.0.0.1", "GET / HTTP/1.1", 200))
    with gzip.open(tmp_path / "access.log.2.gz", "wt") as handle:
        handle.write(nginx("10.0.0.1", "GET / HTTP/1.1", 502))
    old = tmp_path / "access.log.9.gz"
    with gzip.open(old, "wt") as handle:
        handle.write(nginx("10.0.0.1", "GET / HTTP/1.1", 503))
    stale = (NOW - timedelta(days=10)).timestamp()
    os.utime(old, (stale, stale))
    names = [Path(path).name for path in rotated_files(str(log), SINCE.timestamp())]
    assert "access.log.9.gz" not in names and set(names) == {"access.log", "access.log.1", "access.log.2.gz"}
    if shutil.which("zstd"):
        plain = tmp_path / "plain"
        plain.write_text(nginx("10.0.0.1", "GET / HTTP/1.1", 504))
        subprocess.run(["zstd", "-q", str(plain), "-o", str(tmp_path / "access.log-20261126.zst")], check=True)
    totals, read, missing = scan_files(
        [{"path": str(log), "kind": "nginx"}, {"path": str(tmp_path / "none.log"), "kind": "app"}], SINCE, NOW
    )
    assert missing == [str(tmp_path / "none.log")]
    assert totals.status_5xx == (3 if shutil.which("zstd") else 2)
    assert str(old) not in read


def module_result(capsys: pytest.CaptureFixture, args: dict) -> dict:
    with patch_module_args(args), pytest.raises(SystemExit):
        log_scan.main()
    return json.loads(capsys.readouterr().out)


def test_module_fails_naming_the_ip_and_writes_the_baseline_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    applog = tmp_path / "app.log"
    applog.write_text("".join(app("auth failed user=admin ip=203.0.113.7") for _ in range(12)))
    group = tmp_path / "group"
    group.write_text("sudo:x:27:ops\n")
    baseline = tmp_path / "state" / "privilege-baseline.json"
    args = {
        "logs": [{"path": str(applog), "kind": "app"}],
        "now": NOW.isoformat(),
        "fail_on": {"failed_logins_per_ip": 10, "privilege_changes": 0},
        "privilege_baseline": str(baseline),
        "group_file": str(group),
        "sudoers_dir": str(tmp_path / "absent"),
    }
    check = module_result(capsys, args | {"_ansible_check_mode": True})
    assert check["baseline_written"] and not baseline.exists()
    first = module_result(capsys, args)
    assert first["failed"] and "12 failed logins from 203.0.113.7 (threshold 10)" in first["msg"]
    assert first["changed"] and json.loads(baseline.read_text())["groups"]["sudo"] == ["ops"]
    assert oct(baseline.stat().st_mode & 0o777) == "0o600"
    group.write_text("sudo:x:27:ops,mallory\n")
    second = module_result(capsys, args | {"fail_on_threshold": False})
    assert not second["changed"] and not second.get("failed")
    assert second["privilege_additions"] == ["group sudo: +mallory"] and not second["passed"]


def test_module_clean_logs_pass(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    access = tmp_path / "access.log"
    access.write_text(nginx("10.0.0.1", "GET /health HTTP/1.1", 200) * 30)
    result = module_result(
        capsys,
        {"logs": [{"path": str(access), "kind": "nginx"}], "now": NOW.isoformat(), "fail_on": {"requests_5xx": 0}},
    )
    assert result["passed"] and not result["changed"] and result["summary"].startswith("passed: 30 requests")
