"""Corp-tag sync through the real http backend (wechatpy) against the WeCom simulator: our tags pushed to
WeCom and marked on customers, console and client changes read back through callbacks, refusals kept visible."""

import pytest

from contacts.models import Contact
from tagging import services, sync
from tagging.models import ContactTag, Dimension, SyncStatus, Tag, TagGroup
from tests.wecom.helpers import event_xml
from tests.wecom.test_callback_processing import CORP, contact_event, store
from wecom import gateway
from wecom.errors import WeComTransientError
from wecom.services import callback_event_process

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer(wecom_sim, corp):
    wecom_sim.control("members", {"userid": "sales_li", "name": "李销售"})
    ext = wecom_sim.control("actions/add_contact", {"userid": "sales_li", "name": "小红"})["external_userid"]
    assert callback_event_process(event_id=contact_event("add_external_contact", ext=ext).pk) == "processed"
    return Contact.objects.get(external_userid=ext)


def _sim_tags() -> dict[str, str]:
    return {t["id"]: t["name"] for g in gateway.corp_tags_list() for t in g.get("tag", [])}


def _follow_tag_ids(ext: str) -> list[str]:
    return [t.tag_id for t in gateway.external_contact_get(external_userid=ext).follow_users[0].tags]


def test_our_tag_is_created_renamed_and_marked_in_wecom(wecom_sim, corp, customer):
    group = TagGroup.objects.create(corp=corp, dimension=Dimension.SOURCE, name="渠道")
    tag = services.tag_create(group=group, name="海报", sync_to_wecom=True)
    sync.tag_push_to_wecom(tag_id=tag.pk)
    tag.refresh_from_db()
    assert tag.sync_status == SyncStatus.SYNCED and _sim_tags()[tag.wecom_tag_id] == "海报"
    services.tag_update(tag=tag, name="海报二维码")
    sync.tag_push_to_wecom(tag_id=tag.pk)
    assert _sim_tags()[tag.wecom_tag_id] == "海报二维码"
    # tagging the customer here marks the tag on the follow user in WeCom, untagging removes it
    services.tags_apply(contact_ids=[customer.pk], tag_ids=[tag.pk], source="manual", push_to_wecom=False)
    assert sync.contact_wecom_tags_push(contact_id=customer.pk) == 1
    assert _follow_tag_ids(customer.external_userid) == [tag.wecom_tag_id]
    assert sync.contact_wecom_tags_push(contact_id=customer.pk) == 0  # idempotent
    services.tags_remove(contact_ids=[customer.pk], tag_ids=[tag.pk], push_to_wecom=False)
    sync.contact_wecom_tags_push(contact_id=customer.pk)
    assert _follow_tag_ids(customer.external_userid) == []


def test_console_and_client_changes_come_back_through_callbacks(wecom_sim, corp, customer):
    made = wecom_sim.control("actions/client_tag", {"change_type": "create", "group_name": "兴趣", "name": "咖啡"})
    event = store(event_xml(CORP, CreateTime=2, Event="change_external_tag", Id=made["id"], TagType="tag",
                            ChangeType="create"))
    assert callback_event_process(event_id=event.pk) == "processed"
    coffee = Tag.objects.get(wecom_tag_id=made["id"])
    assert coffee.name == "咖啡" and coffee.sync_status == SyncStatus.SYNCED
    # the staff member tags the customer in the WeCom client: edit_external_contact reads it back
    wecom_sim.control("actions/edit_contact_in_client", {"userid": "sales_li",
                                                         "external_userid": customer.external_userid,
                                                         "add_tag": [made["id"]]})
    callback_event_process(event_id=contact_event("edit_external_contact", ext=customer.external_userid,
                                                  t=1718000003).pk)
    link = ContactTag.objects.get(contact=customer, tag=coffee)
    assert link.source == ContactTag.Source.WECOM
    # deleted in the console: our tag and its assignment stay, marked as ours alone
    wecom_sim.control("actions/client_tag", {"change_type": "delete", "id": made["id"]})
    callback_event_process(event_id=store(event_xml(CORP, CreateTime=4, Event="change_external_tag",
                                                    Id=made["id"], TagType="tag", ChangeType="delete")).pk)
    coffee.refresh_from_db()
    assert coffee.sync_status == SyncStatus.REMOVED and ContactTag.objects.filter(tag=coffee).exists()


def test_refusals_are_visible_and_never_lose_local_tags(wecom_sim, corp, customer):
    group = TagGroup.objects.create(corp=corp, dimension=Dimension.BASIC, name="城市")
    tag = services.tag_create(group=group, name="上海", sync_to_wecom=True)
    services.tags_apply(contact_ids=[customer.pk], tag_ids=[tag.pk], source="manual", push_to_wecom=False)
    wecom_sim.control("faults", {"errors": [{"api": "externalcontact/add_corp_tag", "errcode": -1, "count": 10}]})
    with pytest.raises(WeComTransientError):  # the task retries later
        sync.tag_push_to_wecom(tag_id=tag.pk)
    wecom_sim.control("faults", {"clear": True})
    wecom_sim.control("faults", {"errors": [{"api": "externalcontact/add_corp_tag", "errcode": 40071, "count": 1}]})
    sync.tag_push_to_wecom(tag_id=tag.pk)
    tag.refresh_from_db()
    assert tag.sync_status == SyncStatus.ERROR and tag.sync_error
    assert ContactTag.objects.filter(tag=tag, contact=customer).exists()
    wecom_sim.control("faults", {"clear": True})
    sync.tag_push_to_wecom(tag_id=tag.pk)  # the operator retries: now it goes through
    tag.refresh_from_db()
    assert tag.sync_status == SyncStatus.SYNCED and tag.wecom_tag_id in _sim_tags()
