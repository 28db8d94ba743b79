"""The state a converged clinic host must be in (testinfra, run by `molecule verify`).

Expectations come from the scenario's inventory (molecule.yml), so the test and the converge
cannot drift apart.
"""

from __future__ import annotations

import json
import os

import pytest
from testinfra.utils.ansible_runner import AnsibleRunner

testinfra_hosts = AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("clinics")
APP_ROOT = "/srv/clinic"  # the role's default


@pytest.fixture(scope="module")
def inventory(host):
    """The scenario's inventory variables of this host (literal values, not templated)."""
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def psql(host):
    def run(sql: str, database: str = "postgres") -> str:
        return host.check_output("runuser -u postgres -- psql -XAt -d %s -c %s", database, sql)

    return run


def test_app_user(host):
    user = host.user("clinic")
    assert user.exists
    assert user.group == "clinic"
    assert user.home == APP_ROOT
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000, "the app user is a system user"


def test_current_release_is_a_link_into_releases(host, inventory):
    release_id = inventory["clinic_host_bootstrap_release_id"]
    current = host.file(f"{APP_ROOT}/current")
    assert current.is_symlink
    assert current.linked_to == f"{APP_ROOT}/releases/{release_id}"
    release = host.file(f"{APP_ROOT}/releases/{release_id}")
    assert release.is_directory
    assert (release.user, release.group, release.mode) == ("root", "clinic", 0o755)
    app = host.file(f"{APP_ROOT}/current/clinic_app.py")
    assert app.is_file
    assert app.user == "root", "release code must not be writable by the app"
    assert json.loads(host.file(f"{APP_ROOT}/current/RELEASE.json").content_string)["version"] == "1.0.0"


def test_layout_permissions(host):
    expected = {
        APP_ROOT: ("root", "clinic", 0o755),
        f"{APP_ROOT}/releases": ("root", "clinic", 0o755),
        f"{APP_ROOT}/shared": ("root", "clinic", 0o750),
        f"{APP_ROOT}/shared/uploads": ("clinic", "clinic", 0o750),
        "/var/log/clinic-app": ("clinic", "clinic", 0o750),
        "/etc/clinicops": ("root", "root", 0o700),
        "/var/cache/clinicops": ("root", "root", 0o700),
    }
    for path, (user, group, mode) in expected.items():
        found = host.file(path)
        assert found.is_directory, path
        assert (found.user, found.group, found.mode) == (user, group, mode), path


def test_app_env_is_readable_by_root_and_the_app_only(host, inventory):
    env = host.file(f"{APP_ROOT}/shared/app.env")
    assert env.is_file
    assert (env.user, env.group, env.mode) == ("root", "clinic", 0o640)
    assert env.mode & 0o007 == 0
    content = env.content_string
    assert f"PGPASSWORD={inventory['clinic_host_db_password']}\n" in content
    assert "CLINIC_ID=molecule\n" in content
    assert "PGUSER=clinic_app\n" in content


def test_no_world_readable_file_holds_the_password(host, inventory):
    # Everything the role writes lives under these; the password may only be in 0640/0600 files.
    found = host.run(
        "find /etc /srv /var/cache /var/log /var/lib /var/tmp /tmp /root -xdev -type f -perm -o=r"
        " -exec grep -lF -e %s {} +",
        inventory["clinic_host_db_password"],
    )
    assert found.stdout.strip() == "", f"world-readable files hold the password: {found.stdout}"


def test_pgpass_is_root_only_and_lets_clinicops_log_in(host, inventory):
    pgpass = host.file("/etc/clinicops/pgpass")
    assert (pgpass.user, pgpass.group, pgpass.mode) == ("root", "root", 0o600)
    assert pgpass.content_string == f"127.0.0.1:5432:clinicdb:clinic_app:{inventory['clinic_host_db_password']}\n"
    # The password the role set on the PostgreSQL role is the one in the file (TCP, scram).
    whoami = host.check_output(
        "PGPASSFILE=/etc/clinicops/pgpass psql -XAt -w -h 127.0.0.1 -U clinic_app -d clinicdb -c 'SELECT current_user'"
    )
    assert whoami == "clinic_app"


@pytest.mark.parametrize("unit", ["clinic-app", "nginx", "postgresql@15-main", "redis-server"])
def test_services_active_and_enabled(host, unit):
    service = host.service(unit)
    assert service.is_running, unit
    assert service.is_enabled, unit


def test_health_through_nginx(host, inventory):
    health = json.loads(host.check_output("curl -s --max-time 5 http://localhost/health"))
    assert health["status"] == "ok", health
    assert health["version"] == "1.0.0"
    assert health["release"] == inventory["clinic_host_bootstrap_release_id"]
    assert health["clinic_id"] == "molecule"
    assert health["database"] == "up"
    assert health["redis"] == "up"
    assert host.socket("tcp://127.0.0.1:8000").is_listening
    assert not host.socket("tcp://0.0.0.0:8000").is_listening, "the app listens on loopback only"


def test_database_owned_by_the_app_role_at_schema_1(host, psql):
    assert psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'clinicdb'") == "clinic_app"
    assert psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version", "clinicdb") == "1"
    assert psql("SELECT rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = 'clinic_app'") == "f"


def test_local_time_zone(host, inventory):
    zone = inventory["clinic_timezone"]
    localtime = host.file("/etc/localtime")
    assert localtime.is_symlink
    assert localtime.linked_to == f"/usr/share/zoneinfo/{zone}"
    assert host.file("/etc/timezone").content_string == f"{zone}\n"


def test_maintenance_snippet_serves_the_page_only_while_the_flag_exists(host):
    snippet = host.file("/etc/nginx/clinicops/maintenance.conf")
    assert snippet.exists and snippet.user == "root" and snippet.mode == 0o644
    flag_dir = "/var/lib/clinicops/maintenance"
    assert host.file(flag_dir).is_directory
    status = "curl -s -o /dev/null -w '%{http_code}' http://localhost"
    assert host.check_output(status + "/api/patients") == "200"
    with host.sudo():
        host.check_output(f"echo '<p>maintenance</p>' > {flag_dir}/page.html && echo '{{}}' > {flag_dir}/on")
    try:
        assert host.check_output(status + "/api/patients") == "503"
        headers = host.check_output("curl -s -D - -o /dev/null http://localhost/")
        assert "Retry-After: 300" in headers and "Cache-Control: no-store" in headers
        assert host.check_output(status + "/health/live") == "200"
    finally:
        with host.sudo():
            host.check_output(f"rm -f {flag_dir}/on {flag_dir}/page.html")
    assert host.check_output(status + "/api/patients") == "200"
