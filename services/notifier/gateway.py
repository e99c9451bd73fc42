"""The HTTP gateway: SSE for browsers, thumbnail bytes by URL, the REST facade (rest), the demo
page (page) and a health check. Every route but the health check and the page's files needs a
bearer token for its workspace (gateway_auth)."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field

import asyncpg
from aiohttp import ETag, web

from services.core import validation
from services.core.auth import TokenAuthority
from services.core.config import Settings
from services.core.database import DATABASE_ERRORS
from services.core.errors import ClientError, InvalidArgument, NotFound, Unavailable
from services.core.metrics_http import METRICS_PATH, metrics_handler
from services.core.photos import (
    THUMBNAIL_CONTENT_TYPE,
    ThumbnailSize,
    ThumbnailStatus,
    fetch_photo,
    thumbnail_key,
)
from services.core.readiness import Readiness
from services.core.storage import ObjectNotFound, ObjectStore, StorageError
from services.notifier import sse
from services.notifier.gateway_auth import CLAIMS, bearer_auth
from services.notifier.hub import Hub
from services.notifier.metrics import NotifierMetrics
from services.notifier.page import PAGE_FILES, add_page_routes
from services.notifier.rest import RestDeps, add_rest_routes
from services.notifier.sse_stream import (
    ClientStalled,
    DirectFrames,
    reset_connection,
    write_frames,
)
from services.notifier.stream import replay_then_live
from services.notifier.upload_client import BadGateway, UploadClient

log = logging.getLogger(__name__)

# The bytes under one thumbnail URL never change: keys derive from ids only. `private`: they are
# served to a token holder only, so no shared cache may hand them to anyone else.
IMMUTABLE = "private, max-age=31536000, immutable"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
HEALTHZ = "/healthz"


class ThumbnailsNotReady(NotFound):
    """404 like a missing photo, but a client may wait for photo.thumbnail_ready."""

    reason = "not_ready"


@dataclass(frozen=True)
class GatewayDeps:
    settings: Settings
    pool: asyncpg.Pool
    store: ObjectStore
    hub: Hub
    tokens: TokenAuthority
    photos: UploadClient  # the REST facade's way to the upload service
    metrics: NotifierMetrics = field(default_factory=NotifierMetrics)
    readiness: Readiness | None = None  # /healthz turns 503 once it drains


DEPS = web.AppKey("deps", GatewayDeps)


def create_app(deps: GatewayDeps) -> web.Application:
    # json_errors first (outermost), so that auth failures are JSON errors too.
    open_paths = [HEALTHZ, METRICS_PATH, *PAGE_FILES]
    app = web.Application(middlewares=[json_errors, bearer_auth(deps.tokens, open_paths)])
    app[DEPS] = deps
    add_page_routes(app)
    settings = deps.settings
    add_rest_routes(app, RestDeps(deps.photos, settings.public_base_url, settings.max_upload_bytes))
    app.router.add_get(HEALTHZ, healthz)
    app.router.add_get(METRICS_PATH, metrics_handler(deps.metrics.registry))
    app.router.add_get("/v1/workspaces/{workspace_id}/events", stream_events)
    app.router.add_get(
        "/v1/workspaces/{workspace_id}/photos/{photo_id}/thumbnails/{size}", get_thumbnail
    )
    return app


def error_response(status: int, code: str, message: str) -> web.Response:
    # no-store: a 404 for a thumbnail not made yet must not outlive the moment.
    return web.json_response(
        {"error": {"code": code, "message": message}},
        status=status,
        headers={"Cache-Control": "no-store"},
    )


@web.middleware
async def json_errors(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Every error as {"error": {"code", "message"}}, aiohttp's own 404 and 405 included."""
    try:
        return await handler(request)
    except ClientError as exc:
        response = error_response(exc.http_status, exc.code_name, str(exc))
        if exc.http_status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="thumbwire"'  # RFC 6750
        return response
    except BadGateway as exc:
        return error_response(502, "bad_gateway", str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        return error_response(exc.status, code, exc.reason)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 while the process runs, through outages of its database or broker too (it
    recovers by itself, so nothing should restart it for them; gRPC health says whether it is
    ready), and 503 from the moment it drains, so that no new client is sent to a gateway that
    is about to close."""
    readiness = request.app[DEPS].readiness
    if readiness is not None and readiness.draining:
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response({"status": "ok"})


async def stream_events(request: web.Request) -> web.StreamResponse:
    """SSE: replays after Last-Event-ID (or ?last_event_id=), then streams live events; the
    body ends when the request's token expires (the client's reconnect with it is refused,
    and a page asks for a new one)."""
    deps = request.app[DEPS]
    workspace_id = validation.workspace_id(request.match_info["workspace_id"])
    after_event_id = resume_point(request)
    response = web.StreamResponse(headers=SSE_HEADERS)
    response.content_type = sse.CONTENT_TYPE
    # Subscribed before the headers go out: a client that has them misses no later event.
    async with deps.hub.subscribe(workspace_id) as live:
        live.expire_at(request[CLAIMS].valid_until())
        await response.prepare(request)
        await response.write(sse.retry_frame())
        base_url = deps.settings.public_base_url
        # Events the hub writes straight to the connection are counted as they go; those that
        # come through the stream (replay, fallbacks) by `counted`.
        direct = DirectFrames.for_response(
            request, response, deps.hub.encodings, base_url, deps.metrics.delivered["sse"]
        )
        events = deps.metrics.counted(
            "sse", replay_then_live(deps.pool, live, after_event_id, direct=direct)
        )
        try:
            await write_frames(
                request,
                response,
                events,
                encodings=deps.hub.encodings,
                base_url=base_url,
                write_timeout_s=deps.settings.stream_write_timeout_s,
            )
            if live.overflowed:
                # A client this far behind has unread bytes queued: ending the body politely
                # would wait on it for ever. Reset, so that it reconnects and resumes.
                reset_connection(request)
                log.info("SSE client of %s dropped: it fell too far behind", workspace_id)
        except ClientStalled as exc:
            log.info("SSE client of %s dropped: %s", workspace_id, exc)
        except (ConnectionResetError, ConnectionAbortedError):
            log.debug("SSE client of %s went away", workspace_id)
        except DATABASE_ERRORS as exc:
            log.warning("SSE replay of %s failed, ending the stream: %s", workspace_id, exc)
    return response


def resume_point(request: web.Request) -> int:
    """The header wins: EventSource sends it on reconnect with the page's original URL."""
    header = request.headers.get("Last-Event-ID")
    if header is not None and header.strip():
        return validation.event_id_text(header, "Last-Event-ID")
    query = request.query.get("last_event_id")
    if query is not None and query.strip():
        return validation.event_id_text(query, "last_event_id")
    return 0


async def get_thumbnail(request: web.Request) -> web.Response:
    """The WebP bytes of a complete photo's thumbnail; 404 until the photo is complete."""
    deps = request.app[DEPS]
    workspace_id = validation.workspace_id(request.match_info["workspace_id"])
    photo_id = validation.photo_id(request.match_info["photo_id"])
    size = parse_size(request.match_info["size"])
    await require_complete_photo(deps.pool, workspace_id, photo_id)
    data = await read_thumbnail(deps.store, thumbnail_key(workspace_id, photo_id, size))
    etag = content_etag(data)
    headers = {"ETag": f'"{etag}"', "Cache-Control": IMMUTABLE}
    if etag_matches(request.if_none_match, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type=THUMBNAIL_CONTENT_TYPE, headers=headers)


def parse_size(raw: str) -> ThumbnailSize:
    try:
        return ThumbnailSize(raw)
    except ValueError as exc:
        sizes = ", ".join(str(s) for s in ThumbnailSize)
        raise InvalidArgument(f"size must be one of {sizes}") from exc


async def require_complete_photo(
    pool: asyncpg.Pool, workspace_id: str, photo_id: uuid.UUID
) -> None:
    try:
        photo = await fetch_photo(pool, workspace_id, photo_id)
    except DATABASE_ERRORS as exc:
        log.warning("photo lookup failed: %s", exc)
        raise Unavailable("the photo database is unavailable") from exc
    if photo is None:
        raise NotFound("no such photo in this workspace")
    if photo.thumbnail_status != ThumbnailStatus.COMPLETE:
        raise ThumbnailsNotReady(f"thumbnails are {photo.thumbnail_status}, not complete")


async def read_thumbnail(store: ObjectStore, key: str) -> bytes:
    try:
        return await store.get(key)
    except ObjectNotFound as exc:
        raise NotFound("no such thumbnail") from exc
    except StorageError as exc:
        log.warning("thumbnail read failed: %s", exc)
        raise Unavailable("object storage is unavailable") from exc


def content_etag(data: bytes) -> str:
    """Derived from the bytes, so it holds whichever S3 server stores them."""
    return hashlib.sha256(data).hexdigest()[:32]


def etag_matches(if_none_match: tuple[ETag, ...] | None, etag: str) -> bool:
    """If-None-Match uses weak comparison (RFC 9110 13.1.2); `*` matches any."""
    return any(tag.value in (etag, "*") for tag in if_none_match or ())
