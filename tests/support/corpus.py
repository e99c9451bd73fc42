"""The image corpus of the imaging tests, made in memory: the formats phones and browsers
send, and hostile files (bombs, lying headers, not images at all)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

from PIL import Image

import services.core.imageinfo  # noqa: F401 - registers the HEIF plugin used by heic()
from tests.support.images import encode, jpeg

NOT_AN_IMAGE = b"Dear diary, today I renamed this file to holiday.jpg.\n"


def heic(image: Image.Image, **params: object) -> bytes:
    return encode(image, "HEIF", quality=90, **params)


def avif(image: Image.Image, **params: object) -> bytes:
    return encode(image, "AVIF", quality=90, **params)


def bilevel_png(width: int, height: int) -> bytes:
    """An all-black 1-bit PNG: width x height pixels in a file of a few kilobytes, built row
    by row so that making it costs no more memory than the file."""
    row = bytes(1 + (width + 7) // 8)  # filter byte, then the packed pixels
    return raw_png(width, height, bit_depth=1, colour_type=0, rows=(row for _ in range(height)))


def png_16bit_rgb(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one) of one 16-bit `colour`."""
    row = b"\0" + struct.pack(">HHH", *colour) * width
    return raw_png(width, height, bit_depth=16, colour_type=2, rows=(row for _ in range(height)))


def raw_png(
    width: int, height: int, *, bit_depth: int, colour_type: int, rows: Iterator[bytes]
) -> bytes:
    """A PNG of already filtered `rows`, compressed as they come."""
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for row in rows) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND")


def _chunk(kind: bytes, body: bytes = b"") -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """A small JPEG whose frame header (SOF0) claims `width` x `height`."""
    data = bytearray(jpeg(64, 48))
    sof = data.index(b"\xff\xc0")
    # After the marker: length (2 bytes), precision (1), then height and width.
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def truncated_jpeg() -> bytes:
    data = jpeg(400, 300)
    return data[: len(data) * 7 // 10]
