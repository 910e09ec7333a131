"""The operator pages: who may open them, what each role sees, htmx partials, keyset pages, language."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from contacts.models import GroupChat
from tests.factories import ContactFactory, FollowRelationFactory, GroupChatFactory, GroupMemberFactory
from web.pagination import PAGE_SIZE

pytestmark = pytest.mark.django_db

PERSONAS = ["admin_user", "operator_user", "guide_a"]


def page_urls(world) -> dict[str, str]:
    """Every operator page, with objects guide_a may see."""
    return {
        "dashboard": reverse("web:dashboard"),
        "contact_list": reverse("web:contact_list"),
        "contact_detail": reverse("web:contact_detail", args=[world.mine.pk]),
        "group_list": reverse("web:group_list"),
        "group_detail": reverse("web:group_detail", args=[world.group.pk]),
        "tags": reverse("tagging:board"),
        "livecodes": reverse("livecodes:list"),
        "journeys": reverse("web:journeys"),
        "broadcasts": reverse("web:broadcasts"),
    }


def contact_ids_on(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'href="/contacts/(\d+)/"', response.content.decode())]


# --- access ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", ["dashboard", "contact_list", "contact_detail", "group_list", "group_detail", "tags",
                                  "livecodes", "journeys", "broadcasts"])
def test_anonymous_is_sent_to_login(world, page):
    url = page_urls(world)[page]
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.parametrize("persona", PERSONAS)
def test_every_page_opens_for_every_role(world, request, client_for, persona):
    client = client_for(request.getfixturevalue(persona))
    for page, url in page_urls(world).items():
        response = client.get(url)
        assert response.status_code == 200, page
        html = response.content.decode()
        # the CSP allows neither inline scripts nor inline styles
        assert "<script>" not in html and not re.search(r"<script(?![^>]*\bsrc=)", html), page
        assert " style=" not in html, page


def test_login_page_renders_and_logs_in(world, admin_user):
    client = Client()
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert "登录" in response.content.decode()
    response = client.post(reverse("login"), {"username": "alice", "password": "pw-123456"})
    assert response.status_code == 302
    assert response["Location"] == reverse("web:dashboard")


def test_logout_is_a_post_form(world, client_for, operator_user):
    html = client_for(operator_user).get(reverse("web:dashboard")).content.decode()
    assert re.search(rf'<form action="{reverse("logout")}" method="post">', html)


# --- what a guide sees ----------------------------------------------------------------------------------------------
def test_guide_lists_only_the_customers_they_follow(world, client_for, guide_a):
    ids = contact_ids_on(client_for(guide_a).get(reverse("web:contact_list")))
    assert sorted(ids) == sorted([world.mine.pk, world.shared.pk])


def test_operator_lists_every_contact(world, client_for, operator_user):
    ids = contact_ids_on(client_for(operator_user).get(reverse("web:contact_list")))
    assert sorted(ids) == sorted([world.mine.pk, world.theirs.pk, world.shared.pk, world.gone.pk])


def test_guide_gets_404_for_a_contact_they_do_not_follow(world, client_for, guide_a):
    client = client_for(guide_a)
    assert client.get(reverse("web:contact_detail", args=[world.theirs.pk])).status_code == 404
    assert client.get(reverse("web:contact_detail", args=[world.gone.pk])).status_code == 404  # relation ended
    assert client.get(reverse("web:contact_detail", args=[world.mine.pk])).status_code == 200


def test_guide_cannot_search_their_way_to_other_customers(world, client_for, guide_a):
    client = client_for(guide_a)
    for query in ["乙的客户", world.theirs.external_userid, "乙的备注"]:
        assert contact_ids_on(client.get(reverse("web:contact_list"), {"q": query})) == []


def test_phone_numbers_are_masked_for_guides_only(world, client_for, guide_a, operator_user):
    url = reverse("web:contact_detail", args=[world.mine.pk])
    guide_html = client_for(guide_a).get(url).content.decode()
    assert "138****5678" in guide_html
    assert "13812345678" not in guide_html
    operator_html = client_for(operator_user).get(url).content.decode()
    assert "13812345678" in operator_html


def test_contact_detail_shows_relations_groups_and_timeline_in_words(world, client_for, operator_user):
    html = client_for(operator_user).get(reverse("web:contact_detail", args=[world.mine.pk])).content.decode()
    assert "老客户VIP" in html
    assert "poster_spring" in html
    assert "扫描二维码" in html  # add_way 1
    assert "甲的群" in html and "扫描群二维码" in html  # group, join scene 3
    assert "添加了员工" in html  # the "added" event


def test_ended_relation_says_who_deleted_it(world, client_for, operator_user):
    html = client_for(operator_user).get(reverse("web:contact_detail", args=[world.gone.pk])).content.decode()
    assert "已结束" in html
    assert "客户于" in html and "删除了员工" in html


def test_group_detail_links_only_members_the_user_may_see(world, client_for, guide_a, operator_user):
    url = reverse("web:group_detail", args=[world.group.pk])
    mine_link = f'href="{reverse("web:contact_detail", args=[world.mine.pk])}"'
    theirs_link = f'href="{reverse("web:contact_detail", args=[world.theirs.pk])}"'
    guide_html = client_for(guide_a).get(url).content.decode()
    assert mine_link in guide_html
    assert theirs_link not in guide_html
    assert "乙的客户" in guide_html  # a member of the guide's own group is shown by name, unlinked
    operator_html = client_for(operator_user).get(url).content.decode()
    assert mine_link in operator_html and theirs_link in operator_html


def test_group_detail_shows_growth_and_members_who_left(world, client_for, operator_user):
    from scrm.clock import now

    world.group.members.filter(contact=world.theirs).update(left_at=now(), quit_scene=1)
    client = client_for(operator_user)
    url = reverse("web:group_detail", args=[world.group.pk])
    html = client.get(url).content.decode()
    assert "乙的客户" not in html
    assert "bar bar-joined bar-h20" in html  # the busiest day is the full height
    html = client.get(url, {"left": "on"}).content.decode()
    assert "乙的客户" in html and "被群主或管理员移出" in html


def test_guide_does_not_see_other_guides_groups(world, client_for, guide_b):
    client = client_for(guide_b)
    assert client.get(reverse("web:group_detail", args=[world.group.pk])).status_code == 404
    assert "甲的群" not in client.get(reverse("web:group_list")).content.decode()


def test_dashboard_counts_are_scoped_for_guides(world, client_for, guide_a, operator_user):
    guide = client_for(guide_a).get(reverse("web:dashboard")).context["summary"]
    assert (guide.customers, guide.new_week, guide.lost_week, guide.groups) == (2, 1, 1, 1)
    assert {e.contact_id for e in guide.events} <= {world.mine.pk, world.shared.pk}
    operator = client_for(operator_user).get(reverse("web:dashboard")).context["summary"]
    assert (operator.customers, operator.new_week, operator.lost_week, operator.lost_by_customer_week) == (3, 2, 1, 1)
    assert world.theirs.pk in {e.contact_id for e in operator.events}


def test_dashboard_explains_an_empty_corp(db, client_for, operator_user):
    html = client_for(operator_user).get(reverse("web:dashboard")).content.decode()
    assert "还没有客户" in html and "暂无动态" in html


# --- filters ----------------------------------------------------------------------------------------------------------
def test_contact_search_matches_name_remark_and_external_userid(world, client_for, operator_user):
    client = client_for(operator_user)
    url = reverse("web:contact_list")
    assert contact_ids_on(client.get(url, {"q": "甲的"})) == [world.mine.pk]
    assert contact_ids_on(client.get(url, {"q": "VIP"})) == [world.mine.pk]
    assert contact_ids_on(client.get(url, {"q": world.theirs.external_userid})) == [world.theirs.pk]
    assert "没有符合筛选条件的客户" in client.get(url, {"q": "nobody"}).content.decode()


def test_contact_filters_by_staff_and_customers_only(world, client_for, operator_user, staff_b):
    client = client_for(operator_user)
    url = reverse("web:contact_list")
    assert sorted(contact_ids_on(client.get(url, {"staff": staff_b.userid}))) == sorted(
        [world.theirs.pk, world.shared.pk])
    assert world.gone.pk not in contact_ids_on(client.get(url, {"customers_only": "on"}))
    assert len(contact_ids_on(client.get(url, {"after": "not-a-number"}))) == 4  # invalid cursor ignored


def test_guide_cannot_filter_by_another_staff_member(world, client_for, guide_a, staff_b):
    response = client_for(guide_a).get(reverse("web:contact_list"), {"staff": staff_b.userid})
    assert sorted(contact_ids_on(response)) == sorted([world.mine.pk, world.shared.pk])  # the filter is dropped


def test_group_list_search_and_status(world, client_for, operator_user, corp):
    GroupChatFactory(corp=corp, name="已解散的群", status=GroupChat.Status.DISMISSED)
    client = client_for(operator_user)
    url = reverse("web:group_list")
    assert "甲的群" in client.get(url, {"q": "甲"}).content.decode()
    html = client.get(url, {"status": "dismissed"}).content.decode()
    assert "已解散的群" in html and "甲的群" not in html


# --- htmx ---------------------------------------------------------------------------------------------------------------
def test_htmx_request_gets_only_the_rows(world, client_for, operator_user):
    client = client_for(operator_user)
    url = reverse("web:contact_list")
    partial = client.get(url, {"q": "甲的"}, headers={"HX-Request": "true"})
    assert [t.name for t in partial.templates][0] == "web/partials/_contact_rows.html"
    assert "<html" not in partial.content.decode()
    assert contact_ids_on(partial) == [world.mine.pk]
    assert "HX-Request" in partial["Vary"]

    full = client.get(url, {"q": "甲的"})
    assert full.templates[0].name == "web/contact_list.html"
    assert "<html" in full.content.decode()
    assert 'hx-trigger="input changed delay:300ms' in full.content.decode()


@pytest.mark.parametrize("header", ["HX-Boosted", "HX-History-Restore-Request"])
def test_boosted_and_history_restore_requests_get_the_full_page(world, client_for, operator_user, header):
    response = client_for(operator_user).get(reverse("web:contact_list"),
                                             headers={"HX-Request": "true", header: "true"})
    assert response.templates[0].name == "web/contact_list.html"


def test_group_list_htmx_partial(world, client_for, operator_user):
    response = client_for(operator_user).get(reverse("web:group_list"), headers={"HX-Request": "true"})
    assert response.templates[0].name == "web/partials/_group_rows.html"


# --- keyset pagination --------------------------------------------------------------------------------------------------
@pytest.fixture
def many_contacts(corp, staff_a, staff_b):
    contacts = ContactFactory.create_batch(PAGE_SIZE * 2 + 20, corp=corp)
    for contact in contacts:
        FollowRelationFactory(contact=contact, staff=staff_a)
    group = GroupChatFactory(corp=corp)
    for contact in contacts[-30:]:  # the newest: on the first page
        FollowRelationFactory(contact=contact, staff=staff_b)
        GroupMemberFactory(chat=group, contact=contact)
    return contacts


def test_keyset_pages_do_not_overlap_and_cursors_go_both_ways(many_contacts, client_for, operator_user):
    client = client_for(operator_user)
    url = reverse("web:contact_list")
    with CaptureQueriesContext(connection) as queries:
        first = client.get(url)
    assert not any("OFFSET" in q["sql"].upper() for q in queries.captured_queries)

    page1 = first.context["page"]
    ids1 = contact_ids_on(first)
    assert len(ids1) == PAGE_SIZE and ids1 == sorted(ids1, reverse=True)
    assert page1.is_first and page1.prev_before is None

    second = client.get(url, {"after": page1.next_after})
    ids2 = contact_ids_on(second)
    assert len(ids2) == PAGE_SIZE and max(ids2) < min(ids1)

    third = client.get(url, {"after": second.context["page"].next_after})
    ids3 = contact_ids_on(third)
    assert len(ids3) == 20 and max(ids3) < min(ids2)
    assert third.context["page"].next_after is None
    assert sorted(ids1 + ids2 + ids3) == sorted(c.pk for c in many_contacts)

    back = client.get(url, {"before": second.context["page"].prev_before})
    assert contact_ids_on(back) == ids1
    assert back.context["page"].is_first
    back2 = client.get(url, {"before": third.context["page"].prev_before})
    assert contact_ids_on(back2) == ids2


def test_pager_links_keep_the_filters(many_contacts, client_for, operator_user, staff_a):
    html = client_for(operator_user).get(reverse("web:contact_list"),
                                         {"staff": staff_a.userid}).content.decode()
    assert re.search(r'href="\?staff=guide_a&amp;after=\d+"', html)


def test_list_pages_run_a_constant_number_of_queries(many_contacts, client_for, operator_user, guide_a,
                                                     django_assert_max_num_queries):
    for user in (operator_user, guide_a):
        client = client_for(user)
        client.get(reverse("web:dashboard"))  # warm the session
        # session, user, (the guide's staff member,) staff choices, tag choices, one page of contacts, relations
        with django_assert_max_num_queries(7):
            response = client.get(reverse("web:contact_list"))
        assert len(contact_ids_on(response)) == PAGE_SIZE
        assert "<td class=\"num\">1</td>" in response.content.decode()  # group counts are annotated
        with django_assert_max_num_queries(4):
            client.get(reverse("web:group_list"))
        with django_assert_max_num_queries(9):
            client.get(reverse("web:dashboard"))


def test_detail_pages_run_a_constant_number_of_queries(many_contacts, client_for, operator_user,
                                                       django_assert_max_num_queries):
    client = client_for(operator_user)
    group = many_contacts[-1].group_memberships.get().chat
    with django_assert_max_num_queries(7):
        client.get(reverse("web:group_detail", args=[group.pk]))
    # session, user, contact, relations, groups, events, which groups may be linked
    with django_assert_max_num_queries(7):
        client.get(reverse("web:contact_detail", args=[many_contacts[-1].pk]))


# --- language ------------------------------------------------------------------------------------------------------------
def test_pages_are_chinese_by_default_and_switch_to_english(world, client_for, operator_user):
    client = client_for(operator_user)
    html = client.get(reverse("web:dashboard")).content.decode()
    assert '<html lang="zh-hans">' in html and "仪表盘" in html and "客户群" in html

    response = client.post(reverse("set_language"), {"language": "en", "next": reverse("web:contact_list")})
    assert response.status_code == 302 and response["Location"] == reverse("web:contact_list")
    html = client.get(reverse("web:dashboard")).content.decode()
    assert '<html lang="en">' in html
    assert "Dashboard" in html and "Broadcasts" in html and "Latest events" in html
    assert "仪表盘" not in html


def test_journeys_and_broadcasts_are_real_pages(world, client_for, admin_user, operator_user):
    admin_html = client_for(admin_user).get(reverse("web:journeys")).content.decode()
    assert "当前版本尚未提供此模块" not in admin_html
    assert reverse("admin:journeys_journey_changelist") in admin_html
    operator_html = client_for(operator_user).get(reverse("web:broadcasts")).content.decode()
    assert 'name="template"' in operator_html


# --- time zone ------------------------------------------------------------------------------------------------------------
def test_times_are_shown_in_the_corp_time_zone(world, client_for, operator_user, corp):
    from datetime import UTC, datetime

    from contacts import services

    services.record_event(corp=corp, kind="edited", occurred_at=datetime(2026, 1, 1, 16, 30, tzinfo=UTC),
                          contact=world.mine)
    html = client_for(operator_user).get(reverse("web:contact_detail", args=[world.mine.pk])).content.decode()
    assert "2026-01-02 00:30" in html  # Asia/Shanghai is UTC+8


def test_today_and_the_last_7_days_are_corp_calendar_days(db, client_for, operator_user, corp, staff_a):
    from datetime import UTC, datetime

    import time_machine

    from contacts import services

    def added(when: datetime) -> None:
        contact = ContactFactory(corp=corp)
        services.record_event(corp=corp, kind="added", occurred_at=when, contact=contact, staff=staff_a)

    added(datetime(2026, 3, 9, 16, 10, tzinfo=UTC))  # 3-10 00:10 in Shanghai: today
    added(datetime(2026, 3, 9, 15, 50, tzinfo=UTC))  # 3-09 23:50: yesterday
    added(datetime(2026, 3, 3, 16, 0, tzinfo=UTC))  # 3-04 00:00: the first of the 7 days
    added(datetime(2026, 3, 3, 15, 59, tzinfo=UTC))  # 3-03 23:59: too old
    with time_machine.travel(datetime(2026, 3, 10, 2, 0, tzinfo=UTC), tick=False):  # 10:00 in Shanghai
        summary = client_for(operator_user).get(reverse("web:dashboard")).context["summary"]
    assert (summary.new_today, summary.new_week) == (1, 3)
