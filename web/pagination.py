"""Keyset (seek) pagination for HTML lists: newest first by id, no OFFSET, constant cost at any depth.

A page is addressed by a cursor: ``after=<id>`` is the page of rows older than that id (the next page),
``before=<id>`` the page of rows newer than it (the previous page). Like DRF's CursorPagination, the way
back is assumed to exist when we arrived through a cursor, which saves a query per page.
"""

from dataclasses import dataclass

from django.db.models import QuerySet

PAGE_SIZE = 50


@dataclass(frozen=True)
class KeysetPage:
    items: list
    next_after: int | None  # cursor of the next (older) page
    prev_before: int | None  # cursor of the previous (newer) page
    is_first: bool

    @property
    def has_other_pages(self) -> bool:
        return not self.is_first or self.next_after is not None


def keyset_page(queryset: QuerySet, *, after: int | None = None, before: int | None = None,
                size: int = PAGE_SIZE) -> KeysetPage:
    if before is not None:
        rows = list(queryset.filter(pk__gt=before).order_by("pk")[: size + 1])
        if rows:
            newer_exist = len(rows) > size
            rows = rows[:size][::-1]
            return KeysetPage(items=rows, next_after=rows[-1].pk, prev_before=rows[0].pk if newer_exist else None,
                              is_first=not newer_exist)
        after = None  # nothing is newer than the cursor: show the first page
    rows = queryset.order_by("-pk")
    if after is not None:
        rows = rows.filter(pk__lt=after)
    rows = list(rows[: size + 1])
    older_exist = len(rows) > size
    rows = rows[:size]
    return KeysetPage(
        items=rows,
        next_after=rows[-1].pk if older_exist else None,
        prev_before=rows[0].pk if after is not None and rows else None,
        is_first=after is None,
    )
