#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: backup_offsite
short_description: Copy a clinic's backups to its off-site restic repository over SFTP
version_added: 0.1.0
description:
  - Copies every snapshot of the clinic's local repository that the off-site repository does not
    hold yet (C(restic copy)), so a copy that failed last night is simply completed by the next run.
  - The off-site repository is reached over SFTP with the clinic's own SSH key and account (see the
    C(clinicops.runbook.offsite_vault) role) and has its own password; it is created on first use
    with the local repository's chunker parameters, so copies stay deduplicated.
  - Snapshots stay encrypted end to end; the backup host never sees a password of the clinic's
    local repository.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
  - clinicops.runbook.restic_repository
attributes:
  check_mode:
    support: full
    details: Connects and reports how many snapshots would be copied; copies nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second run with nothing new copies nothing and reports no change.
options:
  offsite_repository:
    description: The off-site repository, C(sftp:<user>@<host>:<path>).
    type: str
    required: true
  offsite_password_file:
    description: Root-only file holding the off-site repository password.
    type: path
    required: true
  ssh_key:
    description: Private key of the clinic's off-site account.
    type: path
    required: true
  known_hosts:
    description: known_hosts file for the backup host (its key is recorded on first contact).
    type: path
    default: /etc/clinicops/offsite_known_hosts
  connect_timeout:
    description: Seconds to wait for the backup host.
    type: int
    default: 15
  clinic:
    description: Clinic id; only its snapshots are copied.
    type: str
    required: true
seealso:
  - module: clinicops.runbook.db_backup
"""

EXAMPLES = r"""
- name: Copy the clinic's backups off-site
  clinicops.runbook.backup_offsite:
    repository: /var/backups/clinicops/repo
    password_file: /etc/clinicops/restic-password
    offsite_repository: "sftp:clinicops-{{ clinic_id }}@backup-vault.example.org:/repo"
    offsite_password_file: /etc/clinicops/offsite-password
    ssh_key: /etc/clinicops/offsite_ed25519
    clinic: "{{ clinic_id }}"
"""

RETURN = r"""
copied:
  description: How many snapshots were copied (or would be, in check mode).
  returned: always
  type: int
  sample: 3
offsite_snapshots:
  description: Snapshots of this clinic in the off-site repository after the copy.
  returned: always
  type: int
  sample: 42
initialised:
  description: Whether the off-site repository was created by this run.
  returned: always
  type: bool
  sample: false
"""

import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_job import (
    copy_offsite,
    sftp_command,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import (
    ResticError,
    ResticRepo,
    module_runner,
    repository_argument_spec,
    repository_of,
)

SFTP_REPOSITORY = re.compile(r"^sftp:(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>/[A-Za-z0-9._/-]*)$")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository_argument_spec(),
            offsite_repository=dict(type="str", required=True),
            offsite_password_file=dict(type="path", required=True, no_log=False),
            ssh_key=dict(type="path", required=True, no_log=False),
            known_hosts=dict(type="path", default="/etc/clinicops/offsite_known_hosts"),
            connect_timeout=dict(type="int", default=15),
            clinic=dict(type="str", required=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    match = SFTP_REPOSITORY.match(params["offsite_repository"])
    if not match:
        module.fail_json(msg="offsite_repository %r is not sftp:<user>@<host>:/<path> (letters, digits, '.', '_', "
                         "'-'); nothing was copied" % params["offsite_repository"])
    command = sftp_command(match.group("user"), match.group("host"), params["ssh_key"], params["known_hosts"],
                           params["connect_timeout"])
    offsite = ResticRepo(module_runner(module), params["offsite_repository"], params["offsite_password_file"],
                         cache_dir=params["cache_dir"], sftp_command=command)
    try:
        result = copy_offsite(repository_of(module), offsite, params["clinic"], module.check_mode)
    except ResticError as exc:
        module.fail_json(msg="off-site copy to %s failed: %s; the local backups are unaffected and the copy is "
                         "retried on the next run" % (params["offsite_repository"], exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
