"""How far a job has got: a live line on a terminal, plain log lines at intervals elsewhere (cron, CI).

Both go to stderr; the live line redraws itself in place and is cleared when the job ends.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time

from runner.words import counted

log = logging.getLogger("runner")

REDRAW_S = 0.5
LOG_EVERY_S = 30.0


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Cells done out of the job's total, calls made, errors, dollars spent and the time left."""

    def __init__(self, label: str, total: int, tally, stream=None) -> None:
        self.label = label
        self.total = total
        self.tally = tally
        self.done = 0
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.monotonic()

    def counts(self) -> str:
        tally = self.tally
        calls = f" ({counted(tally.calls, 'call')})" if tally.calls != self.done else ""
        cached = f", {tally.cache_hits} from cache" if tally.cache_hits else ""
        return (f"{self.label}: {self.done}/{self.total} done{calls}, {counted(tally.error, 'error')}, "
                f"{tally.skipped} skipped"
                f"{cached}, {tally.spent()}")

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        eta = duration(elapsed / self.done * (self.total - self.done)) if self.done else "?"
        return f"{self.counts()}, ETA {eta}"

    def cell_done(self) -> None:
        self.done += 1

    def _draw(self) -> None:
        self.stream.write("\r\x1b[2K" + self.line())
        self.stream.flush()

    async def show(self) -> None:
        """Redraw (terminal) or log (otherwise) until cancelled."""
        try:
            while True:
                await asyncio.sleep(REDRAW_S if self.live else LOG_EVERY_S)
                if self.live:
                    self._draw()
                else:
                    log.info("%s", self.line())
        finally:
            if self.live:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
