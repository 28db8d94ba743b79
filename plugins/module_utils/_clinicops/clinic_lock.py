# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-clinic lock every disruptive clinicops procedure takes.

The lock is one JSON file. Deciding and writing happen under an exclusive ``flock`` on a guard
file beside it, so two runs that arrive together are serialised; the kernel drops that guard
when the module process ends, even on SIGKILL, so it can never be left behind. The lock file
itself is written to a temporary name and renamed into place, so a reader sees either no lock
or a whole one. A lock left by a killed run stays until it expires; after that the next run
takes it over and says so.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import json
import os
from datetime import timedelta

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.atomic_files import (
    read_json,
    remove,
    write_atomic,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import (
    from_stamp,
    to_stamp,
)

LOCK_FIELDS = ("owner", "run_id", "operation", "controller", "user", "started", "expires")


class LockError(Exception):
    """The lock could not be taken or released; the message says by whom it is held."""


def is_expired(holder, now):
    try:
        return from_stamp(holder["expires"]) <= now
    except (KeyError, TypeError, ValueError):
        return True  # an unreadable lock protects nothing; treat it as stale


def describe(holder):
    """Who holds the lock, in words an operator understands."""
    return "run %s (operation %s, user %s on %s) since %s, expires %s" % (
        holder.get("run_id", "?"), holder.get("operation", "?"), holder.get("user", "?"),
        holder.get("controller", "?"), holder.get("started", "?"), holder.get("expires", "?"))


class ClinicLock(object):
    """A lock file plus its guard. ``path`` is the lock file, e.g. /var/lib/clinicops/clinic.lock."""

    def __init__(self, path):
        self.path = path
        self.guard_path = path + ".guard"

    def read(self):
        try:
            return read_json(self.path)
        except ValueError:
            return {"owner": None, "run_id": "unreadable lock file", "expires": ""}

    def _write(self, holder):
        write_atomic(self.path, json.dumps(holder, sort_keys=True) + "\n")

    def guarded(self):
        return _Guard(self.guard_path)

    def plan_acquire(self, request, now):
        """Decide what taking the lock means now: (action, current holder).

        action is one of: take (no lock), renew (ours), takeover (expired), refuse (held).
        """
        holder = self.read()
        if holder is None:
            return "take", None
        if holder.get("owner") == request["owner"]:
            return "renew", holder
        if is_expired(holder, now):
            return "takeover", holder
        return "refuse", holder

    def acquire(self, request, ttl_seconds, now, check_mode=False):
        """Take the lock for ``request`` (owner, run_id, operation, controller, user).

        Returns (changed, action, previous holder, new holder); raises LockError when held.
        """
        with self.guarded():
            action, previous = self.plan_acquire(request, now)
            if action == "refuse":
                raise LockError("locked by %s" % describe(previous))
            holder = dict((key, request.get(key)) for key in LOCK_FIELDS)
            holder["started"] = previous["started"] if action == "renew" else to_stamp(now)
            holder["expires"] = to_stamp(now + timedelta(seconds=ttl_seconds))
            if not check_mode:
                self._write(holder)
            return True, action, previous, holder

    def release(self, owner, force=False, check_mode=False):
        """Release the lock held by ``owner``. Returns (changed, previous holder)."""
        with self.guarded():
            holder = self.read()
            if holder is None:
                return False, None
            if holder.get("owner") != owner and not force:
                raise LockError("cannot release: the lock is held by %s, not by this run" % describe(holder))
            if not check_mode:
                remove(self.path)
            return True, holder


class _Guard(object):
    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        return False
