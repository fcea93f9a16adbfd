"""JSON Merge Patch (RFC 7396): how ``PATCH /v1/items/{item_id}`` changes an item's metadata."""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` changed by ``patch`` (RFC 7396, section 2), neither modified in place.

    An object patch merges key by key: a key whose value is ``null`` is removed, an object
    value merges recursively, any other value replaces the key's value. A patch that is not
    an object (a string, a list, ``null``...) replaces the whole target.
    """
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged
