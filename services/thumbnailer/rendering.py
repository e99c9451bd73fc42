"""Image work off the event loop: make_thumbnails in a pool of worker processes."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from services.thumbnailer.imaging import Rendition, make_thumbnails

log = logging.getLogger(__name__)


class RenderPool:
    """Owns the worker processes; replaces them all when one dies (an image that exhausted
    memory, a SIGKILL), since a ProcessPoolExecutor is unusable once broken."""

    def __init__(self, workers: int, max_pixels: int) -> None:
        self._workers = workers
        self._max_pixels = max_pixels
        self._executor = self._new_executor()

    async def render(self, data: bytes) -> Rendition:
        """Thumbnails of `data`; raises ImagingError, or BrokenProcessPool if a worker died."""
        executor = self._executor
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, make_thumbnails, data, self._max_pixels)
        except BrokenProcessPool:
            self._replace(executor)
            raise

    async def close(self) -> None:
        """Waits for the running renders; those not started yet are dropped."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: this process runs threads (storage calls, the event loop's helpers),
        # and a forked child could inherit a lock one of them held.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=context)

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is not broken:
            return  # another job noticed first and replaced it already
        log.warning("an image worker process died; starting a new pool")
        self._executor = self._new_executor()
        broken.shutdown(wait=False, cancel_futures=True)
