# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small restic client: argv-only calls, the password only through a root-only file, JSON out.

restic gives the backup repository its encryption at rest (AES-256 + Poly1305), deduplication,
compression (repository format 2) and integrity checks. This wrapper knows the vocabulary of
clinicops on top of it: snapshot tags that name the clinic, engine, data set, day and release,
and the GFS retention policy translated explicitly into restic's ``--keep-*`` rules.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from urllib.parse import quote

# Characters a tag value keeps as they are; every other one is percent-encoded (and "%" itself), so
# two different values never make the same tag: /srv/a_b and /srv/a/b stay two data sets.
TAG_KEEP = "._:=@+/-"

# Our retention vocabulary -> restic's flags. restic keeps a snapshot when ANY rule keeps it
# (the rules are OR-ed), per group of snapshots (here: one group per data set tag).
GFS_FLAGS = (
    ("keep_last", "--keep-last"),
    ("keep_daily", "--keep-daily"),
    ("keep_weekly", "--keep-weekly"),
    ("keep_monthly", "--keep-monthly"),
    ("keep_yearly", "--keep-yearly"),
)


def repository_argument_spec():
    """Argument spec of the repository options (documented by the clinicops.runbook.restic_repository fragment)."""
    return dict(
        repository=dict(type="str", required=True),
        password_file=dict(type="path", required=True, no_log=False),
        cache_dir=dict(type="path", default="/var/cache/clinicops/restic"),
    )


def module_runner(module):
    """A ``run`` for ResticRepo that goes through AnsibleModule.run_command (argv, no shell)."""

    def run(argv, env, data):
        return module.run_command(argv, environ_update=env, data=data, binary_data=data is not None)

    return run


def repository_of(module):
    """The repository a module's repository options name."""
    params = module.params
    return ResticRepo(module_runner(module), params["repository"], params["password_file"],
                      cache_dir=params["cache_dir"])


class ResticError(Exception):
    """restic failed; the message holds the command's name, exit code and last stderr line."""


def tag(key, value):
    """A snapshot tag ``key=value``; the value percent-encoded outside letters, digits and ``._:=@+/-``
    (restic splits ``--tag`` on commas), which keeps distinct values distinct."""
    return "%s=%s" % (key, quote(str(value), safe=TAG_KEEP))


def dataset_tag(engine, name):
    return tag("dataset", "%s:%s" % (engine, name))


def gfs_arguments(policy):
    """restic forget flags for a GFS policy dict (keep_daily, keep_weekly, ...); zero means off."""
    args = []
    for key, flag in GFS_FLAGS:
        count = int(policy.get(key) or 0)
        if count < 0:
            raise ValueError("%s must not be negative" % key)
        if count:
            args += [flag, str(count)]
    if not args:
        raise ValueError("a retention policy must keep something (set keep_daily, keep_weekly, ...)")
    return args


def tags_of(snapshot):
    """A snapshot's tags as a dict (key=value tags only)."""
    found = {}
    for item in snapshot.get("tags") or []:
        if "=" in item:
            key, value = item.split("=", 1)
            found[key] = value
    return found


class ResticRepo(object):
    """One repository (local path or ``sftp:user@host:/path``) and its password file.

    ``run`` is ``run(argv, environ_update, data) -> (rc, stdout, stderr)`` (AnsibleModule.run_command
    fits); nothing is ever passed through a shell.
    """

    def __init__(self, run, repository, password_file, restic="restic", cache_dir=None, sftp_command=None):
        self.run = run
        self.repository = repository
        self.password_file = password_file
        self.restic = restic
        self.cache_dir = cache_dir
        self.sftp_command = sftp_command

    def environ(self):
        env = {"RESTIC_REPOSITORY": self.repository, "RESTIC_PASSWORD_FILE": self.password_file,
               "RESTIC_PROGRESS_FPS": "0.1"}
        if self.cache_dir:
            env["RESTIC_CACHE_DIR"] = self.cache_dir
        return env

    def _argv(self, args):
        argv = [self.restic]
        if self.sftp_command:
            argv += ["-o", "sftp.command=%s" % self.sftp_command]
        return argv + list(args)

    def call(self, args, data=None, ok_codes=(0,)):
        rc, out, err = self.run(self._argv(args), self.environ(), data)
        if rc not in ok_codes:
            last = [line for line in (err or out or "").strip().splitlines() if line.strip()]
            raise ResticError("restic %s exited %s: %s" % (args[0], rc, last[-1] if last else "no output"))
        return rc, out, err

    def is_initialized(self):
        rc, _out, _err = self.run(self._argv(["cat", "config"]), self.environ(), None)
        return rc == 0

    def exists(self):
        """True if the repository is there, False if the location holds none yet; raises ResticError
        when the location cannot be reached at all (so an outage is not mistaken for a new repository)."""
        rc, out, err = self.run(self._argv(["cat", "config"]), self.environ(), None)
        if rc == 0:
            return True
        text = err or out or ""
        if "Is there a repository at the following location?" in text:
            return False
        last = [line for line in text.strip().splitlines() if line.strip()]
        raise ResticError("repository %s is unreachable: %s" % (self.repository, last[-1] if last else "rc %s" % rc))

    def init(self):
        self.call(["init", "--repository-version", "2"])

    def unlock_stale(self):
        """Remove only stale locks (restic's default; ``--remove-all`` is never used)."""
        self.call(["unlock"])

    def backup(self, paths, tags, host):
        args = ["backup", "--json", "--host", host]
        for item in tags:
            args += ["--tag", item]
        _rc, out, _err = self.call(args + list(paths))
        return last_json_message(out, "summary")

    def snapshots(self, tags=None):
        """Snapshots carrying ALL of ``tags`` (restic ANDs tags within one --tag, ORs across flags)."""
        args = ["snapshots", "--json"]
        if tags:
            args += ["--tag", ",".join(tags)]
        _rc, out, _err = self.call(args)
        return json.loads(out or "[]") or []

    def restore(self, snapshot_id, target, includes=None):
        args = ["restore", snapshot_id, "--target", target]
        for item in includes or []:
            args += ["--include", item]
        self.call(args)

    def dump(self, snapshot_id, path):
        _rc, out, _err = self.call(["dump", snapshot_id, path])
        return out

    def forget(self, policy, group_tags, dry_run, prune=True):
        # Group by host only: the tag filter already selects one data set, and the date/release
        # tags differ between snapshots, so grouping by tags would make every snapshot its own group.
        if not group_tags:
            raise ResticError("forget needs the tags of one data set; refusing to apply retention to everything")
        args = ["forget", "--json", "--group-by", "host", *gfs_arguments(policy), "--tag", ",".join(group_tags)]
        if dry_run:
            args.append("--dry-run")
        elif prune:
            args.append("--prune")
        _rc, out, _err = self.call(args)
        return json.loads(first_json_line(out) or "[]") or []

    def check(self, read_data_subset=None):
        args = ["check"]
        if read_data_subset:
            args += ["--read-data-subset", read_data_subset]
        self.call(args)

    def init_like(self, source_repository, source_password_file):
        """Initialise this repository with the chunker parameters of the source, so copies dedupe."""
        self.call(["init", "--repository-version", "2", "--from-repo", source_repository,
                   "--from-password-file", source_password_file, "--copy-chunker-params"])

    def copy_from(self, source_repository, source_password_file, tags):
        """Copy into this repository the snapshots of the source carrying all ``tags`` that it lacks."""
        self.call(["copy", "--from-repo", source_repository, "--from-password-file", source_password_file,
                   "--tag", ",".join(tags)])


def first_json_line(text):
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("[") or line.startswith("{"):
            return line
    return None


def last_json_message(text, message_type):
    """The last JSON line of restic's --json stream with the given message_type."""
    found = None
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("message_type") == message_type:
            found = message
    if found is None:
        raise ResticError("restic gave no %s message" % message_type)
    return found
