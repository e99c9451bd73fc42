"""The three services as processes, the way an operator runs them, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc

from services.core.config import Settings
from tests.support.ports import free_address
from tests.support.processes import ServiceProcess

SERVICES = ("upload", "thumbnailer", "notifier")


class Stack:
    def __init__(
        self, settings: Settings, log_dir: Path, overrides: dict[str, Settings] | None = None
    ) -> None:
        # The upload's /metrics on an address of this stack's own: tests give each stack
        # its other addresses, and a stack left behind must not keep the next from starting.
        metrics = {"upload_metrics_addr": free_address()}
        self.settings = dataclasses.replace(settings, **metrics)
        self._log_dir = log_dir
        # A service's own settings, e.g. through a proxy.
        self._overrides = {
            name: dataclasses.replace(own, **metrics) for name, own in (overrides or {}).items()
        }
        self.processes: dict[str, ServiceProcess] = {}

    async def start(self, *names: str) -> None:
        """Starts the services named (all by default) and waits until they serve."""
        started = {}
        for name in names or SERVICES:
            settings = self._overrides.get(name, self.settings)
            started[name] = ServiceProcess(name, settings, self._log_dir)
            started[name].start()
        self.processes.update(started)
        try:
            await wait_ready(self.settings, started)
        except BaseException:
            # A stack that never came up leaves nothing running behind the failed test.
            with contextlib.suppress(AssertionError):
                stop_all(started)
            raise

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def stop(self) -> dict[str, int]:
        """SIGTERM to each service; their exit codes. Each must exit within 30 s: one that does
        not is killed, and an AssertionError names it once the others are stopped too (they
        would otherwise outlive the test)."""
        return stop_all(self.processes)

    def alive(self) -> dict[str, bool]:
        return {name: p.process.poll() is None for name, p in self.processes.items()}

    def logs(self, tail_chars: int = 3000) -> str:
        return "\n".join(
            f"--- {name}\n{process.output()[-tail_chars:]}"
            for name, process in self.processes.items()
        )


def stop_all(processes: dict[str, ServiceProcess]) -> dict[str, int]:
    """SIGTERM to each; their exit codes. One that does not exit within 30 s is killed, and an
    AssertionError names it once all the others are stopped too."""
    codes: dict[str, int] = {}
    late: list[str] = []
    for name, process in processes.items():
        try:
            codes[name] = process.terminate(30)
        except AssertionError as exc:
            late.append(str(exc))
    if late:
        raise AssertionError("; ".join(late))
    return codes


def own_settings(settings: Settings, suffix: str, **changes: object) -> Settings:
    """`settings` with a namespace and addresses of their own, for one more stack of processes
    beside the others of the run."""
    return dataclasses.replace(
        settings,
        namespace=f"{settings.namespace}-{suffix}",
        upload_addr=free_address(),
        notifier_addr=free_address(),
        gateway_addr=free_address(),
        thumbnailer_metrics_addr=free_address(),
        public_url=None,
        **changes,
    )


@contextlib.asynccontextmanager
async def running_stack(settings: Settings, log_dir: Path) -> AsyncIterator[Stack]:
    """Every service started; at the end each is sent SIGTERM and must exit with 0."""
    stack = Stack(settings, log_dir)
    await stack.start()
    try:
        yield stack
    finally:
        codes = stack.stop()
        print(stack.logs())
    assert set(codes.values()) == {0}, codes


async def wait_ready(settings: Settings, processes: dict[str, ServiceProcess]) -> None:
    """Waits until every service in `processes` answers its health check."""
    checks = {
        "upload": lambda: _grpc_ready(settings.upload_addr),
        "notifier": lambda: asyncio.gather(
            _grpc_ready(settings.notifier_addr),
            _http_ok(f"http://{settings.gateway_addr}/healthz"),
        ),
        "thumbnailer": lambda: _http_ok(f"http://{settings.thumbnailer_metrics_addr}/healthz"),
    }
    try:
        await asyncio.gather(*(checks[name]() for name in processes))
    except TimeoutError:
        logs = "\n".join(f"--- {n}\n{p.output()[-2000:]}" for n, p in processes.items())
        raise AssertionError(f"the stack did not come up:\n{logs}") from None


async def _http_ok(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(url)


async def _grpc_ready(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
