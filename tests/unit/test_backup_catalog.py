"""Choosing the snapshot an operator means, over restic's ``snapshots --json`` output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_catalog import (
    SelectionError,
    describe,
    select_snapshot,
    snapshot_time,
)
from hypothesis import given
from hypothesis import strategies as st

USAGE = " is not a snapshot selector: use latest, a snapshot id, YYYYMMDD_HHMMSS or release:<id>"


def snap(number: int, time: str, release: str | None = None, prefix: str = "") -> dict[str, Any]:
    """A snapshot as restic lists it; the id is ``prefix`` padded with ``number`` to 64 hex digits."""
    ident = (prefix + f"{number:x}").ljust(64, "0")
    tags = ["clinicops", "clinic=kinshasa", "dataset=postgresql:clinicdb", "date=" + time[:10].replace("-", "")]
    if release:
        tags.append("release=" + release)
    return {"id": ident, "short_id": ident[:8], "time": time, "hostname": "kinshasa", "tags": tags}


# Out of order on purpose: restic's order is not relied upon.
MONDAY = snap(0xA1, "2026-11-23T02:00:00.123456789Z", release="r41", prefix="a1")
TUESDAY = snap(0xB2, "2026-11-24T03:00:00+01:00", release="r42", prefix="b2")  # 02:00 UTC
WEDNESDAY = snap(0xC3, "2026-11-24T20:30:00-05:30", prefix="c3")  # 2026-11-25 02:00 UTC
PREDEPLOY = snap(0xC4, "2026-11-25T14:10:05Z", release="r42", prefix="c4")
THURSDAY = snap(0xD5, "2026-11-26T02:00:00Z", prefix="d5")
SNAPSHOTS = [WEDNESDAY, MONDAY, THURSDAY, PREDEPLOY, TUESDAY]


# -- times -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T23:24:22Z", datetime(2026, 11, 25, 23, 24, 22, tzinfo=UTC)),
        ("2026-11-25T23:24:22+01:00", datetime(2026, 11, 25, 22, 24, 22, tzinfo=UTC)),
        ("2026-11-25T20:00:00-05:30", datetime(2026, 11, 26, 1, 30, tzinfo=UTC)),
        ("2026-11-25T23:24:22.123456789+01:00", datetime(2026, 11, 25, 22, 24, 22, tzinfo=UTC)),
        ("2026-11-25T23:24:22.5Z", datetime(2026, 11, 25, 23, 24, 22, tzinfo=UTC)),
        ("2027-01-01T00:30:00+01:00", datetime(2026, 12, 31, 23, 30, tzinfo=UTC)),
    ],
)
def test_snapshot_time_is_utc_to_the_second(text: str, expected: datetime) -> None:
    moment = snapshot_time({"time": text})
    assert moment == expected
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text", ["2026-11-25 23:24:22Z", "2026-11-25T23:24:22", "2026-11-25T23:24Z", "yesterday"])
def test_an_unreadable_time_is_an_error(text: str) -> None:
    with pytest.raises(SelectionError, match=r"^cannot read snapshot time '"):
        snapshot_time({"time": text})


def test_describe_shows_short_id_utc_stamp_and_release() -> None:
    assert describe(TUESDAY) == "b2b20000 20261124_020000 release=r42"
    assert describe(WEDNESDAY) == "c3c30000 20261125_020000"
    assert describe({"id": "e" * 64, "time": "2026-11-25T00:00:00Z"}) == "eeeeeeee 20261125_000000"


# -- selectors -------------------------------------------------------------------------------------


def test_latest_is_the_newest_whatever_the_order() -> None:
    assert select_snapshot(SNAPSHOTS, "latest") is THURSDAY
    assert select_snapshot(list(reversed(SNAPSHOTS)), "latest") is THURSDAY


def test_by_full_id_and_by_prefix() -> None:
    assert select_snapshot(SNAPSHOTS, PREDEPLOY["id"]) is PREDEPLOY
    assert select_snapshot(SNAPSHOTS, PREDEPLOY["id"][:8]) is PREDEPLOY
    assert select_snapshot(SNAPSHOTS, PREDEPLOY["id"][:12]) is PREDEPLOY


def test_an_ambiguous_prefix_is_refused() -> None:
    twins = [snap(1, "2026-11-01T00:00:00Z", prefix="abcdef12"), snap(2, "2026-11-02T00:00:00Z", prefix="abcdef12")]
    with pytest.raises(SelectionError) as refused:
        select_snapshot(twins, "abcdef12")
    assert str(refused.value) == "snapshot prefix abcdef12 is ambiguous; give more characters"
    assert select_snapshot(twins, twins[1]["id"][:9]) is twins[1]


def test_an_unknown_id_lists_the_latest() -> None:
    with pytest.raises(SelectionError) as missing:
        select_snapshot(SNAPSHOTS, "deadbeef")
    assert str(missing.value) == (
        "no snapshot deadbeef in this data set (latest: a1a10000 20261123_020000 release=r41, "
        "b2b20000 20261124_020000 release=r42, c3c30000 20261125_020000, "
        "c4c40000 20261125_141005 release=r42, d5d50000 20261126_020000)"
    )


def test_release_picks_the_newest_bound_snapshot() -> None:
    assert select_snapshot(SNAPSHOTS, "release:r42") is PREDEPLOY
    assert select_snapshot(SNAPSHOTS, "release:r41") is MONDAY


def test_an_unknown_release_is_an_error() -> None:
    with pytest.raises(SelectionError, match=r"^no backup is bound to release r9 \(latest: a1a10000 "):
        select_snapshot(SNAPSHOTS, "release:r9")


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("20261125_020000", WEDNESDAY),  # exactly equal: included (and it was written -05:30)
        ("20261125_015959", TUESDAY),  # one second earlier
        ("20261124_020000", TUESDAY),  # written +01:00, 03:00 local = 02:00 UTC
        ("20261123_020000", MONDAY),  # the fraction of a second does not push it past the selector
        ("20261125_141004", WEDNESDAY),
        ("20261125_141005", PREDEPLOY),
        ("20991231_235959", THURSDAY),
    ],
)
def test_a_time_picks_the_newest_at_or_before_it(selector: str, expected: dict[str, Any]) -> None:
    assert select_snapshot(SNAPSHOTS, selector) is expected


def test_a_time_before_every_backup_lists_what_exists() -> None:
    older = [snap(n, f"2026-10-{n:02d}T00:00:01Z", prefix="e") for n in range(1, 4)]
    with pytest.raises(SelectionError) as none:
        select_snapshot(older + SNAPSHOTS, "20261001_000000")
    # the five newest, oldest first
    assert str(none.value) == (
        "no backup was taken at or before 20261001_000000 UTC (latest: a1a10000 20261123_020000 release=r41, "
        "b2b20000 20261124_020000 release=r42, c3c30000 20261125_020000, "
        "c4c40000 20261125_141005 release=r42, d5d50000 20261126_020000)"
    )


@pytest.mark.parametrize("selector", ["20261332_250000", "20260230_120000", "20261125_246000"])
def test_an_impossible_time_is_a_clear_error(selector: str) -> None:
    with pytest.raises(SelectionError) as invalid:
        select_snapshot(SNAPSHOTS, selector)
    assert str(invalid.value) == f"'{selector}' is not a valid time (YYYYMMDD_HHMMSS, UTC)"


@pytest.mark.parametrize(
    "selector",
    [
        "../etc",
        "release:../x",
        "release:",
        "release:-x",
        "",
        "DROP TABLE",
        "LATEST",
        "ABCDEF12",  # restic ids are lower case
        "abcdef1",  # shorter than 8
        "2026-11-25",
        "20261125",  # 8 decimal digits are a (missing) id prefix, not a time: see below
        "20261125_0200",
        "latest; rm -rf /",
    ],
)
def test_garbage_selectors_get_the_usage_message(selector: str) -> None:
    if selector == "20261125":
        with pytest.raises(SelectionError, match=r"^no snapshot 20261125 in this data set"):
            select_snapshot(SNAPSHOTS, selector)
        return
    with pytest.raises(SelectionError) as refused:
        select_snapshot(SNAPSHOTS, selector)
    assert str(refused.value) == repr(selector) + USAGE


@pytest.mark.parametrize("selector", ["latest", "release:r1", "20261125_000000", "abcdef12", "../etc"])
def test_no_backups_at_all(selector: str) -> None:
    with pytest.raises(SelectionError, match=r"^there is no backup of this data set$"):
        select_snapshot([], selector)


# -- property: a time selector never returns a later snapshot, nor skips one -----------------------

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
OFFSETS = st.sampled_from([timedelta(0), timedelta(hours=1), timedelta(hours=-5, minutes=-30), timedelta(hours=14)])


def restic_time(moment: datetime, offset: timedelta, fraction: int) -> str:
    local = moment + offset
    if offset == timedelta(0):
        zone = "Z"
    else:
        sign = "+" if offset > timedelta(0) else "-"
        minutes = abs(int(offset.total_seconds())) // 60
        zone = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction:09d}" if fraction else "") + zone


@given(
    st.lists(
        st.tuples(st.integers(0, 3 * 86400), OFFSETS, st.integers(0, 999_999_999)),
        min_size=1,
        max_size=12,
    ),
    st.integers(-3600, 3 * 86400 + 3600),
)
def test_time_selector_property(entries: list[tuple[int, timedelta, int]], selector_seconds: int) -> None:
    snapshots = [
        snap(index + 1, restic_time(EPOCH + timedelta(seconds=seconds), offset, fraction))
        for index, (seconds, offset, fraction) in enumerate(entries)
    ]
    until = EPOCH + timedelta(seconds=selector_seconds)
    selector = until.strftime("%Y%m%d_%H%M%S")
    times = [EPOCH + timedelta(seconds=seconds) for seconds, _offset, _fraction in entries]
    if min(times) > until:
        with pytest.raises(SelectionError, match="no backup was taken at or before"):
            select_snapshot(snapshots, selector)
        return
    chosen = snapshot_time(select_snapshot(snapshots, selector))
    assert chosen <= until
    assert not [moment for moment in times if chosen < moment <= until]


def safety(number: int, time: str) -> dict[str, Any]:
    found = snap(number, time, prefix="5afe")
    found["tags"].append("kind=safety")
    return found


def test_a_restores_safety_snapshot_is_never_picked_by_latest_time_or_release() -> None:
    regular = snap(1, "2026-11-20T02:00:00Z", release="r1")
    guard = safety(2, "2026-11-20T10:00:00Z")
    guard["tags"].append("release=r1")
    assert select_snapshot([guard, regular], "latest") is regular
    assert select_snapshot([guard, regular], "20261120_120000") is regular
    assert select_snapshot([guard, regular], "release:r1") is regular
    assert select_snapshot([guard, regular], guard["id"][:12]) is guard


def test_only_safety_snapshots_left_asks_for_an_id() -> None:
    with pytest.raises(SelectionError, match=r"only safety snapshots.*name one by id"):
        select_snapshot([safety(2, "2026-11-20T10:00:00Z")], "latest")
