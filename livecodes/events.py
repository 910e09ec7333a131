"""How live codes react to contact events (called from contacts.fanout, once per newly recorded event)."""

from contacts.models import ContactEvent


def contact_event_handle(*, event: ContactEvent, context: dict) -> None:
    """Adds are attributed by ``state`` (and welcomed with the one-use code); joins by the group's pool;
    a deletion or a departure marks the conversion it ends as lost."""
    from livecodes import services

    kind = event.kind
    if kind in (ContactEvent.Kind.ADDED, ContactEvent.Kind.HALF_ADDED):
        state = context.get("state") or (event.data or {}).get("state") or ""
        if state:
            services.add_attribute(event=event, state=state, welcome_code=context.get("welcome_code") or "")
    elif kind == ContactEvent.Kind.JOINED_GROUP:
        services.join_attribute(event=event)
        _refresh_known([event.contact_id])
    elif kind in (ContactEvent.Kind.DELETED_BY_CUSTOMER, ContactEvent.Kind.DELETED_BY_STAFF,
                  ContactEvent.Kind.LEFT_GROUP):
        services.loss_record(event=event)
        _refresh_known([event.contact_id])
    elif kind == ContactEvent.Kind.GROUP_DISMISSED and event.chat_id:
        from contacts.models import GroupMember

        _refresh_known(GroupMember.objects.filter(chat_id=event.chat_id, contact_id__isnull=False)
                       .values_list("contact_id", flat=True))


def _refresh_known(contact_ids) -> None:
    """After the change commits: identified customers' remembered pool entities are read again."""
    from django.db import transaction

    from contacts.models import Contact
    from livecodes import services

    ids = [c for c in contact_ids if c]
    if ids:
        transaction.on_commit(lambda: services.known_refresh(external_userids=list(
            Contact.objects.filter(pk__in=ids).values_list("external_userid", flat=True))))
