"""The upload service and the notifier run in-process on free addresses, for tests that call
them over gRPC and HTTP with tokens (tests.support.auth)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from thumbwire.v1 import photos_pb2_grpc

from services.core.config import Settings
from services.notifier.app import serve as serve_notifier
from services.upload.app import serve as serve_upload
from tests.support.auth import AuthedChannels
from tests.support.ports import free_address

Serve = Callable[[Settings, asyncio.Event], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(
    serve: Serve, settings: Settings, stop: asyncio.Event | None = None
) -> AsyncIterator[None]:
    """`serve(settings, stop)` (a service's app) in a task until the block ends, then stopped
    and awaited."""
    stop = stop or asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@dataclass
class UploadService:
    settings: Settings
    channels: AuthedChannels
    # Without a token: for health and reflection, which stay open.
    channel: grpc.aio.Channel

    def stub_for(self, *workspaces: str) -> photos_pb2_grpc.PhotoServiceStub:
        """A stub whose calls carry a token that lists `workspaces`."""
        return self.channels.stub(photos_pb2_grpc.PhotoServiceStub, *workspaces)


@contextlib.asynccontextmanager
async def running_upload(settings: Settings) -> AsyncIterator[UploadService]:
    """The upload service on `settings.upload_addr` until the block ends; its /metrics on an
    address of its own (svc.settings.upload_metrics_addr), so that two can run at once."""
    settings = replace(settings, upload_metrics_addr=free_address())
    stop = asyncio.Event()
    task = asyncio.create_task(serve_upload(settings, stop))
    channel = grpc.aio.insecure_channel(settings.upload_addr)
    channels = AuthedChannels(settings, settings.upload_addr)
    try:
        await asyncio.wait_for(channel.channel_ready(), 15)
        yield UploadService(settings, channels, channel)
    finally:
        await channels.close()
        await channel.close()
        stop.set()
        await asyncio.wait_for(task, 30)


@dataclass
class RunningNotifier:
    settings: Settings
    stop: asyncio.Event
    task: asyncio.Task[None]

    @property
    def http(self) -> str:
        return f"http://{self.settings.gateway_addr}"

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


async def start_notifier(settings: Settings) -> RunningNotifier:
    """The notifier on free addresses, serving; the caller closes it."""
    own = replace(
        settings, notifier_addr=free_address(), gateway_addr=free_address(), sse_heartbeat_s=0.3
    )
    stop = asyncio.Event()
    running = RunningNotifier(own, stop, asyncio.create_task(serve_notifier(own, stop)))
    try:
        await asyncio.wait_for(_until_serving(running), 30)
    except BaseException:
        running.stop.set()
        await asyncio.wait({running.task}, timeout=30)
        raise
    return running


async def _until_serving(running: RunningNotifier) -> None:
    async with grpc.aio.insecure_channel(running.settings.notifier_addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            if running.task.done():
                running.task.result()  # raises what serve() died of
                raise AssertionError("serve() returned before serving")
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.05)
