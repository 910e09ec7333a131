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
