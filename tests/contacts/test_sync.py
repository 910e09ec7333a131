import pytest

from contacts.models import Contact, FollowRelation, GroupChat, Staff
from contacts.sync import corp_sync_from_wecom
from tests.factories import ContactFactory, FollowRelationFactory, StaffFactory
from wecom.contracts import ExternalContact, FollowInfo, GroupChatDetail, GroupChatMember, StaffMember
from wecom.errors import WeComAuthError

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
