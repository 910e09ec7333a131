"""The contact list filtered by a tag (guide-scoped, keyset-paged over the tag bitmap) and bulk tag/untag
from the list: ticked rows or every contact matching the filters."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from contacts import selectors as contact_selectors
from tagging import bulk, services
from tagging.models import BulkJob, ContactTag
from tagging.selectors import keyset_page_in, tag_members
from tests.factories import ContactFactory, FollowRelationFactory


def _client(user):
    client = Client()
    client.force_login(user)
    return client


def _ids(response) -> list[int]:
    return [int(i) for i in re.findall(r'href="/contacts/(\d+)/"', response.content.decode())]


@pytest.fixture
def people(corp, staff_a, tags_abc):
    people = [ContactFactory(corp=corp, name=f"客户{i}") for i in range(8)]
    for p in people[:3]:
        FollowRelationFactory(contact=p, staff=staff_a)
    services.tags_apply(contact_ids=[p.pk for p in people[::2]], tag_ids=[tags_abc["A"].pk], source="manual")
    return people


def test_list_filtered_by_a_tag_is_scoped_for_guides(people, tags_abc, operator_user, guide_a):
    a = tags_abc["A"].pk
    tagged = sorted((p.pk for p in people[::2]), reverse=True)
    response = _client(operator_user).get(reverse("web:contact_list"), {"tag": a})
    assert response.status_code == 200 and _ids(response) == tagged
    assert 'name="contact_ids"' in response.content.decode()  # operators may bulk tag
    guide_page = _client(guide_a).get(reverse("web:contact_list"), {"tag": a})
    assert _ids(guide_page) == sorted((people[0].pk, people[2].pk), reverse=True)
    assert 'name="contact_ids"' not in guide_page.content.decode()
    # combined with another filter, and an unknown tag is ignored with the form's error shown
    assert _ids(_client(operator_user).get(reverse("web:contact_list"), {"tag": a, "q": "客户4"})) == [people[4].pk]
    bad = _client(operator_user).get(reverse("web:contact_list"), {"tag": "x"})
    assert bad.status_code == 200 and len(_ids(bad)) == len(people)


def test_keyset_pages_over_a_bitmap_walk_both_ways(people, tags_abc, operator_user):
    members = tag_members(user=operator_user, tag_id=tags_abc["A"].pk)
    qs = contact_selectors.contact_list(user=operator_user)
    first = keyset_page_in(members, qs, size=3)
    ids = [c.pk for c in first.items]
    assert ids == sorted((p.pk for p in people[::2]), reverse=True)[:3] and first.is_first
    second = keyset_page_in(members, qs, after=first.next_after, size=3)
    assert [c.pk for c in second.items] == [people[0].pk] and second.next_after is None
    back = keyset_page_in(members, qs, before=second.prev_before, size=3)
    assert [c.pk for c in back.items] == ids
    # other filters shrink the page without losing the way on: rounds stop, the cursor continues
    narrow = keyset_page_in(members, qs.filter(pk=people[0].pk), size=1, max_rounds=1)  # looks at 2 ids
    assert narrow.items == [] and narrow.next_after == people[4].pk
    rest = keyset_page_in(members, qs.filter(pk=people[0].pk), after=narrow.next_after, size=1)
    assert [c.pk for c in rest.items] == [people[0].pk]


def _run_last_job():
    job = BulkJob.objects.latest("id")
    assert bulk.bulk_job_run(job_id=job.pk) == "done"
    job.refresh_from_db()
    return job


def test_bulk_tag_ticked_rows_and_all_matching(people, tags_abc, operator_user, settings, tmp_path):
    a, b = tags_abc["A"].pk, tags_abc["B"].pk
    client = _client(operator_user)
    url = reverse("web:contact_bulk_tag")
    response = client.post(url, {"action": "tag", "tag_id": b, "contact_ids": [people[1].pk, people[3].pk]})
    job = _run_last_job()
    assert response.status_code == 302 and response.url == reverse("tagging:job", args=[job.pk])
    assert set(ContactTag.objects.filter(tag_id=b).values_list("contact_id", flat=True)) == {people[1].pk,
                                                                                              people[3].pk}
    # every contact carrying A (the list's filter), not only the page
    client.post(url, {"action": "tag", "tag_id": b, "all_matching": "on", "tag": a})
    assert _run_last_job().total == 4
    assert ContactTag.objects.filter(tag_id=b).count() == 6
    client.post(url, {"action": "untag", "tag_id": b, "all_matching": "on", "q": "客户"})
    _run_last_job()
    assert not ContactTag.objects.filter(tag_id=b).exists()


def test_bulk_tag_refusals(people, tags_abc, operator_user, guide_a):
    url = reverse("web:contact_bulk_tag")
    client = _client(operator_user)
    nothing = client.post(url, {"action": "tag", "tag_id": tags_abc["A"].pk}, follow=True)
    assert "Tick some contacts" in nothing.content.decode() or "勾选" in nothing.content.decode()
    unknown = client.post(url, {"action": "tag", "tag_id": 999_999, "contact_ids": [people[0].pk]}, follow=True)
    assert "999999" in unknown.content.decode()
    assert not BulkJob.objects.exists()
    assert _client(guide_a).post(url, {"action": "tag", "tag_id": tags_abc["A"].pk,
                                       "contact_ids": [people[0].pk]}).status_code == 403


def test_tag_contacts_api_pages_and_scopes(people, tags_abc, api_client_for, operator_user, guide_a):
    a = tags_abc["A"].pk
    api = api_client_for(operator_user)
    first = api.get(f"/api/tags/{a}/contacts/", {"limit": 3}).json()
    tagged = sorted((p.pk for p in people[::2]), reverse=True)
    assert [c["id"] for c in first["results"]] == tagged[:3]
    rest = api.get(f"/api/tags/{a}/contacts/", {"limit": 3, "after": first["next_after"]}).json()
    assert [c["id"] for c in rest["results"]] == tagged[3:] and rest["next_after"] is None
    mine = api_client_for(guide_a).get(f"/api/tags/{a}/contacts/").json()
    assert [c["id"] for c in mine["results"]] == [people[2].pk, people[0].pk]
    assert api.get("/api/tags/999999/contacts/").status_code == 404
    assert api.get(f"/api/tags/{a}/contacts/", {"limit": 0}).status_code == 400
