# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options of every module that opens a clinic's backup repository; their argument spec is
    # restic_repo.repository_argument_spec().
    DOCUMENTATION = r"""
options:
  repository:
    description: The clinic's restic repository (a path, or C(sftp:<user>@<host>:<path>)).
    type: str
    required: true
  password_file:
    description: Root-only file holding the repository password (written by the backup role from a vault variable).
    type: path
    required: true
  cache_dir:
    description: restic cache directory.
    type: path
    default: /var/cache/clinicops/restic
"""
