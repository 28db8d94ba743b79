# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tamper-evident audit trail: JSON lines where each record carries the hash of the one before.

Each record gets ``prev`` (the previous record's ``hash``, or ``GENESIS`` for the first) and
``hash`` (SHA-256 of the record's canonical JSON without ``hash``). Editing, deleting or
reordering a line breaks the chain at that line, and ``verify_lines`` names it. Appends hold an
exclusive ``flock`` on the trail (and on its directory, see ``append``), so concurrent writers never
interleave or fork the chain.

The chain survives rotation. Each append also rewrites a head file next to the trail
(``<trail>.head``, written atomically under the same lock) naming the last record's hash. When
logrotate has renamed the trail (``audit.jsonl-YYYYMMDD-HHMMSS``, later ``.gz``, later moved under
``archive/YYYY/MM/``) and the live file is empty or missing, the next record follows the head's
hash instead of ``GENESIS``. A trail with no head file behaves as before (the first record follows
``GENESIS``). ``verify_segments`` checks an ordered sequence of segment files and their links,
``segment_paths`` finds a trail's segments and ``verify_trail`` checks all of them and the head.

Pure Python with no Ansible imports: the callback plugin, the ``audit_record`` module and the
clinicops CLI's verifier all use this one file. Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bz2
import errno
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import zlib

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.atomic_files import write_atomic

GENESIS = "0" * 64
TAIL_CHUNK = 65536
HEAD_SUFFIX = ".head"
DEFAULT_TRAIL = "audit.jsonl"
ARCHIVE_DIR = "archive"
# What follows ``<trail>-`` in a rotated segment's name: logrotate's dateext (-%Y%m%d-%H%M%S), the
# archive step's collision suffixes (-20261126T101010Z, -2) and a compression suffix.
ROTATED = re.compile(r"^(\d{8}-\d{6})((?:-[0-9A-Za-z]+)*)(\.gz|\.zst|\.xz|\.bz2)?$")
OPEN_RETRIES = 100


class SegmentUnreadableError(Exception):
    """A segment file that cannot be read (no zstd support, corrupt compression, not UTF-8)."""


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


# -- the head file -------------------------------------------------------------------------------------


def head_path(path):
    """Where the head file of the trail at ``path`` lives: ``<path>.head`` (never matched by ``*.jsonl``)."""
    return path + HEAD_SUFFIX


def read_head(path):
    """The head of the trail at ``path`` as a dict (``trail``, ``hash``, ``count``, ``since``), or None.

    ``count`` is the number of records from the one after ``since`` (a hash, or ``GENESIS``) up to
    and including ``hash``. Raises ``ValueError`` when the head file exists but is not a valid head.
    """
    try:
        with open(head_path(path), "rb") as handle:
            text = handle.read().decode("utf-8")
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    try:
        head = json.loads(text)
    except ValueError:
        head = None
    if not isinstance(head, dict) or not _is_hash(head.get("hash")):
        raise ValueError("the head file %s is not valid (no record hash in it)" % head_path(path))
    return head


def _is_hash(value):
    return isinstance(value, str) and len(value) == 64


def _write_head(path, head, mode):
    """Replace the head file atomically: temporary file, fsync, rename, fsync of the directory."""
    write_atomic(head_path(path), json.dumps(head, sort_keys=True) + "\n", mode, sync_directory=True)


def _next_head(path, head, prev, sealed):
    """The head after ``sealed`` was appended after ``prev`` (the count goes on while the head was in step)."""
    if head is not None and head.get("hash") == prev and isinstance(head.get("count"), int) \
            and _is_hash(head.get("since")):
        since, count = head["since"], head["count"]
    else:
        since, count = prev, 0
    return {"trail": os.path.basename(path), "hash": sealed[-1]["hash"], "count": count + len(sealed),
            "since": since}


# -- appending -----------------------------------------------------------------------------------------


def _is_current(handle, path):
    """True when ``handle`` is still the file at ``path`` (logrotate has not renamed it meanwhile)."""
    try:
        named = os.stat(path)
    except OSError:
        return False
    opened = os.fstat(handle.fileno())
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _lock_directory(directory):
    """An exclusive ``flock`` on the trail's directory (which logrotate never renames), or None.

    The trail's own lock cannot serialize a writer still on a file logrotate just renamed with one
    on the new file; both also hold this one, so the second reads the head the first wrote.
    """
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        os.close(fd)
        return None
    return fd


def append(path, records, mode=0o600):
    """Append records to the trail at ``path`` under an exclusive lock; returns the sealed records.

    The first record follows the trail's last line; in an empty (just rotated) trail, the hash in
    the head file; with neither, ``GENESIS``. The head file is rewritten under the same lock.
    """
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    directory_fd = _lock_directory(directory)
    try:
        for attempt in range(OPEN_RETRIES):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, mode)
            with os.fdopen(fd, "r+b") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    # Renamed by logrotate between open and lock: write to the new file instead.
                    if attempt + 1 < OPEN_RETRIES and not _is_current(handle, path):
                        continue
                    return _append_locked(path, handle, records, mode)
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        if directory_fd is not None:
            fcntl.flock(directory_fd, fcntl.LOCK_UN)
            os.close(directory_fd)
    raise IOError("unreachable")  # pragma: no cover  (the last attempt always appends)


def _append_locked(path, handle, records, mode):
    line = _last_line(handle)
    head = read_head(path)
    if line is not None:
        prev = json.loads(line.decode("utf-8"))["hash"]
    elif head is not None:
        prev = head["hash"]
    else:
        prev = GENESIS
    start = prev
    sealed = []
    for record in records:
        entry = seal(record, prev)
        handle.write(canonical(entry) + b"\n")
        prev = entry["hash"]
        sealed.append(entry)
    handle.flush()
    os.fsync(handle.fileno())
    if sealed:
        _write_head(path, _next_head(path, head, start, sealed), mode)
    return sealed


# -- verifying -----------------------------------------------------------------------------------------


def _walk(lines, prev, watch=None):
    """Check a run of lines. ``prev`` None: the first record may follow anything.

    Returns (ok, count, problem, first_prev, last_hash, first_line). ``watch``: a dict of hashes to
    fill with the 1-based position (among the good records) of the record having that hash.
    """
    count = 0
    first_prev = last = first_line = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            return False, count, "line %d is not JSON" % number, first_prev, last, first_line
        if not isinstance(record, dict):
            return False, count, "line %d is not a record" % number, first_prev, last, first_line
        if first_line is None:
            first_line, first_prev = number, record.get("prev")
            if prev is None:
                if not _is_hash(first_prev):
                    return False, count, "line %d has no prev hash" % number, first_prev, last, first_line
                prev = first_prev
        if record.get("prev") != prev:
            if count == 0 and prev != GENESIS:
                problem = "line %d does not follow the record it should follow (%s...)" % (number, prev[:12])
            else:
                problem = "line %d does not follow line %d (a record was removed, added or reordered)" % (
                    number, number - 1)
            return False, count, problem, first_prev, last, first_line
        if record.get("hash") != record_hash(record):
            return False, count, "line %d was altered after it was written (hash mismatch)" % number, \
                first_prev, last, first_line
        prev = last = record["hash"]
        count += 1
        if watch is not None and last in watch:
            watch[last] = count
    return True, count, None, first_prev, last, first_line


def verify_lines(lines, prev=GENESIS):
    """Check a whole trail. Returns (ok, records checked, problem or None).

    The problem names the 1-based line number and what is wrong with it. ``prev``: the hash the first
    record must follow (``GENESIS`` for a trail that was never rotated), or None for a segment that
    may start after any record (see ``verify_segment``).
    """
    ok, count, problem = _walk(lines, prev)[:3]
    return ok, count, problem


def verify_segment(lines, prev=None):
    """Check one segment of a trail. Returns (ok, count, problem, first_prev, last_hash).

    ``prev``: the hash its first record must follow, or None to accept what the first record says.
    ``first_prev`` is the first record's ``prev`` and ``last_hash`` the last good record's ``hash``
    (both None for a segment without records): a segment follows another when its ``first_prev``
    equals the other's ``last_hash``.
    """
    return _walk(lines, prev)[:5]


def verify_file(path, prev=GENESIS):
    with open(path, "r") as handle:
        return verify_lines(handle.read().split("\n"), prev)


def _zstd_bytes(path):
    try:
        import zstandard  # optional; the zstd program does the same
    except ImportError:
        zstandard = None
    if zstandard is not None:
        with open(path, "rb") as handle:
            return zstandard.ZstdDecompressor().stream_reader(handle).read()
    program = shutil.which("zstd")
    if program is None:
        raise SegmentUnreadableError("cannot read a .zst file here (no zstandard module, no zstd program)")
    process = subprocess.Popen([program, "-q", "-d", "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    data, error = process.communicate()
    if process.returncode:
        raise SegmentUnreadableError("zstd cannot decompress it: %s" % error.decode("utf-8", "replace").strip())
    return data


def read_segment(path):
    """The lines of a segment file: plain, .gz, .zst (zstandard module or zstd program), .xz or .bz2.

    Raises ``SegmentUnreadableError`` when it cannot be decompressed or decoded, ``IOError``/``OSError``
    when it cannot be opened.
    """
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        elif path.endswith(".zst"):
            data = _zstd_bytes(path)
        elif path.endswith(".xz"):
            with lzma.open(path, "rb") as handle:
                data = handle.read()
        elif path.endswith(".bz2"):
            with bz2.open(path, "rb") as handle:
                data = handle.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as exc:
        raise SegmentUnreadableError("cannot decompress it: %s" % exc) from exc
    except (IOError, OSError) as exc:
        if exc.errno is None:  # gzip/bz2 report bad data as OSError without errno
            raise SegmentUnreadableError("cannot decompress it: %s" % exc) from exc
        raise
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise SegmentUnreadableError("not UTF-8 text: %s" % exc) from exc


def rotated_key(trail_name, name):
    """(stamp, rest) of a rotated segment's base name, or None when ``name`` is not one of ``trail_name``."""
    prefix = trail_name + "-"
    if not name.startswith(prefix):
        return None
    found = ROTATED.match(name[len(prefix):])
    return (found.group(1), found.group(2)) if found else None


def segment_paths(trail):
    """The segment files of the trail at ``trail``, oldest first.

    Rotated segments (``<name>-YYYYMMDD-HHMMSS`` plain or compressed) next to it and anywhere under
    ``archive/`` beside it, sorted by their date suffix; then the live file, when it exists.
    Symbolic links are not followed into directories.
    """
    directory = os.path.dirname(trail) or "."
    name = os.path.basename(trail)
    found = []
    for folder in [directory]:
        for entry in sorted(os.listdir(folder)):
            key = rotated_key(name, entry)
            path = os.path.join(folder, entry)
            if key is not None and os.path.isfile(path):
                found.append((key, 0, path))
    archive = os.path.join(directory, ARCHIVE_DIR)
    if os.path.isdir(archive) and not os.path.islink(archive):
        for folder, dirs, names in os.walk(archive):
            dirs.sort()
            for entry in names:
                key = rotated_key(name, entry)
                path = os.path.join(folder, entry)
                if key is not None and os.path.isfile(path) and not os.path.islink(path):
                    found.append((key, 1, path))
    paths = [path for _key, _where, path in sorted(found)]
    if os.path.isfile(trail):
        paths.append(trail)
    return paths


def _display(path, root):
    if root:
        relative = os.path.relpath(path, root)
        if not relative.startswith(".."):
            return relative
    return path


def verify_segments(paths, prev=None, root=None, watch=None):
    """Check an ordered sequence of segment files, each on its own and each linked to the one before.

    ``prev``: the hash the first segment must follow (``GENESIS`` for a whole trail), or None to let
    it start after a record not present here (noted). Segments are named relative to ``root`` when
    given. ``watch``: a dict of hashes to fill with their 1-based position across the sequence.

    Returns a dict: ``ok``, ``records``, ``problem`` (the first, naming file and line, or None),
    ``first_prev``, ``last_hash``, ``complete`` (every segment was read), and ``segments``: for each
    file ``path``, ``name``, ``ok``, ``records``, ``problem``, ``note``, ``first_prev``, ``last_hash``.
    A segment with the same records as the one before (a copy left by an interrupted archive step)
    is noted and not counted twice.
    """
    result = {"ok": True, "records": 0, "problem": None, "first_prev": None, "last_hash": None,
              "complete": True, "segments": []}
    expected = prev
    before = None  # the last segment with records: (name, first_prev, last_hash, count)
    linked = True  # False after a segment that could not be read or checked: its successor's link is unknown
    for path in paths:
        name = _display(path, root)
        segment = {"path": path, "name": name, "ok": True, "records": 0, "problem": None, "note": None,
                   "first_prev": None, "last_hash": None}
        result["segments"].append(segment)
        try:
            lines = read_segment(path)
        except (SegmentUnreadableError, IOError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, EnvironmentError) and exc.strerror else str(exc)
            segment.update(ok=False, problem="%s: %s" % (name, reason))
            result["complete"] = linked = False
            continue
        seen = dict.fromkeys(watch) if watch is not None else None
        ok, count, problem, first_prev, last, first_line = _walk(lines, None, seen)
        segment.update(ok=ok, records=count, first_prev=first_prev, last_hash=last)
        if first_prev is None:
            if not ok:
                segment["problem"] = "%s: %s" % (name, problem)
                linked = False
            else:
                segment["note"] = "no records"
            continue
        if before is not None and ok and (first_prev, last, count) == before[1:]:
            segment["note"] = "the same records as %s (a copy); counted once" % before[0]
            segment["records"] = 0
            continue
        if expected is None or not linked:
            if not linked:
                segment["note"] = "follows a segment that could not be checked: link not checked"
            elif first_prev == GENESIS:
                segment["note"] = "starts at GENESIS"
            else:
                segment["note"] = "starts after a record not present here (%s...)" % first_prev[:12]
        elif first_prev != expected:
            after = "the last record of %s" % before[0] if before is not None else (
                "GENESIS" if expected == GENESIS else "the record it should follow (%s...)" % expected[:12])
            segment.update(ok=False, problem="%s line %d does not follow %s (%s)" % (
                name, first_line, after,
                "a segment or records in between are missing, or were altered" if before is not None
                else "records before it are missing"))
        if not ok and segment["problem"] is None:
            segment["problem"] = "%s: %s" % (name, problem)
        if result["first_prev"] is None:
            result["first_prev"] = first_prev
        if seen is not None:
            for key, position in seen.items():
                if position is not None:
                    watch[key] = result["records"] + position
        result["records"] += count
        if ok:
            expected, linked = last, True
            result["last_hash"] = last
        else:
            linked = False
        before = (name, first_prev, last, count)
    for segment in result["segments"]:
        if segment["problem"] is not None:
            result["ok"] = False
            result["problem"] = result["problem"] or segment["problem"]
    return result


def verify_trail(path):
    """Check the trail at ``path`` (the live file, or its directory) with all its rotated segments and head.

    The first segment follows ``GENESIS`` when there is neither a rotated segment nor a head file
    (a trail never rotated: exactly the old check); otherwise it may start after a record that is
    no longer here (archived elsewhere), which is noted. The head file must name the last record,
    and count the records since the one it counts from.

    Returns ``verify_segments``' dict plus ``trail`` (the live file's path), ``head`` (dict or None)
    and ``notes`` (list of strings about the trail as a whole).
    """
    trail = os.path.join(path, DEFAULT_TRAIL) if os.path.isdir(path) else path
    root = os.path.dirname(trail) or "."
    paths = segment_paths(trail)
    notes, problems = [], []
    try:
        head = read_head(trail)
    except (ValueError, IOError, OSError) as exc:
        head = None
        problems.append(str(exc))
    rotated = paths[:-1] if paths and paths[-1] == trail else paths
    start = GENESIS if not rotated and head is None and not problems else None
    watch = {}
    if head is not None:
        watch = dict.fromkeys([head["hash"]] + ([head["since"]] if _is_hash(head.get("since")) else []))
    result = verify_segments(paths, prev=start, root=root, watch=watch)
    if not os.path.isfile(trail) and paths:
        notes.append("no live file %s (rotated, not yet written to)" % os.path.basename(trail))
    if head is None and rotated and not problems:
        notes.append("no head file %s" % os.path.basename(head_path(trail)))
    if head is not None and result["ok"] and result["complete"]:
        found_problems, found_notes = _check_head(trail, head, result, watch)
        problems.extend(found_problems)
        notes.extend(found_notes)
    if problems:
        result["ok"] = False
        result["problem"] = result["problem"] or problems[0]
    result.update(trail=trail, head=head, notes=notes, problems=problems)
    return result


def _check_head(trail, head, result, watch):
    """(problems, notes) of the head file against the verified segments."""
    name = os.path.basename(head_path(trail))
    if head.get("trail") not in (None, os.path.basename(trail)):
        return ["%s belongs to the trail %s, not %s" % (name, head.get("trail"), os.path.basename(trail))], []
    position = watch.get(head["hash"])
    if head["hash"] == result["last_hash"]:
        pass
    elif position is not None:
        return ["%s names record %d of %d (%s...): the records after it were written without updating the "
                "head (an interrupted append?)" % (name, position, result["records"], head["hash"][:12])], []
    else:
        return ["the trail ends before the record %s names (%s...): records were removed from the end"
                % (name, head["hash"][:12])], []
    since, count = head.get("since"), head.get("count")
    if not isinstance(count, int) or not _is_hash(since):
        return [], []
    if since == GENESIS and result["first_prev"] != GENESIS:
        return [], ["%s counts %d records since GENESIS; %d are here, the older ones are in segments not "
                    "present here" % (name, count, result["records"])]
    if since == GENESIS:
        found = position
    elif watch.get(since) is not None:
        found = position - watch[since]
    else:
        return [], []  # counts from a record not present here
    if found != count:
        return ["%s counts %d records up to its record, the segments here hold %d" % (name, count, found)], []
    return [], []
