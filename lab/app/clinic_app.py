#!/usr/bin/env python3
"""The fixture clinic app: a small web service shaped like the clinic software clinicops runs.

It is deliberately ordinary: an HTTP API in front of PostgreSQL, numbered SQL migrations tracked
in ``schema_version``, settings from environment variables (the systemd unit reads them from the
shared env file), a log file reopened on SIGHUP, and a Redis it pings. Only the Python standard
library and Debian's ``python3-psycopg`` are used, so a release is just a directory.

Commands:
  serve      run the HTTP server
  migrate    apply pending migrations, all in one transaction (a failure applies none)
  pending    print the pending migrations as JSON (exit 0 either way)
  seed       insert demo rows when the tables are empty (lab only)

Endpoints:
  /health        readiness: database reachable and schema new enough; 503 otherwise
  /health/live   liveness: the process answers
  POST /login    always fails (no accounts), logging `auth failed user=U ip=IP` for the security scan
  /version       version, release id, schema version, clinic id, feature flags
  /api/patients, /api/appointments   small data endpoints
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import psycopg

RELEASE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = RELEASE_DIR / "migrations"


def release_info() -> dict:
    with open(RELEASE_DIR / "RELEASE.json", encoding="utf-8") as handle:
        return json.load(handle)


def shipped_migrations() -> list[tuple[int, str]]:
    """(number, file name) of every migration, in numeric order; names are NNNN_what.sql."""
    found = []
    for path in MIGRATIONS_DIR.glob("*.sql"):
        prefix = path.name.split("_", 1)[0]
        if not prefix.isdigit():
            raise SystemExit(f"migration {path.name} does not start with its number (NNNN_name.sql)")
        found.append((int(prefix), path.name))
    return sorted(found)


def connect() -> psycopg.Connection:
    # libpq reads PGHOST/PGPORT/PGDATABASE/PGUSER/PGPASSWORD from the environment.
    return psycopg.connect(connect_timeout=3)


def applied_versions(conn: psycopg.Connection) -> set[int]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    return {row[0] for row in conn.execute("SELECT version FROM schema_version")}


def pending_migrations(conn: psycopg.Connection) -> list[tuple[int, str]]:
    done = applied_versions(conn)
    return [(number, name) for number, name in shipped_migrations() if number not in done]


def cmd_pending(_args: argparse.Namespace) -> int:
    with connect() as conn:
        pending = pending_migrations(conn)
        conn.rollback()
    print(json.dumps({"pending": [name for _number, name in pending]}))
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    # One transaction for the whole run: PostgreSQL DDL is transactional, so a migration that
    # fails halfway leaves the schema exactly as it was and the running release keeps working.
    with connect() as conn:
        pending = pending_migrations(conn)
        applied = []
        try:
            for number, name in pending:
                conn.execute((MIGRATIONS_DIR / name).read_text(encoding="utf-8"))
                conn.execute("INSERT INTO schema_version (version, name) VALUES (%s, %s)", (number, name))
                applied.append(name)
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            failed = pending[len(applied)][1]
            print(
                json.dumps({"applied": [], "failed": failed, "error": str(exc).strip()}),
                file=sys.stderr,
            )
            return 1
    print(json.dumps({"applied": applied}))
    return 0


FIRST_NAMES = ["Amani", "Beatrice", "Chidi", "Dalia", "Elias", "Fatou", "Gaston", "Hana"]
LAST_NAMES = ["Mbala", "Kabongo", "Dupont", "Nguyen", "Okafor", "Smith", "Tshibanda", "Moreau"]


def cmd_seed(args: argparse.Namespace) -> int:
    clinic_id = os.environ.get("CLINIC_ID", "clinic")
    with connect() as conn:
        if conn.execute("SELECT count(*) FROM patients").fetchone()[0]:
            print(json.dumps({"seeded": False}))
            return 0
        base = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        for index in range(args.patients):
            name = f"{FIRST_NAMES[index % 8]} {LAST_NAMES[(index // 8) % 8]}"
            birth = date(1950, 1, 1) + timedelta(days=(index * 997) % 25000)
            conn.execute(
                "INSERT INTO patients (clinic_id, full_name, birth_date) VALUES (%s, %s, %s)",
                (clinic_id, name, birth),
            )
        for index in range(args.appointments):
            conn.execute(
                "INSERT INTO appointments (patient_id, starts_at, reason) VALUES (%s, %s, %s)",
                (index % args.patients + 1, base + timedelta(hours=3 * index), "consultation"),
            )
        conn.execute(
            "INSERT INTO audit_log (actor, action, detail) VALUES ('seed', 'seed', %s)",
            (f"{args.patients} patients, {args.appointments} appointments",),
        )
    print(json.dumps({"seeded": True}))
    return 0


class AppLog:
    """Append-only log file reopened on SIGHUP, as logrotate's postrotate expects."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.handle = None
        self.reopen()

    def reopen(self, *_signal_args) -> None:
        with self.lock:
            if self.handle:
                self.handle.close()
            # Kept open between requests and swapped on SIGHUP, so no context manager.
            self.handle = open(self.path, "a", encoding="utf-8") if self.path else None  # noqa: SIM115

    def write(self, line: str) -> None:
        with self.lock:
            target = self.handle or sys.stdout
            target.write(line + "\n")
            target.flush()


def redis_ping() -> str:
    host = os.environ.get("REDIS_HOST", "127.0.0.1")
    port = int(os.environ.get("REDIS_PORT", "6379"))
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return "up" if sock.recv(16).startswith(b"+PONG") else "down"
    except OSError:
        return "down"


def read_flags() -> dict:
    flags = {}
    for key, value in os.environ.items():
        if key.startswith("FEATURE_"):
            flags[key[len("FEATURE_") :].lower()] = value.lower() in ("1", "true", "yes", "on")
    return flags


class Handler(BaseHTTPRequestHandler):
    server_version = "clinic-app"
    log: AppLog

    def log_message(self, fmt: str, *args) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self.log.write(f"{stamp} {self.address_string()} {fmt % args}")

    def send_json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        routes = {
            "/health": self.health,
            "/health/live": self.live,
            "/version": self.version,
            "/api/patients": self.patients,
            "/api/appointments": self.appointments,
        }
        route = routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.send_json(404, {"error": "not found"})
            return
        route()

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/login":
            self.send_json(404, {"error": "not found"})
            return
        # The fixture has no accounts: every login fails, logged the way the security scan reads it.
        length = min(int(self.headers.get("Content-Length") or 0), 4096)
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        user = "".join(ch for ch in form.get("user", [""])[0] if ch.isalnum() or ch in "._-")[:64] or "-"
        client = (self.headers.get("X-Forwarded-For") or self.client_address[0]).split(",")[-1].strip()
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self.log.write(f"{stamp} auth failed user={user} ip={client}")
        self.send_json(401, {"error": "invalid credentials"})

    def schema_version(self, conn: psycopg.Connection) -> int:
        return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    def base_info(self) -> dict:
        info = release_info()
        return {
            "version": info["version"],
            "release": RELEASE_DIR.name,
            "clinic_id": os.environ.get("CLINIC_ID", ""),
        }

    def health(self) -> None:
        body = self.base_info()
        body["redis"] = redis_ping()
        if release_info().get("fault") == "health":
            body.update(status="unhealthy", database="unknown", reason="fixture fault: health")
            self.send_json(503, body)
            return
        required = max((number for number, _ in shipped_migrations()), default=0)
        try:
            with connect() as conn:
                current = self.schema_version(conn)
                body["patients"] = conn.execute("SELECT count(*) FROM patients").fetchone()[0]
        except psycopg.Error as exc:
            body.update(status="unhealthy", database="down", reason=str(exc).strip()[:200])
            self.send_json(503, body)
            return
        body.update(database="up", schema_version=current, schema_required=required)
        if current < required:
            body.update(status="unhealthy", reason=f"schema {current} older than {required}")
            self.send_json(503, body)
            return
        body["status"] = "ok"
        self.send_json(200, body)

    def live(self) -> None:
        self.send_json(200, {"status": "alive"})

    def version(self) -> None:
        body = self.base_info()
        body["flags"] = read_flags()
        try:
            with connect() as conn:
                body["schema_version"] = self.schema_version(conn)
        except psycopg.Error:
            body["schema_version"] = None
        self.send_json(200, body)

    def rows(self, query: str) -> None:
        try:
            with connect() as conn:
                cur = conn.execute(query)
                names = [column.name for column in cur.description]
                items = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except psycopg.Error as exc:
            self.send_json(503, {"error": str(exc).strip()[:200]})
            return
        self.send_json(200, {"count": len(items), "items": json.loads(json.dumps(items, default=str))})

    def patients(self) -> None:
        self.rows("SELECT * FROM patients ORDER BY id LIMIT 100")

    def appointments(self) -> None:
        self.rows("SELECT * FROM appointments ORDER BY id LIMIT 100")


def cmd_serve(_args: argparse.Namespace) -> int:
    log = AppLog(os.environ.get("APP_LOG_FILE"))
    signal.signal(signal.SIGHUP, log.reopen)
    Handler.log = log
    bind = os.environ.get("APP_BIND", "127.0.0.1")
    port = int(os.environ.get("APP_PORT", "8000"))
    server = ThreadingHTTPServer((bind, port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} starting {release_info()['version']} on {bind}:{port}")
    server.serve_forever()
    return 0


def load_env_file(path: str) -> None:
    """Read KEY=VALUE lines (the systemd EnvironmentFile format) into the environment."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                os.environ[key.strip()] = value.strip().strip('"')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clinic_app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", help="read settings from this env file first")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve").set_defaults(func=cmd_serve)
    sub.add_parser("migrate").set_defaults(func=cmd_migrate)
    sub.add_parser("pending").set_defaults(func=cmd_pending)
    seed = sub.add_parser("seed")
    seed.add_argument("--patients", type=int, default=24)
    seed.add_argument("--appointments", type=int, default=40)
    seed.set_defaults(func=cmd_seed)
    args = parser.parse_args(argv)
    if args.env_file:
        load_env_file(args.env_file)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
