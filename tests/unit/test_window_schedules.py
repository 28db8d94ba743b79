"""The window_schedules filter: AWX schedules and systemd timers rendered from the clinics' window data.

One trigger per (zone, window) allowing the procedure, with the clinics sharing it; names stable and
safe; the rules and calendar expressions are the evaluator's, and the AWX rule fires on the gate's
openings; bad clinic data fails naming the clinic. Also through Ansible, with hostvars of an inventory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.clinicops.runbook.plugins.filter import window_schedules as plugin
from ansible_collections.clinicops.runbook.plugins.filter.window_schedules import FilterModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.maintenance_windows import (
    next_openings,
    to_awx_rrule,
    to_systemd_oncalendar,
)
from dateutil.rrule import rrulestr

from clinicops.project import collections_root

window_schedules = FilterModule().filters()["window_schedules"]
BIN = Path(sys.executable).parent

WEEKLY = {"name": "weekly", "rrule": "FREQ=WEEKLY;BYDAY=SU", "start": "02:00", "duration": "2h", "cutoff": "15m"}
MONTHLY = {
    "name": "monthly",
    "rrule": "FREQ=MONTHLY;BYDAY=1SU",
    "start": "02:00",
    "duration": "4h",
    "procedures": ["maintenance", "deploy"],
}
DEPLOY_ONLY = {
    "name": "deploys",
    "rrule": "FREQ=WEEKLY;BYDAY=WE",
    "start": "21:00",
    "duration": "1h",
    "procedures": ["deploy"],
}
FORTNIGHTLY = {
    "name": "fortnightly",
    "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU",
    "start": "03:00",
    "duration": "2h",
    "anchor": "2026-01-04",
}


def clinic(zone: str | None, *windows: dict, exclusions: list | None = None) -> dict:
    data: dict = {"clinic_maintenance_windows": list(windows)}
    if zone is not None:
        data["clinic_timezone"] = zone
    if exclusions is not None:
        data["clinic_maintenance_exclusions"] = exclusions
    return data


FLEET = {
    "kin-02": clinic("Africa/Kinshasa", WEEKLY, MONTHLY),
    "kin-01": clinic("Africa/Kinshasa", WEEKLY, MONTHLY, exclusions=[{"yearly": "12-25", "reason": "Christmas"}]),
    # Lubumbashi has the same windows but another zone (and clock): triggers of its own.
    "lub-01": clinic("Africa/Lubumbashi", WEEKLY),
    # Same trigger as kin-01/02 (zone, name, rule, start): a longer window is the gate's business.
    "kin-03": clinic("Africa/Kinshasa", {**WEEKLY, "duration": "3h", "cutoff": "30m"}, DEPLOY_ONLY),
    "paris-11": clinic("Europe/Paris", DEPLOY_ONLY),
    "brooklyn": clinic("America/New_York", FORTNIGHTLY),
    "new-clinic": clinic(None),  # no windows yet (and no time zone, which it does not need then)
}


def by_name(entries: list[dict]) -> dict[str, dict]:
    return {entry["name"]: entry for entry in entries}


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr(plugin.display, "warning", lambda message, *args, **kwargs: said.append(message))
    return said


def test_one_trigger_per_zone_and_window_with_the_clinics_sharing_it(warnings: list[str]):
    entries = window_schedules(FLEET, "maintenance")
    assert [entry["name"] for entry in entries] == [
        "maintenance-africa-kinshasa-monthly",
        "maintenance-africa-kinshasa-weekly",
        "maintenance-africa-lubumbashi-weekly",
        "maintenance-america-new-york-fortnightly",
    ]
    weekly = by_name(entries)["maintenance-africa-kinshasa-weekly"]
    assert weekly == {
        "name": "maintenance-africa-kinshasa-weekly",
        "procedure": "maintenance",
        "timezone": "Africa/Kinshasa",
        "window": "weekly",
        "window_rrule": "FREQ=WEEKLY;BYDAY=SU",
        "start": "02:00",
        "anchor": None,
        "clinics": ["kin-01", "kin-02", "kin-03"],
        "limit": "kin-01,kin-02,kin-03",
        "rrule": "DTSTART;TZID=Africa/Kinshasa:20260101T020000 RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=SU",
        "rrule_error": None,
        "oncalendar": "Sun *-*-* 02:00:00 Africa/Kinshasa",
        "oncalendar_error": None,
    }
    monthly = by_name(entries)["maintenance-africa-kinshasa-monthly"]
    assert monthly["clinics"] == ["kin-01", "kin-02"]
    assert monthly["rrule"] == to_awx_rrule("Africa/Kinshasa", MONTHLY, "2026-01-01")
    assert (
        monthly["oncalendar"]
        == to_systemd_oncalendar("Africa/Kinshasa", MONTHLY)
        == ("Sun *-*-01..07 02:00:00 Africa/Kinshasa")
    )
    lubumbashi = by_name(entries)["maintenance-africa-lubumbashi-weekly"]
    assert lubumbashi["limit"] == "lub-01"
    assert lubumbashi["oncalendar"] == "Sun *-*-* 02:00:00 Africa/Lubumbashi"
    assert warnings == [
        "window_schedules: no maintenance trigger for the clinics without maintenance windows: new-clinic"
    ]


def test_only_windows_allowing_the_procedure_count(warnings: list[str]):
    names = [entry["name"] for entry in window_schedules(FLEET, "deploy")]
    assert names == [
        "deploy-africa-kinshasa-deploys",
        "deploy-africa-kinshasa-monthly",
        "deploy-africa-kinshasa-weekly",
        "deploy-africa-lubumbashi-weekly",
        "deploy-america-new-york-fortnightly",
        "deploy-europe-paris-deploys",
    ]
    assert by_name(window_schedules(FLEET, "deploy"))["deploy-africa-kinshasa-deploys"]["limit"] == "kin-03"
    # No window names rotate_logs: only the windows without procedures (they allow every procedure) count.
    assert [entry["name"] for entry in window_schedules(FLEET, "rotate_logs")] == [
        "rotate-logs-africa-kinshasa-weekly",
        "rotate-logs-africa-lubumbashi-weekly",
        "rotate-logs-america-new-york-fortnightly",
    ]
    # paris-11 has windows (none for maintenance): deliberate, so no warning names it.
    assert all("paris-11" not in message for message in warnings)


def test_a_window_systemd_cannot_express_keeps_its_awx_rule_and_says_why():
    entry = window_schedules(FLEET, "maintenance")[-1]
    assert entry["name"] == "maintenance-america-new-york-fortnightly"
    assert entry["anchor"] == "2026-01-04"
    # INTERVAL counts from the anchor, so the anchor is the DTSTART date whatever dtstart says.
    assert entry["rrule"] == "DTSTART;TZID=America/New_York:20260104T030000 RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=SU"
    assert entry["oncalendar"] is None
    assert "INTERVAL=2" in entry["oncalendar_error"] and "systemd" in entry["oncalendar_error"]
    assert entry["rrule_error"] is None


def test_a_window_awx_cannot_express_keeps_its_timer_and_says_why():
    weekend = {"name": "first-weekend", "rrule": "FREQ=MONTHLY;BYDAY=1SA,1SU", "start": "22:00", "duration": "2h"}
    [entry] = window_schedules({"kin-01": clinic("Africa/Kinshasa", weekend)}, "maintenance")
    assert entry["rrule"] is None
    assert "one window per weekday" in entry["rrule_error"]
    assert entry["oncalendar"] == "Sat,Sun *-*-01..07 22:00:00 Africa/Kinshasa"


def test_dtstart_is_the_date_of_the_awx_rule():
    [entry] = window_schedules({"kin-01": clinic("Africa/Kinshasa", WEEKLY)}, "maintenance", dtstart="2025-06-01")
    assert entry["rrule"].startswith("DTSTART;TZID=Africa/Kinshasa:20250601T020000 ")
    with pytest.raises(AnsibleFilterError, match=r"dtstart '20250601' is not a date YYYY-MM-DD"):
        window_schedules({"kin-01": clinic("Africa/Kinshasa", WEEKLY)}, "maintenance", dtstart="20250601")
    with pytest.raises(AnsibleFilterError, match=r"dtstart '2025-02-30' is not a date"):
        window_schedules({"kin-01": clinic("Africa/Kinshasa", WEEKLY)}, "maintenance", dtstart="2025-02-30")


def test_equal_rules_written_differently_share_one_trigger():
    fleet = {
        "a": clinic("Europe/Paris", {**WEEKLY, "rrule": "FREQ=WEEKLY;BYDAY=SA,SU"}),
        "b": clinic("Europe/Paris", {**WEEKLY, "rrule": "RRULE:byday=SU,SA;freq=weekly;INTERVAL=1"}),
    }
    [entry] = window_schedules(fleet, "maintenance")
    assert entry["clinics"] == ["a", "b"]
    assert entry["oncalendar"] == "Sat,Sun *-*-* 02:00:00 Europe/Paris"


def test_names_are_safe_and_stay_apart_where_they_would_collide():
    late = {**WEEKLY, "start": "03:00"}
    fleet = {
        "early": clinic("Europe/Paris", WEEKLY),
        "late": clinic("Europe/Paris", late),
        "east": clinic("Etc/GMT-1", {**WEEKLY, "name": "Sunday night!"}),
        "west": clinic("Etc/GMT+1", {**WEEKLY, "name": "Sunday night!"}),
        "ba": clinic("America/Argentina/Buenos_Aires", WEEKLY),
    }
    entries = window_schedules(fleet, "maintenance")
    names = [entry["name"] for entry in entries]
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in names), names
    assert len(set(names)) == len(names)
    assert "maintenance-etc-gmt-1-sunday-night" in names and "maintenance-etc-gmt-plus-1-sunday-night" in names
    assert "maintenance-america-argentina-buenos-aires-weekly" in names
    paris = {entry["clinics"][0]: entry["name"] for entry in entries if entry["timezone"] == "Europe/Paris"}
    assert re.fullmatch(r"maintenance-europe-paris-weekly-[0-9a-f]{8}", paris["early"])
    assert re.fullmatch(r"maintenance-europe-paris-weekly-[0-9a-f]{8}", paris["late"])
    assert paris["early"] != paris["late"]
    # Stable: the same trigger gets the same name whatever else is in the fleet or in which order.
    reordered = dict(reversed(list(fleet.items())))
    reordered["other"] = clinic("Africa/Kinshasa", WEEKLY)
    again = {entry["clinics"][0]: entry["name"] for entry in window_schedules(reordered, "maintenance")}
    assert again["early"] == paris["early"] and again["late"] == paris["late"]


def test_a_window_name_without_letters_or_digits_still_gets_a_safe_name():
    [entry] = window_schedules({"a": clinic("UTC", {**WEEKLY, "name": "日曜"})}, "maintenance")
    assert re.fullmatch(r"maintenance-utc-[0-9a-f]{8}", entry["name"])
    assert entry["window"] == "日曜"


@pytest.mark.parametrize(
    ("fleet", "message"),
    [
        (
            {"kin-01": clinic("Africa/Kinshasa", {**WEEKLY, "cutoff": "2h"})},
            r"clinic kin-01: window 'weekly': cutoff 2 h must be shorter than the duration 2 h; "
            r"no trigger was rendered",
        ),
        ({"kin-01": clinic(None, WEEKLY)}, r"clinic kin-01: clinic_timezone None is not an IANA time zone"),
        ({"kin-01": clinic("Mars/Olympus", WEEKLY)}, r"clinic kin-01: clinic_timezone 'Mars/Olympus'"),
        (
            {"kin-01": clinic("Africa/Kinshasa", {**WEEKLY, "start": 120})},
            r"clinic kin-01: window 'weekly': start 120 must be a quoted \"HH:MM\" string",
        ),
        # Exclusions only count in the gate, but bad ones are refused here too: the data is one.
        (
            {"kin-01": clinic("Africa/Kinshasa", WEEKLY, exclusions=[{"date": "2026-13-01"}])},
            r"clinic kin-01: exclusion #1: date '2026-13-01'",
        ),
        (
            {"kin-01": {"clinic_timezone": "Africa/Kinshasa", "clinic_maintenance_windows": "weekly"}},
            r"clinic kin-01: windows must be a list",
        ),
        ({"kin-01": ["weekly"]}, r"clinic kin-01: its variables must be a mapping"),
    ],
)
def test_bad_clinic_data_fails_naming_the_clinic(fleet: dict, message: str):
    with pytest.raises(AnsibleFilterError, match=r"^window_schedules: " + message):
        window_schedules({**FLEET, **fleet}, "maintenance")


def test_bad_arguments_fail_clearly():
    with pytest.raises(AnsibleFilterError, match=r"no variables for ghost, kin-09 in the input"):
        window_schedules(FLEET, "maintenance", clinics=["kin-01", "kin-09", "ghost"])
    with pytest.raises(AnsibleFilterError, match=r"clinics must be a list of clinic names"):
        window_schedules(FLEET, "maintenance", clinics="kin-01")
    with pytest.raises(AnsibleFilterError, match=r"procedure '' is not a procedure name"):
        window_schedules(FLEET, "")
    with pytest.raises(AnsibleFilterError, match=r"the input must map clinic names to their variables"):
        window_schedules(["kin-01"], "maintenance")


class LazyHostVars(Mapping):
    """Like Ansible's hostvars: a Mapping (not a dict) that yields every host and reads variables on access."""

    def __init__(self, hosts: dict[str, dict]):
        self.hosts, self.read = hosts, []

    def __getitem__(self, host: str) -> dict:
        self.read.append(host)
        return self.hosts[host]

    def __iter__(self) -> Iterator[str]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)


def test_clinics_select_hosts_from_hostvars():
    hosts = LazyHostVars({**FLEET, "vault": {"ansible_host": "vault.example.org"}})
    entries = window_schedules(hosts, "maintenance", clinics=["kin-01", "lub-01"])
    assert [entry["limit"] for entry in entries] == ["kin-01", "kin-01", "lub-01"]
    assert sorted(set(hosts.read)) == ["kin-01", "lub-01"]


def test_the_awx_rule_fires_on_the_gates_openings():
    """Read back as AWX reads it (dateutil), every rendered rule starts runs exactly when the gate opens."""
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    fleet = {
        **FLEET,
        "nyc-month-end": clinic(
            "America/New_York",
            {"name": "month-end", "rrule": "FREQ=MONTHLY;BYMONTHDAY=-1", "start": "23:00", "duration": "3h"},
        ),
    }
    for entry in window_schedules(fleet, "maintenance"):
        member = fleet[entry["clinics"][0]]
        window = next(w for w in member["clinic_maintenance_windows"] if w["name"] == entry["window"])
        gate = [
            datetime.fromisoformat(o["start"]) for o in next_openings(entry["timezone"], [window], [], now, count=8)
        ]
        rule = rrulestr(entry["rrule"].replace(" RRULE:", "\nRRULE:"))
        fired, moment = [], now
        for _ in range(8):
            moment = rule.after(moment)
            fired.append(moment)
        assert fired == gate, entry["name"]


# ---- through Ansible: hostvars of a real inventory, and the documentation -----------------------------


def ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections_root()),
        "ANSIBLE_NOCOLOR": "1",
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
    }


def test_through_ansible_with_the_hostvars_of_an_inventory(tmp_path: Path):
    clinics = {name: data for name, data in FLEET.items() if name != "new-clinic"}
    inventory = {
        "all": {
            "children": {
                "clinics": {"hosts": {name: data for name, data in clinics.items()}},
                "vaults": {"hosts": {"vault": {}}},
            }
        }
    }
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    expression = (
        "{{ hostvars | clinicops.runbook.window_schedules('maintenance', clinics=groups['clinics']) | to_json }}"
    )
    done = subprocess.run(
        [
            str(BIN / "ansible"),
            "localhost",
            "-i",
            str(tmp_path / "hosts.yml"),
            "-m",
            "debug",
            "-a",
            f"msg={expression}",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=ansible_env(),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rendered = json.loads(json.loads(done.stdout.split("=>", 1)[1])["msg"])
    assert rendered == window_schedules(clinics, "maintenance")
    assert "WARNING" not in done.stderr  # every clinic of the group has windows

    (tmp_path / "hosts.yml").write_text(
        yaml.safe_dump({"clinics": {"hosts": {"kin-01": clinic("Africa/Kinshasa", {**WEEKLY, "duration": "9d"})}}})
    )
    failed = subprocess.run(
        [
            str(BIN / "ansible"),
            "localhost",
            "-i",
            str(tmp_path / "hosts.yml"),
            "-m",
            "debug",
            "-a",
            f"msg={expression}",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=ansible_env(),
    )
    assert failed.returncode != 0
    assert "window_schedules: clinic kin-01: window 'weekly': duration '9d' must be more than 0 and at most 7 days" in (
        failed.stdout + failed.stderr
    )


def test_ansible_doc_renders_the_filter():
    done = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "filter", "--json", "clinicops.runbook.window_schedules"],
        capture_output=True,
        text=True,
        check=False,
        env=ansible_env(),
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)["clinicops.runbook.window_schedules"]
    assert set(doc["doc"]["options"]) == {"_input", "procedure", "clinics", "dtstart"}
    assert doc["doc"]["options"]["dtstart"]["default"] == plugin.DEFAULT_DTSTART
    assert "window_schedules(" in doc["examples"]


def test_dtstart_default_is_in_the_past():
    """A DTSTART in the future would hold the AWX schedule back until then."""
    assert datetime.fromisoformat(plugin.DEFAULT_DTSTART).date() <= (datetime.now(UTC) - timedelta(days=1)).date()
