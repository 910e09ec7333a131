"""Reads for the analytics dashboards: every number comes from the rollup tables (never from ContactEvent).

Definitions (one row per customer in ``analytics.CustomerFact``, so every drill-down list has exactly as many
contacts as the number it explains):

- **added** on day D: customers whose first add (earliest FollowRelation.added_at) falls on D (corp zone).
  Source / live code / staff of a customer are those of that first add (``state``, the LiveCode with that
  state, the staff member).
- **lost** on day D: customers who are no longer anybody's customer (no active relation), by the day their last
  relation ended; ``lost_by`` says who ended it: the customer or the staff member (a deletion), or "unknown" when
  the full WeCom sync found the relation gone (no callback said who deleted whom; dated by that sync). A customer
  who came back is not lost.
- **group joined** on day D: customers whose first group join was on D; **group left**: customers in no group
  now, by the day they left their last one.
- **funnel** (customers added in the period): joined a group / first order / repeat order at any time.
- **retention**: weekly cohorts (Monday weeks) by the week customers were added; "still" = not lost by the end
  of week k; "active" = any event in week k.
- **LTV N**: revenue of orders paid within N days after the first add, per customer, over cohorts at least N
  days old only (None = "not yet").
- **channel** (source) is the ``state`` of the first add, except that every referral state ``ref_<contact id>``
  is one channel, ``"ref"`` (one row per referrer would swamp the charts).
- **campaigns**: among recipients whose message was actually sent: share who ordered within N days
  (conversion), share who had ordered before and ordered again within N days (repurchase), and referrals: new
  customers whose add ``state`` is ``ref_<recipient contact id>`` within N days (referral rate = referrals /
  sent). Refreshed by the periodic rollup task, not per page view.

Dashboards are for operators and admins: every selector refuses guides (aggregates would leak other guides'
customers) with PermissionDenied; views return 403 before that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.db.models import QuerySet
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _

from scrm.errors import ApplicationError

if TYPE_CHECKING:
    from accounts.models import User
    from contacts.models import Contact

MAX_PERIOD_DAYS = 731
REFERRAL_KEY = "ref"  # the growth/funnel/LTV channel of every "ref_<contact id>" state (analytics.rollups)
TOP_SERIES = 8
GROWTH_BY = ("source", "livecode", "staff")
FUNNEL_BY = (None, "channel", "livecode")
LTV_BY = ("channel", "livecode")
CAMPAIGN_DAYS = (1, 7, 30)
LTV_DAYS = (30, 90, 365)
LOST_BY = ("lost_by_customer", "lost_by_staff", "lost_by_unknown")  # CustomerFact.lost_by: customer, staff, unknown


def today() -> date:
    return timezone.localdate()


# --- period --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    """An inclusive range of days in the corp's time zone."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ApplicationError(_("The end date is before the start date."))
        if (self.end - self.start).days + 1 > MAX_PERIOD_DAYS:
            raise ApplicationError(_("Choose at most %(days)s days.") % {"days": MAX_PERIOD_DAYS})

    @classmethod
    def last(cls, days: int = 30) -> Period:
        end = today()
        return cls(end - timedelta(days=days - 1), end)

    @classmethod
    def parse(cls, start: str | None, end: str | None, *, default_days: int = 30) -> Period:
        """From ISO strings (``2026-03-01``); missing values default to the last ``default_days`` days."""
        if not start and not end:
            return cls.last(default_days)
        try:
            end_d = date.fromisoformat(end) if end else today()
            start_d = date.fromisoformat(start) if start else end_d - timedelta(days=default_days - 1)
        except ValueError as exc:
            raise ApplicationError(_("Dates are written like 2026-03-01.")) from exc
        return cls(start_d, end_d)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def bounds(self) -> tuple[datetime, datetime]:
        """[start 00:00, day after end 00:00) as aware datetimes in the corp zone."""
        tz = timezone.get_default_timezone()
        return (datetime.combine(self.start, datetime.min.time(), tzinfo=tz),
                datetime.combine(self.end + timedelta(days=1), datetime.min.time(), tzinfo=tz))


# --- drill-down spec -------------------------------------------------------------------------------------------------
# metric -> what else it needs: "period" (start/end), "cohort" (cohort_week, offset), "rfm" (r, f, m),
# "campaign" (campaign, days), "ltv" (period + days).
DRILL_METRICS: dict[str, str] = {
    "added": "period", "lost": "period", "lost_by_customer": "period", "lost_by_staff": "period",
    "lost_by_unknown": "period",
    "group_joined": "period", "group_left": "period",
    "funnel_joined_group": "period", "funnel_first_order": "period", "funnel_repeat_order": "period",
    "retained_30": "period", "ltv_customers": "ltv",
    "still": "cohort", "active": "cohort",
    "rfm": "rfm",
    "campaign_sent": "campaign", "campaign_converted": "campaign", "campaign_repurchased": "campaign",
    "campaign_referrals": "campaign",
}
DRILL_DIMS = ("", "source", "livecode", "staff")  # "channel" is accepted as another name for "source"
CAMPAIGN_KINDS = ("broadcast", "journey_step")


@dataclass(frozen=True)
class DrilldownSpec:
    """Which customers are behind one number on a chart. Build it with ``from_query`` (validates) or take it from
    a report's ``spec_for(...)``; ``to_query()`` gives the query string for a link (round-trips)."""

    metric: str
    start: date | None = None
    end: date | None = None
    dim: str = ""
    key: str | None = None  # the dimension value ("" = none, e.g. no live code); None = all values
    exclude: tuple[str, ...] = ()  # the "other" series: every value except these
    cohort_week: date | None = None
    offset: int | None = None
    r: int | None = None
    f: int | None = None
    m: int | None = None
    campaign: str = ""  # "broadcast:<id>" or "journey_step:<id>"
    days: int | None = None

    @classmethod
    def from_query(cls, query: QueryDict | dict) -> DrilldownSpec:
        """Parse and validate; raises ApplicationError with a message an operator can act on."""
        get = query.get
        metric = (get("metric") or "").strip()
        if metric not in DRILL_METRICS:
            raise ApplicationError(_("Unknown number to list: %(metric)s.") % {"metric": metric or "—"})
        needs = DRILL_METRICS[metric]
        dim = (get("dim") or "").strip()
        dim = "source" if dim == "channel" else dim
        if dim not in DRILL_DIMS:
            raise ApplicationError(_("Unknown breakdown: %(dim)s.") % {"dim": dim})
        key = get("key")
        exclude = tuple(query.getlist("exclude")) if hasattr(query, "getlist") else tuple(get("exclude") or ())
        if (key is not None or exclude) and not dim:
            raise ApplicationError(_("A breakdown value needs a breakdown."))
        values: dict = {"metric": metric, "dim": dim, "key": key, "exclude": exclude}
        if needs in ("period", "ltv"):
            period = Period.parse(get("start"), get("end"))
            values.update(start=period.start, end=period.end)
        if needs == "ltv":
            values["days"] = _int_in(get("days"), LTV_DAYS, _("days"))
        if needs == "cohort":
            try:
                week = date.fromisoformat(get("cohort_week") or "")
            except ValueError as exc:
                raise ApplicationError(_("The cohort week is written like 2026-03-02 (a Monday).")) from exc
            if week.weekday() != 0:
                raise ApplicationError(_("The cohort week is written like 2026-03-02 (a Monday)."))
            values.update(cohort_week=week, offset=_int_in(get("offset"), range(0, 105), _("week")))
        if needs == "rfm":
            values.update({name: _int_in(get(name), range(1, 6), name.upper()) for name in ("r", "f", "m")})
        if needs == "campaign":
            campaign = (get("campaign") or "").strip()
            kind, _sep, ident = campaign.partition(":")
            if kind not in CAMPAIGN_KINDS or not ident.isdigit():
                raise ApplicationError(_("The campaign is written like broadcast:12 or journey_step:3."))
            values.update(campaign=campaign, days=_int_in(get("days"), CAMPAIGN_DAYS, _("days")))
        return cls(**values)

    def to_query(self) -> str:
        pairs: list[tuple[str, str]] = [("metric", self.metric)]
        if self.start and self.end:
            pairs += [("start", self.start.isoformat()), ("end", self.end.isoformat())]
        if self.dim:
            pairs.append(("dim", self.dim))
        if self.key is not None:
            pairs.append(("key", self.key))
        pairs += [("exclude", value) for value in self.exclude]
        if self.cohort_week is not None:
            pairs += [("cohort_week", self.cohort_week.isoformat()), ("offset", str(self.offset))]
        if self.r is not None:
            pairs += [("r", str(self.r)), ("f", str(self.f)), ("m", str(self.m))]
        if self.campaign:
            pairs.append(("campaign", self.campaign))
        if self.days is not None:
            pairs.append(("days", str(self.days)))
        return urlencode(pairs)


def _int_in(value, allowed, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number not in allowed:
        choices = ", ".join(str(a) for a in allowed) if len(allowed) < 10 else f"{min(allowed)}–{max(allowed)}"
        raise ApplicationError(_("%(name)s must be one of %(choices)s.") % {"name": name, "choices": choices})
    return number


# --- report shapes ---------------------------------------------------------------------------------------------------
def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    values: list[int]
    spec: DrilldownSpec | None = None  # the customers behind the series' total over the period


@dataclass
class GrowthReport:
    period: Period
    by: str
    days: list[date]
    series: list[Series]  # new customers per day per dimension value, top 8 + "other"
    added: list[int]
    lost_by_customer: list[int]
    lost_by_staff: list[int]
    lost_by_unknown: list[int]  # relations the full sync found gone: nobody knows who deleted whom
    net: list[int]
    group_joined: list[int]
    group_left: list[int]
    totals: dict[str, int]  # added, lost_by_customer, lost_by_staff, lost_by_unknown, net, group_joined, group_left
    is_empty: bool

    def spec_for(self, metric: str, day: date | None = None, key: str | None = None) -> DrilldownSpec:
        """The customers behind ``metric`` (added, lost_by_customer / _staff / _unknown, group_joined, group_left) on
        ``day`` (or over the whole period) for dimension value ``key`` (a series key; None = all)."""
        start, end = (day, day) if day else (self.period.start, self.period.end)
        if key is None:
            return DrilldownSpec(metric=metric, start=start, end=end)
        if key == OTHER:
            return DrilldownSpec(metric=metric, start=start, end=end, dim=self.by,
                                 exclude=tuple(s.key for s in self.series if s.key != OTHER))
        return DrilldownSpec(metric=metric, start=start, end=end, dim=self.by, key=key)

    def csv_rows(self) -> Iterable[list]:
        yield ["day", "added", "lost_by_customer", "lost_by_staff", "lost_by_unknown", "net", "group_joined",
               "group_left", *[f"added:{s.label}" for s in self.series]]
        for i, day in enumerate(self.days):
            yield [day.isoformat(), self.added[i], self.lost_by_customer[i], self.lost_by_staff[i],
                   self.lost_by_unknown[i], self.net[i], self.group_joined[i], self.group_left[i],
                   *[s.values[i] for s in self.series]]


OTHER = "__other__"
FUNNEL_STEPS = ("scanned", "added", "joined_group", "first_order", "repeat_order")


@dataclass(frozen=True)
class FunnelRow:
    key: str | None  # None = the total row
    label: str
    scanned: int | None  # None where scans are not known (no live code)
    added: int
    joined_group: int
    first_order: int
    repeat_order: int

    def rates(self) -> list[tuple[str, float | None]]:
        """Conversion from the previous step, per step after the first (None where the base is 0 or unknown)."""
        values = [self.scanned, self.added, self.joined_group, self.first_order, self.repeat_order]
        return [(FUNNEL_STEPS[i], _rate(values[i], values[i - 1]) if values[i - 1] is not None else None)
                for i in range(1, len(values))]


@dataclass
class FunnelReport:
    period: Period
    by: str | None
    rows: list[FunnelRow]
    total: FunnelRow
    is_empty: bool

    def spec_for(self, step: str, key: str | None = None) -> DrilldownSpec | None:
        """The customers behind a step of a row (``key`` None = the total row); None for "scanned" (scans are
        anonymous)."""
        metric = {"added": "added", "joined_group": "funnel_joined_group", "first_order": "funnel_first_order",
                  "repeat_order": "funnel_repeat_order"}.get(step)
        if metric is None:
            return None
        dim = {"channel": "source", "livecode": "livecode"}.get(self.by or "", "")
        if key is None or not dim:
            return DrilldownSpec(metric=metric, start=self.period.start, end=self.period.end)
        return DrilldownSpec(metric=metric, start=self.period.start, end=self.period.end, dim=dim, key=key)

    def csv_rows(self) -> Iterable[list]:
        yield ["key", "label", *FUNNEL_STEPS, *[f"rate:{s}" for s in FUNNEL_STEPS[1:]]]
        for row in [*self.rows, self.total]:
            yield [row.key or "", row.label, "" if row.scanned is None else row.scanned, row.added,
                   row.joined_group, row.first_order, row.repeat_order,
                   *["" if r is None else r for _s, r in row.rates()]]


@dataclass(frozen=True)
class Cohort:
    week_start: date
    size: int
    still: list[int | None]  # per following week (0 = the cohort's own week); None = in the future
    active: list[int | None]


@dataclass
class RetentionReport:
    period: Period
    weeks: int
    cohorts: list[Cohort]
    is_empty: bool

    def spec_for(self, week_start: date, offset: int, metric: str = "still") -> DrilldownSpec:
        return DrilldownSpec(metric=metric, cohort_week=week_start, offset=offset)

    def csv_rows(self) -> Iterable[list]:
        yield ["cohort_week", "size", *[f"still:w{k}" for k in range(self.weeks)],
               *[f"active:w{k}" for k in range(self.weeks)]]
        for c in self.cohorts:
            yield [c.week_start.isoformat(), c.size, *["" if v is None else v for v in c.still],
                   *["" if v is None else v for v in c.active]]


@dataclass(frozen=True)
class RfmCell:
    r: int
    f: int
    m: int
    count: int
    value: Decimal


@dataclass
class RfmReport:
    cells: list[RfmCell]
    scored_at: datetime | None
    is_empty: bool

    def spec_for(self, r: int, f: int, m: int) -> DrilldownSpec:
        return DrilldownSpec(metric="rfm", r=r, f=f, m=m)

    def csv_rows(self) -> Iterable[list]:
        yield ["r", "f", "m", "customers", "value"]
        for c in self.cells:
            yield [c.r, c.f, c.m, c.count, c.value]


@dataclass(frozen=True)
class LtvRow:
    key: str | None  # None = the total row
    label: str
    customers: int
    ltv30: Decimal | None  # None: no cohort in the period is 30 days old yet
    ltv90: Decimal | None
    ltv365: Decimal | None
    customers_by_days: dict[int, int] = field(default_factory=dict)  # the customers each LTV is averaged over


@dataclass
class LtvReport:
    period: Period
    by: str
    rows: list[LtvRow]
    total: LtvRow
    is_empty: bool

    def spec_for(self, key: str | None = None, days: int | None = None) -> DrilldownSpec:
        """Customers of a row (all of them, or with ``days`` the old-enough ones its LTV N is averaged over)."""
        dim = {"channel": "source", "livecode": "livecode"}[self.by] if key is not None else ""
        if days is None:
            return DrilldownSpec(metric="added", start=self.period.start, end=self.period.end, dim=dim, key=key)
        return DrilldownSpec(metric="ltv_customers", start=self.period.start, end=self.period.end, dim=dim,
                             key=key, days=days)

    def csv_rows(self) -> Iterable[list]:
        yield ["key", "label", "customers", "ltv30", "ltv90", "ltv365"]
        for row in [*self.rows, self.total]:
            yield [row.key or "", row.label, row.customers,
                   *["" if v is None else v for v in (row.ltv30, row.ltv90, row.ltv365)]]


@dataclass(frozen=True)
class CampaignRow:
    kind: str  # "broadcast" | "journey_step"
    id: int
    label: str
    sent_at: datetime | None
    recipients: int
    sent: int
    converted: int
    conversion_rate: float | None
    repurchased: int
    repurchase_rate: float | None
    referrals: int
    referral_rate: float | None

    @property
    def campaign(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass
class CampaignReport:
    period: Period
    days: int
    rows: list[CampaignRow]
    refreshed_at: datetime | None
    is_empty: bool

    def spec_for(self, row: CampaignRow, metric: str) -> DrilldownSpec:
        """metric: sent, converted, repurchased, referrals."""
        return DrilldownSpec(metric=f"campaign_{metric}", campaign=row.campaign, days=self.days)

    def csv_rows(self) -> Iterable[list]:
        yield ["kind", "id", "label", "sent_at", "recipients", "sent", "converted", "conversion_rate",
               "repurchased", "repurchase_rate", "referrals", "referral_rate"]
        for r in self.rows:
            yield [r.kind, r.id, r.label, r.sent_at.isoformat() if r.sent_at else "", r.recipients, r.sent,
                   r.converted, _blank(r.conversion_rate), r.repurchased, _blank(r.repurchase_rate), r.referrals,
                   _blank(r.referral_rate)]


def _blank(value):
    return "" if value is None else value


@dataclass(frozen=True)
class StaffRow:
    staff_id: int
    name: str
    added: int
    lost: int
    retained_30: float | None  # share of their customers (added in the period, ≥ 30 days ago) kept 30 days
    sop_rate: float | None  # confirm-tasks confirmed / created since the period start (journeys' report)
    sop_tasks: int = 0


@dataclass
class StaffReport:
    period: Period
    rows: list[StaffRow]
    is_empty: bool

    def spec_for(self, staff_id: int, metric: str) -> DrilldownSpec:
        """metric: added, lost, retained_30."""
        return DrilldownSpec(metric=metric, start=self.period.start, end=self.period.end, dim="staff",
                             key=str(staff_id))

    def csv_rows(self) -> Iterable[list]:
        yield ["staff_id", "name", "added", "lost", "retained_30", "sop_rate"]
        for r in self.rows:
            yield [r.staff_id, r.name, r.added, r.lost, _blank(r.retained_30), _blank(r.sop_rate)]


# --- the reports -------------------------------------------------------------------------------------------------------
def _check(user: User) -> None:
    from django.core.exceptions import PermissionDenied

    from accounts.permissions import can_configure

    if user is None or not can_configure(user):
        raise PermissionDenied("Dashboards are for operators and admins.")


def dimension_label(*, dim: str, key: str) -> str:
    """The readable name of one breakdown value (a channel state, a live code id, a staff id)."""
    return _labels(dim, [key])[key]


def _labels(dim: str, keys: Iterable[str]) -> dict[str, str]:
    """Readable names for dimension values (state, live code id, staff id)."""
    from contacts.models import Staff
    from livecodes.models import LiveCode

    keys = set(keys)
    labels: dict[str, str] = {}
    if dim == "source":
        names = dict(LiveCode.objects.filter(state__in=keys - {""}).values_list("state", "name"))
        for key in keys:
            if not key:
                labels[key] = _("Direct (no channel)")
            elif key in names:
                labels[key] = f"{names[key]} ({key})"
            elif key == REFERRAL_KEY:
                labels[key] = _("Referrals (customers' share states)")
            else:
                labels[key] = key
    else:
        ids = [int(k) for k in keys if k.isdigit()]
        if dim == "livecode":
            names = {str(pk): name for pk, name in LiveCode.objects.filter(pk__in=ids).values_list("pk", "name")}
            empty = _("No live code")
        else:
            names = {str(pk): name or userid
                     for pk, name, userid in Staff.objects.filter(pk__in=ids).values_list("pk", "name", "userid")}
            empty = _("Unknown staff member")
        for key in keys:
            labels[key] = names.get(key, empty if not key else f"#{key}")
    labels[OTHER] = _("Other")
    return labels


def growth_report(*, user: User, period: Period, by: str = "source") -> GrowthReport:
    """New customers per day by source / live code / staff member (top 8 + other), losses, net growth and the
    customers' group joins and churn. Reads DailyGrowth only."""
    from analytics.models import DailyGrowth

    _check(user)
    if by not in GROWTH_BY:
        raise ApplicationError(_("Break growth down by source, live code or staff member."))
    days = period.days
    index = {d: i for i, d in enumerate(days)}
    n = len(days)
    sums = {name: [0] * n for name in ("added", *LOST_BY, "group_joined", "group_left")}
    per_key: dict[str, list[int]] = {}
    rows = DailyGrowth.objects.filter(day__range=(period.start, period.end), dim=by).values_list(
        "day", "key", *sums)
    for day, key, *values in rows:
        i = index[day]
        added = values[0]
        for name, value in zip(sums, values, strict=True):
            sums[name][i] += value
        if added:
            per_key.setdefault(key, [0] * n)[i] += added
    ranked = sorted(per_key, key=lambda k: (-sum(per_key[k]), k))
    top, rest = ranked[:TOP_SERIES], ranked[TOP_SERIES:]
    labels = _labels(by, top)
    series = [Series(key=k, label=labels[k], values=per_key[k]) for k in top]
    if rest:
        series.append(Series(key=OTHER, label=labels[OTHER],
                             values=[sum(per_key[k][i] for k in rest) for i in range(n)]))
    net = [sums["added"][i] - sum(sums[lost][i] for lost in LOST_BY) for i in range(n)]
    totals = {name: sum(values) for name, values in sums.items()}
    totals["net"] = sum(net)
    report = GrowthReport(period=period, by=by, days=days, series=series, net=net, totals=totals,
                          is_empty=not any(v for k, v in totals.items() if k != "net"), **sums)
    report.series = [Series(key=s.key, label=s.label, values=s.values, spec=report.spec_for("added", key=s.key))
                     for s in series]
    return report


def _cohort_rows(period: Period):
    from analytics.models import DailyCohort

    return DailyCohort.objects.filter(day__range=(period.start, period.end))


def _scans(period: Period) -> tuple[dict[int, int], bool]:
    """Scans per live code over the period (whole-code rows of livecodes' own DailyStat rollup)."""
    from django.db.models import Sum

    from livecodes.models import DailyStat, LiveCode

    scans = dict(DailyStat.objects.filter(target__isnull=True, day__range=(period.start, period.end))
                 .values_list("code_id").annotate(n=Sum("scans")).order_by())
    return scans, bool(scans) or LiveCode.objects.exists()


def funnel_report(*, user: User, period: Period, by: str | None = None) -> FunnelReport:
    """Scanned → added → joined a group → first order → repeat order for customers added in the period."""
    from django.db.models import Sum

    from livecodes.models import LiveCode

    _check(user)
    if by not in FUNNEL_BY:
        raise ApplicationError(_("Break the funnel down by channel or live code."))
    field_name = {"channel": "state", "livecode": "livecode_id"}.get(by or "")
    sums = dict(added=Sum("added"), joined_group=Sum("joined_group"), first_order=Sum("first_order"),
                repeat_order=Sum("repeat_order"))
    scans, have_codes = _scans(period)
    total_scans = sum(scans.values()) if have_codes else None
    rows: list[FunnelRow] = []
    if field_name:
        grouped = list(_cohort_rows(period).values(field_name).annotate(**sums).order_by())
        if by == "livecode":
            keyed = {str(r["livecode_id"] or ""): r for r in grouped}
            scan_of = {str(code): n for code, n in scans.items()}
            for code in scan_of:  # codes scanned but with no adds yet still show their scans
                keyed.setdefault(code, {"added": 0, "joined_group": 0, "first_order": 0, "repeat_order": 0})
        else:
            keyed = {r["state"]: r for r in grouped}
            state_of = dict(LiveCode.objects.filter(pk__in=list(scans)).values_list("pk", "state"))
            scan_of = {state_of[code]: n for code, n in scans.items() if code in state_of}
            for state in scan_of:
                keyed.setdefault(state, {"added": 0, "joined_group": 0, "first_order": 0, "repeat_order": 0})
            codes_by_state = set(LiveCode.objects.filter(state__in=list(keyed)).values_list("state", flat=True))
        labels = _labels("livecode" if by == "livecode" else "source", keyed)
        for key, r in sorted(keyed.items(), key=lambda kv: (-(kv[1]["added"] or 0), kv[0])):
            if by == "livecode":
                scanned = scan_of.get(key, 0) if key else None
            else:
                scanned = scan_of.get(key, 0) if key in codes_by_state else None
            rows.append(FunnelRow(key=key, label=labels[key], scanned=scanned, added=r["added"] or 0,
                                  joined_group=r["joined_group"] or 0, first_order=r["first_order"] or 0,
                                  repeat_order=r["repeat_order"] or 0))
    t = _cohort_rows(period).aggregate(**sums)
    total = FunnelRow(key=None, label=_("Total"), scanned=total_scans, added=t["added"] or 0,
                      joined_group=t["joined_group"] or 0, first_order=t["first_order"] or 0,
                      repeat_order=t["repeat_order"] or 0)
    return FunnelReport(period=period, by=by, rows=rows, total=total,
                        is_empty=not total.added and not total_scans)


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def retention_report(*, user: User, period: Period, weeks: int = 12) -> RetentionReport:
    """Weekly cohorts (by the week customers were added) with "still a customer" and "active" per week."""
    from django.db.models import Sum
    from django.db.models.functions import TruncWeek

    from analytics.models import CohortWeek

    _check(user)
    if not 1 <= weeks <= 104:
        raise ApplicationError(_("Show between 1 and 104 weeks."))
    first, last = _monday(period.start), _monday(period.end)
    sizes = dict(_cohort_rows(Period(first, min(last + timedelta(days=6), first + timedelta(days=MAX_PERIOD_DAYS))))
                 .annotate(week=TruncWeek("day")).values_list("week").annotate(n=Sum("added")).order_by())
    sizes = {(w.date() if isinstance(w, datetime) else w): n for w, n in sizes.items()}
    cells = {(c.cohort_week, c.offset): c for c in CohortWeek.objects.filter(cohort_week__range=(first, last),
                                                                               offset__lt=weeks)}
    current = _monday(today())
    cohorts = []
    for week in sorted(w for w, n in sizes.items() if n):
        size, lost_so_far, still, active = sizes[week], 0, [], []
        for k in range(weeks):
            if week + timedelta(weeks=k) > current:
                still.append(None)
                active.append(None)
                continue
            cell = cells.get((week, k))
            lost_so_far += cell.lost if cell else 0
            still.append(size - lost_so_far)
            active.append(cell.active if cell else 0)
        cohorts.append(Cohort(week_start=week, size=size, still=still, active=active))
    return RetentionReport(period=period, weeks=weeks, cohorts=cohorts, is_empty=not cohorts)


def rfm_report(*, user: User) -> RfmReport:
    """The RFM grid snapshot (refreshed after the nightly scoring)."""
    from analytics.models import RfmCell as Cell

    _check(user)
    rows = list(Cell.objects.all())
    cells = [RfmCell(r=c.r, f=c.f, m=c.m, count=c.count, value=c.value) for c in rows]
    return RfmReport(cells=cells, scored_at=max((c.scored_at for c in rows), default=None), is_empty=not cells)


def _ltv_cutoff(days: int) -> date:
    """Cohorts of this day or earlier have had their full N days (the window of the day's last customer ended)."""
    return today() - timedelta(days=days + 1)


def ltv_report(*, user: User, period: Period, by: str = "channel") -> LtvReport:
    """Revenue per customer within 30/90/365 days after adding, per channel or live code; None = "not yet"."""
    from django.db.models import Q, Sum

    _check(user)
    if by not in LTV_BY:
        raise ApplicationError(_("Break LTV down by channel or live code."))
    field_name = "state" if by == "channel" else "livecode_id"
    aggregates: dict = {"customers": Sum("added")}
    for d in LTV_DAYS:
        old_enough = Q(day__lte=_ltv_cutoff(d))
        aggregates[f"n{d}"] = Sum("added", filter=old_enough)
        aggregates[f"v{d}"] = Sum(f"revenue_{d}", filter=old_enough)

    def row(key: str | None, label: str, r: dict) -> LtvRow:
        values = {}
        for d in LTV_DAYS:
            n, v = r[f"n{d}"] or 0, r[f"v{d}"] or Decimal(0)
            values[f"ltv{d}"] = (v / n).quantize(Decimal("0.01")) if n else None
        return LtvRow(key=key, label=label, customers=r["customers"] or 0,
                      customers_by_days={d: r[f"n{d}"] or 0 for d in LTV_DAYS}, **values)

    grouped = list(_cohort_rows(period).values(field_name).annotate(**aggregates).order_by())
    keys = {str(r[field_name] or "") for r in grouped}
    labels = _labels("source" if by == "channel" else "livecode", keys)
    rows = sorted((row(str(r[field_name] or ""), labels[str(r[field_name] or "")], r) for r in grouped),
                  key=lambda x: (-x.customers, x.key))
    total = row(None, _("Total"), _cohort_rows(period).aggregate(**aggregates))
    return LtvReport(period=period, by=by, rows=rows, total=total, is_empty=not total.customers)


def campaign_report(*, user: User, period: Period, days: int = 7) -> CampaignReport:
    """Outcomes of broadcasts and journey send steps first sent in the period (precomputed CampaignStat)."""
    from analytics.models import CampaignStat

    _check(user)
    if days not in CAMPAIGN_DAYS:
        raise ApplicationError(_("Choose 1, 7 or 30 days."))
    start, end = period.bounds()
    stats = list(CampaignStat.objects.filter(sent_at__gte=start, sent_at__lt=end).order_by("-sent_at", "-id"))
    rows = [CampaignRow(kind=s.kind, id=s.campaign_id, label=s.label, sent_at=s.sent_at, recipients=s.recipients,
                        sent=s.sent, converted=getattr(s, f"converted_{days}"),
                        conversion_rate=_rate(getattr(s, f"converted_{days}"), s.sent),
                        repurchased=getattr(s, f"repurchased_{days}"),
                        repurchase_rate=_rate(getattr(s, f"repurchased_{days}"), s.sent),
                        referrals=getattr(s, f"referrals_{days}"),
                        referral_rate=_rate(getattr(s, f"referrals_{days}"), s.sent))
            for s in stats]
    return CampaignReport(period=period, days=days, rows=rows,
                          refreshed_at=max((s.refreshed_at for s in stats), default=None), is_empty=not rows)


def staff_report(*, user: User, period: Period) -> StaffReport:
    """Per staff member: customers added (first add), lost, 30-day retention of those added, SOP execution."""
    from django.db.models import F, Q, Sum

    from analytics.models import DailyGrowth
    from contacts.models import Staff
    from journeys.selectors import staff_sop_rates

    _check(user)
    cutoff = today() - timedelta(days=31)
    cohort = {r["staff_id"]: r for r in _cohort_rows(period).values("staff_id").annotate(
        n_added=Sum("added"), n_old=Sum("added", filter=Q(day__lte=cutoff)),
        n_kept=Sum("retained_30", filter=Q(day__lte=cutoff))).order_by()}
    lost = {int(k or 0): n for k, n in DailyGrowth.objects.filter(
        day__range=(period.start, period.end), dim="staff").values_list("key").annotate(
        n=Sum(F("lost_by_customer") + F("lost_by_staff") + F("lost_by_unknown"))).order_by()}
    sop = {r["staff_id"]: r for r in staff_sop_rates(since=period.bounds()[0])}
    ids = (set(cohort) | {k for k, n in lost.items() if n} | set(sop)) - {0}
    names = {s.pk: s.name or s.userid for s in Staff.objects.filter(pk__in=ids)}
    rows = []
    for staff_id in ids:
        c = cohort.get(staff_id, {})
        rows.append(StaffRow(staff_id=staff_id, name=names.get(staff_id, f"#{staff_id}"), added=c.get("n_added") or 0,
                             lost=lost.get(staff_id, 0), retained_30=_rate(c.get("n_kept") or 0, c.get("n_old") or 0),
                             sop_rate=sop.get(staff_id, {}).get("rate"), sop_tasks=sop.get(staff_id, {}).get("tasks", 0)))
    rows.sort(key=lambda r: (-r.added, r.name))
    return StaffReport(period=period, rows=rows, is_empty=not rows)


# --- drill-down ----------------------------------------------------------------------------------------------------------
def _dim_q(spec: DrilldownSpec):
    from django.db.models import Q

    if not spec.dim:
        return Q()
    column = {"source": "state", "livecode": "livecode_id", "staff": "staff_id"}[spec.dim]

    def match(key: str) -> Q:
        if column == "state" and key == REFERRAL_KEY:
            return Q(analytics_fact__referrer_id__isnull=False)
        if column == "state":
            return Q(analytics_fact__state=key, analytics_fact__referrer_id__isnull=True)
        if not key:
            return Q(**{f"analytics_fact__{column}__isnull": True})
        if not key.isdigit():
            raise ApplicationError(_("Unknown breakdown value: %(key)s.") % {"key": key})
        return Q(**{f"analytics_fact__{column}": int(key)})

    q = Q()
    if spec.key is not None:
        q &= match(spec.key)
    for key in spec.exclude:
        q &= ~match(key)
    return q


def drilldown_contacts(*, user: User, spec: DrilldownSpec) -> QuerySet[Contact]:
    """The customers behind one number (its count equals the number on the chart). Ordered by -id: paginate with
    ``pk__lt`` (keyset)."""
    from django.db.models import Exists, F, OuterRef, Q
    from django.db.models.expressions import RawSQL

    from analytics.models import ContactWeek
    from contacts.models import Contact

    _check(user)
    metric, qs = spec.metric, Contact.objects.all()
    in_period = (spec.start, spec.end)
    if metric in ("added", "funnel_joined_group", "funnel_first_order", "funnel_repeat_order", "retained_30",
                  "ltv_customers"):
        q = Q(analytics_fact__added_day__range=in_period)
        q &= {"funnel_joined_group": Q(analytics_fact__group_joined_at__isnull=False),
              "funnel_first_order": Q(analytics_fact__first_order_at__isnull=False),
              "funnel_repeat_order": Q(analytics_fact__second_order_at__isnull=False)}.get(metric, Q())
        if metric == "retained_30":
            q &= Q(analytics_fact__added_day__lte=today() - timedelta(days=31))
            q &= (Q(analytics_fact__lost_at__isnull=True)
                  | Q(analytics_fact__lost_at__gte=F("analytics_fact__added_at") + timedelta(days=30)))
        if metric == "ltv_customers":
            q &= Q(analytics_fact__added_day__lte=_ltv_cutoff(spec.days))
        qs = qs.filter(q & _dim_q(spec))
    elif metric == "lost" or metric in LOST_BY:
        q = Q(analytics_fact__lost_day__range=in_period)
        if metric != "lost":
            q &= Q(analytics_fact__lost_by=metric.removeprefix("lost_by_"))
        qs = qs.filter(q & _dim_q(spec))
    elif metric in ("group_joined", "group_left"):
        qs = qs.filter(Q(**{f"analytics_fact__{metric}_day__range": in_period}) & _dim_q(spec))
    elif metric in ("still", "active"):
        week = spec.cohort_week
        qs = qs.filter(analytics_fact__cohort_week=week)
        if metric == "still":
            end = week + timedelta(weeks=spec.offset + 1)
            qs = qs.filter(Q(analytics_fact__lost_day__isnull=True) | Q(analytics_fact__lost_day__gte=end))
        else:
            qs = qs.filter(Exists(ContactWeek.objects.filter(week=week + timedelta(weeks=spec.offset),
                                                             contact_id=OuterRef("pk"))))
    elif metric == "rfm":
        qs = qs.filter(facts__order_count__gt=0, facts__rfm_r=spec.r, facts__rfm_f=spec.f, facts__rfm_m=spec.m)
    elif metric.startswith("campaign_"):
        from analytics.campaigns import outcome_contacts_sql

        kind, _sep, ident = spec.campaign.partition(":")
        sql, params = outcome_contacts_sql(kind=kind, campaign_id=int(ident), metric=metric.removeprefix("campaign_"),
                                           days=spec.days)
        qs = qs.filter(pk__in=RawSQL(sql, params))  # noqa: S611 - internal SQL, parameters bound
    return qs.order_by("-id")
