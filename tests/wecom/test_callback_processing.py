"""Stored callbacks → contacts, relations, groups and events (fake WeCom backend)."""

import pytest

from contacts.models import Contact, ContactEvent, FollowRelation, GroupChat, GroupMember
from tests.wecom.helpers import event_xml
from wecom.contracts import ExternalContact, FollowInfo, GroupChatDetail, GroupChatMember
from wecom.errors import WeComTransientError
from wecom.events import event_fields, event_key
from wecom.models import CallbackEvent
from wecom.services import callback_event_process, callback_event_replay

CORP = "wwTESTCORP0000001"


def store(xml: str) -> CallbackEvent:
    fields = event_fields(xml)
    return CallbackEvent.objects.create(event_key=event_key(fields), corp_id=CORP, payload=xml,
                                        event=fields.get("Event", ""), change_type=fields.get("ChangeType", ""))


def contact_event(change_type: str, *, userid="sales_li", ext="wmA", t=1718000000, **extra) -> CallbackEvent:
    return store(event_xml(CORP, CreateTime=t, Event="change_external_contact", ChangeType=change_type,
                           UserID=userid, ExternalUserID=ext, **extra))


def known_customer(fake, ext="wmA", userid="sales_li", **follow):
    fake.contacts[ext] = ExternalContact(
        external_userid=ext, name="小明", unionid="un1", gender=1,
        follow_users=(FollowInfo(userid=userid, remark="老客户", createtime=1718000000, add_way=1,
                                 state="expo", remark_mobiles=("13812345678",), **follow),),
    )


@pytest.mark.django_db
def test_add_creates_contact_relation_and_event(fake_wecom):
    known_customer(fake_wecom)
    event = contact_event("add_external_contact", State="expo", WelcomeCode="WC")
    assert callback_event_process(event_id=event.pk) == "processed"
    contact = Contact.objects.get(external_userid="wmA")
    assert (contact.name, contact.unionid, contact.active_relations) == ("小明", "un1", 1)
    relation = FollowRelation.objects.get()
    assert (relation.staff.userid, relation.state, relation.remark, relation.add_way) == ("sales_li", "expo",
                                                                                         "老客户", 1)
    assert relation.is_active and relation.remark_mobiles == ["13812345678"]
    assert ContactEvent.objects.get().kind == "added"
    assert ContactEvent.objects.get().data["state"] == "expo"


@pytest.mark.django_db
def test_replay_changes_nothing(fake_wecom):
    known_customer(fake_wecom)
    event = contact_event("add_external_contact")
    callback_event_process(event_id=event.pk)
    assert callback_event_replay(event_id=event.pk) == "processed"
    assert callback_event_process(event_id=event.pk) == "processed"
    assert Contact.objects.count() == 1
    assert FollowRelation.objects.count() == 1
    assert ContactEvent.objects.count() == 1


@pytest.mark.django_db
def test_customer_deletes_staff_then_staff_deletes(fake_wecom):
    known_customer(fake_wecom)
    callback_event_process(event_id=contact_event("add_external_contact", t=100).pk)
    callback_event_process(event_id=contact_event("del_follow_user", t=200).pk)
    relation = FollowRelation.objects.get()
    assert not relation.is_active and relation.deleted_by_customer_at is not None
    assert Contact.objects.get().active_relations == 0
    kinds = list(ContactEvent.objects.order_by("occurred_at").values_list("kind", flat=True))
    assert kinds == ["added", "deleted_by_customer"]


@pytest.mark.django_db
def test_out_of_order_delete_does_not_undo_a_later_add(fake_wecom):
    known_customer(fake_wecom)
    # the customer deleted at t=200 and added again at t=300; WeCom delivers the add first
    callback_event_process(event_id=contact_event("add_external_contact", t=300).pk)
    callback_event_process(event_id=contact_event("del_follow_user", t=200).pk)
    relation = FollowRelation.objects.get()
    assert relation.is_active
    assert Contact.objects.get().active_relations == 1
    assert ContactEvent.objects.count() == 2  # both facts stay in the log


@pytest.mark.django_db
def test_staff_delete_by_transfer_keeps_source(fake_wecom):
    known_customer(fake_wecom)
    callback_event_process(event_id=contact_event("add_external_contact", t=1).pk)
    callback_event_process(event_id=contact_event("del_external_contact", t=2, Source="DELETE_BY_TRANSFER").pk)
    relation = FollowRelation.objects.get()
    assert relation.deleted_by_staff_at and relation.delete_source == "DELETE_BY_TRANSFER"


@pytest.mark.django_db
def test_add_of_a_customer_wecom_no_longer_knows_still_records_the_relation(fake_wecom):
    event = contact_event("add_external_contact", ext="wmGone")
    assert callback_event_process(event_id=event.pk) == "processed"
    assert Contact.objects.get().external_userid == "wmGone"
    assert FollowRelation.objects.get().is_active


@pytest.mark.django_db
def test_edit_reads_remark_and_tags_back(fake_wecom):
    known_customer(fake_wecom)
    callback_event_process(event_id=contact_event("add_external_contact", t=1).pk)
    known_customer(fake_wecom)
    fake_wecom.contacts["wmA"] = ExternalContact(
        external_userid="wmA", name="小明",
        follow_users=(FollowInfo(userid="sales_li", remark="VIP", description="喜欢咖啡"),),
    )
    callback_event_process(event_id=contact_event("edit_external_contact", t=2).pk)
    relation = FollowRelation.objects.get()
    assert (relation.remark, relation.description) == ("VIP", "喜欢咖啡")
    assert relation.is_active


@pytest.mark.django_db
def test_transient_wecom_failure_leaves_event_pending_with_error(fake_wecom):
    known_customer(fake_wecom)
    fake_wecom.fail_next("get_external_contact", WeComTransientError(-1, "system busy"))
    event = contact_event("add_external_contact")
    with pytest.raises(WeComTransientError):
        callback_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert event.status == "pending" and event.attempts == 1 and "busy" in event.last_error
    assert Contact.objects.count() == 0
    assert callback_event_process(event_id=event.pk) == "processed"  # the retry succeeds


@pytest.mark.django_db
def test_transfer_fail_is_recorded(fake_wecom):
    callback_event_process(event_id=contact_event("transfer_fail", FailReason="customer_refused").pk)
    event = ContactEvent.objects.get()
    assert event.kind == "transfer_failed" and event.data == {"reason": "customer_refused"}


def chat_event(change_type: str, t: int, **extra) -> CallbackEvent:
    return store(event_xml(CORP, CreateTime=t, Event="change_external_chat", ChatId="wrChat1",
                           ChangeType=change_type, **extra))


def chat_in_wecom(fake, members, version="v1", name="VIP群"):
    fake.chats["wrChat1"] = GroupChatDetail(
        chat_id="wrChat1", name=name, owner="sales_li", create_time=1718000000, member_version=version,
        members=tuple(GroupChatMember(userid=m, type=2 if m.startswith("wm") else 1, join_time=1718000000,
                                      join_scene=3) for m in members),
    )


@pytest.mark.django_db
def test_group_create_then_members_join_and_leave_in_step(fake_wecom):
    chat_in_wecom(fake_wecom, ["sales_li", "wmA"], version="v1")
    callback_event_process(event_id=chat_event("create", 1).pk)
    chat = GroupChat.objects.get()
    assert (chat.name, chat.owner.userid, chat.member_count) == ("VIP群", "sales_li", 2)
    calls_before = len(fake_wecom.calls)

    callback_event_process(event_id=chat_event("update", 2, UpdateDetail="add_member", JoinScene=3,
                                               MemChangeCnt=2, MemChangeList=["wmB", "wmC"], LastMemVer="v1",
                                               CurMemVer="v2").pk)
    chat.refresh_from_db()
    assert chat.member_count == 4 and chat.member_version == "v2"
    assert len(fake_wecom.calls) == calls_before  # in step: no read-back needed

    callback_event_process(event_id=chat_event("update", 3, UpdateDetail="del_member", QuitScene=0,
                                               MemChangeCnt=1, MemChangeList="wmB", LastMemVer="v2",
                                               CurMemVer="v3").pk)
    chat.refresh_from_db()
    assert chat.member_count == 3
    assert GroupMember.objects.get(member_id="wmB").left_at is not None
    kinds = sorted(ContactEvent.objects.filter(chat=chat).values_list("kind", flat=True))
    assert kinds == ["group_created", "joined_group", "joined_group", "left_group"]


@pytest.mark.django_db
def test_group_event_out_of_step_rereads_the_group(fake_wecom):
    chat_in_wecom(fake_wecom, ["sales_li", "wmA"], version="v1")
    callback_event_process(event_id=chat_event("create", 1).pk)
    # an event was lost: WeCom is at v5 and the next event says LastMemVer v4
    chat_in_wecom(fake_wecom, ["sales_li", "wmA", "wmX", "wmY"], version="v5")
    callback_event_process(event_id=chat_event("update", 5, UpdateDetail="add_member", JoinScene=0,
                                               MemChangeCnt=1, MemChangeList="wmY", LastMemVer="v4",
                                               CurMemVer="v5").pk)
    chat = GroupChat.objects.get()
    assert chat.member_version == "v5"
    assert set(chat.members.filter(left_at__isnull=True).values_list("member_id", flat=True)) == {
        "sales_li", "wmA", "wmX", "wmY"}


@pytest.mark.django_db
def test_group_dismiss_marks_everyone_left(fake_wecom):
    chat_in_wecom(fake_wecom, ["sales_li", "wmA"])
    callback_event_process(event_id=chat_event("create", 1).pk)
    callback_event_process(event_id=chat_event("dismiss", 9).pk)
    chat = GroupChat.objects.get()
    assert chat.status == "dismissed" and chat.member_count == 0


@pytest.mark.django_db
def test_tag_events_are_recorded_without_touching_contacts(fake_wecom):
    event = store(event_xml(CORP, CreateTime=1, Event="change_external_tag", Id="et1", TagType="tag",
                            ChangeType="shuffle"))
    assert callback_event_process(event_id=event.pk) == "processed"
    assert ContactEvent.objects.count() == 0


@pytest.mark.django_db
def test_stale_pending_events_are_redispatched(fake_wecom, monkeypatch):
    from datetime import timedelta

    from scrm.clock import now
    from wecom import services
    from wecom.tasks import callback_event_process as task

    sent = []
    monkeypatch.setattr(task, "apply_async", lambda args, queue: sent.append(args[0]))
    monkeypatch.setattr(services.inbox, "push", lambda event_id: None)
    old = contact_event("add_external_contact", ext="wmOld")
    CallbackEvent.objects.filter(pk=old.pk).update(received_at=now() - timedelta(minutes=10))
    contact_event("add_external_contact", ext="wmNew")
    assert services.callbacks_redispatch_stale() == 1
    assert sent == [old.pk]


@pytest.mark.django_db
def test_a_new_staff_member_gets_their_name_from_wecom(fake_wecom):
    from contacts.models import Staff
    from wecom.contracts import StaffMember

    fake_wecom.staff["sales_li"] = StaffMember(userid="sales_li", name="李销售")
    known_customer(fake_wecom)
    callback_event_process(event_id=contact_event("add_external_contact").pk)
    assert Staff.objects.get(userid="sales_li").name == "李销售"
    calls = [c for c, _ in fake_wecom.calls if c == "get_user"]
    callback_event_process(event_id=contact_event("edit_external_contact", t=1718000001).pk)
    assert [c for c, _ in fake_wecom.calls if c == "get_user"] == calls  # known names are not read again
