"""Progress of the long stage loops (heads, layers) on stderr, and in the stage's log file.

On a terminal it is one bar redrawn in place; otherwise (a Snakemake job, a pipe, CI) plain
lines: the first step, then one per tenth of the loop::

    [progress] heads: 4/8 (50%) 1.7s

The stage runner points :data:`LOG` at the job's log file (``logs/<model>/<stage>.log``), which
receives the plain lines too. Progress never goes to stdout, so it cannot mix with a command's
output.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

# Set by nfp_steps.run_stage to the job's open log file; plain progress lines are copied there.
LOG: TextIO | None = None
_BAR_WIDTH = 30


class Progress:
    """Count ``total`` steps of a loop named ``desc``; call :meth:`update` after each step."""

    def __init__(self, total: int, desc: str, stream: TextIO | None = None) -> None:
        self.total = max(int(total), 0)
        self.desc = desc
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.t0 = time.perf_counter()
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._last_tenth = -1

    def _line(self) -> str:
        pct = 100 * self.done // self.total if self.total else 100
        return (f"{self.desc}: {self.done}/{self.total} ({pct}%) "
                f"{time.perf_counter() - self.t0:.1f}s")

    def update(self, n: int = 1) -> None:
        """``n`` more steps are done: redraw the bar; print a line at the first step and at
        each further tenth."""
        self.done = min(self.done + n, self.total)
        if self.tty:
            filled = _BAR_WIDTH * self.done // self.total if self.total else _BAR_WIDTH
            bar = "#" * filled + "." * (_BAR_WIDTH - filled)
            self.stream.write(f"\r[{bar}] {self._line()}")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()
        tenth = 10 * self.done // self.total if self.total else 10
        if tenth != self._last_tenth or self.done == self.total:
            self._last_tenth = tenth
            line = f"[progress] {self._line()}"
            if not self.tty:
                print(line, file=self.stream, flush=True)
            if LOG is not None and not LOG.closed:
                print(line, file=LOG, flush=True)


def track(items: Iterable[T], desc: str, total: int | None = None,
          stream: TextIO | None = None) -> Iterator[T]:
    """Yield ``items``, counting one step after each (``total`` defaults to ``len(items)``)."""
    if total is None:
        total = len(items)  # type: ignore[arg-type]
    bar = Progress(total, desc, stream)
    for item in items:
        yield item
        bar.update()
