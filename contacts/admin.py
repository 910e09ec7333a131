from django import forms
from django.contrib import admin

from contacts.models import Contact, ContactEvent, Corp, FollowRelation, GroupChat, GroupMember, Staff
from contacts.timezones import time_zone_clean
from scrm.admin_tools import NoCountPaginator


@admin.register(Corp)
class CorpAdmin(admin.ModelAdmin):
    list_display = ("corp_id", "name", "last_synced_at")
    readonly_fields = ("last_synced_at",)


@admin.register(Staff)
class StaffAdmin(admin.ModelAdmin):
    list_display = ("userid", "name", "status", "corp")
    list_filter = ("status", "corp")
    search_fields = ("userid", "name")


class FollowRelationInline(admin.TabularInline):
    model = FollowRelation
    extra = 0
    raw_id_fields = ("staff",)
    fields = ("staff", "remark", "state", "add_way", "is_active", "added_at", "deleted_by_customer_at",
              "deleted_by_staff_at")
    readonly_fields = ("added_at", "deleted_by_customer_at", "deleted_by_staff_at")


class ContactAdminForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = "__all__"  # noqa: DJ007

    def clean_time_zone(self) -> str:
        return time_zone_clean(self.cleaned_data.get("time_zone"))  # "asia/tokyo" is saved as "Asia/Tokyo"


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    form = ContactAdminForm
    list_display = ("name", "external_userid", "active_relations", "first_added_at", "time_zone", "corp")
    list_filter = ("type", "gender", "corp")
    search_fields = ("name", "external_userid", "unionid")
    readonly_fields = ("active_relations", "first_added_at", "created_at", "updated_at")
    inlines = [FollowRelationInline]
    show_full_result_count = False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)  # the admin's change view runs in one transaction
        if change and form.initial.get("time_zone", "") != obj.time_zone:
            from contacts.services import contacts_time_zone_changed

            contacts_time_zone_changed(contact_ids=[obj.pk])


@admin.register(FollowRelation)
class FollowRelationAdmin(admin.ModelAdmin):
    list_display = ("contact", "staff", "state", "is_active", "added_at")
    list_filter = ("is_active", "add_way")
    list_select_related = ("contact", "staff")
    raw_id_fields = ("contact", "staff")
    search_fields = ("contact__name", "contact__external_userid", "staff__userid", "state")


class GroupMemberInline(admin.TabularInline):
    model = GroupMember
    extra = 0
    raw_id_fields = ("contact", "staff")
    fields = ("member_id", "member_type", "name", "joined_at", "join_scene", "left_at")


@admin.register(GroupChat)
class GroupChatAdmin(admin.ModelAdmin):
    list_display = ("name", "chat_id", "owner", "member_count", "status", "synced_at")
    list_filter = ("status",)
    list_select_related = ("owner",)
    search_fields = ("name", "chat_id")
    raw_id_fields = ("owner",)
    readonly_fields = ("member_version", "member_count", "synced_at")
    inlines = [GroupMemberInline]


@admin.register(GroupMember)
class GroupMemberAdmin(admin.ModelAdmin):
    list_display = ("member_id", "chat", "member_type", "joined_at", "left_at")
    list_select_related = ("chat",)
    raw_id_fields = ("chat", "contact", "staff")
    search_fields = ("member_id", "name", "chat__name")


@admin.register(ContactEvent)
class ContactEventAdmin(admin.ModelAdmin):
    list_display = ("kind", "contact", "staff", "chat", "occurred_at")
    list_filter = ("kind",)
    list_select_related = ("contact", "staff", "chat")
    raw_id_fields = ("contact", "staff", "chat")
    date_hierarchy = "occurred_at"
    paginator = NoCountPaginator
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # append-only


# --- business facts (tagging issue) ----------------------------------------------------------------------------------
from contacts.models import ContactFacts, Entitlement, Order  # noqa: E402


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("external_id", "contact", "amount", "paid_at")
    search_fields = ("external_id", "contact__external_userid")
    raw_id_fields = ("contact",)
    date_hierarchy = "paid_at"
    paginator = NoCountPaginator


@admin.register(Entitlement)
class EntitlementAdmin(admin.ModelAdmin):
    list_display = ("external_id", "contact", "kind", "status", "expires_at")
    list_filter = ("kind", "status")
    search_fields = ("external_id", "contact__external_userid")
    raw_id_fields = ("contact",)


@admin.register(ContactFacts)
class ContactFactsAdmin(admin.ModelAdmin):
    list_display = ("contact", "order_count", "total_spent", "last_purchase_at", "last_active_at", "rfm_r", "rfm_f",
                    "rfm_m")
    raw_id_fields = ("contact",)
    readonly_fields = ("order_count", "total_spent", "avg_order_value", "first_purchase_at", "last_purchase_at",
                       "last_active_at", "rfm_r", "rfm_f", "rfm_m")
    paginator = NoCountPaginator
