"""Date- and state-based triggers, scanned set-based by a beat sweeper (never per contact in the broker):
entitlement expiring in N days / expired, renewal due, inactive N days, entered a segment, tag added."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from contacts.timezones import known_time_zones
from journeys import engine, services
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


# --- local dates -------------------------------------------------------------------------------------------------
# A date trigger counts days in each contact's own zone (``Contact.time_zone``; blank: the corp's). The local days
# are computed here with zoneinfo, the same tz database the engine uses, as one UTC window per zone; the query then
# matches each row against its contact's window (set-based: a join with the windows, no loop over contacts). Postgres'
# ``AT TIME ZONE`` is not used because its tz database may lack a name zoneinfo knows (one such contact would fail
# the whole scan) or disagree on a rule.
@dataclass(frozen=True)
class _Windows:
    """The local day ``at``'s date + ``offset`` in the corp zone and in every zone zoneinfo knows."""

    names: list[str]
    starts: list[datetime]
    ends: list[datetime]
    days: list[date]
    corp: tuple[datetime, datetime, date]

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """Every window lies inside these (lets the query skip rows far from all of them)."""
        return min(self.starts + [self.corp[0]]), max(self.ends + [self.corp[1]])

    @property
    def params(self) -> dict:
        return {"w_names": self.names, "w_starts": self.starts, "w_ends": self.ends, "w_days": self.days,
                "corp_start": self.corp[0], "corp_end": self.corp[1], "corp_day": self.corp[2],
                "low": self.bounds[0], "high": self.bounds[1]}


def _local_day(at: datetime, offset: int, zone: ZoneInfo) -> tuple[datetime, datetime, date]:
    day = at.astimezone(zone).date() + timedelta(days=offset)
    return (datetime.combine(day, time(0), tzinfo=zone), datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone),
            day)


@lru_cache(maxsize=1)
def _zones() -> tuple[tuple[str, ZoneInfo], ...]:
    """Kept alive: a ZoneInfo nobody holds is read from disk again (about 0.1 ms per zone)."""
    return tuple((name, ZoneInfo(name)) for name in sorted(known_time_zones()))


def _windows(at: datetime, offset: int) -> _Windows:
    corp = _local_day(at, offset, ZoneInfo(settings.TIME_ZONE))
    zones = _zones()
    spans = [_local_day(at, offset, zone) for _, zone in zones]
    return _Windows([name for name, _ in zones], [s[0] for s in spans], [s[1] for s in spans],
                    [s[2] for s in spans], corp)


# A contact's window: their zone's when zoneinfo knows it (stored names are canonical), else the corp's (blank, or a
# name a newer tz database dropped: the engine's zone_for falls back the same way).
_ZONE_JOIN = ("LEFT JOIN unnest(%(w_names)s::text[], %(w_starts)s::timestamptz[], %(w_ends)s::timestamptz[], "
              "%(w_days)s::date[]) AS w(name, lo, hi, day) ON w.name = c.time_zone")


def _in_window(column: str) -> str:
    return (f"{column} >= %(low)s AND {column} < %(high)s AND {column} >= COALESCE(w.lo, %(corp_start)s) "
            f"AND {column} < COALESCE(w.hi, %(corp_end)s)")


def journey_scan(*, journey: Journey, at: datetime) -> int:
    cfg = journey.trigger_config or {}
    trig = journey.trigger
    if trig in (Journey.Trigger.ENTITLEMENT_EXPIRING, Journey.Trigger.RENEWAL_DUE, Journey.Trigger.ENTITLEMENT_EXPIRED):
        # Expiring in N days: the entitlement expires on the contact's local date N days from their today;
        # expired: it expired on their local yesterday. Entered once per entitlement (key ent:<id>), whatever day
        # and zone the scan that finds it runs in.
        offset = int(cfg.get("days", 0)) if trig != Journey.Trigger.ENTITLEMENT_EXPIRED else -1
        windows = _windows(at, offset)
        kinds = ["membership"] if trig == Journey.Trigger.RENEWAL_DUE else cfg.get("kinds") or [
            "coupon", "course", "membership"]
        statuses = ["active", "expired"] if trig == Journey.Trigger.ENTITLEMENT_EXPIRED else ["active"]
        with connection.cursor() as cur:
            cur.execute("SELECT e.id, e.contact_id, e.name, e.expires_at, c.time_zone FROM contacts_entitlement e "  # noqa: S608
                        f"JOIN contacts_contact c ON c.id = e.contact_id {_ZONE_JOIN} WHERE e.corp_id = %(corp)s "
                        f"AND e.kind = ANY(%(kinds)s) AND e.status = ANY(%(statuses)s) AND {_in_window('e.expires_at')} "
                        "ORDER BY e.contact_id, e.expires_at, e.id",
                        {**windows.params, "corp": journey.corp_id, "kinds": kinds, "statuses": statuses})
            rows = cur.fetchall()
        policy = engine.Policy(tz=settings.TIME_ZONE)
        return services.journey_enroll_rows(journey=journey, at=at, rows=[
            (contact_id, f"ent:{ent_id}", {"coupon_name": name, "entitlement_id": ent_id, "coupon_expires": expires
                                          .astimezone(engine.zone_for(zone, policy)).date().isoformat()})
            for ent_id, contact_id, name, expires, zone in rows])
    if trig == Journey.Trigger.INACTIVE:
        # Last active on the contact's local date N days before their today; the key names that date, so rescans
        # (before and after the corp's or the contact's midnight) find the same key.
        days = int(cfg.get("days", 30))
        windows = _windows(at, -days)
        with connection.cursor() as cur:
            cur.execute("SELECT f.contact_id, COALESCE(w.day, %(corp_day)s) FROM contacts_contactfacts f "  # noqa: S608
                        f"JOIN contacts_contact c ON c.id = f.contact_id {_ZONE_JOIN} WHERE c.corp_id = %(corp)s "
                        f"AND {_in_window('f.last_active_at')} ORDER BY f.contact_id",
                        {**windows.params, "corp": journey.corp_id})
            rows = cur.fetchall()
        return services.journey_enroll_rows(journey=journey, at=at, rows=[
            (contact_id, f"inactive:{day.isoformat()}", {}) for contact_id, day in rows])
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

