"""Segments: an expression (tagging/rules.py language), scoped per user.

Expressions over tags alone are answered with roaring-bitmap algebra (tagging/bitmaps.py): per-tag bitmaps of
contact ids, intersected with the guide's own customers for guides. An AND whose other conditions read
profile facts or events evaluates its tag part as a bitmap and the rest in SQL restricted to those ids when
the bitmap is small; everything else compiles to one SQL query. SQL counting uses the tag index (``ContactTagIndex``, GIN over int[]). When the expression can only match
contacts that have tags, the query scans the index alone; otherwise it starts from contacts and joins only
the tables the expression reads (facts, tag index). Guides are limited to customers they actively follow.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from pyroaring import BitMap, FrozenBitMap

from accounts.models import User
from scrm.clock import now
from scrm.errors import ApplicationError
from tagging import bitmaps, rules
from tagging.models import SegmentWatch, Tag

SQL_RESTRICT_MAX = 50_000  # a tag part this small restricts the SQL of the other conditions to its ids


@dataclass(frozen=True)
class SegmentQuery:
    from_sql: str
    where_sql: str
    params: list
    id_col: str


def expression_parse(expression: Any, *, check_tags: bool = True) -> Any:
    """Parse and check tag ids; raises ApplicationError (400) with the path of the bad node.

    ``check_tags=False`` leaves the tag check to the caller (the bitmap path checks in its one query)."""
    try:
        node = rules.parse_rule(expression)
    except rules.RuleError as exc:
        raise ApplicationError(exc.message, {"path": exc.path}) from exc
    if check_tags:
        ids = rules.referenced_tag_ids(node)
        unknown = sorted(ids - set(Tag.objects.filter(pk__in=ids).values_list("pk", flat=True)))
        if unknown:
            raise bitmaps.unknown_tags_error(unknown)
    return node


def _parse_for_bitmaps(expression: Any) -> Any:
    """Parse; a tag-only expression has its tag ids checked by the bitmap read itself (one round trip)."""
    node = expression_parse(expression, check_tags=False)
    if not bitmaps.is_tag_only(node):
        expression_parse(expression)
    return node


def segment_query(*, node: Any, user: User | None, at: datetime | None = None, corp_id: int | None = None
                  ) -> SegmentQuery:
    at = at or now()
    probe = rules.to_sql(node, now=at)
    index_only = probe.aliases <= {"ti"} and corp_id is None and rules.matches_nothing_without_tags(node, at)
    if index_only:
        id_col = "ti.contact_id"
        compiled = rules.to_sql(node, now=at, id_col=id_col)
        from_sql = "tagging_contacttagindex ti"
    else:
        id_col = "c.id"
        compiled = probe
        from_sql = "contacts_contact c"
        if "ti" in compiled.aliases:
            from_sql += " LEFT JOIN tagging_contacttagindex ti ON ti.contact_id = c.id"
        if "f" in compiled.aliases:
            from_sql += " LEFT JOIN contacts_contactfacts f ON f.contact_id = c.id"
    where = [compiled.sql]
    params = list(compiled.params)
    if corp_id is not None and id_col == "c.id":
        where.append("c.corp_id = %s")
        params.append(corp_id)
    if user is not None and user.is_guide:
        where.append(f"EXISTS (SELECT 1 FROM contacts_followrelation r WHERE r.contact_id = {id_col} "  # noqa: S608
                     "AND r.staff_id = %s AND r.is_active)")
        params.append(user.staff_id or 0)
    return SegmentQuery(from_sql, " AND ".join(where), params, id_col)


def _staff_scope_id(user: User | None) -> int | None:
    if user is not None and user.is_guide:
        return user.staff_id or 0
    return None


def segment_bitmap(*, node: Any, user: User | None) -> FrozenBitMap | None:
    """Members as a bitmap when bitmaps can answer (alone, or with SQL for the non-tag part), else None."""
    staff_id = _staff_scope_id(user)
    whole = bitmaps.expression_bitmap(node, staff_id=staff_id)
    if whole is not None or not isinstance(node, rules.And):
        return whole
    tag_part = [c for c in node.children if bitmaps.is_tag_only(c)]
    rest = [c for c in node.children if not bitmaps.is_tag_only(c)]
    if not tag_part:
        return None
    candidates = bitmaps.expression_bitmap(
        tag_part[0] if len(tag_part) == 1 else rules.And(tuple(tag_part)), staff_id=staff_id)
    if candidates is None or len(candidates) > SQL_RESTRICT_MAX:
        return None
    if not candidates:
        return candidates
    compiled = rules.to_sql(rest[0] if len(rest) == 1 else rules.And(tuple(rest)), now=now())
    joins = ""
    if "ti" in compiled.aliases:
        joins += " LEFT JOIN tagging_contacttagindex ti ON ti.contact_id = c.id"
    if "f" in compiled.aliases:
        joins += " LEFT JOIN contacts_contactfacts f ON f.contact_id = c.id"
    with connection.cursor() as cur:
        cur.execute(f"SELECT c.id FROM contacts_contact c{joins} WHERE c.id = ANY(%s) AND {compiled.sql}",  # noqa: S608
                    [list(candidates), *compiled.params])
        return FrozenBitMap(r[0] for r in cur.fetchall())


def segment_count(*, user: User, expression: Any) -> int:
    node = _parse_for_bitmaps(expression)
    members = segment_bitmap(node=node, user=user)
    if members is not None:
        return len(members)
    q = segment_query(node=node, user=user)
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {q.from_sql} WHERE {q.where_sql}", q.params)  # noqa: S608
        return cur.fetchone()[0]


def segment_member_ids(*, user: User | None, expression: Any, batch: int = 10_000, after: int = 0
                       ) -> Iterator[int]:
    """Stream member contact ids in ascending id order, keyset-paged (for broadcasts and journeys)."""
    node = _parse_for_bitmaps(expression)
    members = segment_bitmap(node=node, user=user)
    if members is not None:
        yield from (members.iter_equal_or_larger(after + 1) if after else members)
        return
    q = segment_query(node=node, user=user)
    last = after
    while True:
        with connection.cursor() as cur:
            cur.execute(f"SELECT {q.id_col} FROM {q.from_sql} WHERE {q.where_sql} AND {q.id_col} > %s "  # noqa: S608
                        f"ORDER BY {q.id_col} LIMIT %s", [*q.params, last, batch])
            ids = [row[0] for row in cur.fetchall()]
        yield from ids
        if len(ids) < batch:
            return
        last = ids[-1]


def segment_page(*, user: User, expression: Any, limit: int = 50, before: int | None = None) -> list[int]:
    """Newest members first (the preview list): ids only; the caller loads contacts through a selector."""
    node = _parse_for_bitmaps(expression)
    members = segment_bitmap(node=node, user=user)
    if members is not None:
        if before:
            rank = members.rank(before - 1)  # members ≤ before - 1
            return [members[i] for i in range(rank - 1, max(rank - 1 - limit, -1), -1)]
        return [members[i] for i in range(len(members) - 1, max(len(members) - 1 - limit, -1), -1)]
    q = segment_query(node=node, user=user)
    extra, params = "", list(q.params)
    if before:
        extra, params = f" AND {q.id_col} < %s", [*params, before]
    with connection.cursor() as cur:
        cur.execute(f"SELECT {q.id_col} FROM {q.from_sql} WHERE {q.where_sql}{extra} "  # noqa: S608
                    f"ORDER BY {q.id_col} DESC LIMIT %s", [*params, limit])
        return [row[0] for row in cur.fetchall()]


def segment_export_rows(*, user: User, expression: Any) -> Iterator[list[str]]:
    """CSV rows (header first) of every member: id, external userid, name, tags."""
    from contacts.models import Contact

    yield ["id", "external_userid", "name", "tags"]
    names = dict(Tag.objects.values_list("pk", "name"))
    chunk: list[int] = []

    def flush(ids: list[int]) -> Iterator[list[str]]:
        rows = Contact.objects.filter(pk__in=ids).values_list("pk", "external_userid", "name", "tag_index__tag_ids")
        for pk, ext, name, tag_ids in sorted(rows):
            yield [str(pk), ext, _csv_safe(name), "|".join(names.get(t, "") for t in (tag_ids or []))]

    for contact_id in segment_member_ids(user=user, expression=expression, batch=5000):
        chunk.append(contact_id)
        if len(chunk) == 2000:
            yield from flush(chunk)
            chunk = []
    if chunk:
        yield from flush(chunk)


def _csv_safe(text: str) -> str:
    """Spreadsheet formula injection guard: a leading = + - @ is neutralised."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def segment_entrants(*, key: str, expression: Any, include_existing: bool, at: datetime | None = None) -> list[int]:
    """Contacts who entered the segment since this watcher (``key``) last looked, and remember who is in it now.

    Run it inside the transaction that acts on the entrants: the watch row stays locked until that transaction
    ends, so two sweeps never hand out the same entrants and a failed action hands them out again. The first look
    returns everyone in the segment when ``include_existing`` and nobody otherwise (it only sets the baseline).
    Someone who leaves and comes back is an entrant again.
    """
    members = segment_bitmap(node=_parse_for_bitmaps(expression), user=None)
    current = BitMap(members) if members is not None else BitMap(segment_member_ids(user=None,
                                                                                   expression=expression))
    watch, created = SegmentWatch.objects.select_for_update().get_or_create(key=key)
    if created or watch.taken_at is None:
        entered = current if include_existing else BitMap()
    else:
        entered = current - BitMap.deserialize(bytes(watch.members))
    watch.members = current.serialize()
    watch.taken_at = at or now()
    watch.save(update_fields=["members", "taken_at"])
    return list(entered)

