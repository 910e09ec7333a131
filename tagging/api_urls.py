from django.urls import path

from tagging import api

urlpatterns = [
    path("tag-groups/", api.TagGroupListApi.as_view(), name="tag-group-list"),
    path("tag-groups/<int:pk>/", api.TagGroupDetailApi.as_view(), name="tag-group-detail"),
    path("tags/", api.TagListApi.as_view(), name="tag-list"),
    path("tags/sync/", api.TagSyncApi.as_view(), name="tag-sync"),
    path("tags/<int:pk>/", api.TagDetailApi.as_view(), name="tag-detail"),
    path("tags/<int:pk>/contacts/", api.TagContactsApi.as_view(), name="tag-contacts"),
    path("tags/<int:pk>/merge/", api.TagMergeApi.as_view(), name="tag-merge"),
    path("contacts/<int:pk>/tags/", api.ContactTagsApi.as_view(), name="contact-tags"),
    path("contacts/<int:pk>/tags/<int:tag_id>/", api.ContactTagDetailApi.as_view(), name="contact-tag-detail"),
    path("tag-rules/", api.TagRuleListApi.as_view(), name="tag-rule-list"),
    path("tag-rules/validate/", api.TagRuleValidateApi.as_view(), name="tag-rule-validate"),
    path("tag-rules/presets/", api.TagRulePresetApi.as_view(), name="tag-rule-presets"),
    path("tag-rules/<int:pk>/", api.TagRuleDetailApi.as_view(), name="tag-rule-detail"),
    path("segments/", api.SegmentListApi.as_view(), name="segment-list"),
    path("segments/count/", api.SegmentCountApi.as_view(), name="segment-count"),
    path("segments/members/", api.SegmentMembersApi.as_view(), name="segment-members"),
    path("segments/<int:pk>/export/", api.SegmentExportApi.as_view(), name="segment-export"),
    path("orders/", api.OrderCreateApi.as_view(), name="order-create"),
    path("entitlements/", api.EntitlementCreateApi.as_view(), name="entitlement-create"),
    path("bulk/tags/", api.BulkTagApi.as_view(), name="bulk-tags"),
    path("imports/", api.ImportApi.as_view(), name="import-create"),
    path("jobs/<int:pk>/", api.BulkJobDetailApi.as_view(), name="job-detail"),
    path("jobs/<int:pk>/report/", api.BulkJobReportApi.as_view(), name="job-report"),
]
