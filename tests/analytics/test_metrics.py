"""Analytics metrics on a small hand-built data set; every expected number is worked out in the comments.

The world (corp zone Asia/Shanghai, "now" = 2025-03-20 12:00):

  contact  first add (staff, state)          later
  c1       01-06 10:00 A, lc_spring          joins a group 01-07, orders 100 on 01-10 and 50 on 02-20,
                                             leaves the group 01-17
  c2       01-06 11:00 A, lc_spring          deletes A 01-14 (lost by customer)
  c3       01-08 10:00 B, (none)             B deletes c3 01-09 (lost by staff)
  c4       01-15 10:00 B, ref_<c1>           orders 30 on 01-16
  c5       01-06 12:00 A, lc_spring          adds B 01-10, deletes A 01-12: still B's customer, not lost
  c6       02-19 09:00 A, ref_<c1>           (referred by c1 one day after the broadcast)
"""

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import QueryDict

from analytics import selectors as s
from analytics.campaigns import campaign_stats_refresh
from analytics.rollups import rfm_snapshot_refresh, rollups_rebuild, rollups_refresh
from analytics.services import rfm_cell_segment_create
from contacts import services
from contacts.business import contacts_rfm_score, orders_record
from contacts.models import FollowRelation
from journeys.models import Broadcast, MessageTemplate, OutboundMessage
from livecodes.models import DailyStat, LiveCode
from scrm.errors import ApplicationError
from tagging.segments import segment_count
from tests.factories import ContactFactory, GroupChatFactory

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 3, 20, 12, 0, tzinfo=TZ)
JAN = s.Period(date(2025, 1, 6), date(2025, 1, 19))


def at(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2025, month, day, hour, 0, tzinfo=TZ)


class World:
    def __init__(self, corp, staff_a, staff_b):
        self.corp, self.a, self.b = corp, staff_a, staff_b
        self.code = LiveCode.objects.create(corp=corp, kind=LiveCode.Kind.STAFF, name="春季活动", slug="spring",
                                            state="lc_spring")
        self.chat = GroupChatFactory(corp=corp)
        self.c = {i: ContactFactory(corp=corp) for i in range(1, 7)}
        self.n = 0

    def key(self) -> str:
        self.n += 1
        return f"t:{self.n}"

    def add(self, i, staff, when, state=""):
        contact = self.c[i]
        services.relation_added(corp=self.corp, staff=staff, contact=contact, at=when)
        FollowRelation.objects.filter(contact=contact, staff=staff).update(state=state)
        services.record_event(corp=self.corp, kind="added", occurred_at=when, contact=contact, staff=staff,
                              data={"state": state}, dedup_key=self.key())

    def delete(self, i, staff, when, by_customer):
        contact = self.c[i]
        services.relation_deleted(corp=self.corp, staff=staff, contact=contact, at=when, by_customer=by_customer)
        services.record_event(corp=self.corp, kind="deleted_by_customer" if by_customer else "deleted_by_staff",
                              occurred_at=when, contact=contact, staff=staff, dedup_key=self.key())

    def group(self, i, when, joined=True):
        ext = self.c[i].external_userid
        services.group_members_changed(corp=self.corp, chat_id=self.chat.chat_id, joined=[ext] if joined else [],
                                       left=[] if joined else [ext], at=when, last_version="", current_version="",
                                       join_scene=None, quit_scene=None, dedup_prefix=self.key())

    def order(self, i, when, amount):
        result = orders_record(corp=self.corp, rows=[{"contact_id": self.c[i].pk, "external_id": self.key(),
                                                      "amount": amount, "paid_at": when}])
        assert not result.errors

    def build(self, drain_every_step=False):
        steps = [
            lambda: self.add(1, self.a, at(1, 6), "lc_spring"),
            lambda: self.add(2, self.a, at(1, 6, 11), "lc_spring"),
            lambda: self.add(5, self.a, at(1, 6, 12), "lc_spring"),
            lambda: self.group(1, at(1, 7)),
            lambda: self.add(3, self.b, at(1, 8)),
            lambda: self.delete(3, self.b, at(1, 9), by_customer=False),
            lambda: self.order(1, at(1, 10), "100"),
            lambda: self.add(5, self.b, at(1, 10)),
            lambda: self.delete(5, self.a, at(1, 12), by_customer=True),
            lambda: self.delete(2, self.a, at(1, 14), by_customer=True),
            lambda: self.add(4, self.b, at(1, 15), f"ref_{self.c[1].pk}"),
            lambda: self.order(4, at(1, 16), "30"),
            lambda: self.group(1, at(1, 17), joined=False),
            lambda: self.add(6, self.a, at(2, 19, 9), f"ref_{self.c[1].pk}"),
            lambda: self.order(1, at(2, 20), "50"),
        ]
        for step in steps:
            step()
            if drain_every_step:
                rollups_refresh()
        DailyStat.objects.create(code=self.code, day=date(2025, 1, 5), scans=99, visitors=50)  # before the period
        DailyStat.objects.create(code=self.code, day=date(2025, 1, 6), scans=10, visitors=8)
        DailyStat.objects.create(code=self.code, day=date(2025, 1, 7), scans=20, visitors=15)
        template = MessageTemplate.objects.create(name="促销", text="hi")
        self.broadcast = Broadcast.objects.create(corp=self.corp, name="二月促销", template=template,
                                                  status=Broadcast.Status.DONE)
        for i, status in ((1, "sent"), (5, "sent"), (2, "not_sent")):
            OutboundMessage.objects.create(
                corp=self.corp, idempotency_key=f"b:{i}", channel="single", priority="marketing",
                contact=self.c[i], staff=self.a, content={"text": "hi"}, content_hash="h", broadcast=self.broadcast,
                status=status, created_at=at(2, 18), sent_at=at(2, 18) if status == "sent" else None)
        rollups_refresh()
        campaign_stats_refresh()


@pytest.fixture
def world(corp, staff_a, staff_b, fake_wecom):
    with time_machine.travel(NOW, tick=False):
        w = World(corp, staff_a, staff_b)
        w.build()
        yield w


def count(user, spec: s.DrilldownSpec) -> int:
    # Through the query string, as a link would carry it.
    return s.drilldown_contacts(user=user, spec=s.DrilldownSpec.from_query(QueryDict(spec.to_query()))).count()


def test_growth_by_source_and_staff(world, operator_user):
    report = s.growth_report(user=operator_user, period=JAN, by="source")
    day = {d: i for i, d in enumerate(report.days)}
    assert len(report.days) == 14
    assert report.added[day[date(2025, 1, 6)]] == 3  # c1, c2, c5 (c5's second add on 01-10 is not a new customer)
    assert report.added[day[date(2025, 1, 8)]] == 1 and report.added[day[date(2025, 1, 15)]] == 1
    assert report.totals == {"added": 5, "lost_by_customer": 1, "lost_by_staff": 1, "lost_by_unknown": 0,
                             "group_joined": 1, "group_left": 1, "net": 3}  # c5 deleted A but is still B's customer: not lost
    assert report.lost_by_staff[day[date(2025, 1, 9)]] == 1 and report.lost_by_customer[day[date(2025, 1, 14)]] == 1
    assert report.net[day[date(2025, 1, 9)]] == -1
    by_key = {x.key: sum(x.values) for x in report.series}
    assert by_key == {"lc_spring": 3, "": 1, "ref": 1}  # every ref_<contact id> state is one channel
    labels = {x.key: x.label for x in report.series}
    assert labels["lc_spring"] == "春季活动 (lc_spring)"
    staff = s.growth_report(user=operator_user, period=JAN, by="staff")
    assert {x.key: sum(x.values) for x in staff.series} == {str(world.a.pk): 3, str(world.b.pk): 2}
    rows = list(report.csv_rows())
    assert rows[0][:3] == ["day", "added", "lost_by_customer"] and len(rows) == 15


def test_growth_drilldown_counts_equal_the_chart(world, operator_user):
    report = s.growth_report(user=operator_user, period=JAN, by="source")
    for metric in ("added", "lost_by_customer", "lost_by_staff", "group_joined", "group_left"):
        assert count(operator_user, report.spec_for(metric)) == report.totals[metric], metric
    for series in report.series:
        assert count(operator_user, series.spec) == sum(series.values)
    spec = report.spec_for("added", day=date(2025, 1, 6), key="lc_spring")
    ids = set(s.drilldown_contacts(user=operator_user, spec=spec).values_list("pk", flat=True))
    assert ids == {world.c[1].pk, world.c[2].pk, world.c[5].pk}


def test_growth_other_series_covers_the_rest(world, operator_user, monkeypatch):
    monkeypatch.setattr(s, "TOP_SERIES", 1)
    report = s.growth_report(user=operator_user, period=JAN, by="source")
    assert [x.key for x in report.series] == ["lc_spring", s.OTHER]
    assert sum(report.series[1].values) == 2
    assert count(operator_user, report.series[1].spec) == 2


def test_funnel_total_and_by_channel(world, operator_user):
    report = s.funnel_report(user=operator_user, period=JAN, by="channel")
    t = report.total
    # scans 10 + 20 inside the period (99 on 01-05 is outside); c1 joined a group; c1, c4 ordered; c1 twice
    assert (t.scanned, t.added, t.joined_group, t.first_order, t.repeat_order) == (30, 5, 1, 2, 1)
    assert t.rates() == [("added", 0.1667), ("joined_group", 0.2), ("first_order", 2.0), ("repeat_order", 0.5)]
    rows = {r.key: r for r in report.rows}
    assert (rows["lc_spring"].scanned, rows["lc_spring"].added, rows["lc_spring"].first_order) == (30, 3, 1)
    assert rows[""].scanned is None and rows[""].rates()[0] == ("added", None)
    for step in ("added", "joined_group", "first_order", "repeat_order"):
        assert count(operator_user, report.spec_for(step)) == getattr(t, step)
        assert count(operator_user, report.spec_for(step, "lc_spring")) == getattr(rows["lc_spring"], step)
    assert report.spec_for("scanned") is None
    by_code = s.funnel_report(user=operator_user, period=JAN, by="livecode")
    assert {r.key: r.added for r in by_code.rows} == {str(world.code.pk): 3, "": 2}


def test_retention_cohorts(world, operator_user):
    with time_machine.travel(NOW, tick=False):
        report = s.retention_report(user=operator_user, period=JAN, weeks=4)
    first, second = report.cohorts
    assert (first.week_start, first.size) == (date(2025, 1, 6), 4)  # c1, c2, c3, c5
    assert first.still == [3, 2, 2, 2]  # c3 lost in week 0, c2 in week 1
    assert first.active == [4, 2, 0, 0]  # week 1: c2 deleted A, c1 left the group
    assert (second.week_start, second.size, second.still, second.active) == (date(2025, 1, 13), 1, [1] * 4,
                                                                             [1, 0, 0, 0])
    for k in range(4):
        with time_machine.travel(NOW, tick=False):
            assert count(operator_user, report.spec_for(first.week_start, k, "still")) == first.still[k]
            assert count(operator_user, report.spec_for(first.week_start, k, "active")) == first.active[k]
    with time_machine.travel(datetime(2025, 1, 22, 12, tzinfo=TZ), tick=False):
        early = s.retention_report(user=operator_user, period=JAN, weeks=4)
    assert early.cohorts[1].still == [1, 1, None, None]  # weeks in the future are None, not 0


def test_ltv_only_for_cohorts_old_enough(world, operator_user):
    with time_machine.travel(NOW, tick=False):
        report = s.ltv_report(user=operator_user, period=JAN, by="channel")
        rows = {r.key: r for r in report.rows}
        # 30 days: c1 paid 100 on 01-10 (50 on 02-20 is day 45), c4 paid 30: 130 / 5 customers
        assert report.total.ltv30 == Decimal("26.00")
        assert report.total.ltv90 is None and report.total.ltv365 is None  # not 90 days old yet
        assert rows["lc_spring"].ltv30 == Decimal("33.33") and rows[""].ltv30 == Decimal("0.00")
        assert count(operator_user, report.spec_for(None, 30)) == report.total.customers_by_days[30] == 5
    with time_machine.travel(datetime(2025, 1, 20, 12, tzinfo=TZ), tick=False):
        assert s.ltv_report(user=operator_user, period=JAN, by="channel").total.ltv30 is None


def test_staff_report(world, operator_user):
    with time_machine.travel(NOW, tick=False):
        report = s.staff_report(user=operator_user, period=JAN)
        rows = {r.staff_id: r for r in report.rows}
        a, b = rows[world.a.pk], rows[world.b.pk]
        assert (a.added, a.lost, a.retained_30) == (3, 1, 0.6667)  # c2 lost on day 8
        assert (b.added, b.lost, b.retained_30) == (2, 1, 0.5)  # c3 lost on day 1
        assert a.sop_rate is None
        assert count(operator_user, report.spec_for(world.a.pk, "retained_30")) == 2
        assert count(operator_user, report.spec_for(world.b.pk, "lost")) == 1


def test_campaign_outcomes(world, operator_user):
    feb = s.Period(date(2025, 2, 1), date(2025, 2, 28))
    report = s.campaign_report(user=operator_user, period=feb, days=7)
    (row,) = report.rows
    # sent to c1 and c5 (c2 not sent); c1 ordered again 2 days later; c6 came through c1's ref state next morning
    assert (row.recipients, row.sent, row.converted, row.repurchased, row.referrals) == (3, 2, 1, 1, 1)
    assert (row.conversion_rate, row.repurchase_rate, row.referral_rate) == (0.5, 0.5, 0.5)
    one_day = s.campaign_report(user=operator_user, period=feb, days=1).rows[0]
    assert (one_day.converted, one_day.referrals) == (0, 1)
    assert {r.id for r in s.campaign_report(user=operator_user, period=JAN, days=7).rows} == set()
    for metric, expected in (("sent", 2), ("converted", 1), ("repurchased", 1), ("referrals", 1)):
        assert count(operator_user, report.spec_for(row, metric)) == expected
    assert list(s.drilldown_contacts(user=operator_user, spec=report.spec_for(row, "referrals"))) == [world.c[6]]


def test_rfm_grid_and_segment(world, operator_user):
    contacts_rfm_score()
    rfm_snapshot_refresh()
    report = s.rfm_report(user=operator_user)
    # two buyers: c4 (1 order, 30, earliest) lands in quintile 1 everywhere, c1 (2 orders, 150) in quintile 2
    assert [(c.r, c.f, c.m, c.count, c.value) for c in report.cells] == [
        (1, 1, 1, 1, Decimal("30.00")), (2, 2, 2, 1, Decimal("150.00"))]
    assert count(operator_user, report.spec_for(2, 2, 2)) == 1
    segment = rfm_cell_segment_create(user=operator_user, r=2, f=2, m=2)
    assert segment_count(user=operator_user, expression=segment.expression) == 1
    with pytest.raises(ApplicationError):
        rfm_cell_segment_create(user=operator_user, r=6, f=1, m=1)


def _tables() -> dict:
    out = {}
    with connection.cursor() as cur:
        for table, order in (("analytics_customerfact", "contact_id"), ("analytics_dailygrowth", "day, dim, key"),
                             ("analytics_dailycohort", "day, state, livecode_id, staff_id"),
                             ("analytics_cohortweek", "cohort_week, \"offset\""),
                             ("analytics_contactweek", "week, contact_id")):
            cur.execute(f"SELECT * FROM {table} ORDER BY {order}")
            rows = cur.fetchall()
            if table in ("analytics_dailygrowth", "analytics_dailycohort", "analytics_cohortweek"):
                rows = [r[1:] for r in rows]  # ids differ
            out[table] = rows
    return out


def test_rebuild_equals_incremental_and_replays_do_not_double_count(corp, staff_a, staff_b, fake_wecom,
                                                                     operator_user):
    with time_machine.travel(NOW, tick=False):
        world = World(corp, staff_a, staff_b)
        world.build(drain_every_step=True)  # out of step: buckets recomputed many times as facts move
        incremental = _tables()
        assert incremental["analytics_customerfact"]
        # A replayed callback (same dedup key) and a second drain change nothing.
        assert not services.record_event(corp=corp, kind="added", occurred_at=at(1, 6), contact=world.c[1],
                                         staff=staff_a, dedup_key="t:1")
        rollups_refresh()
        assert _tables() == incremental
        rollups_rebuild()
        rebuilt = _tables()
        for table, rows in incremental.items():
            assert rebuilt[table] == rows, table
        rollups_rebuild(since=date(2025, 1, 10))
        assert _tables() == incremental
        assert s.growth_report(user=operator_user, period=JAN, by="source").totals["added"] == 5


def test_late_event_lands_in_its_own_day(world, operator_user):
    """An add that arrives late (dated in the past) is counted on its own day, once."""
    with time_machine.travel(NOW, tick=False):
        late = ContactFactory(corp=world.corp)
        world.c[7] = late
        world.add(7, world.a, at(1, 7))
        rollups_refresh()
        rollups_refresh()
    report = s.growth_report(user=operator_user, period=JAN, by="source")
    assert report.added[1] == 1 and report.totals["added"] == 6


def test_empty_states(db, operator_user):
    assert s.growth_report(user=operator_user, period=JAN, by="source").is_empty
    assert s.funnel_report(user=operator_user, period=JAN, by=None).is_empty
    assert s.retention_report(user=operator_user, period=JAN).is_empty
    assert s.rfm_report(user=operator_user).is_empty
    assert s.ltv_report(user=operator_user, period=JAN, by="channel").is_empty
    assert s.campaign_report(user=operator_user, period=JAN, days=7).is_empty
    assert s.staff_report(user=operator_user, period=JAN).is_empty


def test_guides_are_refused(db, guide_a):
    with pytest.raises(PermissionDenied):
        s.growth_report(user=guide_a, period=JAN, by="source")
    with pytest.raises(PermissionDenied):
        s.drilldown_contacts(user=guide_a, spec=s.DrilldownSpec(metric="added", start=JAN.start, end=JAN.end))


@pytest.mark.parametrize(("query", "message"), [
    ("", "Unknown number"),
    ("metric=nope", "Unknown number"),
    ("metric=added&start=2025-13-01", "2026-03-01"),
    ("metric=added&start=2025-02-01&end=2025-01-01", "before the start"),
    ("metric=added&start=2020-01-01&end=2025-01-01", "731"),
    ("metric=added&dim=color&key=x", "breakdown"),
    ("metric=added&key=x", "breakdown"),
    ("metric=still&cohort_week=2025-01-07&offset=1", "Monday"),
    ("metric=still&cohort_week=2025-01-06&offset=x", "week"),
    ("metric=rfm&r=1&f=9&m=1", "F"),
    ("metric=campaign_sent&campaign=broadcast:x&days=7", "broadcast:12"),
    ("metric=campaign_sent&campaign=broadcast:1&days=5", "days"),
])
def test_bad_drilldown_input_is_refused_clearly(query, message, settings):
    settings.LANGUAGE_CODE = "en"
    from django.utils import translation

    with translation.override("en"), pytest.raises(ApplicationError) as exc:
        s.DrilldownSpec.from_query(QueryDict(query))
    assert message in exc.value.message


def test_spec_round_trips():
    spec = s.DrilldownSpec(metric="added", start=date(2025, 1, 1), end=date(2025, 1, 31), dim="source",
                           exclude=("a", ""))
    assert s.DrilldownSpec.from_query(QueryDict(spec.to_query())) == spec
    spec = s.DrilldownSpec(metric="campaign_converted", campaign="broadcast:3", days=7)
    assert s.DrilldownSpec.from_query(QueryDict(spec.to_query())) == spec
    spec = s.DrilldownSpec(metric="still", cohort_week=date(2025, 1, 6), offset=2)
    assert s.DrilldownSpec.from_query(QueryDict(spec.to_query())) == spec


def test_period_validation():
    assert s.Period.last(7).end - s.Period.last(7).start == timedelta(days=6)
    with pytest.raises(ApplicationError):
        s.Period(date(2020, 1, 1), date(2025, 1, 1))


def test_bulk_order_import_without_events_reaches_the_rollups(corp, staff_a, operator_user):
    """tagging's CSV import writes orders set-based and records no events: the facts refresh still marks them."""
    from contacts.business import contact_facts_refresh_sql
    from contacts.models import Order

    with time_machine.travel(NOW, tick=False):
        contact = ContactFactory(corp=corp)
        services.relation_added(corp=corp, staff=staff_a, contact=contact, at=at(1, 6))
        rollups_rebuild()
        Order.objects.create(corp=corp, contact=contact, external_id="csv-1", amount=Decimal("80"), paid_at=at(1, 8))
        contact_facts_refresh_sql("SELECT id FROM contacts_contact WHERE id = %s", [contact.pk])
        rollups_refresh()
        report = s.funnel_report(user=operator_user, period=JAN, by=None)
        assert (report.total.added, report.total.first_order) == (1, 1)
        assert s.ltv_report(user=operator_user, period=JAN, by="channel").total.ltv30 == Decimal("80.00")


def test_rebuild_command(db, capsys):
    from django.core.management import CommandError, call_command

    call_command("analytics_rebuild")
    assert "analytics rebuilt" in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("analytics_rebuild", "--since", "yesterday")
