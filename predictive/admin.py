from django.contrib import admin

from predictive.models import ModelRun


@admin.register(ModelRun)
class ModelRunAdmin(admin.ModelAdmin):
    list_display = ("trained_at", "corp", "kind", "method", "n_train", "positives", "auc", "n_scored", "duration_ms")
    list_filter = ("kind", "method", "corp")
    date_hierarchy = "trained_at"
    readonly_fields = [f.name for f in ModelRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
