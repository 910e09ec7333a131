"""Date- and state-based triggers, scanned set-based by a beat sweeper (never per contact in the broker):
entitlement expiring in N days / expired, renewal due, inactive N days, entered a segment, tag added."""

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from journeys import services
from journeys.models import Journey
from scrm.clock import now


def triggers_scan(*, at: datetime | None = None) -> dict[str, int]:
    at = at or now()
    entered: dict[str, int] = {}
    for journey in Journey.objects.filter(status=Journey.Status.LIVE).exclude(
            trigger__in=[Journey.Trigger.MANUAL, Journey.Trigger.CONTACT_ADDED, Journey.Trigger.ORDER_PAID,
                         Journey.Trigger.CUSTOM_EVENT, Journey.Trigger.TAG_REMOVED]):
        entered[f"{journey.pk}:{journey.trigger}"] = journey_scan(journey=journey, at=at)
    return entered


def _day(at: datetime, offset: int) -> tuple[datetime, datetime]:
    zone = ZoneInfo(settings.TIME_ZONE)
    day = at.astimezone(zone).date() + timedelta(days=offset)
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start, start + timedelta(days=1)


def journey_scan(*, journey: Journey, at: datetime) -> int:
    cfg = journey.trigger_config or {}
    trig = journey.trigger
    if trig in (Journey.Trigger.ENTITLEMENT_EXPIRING, Journey.Trigger.RENEWAL_DUE, Journey.Trigger.ENTITLEMENT_EXPIRED):
        offset = int(cfg.get("days", 0)) if trig != Journey.Trigger.ENTITLEMENT_EXPIRED else -1
        start, end = _day(at, offset)
        kinds = ["membership"] if trig == Journey.Trigger.RENEWAL_DUE else cfg.get("kinds") or [
            "coupon", "course", "membership"]
        with connection.cursor() as cur:
            cur.execute("SELECT id, contact_id, name, expires_at FROM contacts_entitlement WHERE corp_id = %s "
                        "AND kind = ANY(%s) AND expires_at >= %s AND expires_at < %s AND status = ANY(%s)",
                        [journey.corp_id, kinds, start, end,
                         ["active", "expired"] if trig == Journey.Trigger.ENTITLEMENT_EXPIRED else ["active"]])
            rows = cur.fetchall()
        total = 0
        for ent_id, contact_id, name, expires in rows:
            total += services.journey_enroll(
                journey=journey, contact_ids=[contact_id], entry_key=f"ent:{ent_id}", at=at,
                context={"coupon_name": name, "coupon_expires": expires.astimezone(
                    ZoneInfo(settings.TIME_ZONE)).date().isoformat(), "entitlement_id": ent_id})
        return total
    if trig == Journey.Trigger.INACTIVE:
        days = int(cfg.get("days", 30))
        start, end = _day(at, -days)
        with connection.cursor() as cur:
            cur.execute("SELECT f.contact_id FROM contacts_contactfacts f JOIN contacts_contact c ON c.id = f.contact_id "
                        "WHERE c.corp_id = %s AND f.last_active_at >= %s AND f.last_active_at < %s",
                        [journey.corp_id, start, end])
            ids = [r[0] for r in cur.fetchall()]
        return services.journey_enroll(journey=journey, contact_ids=ids, entry_key=f"inactive:{start.date()}", at=at)
    if trig == Journey.Trigger.SEGMENT_ENTERED:
        return _segment_entered(journey, cfg, at)
    if trig == Journey.Trigger.TAG_ADDED:
        since = max(journey.validated_at or at, at - timedelta(days=1))
        with connection.cursor() as cur:
            cur.execute("SELECT contact_id FROM tagging_contacttag WHERE tag_id = %s AND created_at >= %s",
                        [cfg.get("tag_id"), since])
            ids = [r[0] for r in cur.fetchall()]
        return services.journey_enroll(journey=journey, contact_ids=ids, entry_key="tag:+", at=at)
    return 0


def _segment_entered(journey: Journey, cfg: dict, at: datetime) -> int:
    """Contacts who entered the segment since the last sweep (a transition, not "is in it"): the membership seen by
    the journey family is kept as a bitmap, and entrants are enrolled in the same transaction that moves it on.
    ``include_existing`` (default true) decides whether those already in the segment at go-live enter too."""
    from tagging.models import Segment
    from tagging.segments import segment_entrants

    segment = Segment.objects.filter(pk=cfg.get("segment_id")).first()
    if segment is None:
        return 0
    family = journey.family_id or journey.pk
    with transaction.atomic():
        entered = segment_entrants(key=f"journey:{family}:segment:{segment.pk}", expression=segment.expression,
                                   include_existing=bool(cfg.get("include_existing", True)), at=at)
        total = 0
        for start in range(0, len(entered), 5000):
            total += services.journey_enroll(journey=journey, contact_ids=entered[start:start + 5000],
                                             entry_key=f"segment:{at.isoformat()}", at=at)
        return total

