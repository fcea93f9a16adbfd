"""Opaque page cursors for keyset pagination (a user's ratings, the catalogue)."""

from __future__ import annotations

import base64
import binascii


def encode_cursor(item_id: str) -> str:
    return base64.urlsafe_b64encode(item_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The item id inside ``cursor``; ``ValueError`` naming the cursor when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        item_id = base64.b64decode(padded.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        item_id = None
    # A NUL cannot be in a stored id (PostgreSQL refuses it in text): not a cursor we made.
    if item_id is None or "\x00" in item_id:
        raise ValueError(
            f"cursor is not a cursor this API returned. Received: cursor={cursor!r}"
        ) from None
    return item_id
