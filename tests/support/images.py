"""Images made by the tests, in memory."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def jpeg(width: int, height: int, orientation: int | None = None, color=(200, 60, 30)) -> bytes:
    """A JPEG with a gradient, optionally with an EXIF orientation tag."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image.paste(color, (0, 0, width // 2, height // 2))
    params: dict[str, object] = {"quality": 85}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        params["exif"] = exif.tobytes()
    return encode(image, "JPEG", **params)


def png(width: int, height: int, mode: str = "RGBA") -> bytes:
    image = Image.new(mode, (width, height), (10, 120, 250, 128) if mode == "RGBA" else None)
    return encode(image, "PNG")


def marked(width: int, height: int, marker=(255, 0, 0), base=(0, 0, 255)) -> Image.Image:
    """A `base` image with a `marker` bar along the left half of its top edge (a fifth of the
    height tall): shows where that corner and that edge end up after a rotation or a flip."""
    image = Image.new("RGB", (width, height), base)
    image.paste(marker, (0, 0, max(1, width // 2), max(1, height // 5)))
    return image


def with_orientation(image: Image.Image, orientation: int) -> bytes:
    """`image` stored so that EXIF `orientation` shows it as it is: the stored pixels are the
    inverse transform of what a viewer does for that orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = image.transpose(_STORED_FOR_ORIENTATION[orientation]) if orientation > 1 else image
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


_T = Image.Transpose
# The inverse of what ImageOps.exif_transpose applies for each orientation.
_STORED_FOR_ORIENTATION = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_90,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_270,
}


def png_claiming_size(width: int, height: int) -> bytes:
    """A PNG whose header claims `width`x`height` but whose pixel data is a 1x1 image's: only
    a decoder that trusts the header before decoding rejects it for its size."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def animated_gif(width: int, height: int, colors: list[tuple[int, int, int]]) -> bytes:
    frames = [Image.new("RGB", (width, height), c) for c in colors]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def swapped_primaries_profile() -> bytes:
    """An ICC v2 RGB matrix/TRC profile whose red and green primaries are sRGB's green and red.

    Linear curves and sRGB's colorants otherwise, so a pixel (255, 0, 0) tagged with it is
    sRGB green: a conversion to sRGB that honours the profile is visible in one pixel."""
    srgb_d50 = {
        b"rXYZ": (0.3851, 0.7169, 0.0971),  # sRGB's green colorant
        b"gXYZ": (0.4361, 0.2225, 0.0139),  # sRGB's red colorant
        b"bXYZ": (0.1431, 0.0606, 0.7141),
        b"wtpt": (0.9642, 1.0, 0.8249),
    }
    tags = {sig: _xyz_tag(*xyz) for sig, xyz in srgb_d50.items()}
    linear = b"curv" + bytes(4) + struct.pack(">I", 0)
    tags.update({b"rTRC": linear, b"gTRC": linear, b"bTRC": linear})
    tags[b"desc"] = _desc_tag("swapped primaries (tests)")
    tags[b"cprt"] = b"text" + bytes(4) + b"public domain\0"
    return _icc_profile(tags)


def _xyz_tag(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(struct.pack(">i", round(v * 65536)) for v in (x, y, z))


def _desc_tag(text: str) -> bytes:
    ascii_text = text.encode() + b"\0"
    return (
        b"desc"
        + bytes(4)
        + struct.pack(">I", len(ascii_text))
        + ascii_text
        + bytes(4 + 4 + 2 + 1 + 67)
    )


def _icc_profile(tags: dict[bytes, bytes]) -> bytes:
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table = struct.pack(">I", len(tags))
    body = b""
    for sig, data in tags.items():
        padded = data + bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += padded
    size = 128 + table_size + len(body)
    header = (
        struct.pack(">I", size)
        + bytes(4)
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(24)
        + struct.pack(">I", 0)
        + _xyz_tag(0.9642, 1.0, 0.8249)[8:]
        + bytes(48)
    )
    assert len(header) == 128, len(header)
    return header + table + body
