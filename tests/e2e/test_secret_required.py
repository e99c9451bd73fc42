"""Outside `make run`, the services with a public API refuse to start without a usable
THUMBWIRE_AUTH_SECRET: a clear message, exit status 2, and the secret never echoed."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys

import pytest

from services.core.config import Settings
from services.core.lifecycle import EXIT_CONFIG
from tests.support.processes import settings_env

pytestmark = pytest.mark.e2e


async def start_and_wait(service: str, settings: Settings) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", f"services.{service}"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("service", ["upload", "notifier"])
@pytest.mark.parametrize(
    ("secret", "says"),
    [(None, "is not set"), ("short-but-secret", "is too short")],
    ids=["unset", "short"],
)
async def test_a_service_without_a_usable_secret_refuses_to_start(
    settings: Settings, service: str, secret: str | None, says: str
) -> None:
    result = await start_and_wait(service, dataclasses.replace(settings, auth_secret=secret))
    assert result.returncode == EXIT_CONFIG, result.stderr
    assert f"cannot start: THUMBWIRE_AUTH_SECRET {says}" in result.stderr
    assert "Traceback" not in result.stderr
    assert secret is None or secret not in result.stderr + result.stdout
