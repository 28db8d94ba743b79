"""The pg_upkeep module: its planning, quoting and refusals, and main() driven against a fake PostgreSQL driver.

The fake answers the module's catalog queries from an in-memory database, and plays VACUUM, REINDEX,
DROP INDEX and pg_terminate_backend on it (statistics move, interrupted rebuilds leave ``_ccnew``), so
every decision is checked without a server. The real server is exercised by
tests/integration/test_pg_upkeep.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.pg_upkeep import (
    UpkeepError,
    check_identifier,
    connection_usage,
    mask_literals,
    parse_filters,
    plan_long_queries,
    plan_reindex,
    quote_ident,
    reindex_statement,
    select_tables,
    short_query,
    skip_reason,
    statement_time_columns,
    vacuum_statement,
)
from ansible_collections.clinicops.runbook.plugins.modules import pg_upkeep
from hypothesis import given
from hypothesis import strategies as st

OWN_PID = 4000
NOW = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


# -- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["patients", "audit_log", "_private", "Table2", "a" * 63])
def test_plain_identifiers_are_accepted(name: str) -> None:
    assert check_identifier(name, "table") == name


@pytest.mark.parametrize(
    "name",
    [
        "patients; DROP TABLE patients",
        "patients--",
        'we"ird',
        "o'brien",
        "$(rm -rf /)",
        "`id`",
        "a b",
        "pat\n",
        "pat\x00",
        "1patients",
        "",
        "a" * 64,
        "pätients",
    ],
)
def test_names_with_shell_or_sql_characters_are_refused(name: str) -> None:
    with pytest.raises(UpkeepError, match=r"^refusing table .*not a plain PostgreSQL identifier.*nothing was done$"):
        check_identifier(name, "table")


@given(st.text(max_size=70))
def test_whatever_is_accepted_is_a_plain_identifier(name: str) -> None:
    try:
        check_identifier(name, "table")
    except UpkeepError:
        return
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name)
    assert quote_ident(name) == f'"{name}"'


@given(st.text(st.characters(blacklist_characters="\x00"), max_size=80))
def test_quote_ident_always_yields_one_quoted_identifier(name: str) -> None:
    quoted = quote_ident(name)
    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    assert inner.replace('""', "").count('"') == 0  # every quote inside is doubled
    assert inner.replace('""', '"') == name


def test_quote_ident_refuses_a_nul_byte() -> None:
    with pytest.raises(UpkeepError, match="NUL"):
        quote_ident("pat\x00ients")


def test_filters_are_split_and_validated() -> None:
    assert parse_filters(["patients", "billing.invoices"], ["public", "billing"]) == (
        [(None, "patients"), ("billing", "invoices")],
        ["public", "billing"],
    )


@pytest.mark.parametrize(
    ("tables", "schemas", "message"),
    [
        (["a.b.c"], [], "give 'table' or 'schema.table'"),
        (["public.pat;ients"], [], "refusing table 'pat;ients'"),
        (["bad schema.patients"], [], "refusing schema of table 'bad schema.patients'"),
        ([], ["pg_catalog"], "system catalogs are not maintained"),
        ([], ["pg_toast"], "system catalogs are not maintained"),
        ([], ["information_schema"], "system catalogs are not maintained"),
        ([], ["public; SELECT 1"], "refusing schema 'public; SELECT 1'"),
    ],
)
def test_bad_filters_are_refused(tables: list[str], schemas: list[str], message: str) -> None:
    with pytest.raises(UpkeepError, match=re.escape(message)):
        parse_filters(tables, schemas)


# -- planning --------------------------------------------------------------------------------------

CATALOG = [("billing", "invoices"), ("billing", "patients"), ("public", "appointments"), ("public", "patients")]


def test_no_filter_selects_every_table() -> None:
    assert select_tables(CATALOG, [], []) == (CATALOG, [])


def test_schema_filter_narrows_and_bare_names_match_in_every_selected_schema() -> None:
    assert select_tables(CATALOG, [], ["billing"])[0] == [("billing", "invoices"), ("billing", "patients")]
    assert select_tables(CATALOG, [(None, "patients")], [])[0] == [("billing", "patients"), ("public", "patients")]
    assert select_tables(CATALOG, [(None, "patients")], ["public"])[0] == [("public", "patients")]


def test_a_table_not_found_is_reported_skipped_not_an_error() -> None:
    selected, skipped = select_tables(CATALOG, [("public", "invoices"), (None, "appointments")], [])
    assert selected == [("public", "appointments")]
    assert skipped == [{"kind": "table", "name": "public.invoices", "reason": "no such table in this database"}]


def index(name: str, table: str = "patients", valid: bool = True, exclusion: bool = False) -> dict[str, Any]:
    return {"schema": "public", "table": table, "index": name, "valid": valid, "exclusion": exclusion, "size": 8192}


INDEXES = [
    index("patients_pkey"),
    index("patients_email_ccnew", valid=False),
    index("patients_email_ccold1", valid=False),
    index("patients_email"),
    index("patients_name_half_built", valid=False),  # a failed CREATE INDEX CONCURRENTLY: rebuilt, not a leftover
    index("rooms_booking_excl", table="rooms", exclusion=True),
    index("appointments_pkey", table="appointments"),
]
TABLES = [("public", "patients"), ("public", "rooms")]


def test_concurrent_plan_skips_exclusion_indexes_and_sets_leftovers_aside() -> None:
    rebuilds, leftovers, skipped = plan_reindex(INDEXES, TABLES, "concurrently", 150008, fallback=False)
    assert [(item["index"], item["mode"]) for item in rebuilds] == [
        ("patients_pkey", "concurrently"),
        ("patients_email", "concurrently"),
        ("patients_name_half_built", "concurrently"),
    ]  # appointments_pkey: its table is not selected
    assert [item["index"] for item in leftovers] == ["patients_email_ccnew", "patients_email_ccold1"]
    assert skipped == [
        {
            "kind": "index",
            "name": "rooms_booking_excl",
            "reason": "index of an exclusion constraint: cannot be rebuilt concurrently; "
            "set reindex_fallback to rebuild it blocking (takes locks)",
        }
    ]


def test_fallback_rebuilds_an_exclusion_index_blocking_with_a_note() -> None:
    rebuilds, _leftovers, skipped = plan_reindex(INDEXES, TABLES, "concurrently", 150008, fallback=True)
    assert skipped == []
    excl = next(item for item in rebuilds if item["index"] == "rooms_booking_excl")
    assert excl["mode"] == "blocking" and excl["note"].endswith("rebuilt blocking (reindex_fallback)")


def test_postgresql_11_has_no_concurrent_rebuild() -> None:
    rebuilds, _leftovers, skipped = plan_reindex(INDEXES, TABLES, "concurrently", 110022, fallback=False)
    assert rebuilds == []
    assert all(item["reason"].startswith("PostgreSQL 11 has no REINDEX CONCURRENTLY") for item in skipped)
    rebuilds, _leftovers, skipped = plan_reindex(INDEXES, TABLES, "concurrently", 110022, fallback=True)
    assert skipped == [] and {item["mode"] for item in rebuilds} == {"blocking"}


def test_blocking_mode_rebuilds_everything_but_leftovers() -> None:
    rebuilds, leftovers, skipped = plan_reindex(INDEXES, TABLES, "blocking", 150008, fallback=False)
    assert len(rebuilds) == 4 and {item["mode"] for item in rebuilds} == {"blocking"} and skipped == []
    assert len(leftovers) == 2


def test_reindex_none_still_finds_leftovers() -> None:
    assert plan_reindex(INDEXES, TABLES, "none", 150008, fallback=False) == ([], INDEXES[1:3], [])


def test_a_valid_index_named_like_a_leftover_is_an_ordinary_index() -> None:
    rebuilds, leftovers, _skipped = plan_reindex([index("x_ccnew")], TABLES, "concurrently", 150008, False)
    assert [item["index"] for item in rebuilds] == ["x_ccnew"] and leftovers == []


def test_statements_quote_every_name() -> None:
    assert vacuum_statement("analyze", "public", "patients") == 'VACUUM (ANALYZE) "public"."patients"'
    assert vacuum_statement("full", "public", 'we"ird') == 'VACUUM (FULL, ANALYZE) "public"."we""ird"'
    assert vacuum_statement("analyze") == "VACUUM (ANALYZE)"
    assert reindex_statement("concurrently", "public", "p_pkey") == 'REINDEX INDEX CONCURRENTLY "public"."p_pkey"'
    assert reindex_statement("blocking", "public", "p_pkey") == 'REINDEX INDEX "public"."p_pkey"'


# -- errors, texts, long queries, connections ---------------------------------------------------------


@dataclass
class FakeError(Exception):
    """A driver error: psycopg names the state ``sqlstate``, psycopg2 ``pgcode``."""

    message: str
    sqlstate: str | None = None

    def __str__(self) -> str:
        return self.message


@pytest.mark.parametrize(
    ("state", "message", "reason"),
    [
        ("55P03", "canceling statement due to lock timeout", "lock timeout (5 s)"),
        ("57014", "canceling statement due to statement timeout", "statement timeout (900 s)"),
        ("57014", "canceling statement due to user request", "cancelled: canceling statement due to user request"),
        ("40P01", "deadlock detected\nDETAIL: ...", "deadlock with another session"),
        ("42501", "must be owner of table audit_log", "not permitted: must be owner of table audit_log"),
        ("42P01", "relation does not exist", None),
        (None, "server closed the connection unexpectedly", None),
    ],
)
def test_skip_reasons(state: str | None, message: str, reason: str | None) -> None:
    assert skip_reason(FakeError(message, state), 5, 900) == reason


def test_psycopg2_pgcode_is_read_too() -> None:
    error = SimpleNamespace(pgcode="55P03")
    assert skip_reason(error, 1.5, 0) == "lock timeout (1.5 s)"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("SELECT * FROM patients WHERE name = 'Jane Doe'", "SELECT * FROM patients WHERE name = '?'"),
        ("UPDATE p SET note = 'it''s ok' WHERE id = $1", "UPDATE p SET note = '?' WHERE id = $1"),
        ("SELECT $tag$secret body$tag$, $$x$$, $1", "SELECT '?', '?', $1"),
        ("INSERT INTO t VALUES ('unterminated", "INSERT INTO t VALUES ('?'"),
        ("SELECT pg_sleep(600)", "SELECT pg_sleep(600)"),
    ],
)
def test_literals_are_masked(text: str, shown: str) -> None:
    assert mask_literals(text) == shown


def test_short_query_squeezes_and_cuts() -> None:
    assert short_query("SELECT\n   1,\t'secret'", 200) == "SELECT 1, '?'"
    assert short_query("SELECT " + "x, " * 100, 20) == "SELECT x, x, x, x..."
    assert len(short_query("SELECT " + "x, " * 100, 20)) == 20


def long_query(pid: int, superuser: bool = False, backend_type: str = "client backend", **extra: Any) -> dict:
    return dict(pid=pid, superuser=superuser, replication=False, backend_type=backend_type, **extra)


def test_only_plain_sessions_are_terminated_by_default() -> None:
    queries = [
        long_query(1),
        long_query(2, superuser=True),
        long_query(3, backend_type="walsender"),
        long_query(OWN_PID),
    ]
    planned = plan_long_queries(queries, OWN_PID, terminate=True, terminate_superuser=False)
    assert [(query["action"], query.get("reason", "")) for query in planned] == [
        ("terminate", ""),
        ("protected", "superuser session (set terminate_superuser to include it)"),
        ("protected", "replication connection (set terminate_superuser to include it)"),
        ("protected", "the module's own backend"),
    ]
    everyone = plan_long_queries(queries, OWN_PID, terminate=True, terminate_superuser=True)
    assert [query["action"] for query in everyone] == ["terminate", "terminate", "terminate", "protected"]
    assert {query["action"] for query in plan_long_queries(queries, OWN_PID, False, True)} == {"reported"}


def test_connection_usage_counts_what_is_left_for_the_app() -> None:
    usage = connection_usage({"total": 40}, max_connections=100, superuser_reserved=3, reserved=2)
    assert usage["available"] == 55 and usage["usage_percent"] == 40.0
    assert connection_usage({"total": 99}, 100, 3)["available"] == 0


@pytest.mark.parametrize(
    ("version", "columns"),
    [("1.10", ("total_exec_time", "mean_exec_time")), ("1.8", ("total_exec_time", "mean_exec_time")),
     ("1.7", ("total_time", "mean_time")), ("garbage", ("total_time", "mean_time"))],
)  # fmt: skip
def test_pg_stat_statements_columns_follow_its_version(version: str, columns: tuple[str, str]) -> None:
    assert statement_time_columns(version) == columns


# -- main() against a fake server ------------------------------------------------------------------


@dataclass
class FakeServer:
    """An in-memory clinic database answering the module's queries; records what the module changed."""

    version_num: int = 150008
    tables: list[tuple[str, str]] = field(default_factory=lambda: [("public", "audit_log"), ("public", "patients")])
    indexes: list[dict[str, Any]] = field(
        default_factory=lambda: [index("audit_log_pkey", table="audit_log"), index("patients_pkey")]
    )
    long_queries: list[dict[str, Any]] = field(default_factory=list)
    extension: tuple[str, str] | None = None
    statements_error: Exception | None = None
    failures: dict[str, Exception] = field(default_factory=dict)  # statement -> error it raises
    silently_skipped: set[str] = field(default_factory=set)  # tables VACUUM leaves alone (not the owner)
    in_recovery: bool = False
    executed: list[tuple[str, Any]] = field(default_factory=list)
    stats: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    terminated: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        for pair in self.tables:
            self.stats[pair] = dict(
                last_vacuum=None, last_autovacuum=None, last_analyze=None, last_autoanalyze=NOW - timedelta(days=2),
                vacuum_count=0, analyze_count=0, live=24, dead=7,
            )  # fmt: skip

    @property
    def changes(self) -> list[str]:
        verbs = ("VACUUM", "REINDEX", "DROP", "SELECT pg_terminate_backend")
        return [query for query, _args in self.executed if query.startswith(verbs)]

    def answer(self, query: str, args: Any) -> list[tuple[Any, ...]]:
        self.executed.append((query, args))
        if query in self.failures:
            if query.startswith("REINDEX INDEX CONCURRENTLY"):  # cancelled once started: its _ccnew stays, invalid
                name = re.search(r'"([^"]+)"$', query).group(1)
                self.indexes.append(index(name + "_ccnew", table=self.table_of(name), valid=False))
            raise self.failures[query]
        if query == pg_upkeep.SERVER_SQL:
            return [("15.8", self.version_num, self.in_recovery, OWN_PID)]
        if query == pg_upkeep.CONNECTIONS_SQL:
            return [(7, 2, 4, 1, 6, 100, 3, 0)]
        if query == pg_upkeep.LONG_QUERIES_SQL:
            return [self.long_query_row(query) for query in self.long_queries]
        if query == pg_upkeep.TERMINATE_SQL:
            self.terminated.append(args[0])
            return [(True,)]
        if query == pg_upkeep.BACKEND_ALIVE_SQL:
            return [(0 if args[0] in self.terminated else 1,)]
        if query == pg_upkeep.TABLES_SQL:
            return sorted(self.tables)
        if query == pg_upkeep.INDEXES_SQL:
            return [(i["schema"], i["table"], i["index"], i["valid"], i["exclusion"], i["size"]) for i in self.indexes]
        if query == pg_upkeep.STATS_SQL:
            return [(schema, table, *values.values()) for (schema, table), values in self.stats.items()]
        if query == pg_upkeep.INDEX_SIZE_SQL:
            return [(4096,)]
        if query == pg_upkeep.EXTENSION_SQL:
            return [self.extension] if self.extension else []
        if "pg_stat_statements s" in query:
            if self.statements_error:
                raise self.statements_error
            return [("SELECT * FROM patients WHERE name = $1 AND note = 'x'", "clinic_app", 12, 480.5, 40.04, 12)]
        if query.startswith("VACUUM"):
            self.vacuum(query)
        elif query.startswith("DROP INDEX"):
            name = re.search(r'"([^"]+)"$', query).group(1)
            self.indexes = [item for item in self.indexes if item["index"] != name]
        return []

    def long_query_row(self, query: dict[str, Any]) -> tuple[Any, ...]:
        started = NOW - timedelta(seconds=query["seconds"])
        return (query["pid"], query["user"], "psql", None, "active", "client backend", started - timedelta(hours=1),
                started, float(query["seconds"]), query["text"], query.get("superuser", False), False)  # fmt: skip

    def vacuum(self, statement: str) -> None:
        names = re.findall(r'"([^"]+)"\."([^"]+)"', statement) or self.tables
        for pair in names:
            if pair[1] in self.silently_skipped:
                continue
            stats = self.stats[pair]
            if "FULL" not in statement:
                stats.update(last_vacuum=NOW, vacuum_count=stats["vacuum_count"] + 1, dead=0)
            stats.update(last_analyze=NOW, analyze_count=stats["analyze_count"] + 1)

    def table_of(self, index_name: str) -> str:
        return next(item["table"] for item in self.indexes if item["index"] == index_name)


class FakeCursor:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, query: str, args: Any = None) -> None:
        self.rows = list(self.server.answer(query, args))

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


class FakeConnection:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.autocommit = False
        self.closed = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self.server)

    def close(self) -> None:
        self.closed = True


RunModule = Callable[..., dict[str, Any]]


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch, server: FakeServer) -> Iterator[list[dict[str, Any]]]:
    """Install the fake driver; returns the keyword arguments of every connect()."""
    calls: list[dict[str, Any]] = []
    connections: list[FakeConnection] = []

    def connect(**params: Any) -> FakeConnection:
        calls.append(params)
        connections.append(FakeConnection(server))
        return connections[-1]

    monkeypatch.setattr(pg_upkeep, "pg_driver", SimpleNamespace(connect=connect, Error=FakeError))
    monkeypatch.setattr(pg_upkeep, "READ_BACK_WAIT", 0.0)
    monkeypatch.setattr(pg_upkeep, "POLL", 0.0)
    yield calls
    assert all(conn.closed and conn.autocommit for conn in connections)


@pytest.fixture
def run_module(connects: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> RunModule:
    def run(check_mode: bool = False, **args: Any) -> dict[str, Any]:
        args = {"database": "clinicdb", "_ansible_check_mode": check_mode, **args}
        with patch_module_args(args), pytest.raises(SystemExit):
            pg_upkeep.main()
        return json.loads(capsys.readouterr().out)

    return run


def test_a_refused_name_fails_before_connecting(run_module: RunModule, connects: list[dict]) -> None:
    result = run_module(tables=["patients; DROP TABLE patients"])
    assert result["failed"]
    assert result["msg"] == (
        "upkeep of clinicdb failed: refusing table 'patients; DROP TABLE patients': not a plain PostgreSQL "
        "identifier (letters, digits and '_', at most 63, not starting with a digit); nothing was done"
    )
    assert connects == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(database="clinic db"), "refusing database 'clinic db'"),
        (dict(vacuum_scope="database", tables=["patients"]), "cannot be combined with tables or schemas"),
        (dict(lock_timeout=-1), "lock_timeout must not be negative"),
        (dict(schemas=["pg_catalog"]), "system catalogs are not maintained"),
    ],
)
def test_refusals_do_nothing(run_module: RunModule, connects: list[dict], args: dict, message: str) -> None:
    result = run_module(**args)
    assert result["failed"] and message in result["msg"] and result["msg"].endswith("nothing was done")
    assert connects == []


def test_check_mode_plans_everything_and_changes_nothing(run_module: RunModule, server: FakeServer) -> None:
    server.long_queries = [dict(pid=77, user="clinic_app", seconds=900, text="SELECT pg_sleep(900)")]
    server.indexes.append(index("patients_pkey_ccnew", valid=False))
    result = run_module(check_mode=True, terminate_long_queries=True, drop_invalid_leftovers=True)
    assert server.changes == []
    assert (pg_upkeep.READ_ONLY_SQL, None) in server.executed
    assert result["changed"]
    assert [entry["status"] for entry in result["vacuum"]] == ["would vacuum", "would vacuum"]
    assert [entry["status"] for entry in result["reindex"]] == ["would reindex", "would reindex"]
    assert [entry["status"] for entry in result["leftovers"]] == ["would drop"]
    assert [query["action"] for query in result["long_queries"]] == ["would terminate"]
    assert result["queries"] == [
        "SELECT pg_terminate_backend(77)",
        'DROP INDEX CONCURRENTLY IF EXISTS "public"."patients_pkey_ccnew"',
        'VACUUM (ANALYZE) "public"."audit_log"',
        'VACUUM (ANALYZE) "public"."patients"',
        'REINDEX INDEX CONCURRENTLY "public"."audit_log_pkey"',
        'REINDEX INDEX CONCURRENTLY "public"."patients_pkey"',
    ]
    assert result["summary"].startswith("clinicdb: check mode, would vacuum (analyze) 2/2 tables, would reindex 2/2")


def test_a_run_vacuums_rebuilds_and_proves_it_from_the_statistics(
    run_module: RunModule, server: FakeServer, connects: list[dict]
) -> None:
    server.indexes = [index("patients_pkey")]
    result = run_module(login_user="postgres", lock_timeout=3, statement_timeout=600)
    assert connects == [
        {"dbname": "clinicdb", "user": "postgres", "host": "/var/run/postgresql", "port": 5432, "connect_timeout": 10,
         "application_name": "clinicops pg_upkeep"}
    ]  # fmt: skip
    assert (pg_upkeep.SESSION_SQL, ("3000ms", "600000ms")) in server.executed
    assert result["changed"] and not result.get("failed")
    assert server.changes == [
        'VACUUM (ANALYZE) "public"."audit_log"',
        'VACUUM (ANALYZE) "public"."patients"',
        'REINDEX INDEX CONCURRENTLY "public"."patients_pkey"',
    ]
    patients = result["vacuum"][1]
    assert patients["status"] == "vacuumed" and patients["seconds"] >= 0
    assert patients["last_vacuum"] == patients["last_analyze"] == "2026-11-29T02:00:00+00:00"
    assert (patients["vacuum_count"], patients["dead_tuples_before"], patients["dead_tuples"]) == (1, 7, 0)
    assert result["reindex"][0] | {"seconds": 0} == {
        "name": "patients_pkey", "schema": "public", "table": "patients", "index": "patients_pkey",
        "mode": "concurrently", "was_invalid": False, "size_before": 8192, "size_after": 4096, "status": "reindexed",
        "seconds": 0,
    }  # fmt: skip
    assert result["skipped_items"] == [] and result["leftovers"] == []
    assert result["connections"]["available"] == 90
    assert result["pg_stat_statements"] == "not installed" and result["slow_statements"] == []
    assert result["summary"].startswith(
        "clinicdb: vacuumed (analyze) 2/2 tables, reindexed 1/1 indexes, no long queries (over 300 s), 0 skipped, "
        "connections 7/100, pg_stat_statements: not installed, "
    )


def test_a_lock_timeout_skips_the_table_and_the_rest_goes_on(run_module: RunModule, server: FakeServer) -> None:
    server.failures['VACUUM (ANALYZE) "public"."audit_log"'] = FakeError("canceling due to lock timeout", "55P03")
    result = run_module(reindex="none")
    assert not result.get("failed") and result["changed"]
    assert [(entry["status"], entry.get("reason")) for entry in result["vacuum"]] == [
        ("skipped", "lock timeout (5 s)"),
        ("vacuumed", None),
    ]
    assert result["skipped_items"] == [{"kind": "table", "name": "audit_log", "reason": "lock timeout (5 s)"}]
    assert result["vacuum"][0]["last_vacuum"] is None  # read back: it really was not vacuumed

    strict = run_module(reindex="none", fail_on_skip=True)
    assert strict["failed"]
    assert strict["msg"].startswith(
        "upkeep of clinicdb skipped 1 item(s) (fail_on_skip): table audit_log: lock timeout"
    )


def test_another_error_fails_the_task_after_the_rest_was_done(run_module: RunModule, server: FakeServer) -> None:
    server.failures['VACUUM (ANALYZE) "public"."audit_log"'] = FakeError("could not open file: I/O error", "58030")
    result = run_module()
    assert result["failed"]
    assert result["msg"].startswith("upkeep of clinicdb: 1 step(s) failed: vacuum audit_log: could not open file")
    assert 'REINDEX INDEX CONCURRENTLY "public"."patients_pkey"' in server.changes
    assert result["vacuum"][1]["status"] == "vacuumed"


def test_a_table_postgresql_silently_skips_is_reported_skipped(run_module: RunModule, server: FakeServer) -> None:
    server.silently_skipped = {"audit_log"}
    result = run_module(reindex="none")
    assert result["vacuum"][0]["status"] == "skipped"
    assert "pg_stat_user_tables shows no new vacuum" in result["vacuum"][0]["reason"]


def test_vacuum_full_is_proven_by_the_analyze(run_module: RunModule, server: FakeServer) -> None:
    result = run_module(vacuum="full", reindex="none", tables=["patients"])
    assert server.changes == ['VACUUM (FULL, ANALYZE) "public"."patients"']
    entry = result["vacuum"][0]
    assert entry["status"] == "vacuumed" and entry["last_vacuum"] is None and entry["analyze_count"] == 1


def test_database_scope_is_one_statement(run_module: RunModule, server: FakeServer) -> None:
    result = run_module(vacuum_scope="database", reindex="none")
    assert server.changes == ["VACUUM (ANALYZE)"]
    assert [entry["status"] for entry in result["vacuum"]] == ["vacuumed", "vacuumed"]


def test_long_queries_are_terminated_but_never_a_superuser_by_default(
    run_module: RunModule, server: FakeServer
) -> None:
    server.long_queries = [
        dict(pid=71, user="clinic_app", seconds=700, text="SELECT * FROM patients WHERE name = 'Jane Doe'"),
        dict(pid=72, user="postgres", seconds=650, text="SELECT pg_sleep(900)", superuser=True),
    ]
    result = run_module(terminate_long_queries=True, vacuum="none", reindex="none")
    assert server.terminated == [71]
    first, second = result["long_queries"]
    assert first["action"] == "terminated" and first["query"] == "SELECT * FROM patients WHERE name = '?'"
    assert first["query_start"] == "2026-11-29T01:48:20+00:00" and "backend_start" not in first
    assert second["action"] == "protected"
    assert result["terminated"] == [71] and result["changed"]
    assert result["skipped_items"] == [
        {"kind": "query", "name": "pid 72", "reason": "superuser session (set terminate_superuser to include it)"}
    ]


def test_an_interrupted_concurrent_rebuild_leaves_nothing_behind(run_module: RunModule, server: FakeServer) -> None:
    """A cancelled REINDEX CONCURRENTLY leaves an invalid _ccnew; the module drops its own, and stops queueing."""
    server.long_queries = [dict(pid=72, user="postgres", seconds=650, text="SELECT pg_sleep(900)", superuser=True)]
    timeout = FakeError("canceling statement due to lock timeout", "55P03")
    server.failures['REINDEX INDEX CONCURRENTLY "public"."audit_log_pkey"'] = timeout
    result = run_module(vacuum="none")
    assert [(entry["index"], entry["status"]) for entry in result["reindex"]] == [
        ("audit_log_pkey", "skipped"),
        ("patients_pkey", "skipped"),
    ]
    assert "older transaction" in result["reindex"][0]["reason"]
    assert result["reindex"][1]["reason"].startswith("not tried: it would wait for the same long queries (pid 72)")
    assert server.changes == [
        'REINDEX INDEX CONCURRENTLY "public"."audit_log_pkey"',
        'DROP INDEX CONCURRENTLY IF EXISTS "public"."audit_log_pkey_ccnew"',
    ]
    assert result["leftovers"] == [
        {"name": "audit_log_pkey_ccnew", "schema": "public", "table": "audit_log", "index": "audit_log_pkey_ccnew",
         "created_by_this_run": True, "status": "dropped", "seconds": result["leftovers"][0]["seconds"]}
    ]  # fmt: skip


def test_earlier_leftovers_are_kept_unless_asked(run_module: RunModule, server: FakeServer) -> None:
    server.indexes.append(index("patients_pkey_ccnew", valid=False))
    kept = run_module(vacuum="none", reindex="none")
    assert kept["leftovers"][0]["status"] == "kept" and server.changes == []
    assert "set drop_invalid_leftovers" in kept["skipped_items"][0]["reason"]
    dropped = run_module(vacuum="none", reindex="none", drop_invalid_leftovers=True)
    assert dropped["leftovers"][0]["status"] == "dropped" and dropped["changed"]


def test_postgresql_11_skips_concurrent_rebuilds(run_module: RunModule, server: FakeServer) -> None:
    server.version_num = 110022
    result = run_module(vacuum="none")
    assert result["reindex"] == [] and not result["changed"]
    assert len(result["skipped_items"]) == 2
    fallback = run_module(vacuum="none", reindex_fallback=True)
    assert [entry["mode"] for entry in fallback["reindex"]] == ["blocking", "blocking"]


def test_a_standby_is_only_reported(run_module: RunModule, server: FakeServer) -> None:
    server.in_recovery = True
    result = run_module()
    assert server.changes == [] and not result["changed"]
    assert {item["reason"] for item in result["skipped_items"]} == {
        "the server is a standby (in recovery): upkeep runs on the primary"
    }


@pytest.mark.parametrize(
    ("extension", "error", "status", "count"),
    [
        (None, None, "not installed", 0),
        (("1.10", "public"), None, "installed (1.10)", 1),
        (("1.10", "public"), FakeError("must be loaded via shared_preload_libraries", "55000"),
         "installed (1.10) but not loaded: add pg_stat_statements to shared_preload_libraries", 0),
        (("1.9", "monitoring"), FakeError("permission denied for view", "42501"),
         "installed (1.9) but not readable: permission denied for view", 0),
    ],
)  # fmt: skip
def test_slow_statements(
    run_module: RunModule, server: FakeServer, extension: Any, error: Any, status: str, count: int
) -> None:
    server.extension, server.statements_error = extension, error
    result = run_module(vacuum="none", reindex="none", slow_statements=5, slow_statements_by="mean")
    assert result["pg_stat_statements"] == status
    assert len(result["slow_statements"]) == count
    if count:
        assert result["slow_statements"][0] == {
            "query": "SELECT * FROM patients WHERE name = $1 AND note = '?'", "user": "clinic_app", "calls": 12,
            "total_time_ms": 480.5, "mean_time_ms": 40.04, "rows": 12,
        }  # fmt: skip
        query, args = next(item for item in server.executed if "pg_stat_statements s" in item[0])
        assert 'FROM "public".pg_stat_statements s' in query and "ORDER BY s.mean_exec_time DESC" in query
        assert args == (800, 5)


def test_peer_authentication_failure_explains_become_user(monkeypatch: pytest.MonkeyPatch, run_module: RunModule):
    def connect(**params: Any) -> None:
        raise FakeError('FATAL:  Peer authentication failed for user "postgres"')

    monkeypatch.setattr(pg_upkeep, "pg_driver", SimpleNamespace(connect=connect, Error=FakeError))
    result = run_module()
    assert result["failed"]
    assert "cannot connect to clinicdb as postgres on /var/run/postgresql:5432" in result["msg"]
    assert "become_user: postgres" in result["msg"] and result["msg"].endswith("nothing was done")


def test_a_password_never_appears_in_a_connection_error(monkeypatch: pytest.MonkeyPatch, run_module: RunModule):
    def connect(**params: Any) -> None:
        raise FakeError(f"password authentication failed (password={params['password']})")

    monkeypatch.setattr(pg_upkeep, "pg_driver", SimpleNamespace(connect=connect, Error=FakeError))
    result = run_module(login_user="clinic_app", login_host="127.0.0.1", login_password="Pg-S3cret-Value")
    assert result["failed"] and "Pg-S3cret-Value" not in json.dumps(result)


def test_without_a_driver_nothing_is_done(monkeypatch: pytest.MonkeyPatch, run_module: RunModule) -> None:
    monkeypatch.setattr(pg_upkeep, "pg_driver", None)
    result = run_module()
    assert result["failed"] and "psycopg (3) or psycopg2 is needed on the clinic host" in result["msg"]
