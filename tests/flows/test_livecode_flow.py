"""End to end with the WeCom simulator: a live code publishes contact ways and join ways through the http
backend; a simulated customer adds / joins through them → encrypted callback → our webhook → a real Celery
worker → attribution by state, tags, and the welcome message sent with the one-use WelcomeCode."""

import time

import pytest
from django.test import Client

from contacts.models import GroupChat
from livecodes import hotpath, services
from livecodes.models import Conversion, JoinWay, LiveCode
from tests.flows.test_callback_flow import delivered, wait_for, worker  # noqa: F401 - fixtures reused

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sim(wecom_sim, live_server, worker):  # noqa: F811
    wecom_sim.control("config", {"callback_url": f"{live_server.url}/wecom/callback/"})
    for userid, name in (("sales_li", "李销售"), ("sales_wang", "王销售")):
        wecom_sim.control("members", {"userid": userid, "name": name})
    return wecom_sim


def test_staff_code_add_is_attributed_and_welcomed_within_the_window(sim, corp):
    from contacts.services import staff_upsert

    code = services.livecode_create(corp=corp, kind="staff", name="直播间", mode="round_robin",
                                    welcome_text="%NICKNAME%，欢迎来到直播间！")
    for userid in ("sales_li", "sales_wang"):
        services.target_add_staff(code=code, staff=staff_upsert(corp=corp, userid=userid))
    targets = list(code.targets.order_by("position"))
    assert all(t.contact_way_id and t.wecom_qr_url for t in targets)  # created in the simulator
    assert LiveCode.objects.get(pk=code.pk).publish_error == ""

    # The landing page (what a scanner sees) shows the first staff member's contact way QR.
    page = Client().get(f"/l/{code.slug}").content.decode()
    assert targets[0].wecom_qr_url in page

    started = time.monotonic()
    added = sim.control("actions/add_contact", {"config_id": targets[0].contact_way_id, "name": "小美"})
    delivered(sim)
    conversion = wait_for(lambda: Conversion.objects.filter(contact__external_userid=added["external_userid"],
                                                            welcome__in=["sent", "failed"]).first())
    elapsed = time.monotonic() - started
    assert conversion.code_id == code.pk and conversion.target_id == targets[0].pk
    assert conversion.welcome == "sent", conversion.welcome_error
    assert elapsed < 20
    sent = sim.control(f"welcome_messages?external_userid={added['external_userid']}", method="GET")
    assert sent["welcome_messages"][0]["text"]["content"] == "小美，欢迎来到直播间！"
    assert added["state"] == services.target_state(targets[0])


def test_group_code_join_through_the_join_way_is_counted(sim, corp):
    chats = [sim.control("actions/create_group", {"owner": "sales_li", "name": f"福利群{i}"})["chat_id"]
             for i in range(2)]
    delivered(sim)
    wait_for(lambda: GroupChat.objects.filter(chat_id__in=chats).count() == 2)
    code = services.livecode_create(corp=corp, kind="group", name="福利群码")
    for chat_id in chats:
        services.target_add_group(code=code, chat=GroupChat.objects.get(chat_id=chat_id))
    way = JoinWay.objects.get(code=code)
    assert way.chat_ids == chats and way.qr_url
    assert way.qr_url in Client().get(f"/l/{code.slug}").content.decode()

    ext = sim.control("actions/add_contact", {"userid": "sales_li", "name": "进群的人"})["external_userid"]
    sim.control("actions/join_group", {"config_id": way.config_id, "external_userids": [ext]})
    delivered(sim)
    conversion = wait_for(lambda: Conversion.objects.filter(kind="join", contact__external_userid=ext).first())
    assert conversion.code_id == code.pk and conversion.target.chat.chat_id == chats[0]
    assert hotpath.counts_get(code_id=code.pk, day="x")[("j", conversion.target_id)] == 1
