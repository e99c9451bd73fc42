"""WebP quality and method for the thumbnails: encoding time against bytes, and what the bytes
buy (PSNR against the resampled picture), on the three sizes of a photo-like original."""

from __future__ import annotations

import io
import math
import statistics
import time

from PIL import Image, ImageChops, ImageStat

from bench.photos import originals
from services.thumbnailer.imaging import WEBP_METHOD, WEBP_QUALITY, fit_within

QUALITIES = (75, 80, 85)
METHODS = range(7)


def sizes_of_first_original() -> list[Image.Image]:
    with Image.open(originals()[0].path) as image:
        image.load()
        sizes = [
            image.resize(fit_within(image.size, side), Image.Resampling.LANCZOS)
            for side in (800, 400, 150)
        ]
    return sizes


def encode(image: Image.Image, quality: int, method: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "WEBP", quality=quality, method=method)
    return out.getvalue()


def psnr(original: Image.Image, data: bytes) -> float:
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    squares = ImageStat.Stat(ImageChops.difference(original, decoded)).sum2
    mse = sum(squares) / (original.width * original.height * 3)
    return 10 * math.log10(255**2 / mse) if mse else math.inf


def timed(image: Image.Image, quality: int, method: int, rounds: int = 3) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        encode(image, quality, method)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def run() -> list[str]:
    sizes = sizes_of_first_original()
    lines = [
        "## WebP settings: the three sizes of the 12 MP JPEG, encoded",
        "",
        "| quality | method | ms (3 sizes) | KiB (3 sizes) | PSNR of the large, dB | |",
        "|---|---|---|---|---|---|",
    ]
    for quality in QUALITIES:
        for method in METHODS:
            ms = sum(timed(image, quality, method) for image in sizes)
            kib = sum(len(encode(image, quality, method)) for image in sizes) / 1024
            quality_db = psnr(sizes[0], encode(sizes[0], quality, method))
            chosen = "chosen" if (quality, method) == (WEBP_QUALITY, WEBP_METHOD) else ""
            lines.append(
                f"| {quality} | {method} | {ms:.1f} | {kib:.1f} | {quality_db:.2f} | {chosen} |"
            )
    return lines
