"""Images made by the tests, in memory."""

from __future__ import annotations

import io

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
