# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL driver on the clinic host: psycopg (3) when present, else psycopg2.

Both take libpq keyword arguments in ``connect(**params)`` and share the cursor API clinicops
uses. ``pg_driver`` is None (and ``PSYCOPG_IMPORT_ERROR`` says why) when neither is installed.
Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Imported to be re-exported: health_probes and backup_sources take the driver from here.
PSYCOPG_IMPORT_ERROR = None
try:
    import psycopg as pg_driver  # pylint: disable=unused-import
except ImportError:
    try:
        import psycopg2 as pg_driver  # pylint: disable=unused-import
    except ImportError as exc:
        pg_driver = None
        PSYCOPG_IMPORT_ERROR = exc


def quote_ident(name):
    """A PostgreSQL identifier double-quoted for SQL (embedded quotes doubled); a NUL byte is refused.

    The one quoting of names clinicops splices into SQL (table, schema, database and index names
    read from the catalogs or checked by the caller); values always go as query parameters.
    """
    if "\x00" in name:
        raise ValueError("refusing the name %r: it holds a NUL byte" % name)
    return '"%s"' % name.replace('"', '""')
