"""OS package updates with real APT and dpkg in a clinic container, from local repositories only.

The test starts its own container from the lab's clinic image (systemd as PID 1, as the lab runs
it), named ``clinicops-pkgtest-<random>`` and removed at the end; the session lab is not used. Inside
it, tiny ``clinicops-fixture-*`` packages are built with ``dpkg-deb`` and published in two flat file
repositories whose Packages and Release files this test writes, and they replace every APT source,
so nothing is fetched from the network:

* ``/srv/repo-security`` (``Label: Debian-Security``, ``Suite: bookworm-security``): ``a`` 1.1 (its
  binary runs a systemd service; its postinst asks for a reboot), ``c`` 1.1 (needs the new package
  ``newdep``), ``d`` 1.1 (excluded by every run here), ``e`` 1.1, ``f`` 1.1 (its preinst fails);
* ``/srv/repo-main`` (``Label: Debian``, ``Suite: bookworm``): ``b`` 1.1 and ``e`` 1.2, so the
  candidate of ``e`` is not the security version.

Each test starts from ``a``..``e`` and ``orphan`` (installed as a dependency nothing needs) at 1.0.
The module runs through ansible-playbook over the community.docker.docker connection.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import container_inventory, marked_result, ok_in, own_clinic_container, run_playbook

PREFIX = "clinicops-fixture-"
INITIAL = {name: "1.0" for name in ("a", "b", "c", "d", "e", "orphan")}
EXCLUDE = [f"{PREFIX}d*"]
SERVICE = f"{PREFIX}a.service"
MARKER = "PACKAGE_UPDATES "

SERVICE_UNIT = f"[Unit]\nDescription=clinicops fixture\n[Service]\nExecStart=/usr/sbin/{PREFIX}a\n"
SERVICE_BINARY = "#!/bin/sh\nexec sleep infinity\n"
ASK_FOR_REBOOT = f"#!/bin/sh\ntouch /run/reboot-required\necho {PREFIX}a >> /run/reboot-required.pkgs\n"
FAILING_PREINST = "#!/bin/sh\necho 'fixture preinst refuses the upgrade' >&2\nexit 1\n"
# Holds the dpkg frontend lock the way APT takes it (an fcntl lock; flock(1) takes another kind, which APT ignores).
HOLD_DPKG_LOCK = (
    "import fcntl, os, signal\n"
    "fd = os.open('/var/lib/dpkg/lock-frontend', os.O_RDWR | os.O_CREAT, 0o640)\n"
    "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
    "print(os.getpid(), flush=True)\n"
    "signal.pause()\n"
)

PLAYBOOK = """\
- name: OS package updates of a clinic
  hosts: clinic
  gather_facts: false
  tasks:
    - name: Apply the package updates
      clinicops.runbook.package_updates:
        updates: "{{ options.updates | default(omit) }}"
        cache_valid_time: "{{ options.cache_valid_time | default(omit) }}"
        security_origins: "{{ options.security_origins | default(omit) }}"
        exclude: "{{ options.exclude | default(omit) }}"
        autoremove: "{{ options.autoremove | default(omit) }}"
        lock_timeout: "{{ options.lock_timeout | default(omit) }}"
      register: result
      ignore_errors: true

    - name: Show the result for the test to read
      ansible.builtin.debug:
        msg: "PACKAGE_UPDATES {{ result | to_json }}"

    - name: Fail as the module did
      ansible.builtin.fail:
        msg: "{{ result.msg }}"
      when: result is failed
"""


# -- building the repositories ---------------------------------------------------------------------


def put_files(container, files: dict[str, tuple[str | bytes, int]]) -> None:
    """Write files (path -> (content, mode)) into the container, parents created, owned by root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, (content, mode) in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    assert container.put_archive("/", buffer.getvalue())


def read_file(container, path: str) -> bytes:
    stream, _stat = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        return tar.extractfile(tar.getmembers()[0]).read()


def build_deb(container, name: str, version: str, repo: str, **fields) -> tuple[str, str]:
    """Build ``clinicops-fixture-<name>`` with dpkg-deb into /srv/<repo>: (its path, its control stanza)."""
    package = PREFIX + name
    root = f"/srv/build/{package}_{version}"
    control = (
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: clinicops tests <root@localhost>\n"
        f"Description: clinicops package_updates fixture\n"
    )
    if fields.get("depends"):
        control += f"Depends: {fields['depends']}\n"
    files = {f"{root}/DEBIAN/control": (control, 0o644)}
    for script in ("preinst", "postinst"):
        if fields.get(script):
            files[f"{root}/DEBIAN/{script}"] = (fields[script], 0o755)
    for path, (content, mode) in fields.get("files", {}).items():
        files[root + path] = (content, mode)
    put_files(container, files)
    deb = f"/srv/{repo}/{package}_{version}_all.deb"
    ok_in(container, ["mkdir", "-p", f"/srv/{repo}"])
    ok_in(container, ["dpkg-deb", "--root-owner-group", "--build", root, deb])
    return deb, control


def publish(container, repo: str, debs: list[tuple[str, str]], release: dict[str, str]) -> None:
    """Write the Packages and Release files of the flat repository /srv/<repo>."""
    stanzas = []
    for path, control in debs:
        data = read_file(container, path)
        stanzas.append(
            f"{control}Filename: ./{path.rsplit('/', 1)[1]}\nSize: {len(data)}\n"
            f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    packages = "\n".join(stanzas).encode()
    fields = {**release, "Date": "Thu, 01 Jan 2026 00:00:00 UTC"}
    text = "".join(f"{key}: {value}\n" for key, value in fields.items())
    text += f"SHA256:\n {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n"
    put_files(container, {f"/srv/{repo}/Packages": (packages, 0o644), f"/srv/{repo}/Release": (text, 0o644)})


def build_repositories(container) -> None:
    service_files = {
        f"/usr/sbin/{PREFIX}a": (SERVICE_BINARY, 0o755),
        f"/lib/systemd/system/{SERVICE}": (SERVICE_UNIT, 0o644),
    }
    for name in INITIAL:
        build_deb(container, name, "1.0", "initial", files=service_files if name == "a" else {})
    build_deb(container, "f", "1.0", "extra")
    security = [
        build_deb(container, "a", "1.1", "repo-security", files=service_files, postinst=ASK_FOR_REBOOT),
        build_deb(container, "c", "1.1", "repo-security", depends=f"{PREFIX}newdep"),
        build_deb(container, "newdep", "1.0", "repo-security"),
        build_deb(container, "d", "1.1", "repo-security"),
        build_deb(container, "e", "1.1", "repo-security"),
        build_deb(container, "f", "1.1", "repo-security", preinst=FAILING_PREINST),
    ]
    main = [build_deb(container, "b", "1.1", "repo-main"), build_deb(container, "e", "1.2", "repo-main")]
    publish(
        container,
        "repo-security",
        security,
        {"Origin": "Debian", "Label": "Debian-Security", "Suite": "bookworm-security", "Codename": "bookworm-security"},
    )
    publish(
        container,
        "repo-main",
        main,
        {"Origin": "Debian", "Label": "Debian", "Suite": "bookworm", "Codename": "bookworm"},
    )
    sources = "deb [trusted=yes] file:/srv/repo-security ./\ndeb [trusted=yes] file:/srv/repo-main ./\n"
    put_files(container, {"/etc/apt/sources.list": (sources, 0o644)})
    ok_in(container, ["rm", "-rf", "/etc/apt/sources.list.d"])
    ok_in(container, ["apt-get", "update", "-qq"])


# -- the clinic --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def container(docker_client) -> Iterator[object]:
    with own_clinic_container(
        docker_client, "clinicops-pkgtest", hostname="pkgtest", labels={"clinicops.itest": "package-updates"}
    ) as started:
        build_repositories(started)
        yield started


@pytest.fixture
def clinic(container):
    """The container with the initial versions installed, ``a``'s service running, no reboot asked for."""
    debs = [f"/srv/initial/{PREFIX}{name}_1.0_all.deb" for name in INITIAL]
    ok_in(container, ["dpkg", "--purge", f"{PREFIX}newdep", f"{PREFIX}f"])
    ok_in(container, ["dpkg", "-i", *debs], env={"DEBIAN_FRONTEND": "noninteractive"})
    ok_in(container, ["apt-mark", "auto", f"{PREFIX}orphan"])
    ok_in(container, ["rm", "-f", "/run/reboot-required", "/run/reboot-required.pkgs"])
    ok_in(container, ["systemctl", "daemon-reload"])
    ok_in(container, ["systemctl", "restart", SERVICE])
    assert versions(container) == INITIAL
    return container


def versions(container) -> dict[str, str]:
    """Installed fixture packages (status ``install ok installed``): short name -> version."""
    out = ok_in(container, ["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n", f"{PREFIX}*"])
    found = {}
    for line in out.splitlines():
        package, version, status = line.split(" ", 2)
        if status.strip() == "ii":
            found[package.removeprefix(PREFIX)] = version
    return found


@pytest.fixture
def run(container, tmp_path: Path):
    """Run the module in the container through ansible-playbook: (exit code, output, the module's result)."""
    inventory = container_inventory(tmp_path / "hosts.yml", "clinic", "pkgtest", container)
    playbook = tmp_path / "package_updates.yml"
    playbook.write_text(PLAYBOOK)

    def play(*args: str, **options: object) -> tuple[int, str, dict]:
        done = run_playbook(inventory, playbook, *args, extra={"options": {"exclude": EXCLUDE, **options}})
        result = marked_result(done.stdout, MARKER)
        assert result is not None, f"no result in the output:\n{done.stdout}\n{done.stderr}"
        return done.returncode, done.stdout, result

    return play


def names(entries: list[dict]) -> list[str]:
    return [entry["name"].removeprefix(PREFIX) for entry in entries]


# -- the tests -------------------------------------------------------------------------------------


def test_security_updates_only_take_candidates_from_a_security_origin(clinic, run):
    code, output, predicted = run("--check")
    assert code == 0, output
    assert predicted["changed"] and names(predicted["upgraded"]) == ["a"]
    assert predicted["upgraded"][0]["services"] == [SERVICE]
    assert names(predicted["held_back"]) == ["c", "e"]
    assert names(predicted["excluded"]) == ["d"] and names(predicted["non_security_updates"]) == ["b"]
    assert not predicted["cache_updated"] and not predicted["reboot_required"]
    assert versions(clinic) == INITIAL  # check mode changed nothing

    code, output, done = run(cache_valid_time=0)
    assert code == 0, output
    assert done["changed"] and done["cache_updated"]
    [upgraded] = done["upgraded"]
    assert (upgraded["name"], upgraded["from"], upgraded["to"]) == (f"{PREFIX}a", "1.0", "1.1")
    assert "l=Debian-Security" in upgraded["origin"] and "a=bookworm-security" in upgraded["origin"]
    held = {entry["name"].removeprefix(PREFIX): entry for entry in done["held_back"]}
    assert sorted(held) == ["c", "e"]
    assert held["c"]["reason"].startswith(f"needs new package(s) {PREFIX}newdep")
    assert held["e"]["to"] == "1.2" and "the security version 1.1 is not the candidate" in held["e"]["reason"]
    assert done["services_to_restart"] == [SERVICE]
    assert done["reboot_required"] and done["reboot_required_packages"] == [f"{PREFIX}a"]
    assert done["msg"].startswith(f"security updates: upgraded 1 package(s) ({PREFIX}a 1.0 -> 1.1)")
    assert versions(clinic) == {**INITIAL, "a": "1.1"}  # b (not security), c (new dependency), d, e stay
    assert ok_in(clinic, ["systemctl", "is-active", SERVICE]).strip() == "active"

    code, output, again = run()
    assert code == 0, output
    assert not again["changed"] and again["upgraded"] == [] and not again["cache_updated"]
    assert names(again["held_back"]) == ["c", "e"]

    code, output, checked = run("--check")
    assert code == 0, output
    assert not checked["changed"] and checked["upgraded"] == []
    assert versions(clinic) == {**INITIAL, "a": "1.1"}


def test_all_updates_take_every_candidate_but_never_a_new_package(clinic, run):
    options = {"updates": "all", "autoremove": True}
    code, output, predicted = run("--check", **options)
    assert code == 0, output
    assert names(predicted["upgraded"]) == ["a", "b", "e"] and names(predicted["held_back"]) == ["c"]
    assert names(predicted["autoremoved"]) == ["orphan"] and predicted["non_security_updates"] == []
    assert versions(clinic) == INITIAL

    code, output, done = run(**options)
    assert code == 0, output
    assert done["changed"]
    assert {entry["name"].removeprefix(PREFIX): entry["to"] for entry in done["upgraded"]} == {
        "a": "1.1",
        "b": "1.1",
        "e": "1.2",
    }
    assert "a=bookworm," in done["upgraded"][1]["origin"]
    assert done["autoremoved"] == [{"name": f"{PREFIX}orphan", "version": "1.0"}]
    assert versions(clinic) == {"a": "1.1", "b": "1.1", "c": "1.0", "d": "1.0", "e": "1.2"}

    code, output, again = run(**options)
    assert code == 0, output
    assert not again["changed"] and again["upgraded"] == [] and again["autoremoved"] == []


def test_a_held_dpkg_lock_fails_clearly_and_changes_nothing(clinic, run):
    holder = clinic.exec_run(["python3", "-c", HOLD_DPKG_LOCK], stream=True)
    pid = next(holder.output).decode().strip()
    try:
        code, output, refused = run(lock_timeout=1, cache_valid_time=0)
        assert code != 0 and refused["failed"], output
        assert refused["msg"].startswith(
            "another package manager holds the lock: Could not get lock "
            "/var/lib/dpkg/lock-frontend. It is held by process"
        )
        assert refused["msg"].endswith("(waited 1 s, lock_timeout); nothing was changed")
        assert versions(clinic) == INITIAL

        code, output, predicted = run("--check")  # reading needs no lock
        assert code == 0 and names(predicted["upgraded"]) == ["a"], output
    finally:
        ok_in(clinic, ["kill", pid])
        for _chunk in holder.output:  # until the holder is gone, and its lock with it
            pass

    code, output, done = run()
    assert code == 0, output
    assert names(done["upgraded"]) == ["a"] and versions(clinic) == {**INITIAL, "a": "1.1"}


def test_a_failing_maintainer_script_reports_what_was_and_was_not_upgraded(clinic, run):
    ok_in(clinic, ["dpkg", "-i", f"/srv/extra/{PREFIX}f_1.0_all.deb"])
    code, output, failed = run()
    assert code != 0 and failed["failed"], output
    [error] = failed["dpkg_errors"]
    assert f"{PREFIX}f_1.1_all.deb: new {PREFIX}f package pre-installation script subprocess returned error" in error
    assert failed["msg"].startswith(f"package updates failed: {error}; upgraded: {PREFIX}a 1.0 -> 1.1; ")
    assert failed["msg"].endswith(f"not upgraded: {PREFIX}f (still 1.0)")
    # Each upgrade is its own step: a is upgraded and configured although f failed after it.
    assert names(failed["upgraded"]) == ["a"] and failed["changed"] and failed["unfinished"] == []
    assert names(failed["not_upgraded"]) == ["f"] and failed["not_upgraded"][0]["now"] == "1.0"
    assert versions(clinic) == {**INITIAL, "a": "1.1", "f": "1.0"}
    assert ok_in(clinic, ["dpkg", "--audit"]).strip() == ""  # nothing left half-installed


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"security_origins": ["suite"]}, "security_origins: 'suite' in pattern 'suite' is not field=glob"),
        ({"security_origins": ["archive=*-security,label"]}, "security_origins: 'label' in pattern"),
        ({"exclude": ["nginx; rm -rf /"]}, "exclude: 'nginx; rm -rf /' is not a package name or glob"),
    ],
)
def test_bad_input_is_refused_before_anything_changes(clinic, run, options, message):
    code, output, refused = run(**options)
    assert code != 0 and refused["failed"], output
    assert refused["msg"].startswith(message) and refused["msg"].endswith("nothing was changed")
    assert versions(clinic) == INITIAL
