"""Two-way corp tag and customer tag sync with WeCom (fake backend): limits, errors, callbacks, mark_tag."""

import pytest

from scrm.errors import ApplicationError
from tagging import services, sync
from tagging.models import ContactTag, SyncStatus, Tag
from tests.factories import ContactFactory, FollowRelationFactory
from wecom.errors import WeComError, WeComTransientError


def test_a_synced_tag_is_created_in_wecom(group, fake_wecom, django_capture_on_commit_callbacks, monkeypatch):
    from tagging import tasks

    pushed = []
    monkeypatch.setattr(tasks.tag_push_to_wecom, "delay", pushed.append)
    with django_capture_on_commit_callbacks(execute=True):
        tag = services.tag_create(group=group, name="高意向", sync_to_wecom=True)
        local = services.tag_create(group=group, name="内部备注")
    assert pushed == [tag.pk] and local.sync_status == SyncStatus.LOCAL
    sync.tag_push_to_wecom(tag_id=tag.pk)
    tag.refresh_from_db()
    group.refresh_from_db()
    assert tag.sync_status == SyncStatus.SYNCED and tag.wecom_tag_id.startswith("et")
    assert group.wecom_group_id and fake_wecom.corp_tags[0]["tag"][0]["name"] == "高意向"


def test_limits_give_clear_errors(group, monkeypatch):
    with pytest.raises(ApplicationError, match="at most 30"):
        services.tag_create(group=group, name="长" * 31)
    monkeypatch.setattr(services, "WECOM_CORP_TAG_LIMIT", 1)
    services.tag_create(group=group, name="一", sync_to_wecom=True)
    with pytest.raises(ApplicationError, match="at most 1 corp tags"):
        services.tag_create(group=group, name="二", sync_to_wecom=True)
    assert services.tag_create(group=group, name="二").sync_status == SyncStatus.LOCAL  # ours alone is fine


def test_permanent_refusal_is_recorded_transient_is_raised(group, fake_wecom):
    tag = Tag.objects.create(group=group, name="别的应用", sync_to_wecom=True, wecom_tag_id="etOther")
    fake_wecom.fail_next("edit_corp_tag", WeComError(301002, "no right", permanent=True))
    sync.tag_push_to_wecom(tag_id=tag.pk)
    tag.refresh_from_db()
    assert tag.sync_status == SyncStatus.ERROR and "another app" in tag.sync_error
    fake_wecom.fail_next("edit_corp_tag", WeComTransientError(-1, "busy"))
    with pytest.raises(WeComTransientError):
        sync.tag_push_to_wecom(tag_id=tag.pk)


def test_pull_and_callbacks_create_update_shuffle_delete(corp, fake_wecom):
    fake_wecom.corp_tags = [{"group_id": "etG1", "group_name": "客户等级", "order": 1,
                             "tag": [{"id": "etT1", "name": "金卡", "order": 2}, {"id": "etT2", "name": "银卡", "order": 1}]}]
    assert sync.corp_tags_pull(corp=corp) == 2
    gold = Tag.objects.get(wecom_tag_id="etT1")
    assert gold.sync_status == SyncStatus.SYNCED and gold.group.name == "客户等级"
    fake_wecom.corp_tags[0]["tag"][0].update(name="黑金卡", order=5)
    sync.corp_tag_changed(corp=corp, change_type="update", tag_type="tag", wecom_id="etT1")
    gold.refresh_from_db()
    assert (gold.name, gold.order) == ("黑金卡", 5)
    fake_wecom.corp_tags[0]["tag"][1]["order"] = 9
    sync.corp_tag_changed(corp=corp, change_type="shuffle", tag_type="", wecom_id="etG1")
    assert Tag.objects.get(wecom_tag_id="etT2").order == 9
    c = ContactFactory(corp=corp)
    services.tags_apply(contact_ids=[c.pk], tag_ids=[gold.pk], source="manual", push_to_wecom=False)
    sync.corp_tag_changed(corp=corp, change_type="delete", tag_type="tag", wecom_id="etT1")
    gold.refresh_from_db()
    assert gold.sync_status == SyncStatus.REMOVED and not gold.wecom_tag_id
    assert ContactTag.objects.filter(contact=c, tag=gold).exists()  # the local assignment is never lost


def test_mark_tag_pushes_our_synced_tags_and_survives_failure(corp, staff_a, group, fake_wecom):
    c = ContactFactory(corp=corp)
    FollowRelationFactory(contact=c, staff=staff_a, wecom_tags=[{"tag_id": "etOld", "type": 1}])
    synced = Tag.objects.create(group=group, name="同步", sync_to_wecom=True, wecom_tag_id="etNew")
    Tag.objects.create(group=group, name="旧", sync_to_wecom=True, wecom_tag_id="etOld")
    services.tags_apply(contact_ids=[c.pk], tag_ids=[synced.pk], source="manual", push_to_wecom=False)
    fake_wecom.fail_next("mark_tag", WeComTransientError(-1, "busy"))
    with pytest.raises(WeComTransientError):
        sync.contact_wecom_tags_push(contact_id=c.pk)
    assert ContactTag.objects.filter(contact=c, tag=synced).exists()
    assert sync.contact_wecom_tags_push(contact_id=c.pk) == 1
    assert fake_wecom.marks == [(staff_a.userid, c.external_userid, ["etNew"], ["etOld"])]
    assert sync.contact_wecom_tags_push(contact_id=c.pk) == 0  # in step: nothing more to send


def test_tags_read_back_from_the_follow_user(corp, staff_a, group, fake_wecom):
    c = ContactFactory(corp=corp)
    relation = FollowRelationFactory(contact=c, staff=staff_a, wecom_tags=[{"tag_id": "etA", "type": 1},
                                                                          {"tag_id": "personal", "type": 2}])
    a = Tag.objects.create(group=group, name="A", sync_to_wecom=True, wecom_tag_id="etA")
    manual = Tag.objects.create(group=group, name="M", sync_to_wecom=True, wecom_tag_id="etM")
    services.tags_apply(contact_ids=[c.pk], tag_ids=[manual.pk], source="manual", push_to_wecom=False)
    assert sync.contact_wecom_tags_read(contact=c) == {"added": 1, "removed": 0}
    assert ContactTag.objects.get(contact=c, tag=a).source == "wecom"
    relation.wecom_tags = []
    relation.save()
    assert sync.contact_wecom_tags_read(contact=c) == {"added": 0, "removed": 1}
    assert ContactTag.objects.filter(contact=c, tag=manual).exists()  # only wecom-sourced tags leave
