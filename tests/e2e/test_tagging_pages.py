"""Tag pages in a real browser: create and rename a tag on the board, watch the segment builder's live count,
bulk-tag ticked rows from the contact list."""

import json
import re

import pytest

from tagging import bulk, services
from tagging.models import BulkJob, ContactTag, Dimension, Tag, TagGroup
from tests.factories import ContactFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def group(corp):
    return TagGroup.objects.create(corp=corp, dimension=Dimension.BEHAVIOUR, name="互动")


def test_tag_board_create_and_rename(new_session, operator_user, group):
    s = new_session()
    s.login(operator_user.username)
    s.goto("/tags/")
    form = s.page.locator("form:has(input[name=action][value=tag_create])")
    form.locator("select[name=group]").select_option(str(group.pk))
    form.locator("input[name=name]").fill("常看直播")
    with s.page.expect_navigation():
        form.locator("button[type=submit]").click()
    tag = Tag.objects.get(group=group, name="常看直播")
    column = s.page.locator(f"section[data-dimension={Dimension.BEHAVIOUR}]")
    assert "常看直播" in column.inner_text()
    row = column.locator("li.tag-row", has_text="常看直播")
    row.locator("details.tag-edit summary").click()
    row.locator("form:has(input[value=tag_update]) input[name=name]").fill("直播常客")
    with s.page.expect_navigation():
        row.locator("form:has(input[value=tag_update]) button[type=submit]").click()
    tag.refresh_from_db()
    assert tag.name == "直播常客"
    assert "直播常客" in s.page.locator(f"section[data-dimension={Dimension.BEHAVIOUR}]").inner_text()
    assert not s.page_errors and not s.csp_violations()


def test_segment_builder_counts_live(new_session, operator_user, corp, group):
    a = Tag.objects.create(group=group, name="甲")
    b = Tag.objects.create(group=group, name="乙")
    people = [ContactFactory(corp=corp) for _ in range(5)]
    services.tags_apply(contact_ids=[p.pk for p in people[:3]], tag_ids=[a.pk], source="manual")
    services.tags_apply(contact_ids=[p.pk for p in people[2:]], tag_ids=[b.pk], source="manual")
    s = new_session()
    s.login(operator_user.username)
    s.goto("/tags/segments/")
    box = s.page.locator("textarea[name=expression]")
    box.fill(json.dumps({"tag": a.pk}))
    s.page.wait_for_selector("[data-segment-count='3']")
    box.fill(json.dumps({"and": [{"tag": a.pk}, {"tag": b.pk}]}))
    s.page.wait_for_selector("[data-segment-count='1']")
    box.fill(json.dumps({"and": [{"tag": a.pk}, {"nope": 1}]}))
    s.page.wait_for_selector("#segment-count .field-error")
    assert "and[1]" in s.page.inner_text("#segment-count")
    assert not s.page_errors and not s.csp_violations()


def test_bulk_tag_from_the_contact_list(new_session, operator_user, corp, group):
    vip = Tag.objects.create(group=group, name="重点跟进")
    people = [ContactFactory(corp=corp, name=f"客户{i}") for i in range(4)]
    s = new_session()
    s.login(operator_user.username)
    s.goto("/contacts/")
    for p in people[:2]:
        s.page.check(f"input[name=contact_ids][value='{p.pk}']")
    s.page.select_option("[data-testid=bulk-tag-select]", str(vip.pk))
    with s.page.expect_navigation():
        s.page.click("[data-testid=bulk-tag-add]")
    job = BulkJob.objects.get()
    assert re.search(rf"/tags/jobs/{job.pk}/$", s.page.url)
    assert bulk.bulk_job_run(job_id=job.pk) == "done"  # what the bulk-queue worker does
    assert set(ContactTag.objects.filter(tag=vip).values_list("contact_id", flat=True)) == {people[0].pk,
                                                                                             people[1].pk}
    # the list filtered by that tag now shows exactly those two
    s.goto(f"/contacts/?tag={vip.pk}")
    shown = {int(v) for v in s.page.locator("input[name=contact_ids]").evaluate_all("els => els.map(e => e.value)")}
    assert shown == {people[0].pk, people[1].pk}
    assert not s.page_errors and not s.csp_violations()
