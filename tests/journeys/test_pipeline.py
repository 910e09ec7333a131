"""Sweeper → outbox → sender → poller with the fake backend, including failure paths and faults."""

from datetime import timedelta

import pytest
import time_machine
from django.db import transaction

from contacts.models import ContactEvent
from contacts.services import record_event
from journeys import scheduler, sender, services
from journeys.models import ContactQuota, Enrollment, MassSendTask, OutboundMessage, StepRun
from tests.journeys.conftest import at
from wecom.errors import WeComError, WeComRateLimited, WeComTransientError, WeComUnknownOutcome

pytestmark = pytest.mark.django_db
S = OutboundMessage.Status


def added(contact, staff, when, state=""):
    record_event(corp=contact.corp, kind="added", occurred_at=when, contact=contact, staff=staff,
                 data={"state": state}, dedup_key=f"t:add:{contact.pk}:{when.isoformat()}", context={"state": state})


def test_contact_added_enters_and_t0_lands_in_the_outbox_grouped_per_staff(line, make_customer, staff_a, dispatch,
                                                                             on_the_day):
    contacts = [make_customer() for _ in range(3)]
    for c in contacts:
        added(c, staff_a, at(10))
    assert Enrollment.objects.filter(journey=line).count() == 3
    result = scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    assert result.claimed == 3 and result.outbox == 3
    rows = OutboundMessage.objects.filter(journey=line)
    assert {r.status for r in rows} == {S.PENDING} and len({r.content_hash for r in rows}) == 1
    assert dispatch.groups == [(staff_a.pk, rows[0].content_hash)]  # one hand-off for the whole group
    enr = Enrollment.objects.get(contact=contacts[0])
    assert enr.position == 3 and enr.next_run_at == at(19, 30, day=26)  # T+3 19:30 local
    # the send's audit is its outbox row (same key); other outcomes are step runs
    assert list(StepRun.objects.filter(enrollment=enr).values_list("outcome", flat=True)) == ["wait"]
    assert OutboundMessage.objects.get(enrollment=enr).idempotency_key == f"j:{enr.pk}:0"
    # a second sweep at the same time finds nothing due: nothing is sent twice
    assert scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch).claimed == 0


def test_sender_creates_one_confirm_task_and_reminds_the_staff_member(line, make_customer, staff_a, fake_wecom,
                                                                      dispatch):
    contacts = [make_customer() for _ in range(3)]
    services.journey_enroll(journey=line, contact_ids=[c.pk for c in contacts], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    staff_id, digest = dispatch.groups[0]
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 1
    (body,) = fake_wecom.msg_templates.values()
    assert body["sender"] == "guide_a" and sorted(body["external_userid"]) == sorted(c.external_userid
                                                                                     for c in contacts)
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {S.QUEUED}
    assert fake_wecom.app_messages and fake_wecom.app_messages[0][0] == ["guide_a"]
    task = MassSendTask.objects.get()
    assert task.status == "created" and task.recipients == 3 and task.reminded_at is not None
    # a redelivered sender task finds nothing left to claim
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 0
    assert len(fake_wecom.msg_templates) == 1


def test_tasks_split_at_the_recipient_limit(line, make_customer, fake_wecom, dispatch, monkeypatch):
    from wecom import gateway

    monkeypatch.setattr(gateway, "MASS_SEND_MAX_CUSTOMERS", 2)
    services.journey_enroll(journey=line, contact_ids=[make_customer().pk for _ in range(5)], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    assert sender.outbound_send_group(staff_id=dispatch.groups[0][0], content_hash=dispatch.groups[0][1],
                                      at=at(10)) == 3
    assert sorted(len(b["external_userid"]) for b in fake_wecom.msg_templates.values()) == [1, 2, 2]


def _queued(line, make_customer, fake_wecom, dispatch, n=3):
    contacts = [make_customer() for _ in range(n)]
    services.journey_enroll(journey=line, contact_ids=[c.pk for c in contacts], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    sender.outbound_send_group(staff_id=dispatch.groups[0][0], content_hash=dispatch.groups[0][1], at=at(10))
    return contacts, MassSendTask.objects.get()


def test_poller_writes_per_recipient_results_and_tracks_the_quota(line, make_customer, fake_wecom, dispatch):
    contacts, task = _queued(line, make_customer, fake_wecom, dispatch)
    sender.mass_tasks_poll(at=at(10, 5))  # not due yet
    assert MassSendTask.objects.get().status == "created"
    sender.mass_tasks_poll(at=at(10, 20))  # due, staff has not confirmed yet
    assert MassSendTask.objects.get().status == "created"
    fake_wecom.groupmsg_tasks[task.msgid] = [{"userid": "guide_a", "status": 2, "send_time": 1795406400}]
    fake_wecom.groupmsg_results[(task.msgid, "guide_a")] = [
        {"external_userid": contacts[0].external_userid, "userid": "guide_a", "status": 1, "send_time": 1795406400},
        {"external_userid": contacts[1].external_userid, "userid": "guide_a", "status": 2},
        {"external_userid": contacts[2].external_userid, "userid": "guide_a", "status": 3},
    ]
    assert sender.mass_tasks_poll(at=at(10, 40)) == 1
    statuses = {m.contact_id: m.status for m in OutboundMessage.objects.all()}
    assert statuses == {contacts[0].pk: S.SENT, contacts[1].pk: S.NOT_FRIEND, contacts[2].pk: S.OVER_QUOTA}
    assert MassSendTask.objects.get().status == "confirmed"
    assert ContactQuota.objects.get(contact=contacts[2]).blocked_until == at(0, day=1, month=12)


def test_unconfirmed_task_expires_as_not_sent_by_staff(line, make_customer, fake_wecom, dispatch):
    _queued(line, make_customer, fake_wecom, dispatch)
    sender.mass_tasks_poll(at=at(10, day=27))
    assert MassSendTask.objects.get().status == "expired"
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {S.NOT_SENT}


def _pending(line, make_customer, dispatch, n=2):
    services.journey_enroll(journey=line, contact_ids=[make_customer().pk for _ in range(n)], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    return dispatch.groups[0]


def test_transient_errors_back_off_then_fail_after_max_attempts(line, make_customer, fake_wecom, dispatch, settings):
    settings.JOURNEYS_SEND_MAX_ATTEMPTS = 2
    staff_id, digest = _pending(line, make_customer, dispatch)
    fake_wecom.fail_next("add_msg_template", WeComTransientError(-1, "busy"), times=2)
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 0
    row = OutboundMessage.objects.first()
    assert row.status == S.PENDING and row.attempts == 1 and row.next_attempt_at == at(10) + timedelta(seconds=30)
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 0  # backoff not over
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10, 1)) == 0
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {S.FAILED}
    assert "gave up" in OutboundMessage.objects.first().last_error


def test_rate_limited_waits_at_least_retry_after(line, make_customer, fake_wecom, dispatch):
    staff_id, digest = _pending(line, make_customer, dispatch)
    fake_wecom.fail_next("add_msg_template", WeComRateLimited("45009", retry_after=60.0, code=45009))
    sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10))
    assert OutboundMessage.objects.first().next_attempt_at == at(10, 1)


def test_permanent_error_fails_rows_with_the_reason(line, make_customer, fake_wecom, dispatch):
    staff_id, digest = _pending(line, make_customer, dispatch)
    fake_wecom.fail_next("add_msg_template", WeComError(41048, "nobody to send", permanent=True,
                                                        api="add_msg_template"))
    sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10))
    row = OutboundMessage.objects.first()
    assert row.status == S.FAILED and "41048" in row.last_error


def test_unknown_outcome_is_never_resent_automatically_but_admin_can(line, make_customer, fake_wecom, dispatch,
                                                                      django_capture_on_commit_callbacks):
    staff_id, digest = _pending(line, make_customer, dispatch)
    fake_wecom.fail_next("add_msg_template", WeComUnknownOutcome("read timeout", api="add_msg_template"))
    sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10))
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {S.UNKNOWN}
    with time_machine.travel(at(12), tick=False):
        assert sender.outbound_redispatch_due() == 0  # nothing pending: the unknown rows stay put
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(12)) == 0
    ids = list(OutboundMessage.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=False):
        assert sender.outbound_resend(message_ids=ids) == 2
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(12)) == 1
    assert len(fake_wecom.msg_templates) == 1 and set(OutboundMessage.objects.values_list("status", flat=True)) == {
        S.QUEUED}


def test_fail_list_rows_fail_and_the_rest_queue(line, make_customer, fake_wecom, dispatch, monkeypatch):
    contacts = [make_customer() for _ in range(2)]
    services.journey_enroll(journey=line, contact_ids=[c.pk for c in contacts], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    from wecom.contracts import MessageSendResult

    monkeypatch.setattr(fake_wecom, "add_msg_template",
                        lambda body: MessageSendResult(msgid="msgX", fail_list=(contacts[0].external_userid,)))
    sender.outbound_send_group(staff_id=dispatch.groups[0][0], content_hash=dispatch.groups[0][1], at=at(10))
    assert OutboundMessage.objects.get(contact=contacts[0]).status == S.FAILED
    assert OutboundMessage.objects.get(contact=contacts[1]).status == S.QUEUED


# --- not harassing --------------------------------------------------------------------------------------------
def test_frequency_cap_across_journeys_holds_visibly_and_service_passes(line, make_customer, dispatch, corp,
                                                                        template):
    from journeys.models import Journey, JourneyStep

    contact = make_customer()
    for i in range(2):  # two marketing touches in the last 7 days from a broadcast
        OutboundMessage.objects.create(corp=corp, idempotency_key=f"old{i}", channel="single", priority="marketing",
                                       contact=contact, staff_id=contact.relations.get().staff_id, content={},
                                       content_hash="x", status=S.SENT, created_at=at(10, day=20))
    services.journey_enroll(journey=line, contact_ids=[contact.pk], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    enr = Enrollment.objects.get(journey=line)
    assert enr.position == 0 and enr.next_run_at == at(10, day=24) and enr.hold_count == 1
    assert StepRun.objects.get(enrollment=enr).detail.startswith("frequency_cap")
    service = Journey.objects.create(corp=corp, name="券到期", trigger="manual", priority="service", status="live")
    JourneyStep.objects.create(journey=service, position=1, kind="send", template=template)
    services.journey_enroll(journey=service, contact_ids=[contact.pk], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    assert OutboundMessage.objects.filter(journey=service).count() == 1
    # after the window rolls on, the held marketing step goes out
    scheduler.enrollments_advance_due(at=at(10, day=28), dispatch=dispatch)
    assert OutboundMessage.objects.filter(journey=line, step__position=1).count() == 1


def test_quiet_hours_park_the_step_until_morning(line, make_customer, dispatch):
    contact = make_customer()
    services.journey_enroll(journey=line, contact_ids=[contact.pk], at=at(22))
    scheduler.enrollments_advance_due(at=at(22), dispatch=dispatch)
    assert Enrollment.objects.get().next_run_at == at(9, day=24) and not OutboundMessage.objects.exists()
    scheduler.enrollments_advance_due(at=at(9, day=24), dispatch=dispatch)
    assert OutboundMessage.objects.count() == 1


def test_opted_out_customer_gets_no_marketing(line, make_customer, dispatch, corp):
    from tagging.models import Tag, TagGroup
    from tagging.services import tags_apply

    group = TagGroup.objects.create(corp=corp, dimension="basic", name="状态")
    tag = Tag.objects.create(group=group, name="退订")
    contact = make_customer()
    tags_apply(contact_ids=[contact.pk], tag_ids=[tag.pk], source="manual", push_to_wecom=False)
    services.journey_enroll(journey=line, contact_ids=[contact.pk], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    assert not OutboundMessage.objects.exists()
    assert StepRun.objects.filter(outcome="skipped", detail="opted_out").count() == 1


def test_deleting_the_staff_member_leaves_every_journey(line, make_customer, staff_a, dispatch):
    from contacts.services import relation_deleted

    contact = make_customer()
    services.journey_enroll(journey=line, contact_ids=[contact.pk], at=at(10))
    relation_deleted(corp=contact.corp, staff=staff_a, contact=contact, at=at(11), by_customer=True)
    record_event(corp=contact.corp, kind="deleted_by_customer", occurred_at=at(11), contact=contact, staff=staff_a)
    enr = Enrollment.objects.get()
    assert enr.status == "exited" and enr.exit_reason == "deleted_by_customer" and enr.next_run_at is None


def test_not_a_customer_any_more_is_rechecked_at_run_time(line, make_customer, staff_a, dispatch):
    contact = make_customer()
    services.journey_enroll(journey=line, contact_ids=[contact.pk], at=at(10))
    contact.relations.update(is_active=False)  # deleted without our callback (e.g. found by a sync)
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    assert Enrollment.objects.get().status == "exited" and not OutboundMessage.objects.exists()


def test_goal_event_converts_and_stops_later_steps(line, make_customer, dispatch):
    contact = make_customer()
    services.journey_enroll(journey=line, contact_ids=[contact.pk], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    record_event(corp=contact.corp, kind=ContactEvent.Kind.ORDERED, occurred_at=at(12), contact=contact)
    enr = Enrollment.objects.get()
    assert enr.status == "converted"
    assert OutboundMessage.objects.count() == 1


def test_paused_journey_parks_and_resume_continues(line, make_customer, dispatch):
    contact = make_customer()
    services.journey_enroll(journey=line, contact_ids=[contact.pk], at=at(10))
    services.journey_pause(journey=line)
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    enr = Enrollment.objects.get()
    assert enr.next_run_at is None and enr.status == "active" and not OutboundMessage.objects.exists()
    services.journey_resume(journey=line, at=at(11))
    scheduler.enrollments_advance_due(at=at(11), dispatch=dispatch)
    assert OutboundMessage.objects.count() == 1


def test_holdout_enters_but_receives_nothing(line, make_customer, dispatch):
    line.holdout_percent = 100
    line.save()
    contact = make_customer()
    services.journey_enroll(journey=line, contact_ids=[contact.pk], at=at(10))
    scheduler.enrollments_advance_due(at=at(10, day=27), dispatch=dispatch)
    enr = Enrollment.objects.get()
    assert enr.holdout and enr.status == "done" and not OutboundMessage.objects.exists()
    assert StepRun.objects.filter(outcome="holdout").count() == 2


# --- faults: 0 duplicate and 0 lost sends --------------------------------------------------------------------------
def test_worker_killed_mid_batch_rolls_back_and_the_reclaim_sends_once(line, make_customer, dispatch, monkeypatch):
    for _ in range(4):
        services.journey_enroll(journey=line, contact_ids=[make_customer().pk], at=at(10))
    real = scheduler._enrollments_write

    def die(updates):
        real(updates)
        raise SystemExit("kill -9")  # after the outbox rows were written, before commit

    monkeypatch.setattr(scheduler, "_enrollments_write", die)
    with pytest.raises(SystemExit):
        scheduler.enrollments_advance_due(at=at(10), batch=2, dispatch=dispatch)
    assert not OutboundMessage.objects.exists() and dispatch.groups == []
    monkeypatch.setattr(scheduler, "_enrollments_write", real)
    assert scheduler.enrollments_advance_due(at=at(10), batch=2, dispatch=dispatch).claimed == 4
    assert OutboundMessage.objects.count() == 4


def test_reclaim_with_the_same_decision_collides_on_the_key_and_adds_nothing(line, make_customer, dispatch):
    """A step due longer than the broker's visibility timeout, or a lease that expired and was re-claimed:
    the same (enrollment, seq) decision produces the same keys."""
    contact = make_customer()
    services.journey_enroll(journey=line, contact_ids=[contact.pk], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    Enrollment.objects.update(position=0, seq=0, next_run_at=at(10))  # as if the commit of the move was lost
    scheduler.enrollments_advance_due(at=at(10, day=30), dispatch=dispatch)
    assert OutboundMessage.objects.filter(journey=line, step__position=1).count() == 1


def test_lost_handoff_redis_restart_is_redispatched(line, make_customer, fake_wecom):
    services.journey_enroll(journey=line, contact_ids=[make_customer().pk], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=lambda groups: None)  # the broker lost them
    from journeys import scheduler as sched

    sent = []
    with time_machine.travel(at(10, 5), tick=False):
        original = sched.dispatch_groups
        sched.dispatch_groups = lambda groups: sent.extend(groups)
        try:
            assert sender.outbound_redispatch_due() == 1
        finally:
            sched.dispatch_groups = original
    sender.outbound_send_group(staff_id=sent[0][0], content_hash=sent[0][1], at=at(10, 5))
    sender.outbound_send_group(staff_id=sent[0][0], content_hash=sent[0][1], at=at(10, 5))  # duplicate delivery
    assert len(fake_wecom.msg_templates) == 1 and OutboundMessage.objects.get().status == S.QUEUED


def test_worker_lost_after_claiming_marks_unknown_not_resent(line, make_customer, fake_wecom, dispatch, monkeypatch):
    staff_id, digest = _pending(line, make_customer, dispatch, n=1)
    monkeypatch.setattr(sender, "_deliver", lambda task, rows, at: (_ for _ in ()).throw(SystemExit("kill -9")))
    with pytest.raises(SystemExit):
        sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10))
    assert OutboundMessage.objects.get().status == S.SENDING
    with time_machine.travel(at(10, 30), tick=False):
        sender.outbound_redispatch_due()
    assert OutboundMessage.objects.get().status == S.UNKNOWN and not fake_wecom.msg_templates


def test_concurrent_sweepers_skip_locked_rows(line, make_customer, dispatch):
    for _ in range(3):
        services.journey_enroll(journey=line, contact_ids=[make_customer().pk], at=at(10))
    with transaction.atomic():
        first = scheduler.enrollments_claim(at=at(10), limit=2)
        # a second claim in the same session sees its own locks; the SQL must at least be a locking claim
        assert len(first) == 2
    assert scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch).claimed == 3


def test_tag_and_branch_steps_use_the_tagging_services_and_rules(corp, template, make_customer, dispatch):
    from journeys.models import Journey, JourneyStep
    from tagging.models import ContactTag, Tag, TagGroup

    group = TagGroup.objects.create(corp=corp, dimension="behavior", name="旅程")
    vip = Tag.objects.create(group=group, name="VIP")
    seen = Tag.objects.create(group=group, name="已欢迎")
    j = Journey.objects.create(corp=corp, name="branchy", trigger="manual")
    JourneyStep.objects.create(journey=j, position=1, kind="tag", config={"add": [seen.pk]})
    JourneyStep.objects.create(journey=j, position=2, kind="branch", config={"condition": {"tag": vip.pk}, "else": 4})
    JourneyStep.objects.create(journey=j, position=3, kind="send", template=template, label="vip only")
    JourneyStep.objects.create(journey=j, position=4, kind="exit")
    services.journey_go_live(journey=j)
    plain, special = make_customer(), make_customer()
    from tagging.services import tags_apply

    tags_apply(contact_ids=[special.pk], tag_ids=[vip.pk], source="manual", push_to_wecom=False)
    services.journey_enroll(journey=j, contact_ids=[plain.pk, special.pk], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    assert ContactTag.objects.filter(tag=seen, source="journey").count() == 2
    assert list(OutboundMessage.objects.values_list("contact_id", flat=True)) == [special.pk]
    assert set(Enrollment.objects.values_list("status", "exit_reason")) == {("exited", "exit_step")}


def test_group_channel_sends_to_the_contacts_groups_through_their_owners(corp, template, make_customer, staff_b,
                                                                         dispatch, fake_wecom):
    from journeys.models import Journey, JourneyStep
    from tests.factories import GroupChatFactory, GroupMemberFactory

    contact = make_customer()
    chat = GroupChatFactory(corp=corp, owner=staff_b)
    GroupMemberFactory(chat=chat, contact=contact)
    j = Journey.objects.create(corp=corp, name="group", trigger="manual", status="live")
    JourneyStep.objects.create(journey=j, position=1, kind="send", template=template, channel="group")
    services.journey_enroll(journey=j, contact_ids=[contact.pk], at=at(10))
    scheduler.enrollments_advance_due(at=at(10), dispatch=dispatch)
    row = OutboundMessage.objects.get()
    assert (row.chat_id, row.staff_id) == (chat.chat_id, staff_b.pk)
    sender.outbound_send_group(staff_id=staff_b.pk, content_hash=row.content_hash, at=at(10))
    (body,) = fake_wecom.msg_templates.values()
    assert body["chat_type"] == "group" and body["chat_id_list"] == [chat.chat_id] and body["sender"] == "guide_b"


def test_staff_reminder_channel_sends_one_app_message_listing_customers(corp, make_customer, dispatch, fake_wecom):
    from journeys.models import Journey, JourneyStep, MessageTemplate

    tpl = MessageTemplate.objects.create(name="call", text="请电话回访续费意向")
    j = Journey.objects.create(corp=corp, name="sop", trigger="manual", status="live", priority="service")
    JourneyStep.objects.create(journey=j, position=1, kind="send", template=tpl, channel="staff_reminder")
    services.journey_enroll(journey=j, contact_ids=[make_customer(name="阿珍").pk, make_customer(name="阿强").pk],
                            at=at(23))  # reminders to staff ignore the customers' quiet hours
    scheduler.enrollments_advance_due(at=at(23), dispatch=dispatch)
    sender.outbound_send_group(staff_id=dispatch.groups[0][0], content_hash=dispatch.groups[0][1], at=at(23))
    ((userids, content),) = fake_wecom.app_messages
    assert userids == ["guide_a"] and "阿珍" in content.text and "阿强" in content.text
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {S.SENT}
    assert not fake_wecom.msg_templates
