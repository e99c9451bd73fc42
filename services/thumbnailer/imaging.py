"""Thumbnails from an original's bytes, with Pillow alone: no I/O, so it runs in any process.

The image is decoded once at a reduced scale (decoding.py), the large size is resampled from
that buffer and brought to sRGB, and each smaller size is resampled from the one before it, so
that every step works on as few pixels as it can. The placeholder is the small one's ThumbHash."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass

from PIL import Image

from services.core.photos import ThumbnailSize
from services.thumbnailer.colour import to_srgb
from services.thumbnailer.decoding import decode
from services.thumbnailer.rejections import ImagingError
from services.thumbnailer.thumbhash import placeholder

# Largest first: each size is resized from the one before it.
SIZES_LARGEST_FIRST = tuple(sorted(ThumbnailSize, key=lambda s: s.longest_side, reverse=True))
# Chosen by measurement (make bench, docs/benchmarks.md): method 2 encodes in less than half
# the time of Pillow's default 4, for about 7% more bytes at the same quality and PSNR.
WEBP_QUALITY = 80
WEBP_METHOD = 2


@dataclass(frozen=True)
class RenderedThumbnail:
    size: ThumbnailSize
    width: int
    height: int
    data: bytes
    # Resampling and encoding this size took (the decode all sizes share is not counted; the
    # large size's includes the conversion to sRGB).
    seconds: float = 0.0


@dataclass(frozen=True)
class Rendition:
    """The original's displayed size (after EXIF orientation), its thumbnails, largest first,
    and its placeholder (a base64 ThumbHash)."""

    width: int
    height: int
    thumbnails: tuple[RenderedThumbnail, ...]
    placeholder: str = ""
    # Where the worker's time went besides the sizes: the one decode, and the ThumbHash.
    decode_seconds: float = 0.0
    placeholder_seconds: float = 0.0


def make_thumbnails(data: bytes, max_pixels: int) -> Rendition:
    """Decodes `data` once and renders every ThumbnailSize as WebP; raises ImagingError."""
    largest = SIZES_LARGEST_FIRST[0]
    started_decode = time.perf_counter()
    decoded = decode(data, max_pixels, largest.longest_side)
    decoded_at = started = time.perf_counter()
    current = _resize(decoded.image, fit_within(decoded.displayed, largest.longest_side))
    current = to_srgb(current, decoded.icc_profile)
    thumbnails = []
    for size in SIZES_LARGEST_FIRST:
        # Targets come from the displayed size, not from the reduced buffer, so that a
        # thumbnail's size never depends on how the original was decoded.
        current = _resize(current, fit_within(decoded.displayed, size.longest_side))
        data = encode_webp(current)
        ended = time.perf_counter()
        thumbnails.append(RenderedThumbnail(size, *current.size, data, ended - started))
        started = ended
    hashed = placeholder(current)
    return Rendition(
        *decoded.displayed,
        tuple(thumbnails),
        hashed,
        decode_seconds=decoded_at - started_decode,
        placeholder_seconds=time.perf_counter() - started,
    )


def fit_within(size: tuple[int, int], longest_side: int) -> tuple[int, int]:
    """`size` scaled so its longest side is at most `longest_side`; never enlarged."""
    width, height = size
    scale = longest_side / max(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resize(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Bicubic, as Pillow's thumbnail(): from the reduced buffer, the large size comes out
    48.0 dB from a full decode resampled with Lanczos (Lanczos: 48.8 dB, both far beyond what
    an eye tells apart), in 30% less time."""
    if image.size == target:
        return image
    return image.resize(target, Image.Resampling.BICUBIC)


def encode_webp(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD, exif=b"", icc_profile=None)
    return out.getvalue()


__all__ = ["ImagingError", "RenderedThumbnail", "Rendition", "fit_within", "make_thumbnails"]
