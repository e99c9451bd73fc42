"""A browser's upload, read as it streams in: the multipart/form-data body of
`POST .../items/{item}/photos`, with the fields `caption` (optional) and `photo` (the file).

The photo's bytes are handed on chunk by chunk as they arrive, so the gateway holds one chunk
and the caption at most, whatever the file's size. The caption must come before the photo
(browsers send FormData fields in the order they were appended): the upload service needs it
in the first message, before any bytes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from aiohttp import BodyPartReader, MultipartReader, hdrs, web

from services.core import validation
from services.core.errors import InvalidArgument, TooLarge

PHOTO_FIELD = "photo"
CAPTION_FIELD = "caption"
FORM_TYPE = "multipart/form-data"
CHUNK_BYTES = 64 * 1024
# UTF-8 takes at most 4 bytes a character: a longer field cannot be a valid caption.
MAX_CAPTION_BYTES = validation.MAX_CAPTION_CHARS * 4


@dataclass
class UploadForm:
    caption: str
    photo: BodyPartReader
    rest: MultipartReader  # what follows the photo: must be nothing we would have needed

    @property
    def filename(self) -> str:
        return validation.filename(self.photo.filename or "")

    @property
    def content_type(self) -> str:
        return self.photo.headers.get(hdrs.CONTENT_TYPE, "")

    async def chunks(self, max_bytes: int) -> AsyncIterator[bytes]:
        """The photo's bytes; TooLarge as soon as they pass `max_bytes`."""
        size = 0
        with well_formed():
            while chunk := await self.photo.read_chunk(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
                yield chunk
            await refuse_late_fields(self.rest)


async def read_form(request: web.Request) -> UploadForm:
    """Reads the form up to the start of the photo's bytes."""
    if request.content_type != FORM_TYPE:
        raise InvalidArgument(f"send the photo as {FORM_TYPE} with a `{PHOTO_FIELD}` field")
    with well_formed():
        return await read_up_to_photo(await request.multipart())


async def read_up_to_photo(reader: MultipartReader) -> UploadForm:
    caption = ""
    while (part := await reader.next()) is not None:
        field = form_field(part)
        if field.name == PHOTO_FIELD:
            return UploadForm(validation.caption(caption), field, reader)
        if field.name == CAPTION_FIELD:
            caption = await read_text(field, MAX_CAPTION_BYTES)
        else:
            await field.release()  # a field we do not know: skipped, not kept
    raise InvalidArgument(f"the form has no `{PHOTO_FIELD}` field")


async def refuse_late_fields(reader: MultipartReader) -> None:
    """A caption (or a second photo) after the photo would be silently lost: refused."""
    while (part := await reader.next()) is not None:
        field = form_field(part)
        if field.name in (CAPTION_FIELD, PHOTO_FIELD):
            raise InvalidArgument(
                f"`{field.name}` after `{PHOTO_FIELD}`: send one photo, and the caption first"
            )
        await field.release()


@contextlib.contextmanager
def well_formed() -> Iterator[None]:
    """aiohttp's multipart reader reports a malformed body (no boundary, cut short) as
    ValueError: the client's mistake, so a 400 that says what is wrong."""
    try:
        yield
    except ValueError as exc:
        raise InvalidArgument(f"malformed {FORM_TYPE} body: {exc}") from None


def form_field(part: MultipartReader | BodyPartReader) -> BodyPartReader:
    if not isinstance(part, BodyPartReader):
        raise InvalidArgument("nested multipart bodies are not accepted")
    return part


async def read_text(part: BodyPartReader, max_bytes: int) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        data += chunk
        if len(data) > max_bytes:
            raise InvalidArgument(f"`{part.name}` is longer than {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgument(f"`{part.name}` is not UTF-8 text") from None
