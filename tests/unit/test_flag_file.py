"""The flag_file module: flags set in place, others kept, atomic write with owner and mode, check mode,
refusals that write nothing, the rollback (state=restored), the unit check.

The real file system (a temporary directory; the tests run as root, as the module does on a clinic);
systemctl is faked. The real app and unit are exercised by tests/integration/test_flags_and_cache.py and
the feature_flags molecule scenario.
"""

from __future__ import annotations

import grp
import json
import os
import stat
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops import atomic_files
from ansible_collections.clinicops.runbook.plugins.modules import flag_file

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the module makes files owned by root, as on a clinic")

HEADER = "# Feature flags of clinic-app (clinicops.runbook.feature_flags). Flags only, never a secret."
GROUP = grp.getgrgid(0).gr_name  # a group every machine has
APP_ENV = "EnvironmentFiles=/srv/clinic/shared/app.env (ignore_errors=no)\n"
UNIT_SHOW = APP_ENV + "EnvironmentFiles={path} (ignore_errors=yes)\n"


def run(capsys, monkeypatch, path: Path, check_mode: bool = False, systemctl: str | None = None, **args) -> dict:
    calls: list[list[str]] = []

    def run_command(self, argv, **_kwargs):
        calls.append(argv)
        return 0, systemctl if systemctl is not None else UNIT_SHOW.format(path=path), ""

    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    module_args = {"path": str(path), "header": HEADER, "group": GROUP, "_ansible_check_mode": check_mode, **args}
    with patch_module_args(module_args), pytest.raises(SystemExit):
        flag_file.main()
    result = json.loads(capsys.readouterr().out)
    result["systemctl_calls"] = calls
    return result


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "clinic-app" / "flags.env"


def test_parse_and_render_round_trip_as_the_app_reads_values() -> None:
    text = "# x\nFEATURE_AI_ENABLED=false\nFEATURE_NEW=Yes\nFEATURE_OLD=0\nOTHER=1\n"
    assert flag_file.parse(text) == {"ai_enabled": False, "new": True, "old": False}
    assert flag_file.parse(None) == {}
    rendered = flag_file.render("# h", {"b": True, "a": False})
    assert rendered == "# h\nFEATURE_A=false\nFEATURE_B=true\n"
    assert flag_file.parse(rendered) == {"a": False, "b": True}


def test_the_first_flag_makes_the_directory_and_the_file_root_owned_0640(capsys, monkeypatch, path) -> None:
    result = run(capsys, monkeypatch, path, flags={"ai_enabled": False})
    assert result["changed"] and result["content_changed"]
    assert (result["previous"], result["before"], result["flags"]) == (None, {}, {"ai_enabled": False})
    assert result["changed_flags"] == ["ai_enabled"]
    assert path.read_text() == f"{HEADER}\nFEATURE_AI_ENABLED=false\n"
    info = path.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o640)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o750
    assert [name for name in os.listdir(path.parent) if name != "flags.env"] == []  # no temporary file left


def test_other_flags_keep_their_value_and_the_same_value_changes_nothing(capsys, monkeypatch, path) -> None:
    path.parent.mkdir()
    path.write_text(f"{HEADER}\nFEATURE_AI_ENABLED=true\nFEATURE_SCHEDULER=true\n")
    os.chmod(path, 0o640)
    before = path.stat().st_mtime_ns
    same = run(capsys, monkeypatch, path, flags={"scheduler": "true"})
    assert not same["changed"] and same["changed_flags"] == [] and not same["content_changed"]
    assert path.stat().st_mtime_ns == before
    off = run(capsys, monkeypatch, path, flags={"ai_enabled": False})
    assert off["changed_flags"] == ["ai_enabled"] and off["previous"].endswith("FEATURE_SCHEDULER=true\n")
    assert flag_file.parse(path.read_text()) == {"ai_enabled": False, "scheduler": True}


def test_a_wrong_mode_alone_is_mended_without_a_content_change(capsys, monkeypatch, path) -> None:
    path.parent.mkdir()
    path.write_text(f"{HEADER}\nFEATURE_AI_ENABLED=true\n")
    os.chmod(path, 0o644)
    result = run(capsys, monkeypatch, path, flags={"ai_enabled": True})
    assert result["changed"] and not result["content_changed"]  # the role restarts the app only on content
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_check_mode_reports_the_change_and_writes_nothing(capsys, monkeypatch, path) -> None:
    result = run(capsys, monkeypatch, path, check_mode=True, flags={"ai_enabled": False})
    assert result["changed"] and result["changed_flags"] == ["ai_enabled"]
    assert not path.parent.exists()


def test_no_flag_only_reads(capsys, monkeypatch, path) -> None:
    path.parent.mkdir()
    path.write_text("FEATURE_AI_ENABLED=true\n")  # no header: a read does not rewrite it
    os.chmod(path, 0o600)
    result = run(capsys, monkeypatch, path)
    assert not result["changed"] and result["flags"] == {"ai_enabled": True}
    assert path.read_text() == "FEATURE_AI_ENABLED=true\n" and stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({"flags": {"AI": False}}, "flag names must be 1-64 lowercase letters, digits or _: AI"),
        ({"flags": {"ai_enabled": "maybe"}}, "flag ai_enabled takes true or false"),
        ({"flags": {"ai_enabled": False}, "group": "no-such-group-here"}, "group no-such-group-here does not exist"),
        ({"flags": {"ai_enabled": False}, "mode": "rw-r-----"}, "mode must be octal"),
    ],
    ids=["name", "value", "group", "mode"],
)
def test_bad_input_is_refused_and_the_file_left_as_it_was(capsys, monkeypatch, path, args, says) -> None:
    path.parent.mkdir()
    path.write_text("FEATURE_AI_ENABLED=true\n")
    result = run(capsys, monkeypatch, path, **args)
    assert result["failed"] and says in result["msg"] and result["msg"].endswith("nothing was written")
    assert path.read_text() == "FEATURE_AI_ENABLED=true\n"


def test_a_unit_that_does_not_load_the_file_is_refused_naming_provision(capsys, monkeypatch, path) -> None:
    result = run(capsys, monkeypatch, path, systemctl=APP_ENV, flags={"ai_enabled": False}, unit="clinic-app.service")
    assert result["failed"] and "does not load" in result["msg"] and "playbooks/provision.yml" in result["msg"]
    assert result["systemctl_calls"] == [["systemctl", "show", "--property=EnvironmentFiles", "clinic-app.service"]]
    assert not path.exists()
    loaded = run(capsys, monkeypatch, path, flags={"ai_enabled": False}, unit="clinic-app.service")
    assert loaded["changed"] and path.exists()


def test_restored_puts_the_previous_text_back_or_removes_the_file(capsys, monkeypatch, path) -> None:
    first = run(capsys, monkeypatch, path, flags={"ai_enabled": False})
    assert first["previous"] is None
    removed = run(capsys, monkeypatch, path, state="restored")  # previous omitted: there was no file
    assert removed["changed"] and not path.exists()
    run(capsys, monkeypatch, path, flags={"ai_enabled": True})
    second = run(capsys, monkeypatch, path, flags={"ai_enabled": False})
    back = run(capsys, monkeypatch, path, state="restored", previous=second["previous"])
    assert back["changed_flags"] == ["ai_enabled"] and path.read_text() == second["previous"]
    assert not run(capsys, monkeypatch, path, state="restored", previous=second["previous"])["changed"]


def test_a_failed_write_leaves_the_file_as_it_was(capsys, monkeypatch, path) -> None:
    path.parent.mkdir()
    path.write_text("FEATURE_AI_ENABLED=true\n")

    def full_disk(target, text, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(flag_file, "write_atomic", full_disk)
    result = run(capsys, monkeypatch, path, flags={"ai_enabled": False})
    assert result["failed"] and "No space left on device" in result["msg"] and "as it was" in result["msg"]
    assert path.read_text() == "FEATURE_AI_ENABLED=true\n"


def test_write_atomic_sets_the_owner_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    other = next(entry.gr_gid for entry in grp.getgrall() if entry.gr_gid != os.getegid())  # not what mkstemp gives
    seen: list[tuple[str, int, int]] = []
    real_rename = os.rename

    def rename(source, target):
        info = os.stat(source)
        seen.append((os.path.basename(target), info.st_gid, stat.S_IMODE(info.st_mode)))
        real_rename(source, target)

    monkeypatch.setattr(atomic_files.os, "rename", rename)
    atomic_files.write_atomic(str(tmp_path / "f"), "x\n", 0o640, sync_directory=True, owner=(0, other))
    assert seen == [("f", other, 0o640)]
    assert (tmp_path / "f").stat().st_gid == other
