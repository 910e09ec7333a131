"""How analytics reacts to contact events, order writes and WeCom syncs (called from contacts.fanout): mark dirty,
nothing more.

The rollups are recomputed by the every-minute drain (``analytics.rollups.rollups_refresh``), never here.
"""

from contacts.models import ContactEvent


def contact_event_handle(*, event: ContactEvent, context: dict) -> None:
    from analytics.rollups import contact_active_mark

    if event.contact_id is not None:
        contact_active_mark(contact_id=event.contact_id, at=event.occurred_at)


def contacts_facts_changed(*, contact_ids: list[int] | None = None, contact_ids_sql: str = "",
                           params: list | None = None) -> None:
    """What the facts of these contacts are computed from changed without an event: orders (also bulk imports),
    follow relations and group memberships written without an event (the full sync, a group re-read from WeCom, a
    dismissed group)."""
    from analytics.rollups import contacts_mark_dirty, contacts_mark_dirty_sql

    if contact_ids_sql:
        contacts_mark_dirty_sql(contact_ids_sql, params or [])
    else:
        contacts_mark_dirty(contact_ids=contact_ids or [])
