from django.contrib import admin, messages

from tagging.models import BulkJob, ContactTag, Segment, Tag, TagGroup, TagRule


@admin.register(TagGroup)
class TagGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "dimension", "order", "wecom_group_id")
    list_filter = ("dimension",)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "group", "sync_to_wecom", "sync_status", "sync_error")
    list_filter = ("sync_status", "group__dimension")
    search_fields = ("name", "wecom_tag_id")
    readonly_fields = ("wecom_tag_id", "sync_status", "sync_error")


@admin.register(ContactTag)
class ContactTagAdmin(admin.ModelAdmin):
    list_display = ("contact", "tag", "source", "source_ref", "created_at", "expires_at")
    list_filter = ("source",)
    raw_id_fields = ("contact", "tag", "set_by")


@admin.register(TagRule)
class TagRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "tag", "is_active", "preset", "last_run_at", "last_matched")
    readonly_fields = ("last_run_at", "last_matched")
    actions = ["recompute"]

    @admin.action(description="Recompute now (set-based)")
    def recompute(self, request, queryset):
        from tagging.recompute import tag_rule_recompute

        for rule in queryset:
            tag_rule_recompute(rule_id=rule.pk)
        self.message_user(request, "Recomputed.", messages.SUCCESS)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ("name", "created_by", "created_at")


@admin.register(BulkJob)
class BulkJobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "status", "total", "processed", "accepted", "rejected", "created_at")
    list_filter = ("kind", "status")
    readonly_fields = ("total", "processed", "accepted", "rejected", "report", "last_error", "finished_at")
