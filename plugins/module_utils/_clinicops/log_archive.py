# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions of the log_archive module: what is archived, where it goes, what is pruned and why.

Nothing here touches the filesystem. The module lists the directory of rotated logs and the archive
with ``lstat``, turns each entry into a ``LogFile`` record, and these functions decide which files
are taken (pattern, protection, age, open by a process, unsafe name), the dated place of each one
in the archive (``YYYY/MM/<name>`` from its modification time in UTC, never over another file), and
which archived files are pruned (older than ``max_age_days``, then the oldest first until the
archive fits in ``max_total_size``), so every decision is testable with plain data.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath
import re
from collections import namedtuple
from datetime import datetime, timezone
from fnmatch import fnmatchcase

NOTHING_CHANGED = "nothing was changed"
DEFAULT_PATTERNS = ["*.log.*", "*.log-*"]
# Directories whose own files are the system, not logs: refused as ``path`` and as ``archive_dir``.
SYSTEM_ROOTS = frozenset(
    [
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
    ]
)
# Names a pattern must not match: a pattern that takes them would take the live log being written.
LIVE_LOG_EXAMPLES = ("app.log", "access.log", "clinic-app.log")
COMPRESSED_SUFFIXES = (".gz", ".zst", ".xz", ".bz2")
COMPRESSION_SUFFIX = {"zstd": ".zst", "gzip": ".gz", "none": ""}
CHECKSUM_SUFFIX = ".sha256"
TEMP_PREFIX = ".log_archive."  # temporary files of an unfinished write start with this (never counted)
SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)(i?b)?\s*", re.IGNORECASE)
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
DAY = 86400

# One regular file as lstat saw it: ``path`` absolute, ``name`` its base name (or its path under the archive).
LogFile = namedtuple("LogFile", "path name size mtime")
# What to do with the rotated files of ``path``.
Selection = namedtuple("Selection", "take protected skipped_open skipped")
# A file to remove: ``reason`` is ``age`` or ``size``.
Prune = namedtuple("Prune", "file reason")


class LogArchiveError(Exception):
    """A request refused, or archiving stopped; the message says why and what was (not) changed."""


# -- options ---------------------------------------------------------------------------------------


def parse_size(value, option="max_total_size"):
    """``"500M"`` -> 524288000 bytes (units are powers of 1024; ``0`` means no limit)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        number, unit = value, ""
    else:
        match = SIZE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise LogArchiveError(
                "%s: %r is not a size such as 500M, 2G or 1048576 (bytes); %s" % (option, value, NOTHING_CHANGED)
            )
        number, unit = float(match.group(1)), match.group(2).lower()
    if number < 0:
        raise LogArchiveError("%s: %r is negative; %s" % (option, value, NOTHING_CHANGED))
    return int(number * SIZE_UNITS[unit])


def format_size(size):
    """1536 -> ``"1.5 KiB"``: sizes in messages."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (size, unit)
        size /= 1024.0
    return "%d B" % size  # not reached


def check_directory(path, option):
    """The normalised absolute directory ``path``; refuses a relative path, ``..`` and the system roots."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise LogArchiveError("%s: %r is not an absolute path; %s" % (option, path, NOTHING_CHANGED))
    if "\n" in path or ".." in path.split("/"):
        raise LogArchiveError("%s: %r contains '..' or a newline; %s" % (option, path, NOTHING_CHANGED))
    normal = posixpath.normpath(path)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    if normal in SYSTEM_ROOTS:
        raise LogArchiveError(
            "%s: %s is a system directory, not a directory of rotated logs (give one such as /var/log or "
            "/var/log/nginx); %s" % (option, normal, NOTHING_CHANGED)
        )
    return normal


def check_patterns(patterns, option):
    """Glob patterns of base names; refuses empty ones, ones with ``/``, and (for ``patterns``) live logs."""
    if option == "patterns" and not patterns:
        raise LogArchiveError("patterns: empty; give the globs of rotated files such as '*.log.*'; " + NOTHING_CHANGED)
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern or "/" in pattern:
            raise LogArchiveError(
                "%s: %r is not a glob of file names (no '/', not empty); %s" % (option, pattern, NOTHING_CHANGED)
            )
        if option == "patterns":
            live = [name for name in LIVE_LOG_EXAMPLES if fnmatchcase(name, pattern)]
            if live:
                raise LogArchiveError(
                    "patterns: %r also matches live logs such as %s, which are still being written; "
                    "give the globs of rotated files only ('*.log.*', '*.log-*'); %s"
                    % (pattern, live[0], NOTHING_CHANGED)
                )
    return list(patterns)


def choose_compression(requested, zstd_available):
    """``auto`` is zstd when its program is there, else gzip; zstd without its program is refused."""
    if requested == "auto":
        return "zstd" if zstd_available else "gzip"
    if requested == "zstd" and not zstd_available:
        raise LogArchiveError(
            "compress: zstd was asked for but no zstd program is on the PATH of the host (install the zstd "
            "package, or use compress=gzip); %s" % NOTHING_CHANGED
        )
    return requested


# -- names -----------------------------------------------------------------------------------------


def unsafe_name(name):
    """Why a file name is never handled, or None: newlines (they break every listing) and ``..``."""
    if "\n" in name or "\r" in name:
        return "name contains a newline"
    if ".." in name:
        return "name contains '..'"
    return None


def matches(name, patterns):
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def is_compressed(name):
    return name.endswith(COMPRESSED_SUFFIXES)


def plain_name(name):
    """The name without a compression suffix (``app.log.2.gz`` -> ``app.log.2``), so protection sees both."""
    for suffix in COMPRESSED_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_protected(name, protect):
    base = posixpath.basename(name)
    return matches(base, protect) or matches(plain_name(base), protect)


def month_dir(mtime):
    """``YYYY/MM`` of a modification time, in UTC."""
    return datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y/%m")


def archived_name(name, method):
    """The name in the archive: compressed files keep theirs, the others get the suffix of ``method``."""
    return name if is_compressed(name) else name + COMPRESSION_SUFFIX[method]


def dated_destination(name, mtime, method, taken):
    """``YYYY/MM/<name>[.zst]`` relative to the archive, never one in ``taken`` (added to it).

    logrotate reuses names (``app.log.1`` is another file every day), so a name already in the month
    gets the file's UTC modification time, then a counter: an archived file is never overwritten.
    """
    folder = month_dir(mtime)
    target = archived_name(name, method)
    stem, suffix = plain_name(target), target[len(plain_name(target)) :]
    stamp = datetime.fromtimestamp(mtime, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    candidates = [target, "%s-%s%s" % (stem, stamp, suffix)]
    counter = 2
    while True:
        for candidate in candidates:
            relative = posixpath.join(folder, candidate)
            if relative not in taken:
                taken.add(relative)
                return relative
        candidates = ["%s-%s-%d%s" % (stem, stamp, counter, suffix)]
        counter += 1


def is_bookkeeping(name):
    """Files of the archive that are not archived logs: checksum side files and unfinished temporary files."""
    return name.endswith(CHECKSUM_SUFFIX) or posixpath.basename(name).startswith(TEMP_PREFIX)


# -- planning ----------------------------------------------------------------------------------------


def select_rotated(entries, patterns, protect, now, min_age, open_paths):
    """Sort the regular files of ``path`` (``LogFile`` records) into what is taken and what is left, and why.

    Files matching no pattern are not looked at. ``skipped`` holds ``{"path", "reason"}`` for unsafe
    names and files modified less than ``min_age`` seconds ago; ``skipped_open`` the paths some process
    has open; ``protected`` the files matching ``protect`` (never moved).
    """
    take, protected, skipped_open, skipped = [], [], [], []
    for entry in sorted(entries, key=lambda item: item.name):
        if not matches(entry.name, patterns):
            continue
        reason = unsafe_name(entry.name)
        if reason:
            skipped.append({"path": entry.path, "reason": reason})
        elif is_protected(entry.name, protect):
            protected.append(entry)
        elif entry.path in open_paths:
            skipped_open.append(entry.path)
        elif now - entry.mtime < min_age:
            skipped.append(
                {
                    "path": entry.path,
                    "reason": "modified %d s ago (min_age %d s)" % (max(now - entry.mtime, 0), min_age),
                }
            )
        else:
            take.append(entry)
    return Selection(take, protected, skipped_open, skipped)


def plan_age_prune(files, now, max_age_days, protect, open_paths):
    """The files older than ``max_age_days`` (0: none), not protected nor open, as ``Prune(file, "age")``."""
    if not max_age_days:
        return []
    limit = now - max_age_days * DAY
    old = [item for item in files if item.mtime < limit and not is_protected(item.name, protect)]
    return [Prune(item, "age") for item in sorted(old, key=oldest_first) if item.path not in open_paths]


def plan_size_prune(files, max_total_size, protect, open_paths):
    """The oldest files first until the total is at most ``max_total_size`` (0: no limit): (prunes, total after).

    Protected and open files count in the total but are never pruned, so the total may stay above the
    limit; the caller says so.
    """
    total = sum(item.size for item in files)
    if not max_total_size or total <= max_total_size:
        return [], total
    prunes = []
    for item in sorted(files, key=oldest_first):
        if total <= max_total_size:
            break
        if is_protected(item.name, protect) or item.path in open_paths:
            continue
        prunes.append(Prune(item, "size"))
        total -= item.size
    return prunes, total


def oldest_first(item):
    return (item.mtime, item.path)


def summary(report, check_mode):
    """The one-line ``msg`` of a run from its report."""
    would = "would have " if check_mode else ""
    parts = []
    if report["compressed"]:
        parts.append("%scompressed %d file(s)" % (would, len(report["compressed"])))
    if report["moved"]:
        parts.append("%smoved %d already compressed file(s)" % (would, len(report["moved"])))
    if report["pruned"]:
        reasons = [item["reason"] for item in report["pruned"]]
        parts.append(
            "%spruned %d (%d by age, %d by size)" % (would, len(reasons), reasons.count("age"), reasons.count("size"))
        )
    if not parts:
        parts.append("nothing to archive or prune")
    if report["bytes_freed"]:
        parts.append("%sfreed %s" % (would, format_size(report["bytes_freed"])))
    if report["skipped_open"]:
        parts.append("%d open file(s) left alone" % len(report["skipped_open"]))
    if report["skipped"]:
        parts.append("%d skipped" % len(report["skipped"]))
    if report["protected"]:
        parts.append("%d protected" % report["protected"])
    parts.append(
        "archive %s: %d file(s), %s" % (report["archive_dir"], report["kept"], format_size(report["total_bytes_after"]))
    )
    return "log archive of %s: %s" % (report["path"], "; ".join(parts))


Options = namedtuple(
    "Options", "path archive_dir patterns protect compress max_age_days max_total_size min_age checksums"
)


def check_options(params, zstd_available):
    """The module's parameters checked and normalised into ``Options``; refuses bad input before any change."""
    path = check_directory(params["path"], "path")
    archive_dir = check_directory(params.get("archive_dir") or posixpath.join(path, "archive"), "archive_dir")
    if archive_dir == path or path.startswith(archive_dir + "/"):
        raise LogArchiveError(
            "archive_dir: %s is %s itself or one of its parents; archived files would be taken for rotated ones "
            "(give a directory such as %s/archive); %s" % (archive_dir, path, path, NOTHING_CHANGED)
        )
    for option in ("max_age_days", "min_age"):
        if params[option] < 0:
            raise LogArchiveError("%s: %d is negative; %s" % (option, params[option], NOTHING_CHANGED))
    return Options(
        path=path,
        archive_dir=archive_dir,
        patterns=check_patterns(params["patterns"], "patterns"),
        protect=check_patterns(params["protect"], "protect"),
        compress=choose_compression(params["compress"], zstd_available),
        max_age_days=params["max_age_days"],
        max_total_size=parse_size(params["max_total_size"]),
        min_age=params["min_age"],
        checksums=params["checksums"],
    )
