"""The due-step sweeper: claim due enrollments (``FOR UPDATE SKIP LOCKED``), decide each with the pure
engine, write outbox rows and step runs, commit, then hand (staff, content) groups to the sender tasks.

Safety: everything a batch decides is committed in one transaction together with the enrollments' new
``next_run_at``; a worker killed mid-batch rolls back and the rows are claimed again by the next tick.
Outbox and step-run keys derive from ``(enrollment, seq)``, so a re-run of the same decision inserts
nothing new. The broker carries only group hand-offs ("send what is pending for staff S, content C").
"""

import json
import logging
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from journeys import engine, fastpath
from journeys.messages import content_hash, render
from journeys.models import Channel, Journey, JourneyStep
from scrm.clock import now

logger = logging.getLogger(__name__)
MAX_MOVES = 25  # steps one enrollment may take in one go (wait/tag/branch chains)
ACTIVE_OUTBOX = fastpath.ACTIVE_OUTBOX


def policy_get() -> engine.Policy:
    start, _, end = settings.JOURNEYS_QUIET_HOURS.partition("-")
    return engine.Policy(tz=settings.TIME_ZONE, quiet_start=engine.parse_hhmm(start), quiet_end=engine.parse_hhmm(end),
                         cap_max=settings.JOURNEYS_CAP_MAX_TOUCHES, cap_days=settings.JOURNEYS_CAP_WINDOW_DAYS,
                         receive_quota=settings.JOURNEYS_RECEIVE_QUOTA_PER_MONTH)


@dataclass
class AdvanceResult:
    claimed: int = 0
    outbox: int = 0
    groups: set = field(default_factory=set)
    outcomes: dict = field(default_factory=lambda: defaultdict(int))
    set_based: int = 0  # rows sent and finished by journeys/fastpath.py
    # Seconds per phase: claim, final_sends (the set-based statement), checks (facts, engine), outbox,
    # step_runs, enrollments, commit, dispatch.
    timings: dict = field(default_factory=lambda: defaultdict(float))


@contextmanager
def _clock(result: AdvanceResult, phase: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        result.timings[phase] += time.perf_counter() - start


@dataclass
class _Plan:
    """A journey version, loaded once per sweep."""

    journey: Journey
    steps: dict[int, JourneyStep]
    order: list[int]

    def step_at(self, position: int) -> JourneyStep | None:
        for pos in self.order:
            if pos >= position:
                return self.steps[pos]
        return None

    def after(self, position: int) -> int:
        later = [p for p in self.order if p > position]
        return later[0] if later else (self.order[-1] + 1 if self.order else position + 1)


class _Plans(dict):
    def __missing__(self, journey_id: int) -> _Plan:
        journey = Journey.objects.get(pk=journey_id)
        steps = {s.position: s for s in JourneyStep.objects.filter(journey_id=journey_id).select_related("template")}
        plan = _Plan(journey=journey, steps=steps, order=sorted(steps))
        self[journey_id] = plan
        return plan


def enrollments_advance_due(*, at: datetime | None = None, batch: int | None = None, max_batches: int | None = None,
                            dispatch=None, set_based: bool = True) -> AdvanceResult:
    """Advance every enrollment due at ``at``; returns counts. ``dispatch(groups)`` runs after each commit
    (default: enqueue one sender task per (staff, content) group). ``set_based=False`` sends every row through
    the per-row engine (the reference the set-based path is tested against)."""
    at = at or now()
    batch = batch or settings.JOURNEYS_SWEEP_BATCH
    dispatch = dispatch or dispatch_groups
    policy = policy_get()
    plans = _Plans()
    result = AdvanceResult()
    done = 0
    floor = None
    dispatched: set = set()  # groups handed to a sender in this sweep
    late: set = set()  # ... that got more rows in a later batch: handed over once more at the end
    # (journey, step position) → FinalSend or None, decided once per sweep; None: everything goes per row
    shapes: dict | None = {} if set_based else None
    other_zones = set_based and fastpath.zones_elsewhere(policy)
    while max_batches is None or done < max_batches:
        with transaction.atomic():
            with _clock(result, "claim"):
                held = fastpath.claim(at=at, limit=batch, floor=floor)
            if not held:
                break
            claimed = sum(h[2] for h in held)
            floor = max(h[3] for h in held)
            groups = _batch_run(held, claimed, at=at, policy=policy, plans=plans, result=result,
                                shapes=shapes, other_zones=other_zones)
            committing = time.perf_counter()
        result.timings["commit"] += time.perf_counter() - committing
        result.claimed += claimed
        result.groups |= groups
        late |= groups & dispatched
        with _clock(result, "dispatch"):
            dispatch(groups - dispatched)  # a sender starts on a group as soon as its first rows are committed
        dispatched |= groups
        done += 1
        if claimed < batch:
            break
    if late:  # one more hand-off per group, not one per batch: a sender picks up every pending row of its group
        with _clock(result, "dispatch"):
            dispatch(late)
    return result


def _batch_run(held: list[tuple], claimed: int, *, at: datetime, policy: engine.Policy, plans: "_Plans",
               result: AdvanceResult, shapes: dict | None, other_zones: bool) -> set:
    """One batch claimed into ``sweep_claimed``: the set-based path takes what it can (unless ``shapes`` is None:
    the per-row reference), the per-row engine the rest (fetched only when there is a rest)."""
    by_shape: dict = defaultdict(list)
    for journey_id, position, _n, _latest in (held if shapes is not None else ()):
        plan = plans[journey_id]
        step = plan.step_at(position)
        key = (journey_id, step.position if step else None)
        if key not in shapes:
            shapes[key] = fastpath.final_send_get(plan, step, at=at, policy=policy)
        if shapes[key] is not None:
            by_shape[shapes[key]].append(position)
    groups: set = set()
    taken = 0
    for shape, positions in by_shape.items():
        with _clock(result, "final_sends"):
            n, inserted = fastpath.final_sends_run(shape, positions, at=at, policy=policy, other_zones=other_zones)
        taken += n
        result.outbox += sum(inserted.values())
        result.set_based += n
        result.outcomes["sent"] += n
        result.outcomes["done"] += n
        groups |= {(staff_id, shape.digest) for staff_id in inserted}
    if taken < claimed:
        with _clock(result, "claim"):
            rest = fastpath.rest_rows()
        groups |= _advance(rest, at=at, policy=policy, plans=plans, result=result)
    return groups


CLAIM_IDS = fastpath.claim_sql(["e.id"])


def enrollments_claim(*, at: datetime, limit: int) -> list[int]:
    """The due-claim query of ``fastpath.claim`` returning ids (index ``enrollment_due`` of the due table).
    Call inside a transaction."""
    with connection.cursor() as cur:
        cur.execute(fastpath.WALK_DUE_INDEX)
        cur.execute(CLAIM_IDS, [at, limit])
        found = [row[0] for row in cur.fetchall()]
        cur.execute(fastpath.PLAN_FREELY)
        return found


def dispatch_groups(groups: set) -> None:
    from journeys.tasks import outbound_send_group

    for staff_id, digest in sorted(groups):
        outbound_send_group.delay(staff_id, digest)


# --- one batch -----------------------------------------------------------------------------------------------
def _advance(rows: list[dict], *, at: datetime, policy: engine.Policy, plans: _Plans, result: AdvanceResult) -> set:
    with _clock(result, "checks"):
        outbox, runs, updates = _decide(rows, at=at, policy=policy, plans=plans, result=result)
    with _clock(result, "outbox"):
        groups = _outbox_insert(outbox)
    result.outbox += len(groups)
    with _clock(result, "step_runs"):
        _runs_insert(runs)
    with _clock(result, "enrollments"):
        _enrollments_write(updates)
    return {(staff_id, digest) for staff_id, digest in groups}


def _decide(rows: list[dict], *, at: datetime, policy: engine.Policy, plans: _Plans,
            result: AdvanceResult) -> tuple[list, list, list]:
    """The per-row engine over one batch: (outbox rows, step runs, enrollment updates)."""
    for row in rows:  # Django leaves jsonb undecoded on raw cursors
        if isinstance(row["context"], str):
            row["context"] = json.loads(row["context"])
    contact_ids = sorted({r["contact_id"] for r in rows})
    needs = set()
    for journey_id in {r["journey_id"] for r in rows}:
        plan = plans[journey_id]
        if plan.journey.goal_event:
            needs.add("goal")
        for step in plan.steps.values():
            if step.channel == Channel.GROUP and step.kind == "send":
                needs.add("chats")
            if step.template is not None and "{{" in step.template.text:
                needs.add("names")
    facts = BatchFacts.load(contact_ids, rows, at=at, policy=policy, needs=needs)
    outbox: list[tuple] = []
    runs: list[tuple] = []
    updates: list[tuple] = []
    render_cache: dict = {}
    for row in rows:
        plan = plans[row["journey_id"]]
        journey = plan.journey
        state = {"position": row["position"], "seq": row["seq"], "hold_count": row["hold_count"],
                 "status": "active", "next_run_at": None, "finished_at": None, "exit_reason": ""}
        cid = row["contact_id"]
        for _ in range(MAX_MOVES):
            step = plan.step_at(state["position"])
            condition = None
            if step is not None and step.kind in ("branch", "goal"):
                condition = _condition(step, cid, row["entered_at"], at)
            situation = engine.Situation(
                now=at, entered_at=row["entered_at"], priority=journey.priority,
                is_customer=cid in facts.staff_of, opted_out=cid in facts.opted_out,
                converted=row["id"] in facts.converted,
                paused=journey.status in (Journey.Status.PAUSED, Journey.Status.DRAFT),
                holdout=row["holdout"], recent_marketing=facts.recent[cid], month_count=facts.month[cid],
                quota_blocked_until=facts.blocked.get(cid), hold_count=state["hold_count"], condition=condition,
                contact_tz=facts.zones.get(cid, ""))
            espec = engine.Step(step.position, step.kind, step.config or {}, step.channel) if step else None
            action = engine.next_action(espec, situation, policy)
            key = f"{row['id']}:{state['seq']}"
            kind = type(action).__name__.lower()
            if isinstance(action, engine.Pause):
                state["next_run_at"] = None
                break
            state["seq"] += 1
            outcome, detail = kind, ""
            if isinstance(action, engine.Wait):
                state["position"] = plan.after(step.position)
                if action.until > at:
                    state["next_run_at"] = action.until
                    runs.append(_run(row, step, "wait", f"until {action.until.isoformat()}", at, key))
                    break
                continue  # the wait is already over: go on now
            if isinstance(action, engine.Send):
                made = _outbox_rows(row, step, journey, facts, at, key, render_cache)
                outbox.extend(made)
                if made and journey.priority == "marketing":
                    facts.recent[cid] += 1
                if made and step.channel == Channel.SINGLE:
                    facts.month[cid] += 1
                outcome, detail = ("sent", f"{len(made)} message(s)") if made else ("skipped", "no recipient")
                state["position"] = plan.after(step.position)
                state["hold_count"] = 0
            elif isinstance(action, engine.Hold):
                state["next_run_at"] = action.until
                state["hold_count"] += int(action.counts)
                runs.append(_run(row, step, "held", f"{action.reason} until {action.until.isoformat()}", at, key))
                result.outcomes[f"held:{action.reason}"] += 1
                break
            elif isinstance(action, engine.Skip):
                outcome, detail = ("holdout" if action.reason == "holdout" else "skipped"), action.reason
                state["position"] = plan.after(step.position)
                state["hold_count"] = 0
            elif isinstance(action, engine.Tag):
                _tags(cid, action, journey)
                state["position"] = plan.after(step.position)
            elif isinstance(action, engine.Jump):
                state["position"] = action.to
            elif isinstance(action, engine.Next):
                state["position"] = plan.after(step.position)
            else:  # Exit, Convert, Done
                state["status"] = {"exit": "exited", "convert": "converted", "done": "done"}[kind]
                state["exit_reason"] = action.reason if isinstance(action, engine.Exit) else ""
                state["finished_at"] = at
                state["next_run_at"] = None
                detail = state["exit_reason"]
            if outcome not in ("done", "sent"):  # a send's audit is its outbox row (same key)
                runs.append(_run(row, step, outcome, detail, at, key))
            result.outcomes[outcome if outcome != "skipped" else f"skipped:{detail}"] += 1
            if state["status"] != "active":
                break
        else:
            state["next_run_at"] = at + timedelta(minutes=1)  # a long chain: continue next tick
        updates.append((row["id"], state["position"], state["seq"], state["hold_count"], state["status"],
                        state["next_run_at"], state["finished_at"], state["exit_reason"]))
    return outbox, runs, updates


def _run(row: dict, step: JourneyStep | None, outcome: str, detail: str, at: datetime, key: str) -> tuple:
    return (row["id"], step.pk if step else None, row["journey_id"], outcome, detail[:255], at, key)


def _runs_insert(runs: list[tuple]) -> None:
    """Step runs, set-based (unnest), skipping keys already written by an earlier run of the same decision."""
    if not runs:
        return
    cols = [list(c) for c in zip(*runs, strict=True)]
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO journeys_steprun (enrollment_id, step_id, journey_id_copy, outcome, detail, at, "
            "idempotency_key) SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], "
            "%s::timestamptz[], %s::text[]) ON CONFLICT (idempotency_key) DO NOTHING", cols)


_OUTBOX_COLS = ("corp_id", "idempotency_key", "channel", "priority", "contact_id", "chat_id", "staff_id", "content",
                "content_hash", "journey_id", "step_id", "enrollment_id", "created_at")
_OUTBOX_TYPES = ("bigint", "text", "text", "text", "bigint", "text", "bigint", "jsonb", "text", "bigint", "bigint",
                 "bigint", "timestamptz")


def _outbox_insert(rows: list[tuple]) -> list[tuple]:
    """Outbox rows, set-based; a key already present (a re-run of the same decision) inserts nothing.
    Returns (staff id, content hash) of each row actually inserted."""
    if not rows:
        return []
    cols = [list(c) for c in zip(*rows, strict=True)]
    unnest = ", ".join(f"%s::{t}[]" for t in _OUTBOX_TYPES)
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO journeys_outboundmessage ({', '.join(_OUTBOX_COLS)}, status, attempts, last_error) "  # noqa: S608
            f"SELECT *, 'pending', 0, '' FROM unnest({unnest}) ON CONFLICT (idempotency_key) DO NOTHING "
            "RETURNING staff_id, content_hash", cols)
        return cur.fetchall()


def _enrollments_write(updates: list[tuple]) -> None:
    if not updates:
        return
    cols = list(zip(*updates, strict=True))
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE journeys_enrollment e SET position = v.position, seq = v.seq, hold_count = v.hold_count, "
            "status = v.status, next_run_at = v.next_run_at, finished_at = COALESCE(v.finished_at, e.finished_at), "
            "exit_reason = CASE WHEN v.exit_reason = '' THEN e.exit_reason ELSE v.exit_reason END "
            "FROM unnest(%s::bigint[], %s::int[], %s::int[], %s::int[], %s::text[], %s::timestamptz[], "
            "%s::timestamptz[], %s::text[]) AS v(id, position, seq, hold_count, status, next_run_at, finished_at, "
            "exit_reason) WHERE e.id = v.id", [list(c) for c in cols])


def _outbox_rows(row: dict, step: JourneyStep, journey: Journey, facts: "BatchFacts", at: datetime, key: str,
                 cache: dict) -> list[tuple]:
    """Rows for ``_outbox_insert`` (column order ``_OUTBOX_COLS``)."""
    cid = row["contact_id"]
    staff_id, staff_name = facts.staff_of[cid]
    template = step.template
    if template is None:
        return []
    personal = "{{" in template.text
    values = {"name": facts.names.get(cid, ""), "staff_name": staff_name,
              "coupon_name": (row["context"] or {}).get("coupon_name", ""),
              "coupon_expires": (row["context"] or {}).get("coupon_expires", ""),
              "today": at.astimezone(engine.ZoneInfo(settings.TIME_ZONE)).date().isoformat()} if personal else {}
    cache_key = (template.pk, step.channel, tuple(sorted(values.items())))
    if cache_key not in cache:
        content = render(text=template.text, kind=template.kind, attachment=template.attachment,
                         values=values).as_dict()
        cache[cache_key] = (json.dumps(content, ensure_ascii=False), content_hash({**content, "channel": step.channel}))
    content, digest = cache[cache_key]

    def one(suffix: str, chat_id: str, sender_id: int) -> tuple:
        return (journey.corp_id, f"j:{key}{suffix}", step.channel, journey.priority, cid, chat_id, sender_id, content,
                digest, journey.pk, step.pk, row["id"], at)

    if step.channel == Channel.GROUP:
        return [one(f":{chat_id}", chat_id, owner_id) for chat_id, owner_id in facts.chats.get(cid, [])]
    return [one("", "", staff_id)]


def _condition(step: JourneyStep, contact_id: int, entered_at: datetime, at: datetime) -> bool:
    from contacts.models import ContactEvent

    if step.kind == "goal":
        return ContactEvent.objects.filter(contact_id=contact_id, occurred_at__gte=entered_at,
                                           **_event_filter(step.config.get("event", ""))).exists()
    from tagging import rules
    from tagging.selectors import contact_facts_get

    try:
        node = rules.parse_rule(step.config.get("condition"))
    except rules.RuleError:
        return False
    return rules.evaluate(node, contact_facts_get(contact_id=contact_id, at=at))


def _event_filter(goal: str) -> dict:
    if goal.startswith("custom:"):
        return {"kind": "custom", "data__type": goal.removeprefix("custom:")}
    return {"kind": goal}


def _tags(contact_id: int, action: engine.Tag, journey: Journey) -> None:
    from tagging.services import tags_apply, tags_remove

    if action.add:
        tags_apply(contact_ids=[contact_id], tag_ids=action.add, source="journey", source_ref=f"journey:{journey.pk}")
    if action.remove:
        tags_remove(contact_ids=[contact_id], tag_ids=action.remove)


# --- facts for one batch, loaded set-based -------------------------------------------------------------------------
@dataclass
class BatchFacts:
    staff_of: dict  # contact → (staff id, staff name) of the newest active follow relation
    names: dict
    opted_out: set
    converted: set  # enrollment ids whose journey goal happened since entry
    recent: dict
    month: dict
    blocked: dict
    chats: dict  # contact → [(chat_id, owner staff id)]
    zones: dict = field(default_factory=dict)  # contact → own IANA zone (only contacts that have one)

    @classmethod
    def load(cls, contact_ids: list[int], rows: list[dict], *, at: datetime, policy: engine.Policy,
             needs: set | None = None) -> "BatchFacts":
        """``needs`` limits optional lookups ("names", "goal", "chats"); None loads everything."""
        needs = {"names", "goal", "chats"} if needs is None else needs
        with connection.cursor() as cur:
            cur.execute(
                "SELECT DISTINCT ON (r.contact_id) r.contact_id, r.staff_id FROM contacts_followrelation r "
                "WHERE r.contact_id = ANY(%s) AND r.is_active "
                "ORDER BY r.contact_id, r.added_at DESC NULLS LAST, r.id DESC", [contact_ids])
            pairs = cur.fetchall()
            staff_names = _staff_names({sid for _, sid in pairs})
            staff_of = {cid: (sid, staff_names.get(sid, "")) for cid, sid in pairs}
            # One read of the contact rows: their own time zones always, names when a template needs them.
            names: dict = {}
            zones: dict = {}
            if "names" in needs:
                cur.execute("SELECT id, name, time_zone FROM contacts_contact WHERE id = ANY(%s)", [contact_ids])
            else:
                cur.execute("SELECT id, '', time_zone FROM contacts_contact WHERE id = ANY(%s) AND time_zone <> ''",
                            [contact_ids])
            for cid, name, zone in cur.fetchall():
                if "names" in needs:
                    names[cid] = name
                if zone:
                    zones[cid] = zone
            cur.execute(
                "SELECT ct.contact_id FROM tagging_contacttag ct JOIN tagging_tag t ON t.id = ct.tag_id "
                "WHERE ct.contact_id = ANY(%s) AND t.name = %s", [contact_ids, settings.JOURNEYS_OPT_OUT_TAG])
            opted_out = {r[0] for r in cur.fetchall()}
            converted: set = set()
            if "goal" in needs and rows:
                cur.execute(
                    "SELECT e.id FROM journeys_enrollment e JOIN journeys_journey j ON j.id = e.journey_id "
                    "WHERE e.id = ANY(%s) AND j.goal_event <> '' AND EXISTS (SELECT 1 FROM contacts_contactevent ev "
                    "WHERE ev.contact_id = e.contact_id AND ev.occurred_at >= e.entered_at AND (ev.kind = j.goal_event "
                    "OR (j.goal_event LIKE 'custom:%%' AND ev.kind = 'custom' "
                    "AND ev.data->>'type' = substr(j.goal_event, 8))))", [[r["id"] for r in rows]])
                converted = {r[0] for r in cur.fetchall()}
            window_start = at - timedelta(days=policy.cap_days)
            month_start = engine.month_start(at, policy.tz)
            cur.execute(
                "SELECT contact_id, count(*) FILTER (WHERE priority = 'marketing' AND created_at >= %s), "
                "count(*) FILTER (WHERE channel = 'single' AND created_at >= %s) FROM journeys_outboundmessage "
                "WHERE contact_id = ANY(%s) AND created_at >= %s AND status = ANY(%s) "
                "AND channel <> 'staff_reminder' GROUP BY contact_id",
                [window_start, month_start, contact_ids, min(window_start, month_start), list(ACTIVE_OUTBOX)])
            recent: dict = defaultdict(int)
            month: dict = defaultdict(int)
            for cid, r_count, m_count in cur.fetchall():
                recent[cid], month[cid] = r_count, m_count
            cur.execute("SELECT contact_id, blocked_until FROM journeys_contactquota "
                        "WHERE contact_id = ANY(%s) AND blocked_until > %s", [contact_ids, at])
            blocked = dict(cur.fetchall())
            chats: dict = defaultdict(list)
            if "chats" in needs:
                cur.execute(
                    "SELECT m.contact_id, g.chat_id, g.owner_id FROM contacts_groupmember m "
                    "JOIN contacts_groupchat g ON g.id = m.chat_id WHERE m.contact_id = ANY(%s) "
                    "AND m.left_at IS NULL AND g.status = 'active' AND g.owner_id IS NOT NULL ORDER BY g.id",
                    [contact_ids])
                for cid, chat_id, owner_id in cur.fetchall():
                    chats[cid].append((chat_id, owner_id))
        return cls(staff_of, names, opted_out, converted, recent, month, blocked, chats, zones)


def _staff_names(ids: set[int]) -> dict[int, str]:
    from contacts.models import Staff

    return dict(Staff.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
