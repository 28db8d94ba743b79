"""Release artifacts of the fixture clinic app: one reproducible tarball per version.

Each tarball holds ``clinic_app.py``, ``RELEASE.json`` (version and fault) and the migrations
that version ships. Entries are sorted and their owners and times fixed, so the same sources give
byte-identical tarballs and stable checksums; unchanged tarballs are not rewritten.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    version: str
    path: Path
    sha256: str
    fault: str | None
    migrations: tuple[str, ...]


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def render_artifact(source: Path, version: str, spec: dict) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        release = {"version": version, "fault": spec.get("fault")}
        _add(tar, "RELEASE.json", (json.dumps(release, sort_keys=True) + "\n").encode())
        _add(tar, "clinic_app.py", (source / "clinic_app.py").read_bytes(), 0o755)
        for name in sorted(spec["migrations"]):
            _add(tar, f"migrations/{name}", (source / "migrations" / name).read_bytes())
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=9) as zipped:
        zipped.write(raw.getvalue())
    return out.getvalue()


def build_artifacts(source: Path, out_dir: Path) -> dict[str, Artifact]:
    """Write ``clinic-app-<version>.tar.gz`` (+ ``.sha256``) for every version in versions.json."""
    versions = json.loads((source / "versions.json").read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    for version, spec in versions.items():
        if version.startswith("_"):
            continue
        data = render_artifact(source, version, spec)
        digest = hashlib.sha256(data).hexdigest()
        path = out_dir / f"clinic-app-{version}.tar.gz"
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        checksum = out_dir / f"{path.name}.sha256"
        line = f"{digest}  {path.name}\n"
        if not checksum.is_file() or checksum.read_text() != line:
            checksum.write_text(line)
        built[version] = Artifact(
            version=version,
            path=path,
            sha256=digest,
            fault=spec.get("fault"),
            migrations=tuple(spec["migrations"]),
        )
    return built
