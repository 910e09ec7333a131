"""Operator pages: 旅程 (journeys: list and report) and 群发 (broadcasts: list, create, preview, send)."""

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from journeys import broadcasts, selectors
from journeys.forms import BroadcastForm
from journeys.models import Broadcast, Journey, MassSendTask
from scrm.access import logged_in, operators_only
from scrm.csvexport import csv_response
from scrm.errors import ApplicationError


@logged_in
@require_GET
def journey_list(request: HttpRequest) -> HttpResponse:
    """Operators see every journey; a guide sees the confirm-tasks waiting for them (their SOP list)."""
    if request.user.is_guide:
        tasks = (MassSendTask.objects.filter(staff_id=request.user.staff_id or 0)
                 .order_by("-id")[:100])
        return render(request, "journeys/list.html", {"section": "journeys", "tasks": tasks, "guide": True})
    journeys = (Journey.objects.exclude(status=Journey.Status.RETIRED)
                .annotate(entered=Count("enrollments"),
                          active=Count("enrollments", filter=Q(enrollments__status="active")),
                          converted=Count("enrollments", filter=Q(enrollments__status="converted")))
                .order_by("-id")[:200])
    return render(request, "journeys/list.html", {"section": "journeys", "journeys": journeys})


@operators_only
@require_GET
def journey_detail(request: HttpRequest, pk: int) -> HttpResponse:
    journey = get_object_or_404(Journey, pk=pk)
    report = selectors.journey_report(journey=journey)
    peak = max([s["messages"] for s in report["steps"]] + [1])
    return render(request, "journeys/detail.html", {"section": "journeys", "journey": journey, "report": report,
                                                    "peak": peak, "staff": selectors.staff_sop_rates()})


@operators_only
@require_GET
def journey_report_csv(request: HttpRequest, pk: int) -> HttpResponse:
    journey = get_object_or_404(Journey, pk=pk)
    report = selectors.journey_report(journey=journey)
    header = ["position", "kind", "label", "channel", "messages", "reached", "tasks_created",
              "staff_confirmation_rate", "median_confirm_delay_s", "runs"]
    rows = [[s["position"], s["kind"], s["label"], s["channel"], s["messages"], s["reached"], s["tasks_created"],
             s["staff_confirmation_rate"], s["median_confirm_delay_s"],
             "; ".join(f"{k}={v}" for k, v in sorted(s["runs"].items()))] for s in report["steps"]]
    return csv_response([header, *rows], filename=f"journey-{journey.pk}-report.csv")


@logged_in
@require_http_methods(["GET", "POST"])
def broadcast_list(request: HttpRequest) -> HttpResponse:
    """Everyone sees past and scheduled broadcasts; only operators and admins create them."""
    from django.conf import settings
    from django.core.exceptions import PermissionDenied

    from accounts.permissions import can_configure
    from contacts.services import corp_get_or_create

    may_create = can_configure(request.user)
    if request.method == "POST" and not may_create:
        raise PermissionDenied
    form = BroadcastForm(request.POST or None) if may_create else None
    if request.method == "POST" and form is not None and form.is_valid():
        d = form.cleaned_data
        try:
            b = broadcasts.broadcast_create(
                corp=corp_get_or_create(corp_id=settings.WECOM_CORP_ID), name=d["name"], template=d["template"],
                channel=d["channel"], segment=d["segment"], chat_ids=d["chat_ids"], priority=d["priority"],
                user=request.user)
            if d["send_at"]:
                broadcasts.broadcast_schedule(broadcast=b, send_at=d["send_at"])
            return redirect("web:broadcast_detail", pk=b.pk)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
    items = Broadcast.objects.select_related("segment", "template").order_by("-id")[:100]
    return render(request, "journeys/broadcasts.html", {"section": "broadcasts", "form": form, "items": items})


@operators_only
@require_GET
def broadcast_detail(request: HttpRequest, pk: int) -> HttpResponse:
    b = get_object_or_404(Broadcast.objects.select_related("segment", "template"), pk=pk)
    preview = broadcasts.broadcast_preview(broadcast=b) if b.status in ("draft", "scheduled") else None
    statuses = dict(b.messages.values_list("status").annotate(n=Count("id")))
    return render(request, "journeys/broadcast_detail.html",
                  {"section": "broadcasts", "b": b, "preview": preview, "statuses": statuses})


@operators_only
@require_POST
def broadcast_send_now(request: HttpRequest, pk: int) -> HttpResponse:
    b = get_object_or_404(Broadcast, pk=pk)
    try:
        broadcasts.broadcast_send(broadcast=b)
    except ApplicationError as exc:
        from django.contrib import messages

        messages.error(request, exc.message)
    return redirect("web:broadcast_detail", pk=b.pk)

