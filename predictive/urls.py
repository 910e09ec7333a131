from django.urls import path

from predictive import views

app_name = "predictive"

urlpatterns = [
    path("", views.model_overview, name="overview"),
    path("contacts/<int:pk>/", views.contact_panel, name="contact_panel"),
]
