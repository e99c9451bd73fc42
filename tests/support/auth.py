"""Bearer tokens for tests: every call to the upload service, the notifier and the gateway
needs one for the workspaces it touches.

    token = token_for(settings, ws)                       # a token that lists ws
    stub.GetPhoto(request, metadata=bearer(token))        # one gRPC call
    async with bearer_channel(settings.upload_addr, token) as channel: ...  # every call
    session.get(url, headers=auth_headers(token))         # HTTP
    url + f"?access_token={token}"                        # HTTP, as EventSource does
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import grpc

from services.core.auth import TokenAuthority, authorization_value
from services.core.config import Settings
from services.core.grpc_bearer import bearer_channel, bearer_metadata

__all__ = [
    "AuthedChannels",
    "auth_headers",
    "authed_channels",
    "bearer",
    "bearer_channel",
    "new_secret",
    "token_for",
]

TEST_SUB = "tests"
TEST_TTL_S = 3600.0
Stub = TypeVar("Stub")


def new_secret() -> str:
    """A secret as an operator would make one."""
    return secrets.token_urlsafe(48)


def token_for(
    settings: Settings, *workspaces: str, sub: str = TEST_SUB, ttl_s: float = TEST_TTL_S
) -> str:
    """A token signed with the settings' secret that lists `workspaces`."""
    assert settings.auth_secret, "the settings fixture sets an auth secret"
    return TokenAuthority(settings.auth_secret).issue(sub, workspaces, ttl_s)


def bearer(token: str) -> tuple[tuple[str, str]]:
    """gRPC call metadata carrying `token`."""
    return bearer_metadata(token)


def auth_headers(token: str) -> dict[str, str]:
    """HTTP headers carrying `token`."""
    return {"Authorization": authorization_value(token)}


class AuthedChannels:
    """Channels to one gRPC address, one per set of workspaces, each sending a token for its
    workspaces on every call; `close()` closes them all.

        channels = AuthedChannels(settings, settings.upload_addr)
        stub = channels.stub(photos_pb2_grpc.PhotoServiceStub, ws)
    """

    def __init__(self, settings: Settings, address: str) -> None:
        self._settings = settings
        self._address = address
        self._channels: dict[tuple[str, ...], grpc.aio.Channel] = {}

    def channel(self, *workspaces: str) -> grpc.aio.Channel:
        key = tuple(sorted(workspaces))
        if key not in self._channels:
            token = token_for(self._settings, *key)
            self._channels[key] = bearer_channel(self._address, token)
        return self._channels[key]

    def stub(self, stub_class: Callable[[grpc.aio.Channel], Stub], *workspaces: str) -> Stub:
        return stub_class(self.channel(*workspaces))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


@contextlib.asynccontextmanager
async def authed_channels(settings: Settings, address: str) -> AsyncIterator[AuthedChannels]:
    channels = AuthedChannels(settings, address)
    try:
        yield channels
    finally:
        await channels.close()
