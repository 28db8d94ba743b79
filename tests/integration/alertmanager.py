"""A real Prometheus Alertmanager on loopback for the tests, from Debian's package, never installed.

``alertmanager_root()`` fetches the package with ``apt-get download prometheus-alertmanager`` into
``build/tools/alertmanager/`` (git-ignored) and extracts it there with ``dpkg-deb -x``, once: later
runs reuse the tree. ``apt-get update`` runs only when apt cannot download the package without it
(no package lists yet, or lists naming a version the mirror no longer has).

Debian's build reads its default notification template from the absolute path
``/usr/share/prometheus/alertmanager/default.tmpl`` and exits without it. Rather than writing into
the host's ``/usr/share``, the binary runs chrooted in the extracted package tree, into which the C
library and the loader it links are copied. Nothing is written outside ``build/``; starting it
needs root (chroot).

``running_alertmanager()`` starts one with clustering disabled, listening on a free loopback port,
waits until ``/-/ready`` answers, yields an ``Alertmanager`` (its URL and a small client of its
HTTP API v2) and stops it, removing its configuration and storage.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "tools" / "alertmanager"
PACKAGE = "prometheus-alertmanager"
BINARY = "usr/bin/prometheus-alertmanager"  # inside the extracted tree
INSTANCES = "run/clinicops-tests"  # inside the extracted tree: one directory per running Alertmanager
READY_TIMEOUT = 30.0
POLL_INTERVAL = 0.05
CONFIG = """\
route:
  receiver: nobody
receivers:
  - name: nobody
"""
# apt-get's complaints that updated package lists would cure.
STALE_LISTS = re.compile(r"Unable to locate package|has no installation candidate|Can't find a source|404\s+Not Found")


class AlertmanagerSetupError(RuntimeError):
    """The package could not be fetched or extracted, or Alertmanager did not become ready."""


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=600)


def _download(cache: Path) -> Path:
    """The package's .deb in ``cache``, downloaded unless one is there."""
    found = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    if found:
        return found[-1]
    done = _run(["apt-get", "download", PACKAGE], cwd=cache)
    if done.returncode != 0 and STALE_LISTS.search(done.stderr + done.stdout):
        update = _run(["apt-get", "update"])
        if update.returncode != 0:
            raise AlertmanagerSetupError(f"apt-get update failed ({update.returncode}): {update.stderr.strip()}")
        done = _run(["apt-get", "download", PACKAGE], cwd=cache)
    found = sorted(cache.glob(f"{PACKAGE}_*.deb"))
    if done.returncode != 0 or not found:
        raise AlertmanagerSetupError(f"apt-get download {PACKAGE} failed ({done.returncode}): {done.stderr.strip()}")
    return found[-1]


def _copy_linked_libraries(tree: Path) -> None:
    """Copy the shared libraries and the loader the binary links (as ldd names them) into the tree."""
    done = _run(["ldd", str(tree / BINARY)])
    if done.returncode != 0:
        raise AlertmanagerSetupError(f"ldd {tree / BINARY} failed: {done.stderr.strip() or done.stdout.strip()}")
    paths = re.findall(r"(?:=>\s*)?(/\S+)\s+\(0x", done.stdout)
    if not paths:
        raise AlertmanagerSetupError(f"ldd found no libraries for {tree / BINARY}: {done.stdout.strip()}")
    for path in paths:
        target = tree / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)


def alertmanager_root(cache: Path = CACHE) -> Path:
    """The extracted package tree (with the libraries the binary needs), prepared once and reused."""
    tree = cache / "root"
    if (tree / BINARY).is_file():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be preparing it right now
        if (tree / BINARY).is_file():
            return tree
        deb = _download(cache)
        partial = Path(tempfile.mkdtemp(prefix="root.partial-", dir=cache))
        try:
            done = _run(["dpkg-deb", "-x", str(deb), str(partial)])
            if done.returncode != 0:
                raise AlertmanagerSetupError(f"dpkg-deb -x {deb} failed: {done.stderr.strip()}")
            _copy_linked_libraries(partial)
            partial.rename(tree)  # the tree appears whole or not at all
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return tree


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Alertmanager:
    """A running Alertmanager: its base URL, and reads and writes of its HTTP API v2 for the tests."""

    url: str
    log: Path

    def request(self, method: str, path: str, payload: object = None) -> tuple[int, object]:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def silences(self) -> list[dict]:
        status, body = self.request("GET", "/api/v2/silences")
        assert status == 200, body
        return body

    def silence(self, silence_id: str) -> dict:
        status, body = self.request("GET", f"/api/v2/silence/{silence_id}")
        assert status == 200, body
        return body

    def create(self, payload: dict) -> str:
        status, body = self.request("POST", "/api/v2/silences", payload)
        assert status == 200, body
        return body["silenceID"]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def running_alertmanager() -> Iterator[Alertmanager]:
    """Start an Alertmanager on a free loopback port, wait until it is ready, stop it at the end."""
    if os.geteuid() != 0:
        raise AlertmanagerSetupError("the test Alertmanager runs chrooted in its package tree, which needs root")
    tree = alertmanager_root()
    (tree / INSTANCES).mkdir(parents=True, exist_ok=True)
    instance = Path(tempfile.mkdtemp(dir=tree / INSTANCES))
    inside = "/" + str(instance.relative_to(tree))  # the same directory, as the chrooted process sees it
    (instance / "alertmanager.yml").write_text(CONFIG)
    (instance / "data").mkdir()
    port = free_loopback_port()
    argv = [
        "chroot",
        str(tree),
        "/" + BINARY,
        f"--config.file={inside}/alertmanager.yml",
        f"--storage.path={inside}/data",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    log = instance / "alertmanager.log"
    url = f"http://127.0.0.1:{port}"
    with open(log, "w") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _ready(url):
            if process.poll() is not None:
                raise AlertmanagerSetupError(f"alertmanager exited {process.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AlertmanagerSetupError(f"alertmanager not ready after {READY_TIMEOUT:.0f} s:\n{log.read_text()}")
            time.sleep(POLL_INTERVAL)
        yield Alertmanager(url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        shutil.rmtree(instance, ignore_errors=True)
