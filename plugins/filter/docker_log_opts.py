# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker's json-file log limits: merged into daemon.json, and the containers created without them.

Pure functions of the text of daemon.json and of ``docker inspect``'s records, so the log_rotation
role's decisions (what to write, what is left alone, which containers still log without limits) are
unit-tested without a Docker daemon; see docs/log-rotation.md ("Docker's log limits").
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

JSON_FILE = "json-file"
# dockerd's default driver, used when daemon.json sets none.
DEFAULT_DRIVER = JSON_FILE
# The sizes dockerd's json-file driver takes for max-size (go-units RAMInBytes: binary multiples).
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
MULTIPLIER = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
# Log settings given to dockerd on its command line: daemon.json may not repeat them (dockerd refuses to
# start when a directive is both a flag and in the file).
LOG_FLAGS = re.compile(r"(?:^|\s)--log-(?:driver|opt)(?:[=\s]|$)")


def _size_bytes(value):
    """The bytes of a json-file size ('50m' -> 52428800), None when it is not one."""
    found = SIZE.match(str(value))
    if not found:
        return None
    return int(float(found.group(1)) * MULTIPLIER[found.group(2).lower()])


def _limits(max_size, max_file):
    """The configured limits as dockerd wants them (strings), or a list of what is wrong with them."""
    problems = []
    size = str(max_size).strip()
    if _size_bytes(size) is None or _size_bytes(size) == 0:
        problems.append("log_rotation_docker_max_size=%r is not a size like 50m or 1g" % (max_size,))
    count = str(max_file).strip()
    if isinstance(max_file, bool) or not count.isdigit() or int(count) < 1:
        problems.append("log_rotation_docker_max_file=%r is not a whole number of at least 1" % (max_file,))
    return {"max-size": size, "max-file": count}, problems


def _same_limits(log_opts, limits):
    """Whether a container's or the daemon's log options already hold the limits (50m equals 50M)."""
    size = log_opts.get("max-size")
    count = log_opts.get("max-file")
    return (
        size is not None
        and _size_bytes(size) == _size_bytes(limits["max-size"])
        and count is not None
        and str(count).strip() == limits["max-file"]
    )


def _outcome(current, limits, changed, driver, applied, reason, error=""):
    merged = dict(current)
    if changed:
        merged["log-driver"] = JSON_FILE
        merged["log-opts"] = dict(current.get("log-opts") or {}, **limits)
    return {
        "valid": not error,
        "error": error,
        "current": current,
        "config": merged,
        # Written only when needed; 2-space JSON like Docker's documentation, the keys in their order.
        "content": json.dumps(merged, indent=2) + "\n",
        "write": changed,
        "log_driver": driver,
        "applied": applied,
        "reason": reason,
        "limits": limits,
    }


def docker_log_limits(text, max_size, max_file, path="/etc/docker/daemon.json", command_line=""):
    """daemon.json's text with json-file's max-size and max-file merged in, every other key kept.

    ``text`` is the file's content ('' or None: no file). Returns a dict: valid/error (bad JSON or bad
    limits: nothing may be written), current, config (merged), content (the text to write), write (the
    file must be written), log_driver (the one dockerd uses), applied (the limits are in effect once
    dockerd reads the file), reason (why they are not applied: another driver, or log flags on dockerd's command line).
    """
    if text is not None and not isinstance(text, str):
        raise AnsibleFilterError("docker_log_limits expects the text of daemon.json, got %s" % type(text).__name__)
    limits, problems = _limits(max_size, max_file)
    if problems:
        return _outcome({}, limits, False, None, False, "", "; ".join(problems))
    if not (text or "").strip():
        current = {}
    else:
        try:
            current = json.loads(text)
        except ValueError as exc:
            return _outcome({}, limits, False, None, False, "", "%s is not valid JSON (%s)" % (path, exc))
    if not isinstance(current, Mapping):
        error = "%s holds a JSON %s, not the object dockerd reads" % (path, type(current).__name__)
        return _outcome({}, limits, False, None, False, "", error)
    log_opts = current.get("log-opts")
    if log_opts is not None and not isinstance(log_opts, Mapping):
        error = "log-opts in %s is a JSON %s, not an object" % (path, type(log_opts).__name__)
        return _outcome(current, limits, False, None, False, "", error)
    driver = current.get("log-driver") or DEFAULT_DRIVER
    if LOG_FLAGS.search(command_line or ""):
        reason = "dockerd's command line sets its log options (--log-driver/--log-opt); %s was left as it is" % path
        return _outcome(current, limits, False, driver, False, reason)
    if driver != JSON_FILE:
        reason = "log-driver %s is configured in %s; it was left as it is (the json-file limits do not apply)" % (
            driver,
            path,
        )
        return _outcome(current, limits, False, driver, False, reason)
    log_opts = log_opts or {}
    # Values as dockerd wants them: strings; 50M in the file equals 50m asked, and is kept.
    already = (
        current.get("log-driver") == JSON_FILE
        and _same_limits(log_opts, limits)
        and all(isinstance(log_opts[key], str) for key in limits)
    )
    return _outcome(current, limits, not already, driver, True, "")


def docker_stale_containers(inspected, max_size, max_file):
    """The containers of ``docker inspect`` logging with json-file without the limits (created before them).

    Returns [{name, image, created, log_opts}] sorted by creation time. A container keeps the log options
    it was created with until it is re-created, whatever daemon.json says.
    """
    if not isinstance(inspected, list):
        raise AnsibleFilterError("docker_stale_containers expects the list docker inspect prints")
    limits, problems = _limits(max_size, max_file)
    if problems:
        raise AnsibleFilterError("; ".join(problems))
    stale = []
    for record in inspected:
        if not isinstance(record, Mapping):
            continue
        log_config = (record.get("HostConfig") or {}).get("LogConfig") or {}
        if log_config.get("Type") != JSON_FILE:
            continue
        log_opts = log_config.get("Config") or {}
        if _same_limits(log_opts, limits):
            continue
        stale.append(
            {
                "name": str(record.get("Name") or record.get("Id", "")[:12]).lstrip("/"),
                "image": (record.get("Config") or {}).get("Image") or record.get("Image", ""),
                "created": record.get("Created", ""),
                "log_opts": dict(log_opts),
            }
        )
    return sorted(stale, key=lambda item: (item["created"], item["name"]))


class FilterModule(object):
    def filters(self):
        return {"docker_log_limits": docker_log_limits, "docker_stale_containers": docker_stale_containers}
