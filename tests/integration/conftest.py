"""Fixtures of the integration tests: the upload service and the notifier side by side (for the
tests of the workspace walls), and an HTTP client session."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aio_pika.abc import AbstractRobustConnection

from services.core.config import Settings
from services.core.outbox import OutboxRelay
from services.core.storage import ObjectStore
from services.core.topology import Topology, declare_topology
from tests.support.ports import free_address
from tests.support.services import RunningNotifier, UploadService, running_upload, start_notifier


@dataclasses.dataclass
class Services:
    upload: UploadService
    notifier: RunningNotifier
    # Publishes the events that tests write straight to the database (events_seed).
    relay: OutboxRelay

    @property
    def settings(self) -> Settings:
        return self.notifier.settings


@pytest.fixture(scope="module")
async def services(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, amqp: AbstractRobustConnection
) -> AsyncIterator[Services]:
    """Both services on one namespace of their own: no other test's consumer takes the upload
    service's jobs, and whichever relay publishes an event (the upload service's, woken by
    every outbox write in the database, or the tests'), it reaches this notifier."""
    own = dataclasses.replace(
        settings, namespace=f"{settings.namespace}-walls", upload_addr=free_address()
    )
    channel = await amqp.channel()
    exchanges = await declare_topology(channel, Topology(own.namespace))
    notifier = await start_notifier(own)
    try:
        async with running_upload(own) as upload:
            yield Services(upload, notifier, OutboxRelay(pool, exchanges))
    finally:
        await notifier.close()
        await channel.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # No read timeout: SSE streams stay open; the tests bound their waits themselves.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session
