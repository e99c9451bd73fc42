"""Debian's chromium driven by Playwright, for the tests of the demo page. Never a browser that
Playwright downloads: `make browser-deps` installs the Debian package when it is missing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from playwright.async_api import Error as PlaywrightError

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # the tests run as root, where chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """The browser, or a failed test that says why there is none (never a silent skip)."""
    require_chromium()
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
            )
        except PlaywrightError as exc:
            pytest.fail(f"{CHROMIUM} did not start under Playwright: {exc}")
        try:
            yield browser
        finally:
            await browser.close()


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"no browser at {CHROMIUM}: `make browser-deps` installs Debian's chromium"
            " (apt-get install chromium)"
        )
