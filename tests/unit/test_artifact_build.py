"""Release artifacts of the fixture app: one reproducible tarball per version, rewritten only on change."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from clinicops.lab.artifacts import Artifact, build_artifacts
from clinicops.project import project_root

SOURCE = project_root() / "lab" / "app"
VERSIONS = {
    version: spec
    for version, spec in json.loads((SOURCE / "versions.json").read_text(encoding="utf-8")).items()
    if not version.startswith("_")
}


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, dict[str, Artifact]]:
    out = tmp_path / "artifacts"
    return out, build_artifacts(SOURCE, out)


OLD = 1_000_000_000  # an mtime no write made now can leave behind


def age(directory: Path) -> None:
    """Backdate every file, so that any rewrite shows in its mtime whatever the clock granularity."""
    for path in directory.iterdir():
        os.utime(path, (OLD, OLD))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path, "r:gz") as tar:
        return {info.name: info for info in tar.getmembers()}


def read_member(path: Path, name: str) -> bytes:
    with tarfile.open(path, "r:gz") as tar:
        handle = tar.extractfile(name)
        assert handle is not None, name
        return handle.read()


def test_versions_json_lists_the_expected_fixture_versions() -> None:
    assert {"1.0.0", "2.0.0", "2.1.0-broken-health", "2.2.0-broken-migration"} <= set(VERSIONS)


def test_one_tarball_and_checksum_per_version(built: tuple[Path, dict[str, Artifact]]) -> None:
    out, artifacts = built
    assert set(artifacts) == set(VERSIONS)
    expected = {f"clinic-app-{version}.tar.gz" for version in VERSIONS}
    assert {path.name for path in out.glob("*.tar.gz")} == expected
    assert {path.name for path in out.glob("*.sha256")} == {f"{name}.sha256" for name in expected}


def test_artifact_records_match_the_files(built: tuple[Path, dict[str, Artifact]]) -> None:
    out, artifacts = built
    for version, artifact in artifacts.items():
        assert artifact.version == version
        assert artifact.path == out / f"clinic-app-{version}.tar.gz"
        assert artifact.sha256 == sha256(artifact.path)
        assert artifact.fault == VERSIONS[version]["fault"]
        assert artifact.migrations == tuple(VERSIONS[version]["migrations"])


def test_checksum_files_match_the_tarballs(built: tuple[Path, dict[str, Artifact]]) -> None:
    _out, artifacts = built
    for artifact in artifacts.values():
        checksum = artifact.path.with_name(artifact.path.name + ".sha256")
        assert checksum.read_text() == f"{sha256(artifact.path)}  {artifact.path.name}\n"


def test_release_json_carries_version_and_fault(built: tuple[Path, dict[str, Artifact]]) -> None:
    _out, artifacts = built
    for version, artifact in artifacts.items():
        release = json.loads(read_member(artifact.path, "RELEASE.json"))
        assert release == {"version": version, "fault": VERSIONS[version]["fault"]}


def test_broken_health_variant_carries_its_fault(built: tuple[Path, dict[str, Artifact]]) -> None:
    _out, artifacts = built
    assert json.loads(read_member(artifacts["2.1.0-broken-health"].path, "RELEASE.json"))["fault"] == "health"
    assert json.loads(read_member(artifacts["2.0.0"].path, "RELEASE.json"))["fault"] is None


def test_tarball_holds_exactly_the_listed_migrations(built: tuple[Path, dict[str, Artifact]]) -> None:
    _out, artifacts = built
    for version, artifact in artifacts.items():
        names = set(members(artifact.path))
        shipped = {name.removeprefix("migrations/") for name in names if name.startswith("migrations/")}
        assert shipped == set(VERSIONS[version]["migrations"]), version
        assert names == {"RELEASE.json", "clinic_app.py"} | {f"migrations/{name}" for name in shipped}


def test_tarball_contents_are_the_sources(built: tuple[Path, dict[str, Artifact]]) -> None:
    _out, artifacts = built
    artifact = artifacts["2.2.0-broken-migration"]
    assert read_member(artifact.path, "clinic_app.py") == (SOURCE / "clinic_app.py").read_bytes()
    for name in artifact.migrations:
        assert read_member(artifact.path, f"migrations/{name}") == (SOURCE / "migrations" / name).read_bytes()


def test_tar_entries_have_fixed_owner_time_and_mode(built: tuple[Path, dict[str, Artifact]]) -> None:
    _out, artifacts = built
    for info in members(artifacts["2.0.0"].path).values():
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "root", "root", 0)
        assert info.isfile()
        assert info.mode == (0o755 if info.name == "clinic_app.py" else 0o644)


def test_rebuild_is_byte_identical_and_not_rewritten(built: tuple[Path, dict[str, Artifact]]) -> None:
    out, first = built
    age(out)
    before = {path.name: (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) for path in out.iterdir()}
    second = build_artifacts(SOURCE, out)
    after = {path.name: (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) for path in out.iterdir()}
    assert after == before
    assert all(mtime == OLD * 10**9 for _ino, mtime, _data in after.values())
    assert {v: a.sha256 for v, a in second.items()} == {v: a.sha256 for v, a in first.items()}


def test_build_elsewhere_gives_the_same_bytes(tmp_path: Path, built: tuple[Path, dict[str, Artifact]]) -> None:
    """Reproducible: another directory, another time, sources with other mtimes: same tarballs."""
    _out, first = built
    source = tmp_path / "source"
    shutil.copytree(SOURCE, source)
    for path in source.rglob("*"):
        os.utime(path, (OLD, OLD))
    again = build_artifacts(source, tmp_path / "elsewhere")
    for version, artifact in first.items():
        assert again[version].path.read_bytes() == artifact.path.read_bytes()


def test_changed_source_rewrites_only_affected_tarballs(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(SOURCE, source)
    out = tmp_path / "out"
    first = build_artifacts(source, out)
    age(out)
    migration = source / "migrations" / "0003_broken_halfway.sql"
    migration.write_text(migration.read_text() + "\n-- changed\n")
    second = build_artifacts(source, out)
    changed = "2.2.0-broken-migration"
    assert second[changed].sha256 != first[changed].sha256
    assert sha256(second[changed].path) == second[changed].sha256
    assert (
        second[changed]
        .path.with_name(f"clinic-app-{changed}.tar.gz.sha256")
        .read_text()
        .startswith(second[changed].sha256)
    )
    for version in set(first) - {changed}:
        assert second[version].sha256 == first[version].sha256
        assert second[version].path.stat().st_mtime_ns == OLD * 10**9
    assert second[changed].path.stat().st_mtime_ns != OLD * 10**9


def test_corrupted_tarball_and_checksum_are_repaired(built: tuple[Path, dict[str, Artifact]]) -> None:
    out, first = built
    artifact = first["1.0.0"]
    checksum = artifact.path.with_name(artifact.path.name + ".sha256")
    artifact.path.write_bytes(b"truncated")
    checksum.write_text("0" * 64 + "  wrong\n")
    build_artifacts(SOURCE, out)
    assert sha256(artifact.path) == artifact.sha256
    assert checksum.read_text() == f"{artifact.sha256}  {artifact.path.name}\n"
