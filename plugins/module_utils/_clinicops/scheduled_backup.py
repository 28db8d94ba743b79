# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The clinic's own nightly backup, for clinics the controller cannot reach at night.

The backup role installs this file with the rest of ``_clinicops`` under /usr/local/lib/clinicops
and a systemd timer that runs::

    python3 -m ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.scheduled_backup \\
        /etc/clinicops/backup-job.json

It runs the same code as the controller's backup (``backup_job``): the clinic lock, an audit
record at start and end, every data set into the local repository, the off-site copy, and
retention only for data sets whose backup just succeeded and only when the off-site copy did.
The last outcome is written to /var/lib/clinicops/backup-last.json (no secrets: the config holds
file paths, never passwords). Exit codes: 0 all data sets backed up, 1 something failed, 2 bad
configuration, 75 the clinic lock stayed held by another procedure.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import subprocess
import sys
import time

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.atomic_files import write_atomic
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.audit_chain import append, procedure_record
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.backup_job import (
    BackupError,
    ResticError,
    RetentionSkippedError,
    apply_retention,
    back_up,
    copy_argument_spec,
    copy_offsite,
    preflight,
    sftp_command,
    spec_defaults,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.clinic_lock import (
    ClinicLock,
    LockError,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import (
    ResticRepo,
    repository_argument_spec,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import to_stamp, utcnow

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 75

REQUIRED = ("clinic", "repository", "password_file", "datasets")
COPY_SPEC = copy_argument_spec()
# db_backup's own defaults, so that a nightly backup is made exactly as the controller's.
DATASET_DEFAULTS = {
    "spool_dir": COPY_SPEC["spool_dir"]["default"],
    "min_free_bytes": COPY_SPEC["min_free_bytes"]["default"],
    "cache_dir": repository_argument_spec()["cache_dir"]["default"],
}
POSTGRESQL_DEFAULTS = spec_defaults(COPY_SPEC["postgresql"]["options"])
REDIS_DEFAULTS = spec_defaults(COPY_SPEC["redis"]["options"])
ENGINES = ("postgresql", "sqlite", "redis", "files")


class ConfigError(Exception):
    """The job's configuration file is missing, unreadable or incomplete."""


def subprocess_runner(argv, env, data):
    """``run`` for ResticRepo outside Ansible: argv only, never a shell."""
    process = subprocess.run(argv, input=data, capture_output=True, env=dict(os.environ, **(env or {})), check=False)
    return process.returncode, process.stdout.decode("utf-8", "replace"), process.stderr.decode("utf-8", "replace")


def load_config(path):
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise ConfigError("cannot read %s: %s" % (path, exc)) from exc
    missing = [key for key in REQUIRED if not config.get(key)]
    if missing:
        raise ConfigError("%s lacks %s" % (path, ", ".join(missing)))
    for item in config["datasets"]:
        if item.get("engine") not in ENGINES or not item.get("name"):
            raise ConfigError("%s: data set %r needs an engine among %s and a name" % (path, item, ", ".join(ENGINES)))
    return config


def dataset_params(config, item):
    """The data set as db_backup's options, from the job config."""
    params = dict(DATASET_DEFAULTS)
    params.update((key, config[key]) for key in DATASET_DEFAULTS if config.get(key))
    params.update(engine=item["engine"], name=item["name"], clinic=config["clinic"], release_id=None,
                  repository=config["repository"], password_file=config["password_file"],
                  extra_tags=["trigger=timer"])
    params["postgresql"] = dict(POSTGRESQL_DEFAULTS, **(config.get("postgresql") or {}))
    if item.get("user"):
        params["postgresql"]["user"] = item["user"]
    params["redis"] = dict(REDIS_DEFAULTS, **(config.get("redis") or {}))
    return params


def log(message):
    sys.stdout.write(message + "\n")  # journald keeps it with the unit
    sys.stdout.flush()


def offsite_repo(config):
    offsite = config.get("offsite") or {}
    if not offsite.get("repository"):
        return None
    user_host = offsite["repository"].split(":", 2)[1]
    user, host = user_host.split("@", 1)
    known_hosts = offsite.get("known_hosts", "/etc/clinicops/offsite_known_hosts")
    command = sftp_command(user, host, offsite["ssh_key"], known_hosts, int(offsite.get("connect_timeout", 15)))
    return ResticRepo(subprocess_runner, offsite["repository"], offsite["password_file"],
                      cache_dir=config.get("cache_dir"), sftp_command=command)


def take_lock(config, request, deadline):
    lock = ClinicLock(config.get("lock_path", "/var/lib/clinicops/clinic.lock"))
    ttl = int(config.get("lock_ttl", 3600))
    while True:
        try:
            lock.acquire(request, ttl, utcnow())
            return lock
        except LockError as exc:
            if time.time() >= deadline:
                raise
            log("waiting for the clinic lock: %s" % exc)
            time.sleep(min(30, max(1, deadline - time.time())))


def back_up_all(config, repo):
    results = {}
    for item in config["datasets"]:
        params = dataset_params(config, item)
        dataset = "%s:%s" % (params["engine"], params["name"])
        try:
            preflight(params, repo)
            snapshot_id, _manifest, summary = back_up(params, repo)
            results[dataset] = {"outcome": "ok", "snapshot_id": snapshot_id,
                                "added_bytes": summary.get("data_added", 0)}
            log("%s: snapshot %s" % (dataset, snapshot_id[:8]))
        except (BackupError, ResticError, IOError, OSError) as exc:
            results[dataset] = {"outcome": "failed", "error": str(exc)}
            log("%s: FAILED: %s; no snapshot was made, earlier backups are untouched" % (dataset, exc))
    return results


def prune(config, repo, results):
    policy = config.get("retention") or {}
    pruned = {}
    for dataset, result in results.items():
        if result["outcome"] != "ok":
            continue
        try:
            removed, kept, _flags = apply_retention(repo, config["clinic"], dataset, result["snapshot_id"], policy,
                                                    dry_run=False)
            pruned[dataset] = {"removed": removed, "kept": kept}
        except (RetentionSkippedError, ResticError, ValueError) as exc:
            pruned[dataset] = {"error": str(exc)}
            log("%s: retention skipped: %s" % (dataset, exc))
    return pruned


def run(config):
    started = utcnow()
    run_id = "timer-%s-%s" % (to_stamp(started).replace(":", "").replace("-", ""), config["clinic"])
    trail = config.get("audit_trail", "/var/log/clinicops/audit.jsonl")
    status = {"run_id": run_id, "trigger": "timer", "clinic": config["clinic"], "started": to_stamp(started)}
    request = {"owner": run_id, "run_id": run_id, "operation": "backup", "controller": socket.gethostname(),
               "user": "systemd-timer"}
    deadline = time.time() + int(config.get("lock_wait", 1800))
    try:
        lock = take_lock(config, request, deadline)
    except LockError as exc:
        status.update(outcome="skipped", reason="clinic lock held: %s" % exc)
        append(trail, [audit(run_id, "skipped", {"reason": status["reason"]})])
        return EXIT_LOCKED, status
    append(trail, [audit(run_id, "started", {"trigger": "timer"})])
    try:
        repo = ResticRepo(subprocess_runner, config["repository"], config["password_file"],
                          cache_dir=config.get("cache_dir"))
        results = back_up_all(config, repo)
        offsite = "not configured"
        remote = offsite_repo(config)
        if remote is not None:
            try:
                copy_offsite(repo, remote, config["clinic"], dry_run=False)
                offsite = "ok"
            except ResticError as exc:
                offsite = "failed: %s" % exc
                log("off-site copy failed: %s; retried next run, nothing is pruned" % exc)
        pruned = {}
        if config.get("prune", True) and offsite in ("ok", "not configured"):
            pruned = prune(config, repo, results)
        failed = [name for name, result in results.items() if result["outcome"] != "ok"]
        status.update(outcome="failed" if failed or offsite.startswith("failed") else "ok", datasets=results,
                      offsite=offsite, retention=pruned)
    except (IOError, OSError, ValueError, KeyError) as exc:
        status.update(outcome="failed", error=str(exc))
        log("backup failed: %s" % exc)
    finally:
        status["ended"] = to_stamp(utcnow())
        details = dict(("snapshot:%s" % name, result.get("snapshot_id", "failed"))
                       for name, result in (status.get("datasets") or {}).items())
        details["offsite"] = status.get("offsite", "not reached")
        append(trail, [audit(run_id, status.get("outcome", "failed"), details)])
        lock.release(run_id)
    return (EXIT_OK if status["outcome"] == "ok" else EXIT_FAILED), status


def audit(run_id, outcome, details):
    return procedure_record("backup", outcome, run_id, "systemd-timer", to_stamp(utcnow()), details)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        log("usage: scheduled_backup CONFIG.json")
        return EXIT_CONFIG
    try:
        config = load_config(argv[0])
    except ConfigError as exc:
        log("configuration error: %s; nothing was backed up or removed" % exc)
        return EXIT_CONFIG
    code, status = run(config)
    status_file = config.get("status_file", "/var/lib/clinicops/backup-last.json")
    write_atomic(status_file, json.dumps(status, indent=2, sort_keys=True) + "\n")
    log("backup %s (%s)" % (status["outcome"], status_file))
    return code


__all__ = ["load_config", "main", "run"]

if __name__ == "__main__":
    raise SystemExit(main())
