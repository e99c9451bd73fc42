"""The `thumbwire` command as an operator runs it: a subprocess with the settings' environment."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from services.core.config import Settings
from tests.support.processes import settings_env


async def thumbwire(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
