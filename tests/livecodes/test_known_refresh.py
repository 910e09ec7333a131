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


def test_an_entry_is_read_only_after_a_change_and_a_broken_one_is_ignored(pool):
    contact, other = hotpath.contact_key(EXT), hotpath.contact_key("wmSOMEONEELSE00000000000000000001")
    hotpath.known_remember(contact=contact, known=frozenset({"chat:wrSECOND"}), at_ms=1_000)
    hotpath.known_remember(contact=other, known=frozenset(), at_ms=1_000)

    def scan(cookie):
        result = hotpath.scan(slug=pool.slug, cookie=cookie)
        return result, result.cookie or cookie

    first = hotpath.scan(slug=pool.slug, cookie=None, known=frozenset({"chat:wrSECOND"}), contact=contact)
    assert first.known
    # The entry changes without known_update (so without a new generation): scans do not read it.
    hotpath.known_remember(contact=contact, known=frozenset(), at_ms=2_000)
    result, cookie = scan(first.cookie)
    assert result.known and result.cookie == ""
    # Someone else's change moves the generation on: this customer's entry is read once, the cookie corrected.
    assert hotpath.known_update(updates={other: frozenset({"chat:wrFIRST"})}, at_ms=3_000) == 1
    result, cookie = scan(cookie)
    assert not result.known and hotpath._visitor_read(cookie)[1]["_g"] == 1
    hotpath.known_remember(contact=contact, known=frozenset({"chat:wrSECOND"}), at_ms=4_000)
    result, cookie = scan(cookie)
    assert not result.known and result.cookie == ""  # checked at generation 1 already: no read
    # A broken entry never changes what the cookie says.
    hotpath.get_redis().set(hotpath.key_known(contact), b"{not json")
    hotpath.known_update(updates={other: frozenset()}, at_ms=5_000)
    result, cookie = scan(cookie)
    assert not result.known and hotpath._visitor_read(cookie)[1]["_g"] == 2


def test_a_cookie_of_the_earlier_format_is_checked_once(pool):
    contact = hotpath.contact_key(EXT)
    hotpath.known_remember(contact=contact, known=frozenset(), at_ms=1_000)
    old = hotpath._visitor_write("v1", {"_i": "1", "_k": "chat:wrSECOND", "_c": contact, "_t": 900})
    assert hotpath.scan(slug=pool.slug, cookie=old).known  # no change recorded since: the cookie stands
    hotpath.known_update(updates={contact: frozenset()}, at_ms=2_000)
    result = hotpath.scan(slug=pool.slug, cookie=old)
    entities = hotpath._visitor_read(result.cookie)[1]
    assert not result.known and entities["_k"] == "" and entities["_g"] == 1 and "_t" not in entities


# --- identified first, joined a pool group later by another route: the next scan says "already in" -------------
@pytest.fixture
def webhook(monkeypatch, client):
    """Deliver an event the way WeCom does: signed and encrypted to /wecom/callback/, stored, queued in the Redis
    inbox, then drained and processed as the workers would (the broker is not involved)."""
    from tests.wecom.helpers import signed_request
    from wecom import inbox
    from wecom.tasks import callbacks_drain

    monkeypatch.setattr(callbacks_drain, "apply_async", lambda **kwargs: None)
    hotpath.get_redis().delete(*inbox._keys())

    def deliver(capture, **fields) -> list[str]:
        query, body = signed_request(event_xml(CORP, **fields))
        with capture(execute=True):
            assert client.post(f"/wecom/callback/?{query}", data=body, content_type="text/xml").status_code == 200
        results = []
        with capture(execute=True):  # the livecodes refresh runs once the worker's transaction commits
            inbox.drain(lambda event_id: results.append(callback_event_process(event_id=event_id)))
        return results

    yield deliver
    hotpath.get_redis().delete(*inbox._keys())


def joined_group(deliver, capture, chat_id: str, t: int = 1900000000) -> list[str]:
    return deliver(capture, CreateTime=t, Event="change_external_chat", ChangeType="update", ChatId=chat_id,
                   UpdateDetail="add_member", JoinScene=1, MemChangeCnt=1, MemChangeList=[EXT])


@pytest.fixture
def newcomer(corp, staff_a, fake_wecom):
    """A group code over two WeCom groups and a customer of guide A (not in the pool) who is in neither group."""
    code = services.livecode_create(corp=corp, kind="group", name="新品群")
    for chat_id, name in (("wrFIRST", "一群"), ("wrSECOND", "二群")):
        services.target_add_group(code=code, chat=GroupChatFactory(corp=corp, chat_id=chat_id, name=name))
    contact = ContactFactory(corp=corp, external_userid=EXT, unionid="uKNOWN")
    FollowRelationFactory(contact=contact, staff=staff_a)
    return code


def test_identified_through_the_official_account_then_joined_a_pool_group_is_already_in(
        client, settings, fake_wecom, newcomer, webhook, django_capture_on_commit_callbacks):
    settings.LIVECODE_OA_APPID, settings.LIVECODE_OA_SECRET = "wxTESTOA000000001", "oa-secret"
    settings.LIVECODE_PUBLIC_BASE_URL = "https://scrm.example.com"
    fake_wecom.oa_codes["k1"] = OAIdentity(openid="oK", unionid="uKNOWN")
    assert client.get(f"/l/{newcomer.slug}", **WECHAT).status_code == 302
    first = client.get(f"/l/{newcomer.slug}?code=k1&state=lcoa", **WECHAT).content.decode()
    assert ALREADY_IN not in first and "一群" in first  # recognised (a customer of guide A), in no pool group
    assert cookie_entities(client)["_c"] == hotpath.contact_key(EXT)

    # They join 二群 some other way (a staff member's invitation, another QR): WeCom says so by callback.
    assert joined_group(webhook, django_capture_on_commit_callbacks, "wrSECOND") == ["processed"]

    page = client.get(f"/l/{newcomer.slug}", **WECHAT).content.decode()
    assert ALREADY_IN in page and "二群" in page
    assert cookie_entities(client)["_k"] == "chat:wrSECOND staff:guide_a"  # the cookie now knows it too
    assert ALREADY_IN in client.get(f"/l/{newcomer.slug}", **WECHAT).content.decode()
    assert fake_wecom.calls.count(("get_oa_identity", ("k1",))) <= 1  # never sent through OAuth again


def test_identified_through_wecom_oauth_then_joined_a_pool_group_is_already_in(
        client, oauth, newcomer, webhook, django_capture_on_commit_callbacks):
    oauth.oauth_codes["c1"] = OAuthIdentity(openid="oK", external_userid=EXT)
    assert ALREADY_IN not in back_from_oauth(client, newcomer, "c1").content.decode()
    joined_group(webhook, django_capture_on_commit_callbacks, "wrSECOND")
    page = client.get(f"/l/{newcomer.slug}", **WECHAT).content.decode()
    assert ALREADY_IN in page and "二群" in page


def test_joining_a_group_outside_the_pool_changes_nothing(client, oauth, corp, newcomer, webhook,
                                                          django_capture_on_commit_callbacks):
    GroupChatFactory(corp=corp, chat_id="wrOTHER", name="别的群")
    oauth.oauth_codes["c1"] = OAuthIdentity(openid="oK", external_userid=EXT)
    first = back_from_oauth(client, newcomer, "c1").content.decode()
    joined_group(webhook, django_capture_on_commit_callbacks, "wrOTHER")
    page = client.get(f"/l/{newcomer.slug}", **WECHAT).content.decode()
    assert ALREADY_IN not in page and "一群" in page and "一群" in first  # still the group they were routed to
