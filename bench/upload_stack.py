"""The whole stack under the upload benchmark, as an operator runs it: an embedded S3 server
(rclone serve s3), then `python -m services.upload`, `services.thumbnailer` and
`services.notifier` as processes, on a database, a broker namespace and a bucket of the run's
own. At the end every process is stopped and the database, the broker names and the S3 data
are removed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import aiohttp
import asyncpg

from bench.fanout_stack import free_address
from bench.process_cpu import children, machine_busy_s
from bench.stack_cleanup import delete_namespace, drop_database
from bench.store_dir import stand_in_store
from services.core import database
from services.core.config import Settings
from services.core.proc_stat import cpu_s
from services.setup import prepare

WORKSPACE = "bench"
START_TIMEOUT_S = 60.0
CLIENTS_PROCESS = "bench clients"  # the bench's own process, where the clients run
S3_PROCESS = "S3 server (rclone)"
MACHINE = "the whole machine"  # every core's busy time, whoever spent it


def bench_settings(s3_endpoint: str) -> Settings:
    run = uuid.uuid4().hex[:10]
    return Settings(
        database_url=f"postgresql://postgres@127.0.0.1:5432/thumbwire_bench_{run}",
        namespace=f"twbench-{run}",
        s3_endpoint=s3_endpoint,
        s3_bucket=f"thumbwire-bench-{run}",
        auth_secret=secrets.token_urlsafe(48),
        upload_addr=free_address(),
        notifier_addr=free_address(),
        gateway_addr=free_address(),
        thumbnailer_metrics_addr=free_address(),
        upload_metrics_addr=free_address(),
        # A render worker stopped by the bench (UploadStack.pause) must not be taken for a
        # stuck one: the time limit would kill it and fail its image.
        image_time_limit_s=3600.0,
    )


@dataclasses.dataclass
class UploadStack:
    settings: Settings
    pool: asyncpg.Pool
    log_dir: Path
    s3_dir: Path  # the stand-in object store's files (bench/store_dir.py)
    processes: dict[str, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)

    async def start(
        self, name: str, module: str, settings: Settings | None = None, nice: int = 0
    ) -> None:
        """`python -m <module>` as `name`, with `settings` (the stack's by default) and the
        CPU priority `nice` (children inherit it); returns once it serves."""
        own = settings or self.settings
        self.processes[name] = _spawn(module, own, self.log_dir / f"{name}.log", nice)
        await _until_serving(module, own, self.processes[name])

    def pause(self, name: str) -> None:
        """SIGSTOP to the process's children, the thumbnailer's render workers: no image is
        rendered and they use no CPU, while the thumbnailer itself waits for them with at most
        its prefetch of jobs claimed. Not the thumbnailer itself: stopped inside a
        transaction, it would hold its workspace's event lock and stall every other writer."""
        self._signal_children(name, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self._signal_children(name, signal.SIGCONT)

    def render_workers(self, name: str) -> int:
        return len(children(self.processes[name].pid))

    def _signal_children(self, name: str, sig: signal.Signals) -> None:
        for child in children(self.processes[name].pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, sig)

    def stop(self, name: str) -> None:
        self.resume(name)  # stopped workers would hold up the thumbnailer's shutdown
        process = self.processes.pop(name)
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def cpu_s(self, name: str) -> float:
        """CPU time so far of the process and of its children (the thumbnailer's workers)."""
        pid = self.processes[name].pid
        return cpu_s(pid) + sum(_quiet_cpu_s(child) for child in children(pid))

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of each service (its render workers included), of the bench's
        own process (CLIENTS_PROCESS) and of the stand-in object store (S3_PROCESS)."""
        totals = {name: self.cpu_s(name) for name in self.processes}
        totals[CLIENTS_PROCESS] = cpu_s(os.getpid())
        totals[S3_PROCESS] = sum(
            _quiet_cpu_s(child) for child in children(os.getpid()) if _named(child, "rclone")
        )
        return totals

    @contextlib.contextmanager
    def cpu_spent(self) -> Iterator[dict[str, float]]:
        """The CPU seconds that each process (cpu_by_process) and the whole machine (MACHINE)
        spent in the block, filled in when it ends."""
        spent: dict[str, float] = {}
        before, machine = self.cpu_by_process(), machine_busy_s()
        yield spent
        after = self.cpu_by_process()
        spent.update({name: total - before.get(name, 0.0) for name, total in after.items()})
        spent[MACHINE] = machine_busy_s() - machine

    async def photos(self, status: str) -> int:
        return await self.pool.fetchval(
            "SELECT count(*) FROM photos WHERE thumbnail_status = $1", status
        )


@dataclasses.dataclass(frozen=True)
class Service:
    name: str
    module: str
    nice: int = 0
    own_metrics_addr: bool = False  # a second thumbnailer needs an address of its own
    render_priority: str | None = None  # THUMBWIRE_RENDER_PRIORITY; None: the default


@contextlib.asynccontextmanager
async def upload_stack(services: Sequence[Service]) -> AsyncIterator[UploadStack]:
    """The stack with `services` started in order."""
    data_dir = Path(tempfile.mkdtemp(prefix="thumbwire-bench-"))
    with stand_in_store() as s3:
        settings = bench_settings(s3.endpoint)
        try:
            await prepare(settings)
            async with _stack(settings, data_dir, s3.data_dir) as stack:
                for service in services:
                    await stack.start(
                        service.name, service.module, _own(settings, service), service.nice
                    )
                yield stack
        finally:
            await drop_database(settings.database_url)
            await delete_namespace(settings)
            shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def _stack(settings: Settings, data_dir: Path, s3_dir: Path) -> AsyncIterator[UploadStack]:
    pool = await database.create_pool(settings.database_url)
    log_dir = Path(os.environ.get("BENCH_LOG_DIR", data_dir))
    stack = UploadStack(settings, pool, log_dir, s3_dir)
    try:
        yield stack
    finally:
        for name in list(stack.processes):
            stack.stop(name)
        await pool.close()


def _own(settings: Settings, service: Service) -> Settings:
    if service.render_priority is not None:
        settings = dataclasses.replace(settings, render_priority=service.render_priority)
    if not service.own_metrics_addr:
        return settings
    return dataclasses.replace(settings, thumbnailer_metrics_addr=free_address())


def _spawn(module: str, settings: Settings, log_path: Path, nice: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", module]
    if nice:
        command = ["nice", "-n", str(nice), *command]  # nice execs it: the pid is the same
    with log_path.open("ab") as log:
        return subprocess.Popen(command, env=settings.to_env(), stdout=log, stderr=log)


async def _until_serving(module: str, settings: Settings, process: subprocess.Popen[bytes]) -> None:
    """The thumbnailer says so on /healthz, the notifier on its gateway's; a gRPC server
    listens only once it serves."""
    checks = {
        "services.thumbnailer": f"http://{settings.thumbnailer_metrics_addr}/healthz",
        "services.notifier": f"http://{settings.gateway_addr}/healthz",
    }
    async with asyncio.timeout(START_TIMEOUT_S):
        while process.poll() is None:
            if await _answers(checks.get(module), settings.upload_addr):
                return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{module} exited with {process.returncode}")


async def _answers(health_url: str | None, grpc_address: str) -> bool:
    if health_url is None:
        host, port = grpc_address.rsplit(":", 1)
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            return False
        writer.close()
        return True
    try:
        async with aiohttp.ClientSession() as http, http.get(health_url) as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


def _named(pid: int, command: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == command
    except FileNotFoundError:
        return False


def _quiet_cpu_s(pid: int) -> float:
    """A child's CPU time, 0 if it has just exited."""
    try:
        return cpu_s(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
