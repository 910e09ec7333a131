"""Settings for the benchmark server: the product settings plus one bare view to compare against."""

from scrm.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

# The benchmark shares Redis with whatever else runs: its broker keys carry its own prefix too.
CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": f"{REDIS_KEY_PREFIX}:"}  # noqa: F405
