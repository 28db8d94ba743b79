"""What the log rotation policies leave on a provisioned clinic (testinfra, run by `molecule verify`).

Expectations come from the role's defaults, so the tests and the role cannot drift apart.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

testinfra_hosts = AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("clinics")

ROLE = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
DEFAULTS = yaml.safe_load((ROLE / "defaults/main.yml").read_text(encoding="utf-8"))
PROFILES = yaml.safe_load((ROLE / "vars/main.yml").read_text(encoding="utf-8"))["__log_rotation_builtin_profiles"]
DROPINS = "/etc/logrotate.d"


def directives(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines() if line.startswith("    ") and not line.startswith("        ")}


def test_one_drop_in_per_entry_root_owned(host):
    for entry in DEFAULTS["log_rotation_entries"]:
        dropin = host.file(f"{DROPINS}/clinicops-{entry['name']}")
        assert dropin.is_file, entry["name"]
        assert (dropin.user, dropin.group, dropin.mode) == ("root", "root", 0o644)


def test_drop_ins_hold_their_profiles(host):
    for entry in DEFAULTS["log_rotation_entries"]:
        found = directives(host.file(f"{DROPINS}/clinicops-{entry['name']}").content_string)
        for key, value in PROFILES[entry["profile"]].items():
            assert (key if value is True else f"{key} {value}") in found, (entry["name"], key, found)


def test_app_log_rotated_as_its_owner_with_a_reopen_signal(host):
    text = host.file(f"{DROPINS}/clinicops-clinic-app").content_string
    assert "su clinic clinic" in directives(text)
    assert "systemctl kill --kill-whom=main --signal=SIGHUP clinic-app.service" in text
    assert "copytruncate" not in text


def test_debian_nginx_drop_in_is_disabled_not_deleted(host):
    assert not host.file(f"{DROPINS}/nginx").exists
    assert host.file(f"{DROPINS}/nginx.disabled").is_file


def test_the_distribution_logrotate_conf_is_kept(host):
    assert host.file("/etc/logrotate.conf").contains("^include /etc/logrotate.d$")
    assert host.run("dpkg --verify logrotate").stdout == ""


def test_whole_configuration_has_no_errors(host):
    dry = host.run("logrotate --debug /etc/logrotate.conf")
    assert dry.rc == 0 and not re.search(r"^error:", dry.stderr + dry.stdout, re.M), dry.stderr


def test_journald_limits(host):
    conf = host.file("/etc/systemd/journald.conf.d/clinicops.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "root", 0o644)
    lines = set(conf.content_string.splitlines())
    assert {
        f"SystemMaxUse={DEFAULTS['log_rotation_journald_system_max_use']}",
        f"SystemKeepFree={DEFAULTS['log_rotation_journald_system_keep_free']}",
        f"MaxRetentionSec={DEFAULTS['log_rotation_journald_max_retention']}",
    } <= lines
    assert host.service("systemd-journald").is_running


def test_forced_rotation_names_files_with_date_and_time(host):
    host.check_output("curl -s -o /dev/null http://127.0.0.1/health/live")
    host.check_output("logrotate --force %s/clinicops-clinic-app", DROPINS)
    names = host.file("/var/log/clinic-app").listdir()
    assert "app.log" in names
    assert any(re.fullmatch(r"app\.log-\d{8}-\d{6}", name) for name in names), names
    assert host.file("/var/log/clinic-app/app.log").user == "clinic"
