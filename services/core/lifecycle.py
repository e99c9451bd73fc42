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
        # The loop's handler for the tasks, behind faulthandler's for the threads. In this
        # order: unregistering restores the handler from before faulthandler's first one, and
        # registering again chains to the one in place (the loop's).
        faulthandler.unregister(signal.SIGUSR1)
        loop.add_signal_handler(signal.SIGUSR1, log_task_stacks)
        faulthandler.register(signal.SIGUSR1, all_threads=True, chain=True)
        await serve(settings, stop)

    # `kill -USR1 <pid>` prints every thread's stack to stderr, and once the event loop is
    # running, every task's too (a loop waiting for ever shows no more than select() in its
    # thread): a process that does not stop (or answer) can say where it is before it is killed.
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


def log_task_stacks() -> None:
    """Logs where each of the running loop's tasks is waiting: the whole chain of coroutines
    it awaits through (Task.print_stack shows only the outermost)."""
    for task in asyncio.all_tasks():
        where = "\n".join(f"  {line}" for line in await_chain(task.get_coro()))
        logging.getLogger(__name__).warning("task %s waits in:\n%s", task.get_name(), where)


def await_chain(awaitable: object) -> list[str]:
    """Where each coroutine (or generator) of an await chain is suspended, outermost first."""
    lines = []
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        frame = frame or getattr(awaitable, "ag_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        else:
            lines.append(repr(awaitable)[:200])  # a future, or a C-level awaitable
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
            or getattr(awaitable, "ag_await", None)
        )
    return lines


def background(
    stack: contextlib.AsyncExitStack, work: Coroutine[Any, Any, None], name: str
) -> asyncio.Task[None]:
    """`work` as a task that `stack` cancels and awaits when it closes."""
    task = asyncio.create_task(work, name=name)
    stack.push_async_callback(cancel_and_wait, task)
    return task


# How long cancel_and_wait gives a cancelled task before it cancels it again.
RECANCEL_AFTER_S = 1.0


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancels `task` and waits until it has ended. An error it had already ended with was
    raised by whoever watched it, so it is only logged here.

    The cancellation is repeated while the task goes on: one can be swallowed on its way
    through a library, and a stop must not wait for ever. The fault tests' rare shutdown hang
    was this: a thumbnailer's backlog gauges went on to their next sleep after their
    cancellation, and the exit waited on them. A probe caught where: their reading of the
    parking queue's depth (an aio-pika channel opened, a passive declare, the channel closed)
    returned normally with the cancellation still pending. Another way to swallow one:
    Python 3.11's asyncio.wait_for returns the result of an awaitable that ends in the same
    turn as the cancellation, and drops the cancellation (bpo-42130, fixed in 3.12); so
    thumbwire's own code uses asyncio.timeout."""
    task.cancel()
    while not (await asyncio.wait({task}, timeout=RECANCEL_AFTER_S))[0]:
        logging.getLogger(__name__).warning(
            "task %s goes on after its cancellation, in %s: cancelling it again",
            task.get_name(),
            " <- ".join(reversed(await_chain(task.get_coro()))),
        )
        task.cancel()
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger(__name__).debug(
            "task %s had ended with %r", task.get_name(), task.exception()
        )
