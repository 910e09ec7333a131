from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from scrm.admin_tools import NoCountPaginator
from wecom.models import CallbackEvent
from wecom.services import callback_event_replay


@admin.register(CallbackEvent)
class CallbackEventAdmin(admin.ModelAdmin):
    list_display = ("id", "event", "change_type", "status", "event_time", "received_at", "attempts", "deliveries")
    list_filter = ("status", "event", "change_type")
    search_fields = ("event_key", "payload")
    date_hierarchy = "received_at"
    paginator = NoCountPaginator
    show_full_result_count = False
    readonly_fields = [f.name for f in CallbackEvent._meta.fields]
    actions = ["replay"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description=_("Process again (idempotent)"))
    def replay(self, request, queryset):
        done = failed = 0
        for event_id in queryset.values_list("id", flat=True)[:500]:
            try:
                callback_event_replay(event_id=event_id)
                done += 1
            except Exception as exc:  # shown to the operator, event keeps its error
                failed += 1
                self.message_user(request, f"#{event_id}: {exc}", messages.ERROR)
        self.message_user(request, _("%(done)d processed, %(failed)d failed") % {"done": done, "failed": failed})
