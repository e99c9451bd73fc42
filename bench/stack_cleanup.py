"""Removing what a benchmark run made on the shared servers: its database, and the queues and
exchanges of its namespace (the services and the notifiers name some of their own)."""

from __future__ import annotations

import contextlib
import subprocess

import aio_pika
import asyncpg

from services.core import broker
from services.core.config import Settings


async def drop_database(database_url: str) -> None:
    base, name = database_url.rsplit("/", 1)
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def delete_namespace(settings: Settings) -> None:
    """Every queue and exchange whose name starts with the run's namespace."""
    connection = await broker.connect(settings.amqp_url, "thumbwire-bench-cleanup")
    try:
        for kind, delete in (("queues", "queue_delete"), ("exchanges", "exchange_delete")):
            for name in broker_names(kind, settings.namespace):
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await getattr(channel, delete)(name)
                with contextlib.suppress(aio_pika.exceptions.AMQPError):
                    await channel.close()
    finally:
        await connection.close()


def broker_names(kind: str, namespace: str) -> list[str]:
    """The names of the broker's `kind` ("queues" or "exchanges") in `namespace`."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", f"list_{kind}", "name"], capture_output=True, text=True, check=False
    )
    names = [line.strip() for line in listed.stdout.splitlines()]
    return [name for name in names if name.startswith(f"{namespace}.")]
