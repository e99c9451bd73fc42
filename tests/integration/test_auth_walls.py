"""Property: whatever the token (good for some workspaces, forged, expired, garbage or none),
whatever workspace and photo id a call names, no photo, thumbnail or event of one workspace
reaches a caller of another. Each example checks the real services' answer against a model of
the world: which photos exist in which workspace, and what the token lists."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import aiohttp
import asyncpg
import grpc
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc, photos_pb2, photos_pb2_grpc

from services.core.auth import TokenAuthority
from services.core.config import Settings
from services.core.storage import ObjectStore
from tests.integration.conftest import Services
from tests.support.auth import auth_headers, bearer, new_secret
from tests.support.events_seed import add_photo, complete_photo, event_ids_after
from tests.support.streams import GrpcSubscription, SseSubscription

RUN = uuid.uuid4().hex[:8]
WORLD = [f"prop-{RUN}-{n}" for n in range(3)]
# The event examples write photos: workspaces of their own keep WORLD's photos as modelled.
EVENT_WORLD = [f"prop-ev-{RUN}-{n}" for n in range(3)]
# Workspaces that exist nowhere, that a token may list or a call may name all the same.
STRANGERS = [f"none-{RUN}-{n}" for n in range(2)]
EXAMPLES = hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclasses.dataclass(frozen=True)
class TokenCase:
    """How a caller authenticates: `kind` good, forged, expired, garbage or none."""

    kind: str
    listed: frozenset[str]

    def token(self, settings: Settings) -> str | None:
        own = TokenAuthority(settings.auth_secret or "")
        return {
            "good": lambda: own.issue("prop", self.listed, 600),
            "forged": lambda: TokenAuthority(FORGER).issue("eve", self.listed, 600),
            "expired": lambda: own.issue("prop", self.listed, 60, now=time.time() - 3600),
            "garbage": lambda: "x" + "".join(sorted(self.listed)),
            "none": lambda: None,
        }[self.kind]()

    def admits(self, workspace_id: str) -> str:
        """ok, unauthenticated or permission_denied: what the walls must answer."""
        if self.kind != "good":
            return "unauthenticated"
        return "ok" if workspace_id in self.listed else "permission_denied"


FORGER = new_secret()
workspaces = st.sampled_from(WORLD + EVENT_WORLD + STRANGERS)
TOKEN_KINDS = st.sampled_from(["good", "good", "good", "forged", "expired", "garbage", "none"])


@st.composite
def token_and_workspace(draw: st.DrawFn, targets: list[str]) -> tuple[TokenCase, str]:
    """A token and the workspace a call names; the token lists it about half the time, so
    that calls the walls must admit are as common as those they must refuse."""
    workspace_id = draw(st.sampled_from(targets))
    others = draw(st.frozensets(workspaces, max_size=3))
    listed = others | {workspace_id} if draw(st.booleans()) else others - {workspace_id}
    return TokenCase(draw(TOKEN_KINDS), listed), workspace_id


@dataclasses.dataclass
class World:
    """The photos that exist, by id: their workspace, and whether they are complete."""

    photos: dict[str, str]
    complete: set[str]

    def photo_ids(self) -> list[str]:
        return sorted(self.photos)

    def in_workspace(self, workspace_id: str) -> set[str]:
        return {p for p, ws in self.photos.items() if ws == workspace_id}

    async def refill(self, pool: asyncpg.Pool, store: ObjectStore) -> None:
        """In each workspace a complete photo and two pending ones at least, whatever earlier
        examples deleted."""
        for workspace_id in WORLD:
            if not self.in_workspace(workspace_id) & self.complete:
                done = await complete_photo(pool, store, workspace_id)
                self.photos[str(done.id)] = workspace_id
                self.complete.add(str(done.id))
            while len(self.in_workspace(workspace_id) - self.complete) < 2:
                photo = (await add_photo(pool, workspace_id)).photo
                assert photo is not None
                self.photos[str(photo.id)] = workspace_id


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool, store: ObjectStore) -> World:
    world = World({}, set())
    await world.refill(pool, store)
    return world


def expected_http(case: TokenCase, workspace_id: str) -> int | None:
    """401 or 403 when the walls must stop the request, None when it gets through."""
    return {"unauthenticated": 401, "permission_denied": 403}.get(case.admits(workspace_id))


def call_metadata(token: str | None) -> tuple:
    return bearer(token) if token is not None else ()


# --- photos and thumbnails ---------------------------------------------------------------------


@EXAMPLES
@given(
    call=token_and_workspace(WORLD + STRANGERS),
    photo_pick=st.one_of(st.integers(0, 100), st.integers(0, 100), st.uuids().map(str)),
)
async def test_no_photo_crosses_a_workspace_wall(
    services: Services,
    pool: asyncpg.Pool,
    store: ObjectStore,
    world: World,
    call: tuple[TokenCase, str],
    photo_pick: int | str,
) -> None:
    """Every operation on the photo: read, list, retry, its thumbnail, and last delete."""
    await world.refill(pool, store)
    case, workspace_id = call
    photo_id = pick_photo(world, photo_pick)
    token = case.token(services.settings)
    await check_thumbnail(services, world, case, workspace_id, photo_id, token)
    async with grpc.aio.insecure_channel(services.upload.settings.upload_addr) as channel:
        stub = photos_pb2_grpc.PhotoServiceStub(channel)
        for operation, rpc in OPERATIONS.items():
            try:
                answer = await rpc(stub, workspace_id, photo_id, call_metadata(token))
            except grpc.aio.AioRpcError as error:
                check_refusal(world, case, workspace_id, photo_id, operation, error)
                continue
            check_answer(world, case, workspace_id, photo_id, operation, answer)


def pick_photo(world: World, pick: int | str) -> str:
    """An existing photo (of any workspace) for an int, a random id for a str."""
    ids = world.photo_ids()
    return ids[pick % len(ids)] if isinstance(pick, int) and ids else str(pick)


OPERATIONS = {
    "get": lambda stub, ws, pid, md: stub.GetPhoto(
        photos_pb2.GetPhotoRequest(workspace_id=ws, photo_id=pid), metadata=md
    ),
    "list": lambda stub, ws, pid, md: stub.ListPhotos(
        photos_pb2.ListPhotosRequest(workspace_id=ws, page_size=100), metadata=md
    ),
    "retry": lambda stub, ws, pid, md: stub.RetryThumbnails(
        photos_pb2.RetryThumbnailsRequest(workspace_id=ws, photo_id=pid), metadata=md
    ),
    "delete": lambda stub, ws, pid, md: stub.DeletePhoto(
        photos_pb2.DeletePhotoRequest(workspace_id=ws, photo_id=pid), metadata=md
    ),
}


def check_refusal(
    world: World,
    case: TokenCase,
    workspace_id: str,
    photo_id: str,
    operation: str,
    error: grpc.aio.AioRpcError,
) -> None:
    verdict = case.admits(workspace_id)
    if verdict != "ok":
        assert error.code().name.lower() == verdict, error.details()
        return
    owned = world.photos.get(photo_id) == workspace_id
    if operation == "retry" and owned:  # no photo of the world has failed
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        return
    assert operation != "list" and not owned, f"{operation} refused: {error.details()}"
    assert error.code() == grpc.StatusCode.NOT_FOUND, error.details()


def check_answer(
    world: World, case: TokenCase, workspace_id: str, photo_id: str, operation: str, answer
) -> None:
    assert case.admits(workspace_id) == "ok", f"{operation} answered {case} for {workspace_id}"
    if operation == "list":
        assert {p.id for p in answer.photos} == world.in_workspace(workspace_id)
        assert {p.workspace_id for p in answer.photos} <= {workspace_id}
        return
    assert world.photos.get(photo_id) == workspace_id, f"{operation} reached {photo_id}"
    if operation == "get":
        assert (answer.id, answer.workspace_id) == (photo_id, workspace_id)
    if operation == "delete":
        del world.photos[photo_id]  # gone for every later example
        world.complete.discard(photo_id)


async def check_thumbnail(
    services: Services,
    world: World,
    case: TokenCase,
    workspace_id: str,
    photo_id: str,
    token: str | None,
) -> None:
    url = (
        f"{services.notifier.http}/v1/workspaces/{workspace_id}/photos/{photo_id}/thumbnails/small"
    )
    headers = auth_headers(token) if token is not None else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        status = response.status
    refused = expected_http(case, workspace_id)
    if refused is not None:
        assert status == refused
    elif world.photos.get(photo_id) == workspace_id and photo_id in world.complete:
        assert status == 200
    else:
        assert status == 404, f"thumbnail of {photo_id} ({world.photos.get(photo_id)})"


# --- events ------------------------------------------------------------------------------------


@EXAMPLES
@given(
    call=token_and_workspace(EVENT_WORLD),
    transport=st.sampled_from(["grpc", "sse"]),
    replay=st.booleans(),
    write_order=st.permutations(EVENT_WORLD),
)
async def test_no_event_crosses_a_workspace_wall(
    services: Services,
    pool: asyncpg.Pool,
    call: tuple[TokenCase, str],
    transport: str,
    replay: bool,
    write_order: list[str],
) -> None:
    """A subscriber gets exactly its workspace's events, replayed and live, while every
    workspace writes; or, when the walls refuse it, the refusal and nothing else."""
    case, workspace_id = call
    after = await first_event_id(pool, workspace_id) if replay else 0
    token = case.token(services.settings)
    subscriber = SUBSCRIBERS[transport]
    refused = expected_http(case, workspace_id)
    if refused is not None:
        assert await subscriber.refusal(services, workspace_id, token) == refused
        return
    async with subscriber(services, workspace_id, token, after) as stream:
        marker = await stream.subscribed(pool, services, workspace_id)
        written = {ws: (await add_photo(pool, ws)).id for ws in write_order}
        await services.relay.drain()
        await stream.until(written[workspace_id])
    # Every event received was checked to be of the workspace as it arrived (no crossing); and
    # none is missing: all after the resume point, or, live only, all after the probe.
    since = after if after else marker
    expected = await event_ids_after(pool, workspace_id, since)
    received = [i for i in stream.received if i > since]
    assert received == [i for i in expected if i <= written[workspace_id]]


async def first_event_id(pool: asyncpg.Pool, workspace_id: str) -> int:
    return await pool.fetchval(
        "SELECT coalesce(min(id), 0) FROM events WHERE workspace_id = $1", workspace_id
    )


class GrpcSubscriber:
    """Subscribe over gRPC; each received event's workspace is checked as it arrives."""

    def __init__(self, services: Services, workspace_id: str, token: str, after: int) -> None:
        self._workspace_id = workspace_id
        self._subscription = GrpcSubscription(services.settings, workspace_id, after, token)
        self.received: list[int] = []

    @staticmethod
    async def refusal(services: Services, workspace_id: str, token: str | None) -> int:
        metadata = call_metadata(token)
        async with grpc.aio.insecure_channel(services.settings.notifier_addr) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            request = notifier_pb2.SubscribeRequest(workspace_id=workspace_id)
            call = stub.Subscribe(request, metadata=metadata)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call.read()
        return {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}[caught.value.code().name]

    async def __aenter__(self) -> GrpcSubscriber:
        await self._subscription.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._subscription.__aexit__(*exc_info)  # type: ignore[arg-type]

    async def subscribed(self, pool: asyncpg.Pool, services: Services, workspace_id: str) -> int:
        return await probe_until_live(pool, services, workspace_id, self._next_id)

    async def _next_id(self, wait_s: float) -> int | None:
        event = await self._subscription.next(wait_s)
        if event is None:
            return None
        assert event.workspace_id == self._workspace_id, f"event {event.id} crossed"
        self.received.append(event.id)
        return event.id

    async def until(self, last_id: int) -> None:
        await read_until(self._next_id, last_id)


class SseSubscriber:
    """The SSE stream, authenticated by the access_token query parameter."""

    def __init__(self, services: Services, workspace_id: str, token: str, after: int) -> None:
        self._url = sse_url(services, workspace_id, token, after)
        self._workspace_id = workspace_id
        self._http = aiohttp.ClientSession()
        self._sse: SseSubscription | None = None
        self.received: list[int] = []

    @staticmethod
    async def refusal(services: Services, workspace_id: str, token: str | None) -> int:
        url = sse_url(services, workspace_id, token, 0)
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            return response.status

    async def __aenter__(self) -> SseSubscriber:
        self._sse = await SseSubscription.open(self._http, self._url)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._sse is not None:
            await self._sse.close()
        await self._http.close()

    async def subscribed(self, pool: asyncpg.Pool, services: Services, workspace_id: str) -> int:
        return await probe_until_live(pool, services, workspace_id, self._next_id)

    async def _next_id(self, wait_s: float) -> int | None:
        assert self._sse is not None
        frame = await self._sse.next_event(wait_s)
        if frame is None:
            return None
        data = json.loads(frame.fields["data"])
        assert data["workspace_id"] == self._workspace_id, f"event {data['id']} crossed"
        self.received.append(int(frame.fields["id"]))
        return int(frame.fields["id"])

    async def until(self, last_id: int) -> None:
        await read_until(self._next_id, last_id)


SUBSCRIBERS = {"grpc": GrpcSubscriber, "sse": SseSubscriber}


def sse_url(services: Services, workspace_id: str, token: str | None, after: int) -> str:
    query = f"?last_event_id={after}" + (f"&access_token={token}" if token else "")
    return f"{services.notifier.http}/v1/workspaces/{workspace_id}/events{query}"


async def probe_until_live(pool, services: Services, workspace_id: str, next_id) -> int:
    """Writes probe events until one arrives, so the stream is surely subscribed; returns its
    id: every later event of the workspace must arrive."""
    for _ in range(40):
        probe = (await add_photo(pool, workspace_id)).id
        await services.relay.drain()
        try:
            while (got := await next_id(0.5)) is not None:
                if got == probe:
                    return probe
        except TimeoutError:
            continue
    raise AssertionError(f"no live event of {workspace_id} arrived")


async def read_until(next_id, last_id: int) -> None:
    while (got := await next_id(10.0)) is None or got < last_id:
        assert got is not None, "the stream ended early"
