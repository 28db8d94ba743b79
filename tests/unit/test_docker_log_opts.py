"""The docker_log_limits and docker_stale_containers filters: what the log_rotation role writes to daemon.json.

The merge keeps every other key, writes the limits as strings, leaves another log driver (or log flags on
dockerd's command line) alone, refuses bad JSON and bad limits with a message naming the file, and a
second pass over its own output has nothing left to write. The stale list holds the json-file
containers without the limits. Also through Ansible, as the role calls them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.clinicops.runbook.plugins.filter.docker_log_opts import FilterModule

from clinicops.project import collections_root

FILTERS = FilterModule().filters()
docker_log_limits = FILTERS["docker_log_limits"]
docker_stale_containers = FILTERS["docker_stale_containers"]
PATH = "/etc/docker/daemon.json"
LIMITS = {"max-size": "50m", "max-file": "5"}


def merge(text: str | None, **options: object) -> dict:
    return docker_log_limits(text, options.pop("max_size", "50m"), options.pop("max_file", 5), path=PATH, **options)


def test_no_file_gets_the_driver_and_the_limits_as_strings():
    result = merge(None)
    assert result["valid"] and result["write"] and result["applied"]
    assert result["config"] == {"log-driver": "json-file", "log-opts": LIMITS}
    assert json.loads(result["content"]) == result["config"]
    assert result["content"].endswith("\n")
    assert merge("")["config"] == merge("  \n")["config"] == result["config"]


def test_every_other_key_is_kept_in_its_order():
    text = json.dumps(
        {
            "storage-driver": "vfs",
            "log-opts": {"labels": "clinic", "max-size": "10m"},
            "iptables": False,
            "dns": ["1.1.1.1"],
        }
    )
    result = merge(text)
    assert result["write"]
    assert result["config"] == {
        "storage-driver": "vfs",
        "log-opts": {"labels": "clinic", "max-size": "50m", "max-file": "5"},
        "iptables": False,
        "dns": ["1.1.1.1"],
        "log-driver": "json-file",
    }
    assert list(result["config"])[:4] == ["storage-driver", "log-opts", "iptables", "dns"]
    assert result["current"] == json.loads(text)


def test_a_second_pass_over_its_own_output_writes_nothing():
    first = merge(json.dumps({"storage-driver": "vfs"}))
    second = merge(first["content"])
    assert not second["write"] and second["applied"]
    assert second["config"] == first["config"]


def test_an_equal_size_in_other_letters_is_kept():
    text = json.dumps({"log-driver": "json-file", "log-opts": {"max-size": "50M", "max-file": "5"}})
    assert not merge(text)["write"]


@pytest.mark.parametrize(
    "log_opts",
    [
        {"max-size": "50m", "max-file": 5},  # dockerd refuses a number: log-opts are strings
        {"max-size": "100m", "max-file": "5"},
        {"max-size": "50m"},
    ],
)
def test_other_or_mistyped_limits_are_rewritten(log_opts):
    result = merge(json.dumps({"log-driver": "json-file", "log-opts": log_opts}))
    assert result["write"] and result["config"]["log-opts"] == LIMITS


def test_a_missing_log_driver_is_written_even_when_the_limits_are_there():
    result = merge(json.dumps({"log-opts": LIMITS}))
    assert result["write"] and result["config"]["log-driver"] == "json-file"


@pytest.mark.parametrize("driver", ["journald", "local", "syslog"])
def test_another_driver_is_left_alone_and_reported(driver):
    text = json.dumps({"log-driver": driver, "log-opts": {"tag": "{{.Name}}"}})
    result = merge(text)
    assert result["valid"] and not result["write"] and not result["applied"]
    assert result["log_driver"] == driver
    assert result["config"] == json.loads(text)
    assert f"log-driver {driver} is configured in {PATH}" in result["reason"]


@pytest.mark.parametrize(
    "command_line", ["/usr/bin/dockerd -H fd:// --log-driver=journald", "/usr/bin/dockerd --log-opt max-size=1m"]
)
def test_log_flags_on_the_command_line_leave_the_file_alone(command_line):
    result = merge("{}", command_line=command_line)
    assert result["valid"] and not result["write"] and not result["applied"]
    assert "dockerd's command line sets its log options" in result["reason"]


def test_other_flags_on_the_command_line_do_not_count():
    result = merge(
        "{}", command_line="{ path=/usr/sbin/dockerd ; argv[]=/usr/sbin/dockerd -H fd:// --log-level=warn ; }"
    )
    assert result["write"] and result["applied"]


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ('{"storage-driver": "vfs",}', f"{PATH} is not valid JSON (Expecting property name enclosed in double quotes"),
        ("[1, 2]", f"{PATH} holds a JSON list, not the object dockerd reads"),
        ('{"log-opts": "max-size=1m"}', f"log-opts in {PATH} is a JSON str, not an object"),
    ],
)
def test_a_file_dockerd_would_not_read_is_refused(text, fault):
    result = merge(text)
    assert not result["valid"] and not result["write"]
    assert result["error"].startswith(fault), result["error"]


@pytest.mark.parametrize(
    ("max_size", "max_file", "fault"),
    [
        ("fifty", 5, "log_rotation_docker_max_size='fifty' is not a size"),
        ("0", 5, "log_rotation_docker_max_size='0' is not a size"),
        ("50m", 0, "log_rotation_docker_max_file=0 is not a whole number of at least 1"),
        ("50m", "five", "log_rotation_docker_max_file='five' is not a whole number"),
        ("50m", True, "log_rotation_docker_max_file=True is not a whole number"),
    ],
)
def test_bad_limits_are_refused(max_size, max_file, fault):
    result = merge("{}", max_size=max_size, max_file=max_file)
    assert not result["valid"] and not result["write"]
    assert fault in result["error"]


def test_text_of_another_type_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match=r"expects the text of daemon\.json"):
        merge({"log-driver": "json-file"})


def container(name: str, log_type: str, log_opts: dict, created: str) -> dict:
    return {
        "Id": name * 8,
        "Name": f"/{name}",
        "Created": created,
        "Config": {"Image": f"clinic/{name}:1"},
        "HostConfig": {"LogConfig": {"Type": log_type, "Config": log_opts}},
    }


def test_stale_containers_are_the_json_file_ones_without_the_limits():
    inspected = [
        container("web", "json-file", {}, "2026-11-02T10:00:00Z"),
        container("new", "json-file", {"max-size": "50m", "max-file": "5"}, "2026-11-26T10:00:00Z"),
        container("upper", "json-file", {"max-size": "50M", "max-file": "5"}, "2026-11-26T10:00:00Z"),
        container("journal", "journald", {}, "2026-11-01T10:00:00Z"),
        container("old", "json-file", {"max-size": "10m", "max-file": "3"}, "2026-10-01T10:00:00Z"),
    ]
    stale = docker_stale_containers(inspected, "50m", 5)
    assert stale == [
        {
            "name": "old",
            "image": "clinic/old:1",
            "created": "2026-10-01T10:00:00Z",
            "log_opts": {"max-size": "10m", "max-file": "3"},
        },
        {"name": "web", "image": "clinic/web:1", "created": "2026-11-02T10:00:00Z", "log_opts": {}},
    ]
    assert docker_stale_containers([], "50m", 5) == []


def test_stale_containers_need_the_inspect_list_and_good_limits():
    with pytest.raises(AnsibleFilterError, match="expects the list docker inspect prints"):
        docker_stale_containers({}, "50m", 5)
    with pytest.raises(AnsibleFilterError, match="log_rotation_docker_max_size"):
        docker_stale_containers([], "big", 5)


def test_through_ansible_as_the_role_calls_them(tmp_path: Path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: >-
          {{ {'merge': '{"debug": true}' | clinicops.runbook.docker_log_limits('50m', 5, path='/x/daemon.json'),
              'stale': [] | clinicops.runbook.docker_stale_containers('50m', 5)} | to_json }}
"""
    )
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections_root()), "ANSIBLE_STDOUT_CALLBACK": "json"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    message = json.loads(json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"])
    assert message["merge"]["config"] == {"debug": True, "log-driver": "json-file", "log-opts": LIMITS}
    assert message["merge"]["write"] and message["stale"] == []
