"""End to end: a simulated customer acts in WeCom → encrypted callback → our webhook (live server) →
Redis inbox → a real Celery worker → the http backend reads details back from the simulator → the database.
"""

import time

import pytest
from celery.contrib.testing.worker import start_worker

from contacts.models import Contact, ContactEvent, FollowRelation, GroupChat, GroupMember
from scrm.celery import app as celery_app
from wecom.models import CallbackEvent

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(settings):
    """A real Celery worker (solo pool, in a thread) consuming the default queue from the test Redis."""
    celery_app.conf.broker_transport_options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    with start_worker(celery_app, pool="solo", concurrency=1, perform_ping_check=False, loglevel="WARNING",
                      shutdown_timeout=30):
        yield


@pytest.fixture
def sim(wecom_sim, live_server, worker):
    wecom_sim.control("config", {"callback_url": f"{live_server.url}/wecom/callback/"})
    wecom_sim.control("members", {"userid": "sales_li", "name": "李销售"})
    return wecom_sim


def wait_for(check, timeout: float = 30.0):
    """Poll until ``check()`` is truthy (the worker runs asynchronously); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)


def delivered(sim):
    """Wait until the simulator delivered everything and our worker processed every accepted event."""
    assert sim.control("callbacks/wait", {"timeout": 20})["idle"]
    records = sim.control("callbacks", method="GET")["callbacks"]
    wait_for(lambda: not CallbackEvent.objects.filter(status="pending").exists())
    return records


def test_customer_adds_staff_member_and_later_deletes_them(sim):
    added = sim.control("actions/add_contact", {"userid": "sales_li", "name": "小红", "state": "poster_1"})
    ext = added["external_userid"]
    records = delivered(sim)
    assert [r["status"] for r in records] == ["delivered"]
    assert records[0]["attempts"][-1]["status_code"] == 200

    relation = wait_for(lambda: FollowRelation.objects.filter(contact__external_userid=ext).first())
    contact = Contact.objects.get(external_userid=ext)
    assert contact.name == "小红"  # read back from the simulator through wechatpy
    assert (relation.staff.userid, relation.staff.name) == ("sales_li", "李销售")  # read via user/get
    assert relation.state == "poster_1" and relation.is_active
    assert ContactEvent.objects.get(contact=contact).kind == "added"
    wait_for(lambda: CallbackEvent.objects.filter(status="processed").count() == 1)

    sim.control("actions/customer_deletes_member", {"userid": "sales_li", "external_userid": ext})
    delivered(sim)
    wait_for(lambda: not FollowRelation.objects.get(pk=relation.pk).is_active)
    relation.refresh_from_db()
    assert relation.deleted_by_customer_at is not None
    assert Contact.objects.get(pk=contact.pk).active_relations == 0


def test_duplicated_deliveries_have_one_effect(sim):
    sim.control("faults", {"callback_duplicate": True})
    ext = sim.control("actions/add_contact", {"userid": "sales_li", "name": "阿杰"})["external_userid"]
    records = delivered(sim)
    assert len(records) == 2 and all(r["status"] == "delivered" for r in records)
    wait_for(lambda: CallbackEvent.objects.filter(status="processed").exists())
    event = CallbackEvent.objects.get()
    assert event.deliveries == 2
    assert ContactEvent.objects.filter(contact__external_userid=ext).count() == 1


def test_group_created_joined_and_left(sim):
    ext = sim.control("actions/add_contact", {"userid": "sales_li", "name": "小张"})["external_userid"]
    chat_id = sim.control("actions/create_group", {"owner": "sales_li", "name": "新品体验群"})["chat_id"]
    sim.control("actions/join_group", {"chat_id": chat_id, "external_userids": [ext], "join_scene": 3})
    delivered(sim)
    member = wait_for(lambda: GroupMember.objects.filter(chat__chat_id=chat_id, member_id=ext,
                                                         left_at__isnull=True).first())
    chat = GroupChat.objects.get(chat_id=chat_id)
    assert chat.name == "新品体验群" and chat.owner.userid == "sales_li"
    assert member.contact.external_userid == ext
    wait_for(lambda: GroupChat.objects.get(pk=chat.pk).member_count == 2)

    sim.control("actions/leave_group", {"chat_id": chat_id, "external_userids": [ext]})
    delivered(sim)
    assert GroupMember.objects.get(pk=member.pk).left_at is not None
    assert ContactEvent.objects.filter(contact__external_userid=ext, kind="left_group").count() == 1


def test_a_refused_callback_is_retried_by_wecom_and_leaves_nothing(sim, settings):
    settings.WECOM_TOKEN = "rotated-token"  # our side no longer matches the simulator's token
    from wecom import gateway

    gateway.reset()
    sim.control("actions/add_contact", {"userid": "sales_li", "name": "无效"})
    records = delivered(sim)
    assert records[0]["status"] == "failed"
    assert [a["status_code"] for a in records[0]["attempts"]] == [403, 403, 403]
    assert CallbackEvent.objects.count() == 0 and Contact.objects.count() == 0
