"""The parking queue: jobs given up on, kept for an operator to look at and replay once the
cause is fixed (`thumbwire dlq list`, `thumbwire dlq replay`)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import aiormq
import asyncpg
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from services.core.jobs import InvalidJob, JobHistory, ThumbnailJob
from services.core.requeue import requeue_failed
from services.core.topology import Topology


class NoParkingQueue(LookupError):
    """The namespace has no parking queue: its services never ran, or the namespace is wrong."""


@dataclass(frozen=True)
class ParkedJob:
    job: ThumbnailJob
    history: JobHistory  # the attempts made and the error that ended them
    parked_at: datetime | None

    @classmethod
    def from_message(cls, message: AbstractIncomingMessage) -> ParkedJob:
        return cls(
            ThumbnailJob.from_body(message.body),
            JobHistory.from_headers(message.headers),
            message.timestamp,
        )


@dataclass
class ReplayReport:
    replayed: list[uuid.UUID]  # failed photos given a fresh start
    discarded: list[uuid.UUID]  # no longer failed (retried, deleted): nothing to replay
    kept: int = 0  # not asked for; left parked


async def list_parked(
    connection: AbstractRobustConnection, topology: Topology, limit: int = 1000
) -> list[ParkedJob]:
    """The parked jobs, oldest first; the queue is left as it was."""
    channel = await connection.channel()
    try:
        queue = await _parking_queue(channel, topology)
        parked: list[ParkedJob] = []
        while len(parked) < limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            try:
                parked.append(ParkedJob.from_message(message))
            except InvalidJob:
                continue  # not a job: `dlq list` shows jobs only
        return parked
    finally:
        await channel.close()  # every message taken and not acked goes back to the queue


async def replay_parked(
    connection: AbstractRobustConnection,
    pool: asyncpg.Pool,
    topology: Topology,
    photo_ids: Collection[uuid.UUID] | None = None,
) -> ReplayReport:
    """Gives the failed photos of the parked jobs (all of them, or those of `photo_ids`) a
    fresh start with their attempts reset, as RetryThumbnails does, and removes their jobs
    from the parking queue. Each parked job is acked only after its photo's new job has
    committed to the outbox, so a replay cut short loses nothing."""
    report = ReplayReport([], [])
    channel = await connection.channel()
    try:
        queue = await _parking_queue(channel, topology)
        # One pass over what is parked now: messages taken and not acked are not handed out
        # again on this channel, and newly parked ones wait for the next replay.
        for _ in range(queue.declaration_result.message_count or 0):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            await _replay_one(pool, message, photo_ids, report)
    finally:
        await channel.close()
    return report


async def _parking_queue(channel: AbstractChannel, topology: Topology) -> AbstractQueue:
    try:
        return await channel.declare_queue(topology.parked_queue, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        raise NoParkingQueue(
            f"there is no queue {topology.parked_queue}: have the services of namespace"
            f" {topology.namespace!r} ever run? (THUMBWIRE_NAMESPACE)"
        ) from None


async def _replay_one(
    pool: asyncpg.Pool,
    message: AbstractIncomingMessage,
    photo_ids: Collection[uuid.UUID] | None,
    report: ReplayReport,
) -> None:
    try:
        job = ThumbnailJob.from_body(message.body)
    except InvalidJob:
        report.kept += 1
        return
    if photo_ids is not None and job.photo_id not in photo_ids:
        report.kept += 1
        return
    photo = await requeue_failed(pool, job.workspace_id, job.photo_id)
    (report.replayed if photo is not None else report.discarded).append(job.photo_id)
    await message.ack()
