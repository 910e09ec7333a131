"""The rule language: parsing errors with paths, and evaluate() agreeing with the SQL compiler."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from contacts.models import ContactEvent, ContactFacts
from tagging import rules
from tagging.selectors import contact_facts_get
from tagging.services import tags_apply
from tests.factories import ContactFactory, FollowRelationFactory

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(("data", "path", "fragment"), [
    ([], "", "expected a condition object"),
    ({"and": []}, "and", "non-empty list"),
    ({"and": [{"tag": 1}, {"attr": "total_spent", "op": "like", "value": 1}]}, "and[1].op", "cannot be compared"),
    ({"or": [{"tag": 1}, {"not": {"attr": "nope", "op": "eq", "value": 1}}]}, "or[1].not.attr", "unknown field"),
    ({"attr": "total_spent", "op": "gte", "value": "lots"}, "value", "expected a number"),
    ({"attr": "last_active_at", "op": "within_days", "value": 0}, "value", "number of days"),
    ({"event": "teleported", "within_days": 7}, "event", "unknown event"),
    ({"tag": "vip"}, "tag", "numeric id"),
    ({"attr": "tags", "op": "in", "value": []}, "value", "non-empty list"),
    ({"tag": 1, "extra": 2}, "extra", "unexpected key"),
    ({"tag": 1, "negate": "yes"}, "negate", "true or false"),
])
def test_parse_errors_name_the_bad_node(data, path, fragment):
    with pytest.raises(rules.RuleError) as info:
        rules.parse_rule(data)
    assert info.value.path == path
    assert fragment in info.value.message


def test_too_deep_nesting_is_refused():
    data: dict = {"tag": 1}
    for _ in range(rules.MAX_DEPTH + 2):
        data = {"not": data}
    with pytest.raises(rules.RuleError, match="nested"):
        rules.parse_rule(data)


def _facts(**values):
    tags = frozenset(values.pop("tags", ()))
    events = tuple(values.pop("events", ()))
    channels = frozenset(values.pop("channels", ()))
    return rules.ContactFacts(now=NOW, values=values, tag_ids=tags, events=events, channels=channels)


@pytest.mark.parametrize(("data", "facts", "expected"), [
    ({"and": [{"tag": 1}, {"tag": 2}]}, _facts(tags={1, 2}), True),
    ({"and": [{"tag": 1}, {"tag": 2}]}, _facts(tags={1}), False),
    ({"and": [{"or": [{"tag": 1}, {"tag": 2}]}, {"not": {"tag": 3}}]}, _facts(tags={2, 3}), False),
    ({"attr": "total_spent", "op": "gte", "value": 500}, _facts(total_spent=Decimal("500.00")), True),
    ({"attr": "total_spent", "op": "gte", "value": 500, "negate": True}, _facts(), True),
    ({"attr": "last_purchase_at", "op": "within_days", "value": 30}, _facts(last_purchase_at=NOW - timedelta(days=3)),
     True),
    ({"attr": "last_purchase_at", "op": "within_days", "value": 30}, _facts(), False),
    ({"event": "joined_group", "within_days": 7}, _facts(events=[("joined_group", NOW - timedelta(days=8))]), False),
    ({"event": "joined_group", "within_days": 7, "op": "gte", "value": 2},
     _facts(events=[("joined_group", NOW - timedelta(days=1))] * 2), True),
    ({"attr": "city", "op": "in", "value": ["上海", "北京"]}, _facts(city="上海"), True),
    ({"attr": "channel", "op": "contains", "value": "poster"}, _facts(channels={"poster"}), True),
])
def test_evaluate(data, facts, expected):
    assert rules.evaluate(rules.parse_rule(data), facts) is expected


AGREEMENT = [
    {"and": [{"tag": "A"}, {"tag": "B"}]},
    {"and": [{"or": [{"tag": "A"}, {"tag": "B"}]}, {"not": {"tag": "C"}}]},
    {"attr": "tags", "op": "in", "value": ["A", "C"]},
    {"attr": "total_spent", "op": "gte", "value": 500},
    {"not": {"attr": "total_spent", "op": "gt", "value": 100}},
    {"attr": "order_count", "op": "in", "value": [0, 2]},
    {"attr": "last_purchase_at", "op": "within_days", "value": 10},
    {"not": {"attr": "last_active_at", "op": "within_days", "value": 30}},
    {"attr": "city", "op": "contains", "value": "海"},
    {"attr": "city", "op": "exists"},
    {"event": "joined_group", "within_days": 7},
    {"event": "joined_group", "within_days": 30, "op": "gte", "value": 2},
    {"attr": "channel", "op": "contains", "value": "poster"},
    {"and": [{"attr": "gender", "op": "eq", "value": 2}, {"attr": "tags", "op": "exists"}]},
]


@pytest.mark.parametrize("template", AGREEMENT)
def test_evaluate_and_to_sql_agree(template, corp, staff_a, tags_abc):
    ids = {name: tag.pk for name, tag in tags_abc.items()}

    def resolve(node):
        if isinstance(node, dict):
            return {k: (ids[v] if k == "tag" else [ids.get(x, x) if isinstance(x, str) and len(x) == 1 else x
                                                   for x in v] if k == "value" and isinstance(v, list) else resolve(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(n) for n in node]
        return node

    node = rules.parse_rule(resolve(template))
    at = datetime.now(UTC)
    people = []
    for i, (tag_names, spent, days_ago, city, joins, state) in enumerate([
        ("AB", 600, 3, "上海", 1, "poster"), ("A", 50, 40, "", 0, ""), ("BC", 150, None, "北京", 2, "poster"),
        ("", 0, None, "", 0, ""), ("C", 500, 9, "海口", 3, "ad"),
    ]):
        contact = ContactFactory(corp=corp, gender=2 if i % 2 else 1)
        if state:
            FollowRelationFactory(contact=contact, staff=staff_a, state=state)
        tags_apply(contact_ids=[contact.pk], tag_ids=[ids[n] for n in tag_names], source="manual")
        if spent or days_ago or city:
            last = at - timedelta(days=days_ago) if days_ago else None
            ContactFacts.objects.create(contact=contact, total_spent=spent, order_count=2 if spent > 100 else 0,
                                        last_purchase_at=last, last_active_at=last, city=city)
        for j in range(joins):
            ContactEvent.objects.create(corp=corp, contact=contact, kind="joined_group",
                                        occurred_at=at - timedelta(days=1 + j * 3))
        people.append(contact.pk)
    compiled = rules.to_sql(node, now=at)
    with connection.cursor() as cur:
        cur.execute("SELECT c.id FROM contacts_contact c LEFT JOIN tagging_contacttagindex ti ON ti.contact_id = c.id "
                    f"LEFT JOIN contacts_contactfacts f ON f.contact_id = c.id WHERE c.id = ANY(%s) AND {compiled.sql}",
                    [people, *compiled.params])
        by_sql = {r[0] for r in cur.fetchall()}
    by_eval = {pk for pk in people if rules.evaluate(node, contact_facts_get(contact_id=pk, at=at))}
    assert by_sql == by_eval
