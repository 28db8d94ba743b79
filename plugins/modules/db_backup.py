#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: db_backup
short_description: Back up one data store of a clinic into its encrypted restic repository, with a manifest
version_added: 0.1.0
description:
  - Makes a consistent copy of one data set into a spool directory, writes its manifest, stores
    both as one snapshot of the clinic's restic repository (encrypted at rest, deduplicated,
    compressed), reads the manifest back from the snapshot, and removes the spool.
  - C(postgresql) runs C(pg_dump) (custom format, the client of the server's major version) in a
    snapshot exported by a read-only transaction, and counts every table's rows in that same
    snapshot, so the manifest describes exactly what the dump holds; plus
    C(pg_dumpall --globals-only --no-role-passwords).
  - C(sqlite) uses SQLite's online backup API and checks the copy with C(PRAGMA integrity_check);
    a live database file is never copied raw.
  - C(redis) runs C(BGSAVE), waits until C(LASTSAVE) moves and the save reports ok, then copies the
    RDB file.
  - C(files) snapshots a directory (uploaded files) as it is.
  - The manifest records clinic, engine, data set, release id, tool versions, files with sizes and
    SHA-256, per-table row counts, schema version, start, end and exit codes.
  - Snapshots are tagged C(clinicops), C(clinic=), C(engine=), C(dataset=), C(date=), C(kind=) and, when
    given, C(release=), so a backup can be found by any of them.
  - Any failed step fails the task and leaves no snapshot; the spool is always removed.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
  - clinicops.runbook.restic_repository
attributes:
  check_mode:
    support: full
    details: Runs the pre-flight checks (name, repository reachable, free spool space) and makes no backup.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run makes a new snapshot (deduplicated against the previous one).
options:
  engine:
    description: Kind of data store.
    type: str
    required: true
    choices: [postgresql, sqlite, redis, files]
  name:
    description:
      - The data set, by engine. V(postgresql) the database name (a plain identifier);
        V(sqlite) the database file; V(redis) a label (usually C(redis)); V(files) the directory.
    type: str
    required: true
  clinic:
    description: Clinic id, recorded in the manifest and the tags.
    type: str
    required: true
  release_id:
    description: Release this backup is bound to (the pre-deploy backup of a release).
    type: str
  spool_dir:
    description: Where the copy is made before it goes into the repository (root-only; emptied after).
    type: path
    default: /var/backups/clinicops/spool
  min_free_bytes:
    description: Refuse to start when the spool's file system has less free space than this.
    type: int
    default: 104857600
  postgresql:
    description: How to reach PostgreSQL, for O(engine=postgresql).
    type: dict
    default: {}
    suboptions:
      host:
        description: Host or socket directory.
        type: str
        default: 127.0.0.1
      port:
        description: Port.
        type: int
        default: 5432
      user:
        description: Role to dump as (the database owner).
        type: str
      passfile:
        description: libpq password file of that role.
        type: path
        default: /etc/clinicops/pgpass
      os_superuser:
        description: OS account of the PostgreSQL superuser, for C(pg_dumpall --globals-only).
        type: str
        default: postgres
  redis:
    description: How to reach Redis, for O(engine=redis).
    type: dict
    default: {}
    suboptions:
      host:
        description: Address.
        type: str
        default: 127.0.0.1
      port:
        description: Port.
        type: int
        default: 6379
      password:
        description: Password for C(AUTH).
        type: str
      timeout:
        description: Seconds to wait for C(BGSAVE).
        type: int
        default: 120
  kind:
    description:
      - V(backup) for regular backups (GFS retention applies); V(safety) for the snapshot a restore takes of
        the state it is about to replace. Safety snapshots are kept until removed by hand and are restored
        only when named by id.
    type: str
    choices: [backup, safety]
    default: backup
  extra_tags:
    description: More snapshot tags.
    type: list
    elements: str
    default: []
requirements:
  - restic on the clinic host
  - psycopg (3) or psycopg2 and the PostgreSQL client of the server's major, for O(engine=postgresql)
seealso:
  - module: clinicops.runbook.db_restore
"""

EXAMPLES = r"""
- name: Back up the clinic database before the deploy of this release
  clinicops.runbook.db_backup:
    engine: postgresql
    name: clinicdb
    clinic: "{{ clinic_id }}"
    release_id: "{{ deploy_release_id }}"
    repository: /var/backups/clinicops/repo
    password_file: /etc/clinicops/restic-password
    postgresql:
      user: clinic_app
  register: predeploy_backup

- name: Back up uploaded files
  clinicops.runbook.db_backup:
    engine: files
    name: /srv/clinic/shared/uploads
    clinic: "{{ clinic_id }}"
    repository: /var/backups/clinicops/repo
    password_file: /etc/clinicops/restic-password
"""

RETURN = r"""
snapshot_id:
  description: Id of the new snapshot (empty in check mode).
  returned: always
  type: str
  sample: 4f1c2a9e0b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e
dataset:
  description: The data set tag value (C(engine:name)).
  returned: always
  type: str
  sample: postgresql:clinicdb
manifest:
  description: The manifest stored with the snapshot.
  returned: success
  type: dict
  sample: {"clinic": "kinshasa", "engine": "postgresql", "row_counts": {"patients": 24}, "files": []}
tags:
  description: Tags of the snapshot.
  returned: always
  type: list
  elements: str
  sample: [clinicops, clinic=kinshasa, engine=postgresql, "dataset=postgresql:clinicdb", date=20261125]
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_job import (
    BackupError,
    ResticError,
    back_up,
    copy_argument_spec,
    preflight,
    snapshot_tags,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import (
    repository_argument_spec,
    repository_of,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import utcnow


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository_argument_spec(),
            **copy_argument_spec(),
            engine=dict(type="str", required=True, choices=["postgresql", "sqlite", "redis", "files"]),
            name=dict(type="str", required=True),
            clinic=dict(type="str", required=True),
            release_id=dict(type="str"),
            extra_tags=dict(type="list", elements="str", default=[]),
            kind=dict(type="str", choices=["backup", "safety"], default="backup"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    dataset = "%s:%s" % (params["engine"], params["name"])
    tags = snapshot_tags(params, utcnow().strftime("%Y%m%d"))
    repo = repository_of(module)
    started = time.time()
    try:
        preflight(params, repo, dry_run=module.check_mode)
        if module.check_mode:
            module.exit_json(changed=True, snapshot_id="", dataset=dataset, tags=tags)
        snapshot_id, manifest, summary = back_up(params, repo)
    except (BackupError, ResticError, IOError, OSError) as exc:
        module.fail_json(msg="backup of %s on %s failed: %s; no snapshot was made and earlier backups are "
                         "untouched" % (dataset, params["clinic"], exc), dataset=dataset)
    module.exit_json(changed=True, snapshot_id=snapshot_id, dataset=dataset, tags=tags, manifest=manifest,
                     added_bytes=summary.get("data_added", 0), seconds=round(time.time() - started, 2))


if __name__ == "__main__":
    main()
