"""The sweeper's set-based path: due sends decided, written and finished in SQL, a batch at a time.

For the common case (a live journey whose due step is a 1:1 send of a non-personalised template, and the last
step) the per-row engine would answer "send, then done" for every customer who passes the run-time checks.
Those checks, the outbox rows of the rows that pass and the finishing of their enrollments are one SQL statement
per batch, over the batch claimed into a temporary table: no round trip and no Python work per row. Every other row
(held back by any check, or a journey shape this path does not cover) goes to the per-row engine in
``journeys/scheduler.py``, which therefore decides every hold, skip, exit and conversion exactly as before;
``tests/journeys/test_fastpath.py`` runs both paths on the same data and compares.

Idempotency keys, step-run audit, seq arithmetic and statuses are those of the per-row path.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from journeys import engine
from journeys.messages import content_hash, render
from journeys.models import Channel, Journey

ACTIVE_OUTBOX = ("pending", "sending", "queued", "sent", "unknown")  # outbox rows that count against cap and quota


@dataclass(frozen=True)
class FinalSend:
    """A due step this path finishes: a 1:1 send that is the journey's last step."""

    journey_id: int
    corp_id: int
    priority: str
    goal_event: str
    step_id: int
    position_after: int
    content: str  # JSON text, rendered once
    digest: str


def final_send_get(plan, step, *, at: datetime, policy: engine.Policy) -> FinalSend | None:
    """The step's ``FinalSend`` when this path may take it at ``at``, else None (per-row engine)."""
    journey = plan.journey
    if journey.status in (Journey.Status.PAUSED, Journey.Status.DRAFT):
        return None
    if step is None or step.kind != "send" or step.channel != Channel.SINGLE or step.template is None:
        return None
    template = step.template
    if "{{" in template.text:  # personalised: rendered per row by the per-row path
        return None
    after = plan.after(step.position)
    if plan.step_at(after) is not None:
        return None
    try:
        window = engine._window((step.config or {}).get("window"))
    except (ValueError, IndexError, TypeError):
        return None
    zone = engine.ZoneInfo(policy.tz)
    if engine.next_allowed(at, zone=zone, quiet=(policy.quiet_start, policy.quiet_end), window=window) > at:
        return None  # quiet hours / outside the send window: the per-row path records the hold
    content = render(text=template.text, kind=template.kind, attachment=template.attachment, values={}).as_dict()
    return FinalSend(journey_id=journey.pk, corp_id=journey.corp_id, priority=journey.priority,
                     goal_event=journey.goal_event, step_id=step.pk, position_after=after,
                     content=json.dumps(content, ensure_ascii=False),
                     digest=content_hash({**content, "channel": step.channel}))


# --- the claim table ----------------------------------------------------------------------------------------
# A batch is claimed into a temporary table of the sweeper's own connection (no WAL, emptied at each commit): the
# set-based statements read the batch there, so the rows never travel to Python and back as arrays, and only the
# rows this path does not take are fetched. ``tid`` is the claimed row's physical address: it cannot move while
# the claim's row lock is held, and finishing by it skips an index lookup per row.
CLAIM_COLS = ("id", "journey_id", "contact_id", "position", "seq", "holdout", "entered_at", "hold_count", "context",
              "next_run_at")
_CLAIM_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS sweep_claimed (tid tid, id bigint, journey_id bigint, contact_id bigint, "
    "position int, seq int, holdout bool, entered_at timestamptz, hold_count int, context jsonb, "
    "next_run_at timestamptz, taken bool NOT NULL DEFAULT false) ON COMMIT DELETE ROWS")


def claim(*, at: datetime, limit: int, floor: datetime | None) -> list[tuple[int, int, int, datetime]]:
    """Claim up to ``limit`` due enrollments into ``sweep_claimed``: the earliest rows of the due index
    (``journeys_enrollmentdue``, index ``enrollment_due``), each enrollment row locked ``FOR UPDATE SKIP LOCKED``.
    The enrollment's own ``status`` and ``next_run_at`` are in the condition so that they are re-checked on the
    row's latest version when it was changed after this statement's snapshot (a batch of the other sweeper that
    committed meanwhile: its due rows are still in our snapshot). ``e.next_run_at <= d.next_run_at`` rather than
    ``<= at``: the planner's statistics lag behind the rows that just came due, and with a constant it would
    estimate "almost none" and scan the enrollment table instead of walking the due index in order. For the same
    reason the claim statement runs with every plan but that walk switched off (``WALK_DUE_INDEX``): whatever the
    statistics say, the due index is read in order and each enrollment fetched by its key. Returns what the batch
    holds: (journey id, position, rows, latest next_run_at) per journey and position. Call inside the batch's
    transaction."""
    with connection.cursor() as cur:
        cur.execute("SET LOCAL jit = off")  # batch queries cross the JIT threshold; compiling costs more here
        cur.execute(_CLAIM_TABLE)
        cur.execute("DELETE FROM sweep_claimed")  # empty after a commit; not when the sweep runs in an outer atomic
        cur.execute(WALK_DUE_INDEX)
        cur.execute(
            f"WITH c AS ({claim_sql(['e.ctid', *('e.' + c for c in CLAIM_COLS)], floor=bool(floor))}), "  # noqa: S608
            f"ins AS (INSERT INTO sweep_claimed (tid, {', '.join(CLAIM_COLS)}) SELECT * FROM c "
            "RETURNING journey_id, position, next_run_at) "
            "SELECT journey_id, position, count(*), max(next_run_at) FROM ins GROUP BY journey_id, position",
            [at, floor, limit] if floor else [at, limit])
        found = cur.fetchall()
        cur.execute(PLAN_FREELY)
        return found


def claim_sql(columns: list[str], *, floor: bool = False) -> str:
    """The claim query (parameters: ``at``, then ``floor`` when asked for, then the limit), selecting ``columns``
    of the enrollment ``e`` (and the due row ``d``). Run it under ``WALK_DUE_INDEX``."""
    above = "AND d.next_run_at >= %s " if floor else ""
    return (f"SELECT {', '.join(columns)} FROM journeys_enrollmentdue d "  # noqa: S608 - fixed text
            "JOIN journeys_enrollment e ON e.id = d.enrollment_id "
            f"WHERE d.next_run_at <= %s {above}AND e.status = 'active' AND e.next_run_at <= d.next_run_at "
            "ORDER BY d.next_run_at LIMIT %s FOR UPDATE OF e SKIP LOCKED")


# The claim's only sensible plan, made the only one the planner may pick (for this statement; PLAN_FREELY after it).
WALK_DUE_INDEX = ("SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; "
                  "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
PLAN_FREELY = ("SET LOCAL enable_seqscan = on; SET LOCAL enable_bitmapscan = on; SET LOCAL enable_sort = on; "
               "SET LOCAL enable_hashjoin = on; SET LOCAL enable_mergejoin = on")


def rest_rows() -> list[dict]:
    """The claimed rows this path did not take, in claim order, for the per-row engine."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT {', '.join(CLAIM_COLS)} FROM sweep_claimed WHERE NOT taken "  # noqa: S608
                    "ORDER BY next_run_at, id")
        return [dict(zip(CLAIM_COLS, r, strict=True)) for r in cur.fetchall()]


def zones_elsewhere(policy: engine.Policy) -> bool:
    """Whether any customer has a time zone of their own other than the policy's (then the clean rows
    exclude them: their quiet hours and windows are decided by the per-row engine in their zone)."""
    with connection.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM contacts_contact WHERE time_zone <> '' AND time_zone <> %s)",
                    [policy.tz])
        return cur.fetchone()[0]


def final_sends_run(shape: FinalSend, positions: list[int], *, at: datetime, policy: engine.Policy,
                    other_zones: bool) -> tuple[int, dict[int, int]]:
    """Send-then-done, in one statement, for the claimed rows of ``shape`` (its journey, at ``positions``) that
    pass every run-time check the engine makes before a 1:1 send: still a customer, not converted, not opted out
    (marketing), receive quota not blocked and not used up this month, frequency cap not reached (marketing).
    Rows of a holdout contact, or of a contact claimed twice in the batch (there the second row must see the
    first row's send in its counts), stay for the per-row engine.

    Writes the outbox rows (keys ``j:<enrollment>:<seq>`` as the per-row path writes them; a key already present
    inserts nothing), finishes the enrollments (seq moves twice, position past the last step) and marks the rows
    taken. Returns (rows taken, {staff id: outbox rows inserted})."""
    marketing = shape.priority == engine.MARKETING
    window_start = at - timedelta(days=policy.cap_days)
    month_start = engine.month_start(at, policy.tz)
    params = {"journey": shape.journey_id, "positions": int_array(positions), "at": at, "win": window_start,
              "month": month_start, "since": min(window_start, month_start), "active": list(ACTIVE_OUTBOX),
              "quota": engine.month_quota(at, policy, engine.ZoneInfo(policy.tz)),
              "cap": policy.cap_max if marketing else 0, "goal": shape.goal_event,
              "opt_out": settings.JOURNEYS_OPT_OUT_TAG, "tz": policy.tz, "corp": shape.corp_id,
              "priority": shape.priority, "content": shape.content, "digest": shape.digest, "step": shape.step_id,
              "after": shape.position_after}
    checks = [
        "NOT EXISTS (SELECT 1 FROM journeys_contactquota q WHERE q.contact_id = e.contact_id "
        "AND q.blocked_until > %(at)s)",
        "COALESCE(k.month, 0) < %(quota)s",
    ]
    if marketing:
        checks.append("NOT EXISTS (SELECT 1 FROM tagging_contacttag ct JOIN tagging_tag t ON t.id = ct.tag_id "
                      "WHERE ct.contact_id = e.contact_id AND t.name = %(opt_out)s)")
        if policy.cap_max:
            checks.append("COALESCE(k.recent, 0) < %(cap)s")
    if shape.goal_event:  # the goal happened since entry (read under the claim's row lock)
        checks.append(
            "NOT EXISTS (SELECT 1 FROM contacts_contactevent ev WHERE ev.contact_id = e.contact_id "
            "AND ev.occurred_at >= e.entered_at AND (ev.kind = %(goal)s OR (%(goal)s LIKE 'custom:%%' "
            "AND ev.kind = 'custom' AND ev.data->>'type' = substr(%(goal)s, 8))))")
    if other_zones:
        checks.append("NOT EXISTS (SELECT 1 FROM contacts_contact z WHERE z.id = e.contact_id "
                      "AND z.time_zone <> '' AND z.time_zone <> %(tz)s)")
    sql = (
        "WITH e AS MATERIALIZED (SELECT c.tid, c.id, c.contact_id, c.seq, c.entered_at FROM sweep_claimed c "  # noqa: S608
        "WHERE c.journey_id = %(journey)s AND c.position = ANY(%(positions)s::int[]) AND NOT c.holdout "
        "AND c.contact_id NOT IN (SELECT d.contact_id FROM sweep_claimed d GROUP BY d.contact_id "
        "HAVING count(*) > 1)), "
        "clean AS MATERIALIZED (SELECT e.tid, e.id, e.contact_id, e.seq, s.staff_id FROM e "
        # the customer's staff member: the newest active relation (index relation_latest_active)
        "JOIN LATERAL (SELECT r.staff_id FROM contacts_followrelation r WHERE r.contact_id = e.contact_id "
        "AND r.is_active ORDER BY r.added_at DESC NULLS LAST, r.id DESC LIMIT 1) s ON true "
        "LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE o.priority = 'marketing' AND o.created_at >= %(win)s) AS "
        "recent, count(*) FILTER (WHERE o.channel = 'single' AND o.created_at >= %(month)s) AS month "
        "FROM journeys_outboundmessage o WHERE o.contact_id = e.contact_id AND o.created_at >= %(since)s "
        "AND o.status = ANY(%(active)s) AND o.channel <> 'staff_reminder') k ON true "
        f"WHERE {' AND '.join(checks)}), "
        # No ON CONFLICT: the claim's lock makes the key ours, so a plain probe of the unique index is enough and
        # skips the speculative insertion (the unique constraint still stands behind it).
        "ins AS (INSERT INTO journeys_outboundmessage (corp_id, idempotency_key, channel, priority, contact_id, "
        "chat_id, staff_id, content, content_hash, journey_id, step_id, enrollment_id, created_at, status, attempts, "
        "last_error) SELECT %(corp)s, v.key, 'single', %(priority)s, v.contact_id, '', v.staff_id, "
        "%(content)s::jsonb, %(digest)s, %(journey)s, %(step)s, v.id, %(at)s, 'pending', 0, '' FROM (SELECT clean.*, "
        "'j:' || clean.id || ':' || clean.seq AS key FROM clean ORDER BY clean.id) v WHERE NOT EXISTS "
        "(SELECT 1 FROM journeys_outboundmessage x WHERE x.idempotency_key = v.key) RETURNING staff_id), "
        "fin AS (UPDATE journeys_enrollment en SET position = %(after)s, seq = en.seq + 2, hold_count = 0, "
        "status = 'done', next_run_at = NULL, finished_at = %(at)s FROM clean WHERE en.ctid = clean.tid), "
        "took AS (UPDATE sweep_claimed t SET taken = true FROM clean WHERE t.id = clean.id) "
        "SELECT staff_id, count(*) FROM ins GROUP BY staff_id UNION ALL SELECT NULL, count(*) FROM clean")
    with connection.cursor() as cur:
        cur.execute(sql, params)
        found = cur.fetchall()
    taken = next(n for staff_id, n in found if staff_id is None)
    return taken, {staff_id: n for staff_id, n in found if staff_id is not None}


def int_array(values) -> str:
    """A Postgres array literal (``'{1,2,3}'``, cast in the query): one value to parse instead of thousands of
    ``ARRAY[…]`` constants, as psycopg renders a list."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"

