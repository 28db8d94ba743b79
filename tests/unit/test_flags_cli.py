"""``clinicops flag set|get`` and ``clinicops cache-flush``: what is refused before anything runs, and
what reaches the play (FakeFleet inventory, the scripted FakeAnsible of the fleet run tests).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clinicops import runner
from clinicops.cli import PROCEDURES, main
from clinicops.errors import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, UsageError
from clinicops.flags import flag_names, flag_rows, parse_assignment, parse_assignments

from .test_cli import last_run, use_fleet
from .test_fleet_run import FakeAnsible


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, clinicops_home: Path) -> FakeAnsible:
    fake = FakeAnsible()
    monkeypatch.setattr(runner.ansible_runner, "run", fake)
    return fake


# -- NAME=VALUE --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ai_enabled=false", ("ai_enabled", False)),
        ("ai_enabled=true", ("ai_enabled", True)),
        ("ai_enabled=FALSE", ("ai_enabled", False)),
        ("v2_booking=True", ("v2_booking", True)),
        ("a" * 64 + "=true", ("a" * 64, True)),
    ],
)
def test_a_flag_is_a_lowercase_name_and_a_boolean(text: str, expected: tuple[str, bool]) -> None:
    assert parse_assignment(text) == expected


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("ai_enabled", "is not NAME=VALUE"),
        ("AI_ENABLED=false", "lowercase letters, digits or _"),
        ("ai-enabled=false", "lowercase letters, digits or _"),
        ("ai enabled=false", "lowercase letters, digits or _"),
        ("=false", "lowercase letters, digits or _"),
        ("a" * 65 + "=true", "1-64"),
        ("ai_enabled=yes", "takes true or false"),
        ("ai_enabled=0", "takes true or false"),
        ("ai_enabled=", "takes true or false"),
        ("ai_enabled=false\nFEATURE_X=1", "takes true or false"),
    ],
)
def test_bad_flags_are_refused_naming_the_rule(text: str, said: str) -> None:
    with pytest.raises(UsageError, match="nothing was run") as refused:
        parse_assignment(text)
    assert said in str(refused.value)


def test_assignments_merge_but_one_flag_cannot_be_both() -> None:
    assert parse_assignments(["a=true", "b=false", "a=TRUE"]) == {"a": True, "b": False}
    with pytest.raises(UsageError, match="both true and false"):
        parse_assignments(["a=true", "a=false"])
    with pytest.raises(UsageError, match="no flag to set"):
        parse_assignments([])


# -- flag set / get through main ---------------------------------------------------------------------


def test_flag_set_passes_booleans_to_the_play_not_gated_and_locked(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeAnsible
) -> None:
    use_fleet(monkeypatch, "kinshasa", "lubumbashi")
    fake.reports = {
        clinic: {"flags": {"ai_enabled": False}, "changed": ["ai_enabled"], "restarted": True, "took_s": 3.1}
        for clinic in ("kinshasa", "lubumbashi")
    }
    argv = ["flag", "set", "ai_enabled=false", "beta_ui=true", "-i", str(inventory_dir), "--json"]
    assert main(argv) == EXIT_OK
    (call,) = fake.calls  # one wave: a kill switch goes everywhere at once by default
    assert call["playbook"] == "feature_flags.yml"
    assert call["extravars"]["feature_flags_set"] == {"ai_enabled": False, "beta_ui": True}
    assert call["extravars"]["feature_flags_assignments"] == ""
    assert not any(key.startswith("window_gate_") for key in call["extravars"])
    assert not PROCEDURES["flag-set"].gated and PROCEDURES["flag-set"].locks
    saved = json.loads((last_run(clinicops_home) / "report.json").read_text())
    assert saved["command"] == "flag-set"
    details = saved["clinics"][0]["details"]
    assert details == {"flags": {"ai_enabled": False}, "changed": ["ai_enabled"], "restarted": True, "took_s": 3.1}


def test_a_bad_flag_is_a_usage_error_before_the_inventory_is_read(
    inventory_dir: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeAnsible, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = use_fleet(monkeypatch, "kinshasa")
    assert main(["flag", "set", "AI=false", "-i", str(inventory_dir)]) == EXIT_USAGE
    assert main(["flag", "set", "ai=maybe", "-i", str(inventory_dir)]) == EXIT_USAGE
    assert fake.calls == [] and fleet.calls == []
    assert "nothing was run" in capsys.readouterr().err


def test_flag_get_sets_nothing_and_prints_the_fleet_table(
    inventory_dir: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeAnsible, capsys: pytest.CaptureFixture[str]
) -> None:
    use_fleet(monkeypatch, "kinshasa", "lubumbashi")
    fake.reports = {
        "kinshasa": {"flags": {"ai_enabled": False, "beta_ui": True}},
        "lubumbashi": {"flags": {"ai_enabled": True}},
    }
    assert main(["flag", "get", "-i", str(inventory_dir)]) == EXIT_OK
    (call,) = fake.calls
    assert (call["extravars"]["feature_flags_set"], call["extravars"]["feature_flags_assignments"]) == ({}, "")
    assert not PROCEDURES["flag-get"].locks  # reading takes no clinic lock
    rows = [
        [cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith(("│", "┃"))
    ]
    assert rows[0] == ["clinic", "ai_enabled", "beta_ui", "outcome"]
    assert rows[1:] == [["kinshasa", "false", "true", "ok"], ["lubumbashi", "true", "-", "ok"]]


def test_flag_rows_name_every_flag_and_say_why_a_clinic_has_none() -> None:
    report = {
        "clinics": [
            {"clinic": "a", "outcome": "ok", "details": {"flags": {"x": True}}, "message": ""},
            {"clinic": "b", "outcome": "failed", "details": {}, "message": "version: connection refused"},
        ]
    }
    assert flag_names(report) == ["x"]
    assert flag_rows(report) == [
        {"clinic": "a", "outcome": "ok", "x": "true", "message": ""},
        {"clinic": "b", "outcome": "failed", "x": "-", "message": "version: connection refused"},
    ]


# -- cache-flush -------------------------------------------------------------------------------------


def test_cache_flush_needs_a_limit(inventory_dir: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeAnsible) -> None:
    fleet = use_fleet(monkeypatch, "kinshasa")
    assert main(["cache-flush", "-i", str(inventory_dir), "--confirm", "kinshasa"]) == EXIT_USAGE
    assert fake.calls == [] and fleet.calls == []


@pytest.mark.parametrize("confirm", [[], ["--confirm", "lubumbashi"], ["--confirm", "KINSHASA"]])
def test_cache_flush_without_the_clinics_id_is_refused_before_anything_runs(
    confirm: list[str],
    inventory_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeAnsible,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_fleet(monkeypatch, "kinshasa", "lubumbashi")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    argv = ["cache-flush", "-i", str(inventory_dir), "--limit", "kinshasa", *confirm]
    assert main(argv) == EXIT_REFUSED
    assert fake.calls == []
    err = capsys.readouterr().err
    assert "nothing was changed" in err and "kinshasa" in err


def test_cache_flush_goes_one_clinic_at_a_time(
    inventory_dir: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeAnsible
) -> None:
    use_fleet(monkeypatch, "kinshasa", "lubumbashi")
    argv = ["cache-flush", "-i", str(inventory_dir), "--limit", "kinshasa,lubumbashi", "--confirm", "kinshasa"]
    assert main(argv) == EXIT_USAGE
    assert fake.calls == []


def test_cache_flush_confirmed_with_the_clinic_id_reaches_the_play(
    inventory_dir: Path, clinicops_home: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeAnsible
) -> None:
    # The confirmation is the clinic's id (clinic_id), as for restore, not necessarily its inventory name.
    use_fleet(monkeypatch, "kin", "lub", hostvars={"kin": {"clinic_id": "kinshasa"}})
    fake.reports = {"kin": {"redis_db": 0, "keys_before": 12, "keys_after": 0}}
    assert main(["cache-flush", "-i", str(inventory_dir), "--limit", "kin", "--confirm", "kinshasa", "-q"]) == EXIT_OK
    (call,) = fake.calls
    assert (call["playbook"], call["limit"]) == ("cache_flush.yml", "kin")
    assert call["extravars"]["cache_flush_confirm"] == "kinshasa"
    saved = json.loads((last_run(clinicops_home) / "report.json").read_text())
    assert saved["clinics"][0]["details"] == {"redis_db": 0, "keys_before": 12, "keys_after": 0}
