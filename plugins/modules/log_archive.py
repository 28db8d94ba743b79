#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: log_archive
short_description: Archive rotated logs into a dated, compressed archive and prune it by age and size, safely
version_added: 0.1.0
description:
  - Runs after logrotate has rotated the logs of one directory (O(path)). Takes the rotated files
    (O(patterns), never the live C(*.log)) that have been left unmodified for O(min_age) seconds,
    compresses them (O(compress)) into O(archive_dir) under C(YYYY/MM/<name>), the year and month of
    the file's modification time in UTC, and removes the rotated file. Files that are already
    compressed (C(.gz), C(.zst), C(.xz), C(.bz2)) are moved, not compressed again.
  - No data is ever lost. Compression writes a temporary file in the destination directory, fsyncs
    it, decompresses it again and compares its length and SHA-256 with the source; only then is it
    given its final name (never over an existing file; a name logrotate reused, such as
    C(app.log.1), gets the file's UTC time added), the directory is fsynced, and the source removed.
    A source written to meanwhile is left in place and reported in RV(skipped).
  - A file that any process still has open (found in the C(/proc/<pid>/fd) links) is never moved,
    compressed nor pruned; it is reported in RV(skipped_open). If C(/proc) or the open files of a
    process cannot be read, the task fails before anything is changed rather than guess.
  - Files matching O(protect) (for example audit logs that must be kept) are never moved nor pruned.
  - Pruning, in this order. Rotated and archived files older than O(max_age_days) are removed
    (a rotated file that old is removed without being compressed first). Then, while the archive
    is larger than O(max_total_size), its oldest files (by modification time) are removed.
  - Symbolic links are never followed. Rotated files that are links, and names with a newline or
    C(..), are left alone and reported in RV(skipped). System directories (C(/), C(/etc), C(/usr),
    C(/var), ...) and relative paths are refused as O(path) or O(archive_dir).
  - Only the files directly in O(path) are looked at, not those of its subdirectories (loop over the
    directories, for example C(/var/log/nginx) and C(/var/log/postgresql)).
author:
  - clinicops project (!UNKNOWN)
extends_documentation_fragment:
  - clinicops.runbook.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports what would be compressed, moved and pruned, and changes nothing. The size of a file that
        would be compressed is not known before it is; it is counted uncompressed in RV(total_bytes_after)
        and in the size pruning, so check mode may predict more pruning by size than a real run does.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Once the rotated files are archived and the archive pruned, a second run finds nothing to do
        (unless time has made more files old enough).
options:
  path:
    description:
      - The directory of the rotated logs, an absolute path (for example C(/var/log/clinic-app)).
    type: path
    required: true
  patterns:
    description:
      - Globs of the names of rotated files to archive (C(fnmatch), case-sensitive, on the file name).
      - A pattern that would match a live log such as C(app.log) is refused.
    type: list
    elements: str
    default: ["*.log.*", "*.log-*"]
  archive_dir:
    description:
      - Where archived files go, as C(<archive_dir>/YYYY/MM/<name>). Default C(<path>/archive).
      - It must not be O(path) or one of its parents.
    type: path
  compress:
    description:
      - V(auto) is V(zstd) when a C(zstd) program is on the host's PATH, else V(gzip) (done in Python).
      - V(none) moves files without compressing them.
    type: str
    choices: [auto, zstd, gzip, none]
    default: auto
  max_age_days:
    description:
      - Rotated and archived files modified more than this many days ago are removed. V(0) never
        removes a file for its age.
    type: int
    default: 0
  max_total_size:
    description:
      - The largest size of the archive (all its archived files) as bytes or with a unit, V(500M),
        V(2G) (powers of 1024; K, M, G, T). The oldest files are removed until it fits. V(0) sets no limit.
      - Protected and open files count in the size but are never removed, so the archive may stay larger.
    type: str
    default: "0"
  protect:
    description:
      - Globs of file names never moved nor pruned, such as V(audit*). An archived name is also matched
        without its compression suffix.
    type: list
    elements: str
    default: []
  min_age:
    description:
      - Seconds a rotated file must have been left unmodified before it is touched.
    type: int
    default: 60
  checksums:
    description:
      - Write the SHA-256 of each file archived by this run next to it (C(<file>.sha256), in the
        C(sha256sum) format) and return them in RV(checksums).
    type: bool
    default: false
requirements:
  - the C(zstd) program for O(compress=zstd) (Debian's C(zstd) package)
  - root (C(become=true)), to read the open files of every process
notes:
  - A rotated file some process holds open (a daemon that was not told to reopen its log) is skipped
    every run until the process lets go of it.
seealso:
  - name: logrotate
    description: What rotates the logs before this module archives them.
    link: https://manpages.debian.org/bookworm/logrotate/logrotate.8.en.html
"""

EXAMPLES = r"""
- name: Archive the rotated logs of the clinic app, keep a year, at most 2 GiB, never prune the audit logs
  clinicops.runbook.log_archive:
    path: /var/log/clinic-app
    max_age_days: 365
    max_total_size: 2G
    protect: ["audit*"]
    checksums: true
  become: true
  register: archived

- name: What nginx's archive step would do, without changing anything
  clinicops.runbook.log_archive:
    path: /var/log/nginx
    archive_dir: /srv/log-archive/nginx
    max_age_days: 90
  check_mode: true
  become: true
"""

RETURN = r"""
msg:
  description: One line saying what was (or would be) done.
  returned: always
  type: str
  sample: "log archive of /var/log/clinic-app: compressed 3 file(s); pruned 1 (1 by age, 0 by size); freed 41.2 MiB;
    1 open file(s) left alone; 2 protected; archive /var/log/clinic-app/archive: 40 file(s), 310.5 MiB"
path:
  description: The directory of rotated logs, normalised.
  returned: always
  type: str
  sample: /var/log/clinic-app
archive_dir:
  description: The archive directory.
  returned: always
  type: str
  sample: /var/log/clinic-app/archive
compression:
  description: The compression used (V(zstd), V(gzip) or V(none)).
  returned: always
  type: str
  sample: zstd
compressed:
  description: The files compressed into the archive (in check mode, that would be).
  returned: always
  type: list
  elements: dict
  contains:
    src:
      description: The rotated file, removed once its archived copy was proven.
      type: str
      sample: /var/log/clinic-app/app.log.1
    dest:
      description: The archived file.
      type: str
      sample: /var/log/clinic-app/archive/2026/01/app.log.1.zst
    bytes_before:
      description: The size of the rotated file.
      type: int
      sample: 10485760
    bytes_after:
      description: The size of the archived file; null in check mode.
      type: int
      sample: 1048576
moved:
  description: Already compressed files moved into the archive (C(src), C(dest), C(bytes)).
  returned: always
  type: list
  elements: dict
  sample: [{"src": "/var/log/clinic-app/app.log.2.gz", "dest": "/var/log/clinic-app/archive/2026/01/app.log.2.gz",
            "bytes": 2048}]
pruned:
  description: The files removed (C(path), C(bytes), C(reason) V(age) or V(size)), oldest first per reason.
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/var/log/clinic-app/archive/2025/01/app.log.1.zst", "bytes": 1048576, "reason": "age"}]
kept:
  description: How many archived files there are after the run.
  returned: always
  type: int
  sample: 40
skipped_open:
  description: Rotated (or archived, old enough to prune) files left alone because a process has them open.
  returned: always
  type: list
  elements: str
  sample: [/var/log/clinic-app/app.log.1]
skipped:
  description: Rotated files left alone for another reason (C(path), C(reason)).
  returned: always
  type: list
  elements: dict
  sample: [{"path": "/var/log/clinic-app/app.log.1", "reason": "modified 12 s ago (min_age 60 s)"}]
protected:
  description: How many rotated and archived files matched O(protect).
  returned: always
  type: int
  sample: 2
bytes_freed:
  description: Bytes of the pruned files plus what compression saved (in check mode, the pruned files only).
  returned: always
  type: int
  sample: 52428800
total_bytes_after:
  description: The size of the archive after the run (in check mode an estimate, see the check mode attribute).
  returned: always
  type: int
  sample: 325582848
checksums:
  description: The SHA-256 of each file archived by this run, by its path (empty in check mode).
  returned: when O(checksums=true)
  type: dict
  sample:
    /var/log/clinic-app/archive/2026/01/app.log.1.zst: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_archive import (
    DEFAULT_PATTERNS,
    LogArchiveError,
    check_options,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_archive_files import (
    archive_logs,
    zstd_program,
)


def argument_spec():
    return dict(
        path=dict(type="path", required=True),
        patterns=dict(type="list", elements="str", default=list(DEFAULT_PATTERNS)),
        archive_dir=dict(type="path"),
        compress=dict(type="str", choices=["auto", "zstd", "gzip", "none"], default="auto"),
        max_age_days=dict(type="int", default=0),
        max_total_size=dict(type="str", default="0"),
        protect=dict(type="list", elements="str", default=[]),
        min_age=dict(type="int", default=60),
        checksums=dict(type="bool", default=False),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    path = module.params["path"]
    try:
        options = check_options(module.params, zstd_available=zstd_program() is not None)
        report = archive_logs(options, module.check_mode)
    except LogArchiveError as exc:
        report = getattr(exc, "report", None)
        if report is None:
            module.fail_json(msg="log archive of %s refused: %s" % (path, exc))
        done = report.pop("msg")
        module.fail_json(
            msg="log archive of %s failed: %s; a rotated file is removed only once its archived copy is proven, "
            "so none was lost; done before the failure: %s" % (path, exc, done),
            **report,
        )
    module.exit_json(**report)


if __name__ == "__main__":
    main()
