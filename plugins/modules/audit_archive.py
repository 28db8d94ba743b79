#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: audit_archive
short_description: Copy archived audit logs into the backup repository, prove the copy, delete locally after a retention
version_added: 0.1.0
description:
  - The audit path of the log rotation. Takes the archived audit files under O(archive_dir) (as
    M(clinicops.runbook.log_archive) leaves them, C(YYYY/MM/<name>) with a C(.sha256) side file), copies
    the ones not yet held in the repository into one restic snapshot tagged C(kind=audit-log) and the
    clinic, restores exactly those files from that snapshot into a private scratch directory and
    compares their SHA-256 with the local files. Only a file read back identical is recorded as verified
    in O(manifest).
  - A local file is deleted only when its copy was verified, its snapshot is still in the repository,
    its content still has the verified digest, and it is older than O(local_days).
  - A file that no longer matches the C(.sha256) written when it was archived stops the run before
    anything is copied or deleted. Files some process holds open, symbolic links and side files are
    never touched.
  - Repository retention applies to the audit snapshots alone (C(restic forget --keep-within
    <repository_years>y --tag kind=audit-log --prune)), counted back from the newest audit snapshot, so a
    clinic that stops shipping keeps everything. The backup retention never forgets audit snapshots
    (it selects one data set's tag).
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
  - clinicops.runbook.restic_repository
attributes:
  check_mode:
    support: full
    details:
      - Lists the files that would be copied and deleted (as if their copies verified) and the audit snapshots
        retention would forget (C(--dry-run)); nothing is written.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Once the files are held and verified, a second run copies nothing (unless time made files old enough to delete).
options:
  archive_dir:
    description: The archive of the audit logs, for example C(/var/log/clinicops/archive). Absent means nothing to do.
    type: path
    required: true
  patterns:
    description: Globs of the archived audit file names.
    type: list
    elements: str
    default: ["*.jsonl-*"]
  clinic:
    description: The clinic id (restic host and snapshot tag).
    type: str
    required: true
  manifest:
    description: The clinic's record of which file is in which verified snapshot (JSON, root only).
    type: path
    default: /var/lib/clinicops/audit-archive.json
  local_days:
    description: Days a file with a verified copy is still kept on the clinic.
    type: int
    default: 90
  repository_years:
    description: Years the repository keeps audit snapshots before the newest one; V(0) keeps them forever.
    type: int
    default: 6
  scratch_dir:
    description: Where the copies are read back from the repository to be compared (a private directory is made inside).
    type: path
    default: /var/lib/clinicops/audit-verify
requirements:
  - restic on the clinic
  - root (C(become=true)), to read the open files of every process
seealso:
  - module: clinicops.runbook.log_archive
  - module: clinicops.runbook.db_backup
"""

EXAMPLES = r"""
- name: Ship the clinic's archived audit logs, keep them 90 days locally and 6 years in the repository
  clinicops.runbook.audit_archive:
    archive_dir: /var/log/clinicops/archive
    clinic: kinshasa
    repository: /var/backups/clinicops/repo
    password_file: /etc/clinicops/restic-password
  become: true
"""

RETURN = r"""
msg:
  description: One line saying what was (or would be) done.
  returned: always
  type: str
  sample: "audit archive /var/log/clinicops/archive: copied 1 file(s) into /var/backups/clinicops/repo
    (snapshot 1a2b3c4d, 1 read back identical); deleted 0 local file(s) whose verified copy is older than
    the local retention; 3 kept on the clinic"
snapshot_id:
  description: The snapshot made by this run; null when nothing needed copying (or in check mode).
  returned: always
  type: str
shipped:
  description: The files copied (C(path), C(bytes), C(sha256)).
  returned: always
  type: list
  elements: dict
verified:
  description: The paths read back identical from the new snapshot.
  returned: always
  type: list
  elements: str
deleted:
  description: The local files deleted (C(path), C(bytes), C(snapshot) holding their verified copy).
  returned: always
  type: list
  elements: dict
kept_local:
  description: How many archived audit files stay on the clinic.
  returned: always
  type: int
skipped_open:
  description: Files some process holds open, left alone.
  returned: always
  type: list
  elements: str
skipped:
  description: Entries left alone, with the reason (C(path), C(reason)).
  returned: always
  type: list
  elements: dict
forgotten_snapshots:
  description: Audit snapshots forgotten by the repository retention (short ids).
  returned: always
  type: list
  elements: str
bytes_shipped:
  description: Bytes copied into the repository (before deduplication).
  returned: always
  type: int
bytes_freed:
  description: Bytes of the local files deleted.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.audit_shipping import (
    AuditShippingError,
    ship,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_archive import LogArchiveError
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_archive_files import open_paths
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import (
    ResticError,
    repository_argument_spec,
    repository_of,
)


def argument_spec():
    spec = dict(
        archive_dir=dict(type="path", required=True),
        patterns=dict(type="list", elements="str", default=["*.jsonl-*"]),
        clinic=dict(type="str", required=True),
        manifest=dict(type="path", default="/var/lib/clinicops/audit-archive.json"),
        local_days=dict(type="int", default=90),
        repository_years=dict(type="int", default=6),
        scratch_dir=dict(type="path", default="/var/lib/clinicops/audit-verify"),
    )
    spec.update(repository_argument_spec())
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    archive_dir = params["archive_dir"]
    if not archive_dir.startswith("/") or archive_dir.rstrip("/") in ("", "/var", "/var/log", "/etc"):
        module.fail_json(
            msg="audit archive: archive_dir must be an archive directory such as /var/log/clinicops/archive, "
            "not %r; no audit file was copied or deleted" % archive_dir
        )
    if params["local_days"] < 0 or params["repository_years"] < 0:
        module.fail_json(
            msg="audit archive: local_days and repository_years must not be negative; "
            "no audit file was copied or deleted"
        )
    if params["repository_years"] and params["local_days"] > params["repository_years"] * 365:
        module.fail_json(
            msg="audit archive: local_days (%d) is longer than the repository keeps audit snapshots (%d years); "
            "no audit file was copied or deleted" % (params["local_days"], params["repository_years"])
        )
    options = dict(
        (key, params[key])
        for key in ("archive_dir", "patterns", "clinic", "manifest", "local_days", "repository_years", "scratch_dir")
    )
    try:
        busy = open_paths([archive_dir]) if module.params["archive_dir"] else set()
        report = ship(repository_of(module), options, module.check_mode, busy)
    except (AuditShippingError, LogArchiveError, ResticError) as exc:
        module.fail_json(msg="audit archive of %s stopped: %s" % (archive_dir, exc))
    module.exit_json(**report)


if __name__ == "__main__":
    main()
