"""database.when_reachable: which errors it waits out, and for how long."""

from __future__ import annotations

import time

import asyncpg
import pytest

from services.core.database import when_reachable


class Flaky:
    """Raises each of `errors` in turn, then answers "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self._errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self._errors:
            raise self._errors.pop(0)
        return "done"


async def test_it_waits_out_a_refused_connection_and_a_server_shutting_down() -> None:
    call = Flaky(
        ConnectionRefusedError(111, "Connect call failed"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
    )
    assert await when_reachable(call, wait_s=10, what="test") == "done"
    assert call.calls == 4


async def test_an_error_of_the_statement_itself_is_raised_at_once() -> None:
    call = Flaky(asyncpg.UniqueViolationError("duplicate key"))
    with pytest.raises(asyncpg.UniqueViolationError):
        await when_reachable(call, wait_s=10, what="test")
    assert call.calls == 1


async def test_past_the_wait_the_last_error_is_raised() -> None:
    call = Flaky(*(ConnectionRefusedError(111, "refused") for _ in range(100)))
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await when_reachable(call, wait_s=0.6, what="test")
    assert 0.6 <= time.monotonic() - started < 1.5
    assert 2 <= call.calls <= 5
