"""Colour for the web: 8-bit sRGB through the original's ICC profile, alpha kept, no metadata."""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageCms

_PROFILE_ERRORS = (ImageCms.PyCMSError, OSError, ValueError, TypeError)


def to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """RGBA when `image` has alpha, RGB otherwise; `image` is L, LA, RGB, RGBA or CMYK.

    May return `image` itself, with its metadata cleared: pass an image that is yours."""
    alpha = image.getchannel("A") if image.mode in ("LA", "RGBA") else None
    colour = image.convert(image.mode[:-1]) if alpha is not None else image
    rgb = _convert_profile(colour, icc_profile)
    if alpha is not None:
        rgb.putalpha(alpha)
    rgb.info = {}  # EXIF (GPS), XMP, ICC and comments must not reach the thumbnails
    return rgb


def _convert_profile(colour: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """RGB in sRGB: through the embedded ICC profile when there is a usable one."""
    if icc_profile:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            return ImageCms.profileToProfile(colour, source, _srgb(), outputMode="RGB")
        except _PROFILE_ERRORS:
            pass  # a broken or mismatched profile: the pixels are still worth a thumbnail
    return colour if colour.mode == "RGB" else colour.convert("RGB")


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
