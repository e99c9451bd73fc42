"""The workspace walls on the real services, case by case, over gRPC and HTTP: no token, a bad
signature or an expired token is UNAUTHENTICATED / 401; a workspace the token does not list is
PERMISSION_DENIED / 403 and changes and reveals nothing; a photo of another workspace asked for
under one's own is NOT_FOUND; health stays open; no token or secret is ever logged."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import aiohttp
import asyncpg
import grpc
import pytest
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc, photos_pb2, photos_pb2_grpc

from services.core.auth import TokenAuthority
from services.core.config import Settings
from services.core.photos import PhotoRecord
from services.core.storage import ObjectStore
from tests.integration.conftest import Services
from tests.support import images
from tests.support.auth import auth_headers, bearer, new_secret, token_for
from tests.support.events_seed import add_photo, complete_photo
from tests.support.uploads import rejected_upload, upload

GrpcCall = Callable[[grpc.aio.Channel, str, str, tuple], Awaitable[object]]


def new_workspace() -> str:
    return f"wall-{uuid.uuid4().hex[:10]}"


def bad_tokens(settings: Settings, workspace_id: str) -> dict[str, tuple]:
    """Call metadata that must not authenticate, by the case's name."""
    own = TokenAuthority(settings.auth_secret or "")
    return {
        "no-token": (),
        "bad-signature": bearer(TokenAuthority(new_secret()).issue("eve", [workspace_id], 600)),
        "expired": bearer(own.issue("ann", [workspace_id], 60, now=time.time() - 3600)),
        "not-a-jwt": bearer("definitely-not-a-jwt"),
        "basic-scheme": (("authorization", f"Basic {token_for(settings, workspace_id)}"),),
    }


# --- gRPC --------------------------------------------------------------------------------------


async def get_photo(channel, workspace_id, photo_id, metadata):
    request = photos_pb2.GetPhotoRequest(workspace_id=workspace_id, photo_id=photo_id)
    return await photos_pb2_grpc.PhotoServiceStub(channel).GetPhoto(request, metadata=metadata)


async def list_photos(channel, workspace_id, photo_id, metadata):
    request = photos_pb2.ListPhotosRequest(workspace_id=workspace_id)
    return await photos_pb2_grpc.PhotoServiceStub(channel).ListPhotos(request, metadata=metadata)


async def delete_photo(channel, workspace_id, photo_id, metadata):
    request = photos_pb2.DeletePhotoRequest(workspace_id=workspace_id, photo_id=photo_id)
    return await photos_pb2_grpc.PhotoServiceStub(channel).DeletePhoto(request, metadata=metadata)


async def retry_photo(channel, workspace_id, photo_id, metadata):
    request = photos_pb2.RetryThumbnailsRequest(workspace_id=workspace_id, photo_id=photo_id)
    stub = photos_pb2_grpc.PhotoServiceStub(channel)
    return await stub.RetryThumbnails(request, metadata=metadata)


async def upload_photo(channel, workspace_id, photo_id, metadata, sent_before_hold=1):
    """Only ever rejected here: see rejected_upload."""
    stub = photos_pb2_grpc.PhotoServiceStub(channel)
    raise await rejected_upload(stub, workspace_id, metadata, sent_before_hold)


PHOTO_CALLS: dict[str, GrpcCall] = {
    "GetPhoto": get_photo,
    "ListPhotos": list_photos,
    "DeletePhoto": delete_photo,
    "RetryThumbnails": retry_photo,
    "UploadPhoto": upload_photo,
}


async def subscribe(channel, workspace_id, _photo_id, metadata):
    request = notifier_pb2.SubscribeRequest(workspace_id=workspace_id)
    call = notifier_pb2_grpc.NotifierServiceStub(channel).Subscribe(request, metadata=metadata)
    return await call.read()


async def expect_code(call: Awaitable[object], code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details() or ""


def channel_to(services: Services, name: str) -> grpc.aio.Channel:
    """A channel without a token of its own: each call brings its metadata."""
    settings = services.upload.settings if name in PHOTO_CALLS else services.settings
    address = settings.upload_addr if name in PHOTO_CALLS else settings.notifier_addr
    return grpc.aio.insecure_channel(address)


ALL_CALLS = [*PHOTO_CALLS, "Subscribe"]


def call_of(name: str, sent_before_hold: int = 1) -> GrpcCall:
    """The call named `name`; for UploadPhoto, how many messages go out before the call ends
    (0 when the token is rejected: see rejected_upload)."""
    if name == "UploadPhoto":
        return functools.partial(upload_photo, sent_before_hold=sent_before_hold)
    return PHOTO_CALLS.get(name, subscribe)


@pytest.mark.parametrize(
    "case", ["no-token", "bad-signature", "expired", "not-a-jwt", "basic-scheme"]
)
@pytest.mark.parametrize("name", ALL_CALLS)
async def test_grpc_without_a_valid_token_is_unauthenticated(
    services: Services, pool: asyncpg.Pool, name: str, case: str
) -> None:
    workspace_id = new_workspace()
    photo = (await add_photo(pool, workspace_id)).photo
    assert photo is not None
    metadata = bad_tokens(services.settings, workspace_id)[case]
    async with channel_to(services, name) as channel:
        details = await expect_code(
            call_of(name, sent_before_hold=0)(channel, workspace_id, str(photo.id), metadata),
            grpc.StatusCode.UNAUTHENTICATED,
        )
    assert all(value not in details for _, value in metadata)
    assert services.settings.auth_secret not in details
    assert await photo_exists(pool, photo)


@pytest.mark.parametrize("name", ALL_CALLS)
async def test_grpc_unlisted_workspace_is_permission_denied_and_reveals_nothing(
    services: Services, pool: asyncpg.Pool, name: str
) -> None:
    theirs, mine, photo = await their_photo(pool)
    metadata = bearer(token_for(services.settings, mine))
    async with channel_to(services, name) as channel:
        answers = [
            await expect_code(
                call_of(name)(channel, theirs, photo_id, metadata),
                grpc.StatusCode.PERMISSION_DENIED,
            )
            for photo_id in (str(photo.id), str(uuid.uuid4()))
        ]
    # The same answer for a photo that exists and one that does not: nothing is revealed.
    assert answers[0] == answers[1]
    assert await photo_exists(pool, photo)
    assert await photo_count(pool, theirs) == 1


@pytest.mark.parametrize("name", ["GetPhoto", "DeletePhoto", "RetryThumbnails"])
async def test_grpc_photo_of_another_workspace_under_ones_own_is_not_found(
    services: Services, pool: asyncpg.Pool, name: str
) -> None:
    _, mine, photo = await their_photo(pool)
    metadata = bearer(token_for(services.settings, mine))
    async with channel_to(services, name) as channel:
        await expect_code(
            call_of(name)(channel, mine, str(photo.id), metadata), grpc.StatusCode.NOT_FOUND
        )
    assert await photo_exists(pool, photo)


async def test_grpc_a_token_for_several_workspaces_opens_each(
    services: Services, pool: asyncpg.Pool
) -> None:
    first, second = new_workspace(), new_workspace()
    photos = [(await add_photo(pool, ws)).photo for ws in (first, second)]
    metadata = bearer(token_for(services.settings, first, second, sub="ann"))
    async with channel_to(services, "GetPhoto") as channel:
        for ws, photo in zip((first, second), photos, strict=True):
            assert photo is not None
            got = await get_photo(channel, ws, str(photo.id), metadata)
            assert got.id == str(photo.id)  # type: ignore[attr-defined]


async def their_photo(pool: asyncpg.Pool) -> tuple[str, str, PhotoRecord]:
    """Two new workspaces, theirs and mine, and a photo in theirs."""
    theirs, mine = new_workspace(), new_workspace()
    photo = (await add_photo(pool, theirs)).photo
    assert photo is not None
    return theirs, mine, photo


async def photo_exists(pool: asyncpg.Pool, photo: PhotoRecord) -> bool:
    return await pool.fetchval("SELECT count(*) FROM photos WHERE id = $1", photo.id) == 1


async def photo_count(pool: asyncpg.Pool, workspace_id: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM photos WHERE workspace_id = $1", workspace_id)


# --- HTTP --------------------------------------------------------------------------------------


def thumbnail_url(services: Services, workspace_id: str, photo_id: object) -> str:
    path = f"/v1/workspaces/{workspace_id}/photos/{photo_id}/thumbnails/small"
    return services.notifier.http + path


def events_url(services: Services, workspace_id: str) -> str:
    return f"{services.notifier.http}/v1/workspaces/{workspace_id}/events"


async def http_status(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, dict, dict]:
    """Status, JSON body (or {} for a stream) and headers; an SSE stream is closed at once."""
    async with http.get(url, headers=headers or {}) as response:
        if response.content_type == "application/json":
            return response.status, await response.json(), dict(response.headers)
        return response.status, {}, dict(response.headers)


def sent_by(via: str, token: str) -> tuple[dict[str, str], str]:
    """(headers, query) that carry `token` in the header or, as EventSource does, the query."""
    return (auth_headers(token), "") if via == "header" else ({}, f"?access_token={token}")


def http_bad_credentials(settings: Settings, workspace_id: str) -> dict[str, tuple[dict, str]]:
    """(headers, query) pairs that must not authenticate, by the case's name."""
    expired = TokenAuthority(settings.auth_secret or "").issue("a", [workspace_id], 60, now=0)
    forged = TokenAuthority(new_secret()).issue("eve", [workspace_id], 600)
    return {
        "no-token": ({}, ""),
        "bad-signature": (auth_headers(forged), ""),
        "expired": (auth_headers(expired), ""),
        "bad-query-token": ({}, f"?access_token={forged}"),
        "basic-scheme": ({"Authorization": "Basic dXNlcjpwYXNz"}, ""),
        # The header wins over the query parameter, even when the query's token is good.
        "bad-header-good-query": (
            auth_headers(forged),
            f"?access_token={token_for(settings, workspace_id)}",
        ),
    }


@pytest.mark.parametrize("route", ["events", "thumbnail"])
@pytest.mark.parametrize(
    "case",
    [
        "no-token",
        "bad-signature",
        "expired",
        "bad-query-token",
        "basic-scheme",
        "bad-header-good-query",
    ],
)
async def test_http_without_a_valid_token_is_401(
    services: Services,
    pool: asyncpg.Pool,
    store: ObjectStore,
    http: aiohttp.ClientSession,
    route: str,
    case: str,
) -> None:
    workspace_id = new_workspace()
    photo = await complete_photo(pool, store, workspace_id)
    headers, query = http_bad_credentials(services.settings, workspace_id)[case]
    base = events_url(services, workspace_id) if route == "events" else None
    url = (base or thumbnail_url(services, workspace_id, photo.id)) + query
    status, body, response_headers = await http_status(http, url, headers)
    assert status == 401
    assert body["error"]["code"] == "unauthenticated"
    assert response_headers["WWW-Authenticate"].startswith("Bearer")
    for value in [*headers.values(), query.partition("=")[2], services.settings.auth_secret]:
        assert not value or value not in str(body)


@pytest.mark.parametrize("route", ["events", "thumbnail"])
@pytest.mark.parametrize("via", ["header", "query"])
async def test_http_unlisted_workspace_is_403_and_reveals_nothing(
    services: Services,
    pool: asyncpg.Pool,
    store: ObjectStore,
    http: aiohttp.ClientSession,
    route: str,
    via: str,
) -> None:
    theirs, mine = new_workspace(), new_workspace()
    photo = await complete_photo(pool, store, theirs)
    token = token_for(services.settings, mine)
    headers, query = (
        (auth_headers(token), "") if via == "header" else ({}, f"?access_token={token}")
    )
    answers = []
    for photo_id in (photo.id, uuid.uuid4()):
        base = events_url(services, theirs) if route == "events" else None
        url = (base or thumbnail_url(services, theirs, photo_id)) + query
        status, body, _ = await http_status(http, url, headers)
        assert status == 403
        assert body["error"]["code"] == "permission_denied"
        answers.append(body)
    assert answers[0] == answers[1]


@pytest.mark.parametrize("via", ["header", "query"])
async def test_http_listed_workspace_gets_its_thumbnail_and_events(
    services: Services,
    pool: asyncpg.Pool,
    store: ObjectStore,
    http: aiohttp.ClientSession,
    via: str,
) -> None:
    mine, theirs = new_workspace(), new_workspace()
    photo = await complete_photo(pool, store, mine)
    foreign = await complete_photo(pool, store, theirs)
    token = token_for(services.settings, mine)
    headers, query = (
        (auth_headers(token), "") if via == "header" else ({}, f"?access_token={token}")
    )
    status, _, response_headers = await http_status(
        http, thumbnail_url(services, mine, photo.id) + query, headers
    )
    assert status == 200 and response_headers["Content-Type"] == "image/webp"
    status, _, response_headers = await http_status(
        http, events_url(services, mine) + query, headers
    )
    assert status == 200 and response_headers["Content-Type"].startswith("text/event-stream")
    # Their photo, asked for under my workspace: there is no such photo here.
    status, body, _ = await http_status(
        http, thumbnail_url(services, mine, foreign.id) + query, headers
    )
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_http_health_needs_no_token(services: Services, http: aiohttp.ClientSession) -> None:
    status, body, _ = await http_status(http, f"{services.notifier.http}/healthz")
    assert (status, body) == (200, {"status": "ok"})


# --- logs --------------------------------------------------------------------------------------


async def test_no_token_or_secret_reaches_the_logs(
    services: Services,
    pool: asyncpg.Pool,
    store: ObjectStore,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every record of every logger, at DEBUG, while tokens good and bad travel in metadata,
    headers and query strings, and calls succeed and fail."""
    caplog.set_level(logging.DEBUG)
    mine = new_workspace()
    photo = await complete_photo(pool, store, mine)
    good = token_for(services.settings, mine)
    forged = TokenAuthority(new_secret()).issue("eve", [mine], 600)
    sent = [good, forged]
    async with channel_to(services, "GetPhoto") as channel:
        stub = photos_pb2_grpc.PhotoServiceStub(channel)
        await upload(stub, mine, "i", images.jpeg(32, 32), bearer(good))
        await rejected_upload(stub, mine, bearer(forged), sent_before_hold=0)
        for token in sent:
            for name in ("GetPhoto", "ListPhotos", "RetryThumbnails"):
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await call_of(name)(channel, mine, str(photo.id), bearer(token))
    for token in sent:
        for url in (events_url(services, mine), thumbnail_url(services, mine, photo.id)):
            await http_status(http, f"{url}?access_token={token}")
            await http_status(http, url, auth_headers(token))
    assert caplog.records, "the capture works: the services log at DEBUG"
    for secret in [*sent, services.settings.auth_secret]:
        assert secret and secret not in caplog.text
