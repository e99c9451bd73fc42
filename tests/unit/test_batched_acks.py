"""services.notifier.acks.BatchedAcks: one ack (multiple) per batch, the tail after a pause."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiormq
from aio_pika.abc import AbstractIncomingMessage

from services.notifier.acks import BatchedAcks


class Delivery:
    """Stands for an aio-pika delivery: records the acks sent for it."""

    def __init__(self, tag: int, acks: list[tuple[int, bool]], closed: bool = False) -> None:
        self.tag = tag
        self._acks = acks
        self._closed = closed

    async def ack(self, multiple: bool = False) -> None:
        if self._closed:
            raise aiormq.exceptions.ChannelInvalidStateError("channel closed")
        self._acks.append((self.tag, multiple))


def delivery(tag: int, acks: list[tuple[int, bool]], **kwargs: Any) -> AbstractIncomingMessage:
    return cast(AbstractIncomingMessage, Delivery(tag, acks, **kwargs))


async def test_a_full_batch_is_acked_at_once_with_one_ack() -> None:
    acks: list[tuple[int, bool]] = []
    batched = BatchedAcks(every=3, after_s=60)
    for tag in range(1, 8):
        await batched.done(delivery(tag, acks))
    assert acks == [(3, True), (6, True)]
    await batched.close()
    assert acks == [(3, True), (6, True), (7, True)]


async def test_the_tail_of_a_batch_is_acked_after_the_pause() -> None:
    acks: list[tuple[int, bool]] = []
    batched = BatchedAcks(every=10, after_s=0.02)
    await batched.done(delivery(1, acks))
    await batched.done(delivery(2, acks))
    assert acks == []
    await asyncio.sleep(0.1)
    assert acks == [(2, True)]
    await batched.done(delivery(3, acks))  # a new batch starts its own pause
    await asyncio.sleep(0.1)
    assert acks == [(2, True), (3, True)]
    await batched.close()


async def test_a_delivery_of_a_closed_channel_is_let_go() -> None:
    """After a reconnect the broker has taken back the old channel's deliveries."""
    acks: list[tuple[int, bool]] = []
    batched = BatchedAcks(every=2, after_s=60)
    await batched.done(delivery(1, acks, closed=True))
    await batched.done(delivery(2, acks, closed=True))
    await batched.done(delivery(1, acks))  # the new channel's first
    await batched.close()
    assert acks == [(1, True)]
