"""The journeys admin: an ops console. Every action calls a service; live journeys are read-only and are
changed by making a new version."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _

from journeys import presets, selectors, sender, services
from journeys.broadcasts import broadcast_preview, broadcast_send
from journeys.forms import MessageTemplateForm
from journeys.messages import TemplateError, template_check
from journeys.models import (
    Broadcast,
    ContactQuota,
    Enrollment,
    Journey,
    JourneyStep,
    MassSendTask,
    MessageTemplate,
    OutboundMessage,
    StepRun,
)
from scrm.admin_tools import NoCountPaginator
from scrm.errors import ApplicationError


def _sample_contact(corp_id: int):
    from contacts.models import Contact

    return Contact.objects.filter(corp_id=corp_id, active_relations__gt=0).order_by("id").first()


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ("name", "kind", "problem", "updated_at")
    search_fields = ("name", "text")
    fields = ("name", "kind", "text", "attachment", "cover_file", "cover_current", "preview")
    readonly_fields = ("cover_current", "preview")

    @admin.display(description=_("Preview (sample contact)"))
    def preview(self, obj):
        if not obj.pk:
            return "-"
        return services.message_preview(template=obj)

    @admin.display(description=_("Problem"))
    def problem(self, obj):
        """What keeps the template from being sent (e.g. a mini-program without a cover), or nothing."""
        try:
            template_check(text=obj.text, kind=obj.kind, attachment=obj.attachment)
        except TemplateError as exc:
            return str(exc)
        return ""

    @admin.display(description=_("Current cover"))
    def cover_current(self, obj):
        if not obj.pk or not obj.cover_sha:
            return _("none")
        cached = (_("WeCom media id cached until %(at)s") % {"at": localize(localtime(obj.cover_media_expires_at))}
                  if obj.cover_media_id and obj.cover_media_expires_at else _("not uploaded to WeCom yet"))
        return format_html('<img src="{}" alt="" height="120"><br>{} ({})',
                           reverse("admin:journeys_messagetemplate_cover", args=[obj.pk]),
                           obj.cover_name or obj.cover_sha[:12], cached)

    def get_urls(self):
        own = [path("<int:pk>/cover/", self.admin_site.admin_view(self.cover_view),
                    name="journeys_messagetemplate_cover")]
        return own + super().get_urls()

    def cover_view(self, request, pk):
        """The uploaded cover image (PNG or JPEG, checked at upload), for the change page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        template = get_object_or_404(MessageTemplate.objects.exclude(cover_sha=""), pk=pk)
        response = HttpResponse(bytes(template.cover), content_type=template.cover_type)
        response["Cache-Control"] = "private, max-age=3600"
        return response


class StepInline(admin.TabularInline):
    model = JourneyStep
    extra = 0
    fields = ("position", "kind", "label", "template", "channel", "config", "preview")
    readonly_fields = ("preview",)
    autocomplete_fields = ("template",)

    @admin.display(description=_("Preview"))
    def preview(self, obj):
        if not obj.pk or obj.template_id is None:
            return "-"
        return services.message_preview(template=obj.template, contact=_sample_contact(obj.journey.corp_id))

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None or obj.status == Journey.Status.DRAFT

    has_add_permission = has_delete_permission = has_change_permission


@admin.register(Journey)
class JourneyAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "kind", "trigger", "status", "priority", "holdout_percent", "report_link")
    list_filter = ("status", "kind", "trigger")
    search_fields = ("name",)
    inlines = [StepInline]
    actions = ["go_live", "pause", "resume", "new_version"]
    readonly_fields = ("version", "family", "validated_at", "preset", "problems")
    change_list_template = "journeys/admin_journey_changelist.html"

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != Journey.Status.DRAFT:
            return [f.name for f in Journey._meta.fields] + ["problems"]
        return self.readonly_fields

    @admin.display(description=_("Validation"))
    def problems(self, obj):
        if not obj.pk:
            return "-"
        found = services.journey_validate(journey=obj)
        warnings = services.journey_warnings(journey=obj)
        if not found and not warnings:
            return _("Ready to go live")
        items = format_html_join("", "<li>{}</li>", ((p,) for p in found))
        notes = format_html_join("", '<li class="warning">{}</li>', ((w,) for w in warnings))
        return format_html("<ul>{}{}</ul>", items, notes)

    @admin.display(description=_("Report"))
    def report_link(self, obj):
        return format_html('<a href="{}">{}</a> · <a href="{}">{}</a>',
                           reverse("admin:journeys_journey_dry_run", args=[obj.pk]), _("dry run"),
                           reverse("web:journey_detail", args=[obj.pk]), _("report"))

    def get_urls(self):
        own = [
            path("<int:pk>/dry-run/", self.admin_site.admin_view(self.dry_run_view), name="journeys_journey_dry_run"),
            path("from-template/", self.admin_site.admin_view(self.from_template_view),
                 name="journeys_journey_from_template"),
        ]
        return own + super().get_urls()

    def dry_run_view(self, request, pk):
        journey = get_object_or_404(Journey, pk=pk)
        result = selectors.journey_dry_run(journey=journey)
        return render(request, "journeys/admin_dry_run.html",
                      {**self.admin_site.each_context(request), "journey": journey, "result": result,
                       "title": _("Dry run: next 14 days")})

    def from_template_view(self, request):
        from django.conf import settings

        from contacts.services import corp_get_or_create

        if request.method == "POST":
            try:
                journey = presets.journey_from_preset(corp=corp_get_or_create(corp_id=settings.WECOM_CORP_ID),
                                                      preset=request.POST.get("preset", ""))
            except ValueError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return redirect("admin:journeys_journey_from_template")
            self.message_user(request, _("Draft created from the template; review it, then put it live."))
            return redirect("admin:journeys_journey_change", journey.pk)
        choices = [(key, value[0]) for key, value in presets.PRESETS.items()]
        return render(request, "journeys/admin_from_template.html",
                      {**self.admin_site.each_context(request), "choices": choices,
                       "title": _("New journey from a ready-made template")})

    @admin.action(description=_("Validate and go live"))
    def go_live(self, request, queryset):
        for journey in queryset:
            try:
                services.journey_go_live(journey=journey)
                self.message_user(request, _("%(name)s is live") % {"name": journey})
                for warning in services.journey_warnings(journey=journey):
                    self.message_user(request, f"{journey}: {warning}", messages.WARNING)
            except ApplicationError as exc:
                self.message_user(request, f"{journey}: {exc.message}", messages.ERROR)

    @admin.action(description=_("Pause"))
    def pause(self, request, queryset):
        for journey in queryset:
            services.journey_pause(journey=journey)

    @admin.action(description=_("Resume"))
    def resume(self, request, queryset):
        for journey in queryset:
            try:
                services.journey_resume(journey=journey)
            except ApplicationError as exc:
                self.message_user(request, f"{journey}: {exc.message}", messages.ERROR)

    @admin.action(description=_("Edit as a new version (draft copy)"))
    def new_version(self, request, queryset):
        for journey in queryset:
            copy = services.journey_new_version(journey=journey)
            self.message_user(request, _("Draft %(name)s created") % {"name": copy})


@admin.register(JourneyStep)
class JourneyStepAdmin(admin.ModelAdmin):
    list_display = ("journey", "position", "kind", "label", "channel", "template")
    list_filter = ("kind", "channel")
    list_select_related = ("journey", "template")
    raw_id_fields = ("journey", "template")

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None or obj.journey.status == Journey.Status.DRAFT


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    can_delete = False
    fields = ("at", "step", "outcome", "detail")
    readonly_fields = fields
    ordering = ("at", "id")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ("id", "journey", "contact", "status", "position", "next_run_at", "holdout", "exit_reason")
    list_filter = ("status", "holdout", "exit_reason")
    list_select_related = ("journey", "contact")
    raw_id_fields = ("journey", "contact")
    search_fields = ("contact__name", "contact__external_userid")
    readonly_fields = ("seq", "next_run_at", "hold_count", "entered_at", "finished_at", "timeline")
    paginator = NoCountPaginator
    show_full_result_count = False
    inlines = [StepRunInline]
    actions = ["exit_now"]

    @admin.display(description=_("Timeline"))
    def timeline(self, obj):
        rows = selectors.enrollment_timeline(enrollment=obj)
        return format_html("<ol>{}</ol>", format_html_join(
            "", "<li>{} · {} {} {}</li>", ((r["at"].strftime("%Y-%m-%d %H:%M"), r["what"], r["step"], r["detail"])
                                          for r in rows)))

    @admin.action(description=_("Exit the journey now"))
    def exit_now(self, request, queryset):
        for contact_id in queryset.filter(status="active").values_list("contact_id", flat=True):
            services.enrollments_exit(contact_id=contact_id, reason="admin")


@admin.register(StepRun)
class StepRunAdmin(admin.ModelAdmin):
    list_display = ("at", "enrollment", "step", "outcome", "detail")
    list_filter = ("outcome",)
    raw_id_fields = ("enrollment", "step")
    date_hierarchy = "at"
    paginator = NoCountPaginator
    show_full_result_count = False


class HasErrorFilter(admin.SimpleListFilter):
    title = _("has error")
    parameter_name = "has_error"

    def lookups(self, request, model_admin):
        return [("1", _("Yes"))]

    def queryset(self, request, queryset):
        return queryset.exclude(last_error="") if self.value() == "1" else queryset


@admin.register(OutboundMessage)
class OutboundMessageAdmin(admin.ModelAdmin):
    list_display = ("id", "channel", "priority", "contact", "chat_id", "staff", "status", "attempts", "created_at")
    list_filter = ("status", "channel", "priority", HasErrorFilter)
    list_select_related = ("contact", "staff")
    raw_id_fields = ("contact", "staff", "journey", "step", "enrollment", "broadcast", "task")
    search_fields = ("idempotency_key", "contact__external_userid")
    readonly_fields = ("idempotency_key", "status", "attempts", "next_attempt_at", "last_error", "task", "sent_at",
                       "content_hash")
    paginator = NoCountPaginator
    show_full_result_count = False
    actions = ["resend"]

    @admin.action(description=_("Resend (unknown or failed messages; a human decided)"))
    def resend(self, request, queryset):
        n = sender.outbound_resend(message_ids=list(queryset.values_list("pk", flat=True)[:10_000]))
        self.message_user(request, _("%(n)d message(s) queued again") % {"n": n})


@admin.register(MassSendTask)
class MassSendTaskAdmin(admin.ModelAdmin):
    list_display = ("id", "staff", "channel", "msgid", "status", "recipients", "created_at", "confirmed_at")
    list_filter = ("status", "channel")
    list_select_related = ("staff",)
    search_fields = ("msgid", "staff__userid")
    readonly_fields = [f.name for f in MassSendTask._meta.fields]


@admin.register(Broadcast)
class BroadcastAdmin(admin.ModelAdmin):
    list_display = ("name", "channel", "segment", "status", "send_at", "counts")
    list_filter = ("status", "channel")
    readonly_fields = ("status", "counts")
    actions = ["preview", "send_now"]

    @admin.action(description=_("Preview: how many are held back and why"))
    def preview(self, request, queryset):
        for b in queryset:
            self.message_user(request, f"{b}: {broadcast_preview(broadcast=b)}")

    @admin.action(description=_("Send now"))
    def send_now(self, request, queryset):
        for b in queryset:
            try:
                self.message_user(request, f"{b}: {broadcast_send(broadcast=b)}")
            except ApplicationError as exc:
                self.message_user(request, f"{b}: {exc.message}", messages.ERROR)


@admin.register(ContactQuota)
class ContactQuotaAdmin(admin.ModelAdmin):
    list_display = ("contact", "blocked_until")
    raw_id_fields = ("contact",)
