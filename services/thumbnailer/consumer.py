"""The jobs queue to the processor: manual acks, prefetch as the limit on jobs at once, and a
graceful stop that lets running jobs finish."""

from __future__ import annotations

import asyncio
import logging
import time

from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from services.core import tracing
from services.core.broker import BROKER_ERRORS, cancel_consumer
from services.core.jobs import InvalidJob, JobHistory, ThumbnailJob
from services.core.lifecycle import cancel_and_wait
from services.core.topology import QUORUM
from services.thumbnailer.metrics import ThumbnailerMetrics
from services.thumbnailer.processing import Outcome, ThumbnailProcessor

log = logging.getLogger(__name__)


class JobConsumer:
    """Owns its channel and one task per job it is running."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        queue_name: str,
        processor: ThumbnailProcessor,
        metrics: ThumbnailerMetrics,
        prefetch: int,
        requeue_delay_s: float = 1.0,
    ) -> None:
        self._connection = connection
        self._queue_name = queue_name
        self._processor = processor
        self._metrics = metrics
        self._prefetch = prefetch
        self._requeue_delay_s = requeue_delay_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        self._stopping = False

    async def start(self) -> None:
        """Consumes through the robust connection, so the consumer returns after a reconnect."""
        self._channel = await self._connection.channel()
        await self._channel.set_qos(prefetch_count=self._prefetch)
        self._queue = await self._channel.declare_queue(
            self._queue_name, durable=True, arguments=QUORUM
        )
        self._consumer_tag = await self._queue.consume(self._on_message)

    async def stop(self, grace_s: float) -> None:
        """Stops taking jobs, waits up to `grace_s` for the running ones, cancels the rest;
        closing the channel hands their messages back to the broker."""
        self._stopping = True
        await self._cancel_consumer()
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace_s)
            await asyncio.gather(*(cancel_and_wait(task) for task in late))
        if self._channel is not None:
            await self._channel.close()

    async def _cancel_consumer(self) -> None:
        if self._queue is None or self._consumer_tag is None:
            return
        await cancel_consumer(self._queue, self._consumer_tag)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        if self._stopping:  # delivered before the broker saw the cancel
            await self._settle(message, Outcome.INTERRUPTED)
            return
        task = asyncio.create_task(self._handle(message), name=f"job-{message.delivery_tag}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        # The job's trace, or a new one: its log lines, events and retries all carry it.
        with tracing.traced(tracing.trace_of(message.headers)):
            await self._handle_traced(message)

    async def _handle_traced(self, message: AbstractIncomingMessage) -> None:
        started = time.monotonic()
        attempt = JobHistory.from_headers(message.headers).attempt
        outcome = Outcome.INTERRUPTED
        self._metrics.in_flight.inc()
        try:
            outcome = await self._outcome_of(message)
            await self._settle(message, outcome)
        finally:
            self._metrics.in_flight.dec()
            self._metrics.processing_seconds.observe(time.monotonic() - started)
            self._metrics.job_ended(outcome, attempt)

    async def _outcome_of(self, message: AbstractIncomingMessage) -> Outcome:
        try:
            job = ThumbnailJob.from_body(message.body)
        except InvalidJob as exc:
            log.error("message %s rejected: %s", message.message_id, exc)
            return Outcome.REJECTED
        tracing.bind_photo(job.photo_id)
        try:
            return await self._processor.process(job, JobHistory.from_headers(message.headers))
        except Exception:
            # The top-level guard: a bug met by one job must not stop the consumer. The job
            # goes back to the queue, after a pause so that it does not spin.
            log.exception("photo %s: unexpected error: job requeued", job.photo_id)
            return Outcome.REQUEUED

    async def _settle(self, message: AbstractIncomingMessage, outcome: Outcome) -> None:
        try:
            if outcome is Outcome.REJECTED:
                await message.reject(requeue=False)
            elif outcome in (Outcome.REQUEUED, Outcome.INTERRUPTED):
                if outcome is Outcome.REQUEUED:
                    await asyncio.sleep(self._requeue_delay_s)
                await message.nack(requeue=True)
            else:
                await message.ack()
        except BROKER_ERRORS as exc:
            # The channel closed (a reconnect): the broker redelivers the message by itself.
            log.warning("message %s not settled (%s): it will be redelivered", outcome, exc)
