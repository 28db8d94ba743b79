"""The window timers on a real systemd host: each fires when the gate opens its window.

The test starts its own container from the lab's clinic image (systemd as PID 1, no network) as the
trigger host, and applies ``clinicops.runbook.window_timers`` to it with ansible-playbook over the
Docker connection. The clinics are inventory hosts it never connects to: only their window data is
read, in three zones (Africa/Kinshasa, Europe/Paris, America/New_York). Each timer's next elapse, as
systemd computed it, must be the gate evaluator's next opening of the same window, from the current
time (the container's clock is the host's). Every window starts two to five hours from now (local
time), so no opening falls within the run and the hours around DST changes are avoided.

The timers start the role's default command, ``clinicops maintenance --inventory ... --limit ... --yes``,
which a stand-in ``clinicops`` on the host records; one run also gives a command of its own with the
characters systemd would otherwise interpret. The tests run in file order on the one container: check
mode, apply and re-apply, firing the services, removing a window, refusals. The container is removed
at the end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import docker
import pytest
import yaml
from conftest import PLAYBOOKS, ok_in, own_clinic_container, run_in

from clinicops.project import collections_root, project_root

sys.path.insert(0, str(collections_root()))
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.maintenance_windows import (
    next_openings,
)

ROOT = project_root()
UNIT_DIR = "/etc/systemd/system"
PREFIX = "clinicops-window-"
# A command of the test's own: writes its arguments where the test reads them. It has the characters
# systemd would otherwise interpret in ExecStart= ("%" specifiers, "$" variables, quotes).
COMMAND = ["/bin/sh", "-c", 'printf "%s|%s" "$1" "$2" > "/run/fired-$0"', "{name}", "{limit}", "{window}"]
# Stands in for the CLI on the trigger host: records the arguments and the environment variable it gets.
CLI_STANDIN = (
    '#!/bin/sh\nprintf \'%s\\n\' "$@" > /run/clinicops-args\nprintf %s "$CLINICOPS_TEST" > /run/clinicops-env\n'
)
ENVIRONMENT = {"CLINICOPS_TEST": "50% of $HOME"}
EXPECTED_TIMERS = {
    "maintenance-africa-kinshasa-nightly",
    "maintenance-europe-paris-weekly",
    "maintenance-europe-paris-monthly",
    "maintenance-america-new-york-month-end",
}


def local_start(zone: str, now: datetime) -> str:
    """HH:MM two hours from now in the zone, or five when that is 01:00-03:59 (where DST changes happen)."""
    for hours in (2, 5):
        moment = (now + timedelta(hours=hours)).astimezone(ZoneInfo(zone))
        if moment.hour not in (1, 2, 3):
            break
    return moment.strftime("%H:%M")


def fleet(now: datetime) -> dict[str, dict]:
    """The clinics and their window data, with windows opening no sooner than an hour from now."""
    kinshasa, paris, new_york = (
        local_start(zone, now) for zone in ("Africa/Kinshasa", "Europe/Paris", "America/New_York")
    )
    nightly = {"name": "nightly", "rrule": "FREQ=DAILY", "start": kinshasa, "duration": "1h"}
    return {
        # One trigger for both: same zone and window; the duration is each clinic's own, for the gate.
        "kin-a": {"clinic_timezone": "Africa/Kinshasa", "clinic_maintenance_windows": [nightly]},
        "kin-b": {"clinic_timezone": "Africa/Kinshasa", "clinic_maintenance_windows": [{**nightly, "duration": "2h"}]},
        "paris-1": {
            "clinic_timezone": "Europe/Paris",
            "clinic_maintenance_windows": [
                {"name": "weekly", "rrule": "FREQ=WEEKLY;BYDAY=SA,SU", "start": paris, "duration": "2h"},
                {
                    "name": "monthly",
                    "rrule": "FREQ=MONTHLY;BYDAY=1SU",
                    "start": paris,
                    "duration": "4h",
                    "procedures": ["maintenance"],
                },
            ],
            "clinic_maintenance_exclusions": [{"yearly": "12-24..12-26", "reason": "Christmas"}],
        },
        "nyc-1": {
            "clinic_timezone": "America/New_York",
            "clinic_maintenance_windows": [
                {"name": "month-end", "rrule": "FREQ=MONTHLY;BYMONTHDAY=-1", "start": new_york, "duration": "3h"}
            ],
        },
        # No timer: its only window is for deploys, and the other has no windows yet.
        "paris-deploys": {
            "clinic_timezone": "Europe/Paris",
            "clinic_maintenance_windows": [
                {
                    "name": "deploys",
                    "rrule": "FREQ=WEEKLY;BYDAY=WE",
                    "start": paris,
                    "duration": "1h",
                    "procedures": ["deploy"],
                }
            ],
        },
        "new-clinic": {},
    }


@pytest.fixture(scope="module")
def host() -> Iterator[object]:
    """A clinic-image container of this test's own, booted (systemd running), removed at the end."""
    with own_clinic_container(
        docker.from_env(),
        "clinicops-timertest",
        hostname="trigger-host",
        network_mode="none",  # the timers need no network, and the test sends nothing anywhere
        labels={"clinicops.test": "window_timers"},
    ) as container:
        ok_in(container, ["sh", "-c", f"cat > /usr/local/bin/clinicops <<'EOF'\n{CLI_STANDIN}EOF\n"])
        ok_in(container, ["chmod", "0755", "/usr/local/bin/clinicops"])
        yield container


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every run's inventory is written: the default command names its directory."""
    return tmp_path_factory.mktemp("window-timers")


def apply(
    container, workdir: Path, clinics: dict[str, dict], *args: str, command: list[str] | None = None
) -> tuple[int, str]:
    """Run the test playbook on the container with these clinics in the inventory: (exit code, output).

    The timers start the role's default command, or ``command``.
    """
    inventory = workdir / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "triggers": {
                            "hosts": {
                                "trigger-host": {
                                    "ansible_connection": "community.docker.docker",
                                    "ansible_host": container.name,
                                    "ansible_python_interpreter": "/usr/bin/python3",
                                }
                            }
                        },
                        "clinics": {"hosts": clinics},
                    }
                }
            }
        )
    )
    extra = {"window_timers_environment": ENVIRONMENT, **({"window_timers_command": command} if command else {})}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(inventory),
            str(PLAYBOOKS / "window_timers.yml"),
            "-e",
            json.dumps(extra),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections_root()), "ANSIBLE_NOCOLOR": "1"},
    )
    return done.returncode, done.stdout + done.stderr


def changed(output: str) -> int:
    recap = re.search(r"^trigger-host\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", output, re.M)
    assert recap, output
    return int(recap.group(1))


def unit_files(container) -> dict[str, str]:
    """The role's units on the host, name -> sha256."""
    _, out = run_in(container, ["sh", "-c", f"cd {UNIT_DIR} && sha256sum {PREFIX}* 2>/dev/null"])
    return {line.split()[1]: line.split()[0] for line in out.splitlines() if line.strip()}


def timers(container) -> dict[str, int | None]:
    """Timers of the role systemd knows, with their next elapse (microseconds since the epoch)."""
    listed = json.loads(ok_in(container, ["systemctl", "list-timers", "--all", "--output=json"]))
    return {
        entry["unit"].removeprefix(PREFIX).removesuffix(".timer"): entry["next"]
        for entry in listed
        if entry["unit"].startswith(PREFIX)
    }


def gate_opening(clinics: dict[str, dict], clinic: str, window: str, now: datetime) -> int:
    """The gate evaluator's next opening of the clinic's window after now, in microseconds since the epoch."""
    data = clinics[clinic]
    windows = [item for item in data["clinic_maintenance_windows"] if item["name"] == window]
    [opening] = next_openings(data["clinic_timezone"], windows, [], now, count=1)
    return int(datetime.fromisoformat(opening["start"]).timestamp()) * 1_000_000


def timer_properties(container, name: str) -> dict[str, str]:
    out = ok_in(
        container,
        [
            "systemctl",
            "show",
            f"{PREFIX}{name}.timer",
            "-p",
            "Persistent,RandomizedDelayUSec,AccuracyUSec,UnitFileState,ActiveState,TimersCalendar,Unit",
        ],
    )
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture(scope="module")
def data() -> dict[str, dict]:
    """The clinics' window data, made when the first test of this module starts (windows open hours later)."""
    return fleet(datetime.now(UTC))


def test_check_mode_reports_the_timers_and_installs_nothing(host, workdir, data):
    code, output = apply(host, workdir, data, "--check")
    assert code == 0, output
    assert changed(output) > 0
    assert unit_files(host) == {}
    assert timers(host) == {}


def test_each_timer_fires_when_the_gate_opens_its_window(host, workdir, data):
    code, output = apply(host, workdir, data)
    assert code == 0, output
    assert changed(output) > 0
    assert "no maintenance trigger for the clinics without maintenance windows: new-clinic" in output

    assert set(unit_files(host)) == {
        f"{PREFIX}{name}.{kind}" for name in EXPECTED_TIMERS for kind in ("service", "timer")
    }
    now = datetime.now(UTC)
    assert timers(host) == {
        "maintenance-africa-kinshasa-nightly": gate_opening(data, "kin-a", "nightly", now),
        "maintenance-europe-paris-weekly": gate_opening(data, "paris-1", "weekly", now),
        "maintenance-europe-paris-monthly": gate_opening(data, "paris-1", "monthly", now),
        "maintenance-america-new-york-month-end": gate_opening(data, "nyc-1", "month-end", now),
    }
    # kin-b's longer window is the same trigger: the gate applies each clinic's own duration.
    assert gate_opening(data, "kin-b", "nightly", now) == gate_opening(data, "kin-a", "nightly", now)

    for name in EXPECTED_TIMERS:
        shown = timer_properties(host, name)
        assert shown["Persistent"] == "no", name
        assert shown["RandomizedDelayUSec"] == "0", name
        assert shown["AccuracyUSec"] == "1s", name
        assert shown["UnitFileState"] == "enabled" and shown["ActiveState"] == "active", (name, shown)
        assert shown["Unit"] == f"{PREFIX}{name}.service"
    calendar = timer_properties(host, "maintenance-europe-paris-monthly")["TimersCalendar"]
    assert f"Sun *-*-01..07 {data['paris-1']['clinic_maintenance_windows'][1]['start']}:00 Europe/Paris" in calendar

    again_code, again = apply(host, workdir, data)
    assert again_code == 0 and changed(again) == 0, again
    check_code, check = apply(host, workdir, data, "--check")
    assert check_code == 0 and changed(check) == 0, check


def test_the_service_starts_maintenance_of_the_windows_clinics(host, workdir):
    name = "maintenance-africa-kinshasa-nightly"
    ok_in(host, ["systemctl", "start", f"{PREFIX}{name}.service"])  # returns when the oneshot command ends
    arguments = ok_in(host, ["cat", "/run/clinicops-args"]).splitlines()
    assert arguments == ["maintenance", "--inventory", str(workdir), "--limit", "kin-a,kin-b", "--yes"]
    assert ok_in(host, ["cat", "/run/clinicops-env"]) == ENVIRONMENT["CLINICOPS_TEST"]
    assert ok_in(host, ["systemctl", "show", f"{PREFIX}{name}.service", "-p", "User", "--value"]).strip() == "root"


def test_a_command_of_its_own_gets_its_arguments_verbatim(host, workdir, data):
    code, output = apply(host, workdir, data, command=COMMAND)
    assert code == 0, output
    for name, arguments in (
        ("maintenance-africa-kinshasa-nightly", "kin-a,kin-b|nightly"),
        ("maintenance-america-new-york-month-end", "nyc-1|month-end"),
    ):
        ok_in(host, ["systemctl", "start", f"{PREFIX}{name}.service"])
        assert ok_in(host, ["cat", f"/run/fired-{name}"]) == arguments


def test_a_window_removed_from_the_data_loses_its_timer(host, workdir, data):
    paris = data["paris-1"]
    fewer = {
        **data,
        "paris-1": {
            **paris,
            "clinic_maintenance_windows": [w for w in paris["clinic_maintenance_windows"] if w["name"] != "weekly"],
        },
    }
    before = timers(host)
    code, output = apply(host, workdir, fewer)
    assert code == 0, output
    assert changed(output) > 0

    after = timers(host)
    assert set(after) == EXPECTED_TIMERS - {"maintenance-europe-paris-weekly"}
    assert after == {name: before[name] for name in after}  # the others keep their next elapse
    assert not [unit for unit in unit_files(host) if "europe-paris-weekly" in unit]
    load_state = ok_in(host, ["systemctl", "show", f"{PREFIX}maintenance-europe-paris-weekly.timer", "-p", "LoadState"])
    assert load_state.strip() == "LoadState=not-found"

    again_code, again = apply(host, workdir, fewer)
    assert again_code == 0 and changed(again) == 0, again


@pytest.mark.parametrize(
    ("clinic", "message"),
    [
        (
            {
                "clinic_timezone": "America/New_York",
                "clinic_maintenance_windows": [
                    {
                        "name": "fortnightly",
                        "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU",
                        "start": "03:00",
                        "duration": "2h",
                        "anchor": "2026-01-04",
                    }
                ],
            },
            "window_timers: systemd cannot express maintenance-america-new-york-fortnightly (clinics odd-one): window "
            "'fortnightly': rrule 'FREQ=WEEKLY;INTERVAL=2;BYDAY=SU' cannot be written as a systemd OnCalendar "
            "expression: INTERVAL=2 (systemd has no every-N-weeks/months; use an AWX schedule). Give those clinics an "
            "AWX schedule instead, or set window_timers_skip_inexpressible to true to leave them without a timer; "
            "nothing was installed or removed on trigger-host.",
        ),
        (
            {
                "clinic_timezone": "Europe/Paris",
                "clinic_maintenance_windows": [
                    {"name": "short", "rrule": "FREQ=DAILY", "start": "02:00", "duration": "1h", "cutoff": "1h"}
                ],
            },
            "window_timers: window_schedules: clinic odd-one: window 'short': cutoff 1 h must be shorter than the "
            "duration 1 h; nothing was installed or removed on trigger-host.",
        ),
    ],
    ids=["inexpressible", "bad_data"],
)
def test_bad_data_fails_before_anything_changes(host, workdir, data, clinic, message):
    before = unit_files(host)
    next_elapses = timers(host)
    code, output = apply(host, workdir, {**data, "odd-one": clinic})
    assert code != 0
    assert message in " ".join(output.split()), output
    assert unit_files(host) == before
    assert timers(host) == next_elapses


def test_a_window_systemd_cannot_express_can_be_left_without_a_timer(host, workdir, data):
    fortnightly = {
        "name": "fortnightly",
        "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU",
        "start": "03:00",
        "duration": "2h",
        "anchor": "2026-01-04",
    }
    clinics = {**data, "odd-one": {"clinic_timezone": "America/New_York", "clinic_maintenance_windows": [fortnightly]}}
    code, output = apply(host, workdir, clinics, "-e", "window_timers_skip_inexpressible=true")
    assert code == 0, output
    assert "window_timers: no timer for maintenance-america-new-york-fortnightly (clinics odd-one)" in output
    assert set(timers(host)) == EXPECTED_TIMERS  # the others, the Paris weekly window back among them
