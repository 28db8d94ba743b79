"""Shared fixtures of the unit tests: a private state home, a bare inventory, loopback servers.

The collection's module_utils are imported as Ansible imports them, from the collection tree
``clinicops.project.collections_root()`` builds, so that tree goes first on ``sys.path``.
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from clinicops.project import collections_root

sys.path.insert(0, str(collections_root()))


@pytest.fixture
def clinicops_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """$CLINICOPS_HOME of the test: its runs, locks and fleet cache, apart from every other test's."""
    home = tmp_path / "home"
    monkeypatch.setenv("CLINICOPS_HOME", str(home))
    return home


@pytest.fixture
def inventory_dir(tmp_path: Path) -> Path:
    """An inventory directory Ansible would accept (the fleet itself is faked where it matters)."""
    directory = tmp_path / "inventory"
    directory.mkdir()
    (directory / "hosts.yml").write_text("all: {}\n")
    return directory


POLL_INTERVAL = 0.02  # how fast serve_forever notices shutdown(); keeps teardown quick

ConnectionHandler = Callable[[socket.socket], None]
TcpServerFactory = Callable[[ConnectionHandler], tuple[str, int]]


class _FixtureHttpHandler(BaseHTTPRequestHandler):
    """Fixed routes of the session HTTP server."""

    routes: dict[str, tuple[int, str, bytes]] = {
        "/ok": (200, "text/plain", b"ready\n"),
        "/json": (200, "application/json", b'{"status": "ok", "version": "2.0.0"}'),
        "/not-json": (200, "application/json", b"<html>not json</html>"),
        "/down": (503, "application/json", b'{"status": "unhealthy", "reason": "database down"}'),
    }

    def log_message(self, fmt: str, *args: object) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        if self.path == "/headers":
            status, kind, body = 200, "application/json", json.dumps(dict(self.headers.items())).encode()
        else:
            status, kind, body = self.routes.get(self.path, (404, "text/plain", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def http_base_url() -> Iterator[str]:
    """A loopback HTTP server with the routes of ``_FixtureHttpHandler``; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FixtureHttpHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def tcp_server() -> Iterator[TcpServerFactory]:
    """Start loopback TCP servers running ``handle(connection)`` per connection; returns (host, port)."""
    started: list[tuple[socketserver.ThreadingTCPServer, threading.Thread]] = []

    def start(handle: ConnectionHandler) -> tuple[str, int]:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                handle(self.request)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True)
        thread.start()
        started.append((server, thread))
        return "127.0.0.1", server.server_address[1]

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@dataclass
class FakeRedis:
    """A loopback server speaking just enough RESP: AUTH and PING, with canned answers."""

    host: str
    port: int
    commands: list[list[bytes]] = field(default_factory=list)


@pytest.fixture
def fake_redis(tcp_server: TcpServerFactory) -> Callable[..., FakeRedis]:
    """Start a FakeRedis answering PING with ``pong`` and AUTH with ``auth``; records the commands."""

    def start(pong: bytes = b"+PONG\r\n", auth: bytes = b"+OK\r\n") -> FakeRedis:
        commands: list[list[bytes]] = []

        def handle(conn: socket.socket) -> None:
            reader = conn.makefile("rb")
            while line := reader.readline():
                if line.startswith(b"*"):  # RESP array of bulk strings
                    args = []
                    for _ in range(int(line[1:])):
                        reader.readline()  # $<length>
                        args.append(reader.readline().rstrip(b"\r\n"))
                else:  # inline command, as redis-cli and the fixture app send it
                    args = line.split()
                commands.append(args)
                verb = args[0].upper() if args else b""
                conn.sendall({b"AUTH": auth, b"PING": pong}.get(verb, b"-ERR unknown command\r\n"))

        host, port = tcp_server(handle)
        return FakeRedis(host, port, commands)

    return start
