"""The analytics pages through the Django test client: access, ranges, empty states, CSV, drill-down, RFM segments.

The numbers themselves are A1's (tests/analytics/test_metrics*.py); here a page must show them, link each one to
a list of exactly that many customers, and export the same figures as CSV.
"""

import csv
import io
import json
import re
from datetime import timedelta
from html import unescape

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from contacts import services
from contacts.business import contacts_rfm_score, orders_record
from contacts.models import ContactEvent
from journeys.models import Broadcast, MessageTemplate, OutboundMessage
from scrm.clock import now
from tagging.models import Segment
from tests.factories import ContactFactory, FollowRelationFactory

DASHBOARDS = ["growth", "funnel", "retention", "rfm", "ltv", "campaigns", "staff"]
GET_PAGES = ["overview", *DASHBOARDS]


@pytest.fixture
def shop(corp, staff_a, staff_b):
    """Five customers added over the last ten days: three through the poster code by staff A, two by staff B;
    one of B's deleted B again; two customers ordered (one twice) and got a broadcast a week ago. Rollups
    rebuilt as the beat task would."""
    t = now()
    contacts = []
    for i, (staff, state, days_ago) in enumerate([(staff_a, "poster", 9), (staff_a, "poster", 5),
                                                   (staff_a, "poster", 2), (staff_b, "", 8), (staff_b, "", 3)]):
        contact = ContactFactory(corp=corp, name=f"顾客{i}", first_added_at=t - timedelta(days=days_ago))
        lost = staff is staff_b and days_ago == 8
        FollowRelationFactory(contact=contact, staff=staff, state=state, added_at=t - timedelta(days=days_ago),
                              is_active=not lost,
                              deleted_by_customer_at=t - timedelta(days=1) if lost else None)
        services.record_event(corp=corp, kind=ContactEvent.Kind.ADDED, occurred_at=t - timedelta(days=days_ago),
                              contact=contact, staff=staff, data={"state": state} if state else {})
        if lost:
            services.record_event(corp=corp, kind=ContactEvent.Kind.DELETED_BY_CUSTOMER,
                                  occurred_at=t - timedelta(days=1), contact=contact, staff=staff)
        contacts.append(contact)
    orders_record(corp=corp, rows=[
        {"contact_id": contacts[0].pk, "external_id": "o-1", "amount": "120.00", "paid_at": t - timedelta(days=8)},
        {"contact_id": contacts[0].pk, "external_id": "o-2", "amount": "80.00", "paid_at": t - timedelta(days=4)},
        {"contact_id": contacts[3].pk, "external_id": "o-3", "amount": "300.00", "paid_at": t - timedelta(days=6)},
    ])
    contacts_rfm_score()
    broadcast = Broadcast.objects.create(corp=corp, name="春季上新", status=Broadcast.Status.DONE,
                                         template=MessageTemplate.objects.create(name="上新", text="新品到了"))
    for contact in (contacts[0], contacts[3]):
        OutboundMessage.objects.create(corp=corp, idempotency_key=f"b{contact.pk}", channel="single",
                                       priority="marketing", contact=contact,
                                       staff_id=contact.relations.get().staff_id, content={}, content_hash="h",
                                       broadcast=broadcast, status="sent", created_at=t - timedelta(days=7),
                                       sent_at=t - timedelta(days=7))
    call_command("analytics_rebuild", verbosity=0)
    return contacts


def url(name: str) -> str:
    return reverse(f"analytics:{name}")


def links_in(html: str, testid: str) -> list[tuple[str, str]]:
    """(href, text) of the drill-down links inside the element marked data-testid=testid."""
    start = html.index(f'data-testid="{testid}"')
    end = html.find("</table>", start) if "<table" in html[start - 200:start + 20] else html.find("</section>", start)
    return [(unescape(href), text) for href, text in
            re.findall(r'<a class="drill[^"]*" href="([^"]+)">([^<]+)</a>', html[start:end])]


# --- access --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*GET_PAGES, "customers"])
def test_guides_get_403_on_every_analytics_page(name, guide_a, client_for):
    response = client_for(guide_a).get(url(name), {"metric": "added"})
    assert response.status_code == 403


def test_guides_cannot_create_segments_and_do_not_see_the_nav_entry(guide_a, client_for):
    client = client_for(guide_a)
    assert client.post(url("rfm_segment"), {"r": 5, "f": 5, "m": 5}).status_code == 403
    assert Segment.objects.count() == 0
    assert f'href="{url("overview")}"' not in client.get("/").content.decode()


def test_anonymous_visitors_are_sent_to_the_login_page(db):
    response = Client().get(url("growth"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


# --- pages with data and empty -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", GET_PAGES)
def test_every_page_answers_operators_with_data(name, shop, operator_user, client_for):
    response = client_for(operator_user).get(url(name))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="empty-state"' not in html
    assert 'href="/analytics/growth/"' in html  # the tabs


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_dashboard_explains_itself_when_there_is_no_data(name, corp, operator_user, client_for):
    html = client_for(operator_user).get(url(name)).content.decode()
    assert 'data-testid="empty-state"' in html
    assert "还没有数据" in html  # zh-hans first: "No data yet: …" plus what produces the data
    assert "<canvas" not in html  # no empty axes


def test_growth_page_draws_its_charts_from_json_specs(shop, operator_user, client_for):
    html = client_for(operator_user).get(url("growth"), {"range": "30"}).content.decode()
    assert "本周期内没有客户加入或退出客户群" in html and 'data-chart="chart-groups"' not in html
    for chart in ("chart-new", "chart-net"):
        spec = json.loads(unescape(re.search(rf'<canvas data-chart="{chart}" data-spec="([^"]+)"', html).group(1)))
        assert spec["labels"][-1] == timezone.localdate().isoformat() and spec["datasets"]
    bars = json.loads(unescape(re.search(r'data-chart="chart-new" data-spec="([^"]+)"', html).group(1)))
    assert sum(sum(d["data"]) for d in bars["datasets"]) == 5
    for dataset in bars["datasets"]:  # one link per series; charts.js puts the clicked day in for {label}
        assert dataset["link"].startswith("/analytics/customers/?metric=added&start={label}&end={label}&dim=")
    assert "/static/vendor/chartjs/chart.umd.min.js" in html and "/static/analytics/js/charts.js" in html
    assert " style=" not in html


@pytest.mark.parametrize("by", ["source", "livecode", "staff"])
def test_growth_breakdowns(by, shop, operator_user, client_for):
    response = client_for(operator_user).get(url("growth"), {"by": by})
    assert response.status_code == 200
    assert 'data-testid="series-table"' in response.content.decode()


def test_the_page_shows_the_range_in_effect(shop, operator_user, client_for):
    today = timezone.localdate()
    html = client_for(operator_user).get(url("funnel"), {"range": "7"}).content.decode()
    assert f'name="start" value="{(today - timedelta(days=6)).isoformat()}"' in html
    assert f'name="end" value="{today.isoformat()}"' in html
    assert '<option value="7" selected>' in html


def test_a_custom_range_without_a_preset_is_taken_as_custom(shop, operator_user, client_for):
    start = (timezone.localdate() - timedelta(days=3)).isoformat()
    end = timezone.localdate().isoformat()
    response = client_for(operator_user).get(url("growth"), {"start": start, "end": end, "format": "csv"})
    assert response["Content-Disposition"] == f'attachment; filename="growth-source-{start}-{end}.csv"'


@pytest.mark.parametrize("params, message", [
    ({"range": "custom", "start": "2025-03-10", "end": "2025-03-01"}, "开始日期不能晚于结束日期"),
    ({"range": "custom", "start": "2025-03-10"}, "自定义范围需要开始和结束日期"),
    ({"range": "custom", "start": "2020-01-01", "end": "2025-01-01"}, "731"),
    ({"range": "custom", "start": "2025-13-01", "end": "2025-03-01"}, "开始"),
    ({"range": "14"}, "周期"),
    ({"by": "weather"}, "维度"),
])
def test_a_bad_range_is_a_form_error_not_a_500(params, message, shop, operator_user, client_for):
    response = client_for(operator_user).get(url("growth"), params)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="range-errors"' in html and message in html
    assert "<canvas" not in html and 'data-testid="csv-export"' not in html


def test_a_future_end_date_is_refused(shop, operator_user, client_for):
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    response = client_for(operator_user).get(url("ltv"), {"range": "custom", "start": "2025-01-01",
                                                          "end": tomorrow})
    assert "结束日期不能是将来的日期" in response.content.decode()


def test_an_htmx_range_change_swaps_only_the_panel(shop, operator_user, client_for):
    response = client_for(operator_user).get(url("staff"), {"range": "90"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert 'data-testid="staff-table"' in html
    assert "<html" not in html and "analytics-range" in html
    assert response["Vary"] and "HX-Request" in response["Vary"]


@pytest.mark.parametrize("show", ["still", "active"])
def test_retention_toggles_between_still_and_active(show, shop, operator_user, client_for):
    html = client_for(operator_user).get(url("retention"), {"show": show}).content.decode()
    assert re.search(rf'class="btn btn-primary" aria-current="true" data-testid="show-{show}"', html)
    assert re.search(r'class="num heat heat-\d+"', html)


# --- CSV -----------------------------------------------------------------------------------------------------------
def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")  # Excel needs the BOM to read UTF-8 Chinese
    return list(csv.reader(io.StringIO(body[1:])))


def test_growth_csv_export(shop, operator_user, client_for):
    today = timezone.localdate()
    response = client_for(operator_user).get(url("growth"), {"range": "7", "by": "staff", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    start = (today - timedelta(days=6)).isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="growth-staff-{start}-{today}.csv"'
    rows = csv_rows(response)
    assert rows[0][:4] == ["day", "added", "lost_by_customer", "lost_by_staff"]
    assert [r[0] for r in rows[1:]] == [(today - timedelta(days=6 - i)).isoformat() for i in range(7)]
    # within the last 7 days: 3 added (5, 3 and 2 days ago), 1 lost by the customer (yesterday)
    assert sum(int(r[1]) for r in rows[1:]) == 3
    assert sum(int(r[2]) for r in rows[1:]) == 1


@pytest.mark.parametrize("name", ["funnel", "retention", "rfm", "ltv", "campaigns", "staff"])
def test_every_dashboard_exports_csv(name, shop, operator_user, client_for):
    response = client_for(operator_user).get(url(name), {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="{name}-')
    assert len(csv_rows(response)[0]) > 1  # a header row


def test_an_invalid_form_exports_no_csv(shop, operator_user, client_for):
    response = client_for(operator_user).get(url("growth"), {"range": "custom", "format": "csv"})
    assert response["Content-Type"].startswith("text/html")


# --- drill-down ----------------------------------------------------------------------------------------------------
def drilldown_count(client, href: str) -> int:
    html = client.get(href).content.decode()
    return int(re.search(r'data-testid="drilldown-count">(\d+)', html).group(1))


def test_each_growth_total_links_to_a_list_of_that_many_customers(shop, operator_user, client_for):
    client = client_for(operator_user)
    html = client.get(url("growth"), {"range": "30"}).content.decode()
    links = links_in(html, "growth-totals")
    assert len(links) >= 2
    for href, text in links:
        assert drilldown_count(client, href) == int(text)
    added_href, added = links[0]
    assert int(added) == 5
    rows = client.get(added_href).content.decode()
    assert len(re.findall(r'href="/contacts/\d+/"', rows)) == 5 and "顾客0" in rows


def test_each_staff_number_links_to_a_list_of_that_many_customers(shop, operator_user, client_for):
    client = client_for(operator_user)
    links = links_in(client.get(url("staff")).content.decode(), "staff-table")
    assert {text for _href, text in links} >= {"3", "2", "1"}
    for href, text in links:
        if text.endswith("%"):
            continue
        assert drilldown_count(client, href) == int(text)


def test_each_funnel_number_links_to_a_list_of_that_many_customers(shop, operator_user, client_for):
    client = client_for(operator_user)
    links = links_in(client.get(url("funnel"), {"by": "channel"}).content.decode(), "funnel-table")
    assert links
    for href, text in links:
        assert drilldown_count(client, href) == int(text)


def test_drilldown_explains_itself_and_exports_csv(shop, operator_user, client_for):
    client = client_for(operator_user)
    today = timezone.localdate()
    query = {"metric": "added", "start": (today - timedelta(days=29)).isoformat(), "end": today.isoformat(),
             "dim": "staff", "key": str(shop[0].relations.get().staff_id)}
    html = client.get(url("customers"), query).content.decode()
    assert "<h1>新增客户</h1>" in html and 'data-testid="drilldown-count">3 ' in html
    staff = shop[0].relations.get().staff
    assert f"<dd>{staff.name}</dd>" in html  # the breakdown value by name, not its id

    response = client.get(url("customers"), {**query, "format": "csv"})
    assert response["Content-Disposition"].startswith('attachment; filename="customers-added-')
    rows = csv_rows(response)
    assert rows[0] == ["contact_id", "external_userid", "name", "first_added_at", "active_relations"]
    assert sorted(r[2] for r in rows[1:]) == ["顾客0", "顾客1", "顾客2"]


@pytest.mark.parametrize("query", [{}, {"metric": "nonsense"}, {"metric": "added", "start": "yesterday"},
                                   {"metric": "rfm", "r": "9", "f": "1", "m": "1"}])
def test_a_bad_drilldown_query_is_a_400_with_a_message(query, shop, operator_user, client_for):
    response = client_for(operator_user).get(url("customers"), query)
    assert response.status_code == 400
    assert 'data-testid="drilldown-error"' in response.content.decode()


# --- RFM -----------------------------------------------------------------------------------------------------------
def test_an_rfm_cell_becomes_a_segment(shop, operator_user, client_for):
    client = client_for(operator_user)
    html = client.get(url("rfm")).content.decode()
    cell = re.search(r'data-testid="rfm-(\d)(\d)(\d)">\s*<a class="drill strong" href="([^"]+)">(\d+)</a>', html)
    assert cell, "a non-empty RFM cell"
    r, f, m, href, count = cell.groups()
    assert drilldown_count(client, unescape(href)) == int(count)

    response = client.post(url("rfm_segment"), {"r": r, "f": f, "m": m})
    segment = Segment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('tagging:segments')}?segment={segment.pk}"


def test_a_bad_rfm_cell_is_refused_with_a_message(shop, operator_user, client_for):
    client = client_for(operator_user)
    response = client.post(url("rfm_segment"), {"r": "x"}, follow=True)
    assert response.redirect_chain[-1][0] == url("rfm")
    assert Segment.objects.count() == 0
    assert 'class="message message-error"' in response.content.decode()


def test_ltv_says_not_yet_instead_of_drawing_empty_axes(shop, operator_user, client_for):
    html = client_for(operator_user).get(url("ltv")).content.decode()
    assert 'data-testid="ltv-not-yet"' in html and 'data-chart="chart-ltv"' not in html
    assert html.count("尚无") >= 3  # LTV 30/90/365 of the total row: the customers are younger than 30 days
    links = links_in(html, "ltv-table")
    assert links and all(int(text) == drilldown_count(client_for(operator_user), href) for href, text in links)
