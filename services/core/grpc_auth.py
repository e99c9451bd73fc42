"""The gRPC side of the workspace walls: a server interceptor that authenticates every call and
admits a request only to a workspace its token lists, before the servicer sees the request.

The token is checked once per call, from the call's metadata. The workspace is the request's
`workspace_id` or, for a client stream such as UploadPhoto, its first message's
`metadata.workspace_id`: the interceptor wraps the request iterator, so the servicer reads
nothing until that first message has passed. No servicer repeats these checks."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any

import grpc
from google.protobuf.message import Message

from services.core import validation
from services.core.auth import AUTHORIZATION, Claims, TokenAuthority, bearer_token
from services.core.errors import ClientError, InvalidArgument, Unauthenticated

NO_TOKEN = "no bearer token: send the metadata `authorization: Bearer <token>`"

Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]
# The claims of the call being served, for a servicer that needs more than its admission
# (NotifierService ends a stream when its token expires). grpc.aio serves each call in a task
# of its own, so each call sees its own.
CALLER: ContextVar[Claims | None] = ContextVar("thumbwire_caller", default=None)
_FACTORIES = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler),
}


def named_workspace(request: Message) -> str:
    """The workspace a request is about: its `workspace_id`, or its `metadata.workspace_id`
    (the first message of an upload stream); checked for form, so a malformed id is
    INVALID_ARGUMENT whatever the token says."""
    fields = request.DESCRIPTOR.fields_by_name
    if "workspace_id" in fields:
        return validation.workspace_id(request.workspace_id)  # type: ignore[attr-defined]
    if "metadata" in fields and request.HasField("metadata"):
        return validation.workspace_id(request.metadata.workspace_id)  # type: ignore[attr-defined]
    raise InvalidArgument(
        f"the first {request.DESCRIPTOR.name} must carry metadata with the workspace_id"
    )


class Admission:
    """One call's verdict on its token, and the workspace check of its requests."""

    def __init__(self, claims: Claims | None, failure: ClientError | None) -> None:
        self._claims = claims
        self._failure = failure

    @classmethod
    def of_call(cls, tokens: TokenAuthority, metadata: Iterable[tuple[str, Any]]) -> Admission:
        authorization = next((v for k, v in metadata or () if k == AUTHORIZATION), None)
        try:
            if not isinstance(authorization, str) or not authorization:
                raise Unauthenticated(NO_TOKEN)
            return cls(tokens.verify(bearer_token(authorization)), None)
        except Unauthenticated as exc:
            return cls(None, exc)

    @property
    def claims(self) -> Claims | None:
        return self._claims

    async def authenticated(self, context: grpc.aio.ServicerContext) -> None:
        """Aborts the call with UNAUTHENTICATED unless its token verified."""
        if self._failure is not None:
            await _abort(context, self._failure)

    async def check(self, request: Message, context: grpc.aio.ServicerContext) -> None:
        """Aborts the call unless the token lists the request's workspace."""
        try:
            if self._claims is None:  # only when authenticated() was skipped
                raise Unauthenticated(NO_TOKEN)
            self._claims.require(named_workspace(request))
        except ClientError as exc:
            await _abort(context, exc)

    async def checked_stream(
        self, requests: AsyncIterator[Message], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Message]:
        """`requests`, the first one held back until its workspace has been admitted."""
        first = True
        async for request in requests:
            if first:
                await self.check(request, context)
                first = False
            yield request


async def _abort(context: grpc.aio.ServicerContext, error: ClientError) -> None:
    await context.abort(error.code, str(error))


def guarded(behavior: Behavior, admission: Admission, streams: tuple[bool, bool]) -> Behavior:
    """`behavior` (a servicer method of the shape `streams`: request, response) run only once
    `admission` lets its request in."""
    request_streaming, response_streaming = streams

    async def admitted(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await admission.authenticated(context)
        CALLER.set(admission.claims)
        if request_streaming:
            return admission.checked_stream(request, context)
        await admission.check(request, context)
        return request

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await behavior(await admitted(request, context), context)

    async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        responses = behavior(await admitted(request, context), context)
        if inspect.isawaitable(responses):  # a servicer that writes with context.write()
            await responses
            return
        # aclosing: a cancelled call closes the servicer's generator now, not at GC time.
        async with contextlib.aclosing(responses):
            async for response in responses:
                yield response

    return streaming if response_streaming else unary


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Guards every method except those of `open_services` (health, reflection)."""

    def __init__(self, tokens: TokenAuthority, open_services: Iterable[str]) -> None:
        self._tokens = tokens
        self._open = frozenset(open_services)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or service_of(handler_call_details.method) in self._open:
            return handler
        admission = Admission.of_call(self._tokens, handler_call_details.invocation_metadata)
        streams = (handler.request_streaming, handler.response_streaming)
        kind, factory = _FACTORIES[streams]
        return factory(
            guarded(getattr(handler, kind), admission, streams),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def service_of(method: str | bytes) -> str:
    """`/pkg.Service/Method` -> `pkg.Service`."""
    text = method.decode() if isinstance(method, bytes) else method
    return text.lstrip("/").rpartition("/")[0]
