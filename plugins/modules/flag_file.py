#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: flag_file
short_description: Set feature flags in the app's flag file, in one step, atomically
version_added: 0.1.0
description:
  - The file an app's systemd unit loads with C(EnvironmentFile=-) holds one C(FEATURE_<NAME>=true|false)
    line per flag. This module sets the flags of O(flags) in it and keeps the others, writes it atomically
    (temporary file with owner and mode, fsync, rename; the unit never reads half a file) and returns what
    was there before, so that a failed change can be put back with O(state=restored).
  - With O(unit), it first checks that the unit loads the file (C(systemctl show --property=EnvironmentFiles));
    flags written where nothing reads them would look set and change nothing.
  - One module run instead of the stat, read, directory and copy tasks it replaces, because the kill switch
    (C(clinicops flag set)) is mostly made of such round trips, fleet-wide.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details: Reports the flags that would change and the file as it is; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
options:
  path:
    description: The flag file. Its directory is created (C(0750), root and O(group)) when missing.
    type: path
    required: true
  flags:
    description:
      - Flag name (1-64 lowercase letters, digits or C(_)) to C(true) or C(false). Flags of the file not
        named keep their value. Empty with O(state=present) only reads the file.
    type: dict
    default: {}
  state:
    description:
      - C(present) sets O(flags). C(restored) puts O(previous) back as it was (or removes the file when
        O(previous) is null), the rollback of a change this module made.
    type: str
    choices: [present, restored]
    default: present
  previous:
    description: With O(state=restored), the file's text as RV(previous) returned it; null removes the file.
    type: str
  header:
    description: The comment line the file starts with.
    type: str
    default: "# Feature flags (clinicops.runbook.flag_file). Flags only, never a secret."
  group:
    description: The group that reads the file (the app's); the owner is root.
    type: str
    default: root
  mode:
    description: The file's mode, octal.
    type: str
    default: "0640"
  unit:
    description:
      - A systemd unit that must load O(path) as an environment file; refused (nothing written) when it
        does not.
    type: str
notes:
  - A value is true when it is C(1), C(true), C(yes) or C(on) (any case), as the clinic app reads it.
seealso:
  - name: Incident response (the kill switch)
    description: How clinicops.runbook.feature_flags uses this module.
    link: https://example.invalid/clinicops/runbook/docs/incident-response.md
"""

EXAMPLES = r"""
- name: The kill switch
  clinicops.runbook.flag_file:
    path: /etc/clinic-app/flags.env
    flags:
      ai_enabled: false
    group: clinic
    unit: clinic-app.service
  register: written

- name: Put the previous file back (the change failed its health gate)
  clinicops.runbook.flag_file:
    path: /etc/clinic-app/flags.env
    state: restored
    previous: "{{ written.previous }}"
    group: clinic
"""

RETURN = r"""
path:
  description: The flag file.
  returned: always
  type: str
  sample: /etc/clinic-app/flags.env
previous:
  description: The file's text before the task; null when there was no file.
  returned: always
  type: str
  sample: "# Feature flags ...\nFEATURE_AI_ENABLED=true\n"
before:
  description: The flags of the file before the task.
  returned: always
  type: dict
  sample: {"ai_enabled": true}
flags:
  description: The flags of the file after the task (in check mode, as they would be).
  returned: always
  type: dict
  sample: {"ai_enabled": false}
changed_flags:
  description: Names of the flags whose value changed (or would), sorted.
  returned: always
  type: list
  elements: str
  sample: [ai_enabled]
content_changed:
  description: Whether the file's text changed (or would); a change of owner or mode alone leaves it false.
  returned: always
  type: bool
  sample: true
"""

import grp
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.atomic_files import (
    read_text,
    remove,
    write_atomic,
)

NAME = re.compile(r"^[a-z0-9_]{1,64}$")
LINE = re.compile(r"^FEATURE_([A-Za-z0-9_]+)=(.*)$", re.M)
TRUE = ("1", "true", "yes", "on")
HEADER = "# Feature flags (clinicops.runbook.flag_file). Flags only, never a secret."


class FlagFileError(Exception):
    """A refusal; the message says what was wrong. Nothing was written."""


def parse(text):
    """The flags of a flag file's text: lowercase name -> bool."""
    return dict((name.lower(), value.strip().lower() in TRUE) for name, value in LINE.findall(text or ""))


def render(header, flags):
    lines = [header] + ["FEATURE_%s=%s" % (name.upper(), "true" if flags[name] else "false") for name in sorted(flags)]
    return "\n".join(lines) + "\n"


def to_bool(name, value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise FlagFileError("flag %s takes true or false, not %r" % (name, value))


def wanted_flags(flags):
    bad = sorted(str(name) for name in flags if not NAME.match(str(name)))
    if bad:
        raise FlagFileError("flag names must be 1-64 lowercase letters, digits or _: %s" % ", ".join(bad))
    return dict((name, to_bool(name, value)) for name, value in flags.items())


def check_unit(module, unit, path):
    rc, out, err = module.run_command(["systemctl", "show", "--property=EnvironmentFiles", unit])
    if rc != 0:
        raise FlagFileError("systemctl show %s failed: %s" % (unit, (err or out).strip()))
    prefix = "EnvironmentFiles="
    loaded = [line[len(prefix):].split(" ", 1)[0] for line in out.splitlines() if line.startswith(prefix)]
    if path not in loaded:
        raise FlagFileError(
            "the unit %s does not load %s (EnvironmentFile=-%s): provision the clinic with"
            " clinicops.runbook.clinic_host (playbooks/provision.yml) first" % (unit, path, path)
        )


def gid_of(group):
    known = dict((entry.gr_name, entry.gr_gid) for entry in grp.getgrall())
    if group not in known:
        raise FlagFileError("group %s does not exist" % group)
    return known[group]


def metadata_differs(path, gid, mode):
    info = os.stat(path)
    return info.st_uid != 0 or info.st_gid != gid or (info.st_mode & 0o7777) != mode


def ensure_directory(path, gid):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o750)
        os.chown(directory, 0, gid)


def run(module):
    params = module.params
    path = params["path"]
    mode = int(params["mode"], 8)
    if params["unit"]:
        check_unit(module, params["unit"], path)
    gid = gid_of(params["group"])
    previous = read_text(path)
    before = parse(previous)
    writes = params["state"] == "restored" or bool(params["flags"])
    if params["state"] == "restored":
        after_text = params["previous"]
    elif params["flags"]:
        after_text = render(params["header"], dict(before, **wanted_flags(params["flags"])))
    else:
        after_text = previous  # nothing to set: only read
    after = parse(after_text)
    content_changed = after_text != previous
    fix_metadata = writes and after_text is not None and not content_changed and metadata_differs(path, gid, mode)
    result = dict(
        path=path,
        previous=previous,
        before=before,
        flags=after,
        changed_flags=sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name)),
        content_changed=content_changed,
        changed=content_changed or fix_metadata,
    )
    if module.check_mode or not result["changed"]:
        return result
    if after_text is None:
        remove(path)
    elif content_changed:
        ensure_directory(path, gid)
        write_atomic(path, after_text, mode, sync_directory=True, owner=(0, gid))
    else:
        os.chown(path, 0, gid)
        os.chmod(path, mode)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            flags=dict(type="dict", default={}),
            state=dict(type="str", choices=["present", "restored"], default="present"),
            previous=dict(type="str"),
            header=dict(type="str", default=HEADER),
            group=dict(type="str", default="root"),
            mode=dict(type="str", default="0640"),
            unit=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        if not re.match(r"^0?[0-7]{3}$", module.params["mode"]):
            raise FlagFileError("mode must be octal, like 0640, not %r" % module.params["mode"])
        result = run(module)
    except FlagFileError as exc:
        module.fail_json(msg="flag file %s: %s; nothing was written" % (path, exc), path=path)
    except (IOError, OSError) as exc:
        module.fail_json(msg="flag file %s: %s; the file is as it was" % (path, exc), path=path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
