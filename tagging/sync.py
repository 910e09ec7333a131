"""Two-way sync of corp tags and customer tags with WeCom (API.md §5 corp tags, mark_tag; §2.8 callbacks).

- Corp tags: ``corp_tags_pull`` makes our synced groups/tags equal to WeCom's list; ``tag_push_to_wecom``
  creates or edits one of ours there. Tags that are ours alone (``sync_to_wecom`` off) never leave.
- Customer tags: ``contact_wecom_tags_push`` marks, for every active follow relation, the synced tags we hold
  and unmarks the synced ones we no longer hold; ``contact_wecom_tags_read`` copies the corp tags WeCom reports
  for the follow users (edit_external_contact) into ContactTag with source ``wecom``.
- Never silent drift: a permanent WeCom refusal is stored on the tag (``sync_status=error`` + a readable
  ``sync_error``); transient failures are raised so the task retries. Local assignments are never removed
  because WeCom failed.
"""

import logging

from django.db import transaction

from contacts.models import Contact, Corp, FollowRelation
from scrm.clock import now
from tagging import services
from tagging.models import ContactTag, Dimension, SyncStatus, Tag, TagGroup
from wecom import gateway
from wecom.errors import WeComError

logger = logging.getLogger(__name__)

CORP_TAG_TYPE = 1  # follow_user.tags[].type: 1 corp tag, 2 personal, 3 rule-group
DEFAULT_DIMENSION = Dimension.BASIC  # groups first seen in WeCom land here; operators may move them

_MESSAGES = {
    40071: "WeCom already has a tag with this name in the group.",
    40126: "WeCom's limit of 3000 corp tags is reached.",
    40068: "WeCom does not know this tag or group any more.",
    301002: "This tag was created by another app; only that app (or the WeCom admin console) may change it.",
}


def readable(exc: WeComError) -> str:
    return _MESSAGES.get(exc.code, f"WeCom refused (errcode {exc.code}): {exc.message}")[:255]


# --- corp tags: WeCom → us -----------------------------------------------------------------------------------------
def corp_tags_pull(*, corp: Corp, group_ids: list[str] | None = None, tag_ids: list[str] | None = None) -> int:
    """Upsert WeCom's groups and tags (all of them, or the given ids). Returns how many tags were seen."""
    groups = gateway.corp_tags_list(tag_ids=tag_ids, group_ids=group_ids)
    seen = 0
    with transaction.atomic():
        for raw in groups:
            if raw.get("deleted"):
                continue
            group = _group_upsert(corp, raw)
            for raw_tag in raw.get("tag", []):
                if raw_tag.get("deleted"):
                    continue
                _tag_upsert(group, raw_tag)
                seen += 1
        if not group_ids and not tag_ids:
            # A full read: synced tags WeCom no longer lists were deleted there.
            listed = {t.get("id") for g in groups for t in g.get("tag", []) if not t.get("deleted")}
            gone = Tag.objects.filter(group__corp=corp).exclude(wecom_tag_id="").exclude(wecom_tag_id__in=listed)
            for tag in gone:
                _mark_removed_in_wecom(tag)
    return seen


def _group_upsert(corp: Corp, raw: dict) -> TagGroup:
    group = TagGroup.objects.filter(corp=corp, wecom_group_id=raw["group_id"]).first()
    name = (raw.get("group_name") or "")[:30] or raw["group_id"][:30]
    if group is None:
        group = TagGroup.objects.filter(corp=corp, wecom_group_id="", name=name).first()
    if group is None:
        group = TagGroup(corp=corp, dimension=DEFAULT_DIMENSION, name=name)
        while TagGroup.objects.filter(corp=corp, dimension=group.dimension, name=group.name).exists():
            group.name = (name[:26] + "·" + raw["group_id"][-3:])
    group.wecom_group_id = raw["group_id"]
    if raw.get("group_name") and group.name != name and not TagGroup.objects.filter(
            corp=corp, dimension=group.dimension, name=name).exclude(pk=group.pk).exists():
        group.name = name
    group.order = int(raw.get("order") or 0)
    group.save()
    return group


def _tag_upsert(group: TagGroup, raw: dict) -> Tag:
    tag = Tag.objects.filter(group__corp=group.corp, wecom_tag_id=raw["id"]).first()
    name = (raw.get("name") or raw["id"])[:30]
    if tag is None:
        tag = Tag.objects.filter(group=group, name=name, wecom_tag_id="").first() or Tag(group=group, name=name)
    tag.group = group
    if not Tag.objects.filter(group=group, name=name).exclude(pk=tag.pk).exists():
        tag.name = name
    tag.order = int(raw.get("order") or 0)
    tag.wecom_tag_id = raw["id"]
    tag.sync_to_wecom = True
    tag.sync_status = SyncStatus.SYNCED
    tag.sync_error = ""
    tag.save()
    return tag


def _mark_removed_in_wecom(tag: Tag) -> None:
    """Deleted in WeCom: keep the tag and its assignments as ours alone, visibly marked (never lost)."""
    tag.wecom_tag_id = ""
    tag.sync_to_wecom = False
    tag.sync_status = SyncStatus.REMOVED
    tag.sync_error = "Deleted in WeCom; kept here as a tag of ours alone."
    tag.save(update_fields=["wecom_tag_id", "sync_to_wecom", "sync_status", "sync_error", "updated_at"])


def corp_tag_changed(*, corp: Corp, change_type: str, tag_type: str, wecom_id: str) -> None:
    """Apply a change_external_tag callback (create / update / delete / shuffle)."""
    if change_type == "delete":
        if tag_type == "tag_group":
            for tag in Tag.objects.filter(group__corp=corp, group__wecom_group_id=wecom_id).exclude(wecom_tag_id=""):
                _mark_removed_in_wecom(tag)
            TagGroup.objects.filter(corp=corp, wecom_group_id=wecom_id).update(wecom_group_id="")
        else:
            for tag in Tag.objects.filter(group__corp=corp, wecom_tag_id=wecom_id):
                _mark_removed_in_wecom(tag)
        return
    if change_type == "shuffle" or not wecom_id:
        # shuffle: orders changed (Id = the group, empty = the groups themselves): re-read to take WeCom's order
        corp_tags_pull(corp=corp, group_ids=[wecom_id] if wecom_id else None)
        return
    if tag_type == "tag_group":
        corp_tags_pull(corp=corp, group_ids=[wecom_id])
    else:
        corp_tags_pull(corp=corp, tag_ids=[wecom_id])


# --- corp tags: us → WeCom -----------------------------------------------------------------------------------------
def tag_push_to_wecom(*, tag_id: int) -> Tag | None:
    """Create or edit our tag in WeCom. Transient errors propagate (the task retries)."""
    tag = Tag.objects.select_related("group").filter(pk=tag_id).first()
    if tag is None or not tag.sync_to_wecom:
        return tag
    try:
        if tag.wecom_tag_id:
            gateway.corp_tag_edit(tag_id=tag.wecom_tag_id, name=tag.name, order=tag.order)
        else:
            group = tag.group
            created = gateway.corp_tag_create(group_id=group.wecom_group_id, group_name=group.name, names=[tag.name])
            match = next((t for t in created.get("tag", []) if t.get("name") == tag.name), None)
            if match is None:
                raise WeComError(None, "add_corp_tag returned no tag", permanent=True, api="add_corp_tag")
            tag.wecom_tag_id = match["id"]
            if created.get("group_id") and not group.wecom_group_id:
                TagGroup.objects.filter(pk=group.pk).update(wecom_group_id=created["group_id"])
    except WeComError as exc:
        if not exc.permanent:
            raise
        tag.sync_status, tag.sync_error = SyncStatus.ERROR, readable(exc)
        tag.save(update_fields=["sync_status", "sync_error", "updated_at"])
        logger.warning("tag %s not synced to WeCom: errcode=%s", tag.pk, exc.code)
        return tag
    tag.sync_status, tag.sync_error = SyncStatus.SYNCED, ""
    tag.save(update_fields=["wecom_tag_id", "sync_status", "sync_error", "updated_at"])
    return tag


def corp_tag_delete_in_wecom(*, wecom_tag_id: str) -> None:
    try:
        gateway.corp_tags_delete(tag_ids=[wecom_tag_id])
    except WeComError as exc:
        if not exc.permanent:
            raise
        logger.warning("WeCom tag %s not deleted: errcode=%s", wecom_tag_id, exc.code)


# --- customer tags -------------------------------------------------------------------------------------------------
def contact_wecom_tags_push(*, contact_id: int) -> int:
    """Make WeCom's corp tags on each active follow relation match the synced tags we hold.

    Idempotent (computed from the database each time), so retries are safe; returns mark_tag calls made.
    """
    synced = dict(Tag.objects.filter(contact_links__contact_id=contact_id, sync_to_wecom=True)
                  .exclude(wecom_tag_id="").values_list("wecom_tag_id", "pk"))
    ours = set(Tag.objects.exclude(wecom_tag_id="").values_list("wecom_tag_id", flat=True))
    calls = 0
    relations = FollowRelation.objects.filter(contact_id=contact_id, is_active=True).select_related("staff", "contact")
    for relation in relations:
        current = {t.get("tag_id") for t in relation.wecom_tags if t.get("type", CORP_TAG_TYPE) == CORP_TAG_TYPE}
        add = sorted(set(synced) - current)
        remove = sorted((current & ours) - set(synced))
        if not add and not remove:
            continue
        try:
            gateway.contact_tags_mark(userid=relation.staff.userid, external_userid=relation.contact.external_userid,
                                      add=add, remove=remove)
        except WeComError as exc:
            if not exc.permanent:
                raise
            logger.warning("mark_tag refused contact=%s staff=%s errcode=%s", contact_id, relation.staff.userid,
                           exc.code)
            continue
        calls += 1
        kept = [t for t in relation.wecom_tags if t.get("tag_id") not in remove]
        kept += [{"tag_id": t, "tag_name": "", "group_name": "", "type": CORP_TAG_TYPE} for t in add]
        FollowRelation.objects.filter(pk=relation.pk).update(wecom_tags=kept, updated_at=now())
    return calls


def contact_wecom_tags_read(*, contact: Contact) -> dict:
    """After edit_external_contact: the corp tags WeCom reports on active follow relations become ours (source
    ``wecom``); ``wecom``-sourced tags no follow user carries any more are removed. Other sources are kept."""
    wecom_ids: set[str] = set()
    for relation in FollowRelation.objects.filter(contact=contact, is_active=True):
        wecom_ids |= {t.get("tag_id") for t in relation.wecom_tags if t.get("type", CORP_TAG_TYPE) == CORP_TAG_TYPE}
    known = dict(Tag.objects.filter(group__corp_id=contact.corp_id, wecom_tag_id__in=wecom_ids)
                 .values_list("wecom_tag_id", "pk"))
    if set(wecom_ids) - set(known):
        corp_tags_pull(corp=contact.corp, tag_ids=sorted(set(wecom_ids) - set(known)))  # a tag we never saw
        known = dict(Tag.objects.filter(group__corp_id=contact.corp_id, wecom_tag_id__in=wecom_ids)
                     .values_list("wecom_tag_id", "pk"))
    wanted = set(known.values())
    held = set(ContactTag.objects.filter(contact=contact, source=ContactTag.Source.WECOM)
               .values_list("tag_id", flat=True))
    added = services.tags_apply(contact_ids=[contact.pk], tag_ids=wanted, source=ContactTag.Source.WECOM)
    removed = services.tags_remove(contact_ids=[contact.pk], tag_ids=held - wanted, source=ContactTag.Source.WECOM)
    return {"added": added, "removed": removed}
