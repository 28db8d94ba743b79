"""Redaction of diagnostics bundles: the clinic's known secrets by value, and the generic shapes of a secret.

Also the bundle's own pieces that need no clinic (bounded tails, the archive written atomically) and the
``diag_bundle`` module run against fake commands: no secret of the clinic ever reaches the archive.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.incident_bundle import (
    bounded,
    check_name,
    tail_lines,
    write_archive,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.redaction import MASK, Redactor
from ansible_collections.clinicops.runbook.plugins.modules import diag_bundle
from hypothesis import given
from hypothesis import strategies as st

DB_PASSWORD = "Zq7-db-s3cret-pass"
REPO_PASSWORD = "restic/Repo+pass=42"


def test_known_values_are_masked_wherever_they_appear() -> None:
    redactor = Redactor([DB_PASSWORD, REPO_PASSWORD, "", None])
    text = f"app: connect failed for clinic_app with {DB_PASSWORD}\nrepo {REPO_PASSWORD} opened"
    out = redactor.redact(text)
    assert DB_PASSWORD not in out and REPO_PASSWORD not in out
    assert out.count(MASK) == 2
    assert redactor.counts["known_value"] == 2


def test_the_url_encoded_form_of_a_known_value_is_masked_too() -> None:
    out = Redactor([REPO_PASSWORD]).redact("GET /backup?x=restic%2FRepo%2Bpass%3D42 HTTP/1.1")
    assert "restic%2FRepo%2Bpass%3D42" not in out


def test_a_longer_secret_is_masked_whole_before_a_shorter_one_it_contains() -> None:
    out = Redactor(["abcdef", "abcdef-longer"]).redact("x abcdef-longer y")
    assert out == f"x {MASK} y"


def test_secrets_too_short_to_mask_are_reported_not_used() -> None:
    redactor = Redactor(["abc", DB_PASSWORD])
    assert redactor.too_short == ["abc"]
    assert redactor.redact("abc") == "abc"


@pytest.mark.parametrize(
    ("line", "leaked"),
    [
        ("PGPASSWORD=hunter2hunter2 psql -h db", "hunter2hunter2"),
        ("password=opensesame1 host=127.0.0.1", "opensesame1"),
        ('{"db_password": "jsonsecret9", "user": "x"}', "jsonsecret9"),
        ("api_token: tok_live_abcdef", "tok_live_abcdef"),
        ("client_secret='very-secret-1'", "very-secret-1"),
        ("GET /x?token=abcdef123&page=2", "abcdef123"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
        ("proxy-authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        ("DATABASE_URL=postgres://clinic_app:urlpass99@127.0.0.1:5432/clinicdb", "urlpass99"),
        ("redis://:redispass7@localhost:6379/0", "redispass7"),
        ("ALTER ROLE clinic_app PASSWORD 'sqlpass123'", "sqlpass123"),
    ],
)
def test_generic_shapes_of_a_secret_are_masked(line: str, leaked: str) -> None:
    redactor = Redactor([])
    out = redactor.redact(line)
    assert leaked not in out, out
    assert MASK in out
    assert redactor.total >= 1


def test_text_without_secrets_is_left_as_it_is() -> None:
    text = (
        "2026-11-26T10:00:00Z nginx: 200 GET /health 3 ms\npassword authentication failed for user clinic_app\n"
        "sudo[996]:     root : PWD=/root ; USER=root ; COMMAND=/bin/sh"
    )
    redactor = Redactor([DB_PASSWORD])
    assert redactor.redact(text) == text
    assert redactor.total == 0


def test_the_url_keeps_its_user_and_host() -> None:
    out = Redactor([]).redact("postgres://clinic_app:pw-1234@db.internal:5432/clinicdb")
    assert out == f"postgres://clinic_app:{MASK}@db.internal:5432/clinicdb"


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=80))
def test_a_known_value_never_survives_whatever_surrounds_it(noise: str) -> None:
    text = noise + DB_PASSWORD + noise[::-1] + DB_PASSWORD
    assert DB_PASSWORD not in Redactor([DB_PASSWORD]).redact(text)


def test_bytes_that_are_not_utf8_are_replaced_not_fatal() -> None:
    out = Redactor([DB_PASSWORD]).redact_bytes(b"\xff\xfe " + DB_PASSWORD.encode() + b"\n")
    assert DB_PASSWORD.encode() not in out


# -- the bundle's pieces --------------------------------------------------------------------------------


def test_tail_lines_reads_the_last_lines_of_a_large_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"line %d\n" % number for number in range(100_000)))
    assert tail_lines(str(log), 3) == b"line 99997\nline 99998\nline 99999\n"
    assert tail_lines(str(log), 0) == b""
    short = tmp_path / "short.log"
    short.write_bytes(b"only\nno newline at the end")
    assert tail_lines(str(short), 10) == b"only\nno newline at the end"


def test_bounded_keeps_the_end_and_says_it_cut() -> None:
    assert bounded(b"x" * 10, 20) == b"x" * 10
    cut = bounded(b"a" * 10 + b"b" * 10, 10)
    assert cut.endswith(b"b" * 10) and b"cut to the last 10 bytes" in cut


def test_the_archive_is_owner_only_and_named_by_the_incident(tmp_path: Path) -> None:
    path = write_archive(str(tmp_path), "INC-20261126-101500-kinshasa", [("a.txt", b"A"), ("logs/b.log", b"B")])
    assert Path(path).name == "INC-20261126-101500-kinshasa.tar.gz"
    assert os.stat(path).st_mode & 0o777 == 0o600
    with tarfile.open(path) as archive:
        assert archive.getnames() == ["INC-20261126-101500-kinshasa/a.txt", "INC-20261126-101500-kinshasa/logs/b.log"]
    assert [entry.name for entry in tmp_path.iterdir()] == [Path(path).name]  # no partial file left


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "-x", "x" * 200])
def test_unsafe_bundle_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        check_name(name)


# -- the module, with fake commands ----------------------------------------------------------------------


@pytest.fixture
def clinic_files(tmp_path: Path) -> dict[str, Path]:
    app_log = tmp_path / "app.log"
    app_log.write_text(f"started\nconnecting postgres://clinic_app:{DB_PASSWORD}@127.0.0.1/clinicdb\nready\n")
    releases = tmp_path / "releases.json"
    releases.write_text(json.dumps({"format": 1, "releases": [{"id": "r1", "status": "active"}]}))
    trail = tmp_path / "audit.jsonl"
    trail.write_text("".join(json.dumps({"procedure": "deploy", "n": n}) + "\n" for n in range(300)))
    return {"app_log": app_log, "releases": releases, "trail": trail, "dest": tmp_path / "out"}


def fake_run_command(calls: list[list[str]]):
    def run_command(argv: list[str], **_kwargs: Any) -> tuple[int, Any, Any]:
        calls.append(list(argv))
        command = argv[2:] if argv[0] == "timeout" else argv
        if command[0] == "systemctl" and command[1] == "is-active":
            return (0, "active\n", "")
        if command[0] == "psql" or command[:1] == ["runuser"]:
            return (0, f"pid,query\n42,ALTER ROLE clinic_app PASSWORD '{DB_PASSWORD}'\n".encode(), b"")
        if command[0] == "journalctl":  # --reverse: the newest first
            return (0, f"Nov 26 10:02 app[1]: PGPASSWORD={DB_PASSWORD}\nNov 26 10:01 app[1]: started\n".encode(), b"")
        return (0, b"ok\n", b"")

    return run_command


def run_bundle(monkeypatch, capsys, files: dict[str, Path], check_mode: bool = False, **extra: Any) -> dict:
    calls: list[list[str]] = []
    monkeypatch.setattr(
        diag_bundle.AnsibleModule, "run_command", lambda self, argv, **kw: fake_run_command(calls)(argv)
    )
    args = {
        "name": "INC-20261126-101500-kinshasa",
        "dest_dir": str(files["dest"]),
        "units": ["clinic-app", "nginx"],
        "log_files": [str(files["app_log"]), str(files["app_log"].with_name("missing.log"))],
        "release_log": str(files["releases"]),
        "audit_trail": str(files["trail"]),
        "postgresql": {"database": "clinicdb"},
        "secrets": [DB_PASSWORD],
        "_ansible_check_mode": check_mode,
        **extra,
    }
    with patch_module_args(args), pytest.raises(SystemExit):
        diag_bundle.main()
    result = json.loads(capsys.readouterr().out)
    result["_calls"] = calls
    return result


def test_the_bundle_holds_every_item_and_no_secret(monkeypatch, capsys, clinic_files) -> None:
    result = run_bundle(monkeypatch, capsys, clinic_files)
    assert not result.get("failed"), result
    assert result["healthy"] is True and result["changed"] is True
    assert set(result["files"]) >= {
        "services.txt",
        "journal.txt",
        "logs/app.log",
        "pg_stat_activity.csv",
        "disk.txt",
        "memory.txt",
        "releases.json",
        "audit.jsonl",
        "health.json",
        "manifest.json",
    }
    assert "logs/missing.log" in result["missing"]
    assert result["redactions"]["known_value"] >= 3
    with tarfile.open(result["archive"]) as archive:
        contents = {
            member.name.split("/", 1)[1]: archive.extractfile(member).read() for member in archive if member.isfile()
        }
    assert all(DB_PASSWORD.encode() not in data for data in contents.values())
    assert len(contents["audit.jsonl"].splitlines()) == 200  # the last 200 records only
    manifest = json.loads(contents["manifest.json"])
    assert manifest["missing"] == result["missing"]
    every_command = [argv for argv in result["_calls"] if argv[0] == "timeout"]
    (journal,) = [argv for argv in every_command if "journalctl" in argv]
    # The newest entries since the start (with --since, -n alone would keep the oldest), in time order.
    assert "--since=-2h" in journal and "--reverse" in journal and journal[journal.index("-n") + 1] == "2000"
    lines = contents["journal.txt"].decode().splitlines()
    assert [line.split(" app[1]")[0] for line in lines[1:]] == ["Nov 26 10:01", "Nov 26 10:02"]
    assert DB_PASSWORD not in json.dumps(result)


def test_check_mode_collects_nothing_and_writes_nothing(monkeypatch, capsys, clinic_files) -> None:
    result = run_bundle(monkeypatch, capsys, clinic_files, check_mode=True)
    assert result["archive"] is None and "pg_stat_activity.csv" in result["files"]
    assert result["_calls"] == []
    assert not clinic_files["dest"].exists()
