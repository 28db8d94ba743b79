# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read-only probes of a clinic stack, each returning one ProbeResult.

Private to the collection (``_clinicops``): the interface may change between releases. Nothing
here writes anything or prints a secret: connection errors are reported with the password
removed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import ssl
import time
from datetime import datetime, timezone

try:
    from http.client import HTTPException
    from urllib.error import HTTPError, URLError
    from urllib.request import Request, urlopen
except ImportError:  # pragma: no cover - Python 2 is not supported on clinic hosts
    Request = urlopen = HTTPError = URLError = HTTPException = None

from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.pg_driver import (
    PSYCOPG_IMPORT_ERROR,
    pg_driver,
    quote_ident,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.utc_time import from_stamp


class ProbeResult(object):
    """Outcome of one check: a name, a kind, healthy or not, and what was observed."""

    def __init__(self, name, kind, healthy, detail, **observed):
        self.name = name
        self.kind = kind
        self.healthy = healthy
        self.detail = detail
        self.observed = observed

    def as_dict(self):
        result = {"name": self.name, "kind": self.kind, "healthy": self.healthy, "detail": self.detail}
        result.update(self.observed)
        return result


def _elapsed_ms(started):
    return round((time.monotonic() - started) * 1000.0, 1)


def redact(text, secrets):
    """Remove every secret from a message before it leaves the module."""
    text = str(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return " ".join(text.split())[:300]


def probe_http(spec):
    name = spec.get("name") or spec["url"]
    expected = spec.get("status") or [200]
    started = time.monotonic()
    request = Request(spec["url"], headers=spec.get("headers") or {}, method="GET")
    context = None
    if spec["url"].startswith("https") and not spec.get("validate_certs", True):
        context = ssl._create_unverified_context()  # pylint: disable=protected-access
    try:
        response = urlopen(request, timeout=spec.get("timeout", 5), context=context)
        status, body = response.status, response.read(65536)
    except HTTPError as exc:
        status, body = exc.code, exc.read(65536)
    except (URLError, OSError, ValueError, HTTPException) as exc:  # HTTPException: not an HTTP answer
        return ProbeResult(name, "http", False, "no answer: %s" % getattr(exc, "reason", exc),
                           latency_ms=_elapsed_ms(started), status=None)
    latency = _elapsed_ms(started)
    text = body.decode("utf-8", "replace")
    observed = {"latency_ms": latency, "status": status}
    if spec.get("json"):
        try:
            observed["json"] = json.loads(text)
        except ValueError:
            observed["json"] = None
    problems = []
    if status not in expected:
        problems.append("HTTP %s (expected %s)" % (status, "/".join(str(code) for code in expected)))
    if spec.get("body_contains") and spec["body_contains"] not in text:
        problems.append("body lacks %r" % spec["body_contains"])
    max_latency = spec.get("max_latency_ms")
    if max_latency and latency > max_latency:
        problems.append("slow: %.0f ms > %.0f ms" % (latency, max_latency))
    if problems:
        return ProbeResult(name, "http", False, "; ".join(problems), **observed)
    return ProbeResult(name, "http", True, "HTTP %s in %.0f ms" % (status, latency), **observed)


def probe_tcp(spec):
    name = spec.get("name") or "%s:%s" % (spec["host"], spec["port"])
    started = time.monotonic()
    try:
        with socket.create_connection((spec["host"], spec["port"]), timeout=spec.get("timeout", 3)):
            pass
    except OSError as exc:
        return ProbeResult(name, "tcp", False, "cannot connect: %s" % exc, latency_ms=_elapsed_ms(started))
    latency = _elapsed_ms(started)
    return ProbeResult(name, "tcp", True, "open in %.0f ms" % latency, latency_ms=latency)


def _scalar(cursor, query, params=None):
    cursor.execute(query, params)
    row = cursor.fetchone()
    return row[0] if row else None


# How long the oldest running statement of a client (not this session) has been running, in seconds.
LONGEST_QUERY = ("SELECT coalesce(max(extract(epoch FROM clock_timestamp() - query_start)), 0)::float "
                 "FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid() "
                 "AND backend_type = 'client backend'")


def probe_postgresql(spec):
    name = spec.get("name") or "postgresql"
    password = spec.get("password")
    if pg_driver is None:
        return ProbeResult(name, "postgresql", False, "no psycopg/psycopg2 on the host: %s" % PSYCOPG_IMPORT_ERROR)
    params = {"dbname": spec["database"], "host": spec.get("host") or "/var/run/postgresql",
              "port": spec.get("port", 5432), "connect_timeout": int(spec.get("connect_timeout", 5))}
    for key in ("user", "passfile"):
        if spec.get(key):
            params[key] = spec[key]
    if password:
        params["password"] = password
    started = time.monotonic()
    try:
        conn = pg_driver.connect(**params)
    except Exception as exc:  # pylint: disable=broad-except
        return ProbeResult(name, "postgresql", False, "cannot connect: %s" % redact(exc, [password]),
                           connected=False, latency_ms=_elapsed_ms(started))
    observed = {"connected": True}
    try:
        conn.autocommit = True
        cursor = conn.cursor()
        # Every statement below is read-only; make the session say so.
        cursor.execute("SET default_transaction_read_only = on")
        _scalar(cursor, "SELECT 1")
        observed["latency_ms"] = _elapsed_ms(started)
        observed["server_version"] = _scalar(cursor, "SHOW server_version")
        observed["connections"] = _scalar(cursor, "SELECT count(*) FROM pg_stat_activity")
        observed["max_connections"] = int(_scalar(cursor, "SHOW max_connections"))
        observed["database_size_bytes"] = _scalar(cursor, "SELECT pg_database_size(current_database())")
        observed["longest_query_s"] = round(float(_scalar(cursor, LONGEST_QUERY) or 0), 1)
        if spec.get("schema_version_query"):
            observed["schema_version"] = _scalar(cursor, spec["schema_version_query"])
        counts = {}
        for table in spec.get("count_tables") or []:
            counts[table] = _scalar(cursor, "SELECT count(*) FROM %s" % ".".join(
                quote_ident(part) for part in table.split(".")))
        observed["row_counts"] = counts
    except Exception as exc:  # pylint: disable=broad-except
        return ProbeResult(name, "postgresql", False, "query failed: %s" % redact(exc, [password]), **observed)
    finally:
        conn.close()
    ratio = float(observed["connections"]) / max(observed["max_connections"], 1)
    observed["connection_usage"] = round(ratio, 3)
    limit = spec.get("max_connection_usage", 0.9)
    if ratio > limit:
        return ProbeResult(name, "postgresql", False, "connections %d/%d above %.0f%%" % (
            observed["connections"], observed["max_connections"], limit * 100), **observed)
    if spec.get("max_query_seconds") and observed["longest_query_s"] > spec["max_query_seconds"]:
        return ProbeResult(name, "postgresql", False, "a query has been running %.0f s (> %s s)" % (
            observed["longest_query_s"], spec["max_query_seconds"]), **observed)
    return ProbeResult(name, "postgresql", True, "SELECT 1 in %.0f ms, %d/%d connections" % (
        observed["latency_ms"], observed["connections"], observed["max_connections"]), **observed)


def probe_redis(spec):
    name = spec.get("name") or "redis"
    password = spec.get("password")
    started = time.monotonic()
    try:
        with socket.create_connection((spec.get("host", "127.0.0.1"), spec.get("port", 6379)),
                                      timeout=spec.get("timeout", 3)) as sock:
            if password:
                sock.sendall(("*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password), password)).encode())
                sock.recv(64)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            answer = sock.recv(64)
    except OSError as exc:
        return ProbeResult(name, "redis", False, "cannot connect: %s" % redact(exc, [password]),
                           latency_ms=_elapsed_ms(started))
    latency = _elapsed_ms(started)
    if not answer.startswith(b"+PONG"):
        seen = redact(answer.decode("utf-8", "replace"), [password])
        return ProbeResult(name, "redis", False, "PING answered %r" % seen, latency_ms=latency)
    return ProbeResult(name, "redis", True, "PONG in %.0f ms" % latency, latency_ms=latency)


def probe_systemd_unit(unit, run_command):
    rc, out, _err = run_command(["systemctl", "is-active", unit])
    state = out.strip() or "unknown"
    return ProbeResult(unit, "systemd", rc == 0 and state == "active", state, state=state)


def probe_disk(spec):
    path = spec["path"]
    try:
        stats = os.statvfs(path)
    except OSError as exc:
        return ProbeResult(path, "disk", False, "cannot stat: %s" % exc)
    free = stats.f_bavail * stats.f_frsize
    total = stats.f_blocks * stats.f_frsize
    inodes_free_pct = 100.0 * stats.f_favail / stats.f_files if stats.f_files else 100.0
    free_pct = 100.0 * free / total if total else 0.0
    observed = {"free_bytes": free, "total_bytes": total, "free_percent": round(free_pct, 1),
                "inodes_free_percent": round(inodes_free_pct, 1)}
    problems = []
    if free_pct < spec.get("min_free_percent", 5):
        problems.append("%.1f%% free < %s%%" % (free_pct, spec.get("min_free_percent", 5)))
    if spec.get("min_free_bytes") and free < spec["min_free_bytes"]:
        problems.append("%d bytes free < %d" % (free, spec["min_free_bytes"]))
    if inodes_free_pct < spec.get("min_free_inodes_percent", 5):
        problems.append("inodes %.1f%% free" % inodes_free_pct)
    if problems:
        return ProbeResult(path, "disk", False, "; ".join(problems), **observed)
    return ProbeResult(path, "disk", True, "%.1f GiB free (%.0f%%)" % (free / 2.0 ** 30, free_pct), **observed)


def certificate_days_left(not_after, now=None):
    """Days until an X.509 notAfter like 'Jan  2 03:04:05 2027 GMT' (what ssl/openssl print)."""
    expires = datetime.strptime(" ".join(not_after.split()), "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return (expires - now).total_seconds() / 86400.0


def probe_tls(spec, run_command):
    host, port = spec["host"], spec.get("port", 443)
    name = spec.get("name") or "tls %s:%s" % (host, port)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # expiry is what is checked here, not the chain
    try:
        with socket.create_connection((host, port), timeout=spec.get("timeout", 5)) as sock:
            with context.wrap_socket(sock, server_hostname=spec.get("server_name") or host) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        return ProbeResult(name, "tls", False, "handshake failed: %s" % exc)
    rc, out, err = run_command(["openssl", "x509", "-inform", "DER", "-noout", "-enddate"], data=der,
                               binary_data=True)
    if rc != 0 or "=" not in out:
        return ProbeResult(name, "tls", False, "cannot read the certificate: %s" % (err or out).strip())
    days = certificate_days_left(out.strip().split("=", 1)[1])
    minimum = spec.get("min_days", 14)
    observed = {"days_left": round(days, 1)}
    if days < minimum:
        return ProbeResult(name, "tls", False, "certificate expires in %.1f days (< %s)" % (days, minimum), **observed)
    return ProbeResult(name, "tls", True, "certificate valid %.0f more days" % days, **observed)


def last_successes(lines, procedures):
    """The time (``...Z``) of the last ``ok`` record of each procedure in audit trail lines."""
    found = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("procedure") in procedures and record.get("outcome") == "ok":
            found[record["procedure"]] = record.get("at")
    return found


def procedure_age_hours(at, now=None):
    return round(((now or datetime.now(timezone.utc)) - from_stamp(at)).total_seconds() / 3600.0, 1)


def probe_recent_procedures(spec, now=None):
    """When each procedure last succeeded on the clinic, from its audit trail: a backup, a drill."""
    wanted = dict((item["name"], item.get("max_age_hours")) for item in spec.get("procedures") or [])
    trail = spec.get("trail") or "/var/log/clinicops/audit.jsonl"
    try:
        with open(trail, "r", encoding="utf-8", errors="replace") as handle:
            found = last_successes(handle, wanted)
    except (IOError, OSError):
        found = {}
    results = []
    for name, max_age in sorted(wanted.items()):
        at = found.get(name)
        try:
            age = procedure_age_hours(at, now) if at else None
        except ValueError:  # not a stamp the trail's writer makes: as good as none
            age = None
        if age is None:
            results.append(ProbeResult(name, "procedure", max_age is None, "no successful %s in %s" % (name, trail),
                                       last_ok=None, age_hours=None))
            continue
        healthy = max_age is None or age <= max_age
        detail = "last ok %s (%.1f h ago%s)" % (at, age, "" if healthy else ", more than %s h" % max_age)
        results.append(ProbeResult(name, "procedure", healthy, detail, last_ok=at, age_hours=age))
    return results


def summarize(results):
    """One line naming what is unhealthy, or 'healthy (N checks)'."""
    bad = [r for r in results if not r.healthy]
    if not bad:
        return "healthy (%d checks)" % len(results)
    return "unhealthy: " + "; ".join("%s %s: %s" % (r.kind, r.name, r.detail) for r in bad)
