"""Clients of the notifier's streams that collect into queues, so that tests wait with
timeouts: a gRPC Subscribe call and an SSE response, each read by a task of its own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc

from services.core.config import Settings
from tests.support.auth import bearer_channel, token_for

WAIT_S = 10.0


class GrpcSubscription:
    """A Subscribe call read by a task of its own; None in `received` marks the end. The call
    carries `token`, by default one that lists `workspace_id`."""

    def __init__(
        self,
        settings: Settings,
        workspace_id: str,
        after_event_id: int = 0,
        token: str | None = None,
    ) -> None:
        token = token or token_for(settings, workspace_id)
        self._channel = bearer_channel(settings.notifier_addr, token)
        stub = notifier_pb2_grpc.NotifierServiceStub(self._channel)
        request = notifier_pb2.SubscribeRequest(
            workspace_id=workspace_id, after_event_id=after_event_id
        )
        self.call = stub.Subscribe(request)
        self.received: asyncio.Queue[notifier_pb2.PhotoEvent | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.call:
                self.received.put_nowait(message)
        finally:
            self.received.put_nowait(None)

    async def next(self, wait_s: float = WAIT_S) -> notifier_pb2.PhotoEvent | None:
        return await asyncio.wait_for(self.received.get(), wait_s)

    async def take(self, count: int) -> list[notifier_pb2.PhotoEvent]:
        messages = []
        for _ in range(count):
            message = await self.next()
            assert message is not None, f"stream ended after {len(messages)} of {count}"
            messages.append(message)
        return messages

    async def __aenter__(self) -> GrpcSubscription:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        self.call.cancel()
        self._reader.cancel()
        await asyncio.wait({self._reader})
        await self._channel.close()


@dataclass
class SseFrame:
    fields: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    @property
    def is_event(self) -> bool:
        return "id" in self.fields


class SseSubscription:
    """An SSE response parsed into frames by a task of its own; None marks the end."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.frames: asyncio.Queue[SseFrame | None] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
    ) -> SseSubscription:
        response = await session.get(url, headers=headers or {})
        assert response.status == 200, await response.text()
        return cls(response)

    async def _read(self) -> None:
        frame = SseFrame()
        try:
            async for raw in self.response.content:
                line = raw.decode().rstrip("\n")
                if line == "":
                    self.frames.put_nowait(frame)
                    frame = SseFrame()
                elif line.startswith(":"):
                    frame.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    frame.fields[name] = value.removeprefix(" ")
        except aiohttp.ClientError:
            pass
        finally:
            self.frames.put_nowait(None)

    async def next_frame(self, wait_s: float = WAIT_S) -> SseFrame | None:
        return await asyncio.wait_for(self.frames.get(), wait_s)

    async def next_event(self, wait_s: float = WAIT_S) -> SseFrame | None:
        """The next frame that carries an event (skipping retry and heartbeat frames)."""
        while True:
            frame = await self.next_frame(wait_s)
            if frame is None or frame.is_event:
                return frame

    async def take_events(self, count: int) -> list[SseFrame]:
        frames = []
        for _ in range(count):
            frame = await self.next_event()
            assert frame is not None, f"stream ended after {len(frames)} of {count}"
            frames.append(frame)
        return frames

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.wait({self._reader})
        self.response.close()
