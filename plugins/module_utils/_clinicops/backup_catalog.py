# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding the backup an operator means: latest, by snapshot id, by time, or bound to a release.

Pure functions over restic's ``snapshots --json`` output. Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from datetime import datetime, timedelta, timezone

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.restic_repo import tags_of

SNAPSHOT_ID = re.compile(r"^[0-9a-f]{8,64}$")
TIMESTAMP = re.compile(r"^(\d{8})_(\d{6})$")
RELEASE = re.compile(r"^release:([A-Za-z0-9][A-Za-z0-9._-]{0,127})$")


class SelectionError(Exception):
    """No snapshot matches, or the selector is malformed; the message says which and lists what exists."""


def snapshot_time(snapshot):
    """restic's time ('2026-11-25T23:24:22.123456789+01:00') as an aware UTC datetime."""
    text = snapshot["time"]
    match = re.match(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$", text)
    if not match:
        raise SelectionError("cannot read snapshot time %r" % text)
    moment = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S")
    zone = match.group(3)
    if zone == "Z":
        offset = timedelta(0)
    else:
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return (moment - offset).replace(tzinfo=timezone.utc)


def describe(snapshot):
    tags = tags_of(snapshot)
    extra = " release=%s" % tags["release"] if "release" in tags else ""
    return "%s %s%s" % (snapshot.get("short_id") or snapshot["id"][:8],
                        snapshot_time(snapshot).strftime("%Y%m%d_%H%M%S"), extra)


def select_snapshot(snapshots, selector):
    """The snapshot ``selector`` names among ``snapshots`` (already filtered to one data set).

    Safety snapshots (tag ``kind=safety``, taken by a restore before it replaced the live data) are
    found only by id: ``latest``, a time or a release never picks the state a restore replaced.

    Selectors: ``latest``; a snapshot id or its 8+ character prefix; ``YYYYMMDD_HHMMSS`` (UTC) for
    the newest snapshot taken at or before that time; ``release:<release id>`` for the newest
    snapshot bound to that release.
    """
    everything = sorted(snapshots, key=snapshot_time)
    # A restore's safety snapshot holds the state that was being replaced: it is chosen only by id.
    ordered = [s for s in everything if tags_of(s).get("kind") != "safety"]
    available = ", ".join(describe(s) for s in ordered[-5:]) or "none"
    if not everything:
        raise SelectionError("there is no backup of this data set")
    if selector == "latest":
        if not ordered:
            raise SelectionError("this data set has only safety snapshots of earlier restores (%s); name one by id"
                                 % ", ".join(describe(s) for s in everything[-5:]))
        return ordered[-1]
    match = RELEASE.match(selector)
    if match:
        bound = [s for s in ordered if tags_of(s).get("release") == match.group(1)]
        if not bound:
            raise SelectionError("no backup is bound to release %s (latest: %s)" % (match.group(1), available))
        return bound[-1]
    match = TIMESTAMP.match(selector)
    if match:
        try:
            until = datetime.strptime(selector, "%Y%m%d_%H%M%S").replace(tzinfo=timezone.utc)
        except ValueError as exc:
            raise SelectionError("%r is not a valid time (YYYYMMDD_HHMMSS, UTC)" % selector) from exc
        before = [s for s in ordered if snapshot_time(s) <= until]
        if not before:
            raise SelectionError("no backup was taken at or before %s UTC (latest: %s)" % (selector, available))
        return before[-1]
    if SNAPSHOT_ID.match(selector):
        found = [s for s in everything if s["id"].startswith(selector)]
        if len(found) == 1:
            return found[0]
        if not found:
            raise SelectionError("no snapshot %s in this data set (latest: %s)" % (selector, available))
        raise SelectionError("snapshot prefix %s is ambiguous; give more characters" % selector)
    raise SelectionError("%r is not a snapshot selector: use latest, a snapshot id, YYYYMMDD_HHMMSS or "
                         "release:<id>" % selector)
