"""Acknowledging the notifier's deliveries in batches: one Basic.Ack (multiple) for several.

The notifier's queue is exclusive and auto-deleted, so an ack keeps no message safe: if the
process dies, the queue goes with it, and clients resume from the event log either way. An ack
only frees the consumer's prefetch window. One ack frame per event, a send() each, was a fifth
of the notifier's samples in the pipeline benchmark's drain (py-spy). Events committed back to
back (600, three runs of each way, alternated): 500-600 us of the notifier's CPU per event with
an ack each, 433-517 batched. Events that come apart (40 a second) are each acked on their own,
after_s late, as before."""

from __future__ import annotations

import asyncio
import contextlib

from aio_pika.abc import AbstractIncomingMessage

from services.core.broker import BROKER_ERRORS

# At most this many deliveries wait for their ack, and none longer than this.
ACK_EVERY = 32
ACK_AFTER_S = 0.05


class BatchedAcks:
    """Acks the last delivery with multiple=True, which acks every earlier one on its channel,
    once `every` deliveries are done or `after_s` after the first of them.

    `every` must be below the consumer's prefetch, or the broker would stop delivering before
    a batch is full (the timer would still ack it, after_s late). A delivery of a channel
    that has since closed cannot be acked, nor needs to be: the broker has already taken back
    the channel's unacked deliveries, so that error is ignored."""

    def __init__(self, every: int = ACK_EVERY, after_s: float = ACK_AFTER_S) -> None:
        self._every = every
        self._after_s = after_s
        self._last: AbstractIncomingMessage | None = None
        self._waiting = 0
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    async def done(self, message: AbstractIncomingMessage) -> None:
        """`message` is handled; acks it, with those before it, when the batch is due."""
        self._last = message
        self._waiting += 1
        if self._waiting >= self._every:
            await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._after_s, self._flush_soon)

    async def flush(self) -> None:
        """Acks every delivery done so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        last, self._last, self._waiting = self._last, None, 0
        if last is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await last.ack(multiple=True)

    async def close(self) -> None:
        """Acks what is done and waits for a flush the timer started."""
        await self.flush()
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush(), name="notifier-acks")
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)
