"""Process-level endpoints: health."""

import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from scrm.access import public
from scrm.redis import get_redis

logger = logging.getLogger(__name__)


def _check(fn) -> str:
    try:
        fn()
    except Exception as exc:  # any failure is reported, never raised
        logger.warning("health check failed: %s", exc.__class__.__name__)
        return f"fail: {exc.__class__.__name__}"
    return "ok"


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    from scrm.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


@public("load balancers and orchestrators poll it; it reveals only up/down states")
@never_cache
@require_GET
def healthz(request):
    checks = {"database": _check(_database), "redis": _check(lambda: get_redis().ping()), "broker": _check(_broker)}
    ok = all(v == "ok" for v in checks.values())
    return JsonResponse({"status": "ok" if ok else "fail", **checks}, status=200 if ok else 503)
