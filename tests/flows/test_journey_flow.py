"""End to end through the WeCom simulator (http backend, wechatpy): a due journey step becomes a confirm-task
in the simulator, the staff member confirms it there, and the poller reads the per-recipient results back."""

import pytest

from contacts.models import Contact, Staff
from journeys import scheduler, sender, services
from journeys.models import Journey, JourneyStep, MassSendTask, MessageTemplate, OutboundMessage
from scrm.clock import now
from tests.factories import FollowRelationFactory

pytestmark = [pytest.mark.flow, pytest.mark.django_db]


def test_step_to_confirm_task_to_results(wecom_sim, corp, settings):
    settings.JOURNEYS_QUIET_HOURS = "00:00-00:00"  # the test runs at any hour
    wecom_sim.control("members", {"userid": "sales_li", "name": "李销售"})
    staff = Staff.objects.create(corp=corp, userid="sales_li", name="李销售")
    friends = [wecom_sim.control("actions/add_contact", {"userid": "sales_li", "name": f"客户{i}"})["external_userid"]
               for i in range(3)]
    contacts = [Contact.objects.create(corp=corp, external_userid=ext, name=f"客户{i}") for i, ext in enumerate(friends)]
    for c in contacts:
        FollowRelationFactory(contact=c, staff=staff)
    template = MessageTemplate.objects.create(name="hello", text="您好，新人礼已为您备好")
    journey = Journey.objects.create(corp=corp, name="line", trigger="manual", status="live")
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template)
    services.journey_enroll(journey=journey, contact_ids=[c.pk for c in contacts])

    groups: list = []
    result = scheduler.enrollments_advance_due(at=now(), dispatch=groups.extend)
    assert result.outbox == 3 and len(groups) == 1
    assert sender.outbound_send_group(staff_id=groups[0][0], content_hash=groups[0][1]) == 1
    task = MassSendTask.objects.get()
    assert task.msgid.startswith("msg") and task.reminded_at is not None
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"queued"}
    assert "群发任务待确认" in str(wecom_sim.control("app_messages?userid=sales_li", method="GET"))
    # the third customer deletes the staff member before the task is confirmed (we have not heard yet)
    wecom_sim.control("actions/customer_deletes_member", {"userid": "sales_li", "external_userid": friends[2]})

    sender.mass_task_poll_one(task=task, at=now())  # not confirmed yet: nothing changes
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"queued"}

    confirmed = wecom_sim.control("actions/confirm_mass_msg", {"msgid": task.msgid, "userid": "sales_li"})
    assert (confirmed["sent"], confirmed["not_friend"]) == (2, 1)
    task.refresh_from_db()
    sender.mass_task_poll_one(task=MassSendTask.objects.select_related("staff").get(), at=now())
    statuses = dict(OutboundMessage.objects.values_list("contact__external_userid", "status"))
    assert statuses == {friends[0]: "sent", friends[1]: "sent", friends[2]: "not_friend"}
    assert MassSendTask.objects.get().status == "confirmed"


@pytest.fixture
def worker(settings):
    """A real Celery worker (solo pool, in a thread) on the default and wecom queues of the test Redis."""
    from celery.contrib.testing.worker import start_worker

    from scrm.celery import app as celery_app

    celery_app.conf.broker_transport_options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    with start_worker(celery_app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=30, queues=["default", "wecom"]):
        yield


def _wait_for(check, timeout: float = 30.0):
    import time

    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)
    return value


@pytest.mark.django_db(transaction=True)
def test_beat_tasks_through_a_real_worker(wecom_sim, worker, settings):
    """The beat task runs in a worker, hands the group to the wecom queue, the sender creates the task in the
    simulator; after the staff member confirms, the poller task writes the results."""
    from journeys.tasks import enrollments_advance_due, mass_tasks_poll
    from tests.factories import CorpFactory

    settings.JOURNEYS_QUIET_HOURS = "00:00-00:00"
    corp = CorpFactory(corp_id="wwTESTCORP0000001")
    wecom_sim.control("members", {"userid": "sales_wang", "name": "王销售"})
    staff = Staff.objects.create(corp=corp, userid="sales_wang", name="王销售")
    ext = wecom_sim.control("actions/add_contact", {"userid": "sales_wang", "name": "小美"})["external_userid"]
    contact = Contact.objects.create(corp=corp, external_userid=ext, name="小美")
    FollowRelationFactory(contact=contact, staff=staff)
    template = MessageTemplate.objects.create(name="hi", text="会员日快乐")
    journey = Journey.objects.create(corp=corp, name="line", trigger="manual", status="live")
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template)
    services.journey_enroll(journey=journey, contact_ids=[contact.pk])

    enrollments_advance_due.delay()
    task = _wait_for(lambda: MassSendTask.objects.filter(status="created").first())
    wecom_sim.control("actions/confirm_mass_msg", {"msgid": task.msgid, "userid": "sales_wang"})
    MassSendTask.objects.filter(pk=task.pk).update(next_poll_at=now())
    mass_tasks_poll.delay()
    _wait_for(lambda: OutboundMessage.objects.filter(status="sent").exists())
    assert OutboundMessage.objects.count() == 1
