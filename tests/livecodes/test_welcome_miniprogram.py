"""Mini-programs in a staff code's welcome message: the operator uploads the cover with the title, appid and page;
each welcome uploads the cover to WeCom as temporary media through the same cache as welcome images and puts its
media id into ``miniprogram.pic_media_id``. Covers that cannot be uploaded (or were never uploaded: typed-in
mini-programs converted by migration 0003) leave the card out, the text still goes and the owner gets an alert.
Also the edit page and the simulator's real media/upload → send_welcome_msg."""

import importlib
import urllib.request
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from livecodes import services
from livecodes.models import Alert, Conversion, LiveCode, WelcomeImage, WelcomeMiniProgram
from scrm.clock import now
from scrm.errors import ApplicationError
from tests.conftest import PASSWORD
from tests.factories import ContactFactory
from tests.livecodes.test_welcome import edit_data, jpeg, png, uploads, welcome
from wecom.contracts import MessageContent
from wecom.errors import WeComError

pytestmark = pytest.mark.django_db

SHOP = {"title": "会员商城", "appid": "wx1234567890abcdef", "page": "pages/index/index"}


@pytest.fixture(autouse=True)
def _english():
    from django.utils import translation

    with translation.override("en"):
        yield


def cover(color="orange", size=(104, 84)) -> bytes:
    return png(color, size)


@pytest.fixture
def staff_code(corp, staff_a, fake_wecom):
    code = services.livecode_create(corp=corp, kind="staff", name="门店海报", welcome_text="你好 %NICKNAME%")
    services.target_add_staff(code=code, staff=staff_a)
    return code


def card(media_id: str, **fields) -> dict:
    body = {**SHOP, **fields}
    return {"msgtype": "miniprogram", "miniprogram": {"title": body["title"], "pic_media_id": media_id,
                                                      "appid": body["appid"], "page": body["page"]}}


def open_alert(code) -> Alert | None:
    return Alert.objects.filter(code=code, kind=Alert.Kind.WELCOME_MEDIA, resolved_at__isnull=True).first()


# --- adding ---------------------------------------------------------------------------------------------------------
def test_a_mini_program_is_added_with_its_cover(staff_code):
    program = services.welcome_miniprogram_add(code=staff_code, title=" 会员商城 ", appid="wx1234567890abcdef",
                                               page="pages/index/index", cover=jpeg(), name="商城.jpg")
    program.refresh_from_db()
    assert (program.title, program.appid, program.page, program.name) == (
        "会员商城", "wx1234567890abcdef", "pages/index/index", "商城.jpg")
    assert bytes(program.image) == jpeg() and program.image_type == "image/jpeg" and program.has_cover
    assert program.media_id == "" and program.media_expires_at is None  # uploaded to WeCom only when welcoming


@pytest.mark.parametrize(("fields", "message"), [
    ({"title": ""}, "A mini-program needs a title."),
    ({"title": "长" * 22}, "The mini-program title is longer than 64 bytes."),  # 66 bytes of UTF-8
    ({"appid": "  "}, "A mini-program needs its appid."),
    ({"appid": "1234567890abcdef"}, "The mini-program appid starts with “wx”"),
    ({"appid": "wx12 34"}, "The mini-program appid starts with “wx”"),
    ({"page": ""}, "A mini-program needs the page to open."),
    ({"page": "pages/index index"}, "The mini-program page is a path of at most 255 characters without spaces."),
])
def test_title_appid_and_page_are_checked(staff_code, fields, message):
    with pytest.raises(ApplicationError) as refused:
        services.welcome_miniprogram_add(code=staff_code, **{**SHOP, **fields}, cover=cover())
    assert refused.value.message.startswith(message)
    assert not staff_code.welcome_miniprograms.exists()


@pytest.mark.parametrize(("content", "message"), [
    (None, "Upload the mini-program's cover image (PNG or JPEG)."),
    (b"", "Upload the mini-program's cover image (PNG or JPEG)."),
    (b"GIF89a" + b"\x00" * 100, "Upload a PNG or JPEG image."),
    (b"%PDF-1.7 not an image", "Upload a PNG or JPEG image."),
    (b"\xff\xd8\xff" + b"\x00" * 64, "The file is not a readable image."),  # a JPEG signature, then garbage
])
def test_a_cover_that_is_not_a_png_or_jpeg_is_refused(staff_code, content, message):
    with pytest.raises(ApplicationError) as refused:
        services.welcome_miniprogram_add(code=staff_code, **SHOP, cover=content)
    assert refused.value.message == message
    assert not staff_code.welcome_miniprograms.exists()


def test_cover_size_and_pixels_are_limited(staff_code, settings):
    settings.LIVECODE_UPLOAD_MAX_BYTES = 1024
    with pytest.raises(ApplicationError, match="larger than 1 KB"):
        services.welcome_miniprogram_add(code=staff_code, **SHOP, cover=cover() + b"\x00" * 2000)
    settings.LIVECODE_UPLOAD_MAX_BYTES = 2 * 1024 * 1024
    settings.LIVECODE_UPLOAD_MAX_PIXELS = 10_000
    with pytest.raises(ApplicationError, match="too many pixels"):
        services.welcome_miniprogram_add(code=staff_code, **SHOP, cover=cover(size=(200, 100)))
    assert not staff_code.welcome_miniprograms.exists()


def test_the_same_page_twice_is_refused(staff_code):
    services.welcome_miniprogram_add(code=staff_code, **SHOP, cover=cover())
    with pytest.raises(ApplicationError, match="already in the welcome message"):
        services.welcome_miniprogram_add(code=staff_code, **{**SHOP, "title": "别的标题"}, cover=cover("red"))
    services.welcome_miniprogram_add(code=staff_code, **{**SHOP, "page": "pages/vip/index"}, cover=cover())
    assert staff_code.welcome_miniprograms.count() == 2


def test_mini_programs_count_towards_the_nine_attachments(corp, staff_code):
    group = services.livecode_create(corp=corp, kind="group", name="群码")
    links = [{"msgtype": "link", "link": {"title": f"t{i}", "url": "https://example.com"}} for i in range(4)]
    services.livecode_update(code=staff_code, welcome_attachments=links, welcome_group_code=group)
    services.welcome_image_add(code=staff_code, content=png())
    for i in range(3):  # 1 image + 3 mini-programs + 4 links + the group invite = 9
        services.welcome_miniprogram_add(code=staff_code, **{**SHOP, "page": f"pages/p{i}"}, cover=cover())
    with pytest.raises(ApplicationError, match="at most 9 attachments"):
        services.welcome_miniprogram_add(code=staff_code, **{**SHOP, "page": "pages/p9"}, cover=cover())
    with pytest.raises(ApplicationError, match="at most 9 attachments"):
        services.welcome_image_add(code=staff_code, content=png("green"))
    with pytest.raises(ApplicationError, match="at most 9 attachments"):
        services.livecode_update(code=staff_code, welcome_attachments=[*links, links[0]])
    services.welcome_miniprogram_remove(code=staff_code, miniprogram_ids=[
        staff_code.welcome_miniprograms.first().pk])
    services.welcome_image_add(code=staff_code, content=png("green"))  # room again
    assert staff_code.welcome_miniprograms.count() == 3 - 1 and staff_code.welcome_images.count() == 2


# --- sending --------------------------------------------------------------------------------------------------------
def test_the_cover_is_uploaded_once_and_its_media_id_is_the_pic_media_id(staff_code, corp, staff_a, fake_wecom,
                                                                         django_capture_on_commit_callbacks):
    services.welcome_image_add(code=staff_code, content=png(), name="poster.png")
    services.welcome_miniprogram_add(code=staff_code, **SHOP, cover=cover())
    link = {"msgtype": "link", "link": {"title": "新人礼", "url": "https://example.com/gift"}}
    services.livecode_update(code=staff_code, welcome_attachments=[link])

    conversion = welcome(corp, staff_a, staff_code, capture=django_capture_on_commit_callbacks)
    assert conversion.welcome == "sent" and conversion.welcome_error == ""
    _code, content = fake_wecom.welcome_messages[0]
    image_id = content.attachments[0]["image"]["media_id"]
    pic_media_id = content.attachments[1]["miniprogram"]["pic_media_id"]
    assert content == MessageContent(text="你好 小红", attachments=(
        {"msgtype": "image", "image": {"media_id": image_id}}, card(pic_media_id), link))
    assert fake_wecom.media[pic_media_id] == cover() and pic_media_id != image_id  # the operator's cover
    program = WelcomeMiniProgram.objects.get()
    assert program.media_id == pic_media_id
    assert timedelta(days=3) - timedelta(minutes=1) < program.media_expires_at - now() <= timedelta(days=3)

    welcome(corp, staff_a, staff_code, key="e2", welcome_code="WC2", capture=django_capture_on_commit_callbacks)
    assert uploads(fake_wecom) == 2  # the image and the cover, once each: cached for the second welcome
    assert fake_wecom.welcome_messages[1][1].attachments[1] == card(pic_media_id)


def test_a_cover_with_less_than_an_hour_left_is_uploaded_again(staff_code, corp, staff_a, fake_wecom,
                                                              django_capture_on_commit_callbacks):
    program = services.welcome_miniprogram_add(code=staff_code, **SHOP, cover=cover())
    WelcomeMiniProgram.objects.filter(pk=program.pk).update(media_id="old-cover",
                                                            media_expires_at=now() + timedelta(minutes=50))
    welcome(corp, staff_a, staff_code, capture=django_capture_on_commit_callbacks)
    fresh = fake_wecom.welcome_messages[0][1].attachments[0]["miniprogram"]["pic_media_id"]
    assert uploads(fake_wecom) == 1 and fresh != "old-cover"
    assert fake_wecom.calls[[n for n, _ in fake_wecom.calls].index("upload_media")][1] == (
        "image", f"cover-{program.pk}.png")
    WelcomeMiniProgram.objects.filter(pk=program.pk).update(media_expires_at=now() + timedelta(minutes=70))
    welcome(corp, staff_a, staff_code, key="e2", welcome_code="WC2", capture=django_capture_on_commit_callbacks)
    assert uploads(fake_wecom) == 1  # 70 minutes left: still good
    assert fake_wecom.welcome_messages[1][1].attachments[0] == card(fresh)


def test_a_refused_cover_upload_still_sends_the_text_and_alerts_the_owner(staff_code, corp, staff_a, fake_wecom,
                                                                          operator_user,
                                                                          django_capture_on_commit_callbacks):
    from tests.factories import StaffFactory

    operator_user.staff = StaffFactory(corp=corp, userid="boss", name="店长")
    operator_user.save()
    LiveCode.objects.filter(pk=staff_code.pk).update(owner=operator_user)
    services.welcome_miniprogram_add(code=staff_code, **SHOP, cover=cover())
    fake_wecom.fail_next("upload_media", WeComError(40009, "invalid image size", permanent=True))

    conversion = welcome(corp, staff_a, staff_code, capture=django_capture_on_commit_callbacks)
    assert fake_wecom.welcome_messages == [("WC1", MessageContent(text="你好 小红"))]  # the text, without the card
    assert conversion.welcome == "sent"
    assert "会员商城" in conversion.welcome_error and "40009" in conversion.welcome_error
    alert = open_alert(staff_code)
    assert "会员商城" in alert.message and "40009" in alert.message
    assert WelcomeMiniProgram.objects.get().media_id == ""  # nothing cached from a failed upload
    assert services.alert_notify(alert_id=alert.pk) == "sent"  # the task queued on commit: the owner is told
    (userids, notice), = fake_wecom.app_messages
    assert userids == ["boss"] and "会员商城" in notice.text

    second = welcome(corp, staff_a, staff_code, key="e2", welcome_code="WC2",
                     capture=django_capture_on_commit_callbacks)
    assert second.welcome == "sent" and second.welcome_error == ""
    assert fake_wecom.welcome_messages[1][1].attachments[0]["msgtype"] == "miniprogram"
    assert Alert.objects.get(pk=alert.pk).resolved_at is not None


def test_a_welcome_of_only_a_mini_program_whose_cover_fails_is_recorded_as_failed(
        corp, staff_a, fake_wecom, django_capture_on_commit_callbacks):
    code = services.livecode_create(corp=corp, kind="staff", name="只有小程序")
    services.target_add_staff(code=code, staff=staff_a)
    services.welcome_miniprogram_add(code=code, **SHOP, cover=cover())
    fake_wecom.fail_next("upload_media", WeComError(-1, "system busy", permanent=False))
    conversion = welcome(corp, staff_a, code, capture=django_capture_on_commit_callbacks)
    assert fake_wecom.welcome_messages == []  # nothing left to say (the corp default is for codes with nothing)
    assert conversion.welcome == "failed" and "-1" in conversion.welcome_error
    assert open_alert(code) is not None


def test_wecom_forgetting_the_cover_clears_every_cached_media_id(staff_code, corp, staff_a, fake_wecom,
                                                                 django_capture_on_commit_callbacks):
    services.welcome_image_add(code=staff_code, content=png())
    services.welcome_miniprogram_add(code=staff_code, **SHOP, cover=cover())
    fake_wecom.fail_next("send_welcome_message", WeComError(40007, "invalid media_id", permanent=True))
    conversion = welcome(corp, staff_a, staff_code, capture=django_capture_on_commit_callbacks)
    assert conversion.welcome == "failed" and conversion.welcome_error.startswith("40007")
    assert WelcomeImage.objects.get().media_id == "" and WelcomeMiniProgram.objects.get().media_id == ""
    welcome(corp, staff_a, staff_code, key="e2", welcome_code="WC2", capture=django_capture_on_commit_callbacks)
    assert uploads(fake_wecom) == 4  # both uploaded afresh


# --- typed-in mini-programs from before (migration 0003) ------------------------------------------------------------
migration = importlib.import_module("livecodes.migrations.0003_welcome_miniprograms")


def test_typed_in_mini_programs_become_rows_waiting_for_a_cover(staff_code, corp, staff_a, fake_wecom,
                                                                django_capture_on_commit_callbacks):
    link = {"msgtype": "link", "link": {"title": "新人礼", "url": "https://example.com/gift"}}
    typed = {"msgtype": "miniprogram", "miniprogram": {**SHOP, "pic_media_id": "3typed-long-expired"}}
    broken = {"msgtype": "miniprogram", "miniprogram": {"title": "缺 appid", "page": "p", "pic_media_id": "3x"}}
    LiveCode.objects.filter(pk=staff_code.pk).update(welcome_attachments=[typed, link, broken])  # stored earlier

    # Even before the conversion, a typed-in mini-program (its media id long dead) is never sent: WeCom would
    # refuse the whole welcome with 40007.
    welcome(corp, staff_a, staff_code, key="e0", welcome_code="WC0", capture=django_capture_on_commit_callbacks)
    assert fake_wecom.welcome_messages[0][1] == MessageContent(text="你好 小红", attachments=(link,))

    migration.typed_miniprograms_to_rows(apps, None)
    staff_code.refresh_from_db()
    assert staff_code.welcome_attachments == [link]
    program = staff_code.welcome_miniprograms.get()  # the broken one could never be sent: dropped
    assert (program.title, program.appid, program.page, program.has_cover, program.media_id) == (
        SHOP["title"], SHOP["appid"], SHOP["page"], False, "")

    conversion = welcome(corp, staff_a, staff_code, capture=django_capture_on_commit_callbacks)
    assert fake_wecom.welcome_messages[1][1] == MessageContent(text="你好 小红", attachments=(link,))
    assert conversion.welcome == "sent" and "has no cover image" in conversion.welcome_error
    assert "会员商城" in open_alert(staff_code).message and uploads(fake_wecom) == 0

    services.welcome_miniprogram_set_cover(code=staff_code, miniprogram_id=program.pk, cover=cover(), name="c.png")
    welcome(corp, staff_a, staff_code, key="e2", welcome_code="WC2", capture=django_capture_on_commit_callbacks)
    pic_media_id = fake_wecom.welcome_messages[2][1].attachments[0]["miniprogram"]["pic_media_id"]
    assert fake_wecom.welcome_messages[2][1].attachments == (card(pic_media_id), link)
    assert fake_wecom.media[pic_media_id] == cover() and open_alert(staff_code) is None


def test_the_conversion_can_be_reversed(staff_code):
    services.welcome_miniprogram_add(code=staff_code, **SHOP, cover=cover())
    migration.rows_to_typed_miniprograms(apps, None)
    staff_code.refresh_from_db()
    assert staff_code.welcome_attachments == [
        {"msgtype": "miniprogram", "miniprogram": {**SHOP, "pic_media_id": ""}}]


def test_a_new_cover_forgets_the_old_media_id(staff_code, corp):
    program = services.welcome_miniprogram_add(code=staff_code, **SHOP, cover=cover())
    WelcomeMiniProgram.objects.filter(pk=program.pk).update(media_id="m", media_expires_at=now() + timedelta(days=2))
    with pytest.raises(ApplicationError, match="Upload a PNG or JPEG image"):
        services.welcome_miniprogram_set_cover(code=staff_code, miniprogram_id=program.pk, cover=b"GIF89a....")
    other = services.livecode_create(corp=corp, kind="staff", name="别的码")
    with pytest.raises(ApplicationError, match="belongs to another code"):
        services.welcome_miniprogram_set_cover(code=other, miniprogram_id=program.pk, cover=cover("red"))
    services.welcome_miniprogram_set_cover(code=staff_code, miniprogram_id=program.pk, cover=cover("red"))
    program.refresh_from_db()
    assert bytes(program.image) == cover("red") and program.media_id == "" and program.media_expires_at is None


# --- the edit page --------------------------------------------------------------------------------------------------
@pytest.fixture
def logged(operator_user):
    client = Client()
    client.login(username=operator_user.username, password=PASSWORD)
    return client


def upload(name, content):
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


def mp_data(code, *, cover_file=None, **fields):
    data = edit_data(code, **{f"mp-{k}": v for k, v in {**SHOP, **fields}.items()})
    if cover_file is not None:
        data["mp-cover"] = cover_file
    return data


def test_edit_page_adds_shows_and_removes_a_mini_program(logged, staff_code):
    url = f"/livecodes/{staff_code.pk}/edit/"
    response = logged.post(url, mp_data(staff_code, cover_file=upload("商城.png", cover())))
    assert response.status_code == 302
    program = staff_code.welcome_miniprograms.get()
    assert (program.title, program.appid, program.page, program.name) == (*SHOP.values(), "商城.png")
    page = logged.get(url).content.decode()
    thumb = f"/livecodes/{staff_code.pk}/welcome/miniprogram/{program.pk}.img"
    assert thumb in page and "会员商城" in page and SHOP["appid"] in page
    served = logged.get(thumb)
    assert served.status_code == 200 and served["Content-Type"] == "image/png" and served.content == cover()
    assert Client().get(thumb).status_code in (302, 403)  # operators only

    # A new cover for it, then removed.
    response = logged.post(url, {**edit_data(staff_code),
                                 f"welcome_miniprogram_cover_{program.pk}": upload("新.jpg", jpeg())})
    assert response.status_code == 302
    program.refresh_from_db()
    assert bytes(program.image) == jpeg() and program.name == "新.jpg"
    response = logged.post(url, edit_data(staff_code, welcome_miniprogram_remove=[str(program.pk)]))
    assert response.status_code == 302 and not staff_code.welcome_miniprograms.exists()


@pytest.mark.parametrize(("fields", "field"), [
    ({"title": ""}, "title"),
    ({"appid": ""}, "appid"),
    ({"page": ""}, "page"),
    ({"appid": "gh_1234567890ab"}, "appid"),  # an official account's id, not a mini-program's
])
def test_edit_page_names_the_missing_field_and_saves_nothing(logged, staff_code, fields, field):
    response = logged.post(f"/livecodes/{staff_code.pk}/edit/", mp_data(
        staff_code, name="改了名字", cover_file=upload("c.png", cover()), **fields))
    assert response.status_code == 200
    errors = response.context["mp_form"].errors
    assert list(errors) == [field]
    staff_code.refresh_from_db()
    assert staff_code.name == "门店海报" and not staff_code.welcome_miniprograms.exists()


def test_edit_page_without_a_cover_or_with_a_bad_one_saves_nothing(logged, staff_code, settings):
    url = f"/livecodes/{staff_code.pk}/edit/"
    response = logged.post(url, mp_data(staff_code, name="改了名字"))
    assert response.status_code == 200 and list(response.context["mp_form"].errors) == ["cover"]

    response = logged.post(url, mp_data(staff_code, name="改了名字", cover_file=upload("cover.gif", b"GIF89a" * 8)))
    assert response.status_code == 200
    assert "cover.gif" in " ".join(response.context["mp_form"].non_field_errors())
    settings.LIVECODE_UPLOAD_MAX_BYTES = 1024
    response = logged.post(url, mp_data(staff_code, name="改了名字",
                                        cover_file=upload("big.png", cover() + b"\x00" * 2000)))
    assert response.status_code == 200
    assert "1 KB" in " ".join(response.context["mp_form"].non_field_errors())
    staff_code.refresh_from_db()
    assert staff_code.name == "门店海报" and not staff_code.welcome_miniprograms.exists()


def test_edit_page_flags_a_mini_program_without_a_cover(logged, staff_code):
    WelcomeMiniProgram.objects.create(code=staff_code, **SHOP)  # converted from a typed-in one
    page = logged.get(f"/livecodes/{staff_code.pk}/edit/").content.decode()
    assert "miniprogram-no-cover" in page and "welcome/miniprogram/" not in page


# --- against the simulator (http backend, real media/upload and send_welcome_msg) ---------------------------------
def test_mini_program_through_the_simulator(wecom_sim, corp):
    from contacts.models import Staff

    wecom_sim.control("members", {"userid": "sales_li", "name": "李销售"})
    staff = Staff.objects.create(corp=corp, userid="sales_li", name="李销售")
    code = services.livecode_create(corp=corp, kind="staff", name="直播间", welcome_text="欢迎 %NICKNAME%")
    target = services.target_add_staff(code=code, staff=staff)
    services.welcome_miniprogram_add(code=code, **SHOP, cover=cover(), name="cover.png")

    def send(name):
        added = wecom_sim.control("actions/add_contact", {"userid": "sales_li", "name": name})
        contact = ContactFactory(corp=corp, external_userid=added["external_userid"], name=name)
        conversion = Conversion.objects.create(code=code, target=target, contact=contact, kind="add",
                                               occurred_at=now())
        result = services.welcome_send(conversion_id=conversion.pk, welcome_code=added["welcome_code"])
        sent = wecom_sim.control(f"welcome_messages?external_userid={added['external_userid']}", method="GET")
        return result, sent["welcome_messages"], Conversion.objects.get(pk=conversion.pk)

    result, messages, _c = send("小美")
    assert result == "sent" and messages[0]["text"]["content"] == "欢迎 小美"
    sent_card = messages[0]["attachments"][0]
    pic_media_id = sent_card["miniprogram"]["pic_media_id"]
    assert sent_card == card(pic_media_id)
    with urllib.request.urlopen(f"{wecom_sim.url}/sim/media/{pic_media_id}", timeout=10) as response:  # noqa: S310
        assert response.read() == cover()  # the cover the operator uploaded is what WeCom shows

    # Three days later WeCom has forgotten the media (the simulator enforces the expiry) although our cache still
    # counts it as fresh: the welcome is refused with 40007 and the cache cleared; the next one uploads afresh.
    wecom_sim.control("clock", {"advance_seconds": 3 * 86400 + 60})
    result, messages, conversion = send("小刚")
    assert result == "failed" and conversion.welcome_error.startswith("40007") and messages == []
    assert WelcomeMiniProgram.objects.get().media_id == ""
    result, messages, _c = send("小丽")
    assert result == "sent" and messages[0]["attachments"][0]["miniprogram"]["pic_media_id"] != pic_media_id

    # WeCom refusing the upload of the cover: the text still goes, without the card, and the owner is alerted.
    WelcomeMiniProgram.objects.update(media_expires_at=now() + timedelta(minutes=10))
    wecom_sim.control("faults", {"errors": [{"api": "media/upload", "errcode": 44001, "remaining": 1}]})
    result, messages, conversion = send("小强")
    assert result == "sent_without_media" and "44001" in conversion.welcome_error
    assert messages[0]["text"]["content"] == "欢迎 小强" and not messages[0].get("attachments")
    assert open_alert(code) is not None
