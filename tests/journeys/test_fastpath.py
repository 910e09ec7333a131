"""The set-based path (journeys/fastpath.py) against the per-row engine: same data, same results.

Each scenario runs the sweeper twice on the same rows (per-row only, then set-based), rolling the first run back,
and compares everything the sweep writes: outbox rows, step runs, enrollments, outcome counts and hand-offs.
"""

from datetime import timedelta

import pytest
from django.db import transaction

from contacts.models import ContactEvent
from contacts.services import record_event
from journeys import scheduler, sender
from journeys.models import (
    ContactQuota,
    Enrollment,
    Journey,
    JourneyStep,
    MassSendTask,
    MessageTemplate,
    OutboundMessage,
    StepRun,
)
from tests.journeys.conftest import at

pytestmark = pytest.mark.django_db


def _snapshot(result) -> dict:
    return {
        "outbox": list(OutboundMessage.objects.filter(idempotency_key__startswith="j:").order_by("idempotency_key")
                       .values_list("idempotency_key", "contact_id", "staff_id", "channel", "priority", "status",
                                    "content", "content_hash", "journey_id", "step_id", "enrollment_id",
                                    "created_at")),
        "runs": list(StepRun.objects.order_by("idempotency_key")
                     .values_list("idempotency_key", "enrollment_id", "step_id", "outcome", "detail", "at")),
        "enrollments": list(Enrollment.objects.order_by("id")
                            .values_list("id", "status", "position", "seq", "hold_count", "next_run_at",
                                         "finished_at", "exit_reason")),
        "outcomes": dict(result.outcomes), "outbox_count": result.outbox, "groups": result.groups,
        "claimed": result.claimed,
    }


def _both_paths(when) -> tuple[dict, dict, scheduler.AdvanceResult]:
    with transaction.atomic():
        reference = scheduler.enrollments_advance_due(at=when, dispatch=lambda groups: None, set_based=False)
        per_row = _snapshot(reference)
        transaction.set_rollback(True)
    result = scheduler.enrollments_advance_due(at=when, dispatch=lambda groups: None, set_based=True)
    return per_row, _snapshot(result), result


@pytest.fixture
def last_send(corp, template):
    """A live marketing journey whose only step is a 1:1 send; its goal is an order."""
    journey = Journey.objects.create(corp=corp, name="唤醒", trigger="manual", status="live", priority="marketing",
                                     goal_event="ordered")
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template)
    return journey


def _enroll(journey, contact, *, holdout=False, entered=None):
    return Enrollment.objects.create(journey=journey, contact=contact, status="active", position=1, seq=0,
                                     next_run_at=at(9, 30), entered_at=entered or at(8), holdout=holdout)


def _touch(contact, *, key, priority="marketing", status="sent", when=None):
    OutboundMessage.objects.create(corp=contact.corp, idempotency_key=key, channel="single", priority=priority,
                                   contact=contact, staff_id=contact.relations.get().staff_id, content={},
                                   content_hash="old", status=status, created_at=when or at(10, day=20))


@pytest.fixture
def mixed(corp, last_send, line, template, make_customer, settings):
    """One of each: passes, opted out, capped (in the window; and by failed rows only, which passes), quota
    blocked, month quota used up, no longer a customer, converted (and a goal reached before entry, which does
    not count), holdout, claimed twice in one batch, personalised template, the last step of a three-step line."""
    from tagging.models import Tag, TagGroup
    from tagging.services import tags_apply

    settings.JOURNEYS_RECEIVE_QUOTA_PER_MONTH = 3
    people = {name: make_customer(name=name) for name in (
        "plain", "opted_out", "opted_solo", "capped", "capped_solo", "capped_failed", "cap_expired", "blocked",
        "month_full", "gone", "converted", "holdout", "twice", "personal", "line_end", "old_goal")}
    tag = Tag.objects.create(group=TagGroup.objects.create(corp=corp, dimension="basic", name="状态"),
                             name=settings.JOURNEYS_OPT_OUT_TAG)
    tags_apply(contact_ids=[people["opted_out"].pk, people["opted_solo"].pk], tag_ids=[tag.pk], source="manual",
               push_to_wecom=False)
    for i in range(2):
        _touch(people["capped"], key=f"cap{i}")
        _touch(people["capped_solo"], key=f"caps{i}", when=at(10, day=17))
        _touch(people["cap_expired"], key=f"capx{i}", when=at(9, day=16))  # before the 7-day window
        _touch(people["capped_failed"], key=f"capf{i}", status="failed")  # failed rows do not count
    for i in range(3):
        _touch(people["month_full"], key=f"month{i}", priority="service", when=at(10, day=1 + i))
    ContactQuota.objects.create(contact=people["blocked"], blocked_until=at(0, day=1, month=12))
    people["gone"].relations.update(is_active=False)
    record_event(corp=corp, kind=ContactEvent.Kind.ORDERED, occurred_at=at(8, 30), contact=people["converted"])
    record_event(corp=corp, kind=ContactEvent.Kind.ORDERED, occurred_at=at(7), contact=people["old_goal"])
    for name in ("plain", "opted_out", "opted_solo", "capped", "capped_solo", "capped_failed", "cap_expired",
                 "blocked", "month_full", "gone", "converted", "twice", "old_goal"):
        _enroll(last_send, people[name])
    _enroll(last_send, people["holdout"], holdout=True)
    service = Journey.objects.create(corp=corp, name="服务", trigger="manual", status="live", priority="service")
    JourneyStep.objects.create(journey=service, position=1, kind="send", template=template)
    _enroll(service, people["twice"])
    _enroll(service, people["capped"])  # service passes the cap and opt-out
    _enroll(service, people["opted_out"], entered=at(8, 1))
    personal = Journey.objects.create(corp=corp, name="称呼", trigger="manual", status="live", priority="service")
    JourneyStep.objects.create(journey=personal, position=1, kind="send", template=MessageTemplate.objects.create(
        name="hi", text="{{ name }} 您好"))
    _enroll(personal, people["personal"])
    line_end = _enroll(line, people["line_end"])
    Enrollment.objects.filter(pk=line_end.pk).update(position=3, seq=2)
    return people


def test_set_based_path_decides_exactly_like_the_per_row_engine(mixed, last_send):
    per_row, set_based, result = _both_paths(at(10))
    assert set_based == per_row
    # the set-based path did take the clean rows, and the checks held back what they had to
    # plain, capped_failed, cap_expired, old_goal and the line's last step; contacts claimed twice went the
    # per-row way
    assert result.set_based == 5
    outcomes = per_row["outcomes"]
    assert outcomes["held:frequency_cap"] == 2 and outcomes["held:receive_quota"] == 2
    assert outcomes["skipped:opted_out"] == 2 and outcomes["holdout"] == 1
    assert outcomes["exit"] == 1 and outcomes["convert"] == 1
    sent_to = set(OutboundMessage.objects.filter(journey=last_send).values_list("contact__name", flat=True))
    assert sent_to == {"plain", "capped_failed", "cap_expired", "old_goal", "twice"}


def test_quiet_hours_hold_everything_on_both_paths(mixed):
    per_row, set_based, result = _both_paths(at(22))
    assert set_based == per_row and result.set_based == 0
    assert not OutboundMessage.objects.filter(idempotency_key__startswith="j:").exists()


def test_paused_journey_is_left_to_the_engine(mixed, last_send):
    last_send.status = Journey.Status.PAUSED
    last_send.save()
    per_row, set_based, _ = _both_paths(at(10))
    assert set_based == per_row
    assert Enrollment.objects.filter(journey=last_send, status="active", next_run_at=None).count() == 14


def test_a_reclaimed_decision_collides_on_its_key_and_inserts_nothing(corp, last_send, make_customer):
    contact = make_customer()
    enrollment = _enroll(last_send, contact)
    first = scheduler.enrollments_advance_due(at=at(10), dispatch=lambda groups: None)
    assert first.set_based == 1 and first.outbox == 1 and first.groups
    # the lease "expired" after the commit: the same decision runs again on the same seq
    Enrollment.objects.filter(pk=enrollment.pk).update(status="active", position=1, seq=0, next_run_at=at(9))
    again = scheduler.enrollments_advance_due(at=at(10), dispatch=lambda groups: None)
    assert again.set_based == 1 and again.outbox == 0 and not again.groups
    assert OutboundMessage.objects.filter(enrollment=enrollment).count() == 1
    assert Enrollment.objects.get(pk=enrollment.pk).status == "done"


def test_rows_from_the_set_based_path_are_sent_by_the_sender(corp, last_send, make_customer, staff_a, fake_wecom):
    contacts = [make_customer() for _ in range(3)]
    for contact in contacts:
        _enroll(last_send, contact)
    result = scheduler.enrollments_advance_due(at=at(10), dispatch=lambda groups: None)
    assert result.set_based == 3 and len(result.groups) == 1
    (staff_id, digest), = result.groups
    assert staff_id == staff_a.pk
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 1
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"queued"}


def test_sender_fails_rows_whose_contact_vanished_and_sends_the_rest(corp, last_send, make_customer, staff_a,
                                                                    fake_wecom):
    keep = make_customer()
    _enroll(last_send, keep)
    result = scheduler.enrollments_advance_due(at=at(10), dispatch=lambda groups: None)
    (staff_id, digest), = result.groups
    # a row whose contact was deleted after the sweep read it (the outbox has no FK constraint)
    OutboundMessage.objects.create(corp=corp, idempotency_key="orphan", channel="single", priority="marketing",
                                   contact_id=keep.pk + 10_000, staff=staff_a, content={"text": "x"},
                                   content_hash=digest, created_at=at(10))
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10) + timedelta(minutes=1)) == 1
    orphan = OutboundMessage.objects.get(idempotency_key="orphan")
    assert orphan.status == "failed" and orphan.last_error == "contact deleted"
    assert OutboundMessage.objects.get(contact=keep).status == "queued"


def test_sender_fails_rows_whose_staff_member_vanished(corp, make_customer, fake_wecom):
    contact = make_customer()
    OutboundMessage.objects.create(corp=corp, idempotency_key="nostaff", channel="single", priority="service",
                                   contact=contact, staff_id=999_999, content={"text": "x"}, content_hash="h",
                                   created_at=at(10))
    assert sender.outbound_send_group(staff_id=999_999, content_hash="h", at=at(10)) == 0
    assert not MassSendTask.objects.exists()
    row = OutboundMessage.objects.get(idempotency_key="nostaff")
    assert row.status == "failed" and row.last_error == "staff member deleted"
