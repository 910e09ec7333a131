"""Keeping the analytics tables fresh: mark dirty, recompute each dirty bucket from its source rows.

- The event fan-out (``analytics.events``) and the order writers mark contacts dirty and note the week a contact
  was active in (insert-only, idempotent).
- ``rollups_refresh`` (beat, every minute) drains dirty contacts: their ``CustomerFact`` rows are recomputed
  set-based from follow relations, group memberships and orders; every day/week bucket whose members may have
  changed (old and new values) is marked dirty, then each dirty bucket is recomputed from the fact table.
- ``rollups_rebuild`` recomputes everything with the same SQL over all contacts (``analytics_rebuild``).
- A customer is lost when no relation is active any more, at the last end of one: a deletion (by the customer or
  the staff member), or the full sync finding the relation gone (dated by that sync, by "unknown").

Recomputing (never incrementing) makes replays, duplicates and out-of-order events harmless.
"""

import logging
import time
from datetime import date, datetime

from django.conf import settings
from django.db import connection, transaction

from analytics.selectors import REFERRAL_KEY
from scrm.clock import now

logger = logging.getLogger(__name__)

DRAIN_LOCK = 7_410_001  # pg advisory lock: one drain at a time
FACT_BATCH = 20_000

_DAY = "(({col}) AT TIME ZONE %(tz)s)::date"
_WEEK = "date_trunc('week', ({col}) AT TIME ZONE %(tz)s)::date"


def _day(col: str) -> str:
    return _DAY.format(col=col)


def _week(col: str) -> str:
    return _WEEK.format(col=col)


# --- per-contact facts --------------------------------------------------------------------------------------------------
# A relation ends by a deletion (deleted_by_customer_at / deleted_by_staff_at, from the callbacks) or, when WeCom no
# longer listed it, by the full sync (contacts.sync): then the sync time is the best end we know, and nobody knows
# who ended it ("unknown").
SYNC_CLOSED_SOURCE = "missing_on_sync"
_SYNC_CLOSED = f"(NOT r.is_active AND r.delete_source = '{SYNC_CLOSED_SOURCE}')"

_FACTS_SQL = f"""
WITH ids AS ({{ids}}),
first_rel AS (
  SELECT DISTINCT ON (r.contact_id) r.contact_id, r.added_at, r.state, r.staff_id
  FROM contacts_followrelation r JOIN ids ON ids.id = r.contact_id
  WHERE r.added_at IS NOT NULL ORDER BY r.contact_id, r.added_at, r.id),
ended AS (
  SELECT r.contact_id, r.is_active,
         CASE WHEN {_SYNC_CLOSED} THEN r.status_changed_at
              ELSE GREATEST(r.deleted_by_customer_at, r.deleted_by_staff_at) END AS ended_at,
         CASE WHEN {_SYNC_CLOSED} THEN 'unknown'
              WHEN r.deleted_by_customer_at IS NOT NULL AND r.deleted_by_customer_at
                   >= COALESCE(r.deleted_by_staff_at, '-infinity') THEN 'customer' ELSE 'staff' END AS ended_by
  FROM contacts_followrelation r JOIN ids ON ids.id = r.contact_id),
rel AS (
  SELECT contact_id, bool_or(is_active) AS active, max(ended_at) AS lost_at,
         (array_agg(ended_by ORDER BY ended_at DESC NULLS LAST))[1] AS lost_by
  FROM ended GROUP BY contact_id),
grp AS (
  SELECT gm.contact_id, min(gm.joined_at) AS joined_at, bool_or(gm.left_at IS NULL) AS present,
         max(gm.left_at) AS left_at
  FROM contacts_groupmember gm JOIN ids ON ids.id = gm.contact_id WHERE gm.member_type = 2
  GROUP BY gm.contact_id),
ord AS (
  SELECT o.contact_id, min(o.paid_at) AS first_at,
         (array_agg(o.paid_at ORDER BY o.paid_at, o.id))[2] AS second_at,
         COALESCE(sum(o.amount) FILTER (WHERE o.paid_at >= fr.added_at
                  AND o.paid_at < fr.added_at + interval '30 days'), 0) AS r30,
         COALESCE(sum(o.amount) FILTER (WHERE o.paid_at >= fr.added_at
                  AND o.paid_at < fr.added_at + interval '90 days'), 0) AS r90,
         COALESCE(sum(o.amount) FILTER (WHERE o.paid_at >= fr.added_at
                  AND o.paid_at < fr.added_at + interval '365 days'), 0) AS r365
  FROM contacts_order o JOIN ids ON ids.id = o.contact_id LEFT JOIN first_rel fr ON fr.contact_id = o.contact_id
  GROUP BY o.contact_id),
lost AS (
  SELECT rel.contact_id, rel.lost_at, rel.lost_by FROM rel
  WHERE NOT rel.active AND rel.lost_at IS NOT NULL)
INSERT INTO analytics_customerfact AS cf (contact_id, corp_id, added_at, added_day, cohort_week, state, livecode_id,
    staff_id, referrer_id, lost_at, lost_day, lost_by, group_joined_at, group_joined_day, group_left_at,
    group_left_day, first_order_at, second_order_at, revenue_30, revenue_90, revenue_365)
SELECT c.id, c.corp_id, fr.added_at, {_day("fr.added_at")}, {_week("fr.added_at")}, COALESCE(fr.state, ''),
    lc.id, fr.staff_id,
    CASE WHEN fr.state ~ '^ref_[0-9]{{{{1,18}}}}$' THEN substr(fr.state, 5)::bigint END,
    CASE WHEN fr.contact_id IS NOT NULL THEN lost.lost_at END,
    CASE WHEN fr.contact_id IS NOT NULL THEN {_day("lost.lost_at")} END,
    CASE WHEN fr.contact_id IS NOT NULL THEN COALESCE(lost.lost_by, '') ELSE '' END,
    grp.joined_at, {_day("grp.joined_at")},
    CASE WHEN NOT grp.present THEN grp.left_at END, CASE WHEN NOT grp.present THEN {_day("grp.left_at")} END,
    ord.first_at, ord.second_at, COALESCE(ord.r30, 0), COALESCE(ord.r90, 0), COALESCE(ord.r365, 0)
FROM contacts_contact c JOIN ids ON ids.id = c.id
LEFT JOIN first_rel fr ON fr.contact_id = c.id
LEFT JOIN livecodes_livecode lc ON lc.state = fr.state AND fr.state <> ''
LEFT JOIN lost ON lost.contact_id = c.id
LEFT JOIN grp ON grp.contact_id = c.id
LEFT JOIN ord ON ord.contact_id = c.id
ON CONFLICT (contact_id) DO UPDATE SET corp_id = EXCLUDED.corp_id, added_at = EXCLUDED.added_at,
    added_day = EXCLUDED.added_day, cohort_week = EXCLUDED.cohort_week, state = EXCLUDED.state,
    livecode_id = EXCLUDED.livecode_id, staff_id = EXCLUDED.staff_id, referrer_id = EXCLUDED.referrer_id,
    lost_at = EXCLUDED.lost_at, lost_day = EXCLUDED.lost_day, lost_by = EXCLUDED.lost_by,
    group_joined_at = EXCLUDED.group_joined_at, group_joined_day = EXCLUDED.group_joined_day,
    group_left_at = EXCLUDED.group_left_at, group_left_day = EXCLUDED.group_left_day,
    first_order_at = EXCLUDED.first_order_at, second_order_at = EXCLUDED.second_order_at,
    revenue_30 = EXCLUDED.revenue_30, revenue_90 = EXCLUDED.revenue_90, revenue_365 = EXCLUDED.revenue_365
WHERE (cf.*) IS DISTINCT FROM (EXCLUDED.*)
{{returning}}
"""  # noqa: S608

_BUCKETS_OF = """
SELECT DISTINCT b.kind, b.day FROM analytics_customerfact cf
CROSS JOIN LATERAL (VALUES ('day', cf.added_day), ('day', cf.lost_day), ('day', cf.group_joined_day),
                           ('day', cf.group_left_day), ('cohort', cf.cohort_week)) b(kind, day)
WHERE cf.contact_id = ANY(%s) AND b.day IS NOT NULL
"""


def _params(**extra) -> dict:
    return {"tz": settings.TIME_ZONE, **extra}


def facts_refresh(*, contact_ids: list[int]) -> int:
    """Recompute the fact rows of these contacts and mark every bucket they were or are in dirty."""
    if not contact_ids:
        return 0
    with connection.cursor() as cur:
        cur.execute(_BUCKETS_OF, [contact_ids])
        before = set(cur.fetchall())
        cur.execute("SELECT contact_id, cohort_week FROM analytics_customerfact WHERE contact_id = ANY(%s)",
                    [contact_ids])
        old_cohort = dict(cur.fetchall())
        cur.execute(_FACTS_SQL.format(ids="SELECT unnest(%(ids)s::bigint[]) AS id",
                                      returning="RETURNING cf.contact_id, cf.cohort_week"), _params(ids=contact_ids))
        new_cohort = dict(cur.fetchall())
        changed = list(new_cohort)
        if not changed:
            return 0
        cur.execute(_BUCKETS_OF, [changed])
        buckets = set(cur.fetchall()) | before
        moved = [cid for cid, week in new_cohort.items() if old_cohort.get(cid) != week]
        if moved:  # their activity counts belong to another cohort now
            cur.execute("SELECT DISTINCT 'activity', week FROM analytics_contactweek WHERE contact_id = ANY(%s)",
                        [moved])
            buckets |= set(cur.fetchall())
        buckets_mark(buckets)
    return len(changed)


def buckets_mark(buckets) -> None:
    rows = sorted({(k, d) for k, d in buckets if d is not None})
    if not rows:
        return
    with connection.cursor() as cur:
        cur.execute("INSERT INTO analytics_dirtybucket (kind, day) SELECT * FROM unnest(%s::text[], %s::date[]) "
                    "ON CONFLICT DO NOTHING", [[k for k, _ in rows], [d for _, d in rows]])


def contacts_mark_dirty(*, contact_ids: list[int]) -> None:
    if contact_ids:
        with connection.cursor() as cur:
            cur.execute("INSERT INTO analytics_dirtycontact (contact_id) SELECT unnest(%s::bigint[]) "
                        "ON CONFLICT DO NOTHING", [sorted(set(contact_ids))])


def contacts_mark_dirty_sql(contact_ids_sql: str, params: list) -> None:
    """Like contacts_mark_dirty for the ids a (trusted, internal) subquery yields: bulk imports."""
    with connection.cursor() as cur:
        cur.execute(f"INSERT INTO analytics_dirtycontact (contact_id) SELECT DISTINCT x.id FROM ({contact_ids_sql}) "  # noqa: S608
                    "x(id) ON CONFLICT DO NOTHING", params)


_ACTIVE_MARK = (
    "WITH d AS (INSERT INTO analytics_dirtycontact (contact_id) VALUES (%(c)s) ON CONFLICT DO NOTHING), "  # noqa: S608
    f"w AS (INSERT INTO analytics_contactweek (week, contact_id) VALUES ({_week('%(at)s::timestamptz')}, "
    "%(c)s) ON CONFLICT DO NOTHING RETURNING week) "
    "INSERT INTO analytics_dirtybucket (kind, day) SELECT 'activity', week FROM w ON CONFLICT DO NOTHING")


def contact_active_mark(*, contact_id: int, at: datetime) -> None:
    """An event happened to this contact: the contact is dirty and was active in ``at``'s week."""
    with connection.cursor() as cur:
        cur.execute(_ACTIVE_MARK, _params(c=contact_id, at=at))


# --- buckets ------------------------------------------------------------------------------------------------------------
_GROWTH_SQL = """
WITH f AS (
  SELECT added_day AS day, {channel} AS state, livecode_id, staff_id, 1 AS a, 0 AS lc, 0 AS ls, 0 AS lu, 0 AS gj,
         0 AS gl
    FROM analytics_customerfact WHERE added_day {days}
  UNION ALL
  SELECT lost_day, {channel}, livecode_id, staff_id, 0, (lost_by = 'customer')::int, (lost_by = 'staff')::int,
         (lost_by = 'unknown')::int, 0, 0
    FROM analytics_customerfact WHERE lost_day {days}
  UNION ALL
  SELECT group_joined_day, {channel}, livecode_id, staff_id, 0, 0, 0, 0, 1, 0
    FROM analytics_customerfact WHERE group_joined_day {days}
  UNION ALL
  SELECT group_left_day, {channel}, livecode_id, staff_id, 0, 0, 0, 0, 0, 1
    FROM analytics_customerfact WHERE group_left_day {days})
INSERT INTO analytics_dailygrowth (day, dim, key, added, lost_by_customer, lost_by_staff, lost_by_unknown,
                                   group_joined, group_left)
SELECT f.day, d.dim, d.key, sum(a), sum(lc), sum(ls), sum(lu), sum(gj), sum(gl)
FROM f CROSS JOIN LATERAL (VALUES ('source', f.state), ('livecode', COALESCE(f.livecode_id::text, '')),
                                  ('staff', COALESCE(f.staff_id::text, ''))) d(dim, key)
GROUP BY f.day, d.dim, d.key
"""

_COHORT_SQL = """
INSERT INTO analytics_dailycohort (day, state, livecode_id, staff_id, added, joined_group, first_order, repeat_order,
    retained_30, revenue_30, revenue_90, revenue_365)
SELECT added_day, {channel}, COALESCE(livecode_id, 0), COALESCE(staff_id, 0), count(*), count(group_joined_at),
    count(first_order_at), count(second_order_at),
    count(*) FILTER (WHERE lost_at IS NULL OR lost_at >= added_at + interval '30 days'),
    sum(revenue_30), sum(revenue_90), sum(revenue_365)
FROM analytics_customerfact WHERE added_day {days}
GROUP BY added_day, {channel}, COALESCE(livecode_id, 0), COALESCE(staff_id, 0)
"""

_COHORT_LOST_SQL = """
INSERT INTO analytics_cohortweek (cohort_week, "offset", lost, active)
SELECT cohort_week, (lost_day - cohort_week) / 7, count(*), 0
FROM analytics_customerfact WHERE cohort_week {days} AND lost_day IS NOT NULL
GROUP BY cohort_week, (lost_day - cohort_week) / 7
ON CONFLICT (cohort_week, "offset") DO UPDATE SET lost = EXCLUDED.lost
"""

_ACTIVITY_SQL = """
INSERT INTO analytics_cohortweek (cohort_week, "offset", lost, active)
SELECT cf.cohort_week, (cw.week - cf.cohort_week) / 7, 0, count(*)
FROM analytics_contactweek cw JOIN analytics_customerfact cf ON cf.contact_id = cw.contact_id
WHERE cw.week {days} AND cf.cohort_week IS NOT NULL AND cw.week >= cf.cohort_week
GROUP BY cf.cohort_week, (cw.week - cf.cohort_week) / 7
ON CONFLICT (cohort_week, "offset") DO UPDATE SET active = EXCLUDED.active
"""


# Referral states ("ref_<contact id>") are one channel in the rollups (REFERRAL_KEY): one row per referrer would
# swamp them.
CHANNEL = f"CASE WHEN referrer_id IS NOT NULL THEN '{REFERRAL_KEY}' ELSE state END"


def _where(days: list[date] | None) -> tuple[str, list]:
    return ("IS NOT NULL", []) if days is None else ("= ANY(%s::date[])", [days])


def buckets_recompute(*, kind: str, days: list[date] | None) -> None:
    """Recompute buckets of one kind (``days`` None = all of them) from the fact table."""
    cond, arg = _where(days)
    with connection.cursor() as cur:
        if kind == "day":
            cur.execute(f"DELETE FROM analytics_dailygrowth WHERE day {cond}", arg)  # noqa: S608
            cur.execute(_GROWTH_SQL.format(days=cond, channel=CHANNEL), arg * 4)
            cur.execute(f"DELETE FROM analytics_dailycohort WHERE day {cond}", arg)  # noqa: S608
            cur.execute(_COHORT_SQL.format(days=cond, channel=CHANNEL), arg)
        elif kind == "cohort":
            cur.execute(f"UPDATE analytics_cohortweek SET lost = 0 WHERE cohort_week {cond} AND lost <> 0", arg)  # noqa: S608
            cur.execute(_COHORT_LOST_SQL.format(days=cond), arg)
        elif kind == "activity":
            cur.execute("UPDATE analytics_cohortweek SET active = 0 WHERE active <> 0 AND "  # noqa: S608
                        f"cohort_week + 7 * \"offset\" {cond}", arg)
            cur.execute(_ACTIVITY_SQL.format(days=cond), arg)
        cur.execute("DELETE FROM analytics_cohortweek WHERE lost = 0 AND active = 0")


# --- the drain ------------------------------------------------------------------------------------------------------------
def rollups_refresh(*, batch: int = FACT_BATCH) -> dict:
    """Drain dirty contacts and dirty buckets (the every-minute beat task). Returns what it did."""
    done = {"contacts": 0, "buckets": 0}
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [DRAIN_LOCK])
        if not cur.fetchone()[0]:
            return {"skipped": True, **done}
        while True:
            cur.execute("DELETE FROM analytics_dirtycontact WHERE contact_id IN (SELECT contact_id FROM "
                        "analytics_dirtycontact ORDER BY contact_id LIMIT %s) RETURNING contact_id", [batch])
            ids = [r[0] for r in cur.fetchall()]
            if not ids:
                break
            facts_refresh(contact_ids=ids)
            done["contacts"] += len(ids)
        cur.execute("DELETE FROM analytics_dirtybucket RETURNING kind, day")
        by_kind: dict[str, list[date]] = {}
        for kind, day in cur.fetchall():
            by_kind.setdefault(kind, []).append(day)
        for kind in ("day", "cohort", "activity"):
            if by_kind.get(kind):
                buckets_recompute(kind=kind, days=sorted(by_kind[kind]))
                done["buckets"] += len(by_kind[kind])
    if done["contacts"]:
        logger.info("analytics rollups refreshed contacts=%s buckets=%s", done["contacts"], done["buckets"])
    return done


def rollups_rebuild(*, since: date | None = None) -> dict:
    """Rebuild set-based. Without ``since``: every table from scratch. With ``since``: contacts that had an event
    (or an order, or a relation the full sync closed) since that day are marked dirty, their active weeks re-read,
    then the usual drain runs."""
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [DRAIN_LOCK])
        if since is None:
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending FK checks of this transaction
            cur.execute("TRUNCATE analytics_customerfact, analytics_dailygrowth, analytics_dailycohort, "
                        "analytics_cohortweek, analytics_contactweek, analytics_dirtycontact, analytics_dirtybucket")
            cur.execute(_FACTS_SQL.format(ids="SELECT id FROM contacts_contact", returning=""), _params())
            cur.execute(f"INSERT INTO analytics_contactweek (week, contact_id) SELECT DISTINCT "  # noqa: S608
                        f"{_week('occurred_at')}, contact_id FROM contacts_contactevent WHERE contact_id IS NOT NULL",
                        _params())
            for kind in ("day", "cohort", "activity"):
                buckets_recompute(kind=kind, days=None)
        else:
            start = datetime.combine(since, datetime.min.time(), tzinfo=_tz())
            cur.execute(f"INSERT INTO analytics_contactweek (week, contact_id) SELECT DISTINCT "  # noqa: S608
                        f"{_week('occurred_at')}, contact_id FROM contacts_contactevent WHERE contact_id IS NOT NULL "
                        "AND occurred_at >= %(start)s ON CONFLICT DO NOTHING", _params(start=start))
            cur.execute(f"INSERT INTO analytics_dirtybucket (kind, day) SELECT DISTINCT 'activity', "  # noqa: S608
                        f"{_week('occurred_at')} FROM contacts_contactevent WHERE occurred_at >= %(start)s "
                        "ON CONFLICT DO NOTHING", _params(start=start))
            contacts_mark_dirty_sql(  # and relations the full sync closed (no event records those)
                "SELECT contact_id FROM contacts_contactevent WHERE contact_id IS NOT NULL AND occurred_at >= %s "
                "UNION SELECT contact_id FROM contacts_order WHERE updated_at >= %s "
                "UNION SELECT contact_id FROM contacts_followrelation WHERE delete_source = %s "
                "AND status_changed_at >= %s", [start, start, SYNC_CLOSED_SOURCE, start])
    if since is not None:
        rollups_refresh()
    rfm_snapshot_refresh()
    campaigns = campaign_stats_refresh(all_campaigns=True)
    return {"seconds": round(time.monotonic() - started, 2), "campaigns": campaigns}


def _tz():
    from django.utils import timezone

    return timezone.get_default_timezone()


# --- RFM grid ---------------------------------------------------------------------------------------------------------------
def rfm_snapshot_refresh() -> int:
    """Replace the RFM grid snapshot with the current scores (call after ``contacts_rfm_score``)."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM analytics_rfmcell")
        cur.execute("INSERT INTO analytics_rfmcell (r, f, m, count, value, scored_at) SELECT rfm_r, rfm_f, rfm_m, "
                    "count(*), sum(total_spent), %s FROM contacts_contactfacts WHERE order_count > 0 AND rfm_r > 0 "
                    "AND rfm_f > 0 AND rfm_m > 0 GROUP BY rfm_r, rfm_f, rfm_m", [now()])
        return cur.rowcount


# --- campaign outcomes -------------------------------------------------------------------------------------------------------
from analytics.campaigns import campaign_stats_refresh  # noqa: E402  (re-exported: the rebuild refreshes them too)
