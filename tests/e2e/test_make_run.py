"""`make run`'s launcher: from nothing but PostgreSQL and RabbitMQ, with no S3 endpoint and no
auth secret configured, it brings up the embedded S3 server and every service with a
development secret, prints a token that works, and SIGTERM stops them."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from thumbwire.v1 import photos_pb2, photos_pb2_grpc

from services.core.config import DEV_S3_ENDPOINT, Settings
from tests.support import images
from tests.support.auth import bearer_channel
from tests.support.ports import free_address
from tests.support.processes import settings_env
from tests.support.uploads import upload

pytestmark = pytest.mark.e2e


def port_in_use(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


async def wait_complete(stub: photos_pb2_grpc.PhotoServiceStub, ws: str, photo_id: str) -> None:
    request = photos_pb2.GetPhotoRequest(workspace_id=ws, photo_id=photo_id)
    for _ in range(300):
        photo = await stub.GetPhoto(request)
        if photo.thumbnail_status == photos_pb2.THUMBNAIL_STATUS_COMPLETE:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"photo {photo_id} is still {photo.thumbnail_status}")


async def printed_token(log_path: Path) -> str:
    """The token in the launcher's `export THUMBWIRE_TOKEN=...` line, once it is printed."""
    for _ in range(300):
        output = await asyncio.to_thread(log_path.read_text)
        found = re.search(r"export THUMBWIRE_TOKEN=(\S+)", output)
        if found:
            return found.group(1)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no token printed:\n{output}")


async def test_devstack_runs_everything_and_stops_on_sigterm(
    settings: Settings, pool, tmp_path: Path
) -> None:
    if port_in_use(DEV_S3_ENDPOINT.removeprefix("http://")):
        pytest.skip("127.0.0.1:9000 is taken (a `make run` may be running)")
    own = dataclasses.replace(
        settings,
        s3_endpoint=None,
        auth_secret=None,
        namespace=f"{settings.namespace}-devstack",
        upload_addr=free_address(),
        notifier_addr=free_address(),
        gateway_addr=free_address(),
        thumbnailer_metrics_addr=free_address(),
        upload_metrics_addr=free_address(),
    )
    log_path = tmp_path / "devstack.log"
    log = log_path.open("w+")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "services.devstack"),
        cwd=tmp_path,
        env=settings_env(own),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        token = await printed_token(log_path)
        async with bearer_channel(own.upload_addr, token) as channel:
            await asyncio.wait_for(channel.channel_ready(), 60)
            stub = photos_pb2_grpc.PhotoServiceStub(channel)
            photo = await upload(stub, "demo", f"i-{uuid.uuid4().hex[:8]}", images.jpeg(400, 300))
            await wait_complete(stub, "demo", photo.id)
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 40)
        log.seek(0)
        output = log.read()
    assert code == 0, output
    assert "thumbwire is running" in output
    assert "THUMBWIRE_AUTH_SECRET is not set" in output and "DEVELOPMENT secret" in output
    secret_file = tmp_path / "var" / "dev-auth-secret"
    assert secret_file.stat().st_mode & 0o077 == 0  # its owner's only
    assert secret_file.read_text().strip() not in output
    assert (tmp_path / "var" / "s3" / own.s3_bucket).is_dir()
    assert not port_in_use(own.upload_addr)
    assert not port_in_use(DEV_S3_ENDPOINT.removeprefix("http://"))
