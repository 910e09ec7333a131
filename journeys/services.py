"""Writes for journeys: entering contacts, lifecycle (validate, go live, pause, resume, new version),
ready-made journeys, custom events, and exits. Reads for reports live in journeys/selectors.py."""

import json
import logging
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction

from journeys import engine
from journeys.messages import SAMPLE, TemplateError, render, template_check
from journeys.models import Enrollment, Journey, JourneyStep, MessageTemplate
from scrm.clock import now
from scrm.errors import ApplicationError

logger = logging.getLogger(__name__)
RUNNING = (Journey.Status.LIVE, Journey.Status.RETIRED)  # retired versions keep their enrolled contacts going


# --- entering ----------------------------------------------------------------------------------------------------------
def journey_enroll(*, journey: Journey, contact_ids: list[int], entry_key: str = "", at: datetime | None = None,
                   context: dict | None = None) -> int:
    """Put contacts into a live journey (set-based, idempotent per (journey, contact, entry key)).

    Without ``reenter`` a contact enters a journey family once, whatever the key. Returns how many entered.
    """
    if journey.status != Journey.Status.LIVE or not contact_ids:
        return 0
    at = at or now()
    family = journey.family_id or journey.pk
    key = entry_key if journey.reenter else ""
    ids = sorted(set(contact_ids))
    holdout = [engine.in_holdout(cid, family, journey.holdout_percent) for cid in ids]
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO journeys_enrollment (journey_id, contact_id, entry_key, status, position, seq, next_run_at, "
            "holdout, entered_at, exit_reason, hold_count, context) "
            "SELECT %s, c, %s, 'active', 0, 0, %s, h, %s, '', 0, %s::jsonb FROM unnest(%s::bigint[], %s::bool[]) AS "
            "v(c, h) WHERE NOT EXISTS (SELECT 1 FROM journeys_enrollment e JOIN journeys_journey j "
            "ON j.id = e.journey_id WHERE e.contact_id = v.c AND (j.id = %s OR j.family_id = %s) "
            "AND (e.status = 'active' OR NOT %s)) "
            "ON CONFLICT (journey_id, contact_id, entry_key) DO NOTHING",
            [journey.pk, key, at, at, json.dumps(context or {}), ids, holdout, family, family, journey.reenter])
        return cur.rowcount


def journey_enroll_rows(*, journey: Journey, rows: list[tuple[int, str, dict]], at: datetime | None = None) -> int:
    """``journey_enroll`` for rows that each carry their own entry key and context: ``(contact id, entry key,
    context)``, in the caller's order of preference. One statement, with the same rules as calling
    ``journey_enroll`` row by row in that order: a contact whose key already entered is skipped, and of a contact's
    other rows only the first enters (then they are active in the journey family). Returns how many entered."""
    if journey.status != Journey.Status.LIVE or not rows:
        return 0
    at = at or now()
    family = journey.family_id or journey.pk
    contacts = [r[0] for r in rows]
    keys = [r[1] if journey.reenter else "" for r in rows]
    contexts = [json.dumps(r[2] or {}) for r in rows]
    holdout = [engine.in_holdout(cid, family, journey.holdout_percent) for cid in contacts]
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO journeys_enrollment (journey_id, contact_id, entry_key, status, position, seq, next_run_at, "
            "holdout, entered_at, exit_reason, hold_count, context) "
            "SELECT DISTINCT ON (v.c) %(journey)s, v.c, v.k, 'active', 0, 0, %(at)s, v.h, %(at)s, '', 0, v.x::jsonb "
            "FROM unnest(%(contacts)s::bigint[], %(keys)s::text[], %(contexts)s::text[], %(holdout)s::bool[]) "
            "WITH ORDINALITY AS v(c, k, x, h, n) "
            "WHERE NOT EXISTS (SELECT 1 FROM journeys_enrollment d WHERE d.journey_id = %(journey)s "
            "AND d.contact_id = v.c AND d.entry_key = v.k) "
            "AND NOT EXISTS (SELECT 1 FROM journeys_enrollment e JOIN journeys_journey j ON j.id = e.journey_id "
            "WHERE e.contact_id = v.c AND (j.id = %(family)s OR j.family_id = %(family)s) "
            "AND (e.status = 'active' OR NOT %(reenter)s)) "
            "ORDER BY v.c, v.n ON CONFLICT (journey_id, contact_id, entry_key) DO NOTHING",
            {"journey": journey.pk, "at": at, "contacts": contacts, "keys": keys, "contexts": contexts,
             "holdout": holdout, "family": family, "reenter": journey.reenter})
        return cur.rowcount


def journeys_live(*, trigger: str, corp_id: int | None = None) -> list[Journey]:
    qs = Journey.objects.filter(status=Journey.Status.LIVE, trigger=trigger)
    if corp_id is not None:
        qs = qs.filter(corp_id=corp_id)
    return list(qs)


def enrollments_exit(*, contact_id: int, reason: str, at: datetime | None = None) -> int:
    """The contact leaves every journey (e.g. they deleted their staff member)."""
    return Enrollment.objects.filter(contact_id=contact_id, status=Enrollment.Status.ACTIVE).update(
        status=Enrollment.Status.EXITED, exit_reason=reason[:32], finished_at=at or now(), next_run_at=None)


def enrollments_convert(*, contact_id: int, goal: str, at: datetime | None = None) -> int:
    """A goal event happened: enrollments of journeys with that goal end as conversions now."""
    return Enrollment.objects.filter(contact_id=contact_id, status=Enrollment.Status.ACTIVE,
                                     journey__goal_event=goal).update(
        status=Enrollment.Status.CONVERTED, finished_at=at or now(), next_run_at=None)


# --- time zones -------------------------------------------------------------------------------------------------
def _local_time_wait(config: dict) -> bool:
    """Does the wait end at a local time (moves with the zone), not after a duration or N whole days?"""
    return bool(config.get("at")) or "weekday" in config


def enrollments_zone_replan(*, contact_ids: list[int], at: datetime | None = None) -> int:
    """These contacts' time zone has just changed (call it in the transaction that changed it): their active
    enrollments asleep until a local moment computed in the old zone get the moment of the new one, as the engine
    computes it (``engine.wait_until``, ``engine.next_allowed``):

    - asleep on a wait "until 10:00", "until Monday 19:30" or "day 3 at 10:00": the wait's moment in the new zone,
      counted from when the wait began (a moment already past means now);
    - a send held for quiet hours or its send window: the first allowed moment in the new zone from now.

    Waits for a duration or for N whole days, holds for the frequency cap or the receive quota, and parked
    (paused) enrollments keep their moment. Each moved enrollment gets a ``replanned`` step run in its timeline.
    Returns how many moved."""
    from journeys.scheduler import policy_get

    ids = sorted(set(contact_ids))
    at = at or now()
    policy = policy_get()
    return sum(_zone_replan(ids[start:start + 5000], at=at, policy=policy) for start in range(0, len(ids), 5000))


def _zone_replan(ids: list[int], *, at: datetime, policy: engine.Policy) -> int:
    from contacts.models import Contact

    with transaction.atomic(), connection.cursor() as cur:
        # Lock first (waiting for a sweep that holds some of them), then read in a new snapshot: a decision that
        # sweep committed in the old zone is seen and re-planned here, never overwritten by a stale read.
        locked = list(Enrollment.objects.select_for_update().filter(
            contact_id__in=ids, status=Enrollment.Status.ACTIVE, next_run_at__isnull=False).order_by("pk")
            .values_list("pk", flat=True))
        if not locked:
            return 0
        cur.execute(
            "SELECT e.id, e.seq, e.entered_at, e.next_run_at, e.contact_id, r.outcome, r.detail, r.at, s.config "
            "FROM journeys_enrollment e JOIN journeys_steprun r ON r.idempotency_key = e.id || ':' || (e.seq - 1) "
            "JOIN journeys_journeystep s ON s.id = r.step_id WHERE e.id = ANY(%s) AND e.status = 'active' "
            "AND e.next_run_at IS NOT NULL AND (r.outcome = 'wait' OR (r.outcome = 'held' "
            "AND split_part(r.detail, ' ', 1) IN ('quiet_hours', 'send_window')))", [locked])
        rows = cur.fetchall()
        zones = dict(Contact.objects.filter(pk__in={r[4] for r in rows}).values_list("pk", "time_zone"))
        moved: list[tuple] = []
        for enrollment_id, seq, entered_at, next_run_at, contact_id, outcome, _detail, began, config in rows:
            config = json.loads(config) if isinstance(config, str) else (config or {})
            zone = engine.zone_for(zones.get(contact_id, ""), policy)
            try:
                if outcome == "wait":
                    if not _local_time_wait(config):
                        continue
                    until = max(engine.wait_until(config, now=began, entered_at=entered_at, tz=zone), at)
                else:
                    window = config.get("window")
                    until = engine.next_allowed(at, zone=zone, quiet=(policy.quiet_start, policy.quiet_end),
                                                window=(engine.parse_hhmm(window[0]), engine.parse_hhmm(window[1]))
                                                if window else None)
            except (ValueError, KeyError, TypeError, IndexError):  # settings validation refuses; keep its moment
                logger.warning("enrollment %s: step settings not understood, not re-planned", enrollment_id)
                continue
            if until != next_run_at:
                moved.append((enrollment_id, seq, until, zone.key))
        if not moved:
            return 0
        cur.execute("UPDATE journeys_enrollment e SET next_run_at = v.until FROM unnest(%s::bigint[], "
                    "%s::timestamptz[]) AS v(id, until) WHERE e.id = v.id",
                    [[m[0] for m in moved], [m[2] for m in moved]])
        cur.execute(
            "INSERT INTO journeys_steprun (enrollment_id, step_id, journey_id_copy, outcome, detail, at, idempotency_key) "
            "SELECT r.enrollment_id, r.step_id, r.journey_id_copy, 'replanned', v.detail, %s, v.key "
            "FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(prior, detail, key) "
            "JOIN journeys_steprun r ON r.idempotency_key = v.prior ON CONFLICT (idempotency_key) DO NOTHING",
            [at, [f"{m[0]}:{m[1] - 1}" for m in moved],
             [f"until {m[2].isoformat()} ({m[3]})"[:255] for m in moved],
             [f"{m[0]}:{m[1] - 1}:tz:{at.timestamp():.6f}" for m in moved]])
    return len(moved)


# --- custom events -------------------------------------------------------------------------------------------------
def custom_event_record(*, corp, external_userid: str, type: str, properties: dict, occurred_at=None,
                        dedup_key: str | None = None):
    """``POST /api/events/``: an unknown customer is refused (nothing recorded)."""
    from contacts.models import Contact
    from contacts.services import record_event

    contact = Contact.objects.filter(corp=corp, external_userid=external_userid).first()
    if contact is None:
        return None
    record_event(corp=corp, kind="custom", occurred_at=occurred_at or now(), contact=contact,
                 data={"type": type, "properties": properties}, dedup_key=dedup_key)
    return contact


def contact_opt_out(*, contact_id: int) -> None:
    """A keyword reply ("退订") recorded through the API: put the opt-out tag on the contact."""
    from django.conf import settings

    from contacts.models import Contact
    from tagging.models import Tag, TagGroup
    from tagging.services import tags_apply

    tag = Tag.objects.filter(name=settings.JOURNEYS_OPT_OUT_TAG).order_by("id").first()
    if tag is None:
        corp_id = Contact.objects.filter(pk=contact_id).values_list("corp_id", flat=True).first()
        group, _ = TagGroup.objects.get_or_create(corp_id=corp_id, dimension="basic", name="触达偏好")
        tag, _ = Tag.objects.get_or_create(group=group, name=settings.JOURNEYS_OPT_OUT_TAG)
    tags_apply(contact_ids=[contact_id], tag_ids=[tag.pk], source="manual", source_ref="opt_out_reply",
               push_to_wecom=False)


# --- validation and lifecycle ---------------------------------------------------------------------------------------------
def _template_problem(template: MessageTemplate | None) -> str | None:
    if template is None:
        return "a send step needs a message template"
    try:
        template_check(text=template.text, kind=template.kind, attachment=template.attachment)
    except TemplateError as exc:
        return f"template {template.name!r}: {exc}"
    return None


def journey_validate(*, journey: Journey) -> list[str]:
    steps = list(journey.steps.select_related("template"))
    specs = [engine.Step(s.position, s.kind, s.config or {}, s.channel) for s in steps]
    problems = engine.validate_steps(specs, template_ok={s.position: _template_problem(s.template)
                                                         for s in steps if s.kind == "send"})
    for s in steps:
        if s.kind == "branch" and "condition" in (s.config or {}):
            from tagging import rules

            try:
                rules.parse_rule(s.config["condition"])
            except rules.RuleError as exc:
                problems.append(f"step {s.position}: condition {exc}")
    cfg = journey.trigger_config or {}
    needs = {"tag_added": "tag_id", "tag_removed": "tag_id", "segment_entered": "segment_id",
             "entitlement_expiring": "days", "renewal_due": "days", "inactive": "days", "custom_event": "type"}
    if journey.trigger in needs and needs[journey.trigger] not in cfg:
        problems.append(f"the trigger needs {needs[journey.trigger]!r} in its settings")
    return problems


def send_step_per_customer_fields(step: JourneyStep) -> list[str]:
    """The per-customer fields of a 1:1 send step's template, sorted (none for other steps and channels)."""
    from journeys.messages import template_per_customer_fields

    if step.kind != "send" or step.template is None or step.channel != "single":
        return []
    return sorted(template_per_customer_fields(step.template.text))


def journey_warnings(*, journey: Journey) -> list[str]:
    """What will work but costs staff dearly: a 1:1 send whose template differs per customer becomes one WeCom
    confirm-task per customer (WeCom takes one content per task), each confirmed separately."""
    from django.utils.translation import gettext as _

    found = []
    for step in journey.steps.select_related("template").order_by("position"):
        fields = send_step_per_customer_fields(step)
        if fields:
            found.append(_("step %(position)s: the template uses %(fields)s, so each customer becomes a separate "
                           "WeCom confirm-task that their staff member must send one by one; remove these fields "
                           "to send one task per staff member") % {
                "position": step.position, "fields": ", ".join("{{ " + f + " }}" for f in fields)})
    return found


def journey_go_live(*, journey: Journey, at: datetime | None = None) -> Journey:
    problems = journey_validate(journey=journey)
    if problems:
        raise ApplicationError("The journey cannot go live: " + "; ".join(problems), {"problems": problems})
    with transaction.atomic():
        family = journey.family_id or journey.pk
        if journey.family_id:
            # The version it replaces stops taking new contacts; its enrolled contacts carry on.
            Journey.objects.filter(pk=family).exclude(pk=journey.pk).filter(status=Journey.Status.LIVE).update(
                status=Journey.Status.RETIRED)
            Journey.objects.filter(family_id=family).exclude(pk=journey.pk).filter(
                status=Journey.Status.LIVE).update(status=Journey.Status.RETIRED)
        journey.status = Journey.Status.LIVE
        journey.validated_at = at or now()
        journey.save(update_fields=["status", "validated_at", "updated_at"])
    return journey


def journey_pause(*, journey: Journey) -> Journey:
    """Paused: due steps are parked (next_run_at cleared by the sweeper) until resumed."""
    Journey.objects.filter(pk=journey.pk, status__in=RUNNING).update(status=Journey.Status.PAUSED)
    journey.refresh_from_db()
    return journey


def journey_resume(*, journey: Journey, at: datetime | None = None) -> Journey:
    if journey.status != Journey.Status.PAUSED:
        raise ApplicationError("Only a paused journey can be resumed.")
    with transaction.atomic():
        journey.status = Journey.Status.LIVE
        journey.save(update_fields=["status", "updated_at"])
        Enrollment.objects.filter(journey=journey, status=Enrollment.Status.ACTIVE, next_run_at__isnull=True).update(
            next_run_at=at or now())
    return journey


def journey_new_version(*, journey: Journey) -> Journey:
    """Editing a live journey: a draft copy (version + 1). Enrolled contacts stay on their version unless
    moved with ``enrollments_move``."""
    with transaction.atomic():
        family = journey.family_id or journey.pk
        latest = Journey.objects.filter(pk=family).values_list("version", flat=True).first() or 1
        latest = max([latest, *Journey.objects.filter(family_id=family).values_list("version", flat=True)])
        copy = Journey.objects.create(
            corp=journey.corp, name=journey.name, kind=journey.kind, status=Journey.Status.DRAFT,
            trigger=journey.trigger, trigger_config=journey.trigger_config, goal_event=journey.goal_event,
            priority=journey.priority, holdout_percent=journey.holdout_percent, reenter=journey.reenter,
            version=latest + 1, family_id=family, preset=journey.preset)
        JourneyStep.objects.bulk_create([
            JourneyStep(journey=copy, position=s.position, kind=s.kind, label=s.label, template=s.template,
                        channel=s.channel, config=s.config) for s in journey.steps.all()])
    return copy


def enrollments_move(*, source: Journey, target: Journey) -> int:
    """Explicitly move active enrollments to another version (same positions; due now)."""
    if (source.family_id or source.pk) != (target.family_id or target.pk):
        raise ApplicationError("Enrollments move only between versions of one journey.")
    return Enrollment.objects.filter(journey=source, status=Enrollment.Status.ACTIVE).update(
        journey=target, next_run_at=now())


# --- previews -------------------------------------------------------------------------------------------------------
def message_preview(*, template: MessageTemplate, contact=None) -> str:
    values = dict(SAMPLE)
    if contact is not None:
        values["name"] = contact.name
        relation = contact.relations.filter(is_active=True).select_related("staff").order_by("-added_at").first()
        values["staff_name"] = relation.staff.name if relation else ""
        ent = contact.entitlements.filter(status="active", expires_at__isnull=False).order_by("expires_at").first()
        values["coupon_name"] = ent.name if ent else ""
        zone = engine.zone_for(contact.time_zone, engine.Policy(tz=settings.TIME_ZONE))  # the date on their calendar
        values["coupon_expires"] = ent.expires_at.astimezone(zone).date().isoformat() if ent else ""
    return render(text=template.text, kind=template.kind, attachment=template.attachment, values=values).text
