from django.contrib import admin
from django.core.paginator import Paginator

from livecodes.models import (
    Alert,
    Campaign,
    Conversion,
    DailyStat,
    JoinWay,
    LiveCode,
    LiveCodeOption,
    LiveCodeTarget,
    ScanEvent,
    WelcomeDefault,
    WelcomeImage,
    WelcomeMiniProgram,
)


class NoCountPaginator(Paginator):
    @property
    def count(self) -> int:
        return 999_999


@admin.register(LiveCode)
class LiveCodeAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "slug", "state", "status", "mode", "published_at"]
    list_filter = ["kind", "status", "mode"]
    search_fields = ["name", "slug", "state"]
    readonly_fields = ["publish_error", "published_at"]
    raw_id_fields = ["owner", "fallback", "welcome_group_code"]


@admin.register(LiveCodeTarget)
class LiveCodeTargetAdmin(admin.ModelAdmin):
    list_display = ["__str__", "code", "kind", "enabled", "position", "joins", "scans", "expires_at"]
    list_filter = ["kind", "enabled"]
    list_select_related = ["code", "staff", "chat"]
    raw_id_fields = ["code", "staff", "chat", "option"]
    readonly_fields = ["contact_way_id", "wecom_qr_url", "image_sha", "qr_text", "joins", "scans"]


@admin.register(ScanEvent)
class ScanEventAdmin(admin.ModelAdmin):
    list_display = ["code", "target", "visitor", "scanned_at", "outcome"]
    paginator = NoCountPaginator
    show_full_result_count = False
    date_hierarchy = "scanned_at"
    raw_id_fields = ["code", "target"]


@admin.register(WelcomeImage)
class WelcomeImageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "code", "position", "media_expires_at"]
    list_select_related = ["code"]
    raw_id_fields = ["code"]
    readonly_fields = ["image_type", "image_sha", "media_id", "media_expires_at"]


@admin.register(WelcomeMiniProgram)
class WelcomeMiniProgramAdmin(admin.ModelAdmin):
    list_display = ["title", "code", "appid", "page", "position", "media_expires_at"]
    list_select_related = ["code"]
    raw_id_fields = ["code"]
    readonly_fields = ["image_type", "image_sha", "media_id", "media_expires_at"]


admin.site.register([Campaign, LiveCodeOption, JoinWay, Conversion, DailyStat, Alert, WelcomeDefault])
