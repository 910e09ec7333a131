"""Analytics dashboards at 1,000,000 customers and 10,000,000 events: every selector's default and filtered view,
p50/max, beside a naive query over Contact/FollowRelation/ContactEvent for the same number (the ratio), then each
whole page as an operator gets it (view, template, chart specs; and one CSV export), plus the rebuild time and the
incremental cost per event.

Target (issue): every dashboard page answers in ≤ 1 s. The data is made by ``bench.datasets.customers_dataset``
in a fresh database; measuring runs in a child process (``python -m bench.analytics measure``).
"""

import sys
import time
from dataclasses import dataclass

from bench import server


@dataclass(frozen=True)
class Scale:
    contacts: int
    events: int
    repeats: int
    incremental: int


FULL = Scale(contacts=1_000_000, events=10_000_000, repeats=7, incremental=2_000)
TINY = Scale(contacts=2_000, events=20_000, repeats=3, incremental=100)


def run(*, tiny: bool) -> bool:
    scale = TINY if tiny else FULL
    with server.django_database("analytics") as env:
        return server.measure_child("bench.analytics", [scale.contacts, scale.events, scale.repeats,
                                                        scale.incremental], env,
                                    passed="analytics correctness  PASS", timeout=4 * 3600)


def _time(fn, repeats: int) -> tuple[float, float, object]:
    result = fn()  # warm-up
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[-1], result


def measure(contacts: int, events: int, repeats: int, incremental: int) -> None:
    import django

    django.setup()
    from datetime import timedelta

    from django.db import connection

    from accounts.models import User
    from analytics import selectors as s
    from analytics.rollups import rollups_refresh
    from bench.datasets import customers_dataset
    from contacts import services
    from contacts.models import Contact, ContactEvent, Staff
    from contacts.services import corp_get_or_create

    corp = corp_get_or_create(corp_id="wwBENCHANALYTICS")
    timings = customers_dataset(corp, contacts=contacts, events=events)
    print(f"analytics ({'tiny' if contacts < 100_000 else 'full'} scale): {Contact.objects.count():,} customers, "
          f"{ContactEvent.objects.count():,} events generated in {timings['generate_s']} s; "
          f"analytics_rebuild {timings['rebuild_s']} s; loadavg {open('/proc/loadavg').read().split()[:3]}")
    user = User(username="bench-op", role=User.Role.OPERATOR)
    d30, d90, d365 = s.Period.last(30), s.Period.last(90), s.Period.last(365)

    def naive(sql: str, params: list):
        def go():
            with connection.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        return go

    tz = "Asia/Shanghai"
    lo30, hi30 = d30.bounds()
    lo365, hi365 = d365.bounds()
    naive_growth = naive("SELECT (e.occurred_at AT TIME ZONE %s)::date, r.state, count(DISTINCT e.contact_id) "
                         "FROM contacts_contactevent e JOIN contacts_followrelation r ON r.contact_id = e.contact_id "
                         "AND r.staff_id = e.staff_id WHERE e.kind = 'added' AND e.occurred_at >= %s AND "
                         "e.occurred_at < %s GROUP BY 1, 2", [tz, lo30, hi30])
    naive_funnel = naive("SELECT r.state, count(DISTINCT c.id), count(DISTINCT gm.contact_id), "
                         "count(DISTINCT o.contact_id) FROM contacts_contact c JOIN contacts_followrelation r ON "
                         "r.contact_id = c.id LEFT JOIN contacts_groupmember gm ON gm.contact_id = c.id LEFT JOIN "
                         "contacts_order o ON o.contact_id = c.id WHERE c.first_added_at >= %s AND "
                         "c.first_added_at < %s GROUP BY 1", [lo365, hi365])
    naive_retention = naive("SELECT date_trunc('week', c.first_added_at), date_trunc('week', e.occurred_at), "
                            "count(DISTINCT e.contact_id) FROM contacts_contactevent e JOIN contacts_contact c ON "
                            "c.id = e.contact_id WHERE c.first_added_at >= %s GROUP BY 1, 2",
                            [hi30 - timedelta(weeks=12)])
    naive_ltv = naive("SELECT r.state, sum(o.amount) / count(DISTINCT c.id) FROM contacts_contact c JOIN "
                      "contacts_followrelation r ON r.contact_id = c.id LEFT JOIN contacts_order o ON "
                      "o.contact_id = c.id AND o.paid_at < c.first_added_at + interval '30 days' WHERE "
                      "c.first_added_at >= %s AND c.first_added_at < %s GROUP BY 1", [lo365, hi365])
    naive_rfm = naive("SELECT rfm_r, rfm_f, rfm_m, count(*), sum(total_spent) FROM contacts_contactfacts WHERE "
                      "order_count > 0 GROUP BY 1, 2, 3", [])
    naive_staff = naive("SELECT r.staff_id, count(*), count(*) FILTER (WHERE NOT r.is_active) FROM "
                        "contacts_followrelation r WHERE r.added_at >= %s AND r.added_at < %s GROUP BY 1", [lo30, hi30])
    pages = [
        ("growth 30d by source", lambda: s.growth_report(user=user, period=d30, by="source"), naive_growth),
        ("growth 365d by staff", lambda: s.growth_report(user=user, period=d365, by="staff"), None),
        ("funnel 30d", lambda: s.funnel_report(user=user, period=d30, by=None), None),
        ("funnel 365d by channel", lambda: s.funnel_report(user=user, period=d365, by="channel"), naive_funnel),
        ("retention 12 weeks", lambda: s.retention_report(user=user, period=s.Period.last(84)), naive_retention),
        ("retention 52 weeks", lambda: s.retention_report(user=user, period=d365, weeks=52), None),
        ("rfm grid", lambda: s.rfm_report(user=user), naive_rfm),
        ("ltv 365d by channel", lambda: s.ltv_report(user=user, period=d365, by="channel"), naive_ltv),
        ("ltv 90d by live code", lambda: s.ltv_report(user=user, period=d90, by="livecode"), None),
        ("campaigns 90d, 7 days", lambda: s.campaign_report(user=user, period=d90, days=7), None),
        ("staff 30d", lambda: s.staff_report(user=user, period=d30), naive_staff),
        ("staff 365d", lambda: s.staff_report(user=user, period=d365), None),
        ("drill-down: page of 50", lambda: list(s.drilldown_contacts(
            user=user, spec=s.DrilldownSpec(metric="added", start=d30.start, end=d30.end))[:50]), None),
        ("drill-down: count 365d", lambda: s.drilldown_contacts(
            user=user, spec=s.DrilldownSpec(metric="added", start=d365.start, end=d365.end)).count(), None),
    ]
    print(f"  {'page':<26} {'p50':>9} {'max':>9} {'naive p50':>10} {'ratio':>7}  target ≤ 1000 ms")
    worst = 0.0
    for label, fn, baseline in pages:
        p50, top, _result = _time(fn, repeats)
        worst = max(worst, top)
        base = ""
        if baseline is not None:
            b50, _bmax, _r = _time(baseline, max(1, repeats // 3))
            base = f"{b50:>7.0f} ms {b50 / max(p50, 0.01):>6.0f}x"
        print(f"  {label:<26} {p50:>6.1f} ms {top:>6.1f} ms {base:>18}  {'MET' if top <= 1000 else 'NOT MET'}")
    # The whole page as an operator gets it: view, form, selector, template, chart specs (Django's test client).
    from django.test import Client

    operator, _created = User.objects.get_or_create(username="bench-operator",
                                                    defaults={"role": User.Role.OPERATOR})
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(operator)
    drill = s.DrilldownSpec(metric="added", start=d365.start, end=d365.end).to_query()
    urls = [("page growth 30d by source", "/analytics/growth/?range=30&by=source"),
            ("page growth 365d by staff", "/analytics/growth/?range=365&by=staff"),
            ("page funnel 365d by channel", "/analytics/funnel/?range=365&by=channel"),
            ("page retention 365d", "/analytics/retention/?range=365"),
            ("page rfm", "/analytics/rfm/"),
            ("page ltv 365d by live code", "/analytics/ltv/?range=365&by=livecode"),
            ("page campaigns 90d", "/analytics/campaigns/?range=90&days=7"),
            ("page staff 365d", "/analytics/staff/?range=365"),
            ("page drill-down 365d", f"/analytics/customers/?{drill}"),
            ("csv growth 365d by staff", "/analytics/growth/?range=365&by=staff&format=csv")]

    def fetch(url: str):
        def go():
            response = client.get(url, secure=True)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            if response.status_code != 200:
                raise RuntimeError(f"{url} answered {response.status_code}")
            return body
        return go

    for label, url in urls:
        p50, top, body = _time(fetch(url), repeats)
        worst = max(worst, top)
        print(f"  {label:<26} {p50:>6.1f} ms {top:>6.1f} ms {len(body) // 1024:>12} KB  "
              f"{'MET' if top <= 1000 else 'NOT MET'}")
    # correctness: the chart's number, its drill-down list and the naive count agree
    report = s.growth_report(user=user, period=d30, by="source")
    drilled = s.drilldown_contacts(user=user, spec=report.spec_for("added")).count()
    naive_added = Contact.objects.filter(first_added_at__gte=lo30, first_added_at__lt=hi30).count()
    ok = report.totals["added"] == drilled == naive_added
    # incremental cost: new customers adding a staff member through the real fan-out, then one drain
    staff = Staff.objects.filter(corp=corp).first()
    from django.utils import timezone

    t = time.perf_counter()
    for i in range(incremental):
        contact = services.contact_placeholder(corp=corp, external_userid=f"wmbenchinc{i}")
        services.relation_added(corp=corp, staff=staff, contact=contact, at=timezone.now())
        services.record_event(corp=corp, kind="added", occurred_at=timezone.now(), contact=contact, staff=staff,
                              dedup_key=f"bench-inc-{i}")
    per_event = (time.perf_counter() - t) * 1000 / incremental
    t = time.perf_counter()
    drained = rollups_refresh()
    drain_ms = (time.perf_counter() - t) * 1000
    after = s.growth_report(user=user, period=d30, by="source").totals["added"]
    ok = ok and after == report.totals["added"] + incremental and drained["contacts"] == incremental
    print(f"  incremental: {incremental} adds through record_event {per_event:.2f} ms/event (whole callback path); "
          f"drain {drain_ms:.0f} ms = {drain_ms / incremental:.2f} ms/event")
    print(f"  worst page {worst:.0f} ms (target ≤ 1000 ms {'MET' if worst <= 1000 else 'NOT MET'}); "
          f"loadavg {open('/proc/loadavg').read().split()[:3]}")
    print(f"  analytics correctness  {'PASS' if ok else 'FAIL'} (chart total = drill-down count = naive count; "
          "incremental adds counted once)")


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    measure(*(int(a) for a in sys.argv[2:6]))
