"""Welcome messages with operator-uploaded images: upload checks, WeCom temporary media cached with its expiry,
a failed upload that still sends the text (and raises an alert), typed-in link validation, the
edit page, and the same against the simulator's real media/upload and send_welcome_msg."""

import io
import json
import urllib.request
from datetime import timedelta

import pytest
from django.test import Client
from PIL import Image

from contacts import services as contact_services
from livecodes import services
from livecodes.forms import LiveCodeForm
from livecodes.models import Alert, Conversion, LiveCode, WelcomeImage
from scrm.clock import now
from scrm.errors import ApplicationError
from tests.conftest import PASSWORD
from tests.factories import ContactFactory
from wecom.contracts import MessageContent
from wecom.errors import WeComError

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    from django.utils import translation

    with translation.override("en"):
        yield


def png(color="red", size=(64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def jpeg(color="blue") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), color).save(out, format="JPEG")
    return out.getvalue()


@pytest.fixture
def staff_code(corp, staff_a, fake_wecom):
    code = services.livecode_create(corp=corp, kind="staff", name="门店海报", welcome_text="你好 %NICKNAME%")
    services.target_add_staff(code=code, staff=staff_a)
    return code


def welcome(corp, staff, code, *, key="e1", welcome_code="WC1", capture):
    contact = ContactFactory(corp=corp, name="小红")
    target = code.targets.get(staff=staff)
    with capture(execute=True):
        contact_services.record_event(corp=corp, kind="added", occurred_at=now(), contact=contact, staff=staff,
                                      data={"state": services.target_state(target)}, dedup_key=key,
                                      context={"welcome_code": welcome_code, "state": services.target_state(target)})
    return Conversion.objects.get(event__dedup_key=key)


def uploads(fake_wecom) -> int:
    return [name for name, _args in fake_wecom.calls].count("upload_media")


# --- adding images -------------------------------------------------------------------------------------------------
def test_png_and_jpeg_are_accepted_in_order(staff_code):
    first = services.welcome_image_add(code=staff_code, content=png(), name="poster.png")
    second = services.welcome_image_add(code=staff_code, content=jpeg(), name="menu.jpg")
    assert [(i.name, i.image_type) for i in staff_code.welcome_images.all()] == [
        ("poster.png", "image/png"), ("menu.jpg", "image/jpeg")]
    assert first.position < second.position and bytes(first.image) == png()


@pytest.mark.parametrize(("content", "message"), [
    (b"GIF89a" + b"\x00" * 100, "Upload a PNG or JPEG image."),
    (b"not an image at all", "Upload a PNG or JPEG image."),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "The file is not a readable image."),  # a PNG signature, then garbage
])
def test_what_is_not_a_png_or_jpeg_is_refused(staff_code, content, message):
    with pytest.raises(ApplicationError, match=message):
        services.welcome_image_add(code=staff_code, content=content)
    assert not staff_code.welcome_images.exists()


def test_size_and_pixel_limits_are_checked(staff_code, settings):
    settings.LIVECODE_UPLOAD_MAX_BYTES = 1024
    with pytest.raises(ApplicationError, match="larger than 1 KB"):
        services.welcome_image_add(code=staff_code, content=png() + b"\x00" * 2000)
    settings.LIVECODE_UPLOAD_MAX_BYTES = 2 * 1024 * 1024
    settings.LIVECODE_UPLOAD_MAX_PIXELS = 10_000
    with pytest.raises(ApplicationError, match="too many pixels"):
        services.welcome_image_add(code=staff_code, content=png(size=(200, 100)))
    assert not staff_code.welcome_images.exists()


def test_the_same_image_twice_and_more_than_nine_attachments_are_refused(staff_code):
    services.welcome_image_add(code=staff_code, content=png())
    with pytest.raises(ApplicationError, match="already in the welcome message"):
        services.welcome_image_add(code=staff_code, content=png())
    links = [{"msgtype": "link", "link": {"title": f"t{i}", "url": "https://example.com"}} for i in range(7)]
    services.livecode_update(code=staff_code, welcome_attachments=links)
    services.welcome_image_add(code=staff_code, content=png("green"))  # 2 images + 7 links = 9
    with pytest.raises(ApplicationError, match="at most 9 attachments"):
        services.welcome_image_add(code=staff_code, content=png("yellow"))
    with pytest.raises(ApplicationError, match="at most 9 attachments"):
        services.livecode_update(code=staff_code, welcome_attachments=[*links, links[0]])


# --- sending -------------------------------------------------------------------------------------------------------
def test_the_image_is_uploaded_once_and_attached(staff_code, corp, staff_a, fake_wecom,
                                                 django_capture_on_commit_callbacks):
    services.welcome_image_add(code=staff_code, content=png(), name="poster.png")
    link = {"msgtype": "link", "link": {"title": "新人礼", "url": "https://example.com/gift"}}
    services.livecode_update(code=staff_code, welcome_attachments=[link])
    conversion = welcome(corp, staff_a, staff_code, capture=django_capture_on_commit_callbacks)
    assert conversion.welcome == "sent" and conversion.welcome_error == ""
    _code, content = fake_wecom.welcome_messages[0]
    media_id = content.attachments[0]["image"]["media_id"]
    assert content == MessageContent(text="你好 小红", attachments=(
        {"msgtype": "image", "image": {"media_id": media_id}}, link))
    assert fake_wecom.media[media_id] == png()  # the operator's bytes reached WeCom
    image = WelcomeImage.objects.get()
    assert image.media_id == media_id
    assert timedelta(days=3) - timedelta(minutes=1) < image.media_expires_at - now() <= timedelta(days=3)

    welcome(corp, staff_a, staff_code, key="e2", welcome_code="WC2", capture=django_capture_on_commit_callbacks)
    assert uploads(fake_wecom) == 1  # cached: days of validity left
    assert fake_wecom.welcome_messages[1][1].attachments[0]["image"]["media_id"] == media_id


def test_a_media_id_with_less_than_an_hour_left_is_uploaded_again(staff_code, corp, staff_a, fake_wecom,
                                                                 django_capture_on_commit_callbacks):
    image = services.welcome_image_add(code=staff_code, content=png())
    WelcomeImage.objects.filter(pk=image.pk).update(media_id="old-media",
                                                    media_expires_at=now() + timedelta(minutes=50))
    welcome(corp, staff_a, staff_code, capture=django_capture_on_commit_callbacks)
    fresh = fake_wecom.welcome_messages[0][1].attachments[0]["image"]["media_id"]
    assert uploads(fake_wecom) == 1 and fresh != "old-media"
    WelcomeImage.objects.filter(pk=image.pk).update(media_expires_at=now() + timedelta(minutes=70))
    welcome(corp, staff_a, staff_code, key="e2", welcome_code="WC2", capture=django_capture_on_commit_callbacks)
    assert uploads(fake_wecom) == 1  # 70 minutes left: still good


def test_a_failed_upload_still_sends_the_text_and_raises_an_alert(staff_code, corp, staff_a, fake_wecom,
                                                                  django_capture_on_commit_callbacks):
    services.welcome_image_add(code=staff_code, content=png())
    fake_wecom.fail_next("upload_media", WeComError(40004, "invalid media type", permanent=True))
    conversion = welcome(corp, staff_a, staff_code, capture=django_capture_on_commit_callbacks)
    assert fake_wecom.welcome_messages == [("WC1", MessageContent(text="你好 小红"))]
    assert conversion.welcome == "sent" and "40004" in conversion.welcome_error
    alert = Alert.objects.get(code=staff_code, kind=Alert.Kind.WELCOME_MEDIA, resolved_at__isnull=True)
    assert "40004" in alert.message
    assert WelcomeImage.objects.get().media_id == ""  # nothing cached from a failed upload

    # The next welcome uploads fine: the image goes along and the alert is resolved.
    second = welcome(corp, staff_a, staff_code, key="e2", welcome_code="WC2",
                     capture=django_capture_on_commit_callbacks)
    assert second.welcome == "sent" and second.welcome_error == ""
    assert fake_wecom.welcome_messages[1][1].attachments[0]["msgtype"] == "image"
    assert Alert.objects.get(pk=alert.pk).resolved_at is not None


def test_an_image_only_welcome_whose_upload_fails_is_recorded_as_failed(corp, staff_a, fake_wecom,
                                                                       django_capture_on_commit_callbacks):
    code = services.livecode_create(corp=corp, kind="staff", name="只有图片")
    services.target_add_staff(code=code, staff=staff_a)
    services.welcome_image_add(code=code, content=png())
    fake_wecom.fail_next("upload_media", WeComError(-1, "system busy", permanent=False))
    conversion = welcome(corp, staff_a, code, capture=django_capture_on_commit_callbacks)
    assert fake_wecom.welcome_messages == []  # nothing left to say (the corp default is for codes with nothing)
    assert conversion.welcome == "failed" and "-1" in conversion.welcome_error
    assert Alert.objects.filter(code=code, kind=Alert.Kind.WELCOME_MEDIA, resolved_at__isnull=True).exists()


def test_wecom_forgetting_the_media_clears_the_cache(staff_code, corp, staff_a, fake_wecom,
                                                     django_capture_on_commit_callbacks):
    services.welcome_image_add(code=staff_code, content=png())
    fake_wecom.fail_next("send_welcome_message", WeComError(40007, "invalid media_id", permanent=True))
    conversion = welcome(corp, staff_a, staff_code, capture=django_capture_on_commit_callbacks)
    assert conversion.welcome == "failed" and conversion.welcome_error.startswith("40007")
    assert [n for n, _ in fake_wecom.calls].count("send_welcome_message") == 1  # never retried
    assert WelcomeImage.objects.get().media_id == ""  # the next welcome uploads afresh


# --- typed-in links and mini-programs ------------------------------------------------------------------------------
def form_data(**overrides):
    data = {"name": "码", "kind": "staff", "mode": "fill", "low_capacity": 50, "qr_fg": "#000000",
            "qr_bg": "#ffffff", "status": "active", "welcome_attachments": ""}
    data.update(overrides)
    return data


@pytest.mark.parametrize(("attachments", "expected"), [
    ('{"msgtype": "link"}', ["Welcome attachments are a JSON list"]),
    ('[{"msgtype": "link", "link": {"url": "ftp://x"}}]',
     ["Attachment 1: a link needs a title.", "Attachment 1: a link needs a url starting with https://"]),
    ('[{"msgtype": "link", "link": {"title": "' + "长" * 50 + '", "url": "https://x"}}]',
     ["Attachment 1: the link title is longer than 128 bytes."]),
    ('[{"msgtype": "link", "link": {"title": "a", "url": "https://x"}}, {"msgtype": "miniprogram", '
     '"miniprogram": {"title": "小程序", "appid": "wx123", "page": "p", "pic_media_id": "3media"}}]',
     ["Attachment 2: mini-programs are not typed in (their cover's media id expires after 3 days)"]),
    ('[{"msgtype": "image", "image": {"media_id": "3abc"}}]', ["Attachment 1: image attachments are not typed in"]),
    ('[{"msgtype": "video"}]', ["Attachment 1: video attachments are not typed in"]),
    ('[{"msgtype": "text"}]', ['Attachment 1: each attachment is {"msgtype": "link"']),
    ('[{"msgtype": "link", "link": "https://x"}]', ['Attachment 1: "link" must be an object.']),
    ('[' + ','.join(['{"msgtype": "link", "link": {"title": "a", "url": "https://x"}}'] * 10) + ']',
     ["A welcome message carries at most 9 attachments."]),
    ("[{", ["Not valid JSON"]),
])
def test_the_form_explains_what_is_wrong_with_typed_in_attachments(db, attachments, expected):
    form = LiveCodeForm(form_data(welcome_attachments=attachments))
    assert not form.is_valid()
    errors = form.errors["welcome_attachments"]
    assert len(errors) == len(expected)
    for error, start in zip(errors, expected, strict=True):
        assert error.startswith(start), errors


def test_valid_links_pass(db):
    items = [{"msgtype": "link", "link": {"title": "新人礼", "url": "https://example.com", "desc": "d",
                                          "picurl": "https://example.com/p.png"}},
             {"msgtype": "link", "link": {"title": "会员", "url": "http://example.com/vip"}}]
    form = LiveCodeForm(form_data(welcome_attachments=json.dumps(items, ensure_ascii=False)))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["welcome_attachments"] == items


def test_the_service_refuses_what_the_form_refuses(corp):
    with pytest.raises(ApplicationError, match="Attachment 1: a link needs a title"):
        services.livecode_create(corp=corp, kind="staff", name="x",
                                 welcome_attachments=[{"msgtype": "link", "link": {"url": "https://x"}}])


# --- the edit page ------------------------------------------------------------------------------------------------
@pytest.fixture
def logged(operator_user):
    client = Client()
    client.login(username=operator_user.username, password=PASSWORD)
    return client


def edit_data(code, **overrides):
    data = {"name": code.name, "mode": code.mode, "low_capacity": 50, "qr_fg": "#000000", "qr_bg": "#ffffff",
            "status": "active", "welcome_text": code.welcome_text, "welcome_attachments": "", "skip_verify": "on"}
    data.update(overrides)
    return data


def upload(name, content):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def test_edit_page_uploads_shows_and_removes_welcome_images(logged, staff_code):
    url = f"/livecodes/{staff_code.pk}/edit/"
    response = logged.post(url, edit_data(staff_code, welcome_images=[upload("a.png", png()),
                                                                      upload("b.jpg", jpeg())]))
    assert response.status_code == 302
    images = list(staff_code.welcome_images.all())
    assert [i.name for i in images] == ["a.png", "b.jpg"]
    page = logged.get(url).content.decode()
    thumb = f"/livecodes/{staff_code.pk}/welcome/{images[0].pk}.img"
    assert thumb in page
    served = logged.get(thumb)
    assert served.status_code == 200 and served["Content-Type"] == "image/png" and served.content == png()
    assert Client().get(thumb).status_code in (302, 403)  # operators only

    response = logged.post(url, edit_data(staff_code, welcome_image_remove=[str(images[0].pk)]))
    assert response.status_code == 302
    assert [i.name for i in staff_code.welcome_images.all()] == ["b.jpg"]


def test_a_refused_upload_on_the_edit_page_changes_nothing(logged, staff_code):
    url = f"/livecodes/{staff_code.pk}/edit/"
    response = logged.post(url, edit_data(staff_code, name="改了名字",
                                          welcome_images=[upload("ok.png", png()), upload("bad.gif", b"GIF89a")]))
    assert response.status_code == 200
    assert "bad.gif" in response.content.decode()
    staff_code.refresh_from_db()
    assert staff_code.name == "门店海报" and not staff_code.welcome_images.exists()


def test_the_edit_page_shows_attachment_errors(logged, staff_code):
    response = logged.post(f"/livecodes/{staff_code.pk}/edit/", edit_data(
        staff_code, welcome_attachments='[{"msgtype": "link", "link": {"title": "t"}}]'))
    assert response.status_code == 200
    assert "附件 1：链接需要以 https:// 或 http:// 开头的 url。" in response.content.decode()  # zh_Hans page
    assert LiveCode.objects.get(pk=staff_code.pk).welcome_attachments == []


# --- against the simulator (http backend, real media/upload and send_welcome_msg) ---------------------------------
def test_welcome_image_through_the_simulator(wecom_sim, corp):
    from contacts.models import Staff

    wecom_sim.control("members", {"userid": "sales_li", "name": "李销售"})
    staff = Staff.objects.create(corp=corp, userid="sales_li", name="李销售")
    code = services.livecode_create(corp=corp, kind="staff", name="直播间", welcome_text="欢迎 %NICKNAME%")
    target = services.target_add_staff(code=code, staff=staff)
    services.welcome_image_add(code=code, content=png(), name="poster.png")

    def send(name):
        added = wecom_sim.control("actions/add_contact", {"userid": "sales_li", "name": name})
        contact = ContactFactory(corp=corp, external_userid=added["external_userid"], name=name)
        conversion = Conversion.objects.create(code=code, target=target, contact=contact, kind="add",
                                               occurred_at=now())
        result = services.welcome_send(conversion_id=conversion.pk, welcome_code=added["welcome_code"])
        sent = wecom_sim.control(f"welcome_messages?external_userid={added['external_userid']}", method="GET")
        return result, sent["welcome_messages"]

    result, messages = send("小美")
    assert result == "sent" and messages[0]["text"]["content"] == "欢迎 小美"
    media_id = messages[0]["attachments"][0]["image"]["media_id"]
    with urllib.request.urlopen(f"{wecom_sim.url}/sim/media/{media_id}", timeout=10) as response:  # noqa: S310
        assert response.read() == png()

    # WeCom refusing the next upload (the cached id is made stale first): the text still goes, without the image.
    WelcomeImage.objects.update(media_expires_at=now() + timedelta(minutes=10))
    wecom_sim.control("faults", {"errors": [{"api": "media/upload", "errcode": 44001, "remaining": 1}]})
    result, messages = send("小刚")
    assert result == "sent_without_media"
    assert messages[0]["text"]["content"] == "欢迎 小刚" and not messages[0].get("attachments")
    assert Alert.objects.filter(code=code, kind=Alert.Kind.WELCOME_MEDIA, resolved_at__isnull=True).exists()
