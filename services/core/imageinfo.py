"""What an uploaded file is, read from its bytes alone: format, and displayed size from the
header (no pixel is decoded), so that bad input is refused before anything is stored."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import IO

import pillow_heif
from PIL import Image, UnidentifiedImageError

# Pillow format name -> the content type thumbwire records. AVIF comes before HEIF: both are
# ISO BMFF files, and Pillow's own AVIF reader is the one that decodes AV1.
ALLOWED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "AVIF": "image/avif",
    "HEIF": "image/heic",  # pillow-heif decodes HEVC only: the HEIC phones send
}
_FORMAT_NAMES = "JPEG, PNG, WebP, GIF, AVIF, HEIC"
# EXIF orientations 5 to 8 turn the image a quarter: width and height swap when displayed.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112
# What Pillow raises for data it cannot read: truncated, corrupt or not an image at all.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

# Every process that opens images imports this module, so this is where HEIC becomes a format
# Pillow knows. libheif applies a HEIC's rotation itself and resets its EXIF orientation to 1;
# the thumbnails, depth maps and auxiliary images some phones add are never needed here.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


class ImageRejected(Exception):
    """The bytes are not an image thumbwire accepts; the message says why, for the client."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    content_type: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def inspect_image(data: bytes | IO[bytes], max_pixels: int) -> ImageInfo:
    """Sniffs the format and reads the displayed size; raises ImageRejected when not allowed."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    with open_image(stream, max_pixels) as image:
        width, height = displayed_size(image)
        fmt = image.format or ""
        return ImageInfo(format=fmt, content_type=ALLOWED_FORMATS[fmt], width=width, height=height)


def open_image(stream: IO[bytes], max_pixels: int) -> Image.Image:
    """Opens an image of an allowed format, its header only: too many pixels are refused
    before a single one is decoded. The caller closes it."""
    try:
        with warnings.catch_warnings():
            # The pixel limit that counts is max_pixels, checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=list(ALLOWED_FORMATS))
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            f"the file is not an image of an accepted format ({_FORMAT_NAMES})"
        ) from exc
    except Image.DecompressionBombError as exc:
        # Pillow refuses far too many pixels before telling the size; the reason is the same.
        raise ImageRejected(
            f"the image has too many pixels: at most {max_pixels} are accepted"
        ) from exc
    except DECODE_ERRORS as exc:
        raise ImageRejected(f"the image header is unreadable: {exc}") from exc
    # Not closed on refusal: the stream is the caller's, and close() would close it too.
    _check_pixels(image.size, max_pixels)
    return image


def displayed_size(image: Image.Image) -> tuple[int, int]:
    """The size as shown: width and height swap for the quarter-turn EXIF orientations."""
    width, height = image.size
    if orientation(image) in _TRANSPOSED_ORIENTATIONS:
        return height, width
    return width, height


def orientation(image: Image.Image) -> int:
    """The EXIF orientation, 1 (upright) to 8; 1 when there is none or it is out of range."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except DECODE_ERRORS as exc:
        raise ImageRejected(f"the image's EXIF data is unreadable: {exc}") from exc
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageRejected("the image has no pixels")
    if width * height > max_pixels:
        raise ImageRejected(
            f"the image is {width}x{height} = {width * height} pixels;"
            f" at most {max_pixels} are accepted"
        )
