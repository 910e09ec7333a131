"""Speed and safety overrides for the test suite. Real PostgreSQL and Redis, never SQLite."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("WECOM_CORP_ID", "wwTESTCORP0000001")
os.environ.setdefault("WECOM_AGENT_ID", "1000002")
os.environ.setdefault("WECOM_SECRET", "test-secret")
os.environ.setdefault("WECOM_TOKEN", "testtoken")
os.environ.setdefault("WECOM_AES_KEY", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
os.environ.setdefault("WECOM_BACKEND", "fake")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from scrm.settings import *  # noqa: E402,F403
from scrm.settings import CACHES  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Each xdist worker gets its own key prefix so parallel tests never see each other's cache.
# TEST_RUN_ID separates concurrent test runs on one machine (each also sets its own DATABASE_URL).
REDIS_KEY_PREFIX = f"scrmtest-{os.environ.get('TEST_RUN_ID', '')}{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
CACHES["default"]["KEY_PREFIX"] = REDIS_KEY_PREFIX
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
LANGUAGE_CODE = "zh-hans"
# Parallel test workers share one Redis: each gets its own broker keys too.
CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": f"{REDIS_KEY_PREFIX}:"}  # noqa: F405
