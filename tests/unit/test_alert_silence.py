"""Alertmanager silences (module_utils alert_silence): input checks, the plan, the step, the HTTP client.

The plan and the step run over silences shaped as Alertmanager's API v2 returns them, at a fixed
instant; the HTTP client talks to a loopback server that records what it was sent. The module
against a real Alertmanager is tests/integration/test_alert_silence.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.alert_silence import (
    AlertmanagerClient,
    AlertmanagerUnreachableError,
    SilenceError,
    SilenceKeeper,
    api_matchers,
    base_url,
    format_instant,
    matchers_text,
    open_url_transport,
    own_silences,
    parse_instant,
    parse_span,
    plan_present,
    run_marker,
    silence_spec,
)

NOW = datetime(2026, 11, 29, 1, 0, 0, tzinfo=UTC)  # 02:00 in Kinshasa (+01:00)
RUN = "20261129T010000Z-2.4.1"
MARKER = f"[clinicops run {RUN}]"
KINSHASA = [{"name": "clinic", "value": "kinshasa"}]
API_KINSHASA = [{"name": "clinic", "value": "kinshasa", "isRegex": False, "isEqual": True}]


def spec(matchers=None, **options):
    """A SilenceSpec for kinshasa's run, ending at 03:00 UTC unless told otherwise."""
    if "duration" not in options:
        options.setdefault("ends_at", "2026-11-29T04:00:00+01:00")
    return silence_spec(
        matchers or KINSHASA,
        options.pop("run_id", RUN),
        options.pop("comment", "maintenance"),
        options.pop("created_by", "clinicops"),
        **options,
    )


def silence(
    silence_id="s1",
    state="active",
    starts="2026-11-29T01:00:00.512Z",
    ends="2026-11-29T03:00:00.000Z",
    comment=f"maintenance {MARKER}",
    matchers=None,
    created_by="clinicops",
):
    return {
        "id": silence_id,
        "status": {"state": state},
        "matchers": matchers or API_KINSHASA,
        "startsAt": starts,
        "endsAt": ends,
        "comment": comment,
        "createdBy": created_by,
        "updatedAt": starts,
    }


# ---------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9093", "http://127.0.0.1:9093"),
        ("https://alertmanager.example.org/", "https://alertmanager.example.org"),
        ("https://monitoring.example.org/alertmanager/", "https://monitoring.example.org/alertmanager"),
    ],
)
def test_base_url_accepts_http_and_https_with_a_route_prefix(url, expected):
    assert base_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("alertmanager:9093", "is not an Alertmanager URL"),
        ("ftp://alertmanager.example.org", "is not an Alertmanager URL"),
        ("http://", "is not an Alertmanager URL"),
        ("http://alertmanager:99999", "is not a valid URL"),
        ("http://alertmanager:port", "is not a valid URL"),
        ("https://admin:secret@alertmanager.example.org", "must not hold credentials"),
        ("https://alertmanager.example.org/?filter=x", "without a query or fragment"),
        ("", "is not an Alertmanager URL"),
    ],
)
def test_base_url_refuses_what_is_not_an_alertmanager_base_url(url, message):
    with pytest.raises(SilenceError, match=message) as caught:
        base_url(url)
    assert "secret" not in str(caught.value)  # credentials in a URL are never echoed


def test_run_marker_and_its_refusals():
    assert run_marker(f" {RUN} ") == MARKER
    for bad in ("", "   ", "run]x", "a[b", "two\nlines", "x" * 201, None):
        with pytest.raises(SilenceError, match="run_id"):
            run_marker(bad)


def test_api_matchers_converts_to_the_api_shape():
    given = [
        {"name": "clinic", "value": "kinshasa"},
        {"name": "alertname", "value": "Backup.*", "is_regex": True, "is_equal": True},
        {"name": "severity", "value": "info", "is_regex": False, "is_equal": False},
    ]
    assert api_matchers(given) == [
        {"name": "clinic", "value": "kinshasa", "isRegex": False, "isEqual": True},
        {"name": "alertname", "value": "Backup.*", "isRegex": True, "isEqual": True},
        {"name": "severity", "value": "info", "isRegex": False, "isEqual": False},
    ]
    assert matchers_text(api_matchers(given)) == '{clinic="kinshasa", alertname=~"Backup.*", severity!="info"}'


@pytest.mark.parametrize(
    ("matchers", "message"),
    [
        ([], "at least one matcher"),
        (None, "at least one matcher"),
        ([{"name": "clinic-id", "value": "x"}], "is not a label name"),
        ([{"name": "", "value": "x"}], "is not a label name"),
        ([{"name": "clinic", "value": 3}], "value must be a string"),
        ([{"name": "clinic", "value": "a"}, {"name": "clinic", "value": "a"}], "is given twice"),
        ([{"name": "clinic", "value": ""}], "also matches a missing label"),
        ([{"name": "clinic", "value": ".*", "is_regex": True}], "also matches a missing label"),
        ([{"name": "clinic", "value": "kinshasa", "is_equal": False}], "also matches a missing label"),
        ([{"name": "clinic", "value": "k.+", "is_regex": True, "is_equal": False}], "also matches a missing label"),
    ],
)
def test_api_matchers_refuses_silences_of_everything_and_bad_matchers(matchers, message):
    with pytest.raises(SilenceError, match=message):
        api_matchers(matchers)


def test_a_matcher_that_needs_the_label_makes_the_set_acceptable():
    # severity!="critical" alone would match alerts without the label; with clinic="kinshasa" it does not.
    api_matchers([{"name": "severity", "value": "critical", "is_equal": False}, *KINSHASA])
    api_matchers([{"name": "clinic", "value": "k.+", "is_regex": True}])
    api_matchers([{"name": "clinic", "value": r"\pL+", "is_regex": True}])  # RE2 syntax Python cannot read


def test_parse_instant_needs_an_offset():
    assert parse_instant("2026-11-29T04:00:00+01:00", "ends_at") == datetime(2026, 11, 29, 3, tzinfo=UTC)
    assert parse_instant("2026-11-29T03:00:00Z", "ends_at") == datetime(2026, 11, 29, 3, tzinfo=UTC)
    assert parse_instant("2026-11-29T03:00:00.123Z", "ends_at").microsecond == 123000
    assert parse_instant(datetime(2026, 11, 29, 4, tzinfo=UTC), "ends_at").hour == 4  # YAML's own timestamps
    with pytest.raises(SilenceError, match="ends_at '2026-11-29T04:00:00' has no UTC offset"):
        parse_instant("2026-11-29T04:00:00", "ends_at")
    with pytest.raises(SilenceError, match="starts_at 'tomorrow' is not an ISO 8601 date and time"):
        parse_instant("tomorrow", "starts_at")


def test_durations_are_written_as_maintenance_windows_write_them():
    assert parse_span("2h") == timedelta(hours=2)
    assert parse_span("1h30m") == timedelta(minutes=90)
    assert parse_span("90") == parse_span(90) == timedelta(minutes=90)  # a number is minutes, as in windows
    assert parse_span("1d") == timedelta(days=1)
    for bad, message in (("0", "more than 0"), ("2 hours", "is not a duration"), ("-5", "is not a duration")):
        with pytest.raises(SilenceError, match=message):
            parse_span(bad)


def test_silence_spec_appends_the_marker_once_and_refuses_both_ends():
    assert spec().comment == f"maintenance {MARKER}"
    assert spec(comment=f"maintenance {MARKER}").comment == f"maintenance {MARKER}"
    assert spec(comment="").comment == MARKER
    with pytest.raises(SilenceError, match="give ends_at or duration, not both"):
        spec(ends_at="2026-11-29T04:00:00+01:00", duration="2h")


# ---------------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------------


def test_no_silence_of_the_run_plans_a_creation_from_now():
    plan = plan_present(spec(), [], NOW)
    assert (plan.action, plan.current, plan.duplicates) == ("create", None, [])
    assert plan.payload == {
        "matchers": API_KINSHASA,
        "startsAt": "2026-11-29T01:00:00.000Z",
        "endsAt": "2026-11-29T03:00:00.000Z",
        "createdBy": "clinicops",
        "comment": f"maintenance {MARKER}",
    }


def test_the_same_end_to_the_second_keeps_the_silence():
    plan = plan_present(spec(), [silence(ends="2026-11-29T03:00:00.400Z")], NOW + timedelta(minutes=20))
    assert (plan.action, plan.current["id"], plan.payload) == ("keep", "s1", None)


def test_another_end_updates_the_silence_keeping_its_start():
    later = spec(ends_at="2026-11-29T05:00:00+01:00")
    plan = plan_present(later, [silence()], NOW + timedelta(minutes=20))
    assert plan.action == "update"
    assert plan.payload["id"] == "s1"
    assert plan.payload["startsAt"] == "2026-11-29T01:00:00.512Z"  # as Alertmanager holds it
    assert plan.payload["endsAt"] == "2026-11-29T04:00:00.000Z"


def test_another_comment_or_author_updates_the_silence():
    assert plan_present(spec(comment="upgrade"), [silence()], NOW).action == "update"
    assert plan_present(spec(created_by="ops"), [silence()], NOW).action == "update"


def test_silences_of_other_runs_people_matchers_or_expired_are_not_the_runs():
    others = [
        silence("person", comment="looking into the disk alert"),
        silence("other-run", comment="maintenance [clinicops run 20261122T010000Z-2.4.0]"),
        silence("prefix-run", comment=f"maintenance [clinicops run {RUN}-hotfix]"),
        silence("other-clinic", matchers=[{**API_KINSHASA[0], "value": "lubumbashi"}]),
        silence("more-matchers", matchers=[*API_KINSHASA, {"name": "team", "value": "db"}]),
        silence("expired", state="expired"),
    ]
    assert own_silences(others, spec()) == []
    assert plan_present(spec(), others, NOW).action == "create"


def test_matchers_compare_as_a_set_and_without_is_equal_as_equality():
    two = [{"name": "clinic", "value": "kinshasa"}, {"name": "team", "value": "db"}]
    held = [
        {"name": "team", "value": "db", "isRegex": False},
        {"name": "clinic", "value": "kinshasa", "isRegex": False},
    ]
    assert [item["id"] for item in own_silences([silence(matchers=held)], spec(two))] == ["s1"]


def test_duplicates_are_expired_keeping_the_one_ending_last():
    silences = [silence("early", ends="2026-11-29T02:00:00.000Z"), silence("late"), silence("pending", "pending")]
    plan = plan_present(spec(), silences, NOW)
    assert (plan.action, plan.current["id"]) == ("keep", "late")
    assert sorted(plan.duplicates) == ["early", "pending"]


def test_a_duration_counts_from_the_start_of_the_active_silence():
    held = silence(starts="2026-11-29T01:00:00.300Z", ends="2026-11-29T02:30:00.000Z")  # created with 90m
    assert plan_present(spec(duration="90m"), [held], NOW + timedelta(minutes=40)).action == "keep"
    plan = plan_present(spec(duration="2h"), [held], NOW + timedelta(minutes=40))
    assert (plan.action, plan.payload["endsAt"]) == ("update", "2026-11-29T03:00:00.300Z")


def test_a_duration_counts_from_starts_at_when_given():
    plan = plan_present(spec(starts_at="2026-11-29T03:00:00+01:00", duration="1h30m"), [], NOW)
    assert (plan.payload["startsAt"], plan.payload["endsAt"]) == (
        "2026-11-29T02:00:00.000Z",
        "2026-11-29T03:30:00.000Z",
    )


def test_a_pending_silence_follows_a_new_start():
    held = silence(state="pending", starts="2026-11-29T02:00:00.000Z", ends="2026-11-29T04:00:00.000Z")
    assert plan_present(spec(starts_at="2026-11-29T03:00:00+01:00", duration="2h"), [held], NOW).action == "keep"
    plan = plan_present(spec(duration="2h"), [held], NOW)  # no start: now
    assert plan.action == "update"
    assert (plan.payload["startsAt"], plan.payload["endsAt"]) == (
        "2026-11-29T01:00:00.000Z",
        "2026-11-29T03:00:00.000Z",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"ends_at": "2026-11-29T01:59:59+01:00"},
            r"the silence's end 2026-11-29T00:59:59.000Z is in the past \(now 2026-11-29T01:00",
        ),
        ({"ends_at": "2026-11-29T02:00:00+01:00"}, "is in the past"),
        ({"starts_at": "2026-11-29T05:00:00+01:00", "ends_at": "2026-11-29T04:00:00+01:00"}, "is not after its start"),
        (
            {"ends_at": "2026-12-06T02:00:01+01:00"},
            "end 2026-12-06T01:00:01.000Z is more than 7 d after its start 2026-11-29T01:00:00.000Z",
        ),
        ({"duration": "8d"}, "a maintenance silence lasts at most 7 d"),
    ],
)
def test_impossible_times_are_refused(options, message):
    with pytest.raises(SilenceError, match=message):
        plan_present(spec(**options), [], NOW)


def test_a_week_is_the_longest_silence():
    assert plan_present(spec(duration="7d"), [], NOW).action == "create"


def test_state_present_needs_an_end():
    bare = spec()._replace(ends_at=None)
    with pytest.raises(SilenceError, match="needs ends_at or duration"):
        plan_present(bare, [], NOW)


def test_a_silence_without_a_valid_end_from_alertmanager_is_reported():
    with pytest.raises(SilenceError, match="returned silence s1 without a valid endsAt"):
        plan_present(spec(), [silence(ends="soon")], NOW)


def test_format_instant_writes_utc_with_milliseconds():
    assert format_instant(parse_instant("2026-11-29T04:00:00.123456+01:00", "t")) == "2026-11-29T03:00:00.123Z"


# ---------------------------------------------------------------------------------------------
# The step, over a fake Alertmanager
# ---------------------------------------------------------------------------------------------


@dataclass
class FakeAlertmanager:
    """Silences in memory; POST with an id updates in place unless ``replace_on_update``."""

    held: list[dict] = field(default_factory=list)
    replace_on_update: bool = False
    writes: list[tuple] = field(default_factory=list)

    def silences(self):
        return [dict(item) for item in self.held]

    def silence(self, silence_id):
        return dict(next(item for item in self.held if item["id"] == silence_id))

    def post(self, payload):
        self.writes.append(("POST", payload))
        previous = next((item for item in self.held if item["id"] == payload.get("id")), None)
        if previous is not None and not self.replace_on_update:
            previous.update(payload)
            return previous["id"]
        if previous is not None:
            self._expire(previous)
        created = {**payload, "id": f"new-{len(self.writes)}", "status": {"state": "active"}}
        self.held.append(created)
        return created["id"]

    def expire(self, silence_id):
        self.writes.append(("DELETE", silence_id))
        self._expire(self.silence_ref(silence_id))

    def silence_ref(self, silence_id):
        return next(item for item in self.held if item["id"] == silence_id)

    @staticmethod
    def _expire(item):
        item["status"] = {"state": "expired"}


def test_present_in_check_mode_reports_the_creation_and_writes_nothing():
    fake = FakeAlertmanager()
    result = SilenceKeeper(fake, spec(), NOW, check_mode=True).present()
    assert (result["changed"], result["silence_action"], result["silence_id"], fake.writes) == (
        True,
        "created",
        None,
        [],
    )
    assert result["silence"]["endsAt"] == "2026-11-29T03:00:00.000Z"
    assert result["silence"]["status"] == {"state": "active"}
    assert result["msg"] == (
        'would create silence for {clinic="kinshasa"} of run 20261129T010000Z-2.4.1 until 2026-11-29T03:00:00.000Z'
    )
    assert result["diff"] == {
        "before": {},
        "after": {
            "new": {
                "matchers": '{clinic="kinshasa"}',
                "startsAt": "2026-11-29T01:00:00.000Z",
                "endsAt": "2026-11-29T03:00:00.000Z",
                "comment": f"maintenance {MARKER}",
                "createdBy": "clinicops",
                "state": "active",
            }
        },
    }


def test_present_creates_then_keeps():
    fake = FakeAlertmanager()
    keeper = SilenceKeeper(fake, spec(), NOW)
    created = keeper.present()
    assert (created["changed"], created["silence_action"], created["silence_id"]) == (True, "created", "new-1")
    assert keeper.done == ["created silence new-1"]
    again = SilenceKeeper(fake, spec(), NOW + timedelta(minutes=5)).present()
    assert (again["changed"], again["silence_action"], again["silence_id"]) == (False, "unchanged", "new-1")
    assert len(fake.writes) == 1


def test_an_update_alertmanager_could_not_make_in_place_is_reported_as_replaced():
    fake = FakeAlertmanager([silence()], replace_on_update=True)
    result = SilenceKeeper(fake, spec(ends_at="2026-11-29T05:00:00+01:00"), NOW).present()
    assert (result["silence_action"], result["silence_id"], result["expired"]) == ("replaced", "new-1", ["s1"])
    assert "Alertmanager expired silence s1 and created this one" in result["msg"]


def test_present_expires_duplicates_and_says_so():
    fake = FakeAlertmanager([silence("late"), silence("early", ends="2026-11-29T02:00:00.000Z")])
    result = SilenceKeeper(fake, spec(), NOW).present()
    assert (result["changed"], result["silence_action"], result["expired"]) == (True, "unchanged", ["early"])
    assert fake.writes == [("DELETE", "early")]
    assert result["msg"].endswith("; expired the run's duplicate silence(s) early")


def test_absent_expires_the_runs_silences_only_outside_check_mode():
    held = [silence("s1"), silence("person", comment="looking")]
    fake = FakeAlertmanager(held)
    checked = SilenceKeeper(fake, spec(), NOW, check_mode=True).absent()
    assert (checked["changed"], checked["expired"], fake.writes) == (True, ["s1"], [])
    assert checked["msg"].startswith("would expire silence s1 of run")
    done = SilenceKeeper(fake, spec(), NOW).absent()
    assert (done["changed"], done["silence_action"], done["expired"]) == (True, "expired", ["s1"])
    assert done["silence"]["status"] == {"state": "expired"}
    assert fake.silence("person")["status"] == {"state": "active"}
    again = SilenceKeeper(fake, spec(), NOW).absent()
    assert (again["changed"], again["silence_action"], again["expired"], again["silence"]) == (
        False,
        "absent",
        [],
        None,
    )


# ---------------------------------------------------------------------------------------------
# The HTTP client, against a loopback server
# ---------------------------------------------------------------------------------------------


@dataclass
class Recorded:
    """What the loopback server was sent, and what it answers next: (status, body) per request."""

    answers: list[tuple[int, str]] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)


@pytest.fixture
def loopback_alertmanager() -> Iterator[tuple[str, Recorded]]:
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            recorded.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": {name.lower(): value for name, value in self.headers.items()},
                    "body": body,
                }
            )
            status, text = recorded.answers.pop(0)
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def do_DELETE(self) -> None:
            self._answer()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/prefix/", recorded
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_the_client_sends_json_with_the_token_under_the_route_prefix(loopback_alertmanager):
    url, recorded = loopback_alertmanager
    recorded.answers = [(200, '{"silenceID": "abc"}'), (200, "[]"), (200, "")]
    transport = open_url_transport(bearer_token="t0ken", headers={"X-Scope-OrgID": "clinics"})
    client = AlertmanagerClient(url, transport)
    assert client.post({"matchers": API_KINSHASA}) == "abc"
    assert client.silences() == []
    client.expire("a/b")
    post, get, delete = recorded.requests
    assert (post["method"], post["path"], json.loads(post["body"])) == (
        "POST",
        "/prefix/api/v2/silences",
        {"matchers": API_KINSHASA},
    )
    assert post["headers"]["authorization"] == "Bearer t0ken"
    assert post["headers"]["x-scope-orgid"] == "clinics"
    assert post["headers"]["content-type"] == "application/json"
    assert (get["method"], get["path"]) == ("GET", "/prefix/api/v2/silences")
    assert (delete["method"], delete["path"]) == ("DELETE", "/prefix/api/v2/silence/a%2Fb")


def test_the_client_sends_basic_auth_up_front(loopback_alertmanager):
    url, recorded = loopback_alertmanager
    recorded.answers = [(200, "[]")]
    AlertmanagerClient(url, open_url_transport(url_username="ops", url_password="pw")).silences()
    assert recorded.requests[0]["headers"]["authorization"] == "Basic b3BzOnB3"


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            '"silence invalid: at least one matcher must not match the empty string"',
            "POST /api/v2/silences with HTTP 400: silence invalid: at least one matcher",
        ),
        (
            422,
            '{"code": 612, "message": "matchers in body should have at least 1 items"}',
            "HTTP 422: matchers in body should have at least 1 items",
        ),
        (502, "<html>Bad Gateway</html>", "HTTP 502: <html>Bad Gateway</html>"),
        (200, "<html>login</html>", "something else than JSON"),
        (200, "{}", "returned no silenceID"),
    ],
)
def test_the_client_reports_alertmanagers_own_error_message(loopback_alertmanager, status, body, message):
    url, recorded = loopback_alertmanager
    recorded.answers = [(status, body)]
    with pytest.raises(SilenceError, match=message):
        AlertmanagerClient(url, open_url_transport()).post({"matchers": API_KINSHASA})


def test_a_listing_that_is_not_a_list_is_not_an_alertmanager(loopback_alertmanager):
    url, recorded = loopback_alertmanager
    recorded.answers = [(200, '{"status": "ok"}')]
    with pytest.raises(SilenceError, match="did not return a list of silences"):
        AlertmanagerClient(url, open_url_transport()).silences()


def test_a_closed_port_is_unreachable(closed_port):
    client = AlertmanagerClient(f"http://127.0.0.1:{closed_port}", open_url_transport(timeout=2))
    with pytest.raises(AlertmanagerUnreachableError, match=rf"127.0.0.1:{closed_port} is unreachable: .*refused"):
        client.silences()


def test_a_server_that_never_answers_times_out_as_unreachable(tcp_server):
    released = threading.Event()
    host, port = tcp_server(lambda connection: connection.recv(65536) and released.wait(30))
    client = AlertmanagerClient(f"http://{host}:{port}", open_url_transport(timeout=1))
    try:
        with pytest.raises(AlertmanagerUnreachableError, match=r"is unreachable: .*timed out"):
            client.silences()
    finally:
        released.set()
