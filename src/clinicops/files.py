"""Writing the controller's own files (run reports, the fleet cache, incident records)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` owner-only (0600) and atomically.

    The text goes to a temporary name in the same directory (one per process: two writers never share
    it), then is renamed over ``path``: a reader sees the old file or the new one, never half of one.
    """
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        scratch.replace(path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
