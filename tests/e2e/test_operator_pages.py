"""The operator pages in a real browser: login, dashboard, htmx search, contact page, language, guide scoping, CSP."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from contacts import services
from contacts.models import ContactEvent
from scrm.clock import now
from tests.factories import ContactFactory, FollowRelationFactory, GroupChatFactory, GroupMemberFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path("/tmp/scrm-e2e-contact-detail.png")


@pytest.fixture
def shop(transactional_db, corp, staff_a, staff_b, operator_user, guide_a):
    """Guide A's customers 王小明 and 李华, guide B's customer 赵敏, and one group with a month of history."""
    t = now()
    ming = ContactFactory(corp=corp, name="王小明", external_userid="wmE2eMing000000000000000000000001",
                          corp_name="明日科技", position="采购经理")
    FollowRelationFactory(contact=ming, staff=staff_a, remark="王总", remark_mobiles=["13812345678"], add_way=1,
                          state="poster_spring", added_at=t - timedelta(days=20),
                          description="春季海报扫码，关注新品")
    FollowRelationFactory(contact=ming, staff=staff_b, is_active=False, add_way=4, added_at=t - timedelta(days=12),
                          deleted_by_customer_at=t - timedelta(days=3))
    hua = ContactFactory(corp=corp, name="李华", external_userid="wmE2eHua0000000000000000000000001")
    FollowRelationFactory(contact=hua, staff=staff_a, added_at=t - timedelta(days=1))
    zhao = ContactFactory(corp=corp, name="赵敏", external_userid="wmE2eZhao000000000000000000000001")
    FollowRelationFactory(contact=zhao, staff=staff_b, added_at=t - timedelta(hours=5))

    group = GroupChatFactory(corp=corp, name="新品体验群", owner=staff_a, owner_userid=staff_a.userid,
                             member_count=3, notice="欢迎加入！每周五晚 8 点新品直播。", wecom_created_at=t - timedelta(days=40))
    GroupMemberFactory(chat=group, contact=ming, joined_at=t - timedelta(days=18), join_scene=3)
    GroupMemberFactory(chat=group, contact=hua, joined_at=t - timedelta(days=1), join_scene=2)
    GroupMemberFactory(chat=group, contact=zhao, joined_at=t - timedelta(days=4), join_scene=1,
                       left_at=t - timedelta(days=2), quit_scene=0)

    def event(kind, when, contact, **kwargs):
        services.record_event(corp=corp, kind=kind, occurred_at=when, contact=contact, **kwargs)

    event(ContactEvent.Kind.ADDED, t - timedelta(days=20), ming, staff=staff_a,
          data={"state": "poster_spring", "add_way": 1})
    event(ContactEvent.Kind.JOINED_GROUP, t - timedelta(days=18), ming, chat=group, data={"join_scene": 3})
    event(ContactEvent.Kind.ADDED, t - timedelta(days=12), ming, staff=staff_b, data={"add_way": 4})
    event(ContactEvent.Kind.EDITED, t - timedelta(days=6), ming, staff=staff_a)
    event(ContactEvent.Kind.DELETED_BY_CUSTOMER, t - timedelta(days=3), ming, staff=staff_b)
    event(ContactEvent.Kind.ADDED, t - timedelta(days=1), hua, staff=staff_a, data={"add_way": 1})
    event(ContactEvent.Kind.ADDED, t - timedelta(hours=5), zhao, staff=staff_b, data={"add_way": 2})
    return {"ming": ming, "hua": hua, "zhao": zhao, "group": group}


def row_names(page) -> list[str]:
    return page.locator("#contact-results tbody tr td:first-child a").all_inner_texts()


def test_operator_logs_in_searches_opens_a_contact_and_switches_to_english(shop, new_session):
    session = new_session()
    page = session.page

    session.login("olivia")
    assert page.url == session.base_url + "/"
    assert page.locator("h1").inner_text() == "仪表盘"
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.locator(".stat").first.inner_text().startswith("客户")

    response = session.goto("/contacts/")
    assert "script-src 'self'" in response.headers["content-security-policy"]  # the check below means something
    assert sorted(row_names(page)) == ["李华", "王小明", "赵敏"]

    page.evaluate("window.notReloaded = true")
    with page.expect_response(lambda r: "q=" in r.url and r.request.headers.get("hx-request") == "true") as hx:
        page.fill("input[name=q]", "王")
    assert hx.value.status == 200
    # Poll from Python: a string predicate would be eval'd in the page, which our CSP (rightly) forbids.
    expect(page.locator("#contact-results tbody tr")).to_have_count(1)
    assert row_names(page) == ["王小明"]
    assert page.evaluate("window.notReloaded") is True  # htmx swapped the rows; the page stayed
    assert "q=%E7%8E%8B" in page.url  # and the search is in the address bar

    with page.expect_navigation():
        page.click("#contact-results a:text('王小明')")
    assert page.locator("h1").inner_text() == "王小明"
    assert "13812345678" in page.content()  # an operator sees the full number
    assert page.locator(".badge-ended").count() == 1  # the relation the customer ended
    assert page.locator(".timeline-item").count() == 5
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    with page.expect_navigation():
        page.click(".lang-switch button[value=en]")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "王小明"  # back on the same page
    nav = page.locator("nav.nav").inner_text()
    for label in ["Dashboard", "Contacts", "Groups", "Tags", "Live codes", "Journeys", "Broadcasts"]:
        assert label in nav
    assert "Follow relations" in page.content() and "Timeline" in page.content()

    session.goto(f"/groups/{shop['group'].pk}/")
    assert page.locator(".chart-day").count() == 30
    assert page.locator(".bar-joined:not(.bar-h0)").count() == 3  # three days with a join in the last 30
    assert page.locator(".bar-left:not(.bar-h0)").count() == 1

    assert session.csp_violations() == []
    assert session.page_errors == []


def test_a_guide_sees_only_their_own_customers(shop, new_session):
    session = new_session()
    page = session.page
    session.login("gina")
    assert page.locator(".badge-role").inner_text() == "导购"

    session.goto("/contacts/")
    assert sorted(row_names(page)) == ["李华", "王小明"]

    with page.expect_response(lambda r: "q=" in r.url):
        page.fill("input[name=q]", "赵敏")
    page.wait_for_selector("#contact-results .empty")
    assert row_names(page) == []

    response = session.goto(f"/contacts/{shop['zhao'].pk}/")
    assert response.status == 404
    assert "页面不存在" in page.content()

    session.goto(f"/contacts/{shop['ming'].pk}/")
    assert "138****5678" in page.content() and "13812345678" not in page.content()

    session.goto(f"/groups/{shop['group'].pk}/?left=on")
    linked = page.locator("table a[href^='/contacts/']").all_inner_texts()
    assert sorted(linked) == ["李华", "王小明"]  # 赵敏 is listed, but not linked for this guide
    assert "赵敏" in page.content()

    assert session.csp_violations() == []
    assert session.page_errors == []


def test_pages_raise_no_csp_violations(shop, new_session):
    session = new_session()
    session.goto("/accounts/login/")
    session.login("olivia")
    for path in ["/", "/contacts/", f"/contacts/{shop['ming'].pk}/", "/groups/", f"/groups/{shop['group'].pk}/",
                 "/tags/", "/livecodes/", "/journeys/", "/broadcasts/"]:
        response = session.goto(path)
        assert response.status == 200, path
        assert re.search(r"<script src=\"/static/vendor/htmx/htmx\.min\.js\"", session.page.content())
        assert session.page.evaluate("typeof window.htmx") == "object", path  # the vendored htmx loaded
    assert session.csp_violations() == []
    assert session.page_errors == []
