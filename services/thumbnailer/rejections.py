"""The permanent image failures of the thumbnailer: every one an ImageRejected, which the
failure classification maps to a photo that fails at once, without retries."""

from __future__ import annotations

from services.core.imageinfo import ImageRejected


class ImagingError(ImageRejected):
    """The original can never give thumbnails (corrupt, not an image, too many pixels).

    A subclass of ImageRejected, so that one `except ImageRejected` covers both the upload
    service's header check and this full decode."""


class TimeLimitExceeded(ImagingError):
    """The image took longer than a worker's time limit: a hostile or pathological file."""

    @classmethod
    def after(cls, limit_s: float) -> TimeLimitExceeded:
        return cls(f"processing the image took longer than the limit of {limit_s:g} s")


class MemoryLimitExceeded(ImagingError):
    """Processing the image needed more memory than a worker may use."""

    @classmethod
    def beyond(cls, limit_mb: int) -> MemoryLimitExceeded:
        return cls(f"processing the image needed more memory than the limit of {limit_mb} MB")


class TooManyBytes(ImagingError):
    @classmethod
    def beyond(cls, size: int, limit: int) -> TooManyBytes:
        return cls(f"the original is {size} bytes; at most {limit} are accepted")
