from django.http import HttpResponse
from django.urls import include, path

from scrm.access import public


@public("benchmark baseline: a bare Django view, only mounted by the benchmark server")
def bare(request):
    return HttpResponse(b"")


urlpatterns = [path("bench/bare", bare), path("", include("scrm.urls"))]
