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
        services.known_refresh_on_commit(contact_ids=[event.contact_id])
    elif kind in (ContactEvent.Kind.DELETED_BY_CUSTOMER, ContactEvent.Kind.DELETED_BY_STAFF,
                  ContactEvent.Kind.LEFT_GROUP):
        services.loss_record(event=event)
        services.known_refresh_on_commit(contact_ids=[event.contact_id])
    # A dismissed group: contacts.services.group_chat_dismissed refreshes its members (contacts.fanout
    # .relations_written) before the event is recorded.
