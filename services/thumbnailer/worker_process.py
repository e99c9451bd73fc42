"""The render pool's side of one worker process: start it, call it, stop or kill it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sys
from concurrent.futures.process import BrokenProcessPool

from services.thumbnailer import frames
from services.thumbnailer.render_priority import RenderPriority
from services.thumbnailer.shared_buffer import SharedBuffer

# Starting Python and importing Pillow takes well under a second; far longer means it is stuck.
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_PIPE_ERRORS = (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError)


class WorkerProcess:
    """One child running services.thumbnailer.worker. A died child raises BrokenProcessPool,
    the error a ProcessPoolExecutor gives for it, which the thumbnailer treats as transient."""

    def __init__(self, process: asyncio.subprocess.Process, shared: SharedBuffer) -> None:
        self._process = process
        self._shared = shared

    @classmethod
    async def start(
        cls, memory_limit_mb: int, task: str, priority: RenderPriority, max_bytes: int
    ) -> WorkerProcess:
        """`max_bytes`: the largest input a call may hand over (shared_buffer.py)."""
        shared = SharedBuffer.create(max_bytes)
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.thumbnailer.worker",
                f"--memory-limit-mb={memory_limit_mb}",
                f"--priority={priority}",
                f"--task={task}",
                f"--shared-fd={shared.fd}",
                f"--parent-pid={os.getpid()}",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=(shared.fd,),
            )
        except BaseException:
            shared.close()
            raise
        worker = cls(process, shared)
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT_S):
                ready = await worker._read()
        except BaseException:
            worker.kill()
            raise
        if ready != frames.READY:
            worker.kill()
            raise BrokenProcessPool("an image worker process started with a wrong greeting")
        return worker

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.returncode is None

    async def call(self, data: bytes, max_pixels: int) -> tuple[str, object]:
        """The worker's ("ok", result) or ("error", exception) for `data`: the data goes in the
        shared buffer, the request (its length and `max_pixels`) through stdin."""
        stdin = self._process.stdin
        assert stdin is not None
        self._shared.write(data)
        try:
            frames.write_async(stdin, pickle.dumps((len(data), max_pixels)))
            await stdin.drain()
            return pickle.loads(await self._read())
        except _PIPE_ERRORS:
            raise await self._died() from None

    def kill(self) -> None:
        """Ends the worker at once, whatever it is doing (a task cannot be interrupted)."""
        if self.alive:
            self._process.kill()
        self._release()

    async def stop(self) -> None:
        """Lets the worker end by itself (its stdin closes), or kills it after a while."""
        stdin = self._process.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.close()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._process.wait()
        except TimeoutError:
            self.kill()
            await self._process.wait()
        self._release()

    def _release(self) -> None:
        """The parent's side of the shared buffer; the memory goes once the worker has gone."""
        if not self._shared.closed:
            self._shared.close()

    async def _read(self) -> bytes:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            return await frames.read_async(stdout)
        except _PIPE_ERRORS:
            raise await self._died() from None

    async def _died(self) -> BrokenProcessPool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._process.wait()
        code = self._process.returncode
        return BrokenProcessPool(f"an image worker process died (exit code {code})")
