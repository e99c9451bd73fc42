"""`thumbwire photos` and `thumbwire backfill` as an operator runs them: subprocesses against
the real services, database and broker."""

from __future__ import annotations

import dataclasses
import json

from services.core.config import Settings
from tests.integration.conftest import Services
from tests.support import images
from tests.support.auth import token_for
from tests.support.cli import thumbwire
from tests.support.ports import free_address
from tests.support.uploads import upload


async def test_photos_list_get_retry_and_delete(services: Services) -> None:
    ws = "cli-photos"
    settings = services.upload.settings
    stub = services.upload.stub_for(ws)
    first = await upload(stub, ws, "shelf", images.jpeg(300, 200), filename="a.jpg")
    second = await upload(stub, ws, "door", images.jpeg(200, 300), filename="b.jpg")
    token = ("--token", token_for(settings, ws))

    listed = await thumbwire(settings, "photos", "list", "--workspace", ws, "--json", *token)
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["id"] for line in listed.stdout.splitlines()] == [
        first.id,
        second.id,
    ]
    one_item = await thumbwire(
        settings, "photos", "list", "--workspace", ws, "--item", "door", *token
    )
    assert [line.split("\t")[0] for line in one_item.stdout.splitlines()] == [second.id]

    got = await thumbwire(settings, "photos", "get", "--workspace", ws, first.id, *token)
    assert got.stdout.startswith(f"{first.id}\tshelf\t")
    assert "300x200\ta.jpg" in got.stdout

    retried = await thumbwire(settings, "photos", "retry", "--workspace", ws, first.id, *token)
    assert retried.returncode == 1
    assert "FAILED_PRECONDITION" in retried.stderr

    deleted = await thumbwire(settings, "photos", "delete", "--workspace", ws, first.id, *token)
    assert (deleted.returncode, deleted.stdout.strip()) == (0, f"{first.id}: deleted")
    gone = await thumbwire(settings, "photos", "get", "--workspace", ws, first.id, *token)
    assert gone.returncode == 1 and "NOT_FOUND" in gone.stderr


async def test_photos_against_an_unreachable_service_exit_2_with_unavailable(
    settings: Settings,
) -> None:
    nowhere = dataclasses.replace(settings, upload_addr=free_address())
    token = token_for(settings, "cli-photos")
    result = await thumbwire(
        nowhere, "photos", "list", "--workspace", "cli-photos", "--token", token
    )
    assert result.returncode == 2
    assert result.stderr.startswith("thumbwire: UNAVAILABLE")
