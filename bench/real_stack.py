"""The whole system as an operator runs it, for end-to-end benchmarks: `python -m
services.upload|thumbnailer|notifier` as processes, an embedded S3 server (rclone), and a
database, a bucket and a broker namespace of the run's own, all removed at the end.

The services log JSON (THUMBWIRE_LOG_FORMAT=json) into files under the run's folder, so that
a benchmark can read what they logged about each photo (bench.stage_log)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc

from bench.fanout_stack import bench_settings, free_address
from bench.process_cpu import children
from bench.stack_cleanup import delete_namespace, drop_database
from bench.store_dir import stand_in_store
from services.core import database
from services.core.auth import TokenAuthority
from services.core.config import Settings
from services.core.storage import ObjectStore

SERVICES = ("upload", "thumbnailer", "notifier")
WORKSPACE = "bench"
STOP_TIMEOUT_S = 30.0


@dataclasses.dataclass
class RealStack:
    settings: Settings
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]]

    def token(self) -> str:
        """A bearer token for the benchmark's workspace."""
        assert self.settings.auth_secret is not None
        return TokenAuthority(self.settings.auth_secret).issue("bench", [WORKSPACE], 3600)

    def log_path(self, service: str) -> Path:
        return self.log_dir / f"{service}.log"

    def freeze(self, service: str) -> None:
        """SIGSTOP: the service takes no more work (its image workers idle, waiting on it)
        until thaw(), while its connections stay open."""
        os.kill(self.processes[service].pid, signal.SIGSTOP)

    def thaw(self, service: str) -> None:
        os.kill(self.processes[service].pid, signal.SIGCONT)

    def pids(self) -> dict[str, list[int]]:
        """The stack's processes by role: each service, the thumbnailer's image workers, and
        the S3 server (PostgreSQL and RabbitMQ are shared with others: not counted)."""
        found = {name: [process.pid] for name, process in self.processes.items()}
        found["image workers"] = children(self.processes["thumbnailer"].pid)
        found["S3 server (rclone)"] = [
            pid for pid in children(os.getpid()) if _command(pid).startswith("rclone")
        ]
        return found


@contextlib.asynccontextmanager
async def real_stack(**changes: object) -> AsyncIterator[RealStack]:
    """Every service started and serving until the block ends; `changes` to the settings
    (e.g. thumbnailer_concurrency)."""
    with tempfile.TemporaryDirectory(prefix="thumbwire-bench-") as tmp, stand_in_store() as s3:
        run_dir = Path(tmp)
        settings = _settings(s3.endpoint, **changes)
        try:
            await database.prepare(settings.database_url)
            await ObjectStore.from_settings(settings).ensure_bucket()
            processes = {name: _start(name, settings, run_dir) for name in SERVICES}
            try:
                await _until_serving(settings, processes)
                yield RealStack(settings, run_dir, processes)
            finally:
                _stop(processes)
        finally:
            await drop_database(settings.database_url)
            await delete_namespace(settings)


def _settings(s3_endpoint: str, **changes: object) -> Settings:
    base = bench_settings()
    return dataclasses.replace(
        base,
        s3_endpoint=s3_endpoint,
        s3_bucket=base.namespace,
        upload_addr=free_address(),
        thumbnailer_metrics_addr=free_address(),
        upload_metrics_addr=free_address(),
        log_format="json",
        **changes,
    )


def _start(name: str, settings: Settings, run_dir: Path) -> subprocess.Popen[bytes]:
    with (run_dir / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", f"services.{name}"],
            env=settings.to_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _stop(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            process.terminate()
    for process in processes.values():
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _until_serving(settings: Settings, processes: dict[str, subprocess.Popen[bytes]]) -> None:
    """Until each service answers its health check; raises if one exits first."""
    checks = asyncio.ensure_future(
        asyncio.gather(
            _grpc_ready(settings.upload_addr),
            _grpc_ready(settings.notifier_addr),
            _http_ok(f"http://{settings.gateway_addr}/healthz"),
            _http_ok(f"http://{settings.thumbnailer_metrics_addr}/healthz"),
        )
    )
    try:
        async with asyncio.timeout(60):
            while not checks.done():
                for name, process in processes.items():
                    if process.poll() is not None:
                        raise RuntimeError(f"{name} exited with {process.returncode}")
                await asyncio.wait({checks}, timeout=0.2)
    finally:
        checks.cancel()
    checks.result()


async def _grpc_ready(address: str) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        await channel.channel_ready()


async def _http_ok(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return ""
