"""The one-call rollback module, driven as Ansible runs it, on a real release layout.

systemctl and the app are not here: the restart runs a stand-in command through run_command and the
readiness URL is a local HTTP server that names the release current on disk, as the app would.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.release_store import ReleaseStore
from ansible_collections.clinicops.runbook.plugins.modules import release_rollback

from .test_release_store import BOOTSTRAP, make_release


@pytest.fixture
def app_root(tmp_path: Path) -> Path:
    root = tmp_path / "clinic"
    (root / "shared").mkdir(parents=True)
    make_release(root, BOOTSTRAP)
    (root / "current").symlink_to(root / "releases" / BOOTSTRAP)
    store = ReleaseStore(str(root))
    for release_id in ("r2", "r3"):
        store.prepare(release_id)
        make_release(root, release_id)
        store.activate(release_id)
    return root


@pytest.fixture
def app(app_root: Path):
    """A readiness endpoint answering 200 with the release `current` points at."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"status": "ok", "release": os.path.basename(os.readlink(app_root / "current"))})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/health"
    server.shutdown()


def run(app_root: Path, url: str, tmp_path: Path, capsys, monkeypatch, check_mode: bool = False, **extra: Any):
    restarts: list[list[str]] = []

    def fake_run_command(self, argv, **_kwargs):
        restarts.append(list(argv))
        return 0, "", ""

    monkeypatch.setattr(release_rollback.AnsibleModule, "run_command", fake_run_command)
    args = {
        "app_root": str(app_root),
        "service": "clinic-app",
        "health_url": url,
        "health_deadline": 5,
        "owner": "run-1-kinshasa",
        "run_id": "run-1",
        "who": "ops",
        "lock_path": str(tmp_path / "lock" / "clinic.lock"),
        "trail": str(tmp_path / "audit.jsonl"),
        "_ansible_check_mode": check_mode,
        **extra,
    }
    with patch_module_args(args), pytest.raises(SystemExit):
        release_rollback.main()
    return json.loads(capsys.readouterr().out), restarts


def trail(tmp_path: Path) -> list[dict]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_one_call_switches_restarts_gates_records_and_unlocks(app_root, app, tmp_path, capsys, monkeypatch):
    result, restarts = run(app_root, app, tmp_path, capsys, monkeypatch)
    assert result["changed"] and (result["switched_from"], result["current"]) == ("r3", "r2")
    assert os.readlink(app_root / "current").endswith("releases/r2")
    assert restarts == [["systemctl", "restart", "clinic-app"]]
    assert result["health"]["healthy"]
    records = trail(tmp_path)
    assert [r["outcome"] for r in records] == ["started", "ok"]
    assert records[-1]["details"] == {"from": "r3", "to": "r2", "mark": "rolled_back", "fast": True}
    assert run(app_root, app, tmp_path, capsys, monkeypatch, to="r3", details={"restore_data": False})[0]["changed"]
    assert trail(tmp_path)[-1]["details"]["restore_data"] is False
    assert not (tmp_path / "lock" / "clinic.lock").exists()


def test_check_mode_reports_the_switch_and_touches_nothing(app_root, app, tmp_path, capsys, monkeypatch):
    result, restarts = run(app_root, app, tmp_path, capsys, monkeypatch, check_mode=True)
    assert result["changed"] and result["current"] == "r2"
    assert os.readlink(app_root / "current").endswith("releases/r3")
    assert restarts == [] and trail(tmp_path) == [] and not (tmp_path / "lock").exists()


def test_a_refused_target_changes_nothing_but_is_recorded(app_root, app, tmp_path, capsys, monkeypatch):
    result, restarts = run(app_root, app, tmp_path, capsys, monkeypatch, to="gone")
    assert result["failed"] and "releases/gone does not exist" in result["msg"]
    assert os.readlink(app_root / "current").endswith("releases/r3") and restarts == []
    assert [r["outcome"] for r in trail(tmp_path)] == ["started", "failed"]
    assert not (tmp_path / "lock" / "clinic.lock").exists()


def test_a_held_lock_refuses_before_anything(app_root, app, tmp_path, capsys, monkeypatch):
    lock = tmp_path / "lock" / "clinic.lock"
    lock.parent.mkdir()
    lock.write_text(
        json.dumps(
            {
                "owner": "backup-7",
                "run_id": "backup-7",
                "operation": "backup",
                "expires": "2999-01-01T00:00:00Z",
                "started": "2026-01-01T00:00:00Z",
            }
        )
    )
    result, restarts = run(app_root, app, tmp_path, capsys, monkeypatch)
    assert result["failed"] and "locked by run backup-7 (operation backup" in result["msg"]
    assert "nothing was changed" in result["msg"] and restarts == [] and trail(tmp_path) == []
    assert os.readlink(app_root / "current").endswith("releases/r3")
