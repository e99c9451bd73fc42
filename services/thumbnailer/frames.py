"""Length-prefixed frames: how the render pool and its worker processes talk over pipes."""

from __future__ import annotations

import asyncio
import struct
from typing import BinaryIO

_LENGTH = struct.Struct(">Q")
READY = b"ready"


def _prefix(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload))


def write(stream: BinaryIO, payload: bytes) -> None:
    stream.write(_prefix(payload))
    stream.write(payload)
    stream.flush()


def read(stream: BinaryIO) -> bytes | None:
    """The next frame; None at the end of the stream (or in the middle of a frame)."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    payload = stream.read(length)
    return payload if len(payload) == length else None


async def read_async(reader: asyncio.StreamReader) -> bytes:
    """The next frame; asyncio.IncompleteReadError when the stream ends first."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    return await reader.readexactly(length)


def write_async(writer: asyncio.StreamWriter, payload: bytes) -> None:
    writer.write(_prefix(payload))
    writer.write(payload)
