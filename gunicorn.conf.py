"""Gunicorn's settings for the web process. Gunicorn reads ./gunicorn.conf.py by itself, so the Dockerfile, docker
compose and the benchmarks (`bench/server.py`) all run with these.

Threaded workers: pages wait on Postgres and the landing page now and then on Redis, so a few threads per process
keep the cores busy, and several processes rather than many threads keep the tail short (one GIL per process).
On 2 cores, `python -m bench livecodes` gave the landing page a p99 of 24.6 and 31.0 ms with 3 processes x 4
threads, where 2 x 8 gave 32.6 and 38.2 ms in the same two sessions. Rule of thumb: WEB_CONCURRENCY = cores + 1.
"""

import os


def _positive(name: str, default: int) -> int:
    raw = os.environ.get(name, "") or str(default)
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"{name}={raw!r} must be a positive whole number")
    return int(raw)


worker_class = "gthread"
workers = _positive("WEB_CONCURRENCY", 3)
threads = _positive("WEB_THREADS", 4)
keepalive = 30
backlog = 2048



def post_worker_init(worker):
    """Once the worker has loaded Django: import every view (Django does that on the first request), then move
    everything loaded so far out of the garbage collector's reach (``gc.freeze``). Django, the project and their
    imports are about 190,000 long-lived objects; a full collection walked them all, pausing every thread of the
    process for about 100 ms on the 2-core development machine (``gc.collect()`` timed in a loaded process: 101 ms
    before the freeze, 0.0 ms after). ``tests/scrm/test_gunicorn_conf.py`` checks that the hook imports the views
    and freezes."""
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports the URLconf and with it every view module
    gc.collect()
    gc.freeze()
