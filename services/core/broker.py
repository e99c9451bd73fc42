"""RabbitMQ connections: robust ones, so that channels, exchanges, queues and consumers
declared through them come back by themselves after the broker returns."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractRobustConnection


async def connect(amqp_url: str, name: str) -> AbstractRobustConnection:
    return await aio_pika.connect_robust(
        amqp_url, client_properties={"connection_name": name}, reconnect_interval=1.0
    )
