"""Wave planning: the --waves spec, Ansible's serial semantics, @group waves and the rest wave."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ansible.executor.playbook_executor import PlaybookExecutor
from hypothesis import assume, given
from hypothesis import strategies as st

from clinicops.errors import UsageError
from clinicops.inventory import Fleet
from clinicops.waves import Step, Wave, parse_wave_spec, plan_waves


def fleet_of(count: int, groups: dict[str, tuple[str, ...]] | None = None) -> Fleet:
    return Fleet(hosts=tuple(f"c{number:02d}" for number in range(1, count + 1)), groups=groups or {})


def sizes(waves: list[Wave]) -> list[int]:
    return [len(wave.hosts) for wave in waves]


def plan(fleet: Fleet, spec: str) -> list[Wave]:
    return plan_waves(fleet, parse_wave_spec(spec))


# -- parse_wave_spec -------------------------------------------------------------------------------


def test_parse_every_kind_of_step() -> None:
    steps = parse_wave_spec("1,25%,@region_europe,100%")
    assert steps == [Step(count=1), Step(percent=25), Step(group="region_europe"), Step(percent=100)]
    assert ",".join(str(step) for step in steps) == "1,25%,@region_europe,100%"


def test_parse_ignores_blanks_around_steps() -> None:
    assert parse_wave_spec(" 2 , 50% ,@tz.africa-west ") == [
        Step(count=2),
        Step(percent=50),
        Step(group="tz.africa-west"),
    ]


@pytest.mark.parametrize(
    ("spec", "bad"),
    [
        ("0", "0"),
        ("1,abc", "abc"),
        ("150%", "150%"),
        ("0%", "0%"),
        ("", ""),
        ("1,,2", ""),
        ("2.5", "2.5"),
        ("-1", "-1"),
        ("25 %", "25 %"),
        ("@", "@"),
        ("1,@-europe", "@-europe"),
        ("1;rm -rf /", "1;rm -rf /"),
        ("1, @region europe", "@region europe"),
    ],
)
def test_parse_error_names_the_bad_part(spec: str, bad: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_wave_spec(spec)
    message = str(error.value)
    assert f"{bad!r} is not a wave" in message
    assert repr(spec) in message  # the whole option too, as typed
    assert "e.g. 1,25%,100%" in message


# -- counts and percentages: Ansible's serial ------------------------------------------------------


def test_counts_in_inventory_order_and_the_first_wave_is_the_canary() -> None:
    waves = plan(fleet_of(7), "2,3")
    assert [wave.hosts for wave in waves] == [("c01", "c02"), ("c03", "c04", "c05"), ("c06", "c07")]
    assert [wave.name for wave in waves] == ["canary", "wave 2", "wave 3"]
    assert [wave.index for wave in waves] == [1, 2, 3]


def test_the_last_step_repeats_until_every_clinic_is_planned() -> None:
    assert sizes(plan(fleet_of(6), "1,2")) == [1, 2, 2, 1]
    assert sizes(plan(fleet_of(10), "1,25%")) == [1, 2, 2, 2, 2, 1]


def test_a_count_larger_than_the_fleet_is_one_wave_named_all_not_canary() -> None:
    (wave,) = plan(fleet_of(3), "10")
    assert wave == Wave(index=1, name="all", hosts=("c01", "c02", "c03"))
    assert wave.as_dict() == {"index": 1, "name": "all", "hosts": ["c01", "c02", "c03"]}


@pytest.mark.parametrize(
    ("total", "spec", "expected"),
    [
        (10, "25%", [2, 2, 2, 2, 2]),  # 2.5 rounds down
        (10, "30%", [3, 3, 3, 1]),
        (3, "10%", [1, 1, 1]),  # 0.3 rounds down to 0: at least one
        (4, "50%", [2, 2]),
        (10, "1,25%,100%", [1, 2, 7]),  # the deploy default
        (3, "1,25%,100%", [1, 1, 1]),
        (1, "1,25%,100%", [1]),
        (100, "29%", [29, 29, 29, 13]),  # exact: Ansible's float arithmetic would say 28 here
    ],
)
def test_percentages_of_the_whole_run_round_down_at_least_one(total: int, spec: str, expected: list[int]) -> None:
    assert sizes(plan(fleet_of(total), spec)) == expected


def ansible_batches(hosts: list[str], serial: list[int | str]) -> list[list[str]]:
    """Ansible's own serial batching (PlaybookExecutor) over ``hosts``."""
    executor = SimpleNamespace(_inventory=SimpleNamespace(get_hosts=lambda _pattern, order: list(hosts)))
    play = SimpleNamespace(hosts="clinics", order="inventory", serial=serial)
    return PlaybookExecutor._get_serialized_batches(executor, play)


@given(
    total=st.integers(min_value=1, max_value=60),
    serial=st.lists(
        st.one_of(
            st.integers(min_value=1, max_value=70), st.integers(min_value=1, max_value=100).map(lambda p: f"{p}%")
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_counts_and_percentages_batch_like_ansible_serial(total: int, serial: list[int | str]) -> None:
    for item in serial:  # leave out Ansible's float artefacts (29% of 100 = 28.999... -> 28)
        if isinstance(item, str):
            percent = int(item[:-1])
            assume(int((percent / 100.0) * total) == percent * total // 100)
    fleet = fleet_of(total)
    waves = plan(fleet, ",".join(str(item) for item in serial))
    assert [list(wave.hosts) for wave in waves] == ansible_batches(list(fleet.hosts), serial)


# -- @group waves and the rest wave ----------------------------------------------------------------

REGIONS = {
    "clinics": ("gombe", "paris", "limete", "brooklyn", "goma"),
    "region_drc": ("gombe", "limete", "goma"),
    "region_europe": ("paris",),
    "region_us_east": ("brooklyn",),
}
REGION_FLEET = Fleet(hosts=REGIONS["clinics"], groups=REGIONS)


def test_group_wave_takes_its_clinics_in_fleet_order_then_the_rest() -> None:
    waves = plan(REGION_FLEET, "@region_drc")
    assert [(wave.name, wave.hosts) for wave in waves] == [
        ("region_drc", ("gombe", "limete", "goma")),
        ("rest", ("paris", "brooklyn")),
    ]


def test_group_waves_then_a_percentage_for_the_others() -> None:
    waves = plan(REGION_FLEET, "@region_europe,@region_us_east,100%")
    assert [(wave.name, wave.hosts) for wave in waves] == [
        ("region_europe", ("paris",)),
        ("region_us_east", ("brooklyn",)),
        ("wave 3", ("gombe", "limete", "goma")),
    ]


def test_a_canary_count_before_group_waves() -> None:
    waves = plan(REGION_FLEET, "1,@region_drc")
    assert [(wave.name, wave.hosts) for wave in waves] == [
        ("canary", ("gombe",)),
        ("region_drc", ("limete", "goma")),  # gombe is already planned
        ("rest", ("paris", "brooklyn")),
    ]


def test_a_group_with_nothing_left_makes_no_empty_wave() -> None:
    waves = plan(REGION_FLEET, "@clinics,@region_europe")
    assert [(wave.name, wave.hosts) for wave in waves] == [("clinics", REGIONS["clinics"])]


def test_no_rest_wave_when_the_groups_cover_every_clinic() -> None:
    waves = plan(REGION_FLEET, "@region_europe,@region_us_east,@region_drc")
    assert [wave.name for wave in waves] == ["region_europe", "region_us_east", "region_drc"]


def test_an_unknown_group_is_a_usage_error_naming_the_known_ones() -> None:
    with pytest.raises(UsageError) as error:
        plan(REGION_FLEET, "1,@region_asia")
    message = str(error.value)
    assert "'region_asia'" in message
    assert "clinics, region_drc, region_europe, region_us_east" in message
    assert "nothing was run" in message


def test_a_group_limited_away_is_unknown_too() -> None:
    limited = REGION_FLEET.only(["goma", "gombe"])
    assert limited.hosts == ("gombe", "goma")
    assert limited.groups == {"clinics": ("gombe", "goma"), "region_drc": ("gombe", "goma")}
    with pytest.raises(UsageError) as error:
        plan(limited, "@region_europe")
    assert "'region_europe'" in str(error.value)
    assert "(groups with targeted clinics: clinics, region_drc)" in str(error.value)


def test_no_steps_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no waves"):
        plan_waves(REGION_FLEET, [])


# -- every clinic exactly once ---------------------------------------------------------------------


@st.composite
def fleets_and_specs(draw: st.DrawFn) -> tuple[Fleet, str]:
    hosts = tuple(f"c{number}" for number in range(draw(st.integers(min_value=1, max_value=40))))
    names = draw(st.lists(st.from_regex(r"g[a-z0-9_]{0,6}", fullmatch=True), max_size=4, unique=True))
    groups = {}
    for name in names:
        members = draw(st.sets(st.sampled_from(hosts)))
        if members:
            groups[name] = tuple(host for host in hosts if host in members)
    step = st.one_of(
        st.integers(min_value=1, max_value=50).map(str),
        st.integers(min_value=1, max_value=100).map(lambda p: f"{p}%"),
        *([st.sampled_from(sorted(groups)).map(lambda g: f"@{g}")] if groups else []),
    )
    return Fleet(hosts=hosts, groups=groups), ",".join(draw(st.lists(step, min_size=1, max_size=6)))


@given(fleets_and_specs())
def test_every_clinic_is_in_exactly_one_wave(case: tuple[Fleet, str]) -> None:
    fleet, spec = case
    steps = parse_wave_spec(spec)
    waves = plan_waves(fleet, steps)
    planned = [host for wave in waves for host in wave.hosts]
    assert sorted(planned) == sorted(fleet.hosts)
    assert len(planned) == len(set(planned))
    assert [wave.index for wave in waves] == list(range(1, len(waves) + 1))
    position = {host: index for index, host in enumerate(fleet.hosts)}
    for wave in waves:
        assert wave.hosts, "no empty wave"
        assert list(wave.hosts) == sorted(wave.hosts, key=position.get)  # fleet order inside a wave
        if wave.name in fleet.groups:
            assert set(wave.hosts) <= set(fleet.groups[wave.name])
    named = [wave.name for wave in waves]
    for number, wave in enumerate(waves, start=1):
        if wave.name in fleet.groups or wave.name == "rest":
            continue
        expected = "all" if len(waves) == 1 else ("canary" if number == 1 else f"wave {number}")
        assert wave.name == expected
    if "rest" in named:
        assert named.index("rest") == len(waves) - 1 and steps[-1].group
