# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File operations of the log_archive module: listing, open-file scan, verified compression, moves, pruning.

``archive_logs`` runs one whole archive step on a directory of rotated logs with the decisions of
``log_archive`` and returns the report the module returns. Check mode goes through the same code;
only the mutations sit behind ``if not check_mode``.

A source file is removed only once its archived copy is durable and proven: compression writes a
temporary file in the destination directory, fsyncs it, decompresses it again and compares length
and SHA-256 with the source, then links it under its final name (never over an existing file),
fsyncs the directory, and only then unlinks the source. A source that changed meanwhile is left in
place. Symbolic links are never followed (``O_NOFOLLOW``, ``lstat``, ``os.walk`` without links).

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import time

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.atomic_files import (
    fsync_directory,
    write_atomic,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_archive import (
    CHECKSUM_SUFFIX,
    NOTHING_CHANGED,
    TEMP_PREFIX,
    LogArchiveError,
    LogFile,
    check_directory,
    dated_destination,
    is_bookkeeping,
    is_compressed,
    is_protected,
    matches,
    plan_age_prune,
    plan_size_prune,
    select_rotated,
    summary,
)

CHUNK = 1024 * 1024
PROC = "/proc"  # where the processes' open files are read (the unit tests point it at a view of their own)
DELETED = " (deleted)"


class SourceChangedError(Exception):
    """The source was written to while it was being archived: it is left where it is."""


# -- reading the filesystem --------------------------------------------------------------------------


def list_rotated(directory):
    """(regular files of ``directory`` as ``LogFile``, names of its symbolic links); not recursive."""
    files, links = [], []
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        raise LogArchiveError("path: cannot list %s: %s; %s" % (directory, exc.strerror, NOTHING_CHANGED)) from exc
    for entry in entries:
        if entry.is_symlink():
            links.append(entry.name)
        elif entry.is_file(follow_symlinks=False):
            info = entry.stat(follow_symlinks=False)
            files.append(LogFile(entry.path, entry.name, info.st_size, info.st_mtime))
    return files, links


def list_archive(archive_dir):
    """The archived files under ``archive_dir`` (``name`` relative to it), without side files; [] when absent."""
    if os.path.islink(archive_dir):
        raise LogArchiveError(
            "archive_dir: %s is a symbolic link; links are never followed; %s" % (archive_dir, NOTHING_CHANGED)
        )
    found = []
    for folder, _dirs, names in os.walk(archive_dir):  # followlinks=False: a linked directory is not entered
        for name in names:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and not is_bookkeeping(name):
                found.append(LogFile(path, os.path.relpath(path, archive_dir), info.st_size, info.st_mtime))
    return found


def open_paths(roots, proc_root=None):
    """Paths under ``roots`` that some process has open, from the ``/proc/<pid>/fd`` links.

    Refuses to guess: if the process list or one process's descriptors cannot be read, archiving
    stops before anything is touched.
    """
    proc_root = proc_root or PROC
    prefixes = tuple(root.rstrip("/") + "/" for root in roots)
    try:
        pids = [name for name in os.listdir(proc_root) if name.isdigit()]
    except OSError as exc:
        raise LogArchiveError(
            "cannot list the processes in %s (%s), so files still open by a process cannot be told apart; "
            "%s" % (proc_root, exc.strerror, NOTHING_CHANGED)
        ) from exc
    if not pids:
        raise LogArchiveError(
            "%s lists no process (is procfs mounted?), so files still open by a process cannot be told apart; "
            "%s" % (proc_root, NOTHING_CHANGED)
        )
    found = set()
    for pid in pids:
        fd_dir = os.path.join(proc_root, pid, "fd")
        try:
            for descriptor in os.listdir(fd_dir):
                target = read_link(os.path.join(fd_dir, descriptor))
                if target is not None and target.startswith(prefixes):
                    found.add(target)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ESRCH):
                continue  # the process ended meanwhile
            raise LogArchiveError(
                "cannot read the open files of process %s (%s) in %s: %s; reading them needs root with "
                "CAP_SYS_PTRACE (become: true; a container needs --cap-add SYS_PTRACE), and no file is touched "
                "without knowing whether it is open; %s"
                % (pid, process_name(proc_root, pid), fd_dir, exc.strerror, NOTHING_CHANGED)
            ) from exc
    return found


def read_link(path):
    """Where a descriptor link points (without `` (deleted)``); None when it was closed meanwhile."""
    try:
        target = os.readlink(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return target[: -len(DELETED)] if target.endswith(DELETED) else target


def process_name(proc_root, pid):
    try:
        with open(os.path.join(proc_root, pid, "comm")) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return "?"


# -- writing -----------------------------------------------------------------------------------------


def make_directories(root, relative):
    """Create ``root/relative`` level by level; a level that is a symbolic link or not a directory is refused."""
    path = root
    for part in [root, *relative.split("/")]:
        path = part if part == root else os.path.join(path, part)
        try:
            os.mkdir(path, 0o750)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            raise LogArchiveError("%s is not a directory (or is a symbolic link, never followed)" % path)
    return path


def file_identity(info):
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def zstd_program():
    return shutil.which("zstd")


def compress_into(source, handle, method):
    """Write ``source`` (an open binary file) compressed to ``handle``: (sha256 of the source, its length)."""
    digest, length = hashlib.sha256(), 0
    if method == "gzip":
        with gzip.GzipFile(filename="", mode="wb", fileobj=handle, compresslevel=6, mtime=0) as packed:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                digest.update(chunk)
                length += len(chunk)
                packed.write(chunk)
        return digest.hexdigest(), length
    process = subprocess.Popen([zstd_program(), "-q", "-c", "-3", "-T0"], stdin=subprocess.PIPE, stdout=handle)
    try:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            digest.update(chunk)
            length += len(chunk)
            process.stdin.write(chunk)
    finally:
        process.stdin.close()
        code = process.wait()
    if code:
        raise LogArchiveError("zstd exited %d while compressing %s" % (code, source.name))
    return digest.hexdigest(), length


def decompressed_digest(path, method):
    """(sha256, length) of what ``path`` decompresses to: the proof that the compressed copy is whole."""
    digest, length = hashlib.sha256(), 0
    if method == "gzip":
        with gzip.open(path, "rb") as unpacked:
            for chunk in iter(lambda: unpacked.read(CHUNK), b""):
                digest.update(chunk)
                length += len(chunk)
        return digest.hexdigest(), length
    process = subprocess.Popen([zstd_program(), "-q", "-d", "-c", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for chunk in iter(lambda: process.stdout.read(CHUNK), b""):
        digest.update(chunk)
        length += len(chunk)
    error = process.stderr.read()
    if process.wait():
        raise LogArchiveError("zstd cannot decompress %s again: %s" % (path, error.decode("utf-8", "replace").strip()))
    return digest.hexdigest(), length


def file_digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def open_no_follow(path, flags):
    return os.open(path, flags | os.O_NOFOLLOW)


def archive_file(src, dest, method):
    """Write ``src`` to ``dest`` (compressed with ``method``, or copied for ``none`` and compressed files), proven.

    Returns the size of ``dest``. Raises ``SourceChangedError`` when ``src`` changed meanwhile (nothing kept).
    """
    directory = os.path.dirname(dest)
    with open(src, "rb", opener=open_no_follow) as source:
        before = os.fstat(source.fileno())
        if not stat.S_ISREG(before.st_mode):
            raise SourceChangedError("no longer a regular file")
        temp_fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX + os.path.basename(dest) + ".", dir=directory)
        try:
            with os.fdopen(temp_fd, "wb") as handle:
                if method == "none":
                    expected = copy_with_digest(source, handle)
                else:
                    expected = compress_into(source, handle, method)
                handle.flush()
                os.fsync(handle.fileno())
            written = file_digest(temp) if method == "none" else None
            proof = (written, os.path.getsize(temp)) if method == "none" else decompressed_digest(temp, method)
            if proof != expected:
                raise LogArchiveError(
                    "the archived copy of %s does not match it (%d byte(s), sha256 %s, against %d byte(s), sha256 %s); "
                    "the source is kept" % (src, proof[1], proof[0], expected[1], expected[0])
                )
            if file_identity(os.lstat(src)) != file_identity(before):
                raise SourceChangedError("written to while being archived")
            os.chmod(temp, stat.S_IMODE(before.st_mode))
            if os.geteuid() == 0:
                os.chown(temp, before.st_uid, before.st_gid)
            os.utime(temp, ns=(before.st_atime_ns, before.st_mtime_ns))
            os.link(temp, dest)  # unlike rename, never replaces a file already there
        finally:
            if os.path.lexists(temp):
                os.unlink(temp)
    fsync_directory(directory)
    return os.path.getsize(dest)


def copy_with_digest(source, handle):
    digest, length = hashlib.sha256(), 0
    for chunk in iter(lambda: source.read(CHUNK), b""):
        digest.update(chunk)
        length += len(chunk)
        handle.write(chunk)
    return digest.hexdigest(), length


def move_file(src, dest):
    """Move an already compressed file: a hard link then unlink on one filesystem, else a proven copy."""
    try:
        os.link(src, dest)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        return archive_file(src, dest, "none")
    fsync_directory(os.path.dirname(dest))
    return os.path.getsize(dest)


def remove_source(src):
    os.unlink(src)
    fsync_directory(os.path.dirname(src))


def remove_archived(path):
    os.unlink(path)
    if os.path.lexists(path + CHECKSUM_SUFFIX):
        os.unlink(path + CHECKSUM_SUFFIX)


def write_checksum(dest):
    digest = file_digest(dest)
    write_atomic(dest + CHECKSUM_SUFFIX, "%s  %s\n" % (digest, os.path.basename(dest)), mode=0o640)
    return digest


# -- the whole step ------------------------------------------------------------------------------------


def new_report(options):
    report = {
        "path": options.path,
        "archive_dir": options.archive_dir,
        "compression": options.compress,
        "compressed": [],
        "moved": [],
        "pruned": [],
        "kept": 0,
        "skipped_open": [],
        "skipped": [],
        "protected": 0,
        "bytes_freed": 0,
        "total_bytes_after": 0,
        "changed": False,
    }
    if options.checksums:
        report["checksums"] = {}
    return report


def archive_logs(options, check_mode, proc_root=None, now=None):
    """Archive and prune the rotated logs of ``options.path``; the module's report (what was, or would be, done).

    On a failure after changes began, the ``LogArchiveError`` carries the report so far (``.report``).
    """
    now = time.time() if now is None else now
    for option, directory in (("path", options.path), ("archive_dir", options.archive_dir)):
        if os.path.islink(directory):
            raise LogArchiveError(
                "%s: %s is a symbolic link; links are never followed; %s" % (option, directory, NOTHING_CHANGED)
            )
    if not os.path.isdir(options.path):
        raise LogArchiveError("path: %s is not a directory; %s" % (options.path, NOTHING_CHANGED))
    # The /proc links name files by their real path: compare with the real paths (a parent may be a link).
    options = options._replace(
        path=check_directory(os.path.realpath(options.path), "path"),
        archive_dir=check_directory(os.path.realpath(options.archive_dir), "archive_dir"),
    )
    report = new_report(options)
    rotated, links = list_rotated(options.path)
    archived = list_archive(options.archive_dir)
    busy = open_paths([options.path, options.archive_dir], proc_root)
    selection = select_rotated(rotated, options.patterns, options.protect, now, options.min_age, busy)
    report["skipped"] = selection.skipped + [
        {"path": os.path.join(options.path, name), "reason": "symbolic link (never followed)"}
        for name in sorted(links)
        if matches(name, options.patterns)
    ]
    report["skipped_open"] = list(selection.skipped_open)
    report["protected"] = len(selection.protected)
    try:
        step(options, check_mode, now, selection.take, archived, busy, report)
    except LogArchiveError as exc:
        exc.report = finish(report, check_mode)
        raise
    except OSError as exc:
        error = LogArchiveError(str(exc))
        error.report = finish(report, check_mode)
        raise error from exc
    return finish(report, check_mode)


def step(options, check_mode, now, incoming, archived, busy, report):
    """Prune by age, archive what is left, prune by size: in this order, so no file is compressed only to go."""
    for prune in plan_age_prune(incoming, now, options.max_age_days, options.protect, busy):
        prune_file(prune, check_mode, report, remove_source)
    pruned_now = set(item["path"] for item in report["pruned"])
    young = [item for item in incoming if item.path not in pruned_now]

    archived_open = [item for item in archived if item.path in busy]
    held_open = plan_age_prune(archived_open, now, options.max_age_days, options.protect, set())
    report["skipped_open"] += sorted(prune.file.path for prune in held_open)
    for prune in plan_age_prune(archived, now, options.max_age_days, options.protect, busy):
        prune_file(prune, check_mode, report, remove_archived)
    pruned_now = set(item["path"] for item in report["pruned"])
    remaining = [item for item in archived if item.path not in pruned_now]

    taken = set(item.name for item in remaining)
    for item in young:
        remaining.append(archive_one(options, check_mode, item, taken, report))
    remaining = [item for item in remaining if item is not None]

    prunes, _total = plan_size_prune(remaining, options.max_total_size, options.protect, busy)
    for prune in prunes:
        prune_file(prune, check_mode, report, remove_archived)
    pruned_now = set(item["path"] for item in report["pruned"])
    remaining = [item for item in remaining if item.path not in pruned_now]
    report["kept"] = len(remaining)
    report["total_bytes_after"] = sum(item.size for item in remaining)
    report["protected"] += sum(1 for item in remaining if is_protected(item.name, options.protect))


def prune_file(prune, check_mode, report, remove):
    if not check_mode:
        remove(prune.file.path)
    report["pruned"].append({"path": prune.file.path, "bytes": prune.file.size, "reason": prune.reason})
    report["bytes_freed"] += prune.file.size


def archive_one(options, check_mode, item, taken, report):
    """Compress or move one rotated file into the dated archive; its ``LogFile`` there (None if left in place)."""
    method = "none" if is_compressed(item.name) else options.compress
    relative = dated_destination(item.name, item.mtime, method, taken)
    dest = os.path.join(options.archive_dir, relative)
    size = item.size
    if not check_mode:
        make_directories(options.archive_dir, os.path.dirname(relative))
        while os.path.lexists(dest):  # a file the listing did not see (a temporary name, a link): never replaced
            relative = dated_destination(item.name, item.mtime, method, taken)
            dest = os.path.join(options.archive_dir, relative)
        try:
            size = move_file(item.path, dest) if is_compressed(item.name) else archive_file(item.path, dest, method)
        except SourceChangedError as exc:
            report["skipped"].append({"path": item.path, "reason": "%s; left in place" % exc})
            return None
        if options.checksums:
            report["checksums"][dest] = write_checksum(dest)
        remove_source(item.path)
    if is_compressed(item.name):
        report["moved"].append({"src": item.path, "dest": dest, "bytes": item.size})
    else:
        after = None if check_mode else size
        report["compressed"].append({"src": item.path, "dest": dest, "bytes_before": item.size, "bytes_after": after})
        if after is not None:
            report["bytes_freed"] += item.size - after
    return LogFile(dest, relative, size, item.mtime)


def finish(report, check_mode):
    report["changed"] = bool(report["compressed"] or report["moved"] or report["pruned"])
    report["msg"] = summary(report, check_mode)
    return report
