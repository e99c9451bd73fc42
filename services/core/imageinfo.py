"""What an uploaded file is, read from its bytes alone: format, and displayed size from the
header (no pixel is decoded), so that bad input is refused before anything is stored."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Pillow format name -> the content type thumbwire records.
ALLOWED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "AVIF": "image/avif",
}
# EXIF orientations 5 to 8 turn the image a quarter: width and height swap when displayed.
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112


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


def inspect_image(data: bytes | io.BufferedIOBase, max_pixels: int) -> ImageInfo:
    """Sniffs the format and reads the displayed size; raises ImageRejected when not allowed."""
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with warnings.catch_warnings():
            # The pixel limit that counts is max_pixels, checked in _info.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream, formats=list(ALLOWED_FORMATS)) as image:
                return _info(image, max_pixels)
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            "the file is not an image of an accepted format (JPEG, PNG, WebP, GIF, AVIF)"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"the image has too many pixels: {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(f"the image header is unreadable: {exc}") from exc


def _info(image: Image.Image, max_pixels: int) -> ImageInfo:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected("the image has no pixels")
    if width * height > max_pixels:
        raise ImageRejected(
            f"the image is {width}x{height} = {width * height} pixels;"
            f" at most {max_pixels} are accepted"
        )
    orientation = image.getexif().get(_ORIENTATION_TAG, 1)
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    fmt = image.format or ""
    return ImageInfo(format=fmt, content_type=ALLOWED_FORMATS[fmt], width=width, height=height)
