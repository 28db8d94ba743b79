"""The data isolation check: the query set's rules, each query in its own read-only transaction, the verdict.

A fake DB-API connection records what runs; the real PostgreSQL is exercised by
tests/integration/test_diagnostics.py (a foreign clinic's row is reported, naming the table).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.isolation import (
    count_of,
    evaluate,
    run_queries,
    validate_queries,
)
from ansible_collections.clinicops.runbook.plugins.modules import isolation_check

from clinicops.project import project_root

PATIENTS = {"name": "patients", "sql": "SELECT count(*) FROM patients WHERE clinic_id <> %(clinic_id)s"}


class FakeCursor:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.row: tuple | None = None

    def execute(self, sql: str, params: dict | None = None) -> None:
        self.connection.statements.append((sql, params))
        if sql == "SET TRANSACTION READ ONLY":
            return
        answer = self.connection.answers[sql]
        if isinstance(answer, Exception):
            raise answer
        self.row = answer

    def fetchone(self) -> tuple | None:
        return self.row

    def close(self) -> None:
        pass


class FakeConnection:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.statements: list[tuple[str, dict | None]] = []
        self.rollbacks = 0
        self.closed = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def rollback(self) -> None:
        self.rollbacks += 1

    def close(self) -> None:
        self.closed = True


def test_the_default_query_set_is_valid() -> None:
    defaults = yaml.safe_load((project_root() / "roles/isolation_check/defaults/main.yml").read_text())
    assert validate_queries(defaults["isolation_check_queries"]) == []
    assert [query["name"] for query in defaults["isolation_check_queries"]] == ["patients", "appointments"]


@pytest.mark.parametrize(
    ("queries", "problem"),
    [
        ([], "empty"),
        ([{"name": "patients", "sql": "SELECT count(*) FROM patients WHERE clinic_id <> 'x'"}], "%(clinic_id)s"),
        ([PATIENTS, PATIENTS], "used twice"),
        ([{"name": "bad name!", "sql": PATIENTS["sql"]}], "name must be"),
        ([{"name": "p", "sql": PATIENTS["sql"] + "; DELETE FROM patients"}], "one statement"),
    ],
)
def test_a_bad_query_set_is_refused(queries: list, problem: str) -> None:
    assert any(problem in text for text in validate_queries(queries))


def test_a_trailing_semicolon_is_one_statement() -> None:
    assert validate_queries([{"name": "p", "sql": PATIENTS["sql"] + ";"}]) == []


def test_each_query_runs_read_only_with_the_clinic_id_as_a_parameter_and_is_rolled_back() -> None:
    appointments = {"name": "appointments", "sql": "SELECT count(*) FROM appointments WHERE x = %(clinic_id)s"}
    connection = FakeConnection({PATIENTS["sql"]: (0,), appointments["sql"]: (2,)})
    results = run_queries(connection, [PATIENTS, appointments], "kinshasa")
    assert results == [{"name": "patients", "foreign_rows": 0}, {"name": "appointments", "foreign_rows": 2}]
    assert connection.statements == [
        ("SET TRANSACTION READ ONLY", None),
        (PATIENTS["sql"], {"clinic_id": "kinshasa"}),
        ("SET TRANSACTION READ ONLY", None),
        (appointments["sql"], {"clinic_id": "kinshasa"}),
    ]
    assert connection.rollbacks == 2


def test_a_failing_query_is_reported_and_the_others_still_run() -> None:
    missing = {"name": "invoices", "sql": "SELECT count(*) FROM invoices WHERE clinic_id <> %(clinic_id)s"}
    connection = FakeConnection(
        {missing["sql"]: RuntimeError('relation "invoices" does not exist'), PATIENTS["sql"]: (0,)}
    )
    results = run_queries(connection, [missing, PATIENTS], "kinshasa")
    assert results[0] == {"name": "invoices", "error": 'relation "invoices" does not exist'}
    assert results[1] == {"name": "patients", "foreign_rows": 0}


def test_the_verdict_names_the_leaking_tables_and_the_unchecked_ones() -> None:
    verdict = evaluate(
        "kinshasa", [{"name": "patients", "foreign_rows": 1}, {"name": "appointments", "foreign_rows": 0}]
    )
    assert not verdict["isolated"]
    assert verdict["leaks"] == {"patients": 1}
    assert verdict["summary"] == "rows of another clinic visible under clinic kinshasa: patients (1)"
    unchecked = evaluate("kinshasa", [{"name": "invoices", "error": "no such table"}])
    assert not unchecked["isolated"] and "could not check: invoices: no such table" in unchecked["summary"]
    clean = evaluate("kinshasa", [{"name": "patients", "foreign_rows": 0}])
    assert clean["isolated"] and clean["summary"] == "isolated: no row of another clinic in 1 query"


@pytest.mark.parametrize(("row", "count"), [(None, 0), ((None,), 0), ((3,), 3), (("7",), 7)])
def test_count_of_reads_the_first_column(row: tuple | None, count: int) -> None:
    assert count_of(row) == count


@pytest.mark.parametrize("row", [(True,), ("kinshasa",)])
def test_a_query_that_returns_no_count_is_an_error(row: tuple) -> None:
    with pytest.raises(ValueError):
        count_of(row)


def run_module(monkeypatch, capsys, answers: dict, **args: Any) -> tuple[dict, list[dict]]:
    connects: list[dict] = []
    connections: list[FakeConnection] = []

    def connect(**params: Any) -> FakeConnection:
        connects.append(params)
        connections.append(FakeConnection(answers))
        return connections[-1]

    monkeypatch.setattr(isolation_check, "pg_driver", SimpleNamespace(connect=connect))
    module_args = {"clinic_id": "kinshasa", "database": "clinicdb", "queries": [PATIENTS], **args}
    with patch_module_args(module_args), pytest.raises(SystemExit):
        isolation_check.main()
    assert all(connection.closed for connection in connections)
    return json.loads(capsys.readouterr().out), connects


def test_the_module_fails_naming_the_table_when_a_row_leaks(monkeypatch, capsys) -> None:
    result, connects = run_module(monkeypatch, capsys, {PATIENTS["sql"]: (1,)}, passfile="/etc/clinicops/pgpass")
    assert result["failed"] and "patients (1)" in result["msg"]
    assert connects[0]["passfile"] == "/etc/clinicops/pgpass" and "password" not in connects[0]


def test_the_module_reports_without_failing_when_asked(monkeypatch, capsys) -> None:
    result, _ = run_module(monkeypatch, capsys, {PATIENTS["sql"]: (1,)}, fail_on_leak=False)
    assert not result.get("failed") and result["isolated"] is False and result["changed"] is False
    assert result["checked"] == {"patients": 1}


def test_the_module_refuses_a_bad_query_set_before_connecting(monkeypatch, capsys) -> None:
    result, connects = run_module(monkeypatch, capsys, {}, queries=[{"name": "p", "sql": "SELECT 1"}])
    assert result["failed"] and "nothing was run" in result["msg"] and connects == []
