"""All settings, read from the environment (see .env.example). Bad values fail loudly at startup."""

import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _

from scrm.env import (
    check_redis_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_secret,
    env_str,
    parse_database_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set (or DJANGO_DEBUG=1 for a throwaway dev key)")
    SECRET_KEY = "dev-only-insecure-key-set-DJANGO_SECRET_KEY-in-production"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # ArrayField + GIN (intarray) for the tag index
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_htmx",
    "accounts",
    "wecom",
    "contacts",
    "tagging",
    "livecodes",
    "journeys",
    "analytics",  # rollups and dashboards (reads every app below it)
    "predictive",  # churn risk and purchase propensity, learned from the corp's history
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # GET /l/<slug> (the live-code scan hot path) is answered here, without session/auth/CSRF/messages work.
    "livecodes.middleware.LandingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "scrm.middleware.CorpLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "scrm.urls"
WSGI_APPLICATION = "scrm.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "web:dashboard"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- data stores -------------------------------------------------------------------------------
DATABASE_URL = env_secret("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/scrm")
DATABASES = {"default": parse_database_url(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DJANGO_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = check_redis_url("REDIS_URL", env_secret("REDIS_URL", "redis://127.0.0.1:6379/0"))
# Prefix of every Redis key the app owns (the test settings give each test worker its own).
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "scrm")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "scrm",
    }
}

# --- i18n, time ------------------------------------------------------------------------------------
LANGUAGE_CODE = env_str("DJANGO_LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = env_str("CORP_TIME_ZONE", "Asia/Shanghai")
try:
    from zoneinfo import ZoneInfo

    ZoneInfo(TIME_ZONE)
except Exception as exc:  # noqa: BLE001 - any failure means the zone name is unusable
    raise ImproperlyConfigured(f"CORP_TIME_ZONE={TIME_ZONE!r} is not a known time zone") from exc

# --- static -----------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- security ----------------------------------------------------------------------------------------
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_BEHIND_PROXY", False) else None
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "scrm.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "scrm.api.KeysetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SCRM API",
    "DESCRIPTION": "Customers, staff, follow relations and customer groups of a WeCom corp.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- Celery -----------------------------------------------------------------------------------------
CELERY_BROKER_URL = check_redis_url("CELERY_BROKER_URL", env_secret("CELERY_BROKER_URL", REDIS_URL))
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queues (scrm.queues.Queue): default = fast DB work, wecom = calls to WeCom, bulk = syncs and recomputes.
CELERY_TASK_ROUTES = {
    "wecom.*": {"queue": "default"},
    "contacts.corp_sync_from_wecom": {"queue": "bulk"},
    # tagging: WeCom calls on the wecom queue, recomputes and imports on bulk, the rest default
    "tagging.tag_push_to_wecom": {"queue": "wecom"},
    "tagging.corp_tag_delete_in_wecom": {"queue": "wecom"},
    "tagging.contact_wecom_tags_push": {"queue": "wecom"},
    "tagging.corp_tags_pull": {"queue": "wecom"},
    "tagging.tag_rule_recompute": {"queue": "bulk"},
    "tagging.tag_rules_recompute_all": {"queue": "bulk"},
    "tagging.bulk_job_run": {"queue": "bulk"},
    "tagging.*": {"queue": "default"},
    # journeys: the sweeper and pollers on default, creating WeCom tasks on wecom
    "journeys.outbound_send_group": {"queue": "wecom"},
    "journeys.mass_tasks_poll": {"queue": "wecom"},
    "journeys.triggers_scan": {"queue": "bulk"},
    "journeys.*": {"queue": "default"},
    "predictive.*": {"queue": "bulk"},  # nightly training and rescoring: minutes of work
}

# --- WeCom ------------------------------------------------------------------------------------------
WECOM_BACKEND = env_str("WECOM_BACKEND", "http")
if WECOM_BACKEND not in {"http", "fake"}:
    raise ImproperlyConfigured(f"WECOM_BACKEND={WECOM_BACKEND!r} must be 'http' or 'fake'")
WECOM_CORP_ID = env_str("WECOM_CORP_ID", "")
WECOM_AGENT_ID = env_str("WECOM_AGENT_ID", "")
WECOM_SECRET = env_secret("WECOM_SECRET", "")
WECOM_TOKEN = env_secret("WECOM_TOKEN", "")
WECOM_AES_KEY = env_secret("WECOM_AES_KEY", "")
WECOM_API_BASE = env_str("WECOM_API_BASE", "https://qyapi.weixin.qq.com/cgi-bin/")
if not WECOM_API_BASE.endswith("/cgi-bin/"):
    raise ImproperlyConfigured(f"WECOM_API_BASE={WECOM_API_BASE!r} must end in /cgi-bin/")
if WECOM_AES_KEY and len(WECOM_AES_KEY) != 43:
    raise ImproperlyConfigured("WECOM_AES_KEY must be exactly 43 characters (WeCom's EncodingAESKey)")
if WECOM_TOKEN and len(WECOM_TOKEN) > 32:
    raise ImproperlyConfigured("WECOM_TOKEN must be at most 32 characters")
if WECOM_AGENT_ID and not WECOM_AGENT_ID.isdigit():
    raise ImproperlyConfigured(f"WECOM_AGENT_ID={WECOM_AGENT_ID!r} must be a number")
WECOM_TIMEOUT = env_float("WECOM_TIMEOUT", 10.0, minimum=0.1)
# Our own ceiling per (corp, api) per minute; WeCom's is 10,000 (API.md §1.2). Staying below it means
# 45009 never happens under our own load.
WECOM_API_RATE_PER_MIN = env_int("WECOM_API_RATE_PER_MIN", 6000, minimum=1)
# WeCom silently drops app messages beyond 30/min to one member; we stay under it.
WECOM_APP_MSG_RATE_PER_MIN = env_int("WECOM_APP_MSG_RATE_PER_MIN", 20, minimum=1)
# How long a worker waits for our own bucket before giving up with a retryable error.
WECOM_RATE_MAX_WAIT = env_float("WECOM_RATE_MAX_WAIT", 30.0, minimum=0)
WECOM_CALLBACK_MAX_BYTES = 64 * 1024

# --- tagging -----------------------------------------------------------------------------------------
# Where uploaded CSV imports and their rejected-rows reports are kept (web and worker must share it).
TAGGING_IMPORT_DIR = Path(env_str("TAGGING_IMPORT_DIR", str(BASE_DIR / ".data" / "imports")))

# --- live codes -------------------------------------------------------------------------------------
# Public base URL of this site (links in welcome messages and alerts point at it).
LIVECODE_PUBLIC_BASE_URL = env_str("LIVECODE_PUBLIC_BASE_URL", "http://127.0.0.1:8000")
# Seconds a web process keeps a code's routing snapshot before looking again (edits show up within this).
LIVECODE_SNAPSHOT_TTL = env_float("LIVECODE_SNAPSHOT_TTL", 5.0, minimum=0)
# Slots of a scan-capped pool member a web process claims from Redis at once (1: one round trip per scan).
LIVECODE_SCAN_CHUNK = env_int("LIVECODE_SCAN_CHUNK", 32, minimum=1)
# Seconds between writes of a web process's buffered scan counts to Redis (what a kill -9 may lose; 0: at once).
LIVECODE_FLUSH_INTERVAL = env_float("LIVECODE_FLUSH_INTERVAL", 0.5, minimum=0)
# Uploaded group QR images and banners: bytes and pixels, both checked before the image is decoded.
LIVECODE_UPLOAD_MAX_BYTES = env_int("LIVECODE_UPLOAD_MAX_BYTES", 2 * 1024 * 1024, minimum=1024)
LIVECODE_UPLOAD_MAX_PIXELS = env_int("LIVECODE_UPLOAD_MAX_PIXELS", 4096 * 4096, minimum=10_000)
# Recognise known customers on the landing page through WeCom OAuth (API.md §8): a first scan inside WeChat/WeCom
# is redirected once (silently, snsapi_base) and a customer already in a pool group or added to a pool staff member
# is sent back there. Needs LIVECODE_PUBLIC_BASE_URL's domain as the app's trusted domain.
LIVECODE_WECOM_OAUTH = env_bool("LIVECODE_WECOM_OAUTH", False)
LIVECODE_OAUTH_AUTHORIZE_URL = env_str("LIVECODE_OAUTH_AUTHORIZE_URL", "https://open.weixin.qq.com/connect/oauth2/authorize")
# Or through a WeChat official account's silent OAuth (API.md §8), used inside WeChat when both are set: the
# openid makes routing sticky across cookies and devices, and a unionid (when WeChat gives one) recognises a known
# customer. The account's web-authorisation domain must be LIVECODE_PUBLIC_BASE_URL's domain.
LIVECODE_OA_APPID = env_str("LIVECODE_OA_APPID", "")
LIVECODE_OA_SECRET = env_secret("LIVECODE_OA_SECRET", "")
if bool(LIVECODE_OA_APPID) != bool(LIVECODE_OA_SECRET):
    raise ImproperlyConfigured("LIVECODE_OA_APPID and LIVECODE_OA_SECRET are set together (or neither)")
# Base URL of WeChat's official-account API (sns/oauth2/access_token); the simulator serves it too.
WECHAT_OA_API_BASE = env_str("WECHAT_OA_API_BASE", "https://api.weixin.qq.com/")
if not WECHAT_OA_API_BASE.endswith("/"):
    raise ImproperlyConfigured(f"WECHAT_OA_API_BASE={WECHAT_OA_API_BASE!r} must end in /")
# Request header holding the scanner's province or city, set by a GeoIP-aware proxy (empty: not used).
LIVECODE_REGION_HEADER = env_str("LIVECODE_REGION_HEADER", "")
# Otherwise "by location" codes look the scanner's IP up in the bundled GeoLite2 City database (maxminddb-geolite2,
# 2018 data); LIVECODE_IP_REGION_DB may point at a newer GeoLite2-City.mmdb. Off: regions only from the header
# and browser coordinates.
LIVECODE_IP_REGION = env_bool("LIVECODE_IP_REGION", True)
LIVECODE_IP_REGION_DB = env_str("LIVECODE_IP_REGION_DB", "")
# The scanner's address is REMOTE_ADDR, or the first X-Forwarded-For address when the reverse proxy in front sets
# that header itself (it must overwrite, not append to, what the client sent).
LIVECODE_TRUST_X_FORWARDED_FOR = env_bool("LIVECODE_TRUST_X_FORWARDED_FOR", False)
# Hosts serving WeCom's contact-way and join-way QR images, allowed in the landing page's img-src.
LIVECODE_QR_IMG_HOSTS = env_list("LIVECODE_QR_IMG_HOSTS", ["https://wework.qpic.cn", "https://p.qpic.cn"])
SECURE_CSP["img-src"] = [*SECURE_CSP["img-src"], *LIVECODE_QR_IMG_HOSTS]

# --- journeys and broadcasts ------------------------------------------------------------------------
# Frequency cap: at most this many marketing touches per contact in a rolling window (0 = no cap).
JOURNEYS_CAP_MAX_TOUCHES = env_int("JOURNEYS_CAP_MAX_TOUCHES", 2, minimum=0)
JOURNEYS_CAP_WINDOW_DAYS = env_int("JOURNEYS_CAP_WINDOW_DAYS", 7, minimum=1)
# Quiet hours in the corp time zone ("21:00-09:00"; equal ends = no quiet hours).
JOURNEYS_QUIET_HOURS = env_str("JOURNEYS_QUIET_HOURS", "21:00-09:00")
if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", JOURNEYS_QUIET_HOURS):
    raise ImproperlyConfigured(f"JOURNEYS_QUIET_HOURS={JOURNEYS_QUIET_HOURS!r} must look like 21:00-09:00")
# WeCom's per-customer receive quota per calendar month (0 = as many as the month has days, WeCom's default).
JOURNEYS_RECEIVE_QUOTA_PER_MONTH = env_int("JOURNEYS_RECEIVE_QUOTA_PER_MONTH", 0, minimum=0)
# Name of the tag that opts a customer out of marketing (set by staff or by a keyword reply).
JOURNEYS_OPT_OUT_TAG = env_str("JOURNEYS_OPT_OUT_TAG", "退订")
# Enrollments claimed per transaction by the due-step sweeper.
JOURNEYS_SWEEP_BATCH = env_int("JOURNEYS_SWEEP_BATCH", 2000, minimum=1)
# Attempts to create a WeCom task after transient errors before the rows fail.
JOURNEYS_SEND_MAX_ATTEMPTS = env_int("JOURNEYS_SEND_MAX_ATTEMPTS", 5, minimum=1)

# --- logging ---------------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"LOG_LEVEL={LOG_LEVEL!r} is not a logging level")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["stdout"], "level": "WARNING"},
    "loggers": {
        "django.request": {"level": "ERROR"},
        **{
            name: {"level": LOG_LEVEL}
            for name in ("scrm", "accounts", "wecom", "contacts", "tagging", "livecodes", "journeys", "web")
        },
    },
}
