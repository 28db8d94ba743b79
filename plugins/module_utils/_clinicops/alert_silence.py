# -*- coding: utf-8 -*-
# Copyright: clinicops project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Alertmanager silences for a clinic's maintenance window, through Alertmanager's HTTP API v2.

Controller-side code (Python 3.11; the module is delegated to the controller). Private to the
collection: the interface may change between releases.

A run's silence is found again by its marker and its matchers
-------------------------------------------------------------
Every silence a run sets carries ``[clinicops run <run id>]`` at the end of its comment. The
silence of a run for a clinic is the live (active or pending) silence that carries the run's
marker and exactly the same set of matchers; nothing else is ever updated or expired, so a
silence set by a person, or by another run, or for another clinic of the same run, is left alone.

Plan for state=present (computed from one read, the same in check mode)
-----------------------------------------------------------------------
* no silence of the run: create one;
* one: keep it when its end, comment and author are the wanted ones (ends compared to the second,
  as Alertmanager keeps milliseconds), else update it (POST with its id);
* several (two runs raced): keep the one ending last, expire the others.

Alertmanager updates a silence in place (same id) when its matchers are unchanged, it has not
expired, its end is not in the past and, once it is active, its start is unchanged; otherwise it
expires the old silence and creates a new one with a new id (reported as ``replaced``). The start
of an active silence is therefore never changed: the update sends the start Alertmanager holds.

``duration`` counts from ``starts_at`` when it is given, else from the start of the run's active
silence (so a rerun later in the window keeps the same end), else from now. Alertmanager moves a
start in the past to the instant it receives the silence.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
from collections import namedtuple
from datetime import datetime, timedelta, timezone
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlsplit

from ansible.module_utils.urls import ConnectionError as UrlConnectionError
from ansible.module_utils.urls import open_url
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.maintenance_windows import (
    MAX_DURATION,
    WindowError,
    parse_duration,
    span_text,
)

UTC = timezone.utc
LIVE_STATES = ("active", "pending")
MARKER_FORMAT = "[clinicops run %s]"
# Alertmanager keeps milliseconds; a wanted end within a second of the held one is the same end.
SAME_INSTANT = timedelta(seconds=1)
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RUN_ID = re.compile(r"^[^\[\]\r\n]{1,200}$")
SILENCES_PATH = "/api/v2/silences"
SILENCE_PATH = "/api/v2/silence/%s"

# The silence wanted, validated: matchers in the API's shape, instants as aware UTC datetimes.
SilenceSpec = namedtuple("SilenceSpec", "matchers starts_at ends_at duration comment created_by run_id")
# What to do: action (create, update, keep), the silence kept (or None), the payload to POST
# (or None) and the ids of the duplicates to expire.
Plan = namedtuple("Plan", "action current payload duplicates")


class SilenceError(Exception):
    """Bad input, or an answer of Alertmanager the module cannot use."""


class AlertmanagerUnreachableError(SilenceError):
    """Alertmanager did not answer (refused, timed out, TLS failure, bad proxy)."""


# ---------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------


def base_url(text):
    """The Alertmanager base URL without a trailing slash; SilenceError when it is not http(s)://host[:port][/prefix]."""
    text = (text or "").strip()
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError as exc:
        raise SilenceError("url %r is not a valid URL: %s" % (text, exc)) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise SilenceError("url %r is not an Alertmanager URL such as http://alertmanager.example.org:9093" % text)
    if parts.username is not None or parts.password is not None:
        raise SilenceError("url must not hold credentials: give them as url_username and url_password")
    if parts.query or parts.fragment:
        raise SilenceError("url %r must be the base URL of Alertmanager, without a query or fragment" % text)
    return text.rstrip("/")


def run_marker(run_id):
    """The comment marker of a run: '[clinicops run <run id>]'."""
    run_id = (run_id or "").strip()
    if not RUN_ID.match(run_id):
        raise SilenceError("run_id %r must be 1 to 200 characters without brackets or line breaks" % run_id)
    return MARKER_FORMAT % run_id


def api_matchers(matchers):
    """The module's matchers ({name, value, is_regex, is_equal}) in the API's shape; SilenceError if unusable."""
    if not matchers:
        raise SilenceError(
            "a silence needs at least one matcher (such as name: clinic, value: <clinic id>): "
            "a silence without matchers would silence every alert"
        )
    found = []
    for index, matcher in enumerate(matchers):
        if not isinstance(matcher, dict):
            raise SilenceError("matcher #%d must be a mapping with name and value, got %r" % (index + 1, matcher))
        name, value = matcher.get("name"), matcher.get("value")
        if not isinstance(name, str) or not LABEL_NAME.match(name):
            raise SilenceError("matcher #%d: name %r is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)" % (index + 1, name))
        if not isinstance(value, str):
            raise SilenceError("matcher #%d (%s): value must be a string, got %r" % (index + 1, name, value))
        item = {
            "name": name,
            "value": value,
            "isRegex": bool(matcher.get("is_regex", False)),
            "isEqual": bool(matcher.get("is_equal", True)),
        }
        if item in found:
            raise SilenceError("matcher #%d (%s) is given twice" % (index + 1, matcher_text(item)))
        found.append(item)
    if all(_matches_empty(item) for item in found):
        raise SilenceError(
            "every matcher of %s also matches a missing label: such a silence would silence "
            "every alert (Alertmanager refuses it too)" % matchers_text(found)
        )
    return found


def _matches_empty(matcher):
    """Whether the matcher matches an alert without the label (an empty value), as Alertmanager decides."""
    if matcher["isRegex"]:
        # Alertmanager anchors the expression and validates it (Go RE2 syntax, which Python's re does not
        # all read): an expression Python cannot read is left for Alertmanager to judge.
        try:
            matched = re.fullmatch("(?:%s)" % matcher["value"], "") is not None
        except re.error:
            return False
    else:
        matched = matcher["value"] == ""
    return matched == matcher["isEqual"]


def parse_instant(value, what):
    """An ISO 8601 date and time with a UTC offset (or Z) as an aware UTC datetime; SilenceError otherwise."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise SilenceError(
                "%s %r is not an ISO 8601 date and time such as 2026-11-29T04:00:00+01:00" % (what, text)
            ) from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise SilenceError(
            "%s %r has no UTC offset: write it as 2026-11-29T04:00:00+01:00 or 2026-11-29T03:00:00Z"
            % (what, str(value))
        )
    return moment.astimezone(UTC)


def parse_span(value):
    """The duration option: "2h", "90m", "1h30m", "1d" or a number of minutes, as maintenance windows write it."""
    try:
        span = parse_duration(value, "duration")
    except WindowError as exc:
        raise SilenceError(str(exc)) from exc
    if span <= timedelta(0):
        raise SilenceError("duration %r must be more than 0" % (value,))
    return span


def silence_spec(matchers, run_id, comment, created_by, starts_at=None, ends_at=None, duration=None):
    """The validated SilenceSpec of the module's options (ends_at or duration, not both, for state=present)."""
    if ends_at not in (None, "") and duration not in (None, ""):
        raise SilenceError("give ends_at or duration, not both")
    marker = run_marker(run_id)
    text = (comment or "").strip()
    if text.endswith(marker):
        text = text[: -len(marker)].rstrip()
    return SilenceSpec(
        matchers=api_matchers(matchers),
        starts_at=parse_instant(starts_at, "starts_at") if starts_at not in (None, "") else None,
        ends_at=parse_instant(ends_at, "ends_at") if ends_at not in (None, "") else None,
        duration=parse_span(duration) if duration not in (None, "") else None,
        comment=("%s %s" % (text, marker)) if text else marker,
        created_by=created_by or "",
        run_id=run_id.strip(),
    )


# ---------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------


def matcher_text(matcher):
    """clinic="kinshasa", clinic=~"k.*", clinic!="x" or clinic!~"x" (Alertmanager's syntax)."""
    operator = ("=" if matcher.get("isEqual", True) else "!") + ("~" if matcher.get("isRegex") else "")
    if operator == "!":
        operator = "!="
    return "%s%s%s" % (matcher["name"], operator, json.dumps(matcher["value"]))


def matchers_text(matchers):
    return "{%s}" % ", ".join(matcher_text(matcher) for matcher in matchers)


def format_instant(moment):
    """An instant as the API writes it: 2026-11-29T03:00:00.000Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


# ---------------------------------------------------------------------------------------------
# Plans (pure: the silences as Alertmanager listed them in, a plan out)
# ---------------------------------------------------------------------------------------------


def _matcher_key(matcher):
    # Alertmanager before 0.22 has no isEqual: its matchers are all equality matchers.
    return (
        matcher.get("name"),
        matcher.get("value"),
        bool(matcher.get("isRegex", False)),
        bool(matcher.get("isEqual", True)),
    )


def same_matchers(first, second):
    return sorted(_matcher_key(item) for item in first) == sorted(_matcher_key(item) for item in second)


def silence_state(silence):
    return (silence.get("status") or {}).get("state")


def own_silences(silences, spec):
    """The live silences of the spec's run with the spec's matchers, the one to keep first."""
    marker = MARKER_FORMAT % spec.run_id
    own = [
        silence
        for silence in silences
        if silence_state(silence) in LIVE_STATES
        and (silence.get("comment") or "").endswith(marker)
        and same_matchers(silence.get("matchers") or [], spec.matchers)
    ]
    # Last end first; on a tie, the active one (its start is kept), then by id so the choice is stable.
    return sorted(
        own,
        key=lambda silence: (api_instant(silence, "endsAt"), silence_state(silence) == "active", silence.get("id")),
        reverse=True,
    )


def api_instant(silence, key):
    try:
        return parse_instant(silence[key], key)
    except (KeyError, SilenceError) as exc:
        raise SilenceError(
            "Alertmanager returned silence %s without a valid %s: %r" % (silence.get("id"), key, silence.get(key))
        ) from exc


def wanted_times(spec, now, current=None):
    """(start, end) of the silence wanted at ``now``, given the run's current silence (or None)."""
    if current is not None and silence_state(current) == "active":
        start = api_instant(current, "startsAt")  # an active silence's start cannot move
    else:
        start = spec.starts_at or now
    # A duration counts from starts_at, else from the start of the silence: a rerun keeps its end.
    end = spec.ends_at if spec.ends_at is not None else (spec.starts_at or start) + spec.duration
    return start, end


def check_times(start, end, now):
    """SilenceError for an end in the past, not after the start, or further than a maintenance window can last."""
    if end <= now:
        raise SilenceError(
            "the silence's end %s is in the past (now %s): the maintenance window is over"
            % (format_instant(end), format_instant(now))
        )
    if end <= start:
        raise SilenceError(
            "the silence's end %s is not after its start %s" % (format_instant(end), format_instant(start))
        )
    begins = max(start, now)  # Alertmanager starts a silence no earlier than when it receives it
    if end - begins > MAX_DURATION:
        raise SilenceError(
            "the silence's end %s is more than %s after its start %s: a maintenance silence lasts at most %s, "
            "as a maintenance window does"
            % (format_instant(end), span_text(MAX_DURATION), format_instant(begins), span_text(MAX_DURATION))
        )


def plan_present(spec, silences, now):
    """The Plan that makes the run's silence the wanted one."""
    if spec.ends_at is None and spec.duration is None:
        raise SilenceError("state=present needs ends_at or duration: a silence must end with the window")
    own = own_silences(silences, spec)
    current = own[0] if own else None
    start, end = wanted_times(spec, now, current)
    check_times(start, end, now)
    payload = {
        "matchers": spec.matchers,
        "startsAt": format_instant(start),
        "endsAt": format_instant(end),
        "createdBy": spec.created_by,
        "comment": spec.comment,
    }
    duplicates = [silence["id"] for silence in own[1:]]
    if current is None:
        return Plan("create", None, payload, duplicates)
    payload["id"] = current["id"]
    if silence_state(current) == "active":
        payload["startsAt"] = current["startsAt"]
    if _differs(current, payload):
        return Plan("update", current, payload, duplicates)
    return Plan("keep", current, None, duplicates)


def _differs(current, payload):
    for key in ("startsAt", "endsAt"):
        if abs(api_instant(current, key) - parse_instant(payload[key], key)) >= SAME_INSTANT:
            return True
    return current.get("comment") != payload["comment"] or current.get("createdBy") != payload["createdBy"]


def silence_view(silence):
    """The parts of a silence a person compares, for diffs."""
    return {
        "matchers": matchers_text(silence.get("matchers") or []),
        "startsAt": silence.get("startsAt"),
        "endsAt": silence.get("endsAt"),
        "comment": silence.get("comment"),
        "createdBy": silence.get("createdBy"),
        "state": silence_state(silence),
    }


# ---------------------------------------------------------------------------------------------
# Alertmanager's HTTP API v2
# ---------------------------------------------------------------------------------------------


def open_url_transport(
    timeout=10, validate_certs=True, ca_path=None, headers=None, bearer_token=None, url_username=None, url_password=None
):
    """A transport over ansible.module_utils.urls.open_url: (method, url, payload or None) -> (status, text)."""
    sent = dict(headers or {})
    sent.setdefault("Accept", "application/json")
    if bearer_token:
        sent["Authorization"] = "Bearer %s" % bearer_token

    def request(method, url, payload=None):
        data = None
        request_headers = dict(sent)
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            request_headers["Content-Type"] = "application/json"
        try:
            response = open_url(
                url,
                data=data,
                headers=request_headers,
                method=method,
                timeout=timeout,
                validate_certs=validate_certs,
                ca_path=ca_path,
                url_username=url_username,
                url_password=url_password,
                force_basic_auth=bool(url_username),
                http_agent="clinicops-alert-silence",
                follow_redirects="safe",
                use_netrc=False,
            )
            return response.getcode(), response.read().decode("utf-8", "replace")
        except HTTPError as exc:
            body = exc.read().decode("utf-8", "replace") if exc.fp is not None else ""
            return exc.code, body
        except (URLError, UrlConnectionError, OSError) as exc:  # OSError: socket timeouts, resets
            reason = getattr(exc, "reason", None) or exc
            message = "Alertmanager at %s is unreachable: %s" % (_origin(url), reason)
            raise AlertmanagerUnreachableError(message) from exc

    return request


def _origin(url):
    parts = urlsplit(url)
    return "%s://%s" % (parts.scheme, parts.netloc)


class AlertmanagerClient(object):
    """The silence endpoints of one Alertmanager, over a transport (see open_url_transport)."""

    def __init__(self, url, transport):
        self.url = base_url(url)
        self.transport = transport

    def _call(self, method, path, payload=None, expected=(200,)):
        status, text = self.transport(method, self.url + path, payload)
        if status not in expected:
            raise SilenceError(
                "Alertmanager answered %s %s with HTTP %s: %s" % (method, path, status, _error_text(text))
            )
        try:
            return json.loads(text) if text.strip() else None
        except ValueError as exc:
            raise SilenceError(
                "Alertmanager answered %s %s with something else than JSON: %r" % (method, path, text[:200])
            ) from exc

    def silences(self):
        found = self._call("GET", SILENCES_PATH)
        if not isinstance(found, list):
            raise SilenceError(
                "GET %s did not return a list of silences: is %s an Alertmanager (API v2)?" % (SILENCES_PATH, self.url)
            )
        return found

    def silence(self, silence_id):
        return self._call("GET", SILENCE_PATH % quote(silence_id, safe=""))

    def post(self, payload):
        answer = self._call("POST", SILENCES_PATH, payload)
        if not isinstance(answer, dict) or not answer.get("silenceID"):
            raise SilenceError("POST %s returned no silenceID: %r" % (SILENCES_PATH, answer))
        return answer["silenceID"]

    def expire(self, silence_id):
        self._call("DELETE", SILENCE_PATH % quote(silence_id, safe=""))


def _error_text(text):
    """Alertmanager's error message: a JSON string, {"message": ...}, or the raw body."""
    try:
        answer = json.loads(text)
    except ValueError:
        return text.strip()[:300] or "(empty answer)"
    if isinstance(answer, dict) and answer.get("message"):
        return str(answer["message"])
    return answer if isinstance(answer, str) else json.dumps(answer)[:300]


# ---------------------------------------------------------------------------------------------
# The step: read, plan, act (only outside check mode), report
# ---------------------------------------------------------------------------------------------


class SilenceKeeper(object):
    """Sets or expires the silence of one run for one clinic; ``done`` lists the changes made so far."""

    def __init__(self, client, spec, now, check_mode=False):
        self.client, self.spec, self.now, self.check_mode = client, spec, now, check_mode
        self.done = []

    def _expire(self, silence_ids):
        for silence_id in silence_ids:
            if not self.check_mode:
                self.client.expire(silence_id)
                self.done.append("expired silence %s" % silence_id)

    def present(self):
        """Create, update or keep the run's silence (and expire its duplicates); the module's result."""
        spec = self.spec
        silences = self.client.silences()
        plan = plan_present(spec, silences, self.now)
        before = {silence["id"]: silence_view(silence) for silence in own_silences(silences, spec)}
        self._expire(plan.duplicates)
        expired = list(plan.duplicates)
        if plan.action == "keep":
            silence_id, silence, action = plan.current["id"], plan.current, "unchanged"
        elif self.check_mode:
            silence_id, silence, action = plan.payload.get("id"), self._predicted(plan.payload), plan.action + "d"
        else:
            silence_id = self.client.post(plan.payload)
            action = plan.action + "d"
            self.done.append("%s silence %s" % (action, silence_id))
            if plan.current is not None and silence_id != plan.current["id"]:
                action = "replaced"  # Alertmanager could not update in place: it expired the old one
                expired.append(plan.current["id"])
            silence = self.client.silence(silence_id)
        return dict(
            changed=plan.action != "keep" or bool(plan.duplicates),
            silence_action=action,
            silence_id=silence_id,
            silence=silence,
            expired=expired,
            msg=self._present_msg(plan, action, silence_id, silence),
            diff=dict(before=before, after={(silence_id or "new"): silence_view(silence)}),
        )

    def _predicted(self, payload):
        silence = dict(payload)
        starts = parse_instant(payload["startsAt"], "startsAt")
        silence["status"] = {"state": "pending" if starts > self.now else "active"}
        return silence

    def _present_msg(self, plan, action, silence_id, silence):
        spec = self.spec
        what = "for %s of run %s" % (matchers_text(spec.matchers), spec.run_id)
        if action == "unchanged":
            msg = "silence %s %s already ends at %s" % (silence_id, what, silence.get("endsAt"))
        elif self.check_mode:
            msg = "would %s silence %s%s until %s" % (
                plan.action,
                ("%s " % silence_id) if silence_id else "",
                what,
                silence.get("endsAt"),
            )
        else:
            msg = "%s silence %s %s until %s" % (action, silence_id, what, silence.get("endsAt"))
            if action == "replaced":
                msg += " (Alertmanager expired silence %s and created this one)" % plan.current["id"]
        if plan.duplicates:
            msg += "; %s the run's duplicate silence(s) %s" % (
                "would expire" if self.check_mode else "expired",
                ", ".join(plan.duplicates),
            )
        return msg

    def absent(self):
        """Expire the run's live silences; the module's result."""
        spec = self.spec
        own = own_silences(self.client.silences(), spec)
        ids = [silence["id"] for silence in own]
        what = "of run %s for %s" % (spec.run_id, matchers_text(spec.matchers))
        if not own:
            return dict(
                changed=False,
                silence_action="absent",
                silence_id=None,
                silence=None,
                expired=[],
                msg="no live silence %s; nothing to expire" % what,
                diff=dict(before={}, after={}),
            )
        self._expire(ids)
        silence = own[0] if self.check_mode else self.client.silence(ids[0])
        msg = "%s silence %s %s" % ("would expire" if self.check_mode else "expired", ", ".join(ids), what)
        return dict(
            changed=True,
            silence_action="expired",
            silence_id=ids[0],
            silence=silence,
            expired=ids,
            msg=msg,
            diff=dict(before={silence["id"]: silence_view(silence) for silence in own}, after={}),
        )
