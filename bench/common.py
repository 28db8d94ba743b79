"""What both benchmarks share: their log line, their error, and text tables of medians, spreads and
ratios measured in the same run."""

from __future__ import annotations

import statistics
import sys
import time

STARTED = time.monotonic()


class BenchError(Exception):
    """The benchmark could not measure something; the message says what."""


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def spread(values: list[float]) -> str:
    return f"{min(values):6.2f}-{max(values):<6.2f}"


def verdict(ratio: float, target: float) -> str:
    return f"met (<= {target:.1f}x)" if ratio <= target else f"MISSED (> {target:.1f}x)"


class Table:
    """Lines of a report; ``width`` is the label column."""

    def __init__(self, width: int = 64) -> None:
        self.width = width
        self.lines: list[str] = []

    def title(self, text: str) -> None:
        self.lines += ["", text, "-" * len(text)]

    def row(
        self, label: str, values: list[float], baseline: list[float] | None = None, target: float | None = None
    ) -> None:
        """A measurement; with ``baseline``, the ratio of the medians and the median of the per-run ratios."""
        median = statistics.median(values)
        text = f"  {label:<{self.width}} {median:8.2f} s  {spread(values)} n={len(values)}"
        if baseline:
            ratio = median / statistics.median(baseline)
            paired = statistics.median(ours / theirs for ours, theirs in zip(values, baseline, strict=False))
            text += f"  {ratio:5.2f}x ({paired:4.2f}x)"
            if target is not None:
                text += f"  {verdict(ratio, target)}"
        self.lines.append(text)

    def header(self, section: str, ratio: str = "ours/runbook (paired)") -> str:
        return f"{section:<{self.width + 2}} {'median':>10}  {'min-max':<13} {'n':<3}  {ratio}"

    def text(self, label: str, value: str) -> None:
        self.lines.append(f"  {label:<{self.width}} {value}")

    def render(self) -> str:
        return "\n".join(self.lines)
