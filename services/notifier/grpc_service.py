"""NotifierService: a thin gRPC face over stream.replay_then_live.

Each message is written with a bounded `context.write` (grpc_writes), not yielded: a yielded
message waits for the client's flow-control window with no limit, so a client that stops
reading would hold its handler, subscription and queued events for ever."""

from __future__ import annotations

import contextlib
import logging

import asyncpg
import grpc
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc

from services.core import convert, validation
from services.core.auth import STREAM_TOKEN_EXPIRED
from services.core.database import DATABASE_ERRORS
from services.core.errors import ClientError
from services.core.grpc_auth import CALLER
from services.notifier.grpc_writes import WriteStalled, finish_stalled, write_bounded
from services.notifier.hub import Hub
from services.notifier.metrics import NotifierMetrics
from services.notifier.stream import replay_then_live

log = logging.getLogger(__name__)

SERVICE_NAME = notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"].full_name


class NotifierService(notifier_pb2_grpc.NotifierServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        hub: Hub,
        public_base_url: str,
        write_timeout_s: float,
        metrics: NotifierMetrics | None = None,
    ) -> None:
        self._pool = pool
        self._hub = hub
        self._base_url = public_base_url
        self._write_timeout_s = write_timeout_s
        self._metrics = metrics or NotifierMetrics()

    def add_to(self, server: grpc.aio.Server) -> None:
        notifier_pb2_grpc.add_NotifierServiceServicer_to_server(self, server)

    async def Subscribe(  # noqa: N802 (the RPC's name)
        self, request: notifier_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> None:
        """Replays, then streams live; ends with OK when the hub ends the subscription, with
        UNAVAILABLE (resume from the last id) when the client stopped taking messages, and with
        UNAUTHENTICATED when the call's token expires."""
        try:
            workspace_id = validation.workspace_id(request.workspace_id)
            after_event_id = validation.after_event_id(request.after_event_id)
        except ClientError as exc:
            await context.abort(exc.code, str(exc))
        try:
            await self._stream(workspace_id, after_event_id, context)
        except WriteStalled as stalled:
            log.info("Subscribe client of %s dropped: %s", workspace_id, stalled)
            await finish_stalled(stalled)  # its subscription and queue are released by now
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"{stalled}; resume from the last event id received",
            )

    async def _stream(
        self, workspace_id: str, after_event_id: int, context: grpc.aio.ServicerContext
    ) -> None:
        """The response headers go out once the subscription is registered, so a client that
        awaits them knows every later event will reach it."""
        claims = CALLER.get()
        async with self._hub.subscribe(workspace_id) as live:
            if claims is not None:
                live.expire_at(claims.valid_until())
            await context.send_initial_metadata(())
            events = self._metrics.counted(
                "grpc", replay_then_live(self._pool, live, after_event_id)
            )
            async with contextlib.aclosing(events):
                try:
                    async for event in events:
                        if event is None:  # a heartbeat: gRPC keepalive covers idle streams
                            continue
                        message = convert.event_to_proto(event, self._base_url)
                        await write_bounded(context, message, self._write_timeout_s)
                except DATABASE_ERRORS as exc:
                    log.warning("event replay failed: %s", exc)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "the event log is unavailable")
            if live.expired:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, STREAM_TOKEN_EXPIRED)
