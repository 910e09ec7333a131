"""Assignments keep the tag index in step; rules add and remove only their own tags; expiry sweeps."""

from datetime import timedelta

from contacts import business
from contacts.models import ContactEvent
from contacts.services import record_event
from scrm.clock import now
from tagging import recompute, services
from tagging.models import ContactTag, ContactTagIndex, TagRule
from tests.factories import ContactFactory


def _index(contact):
    row = ContactTagIndex.objects.filter(contact=contact).first()
    return row.tag_ids if row else []


def test_apply_and_remove_keep_the_index_in_step(corp, tags_abc):
    a, b = tags_abc["A"], tags_abc["B"]
    c1, c2 = ContactFactory(corp=corp), ContactFactory(corp=corp)
    assert services.tags_apply(contact_ids=[c1.pk, c2.pk], tag_ids=[a.pk, b.pk], source="manual") == 4
    assert services.tags_apply(contact_ids=[c1.pk], tag_ids=[a.pk], source="import") == 0  # idempotent
    assert ContactTag.objects.get(contact=c1, tag=a).source == "manual"  # original provenance kept
    assert _index(c1) == sorted([a.pk, b.pk])
    assert services.tags_remove(contact_ids=[c1.pk], tag_ids=[a.pk], source="rule") == 0
    assert services.tags_remove(contact_ids=[c1.pk], tag_ids=[a.pk]) == 1
    assert _index(c1) == [b.pk]
    assert _index(c2) == sorted([a.pk, b.pk])


def test_expired_assignments_disappear(corp, tags_abc):
    c = ContactFactory(corp=corp)
    services.tags_apply(contact_ids=[c.pk], tag_ids=[tags_abc["A"].pk], source="manual",
                        expires_at=now() - timedelta(minutes=1))
    services.tags_apply(contact_ids=[c.pk], tag_ids=[tags_abc["B"].pk], source="manual",
                        expires_at=now() + timedelta(days=1))
    assert services.contact_tags_expire_due() == 1
    assert list(ContactTag.objects.filter(contact=c).values_list("tag_id", flat=True)) == [tags_abc["B"].pk]
    assert _index(c) == [tags_abc["B"].pk]


def test_merge_moves_assignments(corp, tags_abc):
    c1, c2 = ContactFactory(corp=corp), ContactFactory(corp=corp)
    services.tags_apply(contact_ids=[c1.pk, c2.pk], tag_ids=[tags_abc["A"].pk], source="manual")
    services.tags_apply(contact_ids=[c2.pk], tag_ids=[tags_abc["B"].pk], source="manual")
    assert services.tag_merge(source=tags_abc["A"], target=tags_abc["B"]) == 2
    assert _index(c1) == [tags_abc["B"].pk]
    assert ContactTag.objects.filter(tag=tags_abc["B"]).count() == 2


def test_rule_recompute_is_set_based_and_removes_only_its_own(corp, tags_abc, django_assert_max_num_queries):
    vip = tags_abc["A"]
    rich, poor, manual = (ContactFactory(corp=corp) for _ in range(3))
    business.orders_record(corp=corp, rows=[
        {"contact_id": rich.pk, "external_id": "o1", "amount": "800", "paid_at": now().isoformat()},
        {"contact_id": poor.pk, "external_id": "o2", "amount": "20", "paid_at": now().isoformat()},
    ], record_events=False)
    services.tags_apply(contact_ids=[manual.pk], tag_ids=[vip.pk], source="manual")
    rule = TagRule.objects.create(name="VIP", tag=vip, condition={"attr": "total_spent", "op": "gte", "value": 500})
    with django_assert_max_num_queries(35):  # no per-contact loop (join table, tag index, bitmap: a constant)
        assert recompute.tag_rule_recompute(rule_id=rule.pk) == 1
    assert set(ContactTag.objects.filter(tag=vip).values_list("contact_id", "source")) == {
        (rich.pk, "rule"), (manual.pk, "manual")}
    rule.condition = {"attr": "total_spent", "op": "gte", "value": 5000}
    rule.save()
    assert recompute.tag_rule_recompute(rule_id=rule.pk) == 0
    assert list(ContactTag.objects.filter(tag=vip).values_list("contact_id", flat=True)) == [manual.pk]
    assert _index(rich) == []


def test_an_order_event_evaluates_rules_for_that_contact(corp, tags_abc, django_capture_on_commit_callbacks):
    repeat = tags_abc["B"]
    TagRule.objects.create(name="复购", tag=repeat, condition={"attr": "order_count", "op": "gte", "value": 2})
    c = ContactFactory(corp=corp)
    for i in range(2):
        business.orders_record(corp=corp, rows=[{"contact_id": c.pk, "external_id": f"x{i}", "amount": 10,
                                                 "paid_at": now().isoformat()}])
    assert ContactEvent.objects.filter(contact=c, kind="ordered").count() == 2
    assert recompute.tag_rules_evaluate_for_contact(contact_id=c.pk) == 1
    assert ContactTag.objects.get(contact=c, tag=repeat).source == "rule"
    assert c.facts.order_count == 2 and c.facts.last_active_at is not None
    assert recompute.tag_rules_evaluate_for_contact(contact_id=c.pk) == 0  # same result however often


def test_event_fanout_enqueues_rule_evaluation(corp, tags_abc, django_capture_on_commit_callbacks, monkeypatch):
    from tagging import tasks

    TagRule.objects.create(name="进群", tag=tags_abc["C"],
                           condition={"event": "joined_group", "within_days": 7})
    sent = []
    monkeypatch.setattr(tasks.tag_rules_evaluate_for_contact, "delay", lambda cid: sent.append(cid))
    c = ContactFactory(corp=corp)
    with django_capture_on_commit_callbacks(execute=True):
        record_event(corp=corp, kind="joined_group", occurred_at=now(), contact=c)
        record_event(corp=corp, kind="left_group", occurred_at=now(), contact=c)
    assert sent == [c.pk]


def test_rule_validation_refuses_bad_conditions(tags_abc):
    import pytest

    from scrm.errors import ApplicationError

    with pytest.raises(ApplicationError) as info:
        recompute.tag_rule_create(name="x", tag=tags_abc["A"], condition={"and": [{"tag": 999999}]})
    assert info.value.extra == {"unknown_tag_ids": [999999]}
    with pytest.raises(ApplicationError, match="depend on the tag it sets"):
        recompute.tag_rule_create(name="x", tag=tags_abc["A"], condition={"tag": tags_abc["A"].pk})


def test_presets_install_rfm_and_repeat_buyer(corp):
    rules = recompute.tag_rule_presets_install(corp=corp, preset="rfm")
    assert len(rules) == 8 and rules[0].tag.name == "重要价值客户"
    assert recompute.tag_rule_presets_install(corp=corp, preset="rfm") == rules  # idempotent
    c = ContactFactory(corp=corp)
    business.orders_record(corp=corp, rows=[{"contact_id": c.pk, "external_id": "r1", "amount": 900,
                                             "paid_at": now().isoformat()}], record_events=False)
    assert recompute.tag_rules_recompute_all() == 8
    assert ContactTag.objects.filter(contact=c, tag__group__name="RFM 分层").count() == 1
