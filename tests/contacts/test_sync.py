import pytest
from django.utils import timezone

from analytics.models import CustomerFact, DailyGrowth, DirtyContact
from analytics.rollups import rollups_refresh
from contacts import services
from contacts.models import Contact, ContactEvent, Corp, FollowRelation, GroupChat, Staff
from contacts.sync import corp_sync_from_wecom
from scrm.clock import from_timestamp
from tests.factories import ContactFactory, FollowRelationFactory, StaffFactory
from tests.wecom.helpers import event_xml
from wecom.contracts import ExternalContact, FollowInfo, GroupChatDetail, GroupChatMember, StaffMember
from wecom.errors import WeComAuthError
from wecom.events import event_fields, event_key
from wecom.models import CallbackEvent
from wecom.services import callback_event_process

CORP = "wwTESTCORP0000001"


def world(fake, n=250):
    fake.staff = {u: StaffMember(userid=u, name=n) for u, n in [("zhang", "张"), ("li", "李")]}
    for i in range(n):
        follows = [FollowInfo(userid="zhang", createtime=1718000000 + i, state="s")]
        if i % 10 == 0:
            follows.append(FollowInfo(userid="li", createtime=1718000000 + i))
        fake.contacts[f"wm{i:04d}"] = ExternalContact(external_userid=f"wm{i:04d}", name=f"客户{i}",
                                                      follow_users=tuple(follows))
    fake.chats["wrG"] = GroupChatDetail(chat_id="wrG", name="群", owner="zhang", members=(
        GroupChatMember(userid="zhang", type=1), GroupChatMember(userid="wm0001", type=2, join_scene=3)))


@pytest.mark.django_db
def test_full_sync_pages_through_everything_and_reports_progress(fake_wecom):
    world(fake_wecom)
    stages = []
    report = corp_sync_from_wecom(corp_id=CORP, progress=lambda s, d, t: stages.append(s), batch=40)
    assert (report.staff, report.contacts, report.relations, report.groups) == (2, 250, 275, 1)
    assert Staff.objects.filter(corp__corp_id=CORP).count() == 2
    assert Staff.objects.get(userid="zhang").name == "张"
    assert Contact.objects.count() == 250
    assert FollowRelation.objects.filter(is_active=True).count() == 275
    assert Contact.objects.get(external_userid="wm0010").active_relations == 2
    assert GroupChat.objects.get().member_count == 2
    assert {"staff", "customers", "groups"} <= set(stages)


@pytest.mark.django_db
def test_sync_twice_changes_nothing_and_closes_relations_wecom_no_longer_has(fake_wecom, corp):
    world(fake_wecom, n=5)
    zhang = StaffFactory(corp=corp, userid="zhang")
    ghost = ContactFactory(corp=corp, external_userid="wmGhost")
    FollowRelationFactory(contact=ghost, staff=zhang)
    corp_sync_from_wecom(corp_id=CORP)
    report = corp_sync_from_wecom(corp_id=CORP)
    assert report.relations_closed == 0
    assert Contact.objects.count() == 6
    relation = FollowRelation.objects.get(contact=ghost)
    assert not relation.is_active and relation.delete_source == "missing_on_sync"
    assert Contact.objects.get(pk=ghost.pk).active_relations == 0


@pytest.mark.django_db
def test_a_relation_the_sync_closed_comes_back_when_wecom_lists_it_again(fake_wecom, corp):
    """The closure was inferred from absence: WeCom listing the relation again, with its original (older) add
    time, reopens it. A deletion WeCom reported is not undone by an older add."""
    world(fake_wecom, n=3)
    corp_sync_from_wecom(corp_id=CORP)
    missing = fake_wecom.contacts.pop("wm0001")
    corp_sync_from_wecom(corp_id=CORP)
    relation = FollowRelation.objects.get(contact__external_userid="wm0001")
    assert not relation.is_active and relation.delete_source == "missing_on_sync"
    fake_wecom.contacts["wm0001"] = missing  # listed again, created 1718000001 as before
    corp_sync_from_wecom(corp_id=CORP)
    relation.refresh_from_db()
    assert relation.is_active and relation.delete_source == ""
    assert relation.added_at == from_timestamp(1718000001)
    assert Contact.objects.get(external_userid="wm0001").active_relations == 1

    later = timezone.now()
    services.relation_deleted(corp=relation.contact.corp, staff=relation.staff, contact=relation.contact, at=later,
                              by_customer=True)
    corp_sync_from_wecom(corp_id=CORP)  # WeCom's list still has the old add: the reported deletion stands
    relation.refresh_from_db()
    assert not relation.is_active and relation.deleted_by_customer_at == later


@pytest.mark.django_db
def test_sync_with_bad_credentials_raises_clearly(fake_wecom):
    fake_wecom.fail_next("get_follow_user_list", WeComAuthError(40001, "invalid secret"))
    with pytest.raises(WeComAuthError):
        corp_sync_from_wecom(corp_id=CORP)


@pytest.mark.django_db
def test_management_command_prints_progress_and_summary(fake_wecom, settings):
    from io import StringIO

    from django.core.management import call_command

    settings.WECOM_CORP_ID = CORP
    world(fake_wecom, n=30)
    out = StringIO()
    call_command("wecom_sync", stdout=out)
    text = out.getvalue()
    assert "staff: 2/2" in text
    assert "synced 2 staff, 30 customers" in text


@pytest.mark.django_db
def test_management_command_turns_wecom_errors_into_a_message(fake_wecom, settings):
    from django.core.management import CommandError, call_command

    settings.WECOM_CORP_ID = CORP
    fake_wecom.fail_next("get_follow_user_list", WeComAuthError(60020, "not allow to access from your ip"))
    with pytest.raises(CommandError, match="errcode=60020"):
        call_command("wecom_sync")


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    from io import StringIO

    from django.core.management import call_command

    from analytics.models import CustomerFact
    from contacts.models import Order
    from predictive.models import ModelRun

    call_command("seed_demo", stdout=StringIO())
    counts = (Contact.objects.count(), FollowRelation.objects.count(), GroupChat.objects.count(), Order.objects.count())
    call_command("seed_demo", stdout=StringIO())
    assert (Contact.objects.count(), FollowRelation.objects.count(), GroupChat.objects.count(),
            Order.objects.count()) == counts
    assert counts[0] == 200 and counts[2] == 5 and counts[3] == 168  # 67 buyers with 1 to 4 orders
    # the dashboards and the predictive profile have something to show right away
    assert CustomerFact.objects.count() == 200 and CustomerFact.objects.exclude(first_order_at=None).count() == 67
    assert ModelRun.objects.filter(kind="churn").exists() and ModelRun.objects.filter(kind="propensity").exists()
    from accounts.models import User
    from analytics.selectors import rfm_report

    assert sum(cell.count for cell in rfm_report(user=User.objects.get(username="operator")).cells) == 67
    assert Staff.objects.count() == 5

    assert User.objects.get(username="guide").staff.userid == "zhangwei"


@pytest.mark.django_db
def test_seed_demo_fills_the_tag_board_with_ready_made_rules():
    from io import StringIO

    from django.core.management import call_command

    from tagging.models import ContactTag, TagRule

    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())
    assert TagRule.objects.filter(preset="channel_sources").count() == 1  # one channel state in the demo
    # every fourth demo customer came in through the "demo_poster" channel
    assert ContactTag.objects.filter(tag__name="demo_poster", source="rule").count() == 50


# --- analytics learns what a sync wrote (a sync records no events) ------------------------------------------------
T = 1718000000  # 2024-06-10 14:13 in Shanghai


def customers_in_wecom(fake, adds: dict[str, int], members: list[str], version: str = "v1") -> None:
    """WeCom's state: staff zhang, the customers in ``adds`` (external_userid → add time) and group wrG."""
    fake.staff = {"zhang": StaffMember(userid="zhang", name="张")}
    fake.contacts = {ext: ExternalContact(external_userid=ext, name=ext, follow_users=(
        FollowInfo(userid="zhang", createtime=t, state="expo"),)) for ext, t in adds.items()}
    fake.chats = {"wrG": GroupChatDetail(chat_id="wrG", name="群", owner="zhang", member_version=version, members=(
        GroupChatMember(userid="zhang", type=1),
        *(GroupChatMember(userid=m, type=2, join_time=T + 3600, join_scene=3) for m in members)))}


def local_day(ts: int):
    return timezone.localtime(from_timestamp(ts)).date()


def dirty() -> set[str]:
    """Who waits for the next analytics drain."""
    ids = DirtyContact.objects.values("contact_id")
    return set(Contact.objects.filter(pk__in=ids).values_list("external_userid", flat=True))


def growth(**filters) -> dict[str, int]:
    rows = DailyGrowth.objects.filter(dim="source", **filters)
    return {k: sum(getattr(r, k) for r in rows) for k in ("added", "group_joined", "group_left")}


@pytest.mark.django_db
def test_a_full_sync_marks_what_it_wrote_dirty_and_the_next_drain_counts_it(fake_wecom):
    customers_in_wecom(fake_wecom, {"wmA": T, "wmB": T + 60}, members=["wmA", "wmB"])
    corp_sync_from_wecom(corp_id=CORP)
    assert ContactEvent.objects.count() == 0  # nothing but the dirty marks tells analytics
    rollups_refresh()
    fact = CustomerFact.objects.get(contact__external_userid="wmA")
    assert (fact.added_at, fact.state, fact.group_joined_at) == (from_timestamp(T), "expo", from_timestamp(T + 3600))
    assert growth(day=local_day(T)) == {"added": 2, "group_joined": 2, "group_left": 0}

    # While nobody listened: wmC added zhang, wmB left the group. The next sync and drain show both.
    customers_in_wecom(fake_wecom, {"wmA": T, "wmB": T + 60, "wmC": T + 86400}, members=["wmA"], version="v2")
    corp_sync_from_wecom(corp_id=CORP)
    rollups_refresh()
    assert CustomerFact.objects.get(contact__external_userid="wmC").added_day == local_day(T + 86400)
    left = CustomerFact.objects.get(contact__external_userid="wmB")
    assert left.group_left_at is not None and left.group_left_day == timezone.localdate()
    assert growth() == {"added": 3, "group_joined": 2, "group_left": 1}
    assert not DirtyContact.objects.exists()


@pytest.mark.django_db
def test_relations_a_sync_closes_mark_their_contacts_dirty(fake_wecom, corp):
    customers_in_wecom(fake_wecom, {"wmA": T}, members=[])
    zhang = StaffFactory(corp=corp, userid="zhang")
    ghost = ContactFactory(corp=corp, external_userid="wmGhost")
    FollowRelationFactory(contact=ghost, staff=zhang)
    corp_sync_from_wecom(corp_id=CORP)
    assert FollowRelation.objects.get(contact=ghost).delete_source == "missing_on_sync"
    assert dirty() == {"wmA", "wmGhost"}


def chat_update(**fields) -> CallbackEvent:
    xml = event_xml(CORP, CreateTime=T + 7200, Event="change_external_chat", ChatId="wrG", ChangeType="update",
                    **fields)
    parsed = event_fields(xml)
    return CallbackEvent.objects.create(event_key=event_key(parsed), corp_id=CORP, payload=xml,
                                        event="change_external_chat", change_type="update")


@pytest.mark.django_db
def test_a_group_reread_marks_the_members_it_changed_and_the_drain_counts_them(fake_wecom):
    customers_in_wecom(fake_wecom, {"wmA": T, "wmB": T, "wmX": T}, members=["wmA", "wmB"])
    corp_sync_from_wecom(corp_id=CORP)
    rollups_refresh()
    assert growth() == {"added": 3, "group_joined": 2, "group_left": 0}
    # Events were lost: WeCom is at v5, wmX joined and wmB left unannounced; the next event (wmY joins) is out of
    # step, so the worker re-reads the group. Only wmY's join is an event; wmX and wmB come from the re-read.
    customers_in_wecom(fake_wecom, {"wmA": T, "wmB": T, "wmX": T}, members=["wmA", "wmX", "wmY"], version="v5")
    event = chat_update(UpdateDetail="add_member", JoinScene=0, MemChangeCnt=1, MemChangeList="wmY",
                        LastMemVer="v4", CurMemVer="v5")
    assert callback_event_process(event_id=event.pk) == "processed"
    assert dirty() == {"wmB", "wmX", "wmY"}
    rollups_refresh()
    facts = {f.contact.external_userid: f for f in CustomerFact.objects.select_related("contact")}
    assert facts["wmX"].group_joined_at == from_timestamp(T + 3600)
    assert facts["wmB"].group_left_at == from_timestamp(T + 7200)
    assert facts["wmA"].group_left_at is None
    # joins on WeCom's join time (the re-read also corrects wmY's): wmA, wmB, wmX, wmY; wmB left
    assert growth(day=local_day(T)) == {"added": 3, "group_joined": 4, "group_left": 1}


@pytest.mark.django_db
def test_a_group_reread_that_changes_nothing_marks_nobody(fake_wecom):
    customers_in_wecom(fake_wecom, {"wmA": T}, members=["wmA"])
    corp_sync_from_wecom(corp_id=CORP)
    rollups_refresh()
    services.group_chat_upsert_from_wecom(corp=Corp.objects.get(corp_id=CORP), detail=fake_wecom.chats["wrG"])
    assert not DirtyContact.objects.exists()


@pytest.mark.django_db
def test_a_dismissed_group_marks_its_customers_dirty(fake_wecom):
    customers_in_wecom(fake_wecom, {"wmA": T, "wmB": T}, members=["wmA"])
    corp_sync_from_wecom(corp_id=CORP)
    rollups_refresh()
    services.group_chat_dismissed(corp=Corp.objects.get(corp_id=CORP), chat_id="wrG", at=from_timestamp(T + 7200))
    assert dirty() == {"wmA"}
    rollups_refresh()
    assert CustomerFact.objects.get(contact__external_userid="wmA").group_left_at == from_timestamp(T + 7200)
