"""Publishing a job without the outbox: only for when the outbox's database is unreachable and
a retry must still reach its queue before the delivery is acked."""

from __future__ import annotations

import uuid

from aio_pika.abc import AbstractExchange

from services.core.broker import persistent_message
from services.core.jobs import JobHistory, ThumbnailJob


class ExchangeJobPublisher:
    """Publishes to the jobs exchange over a channel with publisher confirms, `mandatory`, and
    `on_return_raises`, so that an unroutable job raises instead of vanishing."""

    def __init__(self, jobs_exchange: AbstractExchange) -> None:
        self._exchange = jobs_exchange

    async def publish(self, job: ThumbnailJob, history: JobHistory, routing_key: str) -> None:
        message = persistent_message(job.to_body(), f"direct-{uuid.uuid4()}", history.to_headers())
        await self._exchange.publish(message, routing_key=routing_key, mandatory=True)
