#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: db_restore
short_description: Restore one data set of a clinic from its restic repository and prove it against the manifest
version_added: 0.1.0
description:
  - Chooses a backup of a data set (latest, by snapshot id, by time, or the one bound to a
    release), restores it into the spool, checks every file against the manifest's size and
    SHA-256 (restic also authenticates every block it decrypts), loads it, and compares the
    per-table row counts with the manifest.
  - V(scratch) loads into a separate target (a scratch database or path) and leaves the live data
    alone; restore drills use it. A scratch PostgreSQL database is marked as such, and only a
    database carrying that mark is ever dropped and recreated.
  - V(replace) replaces live data and requires O(confirm) to name the clinic. PostgreSQL is
    restored into a fresh database, verified, and only then swapped in by renaming; the previous
    database is kept as C(<name>__before_<stamp>) and returned in RV(previous).
  - Without a matching backup, with a corrupted one, or on a count mismatch, the task fails and
    the live data is left as it was.
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
  - clinicops.runbook.restic_repository
attributes:
  check_mode:
    support: full
    details: Finds the snapshot and reports what would be restored; restores nothing.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run restores again.
options:
  engine:
    description: Kind of data store.
    type: str
    required: true
    choices: [postgresql, sqlite, files]
  source:
    description: The data set as it was backed up (database name, SQLite path or directory).
    type: str
    required: true
  target:
    description: Where to restore (database name, SQLite path or directory). Defaults to O(source).
    type: str
  mode:
    description: V(scratch) restores beside the live data; V(replace) replaces it.
    type: str
    choices: [scratch, replace]
    default: scratch
  confirm:
    description: With O(mode=replace), must be the clinic's id, or nothing is restored.
    type: str
  clinic:
    description: Clinic id whose backups are searched.
    type: str
    required: true
  snapshot:
    description:
      - C(latest), a snapshot id (8+ hex characters), C(YYYYMMDD_HHMMSS) (UTC, newest at or before),
        or C(release:<id>).
    type: str
    default: latest
  spool_dir:
    description: Where the snapshot is restored before it is loaded (emptied after).
    type: path
    default: /var/backups/clinicops/spool
  owner:
    description: PostgreSQL role that owns the restored database and its objects.
    type: str
  os_superuser:
    description: OS account of the PostgreSQL superuser (peer authentication).
    type: str
    default: postgres
  jobs:
    description: Parallel C(pg_restore) jobs.
    type: int
    default: 2
  tables:
    description:
      - Partial restore (PostgreSQL, O(mode=replace)) of only these tables, named as in the manifest
        (C(table) in schema public, else C(schema.table)).
      - In one transaction, the tables are emptied, loaded from the verified dump (triggers and foreign
        key checks off during the load) and their row counts checked against the manifest; any error
        or mismatch rolls it all back. Other tables are not touched.
      - Tables that reference these through foreign keys must be named too, or the transaction is refused.
    type: list
    elements: str
    default: []
requirements:
  - restic on the clinic host
seealso:
  - module: clinicops.runbook.db_backup
"""

EXAMPLES = r"""
- name: Restore drill into a scratch database
  clinicops.runbook.db_restore:
    engine: postgresql
    source: clinicdb
    target: clinicdb_drill
    clinic: "{{ clinic_id }}"
    owner: clinic_app
    repository: /var/backups/clinicops/repo
    password_file: /etc/clinicops/restic-password

- name: Put back the database as it was before release 20261125T101500Z-2.0.0
  clinicops.runbook.db_restore:
    engine: postgresql
    source: clinicdb
    mode: replace
    confirm: "{{ restore_confirm }}"
    snapshot: release:20261125T101500Z-2.0.0
    clinic: "{{ clinic_id }}"
    owner: clinic_app
    repository: /var/backups/clinicops/repo
    password_file: /etc/clinicops/restic-password
"""

RETURN = r"""
snapshot_id:
  description: The snapshot restored (or that would be).
  returned: always
  type: str
  sample: 0f2f64d1
snapshot_time:
  description: When that backup was taken (UTC).
  returned: always
  type: str
  sample: "2026-11-25T23:24:22Z"
target:
  description: What was restored into.
  returned: always
  type: str
  sample: clinicdb_drill
manifest:
  description: The manifest of the restored backup.
  returned: success
  type: dict
  sample: {"row_counts": {"patients": 24}}
row_counts:
  description: Row counts found after the restore.
  returned: success
  type: dict
  sample: {"patients": 24, "appointments": 40}
previous:
  description: Where the replaced live data was kept (replace mode).
  returned: when mode=replace
  type: str
  sample: clinicdb__before_20261125T232422Z
"""

import json
import os
import pwd
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_catalog import (
    SelectionError,
    select_snapshot,
    snapshot_time,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_sources import (
    BackupError,
    check_pg_name,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import (
    ResticError,
    dataset_tag,
    repository_argument_spec,
    repository_of,
    tag,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restore_targets import (
    SCRATCH_COMMENT,
    PostgresAdmin,
    compare_counts,
    place_file,
    replace_sqlite,
    sqlite_counts,
    verify_set,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import to_stamp, utcnow


def find_snapshot(repo, params):
    tags = ["clinicops", tag("clinic", params["clinic"]), dataset_tag(params["engine"], params["source"])]
    chosen = select_snapshot(repo.snapshots(tags), params["snapshot"])
    return chosen


def fetch_set(repo, snapshot, workdir):
    """Restore the snapshot into ``workdir``; return (set dir, manifest) after verifying it."""
    paths = snapshot.get("paths") or []
    set_dir = next((path for path in paths if "/spool/" in path), paths[0] if paths else None)
    if not set_dir:
        raise BackupError("snapshot %s has no paths" % snapshot["short_id"])
    repo.restore(snapshot["id"], workdir, includes=[set_dir])
    restored = os.path.join(workdir, set_dir.lstrip("/"))
    with open(os.path.join(restored, "manifest.json")) as handle:
        manifest = json.load(handle)
    verify_set(restored, manifest)
    return restored, manifest


def hand_to(path, account):
    """Let ``account`` (and root) read ``path``: the file becomes that account's, mode 0600, and
    every directory above it gains the search bit for others (traversal only, never listing).

    Returns the directories loosened, with their modes, for ``tighten`` to put back: a restore
    must not leave the root-only backup directories searchable."""
    entry = pwd.getpwnam(account)
    loosened = []
    directory = os.path.dirname(path)
    while True:
        mode = os.stat(directory).st_mode & 0o7777
        if not mode & 0o001:
            os.chmod(directory, mode | 0o111)
            loosened.append((directory, mode))
        if directory == "/":
            break
        directory = os.path.dirname(directory)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, 0o600)
    return loosened


def tighten(loosened):
    for directory, mode in loosened:
        if os.path.isdir(directory):
            os.chmod(directory, mode)


def restore_postgresql(module, params, restored, manifest, stamp):
    target = check_pg_name(params["target"] or params["source"], "target database")
    admin = PostgresAdmin(params["os_superuser"], manifest["server_version_num"] // 10000)
    owner = check_pg_name(params["owner"] or "postgres", "owner role")
    dump = os.path.join(restored, "%s.pgdump" % manifest["database"])
    loosened = hand_to(dump, params["os_superuser"])
    try:
        return load_postgresql(params, admin, target, owner, dump, manifest, stamp)
    finally:
        tighten(loosened)


def load_postgresql(params, admin, target, owner, dump, manifest, stamp):
    if params["tables"]:
        counts = admin.restore_tables(dump, target, params["tables"], manifest["row_counts"])
        return dict(target=target, row_counts=counts, tables=params["tables"])
    if params["mode"] == "scratch":
        if target == manifest["database"]:
            raise BackupError("a scratch restore needs a target other than the live database %s" % target)
        if admin.exists(target):
            if admin.comment(target) != SCRATCH_COMMENT:
                raise BackupError("database %s exists and is not a clinicops scratch database; refusing to "
                                  "replace it" % target)
            admin.drop(target)
        loading = target
    else:
        loading = ("%s__restore_%s" % (target, stamp))[:63]
    admin.create(loading, owner)
    try:
        admin.restore(dump, loading, owner, params["jobs"])
        counts = admin.row_counts(loading, sorted(manifest["row_counts"]))
        mismatches = compare_counts(manifest["row_counts"], counts)
        if mismatches:
            raise BackupError("row counts differ from the manifest after the restore: %s" % mismatches)
    except Exception:
        if loading != target:
            admin.drop(loading)
        raise
    result = dict(target=target, row_counts=counts)
    if params["mode"] == "replace":
        previous = ("%s__before_%s" % (target, stamp))[:63]
        if admin.exists(target):
            admin.swap_in(target, loading, previous)
            result["previous"] = previous
        else:
            admin.sql("ALTER DATABASE %s RENAME TO %s" % (loading, target))
    return result


def restore_sqlite(params, restored, manifest):
    source_file = os.path.join(restored, os.path.basename(manifest["database"]))
    target = params["target"] or params["source"]
    counts = sqlite_counts(source_file)
    mismatches = compare_counts(manifest["row_counts"], counts)
    if mismatches:
        raise BackupError("row counts differ from the manifest: %s" % mismatches)
    if params["mode"] == "replace" and os.path.exists(target):
        previous = replace_sqlite(source_file, target, utcnow().strftime("%Y%m%dT%H%M%SZ"))
        return dict(target=target, row_counts=counts, previous=previous)
    place_file(source_file, target)
    return dict(target=target, row_counts=counts)


def restore_files(repo, params, snapshot, staging):
    target = params["target"] or params["source"]
    repo.restore(snapshot["id"], staging, includes=[params["source"]])
    restored = os.path.join(staging, params["source"].lstrip("/"))
    result = dict(target=target, row_counts={})
    if params["mode"] == "replace" and os.path.exists(target):
        previous = "%s.before-%s" % (target.rstrip("/"), utcnow().strftime("%Y%m%dT%H%M%SZ"))
        os.rename(target, previous)
        result["previous"] = previous
    elif os.path.exists(target):
        shutil.rmtree(target)
    shutil.move(restored, target)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            repository_argument_spec(),
            engine=dict(type="str", required=True, choices=["postgresql", "sqlite", "files"]),
            source=dict(type="str", required=True),
            target=dict(type="str"),
            mode=dict(type="str", choices=["scratch", "replace"], default="scratch"),
            confirm=dict(type="str"),
            clinic=dict(type="str", required=True),
            snapshot=dict(type="str", default="latest"),
            spool_dir=dict(type="path", default="/var/backups/clinicops/spool"),
            owner=dict(type="str"),
            os_superuser=dict(type="str", default="postgres"),
            jobs=dict(type="int", default=2),
            tables=dict(type="list", elements="str", default=[]),
        ),
        required_if=[("mode", "replace", ("confirm",))],
        supports_check_mode=True,
    )
    params = module.params
    dataset = "%s:%s" % (params["engine"], params["source"])
    if params["mode"] == "replace" and params["confirm"] != params["clinic"]:
        module.fail_json(msg="restoring over the live data of %s needs confirm=%s (got %r); nothing was restored"
                         % (params["clinic"], params["clinic"], params["confirm"]))
    if params["tables"] and (params["engine"] != "postgresql" or params["mode"] != "replace"):
        module.fail_json(msg="tables= restores named tables of a live PostgreSQL database: it needs engine=postgresql "
                         "and mode=replace; nothing was restored")
    repo = repository_of(module)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    workdir = None
    try:
        snapshot = find_snapshot(repo, params)
        found = dict(snapshot_id=snapshot["short_id"], snapshot_time=to_stamp(snapshot_time(snapshot)),
                     target=params["target"] or params["source"])
        if module.check_mode:
            module.exit_json(changed=True, **found)
        if not os.path.isdir(params["spool_dir"]):
            os.makedirs(params["spool_dir"], 0o700)
        # Made here so that "finally" removes it whatever fails: a partial restore holds patient data.
        workdir = tempfile.mkdtemp(prefix="restore-", dir=params["spool_dir"])
        if params["engine"] == "files":
            result = restore_files(repo, params, snapshot, workdir)
            manifest = {}
        else:
            restored, manifest = fetch_set(repo, snapshot, workdir)
            if params["engine"] == "postgresql":
                result = restore_postgresql(module, params, restored, manifest, stamp)
            else:
                result = restore_sqlite(params, restored, manifest)
    except SelectionError as exc:
        module.fail_json(msg="restore of %s on %s: %s; nothing was restored" % (dataset, params["clinic"], exc))
    except (BackupError, ResticError, IOError, OSError, ValueError, KeyError) as exc:
        module.fail_json(msg="restore of %s on %s failed: %s; the live data was left as it was"
                         % (dataset, params["clinic"], exc))
    finally:
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    found.update(result)
    module.exit_json(changed=True, manifest=manifest, **found)


if __name__ == "__main__":
    main()
