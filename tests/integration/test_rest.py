"""The gateway's REST facade against the real upload service (in process) over gRPC: photos
uploaded as multipart forms, read, listed, retried and deleted, in the JSON shape the SSE
events use, and every failure as JSON with the HTTP status of its gRPC status."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from services.core.convert import photo_to_json
from services.core.photos import fetch_photo
from tests.integration.conftest import Services
from tests.support import images
from tests.support.auth import auth_headers, token_for
from tests.support.ports import free_address
from tests.support.seed import set_thumbnail_state
from tests.support.services import RunningNotifier, running_upload, start_notifier


def new_workspace() -> str:
    return f"rest-{uuid.uuid4().hex[:10]}"


def photo_form(
    data: bytes, caption: str | None = None, caption_last: bool = False
) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if caption is not None and not caption_last:
        form.add_field("caption", caption)
    form.add_field("photo", data, filename="shelf.jpg", content_type="image/jpeg")
    if caption is not None and caption_last:
        form.add_field("caption", caption)
    return form


class Rest:
    """HTTP calls to one gateway with a token for one workspace."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        services: Services,
        workspace_id: str,
        gateway: RunningNotifier | None = None,
    ) -> None:
        self.http = http
        self.base = f"{(gateway or services.notifier).http}/v1/workspaces/{workspace_id}"
        self.headers = auth_headers(token_for(services.settings, workspace_id))

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        async with self.http.request(method, self.base + path, headers=headers, **kwargs) as r:
            body = await r.json() if r.content_type == "application/json" else await r.read()
            return r.status, body

    async def upload(
        self, item: str = "item-1", headers: dict[str, str] | None = None, **form: Any
    ) -> dict[str, Any]:
        data = form.pop("data", images.jpeg(300, 200))
        status, body = await self.call(
            "POST", f"/items/{item}/photos", data=photo_form(data, **form), headers=headers or {}
        )
        assert status == 201, body
        return body


async def test_upload_get_list_delete_in_the_event_shape(
    services: Services, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    ws = new_workspace()
    rest = Rest(http, services, ws)
    first = await rest.upload(caption="On the shelf — ✓")
    assert first["thumbnail_status"] == "pending"
    assert (first["workspace_id"], first["item_id"]) == (ws, "item-1")
    assert (first["width"], first["height"], first["filename"]) == (300, 200, "shelf.jpg")
    assert first["caption"] == "On the shelf — ✓"
    stored = await fetch_photo(pool, ws, uuid.UUID(first["id"]))
    assert stored is not None
    # Exactly the JSON an SSE event carries for the same photo.
    assert first == photo_to_json(stored, services.settings.public_base_url)

    status, fetched = await rest.call("GET", f"/photos/{first['id']}")
    assert (status, fetched) == (200, first)

    others = [await rest.upload(item="item-2") for _ in range(2)]
    ids = [first["id"], *(p["id"] for p in others)]
    status, page1 = await rest.call("GET", "/photos", params={"page_size": "2"})
    assert status == 200 and [p["id"] for p in page1["photos"]] == ids[:2]
    status, page2 = await rest.call(
        "GET", "/photos", params={"page_size": "2", "page_token": page1["next_page_token"]}
    )
    assert [p["id"] for p in page2["photos"]] == ids[2:] and page2["next_page_token"] == ""
    status, item2 = await rest.call("GET", "/items/item-2/photos")
    assert [p["id"] for p in item2["photos"]] == ids[1:]

    assert (await rest.call("DELETE", f"/photos/{first['id']}"))[0] == 204
    status, gone = await rest.call("GET", f"/photos/{first['id']}")
    assert status == 404 and gone["error"]["code"] == "not_found"


async def test_a_repeated_idempotency_key_returns_the_first_photo(
    services: Services, http: aiohttp.ClientSession
) -> None:
    """The upload service answers a known key before reading the file: the gateway stops
    sending the rest (a file of many chunks) and returns that answer."""
    rest = Rest(http, services, new_workspace())
    data = images.jpeg(64, 64) + bytes(600_000)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await rest.upload(data=data, headers=key)
    again = await rest.upload(data=data, headers=key)
    assert again["id"] == first["id"]
    status, listed = await rest.call("GET", "/photos")
    assert status == 200
    assert [p["id"] for p in listed["photos"]] == [first["id"]]


async def test_retry_queues_a_failed_photo_and_refuses_any_other(
    services: Services, http: aiohttp.ClientSession, pool: asyncpg.Pool
) -> None:
    rest = Rest(http, services, new_workspace())
    photo = await rest.upload()
    status, body = await rest.call("POST", f"/photos/{photo['id']}/retry")
    assert status == 409 and body["error"]["code"] == "failed_precondition"

    await set_thumbnail_state(pool, uuid.UUID(photo["id"]), "failed", 5, "broken")
    status, retried = await rest.call("POST", f"/photos/{photo['id']}/retry")
    assert status == 200, retried
    assert (retried["thumbnail_status"], retried["thumbnail_attempts"]) == ("pending", 0)


@pytest.fixture(scope="module")
async def small_gateway(services: Services) -> AsyncIterator[RunningNotifier]:
    """A gateway that takes at most 1 MB a photo (the upload service takes 32 MiB)."""
    notifier = await start_notifier(
        dataclasses.replace(services.settings, max_upload_bytes=1_000_000)
    )
    yield notifier
    await notifier.close()


def raw_body(content_type: str, data: bytes) -> Callable[[], dict[str, Any]]:
    return lambda: {"data": data, "headers": {"Content-Type": content_type}}


PART_WITHOUT_END = (
    b'--b\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\n\r\n'
    + images.jpeg(30, 20)[:100]
)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (raw_body("application/json", b"{}"), 400),
        (raw_body("multipart/form-data", b"no boundary"), 400),
        (raw_body("multipart/form-data; boundary=b", b"--c\r\nnot the boundary\r\n"), 400),
        (raw_body("multipart/form-data; boundary=b", PART_WITHOUT_END), 400),
        (lambda: {"data": aiohttp.FormData({"caption": "no photo"})}, 400),
        (lambda: {"data": photo_form(images.jpeg(30, 20), "late", caption_last=True)}, 400),
        (lambda: {"data": photo_form(b"not an image at all")}, 400),
        (lambda: {"data": photo_form(images.jpeg(64, 64) + bytes(2_000_000))}, 413),
    ],
    ids=[
        "not-a-form",
        "no-boundary",
        "wrong-boundary",
        "cut-short",
        "no-photo",
        "caption-after-photo",
        "not-an-image",
        "too-large",
    ],
)
async def test_bad_uploads_are_json_errors_with_matching_statuses(
    services: Services,
    small_gateway: RunningNotifier,
    http: aiohttp.ClientSession,
    body: Callable[[], dict[str, Any]],
    status: int,
) -> None:
    rest = Rest(http, services, new_workspace(), small_gateway)
    got, error = await rest.call("POST", "/items/item-1/photos", **body())
    code = {400: "invalid_argument", 413: "resource_exhausted"}[status]
    assert (got, error["error"]["code"]) == (status, code), error
    assert error["error"]["message"]


async def test_tokens_are_checked_before_the_upload_service_is_called(
    services: Services, http: aiohttp.ClientSession
) -> None:
    ws, other = new_workspace(), new_workspace()
    rest = Rest(http, services, ws)
    photo = await rest.upload()
    path = f"{services.notifier.http}/v1/workspaces/{other}/photos/{photo['id']}"
    cases = [({}, 401, "unauthenticated"), (rest.headers, 403, "permission_denied")]
    for headers, status, code in cases:
        async with http.get(path, headers=headers) as response:
            assert response.status == status
            assert (await response.json())["error"]["code"] == code
    # A workspace the token lists, but the photo is another's: not found, as over gRPC.
    both = auth_headers(token_for(services.settings, ws, other))
    async with http.get(path, headers=both) as response:
        assert response.status == 404


async def test_an_unreachable_upload_service_is_503_until_it_is_back(
    services: Services, http: aiohttp.ClientSession
) -> None:
    nowhere = dataclasses.replace(services.settings, upload_addr=free_address())
    notifier = await start_notifier(nowhere)
    try:
        rest = Rest(http, services, new_workspace(), notifier)
        missing = f"/photos/{uuid.uuid4()}"
        for method, path, body in [
            ("GET", missing, None),
            ("GET", "/photos", None),
            ("POST", "/items/i/photos", photo_form(b"x" * 10)),
        ]:
            status, error = await rest.call(method, path, data=body)
            assert (status, error["error"]["code"]) == (503, "unavailable")
        async with http.get(f"{notifier.http}/healthz") as response:
            assert response.status == 200
        # The upload service starts where the gateway looks for it: served again, unrestarted.
        async with running_upload(nowhere), asyncio.timeout(30):
            status = 503
            while status == 503:
                await asyncio.sleep(0.2)
                status, _ = await rest.call("GET", missing)
            assert status == 404
    finally:
        await notifier.close()


async def test_the_page_is_served_without_a_token(
    services: Services, http: aiohttp.ClientSession
) -> None:
    for path, kind in [("/", "text/html"), ("/static/app.js", "text/javascript")]:
        async with http.get(services.notifier.http + path) as response:
            assert response.status == 200
            assert response.content_type == kind
            assert response.headers["Cache-Control"] == "no-cache"
