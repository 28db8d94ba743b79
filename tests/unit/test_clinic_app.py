"""The fixture clinic app's parts that need no database: settings, flags, migrations, logging, HTTP."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest

from clinicops.project import project_root

from .conftest import POLL_INTERVAL, FakeRedis

APP_SOURCE = project_root() / "lab" / "app" / "clinic_app.py"


def load_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("clinic_app_under_test", APP_SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app() -> ModuleType:
    """A fresh copy of the app module per test, so patched globals never leak."""
    return load_app()


@pytest.fixture
def environ() -> Iterator[None]:
    """Restore os.environ after the test, whatever the code under test put there."""
    with mock.patch.dict(os.environ):
        yield


# -- load_env_file ---------------------------------------------------------------------------------


def test_load_env_file_reads_key_value_lines(app: ModuleType, tmp_path: Path, environ: None) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "# Managed by Ansible\n"
        "\n"
        "CLINIC_ID=paris\n"
        "  APP_PORT = 8000  \n"
        'APP_LOG_FILE="/var/log/clinic app/app.log"\n'
        "PGPASSWORD=abc=def==\n"
        "not a setting\n"
        "#FEATURE_X=1\n",
        encoding="utf-8",
    )
    app.load_env_file(str(env_file))
    assert os.environ["CLINIC_ID"] == "paris"
    assert os.environ["APP_PORT"] == "8000"
    assert os.environ["APP_LOG_FILE"] == "/var/log/clinic app/app.log"
    assert os.environ["PGPASSWORD"] == "abc=def=="
    assert "FEATURE_X" not in os.environ
    assert "#FEATURE_X" not in os.environ


def test_load_env_file_overrides_existing_values(app: ModuleType, tmp_path: Path, environ: None) -> None:
    os.environ["CLINIC_ID"] = "old"
    env_file = tmp_path / "app.env"
    env_file.write_text("CLINIC_ID=new\n", encoding="utf-8")
    app.load_env_file(str(env_file))
    assert os.environ["CLINIC_ID"] == "new"


def test_load_env_file_missing_file_raises(app: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        app.load_env_file(str(tmp_path / "absent.env"))


# -- read_flags ------------------------------------------------------------------------------------


def test_read_flags_from_feature_variables(app: ModuleType) -> None:
    env = {
        "FEATURE_NEW_BOOKING": "true",
        "FEATURE_SMS": "1",
        "FEATURE_DARK_MODE": "Yes",
        "FEATURE_BETA": "ON",
        "FEATURE_LEGACY": "false",
        "FEATURE_EXPORT": "0",
        "FEATURE_EMPTY": "",
        "NOT_A_FEATURE_X": "true",
        "PATH": "/usr/bin",
    }
    with mock.patch.dict(os.environ, env, clear=True):
        flags = app.read_flags()
    assert flags == {
        "new_booking": True,
        "sms": True,
        "dark_mode": True,
        "beta": True,
        "legacy": False,
        "export": False,
        "empty": False,
    }


def test_read_flags_without_features_is_empty(app: ModuleType) -> None:
    with mock.patch.dict(os.environ, {"PATH": "/usr/bin"}, clear=True):
        assert app.read_flags() == {}


# -- migrations and release info -------------------------------------------------------------------


def test_shipped_migrations_of_the_source_tree(app: ModuleType) -> None:
    assert app.shipped_migrations() == [
        (1, "0001_init.sql"),
        (2, "0002_patient_email.sql"),
        (3, "0003_broken_halfway.sql"),
    ]


def test_shipped_migrations_are_ordered_by_number(app: ModuleType, tmp_path: Path) -> None:
    for name in ("0010_late.sql", "0002_second.sql", "0001_first.sql", "0009_ninth.sql"):
        (tmp_path / name).write_text("SELECT 1;\n")
    (tmp_path / "README.md").write_text("not a migration\n")
    (tmp_path / "0003_draft.sql.orig").write_text("not a migration either\n")
    app.MIGRATIONS_DIR = tmp_path
    assert app.shipped_migrations() == [
        (1, "0001_first.sql"),
        (2, "0002_second.sql"),
        (9, "0009_ninth.sql"),
        (10, "0010_late.sql"),
    ]


def test_shipped_migrations_of_an_empty_release(app: ModuleType, tmp_path: Path) -> None:
    app.MIGRATIONS_DIR = tmp_path / "migrations"  # a release may ship none
    assert app.shipped_migrations() == []


def test_release_info_reads_release_json(app: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "RELEASE.json").write_text(json.dumps({"version": "2.0.0", "fault": None}))
    app.RELEASE_DIR = tmp_path
    assert app.release_info() == {"version": "2.0.0", "fault": None}


# -- redis_ping ------------------------------------------------------------------------------------


def test_redis_ping_up(app: ModuleType, fake_redis: Callable[..., FakeRedis], environ: None) -> None:
    redis = fake_redis()
    os.environ.update(REDIS_HOST=redis.host, REDIS_PORT=str(redis.port))
    assert app.redis_ping() == "up"
    assert redis.commands == [[b"PING"]]


def test_redis_ping_wrong_answer_is_down(app: ModuleType, fake_redis: Callable[..., FakeRedis], environ: None) -> None:
    redis = fake_redis(pong=b"-MISCONF\r\n")
    os.environ.update(REDIS_HOST=redis.host, REDIS_PORT=str(redis.port))
    assert app.redis_ping() == "down"


def test_redis_ping_closed_port_is_down(app: ModuleType, closed_port: int, environ: None) -> None:
    os.environ.update(REDIS_HOST="127.0.0.1", REDIS_PORT=str(closed_port))
    assert app.redis_ping() == "down"


# -- AppLog ----------------------------------------------------------------------------------------


def test_app_log_reopen_follows_rotation(app: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    log = app.AppLog(str(path))
    log.write("before rotation")
    path.rename(tmp_path / "app.log.1")
    log.write("still the old file")
    log.reopen()
    log.write("after rotation")
    assert (tmp_path / "app.log.1").read_text() == "before rotation\nstill the old file\n"
    assert path.read_text() == "after rotation\n"


def test_app_log_without_file_writes_stdout(app: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    app.AppLog(None).write("to stdout")
    assert capsys.readouterr().out == "to stdout\n"


# -- HTTP endpoints that need no database ----------------------------------------------------------


@pytest.fixture
def app_server(
    app: ModuleType, tmp_path: Path, closed_port: int, environ: None
) -> Iterator[Callable[[str], tuple[int, dict[str, Any]]]]:
    """The app's HTTP handler on a loopback port; PostgreSQL and Redis point at a refusing port."""
    release = tmp_path / "20260101T000000Z-2.1.0"
    release.mkdir()
    (release / "RELEASE.json").write_text(json.dumps({"version": "2.1.0", "fault": None}))
    (release / "migrations").mkdir()
    app.RELEASE_DIR = release
    app.MIGRATIONS_DIR = release / "migrations"
    app.Handler.log = app.AppLog(str(tmp_path / "access.log"))
    os.environ.update(
        CLINIC_ID="paris",
        REDIS_HOST="127.0.0.1",
        REDIS_PORT=str(closed_port),
        PGHOST="127.0.0.1",
        PGPORT=str(closed_port),
        PGDATABASE="clinicdb",
        PGUSER="clinic",
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), app.Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True)
    thread.start()

    def get(path: str) -> tuple[int, dict[str, Any]]:
        url = f"http://127.0.0.1:{server.server_address[1]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    yield get
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_live_endpoint(app_server: Callable[[str], tuple[int, dict[str, Any]]]) -> None:
    assert app_server("/health/live") == (200, {"status": "alive"})


def test_unknown_path_is_404(app_server: Callable[[str], tuple[int, dict[str, Any]]]) -> None:
    assert app_server("/admin") == (404, {"error": "not found"})


def test_health_with_database_down_is_503(app_server: Callable[[str], tuple[int, dict[str, Any]]]) -> None:
    status, body = app_server("/health")
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["database"] == "down"
    assert body["redis"] == "down"
    assert (body["version"], body["release"], body["clinic_id"]) == ("2.1.0", "20260101T000000Z-2.1.0", "paris")


def test_health_fault_variant_is_503_without_touching_the_database(
    app: ModuleType, app_server: Callable[[str], tuple[int, dict[str, Any]]]
) -> None:
    (app.RELEASE_DIR / "RELEASE.json").write_text(json.dumps({"version": "2.1.0-broken-health", "fault": "health"}))
    status, body = app_server("/health")
    assert status == 503
    assert body["reason"] == "fixture fault: health"
    assert body["database"] == "unknown"


def test_version_endpoint_reports_flags_without_database(
    app_server: Callable[[str], tuple[int, dict[str, Any]]],
) -> None:
    os.environ["FEATURE_SMS"] = "on"
    status, body = app_server("/version?verbose=1")
    assert status == 200
    assert body["version"] == "2.1.0"
    assert body["flags"] == {"sms": True}
    assert body["schema_version"] is None


def test_requests_are_logged(app: ModuleType, app_server: Callable[[str], tuple[int, dict[str, Any]]]) -> None:
    app_server("/health/live")
    log = Path(app.Handler.log.path).read_text()
    assert '"GET /health/live HTTP/1.1" 200' in log
