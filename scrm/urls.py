from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from scrm import views
from scrm.access import public

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("wecom/", include("wecom.urls")),
    path("admin/", admin.site.urls),
    path("accounts/login/", public("the login form")(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", public("logging out needs no permission")(auth_views.LogoutView.as_view()),
         name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/", include(("contacts.api_urls", "api"))),
    path("api/", include(("tagging.api_urls", "tagging-api"))),
    path("api/", include(("livecodes.api_urls", "livecodes-api"))),
    path("api/", include(("journeys.api_urls", "journeys-api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("analytics/predictive/", include("predictive.urls")),  # before any "analytics/" include
    path("tags/", include("tagging.urls")),
    path("analytics/", include("analytics.urls")),
    path("", include("livecodes.urls")),  # /l/<slug> (the permanent URL) and /livecodes/
    path("", include("web.urls")),
]
