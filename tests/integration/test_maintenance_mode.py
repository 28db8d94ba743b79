"""Maintenance mode through the real nginx of a clinic: 503 page with headers, liveness kept, removed after."""

from __future__ import annotations

import json

from conftest import PLAYBOOKS, ansible_playbook, marked_result, ok_in


def toggle(state: str) -> dict:
    run = ansible_playbook(PLAYBOOKS / "maintenance_mode.yml", "-e", f"target=kinshasa state={state}")
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output
    result = marked_result(output, "MAINTENANCE ")
    assert result is not None, output
    return result


def fetch(container, path: str) -> tuple[int, dict[str, str], str]:
    raw = ok_in(container, ["curl", "-s", "-i", f"http://127.0.0.1{path}"])
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    status_line, *header_lines = head.split("\n")
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_maintenance_page_is_served_with_its_headers_and_removed_after(clinics):
    container = clinics["kinshasa"]
    assert fetch(container, "/api/patients")[0] == 200
    on = toggle("present")
    try:
        assert on["changed"] and on["enabled"]
        assert toggle("present")["changed"] is False  # idempotent

        status, headers, body = fetch(container, "/api/patients")
        assert status == 503
        assert headers["retry-after"] == "300"
        assert headers["cache-control"] == "no-store"
        assert "Kinshasa is under maintenance" in body
        assert "integration test" not in body  # the reason stays internal

        status, headers, body = fetch(container, "/health")
        assert status == 503
        assert json.loads(body)["status"] == "maintenance"
        assert headers["retry-after"] == "300"

        status, _, body = fetch(container, "/health/live")
        assert status == 200 and json.loads(body)["status"] == "alive"
    finally:
        off = toggle("absent")
    assert off["changed"] and off["duration_seconds"] >= 0
    assert off["flag"]["run_id"] == "test-maintenance"
    assert toggle("absent")["changed"] is False
    status, headers, _ = fetch(container, "/api/patients")
    assert status == 200
    assert "retry-after" not in headers
