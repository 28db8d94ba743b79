"""The clinic's nightly job: its configuration is refused clearly, and it maps data sets like db_backup.

The job itself (real restic, PostgreSQL, Redis, systemd) runs in tests/integration/test_backup_schedule.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops import scheduled_backup
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_job import snapshot_tags

GOOD = {
    "clinic": "kinshasa",
    "repository": "/var/backups/clinicops/repo",
    "password_file": "/etc/clinicops/restic-password",
    "datasets": [
        {"engine": "postgresql", "name": "clinicdb", "user": "clinic_app"},
        {"engine": "redis", "name": "redis"},
    ],
}


def write(tmp_path: Path, config: object) -> str:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(config) if not isinstance(config, str) else config)
    return str(path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "cannot read"),
        ({**GOOD, "repository": ""}, "lacks repository"),
        ({k: v for k, v in GOOD.items() if k != "datasets"}, "lacks datasets"),
        ({**GOOD, "datasets": [{"engine": "mysql", "name": "x"}]}, "needs an engine among"),
        ({**GOOD, "datasets": [{"engine": "files"}]}, "and a name"),
    ],
)
def test_a_bad_configuration_exits_2_and_touches_nothing(tmp_path, capsys, config, message):
    code = scheduled_backup.main([write(tmp_path, config)])
    out = capsys.readouterr().out
    assert code == scheduled_backup.EXIT_CONFIG
    assert message in out and "nothing was backed up or removed" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json"]


def test_a_missing_configuration_file_is_named(tmp_path, capsys):
    missing = str(tmp_path / "absent.json")
    assert scheduled_backup.main([missing]) == scheduled_backup.EXIT_CONFIG
    assert missing in capsys.readouterr().out


def test_usage_without_a_configuration(capsys):
    assert scheduled_backup.main([]) == scheduled_backup.EXIT_CONFIG
    assert "usage" in capsys.readouterr().out


def test_data_sets_become_db_backup_parameters_tagged_as_the_timer(tmp_path):
    config = scheduled_backup.load_config(write(tmp_path, {**GOOD, "postgresql": {"port": 5433}}))
    params = scheduled_backup.dataset_params(config, config["datasets"][0])
    assert params["postgresql"] == {
        "host": "127.0.0.1",
        "port": 5433,
        "user": "clinic_app",
        "passfile": "/etc/clinicops/pgpass",
        "os_superuser": "postgres",
    }
    assert params["spool_dir"] == "/var/backups/clinicops/spool"
    tags = snapshot_tags(params, "20261126")
    assert tags[:5] == [
        "clinicops",
        "clinic=kinshasa",
        "engine=postgresql",
        "dataset=postgresql:clinicdb",
        "date=20261126",
    ]
    assert tags[-1] == "trigger=timer"
    assert not any(tag.startswith("release=") for tag in tags)


def test_the_subprocess_runner_passes_argv_and_environment_without_a_shell():
    code, out, _err = scheduled_backup.subprocess_runner(
        ["sh", "-c", 'printf "%s|%s" "$RESTIC_REPOSITORY" "$1"', "sh", "a; rm -rf /"], {"RESTIC_REPOSITORY": "r"}, None
    )
    assert (code, out) == (0, "r|a; rm -rf /")
