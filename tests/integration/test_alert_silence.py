"""clinicops.runbook.alert_silence against a real Alertmanager (Debian's 0.25) on loopback.

The module runs through ``ansible-playbook`` on the controller (playbooks/alert_silence.yml, local
connection, the ansible.posix.json callback so the test reads the task's result), and every claim
is checked through Alertmanager's own HTTP API v2. One Alertmanager serves the whole module; each
test uses its own run id and clinic label, so the tests never see each other's silences. Times are
real (Alertmanager refuses an end in the past), an hour or more ahead.

What Alertmanager does with a later end: it updates the silence in place, keeping its id (the
matchers are unchanged, the silence is active and its start is sent unchanged).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alertmanager import Alertmanager, running_alertmanager

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "alert_silence.yml"
WAT = timezone(timedelta(hours=1))  # ends are given with an offset, as a clinic's window end is
NOTHING_CHANGED = "nothing was changed in Alertmanager"


@pytest.fixture(scope="module")
def alertmanager() -> Iterator[Alertmanager]:
    with running_alertmanager() as running:
        yield running


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def silence_play(*flags: str, **options: object) -> tuple[int, dict, str]:
    """Run the module once with ``options`` (url, run_id, matchers, ...): (exit code, task result, output)."""
    extra = {f"silence_{key}": value for key, value in options.items()}
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(PLAYBOOK)]
    argv += ["-e", json.dumps(extra), *flags]
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
    }
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    output = done.stdout + done.stderr
    try:
        # The json callback writes one document at the end of stdout, after the lines of -v if any.
        start = 0 if done.stdout.startswith("{") else done.stdout.index("\n{\n") + 1
        report = json.loads(done.stdout[start:])
        result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(
            f"no task result in the output of ansible-playbook ({done.returncode}):\n{output}"
        ) from exc
    return done.returncode, result, output


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def in_hours(hours: float) -> str:
    """An ISO 8601 instant ``hours`` from now, to the second, with the +01:00 offset."""
    return (datetime.now(UTC) + timedelta(hours=hours)).astimezone(WAT).replace(microsecond=0).isoformat()


def new_case() -> tuple[str, str]:
    """(run id, clinic label) of one test, unique on the shared Alertmanager."""
    suffix = uuid.uuid4().hex[:8]
    return f"20261129T010000Z-itest-{suffix}", f"clinic-{suffix}"


def clinic_matchers(clinic: str) -> list[dict]:
    return [{"name": "clinic", "value": clinic}]


def of_run(alertmanager: Alertmanager, run_id: str) -> list[dict]:
    """Every silence (expired included) carrying the run's marker."""
    marker = f"[clinicops run {run_id}]"
    return [silence for silence in alertmanager.silences() if silence["comment"].endswith(marker)]


def live(alertmanager: Alertmanager, run_id: str) -> list[str]:
    return [s["id"] for s in of_run(alertmanager, run_id) if s["status"]["state"] in ("active", "pending")]


def snapshot(alertmanager: Alertmanager) -> list[tuple[str, str, str]]:
    """Every silence as (id, state, end): what a failed run must leave as it was."""
    return sorted((s["id"], s["status"]["state"], s["endsAt"]) for s in alertmanager.silences())


def test_check_apply_rerun_extend_and_expire(alertmanager):
    run_id, clinic = new_case()
    end, later = in_hours(1), in_hours(2)
    options = dict(
        url=alertmanager.url,
        run_id=run_id,
        matchers=clinic_matchers(clinic),
        ends_at=end,
        comment=f"maintenance of {clinic}",
        created_by="itest",
    )

    code, result, output = silence_play("--check", **options)
    assert code == 0, output
    assert (result["changed"], result["silence_action"], result["silence_id"]) == (True, "created", None)
    assert result["msg"].startswith("would create silence for {clinic=")
    assert of_run(alertmanager, run_id) == []  # check mode created nothing

    code, result, output = silence_play(**options)
    assert code == 0, output
    assert (result["changed"], result["silence_action"]) == (True, "created")
    silence_id = result["silence_id"]
    silence = alertmanager.silence(silence_id)
    assert silence["status"]["state"] == "active"
    assert silence["matchers"] == [{"name": "clinic", "value": clinic, "isRegex": False, "isEqual": True}]
    assert instant(silence["endsAt"]) == instant(end)
    assert silence["comment"] == f"maintenance of {clinic} [clinicops run {run_id}]"
    assert silence["createdBy"] == "itest"
    assert result["silence"] == silence

    for flags in ((), ("--check",)):  # re-apply, then check again: nothing to do
        code, result, output = silence_play(*flags, **options)
        assert code == 0, output
        assert (result["changed"], result["silence_action"], result["silence_id"]) == (False, "unchanged", silence_id)
    assert live(alertmanager, run_id) == [silence_id]

    code, result, output = silence_play("--diff", **{**options, "ends_at": later})
    assert code == 0, output
    assert (result["changed"], result["silence_action"], result["silence_id"]) == (True, "updated", silence_id)
    assert result["expired"] == []
    updated = alertmanager.silence(silence_id)
    assert instant(updated["endsAt"]) == instant(later)
    assert updated["startsAt"] == silence["startsAt"]  # the start of an active silence never moves
    assert live(alertmanager, run_id) == [silence_id]  # updated in place: no second silence
    assert instant(result["diff"]["before"][silence_id]["endsAt"]) == instant(end)
    assert instant(result["diff"]["after"][silence_id]["endsAt"]) == instant(later)

    code, result, output = silence_play("--check", **{**options, "state": "absent"})
    assert code == 0, output
    assert (result["changed"], result["silence_action"], result["expired"]) == (True, "expired", [silence_id])
    assert alertmanager.silence(silence_id)["status"]["state"] == "active"  # check mode expired nothing

    code, result, output = silence_play(**{**options, "state": "absent"})
    assert code == 0, output
    assert (result["changed"], result["silence_action"], result["expired"]) == (True, "expired", [silence_id])
    assert alertmanager.silence(silence_id)["status"]["state"] == "expired"
    assert result["silence"]["status"]["state"] == "expired"

    code, result, output = silence_play(**{**options, "state": "absent"})
    assert code == 0, output
    assert (result["changed"], result["silence_action"], result["expired"]) == (False, "absent", [])


def test_duration_counts_from_the_silence_start_so_a_rerun_keeps_its_end(alertmanager):
    run_id, clinic = new_case()
    options = dict(url=alertmanager.url, run_id=run_id, matchers=clinic_matchers(clinic), duration="90m")
    code, result, output = silence_play(**options)
    assert code == 0, output
    silence = alertmanager.silence(result["silence_id"])
    length = instant(silence["endsAt"]) - instant(silence["startsAt"])
    assert abs(length - timedelta(minutes=90)) < timedelta(seconds=1), silence

    code, again, output = silence_play(**options)
    assert code == 0, output
    assert (again["changed"], again["silence_id"]) == (False, result["silence_id"])
    assert alertmanager.silence(result["silence_id"])["endsAt"] == silence["endsAt"]


def test_a_pending_silence_moved_to_now_is_replaced_then_kept_then_expired(alertmanager):
    run_id, clinic = new_case()
    start = in_hours(1)
    options = dict(url=alertmanager.url, run_id=run_id, matchers=clinic_matchers(clinic), duration="2h")
    code, result, output = silence_play(**options, starts_at=start)
    assert code == 0, output
    pending_id = result["silence_id"]
    silence = alertmanager.silence(pending_id)
    assert silence["status"]["state"] == "pending"
    assert instant(silence["startsAt"]) == instant(start)
    assert instant(silence["endsAt"]) == instant(start) + timedelta(hours=2)

    code, again, output = silence_play(**options, starts_at=start)
    assert code == 0, output
    assert (again["changed"], again["silence_id"]) == (False, pending_id)

    # Without starts_at the silence starts now: Alertmanager cannot move a pending silence's start
    # into the past, so it expires it and creates another one.
    code, moved, output = silence_play(**options)
    assert code == 0, output
    assert (moved["changed"], moved["silence_action"], moved["expired"]) == (True, "replaced", [pending_id])
    assert alertmanager.silence(pending_id)["status"]["state"] == "expired"
    active = alertmanager.silence(moved["silence_id"])
    assert active["status"]["state"] == "active"
    assert abs(instant(active["endsAt"]) - instant(active["startsAt"]) - timedelta(hours=2)) < timedelta(seconds=1)
    assert live(alertmanager, run_id) == [moved["silence_id"]]

    code, kept, output = silence_play(**options)
    assert code == 0, output
    assert (kept["changed"], kept["silence_id"]) == (False, moved["silence_id"])

    code, gone, output = silence_play(**options, state="absent")
    assert code == 0, output
    assert gone["expired"] == [moved["silence_id"]]
    assert live(alertmanager, run_id) == []


def test_only_the_runs_own_silence_for_these_matchers_is_touched(alertmanager):
    run_id, clinic = new_case()
    _other_run, other_clinic = new_case()
    now = datetime.now(UTC).isoformat()
    same = [{"name": "clinic", "value": clinic, "isRegex": False, "isEqual": True}]
    by_hand = {"matchers": same, "startsAt": now, "endsAt": in_hours(1), "createdBy": "on-call", "comment": "looking"}
    person = alertmanager.create(by_hand)
    another_run = alertmanager.create({**by_hand, "comment": "other maintenance [clinicops run 20261122T010000Z-x]"})
    options = dict(url=alertmanager.url, run_id=run_id, ends_at=in_hours(1))
    code, neighbour, output = silence_play(**options, matchers=clinic_matchers(other_clinic))
    assert code == 0, output

    code, result, output = silence_play(**options, matchers=clinic_matchers(clinic))
    assert code == 0, output
    assert result["silence_action"] == "created"
    assert result["silence_id"] not in (person, another_run, neighbour["silence_id"])

    code, result, output = silence_play(**options, matchers=clinic_matchers(clinic), state="absent")
    assert code == 0, output
    assert len(result["expired"]) == 1
    assert alertmanager.silence(result["expired"][0])["status"]["state"] == "expired"
    for untouched in (person, another_run, neighbour["silence_id"]):
        assert alertmanager.silence(untouched)["status"]["state"] == "active"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"matchers": []}, "a silence needs at least one matcher"),
        ({"ends_at": in_hours(-1)}, "is in the past"),
        ({"starts_at": in_hours(3), "ends_at": in_hours(2)}, "is not after its start"),
        ({"ends_at": "2026-11-29T04:00:00"}, "has no UTC offset"),
        ({"ends_at": in_hours(24 * 8)}, "a maintenance silence lasts at most 7 d"),
        ({"matchers": [{"name": "clinic", "value": ".*", "is_regex": True}]}, "also matches a missing label"),
        ({"url": "alertmanager.example.org:9093"}, "is not an Alertmanager URL"),
        ({"ends_at": None}, "state is present but any of the following are missing: ends_at, duration"),
    ],
    ids=[
        "no-matchers",
        "past-end",
        "end-before-start",
        "no-offset",
        "longer-than-a-window",
        "every-alert",
        "malformed-url",
        "no-end",
    ],
)
def test_bad_input_fails_with_its_reason_and_changes_nothing(alertmanager, options, message):
    run_id, clinic = new_case()
    before = snapshot(alertmanager)
    options = {
        "url": alertmanager.url,
        "run_id": run_id,
        "matchers": clinic_matchers(clinic),
        "ends_at": in_hours(1),
        **options,
    }
    options = {key: value for key, value in options.items() if value is not None}
    code, result, output = silence_play(**options)
    assert code != 0 and result["failed"], output
    assert message in result["msg"], result["msg"]
    if result["msg"].startswith("alert silence: "):  # the module's own checks (not Ansible's argument checks)
        assert result["msg"].endswith(NOTHING_CHANGED)
        assert result["alertmanager_unreachable"] is False
    assert snapshot(alertmanager) == before


def test_an_unreachable_alertmanager_fails_clearly(closed_port):
    run_id, clinic = new_case()
    url = f"http://127.0.0.1:{closed_port}"
    code, result, output = silence_play(url=url, run_id=run_id, matchers=clinic_matchers(clinic), ends_at=in_hours(1))
    assert code != 0 and result["failed"], output
    assert f"Alertmanager at {url} is unreachable: " in result["msg"]
    assert "Connection refused" in result["msg"]
    assert result["msg"].endswith(NOTHING_CHANGED)
    assert result["alertmanager_unreachable"] is True


def test_the_token_and_headers_never_appear_in_the_output(alertmanager, closed_port):
    run_id, clinic = new_case()
    token, tenant = f"token-{uuid.uuid4().hex}", f"tenant-{uuid.uuid4().hex}"
    secrets = dict(bearer_token=token, headers={"X-Scope-OrgID": tenant})
    options = dict(run_id=run_id, matchers=clinic_matchers(clinic), ends_at=in_hours(1), **secrets)
    code, result, output = silence_play("-vvv", url=alertmanager.url, **options)
    assert code == 0, output
    assert result["silence_action"] == "created"
    masked = result["invocation"]["module_args"]  # the values reached the module, and were masked
    assert masked["bearer_token"] == masked["headers"]["X-Scope-OrgID"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    code, result, failed = silence_play("-vvv", url=f"http://127.0.0.1:{closed_port}", **options)
    assert code != 0, failed
    for text in (output, failed):
        assert token not in text and tenant not in text
