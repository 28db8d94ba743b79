"""The package_updates module's decisions with plain data, and the parts of main() that need no APT.

Origin patterns, selection (security only, exclusions, holds, trust), the check of APT's plan, the
reasons for a held-back upgrade, what a failed commit did, the service map and the summary are pure
functions. The lock wait, the quiet dpkg output and main()'s refusals are driven here with fakes;
real APT and dpkg run in tests/integration/test_package_updates.py.
"""

from __future__ import annotations

import json
import os
import sys
import types
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.package_updates import (
    DEFAULT_SECURITY_ORIGINS,
    PackageUpdatesError,
    apt_error_text,
    check_exclude,
    classify,
    commit_outcome,
    describe_origin,
    held_back_reason,
    is_excluded,
    is_security_origin,
    origin_matches,
    parse_origin_pattern,
    parse_origin_patterns,
    parse_unit_properties,
    path_aliases,
    reboot_packages,
    services_by_package,
    summary,
    unexpected_changes,
    unmatched_excludes,
    validate,
)
from ansible_collections.clinicops.runbook.plugins.modules import package_updates
from hypothesis import given
from hypothesis import strategies as st

DEFAULTS = parse_origin_patterns(DEFAULT_SECURITY_ORIGINS)


def origin(archive: str, label: str = "Debian", trusted: bool = True, **fields: str) -> dict[str, Any]:
    return {
        "origin": "Debian",
        "label": label,
        "archive": archive,
        "codename": archive,
        "component": "main",
        "site": "deb.debian.org",
        "trusted": trusted,
        **fields,
    }


SECURITY = origin("bookworm-security", label="Debian-Security", site="security.debian.org")
MAIN = origin("bookworm")
UPDATES = origin("bookworm-updates")


def package(name: str, candidate_origins: list[dict], newer: list[dict] | None = None, **extra: Any) -> dict:
    return {
        "name": name,
        "fullname": f"{name}:amd64",
        "installed": "1.0",
        "candidate": "1.2",
        "candidate_origins": candidate_origins,
        "newer_versions": newer or [],
        "hold": False,
        **extra,
    }


# -- origins ---------------------------------------------------------------------------------------


def test_the_default_patterns_match_debian_security_and_nothing_else() -> None:
    assert DEFAULTS == [{"archive": "*-security"}, {"label": "Debian-Security"}]
    assert is_security_origin(SECURITY, DEFAULTS)
    assert is_security_origin(origin("trixie-security", label="Vendor"), DEFAULTS)  # the suite alone is enough
    assert is_security_origin(origin("stable", label="Debian-Security"), DEFAULTS)  # so is the label
    for plain in (MAIN, UPDATES, origin("bookworm-backports"), origin("now", label="")):
        assert not is_security_origin(plain, DEFAULTS)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("archive=*-security", {"archive": "*-security"}),
        ("suite=bookworm-security", {"archive": "bookworm-security"}),
        (
            "o=Debian,l=Debian-Security,a=*-security,n=bookworm*,c=main",
            {
                "origin": "Debian",
                "label": "Debian-Security",
                "archive": "*-security",
                "codename": "bookworm*",
                "component": "main",
            },
        ),
        (
            " origin = Clinic Vendor , site=apt.vendor.example ",
            {"origin": "Clinic Vendor", "site": "apt.vendor.example"},
        ),
    ],
)
def test_origin_patterns_are_parsed_with_unattended_upgrades_field_names(text: str, pattern: dict) -> None:
    assert parse_origin_pattern(text) == pattern


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["suite"], "security_origins: 'suite' in pattern 'suite' is not field=glob"),
        (["archive=*-security,"], "security_origins: '' in pattern 'archive=*-security,' is not field=glob"),
        (
            ["release=bookworm"],
            "security_origins: 'release=bookworm' in pattern 'release=bookworm' is not field=glob with a field among",
        ),
        (["label="], "security_origins: 'label=' in pattern 'label=' is not field=glob"),
        (["a=x,archive=y"], "security_origins: pattern 'a=x,archive=y' names archive twice"),
        ([""], "security_origins: empty pattern ''"),
        ([], "security_origins is empty, so no update would count as security"),
    ],
)
def test_bad_origin_patterns_are_refused(texts: list[str], message: str) -> None:
    with pytest.raises(PackageUpdatesError) as refused:
        parse_origin_patterns(texts)
    assert str(refused.value).startswith(message)
    assert str(refused.value).endswith("; nothing was changed")


def test_every_field_of_a_pattern_must_match_and_globs_are_case_sensitive() -> None:
    vendor = parse_origin_pattern("origin=Clinic Vendor,label=*Security")
    assert origin_matches(origin("stable", origin="Clinic Vendor", label="Clinic Vendor Security"), vendor)
    assert not origin_matches(origin("stable", origin="Clinic Vendor", label="Clinic Vendor"), vendor)
    assert not origin_matches(origin("stable", origin="Other", label="Clinic Vendor Security"), vendor)
    assert not origin_matches(origin("bookworm-SECURITY"), {"archive": "*-security"})


SAFE_TEXT = st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="-._ "), max_size=20)


@given(st.fixed_dictionaries({field: SAFE_TEXT for field in ("origin", "label", "archive", "codename", "component")}))
def test_a_described_origin_is_a_pattern_that_matches_it(fields: dict[str, str]) -> None:
    described = describe_origin(fields)
    if not described.strip(" ,"):
        return
    if any(value != value.strip() for value in fields.values() if value):
        return  # patterns strip their values; such origins do not occur in Release files
    assert origin_matches(fields, parse_origin_pattern(described))


# -- exclusions and options ------------------------------------------------------------------------


def test_exclude_takes_names_and_globs_and_refuses_anything_else() -> None:
    names = ["linux-image-*", "postgresql-15", "libc6:amd64", "lib[ab]*", "g++-12", "python3.11"]
    assert check_exclude(names) == names
    for bad in ("nginx; rm -rf /", "Nginx", "a b", "../etc", "", "nginx\n"):
        with pytest.raises(PackageUpdatesError, match=r"^exclude: .* is not a package name or glob.*nothing was"):
            check_exclude([bad])


def test_exclusion_matches_the_name_or_the_name_with_its_architecture() -> None:
    assert is_excluded({"name": "libssl3", "fullname": "libssl3:amd64"}, ["libssl*"])
    assert is_excluded({"name": "libssl3", "fullname": "libssl3:amd64"}, ["libssl3:amd64"])
    assert not is_excluded({"name": "libssl3", "fullname": "libssl3:amd64"}, ["libssl3:i386", "openssl"])
    assert unmatched_excludes(["libssl*", "postgresql-16", "nginx"], ["libssl3", "nginx"]) == ["postgresql-16"]


@pytest.mark.parametrize("option", ["cache_valid_time", "lock_timeout"])
def test_negative_seconds_are_refused(option: str) -> None:
    params = {
        "cache_valid_time": 3600,
        "lock_timeout": 60,
        "security_origins": DEFAULT_SECURITY_ORIGINS,
        "exclude": [],
        option: -1,
    }
    with pytest.raises(PackageUpdatesError, match=f"^{option} must be 0 or more seconds, not -1; nothing was changed"):
        validate(params)


# -- selection -------------------------------------------------------------------------------------


def test_security_mode_takes_a_package_only_when_its_candidate_comes_from_a_security_origin() -> None:
    packages = [
        package("openssl", [SECURITY]),
        package("tzdata", [MAIN]),
        package("nginx", [UPDATES], newer=[{"version": "1.1", "origins": [SECURITY]}]),
        package("libc6", [MAIN, SECURITY]),  # a point release put the security version into the main suite too
    ]
    result = classify(packages, "security", DEFAULTS, [])
    assert [item["name"] for item in result["selected"]] == ["libc6", "openssl"]
    assert result["selected"][0]["origin"] == describe_origin(SECURITY)  # the security origin is the one reported
    assert result["non_security"] == [{"name": "tzdata", "from": "1.0", "to": "1.2", "origin": describe_origin(MAIN)}]
    [held] = result["held_back"]
    assert (held["name"], held["to"]) == ("nginx", "1.2")
    assert held["reason"].startswith("its candidate 1.2 is not from a security origin; the security version 1.1 is")
    assert result["excluded"] == []


def test_all_mode_takes_every_trusted_candidate() -> None:
    packages = [
        package("openssl", [SECURITY]),
        package("tzdata", [MAIN]),
        package("vendor-tool", [MAIN | {"trusted": False}]),
    ]
    result = classify(packages, "all", DEFAULTS, [])
    assert [item["name"] for item in result["selected"]] == ["openssl", "tzdata"]
    assert result["held_back"][0]["name"] == "vendor-tool"
    assert result["held_back"][0]["reason"] == "its candidate 1.2 is not from a trusted (signed) repository"
    assert result["non_security"] == []


def test_excluded_held_and_untrusted_packages_are_never_selected() -> None:
    packages = [
        package("linux-image-amd64", [SECURITY]),
        package("postgresql-15", [SECURITY], hold=True),
        package("openssl", [SECURITY | {"trusted": False}]),
        package("nginx", [MAIN], newer=[{"version": "1.1", "origins": [SECURITY]}]),
        package("tzdata", [MAIN]),
    ]
    result = classify(packages, "security", DEFAULTS, ["linux-image-*", "nginx", "tzdata"])
    assert result["selected"] == []
    assert [item["name"] for item in result["excluded"]] == ["linux-image-amd64", "nginx"]
    assert [item["name"] for item in result["non_security"]] == ["tzdata"]  # not security: not "excluded" either
    reasons = {item["name"]: item["reason"] for item in result["held_back"]}
    assert reasons["postgresql-15"].startswith("held by dpkg (selection 'hold'")
    assert reasons["openssl"] == "its candidate 1.2 is not from a trusted (signed) repository"


def test_a_custom_pattern_decides_what_security_is() -> None:
    vendor = origin("stable", origin="Clinic Vendor", label="Clinic Vendor Security")
    packages = [package("clinic-agent", [vendor]), package("openssl", [SECURITY])]
    only_vendor = parse_origin_patterns(["origin=Clinic Vendor,label=*Security"])
    result = classify(packages, "security", only_vendor, [])
    assert [item["name"] for item in result["selected"]] == ["clinic-agent"]
    assert [item["name"] for item in result["non_security"]] == ["openssl"]


# -- APT's plan ------------------------------------------------------------------------------------


def test_only_upgrades_of_selected_packages_to_their_candidate_are_expected() -> None:
    selected = [{"name": "openssl", "to": "3.0.15"}, {"name": "libssl3", "to": "3.0.15"}]
    changes = [
        {"name": "openssl", "action": "upgrade", "to": "3.0.15"},
        {"name": "libssl3", "action": "upgrade", "to": "3.0.16"},
        {"name": "tzdata", "action": "upgrade", "to": "2024b"},
        {"name": "libnew1", "action": "install", "to": "1.0"},
        {"name": "orphan", "action": "remove", "to": "1.0"},
        {"name": "old-lib", "action": "remove", "to": "1.0"},
    ]
    assert unexpected_changes(changes, selected, {"orphan"}) == [
        "upgrade libssl3",
        "upgrade tzdata",
        "install libnew1",
        "remove old-lib",
    ]
    assert unexpected_changes(changes[:1], selected) == []


def test_a_held_back_reason_names_what_the_upgrade_would_need() -> None:
    assert held_back_reason(["libnew2", "libnew1"], [], ["libnew1 (>= 2)"], {}) == (
        "needs new package(s) libnew1, libnew2 (an upgrade never installs new packages nor removes any)"
    )
    assert held_back_reason([], ["legacy-tool"], [], {}) == (
        "would remove legacy-tool (an upgrade never installs new packages nor removes any)"
    )
    assert held_back_reason([], [], ["libssl3 (>= 3.0.15)", "tzdata"], {"libssl3": "excluded"}) == (
        "depends on libssl3 (>= 3.0.15) (excluded); depends on tzdata "
        "(an upgrade never installs new packages nor removes any)"
    )
    assert held_back_reason([], [], [], {}).startswith("kept back by APT's resolver")


def test_apt_errors_keep_the_errors_and_drop_the_warnings() -> None:
    locked = (
        "E:Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 338 (apt-get), W:Be aware that "
        "removing the lock file is not a solution and may break your system., E:Unable to acquire the dpkg frontend "
        "lock (/var/lib/dpkg/lock-frontend), is another process using it?"
    )
    assert apt_error_text(locked) == (
        "Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 338 (apt-get); Unable to acquire "
        "the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?"
    )
    assert apt_error_text(SystemError("installArchives() failed")) == "installArchives() failed"
    assert apt_error_text("W:only a warning, W:and another") == "only a warning; and another"


# -- after the commit ------------------------------------------------------------------------------


def test_what_dpkg_reports_afterwards_decides_what_was_upgraded() -> None:
    planned = [
        {"name": "a", "from": "1.0", "to": "1.1"},
        {"name": "b", "from": "1.0", "to": "1.1"},
        {"name": "c", "from": "1.0", "to": "1.1"},
        {"name": "d", "from": "1.0", "to": "1.1"},
    ]
    now = {"a": ("1.1", "installed"), "b": ("1.0", "installed"), "c": ("1.1", "unpacked")}
    upgraded, not_upgraded, unfinished = commit_outcome(planned, now)
    assert upgraded == [planned[0]]
    assert not_upgraded == [{"name": "b", "from": "1.0", "to": "1.1", "now": "1.0"}]
    assert unfinished == [
        {"name": "c", "from": "1.0", "to": "1.1", "now": "1.1", "state": "unpacked"},
        {"name": "d", "from": "1.0", "to": "1.1", "now": None, "state": "not-installed"},
    ]


def test_reboot_packages_are_listed_once_in_order() -> None:
    assert reboot_packages("linux-image-6.1.0-28-amd64\nlibc6\n\nlinux-image-6.1.0-28-amd64\n") == [
        "linux-image-6.1.0-28-amd64",
        "libc6",
    ]
    assert reboot_packages(None) == []


# -- services --------------------------------------------------------------------------------------

SYSTEMCTL_SHOW = """\
ExecStart={ path=/usr/sbin/nginx ; argv[]=/usr/sbin/nginx -g daemon on; master_process on; ; ignore_errors=no ; \
start_time=[Thu 2026-11-26 07:56:21 UTC] ; stop_time=[n/a] ; pid=64 ; code=exited ; status=0 }
Id=nginx.service
FragmentPath=/lib/systemd/system/nginx.service

Id=postgresql@15-main.service
ExecStart={ path=/usr/bin/pg_ctlcluster ; argv[]=/usr/bin/pg_ctlcluster --skip-systemctl-redirect 15-main start ; \
ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }
FragmentPath=/lib/systemd/system/postgresql@.service

Id=clinic-worker.service
ExecStart={ path=/opt/clinic/bin/prepare ; argv[]=/opt/clinic/bin/prepare ; ignore_errors=no } \
{ path=/bin/clinic-worker ; argv[]=/bin/clinic-worker ; ignore_errors=no }
FragmentPath=/etc/systemd/system/clinic-worker.service

Id=cron.service
ExecStart=
FragmentPath=/lib/systemd/system/cron.service
"""


def test_systemctl_show_is_parsed_per_unit() -> None:
    units = parse_unit_properties(SYSTEMCTL_SHOW)
    assert [(unit["id"], unit["exec_paths"]) for unit in units] == [
        ("nginx.service", ["/usr/sbin/nginx"]),
        ("postgresql@15-main.service", ["/usr/bin/pg_ctlcluster"]),
        ("clinic-worker.service", ["/opt/clinic/bin/prepare", "/bin/clinic-worker"]),
        ("cron.service", []),
    ]
    assert units[1]["fragment"] == "/lib/systemd/system/postgresql@.service"


def test_a_unit_belongs_to_the_package_shipping_its_program_or_its_unit_file() -> None:
    units = parse_unit_properties(SYSTEMCTL_SHOW)
    files = {
        "nginx-light": ["/.", "/usr", "/usr/sbin", "/usr/sbin/nginx"],
        "nginx-common": ["/lib/systemd/system/nginx.service", "/etc/nginx/nginx.conf"],
        "clinic-worker": ["/usr/bin/clinic-worker"],  # the unit says /bin: the same file on merged /usr
        "cron": ["/usr/lib/systemd/system/cron.service", "/usr/sbin/cron"],
        "postgresql-15": ["/usr/lib/postgresql/15/bin/postgres"],  # started through pg_ctlcluster: not found
        "libssl3": ["/usr/lib/x86_64-linux-gnu/libssl.so.3"],
    }
    assert services_by_package(files, units) == {
        "nginx-light": ["nginx.service"],
        "nginx-common": ["nginx.service"],
        "clinic-worker": ["clinic-worker.service"],
        "cron": ["cron.service"],
        "postgresql-15": [],
        "libssl3": [],
    }


def test_merged_usr_paths_have_both_spellings() -> None:
    assert path_aliases("/bin/ls") == {"/bin/ls", "/usr/bin/ls"}
    assert path_aliases("/usr/lib/systemd/system/x.service") == {
        "/usr/lib/systemd/system/x.service",
        "/lib/systemd/system/x.service",
    }
    assert path_aliases("/opt/clinic/bin/run") == {"/opt/clinic/bin/run"}
    assert path_aliases("/usr/local/bin/run") == {"/usr/local/bin/run"}


# -- summary ---------------------------------------------------------------------------------------


def report(**fields: Any) -> dict[str, Any]:
    base = {
        "updates": "security",
        "upgraded": [],
        "held_back": [],
        "excluded": [],
        "autoremoved": [],
        "non_security_updates": [],
        "services_to_restart": [],
        "reboot_required": False,
        "reboot_required_packages": [],
    }
    return {**base, **fields}


def test_the_summary_says_what_was_done_in_one_line() -> None:
    upgraded = [{"name": f"pkg{index}", "from": "1", "to": "2"} for index in range(7)]
    text = summary(
        report(
            upgraded=upgraded,
            held_back=[{"name": "agent", "reason": "needs new package(s) libagent2"}],
            excluded=[{"name": "linux-image-amd64"}],
            non_security_updates=[{"name": "tzdata"}],
            services_to_restart=["nginx.service"],
            reboot_required=True,
            reboot_required_packages=["libc6"],
        ),
        check_mode=False,
    )
    assert text == (
        "security updates: upgraded 7 package(s) (pkg0 1 -> 2, pkg1 1 -> 2, pkg2 1 -> 2, pkg3 1 -> 2, pkg4 1 -> 2 "
        "and 2 more); 1 held back (agent: needs new package(s) libagent2); 1 excluded (linux-image-amd64); "
        "1 non-security update(s) left; services to restart: nginx.service; reboot required (libc6)"
    )
    assert "\n" not in text


def test_the_summary_in_check_mode_says_would() -> None:
    text = summary(
        report(updates="all", upgraded=[{"name": "a", "from": "1", "to": "2"}], autoremoved=[{"name": "old"}]),
        check_mode=True,
        note="package lists not updated in check mode (last updated 7200 s ago)",
    )
    assert text == (
        "all updates: would upgrade 1 package(s) (a 1 -> 2); would autoremove 1 (old); "
        "package lists not updated in check mode (last updated 7200 s ago)"
    )
    assert summary(report(), check_mode=False) == "security updates: nothing to upgrade"
    assert summary(report(held_back=[{"name": "a", "reason": "r"}]), check_mode=True) == (
        "security updates: nothing to upgrade; 1 held back (a: r)"
    )


# -- the module without APT ------------------------------------------------------------------------


def run_module(capsys: pytest.CaptureFixture[str], **args: Any) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        package_updates.main()
    return json.loads(capsys.readouterr().out)


def test_without_python3_apt_the_module_fails_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "apt", None)  # importing it raises ImportError
    result = run_module(capsys)
    assert result["failed"]
    assert result["msg"].startswith("python3-apt cannot be imported by ")
    assert "install python3-apt, or run the module with ansible_python_interpreter=/usr/bin/python3" in result["msg"]
    assert result["msg"].endswith("nothing was changed")


def test_bad_input_is_refused_before_apt_is_touched(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_apt() -> None:
        raise AssertionError("APT must not be touched")

    monkeypatch.setattr(package_updates, "import_apt", no_apt)
    result = run_module(capsys, exclude=["postgresql-15", "nginx light"])
    assert result["failed"]
    assert result["msg"].startswith("exclude: 'nginx light' is not a package name or glob")
    result = run_module(capsys, security_origins=["label:Debian-Security"])
    assert result["msg"].startswith("security_origins: 'label:Debian-Security' in pattern")


class FakeAptError(SystemError):
    """apt_pkg.Error"""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


HELD = (
    "E:Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr), "
    "W:Be aware that removing the lock file is not a solution and may break your system., "
    "E:Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?"
)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(package_updates.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(package_updates.time, "sleep", fake.sleep)
    monkeypatch.setattr(package_updates.os, "geteuid", lambda: 0)
    return fake


def updater(lock_timeout: int, lock_results: list[Exception | None]) -> tuple[Any, list[str]]:
    calls: list[str] = []

    def pkgsystem_lock() -> None:
        calls.append("lock")
        outcome = lock_results.pop(0)
        if outcome is not None:
            raise outcome

    apt_pkg = types.SimpleNamespace(Error=FakeAptError, pkgsystem_lock=pkgsystem_lock)
    apt = types.SimpleNamespace(cache=types.SimpleNamespace(LockFailedException=type("LockFailed", (OSError,), {})))
    module = types.SimpleNamespace(params={"lock_timeout": lock_timeout}, check_mode=False)
    return package_updates.PackageUpdates(module, apt, apt_pkg), calls


def test_a_held_lock_is_waited_for_until_it_is_free(clock: FakeClock) -> None:
    updates, calls = updater(5, [FakeAptError(HELD), FakeAptError(HELD), None])
    updates.lock()
    assert updates.locked and calls == ["lock"] * 3 and clock.slept == [1.0, 1.0]


def test_a_lock_held_past_the_timeout_fails_and_changes_nothing(clock: FakeClock) -> None:
    updates, calls = updater(3, [FakeAptError(HELD)] * 10)
    with pytest.raises(PackageUpdatesError) as refused:
        updates.lock()
    assert str(refused.value) == (
        "another package manager holds the lock: Could not get lock /var/lib/dpkg/lock-frontend. It is held by "
        "process 4242 (unattended-upgr); Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), "
        "is another process using it? (waited 3 s, lock_timeout); nothing was changed"
    )
    assert len(calls) == 4 and not updates.locked


def test_a_lock_error_that_is_not_contention_fails_at_once(clock: FakeClock) -> None:
    updates, calls = updater(60, [FakeAptError("E:dpkg was interrupted, you must manually run 'dpkg --configure -a'")])
    with pytest.raises(PackageUpdatesError, match=r"^taking the dpkg lock failed: dpkg was interrupted"):
        updates.lock()
    assert calls == ["lock"] and clock.slept == []


def test_changing_packages_needs_root(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package_updates.os, "geteuid", lambda: 1000)
    updates, calls = updater(60, [None])
    with pytest.raises(PackageUpdatesError, match=r"^package updates need root \(become: true\); nothing was changed"):
        updates.lock()
    assert calls == []


def test_dpkg_output_goes_to_the_log_not_to_the_module_output(tmp_path, capfd: pytest.CaptureFixture[str]) -> None:
    class BaseProgress:
        def __init__(self) -> None:
            pass

    fake_apt = types.SimpleNamespace(
        progress=types.SimpleNamespace(base=types.SimpleNamespace(InstallProgress=BaseProgress))
    )
    log = tmp_path / "dpkg.log"
    progress = package_updates.quiet_install_progress(fake_apt)(str(log))
    pid = progress.fork()
    if pid == 0:  # the child, as dpkg would run
        os.write(1, b"Setting up openssl (3.0.15) ...\n")
        os.write(2, b"dpkg: warning: something\n")
        os._exit(0)
    os.waitpid(pid, 0)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert log.read_text() == "Setting up openssl (3.0.15) ...\ndpkg: warning: something\n"
    progress.error("/var/cache/apt/archives/openssl.deb", "subprocess new pre-installation script returned error\n")
    assert progress.errors == [
        "/var/cache/apt/archives/openssl.deb: subprocess new pre-installation script returned error"
    ]
