"""Controller-side clinic locks: two clinicops runs on one controller never work on one clinic at once.

One file per clinic under ``$CLINICOPS_HOME/locks``, held with ``flock`` for the whole run (every
wave, the pauses between them). The kernel drops a lock when its process dies, so a killed run
leaves nothing to clean up; the file's content (who holds it) is only information for the
message of a refused run. This complements the lock on the clinic itself, which also guards
against other controllers and AWX.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from clinicops.errors import RefusedError


class ControllerLocks:
    def __init__(self, directory: Path, run_id: str, operation: str) -> None:
        self.directory = directory
        self.run_id = run_id
        self.operation = operation
        self.held: dict[str, int] = {}

    def path(self, host: str) -> Path:
        return self.directory / f"{quote(host, safe='')}.lock"

    def acquire(self, hosts: list[str] | tuple[str, ...]) -> None:
        """Lock every clinic or none: a clinic held by another run refuses the whole run."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        busy = []
        for host in hosts:
            if host in self.held:
                continue
            fd = os.open(self.path(host), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy.append(f"{host} ({self._holder(fd)})")
                os.close(fd)
                continue
            self.held[host] = fd
            holder = {
                "run_id": self.run_id,
                "operation": self.operation,
                "pid": os.getpid(),
                "controller": socket.gethostname(),
                "user": os.environ.get("USER", ""),
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        if busy:
            self.release()
            raise RefusedError(
                f"another clinicops run on this controller holds {len(busy)} of these clinics: {'; '.join(busy)}; "
                "nothing was run (wait for it, or --limit to other clinics)"
            )

    @staticmethod
    def _holder(fd: int) -> str:
        with contextlib.suppress(OSError, ValueError):
            holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return ", ".join(
                f"{label}{holder.get(key, '?')}"
                for label, key in (("run ", "run_id"), ("", "operation"), ("pid ", "pid"), ("since ", "since"))
            )
        return "holder unknown"

    def release(self) -> None:
        for fd in self.held.values():
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        self.held.clear()

    def __enter__(self) -> ControllerLocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
