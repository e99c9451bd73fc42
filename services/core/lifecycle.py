"""Process entry points: logging, and a stop event that SIGTERM and SIGINT set."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from services.core.config import ConfigError, Settings
from services.core.log_format import handler_for

# The exit status of a process that cannot start for a missing or malformed setting.
EXIT_CONFIG = 2


def setup_logging(service: str, log_format: str = "text") -> None:
    """Logs to stderr as `log_format` (THUMBWIRE_LOG_FORMAT: text or json); raises
    ConfigError, before changing anything, for another format."""
    try:
        handler = handler_for(service, log_format)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    logging.basicConfig(
        level=os.environ.get("THUMBWIRE_LOG_LEVEL", "INFO").upper(), handlers=[handler]
    )
    for noisy in ("aiormq", "aio_pika", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_service(service: str, serve: Callable[[Settings, asyncio.Event], Awaitable[None]]) -> None:
    """Runs `serve(settings, stop)` until it returns; signals only set `stop`. A ConfigError
    (e.g. no THUMBWIRE_AUTH_SECRET) ends the process with its message and EXIT_CONFIG."""

    async def main(settings: Settings) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    # `kill -USR1 <pid>` prints every thread's stack to stderr: a process that does not stop
    # (or answer) can say where it is without being killed first.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        settings = Settings.from_env()
        setup_logging(service, settings.log_format)
        asyncio.run(main(settings))
    except ConfigError as exc:
        if not logging.getLogger().handlers:
            setup_logging(service)
        logging.getLogger(service).critical("cannot start: %s", exc)
        sys.exit(EXIT_CONFIG)


def background(
    stack: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None], name: str
) -> asyncio.Task[None]:
    """`work` as a task that `stack` cancels and awaits when it closes."""
    task = asyncio.create_task(work, name=name)
    stack.push_async_callback(cancel_and_wait, task)
    return task


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancels `task` and waits until it has ended. An error it had already ended with was
    raised by whoever watched it, so it is only logged here."""
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger(__name__).debug(
            "task %s had ended with %r", task.get_name(), task.exception()
        )
