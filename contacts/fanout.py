"""What happens after a contact event is recorded: explicit calls into the features that react to it.

``contacts.services.record_event`` calls ``event_recorded`` once per newly recorded event (never for a
replayed one). Each feature gets the event and the transient context of the callback (such as the
one-use WelcomeCode, which is not stored). No signals: this list is the whole fan-out.
"""

from contacts.models import ContactEvent


def event_recorded(*, event: ContactEvent, context: dict) -> None:
    from livecodes.events import contact_event_handle as livecodes_handle
    from tagging.events import contact_event_handle as tagging_handle

    livecodes_handle(event=event, context=context)
    tagging_handle(event=event, context=context)
    from journeys.events import contact_event_handle as journeys_handle

    journeys_handle(event=event, context=context)
    from analytics.events import contact_event_handle as analytics_handle

    analytics_handle(event=event, context=context)


def tags_changed(*, contact_ids: list[int], tag_ids: list[int], added: bool) -> None:
    """Tags were put on (or taken off) these contacts; called by tagging after its transaction commits."""
    from journeys.events import tags_changed as journeys_handle

    journeys_handle(contact_ids=contact_ids, tag_ids=tag_ids, added=added)


def orders_written(*, contact_ids: list[int] | None = None, contact_ids_sql: str = "", params: list | None = None) -> None:
    """Orders of these contacts were written (also by bulk imports that record no events)."""
    from analytics.events import contacts_facts_changed

    contacts_facts_changed(contact_ids=contact_ids, contact_ids_sql=contact_ids_sql, params=params)


# Contacts per live-code refresh: each batch costs, after the commit, one SELECT of their external_userids and one
# pipelined round trip of Redis EXISTS (plus a re-read only for the few identified on a landing page).
KNOWN_REFRESH_BATCH = 1000


def relations_written(*, contact_ids: list[int]) -> None:
    """Follow relations or group memberships of these contacts changed without an event of their own (the full sync,
    a group re-read from WeCom, a dismissed group); called inside the writing transaction.

    Analytics marks them dirty; live codes rewrite, once the transaction commits, what they keep in Redis for those
    of them identified on a landing page (so a customer a re-read or the sync took out of a pool group, or whose
    staff relation it closed, is no longer told "you are already in …")."""
    from analytics.events import contacts_facts_changed
    from livecodes.services import known_refresh_on_commit

    contacts_facts_changed(contact_ids=contact_ids)
    ids = sorted({c for c in contact_ids if c})
    for start in range(0, len(ids), KNOWN_REFRESH_BATCH):
        known_refresh_on_commit(contact_ids=ids[start : start + KNOWN_REFRESH_BATCH])


def time_zones_changed(*, contact_ids: list[int], at=None) -> int:
    """These contacts' own time zone was just changed (API, admin, CSV import); called inside the writing
    transaction. Journeys re-plan the moments they had computed in the old zone; returns how many moved."""
    from journeys.services import enrollments_zone_replan

    return enrollments_zone_replan(contact_ids=contact_ids, at=at)
