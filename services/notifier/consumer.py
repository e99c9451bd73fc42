"""Feeds the hub from the events exchange: each notifier process binds its own queue, so every
replica sees every event.

The queue is exclusive and auto-deleted, so events published while this process is away are
not kept for it; the event log in PostgreSQL is what fills such gaps. That is why a broker
reconnect ends every open stream: each client resumes from its last id and replays what the
broker never delivered here.

The streams must end before any event of the new queue reaches them: a stream that got one
newer than those it missed would resume after it, and skip them for good. aio-pika restores the
queue and its consumer first and calls the reconnect callbacks after, and a delivery can come
in between (the soak test saw a client skip 16 events that way, once in 300 s of CI). So the
first delivery on a channel other than the one the hub's streams have been fed from ends them,
before it is handed to the hub. The reconnect callback ends them too, for when no delivery
comes, and takes the restored channel as the one feeding the streams opened after it."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from typing import Any

from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aio_pika.exceptions import ChannelInvalidStateError

from services.core import tracing
from services.core.broker import BROKER_ERRORS, cancel_consumer
from services.core.events import EventRecord
from services.core.topology import Topology, declare_exchanges
from services.notifier.acks import ACK_EVERY, BatchedAcks
from services.notifier.hub import Hub

log = logging.getLogger(__name__)

ALL_EVENTS = "#"
DEFAULT_PREFETCH = 256


def new_instance_id() -> str:
    return uuid.uuid4().hex[:12]


def parse_event(body: bytes) -> EventRecord | None:
    """The event in a message body, or None when the body is not one."""
    try:
        return EventRecord.from_json(json.loads(body))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("dropping a message that is not an event: %s", exc)
        return None


class EventConsumer:
    """Consumes this process's own queue through the robust channel and publishes to the hub."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        topology: Topology,
        hub: Hub,
        instance_id: str,
        prefetch_count: int = DEFAULT_PREFETCH,
    ) -> None:
        self._connection = connection
        self._topology = topology
        self._hub = hub
        self.instance_id = instance_id
        self._prefetch_count = prefetch_count
        self._channel: AbstractRobustChannel | None = None
        self._queue: AbstractQueue | None = None
        self._consumer_tag: str | None = None
        # The AMQP channel (aio-pika's underlay, replaced on each reconnect) whose deliveries
        # the hub's open streams have had: the queue behind any other one is not the same.
        self._feeding: object | None = None
        self._acks = BatchedAcks(min(ACK_EVERY, max(1, prefetch_count // 2)))

    @property
    def queue_name(self) -> str:
        return self._topology.notifier_queue(self.instance_id)

    async def start(self) -> None:
        """Declares the queue, binds it to every event and starts consuming."""
        channel = self._channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self._prefetch_count)
        exchanges = await declare_exchanges(channel, self._topology)
        self._queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
        await self._queue.bind(exchanges["events"], routing_key=ALL_EVENTS)
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        self._feeding = await channel.get_underlay_channel()  # before any delivery
        self._consumer_tag = await self._queue.consume(self._on_message)

    async def close(self) -> None:
        self._connection.reconnect_callbacks.discard(self._on_reconnect)
        if self._queue is not None and self._consumer_tag is not None:
            await cancel_consumer(self._queue, self._consumer_tag)
        await self._acks.close()
        if self._channel is not None:
            with contextlib.suppress(*BROKER_ERRORS):
                await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            channel = message.channel
        except ChannelInvalidStateError:
            return  # its channel has closed: the broker delivers it again, or it is replayed
        if channel is not self._feeding:
            self._feeding = channel
            self._end_streams("consuming from a new channel")
        event = parse_event(message.body)
        if event is None:
            await message.reject(requeue=False)
            return
        with tracing.traced(tracing.trace_of(message.headers), event.photo_id):
            log.info(
                "event %d %s of %s to %d subscribers",
                event.id,
                event.type,
                event.workspace_id,
                self._hub.subscriber_count(event.workspace_id),
            )
            self._hub.publish(event)
        await self._acks.done(message)

    async def _on_reconnect(self, *_args: Any) -> None:
        if self._channel is not None:
            # The connection is up and the channel restored, so this does not wait; if the
            # channel is gone again, the next delivery's ends the streams anyway.
            with contextlib.suppress(ChannelInvalidStateError):
                self._feeding = await self._channel.get_underlay_channel()
        self._end_streams("broker connection restored")

    def _end_streams(self, why: str) -> None:
        ended = self._hub.end_all_streams()
        log.info("%s; ended %d streams so their clients resume", why, ended)
