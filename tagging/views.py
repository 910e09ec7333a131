"""Operator pages for tags: the five-column tag board, rules, the segment builder, imports, the portrait.

Thin: parse the form, call one service, redirect or render. htmx partials come from the same URLs.
"""

import json

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from scrm.access import logged_in, operators_only
from scrm.errors import ApplicationError
from tagging import bulk, recompute, segments, selectors, services
from tagging.models import BulkJob, Dimension, Segment, Tag, TagGroup, TagRule


def _corp():
    from contacts.services import corp_get_or_create

    return corp_get_or_create(corp_id=settings.WECOM_CORP_ID)


def _int(value, default=None):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@logged_in
@require_GET
def tag_board(request: HttpRequest) -> HttpResponse:
    return render(request, "tagging/tag_board.html", {
        "section": "tags", "columns": selectors.tag_board(user=request.user), "dimensions": Dimension.choices,
        "groups": selectors.tag_groups_list(), "all_tags": selectors.tags_list(),
    })


@operators_only
@require_POST
def tag_board_action(request: HttpRequest) -> HttpResponse:
    """One endpoint for the board's small forms; ``action`` picks the service."""
    p = request.POST
    action = p.get("action", "")
    try:
        if action == "group_create":
            services.tag_group_create(corp=_corp(), dimension=p.get("dimension", ""), name=p.get("name", ""))
        elif action == "tag_create":
            group = get_object_or_404(TagGroup, pk=_int(p.get("group"), 0))
            services.tag_create(group=group, name=p.get("name", ""), color=p.get("color", ""),
                                sync_to_wecom=p.get("sync_to_wecom") == "on")
        elif action == "tag_update":
            tag = get_object_or_404(Tag, pk=_int(p.get("tag"), 0))
            services.tag_update(tag=tag, name=p.get("name") or None, color=p.get("color") or None,
                                order=_int(p.get("order")))
        elif action == "tag_merge":
            source = get_object_or_404(Tag, pk=_int(p.get("tag"), 0))
            target = get_object_or_404(Tag, pk=_int(p.get("into"), 0))
            services.tag_merge(source=source, target=target)
        elif action == "tag_delete":
            services.tag_delete(tag=get_object_or_404(Tag, pk=_int(p.get("tag"), 0)))
        elif action == "wecom_pull":
            from tagging.tasks import corp_tags_pull

            corp_tags_pull.delay(settings.WECOM_CORP_ID)
            messages.info(request, _("Reading WeCom's corp tags in the background."))
        else:
            messages.error(request, _("Unknown action."))
            return redirect("tagging:board")
        messages.success(request, _("Saved."))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("tagging:board")


@logged_in
@require_GET
def contact_portrait(request: HttpRequest, pk: int) -> HttpResponse:
    contact, dimensions, facts = selectors.contact_portrait(user=request.user, contact_id=pk)
    return render(request, "tagging/partials/_portrait.html",
                  {"contact": contact, "dimensions": dimensions, "facts": facts})


# --- segments ------------------------------------------------------------------------------------------------------
def _expression(text: str):
    try:
        return json.loads(text or "null"), None
    except json.JSONDecodeError as exc:
        return None, _("Not valid JSON: %(error)s") % {"error": exc.msg}


@logged_in
@require_http_methods(["GET", "POST"])
def segment_builder(request: HttpRequest) -> HttpResponse:
    segment = Segment.objects.filter(pk=_int(request.GET.get("segment"))).first()
    text = json.dumps(segment.expression, ensure_ascii=False, indent=2) if segment else ""
    if request.method == "POST":
        text = request.POST.get("expression", "")
        expression, error = _expression(text)
        if error is None:
            try:
                segments.expression_parse(expression)
                if not request.user.is_guide:
                    segment = Segment.objects.create(name=request.POST.get("name", "")[:64] or _("Untitled"),
                                                     expression=expression, created_by=request.user)
                    messages.success(request, _("Segment saved."))
                    return redirect(f"{request.path}?segment={segment.pk}")
            except ApplicationError as exc:
                messages.error(request, exc.message)
        else:
            messages.error(request, error)
    return render(request, "tagging/segments.html", {
        "section": "tags", "segment": segment, "expression": text, "segments": Segment.objects.all()[:100],
        "tags": selectors.tags_list()})


@logged_in
@require_POST
def segment_count(request: HttpRequest) -> HttpResponse:
    """htmx: the live count and a preview of the newest members while the expression is edited."""
    expression, error = _expression(request.POST.get("expression") or request.POST.get("condition", ""))
    count, preview, path = None, [], ""
    if error is None:
        try:
            count = segments.segment_count(user=request.user, expression=expression)
            ids = segments.segment_page(user=request.user, expression=expression, limit=10)
            from contacts.models import Contact

            preview = list(Contact.objects.filter(pk__in=ids).order_by("-id"))
        except ApplicationError as exc:
            error, path = exc.message, exc.extra.get("path", "")
    return render(request, "tagging/partials/_segment_count.html",
                  {"count": count, "error": error, "path": path, "preview": preview})


# --- rules ---------------------------------------------------------------------------------------------------------
@operators_only
@require_http_methods(["GET", "POST"])
def rule_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        p = request.POST
        try:
            if p.get("action") == "preset":
                recompute.tag_rule_presets_install(corp=_corp(), preset=p.get("preset", ""))
            else:
                condition, error = _expression(p.get("condition", ""))
                if error:
                    raise ApplicationError(error)
                tag = get_object_or_404(Tag, pk=_int(p.get("tag"), 0))
                recompute.tag_rule_create(name=p.get("name", ""), tag=tag, condition=condition)
            messages.success(request, _("Saved. The rule is applied to every customer in the background."))
        except ApplicationError as exc:
            messages.error(request, exc.message + (f" ({exc.extra['path']})" if exc.extra.get("path") else ""))
        return redirect("tagging:rules")
    return render(request, "tagging/rules.html", {
        "section": "tags", "rules": TagRule.objects.select_related("tag"), "tags": selectors.tags_list(),
        "presets": recompute.PRESETS})


# --- imports and jobs ----------------------------------------------------------------------------------------------
@operators_only
@require_http_methods(["GET", "POST"])
def imports(request: HttpRequest) -> HttpResponse:
    if request.method == "POST" and request.FILES.get("file"):
        kind = request.POST.get("kind", "")
        if kind in ("contacts", "orders", "entitlements"):
            job = bulk.import_start(user=request.user, kind=kind, upload=request.FILES["file"])
            return redirect("tagging:job", pk=job.pk)
        messages.error(request, _("Choose what the file contains."))
    return render(request, "tagging/imports.html", {"section": "tags", "jobs": BulkJob.objects.all()[:20]})


@operators_only
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(BulkJob, pk=pk)
    template = "tagging/partials/_job.html" if request.htmx else "tagging/job.html"
    return render(request, template, {"section": "tags", "job": job})
