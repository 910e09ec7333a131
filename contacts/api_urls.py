from django.urls import path

from contacts import api

urlpatterns = [
    path("contacts/", api.ContactListApi.as_view(), name="contact-list"),
    path("contacts/<int:pk>/", api.ContactDetailApi.as_view(), name="contact-detail"),
    path("contacts/<int:pk>/events/", api.ContactEventListApi.as_view(), name="contact-events"),
    path("staff/", api.StaffListApi.as_view(), name="staff-list"),
    path("groups/", api.GroupChatListApi.as_view(), name="group-list"),
    path("groups/<int:pk>/", api.GroupChatDetailApi.as_view(), name="group-detail"),
    path("wecom/sync/", api.WeComSyncApi.as_view(), name="wecom-sync"),
]
