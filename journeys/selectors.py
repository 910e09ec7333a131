"""Reads: per-journey and per-step reports (with holdout lift), staff SOP execution, the dry run."""

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Q

from journeys import engine
from journeys.models import Enrollment, Journey, JourneyStep, MassSendTask, OutboundMessage, StepRun
from journeys.scheduler import BatchFacts, policy_get
from scrm.clock import now

Z = 1.96  # 95 % confidence


def lift(*, treated: int, treated_conv: int, control: int, control_conv: int) -> dict:
    """Conversion in both groups and the difference with a 95 % normal-approximation interval."""
    p1 = treated_conv / treated if treated else 0.0
    p0 = control_conv / control if control else 0.0
    out = {"treated": treated, "treated_conversions": treated_conv, "treated_rate": round(p1, 4),
           "control": control, "control_conversions": control_conv, "control_rate": round(p0, 4),
           "lift": None, "ci_low": None, "ci_high": None}
    if treated and control:
        diff = p1 - p0
        se = math.sqrt(p1 * (1 - p1) / treated + p0 * (1 - p0) / control)
        out.update(lift=round(diff, 4), ci_low=round(diff - Z * se, 4), ci_high=round(diff + Z * se, 4))
    return out


def journey_report(*, journey: Journey) -> dict:
    family = journey.family_id or journey.pk
    versions = list(Journey.objects.filter(Q(pk=family) | Q(family_id=family)).values_list("pk", flat=True))
    enr = Enrollment.objects.filter(journey_id__in=versions)
    by = {(r["holdout"], r["status"]): r["n"] for r in enr.values("holdout", "status").annotate(n=Count("id"))}
    treated = sum(n for (h, _), n in by.items() if not h)
    control = sum(n for (h, _), n in by.items() if h)
    exits = dict(enr.filter(status="exited").values_list("exit_reason").annotate(n=Count("id")))
    steps = []
    msgs = OutboundMessage.objects.filter(journey_id__in=versions)
    per_step = defaultdict(Counter)
    for step_id, status, n in msgs.values_list("step_id", "status").annotate(n=Count("id")):
        per_step[step_id][status] += n
    tasks = defaultdict(lambda: {"tasks": 0, "confirmed": 0, "delay_s": []})
    with connection.cursor() as cur:
        cur.execute("SELECT m.step_id, t.id, t.status, EXTRACT(EPOCH FROM t.confirmed_at - t.created_at) "
                    "FROM journeys_masssendtask t JOIN (SELECT DISTINCT task_id, step_id FROM journeys_outboundmessage "
                    "WHERE journey_id = ANY(%s) AND task_id IS NOT NULL) m ON m.task_id = t.id", [versions])
        for step_id, _tid, status, delay in cur.fetchall():
            tasks[step_id]["tasks"] += 1
            if status == MassSendTask.Status.CONFIRMED:
                tasks[step_id]["confirmed"] += 1
                if delay is not None:
                    tasks[step_id]["delay_s"].append(float(delay))
    runs = defaultdict(Counter)
    for step_id, outcome, detail, n in (StepRun.objects.filter(journey_id_copy__in=versions)
                                        .values_list("step_id", "outcome", "detail").annotate(n=Count("id"))):
        key = outcome if outcome not in ("skipped", "held") else f"{outcome}:{detail.split(' ')[0]}"
        runs[step_id][key] += n
    for step in journey.steps.all():
        sibling_ids = _same_position_steps(versions, step.position)
        m = sum((per_step[s] for s in sibling_ids), Counter())
        t = {"tasks": sum(tasks[s]["tasks"] for s in sibling_ids),
             "confirmed": sum(tasks[s]["confirmed"] for s in sibling_ids),
             "delay_s": [d for s in sibling_ids for d in tasks[s]["delay_s"]]}
        r = sum((runs[s] for s in sibling_ids), Counter())
        steps.append({
            "position": step.position, "kind": step.kind, "label": step.label, "channel": step.channel,
            "runs": dict(r), "messages": sum(m.values()), "reached": m.get("sent", 0),
            "statuses": dict(m), "tasks_created": t["tasks"],
            "staff_confirmation_rate": round(t["confirmed"] / t["tasks"], 4) if t["tasks"] else None,
            "median_confirm_delay_s": sorted(t["delay_s"])[len(t["delay_s"]) // 2] if t["delay_s"] else None,
        })
    converted = _conversions(versions, journey.goal_event)
    conv = converted.get  # noqa: E731
    return {
        "journey": {"id": journey.pk, "name": journey.name, "version": journey.version, "status": journey.status},
        "entered": treated + control, "active": sum(n for (_, s), n in by.items() if s == "active"),
        "conversions": conv(False, 0) + conv(True, 0), "exits": exits,
        "holdout": lift(treated=treated, treated_conv=conv(False, 0), control=control, control_conv=conv(True, 0)),
        "steps": steps,
    }


ATTRIBUTION_DAYS = 30


def _conversions(versions: list[int], goal: str) -> dict[bool, int]:
    """Enrollments (by holdout flag) whose goal happened within the attribution window after entry — whether
    or not the journey had finished, so the control group (which receives nothing) is counted the same way."""
    if not goal:
        return dict(Enrollment.objects.filter(journey_id__in=versions, status="converted")
                    .values_list("holdout").annotate(n=Count("id")))
    kind, typ = ("custom", goal.removeprefix("custom:")) if goal.startswith("custom:") else (goal, None)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT e.holdout, count(*) FROM journeys_enrollment e WHERE e.journey_id = ANY(%s) AND (e.status = "
            "'converted' OR EXISTS (SELECT 1 FROM contacts_contactevent ev WHERE ev.contact_id = e.contact_id "
            "AND ev.kind = %s AND (%s::text IS NULL OR ev.data->>'type' = %s) AND ev.occurred_at >= e.entered_at "
            "AND ev.occurred_at < e.entered_at + make_interval(days => %s))) GROUP BY e.holdout",
            [versions, kind, typ, typ, ATTRIBUTION_DAYS])
        return dict(cur.fetchall())


def _same_position_steps(versions: list[int], position: int) -> list[int]:
    return list(JourneyStep.objects.filter(journey_id__in=versions, position=position).values_list("pk", flat=True))


def staff_sop_rates(*, since: datetime | None = None) -> list[dict]:
    """Per staff member: confirm-tasks created and confirmed (SOP execution rate)."""
    since = since or now() - timedelta(days=30)
    rows = (MassSendTask.objects.filter(created_at__gte=since).exclude(status__in=["creating", "failed"])
            .values("staff_id", "staff__name", "staff__userid")
            .annotate(tasks=Count("id"), confirmed=Count("id", filter=Q(status="confirmed"))).order_by("staff_id"))
    return [{"staff_id": r["staff_id"], "name": r["staff__name"] or r["staff__userid"], "tasks": r["tasks"],
             "confirmed": r["confirmed"], "rate": round(r["confirmed"] / r["tasks"], 4) if r["tasks"] else None}
            for r in rows]


def enrollment_timeline(*, enrollment: Enrollment) -> list[dict]:
    items = [{"at": r.at, "what": r.outcome, "detail": r.detail, "step": str(r.step) if r.step else ""}
             for r in enrollment.runs.select_related("step").order_by("at", "id")]
    items += [{"at": m.created_at, "what": f"message:{m.status}", "detail": m.last_error, "step": ""}
              for m in OutboundMessage.objects.filter(contact_id=enrollment.contact_id, enrollment=enrollment)
              .order_by("id")]
    return sorted(items, key=lambda x: x["at"])


# --- dry run ---------------------------------------------------------------------------------------------------------
def journey_dry_run(*, journey: Journey, days: int = 14, at: datetime | None = None) -> dict:
    """Estimate for the next ``days``: contacts entering per day, sends per day, and how many sends the caps
    and opt-out would hold back (checked against each candidate's current counts)."""
    at = at or now()
    candidates, per_day = _entry_estimate(journey, at, days)
    send_steps = _send_steps(journey)
    offsets = [day for day, _step in send_steps]
    sends = [0.0] * days
    for day_offset in offsets:
        for d in range(days):
            if d + day_offset < days:
                sends[d + day_offset] += per_day[d]
    policy = policy_get()
    held: Counter = Counter()
    sample = candidates[:2000]
    if sample and offsets:
        facts = BatchFacts.load(sample, [], at=at, policy=policy)
        for cid in sample:
            recent = facts.recent[cid]
            for _ in offsets:
                s = engine.Situation(now=at, entered_at=at, priority=journey.priority, opted_out=cid in facts.opted_out,
                                     is_customer=cid in facts.staff_of, recent_marketing=recent,
                                     month_count=facts.month[cid], hold_count=policy.max_holds,
                                     contact_tz=facts.zones.get(cid, ""))
                action = engine.next_action(engine.Step(1, "send", {}, "single"), s, policy)
                if isinstance(action, engine.Send):
                    recent += int(journey.priority == "marketing")
                elif isinstance(action, engine.Exit):
                    held["not_customer"] += 1
                elif not isinstance(action, engine.Hold):
                    held[getattr(action, "reason", "held")] += 1
        scale = len(candidates) / len(sample) if sample else 0
        held = Counter({k: round(v * scale) for k, v in held.items()})
    per_customer = _per_customer_sends(send_steps, per_day, days)
    from journeys.services import journey_warnings

    return {"days": [{"day": d, "entering": round(per_day[d], 1), "sends": round(sends[d], 1)} for d in range(days)],
            "entering_total": round(sum(per_day)), "sends_total": round(sum(sends)), "held_back": dict(held),
            "per_customer_tasks": round(per_customer), "warnings": journey_warnings(journey=journey)}


def _per_customer_sends(sends: list, per_day: list[float], days: int) -> float:
    """Sends over the window whose template differs per customer: each is a confirm-task of its own."""
    from journeys.services import send_step_per_customer_fields

    return sum(sum(per_day[d] for d in range(days) if d + day < days) for day, step in sends
               if send_step_per_customer_fields(step))


def _send_steps(journey: Journey) -> list[tuple[int, JourneyStep]]:
    """(day offset from entry, step) of each send step, in order."""
    day, found = 0, []
    for step in journey.steps.select_related("template").order_by("position"):
        cfg = step.config or {}
        if step.kind == "wait":
            day = int(cfg["day"]) if "day" in cfg else day + int(cfg.get("days", 0)) + (
                1 if cfg.get("hours", 0) >= 24 else 0)
        if step.kind == "send":
            found.append((day, step))
    return found


def _entry_estimate(journey: Journey, at: datetime, days: int) -> tuple[list[int], list[float]]:
    """(candidate contact ids, expected entries per day)."""
    from contacts.models import Contact, ContactEvent

    cfg = journey.trigger_config or {}
    trig = journey.trigger
    if trig in ("contact_added", "order_paid", "custom_event"):
        kind = {"contact_added": "added", "order_paid": "ordered", "custom_event": "custom"}[trig]
        events = ContactEvent.objects.filter(corp_id=journey.corp_id, kind=kind, occurred_at__gte=at - timedelta(days=14))
        if trig == "custom_event":
            events = events.filter(data__type=cfg.get("type"))
        ids = list(events.values_list("contact_id", flat=True).distinct()[:5000])
        rate = events.count() / 14
        return ids, [rate] * days
    if trig == "segment_entered":
        from tagging.models import Segment
        from tagging.segments import segment_member_ids

        seg = Segment.objects.filter(pk=cfg.get("segment_id")).first()
        ids = list(segment_member_ids(user=None, expression=seg.expression)) if seg else []
        already = set(Enrollment.objects.filter(journey=journey).values_list("contact_id", flat=True))
        ids = [i for i in ids if i not in already]
        return ids, [float(len(ids))] + [0.0] * (days - 1)
    if trig in ("entitlement_expiring", "renewal_due", "entitlement_expired"):
        from contacts.models import Entitlement

        shift = int(cfg.get("days", 0)) if trig != "entitlement_expired" else -1
        per_day = []
        ids: list[int] = []
        for d in range(days):
            start = at + timedelta(days=d + shift)
            qs = Entitlement.objects.filter(corp_id=journey.corp_id, status="active",
                                            expires_at__gte=start, expires_at__lt=start + timedelta(days=1))
            per_day.append(float(qs.count()))
            ids += list(qs.values_list("contact_id", flat=True)[:500])
        return ids, per_day
    if trig == "inactive":
        from contacts.models import ContactFacts

        n = int(cfg.get("days", 30))
        per_day, ids = [], []
        for d in range(days):
            start = at - timedelta(days=n - d + 1)
            qs = ContactFacts.objects.filter(contact__corp_id=journey.corp_id, last_active_at__gte=start,
                                             last_active_at__lt=start + timedelta(days=1))
            per_day.append(float(qs.count()))
            ids += list(qs.values_list("contact_id", flat=True)[:500])
        return ids, per_day
    return list(Contact.objects.filter(corp_id=journey.corp_id).values_list("pk", flat=True)[:0]), [0.0] * days
