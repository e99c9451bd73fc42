"""Thumbwire's imaging against the naive Pillow way, on a generated photo-like JPEG.

The naive way decodes the full image, then calls thumbnail() on a copy for each size. Both
run in this process, one after the other, so the ratio holds whatever the machine."""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from services.core.photos import ThumbnailSize
from services.thumbnailer.imaging import make_thumbnails

MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class Timing:
    name: str
    ms_per_image: float


def photo_like_jpeg(width: int, height: int) -> bytes:
    """Noise over gradients: detail a JPEG encoder cannot flatten, as in a real photo."""
    noise = Image.effect_noise((width, height), 64).convert("L")
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.merge("RGB", (noise, gradient, gradient.transpose(Image.Transpose.ROTATE_180)))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def naive(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        for size in ThumbnailSize:
            copy = image.copy()
            copy.thumbnail((size.longest_side, size.longest_side))
            copy.save(io.BytesIO(), "WEBP")


def thumbwire(data: bytes) -> None:
    make_thumbnails(data, MAX_PIXELS)


def measure(name: str, work: Callable[[bytes], None], data: bytes, rounds: int) -> Timing:
    work(data)  # warm up: first-call costs are not what is compared
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        work(data)
        samples.append((time.perf_counter() - started) * 1000)
    return Timing(name, statistics.median(samples))


def run(rounds: int = 5) -> list[str]:
    data = photo_like_jpeg(4000, 3000)
    baseline = measure("naive Pillow", naive, data, rounds)
    ours = measure("thumbwire", thumbwire, data, rounds)
    return [
        "## Imaging: 12 MP JPEG (4000x3000), three WebP sizes",
        "",
        "| way | ms per image (median) | speed-up against naive |",
        "|---|---|---|",
        f"| {baseline.name} | {baseline.ms_per_image:.0f} | 1.00x |",
        f"| {ours.name} | {ours.ms_per_image:.0f} |"
        f" {baseline.ms_per_image / ours.ms_per_image:.2f}x |",
    ]
