"""Mini-program cards in journey messages: the operator uploads the cover with the template; the sender uploads it to
WeCom as temporary media right before add_msg_template and puts its media id into ``miniprogram.pic_media_id``, through
the cache shared with live codes (reused until less than an hour of its 3 days is left; 40007 clears it). The stored
content and its hash never carry a media id. Failure paths: transient and permanent upload errors, a template without
a cover (typed in before covers), a cover replaced after the message was queued. Also the admin upload."""

import io
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from journeys import covers, scheduler, sender, services
from journeys.messages import TemplateError, template_check
from journeys.models import Journey, JourneyStep, MassSendTask, MessageTemplate, OutboundMessage
from scrm.clock import now
from scrm.errors import ApplicationError
from tests.journeys.conftest import at
from wecom.errors import WeComError, WeComTransientError, WeComUnknownOutcome

pytestmark = pytest.mark.django_db
S = OutboundMessage.Status
SHOP = {"title": "会员商城", "appid": "wx1234567890abcdef", "page": "pages/index/index"}


@pytest.fixture(autouse=True)
def _english():
    from django.utils import translation

    with translation.override("en"):
        yield


def cover(color="orange", size=(104, 84), fmt="PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def mp_template():
    template = MessageTemplate(name="商城上新", kind="miniprogram", text="新品上架，点开看看", attachment=dict(SHOP))
    covers.template_cover_set(template=template, content=cover(), name="cover.png")
    return template


def live_journey(corp, template) -> Journey:
    journey = Journey.objects.create(corp=corp, name="上新提醒", trigger="manual", status=Journey.Status.LIVE)
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=template)
    return journey


def queue(journey, make_customer, dispatch, n=2, when=None):
    """Enroll ``n`` new customers and sweep: their rows are pending in the outbox. Returns the last group."""
    services.journey_enroll(journey=journey, contact_ids=[make_customer().pk for _ in range(n)], at=when or at(10))
    scheduler.enrollments_advance_due(at=when or at(10), dispatch=dispatch)
    return dispatch.groups[-1]


def uploads(fake_wecom) -> list[tuple]:
    return [args for name, args in fake_wecom.calls if name == "upload_media"]


def sent_cards(fake_wecom) -> list[dict]:
    return [a["miniprogram"] for body in fake_wecom.msg_templates.values() for a in body.get("attachments", [])]


# --- the template --------------------------------------------------------------------------------------------------
def test_a_mini_program_template_needs_an_uploaded_cover():
    with pytest.raises(TemplateError, match="needs a cover image") as exc:
        template_check(text="hi", kind="miniprogram", attachment=dict(SHOP))
    assert exc.value.field == "attachment"
    with pytest.raises(ValidationError) as exc:  # a typed-in media id is no cover: it expires after 3 days
        MessageTemplate.objects.create(name="x", kind="miniprogram", text="hi",
                                       attachment={**SHOP, "pic_media_id": "3abc", "cover_sha": "f" * 64})
    assert "needs a cover image" in str(exc.value.message_dict["attachment"])
    assert not MessageTemplate.objects.exists()


def test_the_cover_is_named_by_its_hash_in_the_attachment(mp_template):
    mp_template.refresh_from_db()
    assert mp_template.attachment == {**SHOP, "cover_sha": mp_template.cover_sha}
    assert bytes(mp_template.cover) == cover() and mp_template.cover_type == "image/png"
    assert mp_template.cover_media_id == "" and mp_template.cover_media_expires_at is None  # uploaded when sending
    # whatever is typed under cover_sha or pic_media_id is replaced on save
    mp_template.attachment = {**SHOP, "cover_sha": "0" * 64, "pic_media_id": "3typed"}
    mp_template.save()
    assert MessageTemplate.objects.get().attachment == {**SHOP, "cover_sha": mp_template.cover_sha}
    # another kind drops it
    mp_template.kind, mp_template.attachment = "link", {"title": "t", "url": "https://example.com", "cover_sha": "x"}
    mp_template.save()
    assert MessageTemplate.objects.get().attachment == {"title": "t", "url": "https://example.com"}


@pytest.mark.parametrize(("content", "message"), [
    (b"GIF89a" + b"\x00" * 64, "Upload a PNG or JPEG image."),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "The file is not a readable image."),
])
def test_a_cover_that_is_not_a_png_or_jpeg_is_refused(content, message):
    template = MessageTemplate(name="x", kind="miniprogram", text="hi", attachment=dict(SHOP))
    with pytest.raises(ApplicationError, match=message):
        covers.template_cover_set(template=template, content=content)
    assert template.pk is None


def test_cover_size_and_pixels_are_checked_before_decoding(settings):
    template = MessageTemplate(name="x", kind="miniprogram", text="hi", attachment=dict(SHOP))
    settings.LIVECODE_UPLOAD_MAX_BYTES = 1024
    with pytest.raises(ApplicationError, match="larger than 1 KB"):
        covers.template_cover_set(template=template, content=cover(size=(300, 300), fmt="JPEG") + b"\x00" * 1024)
    settings.LIVECODE_UPLOAD_MAX_BYTES, settings.LIVECODE_UPLOAD_MAX_PIXELS = 2 * 1024 * 1024, 10_000
    with pytest.raises(ApplicationError, match="too many pixels"):
        covers.template_cover_set(template=template, content=cover(size=(200, 100)))


def test_a_journey_with_a_coverless_mini_program_cannot_go_live(corp):
    MessageTemplate.objects.bulk_create([MessageTemplate(name="旧模板", kind="miniprogram", text="hi",
                                                         attachment=dict(SHOP))])  # typed in before covers
    journey = Journey.objects.create(corp=corp, name="draft", trigger="manual")
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=MessageTemplate.objects.get())
    with pytest.raises(ApplicationError) as exc:
        services.journey_go_live(journey=journey)
    assert any("needs a cover image" in p for p in exc.value.extra["problems"])


# --- sending -------------------------------------------------------------------------------------------------------
def test_the_cover_goes_as_pic_media_id_uploaded_once_and_reused(corp, staff_a, mp_template, make_customer,
                                                                 fake_wecom, dispatch):
    journey = live_journey(corp, mp_template)
    staff_id, digest = queue(journey, make_customer, dispatch)
    stored = OutboundMessage.objects.first().content
    assert stored["attachments"] == [{"msgtype": "miniprogram", "miniprogram": {**SHOP,
                                                                               "cover_sha": mp_template.cover_sha}}]
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 1
    (upload,) = uploads(fake_wecom)
    assert upload == ("image", f"template-cover-{mp_template.pk}.png")
    media_id = MessageTemplate.objects.get().cover_media_id
    assert fake_wecom.media[media_id] == cover()  # the bytes the operator uploaded
    assert sent_cards(fake_wecom) == [{**SHOP, "pic_media_id": media_id}]
    template = MessageTemplate.objects.get()
    assert timedelta(days=3) - timedelta(minutes=1) < template.cover_media_expires_at - now() <= timedelta(days=3)
    # the stored content and its hash do not change with the media id
    assert OutboundMessage.objects.first().content == stored
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {S.QUEUED}

    # the next batch of the same content reuses the cached media id: no second upload
    staff_id2, digest2 = queue(journey, make_customer, dispatch)
    assert digest2 == digest
    assert sender.outbound_send_group(staff_id=staff_id2, content_hash=digest2, at=at(10)) == 1
    assert len(uploads(fake_wecom)) == 1 and sent_cards(fake_wecom)[-1]["pic_media_id"] == media_id


def test_a_cover_with_less_than_an_hour_left_is_uploaded_again(corp, staff_a, mp_template, make_customer, fake_wecom,
                                                              dispatch):
    journey = live_journey(corp, mp_template)
    MessageTemplate.objects.filter(pk=mp_template.pk).update(cover_media_id="3old",
                                                             cover_media_expires_at=now() + timedelta(minutes=50))
    staff_id, digest = queue(journey, make_customer, dispatch)
    sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10))
    assert len(uploads(fake_wecom)) == 1 and sent_cards(fake_wecom)[-1]["pic_media_id"] != "3old"
    MessageTemplate.objects.filter(pk=mp_template.pk).update(cover_media_id="3fresh",
                                                             cover_media_expires_at=now() + timedelta(minutes=70))
    staff_id, digest = queue(journey, make_customer, dispatch)
    sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10))
    assert len(uploads(fake_wecom)) == 1 and sent_cards(fake_wecom)[-1]["pic_media_id"] == "3fresh"


@pytest.mark.parametrize("error", [WeComTransientError(-1, "system busy", api="media/upload"),
                                   WeComUnknownOutcome("read timeout", api="media/upload")])
def test_a_transient_upload_failure_retries_the_batch_later(corp, staff_a, mp_template, make_customer, fake_wecom,
                                                            dispatch, error):
    journey = live_journey(corp, mp_template)
    staff_id, digest = queue(journey, make_customer, dispatch)
    fake_wecom.fail_next("upload_media", error)
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 0
    assert not fake_wecom.msg_templates  # nothing was sent without the card
    row = OutboundMessage.objects.first()
    assert row.status == S.PENDING and row.attempts == 1 and row.next_attempt_at == at(10) + timedelta(seconds=30)
    assert MassSendTask.objects.get().status == "failed"
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10, 1)) == 1
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {S.QUEUED}
    assert sent_cards(fake_wecom) == [{**SHOP, "pic_media_id": MessageTemplate.objects.get().cover_media_id}]


def test_a_refused_cover_fails_the_rows_with_the_reason(corp, staff_a, mp_template, make_customer, fake_wecom,
                                                        dispatch):
    journey = live_journey(corp, mp_template)
    staff_id, digest = queue(journey, make_customer, dispatch)
    fake_wecom.fail_next("upload_media", WeComError(40009, "invalid image size", permanent=True, api="media/upload"))
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 1
    assert not fake_wecom.msg_templates
    rows = list(OutboundMessage.objects.all())
    assert {r.status for r in rows} == {S.FAILED} and rows[0].next_attempt_at is None
    assert "refused the mini-program's cover image (errcode 40009: invalid image size)" in rows[0].last_error
    assert MassSendTask.objects.get().status == "failed"


def test_a_coverless_template_fails_its_messages_until_a_cover_is_uploaded(corp, staff_a, make_customer, fake_wecom,
                                                                           dispatch, django_capture_on_commit_callbacks):
    # a template typed in before covers existed, used by a journey that was already live
    MessageTemplate.objects.bulk_create([MessageTemplate(name="旧模板", kind="miniprogram", text="hi",
                                                         attachment={**SHOP, "pic_media_id": "3expired"})])
    template = MessageTemplate.objects.get()
    journey = live_journey(corp, template)
    staff_id, digest = queue(journey, make_customer, dispatch)
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 1
    assert not fake_wecom.calls  # WeCom is not asked: neither an upload nor a card it would refuse
    row = OutboundMessage.objects.first()
    assert row.status == S.FAILED and "“会员商城” has no cover image" in row.last_error

    # the operator uploads the cover; the failed messages are resent (same stored content) and now go with it
    covers.template_cover_set(template=template, content=cover("green"), name="new.png")
    ids = list(OutboundMessage.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=False):
        assert sender.outbound_resend(message_ids=ids) == 2
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10, 5)) == 1
    media_id = MessageTemplate.objects.get().cover_media_id
    assert sent_cards(fake_wecom) == [{**SHOP, "pic_media_id": media_id}] and fake_wecom.media[media_id] == cover(
        "green")


def test_a_cover_replaced_after_queueing_goes_as_the_new_one(corp, staff_a, mp_template, make_customer, fake_wecom,
                                                             dispatch):
    journey = live_journey(corp, mp_template)
    staff_id, digest = queue(journey, make_customer, dispatch)
    covers.template_cover_set(template=mp_template, content=cover("purple"))
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 1
    assert fake_wecom.media[sent_cards(fake_wecom)[0]["pic_media_id"]] == cover("purple")
    # new rows name the new cover: a different content
    assert queue(journey, make_customer, dispatch)[1] != digest


def test_wecom_forgetting_the_cover_clears_the_cache_and_retries(corp, staff_a, mp_template, make_customer,
                                                                 fake_wecom, dispatch):
    journey = live_journey(corp, mp_template)
    MessageTemplate.objects.filter(pk=mp_template.pk).update(cover_media_id="3forgotten",
                                                             cover_media_expires_at=now() + timedelta(days=2))
    staff_id, digest = queue(journey, make_customer, dispatch)
    fake_wecom.fail_next("add_msg_template", WeComError(40007, "invalid media_id", permanent=True,
                                                        api="add_msg_template"))
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 0
    assert not uploads(fake_wecom)  # the cached id was used
    template = MessageTemplate.objects.get()
    assert template.cover_media_id == "" and template.cover_media_expires_at is None
    row = OutboundMessage.objects.first()
    assert row.status == S.PENDING and "40007" in row.last_error
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10, 1)) == 1
    assert len(uploads(fake_wecom)) == 1
    assert sent_cards(fake_wecom) == [{**SHOP, "pic_media_id": MessageTemplate.objects.get().cover_media_id}]


def test_40007_without_a_cover_stays_a_permanent_failure(corp, staff_a, make_customer, fake_wecom, dispatch, line):
    staff_id, digest = queue(line, make_customer, dispatch)
    fake_wecom.fail_next("add_msg_template", WeComError(40007, "invalid media_id", permanent=True))
    sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10))
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {S.FAILED}


def test_a_staff_reminder_uploads_nothing(corp, staff_a, mp_template, make_customer, fake_wecom, dispatch):
    journey = Journey.objects.create(corp=corp, name="跟进", trigger="manual", status=Journey.Status.LIVE)
    JourneyStep.objects.create(journey=journey, position=1, kind="send", template=mp_template,
                               channel="staff_reminder")
    staff_id, digest = queue(journey, make_customer, dispatch)
    assert sender.outbound_send_group(staff_id=staff_id, content_hash=digest, at=at(10)) == 1
    assert not uploads(fake_wecom) and fake_wecom.app_messages


# --- admin -----------------------------------------------------------------------------------------------------------
def admin_form(**fields) -> dict:
    return {"name": "商城上新", "kind": "miniprogram", "text": "新品上架",
            "attachment": '{"title": "会员商城", "appid": "wx1234567890abcdef", "page": "pages/index/index"}', **fields}


def test_admin_uploads_the_cover_with_the_template(client_for, admin_user, operator_user):
    client = client_for(admin_user)
    client.cookies["django_language"] = "en"
    page = client.post("/admin/journeys/messagetemplate/add/", admin_form())
    assert page.status_code == 200 and "needs a cover image" in page.content.decode()
    assert not MessageTemplate.objects.exists()

    page = client.post("/admin/journeys/messagetemplate/add/",
                       admin_form(cover_file=SimpleUploadedFile("封面.txt", b"not an image at all")))
    assert page.status_code == 200 and "Upload a PNG or JPEG image." in page.content.decode()
    assert not MessageTemplate.objects.exists()

    response = client.post("/admin/journeys/messagetemplate/add/",
                           admin_form(cover_file=SimpleUploadedFile("封面.png", cover(), "image/png")))
    assert response.status_code == 302
    template = MessageTemplate.objects.get()
    assert bytes(template.cover) == cover() and template.cover_name == "封面.png"
    assert template.attachment == {**SHOP, "cover_sha": template.cover_sha}

    page = client.get(f"/admin/journeys/messagetemplate/{template.pk}/change/").content.decode()
    assert f"/admin/journeys/messagetemplate/{template.pk}/cover/" in page and "封面.png" in page
    image = client.get(f"/admin/journeys/messagetemplate/{template.pk}/cover/")
    assert image.status_code == 200 and image["Content-Type"] == "image/png" and image.content == cover()

    # saving again without a file keeps the cover; a new file replaces it and forgets the cached media id
    MessageTemplate.objects.filter(pk=template.pk).update(cover_media_id="3cached", cover_media_expires_at=now()
                                                          + timedelta(days=2))
    assert client.post(f"/admin/journeys/messagetemplate/{template.pk}/change/",
                       admin_form(text="新品上架啦")).status_code == 302
    template.refresh_from_db()
    assert template.text == "新品上架啦" and bytes(template.cover) == cover() and template.cover_media_id == "3cached"
    assert client.post(f"/admin/journeys/messagetemplate/{template.pk}/change/", admin_form(
        cover_file=SimpleUploadedFile("b.jpg", cover("navy", fmt="JPEG"), "image/jpeg"))).status_code == 302
    template.refresh_from_db()
    assert template.cover_type == "image/jpeg" and template.cover_media_id == ""
    assert template.attachment["cover_sha"] == template.cover_sha

    # the cover is admin-only
    assert client_for(operator_user).get(f"/admin/journeys/messagetemplate/{template.pk}/cover/").status_code == 302


def test_admin_list_flags_a_template_without_a_cover(client_for, admin_user):
    MessageTemplate.objects.bulk_create([MessageTemplate(name="旧模板", kind="miniprogram", text="hi",
                                                         attachment=dict(SHOP))])
    client = client_for(admin_user)
    client.cookies["django_language"] = "en"
    page = client.get("/admin/journeys/messagetemplate/").content.decode()
    assert "needs a cover image" in page
