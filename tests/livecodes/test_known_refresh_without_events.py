"""Writes that record no event of their own (a group re-read from WeCom, the full sync, a dismissed group) change
what an identified customer belongs to too: ``contacts.fanout.relations_written`` refreshes the live-code copy in
Redis, so the next scan no longer says "you are already in …" (or starts saying it), and it stays cheap for the
contacts nobody ever identified."""

import pytest

from contacts import fanout
from contacts import services as contact_services
from contacts.models import Contact, ContactEvent, Corp
from contacts.sync import corp_sync_from_wecom
from livecodes import hotpath, services
from scrm.clock import now
from tests.factories import ContactFactory, FollowRelationFactory, GroupChatFactory, GroupMemberFactory
from tests.livecodes.test_known_refresh import callback
from tests.livecodes.test_oauth import WECHAT, back_from_oauth
from wecom.contracts import GroupChatDetail, GroupChatMember, StaffMember
from wecom.gateway import OAuthIdentity

pytestmark = pytest.mark.django_db

ALREADY_IN = "您已在这个群里"
ALREADY_ADDED = "您已添加过这位员工"
EXT = "wmKNOWN0000000000000000000000001"


@pytest.fixture
def oauth(settings, fake_wecom):
    settings.LIVECODE_WECOM_OAUTH = True
    settings.LIVECODE_PUBLIC_BASE_URL = "https://scrm.example.com"
    fake_wecom.oauth_codes["c1"] = OAuthIdentity(openid="oK", external_userid=EXT)
    return fake_wecom


@pytest.fixture
def pool(corp, staff_a, fake_wecom):
    """A group code over two WeCom groups; the customer is in the second one."""
    code = services.livecode_create(corp=corp, kind="group", name="新品群")
    first = GroupChatFactory(corp=corp, chat_id="wrFIRST", name="一群")
    second = GroupChatFactory(corp=corp, chat_id="wrSECOND", name="二群")
    services.target_add_group(code=code, chat=first)
    services.target_add_group(code=code, chat=second)
    GroupMemberFactory(chat=second, contact=ContactFactory(corp=corp, external_userid=EXT, unionid="uKNOWN"))
    return code


def wecom_group(fake, chat_id: str, *externals: str) -> None:
    """What WeCom answers when the group is read: its owner and these customers."""
    fake.chats[chat_id] = GroupChatDetail(chat_id=chat_id, name=chat_id, owner="guide_a", member_version="v9",
                                          members=(GroupChatMember(userid="guide_a", type=1),
                                                   *(GroupChatMember(userid=e, type=2) for e in externals)))


def cookie_entities(client) -> dict:
    return hotpath._visitor_read(client.cookies[hotpath.COOKIE].value)[1]


def test_a_group_reread_that_drops_the_customer_ends_already_in(client, oauth, pool,
                                                                django_capture_on_commit_callbacks):
    assert ALREADY_IN in back_from_oauth(client, pool, "c1").content.decode()
    assert ALREADY_IN in client.get(f"/l/{pool.slug}", **WECHAT).content.decode()  # the cookie remembers

    # The group's name changed; the worker re-reads it and WeCom no longer lists the customer (their del_member
    # event was lost). No event records their departure: only the re-read knows.
    wecom_group(oauth, "wrSECOND")
    with django_capture_on_commit_callbacks(execute=True):
        assert callback(CreateTime=1900000000, Event="change_external_chat", ChangeType="update",
                        ChatId="wrSECOND", UpdateDetail="change_name") == "processed"
    assert not ContactEvent.objects.filter(kind=ContactEvent.Kind.LEFT_GROUP).exists()

    page = client.get(f"/l/{pool.slug}", **WECHAT).content.decode()
    assert ALREADY_IN not in page and "长按识别二维码" in page
    assert cookie_entities(client)["_k"] == ""
    assert [c for c in oauth.calls if c[0] == "get_oauth_user"] == [("get_oauth_user", ("c1",))]  # no new OAuth


def test_a_group_reread_that_finds_the_customer_in_a_pool_group_says_already_in(client, oauth, corp, pool,
                                                                                 django_capture_on_commit_callbacks):
    contact_services.group_chat_dismissed(corp=corp, chat_id="wrSECOND", at=now())
    page = back_from_oauth(client, pool, "c1").content.decode()
    assert ALREADY_IN not in page and "一群" in page

    wecom_group(oauth, "wrFIRST", EXT)  # they joined 一群 while we were not listening
    with django_capture_on_commit_callbacks(execute=True):
        contact_services.group_chat_upsert_from_wecom(corp=corp, detail=oauth.chats["wrFIRST"])

    page = client.get(f"/l/{pool.slug}", **WECHAT).content.decode()
    assert ALREADY_IN in page and "一群" in page
    assert cookie_entities(client)["_k"] == "chat:wrFIRST"


def test_the_full_sync_closing_the_staff_relation_ends_already_added(client, oauth, corp, staff_a, staff_b,
                                                                     django_capture_on_commit_callbacks):
    code = services.livecode_create(corp=corp, kind="staff", name="导购码")
    services.target_add_staff(code=code, staff=staff_a)
    services.target_add_staff(code=code, staff=staff_b)
    FollowRelationFactory(contact=ContactFactory(corp=corp, external_userid=EXT), staff=staff_b)
    assert ALREADY_ADDED in back_from_oauth(client, code, "c1").content.decode()

    # WeCom no longer lists the customer for guide B (the deletion callback never came): the sync closes it.
    oauth.staff = {u: StaffMember(userid=u, name=u) for u in ("guide_a", "guide_b")}
    with django_capture_on_commit_callbacks(execute=True):
        assert corp_sync_from_wecom(corp_id=corp.corp_id).relations_closed == 1

    page = client.get(f"/l/{code.slug}", **WECHAT).content.decode()
    assert ALREADY_ADDED not in page
    assert cookie_entities(client)["_k"] == ""


class CountingRedis:
    """The real client, counting the pipelines (round trips) the refresh sends."""

    def __init__(self, real):
        self.real, self.pipelines = real, 0

    def pipeline(self, *args, **kwargs):
        self.pipelines += 1
        return self.real.pipeline(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_contacts_nobody_identified_cost_one_query_and_one_round_trip_per_batch(
        corp, monkeypatch, django_capture_on_commit_callbacks, django_assert_num_queries):
    contacts = Contact.objects.bulk_create([Contact(corp=corp, external_userid=f"wmBULK{i:026d}")
                                            for i in range(2 * fanout.KNOWN_REFRESH_BATCH + 5)])
    ids = [c.pk for c in contacts]
    counting = CountingRedis(hotpath.get_redis())
    monkeypatch.setattr(hotpath, "get_redis", lambda: counting)

    with django_capture_on_commit_callbacks() as pending:
        fanout.relations_written(contact_ids=ids + ids[:10])  # duplicates are refreshed once
    assert len(pending) == 3  # batches of KNOWN_REFRESH_BATCH, run after the commit
    with django_assert_num_queries(3):  # one SELECT of external_userids per batch, nothing else
        for run in pending:
            run()
    assert counting.pipelines == 3  # one pipelined EXISTS per batch; no write for nobody
    assert not counting.real.exists(hotpath.key_known_generation())

    # One of them was identified on a landing page: only that one is re-read (2 queries) and rewritten.
    identified = hotpath.contact_key(contacts[1500].external_userid)
    hotpath.known_remember(contact=identified, known=frozenset({"chat:wrGONE"}), at_ms=1)
    with django_assert_num_queries(1 + 3 + 2), django_capture_on_commit_callbacks(execute=True):
        fanout.relations_written(contact_ids=ids)  # 1: the analytics dirty marks
    assert hotpath._known_now(identified) == "" and int(counting.real.get(hotpath.key_known_generation())) == 1
    assert not counting.real.exists(hotpath.key_known(hotpath.contact_key(contacts[0].external_userid)))


def test_nothing_is_refreshed_before_the_transaction_commits(corp, pool, oauth, client,
                                                             django_capture_on_commit_callbacks):
    back_from_oauth(client, pool, "c1")
    with django_capture_on_commit_callbacks(execute=False) as pending:
        contact_services.group_chat_dismissed(corp=Corp.objects.get(pk=corp.pk), chat_id="wrSECOND",
                                              at=now())
    assert hotpath._known_now(hotpath.contact_key(EXT)) == "chat:wrSECOND"  # a rollback would leave it right
    for run in pending:
        run()
    assert hotpath._known_now(hotpath.contact_key(EXT)) == ""


@pytest.mark.django_db(transaction=True)
def test_a_redis_failure_in_the_refresh_does_not_undo_or_break_the_write(corp, monkeypatch, caplog):
    """The refresh runs after the commit; when Redis fails there, the write stands and the caller goes on."""
    import redis
    from django.db import transaction

    contact = ContactFactory(corp=corp)

    def down(**kwargs):
        raise redis.ConnectionError("redis is down")

    monkeypatch.setattr(services, "known_refresh", down)
    with transaction.atomic():
        Contact.objects.filter(pk=contact.pk).update(name="改过")
        services.known_refresh_on_commit(contact_ids=[contact.pk])
    assert Contact.objects.get(pk=contact.pk).name == "改过"
    assert "redis is down" in caplog.text
