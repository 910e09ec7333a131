"""Tag bitmaps stay equal to the join table: counts from bitmap algebra equal the naive SQL over ContactTag,
after every kind of tag write, for operators and guides, and after writers race on the same contacts."""

import random
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections

from contacts.models import FollowRelation
from scrm.clock import now
from tagging import bitmaps, recompute, segments, services
from tagging.models import ContactTag, Tag, TagBitmap, TagRule
from tests.factories import ContactFactory, FollowRelationFactory

EXPRESSIONS = [
    lambda a, b, c: {"tag": a},
    lambda a, b, c: {"and": [{"tag": a}, {"tag": b}]},
    lambda a, b, c: {"and": [{"or": [{"tag": a}, {"tag": b}]}, {"not": {"tag": c}}]},
    lambda a, b, c: {"or": [{"tag": a}, {"not": {"tag": b}}]},
    lambda a, b, c: {"not": {"or": [{"tag": a}, {"tag": c}]}},
    lambda a, b, c: {"and": [{"not": {"tag": a}}, {"not": {"tag": b}}]},
    lambda a, b, c: {"attr": "tags", "op": "in", "value": [a, c]},
    lambda a, b, c: {"attr": "tags", "op": "exists"},
    lambda a, b, c: {"and": [{"tag": a}, {"attr": "gender", "op": "eq", "value": 1}]},
]


def _naive(expression_fn, ids, staff=None) -> set[int]:
    """The truth, straight from ContactTag in Python (no index, no bitmap)."""
    a, b, c = ids
    expression = expression_fn(a, b, c)
    from tagging import rules

    node = rules.parse_rule(expression)
    have: dict[int, set[int]] = {}
    for contact_id, tag_id in ContactTag.objects.values_list("contact_id", "tag_id"):
        have.setdefault(contact_id, set()).add(tag_id)
    from contacts.models import Contact

    contacts = Contact.objects.values_list("pk", "gender")
    if staff is not None:
        mine = set(FollowRelation.objects.filter(staff=staff, is_active=True).values_list("contact_id", flat=True))
        contacts = [(pk, g) for pk, g in contacts if pk in mine]
    return {pk for pk, gender in contacts
            if rules.evaluate(node, rules.ContactFacts(now=now(), values={"gender": gender},
                                                       tag_ids=frozenset(have.get(pk, ()))))}


def _index_matches_join_table():
    from tagging.models import ContactTagIndex

    have: dict[int, list[int]] = {}
    for contact_id, tag_id in ContactTag.objects.order_by("tag_id").values_list("contact_id", "tag_id"):
        have.setdefault(contact_id, []).append(tag_id)
    index = {cid: tags for cid, tags in ContactTagIndex.objects.values_list("contact_id", "tag_ids") if tags}
    assert index == have


def _check_all(ids, operator_user, guide=None):
    _index_matches_join_table()
    for fn in EXPRESSIONS:
        want = _naive(fn, ids)
        assert segments.segment_count(user=operator_user, expression=fn(*ids)) == len(want), fn(*ids)
        assert list(segments.segment_member_ids(user=operator_user, expression=fn(*ids))) == sorted(want)
        if guide is not None:
            mine = _naive(fn, ids, staff=guide.staff)
            assert segments.segment_count(user=guide, expression=fn(*ids)) == len(mine), fn(*ids)


def _stored(tag) -> set[int]:
    row = TagBitmap.objects.filter(tag=tag).first()
    from pyroaring import BitMap

    return set(BitMap.deserialize(bytes(row.bitmap))) if row and row.bitmap else set()


def _truth(tag) -> set[int]:
    return set(ContactTag.objects.filter(tag=tag).values_list("contact_id", flat=True))


def test_bitmap_counts_equal_naive_sql_after_every_kind_of_write(corp, staff_a, tags_abc, operator_user, guide_a):
    rng = random.Random(7)
    a, b, c = (tags_abc[k] for k in "ABC")
    ids = (a.pk, b.pk, c.pk)
    people = [ContactFactory(corp=corp, gender=i % 3) for i in range(40)]
    for p in people[:25]:
        FollowRelationFactory(contact=p, staff=staff_a)
    for _ in range(12):
        chosen = rng.sample([p.pk for p in people], 8)
        tag_ids = rng.sample(ids, rng.randint(1, 3))
        if rng.random() < 0.65:
            services.tags_apply(contact_ids=chosen, tag_ids=tag_ids, source="manual")
        else:
            services.tags_remove(contact_ids=chosen, tag_ids=tag_ids)
        _check_all(ids, operator_user, guide_a)
    # a guide loses a customer: the trigger moves the staff version and the scope follows
    FollowRelation.objects.filter(contact=people[0], staff=staff_a).update(is_active=False)
    _check_all(ids, operator_user, guide_a)
    # expiry sweep, rule recompute, merge: all keep the bitmaps equal to the join table
    services.tags_apply(contact_ids=[people[30].pk], tag_ids=[c.pk], source="manual",
                        expires_at=now() - timedelta(minutes=1))
    services.contact_tags_expire_due()
    rule = TagRule.objects.create(name="女", tag=b, condition={"attr": "gender", "op": "eq", "value": 2})
    recompute.tag_rule_recompute(rule_id=rule.pk)
    _check_all(ids, operator_user, guide_a)
    extra = Tag.objects.create(group=a.group, name="合并源")
    services.tags_apply(contact_ids=[p.pk for p in people[:5]], tag_ids=[extra.pk], source="manual")
    services.tag_merge(source=extra, target=a)
    for tag in (a, b, c):
        assert _stored(tag) == _truth(tag)
    _check_all(ids, operator_user, guide_a)


def test_rebuild_command_repairs_a_drifted_bitmap(corp, tags_abc, operator_user):
    a = tags_abc["A"]
    people = [ContactFactory(corp=corp) for _ in range(5)]
    services.tags_apply(contact_ids=[p.pk for p in people], tag_ids=[a.pk], source="manual")
    ContactTag.objects.filter(contact=people[0]).delete()  # a write that bypassed the services
    assert segments.segment_count(user=operator_user, expression={"tag": a.pk}) == 5
    call_command("tag_index_rebuild", verbosity=0)
    assert _stored(a) == _truth(a)
    assert segments.segment_count(user=operator_user, expression={"tag": a.pk}) == 4


def test_tag_counts_for_guides_come_from_their_own_customers(corp, staff_a, tags_abc, operator_user, guide_a):
    from tagging import selectors

    a = tags_abc["A"]
    people = [ContactFactory(corp=corp) for _ in range(4)]
    FollowRelationFactory(contact=people[0], staff=staff_a)
    services.tags_apply(contact_ids=[p.pk for p in people], tag_ids=[a.pk], source="manual")
    assert selectors.tag_counts(user=operator_user)[a.pk] == 4
    assert selectors.tag_counts(user=guide_a) == {a.pk: 1}


@pytest.mark.django_db(transaction=True)
def test_racing_writers_leave_bitmaps_equal_to_the_join_table(corp, tags_abc, operator_user):
    a, b = tags_abc["A"], tags_abc["B"]
    people = [ContactFactory(corp=corp).pk for _ in range(30)]
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            start.wait()
            for _ in range(25):
                chosen = rng.sample(people, 6)
                tags = rng.sample([a.pk, b.pk], rng.randint(1, 2))
                if rng.random() < 0.6:
                    services.tags_apply(contact_ids=chosen, tag_ids=tags, source="manual")
                else:
                    services.tags_remove(contact_ids=chosen, tag_ids=tags)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _index_matches_join_table()
    bitmaps.cache_clear()
    for tag in (a, b):
        assert _stored(tag) == _truth(tag)
        assert segments.segment_count(user=operator_user, expression={"tag": tag.pk}) == len(_truth(tag))
    both = {"and": [{"tag": a.pk}, {"tag": b.pk}]}
    assert segments.segment_count(user=operator_user, expression=both) == len(_truth(a) & _truth(b))
    connection.close()
