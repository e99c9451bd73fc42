"""RabbitMQ connections: robust ones, so that channels, exchanges, queues and consumers
declared through them come back by themselves after the broker returns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractQueue, AbstractRobustConnection

from services.core import tracing

log = logging.getLogger(__name__)

# What a broker call raises when the connection or channel is gone (a reconnect is under way).
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    OSError,
)


# How long a stopping consumer waits for the broker to confirm its cancel: a round trip when
# the broker is there. While it is not, aio_pika would wait for the connection to come back
# before even sending it, and a process stopping during an outage would never exit.
CANCEL_TIMEOUT_S = 2.0


async def connect(amqp_url: str, name: str) -> AbstractRobustConnection:
    return await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": name}, reconnect_interval=1.0
    )


def persistent_message(
    body: bytes, message_id: str, headers: Mapping[str, Any] | None = None
) -> aio_pika.Message:
    """A JSON message that survives a broker restart (on durable queues), stamped with the
    time it was sent (what `thumbwire dlq list` shows as the time a job was parked) and with
    the current trace id unless `headers` carry one (services.core.tracing)."""
    return aio_pika.Message(
        body=body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        headers=tracing.with_trace(headers),
        timestamp=datetime.now(UTC),
    )


async def cancel_consumer(
    queue: AbstractQueue, consumer_tag: str, timeout_s: float = CANCEL_TIMEOUT_S
) -> None:
    """Stops the broker delivering to `consumer_tag`, waiting at most `timeout_s`. A robust
    queue forgets the consumer before it asks the broker, so a consumer whose cancel could not
    be sent is not restored after a reconnect; its channel's close ends it for the broker."""
    try:
        async with asyncio.timeout(timeout_s):  # not wait_for: see services/core/lifecycle.py
            await queue.cancel(consumer_tag)
    except (*BROKER_ERRORS, TimeoutError) as exc:
        log.warning("consumer %s not cancelled on the broker: %r", consumer_tag, exc)
