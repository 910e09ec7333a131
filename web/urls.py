from django.urls import path

from journeys import views as journey_views
from web import views

app_name = "web"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("contacts/", views.contact_list, name="contact_list"),
    path("contacts/bulk-tag/", views.contact_bulk_tag, name="contact_bulk_tag"),
    path("contacts/<int:pk>/", views.contact_detail, name="contact_detail"),
    path("groups/", views.group_list, name="group_list"),
    path("groups/<int:pk>/", views.group_detail, name="group_detail"),
    # 旅程 and 群发 (journeys/views.py)
    path("journeys/", journey_views.journey_list, name="journeys"),
    path("journeys/<int:pk>/", journey_views.journey_detail, name="journey_detail"),
    path("journeys/<int:pk>/report.csv", journey_views.journey_report_csv, name="journey_report_csv"),
    path("broadcasts/", journey_views.broadcast_list, name="broadcasts"),
    path("broadcasts/<int:pk>/", journey_views.broadcast_detail, name="broadcast_detail"),
    path("broadcasts/<int:pk>/send/", journey_views.broadcast_send_now, name="broadcast_send"),
]
