"""A recognised customer who leaves a pool group (del_member, or the group dismissed) or deletes a pool staff
member is no longer told "you are already in …" from the cookie written when they were identified."""

import pytest

from livecodes import hotpath, services
from tests.factories import ContactFactory, FollowRelationFactory, GroupChatFactory, GroupMemberFactory
from tests.livecodes.test_oauth import WECHAT, back_from_oauth
from tests.wecom.helpers import event_xml
from wecom.events import event_fields, event_key
from wecom.gateway import OAIdentity, OAuthIdentity
from wecom.models import CallbackEvent
from wecom.services import callback_event_process

pytestmark = pytest.mark.django_db

CORP = "wwTESTCORP0000001"
ALREADY_IN = "您已在这个群里"
EXT = "wmKNOWN0000000000000000000000001"


@pytest.fixture
def oauth(settings, fake_wecom):
    settings.LIVECODE_WECOM_OAUTH = True
    settings.LIVECODE_PUBLIC_BASE_URL = "https://scrm.example.com"
    return fake_wecom


@pytest.fixture
def pool(corp, fake_wecom):
    """A group code over two WeCom groups; the customer is in the second one."""
    code = services.livecode_create(corp=corp, kind="group", name="新品群")
    first = GroupChatFactory(corp=corp, chat_id="wrFIRST", name="一群")
    second = GroupChatFactory(corp=corp, chat_id="wrSECOND", name="二群")
    services.target_add_group(code=code, chat=first)
    services.target_add_group(code=code, chat=second)
    contact = ContactFactory(corp=corp, external_userid=EXT, unionid="uKNOWN")
    GroupMemberFactory(chat=second, contact=contact)
    return code


def callback(**fields) -> str:
    xml = event_xml(CORP, **fields)
    parsed = event_fields(xml)
    event = CallbackEvent.objects.create(event_key=event_key(parsed), corp_id=CORP, payload=xml,
                                         event=parsed.get("Event", ""), change_type=parsed.get("ChangeType", ""))
    return callback_event_process(event_id=event.pk)


def left_group(chat_id: str, t: int = 1900000000) -> str:
    return callback(CreateTime=t, Event="change_external_chat", ChangeType="update", ChatId=chat_id,
                    UpdateDetail="del_member", QuitScene=0, MemChangeCnt=1, MemChangeList=[EXT])


def cookie_entities(client) -> dict:
    return hotpath._visitor_read(client.cookies[hotpath.COOKIE].value)[1]


def test_leaving_the_group_ends_already_in(client, oauth, pool, django_capture_on_commit_callbacks):
    oauth.oauth_codes["c1"] = OAuthIdentity(openid="oK", external_userid=EXT)
    assert ALREADY_IN in back_from_oauth(client, pool, "c1").content.decode()
    assert ALREADY_IN in client.get(f"/l/{pool.slug}", **WECHAT).content.decode()  # the cookie remembers

    with django_capture_on_commit_callbacks(execute=True):
        assert left_group("wrSECOND") == "processed"

    page = client.get(f"/l/{pool.slug}", **WECHAT).content.decode()
    assert ALREADY_IN not in page and "长按识别二维码" in page
    assert cookie_entities(client)["_k"] == ""  # the cookie now says what they belong to: nothing
    assert ALREADY_IN not in client.get(f"/l/{pool.slug}", **WECHAT).content.decode()
    assert [c for c in oauth.calls if c[0] == "get_oauth_user"] == [("get_oauth_user", ("c1",))]  # no new OAuth


def test_leaving_another_group_keeps_already_in(client, oauth, pool, corp, django_capture_on_commit_callbacks):
    other = GroupChatFactory(corp=corp, chat_id="wrOTHER")
    GroupMemberFactory(chat=other, contact=pool.targets.last().chat.members.get().contact)
    oauth.oauth_codes["c1"] = OAuthIdentity(openid="oK", external_userid=EXT)
    assert ALREADY_IN in back_from_oauth(client, pool, "c1").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        left_group("wrOTHER")  # not a pool group: the customer is still in 二群
    assert ALREADY_IN in client.get(f"/l/{pool.slug}", **WECHAT).content.decode()
    assert cookie_entities(client)["_k"] == "chat:wrSECOND"


def test_a_dismissed_group_ends_already_in(client, oauth, pool, django_capture_on_commit_callbacks):
    oauth.oauth_codes["c1"] = OAuthIdentity(openid="oK", external_userid=EXT)
    assert ALREADY_IN in back_from_oauth(client, pool, "c1").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert callback(CreateTime=1900000000, Event="change_external_chat", ChangeType="dismiss",
                        ChatId="wrSECOND") == "processed"
    assert ALREADY_IN not in client.get(f"/l/{pool.slug}", **WECHAT).content.decode()


def test_official_account_identification_is_refreshed_too(client, settings, fake_wecom, pool,
                                                          django_capture_on_commit_callbacks):
    settings.LIVECODE_OA_APPID, settings.LIVECODE_OA_SECRET = "wxTESTOA000000001", "oa-secret"
    settings.LIVECODE_PUBLIC_BASE_URL = "https://scrm.example.com"
    fake_wecom.oa_codes["k1"] = OAIdentity(openid="oK", unionid="uKNOWN")
    assert client.get(f"/l/{pool.slug}", **WECHAT).status_code == 302
    assert ALREADY_IN in client.get(f"/l/{pool.slug}?code=k1&state=lcoa", **WECHAT).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        left_group("wrSECOND")
    assert ALREADY_IN not in client.get(f"/l/{pool.slug}", **WECHAT).content.decode()


def test_deleting_the_staff_member_ends_already_added(client, oauth, corp, staff_a, staff_b,
                                                      django_capture_on_commit_callbacks):
    code = services.livecode_create(corp=corp, kind="staff", name="导购码")
    services.target_add_staff(code=code, staff=staff_a)
    services.target_add_staff(code=code, staff=staff_b)
    contact = ContactFactory(corp=corp, external_userid=EXT)
    FollowRelationFactory(contact=contact, staff=staff_b)
    oauth.oauth_codes["c1"] = OAuthIdentity(openid="oK", external_userid=EXT)
    assert "您已添加过这位员工" in back_from_oauth(client, code, "c1").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert callback(CreateTime=1900000000, Event="change_external_contact", ChangeType="del_external_contact",
                        UserID="guide_b", ExternalUserID=EXT) == "processed"
    assert "您已添加过这位员工" not in client.get(f"/l/{code.slug}", **WECHAT).content.decode()


def test_customers_never_identified_leave_no_trace_in_redis(pool, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        left_group("wrSECOND")
    assert not hotpath.get_redis().exists(hotpath.key_known(hotpath.contact_key(EXT)))
    assert services.known_refresh(external_userids=[EXT, ""]) == 0


def test_a_cookie_newer_than_the_change_or_a_broken_record_is_kept(pool):
    contact = hotpath.contact_key(EXT)
    hotpath.known_remember(contact=contact, known=frozenset(), at_ms=1_000)
    assert hotpath._known_fresh(contact, 2_000) is None  # identified after the change: the cookie is right
    assert hotpath._known_fresh(contact, 500) == ("", 1_000)
    hotpath.get_redis().set(hotpath.key_known(contact), b"{not json")
    assert hotpath._known_fresh(contact, 0) is None
    first = hotpath.scan(slug=pool.slug, cookie=None, known=frozenset({"chat:wrSECOND"}), contact=contact)
    again = hotpath.scan(slug=pool.slug, cookie=first.cookie)
    assert first.known and again.known  # a broken record never loses what the cookie says
