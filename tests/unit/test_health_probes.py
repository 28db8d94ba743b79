"""The read-only probes of the health_check module, against loopback servers started here."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops import health_probes
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.health_probes import (
    ProbeResult,
    certificate_days_left,
    probe_disk,
    probe_http,
    probe_postgresql,
    probe_redis,
    probe_systemd_unit,
    probe_tcp,
    probe_tls,
    redact,
    summarize,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import FakeRedis, TcpServerFactory

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


# -- http ------------------------------------------------------------------------------------------


def test_http_200_is_healthy(http_base_url: str) -> None:
    result = probe_http({"name": "app", "url": f"{http_base_url}/ok"})
    assert result.healthy
    assert result.kind == "http"
    assert result.name == "app"
    assert result.observed["status"] == 200
    assert result.detail.startswith("HTTP 200 in ")
    assert result.observed["latency_ms"] >= 0


def test_http_name_defaults_to_url(http_base_url: str) -> None:
    url = f"{http_base_url}/ok"
    assert probe_http({"url": url}).name == url


def test_http_503_is_unhealthy_with_detail(http_base_url: str) -> None:
    result = probe_http({"url": f"{http_base_url}/down"})
    assert not result.healthy
    assert result.observed["status"] == 503
    assert "HTTP 503 (expected 200)" in result.detail


def test_http_accepts_listed_statuses(http_base_url: str) -> None:
    result = probe_http({"url": f"{http_base_url}/down", "status": [200, 503]})
    assert result.healthy, result.detail


def test_http_body_contains_mismatch_is_unhealthy(http_base_url: str) -> None:
    result = probe_http({"url": f"{http_base_url}/ok", "body_contains": "all systems go"})
    assert not result.healthy
    assert result.detail == "body lacks 'all systems go'"


def test_http_body_contains_match_is_healthy(http_base_url: str) -> None:
    assert probe_http({"url": f"{http_base_url}/ok", "body_contains": "ready"}).healthy


def test_http_reports_every_problem(http_base_url: str) -> None:
    result = probe_http({"url": f"{http_base_url}/down", "body_contains": "all systems go"})
    assert "HTTP 503" in result.detail
    assert "body lacks" in result.detail


def test_http_parses_json_when_asked(http_base_url: str) -> None:
    result = probe_http({"url": f"{http_base_url}/json", "json": True})
    assert result.healthy
    assert result.observed["json"] == {"status": "ok", "version": "2.0.0"}


def test_http_json_of_an_error_page_is_kept(http_base_url: str) -> None:
    result = probe_http({"url": f"{http_base_url}/down", "json": True})
    assert not result.healthy
    assert result.observed["json"]["reason"] == "database down"


def test_http_invalid_json_is_none_not_an_error(http_base_url: str) -> None:
    result = probe_http({"url": f"{http_base_url}/not-json", "json": True})
    assert result.healthy
    assert result.observed["json"] is None


def test_http_without_json_flag_does_not_parse(http_base_url: str) -> None:
    assert "json" not in probe_http({"url": f"{http_base_url}/json"}).observed


def test_http_sends_the_given_headers(http_base_url: str) -> None:
    result = probe_http({"url": f"{http_base_url}/headers", "json": True, "headers": {"X-Clinic": "paris"}})
    assert result.observed["json"]["X-Clinic"] == "paris"


def test_http_slower_than_max_latency_is_unhealthy(http_base_url: str) -> None:
    result = probe_http({"url": f"{http_base_url}/ok", "max_latency_ms": 0.001})
    assert not result.healthy
    assert result.detail.startswith("slow: ")


def test_http_connection_refused_is_unhealthy(closed_port: int) -> None:
    result = probe_http({"url": f"http://127.0.0.1:{closed_port}/health"})
    assert not result.healthy
    assert result.detail.startswith("no answer: ")
    assert "refused" in result.detail.lower()
    assert result.observed["status"] is None


def test_http_garbage_answer_is_unhealthy_not_an_exception(tcp_server: TcpServerFactory) -> None:
    """A probe pointed at a non-HTTP service (here an SSH banner) must report, not crash the module."""

    def ssh_banner(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")

    host, port = tcp_server(ssh_banner)
    result = probe_http({"url": f"http://{host}:{port}/health"})
    assert not result.healthy
    assert result.detail.startswith("no answer: ")


def test_http_closed_without_answer_is_unhealthy(tcp_server: TcpServerFactory) -> None:
    host, port = tcp_server(lambda conn: conn.recv(4096))
    result = probe_http({"url": f"http://{host}:{port}/health"})
    assert not result.healthy
    assert result.observed["status"] is None


# -- tcp -------------------------------------------------------------------------------------------


def test_tcp_open_port_is_healthy(tcp_server: TcpServerFactory) -> None:
    host, port = tcp_server(lambda conn: None)
    result = probe_tcp({"host": host, "port": port})
    assert result.healthy
    assert result.name == f"{host}:{port}"
    assert result.detail.startswith("open in ")


def test_tcp_closed_port_is_unhealthy(closed_port: int) -> None:
    result = probe_tcp({"name": "pg", "host": "127.0.0.1", "port": closed_port, "timeout": 2})
    assert not result.healthy
    assert result.name == "pg"
    assert result.detail.startswith("cannot connect: ")


# -- redis -----------------------------------------------------------------------------------------


def test_redis_pong_is_healthy(fake_redis: Callable[..., FakeRedis]) -> None:
    redis = fake_redis()
    result = probe_redis({"host": redis.host, "port": redis.port})
    assert result.healthy
    assert result.detail.startswith("PONG in ")
    assert redis.commands == [[b"PING"]]


def test_redis_wrong_answer_is_unhealthy(fake_redis: Callable[..., FakeRedis]) -> None:
    redis = fake_redis(pong=b"-LOADING Redis is loading the dataset in memory\r\n")
    result = probe_redis({"host": redis.host, "port": redis.port})
    assert not result.healthy
    assert result.detail.startswith("PING answered ")
    assert "LOADING" in result.detail


def test_redis_authenticates_before_ping(fake_redis: Callable[..., FakeRedis]) -> None:
    redis = fake_redis()
    result = probe_redis({"host": redis.host, "port": redis.port, "password": "red1s-pass"})
    assert result.healthy
    assert redis.commands == [[b"AUTH", b"red1s-pass"], [b"PING"]]


def test_redis_answer_never_shows_the_password(fake_redis: Callable[..., FakeRedis]) -> None:
    redis = fake_redis(auth=b"-WRONGPASS\r\n", pong=b"-NOAUTH red1s-pass is not it\r\n")
    result = probe_redis({"host": redis.host, "port": redis.port, "password": "red1s-pass"})
    assert not result.healthy
    assert "red1s-pass" not in json.dumps(result.as_dict())
    assert "********" in result.detail


def test_redis_closed_port_is_unhealthy(closed_port: int) -> None:
    result = probe_redis({"host": "127.0.0.1", "port": closed_port})
    assert not result.healthy
    assert result.detail.startswith("cannot connect: ")


# -- disk ------------------------------------------------------------------------------------------


def test_disk_within_thresholds_is_healthy(tmp_path: Path) -> None:
    result = probe_disk({"path": str(tmp_path), "min_free_percent": 0, "min_free_inodes_percent": 0})
    assert result.healthy, result.detail
    stats = os.statvfs(tmp_path)
    assert result.observed["total_bytes"] == stats.f_blocks * stats.f_frsize
    assert 0 <= result.observed["free_percent"] <= 100
    assert result.detail.endswith("%)")


def test_disk_min_free_percent_above_100_is_unhealthy(tmp_path: Path) -> None:
    result = probe_disk({"path": str(tmp_path), "min_free_percent": 101, "min_free_inodes_percent": 0})
    assert not result.healthy
    assert "free < 101%" in result.detail


def test_disk_min_free_bytes_is_checked(tmp_path: Path) -> None:
    result = probe_disk(
        {"path": str(tmp_path), "min_free_percent": 0, "min_free_inodes_percent": 0, "min_free_bytes": 2**62}
    )
    assert not result.healthy
    assert f"bytes free < {2**62}" in result.detail


def test_disk_min_free_inodes_is_checked(tmp_path: Path) -> None:
    if os.statvfs(tmp_path).f_files == 0:
        pytest.skip("this file system reports no inode count")
    result = probe_disk({"path": str(tmp_path), "min_free_percent": 0, "min_free_inodes_percent": 101})
    assert not result.healthy
    assert result.detail.startswith("inodes ")


def test_disk_missing_path_is_unhealthy(tmp_path: Path) -> None:
    result = probe_disk({"path": str(tmp_path / "absent")})
    assert not result.healthy
    assert result.detail.startswith("cannot stat: ")


# -- systemd ---------------------------------------------------------------------------------------


def fake_run_command(rc: int, out: str) -> Callable[..., tuple[int, str, str]]:
    def run_command(argv: list[str], **_kwargs: Any) -> tuple[int, str, str]:
        assert argv[:2] == ["systemctl", "is-active"]
        return rc, out, ""

    return run_command


def test_systemd_active_unit_is_healthy() -> None:
    result = probe_systemd_unit("redis-server.service", fake_run_command(0, "active\n"))
    assert result.healthy
    assert result.observed["state"] == "active"


@pytest.mark.parametrize(
    ("rc", "out", "state"), [(3, "inactive\n", "inactive"), (3, "failed\n", "failed"), (4, "", "unknown")]
)
def test_systemd_other_states_are_unhealthy(rc: int, out: str, state: str) -> None:
    result = probe_systemd_unit("clinic-app.service", fake_run_command(rc, out))
    assert not result.healthy
    assert result.detail == state


# -- tls -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsServer:
    host: str
    port: int
    not_after: datetime


def openssl_run_command(argv: list[str], data: bytes | None = None, binary_data: bool = False) -> tuple[int, str, str]:
    """What AnsibleModule.run_command does for probe_tls, without the module."""
    done = subprocess.run(argv, input=data, capture_output=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, datetime]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clinic.test")])
    now = datetime.now(UTC).replace(microsecond=0)
    not_after = now + timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file, not_after


@pytest.fixture
def tls_server(tcp_server: TcpServerFactory, certificate: tuple[Path, Path, datetime]) -> Iterator[TlsServer]:
    cert_file, key_file, not_after = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)

    def handshake(conn: socket.socket) -> None:
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # until the client closes
        except (OSError, ssl.SSLError):
            pass

    host, port = tcp_server(handshake)
    yield TlsServer(host, port, not_after)


def test_tls_certificate_far_from_expiry_is_healthy(tls_server: TlsServer) -> None:
    result = probe_tls({"host": tls_server.host, "port": tls_server.port, "min_days": 14}, openssl_run_command)
    assert result.healthy, result.detail
    assert 29 < result.observed["days_left"] <= 30


def test_tls_certificate_close_to_expiry_is_unhealthy(tls_server: TlsServer) -> None:
    result = probe_tls({"host": tls_server.host, "port": tls_server.port, "min_days": 60}, openssl_run_command)
    assert not result.healthy
    assert result.detail.startswith("certificate expires in ")
    assert result.name == f"tls {tls_server.host}:{tls_server.port}"


def test_tls_against_plain_tcp_fails_the_handshake(tcp_server: TcpServerFactory) -> None:
    host, port = tcp_server(lambda conn: conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n"))
    result = probe_tls({"host": host, "port": port}, openssl_run_command)
    assert not result.healthy
    assert result.detail.startswith("handshake failed: ")


def test_tls_unreadable_certificate_is_unhealthy(tls_server: TlsServer) -> None:
    def broken_openssl(argv: list[str], **_kwargs: Any) -> tuple[int, str, str]:
        return 1, "", "unable to load certificate"

    result = probe_tls({"host": tls_server.host, "port": tls_server.port}, broken_openssl)
    assert not result.healthy
    assert result.detail == "cannot read the certificate: unable to load certificate"


# -- certificate_days_left -------------------------------------------------------------------------


def openssl_date(moment: datetime) -> str:
    """A notAfter the way openssl prints it: day of month padded with a space."""
    return f"{MONTHS[moment.month - 1]} {moment.day:>2} {moment:%H:%M:%S} {moment.year} GMT"


def test_certificate_days_left_of_a_known_date() -> None:
    now = datetime(2027, 1, 1, 3, 4, 5, tzinfo=UTC)
    assert certificate_days_left("Jan  2 03:04:05 2027 GMT", now=now) == pytest.approx(1.0)


def test_certificate_days_left_is_negative_once_expired() -> None:
    now = datetime(2027, 1, 3, 3, 4, 5, tzinfo=UTC)
    assert certificate_days_left("Jan  2 03:04:05 2027 GMT", now=now) == pytest.approx(-1.0)


def test_certificate_days_left_defaults_to_now() -> None:
    in_ten_days = datetime.now(UTC) + timedelta(days=10)
    assert certificate_days_left(openssl_date(in_ten_days)) == pytest.approx(10.0, abs=0.01)


@given(
    expires=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31)),
    now=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31)),
)
def test_certificate_days_left_matches_the_calendar(expires: datetime, now: datetime) -> None:
    expires = expires.replace(microsecond=0, tzinfo=UTC)
    now = now.replace(tzinfo=UTC)
    expected = (expires - now).total_seconds() / 86400.0
    assert certificate_days_left(openssl_date(expires), now=now) == pytest.approx(expected, abs=1e-6)


# -- summarize, redact -----------------------------------------------------------------------------


def test_summarize_all_healthy_counts_checks() -> None:
    results = [ProbeResult("app", "http", True, "HTTP 200"), ProbeResult("/", "disk", True, "1 GiB")]
    assert summarize(results) == "healthy (2 checks)"


def test_summarize_names_only_the_unhealthy() -> None:
    results = [
        ProbeResult("app", "http", False, "HTTP 503 (expected 200)"),
        ProbeResult("redis", "redis", True, "PONG"),
        ProbeResult("/", "disk", False, "2.0% free < 5%"),
    ]
    assert summarize(results) == "unhealthy: http app: HTTP 503 (expected 200); disk /: 2.0% free < 5%"


def test_probe_result_as_dict_merges_observations() -> None:
    result = ProbeResult("app", "http", True, "ok", status=200, latency_ms=1.5)
    assert result.as_dict() == {
        "name": "app",
        "kind": "http",
        "healthy": True,
        "detail": "ok",
        "status": 200,
        "latency_ms": 1.5,
    }


def test_redact_removes_every_secret() -> None:
    text = "password=hunter2 token=abc123 again hunter2"
    assert redact(text, ["hunter2", "abc123"]) == "password=******** token=******** again ********"


def test_redact_ignores_empty_secrets_and_collapses_whitespace() -> None:
    assert redact("connection\n  refused\tnow", [None, ""]) == "connection refused now"


def test_redact_truncates_to_300_characters() -> None:
    assert len(redact("x" * 1000, [])) == 300


def test_redact_accepts_exceptions() -> None:
    assert redact(ValueError("bad password s3cr3t"), ["s3cr3t"]) == "bad password ********"


SECRET_CHARS = st.characters(blacklist_categories=("Cs",)).filter(lambda char: not char.isspace() and char != "*")


@settings(max_examples=60)
@given(
    prefix=st.text(max_size=200), secret=st.text(SECRET_CHARS, min_size=1, max_size=20), suffix=st.text(max_size=200)
)
def test_redact_never_lets_a_secret_through(prefix: str, secret: str, suffix: str) -> None:
    assert secret not in redact(prefix + secret + suffix + secret, [secret])


# -- postgresql ------------------------------------------------------------------------------------


def test_postgresql_unreachable_is_unhealthy_without_the_password(closed_port: int) -> None:
    password = "Pg-S3cret-Value"
    result = probe_postgresql(
        {
            "database": "clinicdb",
            "host": "127.0.0.1",
            "port": closed_port,
            "user": "clinic",
            "password": password,
            "connect_timeout": 2,
        }
    )
    assert not result.healthy
    assert result.detail.startswith("cannot connect: ")
    assert result.observed["connected"] is False
    assert password not in json.dumps(result.as_dict())


class FakeCursor:
    """Answers the probe's queries from a table of canned values."""

    def __init__(self, answers: dict[str, Any], executed: list[str]) -> None:
        self.answers = answers
        self.executed = executed
        self.last: str | None = None

    def execute(self, query: str, params: object = None) -> None:
        self.executed.append(query)
        answer = self.answers.get(query)
        if isinstance(answer, Exception):
            raise answer
        self.last = query

    def fetchone(self) -> tuple[Any, ...] | None:
        return (self.answers[self.last],) if self.last in self.answers else None


class FakeConnection:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.executed: list[str] = []
        self.closed = False
        self.autocommit = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.answers, self.executed)

    def close(self) -> None:
        self.closed = True


def pg_answers(connections: int = 10, max_connections: int = 100) -> dict[str, Any]:
    return {
        "SELECT 1": 1,
        "SHOW server_version": "15.8",
        "SELECT count(*) FROM pg_stat_activity": connections,
        "SHOW max_connections": str(max_connections),
        "SELECT pg_database_size(current_database())": 8_000_000,
        "SELECT max(version) FROM schema_version": 2,
        'SELECT count(*) FROM "public"."patients"': 24,
        'SELECT count(*) FROM "we""ird"': 3,
    }


InstallFakePg = Callable[[dict[str, Any]], tuple[FakeConnection, list[dict]]]


@pytest.fixture
def fake_pg(monkeypatch: pytest.MonkeyPatch) -> InstallFakePg:
    def install(answers: dict[str, Any]) -> tuple[FakeConnection, list[dict]]:
        conn = FakeConnection(answers)
        calls: list[dict] = []

        def connect(**params: Any) -> FakeConnection:
            calls.append(params)
            return conn

        monkeypatch.setattr(health_probes, "pg_driver", SimpleNamespace(connect=connect))
        return conn, calls

    return install


PG_SPEC = {
    "database": "clinicdb",
    "user": "clinic",
    "password": "Pg-S3cret-Value",
    "schema_version_query": "SELECT max(version) FROM schema_version",
    "count_tables": ["public.patients", 'we"ird'],
}


def test_postgresql_healthy_reads_everything_read_only(
    fake_pg: InstallFakePg,
) -> None:
    conn, calls = fake_pg(pg_answers())
    result = probe_postgresql(PG_SPEC)
    assert result.healthy, result.detail
    assert calls == [
        {
            "dbname": "clinicdb",
            "host": "/var/run/postgresql",
            "port": 5432,
            "connect_timeout": 5,
            "user": "clinic",
            "password": "Pg-S3cret-Value",
        }
    ]
    assert conn.executed[0] == "SET default_transaction_read_only = on"
    assert conn.autocommit and conn.closed
    assert result.observed["server_version"] == "15.8"
    assert result.observed["schema_version"] == 2
    assert result.observed["row_counts"] == {"public.patients": 24, 'we"ird': 3}
    assert result.observed["connection_usage"] == pytest.approx(0.1)
    assert result.detail.endswith("10/100 connections")


def test_postgresql_connection_usage_above_limit_is_unhealthy(
    fake_pg: InstallFakePg,
) -> None:
    fake_pg(pg_answers(connections=95, max_connections=100))
    result = probe_postgresql(PG_SPEC)
    assert not result.healthy
    assert result.detail == "connections 95/100 above 90%"


def test_postgresql_failed_query_is_unhealthy_redacted_and_closes(
    fake_pg: InstallFakePg,
) -> None:
    answers = pg_answers()
    answers["SHOW server_version"] = RuntimeError("permission denied (password Pg-S3cret-Value)")
    conn, _calls = fake_pg(answers)
    result = probe_postgresql(PG_SPEC)
    assert not result.healthy
    assert result.detail == "query failed: permission denied (password ********)"
    assert conn.closed


def test_postgresql_connect_error_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    def connect(**params: Any) -> None:
        raise RuntimeError(f"FATAL: password authentication failed for {params['password']!r}")

    monkeypatch.setattr(health_probes, "pg_driver", SimpleNamespace(connect=connect))
    result = probe_postgresql(PG_SPEC)
    assert not result.healthy
    assert "Pg-S3cret-Value" not in result.detail
    assert "********" in result.detail


def test_postgresql_without_driver_is_unhealthy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_probes, "pg_driver", None)
    result = probe_postgresql({"database": "clinicdb"})
    assert not result.healthy
    assert result.detail.startswith("no psycopg/psycopg2 on the host")


def test_postgresql_reports_the_longest_query_and_judges_it_when_asked(fake_pg: InstallFakePg) -> None:
    answers = pg_answers() | {health_probes.LONGEST_QUERY: 125.42}
    fake_pg(answers)
    result = probe_postgresql(PG_SPEC)
    assert result.healthy and result.observed["longest_query_s"] == 125.4
    assert result.observed["database_size_bytes"] == 8_000_000
    fake_pg(answers)
    slow = probe_postgresql(PG_SPEC | {"max_query_seconds": 60})
    assert not slow.healthy and slow.detail == "a query has been running 125 s (> 60 s)"


# -- recent procedures (the clinic's audit trail) ---------------------------------------------------


def test_recent_procedures_read_the_last_ok_record_of_each(tmp_path: Path) -> None:
    trail = tmp_path / "audit.jsonl"
    records = [
        {"procedure": "backup", "outcome": "ok", "at": "2026-11-25T01:00:00Z"},
        {"procedure": "backup", "outcome": "ok", "at": "2026-11-26T01:00:00Z"},
        {"procedure": "backup", "outcome": "failed", "at": "2026-11-26T05:00:00Z"},
        {"procedure": "restore_drill", "outcome": "started", "at": "2026-11-26T02:00:00Z"},
    ]
    trail.write_text("".join(json.dumps(record) + "\n" for record in records) + "not json\n")
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    spec = {
        "trail": str(trail),
        "procedures": [{"name": "backup", "max_age_hours": 26}, {"name": "restore_drill", "max_age_hours": None}],
    }
    backup, drill = health_probes.probe_recent_procedures(spec, now)
    assert (backup.name, backup.kind, backup.healthy) == ("backup", "procedure", True)
    assert backup.observed == {"last_ok": "2026-11-26T01:00:00Z", "age_hours": 11.0}
    # No successful drill: reported; unhealthy only when a maximum age is asked for.
    assert drill.healthy and drill.observed["age_hours"] is None
    spec["procedures"][0]["max_age_hours"] = 6
    spec["procedures"][1]["max_age_hours"] = 200
    backup, drill = health_probes.probe_recent_procedures(spec, now)
    assert not backup.healthy and "more than 6 h" in backup.detail
    assert not drill.healthy and drill.detail.startswith("no successful restore_drill")
    missing = health_probes.probe_recent_procedures({"trail": str(tmp_path / "none"), "procedures": [{"name": "x"}]})
    assert missing[0].healthy and missing[0].observed["last_ok"] is None
