"""The auth interceptor on a GrpcServer with a test service of every call shape: a call gets to
its handler only with a valid token that lists the workspace of its (first) request, and the
handler sees no request before that check; health and reflection stay open."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from thumbwire.v1 import notifier_pb2, photos_pb2

from services.core.auth import TokenAuthority
from services.core.grpc_server import GrpcServer
from tests.support.auth import bearer, new_secret

SERVICE = "test.Walls"
Get, Subscribe, Upload = (
    photos_pb2.GetPhotoRequest,
    notifier_pb2.SubscribeRequest,
    photos_pb2.UploadPhotoRequest,
)


class Walls:
    """Handlers that record every request they see: one per call shape."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    async def unary(self, request: Get, context: grpc.aio.ServicerContext) -> Get:
        self.seen.append(request)
        return request

    async def server_stream(self, request: Subscribe, context: grpc.aio.ServicerContext):
        self.seen.append(request)
        for _ in range(2):
            yield request

    async def writer(self, request: Subscribe, context: grpc.aio.ServicerContext) -> None:
        """A server stream written with context.write() rather than yielded."""
        self.seen.append(request)
        await context.write(request)

    async def client_stream(self, requests, context: grpc.aio.ServicerContext) -> Get:
        count = 0
        async for request in requests:
            self.seen.append(request)
            count += 1
        return Get(photo_id=str(count))

    async def bidi(self, requests, context: grpc.aio.ServicerContext):
        async for request in requests:
            self.seen.append(request)
            yield request

    def handler(self) -> grpc.GenericRpcHandler:
        def shape(factory, behavior, request_type, response_type):
            return factory(
                behavior,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": shape(grpc.unary_unary_rpc_method_handler, self.unary, Get, Get),
                "ServerStream": shape(
                    grpc.unary_stream_rpc_method_handler, self.server_stream, Subscribe, Subscribe
                ),
                "Writer": shape(
                    grpc.unary_stream_rpc_method_handler, self.writer, Subscribe, Subscribe
                ),
                "ClientStream": shape(
                    grpc.stream_unary_rpc_method_handler, self.client_stream, Upload, Get
                ),
                "Bidi": shape(grpc.stream_stream_rpc_method_handler, self.bidi, Upload, Upload),
            },
        )


@pytest.fixture(scope="module")
def tokens() -> TokenAuthority:
    return TokenAuthority(new_secret())


@pytest.fixture(scope="module")
async def server(tokens: TokenAuthority) -> AsyncIterator[tuple[GrpcServer, Walls]]:
    walls = Walls()
    server = GrpcServer(
        "127.0.0.1:0",
        [lambda s: s.add_generic_rpc_handlers((walls.handler(),))],
        [SERVICE],
        tokens,
    )
    await server.start()
    yield server, walls
    await server.stop(1)


@pytest.fixture
async def call(server: tuple[GrpcServer, Walls]) -> AsyncIterator[Caller]:
    grpc_server, walls = server
    walls.seen.clear()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
        yield Caller(channel, walls)


class Caller:
    def __init__(self, channel: grpc.aio.Channel, walls: Walls) -> None:
        self.channel = channel
        self.walls = walls

    def _method(self, kind: str, name: str, request_type, response_type):
        return getattr(self.channel, kind)(
            f"/{SERVICE}/{name}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )

    async def unary(self, workspace: str, metadata=None) -> list:
        method = self._method("unary_unary", "Unary", Get, Get)
        return [await method(Get(workspace_id=workspace), metadata=metadata)]

    async def server_stream(self, workspace: str, metadata=None, name="ServerStream") -> list:
        method = self._method("unary_stream", name, Subscribe, Subscribe)
        return [r async for r in method(Subscribe(workspace_id=workspace), metadata=metadata)]

    async def writer(self, workspace: str, metadata=None) -> list:
        return await self.server_stream(workspace, metadata, name="Writer")

    async def client_stream(self, workspace: str, metadata=None, first=None, hold=None) -> list:
        method = self._method("stream_unary", "ClientStream", Upload, Get)
        async with held_stream(workspace, first, hold) as requests:
            return [await method(requests, metadata=metadata)]

    async def bidi(self, workspace: str, metadata=None, first=None, hold=None) -> list:
        method = self._method("stream_stream", "Bidi", Upload, Upload)
        async with held_stream(workspace, first, hold) as requests:
            return [r async for r in method(requests, metadata=metadata)]


@contextlib.asynccontextmanager
async def held_stream(
    workspace: str, first: Upload | None, hold: int | None
) -> AsyncIterator[AsyncIterator[Upload]]:
    """A metadata message and a chunk; with `hold`, the messages from that index on wait until
    the call has ended. A grpc.aio client that writes after the server ended the call reports
    INTERNAL instead of the server's status (grpc/grpc#36066): the tests of calls the server
    rejects early hold back what the server would not read anyway."""
    release = asyncio.Event()
    messages = [
        first or Upload(metadata=photos_pb2.UploadMetadata(workspace_id=workspace, item_id="i")),
        Upload(chunk=b"bytes"),
    ]

    async def requests() -> AsyncIterator[Upload]:
        for index, message in enumerate(messages):
            if index == hold:
                await release.wait()
            yield message

    try:
        yield requests()
    finally:
        release.set()


SHAPES = ["unary", "server_stream", "writer", "client_stream", "bidi"]


def holding(shape: str, index: int) -> dict[str, int]:
    """For the request-streaming shapes: hold the messages from `index` on (see held_stream)."""
    return {"hold": index} if shape in ("client_stream", "bidi") else {}


async def expect_code(coroutine, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await coroutine
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details() or ""


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_listed_workspace_gets_through(
    call: Caller, tokens: TokenAuthority, shape: str
) -> None:
    token = tokens.issue("ann", ["ws-a", "ws-b"], 60)
    responses = await getattr(call, shape)("ws-b", metadata=bearer(token))
    assert responses and call.walls.seen


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", ["none", "other-secret", "expired", "not-bearer", "garbage"])
async def test_no_valid_token_is_unauthenticated_before_the_handler(
    call: Caller, tokens: TokenAuthority, shape: str, case: str
) -> None:
    token = {
        "none": None,
        "other-secret": TokenAuthority(new_secret()).issue("ann", ["ws-a"], 60),
        "expired": tokens.issue("ann", ["ws-a"], 60, now=0),
        "not-bearer": tokens.issue("ann", ["ws-a"], 60),
        "garbage": "not-a-token",
    }[case]
    metadata = None
    if token is not None:
        metadata = (("authorization", f"Basic {token}"),) if case == "not-bearer" else bearer(token)
    details = await expect_code(
        getattr(call, shape)("ws-a", metadata=metadata, **holding(shape, 0)),
        grpc.StatusCode.UNAUTHENTICATED,
    )
    assert call.walls.seen == []
    assert token is None or token not in details


@pytest.mark.parametrize("shape", SHAPES)
async def test_an_unlisted_workspace_is_denied_before_the_handler_sees_a_request(
    call: Caller, tokens: TokenAuthority, shape: str
) -> None:
    token = tokens.issue("ann", ["ws-a"], 60)
    details = await expect_code(
        getattr(call, shape)("ws-b", metadata=bearer(token), **holding(shape, 1)),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    assert "ws-b" in details and token not in details
    assert call.walls.seen == []


@pytest.mark.parametrize("shape", ["client_stream", "bidi"])
async def test_a_stream_whose_first_message_names_no_workspace_is_invalid(
    call: Caller, tokens: TokenAuthority, shape: str
) -> None:
    token = tokens.issue("ann", ["ws-a"], 60)
    details = await expect_code(
        getattr(call, shape)("ws-a", metadata=bearer(token), first=Upload(chunk=b"x"), hold=1),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "must carry metadata" in details
    assert call.walls.seen == []


async def test_a_malformed_workspace_id_is_invalid_whatever_the_token(
    call: Caller, tokens: TokenAuthority
) -> None:
    token = tokens.issue("ann", ["../x"], 60)
    details = await expect_code(
        call.unary("../x", metadata=bearer(token)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "workspace_id" in details


async def test_health_and_reflection_need_no_token(call: Caller) -> None:
    health = health_pb2_grpc.HealthStub(call.channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(call.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    stream = reflection.ServerReflectionInfo(iter([request]))
    async with contextlib.aclosing(aiter(stream)) as replies:
        reply = await anext(replies)
    assert SERVICE in {s.name for s in reply.list_services_response.service}
