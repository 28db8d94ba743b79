# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""UTC timestamps as clinicops writes them in locks, flags and audit records: 2026-11-25T02:00:04Z.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from datetime import datetime, timezone

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utcnow():
    """Now, in UTC, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def to_stamp(moment):
    return moment.astimezone(timezone.utc).strftime(STAMP_FORMAT)


def from_stamp(text):
    """Parse a stamp written by to_stamp; raises ValueError on anything else."""
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=timezone.utc)
