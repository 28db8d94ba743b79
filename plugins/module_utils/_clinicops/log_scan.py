# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The log_scan module's logic: parse nginx, app and auth log lines over a time window, count
requests, 4xx/5xx, client IPs, suspicious requests and failed logins, judge thresholds, and compare
the clinic's privileged accounts with a baseline.

Everything here is pure except ``open_log``/``rotated_files``/``read_privileges`` (they read files).
Request lines can hold patient data (names in query strings): nothing here keeps a request line; a
suspicious request is reported by pattern, client IP and its path without the query, cut short.

Private to the collection: the interface may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import gzip
import os
import re
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone

# nginx's default "combined" format, the one the clinic_host site uses:
# 203.0.113.7 - - [26/Nov/2026:12:00:00 +0000] "GET /health HTTP/1.1" 200 42 "-" "curl/7.88"
NGINX_LINE = re.compile(r'^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) ')
NGINX_TIME = "%d/%b/%Y:%H:%M:%S %z"
# The app's lines: an ISO 8601 time first. Requests (http.server's log_request):
# 2026-11-26T12:00:00+00:00 127.0.0.1 "GET /health HTTP/1.1" 200 -
APP_LINE = re.compile(r"^(?P<time>\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:?\d\d)?) (?P<rest>.*)$")
APP_REQUEST = re.compile(r'^(?P<ip>\S+) "(?P<request>[^"]*)" (?P<status>\d{3}) ')
APP_ERROR = re.compile(r"\b(error|exception|traceback|critical)\b", re.IGNORECASE)
# Failed logins: the app's own line, and sshd's in an auth log.
APP_AUTH_FAILED = re.compile(r"\bauth failed user=(?P<user>\S*) ip=(?P<ip>[0-9A-Fa-f:.]+)")
SSHD_AUTH_FAILED = re.compile(r"\bFailed (?:password|publickey) for (?:invalid user )?(?P<user>\S+) from (?P<ip>\S+)")
SYSLOG_LINE = re.compile(r"^(?P<time>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) ")
# What a probe or an attack looks like in a request target (raw or URL-encoded).
SUSPICIOUS_PATTERNS = (
    (
        "sql_injection",
        re.compile(
            r"union(?:\s|%20|\+|/\*\*/)+(?:all(?:\s|%20|\+)+)?select"
            r"|(?:'|%27)(?:\s|%20|\+)*or(?:\s|%20|\+)+(?:'?1'?|%271%27)(?:\s|%20|\+)*(?:=|%3d)"
            r"|\b(?:sleep|pg_sleep|benchmark)(?:\s|%20)*(?:\(|%28)"
            r"|;(?:\s|%20|\+)*(?:drop|delete|insert|update)(?:\s|%20|\+)",
            re.IGNORECASE,
        ),
    ),
    ("script_injection", re.compile(r"<script|%3cscript|javascript:", re.IGNORECASE)),
    ("path_traversal", re.compile(r"\.\./|\.\.%2f|%2e%2e(?:/|%2f)|\.\.\\|/etc/passwd", re.IGNORECASE)),
)
PATH_SHOWN = 60  # characters of a suspicious request's path kept in the report
SAMPLES_KEPT = 10
TOP_IPS = 10
# Thresholds of ``fail_on``: a value above its threshold fails the scan.
THRESHOLDS = (
    "requests_5xx_rate",
    "requests_4xx_rate",
    "requests_5xx",
    "app_errors",
    "failed_logins",
    "failed_logins_per_ip",
    "suspicious_requests",
    "privilege_changes",
)
RATE_MIN_REQUESTS = 20  # rates of fewer requests say nothing; they are reported, never judged


class LogScanError(Exception):
    """A log or baseline that cannot be read, or an option that makes no sense."""


def parse_nginx_time(text):
    return datetime.strptime(text, NGINX_TIME)


def parse_iso_time(text):
    text = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_syslog_time(text, now):
    """``Nov 26 12:00:00`` has no year nor zone: the last such moment not after ``now``, in UTC."""
    moment = datetime.strptime("%d %s" % (now.year, " ".join(text.split())), "%Y %b %d %H:%M:%S")
    moment = moment.replace(tzinfo=timezone.utc)
    return moment.replace(year=now.year - 1) if moment > now + timedelta(days=1) else moment


def request_path(request):
    """``GET /a/b?x=1 HTTP/1.1`` -> ``/a/b``, cut to PATH_SHOWN characters: never the query."""
    parts = request.split(" ")
    target = parts[1] if len(parts) > 1 else parts[0]
    path = target.split("?", 1)[0]
    return path if len(path) <= PATH_SHOWN else path[:PATH_SHOWN] + "..."


def suspicious_kind(request):
    """The first suspicious pattern a request target matches, or None."""
    for name, pattern in SUSPICIOUS_PATTERNS:
        if pattern.search(request):
            return name
    return None


class LogTotals(object):
    """What the lines of the window add up to (no line is kept)."""

    def __init__(self):
        self.requests = 0
        self.status_4xx = 0
        self.status_5xx = 0
        self.client_ips = Counter()
        self.suspicious = Counter()
        self.suspicious_samples = []
        self.failed_logins = Counter()
        self.app_errors = 0
        self.lines = 0
        self.unparsed = 0

    def add_request(self, ip, request, status):
        self.requests += 1
        self.client_ips[ip] += 1
        if 400 <= status < 500:
            self.status_4xx += 1
        elif status >= 500:
            self.status_5xx += 1
        kind = suspicious_kind(request)
        if kind:
            self.suspicious[kind] += 1
            if len(self.suspicious_samples) < SAMPLES_KEPT:
                self.suspicious_samples.append(
                    {"pattern": kind, "ip": ip, "path": request_path(request), "status": status}
                )

    def add_failed_login(self, ip):
        self.failed_logins[ip] += 1

    def as_dict(self):
        def rate(count):
            return round(float(count) / self.requests, 4) if self.requests else 0.0

        return {
            "requests": self.requests,
            "requests_4xx": self.status_4xx,
            "requests_5xx": self.status_5xx,
            "requests_4xx_rate": rate(self.status_4xx),
            "requests_5xx_rate": rate(self.status_5xx),
            "top_client_ips": [{"ip": ip, "requests": count} for ip, count in self.client_ips.most_common(TOP_IPS)],
            "suspicious_requests": sum(self.suspicious.values()),
            "suspicious_by_pattern": dict(self.suspicious),
            "suspicious_samples": list(self.suspicious_samples),
            "failed_logins": sum(self.failed_logins.values()),
            "failed_logins_by_ip": dict(self.failed_logins.most_common()),
            "app_errors": self.app_errors,
            "lines_read": self.lines,
            "lines_unparsed": self.unparsed,
        }


def scan_nginx_line(totals, line, since, until):
    match = NGINX_LINE.match(line)
    if not match:
        totals.unparsed += 1
        return
    try:
        moment = parse_nginx_time(match.group("time"))
    except ValueError:
        totals.unparsed += 1
        return
    if since <= moment <= until:
        totals.add_request(match.group("ip"), match.group("request"), int(match.group("status")))


def scan_app_line(totals, line, since, until):
    """An app line counts as an error when it says so or answered 5xx; its requests are not counted
    again (nginx's log has them, with the real client address)."""
    match = APP_LINE.match(line)
    if not match:
        totals.unparsed += 1
        return
    try:
        moment = parse_iso_time(match.group("time"))
    except ValueError:
        totals.unparsed += 1
        return
    if not since <= moment <= until:
        return
    rest = match.group("rest")
    failed = APP_AUTH_FAILED.search(rest)
    if failed:
        totals.add_failed_login(failed.group("ip"))
        return
    request = APP_REQUEST.match(rest)
    if request:
        if int(request.group("status")) >= 500:
            totals.app_errors += 1
    elif APP_ERROR.search(rest):
        totals.app_errors += 1


def scan_auth_line(totals, line, since, until):
    failed = SSHD_AUTH_FAILED.search(line) or APP_AUTH_FAILED.search(line)
    if not failed:
        return
    iso = APP_LINE.match(line)
    syslog = SYSLOG_LINE.match(line)
    try:
        if iso:
            moment = parse_iso_time(iso.group("time"))
        elif syslog:
            moment = parse_syslog_time(syslog.group("time"), until)
        else:
            totals.unparsed += 1
            return
    except ValueError:
        totals.unparsed += 1
        return
    if since <= moment <= until:
        totals.add_failed_login(failed.group("ip"))


SCANNERS = {"nginx": scan_nginx_line, "app": scan_app_line, "auth": scan_auth_line}


def scan_lines(totals, kind, lines, since, until):
    scanner = SCANNERS[kind]
    for line in lines:
        totals.lines += 1
        scanner(totals, line.rstrip("\n"), since, until)
    return totals


def judge(report, fail_on):
    """The thresholds ``report`` crosses (``fail_on``: name -> threshold; a value above it fails).

    Rates are judged only over RATE_MIN_REQUESTS requests or more."""
    unknown = sorted(set(fail_on) - set(THRESHOLDS))
    if unknown:
        raise LogScanError("unknown threshold(s) %s; known: %s" % (", ".join(unknown), ", ".join(THRESHOLDS)))
    crossed = []
    for name in THRESHOLDS:
        limit = fail_on.get(name)
        if limit is None:
            continue
        if name == "failed_logins_per_ip":
            for ip, count in sorted(report.get("failed_logins_by_ip", {}).items(), key=lambda item: -item[1]):
                if count > limit:
                    crossed.append("%d failed logins from %s (threshold %s)" % (count, ip, limit))
            continue
        if name.endswith("_rate") and report.get("requests", 0) < RATE_MIN_REQUESTS:
            continue
        value = len(report.get("privilege_additions", [])) if name == "privilege_changes" else report.get(name, 0)
        if value > limit:
            shown = "%.1f%%" % (value * 100) if name.endswith("_rate") else str(value)
            threshold = "%.1f%%" % (limit * 100) if name.endswith("_rate") else str(limit)
            crossed.append("%s %s (threshold %s)" % (name.replace("_", " "), shown, threshold))
    return crossed


def rotated_files(path, since_epoch):
    """``path`` and its rotated siblings (``path.1``, ``path-20261126``, ``.gz``, ``.zst``) changed
    since ``since_epoch``; oldest first, so counts read in time order."""
    found = []
    for candidate in set(glob.glob(glob.escape(path) + ".*") + glob.glob(glob.escape(path) + "-*")) | {path}:
        try:
            stat = os.stat(candidate)
        except OSError:
            continue
        if os.path.isfile(candidate) and (candidate == path or stat.st_mtime >= since_epoch):
            found.append((stat.st_mtime, candidate))
    return [name for _mtime, name in sorted(found)]


def open_log(path):
    """The lines of a log, plain, gzip or zstd (through the zstd tool), decoded leniently."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    if path.endswith(".zst"):
        try:
            out = subprocess.run(
                ["zstd", "-dcq", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True
            ).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise LogScanError("cannot read %s: %s" % (path, exc)) from exc
        return iter(out.decode("utf-8", "replace").splitlines())
    return open(path, "r", encoding="utf-8", errors="replace")


def scan_files(sources, since, until):
    """Scan ``sources`` (dicts ``path``, ``kind``), rotated files included. Missing logs are
    listed, not fatal: a clinic without an auth log is no failure of the scan."""
    totals = LogTotals()
    read, missing = [], []
    for source in sources:
        paths = []
        for pattern in [source["path"]] if not glob.has_magic(source["path"]) else sorted(glob.glob(source["path"])):
            paths.extend(rotated_files(pattern, since.timestamp()))
        paths = [path for path in paths if os.path.isfile(path)]
        if not paths:
            missing.append(source["path"])
        for path in paths:
            handle = open_log(path)
            try:
                scan_lines(totals, source["kind"], handle, since, until)
            except (OSError, EOFError) as exc:
                raise LogScanError("cannot read %s: %s" % (path, exc)) from exc
            finally:
                if hasattr(handle, "close"):
                    handle.close()
            read.append(path)
    return totals, read, missing


def read_privileges(group_file, groups, sudoers_dir):
    """Who is in the privileged groups, and the files of sudoers.d: the state a baseline keeps."""
    members = dict((name, []) for name in groups)
    try:
        with open(group_file, "r", encoding="utf-8") as handle:
            for line in handle:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 4 and fields[0] in members:
                    members[fields[0]] = sorted(user for user in fields[3].split(",") if user)
    except OSError as exc:
        raise LogScanError("cannot read %s: %s" % (group_file, exc)) from exc
    try:
        sudoers = sorted(os.listdir(sudoers_dir)) if os.path.isdir(sudoers_dir) else []
    except OSError as exc:
        raise LogScanError("cannot list %s: %s" % (sudoers_dir, exc)) from exc
    return {"groups": members, "sudoers_d": sudoers}


def privilege_additions(baseline, current):
    """What ``current`` grants beyond ``baseline``: ``group sudo: +mallory``, ``sudoers.d: +99-x``."""
    added = []
    before_groups = baseline.get("groups", {})
    for group, users in sorted(current.get("groups", {}).items()):
        for user in users:
            if user not in before_groups.get(group, []):
                added.append("group %s: +%s" % (group, user))
    for name in current.get("sudoers_d", []):
        if name not in baseline.get("sudoers_d", []):
            added.append("sudoers.d: +%s" % name)
    return added
