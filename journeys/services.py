"""Writes for journeys: entering contacts, lifecycle (validate, go live, pause, resume, new version),
ready-made journeys, custom events, and exits. Reads for reports live in journeys/selectors.py."""

import json
import logging
from datetime import datetime

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
        values["coupon_expires"] = ent.expires_at.date().isoformat() if ent else ""
    return render(text=template.text, kind=template.kind, attachment=template.attachment, values=values).text
