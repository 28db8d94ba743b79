"""The log_archive module: its planning and refusals with plain data, and its file operations on tmp_path.

The file tests run the real step (``archive_logs``) and the module's ``main()`` on a directory of
rotated logs made here, with old modification times set by ``os.utime``; the open-file test holds a
file open in this very process, which the scan of the real ``/proc`` must find. The whole module in
a clinic container is exercised by tests/integration/test_log_archive.py.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops import log_archive_files
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_archive import (
    DAY,
    LogArchiveError,
    LogFile,
    check_directory,
    check_options,
    check_patterns,
    dated_destination,
    parse_size,
    plan_age_prune,
    plan_size_prune,
    select_rotated,
)
from ansible_collections.clinicops.runbook.plugins.module_utils._clinicops.log_archive_files import archive_logs
from ansible_collections.clinicops.runbook.plugins.modules import log_archive

NOW = time.time()
JAN_2026 = 1767700800  # 2026-01-06T12:00:00Z
HAS_ZSTD = shutil.which("zstd") is not None


def params(path: Path | str, **overrides: object) -> dict:
    base = {
        "path": str(path),
        "patterns": ["*.log.*", "*.log-*"],
        "archive_dir": None,
        "compress": "auto",
        "max_age_days": 0,
        "max_total_size": "0",
        "protect": [],
        "min_age": 60,
        "checksums": False,
    }
    return {**base, **overrides}


# -- options -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("1048576", 1048576), ("500M", 500 * 1024**2), ("2G", 2 * 1024**3), ("1.5k", 1536), ("2 GiB", 2**31)],
)
def test_sizes_are_read_in_powers_of_1024(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "5 apples", "-1G", "G", "1.2.3M", "2G\nrm"])
def test_a_bad_size_is_refused_by_name(text: str) -> None:
    with pytest.raises(LogArchiveError, match=r"^max_total_size: .* is not a size such as 500M.*nothing was changed$"):
        parse_size(text)


@pytest.mark.parametrize("path", ["/", "/etc", "/usr/", "/var", "//var", "/var/log/../../etc"])
def test_system_directories_and_dot_dot_are_refused(path: str) -> None:
    with pytest.raises(LogArchiveError, match=r"^path: .*nothing was changed$"):
        check_directory(path, "path")


def test_a_relative_path_is_refused_and_var_log_is_allowed() -> None:
    with pytest.raises(LogArchiveError, match=r"^path: 'var/log' is not an absolute path"):
        check_directory("var/log", "path")
    assert check_directory("/var/log/", "path") == "/var/log"


@pytest.mark.parametrize("pattern", ["*", "*.log", "app*", "a/b.log.1", ""])
def test_patterns_that_take_live_logs_or_paths_are_refused(pattern: str) -> None:
    with pytest.raises(LogArchiveError, match=r"^patterns: .*nothing was changed$"):
        check_patterns([pattern], "patterns")


def test_an_archive_dir_holding_the_rotated_logs_is_refused() -> None:
    with pytest.raises(LogArchiveError, match=r"^archive_dir: /var/log is /var/log/app itself or one of its parents"):
        check_options(params("/var/log/app", archive_dir="/var/log"), zstd_available=True)
    assert check_options(params("/var/log/app"), zstd_available=True).archive_dir == "/var/log/app/archive"


def test_compression_defaults_to_zstd_only_where_its_program_is() -> None:
    assert check_options(params("/var/log/app"), zstd_available=True).compress == "zstd"
    assert check_options(params("/var/log/app"), zstd_available=False).compress == "gzip"
    with pytest.raises(LogArchiveError, match=r"^compress: zstd was asked for but no zstd program"):
        check_options(params("/var/log/app", compress="zstd"), zstd_available=False)


# -- planning ----------------------------------------------------------------------------------------


def test_dated_paths_use_the_utc_month_and_never_reuse_a_name() -> None:
    taken: set[str] = set()
    assert dated_destination("app.log.1", JAN_2026, "zstd", taken) == "2026/01/app.log.1.zst"
    assert dated_destination("app.log.1", JAN_2026, "zstd", taken) == "2026/01/app.log.1-20260106T120000Z.zst"
    assert dated_destination("app.log.1", JAN_2026, "zstd", taken) == "2026/01/app.log.1-20260106T120000Z-2.zst"
    assert dated_destination("app.log.2.gz", JAN_2026, "zstd", taken) == "2026/01/app.log.2.gz"  # not recompressed
    # 2025-12-31T23:30:00-01:00 is January in UTC.
    assert dated_destination("x.log.1", 1767227400, "none", set()) == "2026/01/x.log.1"


def entry(name: str, age_days: float = 40, size: int = 100, directory: str = "/logs") -> LogFile:
    return LogFile(f"{directory}/{name}", name, size, NOW - age_days * DAY)


def test_selection_leaves_live_protected_open_young_and_unsafe_files_alone() -> None:
    files = [
        entry("app.log"),
        entry("app.log.1"),
        entry("app.log-20260101"),
        entry("audit.log.1"),
        entry("busy.log.1"),
        entry("fresh.log.1", age_days=10 / DAY),
        entry("evil..log.1"),
        entry("two\nlines.log.1"),
    ]
    chosen = select_rotated(files, ["*.log.*", "*.log-*"], ["audit*"], NOW, 60, {"/logs/busy.log.1"})
    assert [item.name for item in chosen.take] == ["app.log-20260101", "app.log.1"]
    assert [item.name for item in chosen.protected] == ["audit.log.1"]
    assert chosen.skipped_open == ["/logs/busy.log.1"]
    assert {item["path"]: item["reason"] for item in chosen.skipped} == {
        "/logs/evil..log.1": "name contains '..'",
        "/logs/fresh.log.1": "modified 10 s ago (min_age 60 s)",
        "/logs/two\nlines.log.1": "name contains a newline",
    }


def test_age_pruning_takes_old_files_oldest_first_but_never_protected_or_open() -> None:
    files = [entry("b.log.1", 50), entry("a.log.1", 90), entry("audit.log.1.zst", 400), entry("c.log.1", 10)]
    files.append(entry("open.log.1", 100))
    plan = plan_age_prune(files, NOW, 30, ["audit*"], {"/logs/open.log.1"})
    assert [(prune.file.name, prune.reason) for prune in plan] == [("a.log.1", "age"), ("b.log.1", "age")]
    assert plan_age_prune(files, NOW, 0, [], set()) == []


def test_size_pruning_takes_the_oldest_until_the_archive_fits() -> None:
    files = [entry("new.log.1", 1, 300), entry("old.log.1", 9, 300), entry("audit.log.1", 20, 300)]
    files += [entry("mid.log.1", 5, 300)]
    plan, total = plan_size_prune(files, 650, ["audit*"], set())
    assert [(prune.file.name, prune.reason) for prune in plan] == [("old.log.1", "size"), ("mid.log.1", "size")]
    assert total == 600
    assert plan_size_prune(files, 0, [], set()) == ([], 1200)
    # Protected files count but stay: the archive can remain over the limit.
    plan, total = plan_size_prune(files, 100, ["*"], set())
    assert plan == [] and total == 1200


# -- files ------------------------------------------------------------------------------------------


def put(path: Path, data: bytes, age_days: float) -> Path:
    path.write_bytes(data)
    # From the real time, not NOW: the module run through main() ages files against the clock, and a long
    # suite can pass min_age between this module's import and the test.
    moment = time.time() - age_days * DAY
    os.utime(path, (moment, moment))
    return path


LINES = b"".join(b"2026-01-06T12:00:%02d clinic-app GET /patients/%d 200\n" % (i % 60, i) for i in range(20000))


ROTATED_GZ = gzip.compress(LINES[:5000], mtime=0)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """A directory as logrotate leaves it: the live log, rotated files of several ages, an audit log."""
    directory = tmp_path / "clinic-app"
    directory.mkdir()
    put(directory / "app.log", b"live\n", 0)
    put(directory / "app.log.1", LINES, 2)
    put(directory / "app.log.2.gz", ROTATED_GZ, 20)
    put(directory / "app.log.3", LINES[:100000], 45)
    put(directory / "audit.log.1", b"who did what\n", 400)
    put(directory / "api.log-20260101", LINES[:50000], 5)
    put(directory / "fresh.log.1", b"just rotated\n", 0)
    (directory / "outside.log.1").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_bytes(b"not ours\n")
    return directory


def tree(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and link under ``root``: relative path -> (size, mtime ns, sha256) as lstat sees it."""
    found = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = b"" if path.is_symlink() or path.is_dir() else path.read_bytes()
        found[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns, hashlib.sha256(content).hexdigest())
    return found


@pytest.fixture(autouse=True)
def own_processes(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A /proc holding only this test process: its real ``/proc/<pid>`` (so its real descriptors), linked.

    Processes outside the test (a sandbox's own PID 1, say) may hide their descriptors even from root,
    and the module rightly refuses then; the tests must not depend on the machine they run on.
    """
    view = tmp_path_factory.mktemp("proc")
    (view / str(os.getpid())).symlink_to(f"/proc/{os.getpid()}")
    monkeypatch.setattr(log_archive_files, "PROC", str(view))
    return view


def run(directory: Path, check_mode: bool = False, **overrides: object) -> dict:
    options = check_options(params(directory, **overrides), zstd_available=HAS_ZSTD)
    return archive_logs(options, check_mode, now=NOW)


def month(age_days: float) -> str:
    return time.strftime("%Y/%m", time.gmtime(NOW - age_days * DAY))


def decompress(path: Path) -> bytes:
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    return subprocess.run(["zstd", "-q", "-d", "-c", str(path)], capture_output=True, check=True).stdout


@pytest.mark.parametrize(
    "method", [pytest.param("zstd", marks=pytest.mark.skipif(not HAS_ZSTD, reason="no zstd")), "gzip"]
)
def test_rotated_files_are_compressed_proven_and_dated(logs: Path, method: str) -> None:
    before = tree(logs.parent)
    done = run(logs, compress=method, protect=["audit*"], checksums=True)
    archive = logs / "archive"
    suffix = ".zst" if method == "zstd" else ".gz"
    dest = archive / month(2) / f"app.log.1{suffix}"
    assert decompress(dest) == LINES
    assert dest.stat().st_mtime_ns == before["clinic-app/app.log.1"][1]  # the date of the log, not of the run
    assert not (logs / "app.log.1").exists() and (logs / "app.log").read_bytes() == b"live\n"
    assert {item["src"]: item["dest"] for item in done["compressed"]} == {
        str(logs / "api.log-20260101"): str(archive / month(5) / f"api.log-20260101{suffix}"),
        str(logs / "app.log.1"): str(dest),
        str(logs / "app.log.3"): str(archive / month(45) / f"app.log.3{suffix}"),
    }
    assert all(item["bytes_after"] == Path(item["dest"]).stat().st_size for item in done["compressed"])
    assert done["moved"] == [
        {
            "src": str(logs / "app.log.2.gz"),
            "dest": str(archive / month(20) / "app.log.2.gz"),
            "bytes": before["clinic-app/app.log.2.gz"][0],
        }
    ]
    assert (archive / month(20) / "app.log.2.gz").read_bytes() == ROTATED_GZ
    assert (logs / "audit.log.1").read_bytes() == b"who did what\n" and done["protected"] == 1
    assert {item["path"]: item["reason"] for item in done["skipped"]} == {
        str(logs / "fresh.log.1"): "modified 0 s ago (min_age 60 s)",
        str(logs / "outside.log.1"): "symbolic link (never followed)",
    }
    assert (logs.parent / "elsewhere").read_bytes() == b"not ours\n"
    assert sorted(done["checksums"]) == sorted([item["dest"] for item in done["compressed"] + done["moved"]])
    for path, digest in done["checksums"].items():
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
        assert Path(path + ".sha256").read_text() == f"{digest}  {Path(path).name}\n"
    assert done["changed"] and done["kept"] == 4 and done["bytes_freed"] > 0
    assert done["total_bytes_after"] == sum(Path(path).stat().st_size for path in done["checksums"])
    assert not list(archive.rglob(".log_archive.*"))  # no temporary file left


def test_a_file_open_in_a_process_is_never_touched(logs: Path) -> None:
    with open(logs / "app.log.1", "ab") as writer:
        done = run(logs, compress="gzip", max_age_days=1)
        assert done["skipped_open"] == [str(logs / "app.log.1")]
        assert (logs / "app.log.1").read_bytes() == LINES
        assert str(logs / "app.log.1") not in [item["path"] for item in done["pruned"]]
        writer.write(b"still writing\n")
    # Closed but just written: too young for min_age. Once it is old enough, the next run takes it (by its age,
    # it is pruned without being compressed first).
    again = run(logs, compress="gzip", max_age_days=1)
    assert again["skipped_open"] == [] and (logs / "app.log.1").exists()
    assert [item["reason"] for item in again["skipped"] if item["path"] == str(logs / "app.log.1")] == [
        "modified 0 s ago (min_age 60 s)"
    ]
    os.utime(logs / "app.log.1", (NOW - 2 * DAY, NOW - 2 * DAY))
    last = run(logs, compress="gzip", max_age_days=1)
    assert {"path": str(logs / "app.log.1"), "bytes": len(LINES) + 14, "reason": "age"} in last["pruned"]
    assert not (logs / "app.log.1").exists()


def test_check_mode_reports_everything_and_changes_nothing_then_a_second_run_changes_nothing(logs: Path) -> None:
    before = tree(logs.parent)
    predicted = run(logs, check_mode=True, compress="gzip", max_age_days=30, protect=["audit*"], checksums=True)
    assert tree(logs.parent) == before
    assert predicted["changed"] and predicted["checksums"] == {}
    assert predicted["msg"].startswith(f"log archive of {logs}: would have compressed 2 file(s); would have moved 1")
    assert [(item["path"], item["reason"]) for item in predicted["pruned"]] == [(str(logs / "app.log.3"), "age")]

    done = run(logs, compress="gzip", max_age_days=30, protect=["audit*"], checksums=True)
    assert [item["dest"] for item in done["compressed"]] == [item["dest"] for item in predicted["compressed"]]
    assert done["moved"] == predicted["moved"] and done["pruned"] == predicted["pruned"]
    assert not (logs / "app.log.3").exists() and (logs / "audit.log.1").exists()

    settled = tree(logs.parent)
    for check_mode in (False, True):
        again = run(logs, check_mode=check_mode, compress="gzip", max_age_days=30, protect=["audit*"], checksums=True)
        assert not again["changed"] and again["compressed"] == again["moved"] == again["pruned"] == []
        assert again["kept"] == done["kept"] == 3 and again["total_bytes_after"] == done["total_bytes_after"]
        assert tree(logs.parent) == settled


def test_size_pruning_removes_the_oldest_archived_files_with_their_checksums(logs: Path) -> None:
    run(logs, compress="none", checksums=True, protect=["audit*"])
    archive = logs / "archive"
    sizes = {path.name: path.stat().st_size for path in archive.rglob("*.log*") if not path.name.endswith(".sha256")}
    limit = sizes["app.log.1"] + sizes["api.log-20260101"]
    done = run(logs, compress="none", max_total_size=str(limit), protect=["audit*"])
    assert [(Path(item["path"]).name, item["reason"]) for item in done["pruned"]] == [
        ("app.log.3", "size"),
        ("app.log.2.gz", "size"),
    ]
    assert not list(archive.rglob("app.log.3*")) and not list(archive.rglob("app.log.2.gz*"))  # side files too
    assert done["total_bytes_after"] == limit and done["kept"] == 2
    assert done["bytes_freed"] == sizes["app.log.3"] + sizes["app.log.2.gz"]


def test_a_copy_that_does_not_prove_equal_keeps_the_source(logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_archive_files, "decompressed_digest", lambda path, method: ("0" * 64, 1))
    with pytest.raises(
        LogArchiveError, match=r"the archived copy of .*/api\.log-20260101 does not match it \(1 byte"
    ) as raised:
        run(logs, compress="gzip")
    assert (logs / "api.log-20260101").read_bytes() == LINES[:50000]  # the first file taken, in name order
    assert not list((logs / "archive").rglob("api.log*")) and not list((logs / "archive").rglob(".log_archive.*"))
    assert [Path(item["src"]).name for item in raised.value.report["compressed"]] == []


def test_a_source_written_to_while_compressed_is_left_in_place(logs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = log_archive_files.compress_into

    def and_append(source, handle, method):
        result = real(source, handle, method)
        if source.name.endswith("app.log.1"):
            with open(source.name, "ab") as late:
                late.write(b"one more line\n")
        return result

    monkeypatch.setattr(log_archive_files, "compress_into", and_append)
    done = run(logs, compress="gzip")
    assert (logs / "app.log.1").read_bytes() == LINES + b"one more line\n"
    assert {"path": str(logs / "app.log.1"), "reason": "written to while being archived; left in place"} in done[
        "skipped"
    ]
    assert not list((logs / "archive").rglob("app.log.1*"))


def test_without_a_readable_proc_nothing_is_touched(logs: Path, tmp_path: Path) -> None:
    before = tree(logs.parent)
    options = check_options(params(logs), zstd_available=HAS_ZSTD)
    with pytest.raises(LogArchiveError, match=r"^cannot list the processes in .*nothing was changed$"):
        archive_logs(options, False, proc_root=str(tmp_path / "no-proc"), now=NOW)
    assert tree(logs.parent) == before


def test_a_path_that_is_a_symbolic_link_is_refused(logs: Path, tmp_path: Path) -> None:
    (tmp_path / "linked").symlink_to(logs)
    before = tree(logs.parent)
    with pytest.raises(LogArchiveError, match=r"^path: .*/linked is a symbolic link; links are never followed"):
        run(tmp_path / "linked")
    assert tree(logs.parent) == before


def test_a_process_whose_open_files_cannot_be_read_stops_everything(logs: Path, own_processes: Path) -> None:
    before = tree(logs.parent)
    hidden = own_processes / "4242"
    hidden.mkdir()
    (hidden / "comm").write_text("secretive\n")
    (hidden / "fd").write_text("not a directory of links")  # listing it fails, as an unreadable one does
    with pytest.raises(
        LogArchiveError, match=r"^cannot read the open files of process 4242 \(secretive\) in .*nothing was changed$"
    ):
        run(logs)
    assert tree(logs.parent) == before


# -- the module ---------------------------------------------------------------------------------------

RunModule = Callable[..., dict]


@pytest.fixture
def run_module(capsys: pytest.CaptureFixture[str]) -> RunModule:
    def call(**args: object) -> dict:
        with patch_module_args(args), pytest.raises(SystemExit):
            log_archive.main()
        return json.loads(capsys.readouterr().out)

    return call


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"path": "/"}, "log archive of / refused: path: / is a system directory"),
        ({"path": "/etc"}, "log archive of /etc refused: path: /etc is a system directory"),
        ({"patterns": ["*"]}, "refused: patterns: '*' also matches live logs such as app.log"),
        ({"max_total_size": "lots"}, "refused: max_total_size: 'lots' is not a size"),
        ({"min_age": -5}, "refused: min_age: -5 is negative"),
    ],
)
def test_the_module_refuses_bad_input_and_changes_nothing(
    run_module: RunModule, logs: Path, args: dict, message: str
) -> None:
    before = tree(logs.parent)
    result = run_module(**{"path": str(logs), **args})
    assert result["failed"] and message in result["msg"] and result["msg"].endswith("nothing was changed")
    assert tree(logs.parent) == before


def test_the_module_archives_and_returns_its_report(run_module: RunModule, logs: Path) -> None:
    done = run_module(path=str(logs), compress="gzip", max_age_days=30, protect=["audit*"])
    assert done["changed"] and len(done["compressed"]) == 2 and done["pruned"][0]["reason"] == "age"
    assert done["msg"].startswith(f"log archive of {logs}: compressed 2 file(s); moved 1 already compressed file(s)")
    assert "checksums" not in done
    assert not run_module(path=str(logs), compress="gzip", max_age_days=30, protect=["audit*"])["changed"]
