"""How tagging reacts to contact events (called from contacts.fanout after each recorded event)."""

from django.db import transaction

from contacts.models import ContactEvent

# Events that say the customer did something (last_active_at moves); deletions and edits by staff do not.
ACTIVE_KINDS = {"added", "joined_group", "ordered", "scanned", "clicked", "visited", "add_to_cart"}


def contact_event_handle(*, event: ContactEvent, context: dict) -> None:
    """Keep last_active_at fresh and re-evaluate, after commit, only the rules this event can change."""
    if event.contact_id is None:
        return
    from contacts.business import contact_active_touch
    from tagging.recompute import rules_for_event

    if event.kind in ACTIVE_KINDS:
        contact_active_touch(contact_id=event.contact_id, at=event.occurred_at)
    rule_ids = rules_for_event(kind=event.kind)
    if not rule_ids:
        return
    from tagging.tasks import tag_rules_evaluate_for_contact

    contact_id = event.contact_id
    transaction.on_commit(lambda: tag_rules_evaluate_for_contact.delay(contact_id))
