"""Errors a client can act on, each carrying the gRPC status code it is reported with.

Domain code raises these; the gRPC layer turns them into statuses (and a REST facade into the
matching HTTP statuses), so that input a client sent never comes back as UNKNOWN or INTERNAL."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import grpc


class ClientError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    # A finer name than the status code's, where a client needs one (e.g. "not_ready").
    reason: str | None = None

    @property
    def http_status(self) -> int:
        """The HTTP status that means what `code` means, for the gateway."""
        return HTTP_STATUS[self.code]

    @property
    def code_name(self) -> str:
        """`invalid_argument`, `not_found`, ...: a code a JSON client can branch on."""
        return self.reason or self.code.name.lower()


class InvalidArgument(ClientError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ClientError):
    code = grpc.StatusCode.NOT_FOUND


class Unauthenticated(ClientError):
    """No bearer token, or one that does not verify. The message never quotes the token."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ClientError):
    """The token is good but does not list the workspace asked for."""

    code = grpc.StatusCode.PERMISSION_DENIED


class TooLarge(ClientError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(ClientError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ClientError):
    """A dependency (database, broker, object storage) is down; the client may retry."""

    code = grpc.StatusCode.UNAVAILABLE


HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAVAILABLE: 503,
}

_BY_CODE: dict[grpc.StatusCode, type[ClientError]] = {
    kind.code: kind
    for kind in (
        InvalidArgument,
        NotFound,
        Unauthenticated,
        PermissionDenied,
        TooLarge,
        FailedPrecondition,
        Unavailable,
    )
}


def error_for_status(code: grpc.StatusCode, message: str) -> ClientError | None:
    """The ClientError a status from another service stands for (the gateway relays the upload
    service's), or None for a status no client can act on (INTERNAL, UNKNOWN, ...)."""
    kind = _BY_CODE.get(code)
    return kind(message) if kind is not None else None


P = ParamSpec("P")
R = TypeVar("R")


def grpc_errors(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Aborts the RPC with the status of a ClientError raised by `method`."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except ClientError as exc:
            context = args[-1]
            await context.abort(exc.code, str(exc))  # type: ignore[attr-defined]
            raise  # abort raises; this only satisfies the type checker

    return wrapper
