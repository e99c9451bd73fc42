"""The ThumbHash encoder against the reference encoder's output (evanw/thumbhash, the
JavaScript package 0.1.1) for the same pixels."""

from __future__ import annotations

import base64

import pytest
from PIL import Image

from services.thumbnailer.thumbhash import placeholder, rgba_to_thumbhash


def opaque(width: int, height: int) -> bytes:
    return bytes(
        v
        for y in range(height)
        for x in range(width)
        for v in (x * 255 // width, y * 255 // height, (x * y) % 256, 255)
    )


def translucent(width: int, height: int) -> bytes:
    return bytes(
        v
        for y in range(height)
        for x in range(width)
        for v in ((x * 7) % 256, 200, (y * 9) % 256, (x * 255 // width) if y % 3 else 255)
    )


@pytest.mark.parametrize(
    ("width", "height", "pixels", "expected"),
    [
        (32, 24, opaque, "dc080e1d9a6076877088888688678887f3a40ff887"),
        (24, 40, opaque, "9cf80d1c1a600687688886787878f2a10ff788"),
        (30, 20, translucent, "615a85338c2a9087908777946f08797770778888888888"),
    ],
    ids=["landscape", "portrait", "alpha"],
)
def test_the_hash_matches_the_reference_encoder(width, height, pixels, expected) -> None:
    assert rgba_to_thumbhash(width, height, pixels(width, height)).hex() == expected


def test_larger_than_100_pixels_is_refused() -> None:
    with pytest.raises(ValueError, match="100x100"):
        rgba_to_thumbhash(101, 10, bytes(101 * 10 * 4))


def test_the_placeholder_is_base64_and_keeps_colour_and_alpha() -> None:
    red = placeholder(Image.new("RGB", (150, 100), (255, 0, 0)))
    raw = base64.b64decode(red)
    assert 5 <= len(raw) <= 25
    assert raw[2] & 0x80 == 0  # no alpha
    assert raw[4] & 0x80  # landscape
    clear = base64.b64decode(placeholder(Image.new("RGBA", (150, 100), (0, 0, 255, 64))))
    assert clear[2] & 0x80  # alpha
    assert placeholder(Image.new("RGB", (150, 100), (0, 0, 255))) != red
