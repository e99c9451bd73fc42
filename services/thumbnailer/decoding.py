"""The one decode of an original: at the smallest scale that still covers the largest
thumbnail, turned upright, with every pixel format brought to one of a few modes."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from services.core.imageinfo import (
    DECODE_ERRORS,
    ImageRejected,
    displayed_size,
    open_image,
    orientation,
)
from services.thumbnailer.rejections import ImagingError

# A box reduce() leaves at least this many times the target size for the final resample, so
# that the cheap box filter never shows (as Pillow's own reducing_gap).
REDUCING_GAP = 2
# Modes holding more than 8 bits per sample in one band (16-bit greyscale PNG and the like).
_WIDE_GREY_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
# The modes decode() returns; resize(), reduce() and transpose() take each of them.
_WORKING_MODES = {"L", "LA", "RGB", "RGBA", "CMYK", "I"}
_T = Image.Transpose
# What turns the stored pixels upright, for each EXIF orientation (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_270,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_90,
}


@dataclass(frozen=True)
class Decoded:
    """The upright picture, at least `longest_side` on its longest side unless the original
    is smaller; `displayed` is the original's full size as shown."""

    image: Image.Image
    displayed: tuple[int, int]
    icc_profile: bytes | None


def decode(data: bytes, max_pixels: int, longest_side: int) -> Decoded:
    """Decodes the first frame of `data` once, reduced towards `longest_side`; ImagingError
    for anything that is not an acceptable image."""
    with _pixel_limit(max_pixels), _as_imaging_error():
        # Not closed: it reads from memory, and close() would free the pixels it may return.
        image = open_image(io.BytesIO(data), max_pixels)
        displayed = displayed_size(image)
        turn = _UPRIGHT.get(orientation(image))
        icc_profile = image.info.get("icc_profile")
        _draft(image, longest_side)
        working = _reduce(_normalise(_load(image)), longest_side)
    upright = working.transpose(turn) if turn is not None else working
    return Decoded(upright, displayed, icc_profile)


@contextlib.contextmanager
def _pixel_limit(max_pixels: int) -> Iterator[None]:
    """Pillow's own bomb check (an error at twice the limit) follows THUMBWIRE_MAX_PIXELS.

    The limit is process-wide in Pillow: it is restored afterwards so that callers in the same
    process (tests, the upload service's header check) keep theirs. Not for use from several
    threads at once; the thumbnailer calls this in worker processes, one image at a time."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


@contextlib.contextmanager
def _as_imaging_error() -> Iterator[None]:
    """The header checks shared with the upload service raise ImageRejected; here the same
    reasons are permanent thumbnail failures."""
    try:
        yield
    except ImagingError:
        raise
    except ImageRejected as exc:
        raise ImagingError(str(exc)) from exc


def _draft(image: Image.Image, longest_side: int) -> None:
    """Lets a JPEG decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, with its fast IDCT)
    while staying at least `longest_side` long. Other formats decode at full size."""
    scale = longest_side / max(image.size)
    if image.format != "JPEG" or scale >= 1:
        return
    image.draft(image.mode, (math.ceil(image.width * scale), math.ceil(image.height * scale)))


def _load(image: Image.Image) -> Image.Image:
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImagingError(f"the original has too many pixels: {exc}") from exc
    except DECODE_ERRORS as exc:
        raise ImagingError(f"the original could not be decoded: {exc}") from exc
    return image


def _normalise(image: Image.Image) -> Image.Image:
    """One of _WORKING_MODES: palettes and colour-keyed transparency become RGB(A), 16-bit
    greyscale becomes 32-bit "I" (scaled to 8 bits once it is small)."""
    if image.mode in ("P", "PA") or "transparency" in image.info:
        has_alpha = "transparency" in image.info or image.mode == "PA"
        return image.convert("RGBA" if has_alpha else "RGB")
    if image.mode in _WIDE_GREY_MODES:
        return image.convert("I")
    if image.mode == "1":
        return image.convert("L")
    if image.mode in ("La", "RGBa"):
        return image.convert(image.mode[:-1] + "A")
    if image.mode not in _WORKING_MODES:
        return image.convert("RGB")
    return image


def _reduce(image: Image.Image, longest_side: int) -> Image.Image:
    """A box-filtered integer shrink of a large image, then 16-bit greyscale to 8 bits."""
    factor = max(image.size) // (longest_side * REDUCING_GAP)
    if factor >= 2:
        image = image.reduce(factor)
    if image.mode == "I":
        # 0..65535 to 0..255; a plain convert("L") would clip it to white.
        image = image.point(lambda value: value * (1 / 257)).convert("L")
    return image
