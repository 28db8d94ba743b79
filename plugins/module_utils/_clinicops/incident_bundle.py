# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pieces of a diagnostics bundle that need no clinic: bounded file tails and the archive.

Every item of a bundle is held in memory (each bounded), redacted there, and only then written into
the archive, so no unredacted copy ever touches the disk. The archive is written to a temporary
name in its directory (root-only) and renamed into place: a reader sees no archive or a whole one.
Pure Python, no Ansible imports; private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import re
import tarfile
import tempfile
import time

# What a bundle item may hold at most: a runaway journal or log never fills the clinic's disk.
MAX_ITEM_BYTES = 8 * 1024 * 1024
TAIL_CHUNK = 65536
# Archive names: an incident id (INC-20261126-101500-kinshasa) or another plain name.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def tail_lines(path, lines, max_bytes=MAX_ITEM_BYTES):
    """The last ``lines`` lines of the file at ``path`` as bytes (at most ``max_bytes``), read from its end."""
    if lines <= 0:
        return b""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        start = end
        data = b""
        # lines + 1 newlines: the text after the (lines+1)-th newline from the end is the tail
        while start > 0 and data.count(b"\n") <= lines and len(data) < max_bytes:
            start = max(0, start - TAIL_CHUNK)
            handle.seek(start)
            data = handle.read(end - start)
    kept = data.split(b"\n")
    trailing = data.endswith(b"\n")
    if trailing:
        kept = kept[:-1]
    text = b"\n".join(kept[-lines:]) + (b"\n" if trailing else b"")
    return text[-max_bytes:]


def bounded(data, max_bytes=MAX_ITEM_BYTES):
    """``data`` cut to its last ``max_bytes`` bytes, saying so at the top."""
    if len(data) <= max_bytes:
        return data
    return b"[clinicops: cut to the last %d bytes]\n" % max_bytes + data[-max_bytes:]


def check_name(name):
    if not SAFE_NAME.match(name or ""):
        raise ValueError("bundle name %r: use letters, digits, '.', '_' or '-' (at most 128)" % name)
    return name


def write_archive(directory, name, items, mode=0o600):
    """Write ``<directory>/<name>.tar.gz`` holding ``items`` (a list of (member name, bytes)) under ``<name>/``.

    Written to a temporary file in ``directory`` and renamed into place. Returns the archive's path.
    """
    check_name(name)
    target = os.path.join(directory, name + ".tar.gz")
    fd, temp = tempfile.mkstemp(prefix="." + name + ".", suffix=".partial", dir=directory)
    now = time.time()
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as archive:
                for member, data in items:
                    info = tarfile.TarInfo("%s/%s" % (name, member))
                    info.size = len(data)
                    info.mtime = now
                    info.mode = 0o600
                    archive.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.rename(temp, target)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return target
