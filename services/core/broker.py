"""RabbitMQ connections: robust ones, so that channels, exchanges, queues and consumers
declared through them come back by themselves after the broker returns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustConnection

from services.core import tracing

# What a broker call raises when the connection or channel is gone (a reconnect is under way).
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    OSError,
)


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
