"""A journey's mini-program card end to end through the WeCom simulator (http backend, wechatpy): sweep → outbox →
sender → media/upload of the template's cover → add_msg_template with the pic_media_id the simulator issued; the
media id is reused by the next batch, and when WeCom has forgotten it (the simulator enforces the 3 days) the batch is
retried with a fresh upload."""

import io
import urllib.request
from datetime import timedelta

import pytest
from PIL import Image

from contacts.models import Contact, Staff
from journeys import covers, scheduler, sender, services
from journeys.models import Journey, JourneyStep, MessageTemplate, OutboundMessage
from scrm.clock import now
from tests.factories import FollowRelationFactory

pytestmark = pytest.mark.django_db
SHOP = {"title": "会员商城", "appid": "wx1234567890abcdef", "page": "pages/index/index"}


def cover() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (104, 84), "orange").save(out, format="PNG")
    return out.getvalue()


def test_journey_mini_program_through_the_simulator(wecom_sim, corp, settings):
    settings.JOURNEYS_QUIET_HOURS = "00:00-00:00"  # the test runs at any hour
    wecom_sim.control("members", {"userid": "sales_li", "name": "李销售"})
    staff = Staff.objects.create(corp=corp, userid="sales_li", name="李销售")
    template = MessageTemplate(name="商城上新", kind="miniprogram", text="新品上架，点开看看", attachment=dict(SHOP))
    covers.template_cover_set(template=template, content=cover(), name="cover.png")
    journey = Journey.objects.create(corp=corp, name="上新提醒", trigger="manual", status=Journey.Status.LIVE)
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template)
    batch = iter(range(100))

    def send(at=None) -> tuple[list[dict], dict]:
        """Two new customers of sales_li enter the journey and their step goes out; returns the simulator's mass
        messages and uploaded media."""
        contacts = []
        for _ in range(2):
            i = next(batch)
            ext = wecom_sim.control("actions/add_contact", {"userid": "sales_li", "name": f"客户{i}"})["external_userid"]
            contacts.append(Contact.objects.create(corp=corp, external_userid=ext, name=f"客户{i}"))
            FollowRelationFactory(contact=contacts[-1], staff=staff)
        services.journey_enroll(journey=journey, contact_ids=[c.pk for c in contacts])
        groups: list = []
        scheduler.enrollments_advance_due(at=now(), dispatch=groups.extend)
        for staff_id, digest in groups:
            sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at)
        world = wecom_sim.control("state", method="GET")["world"]
        return list(world["mass_messages"].values()), world["media"]

    messages, media = send()
    assert len(messages) == 1 and messages[0]["text"] == {"content": "新品上架，点开看看"}
    (attachment,) = messages[0]["attachments"]
    pic_media_id = attachment["miniprogram"]["pic_media_id"]
    assert attachment == {"msgtype": "miniprogram", "miniprogram": {**SHOP, "pic_media_id": pic_media_id}}
    assert MessageTemplate.objects.get().cover_media_id == pic_media_id  # cached for the next sends
    assert media[pic_media_id]["type"] == "image" and not media[pic_media_id]["permanent"]
    with urllib.request.urlopen(f"{wecom_sim.url}/sim/media/{pic_media_id}", timeout=10) as response:  # noqa: S310
        assert response.read() == cover()  # the cover the operator uploaded is what WeCom shows
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"queued"}
    stored = OutboundMessage.objects.first().content["attachments"][0]["miniprogram"]
    assert stored == {**SHOP, "cover_sha": template.cover_sha}  # no media id in the outbox

    # the next batch reuses the media id: no second upload
    messages, media = send()
    assert len(messages) == 2 and messages[1]["attachments"][0]["miniprogram"]["pic_media_id"] == pic_media_id
    assert len(media) == 1

    # Three days later WeCom has forgotten the media although our cache still counts it fresh (the simulator's clock
    # moved, ours did not): add_msg_template answers 40007, the cache is cleared and the rows wait for a retry.
    wecom_sim.control("clock", {"advance_seconds": 3 * 86400 + 60})
    messages, media = send()
    assert len(messages) == 2
    retrying = OutboundMessage.objects.filter(status="pending")
    assert retrying.count() == 2 and "40007" in retrying.first().last_error
    assert MessageTemplate.objects.get().cover_media_id == ""
    staff_id, digest = retrying.values_list("staff_id", "content_hash").first()
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=now() + timedelta(minutes=1)) == 1
    world = wecom_sim.control("state", method="GET")["world"]
    fresh = list(world["mass_messages"].values())[-1]["attachments"][0]["miniprogram"]["pic_media_id"]
    assert fresh != pic_media_id and fresh == MessageTemplate.objects.get().cover_media_id
    assert len(world["media"]) == 2
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"queued"}
