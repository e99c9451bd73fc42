"""Thumbnails from an original's bytes, with Pillow alone: no I/O, so it runs in any process.

The image is decoded once (JPEG at a reduced DCT scale when it is much larger than the largest
thumbnail), turned upright, brought to 8-bit sRGB, and the three sizes are derived from that one
buffer, largest first, each resize starting from the previous, smaller result."""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps

from services.core.imageinfo import (
    DECODE_ERRORS,
    ImageRejected,
    displayed_size,
    open_image,
)
from services.core.photos import ThumbnailSize

# Largest first: each size is resized from the one before it.
SIZES_LARGEST_FIRST = tuple(sorted(ThumbnailSize, key=lambda s: s.longest_side, reverse=True))
WEBP_QUALITY = 80
# Modes holding more than 8 bits per sample in one band (16-bit greyscale PNG and the like).
_WIDE_GREY_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class ImagingError(ImageRejected):
    """The original can never give thumbnails (corrupt, not an image, too many pixels).

    A subclass of ImageRejected, so that one `except ImageRejected` covers both the upload
    service's header check and this full decode."""


@dataclass(frozen=True)
class RenderedThumbnail:
    size: ThumbnailSize
    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class Rendition:
    """The original's displayed size (after EXIF orientation) and its thumbnails."""

    width: int
    height: int
    thumbnails: tuple[RenderedThumbnail, ...]


def make_thumbnails(data: bytes, max_pixels: int) -> Rendition:
    """Decodes `data` once and renders every ThumbnailSize as WebP; raises ImagingError."""
    with (
        _pixel_limit(max_pixels),
        _as_imaging_error(),
        open_image(io.BytesIO(data), max_pixels) as image,
    ):
        displayed = displayed_size(image)
        _draft_for(image, displayed, SIZES_LARGEST_FIRST[0].longest_side)
        upright = _decode_upright(image)
    prepared = to_srgb(upright)
    thumbnails = tuple(_render_all(prepared, displayed))
    return Rendition(width=displayed[0], height=displayed[1], thumbnails=thumbnails)


def fit_within(size: tuple[int, int], longest_side: int) -> tuple[int, int]:
    """`size` scaled so its longest side is at most `longest_side`; never enlarged."""
    width, height = size
    scale = longest_side / max(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


@contextlib.contextmanager
def _pixel_limit(max_pixels: int) -> Iterator[None]:
    """Pillow's own bomb check (an error at twice the limit) follows THUMBWIRE_MAX_PIXELS.

    The limit is process-wide in Pillow: it is restored afterwards so that callers in the same
    process (tests, the upload service's header check) keep theirs. Not for use from several
    threads at once; the thumbnailer calls this in pool processes, one image at a time."""
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


def _draft_for(image: Image.Image, displayed: tuple[int, int], longest_side: int) -> None:
    """Lets a JPEG decode at 1/2, 1/4 or 1/8 scale while staying at least as large as needed.

    Orientation does not matter here: the request keeps the stored aspect ratio."""
    if image.format != "JPEG":
        return
    scale = longest_side / max(displayed)
    if scale >= 1:
        return
    request = (math.ceil(image.width * scale), math.ceil(image.height * scale))
    image.draft(image.mode, request)


def _decode_upright(image: Image.Image) -> Image.Image:
    """Decodes the (first) frame and applies the EXIF orientation."""
    try:
        image.load()
        return ImageOps.exif_transpose(image)
    except Image.DecompressionBombError as exc:
        raise ImagingError(f"the original has too many pixels: {exc}") from exc
    except DECODE_ERRORS as exc:
        raise ImagingError(f"the original could not be decoded: {exc}") from exc


def to_srgb(image: Image.Image) -> Image.Image:
    """8-bit sRGB, as RGBA when the source has transparency and RGB otherwise; no metadata."""
    colour, alpha = _split_alpha(_to_8bit(image))
    rgb = _convert_profile(colour, image.info.get("icc_profile"))
    if alpha is not None:
        rgb.putalpha(alpha)
    rgb.info = {}  # EXIF (GPS), XMP, ICC and comments must not reach the thumbnails
    return rgb


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scales 16-bit greyscale to 0..255; a plain convert("L") would clip it to white."""
    if image.mode not in _WIDE_GREY_MODES:
        return image
    return image.convert("I").point(lambda value: value * (1 / 257)).convert("L")


def _split_alpha(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """The colour bands (L, RGB or CMYK) and the alpha band, if the image has transparency."""
    if image.mode == "P" or "transparency" in image.info:
        has_alpha = "transparency" in image.info or image.mode == "PA"
        image = image.convert("RGBA" if has_alpha else "RGB")
    if image.mode in _ALPHA_MODES:
        image = image.convert("RGBA") if image.mode not in ("RGBA", "LA") else image
        return image.convert(image.mode[:-1]), image.getchannel("A")
    if image.mode not in ("L", "RGB", "CMYK"):
        image = image.convert("RGB")
    return image, None


def _convert_profile(colour: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """RGB in sRGB: through the embedded ICC profile when there is a usable one."""
    if icc_profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            return ImageCms.profileToProfile(colour, source, srgb, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken or mismatched profile: the pixels are still worth a thumbnail
    return colour.convert("RGB")


def _render_all(image: Image.Image, displayed: tuple[int, int]) -> list[RenderedThumbnail]:
    rendered = []
    current = image
    for size in SIZES_LARGEST_FIRST:
        # Targets come from the displayed size, not from the draft-reduced buffer, so that a
        # thumbnail's size never depends on how the original was decoded.
        target = fit_within(displayed, size.longest_side)
        if current.size != target:
            current = current.resize(target, Image.Resampling.LANCZOS)
        rendered.append(RenderedThumbnail(size, target[0], target[1], encode_webp(current)))
    return rendered


def encode_webp(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", quality=WEBP_QUALITY, method=4, exif=b"", icc_profile=None)
    return out.getvalue()
