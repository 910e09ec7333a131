"""The analytics pages in Chromium: Chart.js draws under the strict CSP, a click drills down, htmx swaps, English."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils.timezone import localdate
from playwright.sync_api import expect

from contacts import services
from contacts.business import contacts_rfm_score, orders_record
from contacts.models import ContactEvent
from scrm.clock import now
from tests.factories import ContactFactory, FollowRelationFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path("/tmp/scrm-e2e-analytics-growth.png")

# The canvas point of the first non-zero bar of a chart, and its value (read through Chart.js's own API).
FIRST_BAR = """(id) => {
  const chart = Object.values(window.Chart.instances).find((c) => c.canvas.dataset.chart === id);
  for (let d = 0; d < chart.data.datasets.length; d++) {
    const values = chart.data.datasets[d].data;
    for (let i = 0; i < values.length; i++) {
      if (values[i] > 0) {
        const bar = chart.getDatasetMeta(d).data[i];
        return {x: bar.x, y: (bar.y + bar.base) / 2, value: values[i]};
      }
    }
  }
  return null;
}"""
# How many pixels of a canvas something was drawn on.
INKED_PIXELS = """(id) => {
  const canvas = document.querySelector(`canvas[data-chart="${id}"]`);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let inked = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i]) { inked++; } }
  return inked;
}"""


@pytest.fixture
def shop(transactional_db, corp, staff_a, staff_b, operator_user):
    """Four customers added in the last week (three by staff A through the poster code, one by B), one lost."""
    t = now()
    for i, (staff, days_ago) in enumerate([(staff_a, 6), (staff_a, 4), (staff_a, 4), (staff_b, 2)]):
        contact = ContactFactory(corp=corp, name=f"顾客{i}", first_added_at=t - timedelta(days=days_ago))
        lost = i == 3
        FollowRelationFactory(contact=contact, staff=staff, state="poster" if staff is staff_a else "",
                              added_at=t - timedelta(days=days_ago), is_active=not lost,
                              deleted_by_customer_at=t - timedelta(days=1) if lost else None)
        services.record_event(corp=corp, kind=ContactEvent.Kind.ADDED, occurred_at=t - timedelta(days=days_ago),
                              contact=contact, staff=staff)
        if lost:
            services.record_event(corp=corp, kind=ContactEvent.Kind.DELETED_BY_CUSTOMER,
                                  occurred_at=t - timedelta(days=1), contact=contact, staff=staff)
    first = ContactFactory._meta.model.objects.get(name="顾客0")
    orders_record(corp=corp, rows=[
        {"contact_id": first.pk, "external_id": "e2e-1", "amount": "99.00", "paid_at": t - timedelta(days=5)},
        {"contact_id": first.pk, "external_id": "e2e-2", "amount": "199.00", "paid_at": t - timedelta(days=3)},
    ])
    contacts_rfm_score()
    call_command("analytics_rebuild", verbosity=0)


def drilldown_count(page) -> int:
    return int(re.match(r"\d+", page.get_by_test_id("drilldown-count").inner_text()).group(0))


def test_growth_chart_draws_under_the_csp_and_drills_down(shop, new_session):
    session = new_session()
    page = session.page
    session.login("olivia")

    response = session.goto("/analytics/growth/?range=30")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for chart in ("chart-new", "chart-net"):  # no group joined or left: a sentence instead of empty axes
        expect(page.locator(f'canvas[data-chart="{chart}"]')).to_have_attribute("data-drawn", "1")
    assert page.evaluate("Object.keys(window.Chart.instances).length") == 2
    assert page.evaluate(INKED_PIXELS, "chart-new") > 500  # axes, labels and bars, not a blank canvas
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # Clicking a bar opens the customers behind it.
    bar = page.evaluate(FIRST_BAR, "chart-new")
    assert bar is not None
    with page.expect_navigation():
        page.locator('canvas[data-chart="chart-new"]').click(position={"x": bar["x"], "y": bar["y"]})
    assert "/analytics/customers/?metric=added" in page.url
    assert drilldown_count(page) == bar["value"]
    assert page.locator("#contact-results tbody tr").count() == bar["value"]

    # Clicking a number of the totals does the same.
    session.goto("/analytics/growth/?range=30")
    total = page.get_by_test_id("growth-totals").locator("a.drill").first
    shown = int(total.inner_text())
    assert shown == 4
    with page.expect_navigation():
        total.click()
    assert page.locator("h1").inner_text() == "新增客户"
    assert drilldown_count(page) == shown

    assert session.csp_violations() == []
    assert session.page_errors == []


def test_changing_the_range_swaps_the_panel_and_redraws(shop, new_session):
    session = new_session()
    page = session.page
    session.login("olivia")
    session.goto("/analytics/growth/")
    expect(page.locator('canvas[data-chart="chart-new"]')).to_have_attribute("data-drawn", "1")
    page.evaluate("window.notReloaded = true")

    with page.expect_response(lambda r: "range=7" in r.url and r.request.headers.get("hx-request") == "true"):
        page.select_option("select[name=range]", "7")
    expect(page.locator("input[name=start]")).to_have_value((localdate() - timedelta(days=6)).isoformat())
    expect(page.locator('canvas[data-chart="chart-new"]')).to_have_attribute("data-drawn", "1")
    assert page.evaluate("window.notReloaded") is True
    assert "range=7" in page.url
    assert page.evaluate("Object.keys(window.Chart.instances).length") == 2  # the old charts were let go

    # A typed date switches the preset to "custom range" (static/analytics/js/range.js).
    page.fill("input[name=start]", "2020-01-01")
    page.locator("input[name=start]").dispatch_event("change")
    expect(page.locator("select[name=range]")).to_have_value("custom")

    assert session.csp_violations() == []
    assert session.page_errors == []


def test_dashboards_switch_to_english(shop, new_session):
    session = new_session()
    page = session.page
    session.login("olivia")
    session.goto("/analytics/")
    assert page.locator("h1").inner_text() == "数据分析"
    with page.expect_navigation():
        page.get_by_test_id("dashboard-growth").click()
    assert page.locator("h1").inner_text() == "增长"

    with page.expect_navigation():
        page.click(".lang-switch button[value=en]")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Growth"
    assert "Analytics" in page.locator("nav.nav").inner_text()
    assert page.get_by_test_id("csv-export").inner_text() == "Export CSV"
    expect(page.locator('canvas[data-chart="chart-new"]')).to_have_attribute("data-drawn", "1")

    for name in ["funnel", "retention", "rfm", "ltv", "campaigns", "staff"]:
        assert session.goto(f"/analytics/{name}/").status == 200, name
        page.screenshot(path=f"/tmp/scrm-e2e-analytics-{name}.png", full_page=True)
    assert session.csp_violations() == []
    assert session.page_errors == []
