"""Opaque page tokens for ListPhotos: the keyset (created_at, id) of the last photo returned,
tied to the filter it was made for."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from services.core.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class PageCursor:
    created_at: datetime
    photo_id: uuid.UUID
    item_id: str

    def encode(self) -> str:
        data = {"t": self.created_at.isoformat(), "i": str(self.photo_id), "f": self.item_id}
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, item_id: str) -> PageCursor:
        try:
            padded = token + "=" * (-len(token) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded))
            cursor = cls(datetime.fromisoformat(data["t"]), uuid.UUID(data["i"]), data["f"])
        except (binascii.Error, ValueError, KeyError, TypeError):
            raise InvalidArgument("page_token is not one this service issued") from None
        if cursor.item_id != item_id:
            raise InvalidArgument("page_token was issued for another item_id filter")
        return cursor


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument(f"page_size must not be negative, got {requested}")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
