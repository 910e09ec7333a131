"""Reads for tagging, scoped per user: guides count and see only the customers they actively follow."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import QuerySet

from accounts.models import User
from contacts import selectors as contact_selectors
from contacts.models import ContactEvent, ContactFacts, FollowRelation
from scrm.clock import now
from tagging.models import ContactTag, Dimension, Tag, TagGroup
from tagging.rules import ATTRS
from tagging.rules import ContactFacts as RuleFacts

EVENT_HORIZON_DAYS = 3650


def tag_groups_list(*, corp_id: int | None = None) -> QuerySet[TagGroup]:
    qs = TagGroup.objects.all()
    if corp_id is not None:
        qs = qs.filter(corp_id=corp_id)
    return qs.order_by("dimension", "order", "id")


def tags_list(*, corp_id: int | None = None) -> QuerySet[Tag]:
    qs = Tag.objects.select_related("group")
    if corp_id is not None:
        qs = qs.filter(group__corp_id=corp_id)
    return qs.order_by("group__dimension", "group__order", "group_id", "order", "id")


def tag_counts(*, user: User, tag_ids: list[int] | None = None) -> dict[int, int]:
    """Live customer count per tag, from the tag bitmaps (guides: intersected with their own customers)."""
    from tagging import bitmaps

    if not user.is_guide:
        return bitmaps.tag_cardinalities(tag_ids)
    # A guide follows a few thousand customers: count their tags from the per-contact tag index rather than
    # loading every tag's bitmap.
    scope = bitmaps.staff_scope(user.staff_id or 0)
    sql = ("SELECT t, count(*) FROM tagging_contacttagindex ti, unnest(ti.tag_ids) t "
           "WHERE ti.contact_id = ANY(%s::bigint[])")
    params: list = [list(scope)]
    if tag_ids is not None:
        sql += " AND t = ANY(%s::int[])"
        params.append(list(tag_ids))
    with connection.cursor() as cur:
        cur.execute(sql + " GROUP BY t", params)
        return dict(cur.fetchall())


@dataclass(frozen=True)
class DimensionColumn:
    dimension: str
    label: str
    groups: list  # [(TagGroup, [(Tag, count)])]


def tag_board(*, user: User) -> list[DimensionColumn]:
    """The tag management page: five columns, one per dimension, groups and tags with live counts."""
    counts = tag_counts(user=user)
    groups = list(tag_groups_list())
    tags_by_group: dict[int, list] = {}
    for tag in Tag.objects.order_by("order", "id"):
        tags_by_group.setdefault(tag.group_id, []).append((tag, counts.get(tag.pk, 0)))
    columns = []
    for value, label in Dimension.choices:
        columns.append(DimensionColumn(value, label, [(g, tags_by_group.get(g.pk, [])) for g in groups
                                                      if g.dimension == value]))
    return columns


@dataclass(frozen=True)
class PortraitTag:
    tag: Tag
    link: ContactTag


def contact_portrait(*, user: User, contact_id: int) -> tuple:
    """The five-dimension portrait of one contact the user may see: (contact, {dimension: [ContactTag]}, facts)."""
    contact = contact_selectors.contact_get_for_user(user=user, contact_id=contact_id)
    links = (ContactTag.objects.filter(contact=contact).select_related("tag__group", "set_by")
             .order_by("tag__group__order", "tag__order"))
    by_dim: dict[str, list[ContactTag]] = {d: [] for d in Dimension.values}
    for link in links:
        by_dim[link.tag.group.dimension].append(link)
    facts = ContactFacts.objects.filter(contact=contact).first()
    return contact, [(value, label, by_dim[value]) for value, label in Dimension.choices], facts


def contact_facts_get(*, contact_id: int, at: datetime | None = None) -> RuleFacts:
    """Everything the rule evaluator may read about one contact, as a frozen dataclass."""
    at = at or now()
    values: dict = {}
    facts = ContactFacts.objects.filter(contact_id=contact_id).first()
    from contacts.models import Contact

    contact = Contact.objects.only("gender", "active_relations", "first_added_at", "name").get(pk=contact_id)
    for attr, (_, expr) in ATTRS.items():
        source = facts if "f." in expr else contact if expr.startswith("c.") else None
        if source is not None:
            values[attr] = getattr(source, attr)
    channels = frozenset(FollowRelation.objects.filter(contact_id=contact_id).exclude(state="")
                         .values_list("state", flat=True))
    events = tuple(ContactEvent.objects.filter(contact_id=contact_id,
                                               occurred_at__gte=at - timedelta(days=EVENT_HORIZON_DAYS))
                   .values_list("kind", "occurred_at"))
    tag_ids = frozenset(ContactTag.objects.filter(contact_id=contact_id).values_list("tag_id", flat=True))
    return RuleFacts(now=at, values=values, tag_ids=tag_ids, channels=channels, events=events)


# --- the contact list filtered by tags -------------------------------------------------------------------------------
@dataclass(frozen=True)
class IdPage:
    items: list
    next_after: int | None
    prev_before: int | None
    is_first: bool


def tag_members(*, user: User, tag_id: int):
    """The contact ids carrying ``tag_id`` that ``user`` may see (a bitmap; guides: their own customers)."""
    from tagging import bitmaps, rules

    node = rules.TagCond((tag_id,), "all")
    return bitmaps.expression_bitmap(node, staff_id=(user.staff_id or 0) if user.is_guide else None)


def keyset_page_in(members, queryset: QuerySet, *, after: int | None = None, before: int | None = None,
                   size: int = 50, max_rounds: int = 16) -> IdPage:
    """Newest-first keyset page of ``queryset`` restricted to the ids in the bitmap ``members``.

    Walks the bitmap from the cursor in growing chunks and asks the database only for those ids, so a page
    costs a few small ``id IN (...)`` queries whatever the size of the tag; other filters of ``queryset``
    still apply. ``after``: rows older than that id; ``before``: rows newer than it.
    """
    descending = before is None
    if descending:
        end = members.rank(after - 1) if after else len(members)  # members[0:end] are below the cursor
        start_pos = end
    else:
        start_pos = members.rank(before)  # members[start_pos:] are above the cursor
    found: list = []
    chunk = size * 2
    for _ in range(max_rounds):
        if descending:
            lo = max(0, start_pos - chunk)
            ids = list(members[lo:start_pos])
            start_pos = lo
        else:
            hi = min(len(members), start_pos + chunk)
            ids = list(members[start_pos:hi])
            start_pos = hi
        if not ids:
            break
        order = "-pk" if descending else "pk"
        found.extend(queryset.filter(pk__in=ids).order_by(order)[: size + 1 - len(found)])
        if len(found) > size or (start_pos == 0 if descending else start_pos >= len(members)):
            break
        chunk = min(chunk * 4, 20_000)
    more = len(found) > size
    rows = found[:size]
    if not descending:
        if not rows:
            return keyset_page_in(members, queryset, size=size, max_rounds=max_rounds)
        rows = rows[::-1]
        return IdPage(rows, rows[-1].pk, rows[0].pk if more else None, not more)
    if more:
        next_after = rows[-1].pk
    else:  # stopped after max_rounds with ids left below: continue from the last id looked at
        next_after = members[start_pos] if start_pos > 0 else None
    return IdPage(rows, next_after, rows[0].pk if after and rows else None, after is None)


def tag_choices() -> list[tuple[str, list[tuple[int, str]]]]:
    """Tags for a filter select, grouped "dimension · group"."""
    labels = dict(Dimension.choices)
    grouped: dict[str, list[tuple[int, str]]] = {}
    for tag in tags_list():
        key = f"{labels.get(tag.group.dimension, tag.group.dimension)} · {tag.group.name}"
        grouped.setdefault(key, []).append((tag.pk, tag.name))
    return list(grouped.items())


def contact_ids_matching(*, user: User, filters: dict) -> list[int]:
    """Every contact id the contact list shows for ``filters`` (q, staff, customers_only, tag), ascending:
    the "all matching" of a bulk action on the contact list page."""
    qs = contact_selectors.contact_list(
        user=user, search=filters.get("q") or "", staff_userid=filters.get("staff") or "",
        only_customers=bool(filters.get("customers_only"))).prefetch_related(None)
    if not filters.get("tag"):
        return list(qs.order_by("pk").values_list("pk", flat=True))
    members = tag_members(user=user, tag_id=int(filters["tag"]))
    if not (filters.get("q") or filters.get("staff") or filters.get("customers_only")):
        return list(members)
    ids: list[int] = []
    step = 20_000
    for start in range(0, len(members), step):
        chunk = list(members[start:start + step])
        ids.extend(qs.filter(pk__in=chunk).order_by("pk").values_list("pk", flat=True))
    return ids
