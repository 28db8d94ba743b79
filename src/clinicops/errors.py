"""The one exception family of the CLI, each kind mapped to an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the run happened and some clinics failed
EXIT_USAGE = 2  # bad command line, inventory or configuration; nothing was run
EXIT_REFUSED = 3  # refused before acting: lock held, window closed, confirmation missing
EXIT_INTERRUPTED = 130  # stopped by the operator (Ctrl-C) before every wave ran


class ClinicopsError(Exception):
    """An error the operator can act on. The message says what was wrong and what was left untouched."""

    exit_code = EXIT_FAILED


class UsageError(ClinicopsError):
    exit_code = EXIT_USAGE


class RefusedError(ClinicopsError):
    exit_code = EXIT_REFUSED
