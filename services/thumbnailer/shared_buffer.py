"""How an original reaches an image worker: through memory that the render pool and the worker
share (a memfd, one per worker), not through the worker's stdin.

Through a pipe, a 3.5 MB original cost the thumbnailer's event loop 1.2-1.3 ms of CPU per call
even at 1 MiB pipes (the kernel's copy, asyncio's write buffer, a wake-up per MiB), and the
worker its reads; through the shared buffer it costs one copy on each side, about 0.25 ms.
Only pages that an original touched take memory: at most the largest original so far, per
worker, until the worker is replaced."""

from __future__ import annotations

import mmap
import os


class SharedBuffer:
    """A file in memory, mapped; `fd` is what the worker process inherits."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self._map = mmap.mmap(fd, self.size)

    @classmethod
    def create(cls, size: int) -> SharedBuffer:
        """`size` bytes, the most one call may hand over (sparse: untouched pages are free)."""
        fd = os.memfd_create("thumbwire-original")
        try:
            os.ftruncate(fd, max(size, 1))
            return cls(fd)
        except BaseException:
            os.close(fd)
            raise

    def write(self, data: bytes) -> None:
        """Raises ValueError if `data` is larger than the buffer."""
        if len(data) > self.size:
            raise ValueError(f"{len(data)} bytes do not fit a {self.size}-byte shared buffer")
        self._map[: len(data)] = data

    def read(self, length: int) -> bytes:
        return self._map[:length]

    @property
    def closed(self) -> bool:
        return self._map.closed

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)
