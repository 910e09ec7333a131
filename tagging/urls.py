from django.urls import path

from tagging import views

app_name = "tagging"
urlpatterns = [
    path("", views.tag_board, name="board"),
    path("actions/", views.tag_board_action, name="board_action"),
    path("rules/", views.rule_list, name="rules"),
    path("segments/", views.segment_builder, name="segments"),
    path("segments/count/", views.segment_count, name="segment_count"),
    path("imports/", views.imports, name="imports"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("contacts/<int:pk>/portrait/", views.contact_portrait, name="portrait"),
]
