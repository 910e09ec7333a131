from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "role", "staff", "is_active", "is_superuser", "last_login")
    list_filter = ("role", "is_active", "is_superuser")
    list_select_related = ("staff",)
    raw_id_fields = ("staff",)
    fieldsets = (*BaseUserAdmin.fieldsets, (_("SCRM role"), {"fields": ("role", "staff")}))
    add_fieldsets = (*BaseUserAdmin.add_fieldsets, (_("SCRM role"), {"fields": ("role", "staff")}))
