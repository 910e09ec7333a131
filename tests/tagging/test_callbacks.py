"""WeCom callbacks reach the tagging app: change_external_tag and tags read back on edit_external_contact."""

from contacts.models import Contact
from tagging.models import ContactTag, SyncStatus, Tag
from tests.wecom.helpers import event_xml
from tests.wecom.test_callback_processing import CORP, contact_event, known_customer, store
from wecom.contracts import TagRef
from wecom.services import callback_event_process


def test_tag_callbacks_create_and_delete(corp, fake_wecom):
    fake_wecom.corp_tags = [{"group_id": "etG", "group_name": "兴趣", "tag": [{"id": "etT", "name": "咖啡"}]}]
    created = store(event_xml(CORP, CreateTime=1, Event="change_external_tag", Id="etT", TagType="tag",
                              ChangeType="create"))
    assert callback_event_process(event_id=created.pk) == "processed"
    assert Tag.objects.get(wecom_tag_id="etT").name == "咖啡"
    deleted = store(event_xml(CORP, CreateTime=2, Event="change_external_tag", Id="etT", TagType="tag",
                              ChangeType="delete"))
    callback_event_process(event_id=deleted.pk)
    assert Tag.objects.get(name="咖啡").sync_status == SyncStatus.REMOVED


def test_edit_reads_the_follow_users_tags_back(corp, fake_wecom):
    fake_wecom.corp_tags = [{"group_id": "etG", "group_name": "兴趣", "tag": [{"id": "etT", "name": "咖啡"}]}]
    known_customer(fake_wecom, tags=(TagRef(tag_id="etT", tag_name="咖啡", group_name="兴趣", type=1),))
    callback_event_process(event_id=contact_event("add_external_contact").pk)
    callback_event_process(event_id=contact_event("edit_external_contact", t=1718000002).pk)
    link = ContactTag.objects.get(contact=Contact.objects.get(external_userid="wmA"))
    assert (link.tag.name, link.source) == ("咖啡", "wecom")
