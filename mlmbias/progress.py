"""Progress of a long run: a redrawn bar on a terminal, plain lines elsewhere.

A CI log, ``make bench > log 2>&1`` or an array job's output file keeps every
redraw of a bar (a fresh ``make bench`` log held about 1,600 screen widths of
them), so when the stream is not a terminal progress is written as one line
whenever the condition changes, and otherwise at most every ``interval``
seconds, with the share done and an estimate of the time left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any


class LineProgress:
    """The subset of tqdm's interface the runner uses, as occasional lines."""

    def __init__(
        self,
        total: int,
        stream: IO[str],
        interval: float = 10.0,
        prefix: str = "mlmbias run",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.stream, self.interval = total, stream, interval
        self.prefix, self.clock = prefix, clock
        self.done = 0
        self.start = self.last = clock()
        self.description = ""
        self.printed_group: str | None = None
        self.reported = 0

    def set_description(self, text: str) -> None:
        self.description = text

    def _group(self) -> str:
        # "condition 3/10 fe reps 0-999" -> "condition 3/10"
        return " ".join(self.description.split()[:2])

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if self._group() != self.printed_group or now - self.last >= self.interval:
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        share = self.done / self.total if self.total else 1.0
        left = elapsed * (1 - share) / share if share > 0 else float("nan")
        text = (
            f"{self.prefix}: {self.done}/{self.total} batches ({100 * share:.0f}%) in "
            f"{_duration(elapsed)}, about {_duration(left)} left; {self.description}"
        )
        print(text, file=self.stream, flush=True)
        self.last, self.printed_group, self.reported = now, self._group(), self.done

    def close(self) -> None:
        if self.done != self.reported:
            self._line(self.clock())


def _duration(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def progress(total: int, quiet: bool, stream: IO[str] | None = None) -> Any:
    """A tqdm bar on a terminal, :class:`LineProgress` otherwise, nothing when quiet."""
    stream = sys.stderr if stream is None else stream
    if not quiet and not stream.isatty():
        return LineProgress(total, stream)
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=quiet, unit="batch", dynamic_ncols=True, file=stream)
