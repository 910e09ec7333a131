"""Every view in the URLconf declares who may use it; a view added without a declaration fails here.

A view is declared when it carries the ``access`` attribute set by the scrm.access decorators (``public``,
``logged_in``, ``operators_only``), or is a DRF view whose own classes set ``permission_classes`` (the settings'
default does not count: it is an accident, not a decision). Exempt: Django admin (it guards its own views), the
i18n language switch, and drf-spectacular's views when SPECTACULAR_SETTINGS sets SERVE_PERMISSIONS.
"""

from collections.abc import Callable, Iterator

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver, include, path
from django.views import View
from django.views.i18n import set_language
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from scrm.access import logged_in, operators_only, public


def iter_views(resolver: URLResolver, prefix: str = "", namespaces: tuple = ()) -> Iterator[tuple[str, tuple, Callable]]:
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from iter_views(pattern, route, (*namespaces, pattern.namespace))
        elif isinstance(pattern, URLPattern):
            yield route, namespaces, pattern.callback


def view_class(callback: Callable) -> type | None:
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def declares_permission_classes(cls: type) -> bool:
    return any("permission_classes" in vars(klass) for klass in cls.__mro__
               if not klass.__module__.startswith("rest_framework"))


def access_problem(route: str, namespaces: tuple, callback: Callable) -> str | None:
    """Why this view is not declared, or None when it is."""
    if "admin" in namespaces:
        return None  # django.contrib.admin: every view requires an active staff user
    if callback is set_language:
        return None  # the i18n language switch: sets a cookie, reads nothing
    cls = view_class(callback)
    if cls is not None and cls.__module__.startswith("drf_spectacular."):
        serve = settings.SPECTACULAR_SETTINGS.get("SERVE_PERMISSIONS")
        return None if serve else f"{route}: drf-spectacular view without SPECTACULAR_SETTINGS['SERVE_PERMISSIONS']"
    if getattr(callback, "access", None):
        return None
    if cls is not None and issubclass(cls, APIView):
        if declares_permission_classes(cls):
            return None
        return f"{route}: DRF view {cls.__module__}.{cls.__qualname__} does not set permission_classes itself"
    name = cls or callback
    return (f"{route}: {name.__module__}.{name.__qualname__} declares no access "
            "(decorate it with scrm.access.public/logged_in/operators_only)")


def problems(resolver: URLResolver) -> list[str]:
    return [p for route, ns, callback in iter_views(resolver) if (p := access_problem(route, ns, callback))]


def test_every_view_in_the_urlconf_declares_its_access():
    assert problems(get_resolver()) == []


def test_the_walk_reaches_nested_views():
    routes = {route for route, _, _ in iter_views(get_resolver())}
    assert {"", "contacts/<int:pk>/", "admin/", "api/contacts/", "i18n/setlang/", "wecom/callback/"} <= routes


# --- the checker itself fails on a forgotten declaration -------------------------------------------------------
def a_view() -> Callable:
    """A fresh function each time: ``public`` marks the function it is given, so views must not be shared."""

    def undecorated(request):
        raise AssertionError("never called")

    return undecorated


class DefaultPermissionsApi(APIView):
    def get(self, request):
        raise AssertionError("never called")


class ExplicitPermissionsApi(APIView):
    permission_classes = [AllowAny]


class InheritsExplicitPermissionsApi(ExplicitPermissionsApi):
    pass


class PlainView(View):
    pass


def resolver_for(patterns: list) -> URLResolver:
    return URLResolver(path("", include(patterns)).pattern, patterns)


def test_an_undecorated_view_is_reported():
    resolver = resolver_for([
        path("open/", public("a test")(a_view())),
        path("in/", logged_in(a_view())),
        path("ops/", operators_only(a_view())),
        path("nested/", include([path("forgot/", a_view()), path("cbv/", PlainView.as_view())])),
    ])
    found = problems(resolver)
    assert len(found) == 2
    assert found[0].startswith("nested/forgot/: ") and "undecorated declares no access" in found[0]
    assert found[1].startswith("nested/cbv/: ") and "PlainView declares no access" in found[1]


def test_a_drf_view_relying_on_the_default_permissions_is_reported():
    resolver = resolver_for([
        path("default/", DefaultPermissionsApi.as_view()),
        path("explicit/", ExplicitPermissionsApi.as_view()),
        path("inherited/", InheritsExplicitPermissionsApi.as_view()),
    ])
    found = problems(resolver)
    assert len(found) == 1 and found[0].startswith("default/: DRF view")


def test_spectacular_views_need_serve_permissions(settings):
    from drf_spectacular.views import SpectacularAPIView

    resolver = resolver_for([path("schema/", SpectacularAPIView.as_view())])
    assert problems(resolver) == []
    settings.SPECTACULAR_SETTINGS = {**settings.SPECTACULAR_SETTINGS, "SERVE_PERMISSIONS": []}
    assert len(problems(resolver)) == 1
