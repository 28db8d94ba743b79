# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tamper-evident audit trail: JSON lines where each record carries the hash of the one before.

Each record gets ``prev`` (the previous record's ``hash``, or ``GENESIS`` for the first) and
``hash`` (SHA-256 of the record's canonical JSON without ``hash``). Editing, deleting or
reordering a line breaks the chain at that line, and ``verify_lines`` names it. Appends hold an
exclusive ``flock`` on the trail, so concurrent writers never interleave or fork the chain.

Pure Python with no Ansible imports: the callback plugin, the ``audit_record`` module and the
clinicops CLI's verifier all use this one file. Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import hashlib
import json
import os

GENESIS = "0" * 64
TAIL_CHUNK = 65536


def procedure_record(procedure, outcome, run_id, who, at, details):
    """A clinic's record of a procedure step (before sealing): the one shape every writer uses."""
    return {"kind": "procedure", "procedure": procedure, "outcome": outcome, "run_id": run_id, "who": who,
            "at": at, "details": details}


def canonical(record):
    """The bytes that are hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def record_hash(record):
    body = dict((key, value) for key, value in record.items() if key != "hash")
    return hashlib.sha256(canonical(body)).hexdigest()


def seal(record, prev_hash):
    """Return a copy of ``record`` chained after ``prev_hash``."""
    sealed = dict(record)
    sealed.pop("hash", None)
    sealed["prev"] = prev_hash
    sealed["hash"] = record_hash(sealed)
    return sealed


def _last_line(handle):
    handle.seek(0, os.SEEK_END)
    end = handle.tell()
    start = max(0, end - TAIL_CHUNK)
    while True:
        handle.seek(start)
        chunk = handle.read(end - start)
        lines = chunk.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or start == 0:
            return lines[-1] if lines and lines[-1] else None
        start = max(0, start - TAIL_CHUNK)


def last_hash(handle):
    line = _last_line(handle)
    if line is None:
        return GENESIS
    return json.loads(line.decode("utf-8"))["hash"]


def append(path, records, mode=0o600):
    """Append records to the trail at ``path`` under an exclusive lock; returns the sealed records."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, mode)
    with os.fdopen(fd, "r+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            prev = last_hash(handle)
            sealed = []
            for record in records:
                entry = seal(record, prev)
                handle.write(canonical(entry) + b"\n")
                prev = entry["hash"]
                sealed.append(entry)
            handle.flush()
            os.fsync(handle.fileno())
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return sealed


def verify_lines(lines):
    """Check a whole trail. Returns (ok, records checked, problem or None).

    The problem names the 1-based line number and what is wrong with it.
    """
    prev = GENESIS
    count = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return False, count, "line %d is not JSON" % number
        if record.get("prev") != prev:
            return False, count, "line %d does not follow line %d (a record was removed, added or reordered)" % (
                number, number - 1)
        if record.get("hash") != record_hash(record):
            return False, count, "line %d was altered after it was written (hash mismatch)" % number
        prev = record["hash"]
        count += 1
    return True, count, None


def verify_file(path):
    with open(path, "r") as handle:
        return verify_lines(handle.read().split("\n"))
