# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small file helpers shared by the clinicops modules: atomic writes and reads that tolerate absence.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import tempfile


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def read_json(path):
    text = read_text(path)
    return None if text is None else json.loads(text)


def write_atomic(path, text, mode=0o644, sync_directory=False, owner=None):
    """Write to a temporary file in the same directory, fsync, then rename over ``path``.

    A reader sees the old content or the new one, never a partial file. With ``sync_directory`` the
    directory is fsynced after the rename too, so the new name itself survives a power loss (where the
    file system allows opening a directory). ``owner`` (uid, gid) is set on the temporary file, before
    the rename: the file never appears with another owner. The temporary file is removed on any
    interruption.
    """
    directory = os.path.dirname(path) or "."
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        if owner is not None:
            os.chown(temp, owner[0], owner[1])
        os.chmod(temp, mode)
        os.rename(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    if sync_directory:
        fsync_directory(directory, ignore_errors=True)


def fsync_directory(directory, ignore_errors=False):
    """Make the names in ``directory`` durable (a rename, a new or removed file).

    With ``ignore_errors``, a file system that does not let a directory be opened or synced is
    accepted (the write itself is already durable).
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        if ignore_errors:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not ignore_errors:
            raise
    finally:
        os.close(fd)


def remove(path):
    """Remove ``path``; True if it existed."""
    try:
        os.unlink(path)
        return True
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise
