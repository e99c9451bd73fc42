"""services.core.lifecycle.cancel_and_wait ends a task even if it swallows a cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from services.core import lifecycle


async def swallows_one_cancellation() -> None:
    with contextlib.suppress(asyncio.CancelledError):  # as a library can, on its way up
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lifecycle, "RECANCEL_AFTER_S", 0.05)
    task = asyncio.create_task(swallows_one_cancellation(), name="swallower")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING):
        async with asyncio.timeout(5):
            await lifecycle.cancel_and_wait(task)
    assert task.cancelled()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "task swallower goes on after its cancellation" in warnings[0]
    assert "swallows_one_cancellation" in warnings[0]


async def test_a_task_that_ends_when_cancelled_is_waited_for_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = asyncio.create_task(asyncio.sleep(3600), name="obedient")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING):
        await lifecycle.cancel_and_wait(task)
    assert task.cancelled()
    assert not caplog.records
