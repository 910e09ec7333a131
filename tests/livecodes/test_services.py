"""Services: codes and pools, publishing through the gateway, attribution from the fan-out, welcome
messages, uploads, join-way windows, alerts."""

import io
from datetime import timedelta

import pytest
from PIL import Image

from contacts import services as contact_services
from livecodes import hotpath, routing, selectors, services
from livecodes.models import Alert, Conversion, JoinWay, LiveCode, LiveCodeTarget, WelcomeDefault
from scrm.clock import now
from scrm.errors import ApplicationError
from tagging.models import ContactTag, Tag, TagGroup
from tests.factories import ContactFactory, GroupChatFactory, StaffFactory, UserFactory
from tests.livecodes.helpers import group_code, qr_jpeg, qr_png
from wecom.contracts import MessageContent
from wecom.errors import WeComError

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    """Refusals are matched by their English text here (the UI shows them in Chinese: test_views)."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def tag(corp):
    group = TagGroup.objects.create(corp=corp, dimension="source", name="渠道")
    return Tag.objects.create(group=group, name="海报")


@pytest.fixture
def staff_code(corp, staff_a, staff_b, fake_wecom, tag):
    code = services.livecode_create(corp=corp, kind="staff", name="门店海报", welcome_text="你好 %NICKNAME%，欢迎！",
                                    tags=[tag])
    services.target_add_staff(code=code, staff=staff_a, daily_cap=2)
    services.target_add_staff(code=code, staff=staff_b)
    return code


def add_event(corp, staff, contact, *, state, welcome_code="WC1", key="e1"):
    contact_services.record_event(corp=corp, kind="added", occurred_at=now(), contact=contact, staff=staff,
                                  data={"state": state}, dedup_key=key,
                                  context={"welcome_code": welcome_code, "state": state})


# --- staff codes --------------------------------------------------------------------------------------------------
def test_publishing_creates_one_contact_way_per_staff_member_with_a_short_state(staff_code, fake_wecom):
    bodies = [args[0] for name, args in fake_wecom.calls if name == "add_contact_way"]
    assert [b["user"] for b in bodies] == [["guide_a"], ["guide_b"]]
    assert all(len(b["state"]) <= 30 and b["state"].startswith(staff_code.state) for b in bodies)
    assert all(b["skip_verify"] is True and b["type"] == 1 for b in bodies)
    assert all(t.wecom_qr_url for t in staff_code.targets.all())


def test_an_add_is_attributed_counted_tagged_and_welcomed(staff_code, corp, staff_a, fake_wecom, tag,
                                                          django_capture_on_commit_callbacks):
    target = staff_code.targets.get(staff=staff_a)
    contact = ContactFactory(corp=corp, name="小红")
    with django_capture_on_commit_callbacks(execute=True):
        add_event(corp, staff_a, contact, state=services.target_state(target))
    conversion = Conversion.objects.get()
    assert (conversion.code, conversion.target, conversion.kind) == (staff_code, target, "add")
    assert conversion.welcome == "sent"
    code, content = fake_wecom.welcome_messages[0]
    assert code == "WC1" and content == MessageContent(text="你好 小红，欢迎！")
    link = ContactTag.objects.get(contact=contact)
    assert (link.tag, link.source, link.source_ref) == (tag, "livecode", str(staff_code.pk))
    counts = hotpath.counts_get(code_id=staff_code.pk, day=hotpath.day_of(now().timestamp()))
    assert counts[(routing.ADDS_TODAY, target.pk)] == 1


def test_auto_remark_is_set_after_the_welcome(staff_code, corp, staff_a, fake_wecom,
                                               django_capture_on_commit_callbacks):
    services.livecode_update(code=staff_code, auto_remark="海报客户")
    contact = ContactFactory(corp=corp)
    with django_capture_on_commit_callbacks(execute=True):
        add_event(corp, staff_a, contact, state=services.target_state(staff_code.targets.get(staff=staff_a)))
    names = [n for n, _ in fake_wecom.calls]
    assert names.index("send_welcome_message") < names.index("remark_external_contact")
    assert ("remark_external_contact", ("guide_a", contact.external_userid, "海报客户", "")) in fake_wecom.calls


def test_a_replayed_event_sends_nothing_twice(staff_code, corp, staff_a, fake_wecom,
                                              django_capture_on_commit_callbacks):
    target = staff_code.targets.get(staff=staff_a)
    contact = ContactFactory(corp=corp)
    with django_capture_on_commit_callbacks(execute=True):
        add_event(corp, staff_a, contact, state=services.target_state(target))
        add_event(corp, staff_a, contact, state=services.target_state(target))
    assert Conversion.objects.count() == 1 and len(fake_wecom.welcome_messages) == 1


def test_an_expired_welcome_code_is_recorded_not_retried(staff_code, corp, staff_a, fake_wecom,
                                                         django_capture_on_commit_callbacks):
    fake_wecom.fail_next("send_welcome_message", WeComError(41050, "invalid welcome code", permanent=True))
    with django_capture_on_commit_callbacks(execute=True):
        add_event(corp, staff_a, ContactFactory(corp=corp), state=services.target_state(
            staff_code.targets.get(staff=staff_a)))
    conversion = Conversion.objects.get()
    assert conversion.welcome == "failed" and conversion.welcome_error.startswith("41050")
    assert [n for n, _ in fake_wecom.calls].count("send_welcome_message") == 1


def test_the_default_welcome_and_a_group_invite(corp, staff_a, fake_wecom, django_capture_on_commit_callbacks,
                                                settings):
    settings.LIVECODE_PUBLIC_BASE_URL = "https://scrm.example.com/"
    WelcomeDefault.objects.create(corp=corp, text="欢迎光临")
    groups = group_code(corp, title="福利群")
    code = services.livecode_create(corp=corp, kind="staff", name="无欢迎语", welcome_group_code=groups)
    target = services.target_add_staff(code=code, staff=staff_a)
    with django_capture_on_commit_callbacks(execute=True):
        add_event(corp, staff_a, ContactFactory(corp=corp), state=services.target_state(target))
    content = fake_wecom.welcome_messages[0][1]
    assert content.text == "欢迎光临"  # the code has no text of its own: the corp default
    assert content.attachments[0]["link"]["url"] == f"https://scrm.example.com/l/{groups.slug}"
    services.livecode_update(code=code, welcome_group_code=None, welcome_text="专属欢迎语")
    with django_capture_on_commit_callbacks(execute=True):
        add_event(corp, staff_a, ContactFactory(corp=corp), state=services.target_state(target), key="e2",
                  welcome_code="WC2")
    assert fake_wecom.welcome_messages[1][1] == MessageContent(text="专属欢迎语")


def test_an_add_with_a_foreign_state_is_ignored(staff_code, corp, staff_a, fake_wecom):
    add_event(corp, staff_a, ContactFactory(corp=corp), state="someone_elses_channel")
    assert Conversion.objects.count() == 0 and fake_wecom.welcome_messages == []


def test_reaching_a_daily_cap_raises_an_alert_and_routes_elsewhere(staff_code, corp, staff_a,
                                                                   django_capture_on_commit_callbacks):
    target = staff_code.targets.get(staff=staff_a)
    for i in range(2):
        add_event(corp, staff_a, ContactFactory(corp=corp), state=services.target_state(target), key=f"k{i}")
    assert Alert.objects.get(kind=Alert.Kind.STAFF_CAP).target == target
    shown = {hotpath.scan(slug=staff_code.slug, cookie=None).shown.qr_url for _ in range(3)}
    assert shown == {staff_code.targets.get(staff__userid="guide_b").wecom_qr_url}


def test_wecom_refusing_an_update_keeps_the_last_good_config(staff_code, staff_a, fake_wecom):
    target = staff_code.targets.get(staff=staff_a)
    good = target.wecom_qr_url
    fake_wecom.fail_next("update_contact_way", WeComError(41054, "member not activated", permanent=True))
    assert services.contact_way_publish(target=target) is False
    target.refresh_from_db()
    staff_code.refresh_from_db()
    assert target.wecom_qr_url == good
    assert "41054" in staff_code.publish_error
    assert Alert.objects.filter(code=staff_code, kind=Alert.Kind.PUBLISH_FAILED, resolved_at=None).exists()
    assert services.contact_way_publish(target=target) is True
    assert not Alert.objects.filter(kind=Alert.Kind.PUBLISH_FAILED, resolved_at=None).exists()


def test_a_schedule_that_leaves_nobody_on_duty_is_refused(corp, staff_a, fake_wecom):
    code = services.livecode_create(corp=corp, kind="staff", name="夜班")
    with pytest.raises(ApplicationError, match="nobody is ever on duty"):
        services.target_add_staff(code=code, staff=staff_a, schedule={"weekly": {"1": []}})
    with pytest.raises(ApplicationError, match="Invalid schedule"):
        services.target_add_staff(code=code, staff=staff_a, schedule={"weekly": {"1": [["19:00", "09:00"]]}})
    assert code.targets.count() == 0


@pytest.mark.parametrize("state", ["x" * 23, "带中文", "a b"])
def test_bad_states_are_refused(corp, state):
    with pytest.raises(ApplicationError):
        services.livecode_create(corp=corp, kind="staff", name="x", state=state)


def test_pool_holds_at_most_200_members(corp, fake_wecom):
    code = services.livecode_create(corp=corp, kind="group", name="大池")
    LiveCodeTarget.objects.bulk_create([LiveCodeTarget(code=code, kind="image", position=i) for i in range(200)])
    with pytest.raises(ApplicationError, match="at most 200"):
        services.target_add_group(code=code, chat=GroupChatFactory(corp=corp))


# --- uploads -------------------------------------------------------------------------------------------------------
def test_an_uploaded_group_qr_is_read_and_a_duplicate_caught(corp):
    code = services.livecode_create(corp=corp, kind="group", name="上传")
    target = services.target_add_image(code=code, content=qr_jpeg("https://weixin.qq.com/g/AAA"))
    assert target.qr_text == "https://weixin.qq.com/g/AAA" and target.cap == 200
    assert timedelta(days=6, hours=23) < target.expires_at - now() <= timedelta(days=7)
    with pytest.raises(ApplicationError, match="already in the pool"):
        services.target_add_image(code=code, content=qr_png("https://weixin.qq.com/g/AAA", size=400))


def _blank_png(size=(200, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "white").save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(("content", "message"), [
    (b"GIF89a" + b"\0" * 100, "PNG or JPEG"),
    (b"%PDF-1.4 not an image", "PNG or JPEG"),
    (b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "not a readable image"),
    (_blank_png(), "No QR code"),
])
def test_bad_uploads_are_refused_clearly(corp, content, message):
    code = services.livecode_create(corp=corp, kind="group", name="上传")
    with pytest.raises(ApplicationError, match=message):
        services.target_add_image(code=code, content=content)


def test_size_and_pixel_limits_are_checked_before_decoding(corp, settings, monkeypatch):
    import zxingcpp

    monkeypatch.setattr(zxingcpp, "read_barcodes", lambda *a, **k: pytest.fail("decoded an oversized image"))
    code = services.livecode_create(corp=corp, kind="group", name="上传")
    settings.LIVECODE_UPLOAD_MAX_PIXELS = 100 * 100
    with pytest.raises(ApplicationError, match="too many pixels"):
        services.target_add_image(code=code, content=_blank_png((101, 100)))
    settings.LIVECODE_UPLOAD_MAX_BYTES = 1024
    with pytest.raises(ApplicationError, match="larger than"):
        services.target_add_image(code=code, content=_blank_png((100, 100)) + b"\0" * 2000)


def test_replacing_an_expired_qr_keeps_the_member_and_resets_its_count(corp):
    code = group_code(corp, images=1, cap=2)
    target = code.targets.get()
    hotpath.scan(slug=code.slug, cookie=None)
    hotpath.scan(slug=code.slug, cookie=None)
    assert hotpath.scan(slug=code.slug, cookie=None).status == "busy"
    services.target_replace_image(target=target, content=qr_png("https://weixin.qq.com/g/NEW"))
    hotpath.local_reset()
    result = hotpath.scan(slug=code.slug, cookie=None)
    assert result.status == "routed" and f"/qr/{target.pk}.img" in result.shown.qr_url
    assert code.targets.count() == 1


# --- group codes with WeCom join ways ---------------------------------------------------------------------------------
@pytest.fixture
def refresh_inline(monkeypatch):
    """The join-window refresh task runs in place of being enqueued on the wecom queue."""
    monkeypatch.setattr(services, "_enqueue_join_refresh",
                        lambda code_id: services.join_window_refresh(code=LiveCode.objects.get(pk=code_id)))


def test_join_way_slides_over_the_pool_as_groups_fill(corp, fake_wecom, django_capture_on_commit_callbacks,
                                                      refresh_inline):
    code = services.livecode_create(corp=corp, kind="group", name="原生群")
    chats = [GroupChatFactory(corp=corp) for _ in range(7)]
    for chat in chats:
        services.target_add_group(code=code, chat=chat, cap=2)
    way = JoinWay.objects.get(code=code)
    assert way.chat_ids == [c.chat_id for c in chats[:5]]
    assert fake_wecom.join_ways[way.config_id]["chat_id_list"] == way.chat_ids
    contacts = [ContactFactory(corp=corp) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        for i, contact in enumerate(contacts[:2]):
            contact_services.record_event(corp=corp, kind="joined_group", occurred_at=now(), contact=contact,
                                          chat=chats[0], dedup_key=f"j{i}")
    way.refresh_from_db()
    assert way.chat_ids == [c.chat_id for c in chats[1:6]]  # the full group left the window
    assert Conversion.objects.filter(kind="join").count() == 2
    assert LiveCodeTarget.objects.get(chat=chats[0]).joins == 2


def test_a_contact_in_two_groups_of_one_pool_is_listed(corp, fake_wecom):
    code = services.livecode_create(corp=corp, kind="group", name="去重")
    a, b = GroupChatFactory(corp=corp, name="一群"), GroupChatFactory(corp=corp, name="二群")
    services.target_add_group(code=code, chat=a)
    services.target_add_group(code=code, chat=b)
    contact = ContactFactory(corp=corp, name="重复的人")
    for i, chat in enumerate((a, b)):
        contact_services.record_event(corp=corp, kind="joined_group", occurred_at=now(), contact=contact,
                                      chat=chat, dedup_key=f"d{i}")
    dups = selectors.duplicate_members(code=code)
    assert [(d.contact_name, d.groups) for d in dups] == [("重复的人", ("一群", "二群"))]


def test_a_grouped_code_tags_the_choice_on_join(corp, fake_wecom, tag):
    code = services.livecode_create(corp=corp, kind="grouped", name="城市群")
    shanghai = services.option_add(code=code, label="上海", tag=tag)
    chat = GroupChatFactory(corp=corp)
    with pytest.raises(ApplicationError, match="Pick the choice"):
        services.target_add_group(code=code, chat=chat)
    services.target_add_group(code=code, chat=chat, option=shanghai)
    assert JoinWay.objects.get(code=code).option_id == shanghai.pk
    contact = ContactFactory(corp=corp)
    contact_services.record_event(corp=corp, kind="joined_group", occurred_at=now(), contact=contact, chat=chat,
                                  dedup_key="g1")
    assert ContactTag.objects.get(contact=contact).tag == tag
    assert hotpath.scan(slug=code.slug, cookie=None).status == "choose"
    assert hotpath.scan(slug=code.slug, cookie=None, option_id=shanghai.pk).status == "routed"


def test_losses_within_1_and_7_days_are_counted(staff_code, corp, staff_a):
    contact = ContactFactory(corp=corp)
    add_event(corp, staff_a, contact, state=services.target_state(staff_code.targets.get(staff=staff_a)))
    contact_services.record_event(corp=corp, kind="deleted_by_customer", occurred_at=now() + timedelta(hours=2),
                                  contact=contact, staff=staff_a, dedup_key="del")
    today = selectors.stats_by_day(code=staff_code, days=1)[0]
    assert (today.adds, today.lost_1d, today.lost_7d) == (1, 1, 1)


# --- alerts ------------------------------------------------------------------------------------------------------------
@pytest.fixture
def notify_inline(monkeypatch):
    monkeypatch.setattr(services, "_enqueue_notify", lambda alert_id: services.alert_notify(alert_id=alert_id))


def test_alerts_for_expiry_capacity_and_exhaustion_reach_the_owner(corp, fake_wecom, notify_inline,
                                                                   django_capture_on_commit_callbacks):
    owner = UserFactory(staff=StaffFactory(corp=corp, userid="owner_li"))
    code = group_code(corp, images=2, cap=30, owner=owner, low_capacity=100)
    soon, later = code.targets.order_by("position")
    services.target_update(target=soon, expires_at=now() + timedelta(hours=3))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.alerts_check() >= 2
    kinds = set(Alert.objects.filter(resolved_at=None).values_list("kind", flat=True))
    assert {"expiring", "low_capacity"} <= kinds
    assert len(fake_wecom.app_messages) == 2
    assert all(users == ["owner_li"] for users, _ in fake_wecom.app_messages)
    assert any("新品群" in content.text for _, content in fake_wecom.app_messages)
    sent = len(fake_wecom.app_messages)
    with django_capture_on_commit_callbacks(execute=True):
        services.alerts_check()
    assert len(fake_wecom.app_messages) == sent  # an open alert is not sent again

    services.target_update(target=soon, expires_at=now() - timedelta(minutes=1))
    services.target_update(target=later, enabled=False)
    hotpath.local_reset()
    assert hotpath.scan(slug=code.slug, cookie=None).status == "busy"
    services.alerts_check()
    kinds = set(Alert.objects.filter(resolved_at=None).values_list("kind", flat=True))
    assert {"expired", "exhausted"} <= kinds and "expiring" not in kinds


def test_forecast_alert(corp, fake_wecom):
    code = group_code(corp, images=1, cap=100)
    for _ in range(40):
        hotpath.scan(slug=code.slug, cookie=None)
    services.scans_flush()
    services.alerts_check()
    alert = Alert.objects.get(kind=Alert.Kind.FORECAST)
    assert alert.code == code and alert.resolved_at is None  # 60 left at 40 an hour: full within 24 h


def test_disabled_code_is_skipped_by_the_sweeper(corp):
    code = group_code(corp, images=1)
    services.livecode_update(code=code, status=LiveCode.Status.DISABLED)
    services.target_update(target=code.targets.get(), expires_at=now() - timedelta(minutes=1))
    assert services.alerts_check() == 0
