# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release state of the clinic app on its host, as deploy and rollback change it.

Layout under the app root (default /srv/clinic)::

    releases/<id>/            one directory per release
    releases/<id>/.clinicops-unfinished   from prepare until the release is activated
    releases/<id>/.clinicops-bad          once the release is marked bad (reason and time)
    shared/                   files and directories every release links to (app.env, uploads/)
    current -> releases/<id>  the release the app runs, switched by one rename(2)
    releases.json             the release log

"Current" is always read from the link. The log records what a link cannot: version, who, run,
bound backups, and how each release ended. When the two disagree the link wins; the difference is
reported as drift and written back the next time an operation changes something. A host
provisioned before the log existed (a current link, no log) is adopted: its release is active.

The log lists releases in the order they last became current: activating a release (deploy or
rollback) moves its entry to the end. "Previous" and keep-N follow that order, never file times.

Links written here are relative (``current -> releases/<id>``, ``releases/<id>/app.env ->
../../shared/app.env``), so they stay right when the app root is mounted elsewhere; an absolute
``current`` link (as provisioning writes it) is read the same way.

Every operation plans first, on an in-memory copy of the log and link: it checks what it must
refuse (raising ReleaseError before anything is touched) and lists the disk steps. Unless
``check_mode``, it then runs the steps, writing the log last. A dry run therefore returns exactly
the steps and the state a real run would.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import errno
import json
import os
import re
import shutil
import stat
import tempfile

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.atomic_files import (
    read_json,
    remove,
    write_atomic,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import (
    to_stamp,
    utcnow,
)

# The documented pattern is ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$; fullmatch, because "$" accepts a trailing newline.
RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
LOG_NAME = "releases.json"
LOG_FORMAT = 1
UNFINISHED_MARKER = ".clinicops-unfinished"
BAD_MARKER = ".clinicops-bad"
MARKERS = (UNFINISHED_MARKER, BAD_MARKER)
STATUSES = ("unfinished", "active", "inactive", "bad", "rolled_back")
GOOD = ("active", "inactive")
# Kept by keep-N cleanup: good code, including a release an operator rolled back from.
KEPT = ("active", "inactive", "rolled_back")


class ReleaseError(Exception):
    """A request refused before anything was changed; the message says why and that nothing was changed."""


class ReleaseStepError(Exception):
    """A disk step failed part-way; ``done`` lists the steps completed before it (the log is written last)."""

    def __init__(self, step, done, cause):
        super(ReleaseStepError, self).__init__("%s failed: %s" % (step, cause))
        self.step = step
        self.done = done


def refuse(message):
    raise ReleaseError(message + "; nothing was changed")


def validate_release_id(value, what="release id"):
    """Return ``value`` if it is a safe release id (a directory name under releases/), else raise ReleaseError."""
    if not isinstance(value, str) or not value:
        refuse("%s %r is empty" % (what, value))
    if ".." in value or not RELEASE_ID.fullmatch(value):
        refuse("%s %r is not valid: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter"
               " or digit, and no '..'" % (what, value))
    return value


def validate_shared_name(value):
    """A path relative to shared/ (``app.env``, ``config/app.ini``): no absolute path, no '..', no marker names."""
    parts = value.split("/") if isinstance(value, str) else []
    if not value or value.startswith("/") or any(part in ("", ".", "..") for part in parts) or parts[0] in MARKERS:
        refuse("shared entry %r is not valid: name a path relative to shared/, without '.' or '..' parts" % (value,))
    return value


def _history(status, at, reason):
    return {"status": status, "at": at, "reason": reason}


def _set_status(entry, status, at, reason):
    entry["status"] = status
    entry["history"].append(_history(status, at, reason))


def _by_run(run_id):
    return " by run %s" % run_id if run_id else ""


def _write_marker_in(directory, name, content):
    write_atomic(os.path.join(directory, name), json.dumps(content, sort_keys=True) + "\n", mode=0o644)


def _fsync_dir(path):
    """Make a rename in ``path`` durable: without this a power cut can bring the old link back."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_with_symlink(link, target):
    """Point ``link`` at ``target`` by renaming a new symlink over it: readers see the old link or the new one."""
    temp = "%s.clinicops-%d.tmp" % (link, os.getpid())
    remove(temp)  # left by a killed run
    os.symlink(target, temp)
    try:
        os.replace(temp, link)
    except OSError:
        remove(temp)
        raise
    _fsync_dir(os.path.dirname(link))


def _remove_tree(path):
    """Remove a release directory; a symlink is unlinked, never followed (rmtree does not follow links inside)."""
    if os.path.islink(path) or not os.path.isdir(path):
        remove(path)
    else:
        shutil.rmtree(path)


def _copy_owner_and_mode(source_stat, path):
    os.chmod(path, stat.S_IMODE(source_stat.st_mode))
    if os.geteuid() == 0:
        os.chown(path, source_stat.st_uid, source_stat.st_gid)


def _seed_entries(source):
    """(relative path, lstat) of everything under ``source`` to hard-link, markers left out; links not followed."""
    for root, dirs, files in os.walk(source):
        relative_root = os.path.relpath(root, source)
        for name in sorted(dirs) + sorted(files):
            if relative_root == "." and name in MARKERS:
                continue
            relative = name if relative_root == "." else os.path.join(relative_root, name)
            yield relative, os.lstat(os.path.join(source, relative))


def _seed(source, dest):
    """Like ``cp -al source/. dest/``: directories recreated, symlinks copied, every other file hard-linked.

    New and old release then share inodes, so unpacking or rsync (which replace files, never write in
    place) changes only what differs. Entries already in ``dest`` are left as they are.
    """
    for relative, info in _seed_entries(source):
        target = os.path.join(dest, relative)
        if os.path.lexists(target):
            continue
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(os.path.join(source, relative)), target)
        elif stat.S_ISDIR(info.st_mode):
            os.mkdir(target)
            _copy_owner_and_mode(info, target)
        else:
            os.link(os.path.join(source, relative), target)


class _Plan(object):
    """The log and link an operation leads to, the disk steps to get there, and what it noticed."""

    def __init__(self, entries, on_disk, current, link_kind, present, untracked, drift):
        self.entries = entries  # the release log as it will be
        self.on_disk = on_disk  # the release log as read (None: no log yet)
        self.baseline = copy.deepcopy(entries)  # after reconciling drift, before the operation
        self.current = current  # release id the link points at (or will)
        self.link_kind = link_kind  # missing | link | other
        self.present = present  # ids with a real directory under releases/
        self.untracked = untracked  # {id: has unfinished marker} for directories the log does not list
        self.drift = drift
        self.steps = []  # (description, function)
        self.notes = []
        self.removed = []

    def find(self, release_id):
        for entry in self.entries:
            if entry["id"] == release_id:
                return entry
        return None

    def step(self, description, function, *args):
        self.steps.append((description, lambda: function(*args)))

    def move_to_end(self, entry):
        self.entries.remove(entry)
        self.entries.append(entry)

    def previous(self):
        """The newest release, in activation order, that rollback may choose: inactive and on disk."""
        for entry in reversed(self.entries):
            if entry["status"] == "inactive" and entry["id"] in self.present and entry["id"] != self.current:
                return entry["id"]
        return None


class ReleaseStore(object):
    """The releases of one app root. ``clock`` returns an aware UTC datetime (tests pass a fixed one)."""

    def __init__(self, app_root, clock=utcnow):
        self.app_root = app_root
        self.releases_dir = os.path.join(app_root, "releases")
        self.shared_dir = os.path.join(app_root, "shared")
        self.current_link = os.path.join(app_root, "current")
        self.log_path = os.path.join(app_root, LOG_NAME)
        self.clock = clock

    def release_dir(self, release_id):
        return os.path.join(self.releases_dir, release_id)

    def _marker(self, release_id, name):
        return os.path.join(self.release_dir(release_id), name)

    def _has_marker(self, release_id, name):
        return os.path.lexists(self._marker(release_id, name))

    def _now(self):
        return to_stamp(self.clock())

    # -- reading -------------------------------------------------------------------------------

    def _read_log(self):
        try:
            log = read_json(self.log_path)
        except ValueError as exc:
            refuse("release log %s is not valid JSON (%s); fix it or move it aside" % (self.log_path, exc))
        if log is None:
            return None
        entries = log.get("releases") if isinstance(log, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e for e in entries):
            refuse("release log %s is not a clinicops release log; fix it or move it aside" % self.log_path)
        ids = [entry["id"] for entry in entries]
        for release_id in ids:
            validate_release_id(release_id, "release id in %s" % self.log_path)
        if len(set(ids)) != len(ids):
            refuse("release log %s lists a release twice; fix it or move it aside" % self.log_path)
        for entry in entries:
            entry.setdefault("backup", {})
            entry.setdefault("history", [])
        return entries

    def _read_link(self):
        """(release id or None, kind, drift note or None) from the current link."""
        try:
            target = os.readlink(self.current_link)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None, "missing", None
            if exc.errno == errno.EINVAL:
                return None, "other", "%s is not a symlink; clinicops cannot switch it" % self.current_link
            raise
        absolute = os.path.normpath(os.path.join(self.app_root, target))
        release_id = os.path.basename(absolute)
        if os.path.realpath(os.path.dirname(absolute)) != os.path.realpath(self.releases_dir) or not (
            RELEASE_ID.fullmatch(release_id) and ".." not in release_id
        ):
            return None, "link", "current points at %s, outside %s; no release is current" % (target, self.releases_dir)
        if not os.path.isdir(absolute):
            return release_id, "link", "current points at releases/%s, which does not exist" % release_id
        return release_id, "link", None

    def _scan_releases(self):
        """Ids of the real directories under releases/ (symlinks and other names are not releases)."""
        try:
            names = os.listdir(self.releases_dir)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return set()
            raise
        return {
            name for name in names
            if RELEASE_ID.fullmatch(name) and ".." not in name
            and stat.S_ISDIR(os.lstat(os.path.join(self.releases_dir, name)).st_mode)
        }

    def _load(self):
        """Read log, link and directories into a plan, the log brought in line with the link and the markers."""
        if not os.path.isdir(self.app_root):
            refuse("app root %s does not exist" % self.app_root)
        on_disk = self._read_log()
        entries = copy.deepcopy(on_disk or [])
        current, link_kind, link_note = self._read_link()
        present = self._scan_releases()
        drift = [link_note] if link_note else []
        now = self._now()
        known = {entry["id"] for entry in entries}
        if current is not None and current not in known:
            adopted = self._new_entry(current, "active", now, "adopted: current points at it", None)
            adopted.update(created=None, activated=None)  # unknown: provisioning kept no record
            entries.append(adopted)
            drift.append("release %s is current but %s; adopted as active" % (
                current, "there is no release log yet" if on_disk is None else "the release log does not list it"))
        for entry in entries:
            self._reconcile(entry, current, present, now, drift)
        untracked = {
            release_id: self._has_marker(release_id, UNFINISHED_MARKER)
            for release_id in sorted(present - {entry["id"] for entry in entries})
        }
        drift.extend("releases/%s is not in the release log; left alone" % release_id
                     for release_id, unfinished in untracked.items() if not unfinished)
        return _Plan(entries, on_disk, current, link_kind, present, untracked, drift)

    def _reconcile(self, entry, current, present, now, drift):
        release_id, status = entry["id"], entry.get("status")
        if release_id == current:
            if status != "active":
                drift.append("the log says release %s is %s, but current points at it; it is active" % (
                    release_id, status))
                _set_status(entry, "active", now, "current points at it (drift)")
            return
        if status == "active":
            drift.append("the log says release %s is active, but current points at %s; it is inactive" % (
                release_id, current or "no release"))
            _set_status(entry, "inactive", now, "current no longer points at it (drift)")
        elif status not in STATUSES:
            drift.append("release %s has unknown status %r; treated as bad" % (release_id, status))
            _set_status(entry, "bad", now, "unknown status %r (drift)" % (status,))
        if release_id not in present:
            drift.append("releases/%s is in the release log but its directory is gone" % release_id)
        elif entry["status"] in GOOD:
            for marker, marked in ((BAD_MARKER, "bad"), (UNFINISHED_MARKER, "unfinished")):
                if self._has_marker(release_id, marker):
                    drift.append("releases/%s has a %s marker but the log says %s; it is %s" % (
                        release_id, marked, entry["status"], marked))
                    _set_status(entry, marked, now, "%s marker found (drift)" % marked)
                    break

    @staticmethod
    def _new_entry(release_id, status, now, reason, run_id):
        return {
            "id": release_id, "version": None, "who": None, "run_id": run_id, "created": now,
            "activated": now if status == "active" else None, "status": status, "backup": {},
            "history": [_history(status, now, reason)],
        }

    def _summary(self, plan):
        return {
            "current": plan.current,
            "previous": plan.previous(),
            "releases": copy.deepcopy(plan.entries),
            "drift": list(plan.drift),
        }

    def state(self):
        """{current, previous, releases, drift} as they stand; reads only."""
        return self._summary(self._load())

    # -- running a plan ------------------------------------------------------------------------

    def _finish(self, plan, check_mode):
        """Run the plan's steps (not in check mode), the log last; the log is written only with a real change."""
        if (plan.steps or plan.entries != plan.baseline) and plan.entries != (plan.on_disk or []):
            plan.step("write the release log %s" % self.log_path, self._write_log, plan.entries)
        done = []
        if not check_mode:
            for description, function in plan.steps:
                try:
                    function()
                except (IOError, OSError) as exc:
                    raise ReleaseStepError(description, done, exc) from exc
                done.append(description)
        result = self._summary(plan)
        result.update(changed=bool(plan.steps), actions=[step[0] for step in plan.steps], notes=plan.notes,
                      removed=plan.removed)
        return result

    def _write_log(self, entries):
        write_atomic(self.log_path, json.dumps({"format": LOG_FORMAT, "releases": entries}, indent=2) + "\n",
                     mode=0o644)

    def _write_marker(self, release_id, name, content):
        _write_marker_in(self.release_dir(release_id), name, content)

    def _plan_switch(self, plan, release_id):
        if plan.link_kind == "other":
            refuse("%s is not a symlink; clinicops switches only a symlink" % self.current_link)
        plan.step("switch current to releases/%s" % release_id,
                  _replace_with_symlink, self.current_link, os.path.join("releases", release_id))
        plan.current = release_id

    def _plan_clear_markers(self, plan, release_id):
        for marker in MARKERS:
            if self._has_marker(release_id, marker):
                plan.step("remove releases/%s/%s" % (release_id, marker), remove, self._marker(release_id, marker))

    def _plan_mark_bad(self, plan, entry, reason, now):
        if entry["status"] != "bad":
            _set_status(entry, "bad", now, reason)
        if entry["id"] in plan.present and not self._has_marker(entry["id"], BAD_MARKER):
            plan.step("write releases/%s/%s" % (entry["id"], BAD_MARKER), self._write_marker,
                      entry["id"], BAD_MARKER, {"reason": reason, "at": now})

    def _plan_activation(self, plan, entry, reason, now):
        """Make ``entry`` current: the switch, its markers removed, statuses, and its place at the end of the log."""
        leaving = plan.find(plan.current) if plan.current else None
        if plan.current != entry["id"]:
            self._plan_switch(plan, entry["id"])
        self._plan_clear_markers(plan, entry["id"])
        _set_status(entry, "active", now, reason)
        entry["activated"] = now
        plan.move_to_end(entry)
        return leaving if leaving is not entry else None

    # -- operations ----------------------------------------------------------------------------

    def prepare(self, release_id, version=None, who=None, run_id=None, backup=None, seed_from_current=False,
                force=False, check_mode=False):
        """Create releases/<id>/ with its unfinished marker and log entry, or resume an unfinished one.

        ``seed_from_current`` hard-links the current release's files into a new directory. A bad
        release is prepared again only with ``force``; the active one is left alone ("already active").
        """
        validate_release_id(release_id)
        plan = self._load()
        if plan.current == release_id:
            plan.notes.append("release %s is already active; nothing to prepare" % release_id)
            return self._finish(plan, check_mode)
        if not os.path.isdir(self.releases_dir):
            refuse("%s does not exist; provision the host first" % self.releases_dir)
        if plan.untracked.get(release_id) is False and not force:
            refuse("releases/%s exists but the release log does not list it and it has no unfinished marker;"
                   " set force to prepare it anyway" % release_id)
        now = self._now()
        entry = plan.find(release_id)
        resuming = entry is not None and entry["status"] == "unfinished"
        if entry is None:
            entry = self._new_entry(release_id, "unfinished", now, "prepared" + _by_run(run_id), run_id)
            plan.entries.append(entry)
        elif entry["status"] == "bad" and not force:
            refuse("release %s is marked bad (%s); it is not deployed again unless forced" % (
                release_id, entry["history"][-1]["reason"] if entry["history"] else "no reason recorded"))
        elif not resuming:
            _set_status(entry, "unfinished", now, "prepared again%s (was %s)" % (_by_run(run_id), entry["status"]))
        before = copy.deepcopy(entry)
        for field, value in (("version", version), ("who", who), ("run_id", run_id), ("backup", backup)):
            if value is not None:
                entry[field] = copy.deepcopy(value)
        self._plan_directory(plan, release_id, seed_from_current, run_id, now)
        if resuming and (plan.steps or entry != before):
            entry["history"].append(_history("unfinished", now, "resumed" + _by_run(run_id)))
        return self._finish(plan, check_mode)

    def _plan_directory(self, plan, release_id, seed_from_current, run_id, now):
        path = self.release_dir(release_id)
        marker = {"run_id": run_id, "created": now}
        if release_id not in plan.present:
            plan.step("create %s with its unfinished marker" % path, self._create_release_dir, release_id, marker)
            plan.present.add(release_id)
            source = self.release_dir(plan.current) if plan.current else None
            if seed_from_current and source and os.path.isdir(source):
                count = len(list(_seed_entries(source)))
                plan.step("seed releases/%s from releases/%s (%d entries, files hard-linked)" % (
                    release_id, plan.current, count), self._seed_release, source, path)
            elif seed_from_current:
                plan.notes.append("not seeded: no current release directory to seed from")
            return
        if seed_from_current:
            plan.notes.append("not seeded: %s already exists" % path)
        if self._has_marker(release_id, BAD_MARKER):  # only reached with force
            plan.step("remove %s/%s (forced)" % (path, BAD_MARKER), remove, self._marker(release_id, BAD_MARKER))
        if not self._has_marker(release_id, UNFINISHED_MARKER):
            plan.step("write %s/%s" % (path, UNFINISHED_MARKER), self._write_marker,
                      release_id, UNFINISHED_MARKER, marker)

    def _create_release_dir(self, release_id, marker):
        """Build the directory under a temporary name and rename it into place: it never exists without its marker."""
        temp = tempfile.mkdtemp(prefix=".clinicops-prepare-%s." % release_id, dir=self.releases_dir)
        try:
            os.chmod(temp, 0o755)
            _write_marker_in(temp, UNFINISHED_MARKER, marker)
            os.rename(temp, self.release_dir(release_id))
        except OSError:
            shutil.rmtree(temp, ignore_errors=True)
            raise

    @staticmethod
    def _seed_release(source, dest):
        _copy_owner_and_mode(os.stat(source), dest)
        _seed(source, dest)

    def link_shared(self, release_id, files=(), dirs=(), check_mode=False):
        """Link releases/<id>/<name> to shared/<name> (relative links) for each shared file and directory.

        The shared targets must exist and be of the named kind. Anything else at a link's place is
        replaced, which is allowed only while the release is unfinished.
        """
        validate_release_id(release_id)
        names = [validate_shared_name(name) for name in list(files) + list(dirs)]
        if len(set(names)) != len(names):
            refuse("a shared entry is named twice in %s" % names)
        plan = self._load()
        entry = plan.find(release_id)
        if entry is None or release_id not in plan.present:
            refuse("release %s has not been prepared (no log entry or no directory)" % release_id)
        release_root = os.path.realpath(self.release_dir(release_id))
        for name in names:
            is_dir = name in dirs
            target = os.path.join(self.shared_dir, name)
            if not (os.path.isdir(target) if is_dir else os.path.isfile(target)):
                refuse("%s does not exist or is not a %s" % (target, "directory" if is_dir else "file"))
            link = os.path.join(self.release_dir(release_id), name)
            wanted = os.path.relpath(target, os.path.dirname(link))
            if os.path.islink(link) and os.readlink(link) == wanted:
                continue
            if entry["status"] != "unfinished":
                refuse("releases/%s/%s is not linked to shared/ and release %s is %s; a release is changed only"
                       " while unfinished (prepare it first)" % (release_id, name, release_id, entry["status"]))
            if not _inside(os.path.realpath(_deepest_existing(os.path.dirname(link))), release_root):
                refuse("releases/%s/%s would be created outside the release through a symlink" % (release_id, name))
            plan.step("link releases/%s/%s -> %s" % (release_id, name, wanted), _place_link, link, wanted)
        return self._finish(plan, check_mode)

    def activate(self, release_id, force=False, check_mode=False):
        """Switch current to the release (one rename), remove its markers; the release it replaces becomes inactive."""
        validate_release_id(release_id)
        plan = self._load()
        entry = plan.find(release_id)
        if entry is None:
            refuse("release %s is not in the release log; prepare it first" % release_id)
        if release_id not in plan.present:
            refuse("releases/%s does not exist" % release_id)
        if entry["status"] == "bad" and not force:
            refuse("release %s is marked bad; it is activated again only when forced" % release_id)
        if plan.current == release_id and not any(self._has_marker(release_id, m) for m in MARKERS):
            plan.notes.append("release %s is already active" % release_id)
            return self._finish(plan, check_mode)
        now = self._now()
        leaving = self._plan_activation(plan, entry, "activated" + (" (forced)" if force else ""), now)
        if leaving is not None:
            _set_status(leaving, "inactive", now, "replaced by %s" % release_id)
        return self._finish(plan, check_mode)

    def rollback(self, to=None, reason=None, mark="rolled_back", force=False, check_mode=False):
        """Switch current back to ``to``, or to the previous good release, and mark the release left.

        ``mark`` is ``bad`` after a failed health gate (the release is never chosen again) or
        ``rolled_back`` when an operator rolls back. A target that is gone is always refused; one
        that is unfinished or bad only without ``force``.
        """
        if mark not in ("bad", "rolled_back"):
            refuse("rollback mark %r is not bad or rolled_back" % (mark,))
        if to is not None:
            validate_release_id(to, "rollback target")
        plan = self._load()
        if to is None:
            to = plan.previous()
            if to is None:
                refuse("there is no previous good release to roll back to (an inactive release whose directory"
                       " exists and has no marker); name one with to")
        if to == plan.current:
            plan.notes.append("release %s is already current" % to)
            return self._finish(plan, check_mode)
        entry = plan.find(to)
        if to not in plan.present:
            refuse("cannot roll back to release %s: releases/%s does not exist" % (to, to))
        if entry is None:
            refuse("cannot roll back to release %s: the release log does not list it" % to)
        for status, marker in (("bad", BAD_MARKER), ("unfinished", UNFINISHED_MARKER)):
            if (entry["status"] == status or self._has_marker(to, marker)) and not force:
                refuse("cannot roll back to release %s: it is %s; set force to use it anyway" % (to, status))
        now = self._now()
        reason = reason or "rolled back to %s" % to
        leaving = self._plan_activation(plan, entry, "rollback target: %s" % reason, now)
        if leaving is not None:
            if mark == "bad":
                self._plan_mark_bad(plan, leaving, reason, now)
            else:
                _set_status(leaving, "rolled_back", now, reason)
        return self._finish(plan, check_mode)

    def mark_bad(self, release_id, reason=None, check_mode=False):
        """Mark a release that failed before it became current (build, migration) bad: log status and marker."""
        validate_release_id(release_id)
        plan = self._load()
        if release_id == plan.current:
            refuse("release %s is current; roll back away from it with mark bad instead" % release_id)
        entry = plan.find(release_id)
        if entry is None and release_id not in plan.present:
            refuse("release %s is neither in the release log nor under releases/" % release_id)
        now = self._now()
        reason = reason or "marked bad"
        if entry is None:
            entry = self._new_entry(release_id, "bad", now, reason, None)
            plan.entries.append(entry)
        self._plan_mark_bad(plan, entry, reason, now)
        return self._finish(plan, check_mode)

    def cleanup(self, keep=5, exclude=None, check_mode=False):
        """Remove releases beyond the ``keep`` newest kept ones (active, inactive and rolled back, in log order).

        Never removed: the current release, the previous good one, ``exclude``. A rolled-back release
        was good code an operator stepped away from: it stays within ``keep`` so that one can roll
        forward to it by name. Unfinished and bad releases do not count toward ``keep`` and are
        removed; so are log entries whose directory is gone, and unlisted directories that carry an
        unfinished marker. ``removed`` lists the ids.
        """
        if not isinstance(keep, int) or keep < 0:
            refuse("keep must be a number of releases, 0 or more, got %r" % (keep,))
        if exclude is not None:
            validate_release_id(exclude, "excluded release id")
        plan = self._load()
        protected = {plan.current, plan.previous(), exclude} - {None}
        good = [e["id"] for e in plan.entries if e["status"] in KEPT and e["id"] in plan.present]
        kept = protected | set(good[max(len(good) - keep, 0):] if keep else [])
        for entry in list(plan.entries):
            if entry["id"] not in kept:
                self._plan_removal(plan, entry["id"])
                plan.entries.remove(entry)
        for release_id, unfinished in plan.untracked.items():
            if unfinished and release_id != exclude:
                self._plan_removal(plan, release_id)
        return self._finish(plan, check_mode)

    def _plan_removal(self, plan, release_id):
        path = self.release_dir(release_id)
        if os.path.lexists(path):
            plan.step("remove %s" % path, _remove_tree, path)
        plan.present.discard(release_id)
        plan.removed.append(release_id)


def _inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _deepest_existing(path):
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return path


def _place_link(link, target):
    """Create the shared link, its parent directories, and replace whatever the artifact put there."""
    parent = os.path.dirname(link)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o755)
    if os.path.isdir(link) and not os.path.islink(link):
        shutil.rmtree(link)
    _replace_with_symlink(link, target)
