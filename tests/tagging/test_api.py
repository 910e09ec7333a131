"""The tagging API: segment counts (scoped for guides), bad input → 400 with paths, orders one-or-list."""

import pytest

from tagging import services
from tests.factories import ContactFactory, FollowRelationFactory


@pytest.fixture
def tagged(corp, staff_a, staff_b, tags_abc):
    a, b, c = (tags_abc[n].pk for n in "ABC")
    people = [ContactFactory(corp=corp) for _ in range(5)]
    for person, tag_ids in zip(people, [[a, b], [a, b, c], [a], [b], []], strict=True):
        services.tags_apply(contact_ids=[person.pk], tag_ids=tag_ids, source="manual")
    FollowRelationFactory(contact=people[0], staff=staff_a)
    FollowRelationFactory(contact=people[1], staff=staff_b)
    return people, (a, b, c)


def test_segment_count(api_client_for, operator_user, guide_a, tagged):
    _, (a, b, c) = tagged
    api = api_client_for(operator_user)
    both = {"and": [{"tag": a}, {"tag": b}]}
    assert api.post("/api/segments/count/", {"expression": both}, format="json").json() == {"count": 2}
    either_not_c = {"and": [{"or": [{"tag": a}, {"tag": b}]}, {"not": {"tag": c}}]}
    assert api.post("/api/segments/count/", {"expression": either_not_c}, format="json").json() == {"count": 3}
    assert api.post("/api/segments/count/", {"expression": {"not": {"tag": a}}}, format="json").json() == {
        "count": 2}
    guide = api_client_for(guide_a)
    assert guide.post("/api/segments/count/", {"expression": both}, format="json").json() == {"count": 1}


def test_segment_members_stream_and_export(api_client_for, operator_user, guide_a, tagged):
    people, (a, _, _) = tagged
    api = api_client_for(operator_user)
    first = api.post("/api/segments/members/", {"expression": {"tag": a}, "limit": 2}, format="json").json()
    assert first["ids"] == [people[0].pk, people[1].pk] and first["next_after"] == people[1].pk
    rest = api.post("/api/segments/members/", {"expression": {"tag": a}, "after": first["next_after"]},
                    format="json").json()
    assert rest == {"ids": [people[2].pk], "next_after": None}
    segment = api.post("/api/segments/", {"name": "A", "expression": {"tag": a}}, format="json").json()
    body = b"".join(api_client_for(guide_a).get(f"/api/segments/{segment['id']}/export/").streaming_content)
    assert body.startswith("\ufeff".encode())  # Excel needs the BOM to read UTF-8 Chinese
    lines = body.decode("utf-8-sig").strip().splitlines()
    assert lines[0] == "id,external_userid,name,tags" and len(lines) == 2  # the guide sees only their own


@pytest.mark.parametrize(("expression", "status", "extra"), [
    ({"and": [{"tag": 1}, {"attr": "total_spent", "op": "gte", "value": "x"}]}, 400, {"path": "and[1].value"}),
    ({"or": [{"tag": 987654}]}, 400, {"unknown_tag_ids": [987654]}),
    ("not an object", 400, {"path": ""}),
])
def test_bad_expressions_are_400_with_the_path(api_client_for, operator_user, tags_abc, expression, status, extra):
    response = api_client_for(operator_user).post("/api/segments/count/", {"expression": expression}, format="json")
    assert response.status_code == status
    assert response.json()["extra"] == extra and response.json()["message"]


def test_orders_accept_one_object_or_a_list(api_client_for, operator_user, guide_a, corp):
    c = ContactFactory(corp=corp)
    api = api_client_for(operator_user)
    one = {"external_id": "A1", "external_userid": c.external_userid, "amount": "99.50",
           "paid_at": "2026-03-01T10:00:00+08:00"}
    assert api.post("/api/orders/", one, format="json").json() == {"created": 1, "updated": 0, "errors": []}
    many = [one | {"amount": "120"}, one | {"external_id": "A2"}, one | {"external_id": "A3",
                                                                         "external_userid": "wmNobody"}]
    body = api.post("/api/orders/", many, format="json").json()
    assert (body["created"], body["updated"]) == (1, 1) and body["errors"][0]["index"] == 2
    c.facts.refresh_from_db()
    assert c.facts.order_count == 2 and str(c.facts.total_spent) == "219.50"
    assert api_client_for(guide_a).post("/api/orders/", one, format="json").status_code == 403
    ent = {"external_id": "E1", "contact_id": c.pk, "kind": "coupon", "expires_at": "2026-04-01T00:00:00Z"}
    assert api.post("/api/entitlements/", [ent], format="json").json()["created"] == 1
    assert api.post("/api/entitlements/", ent | {"kind": "nope"}, format="json").status_code == 400


def test_tags_api_crud_and_contact_tags(api_client_for, operator_user, guide_a, guide_b, group, tagged):
    people, (a, _, _) = tagged
    api = api_client_for(operator_user)
    created = api.post("/api/tags/", {"group": group.pk, "name": "新标签"}, format="json")
    assert created.status_code == 201 and created.json()["sync_status"] == "local"
    dup = api.post("/api/tags/", {"group": group.pk, "name": "新标签"}, format="json")
    assert dup.status_code == 400 and "already exists" in dup.json()["message"]
    assert api_client_for(guide_a).post("/api/tags/", {"group": group.pk, "name": "x"}, format="json") \
        .status_code == 403
    listed = {t["id"]: t["count"] for t in api.get("/api/tags/").json()}
    assert listed[a] == 3
    guide = api_client_for(guide_a)
    assert guide.post(f"/api/contacts/{people[0].pk}/tags/", {"tag_ids": [created.json()["id"]]},
                      format="json").status_code == 201
    assert guide.post(f"/api/contacts/{people[1].pk}/tags/", {"tag_ids": [a]}, format="json").status_code == 404
    assert guide.post(f"/api/contacts/{people[0].pk}/tags/", {"tag_ids": [424242]}, format="json").json()[
        "extra"] == {"unknown_tag_ids": [424242]}
    rows = guide.get(f"/api/contacts/{people[0].pk}/tags/").json()
    assert {r["source"] for r in rows} == {"manual"} and any(r["set_by"] == "gina" for r in rows)


def test_rule_api_validates_and_counts(api_client_for, operator_user, tags_abc, tagged):
    api = api_client_for(operator_user)
    bad = api.post("/api/tag-rules/", {"name": "r", "tag": tags_abc["C"].pk,
                                       "condition": {"attr": "total_spent", "op": "gte"}}, format="json")
    assert bad.status_code == 400 and bad.json()["extra"]["path"] == "value"
    count = api.post("/api/tag-rules/validate/", {"condition": {"tag": tags_abc["A"].pk}}, format="json")
    assert count.json() == {"valid": True, "count": 3}
    presets = api.post("/api/tag-rules/presets/", {"preset": "repeat_buyer"}, format="json")
    assert presets.status_code == 201 and presets.json()[0]["name"] == "复购客户"
