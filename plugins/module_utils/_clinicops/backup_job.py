# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One backup of one data set, its retention and its off-site copy: the code both paths share.

The modules ``db_backup``, ``backup_retention`` and ``backup_offsite`` (run by the controller) and
the clinic's own nightly job (``scheduled_backup``, run by a systemd timer when the controller cannot
reach the clinic) call these functions, so a backup made either way is the same backup: same spool,
manifest, tags, read-back check, retention rule and copy.

``params`` are plain dicts shaped like the modules' options. Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import socket

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_catalog import snapshot_time
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_sources import (
    BackupError,
    check_pg_name,
    describe_files,
    dump_postgresql,
    dump_redis,
    dump_sqlite,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import (
    ResticError,
    dataset_tag,
    gfs_arguments,
    tag,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import to_stamp, utcnow

MANIFEST_FORMAT = 1


def copy_argument_spec():
    """Options of how a data set is copied (db_backup's; the nightly job takes its defaults from here)."""
    return dict(
        spool_dir=dict(type="path", default="/var/backups/clinicops/spool"),
        min_free_bytes=dict(type="int", default=104857600),
        postgresql=dict(type="dict", default={}, options=dict(
            host=dict(type="str", default="127.0.0.1"),
            port=dict(type="int", default=5432),
            user=dict(type="str"),
            passfile=dict(type="path", default="/etc/clinicops/pgpass", no_log=False),
            os_superuser=dict(type="str", default="postgres"),
        )),
        redis=dict(type="dict", default={}, options=dict(
            host=dict(type="str", default="127.0.0.1"),
            port=dict(type="int", default=6379),
            password=dict(type="str", no_log=True),
            timeout=dict(type="int", default=120),
        )),
    )


def spec_defaults(options):
    """The default of every option of an argument spec (None where there is none)."""
    return dict((name, option.get("default")) for name, option in options.items())


class RetentionSkippedError(Exception):
    """Retention did not run because the newest snapshot is not the one this run made."""


def slug(text):
    return "".join(char if char.isalnum() or char in "._-" else "_" for char in text).strip("_")[:80]


def snapshot_tags(params, day):
    tags = ["clinicops", tag("clinic", params["clinic"]), tag("engine", params["engine"]),
            dataset_tag(params["engine"], params["name"]), tag("date", day),
            tag("kind", params.get("kind") or "backup")]
    if params.get("release_id"):
        tags.append(tag("release", params["release_id"]))
    return tags + list(params.get("extra_tags") or [])


def preflight(params, repo, dry_run=False):
    """Refuse before anything is written: bad name, missing directory or password, no repository, full disk.

    In a dry run, a password file or repository that does not exist yet is what the same run would
    have set up first (the backup role's repository tasks): it is not an error then."""
    if params["engine"] == "postgresql":
        check_pg_name(params["name"])
    if params["engine"] == "files" and not os.path.isdir(params["name"]):
        raise BackupError("directory %s does not exist" % params["name"])
    if not os.path.isfile(params["password_file"]):
        if dry_run:
            return None
        raise BackupError("repository password file %s does not exist" % params["password_file"])
    if not repo.is_initialized():
        if dry_run:
            return None
        raise BackupError("repository %s is not reachable or not initialised" % params["repository"])
    spool_root = params["spool_dir"]
    probe = spool_root if os.path.isdir(spool_root) else os.path.dirname(spool_root.rstrip("/")) or "/"
    stats = os.statvfs(probe)
    free = stats.f_bavail * stats.f_frsize
    if free < params["min_free_bytes"]:
        raise BackupError("only %d bytes free under %s (need at least %d)" % (free, probe, params["min_free_bytes"]))
    return free


def make_copy(params, set_dir):
    engine = params["engine"]
    if engine == "postgresql":
        conn = dict(params["postgresql"], database=params["name"])
        return dump_postgresql(conn, set_dir, params["postgresql"]["os_superuser"])
    if engine == "sqlite":
        return dump_sqlite(params["name"], set_dir)
    if engine == "redis":
        redis = params["redis"]
        return dump_redis(redis["host"], redis["port"], set_dir, redis["timeout"], redis.get("password"))
    return {"database": params["name"], "row_counts": {}, "tools": {}, "exit_codes": {}}


def count_tree(directory):
    files = total = 0
    for root, _dirs, names in os.walk(directory):
        for name in names:
            files += 1
            total += os.path.getsize(os.path.join(root, name))
    return {"files": files, "bytes": total}


def back_up(params, repo):
    """Copy the data set into the spool, write its manifest, store both as one snapshot, read the
    manifest back from the snapshot. Returns (snapshot id, manifest, restic summary). The spool is
    removed whatever happens, and a failed copy never reaches the repository."""
    started = utcnow()
    set_dir = os.path.join(params["spool_dir"], slug("%s-%s" % (params["engine"], params["name"])))
    if os.path.exists(set_dir):
        shutil.rmtree(set_dir)  # leftovers of an interrupted run are never stored
    os.makedirs(set_dir, 0o700)
    try:
        details = make_copy(params, set_dir)
        manifest = {
            "format": MANIFEST_FORMAT,
            "clinic": params["clinic"],
            "engine": params["engine"],
            "dataset": "%s:%s" % (params["engine"], params["name"]),
            "release_id": params.get("release_id"),
            "host": socket.gethostname(),
            "set_dir": set_dir,
            "files": describe_files(set_dir),
            "started": to_stamp(started),
        }
        manifest.update(details)
        if params["engine"] == "files":
            manifest["tree"] = count_tree(params["name"])
        manifest["tools"]["restic"] = repo.call(["version"])[1].strip()
        manifest["ended"] = to_stamp(utcnow())
        with open(os.path.join(set_dir, "manifest.json"), "w") as handle:
            json.dump(manifest, handle, indent=2, sort_keys=True)
        paths = [set_dir] + ([params["name"]] if params["engine"] == "files" else [])
        summary = repo.backup(paths, snapshot_tags(params, started.strftime("%Y%m%d")), params["clinic"])
        snapshot_id = summary["snapshot_id"]
        stored = json.loads(repo.dump(snapshot_id, os.path.join(set_dir, "manifest.json")))
        if stored != manifest:
            raise BackupError("snapshot %s does not hold the manifest that was written" % snapshot_id[:8])
        return snapshot_id, manifest, summary
    finally:
        shutil.rmtree(set_dir, ignore_errors=True)


def retention_tags(clinic, dataset):
    # kind=backup: a restore's safety snapshot (kind=safety) must never take a day's slot from the
    # regular backup it may be about to replace, so retention never sees (nor removes) it.
    return ["clinicops", tag("clinic", clinic), tag("dataset", dataset), tag("kind", "backup")]


def apply_retention(repo, clinic, dataset, fresh_snapshot, policy, dry_run):
    """Apply the GFS policy to one data set, only if its newest snapshot is ``fresh_snapshot``.

    Returns (removed short ids, number kept, restic flags). Raises ValueError for a policy that
    keeps nothing, RetentionSkippedError when a newer good backup is not the newest one.
    """
    flags = gfs_arguments(policy)
    tags = retention_tags(clinic, dataset)
    snapshots = sorted(repo.snapshots(tags), key=snapshot_time)
    newest = snapshots[-1] if snapshots else None
    if newest is None or not (newest["id"].startswith(fresh_snapshot) or newest.get("short_id") == fresh_snapshot):
        raise RetentionSkippedError("the newest snapshot of %s is not %s, the one this run made"
                                    % (dataset, fresh_snapshot))
    groups = repo.forget(policy, tags, dry_run=dry_run)
    removed = [item.get("short_id") or item["id"][:8] for group in groups for item in group.get("remove") or []]
    kept = sum(len(group.get("keep") or []) for group in groups)
    return removed, kept, flags


def sftp_command(offsite_user, offsite_host, ssh_key, known_hosts, connect_timeout):
    """The ssh command restic uses for an off-site sftp repository (key auth only, no prompts)."""
    return " ".join([
        "ssh", "-i", ssh_key, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile=%s" % known_hosts,
        "-o", "ConnectTimeout=%d" % connect_timeout, "-o", "ServerAliveInterval=15",
        "-l", offsite_user, offsite_host, "-s", "sftp",
    ])


def copy_offsite(local, offsite, clinic, dry_run):
    """Copy the clinic's snapshots the off-site repository lacks (initialising it like the local one).

    Returns dict(changed, copied, offsite_snapshots, initialised). Raises ResticError.
    """
    tags = ["clinicops", tag("clinic", clinic)]
    local_ids = set(snapshot["id"] for snapshot in local.snapshots(tags))
    initialised = False
    if not offsite.exists():
        if dry_run:
            return dict(changed=bool(local_ids), copied=len(local_ids), offsite_snapshots=0, initialised=False)
        offsite.init_like(local.repository, local.password_file)
        initialised = True
    before = offsite.snapshots(tags)
    # restic copy records each copied snapshot's source id as "original".
    present = set(snapshot.get("original") or snapshot["id"] for snapshot in before)
    missing = local_ids - present
    after = len(before)
    if missing and not dry_run:
        offsite.copy_from(local.repository, local.password_file, tags)
        after = len(offsite.snapshots(tags))
    return dict(changed=bool(missing) or initialised, copied=len(missing), offsite_snapshots=after,
                initialised=initialised)


__all__ = ["BackupError", "ResticError", "RetentionSkippedError", "apply_retention", "back_up", "copy_offsite",
           "preflight", "sftp_command", "snapshot_tags"]
