"""A one-line progress bar on stderr for `thumbwire upload`: drawn in place on a terminal,
and as a single final line elsewhere (logs, CI), so that output stays readable."""

from __future__ import annotations

import sys
from typing import TextIO

BAR_WIDTH = 24


class ProgressBar:
    def __init__(self, label: str, total_bytes: int, stream: TextIO | None = None) -> None:
        self._label = label
        self._total = max(total_bytes, 1)
        self._sent = 0
        self._stream = stream or sys.stderr
        self._live = self._stream.isatty()

    def advance(self, sent_bytes: int) -> None:
        self._sent = min(self._sent + sent_bytes, self._total)
        if self._live:
            self._stream.write(f"\r{self.render()}")
            self._stream.flush()

    def finish(self) -> None:
        """Ends the line (on a terminal) or writes the only one (elsewhere)."""
        self._stream.write("\n" if self._live else f"{self.render()}\n")
        self._stream.flush()

    def render(self) -> str:
        fraction = self._sent / self._total
        filled = round(BAR_WIDTH * fraction)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return (
            f"{self._label} [{bar}] {fraction:4.0%}"
            f" {self._sent / 1e6:.1f}/{self._total / 1e6:.1f} MB"
        )
