"""Thumbnail rendering: sizes, orientation, colour, transparency, metadata and bad input."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageCms

from services.core.imageinfo import ImageRejected
from services.core.photos import ThumbnailSize
from services.thumbnailer.imaging import ImagingError, Rendition, make_thumbnails
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
