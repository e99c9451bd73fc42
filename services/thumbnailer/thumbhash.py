"""ThumbHash (https://evanw.github.io/thumbhash/): an image's placeholder in about 25 bytes.

An encoder written from the reference algorithm, since no maintained package offers one: the
picture is split into luminance (L), yellow-blue (P), red-green (Q) and alpha (A) channels,
each reduced to its lowest DCT frequencies and quantised to 4 bits. The DCT is computed
separably (rows, then columns), which is what keeps it fast enough in pure Python; summed in
that order, a term that falls exactly on a rounding boundary can come out one 4-bit step from
the reference's, which no one can see in a placeholder."""

from __future__ import annotations

import base64
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

MAX_SIDE = 100  # the reference encoder's limit: more pixels add nothing to the hash
# What placeholder() samples the picture down to first: the terms the hash keeps are the lowest
# frequencies, which 32 pixels a side hold as well as 100, in a tenth of the time.
SAMPLE_SIDE = 32

Channel = list[float]


@dataclass(frozen=True)
class _Encoded:
    dc: float
    ac: list[float]  # normalised to 0..1
    scale: float


def placeholder(image: Image.Image) -> str:
    """The ThumbHash of `image` (any size, RGB or RGBA), base64 as clients decode it."""
    small = image.convert("RGBA")
    small.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE), Image.Resampling.BOX)
    return base64.b64encode(rgba_to_thumbhash(*small.size, small.tobytes())).decode("ascii")


def rgba_to_thumbhash(width: int, height: int, rgba: bytes) -> bytes:
    """The ThumbHash of `width` x `height` RGBA pixels (not premultiplied), at most 100x100."""
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ValueError(f"{width}x{height} does not fit in {MAX_SIDE}x{MAX_SIDE}")
    if len(rgba) != width * height * 4:
        raise ValueError("rgba must hold width * height * 4 bytes")
    lum, p, q, alpha, has_alpha = _lpqa(rgba)
    l_limit = 5 if has_alpha else 7  # fewer luminance terms when alpha needs room
    lx = max(1, _round(l_limit * width / max(width, height)))
    ly = max(1, _round(l_limit * height / max(width, height)))
    dct = _Dct(width, height)
    channels = [dct.encode(lum, max(3, lx), max(3, ly)), dct.encode(p, 3, 3), dct.encode(q, 3, 3)]
    if has_alpha:
        channels.append(dct.encode(alpha, 5, 5))
    header = _header(channels, has_alpha, width > height, lx if width <= height else ly)
    return header + _pack_nibbles([f for c in channels for f in c.ac])


def _round(value: float) -> int:
    """Rounds half up, as JavaScript's Math.round does in the reference encoder."""
    return math.floor(value + 0.5)


def _lpqa(rgba: bytes) -> tuple[Channel, Channel, Channel, Channel, bool]:
    """The pixels as L, P, Q and A, composited onto their average colour."""
    alphas = [a / 255 for a in rgba[3::4]]
    total_alpha = sum(alphas)
    averages = [
        sum(a / 255 * v for a, v in zip(alphas, rgba[band::4], strict=True)) for band in range(3)
    ]
    if total_alpha > 0:
        averages = [avg / total_alpha for avg in averages]
    r, g, b = (
        [avg * (1 - a) + a / 255 * v for a, v in zip(alphas, rgba[band::4], strict=True)]
        for band, avg in enumerate(averages)
    )
    lum = [(rv + gv + bv) / 3 for rv, gv, bv in zip(r, g, b, strict=True)]
    p = [(rv + gv) / 2 - bv for rv, gv, bv in zip(r, g, b, strict=True)]
    q = [rv - gv for rv, gv in zip(r, g, strict=True)]
    return lum, p, q, alphas, total_alpha < len(alphas)


class _Dct:
    """The DCT terms the hash keeps, for one image size."""

    def __init__(self, width: int, height: int) -> None:
        self._width = width
        self._height = height

    def encode(self, channel: Channel, nx: int, ny: int) -> _Encoded:
        """The DC term, and the AC terms cx, cy with cx * ny < nx * (ny - cy), row by row."""
        w, h = self._width, self._height
        cos_x = [_cosines(w, cx) for cx in range(nx)]
        rows = [channel[y * w : (y + 1) * w] for y in range(h)]
        # Each row against each horizontal frequency: h * nx sums instead of h * nx * ny.
        row_terms = [[_dot(row, cos_x[cx]) for row in rows] for cx in range(nx)]
        terms = []
        for cy in range(ny):
            cos_y = _cosines(h, cy)
            cx = 0
            while cx * ny < nx * (ny - cy):
                terms.append(_dot(row_terms[cx], cos_y) / (w * h))
                cx += 1
        ac = terms[1:]
        scale = max((abs(f) for f in ac), default=0.0)
        if scale > 0:
            ac = [0.5 + 0.5 / scale * f for f in ac]
        return _Encoded(terms[0], ac, scale)


def _cosines(size: int, frequency: int) -> list[float]:
    return [math.cos(math.pi / size * frequency * (i + 0.5)) for i in range(size)]


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(map(operator.mul, a, b))


def _header(channels: list[_Encoded], has_alpha: bool, landscape: bool, l_count: int) -> bytes:
    lum, p, q = channels[:3]
    header24 = (
        _round(63 * lum.dc)
        | _round(31.5 + 31.5 * p.dc) << 6
        | _round(31.5 + 31.5 * q.dc) << 12
        | _round(31 * lum.scale) << 18
        | int(has_alpha) << 23
    )
    header16 = (
        l_count | _round(63 * p.scale) << 3 | _round(63 * q.scale) << 9 | int(landscape) << 15
    )
    header = header24.to_bytes(3, "little") + header16.to_bytes(2, "little")
    if has_alpha:
        alpha = channels[3]
        header += bytes([_round(15 * alpha.dc) | _round(15 * alpha.scale) << 4])
    return header


def _pack_nibbles(factors: list[float]) -> bytes:
    """Two 4-bit factors a byte, the first in the low half."""
    nibbles = [_round(15 * f) for f in factors]
    if len(nibbles) % 2:
        nibbles.append(0)
    return bytes(low | high << 4 for low, high in zip(nibbles[::2], nibbles[1::2], strict=True))
