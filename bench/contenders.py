"""The ways of making the three thumbnails that the benchmark compares, each from the bytes."""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image

from services.core.photos import ThumbnailSize
from services.thumbnailer.imaging import WEBP_METHOD, WEBP_QUALITY, make_thumbnails

MAX_PIXELS = 100_000_000
SIDES = sorted((size.longest_side for size in ThumbnailSize), reverse=True)


def naive(data: bytes) -> None:
    """Full decode, then thumbnail() of a copy for each size, saved with Pillow's defaults."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        for side in SIDES:
            copy = image.copy()
            copy.thumbnail((side, side))
            copy.save(io.BytesIO(), "WEBP")


def thumbwire(data: bytes) -> None:
    make_thumbnails(data, MAX_PIXELS)


def pyvips(data: bytes) -> None:
    """libvips at its best: shrink-on-load for the large size, then each smaller size from the
    one before, encoded with thumbwire's WebP settings so that only the pipelines differ."""
    import pyvips as vips  # the dev extra only

    # In memory: the smaller sizes read it again, and the decode streams only once.
    current = vips.Image.thumbnail_buffer(data, SIDES[0]).copy_memory()
    for side in SIDES:
        if max(current.width, current.height) > side:
            current = current.thumbnail_image(side)
        current.webpsave_buffer(Q=WEBP_QUALITY, effort=WEBP_METHOD, keep="none")


CONTENDERS: dict[str, Callable[[bytes], None]] = {
    "naive Pillow": naive,
    "pyvips": pyvips,
    "thumbwire": thumbwire,
}
