"""Operator pages for tags: every role opens them, guides are scoped, forms call services, no inline styles."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from tagging import services
from tagging.models import Tag
from tests.factories import ContactFactory, FollowRelationFactory


def _client(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("persona", ["operator_user", "guide_a"])
def test_pages_open_and_follow_the_csp(request, persona, tags_abc):
    client = _client(request.getfixturevalue(persona))
    for name in ("board", "segments"):
        response = client.get(reverse(f"tagging:{name}"))
        assert response.status_code == 200
        html = response.content.decode()
        assert " style=" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert "标签A" in client.get(reverse("tagging:board")).content.decode()
    expected = 200 if persona == "operator_user" else 403
    assert client.get(reverse("tagging:rules")).status_code == expected
    assert client.get(reverse("tagging:imports")).status_code == expected


def test_board_actions_and_errors(operator_user, group):
    client = _client(operator_user)
    url = reverse("tagging:board_action")
    client.post(url, {"action": "tag_create", "group": group.pk, "name": "新客", "color": "#ff0000"})
    assert Tag.objects.get(name="新客").color == "#ff0000"
    response = client.post(url, {"action": "tag_create", "group": group.pk, "name": "长" * 31}, follow=True)
    assert "30" in response.content.decode()


def test_portrait_and_live_count_are_scoped(corp, staff_a, guide_a, operator_user, tags_abc):
    mine, other = ContactFactory(corp=corp), ContactFactory(corp=corp)
    FollowRelationFactory(contact=mine, staff=staff_a)
    services.tags_apply(contact_ids=[mine.pk, other.pk], tag_ids=[tags_abc["A"].pk], source="manual",
                        set_by=operator_user)
    guide = _client(guide_a)
    portrait = guide.get(reverse("tagging:portrait", args=[mine.pk])).content.decode()
    assert "标签A" in portrait and "olivia" in portrait
    assert guide.get(reverse("tagging:portrait", args=[other.pk])).status_code == 404
    count = guide.post(reverse("tagging:segment_count"), {"expression": f'{{"tag": {tags_abc["A"].pk}}}'})
    assert 'data-segment-count="1"' in count.content.decode()
    bad = guide.post(reverse("tagging:segment_count"), {"expression": '{"and": []}'}).content.decode()
    assert "and" in bad and "field-error" in bad
