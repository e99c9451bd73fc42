"""Photo-like originals for the benchmarks, made here and kept under var/bench/.

Real photos are neither flat nor pure noise: structure at every scale (here noise smoothed
over octaves, as natural images' 1/f spectrum), hard edges (shapes), and sensor grain. At
JPEG quality 90 a 12 MP one weighs about 3.5 MB, as a phone's does."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

import services.core.imageinfo  # noqa: F401 - registers the HEIF plugin used for HEIC

CACHE = Path("var/bench")


@dataclass(frozen=True)
class Original:
    name: str
    path: Path

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def originals() -> list[Original]:
    """The benchmark's inputs, made on first use."""
    specs: dict[str, Callable[[], bytes]] = {
        "12 MP JPEG (4000x3000)": lambda: _encode(photo_like(4000, 3000), "JPEG", quality=90),
        "24 MP JPEG (6000x4000)": lambda: _encode(photo_like(6000, 4000), "JPEG", quality=90),
        "12 MP PNG (4000x3000)": lambda: _encode(photo_like(4000, 3000), "PNG", compress_level=6),
        "12 MP HEIC (4000x3000)": lambda: _encode(photo_like(4000, 3000), "HEIF", quality=80),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    made = []
    for index, (name, make) in enumerate(specs.items()):
        path = CACHE / f"original-{index}.bin"
        if not path.exists():
            path.write_bytes(make())
        made.append(Original(name, path))
    return made


def photo_like(width: int, height: int, seed: int = 1) -> Image.Image:
    rng = random.Random(seed)
    image = Image.merge("RGB", [_octaves((width, height)) for _ in range(3)])
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        side = rng.randrange(width // 60, width // 8)
        box = (x, y, x + side, y + side * 2 // 3)
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    grain = Image.merge("RGB", [Image.effect_noise((width, height), 6)] * 3)
    return ImageChops.add(image, grain, scale=1.0, offset=-128)


def _octaves(size: tuple[int, int], octaves: int = 6) -> Image.Image:
    """Noise smoothed at six scales, coarse ones weighing most."""
    width, height = size
    out = Image.new("L", size, 128)
    weight = 0.5
    for octave in range(octaves):
        cell = 2 ** (octaves - octave + 2)
        noise = Image.effect_noise((max(2, width // cell), max(2, height // cell)), 90)
        out = Image.blend(out, noise.resize(size, Image.Resampling.BICUBIC), weight)
        weight *= 0.6
    return out


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def three_mb_jpeg() -> Path:
    """The upload benchmark's photo: the 12 MP photo-like image at JPEG quality 88, 3.1 MB,
    the same bytes on every run (made on first use)."""
    path = CACHE / "upload-3mb.jpg"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_encode(photo_like(4000, 3000), "JPEG", quality=88))
    return path
