"""The restic client: tags, the GFS flags, JSON parsing, and the exact argv/env of every call.

No restic binary is needed: ``FakeRun`` stands in for ``AnsibleModule.run_command``, records what it
is asked to run and answers with canned (rc, stdout, stderr).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import (
    ResticError,
    ResticRepo,
    dataset_tag,
    first_json_line,
    gfs_arguments,
    last_json_message,
    tag,
    tags_of,
)
from hypothesis import given
from hypothesis import strategies as st

REPOSITORY = "sftp:backup@vault.example:/srv/restic/kinshasa"
PASSWORD_FILE = "/etc/clinicops/restic-password"
DEFAULT_POLICY = {"keep_last": 0, "keep_daily": 30, "keep_weekly": 12, "keep_monthly": 12, "keep_yearly": 0}
DEFAULT_FLAGS = ["--keep-daily", "30", "--keep-weekly", "12", "--keep-monthly", "12"]
DATASET_TAGS = ["clinicops", "clinic=kinshasa", "dataset=postgresql:clinicdb"]


@dataclass
class Call:
    argv: list[str]
    env: dict[str, str]
    data: bytes | str | None


@dataclass
class FakeRun:
    """``run(argv, environ_update, data) -> (rc, out, err)`` answering from a queue (default: success)."""

    answers: list[tuple[int, str, str]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)

    def __call__(self, argv: list[str], env: dict[str, str], data: bytes | str | None) -> tuple[int, str, str]:
        assert isinstance(argv, list), "argv must be a list: nothing goes through a shell"
        assert all(isinstance(item, str) for item in argv)
        self.calls.append(Call(list(argv), dict(env), data))
        return self.answers.pop(0) if self.answers else (0, "", "")

    @property
    def argv(self) -> list[str]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0].argv


def repo_with(*answers: tuple[int, str, str], **options: str) -> tuple[ResticRepo, FakeRun]:
    run = FakeRun(list(answers))
    return ResticRepo(run, REPOSITORY, PASSWORD_FILE, **options), run


# -- tags ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("kinshasa", "clinic=kinshasa"),
        ("Kin shasa", "clinic=Kin%20shasa"),
        ("a,b", "clinic=a%2Cb"),
        ("../etc/passwd", "clinic=../etc/passwd"),
        ("$(id);rm -rf /`x`|&><*'\"", "clinic=%24%28id%29%3Brm%20-rf%20/%60x%60%7C%26%3E%3C%2A%27%22"),
        ("tab\tnew\nline", "clinic=tab%09new%0Aline"),
        ("Gombé", "clinic=Gomb%C3%A9"),
        ("50%", "clinic=50%25"),
        ("v2.0.1+build:7@x=y", "clinic=v2.0.1+build:7@x=y"),
        (20261125, "clinic=20261125"),
    ],
)
def test_tag_encodes_what_a_restic_tag_cannot_hold(value: object, expected: str) -> None:
    assert tag("clinic", value) == expected


@given(st.text(max_size=40), st.text(max_size=40))
def test_tag_values_never_split_and_never_collide(value: str, other: str) -> None:
    result = tag("release", value)
    assert result.startswith("release=")
    body = result[len("release=") :]
    assert re.fullmatch(r"[A-Za-z0-9._:=@+/%~-]*", body)
    assert "," not in body and " " not in body
    assert (tag("release", other) == result) == (other == value)
    assert unquote(body) == value


def test_dataset_tag_joins_engine_and_name() -> None:
    assert dataset_tag("postgresql", "clinicdb") == "dataset=postgresql:clinicdb"
    assert dataset_tag("sqlite", "/var/lib/clinic/app.db") == "dataset=sqlite:/var/lib/clinic/app.db"
    assert dataset_tag("files", "/srv/clinic/shared uploads") == "dataset=files:/srv/clinic/shared%20uploads"
    # Paths that used to collapse into one tag (and one retention group) stay apart.
    assert dataset_tag("files", "/srv/a_b") != dataset_tag("files", "/srv/a/b")


def test_tags_of_reads_key_value_tags_only() -> None:
    snapshot = {"tags": ["clinicops", "clinic=kinshasa", "release=r=1", "date=20261125"]}
    assert tags_of(snapshot) == {"clinic": "kinshasa", "release": "r=1", "date": "20261125"}
    assert tags_of({}) == {}
    assert tags_of({"tags": None}) == {}


# -- retention -------------------------------------------------------------------------------------


def test_gfs_defaults_give_exactly_the_daily_weekly_monthly_flags() -> None:
    assert gfs_arguments(DEFAULT_POLICY) == DEFAULT_FLAGS
    assert gfs_arguments({"keep_daily": 30, "keep_weekly": 12, "keep_monthly": 12}) == DEFAULT_FLAGS


def test_gfs_flags_come_in_a_fixed_order_and_zero_or_none_means_off() -> None:
    policy = {"keep_yearly": 5, "keep_monthly": None, "keep_weekly": 0, "keep_daily": "7", "keep_last": 3}
    assert gfs_arguments(policy) == ["--keep-last", "3", "--keep-daily", "7", "--keep-yearly", "5"]


@pytest.mark.parametrize(
    "policy",
    [{}, {"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0}, dict.fromkeys(DEFAULT_POLICY, 0)],
)
def test_a_policy_keeping_nothing_is_refused(policy: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"^a retention policy must keep something \(set keep_daily, keep_weekly"):
        gfs_arguments(policy)


def test_a_negative_count_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^keep_weekly must not be negative$"):
        gfs_arguments({"keep_daily": 30, "keep_weekly": -1})
    with pytest.raises(ValueError, match="must not be negative"):
        gfs_arguments(dict.fromkeys(DEFAULT_POLICY, -2))


# -- JSON output -----------------------------------------------------------------------------------

BACKUP_STREAM = "\n".join(
    [
        '{"message_type":"status","percent_done":0}',
        "{not json at all",
        "unlocked stale lock",
        '{"message_type":"summary","snapshot_id":"aaaa","data_added":1}',
        '{"message_type":"status","percent_done":1}',
        '  {"message_type":"summary","snapshot_id":"4f1c2a9e0b7d","data_added":2048}  ',
        '{"message_type":"status","percent_done":1}',
        "",
    ]
)


def test_last_json_message_takes_the_last_summary_among_status_lines() -> None:
    summary = last_json_message(BACKUP_STREAM, "summary")
    assert summary == {"message_type": "summary", "snapshot_id": "4f1c2a9e0b7d", "data_added": 2048}


@pytest.mark.parametrize("text", ['{"message_type":"status"}\n{"message_type":"summary"\ngarbage', "", None])
def test_last_json_message_without_one_raises(text: str | None) -> None:
    with pytest.raises(ResticError, match=r"^restic gave no summary message$"):
        last_json_message(text, "summary")


def test_first_json_line() -> None:
    assert first_json_line('applying policy\n  [{"keep": []}]\n{"second": 1}\n') == '[{"keep": []}]'
    assert first_json_line('{"a": 1}') == '{"a": 1}'
    assert first_json_line("no json here\n") is None
    assert first_json_line(None) is None


# -- calls: argv and environment ------------------------------------------------------------------


def test_environment_carries_the_password_file_never_the_password() -> None:
    repo, run = repo_with()
    repo.call(["version"])
    call = run.calls[0]
    assert call.argv == ["restic", "version"]
    assert call.env == {
        "RESTIC_REPOSITORY": REPOSITORY,
        "RESTIC_PASSWORD_FILE": PASSWORD_FILE,
        "RESTIC_PROGRESS_FPS": "0.1",
    }
    assert call.data is None
    assert not any(PASSWORD_FILE in item or "password" in item for item in call.argv)


def test_cache_dir_goes_into_the_environment() -> None:
    repo, run = repo_with(cache_dir="/var/cache/clinicops/restic")
    repo.call(["version"])
    assert run.calls[0].env["RESTIC_CACHE_DIR"] == "/var/cache/clinicops/restic"
    assert "RESTIC_PASSWORD" not in run.calls[0].env


def test_sftp_command_is_one_option_argument_before_the_subcommand() -> None:
    command = "ssh -i /root/.ssh/backup -p 2222 backup@vault.example -s sftp"
    repo, run = repo_with(sftp_command=command)
    repo.snapshots()
    assert run.argv == ["restic", "-o", f"sftp.command={command}", "snapshots", "--json"]


def test_custom_restic_binary() -> None:
    repo, run = repo_with(restic="/usr/local/bin/restic")
    repo.init()
    assert run.argv == ["/usr/local/bin/restic", "init", "--repository-version", "2"]


def test_a_failure_names_the_subcommand_exit_code_and_last_stderr_line() -> None:
    err = "open repository\nFatal: unable to open config file\nFatal: wrong password or no key found\n\n"
    repo, _run = repo_with((12, "", err))
    with pytest.raises(ResticError) as failed:
        repo.snapshots(DATASET_TAGS)
    assert str(failed.value) == "restic snapshots exited 12: Fatal: wrong password or no key found"


def test_a_failure_without_stderr_uses_stdout_then_says_no_output() -> None:
    repo, _run = repo_with((1, "something on stdout\n", ""), (3, "", ""))
    with pytest.raises(ResticError, match=r"^restic check exited 1: something on stdout$"):
        repo.check()
    with pytest.raises(ResticError, match=r"^restic unlock exited 3: no output$"):
        repo.unlock_stale()


def test_ok_codes_accept_other_exit_codes() -> None:
    repo, _run = repo_with((3, "partial", "warning: could not read one file"))
    assert repo.call(["backup", "/x"], ok_codes=(0, 3)) == (3, "partial", "warning: could not read one file")


@pytest.mark.parametrize(("rc", "initialized"), [(0, True), (1, False), (10, False)])
def test_is_initialized_follows_the_exit_code_of_cat_config(rc: int, initialized: bool) -> None:
    repo, run = repo_with((rc, "", "Fatal: repository does not exist"))
    assert repo.is_initialized() is initialized
    assert run.argv == ["restic", "cat", "config"]


def test_unlock_removes_only_stale_locks() -> None:
    repo, run = repo_with()
    repo.unlock_stale()
    assert run.argv == ["restic", "unlock"]


def test_backup_tags_each_snapshot_and_returns_the_summary() -> None:
    repo, run = repo_with((0, BACKUP_STREAM, ""))
    summary = repo.backup(["/var/backups/clinicops/spool/postgresql-clinicdb"], DATASET_TAGS, "kinshasa")
    assert summary["snapshot_id"] == "4f1c2a9e0b7d"
    assert run.argv == [
        "restic",
        "backup",
        "--json",
        "--host",
        "kinshasa",
        "--tag",
        "clinicops",
        "--tag",
        "clinic=kinshasa",
        "--tag",
        "dataset=postgresql:clinicdb",
        "/var/backups/clinicops/spool/postgresql-clinicdb",
    ]


def test_backup_without_a_summary_fails() -> None:
    repo, _run = repo_with((0, '{"message_type":"status"}\n', ""))
    with pytest.raises(ResticError, match="no summary message"):
        repo.backup(["/x"], ["clinicops"], "kinshasa")


def test_snapshots_and_tags_in_one_comma_joined_filter() -> None:
    listing = [{"id": "4f1c" * 16, "short_id": "4f1c4f1c", "tags": DATASET_TAGS}]
    repo, run = repo_with((0, json.dumps(listing), ""))
    assert repo.snapshots(DATASET_TAGS) == listing
    assert run.argv == [
        "restic",
        "snapshots",
        "--json",
        "--tag",
        "clinicops,clinic=kinshasa,dataset=postgresql:clinicdb",
    ]
    assert run.argv.count("--tag") == 1


@pytest.mark.parametrize("out", ["", "[]", "null"])
def test_no_snapshots_is_an_empty_list(out: str) -> None:
    repo, run = repo_with((0, out, ""))
    assert repo.snapshots() == []
    assert run.argv == ["restic", "snapshots", "--json"]


def test_restore_and_dump() -> None:
    repo, run = repo_with((0, "", ""), (0, '{"format": 1}', ""))
    repo.restore("4f1c2a9e", "/var/backups/clinicops/spool/restore-x", includes=["/spool/a", "/spool/b"])
    assert repo.dump("4f1c2a9e", "/spool/a/manifest.json") == '{"format": 1}'
    assert [call.argv for call in run.calls] == [
        [
            "restic",
            "restore",
            "4f1c2a9e",
            "--target",
            "/var/backups/clinicops/spool/restore-x",
            "--include",
            "/spool/a",
            "--include",
            "/spool/b",
        ],
        ["restic", "dump", "4f1c2a9e", "/spool/a/manifest.json"],
    ]


FORGET_OUT = 'applying policy\n[{"tags": null, "keep": [{"id": "a"}], "remove": [{"id": "b"}]}]\nremoved 1 snapshot\n'


def test_forget_with_prune_gets_the_gfs_flags_and_one_tag_filter() -> None:
    repo, run = repo_with((0, FORGET_OUT, ""))
    groups = repo.forget(DEFAULT_POLICY, DATASET_TAGS, dry_run=False)
    assert groups == [{"tags": None, "keep": [{"id": "a"}], "remove": [{"id": "b"}]}]
    assert run.argv == [
        "restic",
        "forget",
        "--json",
        "--group-by",
        "host",
        *DEFAULT_FLAGS,
        "--tag",
        "clinicops,clinic=kinshasa,dataset=postgresql:clinicdb",
        "--prune",
    ]


def test_forget_dry_run_never_prunes() -> None:
    repo, run = repo_with((0, FORGET_OUT, ""))
    repo.forget(DEFAULT_POLICY, DATASET_TAGS, dry_run=True)
    assert run.argv[-1] == "--dry-run"
    assert "--prune" not in run.argv


def test_forget_without_prune() -> None:
    repo, run = repo_with((0, "[]", ""))
    assert repo.forget({"keep_last": 1}, DATASET_TAGS, dry_run=False, prune=False) == []
    assert "--prune" not in run.argv and "--dry-run" not in run.argv
    assert run.argv[5:7] == ["--keep-last", "1"]


def test_forget_with_an_empty_policy_runs_nothing() -> None:
    repo, run = repo_with()
    with pytest.raises(ValueError, match="must keep something"):
        repo.forget({"keep_daily": 0}, DATASET_TAGS, dry_run=False)
    assert run.calls == []


def test_check_init_like_and_copy_from() -> None:
    repo, run = repo_with()
    repo.check()
    repo.check(read_data_subset="1/7")
    repo.init_like("/var/backups/clinicops/repo", "/etc/clinicops/restic-password")
    repo.copy_from("/var/backups/clinicops/repo", "/etc/clinicops/restic-password", ["clinicops", "clinic=kinshasa"])
    assert [call.argv for call in run.calls] == [
        ["restic", "check"],
        ["restic", "check", "--read-data-subset", "1/7"],
        [
            "restic",
            "init",
            "--repository-version",
            "2",
            "--from-repo",
            "/var/backups/clinicops/repo",
            "--from-password-file",
            "/etc/clinicops/restic-password",
            "--copy-chunker-params",
        ],
        [
            "restic",
            "copy",
            "--from-repo",
            "/var/backups/clinicops/repo",
            "--from-password-file",
            "/etc/clinicops/restic-password",
            "--tag",
            "clinicops,clinic=kinshasa",
        ],
    ]
