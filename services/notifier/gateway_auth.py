"""The HTTP side of the workspace walls: an aiohttp middleware that authenticates every request
(except the open paths such as /healthz) and admits it only to a workspace its token lists,
before the handler reads anything.

The token comes in the `Authorization: Bearer` header or, for EventSource and <img>, which
cannot set headers, in the `access_token` query parameter. The header wins when both are sent.
The gateway keeps no access log (services.core.http_server), so the query parameter is never
written anywhere; error messages never quote it."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from services.core import validation
from services.core.auth import Claims, TokenAuthority, bearer_token
from services.core.errors import Unauthenticated

ACCESS_TOKEN_PARAMETER = "access_token"
# The verified claims of the request's token, for a handler that needs them (the SSE stream ends
# when its token expires).
CLAIMS = web.RequestKey("claims", Claims)
NO_TOKEN = (
    "no bearer token: send the header `Authorization: Bearer <token>`"
    f" or the query parameter `{ACCESS_TOKEN_PARAMETER}`"
)


def request_token(request: web.Request) -> str:
    """The request's bearer token; Unauthenticated when it sent none."""
    header = request.headers.get("Authorization", "")
    if header.strip():
        return bearer_token(header)
    token = request.query.get(ACCESS_TOKEN_PARAMETER, "").strip()
    if not token:
        raise Unauthenticated(NO_TOKEN)
    return token


def bearer_auth(tokens: TokenAuthority, open_paths: Iterable[str]) -> Middleware:
    """The middleware; requests for `open_paths` pass without a token."""
    open_set = frozenset(open_paths)

    @web.middleware
    async def authenticate(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        if request.path in open_set:
            return await handler(request)
        claims = tokens.verify(request_token(request))
        workspace_id = request.match_info.get("workspace_id")
        if workspace_id is not None:
            claims.require(validation.workspace_id(workspace_id))
        request[CLAIMS] = claims
        return await handler(request)

    return authenticate
