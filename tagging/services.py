"""Writes for tag groups, tags and tag assignments.

Assignments are idempotent (unique (contact, tag) + ``ON CONFLICT DO NOTHING``) and every write keeps
``ContactTagIndex`` and the per-tag roaring bitmaps (``TagBitmap``, tagging/bitmaps.py) in step in the same
transaction: the index rows of the touched contacts are locked first
(ordered by contact id, so concurrent writers never deadlock), then ContactTag changes, then the sorted tag
arrays are recomputed from ContactTag. Tags that live in WeCom too are pushed to WeCom after commit
(``contact_wecom_tags_push`` on the wecom queue); a failed push never undoes the local assignment.
"""

import logging
from collections.abc import Iterable
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Max

from scrm.clock import now
from scrm.errors import ApplicationError
from tagging.bitmaps import tag_bitmaps_apply, tag_bitmaps_rebuild
from tagging.models import ContactTag, Dimension, SyncStatus, Tag, TagGroup

logger = logging.getLogger(__name__)

WECOM_CORP_TAG_LIMIT = 3000
TAG_NAME_MAX = 30
INDEX_BATCH = 5000


# --- the tag index -------------------------------------------------------------------------------------------------
def _index_lock(contact_ids: list[int]) -> None:
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO tagging_contacttagindex (contact_id, tag_ids) SELECT id, '{}' FROM unnest(%s::bigint[]) "
            "AS id ORDER BY id ON CONFLICT (contact_id) DO NOTHING", [contact_ids])
        cur.execute("SELECT 1 FROM tagging_contacttagindex WHERE contact_id = ANY(%s::bigint[]) "
                    "ORDER BY contact_id FOR UPDATE", [contact_ids])


def _index_rewrite(contact_ids: list[int]) -> None:
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE tagging_contacttagindex ti SET tag_ids = COALESCE((SELECT array_agg(ct.tag_id::int ORDER BY "
            "ct.tag_id) FROM tagging_contacttag ct WHERE ct.contact_id = ti.contact_id), '{}') "
            "WHERE ti.contact_id = ANY(%s::bigint[])", [contact_ids])


def _index_add(pairs: list[tuple[int, int]]) -> None:
    """Add the (contact, tag) pairs just inserted to the locked index rows (intarray union keeps them sorted)."""
    _index_delta(pairs, "|")


def _index_drop(pairs: list[tuple[int, int]]) -> None:
    _index_delta(pairs, "-")


def _index_delta(pairs: list[tuple[int, int]], op: str) -> None:
    by_tag: dict[int, list[int]] = {}
    for contact_id, tag_id in pairs:
        by_tag.setdefault(tag_id, []).append(contact_id)
    with connection.cursor() as cur:
        for tag_id, contacts in sorted(by_tag.items()):
            cur.execute(f"UPDATE tagging_contacttagindex SET tag_ids = tag_ids {op} %s::int[] "  # noqa: S608 - op is | or -
                        "WHERE contact_id = ANY(%s::bigint[])", [[tag_id], sorted(contacts)])


def tag_index_rebuild(*, contact_ids: Iterable[int] | None = None) -> None:
    """Recompute index rows from ContactTag (all contacts when ``contact_ids`` is None). Support tool."""
    if contact_ids is None:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("DELETE FROM tagging_contacttagindex")
            cur.execute("INSERT INTO tagging_contacttagindex (contact_id, tag_ids) SELECT contact_id, "
                        "array_agg(tag_id::int ORDER BY tag_id) FROM tagging_contacttag GROUP BY contact_id")
        tag_bitmaps_rebuild()
        return
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), INDEX_BATCH):
        with transaction.atomic():
            _index_lock(ids[start:start + INDEX_BATCH])
            _index_rewrite(ids[start:start + INDEX_BATCH])


# --- assignments ---------------------------------------------------------------------------------------------------
def tags_apply(*, contact_ids: Iterable[int], tag_ids: Iterable[int], source: str, source_ref: str = "",
               set_by=None, expires_at: datetime | None = None, push_to_wecom: bool = True) -> int:
    """Put every tag on every contact; existing assignments keep their original provenance.

    Returns how many assignments were created.
    """
    contact_ids = sorted(set(contact_ids))
    tag_ids = sorted(set(tag_ids))
    if not contact_ids or not tag_ids:
        return 0
    created = 0
    for start in range(0, len(contact_ids), INDEX_BATCH):
        batch = contact_ids[start:start + INDEX_BATCH]
        with transaction.atomic():
            _index_lock(batch)
            with connection.cursor() as cur:
                cur.execute(
                    "INSERT INTO tagging_contacttag (contact_id, tag_id, source, source_ref, set_by_id, created_at, "
                    "expires_at) SELECT c, t, %s, %s, %s, %s, %s FROM unnest(%s::bigint[]) c, unnest(%s::bigint[]) t "
                    "ON CONFLICT (contact_id, tag_id) DO NOTHING RETURNING contact_id, tag_id",
                    [source, source_ref[:64], getattr(set_by, "pk", set_by), now(), expires_at, batch, tag_ids])
                pairs = cur.fetchall()
            rows = [p[0] for p in pairs]
            changed = sorted(set(rows))
            if changed:
                _index_add(pairs)
                tag_bitmaps_apply(added=pairs)
            created += len(rows)
            _push_after_commit(changed, tag_ids, source, push_to_wecom)
            _announce_after_commit(pairs, added=True)
    return created


def tags_remove(*, contact_ids: Iterable[int], tag_ids: Iterable[int], source: str | None = None,
                source_ref: str | None = None, push_to_wecom: bool = True) -> int:
    """Remove assignments; with ``source`` (and ``source_ref``) only those that source set."""
    contact_ids = sorted(set(contact_ids))
    tag_ids = sorted(set(tag_ids))
    if not contact_ids or not tag_ids:
        return 0
    removed = 0
    for start in range(0, len(contact_ids), INDEX_BATCH):
        batch = contact_ids[start:start + INDEX_BATCH]
        with transaction.atomic():
            _index_lock(batch)
            sql = "DELETE FROM tagging_contacttag WHERE contact_id = ANY(%s::bigint[]) AND tag_id = ANY(%s::bigint[])"
            params: list = [batch, tag_ids]
            if source is not None:
                sql += " AND source = %s"
                params.append(source)
            if source_ref is not None:
                sql += " AND source_ref = %s"
                params.append(source_ref)
            with connection.cursor() as cur:
                cur.execute(sql + " RETURNING contact_id, tag_id", params)
                pairs = cur.fetchall()
            rows = [p[0] for p in pairs]
            changed = sorted(set(rows))
            if changed:
                _index_drop(pairs)
                tag_bitmaps_apply(removed=pairs)
            removed += len(rows)
            _push_after_commit(changed, tag_ids, source or "", push_to_wecom)
            _announce_after_commit(pairs, added=False)
    return removed


def _announce_after_commit(pairs: list[tuple[int, int]], *, added: bool) -> None:
    """Tell the features that react to tag changes (journey triggers) which assignments really changed."""
    if not pairs:
        return
    by_tag: dict[int, list[int]] = {}
    for contact_id, tag_id in pairs:
        by_tag.setdefault(tag_id, []).append(contact_id)

    def announce() -> None:
        from contacts import fanout

        for tag_id, contact_ids in by_tag.items():
            fanout.tags_changed(contact_ids=contact_ids, tag_ids=[tag_id], added=added)

    transaction.on_commit(announce)


def _push_after_commit(contact_ids: list[int], tag_ids: list[int], source: str, push: bool) -> None:
    """Contacts whose synced tags changed get a mark_tag push after commit (not for WeCom's own changes)."""
    if not push or not contact_ids or source == ContactTag.Source.WECOM:
        return
    if not Tag.objects.filter(pk__in=tag_ids, sync_to_wecom=True).exclude(wecom_tag_id="").exists():
        return
    from tagging.tasks import contact_wecom_tags_push

    for contact_id in contact_ids:
        transaction.on_commit(lambda cid=contact_id: contact_wecom_tags_push.delay(cid))


def contact_tags_set(*, contact_id: int, tag_ids: Iterable[int], user=None) -> dict:
    """Make a contact's manually settable tags exactly ``tag_ids`` (the profile page's editor)."""
    wanted = set(tag_ids)
    _check_tags_exist(wanted)
    have = set(ContactTag.objects.filter(contact_id=contact_id).values_list("tag_id", flat=True))
    added = tags_apply(contact_ids=[contact_id], tag_ids=wanted - have, source=ContactTag.Source.MANUAL, set_by=user)
    removed = tags_remove(contact_ids=[contact_id], tag_ids=have - wanted)
    return {"added": added, "removed": removed}


def _check_tags_exist(tag_ids: set[int]) -> None:
    known = set(Tag.objects.filter(pk__in=tag_ids).values_list("pk", flat=True))
    unknown = sorted(tag_ids - known)
    if unknown:
        raise ApplicationError(f"Unknown tag ids: {', '.join(map(str, unknown))}", {"unknown_tag_ids": unknown})


def tags_check_exist(*, tag_ids: Iterable[int]) -> None:
    _check_tags_exist(set(tag_ids))


def contact_tags_expire_due(*, at: datetime | None = None, limit: int = 50_000) -> int:
    """Remove assignments whose expiry has passed (the beat sweeper). Returns how many were removed."""
    at = at or now()
    due = list(ContactTag.objects.filter(expires_at__lte=at).order_by("expires_at")
               .values_list("contact_id", "tag_id")[:limit])
    removed = 0
    by_tag: dict[int, list[int]] = {}
    for contact_id, tag_id in due:
        by_tag.setdefault(tag_id, []).append(contact_id)
    for tag_id, contacts in by_tag.items():
        with transaction.atomic():
            _index_lock(sorted(set(contacts)))
            with connection.cursor() as cur:
                cur.execute("DELETE FROM tagging_contacttag WHERE tag_id = %s AND contact_id = ANY(%s::bigint[]) "
                            "AND expires_at <= %s RETURNING contact_id", [tag_id, contacts, at])
                changed = sorted({r[0] for r in cur.fetchall()})
            if changed:
                _index_drop([(c, tag_id) for c in changed])
                tag_bitmaps_apply(removed=[(c, tag_id) for c in changed])
            removed += len(changed)
            _push_after_commit(changed, [tag_id], "expiry", True)
    if removed:
        logger.info("expired tag assignments removed=%s", removed)
    return removed


# --- groups and tags -----------------------------------------------------------------------------------------------
def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A name is required.")
    if len(name) > TAG_NAME_MAX:
        raise ApplicationError(f"Names are at most {TAG_NAME_MAX} characters (WeCom's limit).")
    return name


def tag_group_create(*, corp, dimension: str, name: str, order: int | None = None) -> TagGroup:
    name = _check_name(name)
    if dimension not in Dimension.values:
        raise ApplicationError(f"Unknown dimension {dimension!r}.")
    if TagGroup.objects.filter(corp=corp, dimension=dimension, name=name).exists():
        raise ApplicationError("A group with this name already exists in this dimension.")
    if order is None:
        order = (TagGroup.objects.filter(corp=corp, dimension=dimension).aggregate(m=Max("order"))["m"] or 0) + 1
    return TagGroup.objects.create(corp=corp, dimension=dimension, name=name, order=order)


def tag_group_update(*, group: TagGroup, name: str | None = None, order: int | None = None,
                     dimension: str | None = None) -> TagGroup:
    if name is not None:
        name = _check_name(name)
        if TagGroup.objects.filter(corp=group.corp, dimension=dimension or group.dimension, name=name) \
                .exclude(pk=group.pk).exists():
            raise ApplicationError("A group with this name already exists in this dimension.")
        group.name = name
    if order is not None:
        group.order = order
    if dimension is not None:
        if dimension not in Dimension.values:
            raise ApplicationError(f"Unknown dimension {dimension!r}.")
        group.dimension = dimension
    group.save()
    return group


def synced_tag_count(*, corp) -> int:
    return Tag.objects.filter(group__corp=corp).exclude(wecom_tag_id="").count() + Tag.objects.filter(
        group__corp=corp, sync_to_wecom=True, wecom_tag_id="").count()


def tag_create(*, group: TagGroup, name: str, color: str = "", sync_to_wecom: bool = False,
               order: int | None = None) -> Tag:
    name = _check_name(name)
    if Tag.objects.filter(group=group, name=name).exists():
        raise ApplicationError("A tag with this name already exists in this group.")
    if sync_to_wecom and synced_tag_count(corp=group.corp) >= WECOM_CORP_TAG_LIMIT:
        raise ApplicationError(
            f"WeCom allows at most {WECOM_CORP_TAG_LIMIT} corp tags; this tag can only be ours alone "
            "(turn off “sync to WeCom”) until some synced tags are deleted.",
            {"limit": WECOM_CORP_TAG_LIMIT})
    if order is None:
        order = (Tag.objects.filter(group=group).aggregate(m=Max("order"))["m"] or 0) + 1
    tag = Tag.objects.create(group=group, name=name, color=_color(color), order=order, sync_to_wecom=sync_to_wecom,
                             sync_status=SyncStatus.PENDING if sync_to_wecom else SyncStatus.LOCAL)
    if sync_to_wecom:
        _enqueue_tag_push(tag.pk)
    return tag


def _color(color: str) -> str:
    color = (color or "#2f6fde").strip()
    if len(color) != 7 or color[0] != "#" or any(ch not in "0123456789abcdefABCDEF" for ch in color[1:]):
        raise ApplicationError("A color is written #rrggbb.")
    return color.lower()


def _enqueue_tag_push(tag_id: int) -> None:
    from tagging.tasks import tag_push_to_wecom

    transaction.on_commit(lambda: tag_push_to_wecom.delay(tag_id))


def tag_update(*, tag: Tag, name: str | None = None, color: str | None = None, order: int | None = None,
               sync_to_wecom: bool | None = None) -> Tag:
    wecom_change = False
    if name is not None:
        name = _check_name(name)
        if Tag.objects.filter(group=tag.group, name=name).exclude(pk=tag.pk).exists():
            raise ApplicationError("A tag with this name already exists in this group.")
        wecom_change |= name != tag.name
        tag.name = name
    if color is not None:
        tag.color = _color(color)
    if order is not None:
        wecom_change |= order != tag.order
        tag.order = order
    if sync_to_wecom is not None and sync_to_wecom != tag.sync_to_wecom:
        if sync_to_wecom and not tag.wecom_tag_id and synced_tag_count(corp=tag.group.corp) >= WECOM_CORP_TAG_LIMIT:
            raise ApplicationError(f"WeCom allows at most {WECOM_CORP_TAG_LIMIT} corp tags.")
        if not sync_to_wecom and tag.wecom_tag_id:
            raise ApplicationError("A tag that exists in WeCom stays synced; delete it to remove it from WeCom.")
        tag.sync_to_wecom = sync_to_wecom
        wecom_change = True
    if tag.sync_to_wecom and wecom_change:
        tag.sync_status = SyncStatus.PENDING
        tag.sync_error = ""
    tag.save()
    if tag.sync_to_wecom and wecom_change:
        _enqueue_tag_push(tag.pk)
    return tag


def tags_reorder(*, group: TagGroup, tag_ids: list[int]) -> None:
    """Give the group's tags the order of ``tag_ids`` (first = 1)."""
    tags = {t.pk: t for t in group.tags.all()}
    unknown = [i for i in tag_ids if i not in tags]
    if unknown:
        raise ApplicationError("Some tags are not in this group.", {"unknown_tag_ids": unknown})
    for position, tag_id in enumerate(tag_ids, start=1):
        if tags[tag_id].order != position:
            tag_update(tag=tags[tag_id], order=position)


def tag_merge(*, source: Tag, target: Tag) -> int:
    """Move every assignment of ``source`` to ``target`` and delete ``source``; returns contacts moved."""
    if source.pk == target.pk:
        raise ApplicationError("A tag cannot be merged into itself.")
    if source.group.corp_id != target.group.corp_id:
        raise ApplicationError("Tags of different corps cannot be merged.")
    moved = 0
    contact_ids = list(ContactTag.objects.filter(tag=source).values_list("contact_id", flat=True))
    for start in range(0, len(contact_ids), INDEX_BATCH):
        batch = sorted(contact_ids[start:start + INDEX_BATCH])
        with transaction.atomic():
            _index_lock(batch)
            with connection.cursor() as cur:
                cur.execute(
                    "INSERT INTO tagging_contacttag (contact_id, tag_id, source, source_ref, set_by_id, created_at, "
                    "expires_at) SELECT contact_id, %s, source, source_ref, set_by_id, created_at, expires_at "
                    "FROM tagging_contacttag WHERE tag_id = %s AND contact_id = ANY(%s::bigint[]) "
                    "ON CONFLICT (contact_id, tag_id) DO NOTHING RETURNING contact_id", [target.pk, source.pk, batch])
                added = [(r[0], target.pk) for r in cur.fetchall()]
                cur.execute("DELETE FROM tagging_contacttag WHERE tag_id = %s AND contact_id = ANY(%s::bigint[]) "
                            "RETURNING contact_id", [source.pk, batch])
                removed = [(r[0], source.pk) for r in cur.fetchall()]
            _index_rewrite(batch)
            tag_bitmaps_apply(added=added, removed=removed)
            _push_after_commit(batch, [source.pk, target.pk], "merge", True)
        moved += len(batch)
    tag_delete(tag=source)
    return moved


def tag_delete(*, tag: Tag) -> None:
    """Delete a tag and its assignments (and the WeCom corp tag, after commit)."""
    contact_ids = sorted(ContactTag.objects.filter(tag=tag).values_list("contact_id", flat=True))
    wecom_tag_id = tag.wecom_tag_id
    with transaction.atomic():
        for start in range(0, len(contact_ids), INDEX_BATCH):
            _index_lock(contact_ids[start:start + INDEX_BATCH])
        tag.delete()
        for start in range(0, len(contact_ids), INDEX_BATCH):
            _index_rewrite(contact_ids[start:start + INDEX_BATCH])
        if wecom_tag_id:
            from tagging.tasks import corp_tag_delete_in_wecom

            transaction.on_commit(lambda: corp_tag_delete_in_wecom.delay(wecom_tag_id))
