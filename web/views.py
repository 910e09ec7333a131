"""The operator pages. Each view parses its query string, reads through a scoped selector and renders.

htmx: a list view answers an htmx request (not boosted, not a history restore) with its rows partial from the
same URL, and the full page otherwise (STYLE B3).
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from contacts import selectors
from scrm.access import logged_in, operators_only
from scrm.errors import ApplicationError
from tagging import bulk
from web import selectors as web_selectors
from web.forms import ContactBulkTagForm, ContactFilterForm, GroupFilterForm, GroupMembersForm
from web.pagination import keyset_page


def htmx_partial(request: HttpRequest) -> bool:
    htmx = request.htmx
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


@logged_in
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    summary = web_selectors.dashboard_summary(user=request.user)
    return render(request, "web/dashboard.html", {"section": "dashboard", "summary": summary})


@logged_in
@require_GET
@vary_on_headers("HX-Request")
def contact_list(request: HttpRequest) -> HttpResponse:
    form = ContactFilterForm(request.GET, user=request.user)
    filters = form.filters()
    contacts = selectors.contact_list(
        user=request.user,
        search=filters["q"] or "",
        staff_userid=filters["staff"] or "",
        only_customers=bool(filters["customers_only"]),
    )
    if filters["tag"]:
        page = web_selectors.contact_page_with_tag(user=request.user, tag_id=filters["tag"], contacts=contacts,
                                                   after=filters["after"], before=filters["before"])
    else:
        page = keyset_page(web_selectors.with_group_count(contacts), after=filters["after"],
                           before=filters["before"])
    context = {"section": "contacts", "form": form, "page": page, "can_bulk_tag": not request.user.is_guide,
               "filtered": bool(filters["q"] or filters["staff"] or filters["customers_only"] or filters["tag"])}
    if htmx_partial(request):
        return render(request, "web/partials/_contact_rows.html", context)
    return render(request, "web/contact_list.html", context)


@operators_only
@require_POST
def contact_bulk_tag(request: HttpRequest) -> HttpResponse:
    """Tag or untag the ticked contacts, or all contacts matching the list's filters, as a bulk job."""
    form = ContactBulkTagForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("web:contact_list")
    data = form.cleaned_data
    filters = None
    if data["all_matching"]:
        filters = {"q": data["q"], "staff": data["staff"], "customers_only": data["customers_only"],
                   "tag": data["tag"]}
    try:
        job = bulk.bulk_tag_start(user=request.user, action=data["action"], tag_ids=[data["tag_id"]],
                                  contact_ids=None if filters else data["contact_ids"], filters=filters)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web:contact_list")
    return redirect("tagging:job", pk=job.pk)


@logged_in
@require_GET
def contact_detail(request: HttpRequest, pk: int) -> HttpResponse:
    detail = web_selectors.contact_detail_for_user(user=request.user, contact_id=pk)
    return render(request, "web/contact_detail.html", {"section": "contacts", "detail": detail})


@logged_in
@require_GET
@vary_on_headers("HX-Request")
def group_list(request: HttpRequest) -> HttpResponse:
    form = GroupFilterForm(request.GET)
    filters = form.filters()
    chats = selectors.group_chat_list(user=request.user, search=filters["q"] or "", status=filters["status"] or "")
    page = keyset_page(chats, after=filters["after"], before=filters["before"])
    context = {"section": "groups", "form": form, "page": page, "filtered": bool(filters["q"] or filters["status"])}
    if htmx_partial(request):
        return render(request, "web/partials/_group_rows.html", context)
    return render(request, "web/group_list.html", context)


@logged_in
@require_GET
def group_detail(request: HttpRequest, pk: int) -> HttpResponse:
    form = GroupMembersForm(request.GET)
    include_left = bool(form.is_valid() and form.cleaned_data["left"])
    detail = web_selectors.group_detail_for_user(user=request.user, chat_pk=pk, include_left=include_left)
    return render(request, "web/group_detail.html",
                  {"section": "groups", "detail": detail, "include_left": include_left})
