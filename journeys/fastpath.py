"""The sweeper's set-based path: due sends decided, written and finished in SQL, a batch at a time.

For the common case (a live journey whose due step is a 1:1 send of a non-personalised template, and the last
step) the per-row engine would answer "send, then done" for every customer who passes the run-time checks.
Those checks are computed here for the whole batch in one query; the rows that pass get their outbox row
(``INSERT … SELECT``) and their enrollment finished (one ``UPDATE``) without a round trip per row. Every other row
(held back by any check, or a journey shape this path does not cover) goes to the per-row engine in
``journeys/scheduler.py``, which therefore decides every hold, skip, exit and conversion exactly as before;
``tests/journeys/test_fastpath.py`` runs both paths on the same data and compares.

Idempotency keys, step-run audit, seq arithmetic and statuses are those of the per-row path.
"""

import json
from collections import Counter, defaultdict
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


def rows_split(rows: list[dict], *, plans, at: datetime, policy: engine.Policy) -> tuple[dict, list[dict]]:
    """Partition claimed rows into ``{FinalSend: [row, …]}`` candidates and the rest (per-row engine).

    A contact claimed twice in one batch goes to the per-row path: there the second row sees the first row's
    send in its cap and quota counts."""
    per_contact = Counter(r["contact_id"] for r in rows)
    shapes: dict = {}
    candidates: dict = defaultdict(list)
    rest: list[dict] = []
    for row in rows:
        plan = plans[row["journey_id"]]
        step = plan.step_at(row["position"])
        key = (row["journey_id"], step.position if step else None)
        if key not in shapes:
            shapes[key] = final_send_get(plan, step, at=at, policy=policy)
        shape = shapes[key]
        if shape is None or row["holdout"] or per_contact[row["contact_id"]] > 1:
            rest.append(row)
        else:
            candidates[shape].append(row)
    return candidates, rest


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


def clean_select(shape: FinalSend, rows: list[dict], *, at: datetime,
                 policy: engine.Policy) -> list[tuple[int, int, int, int]]:
    """(enrollment id, contact id, seq, sending staff id) of the rows that pass every run-time check the engine makes before a
    1:1 send: still a customer, not converted, not opted out (marketing), receive quota not blocked and not
    used up this month, frequency cap not reached (marketing). Set-based: one query for the batch."""
    zone = engine.ZoneInfo(policy.tz)
    window_start = at - timedelta(days=policy.cap_days)
    month_start = engine.month_start(at, policy.tz)
    marketing = shape.priority == engine.MARKETING
    params = {"ids": int_array(r["id"] for r in rows), "contacts": int_array(r["contact_id"] for r in rows),
              "seqs": int_array(r["seq"] for r in rows), "at": at, "win": window_start, "month": month_start,
              "since": min(window_start, month_start), "active": list(ACTIVE_OUTBOX),
              "quota": engine.month_quota(at, policy, zone), "cap": policy.cap_max if marketing else 0,
              "goal": shape.goal_event, "opt_out": settings.JOURNEYS_OPT_OUT_TAG}
    sql = [
        "SELECT e.id, e.contact_id, e.seq, s.staff_id FROM unnest(%(ids)s::bigint[], %(contacts)s::bigint[], "
        "%(seqs)s::int[]) AS e(id, contact_id, seq)",
        "JOIN LATERAL (SELECT r.staff_id FROM contacts_followrelation r WHERE r.contact_id = e.contact_id "
        "AND r.is_active ORDER BY r.added_at DESC NULLS LAST, r.id DESC LIMIT 1) s ON true",
        "LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE o.priority = 'marketing' AND o.created_at >= %(win)s) AS "
        "recent, count(*) FILTER (WHERE o.channel = 'single' AND o.created_at >= %(month)s) AS month "
        "FROM journeys_outboundmessage o WHERE o.contact_id = e.contact_id AND o.created_at >= %(since)s "
        "AND o.status = ANY(%(active)s) AND o.channel <> 'staff_reminder') k ON true",
        "WHERE NOT EXISTS (SELECT 1 FROM journeys_contactquota q WHERE q.contact_id = e.contact_id "
        "AND q.blocked_until > %(at)s)",
        "AND COALESCE(k.month, 0) < %(quota)s",
    ]
    if marketing:
        sql.append("AND NOT EXISTS (SELECT 1 FROM tagging_contacttag ct JOIN tagging_tag t ON t.id = ct.tag_id "
                   "WHERE ct.contact_id = e.contact_id AND t.name = %(opt_out)s)")
        if policy.cap_max:
            sql.append("AND COALESCE(k.recent, 0) < %(cap)s")
    if shape.goal_event:  # the goal happened since entry (read under the claim's row lock)
        sql.append(
            "AND NOT EXISTS (SELECT 1 FROM journeys_enrollment en JOIN contacts_contactevent ev ON "
            "ev.contact_id = en.contact_id WHERE en.id = e.id AND ev.occurred_at >= en.entered_at AND (ev.kind = %(goal)s OR (%(goal)s LIKE 'custom:%%' "
            "AND ev.kind = 'custom' AND ev.data->>'type' = substr(%(goal)s, 8))))")
    with connection.cursor() as cur:
        cur.execute(" ".join(sql), params)  # noqa: S608 - fixed fragments, values bound
        return cur.fetchall()


def outbox_write(shape: FinalSend, clean: list[tuple[int, int, int, int]], *, at: datetime) -> dict[int, int]:
    """Outbox rows for the clean rows (keys ``j:<enrollment>:<seq>``, as the per-row path writes them); a key
    already present inserts nothing. The content is one bound value, not one per row. Returns
    {staff id: rows inserted}."""
    if not clean:
        return {}
    ids, contacts, seqs, staff = [int_array(c) for c in zip(*sorted(clean), strict=True)]
    with connection.cursor() as cur:
        cur.execute(
            "WITH ins AS (INSERT INTO journeys_outboundmessage (corp_id, idempotency_key, channel, priority, "
            "contact_id, chat_id, staff_id, content, content_hash, journey_id, step_id, enrollment_id, created_at, "
            "status, attempts, last_error) SELECT %(corp)s, 'j:' || v.id || ':' || v.seq, 'single', %(priority)s, "
            "v.contact_id, '', v.staff_id, %(content)s::jsonb, %(digest)s, %(journey)s, %(step)s, v.id, %(at)s, "
            "'pending', 0, '' FROM unnest(%(ids)s::bigint[], %(contacts)s::bigint[], %(seqs)s::int[], "
            "%(staff)s::bigint[]) AS v(id, contact_id, seq, staff_id) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING staff_id) "
            "SELECT staff_id, count(*) FROM ins GROUP BY staff_id",
            {"corp": shape.corp_id, "priority": shape.priority, "content": shape.content, "digest": shape.digest,
             "journey": shape.journey_id, "step": shape.step_id, "at": at, "ids": ids, "contacts": contacts,
             "seqs": seqs, "staff": staff})
        return dict(cur.fetchall())


def enrollments_finish(shape: FinalSend, ids: list[int], *, at: datetime) -> None:
    """Send then done, as the per-row path records it: seq moves twice, position past the last step."""
    with connection.cursor() as cur:
        cur.execute("UPDATE journeys_enrollment SET position = %s, seq = seq + 2, hold_count = 0, status = 'done', "
                    "next_run_at = NULL, finished_at = %s WHERE id = ANY(%s::bigint[])",
                    [shape.position_after, at, int_array(ids)])


def int_array(values) -> str:
    """A Postgres array literal (``'{1,2,3}'``, cast in the query): one value to parse instead of thousands of
    ``ARRAY[…]`` constants, as psycopg renders a list."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"

