"""The retry ladder's arithmetic: how long attempt n waits before the next one, and when to stop.

Pure, so that the topology (which declares one queue per delay) and the thumbnailer (which
picks the queue) agree by construction."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """THUMBWIRE_RETRY_BASE_MS and THUMBWIRE_MAX_ATTEMPTS (attempts in all, the first included)."""

    base_ms: int = 2000
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.base_ms < 1:
            raise ValueError(f"the retry base delay must be at least 1 ms, got {self.base_ms}")
        if self.max_attempts < 1:
            raise ValueError(f"max attempts must be at least 1, got {self.max_attempts}")

    def delay_ms(self, attempt: int) -> int:
        """The wait after failed attempt `attempt` (1-based): base x 2^(attempt-1). Past the
        ladder's top it stays at the top, the longest delay a queue is declared for."""
        rung = min(max(attempt, 1), self.top_rung)
        return self.base_ms * 2 ** (rung - 1)

    @property
    def top_rung(self) -> int:
        """The last attempt that is followed by a retry (at least 1, so that a ladder exists
        even when max_attempts is 1 and a job must wait for its failure to be recorded)."""
        return max(self.max_attempts - 1, 1)

    def delays_ms(self) -> list[int]:
        """Every delay the ladder uses, shortest first: one retry queue each."""
        return [self.delay_ms(attempt) for attempt in range(1, self.top_rung + 1)]

    def is_last(self, attempt: int) -> bool:
        return attempt >= self.max_attempts
