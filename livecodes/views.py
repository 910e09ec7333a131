"""Live-code pages: the public landing page (hot path) and the operator pages. Views parse and call services."""

import hashlib
from functools import lru_cache
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from contacts.models import Corp
from livecodes import hotpath, ipregion, qr, selectors, services
from livecodes.forms import (
    GroupTargetForm,
    ImageUploadForm,
    LiveCodeForm,
    OptionForm,
    ReplaceImageForm,
    StaffTargetForm,
    TargetEditForm,
    WelcomeMiniProgramForm,
)
from livecodes.models import LiveCode, LiveCodeTarget, WelcomeImage, WelcomeMiniProgram
from scrm.access import logged_in, operators_only, public
from scrm.csvexport import csv_response
from scrm.errors import ApplicationError
from web.charts import level


# --- public: the hot path ------------------------------------------------------------------------------------
def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number is not None and -180.0 <= number <= 180.0 else None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


@public("the permanent landing page of a live code: shows the routed QR, nothing private")
@require_GET
def landing(request: HttpRequest, slug: str) -> HttpResponse:
    return landing_response(request, slug)


def landing_response(request: HttpRequest, slug: str) -> HttpResponse:
    """The scan hot path. ``livecodes.middleware.LandingMiddleware`` calls it before the session, auth, CSRF and
    messages middleware (a public page uses none of them); the security headers are still added."""
    region = request.headers.get(settings.LIVECODE_REGION_HEADER, "")[:64] if settings.LIVECODE_REGION_HEADER else ""
    query = request.GET if request.META.get("QUERY_STRING") else None
    if query is not None:
        option_id, lat, lng = _int(query.get("o")), _float(query.get("lat")), _float(query.get("lng"))
    else:
        option_id = lat = lng = None
    cookie = request.COOKIES.get(hotpath.COOKIE)
    known, person, contact = None, "", ""
    if settings.LIVECODE_WECOM_OAUTH or settings.LIVECODE_OA_APPID:
        tried = hotpath.identification(cookie)
        state = query.get("state") if query is not None and query.get("code") else None
        if tried == "p" and state == OA_STATE and settings.LIVECODE_OA_APPID:
            identity = services.landing_identify_oa(code=query["code"][:512])  # back from the official account
            known, person, contact = identity.known, identity.person, identity.contact
        elif tried == "p" and state == OAUTH_STATE and settings.LIVECODE_WECOM_OAUTH:
            identity = services.landing_identify(code=query["code"][:512])  # back from WeCom OAuth: once per visitor
            known, contact = identity.known, identity.contact
        elif not tried and "MicroMessenger" in (agent := request.headers.get("User-Agent", "")):
            # Inside WeChat the official account identifies everyone (openid); inside the WeCom client (its agent
            # also says wxwork) WeCom's own OAuth is the one that works, when it is on.
            official = bool(settings.LIVECODE_OA_APPID) and not ("wxwork" in agent and settings.LIVECODE_WECOM_OAUTH)
            return _oauth_redirect(request, slug, option_id, cookie, official_account=official)
    # The address is looked up (once per address and process) only if the code rotates by location and neither
    # the region header nor coordinates said where the scanner is.
    ip = ipregion.client_ip(request.META) if not region and lat is None and settings.LIVECODE_IP_REGION else ""
    result = hotpath.scan(slug=slug, cookie=cookie, option_id=option_id, region=region, lat=lat, lng=lng,
                          known=known, person=person, ip=ip, contact=contact)
    language = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
    if language not in _languages():
        language = settings.LANGUAGE_CODE
    page = _landing_html(result, language)
    response = HttpResponse(page, status=404 if result.status == "not_found" else 200)
    response.headers["Content-Length"] = str(len(page))  # CommonMiddleware is skipped (see the middleware)
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Content-Language"] = language
    if result.cookie:
        response.cookies[hotpath.COOKIE] = hotpath.cookie_morsel(result.cookie, secure=request.is_secure())
    return response


OAUTH_STATE, OA_STATE = "lcid", "lcoa"


def _oauth_redirect(request: HttpRequest, slug: str, option_id: int | None, cookie: str | None, *,
                    official_account: bool) -> HttpResponse:
    """Send a first-time scanner inside WeChat/WeCom through a silent OAuth (``snsapi_base``, API.md §8): the
    official account's or WeCom's. The cookie remembers the attempt, so nobody is sent twice."""
    back = f"{settings.LIVECODE_PUBLIC_BASE_URL.rstrip('/')}/l/{slug}" + (f"?o={option_id}" if option_id else "")
    if official_account:
        target = (f"{settings.LIVECODE_OAUTH_AUTHORIZE_URL}?appid={quote(settings.LIVECODE_OA_APPID)}"
                  f"&redirect_uri={quote(back, safe='')}&response_type=code&scope=snsapi_base&state={OA_STATE}"
                  f"#wechat_redirect")
    else:
        target = (f"{settings.LIVECODE_OAUTH_AUTHORIZE_URL}?appid={quote(settings.WECOM_CORP_ID)}"
                  f"&redirect_uri={quote(back, safe='')}&response_type=code&scope=snsapi_base&state={OAUTH_STATE}"
                  f"&agentid={quote(settings.WECOM_AGENT_ID)}#wechat_redirect")
    response = HttpResponse(status=302)
    response.headers["Location"] = target
    response.headers["Content-Length"] = "0"
    response.headers["Cache-Control"] = "private, no-store"
    response.cookies[hotpath.COOKIE] = hotpath.cookie_morsel(hotpath.identifying_cookie(cookie),
                                                             secure=request.is_secure())
    return response


@lru_cache(maxsize=1)
def _languages() -> frozenset[str]:
    return frozenset(code for code, _name in settings.LANGUAGES)


_pages: dict[tuple, bytes] = {}


def _landing_html(result: hotpath.ScanResult, language: str) -> bytes:
    """The page depends only on the code's snapshot, the outcome and the language, never on the visitor:
    each variant is rendered once per process and snapshot version."""
    snap = result.snapshot
    shown = result.shown_snapshot
    key = (snap.slug if snap else "", snap.version if snap else "", result.status, shown.slug if shown else "",
           result.shown.qr_url if result.shown else "", result.shown.label if result.shown else "", language,
           result.known)
    page = _pages.get(key)
    if page is None:
        with translation.override(language):
            if result.status in ("not_found", "disabled"):
                page = render_to_string("livecodes/landing_missing.html",
                                        {"snap": snap, "disabled": result.status == "disabled"}).encode()
            else:
                page = render_to_string("livecodes/landing.html", {"result": result, "snap": snap}).encode()
        if len(_pages) > 10_000:
            _pages.clear()
        _pages[key] = page
    return page


@lru_cache(maxsize=512)
def _image_of(target_id: int, sha: str) -> tuple[bytes, str] | None:
    target = LiveCodeTarget.objects.filter(pk=target_id, image_sha__startswith=sha).only("image", "image_type").first()
    if target is None or not target.image:
        return None
    return bytes(target.image), target.image_type


@public("a group QR image already shown on the public landing page")
@require_GET
def target_image(request: HttpRequest, slug: str, target_id: int) -> HttpResponse:
    found = _image_of(target_id, (request.GET.get("v") or "")[:12])
    if found is None:
        raise Http404("No such image")
    response = HttpResponse(found[0], content_type=found[1])
    response["Cache-Control"] = "public, max-age=86400, immutable"
    return response


@public("the banner image of a public landing page")
@require_GET
def banner(request: HttpRequest, slug: str) -> HttpResponse:
    code = LiveCode.objects.filter(slug=slug).only("banner", "banner_type").first()
    if code is None or not code.banner:
        raise Http404("No banner")
    response = HttpResponse(bytes(code.banner), content_type=code.banner_type)
    response["Cache-Control"] = "public, max-age=3600"
    return response


# --- operator pages ---------------------------------------------------------------------------------------------
def _code(request: HttpRequest, pk: int) -> LiveCode:
    return selectors.livecode_get(user=request.user, code_id=pk)


@logged_in
@require_GET
def code_list(request: HttpRequest) -> HttpResponse:
    codes = selectors.livecode_list(user=request.user)
    return render(request, "livecodes/list.html", {"section": "livecodes", "codes": codes,
                                                    "alerts": selectors.alerts_open()[:20]})


def _code_fields(data: dict) -> dict:
    return {k: data[k] for k in ("name", "mode", "title", "description", "campaign", "fallback", "skip_verify",
                                 "auto_remark", "tags", "welcome_text", "welcome_attachments",
                                 "welcome_group_code", "low_capacity", "qr_fg", "qr_bg", "status")}


@operators_only
@require_http_methods(["GET", "POST"])
def code_create(request: HttpRequest) -> HttpResponse:
    form = LiveCodeForm(request.POST or None, initial={"kind": request.GET.get("kind", "staff")})
    if request.method == "POST" and form.is_valid():
        corp = Corp.objects.order_by("id").first()
        if corp is None:
            form.add_error(None, _("Connect a WeCom corp first (no corp is known yet)."))
        else:
            try:
                code = services.livecode_create(corp=corp, owner=request.user, kind=form.cleaned_data["kind"],
                                                state=form.cleaned_data["state"], **_code_fields(form.cleaned_data))
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, _("Live code created. Now add its pool."))
                return redirect("livecodes:detail", pk=code.pk)
    return render(request, "livecodes/form.html", {"section": "livecodes", "form": form, "code": None})


class _MiniProgramRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@operators_only
@require_http_methods(["GET", "POST"])
def code_edit(request: HttpRequest, pk: int) -> HttpResponse:
    code = _code(request, pk)
    initial = {f: getattr(code, f) for f in ("name", "mode", "title", "description", "campaign", "fallback",
                                              "skip_verify", "auto_remark", "welcome_text", "welcome_attachments",
                                              "welcome_group_code", "low_capacity", "qr_fg", "qr_bg", "status")}
    initial["tags"] = list(code.tags.all())
    form = LiveCodeForm(request.POST or None, initial=initial, editing=code)
    mp_form = WelcomeMiniProgramForm(request.POST or None, request.FILES or None, prefix="mp")
    if request.method == "POST" and form.is_valid() and mp_form.is_valid():
        limit = settings.LIVECODE_UPLOAD_MAX_BYTES + 1
        try:
            with transaction.atomic():  # a refused image leaves the code as it was
                services.welcome_image_remove(code=code, image_ids=_ids(request, "welcome_image_remove"))
                services.welcome_miniprogram_remove(code=code,
                                                    miniprogram_ids=_ids(request, "welcome_miniprogram_remove"))
                services.livecode_update(code=code, **_code_fields(form.cleaned_data))
                for upload in request.FILES.getlist("welcome_images")[:9]:
                    try:
                        services.welcome_image_add(code=code, content=upload.read(limit), name=upload.name)
                    except ApplicationError as exc:
                        raise ApplicationError(f"{upload.name}: {exc.message}") from exc
                for program in code.welcome_miniprograms.only("pk", "title"):
                    upload = request.FILES.get(f"welcome_miniprogram_cover_{program.pk}")
                    if upload is not None:
                        try:
                            services.welcome_miniprogram_set_cover(code=code, miniprogram_id=program.pk,
                                                                   cover=upload.read(limit), name=upload.name)
                        except ApplicationError as exc:
                            raise ApplicationError(f"{program.title}: {upload.name}: {exc.message}") from exc
                if mp_form.adding:
                    data, upload = mp_form.cleaned_data, mp_form.cleaned_data["cover"]
                    try:
                        services.welcome_miniprogram_add(code=code, title=data["title"], appid=data["appid"],
                                                         page=data["page"], cover=upload.read(limit),
                                                         name=upload.name)
                    except ApplicationError as exc:
                        raise _MiniProgramRefused(f"{upload.name}: {exc.message}") from exc
                if request.FILES.get("banner"):
                    services.livecode_set_banner(code=code, content=request.FILES["banner"].read(limit))
                if request.FILES.get("logo"):
                    services.livecode_set_logo(code=code, content=request.FILES["logo"].read(limit))
        except _MiniProgramRefused as exc:
            mp_form.add_error(None, exc.message)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Saved."))
            return redirect("livecodes:detail", pk=code.pk)
    return render(request, "livecodes/form.html", {
        "section": "livecodes", "form": form, "code": code, "mp_form": mp_form,
        "welcome_images": list(code.welcome_images.defer("image")),
        "welcome_miniprograms": list(code.welcome_miniprograms.defer("image")),
    })


def _ids(request: HttpRequest, name: str) -> list[int]:
    return [int(v) for v in request.POST.getlist(name) if v.isdigit() and len(v) < 19]


@operators_only
@require_GET
def welcome_image(request: HttpRequest, pk: int, image_id: int) -> HttpResponse:
    code = _code(request, pk)
    image = get_object_or_404(WelcomeImage.objects.only("image", "image_type"), pk=image_id, code=code)
    response = HttpResponse(bytes(image.image), content_type=image.image_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


@operators_only
@require_GET
def welcome_miniprogram_cover(request: HttpRequest, pk: int, miniprogram_id: int) -> HttpResponse:
    code = _code(request, pk)
    program = get_object_or_404(WelcomeMiniProgram.objects.only("image", "image_type"), pk=miniprogram_id,
                                code=code)
    if not program.image:
        raise Http404("No cover")
    response = HttpResponse(bytes(program.image), content_type=program.image_type)
    response["Cache-Control"] = "private, max-age=3600"
    return response


@operators_only
@require_GET
def code_detail(request: HttpRequest, pk: int) -> HttpResponse:
    code = _code(request, pk)
    targets = selectors.targets_of(code=code)
    per_target = selectors.stats_by_target(code=code)
    rows = [(t, per_target.get(t.pk, {})) for t in targets]
    context = {
        "section": "livecodes", "code": code, "rows": rows, "alerts": selectors.alerts_open(code=code),
        "duplicates": selectors.duplicate_members(code=code) if code.kind != LiveCode.Kind.STAFF else [],
        "public_url": f"{settings.LIVECODE_PUBLIC_BASE_URL.rstrip('/')}/l/{code.slug}",
        "staff_form": StaffTargetForm() if code.kind == LiveCode.Kind.STAFF else None,
        "group_form": GroupTargetForm(code=code) if code.kind != LiveCode.Kind.STAFF else None,
        "upload_form": ImageUploadForm(code=code) if code.kind != LiveCode.Kind.STAFF else None,
        "option_form": OptionForm() if code.kind == LiveCode.Kind.GROUPED else None,
        "options": list(code.options.all()), "join_ways": list(code.join_ways.all()),
        "sizes": qr.SIZES,
    }
    return render(request, "livecodes/detail.html", context)


def _back(request: HttpRequest, code: LiveCode, error: str | None = None, ok: str | None = None) -> HttpResponse:
    if error:
        messages.error(request, error)
    if ok:
        messages.success(request, ok)
    return redirect("livecodes:detail", pk=code.pk)


def _form_error(form) -> str:
    return "; ".join(f"{form.fields[f].label if f in form.fields else ''}: {' '.join(e)}".lstrip(": ")
                     for f, e in form.errors.items())


def _submit(request: HttpRequest, code: LiveCode, form, action, ok: str) -> HttpResponse:
    """Validate ``form``, run ``action(cleaned_data)`` (one service call), go back to the code's page."""
    if not form.is_valid():
        return _back(request, code, error=_form_error(form))
    try:
        action(form.cleaned_data)
    except ApplicationError as exc:
        return _back(request, code, error=exc.message)
    return _back(request, code, ok=ok)


@operators_only
@require_POST
def pool_add_staff(request: HttpRequest, pk: int) -> HttpResponse:
    code = _code(request, pk)
    form = StaffTargetForm(request.POST)
    if not form.is_valid():
        return _back(request, code, error=_form_error(form))
    try:
        services.target_add_staff(code=code, **form.cleaned_data)
    except ApplicationError as exc:
        return _back(request, code, error=exc.message)
    code.refresh_from_db()
    if code.publish_error:
        return _back(request, code, error=code.publish_error)
    return _back(request, code, ok=_("Staff member added."))


@operators_only
@require_POST
def pool_add_group(request: HttpRequest, pk: int) -> HttpResponse:
    code = _code(request, pk)
    return _submit(request, code, GroupTargetForm(request.POST, code=code),
                   lambda data: services.target_add_group(code=code, **data), _("Group added."))


@operators_only
@require_POST
def pool_upload(request: HttpRequest, pk: int) -> HttpResponse:
    code = _code(request, pk)
    form = ImageUploadForm(request.POST, code=code)
    files = request.FILES.getlist("images")
    if not form.is_valid() or not files:
        return _back(request, code, error=_form_error(form) or _("Choose at least one image."))
    added, errors = 0, []
    for upload in files[:50]:
        try:
            services.target_add_image(code=code, content=upload.read(settings.LIVECODE_UPLOAD_MAX_BYTES + 1),
                                      label=upload.name.rsplit(".", 1)[0][:64], **form.cleaned_data)
            added += 1
        except ApplicationError as exc:
            errors.append(f"{upload.name}: {exc.message}")
    for error in errors:
        messages.error(request, error)
    return _back(request, code, ok=_("%(n)s group QR image(s) added.") % {"n": added} if added else None)


def _target(code: LiveCode, target_id: int) -> LiveCodeTarget:
    return get_object_or_404(LiveCodeTarget, pk=target_id, code=code)


@operators_only
@require_POST
def target_edit(request: HttpRequest, pk: int, target_id: int) -> HttpResponse:
    code = _code(request, pk)
    target = _target(code, target_id)
    return _submit(request, code, TargetEditForm(request.POST),
                   lambda data: services.target_update(target=target, **data), _("Pool member saved."))


@operators_only
@require_POST
def target_replace(request: HttpRequest, pk: int, target_id: int) -> HttpResponse:
    code = _code(request, pk)
    target = _target(code, target_id)
    return _submit(
        request, code, ReplaceImageForm(request.POST, request.FILES),
        lambda data: services.target_replace_image(
            target=target, content=data["image"].read(settings.LIVECODE_UPLOAD_MAX_BYTES + 1),
            expires_at=data["expires_at"]),
        _("Group QR replaced; the permanent code is unchanged."),
    )


@operators_only
@require_POST
def option_add(request: HttpRequest, pk: int) -> HttpResponse:
    code = _code(request, pk)
    return _submit(request, code, OptionForm(request.POST),
                   lambda data: services.option_add(code=code, **data), _("Choice added."))


@operators_only
@require_POST
def code_publish(request: HttpRequest, pk: int) -> HttpResponse:
    code = _code(request, pk)
    failures = services.livecode_publish(code_id=code.pk)
    code.refresh_from_db()
    if failures:
        return _back(request, code, error=code.publish_error)
    return _back(request, code, ok=_("Published to WeCom."))


@operators_only
@require_GET
def code_stats(request: HttpRequest, pk: int) -> HttpResponse:
    code = _code(request, pk)
    days = 90 if request.GET.get("days") == "90" else 30
    rows = selectors.stats_by_day(code=code, days=days)
    if request.GET.get("format") == "csv":
        header = ["day", "scans", "unique_visitors", "adds", "joins", "lost_within_1d", "lost_within_7d"]
        lines = [[r.day.isoformat(), r.scans, r.visitors, r.adds, r.joins, r.lost_1d, r.lost_7d] for r in rows]
        return csv_response([header, *lines], filename=f"livecode-{code.slug}-stats.csv")
    peak = max((max(r.scans, r.adds + r.joins) for r in rows), default=0)
    bars = [(r, level(r.scans, peak), level(r.adds + r.joins, peak)) for r in rows]
    totals = {k: sum(getattr(r, k) for r in rows) for k in ("scans", "adds", "joins", "lost_1d", "lost_7d")}
    done = totals["adds"] + totals["joins"]
    totals["ratio"] = f"{done / totals['scans']:.1%}" if totals["scans"] else "—"
    return render(request, "livecodes/stats.html", {"section": "livecodes", "code": code, "rows": rows,
                                                     "bars": bars, "totals": totals, "days": days})


@operators_only
@require_GET
def code_qr(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    code = _code(request, pk)
    url = f"{settings.LIVECODE_PUBLIC_BASE_URL.rstrip('/')}{reverse('livecodes:landing', args=[code.slug])}"
    if fmt == "svg":
        body, kind = qr.render_svg(url, fg=code.qr_fg, bg=code.qr_bg), "image/svg+xml"
    else:
        size = _int(request.GET.get("size")) or 1024
        body, kind = qr.render_png(url, size=size, fg=code.qr_fg, bg=code.qr_bg,
                                   logo=bytes(code.qr_logo) if code.qr_logo else None), "image/png"
    response = HttpResponse(body, content_type=kind)
    digest = hashlib.sha256(body).hexdigest()[:8]
    disposition = "attachment" if request.GET.get("download") else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="livecode-{code.slug}-{digest}.{fmt}"'
    return response
