"""Pagination shared by every listing: the two page shapes of the two API families and their bounds.

- Registry API (camelCase): ``skip``/``take`` -> ``{items, total, skip, take}``.
- Datasets API (snake_case): ``limit``/``offset`` -> ``{total, returned, limit, offset, next_offset, prev_offset,
  items}``.

Offsets are bounded by :data:`MAX_OFFSET` so that no database is asked for an offset it cannot represent.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

MAX_OFFSET = 2**31 - 1

Item = TypeVar("Item")


class SkipTakePage(BaseModel, Generic[Item]):
    """A page of a Registry API listing."""

    items: list[Item]
    total: int
    skip: int
    take: int


class OffsetPage(BaseModel, Generic[Item]):
    """A page of a Datasets API listing, with the offsets of the neighbouring pages (None where there is none)."""

    total: int
    returned: int
    limit: int
    offset: int
    next_offset: int | None
    prev_offset: int | None
    items: list[Item]

    @classmethod
    def of(cls, items: list, *, total: int, limit: int, offset: int) -> OffsetPage:
        """The page holding ``items`` at ``offset`` of ``total``."""
        return cls(total=total, returned=len(items), limit=limit, offset=offset,
                   next_offset=offset + limit if offset + limit < total else None,
                   prev_offset=max(0, offset - limit) if offset > 0 else None, items=items)
