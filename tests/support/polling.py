"""Waiting, in a test, for something another task or process does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Returns once `condition()` holds, checking every 20 ms; TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)
