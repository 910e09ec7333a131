from django.urls import path

from journeys import api

urlpatterns = [
    path("events/", api.EventApi.as_view(), name="event-create"),
    path("journeys/<int:pk>/report/", api.JourneyReportApi.as_view(), name="journey-report"),
]
