"""The client side of bearer tokens on gRPC: a channel whose every call sends
`authorization: Bearer <token>` (the CLI and the tests use it)."""

from __future__ import annotations

from typing import Any

import grpc

from services.core.auth import AUTHORIZATION, authorization_value


def bearer_metadata(token: str) -> tuple[tuple[str, str]]:
    """Call metadata that carries `token`, for one call: `stub.Method(request, metadata=...)`."""
    return ((AUTHORIZATION, authorization_value(token)),)


class _BearerToken:
    """Adds the token to every call that does not carry an `authorization` of its own."""

    def __init__(self, token: str) -> None:
        self._metadata = bearer_metadata(token)

    def with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if AUTHORIZATION not in metadata:
            for key, value in self._metadata:
                metadata.add(key, value)
        return details._replace(metadata=metadata)


# One class per call shape: a grpc.aio channel files each interceptor under the first of the
# four interceptor types it is an instance of, so one class for all four would see unary calls
# only.
class _UnaryUnary(_BearerToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self.with_token(details), request)


class _UnaryStream(_BearerToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self.with_token(details), request)


class _StreamUnary(_BearerToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self.with_token(details), requests)


class _StreamStream(_BearerToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self.with_token(details), requests)


def bearer_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Client interceptors that send `token` on calls of every shape."""
    return [kind(token) for kind in (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)]


def bearer_channel(address: str, token: str) -> grpc.aio.Channel:
    """An insecure channel to `address` whose calls send `token`. Use it as an async context
    manager, or close it."""
    return grpc.aio.insecure_channel(address, interceptors=bearer_interceptors(token))
