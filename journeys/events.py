"""How journeys react to contact events (called from contacts.fanout after each newly recorded event).

Deleting the staff member (with no other relation left) leaves every journey; goal events convert; live
journeys whose trigger matches enroll the contact (set-based insert, due now; the sweeper does the rest).
"""

from contacts.models import ContactEvent
from journeys import services
from journeys.models import Journey

EXIT_KINDS = {"deleted_by_customer", "deleted_by_staff"}


def contact_event_handle(*, event: ContactEvent, context: dict) -> None:
    if event.contact_id is None:
        return
    contact_id = event.contact_id
    if event.kind in EXIT_KINDS:
        from contacts.models import Contact

        remaining = Contact.objects.filter(pk=contact_id).values_list("active_relations", flat=True).first()
        if not remaining:
            services.enrollments_exit(contact_id=contact_id, reason=event.kind, at=event.occurred_at)
        return
    if event.kind == "custom" and (event.data or {}).get("type") == "opt_out":
        services.contact_opt_out(contact_id=contact_id)
    goal = f"custom:{(event.data or {}).get('type', '')}" if event.kind == "custom" else event.kind
    services.enrollments_convert(contact_id=contact_id, goal=goal, at=event.occurred_at)
    for journey in _matching(event, context):
        services.journey_enroll(journey=journey, contact_ids=[contact_id], entry_key=f"ev:{event.pk}",
                                at=event.occurred_at if event.occurred_at > _recent() else None)


def _recent():
    from datetime import timedelta

    from scrm.clock import now

    return now() - timedelta(days=1)


def _matching(event: ContactEvent, context: dict) -> list[Journey]:
    if event.kind == "added":
        state = context.get("state") or (event.data or {}).get("state") or ""
        return [j for j in services.journeys_live(trigger=Journey.Trigger.CONTACT_ADDED, corp_id=event.corp_id)
                if not (j.trigger_config or {}).get("states") or state in j.trigger_config["states"]]
    if event.kind == "ordered":
        journeys = services.journeys_live(trigger=Journey.Trigger.ORDER_PAID, corp_id=event.corp_id)
        if any((j.trigger_config or {}).get("first_only") for j in journeys):
            first = not ContactEvent.objects.filter(contact_id=event.contact_id, kind="ordered").exclude(
                pk=event.pk).exists()
            journeys = [j for j in journeys if first or not (j.trigger_config or {}).get("first_only")]
        return journeys
    if event.kind == "custom":
        kind = (event.data or {}).get("type")
        return [j for j in services.journeys_live(trigger=Journey.Trigger.CUSTOM_EVENT, corp_id=event.corp_id)
                if (j.trigger_config or {}).get("type") == kind]
    return []


def tags_changed(*, contact_ids: list[int], tag_ids: list[int], added: bool) -> int:
    """Entry point for tag triggers (tagging calls it after apply/remove; the minute scan covers adds)."""
    trigger = Journey.Trigger.TAG_ADDED if added else Journey.Trigger.TAG_REMOVED
    entered = 0
    for journey in services.journeys_live(trigger=trigger):
        if (journey.trigger_config or {}).get("tag_id") in tag_ids:
            entered += services.journey_enroll(journey=journey, contact_ids=contact_ids,
                                               entry_key=f"tag:{'+' if added else '-'}")
    return entered
