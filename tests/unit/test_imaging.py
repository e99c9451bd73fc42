"""Thumbnail rendering: sizes, orientation, colour, transparency, metadata and bad input."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image, ImageCms

from services.core.imageinfo import ImageRejected
from services.core.photos import ThumbnailSize
from services.thumbnailer.imaging import ImagingError, Rendition, make_thumbnails
from tests.support.corpus import (
    NOT_AN_IMAGE,
    avif,
    bilevel_png,
    heic,
    jpeg_claiming_size,
    png_16bit_rgb,
)
from tests.support.images import (
    animated_gif,
    encode,
    jpeg,
    marked,
    png,
    png_claiming_size,
    swapped_primaries_profile,
    with_orientation,
)

MAX_PIXELS = 100_000_000
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def decoded(rendition: Rendition, size: ThumbnailSize) -> Image.Image:
    """The thumbnail of `size`, decoded; fails unless it is a WebP."""
    [thumb] = [t for t in rendition.thumbnails if t.size == size]
    image = Image.open(io.BytesIO(thumb.data))
    assert image.format == "WEBP"
    assert image.size == (thumb.width, thumb.height)
    image.load()
    return image


def sizes(rendition: Rendition) -> dict[ThumbnailSize, tuple[int, int]]:
    return {t.size: (t.width, t.height) for t in rendition.thumbnails}


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ((4000, 3000), {"large": (800, 600), "medium": (400, 300), "small": (150, 112)}),
        ((3000, 4000), {"large": (600, 800), "medium": (300, 400), "small": (112, 150)}),
        ((1000, 1000), {"large": (800, 800), "medium": (400, 400), "small": (150, 150)}),
        ((4000, 100), {"large": (800, 20), "medium": (400, 10), "small": (150, 4)}),
        ((300, 200), {"large": (300, 200), "medium": (300, 200), "small": (150, 100)}),
        ((100, 50), {"large": (100, 50), "medium": (100, 50), "small": (100, 50)}),
    ],
    ids=["landscape", "portrait", "square", "very-wide", "no-upscale-300x200", "tiny-100x50"],
)
def test_every_size_fits_its_longest_side_without_upscaling(
    original: tuple[int, int], expected: dict[str, tuple[int, int]]
) -> None:
    rendition = make_thumbnails(jpeg(*original), MAX_PIXELS)
    assert (rendition.width, rendition.height) == original
    assert {str(k): v for k, v in sizes(rendition).items()} == expected
    for size in ThumbnailSize:
        assert decoded(rendition, size).mode == "RGB"


def test_sizes_come_largest_first() -> None:
    rendition = make_thumbnails(jpeg(1200, 900), MAX_PIXELS)
    assert [t.size for t in rendition.thumbnails] == [
        ThumbnailSize.LARGE,
        ThumbnailSize.MEDIUM,
        ThumbnailSize.SMALL,
    ]


def test_a_large_jpeg_decoded_at_reduced_scale_keeps_its_colours() -> None:
    """The DCT-scaled decode must give the same picture: marker still in the top-left."""
    source = marked(4800, 3200, marker=RED, base=BLUE)
    rendition = make_thumbnails(encode(source, "JPEG", quality=95), MAX_PIXELS)
    large = decoded(rendition, ThumbnailSize.LARGE).convert("RGB")
    assert large.size == (800, 533)
    assert close_to(large.getpixel((20, 20)), RED)
    assert close_to(large.getpixel((780, 520)), BLUE)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation: int) -> None:
    """Stored turned or flipped with the tag that undoes it: every output must look like the
    upright 300x200 picture with its marker in the top-left corner."""
    upright = marked(300, 200, marker=RED, base=BLUE)
    data = with_orientation(upright, orientation)
    stored = Image.open(io.BytesIO(data)).size
    assert stored == ((200, 300) if orientation >= 5 else (300, 200))

    rendition = make_thumbnails(data, MAX_PIXELS)

    assert (rendition.width, rendition.height) == (300, 200)
    for size, (width, height) in [
        (ThumbnailSize.LARGE, (300, 200)),
        (ThumbnailSize.SMALL, (150, 100)),
    ]:
        image = decoded(rendition, size).convert("RGB")
        assert image.size == (width, height)
        assert close_to(image.getpixel((5, 5)), RED), f"top-left of {size}"
        # The bar runs along the top edge, not down the left one (a transpose keeps the corner).
        assert close_to(image.getpixel((width * 2 // 5, 5)), RED), f"top edge of {size}"
        assert close_to(image.getpixel((5, height * 2 // 5)), BLUE), f"left edge of {size}"
        assert close_to(image.getpixel((width - 5, height - 5)), BLUE), f"bottom-right of {size}"
        assert close_to(image.getpixel((width - 5, 5)), BLUE), f"top-right of {size}"


def test_alpha_is_kept_from_an_rgba_png() -> None:
    image = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 100, 100))
    rendition = make_thumbnails(encode(image, "PNG"), MAX_PIXELS)
    small = decoded(rendition, ThumbnailSize.SMALL)
    assert small.mode == "RGBA"
    assert small.getpixel((10, 30))[3] == 255
    assert small.getpixel((140, 30))[3] == 0


def test_semi_transparent_png_keeps_its_alpha_level() -> None:
    rendition = make_thumbnails(png(50, 40), MAX_PIXELS)  # (10, 120, 250, 128) everywhere
    small = decoded(rendition, ThumbnailSize.SMALL)
    assert small.mode == "RGBA"
    assert close_to(small.getpixel((25, 20)), (10, 120, 250, 128), tolerance=6)


def test_palette_png_with_transparency_becomes_rgba() -> None:
    image = Image.new("P", (60, 60), 0)
    image.putpalette([255, 255, 255, 0, 128, 0] + [0] * 762)
    image.paste(1, (0, 0, 30, 60))
    rendition = make_thumbnails(encode(image, "PNG", transparency=0), MAX_PIXELS)
    small = decoded(rendition, ThumbnailSize.SMALL)
    assert small.mode == "RGBA"
    assert close_to(small.getpixel((10, 30)), (0, 128, 0, 255))
    assert small.getpixel((50, 30))[3] == 0


def test_palette_png_without_transparency_becomes_rgb() -> None:
    image = Image.new("P", (60, 60), 1)
    image.putpalette([255, 255, 255, 0, 128, 0] + [0] * 762)
    rendition = make_thumbnails(encode(image, "PNG"), MAX_PIXELS)
    small = decoded(rendition, ThumbnailSize.SMALL)
    assert small.mode == "RGB"
    assert close_to(small.getpixel((30, 30)), (0, 128, 0))


def test_cmyk_jpeg_becomes_rgb_with_the_right_colour() -> None:
    cyan = Image.new("CMYK", (120, 80), (255, 0, 0, 0))
    rendition = make_thumbnails(encode(cyan, "JPEG", quality=95), MAX_PIXELS)
    small = decoded(rendition, ThumbnailSize.SMALL)
    assert small.mode == "RGB"
    assert close_to(small.getpixel((40, 30)), (0, 255, 255))


@pytest.mark.parametrize(("sample", "expected"), [(0, 0), (32896, 128), (65535, 255)])
def test_16_bit_greyscale_png_is_scaled_not_clipped(sample: int, expected: int) -> None:
    image = Image.new("I;16", (64, 64), sample)
    data = encode(image, "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    rendition = make_thumbnails(data, MAX_PIXELS)
    pixel = decoded(rendition, ThumbnailSize.SMALL).convert("RGB").getpixel((32, 32))
    assert close_to(pixel, (expected,) * 3, tolerance=3)


def test_animated_gif_gives_its_first_frame() -> None:
    data = animated_gif(90, 60, [RED, GREEN, BLUE])
    assert Image.open(io.BytesIO(data)).n_frames == 3
    rendition = make_thumbnails(data, MAX_PIXELS)
    assert (rendition.width, rendition.height) == (90, 60)
    assert close_to(decoded(rendition, ThumbnailSize.SMALL).convert("RGB").getpixel((45, 30)), RED)


def test_embedded_icc_profile_is_converted_to_srgb() -> None:
    """Under the test profile, (255, 0, 0) is sRGB green: ignoring the profile leaves it red."""
    image = Image.new("RGB", (100, 100), RED)
    data = encode(image, "PNG", icc_profile=swapped_primaries_profile())
    rendition = make_thumbnails(data, MAX_PIXELS)
    for size in ThumbnailSize:
        output = decoded(rendition, size)
        assert "icc_profile" not in output.info  # untagged WebP is sRGB
        assert close_to(output.convert("RGB").getpixel((50, 50)), GREEN, tolerance=20)


def test_embedded_srgb_profile_leaves_colours_alone() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = Image.new("RGB", (100, 100), (200, 60, 30))
    rendition = make_thumbnails(encode(image, "PNG", icc_profile=srgb), MAX_PIXELS)
    pixel = decoded(rendition, ThumbnailSize.SMALL).convert("RGB").getpixel((50, 50))
    assert close_to(pixel, (200, 60, 30), tolerance=6)


def test_a_profile_that_does_not_fit_the_image_is_ignored() -> None:
    """An RGB profile on a greyscale image cannot be applied: the pixels still make a thumbnail."""
    image = Image.new("L", (100, 100), 128)
    data = encode(image, "PNG", icc_profile=swapped_primaries_profile())
    rendition = make_thumbnails(data, MAX_PIXELS)
    pixel = decoded(rendition, ThumbnailSize.SMALL).convert("RGB").getpixel((50, 50))
    assert close_to(pixel, (128, 128, 128), tolerance=4)


def test_exif_gps_and_icc_are_stripped_from_outputs() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 29.0)  # GPSLatitude
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(
        Image.new("RGB", (400, 300), (90, 90, 90)),
        "JPEG",
        exif=exif.tobytes(),
        icc_profile=srgb,
        comment=b"private note",
    )
    assert b"SecretCam" in data
    rendition = make_thumbnails(data, MAX_PIXELS)
    for thumb in rendition.thumbnails:
        assert b"SecretCam" not in thumb.data
        assert b"EXIF" not in thumb.data and b"ICCP" not in thumb.data and b"XMP " not in thumb.data
        output = decoded(rendition, thumb.size)
        assert not output.getexif()
        assert "icc_profile" not in output.info and "exif" not in output.info


def test_truncated_jpeg_is_a_permanent_error() -> None:
    data = jpeg(400, 300)
    with pytest.raises(ImagingError, match="could not be decoded"):
        make_thumbnails(data[: len(data) * 7 // 10], MAX_PIXELS)


@pytest.mark.parametrize(
    "data", [b"", b"garbage, not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, b"%PDF-1.7\n"]
)
def test_bytes_that_are_no_image_are_a_permanent_error(data: bytes) -> None:
    with pytest.raises(ImagingError):
        make_thumbnails(data, MAX_PIXELS)


def test_the_error_is_an_image_rejection() -> None:
    """One `except ImageRejected` covers the upload check and the thumbnailer's decode."""
    assert issubclass(ImagingError, ImageRejected)


def test_too_many_pixels_is_refused_from_the_header_alone() -> None:
    """The header claims 12000x12000; the data is one pixel. Decoding would fail differently
    (truncated data), so the size message proves nothing was decoded."""
    with pytest.raises(ImagingError, match="pixels") as raised:
        make_thumbnails(png_claiming_size(12_000, 12_000), MAX_PIXELS)
    assert "12000x12000" in str(raised.value)


def test_far_too_many_pixels_is_refused_as_a_bomb() -> None:
    with pytest.raises(ImagingError, match="too many pixels: at most 100000000"):
        make_thumbnails(png_claiming_size(100_000, 100_000), MAX_PIXELS)


def test_the_pixel_limit_follows_max_pixels() -> None:
    data = jpeg(100, 100)
    with pytest.raises(ImagingError, match="at most 9999"):
        make_thumbnails(data, 9_999)
    assert make_thumbnails(data, 10_000).width == 100


def test_pillow_limit_is_restored_for_other_callers() -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImagingError):
        make_thumbnails(jpeg(100, 100), 10)
    make_thumbnails(jpeg(100, 100), 500_000_000)
    assert before == Image.MAX_IMAGE_PIXELS


def assert_marked_upright(rendition: Rendition, size: ThumbnailSize, tolerance: int = 24) -> None:
    """The `marked` picture, upright: its red bar along the left half of the top edge."""
    image = decoded(rendition, size).convert("RGB")
    width, height = image.size
    assert close_to(image.getpixel((5, 5)), RED, tolerance), f"top-left of {size}"
    assert close_to(image.getpixel((width * 2 // 5, 5)), RED, tolerance), f"top edge of {size}"
    assert close_to(image.getpixel((5, height // 2)), BLUE, tolerance), f"left edge of {size}"
    assert close_to(image.getpixel((width - 5, height - 5)), BLUE, tolerance), "bottom-right"


def stored_turned(image: Image.Image, orientation: int) -> tuple[Image.Image, bytes]:
    """`image` stored as a phone held upright stores it for EXIF `orientation` 1 or 6, and
    that EXIF block."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image.transpose(Image.Transpose.ROTATE_90) if orientation == 6 else image
    return stored, exif.tobytes()


@pytest.mark.parametrize("orientation", [1, 6])
def test_heic_from_a_phone_is_rendered_upright(orientation: int) -> None:
    """libheif turns the stored pixels itself; the size and the picture must come out upright
    once, not twice."""
    stored, exif = stored_turned(marked(600, 400), orientation)
    rendition = make_thumbnails(heic(stored, exif=exif), MAX_PIXELS)
    assert (rendition.width, rendition.height) == (600, 400)
    assert sizes(rendition)[ThumbnailSize.SMALL] == (150, 100)
    assert_marked_upright(rendition, ThumbnailSize.SMALL)


def test_avif_is_rendered_with_its_colours() -> None:
    rendition = make_thumbnails(avif(marked(1200, 800)), MAX_PIXELS)
    assert sizes(rendition)[ThumbnailSize.LARGE] == (800, 533)
    assert_marked_upright(rendition, ThumbnailSize.MEDIUM)


def test_avif_keeps_its_alpha() -> None:
    image = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 100, 100))
    small = decoded(make_thumbnails(avif(image), MAX_PIXELS), ThumbnailSize.SMALL)
    assert small.mode == "RGBA"
    assert small.getpixel((10, 30))[3] > 240 and small.getpixel((140, 30))[3] < 16


def test_webp_with_alpha_keeps_it() -> None:
    image = Image.new("RGBA", (300, 300), (0, 255, 0, 255))
    image.paste((0, 0, 0, 0), (150, 0, 300, 300))
    small = decoded(make_thumbnails(encode(image, "WEBP", lossless=True), MAX_PIXELS), "small")
    assert close_to(small.getpixel((20, 75)), (0, 255, 0, 255))
    assert small.getpixel((130, 75))[3] == 0


def test_a_large_progressive_jpeg_is_decoded_at_reduced_scale_upright() -> None:
    stored, exif = stored_turned(marked(3200, 2400), 6)
    data = encode(stored, "JPEG", quality=90, progressive=True, exif=exif)
    assert Image.open(io.BytesIO(data)).info.get("progressive")
    rendition = make_thumbnails(data, MAX_PIXELS)
    assert (rendition.width, rendition.height) == (3200, 2400)
    assert sizes(rendition)[ThumbnailSize.LARGE] == (800, 600)
    assert_marked_upright(rendition, ThumbnailSize.LARGE)


def test_a_large_cmyk_jpeg_is_decoded_at_reduced_scale_to_rgb() -> None:
    cyan = Image.new("CMYK", (2400, 1800), (255, 0, 0, 0))
    rendition = make_thumbnails(encode(cyan, "JPEG", quality=95), MAX_PIXELS)
    large = decoded(rendition, ThumbnailSize.LARGE)
    assert (large.mode, large.size) == ("RGB", (800, 600))
    assert close_to(large.getpixel((400, 300)), (0, 255, 255))


def test_a_large_rgba_png_is_reduced_with_its_alpha_and_colours() -> None:
    """Reduced with a box filter before resampling: premultiplied, so no dark fringes."""
    image = Image.new("RGBA", (4000, 2000), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 2000, 2000))
    large = decoded(make_thumbnails(encode(image, "PNG"), MAX_PIXELS), ThumbnailSize.LARGE)
    assert (large.mode, large.size) == ("RGBA", (800, 400))
    assert close_to(large.getpixel((200, 200)), (255, 0, 0, 255))
    assert close_to(large.getpixel((396, 200))[:3], (255, 0, 0), tolerance=30)
    assert large.getpixel((600, 200))[3] == 0


def test_16_bit_rgb_png_is_scaled_to_8_bits() -> None:
    rendition = make_thumbnails(png_16bit_rgb(120, 80, (65535, 32896, 0)), MAX_PIXELS)
    small = decoded(rendition, ThumbnailSize.SMALL).convert("RGB")
    assert close_to(small.getpixel((50, 40)), (255, 128, 0), tolerance=4)


def test_a_bilevel_png_is_rendered_in_greyscale() -> None:
    small = decoded(make_thumbnails(bilevel_png(300, 200), MAX_PIXELS), ThumbnailSize.SMALL)
    assert close_to(small.convert("RGB").getpixel((50, 50)), (0, 0, 0), tolerance=2)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bilevel_png(20_000, 20_000), "too many pixels: at most 100000000"),
        (jpeg_claiming_size(65_000, 65_000), "too many pixels: at most 100000000"),
        (jpeg_claiming_size(12_000, 9_000), "12000x9000 = 108000000 pixels"),
        (NOT_AN_IMAGE, "not an image of an accepted format"),
    ],
    ids=["400-megapixel-png-bomb", "jpeg-claiming-65000x65000", "jpeg-over-limit", "text"],
)
def test_hostile_files_are_refused_before_decoding(data: bytes, reason: str) -> None:
    with pytest.raises(ImagingError, match=reason):
        make_thumbnails(data, MAX_PIXELS)


def average_colour(thumbhash: str) -> tuple[float, float, float]:
    """The average colour a ThumbHash encodes, 0..1 a channel (the reference's decoding)."""
    raw = base64.b64decode(thumbhash)
    header = raw[0] | raw[1] << 8 | raw[2] << 16
    lum = (header & 63) / 63
    p = ((header >> 6) & 63) / 31.5 - 1
    q = ((header >> 12) & 63) / 31.5 - 1
    blue = lum - 2 / 3 * p
    red = (3 * lum - blue + q) / 2
    return red, red - q, blue


@pytest.mark.parametrize("colour", [RED, GREEN, BLUE])
def test_the_placeholder_is_a_thumbhash_of_the_picture(colour: tuple[int, int, int]) -> None:
    rendition = make_thumbnails(encode(Image.new("RGB", (640, 480), colour), "JPEG"), MAX_PIXELS)
    average = average_colour(rendition.placeholder)
    assert all(abs(a - c / 255) < 0.1 for a, c in zip(average, colour, strict=True)), average


def test_a_large_jpeg_with_an_icc_profile_is_converted_after_its_reduced_decode() -> None:
    """The profile is read from the header and applied to the resampled large size."""
    data = encode(
        Image.new("RGB", (2400, 1600), RED),
        "JPEG",
        quality=95,
        icc_profile=swapped_primaries_profile(),
    )
    rendition = make_thumbnails(data, MAX_PIXELS)
    for size in ThumbnailSize:
        assert close_to(decoded(rendition, size).getpixel((50, 50)), GREEN, tolerance=20)
