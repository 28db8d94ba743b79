# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The audit path of the log archive: archived audit files copied into the backup repository, proven
there, and only then (and after a local retention period) deleted on the clinic.

One run (``ship``):

1. lists the archived audit files (``<archive_dir>/YYYY/MM/...``, as ``log_archive`` leaves them),
   never a symbolic link, a side file or a file some process holds open;
2. checks each file against the ``.sha256`` side file ``log_archive`` wrote: a file that no longer
   matches it stops the run before anything is copied or deleted (it was altered on the clinic);
3. copies the files the manifest does not yet hold in an existing snapshot into ONE new restic
   snapshot (tags ``kind=audit-log`` and the clinic), then restores exactly those files from that
   snapshot into a private scratch directory and compares their SHA-256 with the local files; only a
   file read back identical is recorded as verified in the manifest (written atomically);
4. deletes locally the files recorded as verified, whose snapshot is still in the repository, whose
   content still has the verified digest and which are older than ``local_days``;
5. applies the repository retention to the audit snapshots alone (``--keep-within <years>y``,
   relative to the newest audit snapshot, so a clinic that stops shipping keeps everything).

Nothing else in the collection deletes audit snapshots: the backup retention forgets only snapshots
tagged with one of its data sets. The snapshots carry the ``clinicops`` and clinic tags, so the
backup's next off-site copy (which copies every snapshot with those two) takes them off-site too.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import stat
import tempfile
import time
from fnmatch import fnmatchcase

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.atomic_files import read_json, write_atomic
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_archive_files import file_digest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import ResticError, tag

KIND_TAG = tag("kind", "audit-log")
CHECKSUM_SUFFIX = ".sha256"
NOTHING_DELETED = "no audit file was deleted"
DAY = 86400


class AuditShippingError(Exception):
    """The run stopped; the message says what was wrong and what was left as it was."""


def recorded_digest(path):
    """The digest of the ``.sha256`` side file next to ``path`` (sha256sum format), or None."""
    side = path + CHECKSUM_SUFFIX
    if not os.path.isfile(side) or os.path.islink(side):
        return None
    with open(side, "r") as handle:
        words = handle.read().split()
    return words[0].lower() if words else None


def list_audit_files(archive_dir, patterns):
    """(regular files under ``archive_dir`` whose name matches ``patterns``, symbolic links skipped)."""
    found, links = [], []
    for folder, _dirs, names in os.walk(archive_dir):  # never enters a linked directory
        for name in sorted(names):
            if name.endswith(CHECKSUM_SUFFIX) or name.startswith("."):
                continue
            if not any(fnmatchcase(name, pattern) for pattern in patterns):
                continue
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                links.append(path)
            elif stat.S_ISREG(info.st_mode):
                found.append((path, info.st_size, info.st_mtime))
    return sorted(found), sorted(links)


def load_manifest(path):
    if not os.path.exists(path):
        return {"version": 1, "files": {}}
    try:
        data = read_json(path)
    except ValueError as exc:
        raise AuditShippingError(
            "manifest %s is not valid JSON (%s); move it away to have every audit file copied and verified "
            "again; %s" % (path, exc, NOTHING_DELETED)
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise AuditShippingError("manifest %s has no 'files' map; %s" % (path, NOTHING_DELETED))
    return data


def save_manifest(path, manifest):
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    write_atomic(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n", mode=0o600)


def new_report(archive_dir, repository):
    return {
        "archive_dir": archive_dir,
        "repository": repository,
        "snapshot_id": None,
        "shipped": [],
        "verified": [],
        "deleted": [],
        "kept_local": 0,
        "skipped_open": [],
        "skipped": [],
        "forgotten_snapshots": [],
        "bytes_shipped": 0,
        "bytes_freed": 0,
        "changed": False,
    }


def ship(repo, options, check_mode, open_files, now=None):
    """One run of the audit path; returns the report. ``options``: archive_dir, patterns, clinic,
    manifest, local_days, repository_years, scratch_dir."""
    now = time.time() if now is None else now
    report = new_report(options["archive_dir"], repo.repository)
    if not os.path.isdir(options["archive_dir"]):
        report["msg"] = "audit archive %s: no archived audit file yet; nothing to copy" % options["archive_dir"]
        return report
    if os.path.islink(options["archive_dir"]):
        raise AuditShippingError(
            "archive_dir %s is a symbolic link (never followed); %s" % (options["archive_dir"], NOTHING_DELETED)
        )
    files, links = list_audit_files(options["archive_dir"], options["patterns"])
    report["skipped"] = [{"path": path, "reason": "symbolic link (never followed)"} for path in links]
    manifest = load_manifest(options["manifest"])
    known = manifest["files"]

    current = {}
    altered = []
    for path, size, mtime in files:
        if path in open_files:
            report["skipped_open"].append(path)
            continue
        digest = file_digest(path)
        expected = recorded_digest(path)
        if expected is not None and expected != digest:
            altered.append(path)
        current[path] = {"sha256": digest, "bytes": size, "mtime": mtime}
    if altered:
        raise AuditShippingError(
            "audit file(s) %s no longer match the checksum written when they were archived (altered on the "
            "clinic?); nothing was copied and %s" % (", ".join(altered), NOTHING_DELETED)
        )

    try:
        present = repo.exists()
    except ResticError:
        if not check_mode:
            raise
        present = False  # check mode before the repository's first run: its password file may not be there yet
    if present:
        snapshots = snapshot_ids(repo)
    elif check_mode:
        snapshots = set()
        report["repository_missing"] = True
    else:
        raise AuditShippingError(
            "backup repository %s does not exist (run the backup first); the audit files "
            "were left in place and %s" % (repo.repository, NOTHING_DELETED)
        )

    def held(path):
        entry = known.get(path)
        return bool(entry and entry.get("snapshot") in snapshots and entry.get("sha256") == current[path]["sha256"])

    to_ship = sorted(path for path in current if not held(path))
    for path in to_ship:
        report["shipped"].append({"path": path, "bytes": current[path]["bytes"], "sha256": current[path]["sha256"]})
        report["bytes_shipped"] += current[path]["bytes"]
    if to_ship and not check_mode:
        # "clinicops" and the clinic: the backup's off-site copy takes every snapshot with those two tags.
        made = repo.backup(to_ship, ["clinicops", tag("clinic", options["clinic"]), KIND_TAG], options["clinic"])
        short_id = made.get("snapshot_id")
        if not short_id:
            raise AuditShippingError("restic made no snapshot of the audit files; %s" % NOTHING_DELETED)
        snapshots = snapshot_ids(repo)
        # restic's summary names the snapshot by its short id (before 0.15): record the full one.
        snapshot_id = next((full for full in snapshots if full.startswith(short_id)), short_id)
        report["snapshot_id"] = snapshot_id
        read_back = restore_digests(repo, snapshot_id, to_ship, options["scratch_dir"])
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        mismatched = [path for path in to_ship if read_back.get(path) != current[path]["sha256"]]
        for path in to_ship:
            if path in mismatched:
                continue
            known[path] = {
                "sha256": current[path]["sha256"],
                "bytes": current[path]["bytes"],
                "snapshot": snapshot_id,
                "verified_at": stamp,
            }
            report["verified"].append(path)
        save_manifest(options["manifest"], manifest)
        snapshots.add(snapshot_id)
        if mismatched:
            raise AuditShippingError(
                "the copies of %s in snapshot %s do not read back identical; they stay on the clinic, %s"
                % (", ".join(mismatched), snapshot_id[:8], NOTHING_DELETED)
            )

    cutoff = now - options["local_days"] * DAY
    for path in sorted(current):
        info = current[path]
        verified_copy = held(path) or (check_mode and path in to_ship)
        if verified_copy and info["mtime"] < cutoff:
            if not check_mode:
                os.unlink(path)
                if os.path.lexists(path + CHECKSUM_SUFFIX):
                    os.unlink(path + CHECKSUM_SUFFIX)
                known[path]["deleted_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
            snapshot = known.get(path, {}).get("snapshot")
            report["deleted"].append({"path": path, "bytes": info["bytes"], "snapshot": snapshot})
            report["bytes_freed"] += info["bytes"]
        else:
            report["kept_local"] += 1
    if report["deleted"] and not check_mode:
        save_manifest(options["manifest"], manifest)

    if options["repository_years"] > 0 and present:
        report["forgotten_snapshots"] = forget_old(repo, options["repository_years"], check_mode)

    report["changed"] = bool(report["shipped"] or report["deleted"] or report["forgotten_snapshots"])
    report["msg"] = summary(report, check_mode)
    return report


def snapshot_ids(repo):
    """The full ids of the repository's audit snapshots."""
    return set(item.get("id") for item in repo.snapshots([KIND_TAG]) if item.get("id"))


def restore_digests(repo, snapshot_id, paths, scratch_parent):
    """SHA-256 of each path as restored from the snapshot (read back from the repository)."""
    if not os.path.isdir(scratch_parent):
        os.makedirs(scratch_parent, 0o700)
    scratch = tempfile.mkdtemp(prefix="audit-verify.", dir=scratch_parent)
    try:
        repo.restore(snapshot_id, scratch, includes=paths)
        digests = {}
        for path in paths:
            restored = os.path.join(scratch, path.lstrip("/"))
            if os.path.isfile(restored) and not os.path.islink(restored):
                digests[path] = file_digest(restored)
        return digests
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def forget_old(repo, years, check_mode):
    """Forget the audit snapshots older than ``years`` before the newest one; the ids forgotten."""
    args = ["forget", "--json", "--group-by", "host", "--keep-within", "%dy" % years, "--tag", KIND_TAG]
    args.append("--dry-run" if check_mode else "--prune")
    try:
        _rc, out, _err = repo.call(args)
    except ResticError as exc:
        raise AuditShippingError("retention of the audit snapshots failed: %s; %s" % (exc, NOTHING_DELETED)) from exc
    forgotten = []
    for line in (out or "").splitlines():
        line = line.strip()
        if not line.startswith("["):
            continue
        for group in json.loads(line) or []:
            forgotten += [item.get("short_id") or item.get("id", "")[:8] for item in group.get("remove") or []]
        break
    return forgotten


def summary(report, check_mode):
    would = "would " if check_mode else ""
    parts = [
        "audit archive %s: %s%s %d file(s) into %s%s"
        % (
            report["archive_dir"],
            would,
            "copy" if check_mode else "copied",
            len(report["shipped"]),
            report["repository"],
            " (snapshot %s, %d read back identical)" % (report["snapshot_id"][:8], len(report["verified"]))
            if report["snapshot_id"]
            else "",
        ),
        "%s%s %d local file(s) whose verified copy is older than the local retention"
        % (would, "delete" if check_mode else "deleted", len(report["deleted"])),
        "%d kept on the clinic" % report["kept_local"],
    ]
    if report["skipped_open"]:
        parts.append("%d open file(s) left alone" % len(report["skipped_open"]))
    if report["forgotten_snapshots"]:
        parts.append(
            "%s%s %d audit snapshot(s) past the repository retention"
            % (would, "forget" if check_mode else "forgot", len(report["forgotten_snapshots"]))
        )
    return "; ".join(parts)
