"""Turn a stored callback event into domain changes (API.md §2.6–2.8).

WeCom reads happen first, outside any transaction; the contacts services then write in short
transactions and are idempotent, so a replay or a second worker changes nothing.
"""

import logging

from scrm.clock import from_timestamp, now
from wecom import gateway
from wecom.contracts import CallbackMessage, ExternalContact, FollowInfo
from wecom.errors import WeComError
from wecom.events import event_fields, to_message
from wecom.models import CallbackEvent

logger = logging.getLogger(__name__)

# Errcodes that mean "this customer is no longer readable" rather than a failure worth retrying.
_GONE = {40096, 84061, 41056}


def dispatch(event: CallbackEvent) -> bool:
    """Apply the event; return False for event types we do not handle (stored as ignored)."""
    message = to_message(event_fields(event.payload))
    handler = _HANDLERS.get((message.event, message.change_type)) or _HANDLERS.get((message.event, "*"))
    if handler is None:
        logger.info("callback event %s ignored: %s/%s", event.pk, message.event, message.change_type)
        return False
    handler(event, message)
    return True


def _corp(message: CallbackMessage):
    from contacts.services import corp_get_or_create

    return corp_get_or_create(corp_id=message.to_user)


def _when(message: CallbackMessage):
    return from_timestamp(message.create_time) if message.create_time else now()


def _staff(corp, userid: str):
    """Our row for a staff member; a userid seen for the first time gets its name read from WeCom."""
    from contacts import services
    from contacts.models import Staff

    staff = Staff.objects.filter(corp=corp, userid=userid).first()
    if staff is not None and staff.name:
        return staff
    try:
        member = gateway.staff_get(userid=userid)
    except WeComError as exc:
        if not exc.permanent:
            raise
        logger.info("staff %s cannot be read from WeCom (errcode=%s); stored without a name", userid, exc.code)
        member = None
    return services.staff_upsert(corp=corp, userid=userid, member=member)


def _read_contact(external_userid: str) -> ExternalContact | None:
    try:
        return gateway.external_contact_get(external_userid=external_userid)
    except WeComError as exc:
        if exc.code in _GONE:
            return None
        raise


def _follow_of(detail: ExternalContact | None, userid: str) -> FollowInfo | None:
    if detail is None:
        return None
    return next((f for f in detail.follow_users if f.userid == userid), None)


# --- change_external_contact ---------------------------------------------------------------------------------
def _contact_added(event: CallbackEvent, message: CallbackMessage) -> None:
    from contacts import services

    detail = _read_contact(message.external_user_id)
    corp = _corp(message)
    staff = _staff(corp, message.user_id)
    contact = (services.contact_upsert_from_wecom(corp=corp, external=detail) if detail else
               services.contact_placeholder(corp=corp, external_userid=message.external_user_id))
    follow = _follow_of(detail, message.user_id)
    at = _when(message)
    services.relation_added(corp=corp, staff=staff, contact=contact, at=at, follow=follow)
    half = message.change_type == "add_half_external_contact"
    services.record_event(
        corp=corp,
        kind="half_added" if half else "added",
        occurred_at=at,
        contact=contact,
        staff=staff,
        data={"state": message.state, "add_way": follow.add_way if follow else None,
              "has_welcome_code": bool(message.welcome_code)},
        dedup_key=f"cb:{event.event_key}",
        context={"welcome_code": message.welcome_code, "state": message.state},
    )


def _contact_edited(event: CallbackEvent, message: CallbackMessage) -> None:
    from contacts import services

    detail = _read_contact(message.external_user_id)
    corp = _corp(message)
    staff = _staff(corp, message.user_id)
    if detail is None:
        return
    contact = services.contact_upsert_from_wecom(corp=corp, external=detail)
    follow = _follow_of(detail, message.user_id)
    if follow is not None:
        services.relation_refresh(staff=staff, contact=contact, follow=follow)
        from tagging.sync import contact_wecom_tags_read

        contact_wecom_tags_read(contact=contact)  # the follow user's corp tags become ours (source wecom)
    services.record_event(corp=corp, kind="edited", occurred_at=_when(message), contact=contact, staff=staff,
                          dedup_key=f"cb:{event.event_key}")


def _contact_deleted(event: CallbackEvent, message: CallbackMessage) -> None:
    from contacts import services

    corp = _corp(message)
    staff = _staff(corp, message.user_id)
    contact = services.contact_placeholder(corp=corp, external_userid=message.external_user_id)
    by_customer = message.change_type == "del_follow_user"
    at = _when(message)
    services.relation_deleted(corp=corp, staff=staff, contact=contact, at=at, by_customer=by_customer,
                              source=message.source)
    services.record_event(
        corp=corp,
        kind="deleted_by_customer" if by_customer else "deleted_by_staff",
        occurred_at=at, contact=contact, staff=staff,
        data={"source": message.source} if message.source else {},
        dedup_key=f"cb:{event.event_key}",
    )


def _transfer_failed(event: CallbackEvent, message: CallbackMessage) -> None:
    from contacts import services

    corp = _corp(message)
    staff = _staff(corp, message.user_id)
    contact = services.contact_placeholder(corp=corp, external_userid=message.external_user_id)
    services.record_event(corp=corp, kind="transfer_failed", occurred_at=_when(message), contact=contact,
                          staff=staff, data={"reason": message.fail_reason}, dedup_key=f"cb:{event.event_key}")


# --- change_external_chat -------------------------------------------------------------------------------------
def _chat_read(message: CallbackMessage) -> None:
    from contacts import services

    try:
        detail = gateway.group_chat_get(chat_id=message.chat_id)
    except WeComError as exc:
        if exc.permanent:
            logger.warning("group %s cannot be read (errcode=%s)", message.chat_id, exc.code)
            return
        raise
    services.group_chat_upsert_from_wecom(corp=_corp(message), detail=detail, at=_when(message))


def _chat_created(event: CallbackEvent, message: CallbackMessage) -> None:
    from contacts import services

    _chat_read(message)
    corp = _corp(message)
    chat = corp.group_chats.filter(chat_id=message.chat_id).first()
    services.record_event(corp=corp, kind="group_created", occurred_at=_when(message), chat=chat,
                          dedup_key=f"cb:{event.event_key}")


def _chat_updated(event: CallbackEvent, message: CallbackMessage) -> None:
    from contacts import services

    corp = _corp(message)
    at = _when(message)
    if message.update_detail in ("add_member", "del_member"):
        joining = message.update_detail == "add_member"
        change = services.group_members_changed(
            corp=corp, chat_id=message.chat_id,
            joined=list(message.mem_change_list) if joining else [],
            left=[] if joining else list(message.mem_change_list),
            at=at, last_version=message.last_mem_ver, current_version=message.cur_mem_ver,
            join_scene=message.join_scene, quit_scene=message.quit_scene,
            dedup_prefix=f"cb:{event.event_key}",
        )
        if change.needs_full_read:
            _chat_read(message)
        return
    _chat_read(message)  # owner, name or notice changed: read the group as it is now
    chat = corp.group_chats.filter(chat_id=message.chat_id).first()
    services.record_event(corp=corp, kind="group_changed", occurred_at=at, chat=chat,
                          data={"detail": message.update_detail}, dedup_key=f"cb:{event.event_key}")


def _chat_dismissed(event: CallbackEvent, message: CallbackMessage) -> None:
    from contacts import services

    corp = _corp(message)
    chat = services.group_chat_dismissed(corp=corp, chat_id=message.chat_id, at=_when(message))
    services.record_event(corp=corp, kind="group_dismissed", occurred_at=_when(message), chat=chat,
                          dedup_key=f"cb:{event.event_key}")


# --- change_external_tag -------------------------------------------------------------------------------------
def _tag_changed(event: CallbackEvent, message: CallbackMessage) -> None:
    """Corp tag created/updated/deleted/reordered in WeCom: the tagging app brings ours in step."""
    from tagging.sync import corp_tag_changed

    logger.info("corp tag %s %s %s", message.change_type, message.tag_type, message.tag_id)
    corp_tag_changed(corp=_corp(message), change_type=message.change_type, tag_type=message.tag_type,
                     wecom_id=message.tag_id)


_HANDLERS = {
    ("change_external_contact", "add_external_contact"): _contact_added,
    ("change_external_contact", "add_half_external_contact"): _contact_added,
    ("change_external_contact", "edit_external_contact"): _contact_edited,
    ("change_external_contact", "del_external_contact"): _contact_deleted,
    ("change_external_contact", "del_follow_user"): _contact_deleted,
    ("change_external_contact", "transfer_fail"): _transfer_failed,
    ("change_external_chat", "create"): _chat_created,
    ("change_external_chat", "update"): _chat_updated,
    ("change_external_chat", "dismiss"): _chat_dismissed,
    ("change_external_tag", "*"): _tag_changed,
}
