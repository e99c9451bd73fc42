"""The demo page in a real browser (Debian's chromium, driven by Playwright) against every
service as a process: photos chosen or dropped in the page appear, fail with their reason and
a Retry button, and get their thumbnails live, without a reload; after the notifier is killed
and restarted the page resumes its stream, catching up on what happened while it was down,
and refetches when that history was pruned (stream.reset)."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from PIL import Image
from playwright.async_api import Browser, Page, expect
from thumbwire.v1 import photos_pb2, photos_pb2_grpc

from services.core.config import Settings
from services.core.retention import prune_events
from services.core.storage import ObjectStore
from tests.support import corpus, images
from tests.support.auth import bearer_channel, token_for
from tests.support.browser import chromium
from tests.support.stack import Stack, own_settings, running_stack
from tests.support.uploads import upload

pytestmark = pytest.mark.e2e
WAIT_MS = 60_000
READY = ".card[data-status=complete]:has(img.thumb.loaded)"
FAILED = ".card[data-status=failed]"
# Set to a path (e.g. docs/screenshot.png) to keep the page's last screenshot there too.
SCREENSHOT_COPY = "THUMBWIRE_SCREENSHOT"
RED, BLUE = (200, 60, 30), (30, 60, 200)


@pytest.fixture
async def stack(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, tmp_path: Path
) -> AsyncIterator[Stack]:
    async with running_stack(own_settings(settings, "browser"), tmp_path) as running:
        yield running


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


def two_colour_jpeg() -> bytes:
    """Red on the left, blue on the right: what the placeholder must show too."""
    image = Image.new("RGB", (640, 320), RED)
    image.paste(BLUE, (320, 0, 640, 320))
    return images.encode(image, "JPEG", quality=90)


def photo_files(folder: Path) -> dict[str, Path]:
    """The files the test chooses in the page, by name."""
    contents = {
        "shelf.jpg": two_colour_jpeg(),
        "broken.jpg": corpus.truncated_jpeg(),
        "notes.jpg": b"a shopping list, not a photo",
    }
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in contents}


def keep_screenshot(data: bytes, path: Path) -> None:
    path.write_bytes(data)
    if target := os.environ.get(SCREENSHOT_COPY):
        shutil.copyfile(path, target)


async def open_page(browser: Browser, settings: Settings, workspace: str) -> Page:
    page = await browser.new_page(viewport={"width": 1000, "height": 760})
    token = token_for(settings, workspace)
    await page.goto(f"http://{settings.gateway_addr}/#workspace={workspace}&token={token}")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    # A reload would lose this: the page must update in place.
    await page.evaluate("window.notReloaded = true")
    return page


async def placeholder_edges(page: Page, card_selector: str) -> list[list[int]]:
    """The RGBA of the placeholder's left and right edges, as the page decoded it."""
    return await page.locator(f"{card_selector} img.placeholder").evaluate(
        """img => {
            const canvas = document.createElement("canvas");
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            const context = canvas.getContext("2d");
            context.drawImage(img, 0, 0);
            const y = canvas.height >> 1;
            const pixel = x => Array.from(context.getImageData(x, y, 1, 1).data);
            return [pixel(1), pixel(canvas.width - 2)];
        }"""
    )


async def check_first_photos(page: Page, files: dict[str, Path]) -> None:
    """A good photo gets its thumbnail and placeholder; a broken one fails, and Retry works; a
    file that is no image is refused at once, with the upload service's reason."""
    chosen = ["shelf.jpg", "broken.jpg", "notes.jpg"]
    await page.set_input_files("#files", [files[name] for name in chosen])
    rejected = page.locator(".card[data-status=rejected]")
    await expect(rejected.locator(".error")).to_contain_text("not an image", timeout=WAIT_MS)
    await rejected.locator("button.delete").click()  # dismissed
    await expect(rejected).to_have_count(0)
    ready = page.locator(READY)
    await expect(ready).to_have_count(1, timeout=WAIT_MS)
    assert await ready.locator("img.thumb").evaluate("img => img.naturalWidth") == 400
    assert await ready.locator(".name").text_content() == "shelf.jpg"
    left, right = await placeholder_edges(page, READY)
    assert left[0] > left[2] + 80 and right[2] > right[0] + 80, (left, right)

    failed = page.locator(FAILED)
    await expect(failed).to_have_count(1, timeout=WAIT_MS)
    await expect(failed.locator(".error")).to_contain_text("decoded")
    async with page.expect_response(lambda r: r.url.endswith("/retry")) as retried:
        await failed.locator("button.retry").click()
    assert (await retried.value).status == 200
    # Retried, it fails the same way once more, and says so again.
    await expect(page.locator(FAILED)).to_have_count(1, timeout=WAIT_MS)


def photo_service(settings: Settings, workspace: str) -> grpc.aio.Channel:
    """A channel to the upload service for another client of the workspace."""
    return bearer_channel(settings.upload_addr, token_for(settings, workspace))


@contextlib.asynccontextmanager
async def notifier_down(stack: Stack, page: Page) -> AsyncIterator[None]:
    """The notifier SIGKILLed, the page seeing it, then the notifier back and the page live."""
    connection = page.locator("#connection")
    stack.kill("notifier")
    await expect(connection).to_have_attribute("data-state", "reconnecting")
    yield
    await stack.start("notifier")
    await expect(connection).to_have_attribute("data-state", "live", timeout=WAIT_MS)


async def check_resume_replays_what_was_missed(page: Page, stack: Stack, workspace: str) -> None:
    """Another client uploads while the page has no stream: its events come on resume."""
    async with notifier_down(stack, page), photo_service(stack.settings, workspace) as channel:
        stub = photos_pb2_grpc.PhotoServiceStub(channel)
        photo = await upload(stub, workspace, "item-1", two_colour_jpeg(), filename="m.jpg")
    ready = page.locator(f"{READY}[data-photo-id='{photo.id}']")
    await expect(ready).to_have_count(1, timeout=WAIT_MS)


async def check_reset_refetches(
    page: Page, stack: Stack, pool: asyncpg.Pool, workspace: str
) -> None:
    """A photo deleted while the page is away, and then the history after the page's resume
    point pruned: the page gets stream.reset, refetches, and the photo's card goes."""
    shelf = page.locator(".card", has=page.locator(".name", has_text="shelf.jpg"))
    photo_id = await shelf.get_attribute("data-photo-id")
    async with notifier_down(stack, page), photo_service(stack.settings, workspace) as channel:
        stub = photos_pb2_grpc.PhotoServiceStub(channel)
        request = photos_pb2.DeletePhotoRequest(workspace_id=workspace, photo_id=photo_id)
        await stub.DeletePhoto(request)
        await pool.execute(
            "UPDATE events SET occurred_at = occurred_at - interval '2 hours'"
            " WHERE workspace_id = $1",
            workspace,
        )
        assert await prune_events(pool, retention_s=3600) > 0
    await expect(shelf).to_have_count(0, timeout=WAIT_MS)


async def drop_file(page: Page, name: str, data: bytes) -> None:
    """Drops a file on the page's drop zone, as a person dragging it from their desktop."""
    transfer = await page.evaluate_handle(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "image/jpeg"}));
            return transfer;
        }""",
        [name, list(data)],
    )
    await page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


async def test_the_page_shows_uploads_live_and_resumes_after_a_notifier_restart(
    stack: Stack, browser: Browser, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    workspace = f"page-{uuid.uuid4().hex[:8]}"
    files = photo_files(tmp_path)
    page = await open_page(browser, stack.settings, workspace)
    await check_first_photos(page, files)
    await check_resume_replays_what_was_missed(page, stack, workspace)
    await check_reset_refetches(page, stack, pool, workspace)

    await drop_file(page, "after.jpg", two_colour_jpeg())
    await expect(page.locator(READY)).to_have_count(2, timeout=WAIT_MS)  # shelf.jpg is gone
    assert await page.evaluate("window.notReloaded") is True
    # Thumbnails that have just loaded are still fading in over their placeholders.
    await page.evaluate(
        "document.getAnimations().filter(a => a instanceof CSSTransition).forEach(a => a.finish())"
    )
    keep_screenshot(await page.screenshot(full_page=True), tmp_path / "page.png")
