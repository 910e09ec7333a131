from django.urls import path

from livecodes import api

urlpatterns = [
    path("livecodes/", api.LiveCodeListApi.as_view(), name="livecode-list"),
    path("livecodes/<int:pk>/", api.LiveCodeDetailApi.as_view(), name="livecode-detail"),
    path("livecodes/<int:pk>/targets/", api.LiveCodeTargetsApi.as_view(), name="livecode-targets"),
    path("livecodes/<int:pk>/stats/", api.LiveCodeStatsApi.as_view(), name="livecode-stats"),
]
