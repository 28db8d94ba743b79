# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets taken out of text before it leaves a clinic (diagnostics bundles).

Two layers, applied in this order:

1. the clinic's own secrets, known by value (database, repository and Redis passwords, given to
   the module with ``no_log``): every occurrence, and its URL-encoded form, is masked wherever it
   appears, whatever surrounds it;
2. generic shapes that carry a secret whatever its value: ``password=...``, ``PGPASSWORD=...``,
   ``token: ...``, ``"secret": "..."``, ``Authorization:`` headers, ``PASSWORD '...'`` in SQL and
   the credentials of connection URLs (``postgres://user:pass@host``).

The known values go first so that a secret is masked even where no generic shape names it (a
password echoed in a log line). Pure Python, no Ansible imports; private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported on clinic hosts
    quote = None

MASK = "********"
# Shorter known secrets are refused by the caller: masking "abc" everywhere would shred the text and
# still leave a guessable secret.
MIN_SECRET_LENGTH = 6

# Names that hold a secret in key=value, key: value and JSON forms (PGPASSWORD, db_password,
# api_key, access_token, client_secret, ...). Not "pwd": sudo logs PWD=<working directory> on every line.
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*(?:passw(?:or)?d|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[A-Za-z0-9_.-]*"
)

GENERIC_PATTERNS = (
    # scheme://user:password@host -> scheme://user:********@host
    ("url_credentials", re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)"), r"\1" + MASK + r"\3"),
    # Authorization: Bearer abc / Proxy-Authorization: Basic abc
    (
        "authorization_header",
        re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|token|digest|negotiate)\s+)?)([^\s,;'\"]+)"),
        r"\1" + MASK,
    ),
    # ALTER ROLE x PASSWORD 'abc' (a query text in pg_stat_activity)
    ("sql_literal", re.compile(r"(?i)(\bpassword\s+)'(?:[^']|'')*'"), r"\1'" + MASK + "'"),
    # password=abc, PGPASSWORD=abc, token: abc, "secret": "abc", secret='abc'
    (
        "named_value",
        re.compile(r"(?i)\b(" + _SECRET_NAME + r")([\"']?\s*[:=]\s*[\"']?)(?!\*{8})([^\s\"'&,;]+)"),
        r"\1\2" + MASK,
    ),
)


def usable_secrets(secrets):
    """The known secrets worth masking (non-empty strings), longest first, and those too short to mask.

    Longest first: a secret that contains another must be masked whole before the shorter one.
    """
    usable, short = [], []
    for secret in secrets or []:
        if secret is None:
            continue
        text = str(secret)
        if not text:
            continue
        (usable if len(text) >= MIN_SECRET_LENGTH else short).append(text)
    forms = set()
    for text in usable:
        forms.add(text)
        if quote is not None:
            forms.add(quote(text, safe=""))
    return sorted(forms, key=lambda item: (-len(item), item)), short


class Redactor(object):
    """Masks the known secrets and the generic shapes in text, counting what it masked per rule."""

    # Rule names never look like a secret's name: the counts go into the bundle's manifest, redacted too.
    def __init__(self, secrets=None):
        self.secrets, self.too_short = usable_secrets(secrets)
        self.counts = {}

    def _count(self, rule, number):
        if number:
            self.counts[rule] = self.counts.get(rule, 0) + number

    @property
    def total(self):
        return sum(self.counts.values())

    def redact(self, text):
        """``text`` with every secret masked."""
        for secret in self.secrets:
            found = text.count(secret)
            if found:
                text = text.replace(secret, MASK)
                self._count("known_value", found)
        for rule, pattern, replacement in GENERIC_PATTERNS:
            text, found = pattern.subn(replacement, text)
            self._count(rule, found)
        return text

    def redact_bytes(self, data):
        """Bytes in, UTF-8 bytes out (undecodable bytes replaced: a bundle is read by people)."""
        return self.redact(data.decode("utf-8", "replace")).encode("utf-8")
