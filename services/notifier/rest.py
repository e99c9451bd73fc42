"""The REST facade: PhotoService for browsers, as JSON over HTTP.

Each handler forwards the request's bearer token to the upload service (upload_client), which
checks it as it checks any client's; the gateway's middleware has already refused a request
without a valid token or for a workspace its token does not list. Photos come back in the
shape the SSE events carry (convert.photo_to_json), so that a page handles one shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from thumbwire.v1 import photos_pb2

from services.core import validation
from services.core.convert import photo_to_json
from services.core.errors import InvalidArgument
from services.core.photos import PhotoRecord
from services.notifier.gateway_auth import request_token
from services.notifier.upload_client import UploadClient
from services.notifier.upload_form import read_form

WORKSPACE = "/v1/workspaces/{workspace_id}"
ITEM_PHOTOS = WORKSPACE + "/items/{item_id}/photos"
PHOTOS = WORKSPACE + "/photos"
PHOTO = PHOTOS + "/{photo_id}"
# Photo state changes under one URL: no cache may keep it.
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class RestDeps:
    photos: UploadClient
    base_url: str  # of thumbnail URLs, as in the events
    max_upload_bytes: int


REST = web.AppKey("rest", RestDeps)
# UploadClient.get or .retry: (client, token, workspace_id, photo_id) -> the photo
PhotoMethod = Callable[[UploadClient, str, str, str], Awaitable[PhotoRecord]]


def add_rest_routes(app: web.Application, deps: RestDeps) -> None:
    app[REST] = deps
    app.router.add_post(ITEM_PHOTOS, upload_photo)
    app.router.add_get(ITEM_PHOTOS, list_photos)
    app.router.add_get(PHOTOS, list_photos)  # every item's
    app.router.add_get(PHOTO, get_photo)
    app.router.add_delete(PHOTO, delete_photo)
    app.router.add_post(PHOTO + "/retry", retry_photo)


async def upload_photo(request: web.Request) -> web.Response:
    """201 with the photo, pending; its thumbnails follow as events."""
    deps = request.app[REST]
    workspace_id = request.match_info["workspace_id"]
    # Checked here as well as by the upload service: a call it ends before reading the file
    # would reach us as a failed write, not as its reason.
    item_id = validation.item_id(request.match_info["item_id"])
    form = await read_form(request)
    metadata = photos_pb2.UploadMetadata(
        workspace_id=workspace_id,
        item_id=item_id,
        filename=form.filename,
        content_type=form.content_type,
        caption=form.caption,
        idempotency_key=request.headers.get("Idempotency-Key", ""),
    )
    chunks = form.chunks(deps.max_upload_bytes)
    photo = await deps.photos.upload(request_token(request), metadata, chunks)
    location = PHOTO.format(workspace_id=workspace_id, photo_id=photo.id)
    return photo_response(deps, photo, 201, {"Location": deps.base_url + location})


async def get_photo(request: web.Request) -> web.Response:
    return await photo_action(request, UploadClient.get)


async def list_photos(request: web.Request) -> web.Response:
    """In upload order, `page_size` at a time; `next_page_token` is empty on the last page."""
    deps = request.app[REST]
    page = await deps.photos.list(
        request_token(request),
        request.match_info["workspace_id"],
        request.match_info.get("item_id", ""),
        page_size(request.query.get("page_size", "")),
        request.query.get("page_token", ""),
    )
    body = {
        "photos": [photo_to_json(p, deps.base_url) for p in page.photos],
        "next_page_token": page.next_page_token,
    }
    return json_response(body)


async def retry_photo(request: web.Request) -> web.Response:
    """A failed photo queued again (409 for one that has not failed)."""
    return await photo_action(request, UploadClient.retry)


async def photo_action(request: web.Request, method: PhotoMethod) -> web.Response:
    """Calls `method` for the photo the path names; answers with the photo."""
    deps = request.app[REST]
    workspace_id, photo_id = request.match_info["workspace_id"], request.match_info["photo_id"]
    photo = await method(deps.photos, request_token(request), workspace_id, photo_id)
    return photo_response(deps, photo)


async def delete_photo(request: web.Request) -> web.Response:
    deps = request.app[REST]
    workspace_id, photo_id = request.match_info["workspace_id"], request.match_info["photo_id"]
    await deps.photos.delete(request_token(request), workspace_id, photo_id)
    return web.Response(status=204, headers=NO_STORE)


def page_size(raw: str) -> int:
    """0 (the upload service's default) when absent; its limits are the upload service's."""
    if not raw.strip():
        return 0
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"page_size must be a whole number, got {raw!r:.30}") from None


def photo_response(
    deps: RestDeps, photo: PhotoRecord, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(photo_to_json(photo, deps.base_url), status, headers)


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers={**NO_STORE, **(headers or {})})
