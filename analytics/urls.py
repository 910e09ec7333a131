from django.urls import path

from analytics import views

app_name = "analytics"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("growth/", views.growth, name="growth"),
    path("funnel/", views.funnel, name="funnel"),
    path("retention/", views.retention, name="retention"),
    path("rfm/", views.rfm, name="rfm"),
    path("rfm/segment/", views.rfm_segment_create, name="rfm_segment"),
    path("ltv/", views.ltv, name="ltv"),
    path("campaigns/", views.campaigns, name="campaigns"),
    path("staff/", views.staff, name="staff"),
    path("customers/", views.customers, name="customers"),
]
