"""The analytics pages (数据分析): one page per dashboard, the drill-down list, CSV exports.

Each dashboard view parses its query-string form, calls one report selector (analytics/selectors.py) and renders:
the full page, the panel alone for htmx (changing the range swaps #analytics-body), or ``?format=csv``. What this
module adds is presentation only: the chart specs read by static/analytics/js/charts.js and the table cells, each
drillable number carrying the URL of the customers behind it. Operators and admins only: aggregates would show a
guide other guides' customers.
"""

import json
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from functools import cache

from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from analytics import selectors
from analytics.forms import (
    CampaignForm,
    DrilldownPageForm,
    FunnelForm,
    GrowthForm,
    LtvForm,
    RangeForm,
    RetentionForm,
    StaffForm,
)
from scrm.access import operators_only
from scrm.csvexport import csv_response
from scrm.errors import ApplicationError
from web.pagination import keyset_page
from web.views import htmx_partial

PAGES = [
    ("growth", gettext_lazy("Growth"), gettext_lazy("New customers per day by source, live code and staff member; "
                                                    "customers lost, net growth, group joins and leaves.")),
    ("funnel", gettext_lazy("Funnel"), gettext_lazy("Scanned → added → joined a group → first order → repeat "
                                                    "order, with the conversion at each step.")),
    ("retention", gettext_lazy("Retention"), gettext_lazy("Weekly cohorts by the week customers were added: "
                                                          "still a customer, and active, in each following week.")),
    ("rfm", gettext_lazy("RFM"), gettext_lazy("Recency × frequency × monetary grid; turn any cell into a "
                                              "segment.")),
    ("ltv", gettext_lazy("LTV"), gettext_lazy("Revenue per customer 30, 90 and 365 days after adding, by channel "
                                              "and live code.")),
    ("campaigns", gettext_lazy("Campaigns"), gettext_lazy("After a broadcast or a journey step: conversion, "
                                                          "repurchase and referral rates within N days.")),
    ("staff", gettext_lazy("Staff"), gettext_lazy("Adds, losses, 30-day retention of their customers and SOP "
                                                  "execution rate per staff member.")),
]
CHART_DAYS_MAX = 400  # above this, the daily charts are replaced by the table and the CSV


@cache
def customers_path() -> str:
    return reverse("analytics:customers")


def drill_url(spec: "selectors.DrilldownSpec | None") -> str | None:
    """The drill-down list behind one number (a long range links thousands of numbers: no reverse() each)."""
    return f"{customers_path()}?{spec.to_query()}" if spec is not None else None


def percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


# --- CSV (scrm.csvexport.csv_response: streamed, UTF-8 with a BOM for Excel) -------------------------------------
def csv_filename(page: str, form: RangeForm, *parts: str) -> str:
    period = form.period()
    return "-".join([page, *[p for p in parts if p], period.start.isoformat(), period.end.isoformat()]) + ".csv"


# --- the shared page flow ------------------------------------------------------------------------------------------
def dashboard_render(request: HttpRequest, *, page: str, form: RangeForm, build: Callable[[], object],
                     present: Callable[[object, RangeForm], dict], csv_parts: Callable[[RangeForm], list[str]]
                     ) -> HttpResponse:
    """Validate the form, call the report selector, and answer with CSV, the htmx panel or the full page."""
    report = None
    if form.is_valid():
        try:
            report = build()
        except ApplicationError as exc:
            form.add_error(None, exc.message)
    if report is not None and request.GET.get("format") == "csv":
        return csv_response(report.csv_rows(), filename=csv_filename(page, form, *csv_parts(form)))
    context = {"section": "analytics", "page": page, "pages": PAGES, "form": form, "report": report,
               "title": dict((slug, title) for slug, title, _d in PAGES)[page],
               "panel": f"analytics/partials/_{page}.html", "csv_query": csv_query(form)}
    if report is not None:
        context.update(charts_encode(present(report, form)))
    template = "analytics/partials/_body.html" if htmx_partial(request) else "analytics/dashboard.html"
    return render(request, template, context)


def charts_encode(context: dict) -> dict:
    """Chart specs (``chart_*`` dicts) as JSON text for the canvas's ``data-spec`` attribute (autoescaped).

    Not ``json_script``: htmx (``allowScriptTags: false`` in base.html) drops every <script> element from
    swapped content, so a spec in a script block would vanish when the range changes.
    """
    return {key: json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False)
            if key.startswith("chart_") and isinstance(value, dict) else value
            for key, value in context.items()}


def csv_query(form: RangeForm) -> str:
    query = form.data.copy()
    query["format"] = "csv"
    return query.urlencode() if hasattr(query, "urlencode") else ""


@operators_only
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "analytics/overview.html", {"section": "analytics", "pages": PAGES})


# --- growth --------------------------------------------------------------------------------------------------------
GROWTH_METRICS = [
    ("added", gettext_lazy("New customers")),
    ("lost_by_customer", gettext_lazy("Lost: deleted the staff member")),
    ("lost_by_staff", gettext_lazy("Lost: deleted by staff")),
    ("lost_by_unknown", gettext_lazy("Lost: found missing by sync")),
    ("net", gettext_lazy("Net growth")),
    ("group_joined", gettext_lazy("Joined a group")),
    ("group_left", gettext_lazy("Left all groups")),
]


DAY_SLOT = date(1111, 11, 11)  # a day no report has: replaced by {label} in link templates


def day_link(spec_for_day: Callable) -> str:
    """A drill-down URL for any day of a daily chart: ``{label}`` stands for the day, which charts.js fills in
    from the clicked bar's label (one template per series instead of a URL per day: a year is 365 of them)."""
    return drill_url(spec_for_day(DAY_SLOT)).replace(DAY_SLOT.isoformat(), "{label}")


def growth_present(report, form) -> dict:
    days = [d.isoformat() for d in report.days]
    drillable = [m for m, _label in GROWTH_METRICS if m != "net"]

    def cell(metric, i, day):
        value = getattr(report, metric)[i]
        return value, drill_url(report.spec_for(metric, day=day)) if value and metric in drillable else None

    def daily(metric, color):
        """One metric's daily series; a click lists the customers behind that day (net is not a list)."""
        dataset = {"label": str(dict(GROWTH_METRICS)[metric]), "data": getattr(report, metric), "color": color}
        if metric in drillable:
            dataset["link"] = day_link(lambda day: report.spec_for(metric, day=day))
        return dataset

    context = {
        "totals": [(label, report.totals.get(metric, 0), drill_url(report.spec_for(metric)) if metric in drillable
                    else None) for metric, label in GROWTH_METRICS],
        "series_rows": [(s.label, sum(s.values), drill_url(s.spec)) for s in report.series],
        "daily_rows": [(day, [cell(m, i, day) for m, _label in GROWTH_METRICS])
                       for i, day in enumerate(report.days)][::-1],
        "metric_labels": [label for _m, label in GROWTH_METRICS],
        "charts": len(days) <= CHART_DAYS_MAX,
    }
    if not context["charts"]:
        return context
    context["chart_new"] = {
        "type": "bar", "stacked": True, "labels": days,
        "datasets": [{"label": s.label, "data": s.values,
                      "link": day_link(lambda day, key=s.key: report.spec_for("added", day=day, key=key))}
                     for s in report.series],
    }
    context["chart_net"] = {
        "type": "line", "labels": days,
        "datasets": [daily("added", "#16a34a"), daily("lost_by_customer", "#dc2626"),
                     daily("lost_by_staff", "#d97706"), daily("lost_by_unknown", "#6b7280"),
                     daily("net", "#2563eb")],
    }
    has_groups = report.totals.get("group_joined") or report.totals.get("group_left")
    context["chart_groups"] = {  # without joins or leaves: a sentence, not empty axes
        "type": "bar", "labels": days, "datasets": [daily("group_joined", "#16a34a"), daily("group_left", "#dc2626")],
    } if has_groups else None
    return context


@operators_only
@require_GET
@vary_on_headers("HX-Request")
def growth(request: HttpRequest) -> HttpResponse:
    form = GrowthForm(request.GET)
    return dashboard_render(
        request, page="growth", form=form, present=growth_present,
        build=lambda: selectors.growth_report(user=request.user, period=form.period(), by=form.cleaned_data["by"]),
        csv_parts=lambda f: [f.cleaned_data["by"]])


# --- funnel --------------------------------------------------------------------------------------------------------
FUNNEL_LABELS = {"scanned": gettext_lazy("Scanned"), "added": gettext_lazy("Added"),
                 "joined_group": gettext_lazy("Joined a group"), "first_order": gettext_lazy("First order"),
                 "repeat_order": gettext_lazy("Repeat order")}


def funnel_cells(report, row) -> list[dict]:
    rates = dict(row.rates())
    return [{"value": getattr(row, step), "rate": percent(rates.get(step)),
             "url": drill_url(report.spec_for(step, key=row.key))}
            for step in selectors.FUNNEL_STEPS]


def funnel_present(report, form) -> dict:
    rows = [(row.label, funnel_cells(report, row)) for row in report.rows]
    total = funnel_cells(report, report.total)
    steps = selectors.FUNNEL_STEPS
    chart_rows = rows[:8] or [(str(_("All customers")), total)]
    return {
        "steps": [FUNNEL_LABELS[s] for s in steps], "rows": rows, "total": total,
        "chart_funnel": {
            "type": "bar", "labels": [str(FUNNEL_LABELS[s]) for s in steps],
            "datasets": [{"label": label, "data": [c["value"] for c in cells], "links": [c["url"] for c in cells]}
                         for label, cells in chart_rows],
        },
    }


@operators_only
@require_GET
@vary_on_headers("HX-Request")
def funnel(request: HttpRequest) -> HttpResponse:
    form = FunnelForm(request.GET)
    return dashboard_render(
        request, page="funnel", form=form, present=funnel_present,
        build=lambda: selectors.funnel_report(user=request.user, period=form.period(), by=form.cleaned_data["by"]),
        csv_parts=lambda f: [f.cleaned_data["by"] or "all"])


# --- retention -----------------------------------------------------------------------------------------------------
HEAT_LEVELS = 10


def heat_level(value: int | None, size: int) -> int | None:
    if value is None:
        return None
    return round(value * HEAT_LEVELS / size) if size else 0


def retention_present(report, form) -> dict:
    show = form.cleaned_data["show"]
    rows = []
    for cohort in report.cohorts:
        values = cohort.still if show == "still" else cohort.active
        cells = [{"value": v, "rate": percent(v / cohort.size) if v is not None and cohort.size else None,
                  "level": heat_level(v, cohort.size),
                  "url": drill_url(report.spec_for(cohort.week_start, k, metric=show)) if v is not None else None}
                 for k, v in enumerate(values)]
        rows.append({"week": cohort.week_start, "size": cohort.size, "cells": cells})
    return {"show": show, "rows": rows, "offsets": list(range(report.weeks)),
            "show_choices": RetentionForm.SHOW}


@operators_only
@require_GET
@vary_on_headers("HX-Request")
def retention(request: HttpRequest) -> HttpResponse:
    form = RetentionForm(request.GET)
    return dashboard_render(
        request, page="retention", form=form, present=retention_present,
        build=lambda: selectors.retention_report(user=request.user, period=form.period(),
                                                 weeks=form.cleaned_data["weeks"]),
        csv_parts=lambda f: [])


# --- RFM -----------------------------------------------------------------------------------------------------------
SCORES = [5, 4, 3, 2, 1]


def rfm_present(report, m: int | None) -> dict:
    cells = {(c.r, c.f, c.m): c for c in report.cells}
    peak = max((c.count for c in report.cells), default=0)
    grids = []
    for m_score in ([m] if m else SCORES):
        rows = []
        for r in SCORES:
            row = []
            for f in SCORES[::-1]:
                cell = cells.get((r, f, m_score))
                count = cell.count if cell else 0
                row.append({"r": r, "f": f, "m": m_score, "count": count,
                            "value": cell.value if cell else Decimal(0), "level": heat_level(count, peak),
                            "url": drill_url(report.spec_for(r, f, m_score)) if count else None})
            rows.append((r, row))
        grids.append((m_score, rows))
    return {"grids": grids, "f_scores": SCORES[::-1]}


@operators_only
@require_GET
def rfm(request: HttpRequest) -> HttpResponse:
    """A snapshot, not a range: the grid as of the last RFM scoring (``?m=1..5`` shows one monetary score)."""
    m = request.GET.get("m")
    m = int(m) if m in {"1", "2", "3", "4", "5"} else None
    report = selectors.rfm_report(user=request.user)
    if request.GET.get("format") == "csv":
        return csv_response(report.csv_rows(), filename=f"rfm-{timezone.localdate().isoformat()}.csv")
    context = {"section": "analytics", "page": "rfm", "pages": PAGES, "report": report, "m": m,
               "title": _("RFM"), **rfm_present(report, m)}
    return render(request, "analytics/rfm.html", context)


@operators_only
@require_POST
def rfm_segment_create(request: HttpRequest) -> HttpResponse:
    from analytics.services import rfm_cell_segment_create

    try:
        r, f, m = (int(request.POST.get(name, "")) for name in ("r", "f", "m"))
        segment = rfm_cell_segment_create(user=request.user, r=r, f=f, m=m)
    except ValueError:
        messages.error(request, _("Choose a cell of the grid."))
        return redirect("analytics:rfm")
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("analytics:rfm")
    messages.success(request, _("Segment “%(name)s” created from the RFM cell.") % {"name": segment.name})
    return redirect(f"{reverse('tagging:segments')}?segment={segment.pk}")


# --- LTV -----------------------------------------------------------------------------------------------------------
def ltv_cells(report, row) -> dict:
    return {"label": row.label, "customers": row.customers, "url": drill_url(report.spec_for(row.key)),
            "ltv": [{"value": getattr(row, f"ltv{days}"), "days": days,
                     "base": row.customers_by_days.get(days),
                     "url": drill_url(report.spec_for(row.key, days=days))
                     if getattr(row, f"ltv{days}") is not None else None}
                    for days in selectors.LTV_DAYS]}


def ltv_present(report, form) -> dict:
    total = report.total
    context = {"rows": [ltv_cells(report, row) for row in report.rows], "total": ltv_cells(report, total),
               "chart_ltv": None}
    if all(v is None for v in (total.ltv30, total.ltv90, total.ltv365)):
        return context  # nothing to draw yet
    context["chart_ltv"] = {
        "type": "bar", "labels": [_("%(days)s days") % {"days": d} for d in selectors.LTV_DAYS],
        "datasets": [{"label": row.label,
                      "data": [float(v) if v is not None else None for v in (row.ltv30, row.ltv90, row.ltv365)],
                      "links": [drill_url(report.spec_for(row.key, days=d)) for d in selectors.LTV_DAYS]}
                     for row in report.rows[:8]],
    }
    return context


@operators_only
@require_GET
@vary_on_headers("HX-Request")
def ltv(request: HttpRequest) -> HttpResponse:
    form = LtvForm(request.GET)
    return dashboard_render(
        request, page="ltv", form=form, present=ltv_present,
        build=lambda: selectors.ltv_report(user=request.user, period=form.period(), by=form.cleaned_data["by"]),
        csv_parts=lambda f: [f.cleaned_data["by"]])


# --- campaigns -----------------------------------------------------------------------------------------------------
def campaign_cells(report, row) -> dict:
    def cell(metric, value, rate=None):
        return {"value": value, "rate": percent(rate), "url": drill_url(report.spec_for(row, metric))}

    return {"row": row, "cells": [cell("sent", row.sent), cell("converted", row.converted, row.conversion_rate),
                                  cell("repurchased", row.repurchased, row.repurchase_rate),
                                  cell("referrals", row.referrals, row.referral_rate)]}


def campaign_present(report, form) -> dict:
    rows = [campaign_cells(report, row) for row in report.rows]
    chart_rows = rows[:20]
    rates = [(1, _("Conversion rate")), (2, _("Repurchase rate")), (3, _("Referral rate"))]  # cells after "sent"
    return {
        "rows": rows,
        "chart_campaigns": {
            "type": "bar", "percent": True, "labels": [r["row"].label for r in chart_rows],
            "datasets": [{"label": str(label), "data": [r["cells"][i]["rate"] for r in chart_rows],
                          "links": [r["cells"][i]["url"] for r in chart_rows]} for i, label in rates],
        },
    }


@operators_only
@require_GET
@vary_on_headers("HX-Request")
def campaigns(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.GET)
    return dashboard_render(
        request, page="campaigns", form=form, present=campaign_present,
        build=lambda: selectors.campaign_report(user=request.user, period=form.period(),
                                                days=form.cleaned_data["days"]),
        csv_parts=lambda f: [f"{f.cleaned_data['days']}d"])


# --- staff ---------------------------------------------------------------------------------------------------------
def staff_present(report, form) -> dict:
    rows = [{"row": row, "added_url": drill_url(report.spec_for(row.staff_id, "added")),
             "lost_url": drill_url(report.spec_for(row.staff_id, "lost")),
             "retained_url": drill_url(report.spec_for(row.staff_id, "retained_30")),
             "retained": percent(row.retained_30), "sop": percent(row.sop_rate)} for row in report.rows]
    chart_rows = rows[:30]
    return {
        "rows": rows,
        "chart_staff": {
            "type": "bar", "labels": [r["row"].name for r in chart_rows],
            "datasets": [
                {"label": str(_("Added")), "data": [r["row"].added for r in chart_rows], "color": "#16a34a",
                 "links": [r["added_url"] for r in chart_rows]},
                {"label": str(_("Lost")), "data": [r["row"].lost for r in chart_rows], "color": "#dc2626",
                 "links": [r["lost_url"] for r in chart_rows]},
            ],
        },
    }


@operators_only
@require_GET
@vary_on_headers("HX-Request")
def staff(request: HttpRequest) -> HttpResponse:
    form = StaffForm(request.GET)
    return dashboard_render(
        request, page="staff", form=form, present=staff_present,
        build=lambda: selectors.staff_report(user=request.user, period=form.period()),
        csv_parts=lambda f: [])


# --- drill-down ----------------------------------------------------------------------------------------------------
DRILL_TITLES = {
    "added": gettext_lazy("New customers"), "lost": gettext_lazy("Customers lost"),
    "lost_by_customer": gettext_lazy("Customers lost: deleted the staff member"),
    "lost_by_staff": gettext_lazy("Customers lost: deleted by staff"),
    "lost_by_unknown": gettext_lazy("Customers lost: found missing by a WeCom sync (who deleted whom is unknown)"),
    "group_joined": gettext_lazy("Customers who joined a group"),
    "group_left": gettext_lazy("Customers who left all groups"),
    "funnel_joined_group": gettext_lazy("New customers who joined a group"),
    "funnel_first_order": gettext_lazy("New customers who placed a first order"),
    "funnel_repeat_order": gettext_lazy("New customers who ordered again"),
    "retained_30": gettext_lazy("Customers kept 30 days"),
    "ltv_customers": gettext_lazy("Customers the LTV is averaged over"),
    "still": gettext_lazy("Cohort customers still a customer"), "active": gettext_lazy("Cohort customers active"),
    "rfm": gettext_lazy("Customers in an RFM cell"),
    "campaign_sent": gettext_lazy("Recipients the message was sent to"),
    "campaign_converted": gettext_lazy("Recipients who ordered"),
    "campaign_repurchased": gettext_lazy("Recipients who ordered again"),
    "campaign_referrals": gettext_lazy("Customers referred by recipients"),
}
DIM_LABELS = {"source": gettext_lazy("Source"), "livecode": gettext_lazy("Live code"),
              "staff": gettext_lazy("Staff member")}


def drilldown_facts(spec) -> list[tuple[str, str]]:
    """What the list is restricted to, in words (the title says which number it is)."""
    facts = []
    if spec.start and spec.end:
        facts.append((_("Period"), spec.start.isoformat() if spec.start == spec.end
                      else f"{spec.start.isoformat()} – {spec.end.isoformat()}"))
    if spec.dim:
        if spec.key is not None:
            value = selectors.dimension_label(dim=spec.dim, key=spec.key)
        else:
            value = _("everything else") if spec.exclude else _("none")
        facts.append((str(DIM_LABELS[spec.dim]), value))
    if spec.cohort_week is not None:
        facts.append((_("Cohort week"), spec.cohort_week.isoformat()))
        facts.append((_("Week"), str(spec.offset)))
    if spec.r is not None:
        facts.append(("R · F · M", f"{spec.r} · {spec.f} · {spec.m}"))
    if spec.campaign:
        facts.append((_("Campaign"), spec.campaign))
    if spec.days is not None:
        facts.append((_("Within"), _("%(days)s days") % {"days": spec.days}))
    return facts


def drilldown_csv_rows(contacts) -> Iterator[list]:
    yield ["contact_id", "external_userid", "name", "first_added_at", "active_relations"]
    for contact in contacts.order_by("pk").iterator(chunk_size=2000):
        added = timezone.localtime(contact.first_added_at).isoformat() if contact.first_added_at else ""
        yield [contact.pk, contact.external_userid, contact.name, added, contact.active_relations]


@operators_only
@require_GET
@vary_on_headers("HX-Request")
def customers(request: HttpRequest) -> HttpResponse:
    """The customers behind one number of a dashboard; its count equals that number."""
    from contacts.selectors import relations_prefetch
    from web.selectors import with_group_count

    try:
        spec = selectors.DrilldownSpec.from_query(request.GET)
    except ApplicationError as exc:
        return render(request, "analytics/customers.html",
                      {"section": "analytics", "error": exc.message, "pages": PAGES}, status=400)
    contacts = selectors.drilldown_contacts(user=request.user, spec=spec)
    params = DrilldownPageForm(request.GET).values()
    if params["format"] == "csv":
        return csv_response(drilldown_csv_rows(contacts),
                            filename=f"customers-{spec.metric}-{date_stamp(spec)}.csv")
    page = keyset_page(with_group_count(contacts.prefetch_related(relations_prefetch())),
                       after=params["after"], before=params["before"])
    context = {"section": "analytics", "pages": PAGES, "spec": spec, "page": page, "can_bulk_tag": False,
               "title": DRILL_TITLES[spec.metric], "facts": drilldown_facts(spec),
               "csv_query": f"{spec.to_query()}&format=csv"}
    if htmx_partial(request):
        return render(request, "web/partials/_contact_rows.html", context)
    context["count"] = contacts.count()
    return render(request, "analytics/customers.html", context)


def date_stamp(spec) -> str:
    if spec.start and spec.end:
        return f"{spec.start.isoformat()}-{spec.end.isoformat()}"
    if spec.cohort_week:
        return f"{spec.cohort_week.isoformat()}-w{spec.offset}"
    return timezone.localdate().isoformat()
