"""Progress of long calibration phases, where a person watches: a tqdm bar on a terminal, a few
plain lines on the ``"l0"`` logger (INFO) otherwise, nothing when asked.

``progress=None`` (the default of :class:`~l0.calibration.options.L0Options`) picks by whether
stderr is a terminal; ``True`` always draws the bar, ``False`` is silent.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["is_terminal", "Phase", "LOG"]

LOG = logging.getLogger("l0")
_SLOW = 2.0  # seconds: a step this long gets a log line of its own


def is_terminal() -> bool:
    """Whether a person watches: stderr is a terminal (a CI log or a file is not)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


class Phase:
    """One phase (e.g. the capped-vertex search): ``step(**facts)`` after each unit of work,
    ``close(summary)`` at the end. A bar shows the facts as its postfix; the log gets the first
    line, every step slower than two seconds and the summary."""

    def __init__(self, name: str, progress: bool | None, unit: str = "step") -> None:
        self.name, self.started, self._last = name, time.perf_counter(), time.perf_counter()
        self.bar: Any = None
        self.log = progress is None and not is_terminal()
        if progress or (progress is None and not self.log):
            from tqdm.auto import tqdm

            self.bar = tqdm(desc=f"l0 {name}", unit=unit, delay=2.0, leave=False)
        elif self.log:
            LOG.info("l0 %s: started", name)

    def step(self, **facts: Any) -> None:
        now = time.perf_counter()
        text = ", ".join(f"{k} {v}" for k, v in facts.items())
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(text, refresh=False)
        elif self.log and now - self._last >= _SLOW:
            LOG.info("l0 %s: %s (%.1f s)", self.name, text, now - self._last)
        self._last = now

    def close(self, summary: str) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.log:
            LOG.info("l0 %s: %s in %.1f s", self.name, summary, time.perf_counter() - self.started)
