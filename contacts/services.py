"""Writes for contacts, staff, follow relations and customer groups.

Every function is idempotent: WeCom redelivers callbacks, events arrive out of order, and the full sync
may run while callbacks flow. Event times (not arrival times) decide which change wins.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce

from contacts import fanout
from contacts.models import Contact, ContactEvent, Corp, FollowRelation, GroupChat, GroupMember, Staff
from contacts.timezones import time_zone_clean
from scrm.clock import from_timestamp, now
from wecom.contracts import ExternalContact, FollowInfo, GroupChatDetail, StaffMember

logger = logging.getLogger(__name__)


# --- corp and staff -----------------------------------------------------------------------------------------------
def corp_get_or_create(*, corp_id: str) -> Corp:
    corp, _ = Corp.objects.get_or_create(corp_id=corp_id)
    return corp


_STAFF_STATUS = {1: Staff.Status.ACTIVE, 2: Staff.Status.DISABLED, 4: Staff.Status.ACTIVE, 5: Staff.Status.LEFT}


def staff_upsert(*, corp: Corp, userid: str, member: StaffMember | None = None) -> Staff:
    defaults = {}
    if member is not None:
        defaults = {"name": member.name, "status": _STAFF_STATUS.get(member.status, Staff.Status.ACTIVE)}
    staff, created = Staff.objects.get_or_create(corp=corp, userid=userid, defaults=defaults)
    if not created and defaults and any(getattr(staff, k) != v for k, v in defaults.items()):
        for key, value in defaults.items():
            setattr(staff, key, value)
        staff.save(update_fields=[*defaults, "updated_at"])
    return staff


# --- events ----------------------------------------------------------------------------------------------------------
def record_event(*, corp: Corp, kind: str, occurred_at: datetime, contact: Contact | None = None,
                 staff: Staff | None = None, chat: GroupChat | None = None, data: dict | None = None,
                 dedup_key: str | None = None, context: dict | None = None) -> bool:
    """Append one event to the log; returns False when ``dedup_key`` was already recorded.

    This is the fan-out point: features that react to events (tag rules, live-code attribution, journey
    entry) are called from here explicitly, never through signals.
    """
    event = ContactEvent(corp=corp, kind=kind, occurred_at=occurred_at, contact=contact, staff=staff, chat=chat,
                         data=data or {}, dedup_key=dedup_key)
    if dedup_key is None:
        event.save()
    else:
        try:
            with transaction.atomic():
                event.save()
        except IntegrityError:
            return False
    fanout.event_recorded(event=event, context=context or {})
    return True


# --- contacts ----------------------------------------------------------------------------------------------------------
def contact_upsert_from_wecom(*, corp: Corp, external: ExternalContact) -> Contact:
    """Create or update the contact's own fields (never its relations). Keyed by external_userid."""
    fields = {
        "name": external.name,
        "avatar": external.avatar,
        "type": external.type,
        "gender": external.gender,
        "unionid": external.unionid,
        "position": external.position,
        "corp_name": external.corp_name,
        "corp_full_name": external.corp_full_name,
    }
    contact, created = Contact.objects.get_or_create(corp=corp, external_userid=external.external_userid,
                                                     defaults=fields)
    if not created:
        changed = [k for k, v in fields.items() if v and getattr(contact, k) != v]
        if changed:
            for key in changed:
                setattr(contact, key, fields[key])
            contact.save(update_fields=[*changed, "updated_at"])
    return contact


def contact_time_zone_set(*, contact: Contact, time_zone: str, at: datetime | None = None) -> Contact:
    """Set the contact's own time zone (an IANA name; blank: back to the corp's zone). An unknown name raises
    ``ValidationError`` and changes nothing. Journeys use it for decisions from now on, and waits already scheduled
    for a local moment (until 10:00, until Monday, day N at HH:MM, quiet-hours holds) move to the new zone's."""
    value = time_zone_clean(time_zone)
    if value != contact.time_zone:
        with transaction.atomic():
            contact.time_zone = value
            contact.save(update_fields=["time_zone", "updated_at"])
            contacts_time_zone_changed(contact_ids=[contact.pk], at=at)
    return contact


def contacts_time_zone_changed(*, contact_ids: list[int], at: datetime | None = None) -> int:
    """The time zone of these contacts was just written (by ``contact_time_zone_set``, the admin or the CSV
    import); call it in the same transaction. Returns how many journey enrollments were re-planned."""
    return fanout.time_zones_changed(contact_ids=contact_ids, at=at)


def contact_placeholder(*, corp: Corp, external_userid: str, name: str = "") -> Contact:
    contact, _ = Contact.objects.get_or_create(corp=corp, external_userid=external_userid,
                                               defaults={"name": name})
    return contact


def contacts_recount_relations(*, contact_ids: list[int] | None = None, corp: Corp | None = None) -> None:
    active = (
        FollowRelation.objects.filter(contact=OuterRef("pk"), is_active=True)
        .order_by().values("contact").annotate(n=Count("id")).values("n")
    )
    first = (
        FollowRelation.objects.filter(contact=OuterRef("pk"), added_at__isnull=False)
        .order_by("added_at").values("added_at")[:1]
    )
    qs = Contact.objects.all()
    if contact_ids is not None:
        qs = qs.filter(pk__in=contact_ids)
    if corp is not None:
        qs = qs.filter(corp=corp)
    qs.update(active_relations=Coalesce(Subquery(active), 0), first_added_at=Subquery(first))


def _follow_fields(follow: FollowInfo) -> dict:
    return {
        "remark": follow.remark[:64],
        "description": follow.description[:255],
        "remark_corp_name": follow.remark_corp_name[:128],
        "remark_mobiles": list(follow.remark_mobiles),
        "add_way": follow.add_way,
        "oper_userid": follow.oper_userid,
        "state": follow.state[:64],
        "wecom_tags": [
            {"tag_id": t.tag_id, "tag_name": t.tag_name, "group_name": t.group_name, "type": t.type}
            for t in follow.tags
        ],
    }


@dataclass(frozen=True)
class RelationChange:
    relation: FollowRelation
    applied: bool  # False when a newer change had already been applied (stale, out-of-order event)


MISSING_ON_SYNC = "missing_on_sync"  # FollowRelation.delete_source of a relation the full sync no longer found


def relation_added(*, corp: Corp, staff: Staff, contact: Contact, at: datetime,
                   follow: FollowInfo | None = None) -> RelationChange:
    """The contact became (again) a customer of the staff member at ``at``."""
    with transaction.atomic():
        relation, _ = FollowRelation.objects.select_for_update().get_or_create(
            contact=contact, staff=staff, defaults={"added_at": at, "status_changed_at": at, "is_active": True}
        )
        if follow is not None:
            for key, value in _follow_fields(follow).items():
                setattr(relation, key, value)
        # A relation the full sync closed only because WeCom did not list it then ("missing_on_sync": inferred, the
        # weakest evidence there is) comes back whenever WeCom shows it again, even with its original, older add
        # time; an older add never undoes a deletion WeCom reported.
        relisted = not relation.is_active and relation.delete_source == MISSING_ON_SYNC
        applied = relisted or relation.status_changed_at is None or at >= relation.status_changed_at
        if applied:
            relation.is_active = True
            relation.added_at = at
            relation.status_changed_at = at
            relation.deleted_by_customer_at = None
            relation.deleted_by_staff_at = None
            relation.delete_source = ""
        relation.save()
        contacts_recount_relations(contact_ids=[contact.pk])
    return RelationChange(relation=relation, applied=applied)


def relation_deleted(*, corp: Corp, staff: Staff, contact: Contact, at: datetime, by_customer: bool,
                     source: str = "") -> RelationChange:
    with transaction.atomic():
        relation, created = FollowRelation.objects.select_for_update().get_or_create(
            contact=contact, staff=staff, defaults={"is_active": False, "status_changed_at": at}
        )
        applied = created or relation.status_changed_at is None or at >= relation.status_changed_at
        if applied:
            relation.is_active = False
            relation.status_changed_at = at
            relation.delete_source = source[:32]
            if by_customer:
                relation.deleted_by_customer_at = at
            else:
                relation.deleted_by_staff_at = at
            relation.save()
            contacts_recount_relations(contact_ids=[contact.pk])
    return RelationChange(relation=relation, applied=applied)


def relation_refresh(*, staff: Staff, contact: Contact, follow: FollowInfo) -> FollowRelation | None:
    """Copy remark, description, phone numbers and tags as WeCom has them now; status is untouched."""
    relation = FollowRelation.objects.filter(contact=contact, staff=staff).first()
    if relation is None:
        return None
    fields = _follow_fields(follow)
    for key, value in fields.items():
        setattr(relation, key, value)
    relation.save(update_fields=[*fields, "updated_at"])
    return relation


# --- customer groups ------------------------------------------------------------------------------------------------------
def group_chat_upsert_from_wecom(*, corp: Corp, detail: GroupChatDetail, at: datetime | None = None) -> GroupChat:
    """Make our copy of a group equal to WeCom's answer: fields and the full member list."""
    at = at or now()
    with transaction.atomic():
        owner = staff_upsert(corp=corp, userid=detail.owner) if detail.owner else None
        chat, _ = GroupChat.objects.select_for_update().get_or_create(corp=corp, chat_id=detail.chat_id)
        chat.name = detail.name
        chat.owner = owner
        chat.owner_userid = detail.owner
        chat.notice = detail.notice
        chat.wecom_created_at = from_timestamp(detail.create_time) if detail.create_time else chat.wecom_created_at
        chat.member_version = detail.member_version
        chat.synced_at = now()
        if chat.status == GroupChat.Status.DISMISSED and chat.dismissed_at and chat.dismissed_at > at:
            pass  # a late read of a group that has since been dismissed keeps its dismissed status
        else:
            chat.status = GroupChat.Status.ACTIVE
        chat.save()
        present: set[str] = set()
        existing = {m.member_id: m for m in chat.members.all()}
        changed: set[int] = set()  # customers whose membership this read changed (no event records it)
        for member in detail.members:
            present.add(member.userid)
            row = existing.get(member.userid) or GroupMember(chat=chat, member_id=member.userid,
                                                             member_type=member.type)
            before = (row.member_type, row.contact_id, row.joined_at, row.left_at)
            row.member_type = member.type
            row.name = member.name or row.name
            row.group_nickname = member.group_nickname
            row.unionid = member.unionid
            row.joined_at = from_timestamp(member.join_time) if member.join_time else row.joined_at
            row.join_scene = member.join_scene or row.join_scene
            row.invitor_userid = member.invitor
            row.state = member.state[:64]
            row.left_at = None
            row.quit_scene = None
            if member.type == GroupMember.Type.STAFF:
                row.staff = staff_upsert(corp=corp, userid=member.userid)
            else:
                row.contact = contact_placeholder(corp=corp, external_userid=member.userid, name=member.name)
            row.save()
            if row.contact_id is not None and (row.member_type, row.contact_id, row.joined_at, row.left_at) != before:
                changed.add(row.contact_id)
        gone = [m for mid, m in existing.items() if mid not in present and m.left_at is None]
        if gone:
            GroupMember.objects.filter(pk__in=[m.pk for m in gone]).update(left_at=at)
            changed.update(m.contact_id for m in gone if m.contact_id is not None)
        _group_chat_recount(chat)
        fanout.relations_written(contact_ids=sorted(changed))
    return chat


def _group_chat_recount(chat: GroupChat) -> None:
    chat.member_count = chat.members.filter(left_at__isnull=True).count()
    GroupChat.objects.filter(pk=chat.pk).update(member_count=chat.member_count)


@dataclass(frozen=True)
class MemberChange:
    chat: GroupChat
    needs_full_read: bool  # our member list fell out of step with WeCom's version chain


def group_members_changed(*, corp: Corp, chat_id: str, joined: list[str], left: list[str], at: datetime,
                          last_version: str, current_version: str, join_scene: int | None,
                          quit_scene: int | None, dedup_prefix: str) -> MemberChange:
    """Apply an add_member/del_member event. If its LastMemVer is not the version we hold, an event was
    lost or reordered: the caller re-reads the whole group (``needs_full_read``)."""
    with transaction.atomic():
        chat, created = GroupChat.objects.select_for_update().get_or_create(corp=corp, chat_id=chat_id)
        in_step = not created and (not last_version or chat.member_version == last_version)
        for external_or_userid in joined:
            row, _ = GroupMember.objects.get_or_create(
                chat=chat, member_id=external_or_userid,
                defaults={"member_type": _member_type(external_or_userid)},
            )
            if row.left_at is None or row.left_at <= at:
                row.left_at = None
                row.quit_scene = None
                row.joined_at = at
                row.join_scene = {0: 1, 3: 3}.get(join_scene, row.join_scene) if join_scene is not None else None
                _link_member(corp, row)
                row.save()
            _record_member_event(corp, chat, row, ContactEvent.Kind.JOINED_GROUP, at,
                                 {"join_scene": join_scene}, f"{dedup_prefix}:{external_or_userid}")
        for external_or_userid in left:
            row = GroupMember.objects.filter(chat=chat, member_id=external_or_userid).first()
            if row is None:
                row = GroupMember(chat=chat, member_id=external_or_userid,
                                  member_type=_member_type(external_or_userid))
                _link_member(corp, row)
            if row.joined_at is None or row.joined_at <= at:
                row.left_at = at
                row.quit_scene = quit_scene
                row.save()
            _record_member_event(corp, chat, row, ContactEvent.Kind.LEFT_GROUP, at,
                                 {"quit_scene": quit_scene}, f"{dedup_prefix}:{external_or_userid}")
        if in_step and current_version:
            chat.member_version = current_version
            chat.save(update_fields=["member_version", "updated_at"])
        _group_chat_recount(chat)
    return MemberChange(chat=chat, needs_full_read=not in_step)


def _member_type(member_id: str) -> int:
    return GroupMember.Type.EXTERNAL if member_id[:2] in ("wm", "wo") else GroupMember.Type.STAFF


def _link_member(corp: Corp, row: GroupMember) -> None:
    if row.member_type == GroupMember.Type.EXTERNAL:
        row.contact = row.contact or contact_placeholder(corp=corp, external_userid=row.member_id)
    else:
        row.staff = row.staff or staff_upsert(corp=corp, userid=row.member_id)


def _record_member_event(corp, chat, row, kind, at, data, dedup_key) -> None:
    if row.member_type != GroupMember.Type.EXTERNAL:
        return
    record_event(corp=corp, kind=kind, occurred_at=at, contact=row.contact, chat=chat, data=data,
                 dedup_key=dedup_key)


def group_chat_dismissed(*, corp: Corp, chat_id: str, at: datetime) -> GroupChat:
    with transaction.atomic():
        chat, _ = GroupChat.objects.select_for_update().get_or_create(corp=corp, chat_id=chat_id)
        chat.status = GroupChat.Status.DISMISSED
        chat.dismissed_at = at
        chat.save(update_fields=["status", "dismissed_at", "updated_at"])
        leaving = list(chat.members.filter(left_at__isnull=True, contact__isnull=False)
                       .values_list("contact_id", flat=True))
        chat.members.filter(left_at__isnull=True).update(left_at=at)
        _group_chat_recount(chat)
        fanout.relations_written(contact_ids=leaving)  # the group_dismissed event names no customer
    return chat
