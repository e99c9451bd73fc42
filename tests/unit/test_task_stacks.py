"""Where a stuck process's tasks wait: what `kill -USR1` logs (services.core.lifecycle)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from services.core.lifecycle import log_task_stacks


async def inner(never: asyncio.Event) -> None:
    await never.wait()


async def outer(never: asyncio.Event) -> None:
    await inner(never)


async def test_each_task_is_logged_with_every_coroutine_it_awaits_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    never = asyncio.Event()
    task = asyncio.create_task(outer(never), name="stuck-here")
    await asyncio.sleep(0)  # suspended inside inner()
    with caplog.at_level(logging.WARNING):
        log_task_stacks()
    task.cancel()
    stuck = [r.getMessage() for r in caplog.records if "stuck-here" in r.getMessage()]
    assert len(stuck) == 1
    where = stuck[0].splitlines()[1:]
    assert [line.rsplit(" in ", 1)[1] for line in where[:3]] == ["outer", "inner", "wait"]
    assert __file__ in where[0] and __file__ in where[1]
