"""Masker compliance service settings: one file, read from the environment.

Helpers fail loudly on bad values. Secrets have no production default: a development value is used only
when DEBUG is on. `DATABASE_URL` picks the database (default: an SQLite file under var/). Variables missing
from the environment are read from `.env` when there is one (see ENV_FILE).
"""

import json
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
# A local .env (written once by `make run` for development) fills in what the environment does not set; the
# environment always wins. MASKER_ENV_FILE names another file, or none when empty (the tests use that).
ENV_FILE = os.environ.get("MASKER_ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE:
    load_dotenv(ENV_FILE, override=False)
# The service's working folder (SQLite file, collected static files, development keys); created when the app
# starts (masker/apps.py), never by importing these settings.
VAR_DIR = Path(os.environ.get("MASKER_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc


def env_proxy_hops(name: str) -> int:
    """Trusted reverse-proxy hops in front of the service: ``0`` (none), ``1`` (one; also ``true``/``yes``/``on``)
    or more."""
    raw = (os.environ.get(name) or "0").strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return 1
    if raw in {"0", "false", "no", "off"}:
        return 0
    hops = env_int(name, 0)
    if not 0 <= hops <= 10:
        raise ImproperlyConfigured(f"{name} must be 0 (no proxy) or the number of trusted proxy hops, got {raw!r}")
    return hops


def env_rate(name: str, default: str) -> str:
    """A request rate in DRF's syntax, ``<count>/<period>`` with the period ``s``, ``m``, ``h`` or ``d`` (or a word
    starting with one: ``6000/min``), checked when the settings load rather than on the first request."""
    raw = os.environ.get(name) or default
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", raw.strip()):
        raise ImproperlyConfigured(f"{name} must be a rate such as 6000/min (count/s|min|hour|day), got {raw!r}")
    return raw.strip()


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_secret(name: str, *, dev_default: str) -> str:
    value = os.environ.get(name)
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off")


DEBUG = env_bool("MASKER_DEBUG", False)
SECRET_KEY = env_secret("MASKER_SECRET_KEY", dev_default="dev-insecure-masker-secret-key-do-not-use-in-production")
ALLOWED_HOSTS = env_list("MASKER_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("MASKER_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "masker",
    "audit",
    "reports",
]

MIDDLEWARE = [
    "masker.middleware.RequestIDMiddleware",
    "masker.middleware.NoStoreMiddleware",
    "masker.middleware.HostileInputMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "masker.urls"
WSGI_APPLICATION = "masker.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'masker.sqlite3'}",
        conn_max_age=env_int("MASKER_DB_CONN_MAX_AGE", 0),
    )
}
# Time bounds (seconds): a database that is down, locked or silent is answered 503 database_unavailable
# (masker.errors) well within gunicorn's --timeout, which must exceed connect + statement timeouts. The lock
# timeout is what answers quickly when a lock is held; the statement timeout leaves room for long report walks.
DB_CONNECT_TIMEOUT = env_int("MASKER_DB_CONNECT_TIMEOUT", 5)
DB_STATEMENT_TIMEOUT = env_int("MASKER_DB_STATEMENT_TIMEOUT", 30)
DB_LOCK_TIMEOUT = env_int("MASKER_DB_LOCK_TIMEOUT", 5)
if min(DB_CONNECT_TIMEOUT, DB_STATEMENT_TIMEOUT, DB_LOCK_TIMEOUT) < 1:
    raise ImproperlyConfigured("MASKER_DB_CONNECT_TIMEOUT, _STATEMENT_TIMEOUT and _LOCK_TIMEOUT must be >= 1 second")
if DB_LOCK_TIMEOUT >= DB_STATEMENT_TIMEOUT:
    raise ImproperlyConfigured("MASKER_DB_LOCK_TIMEOUT must be shorter than MASKER_DB_STATEMENT_TIMEOUT")
_DB_OPTIONS = DATABASES["default"].setdefault("OPTIONS", {})
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # select_for_update() is a no-op on SQLite: IMMEDIATE transactions serialise writers instead.
    _DB_OPTIONS["transaction_mode"] = "IMMEDIATE"
    _DB_OPTIONS["timeout"] = DB_LOCK_TIMEOUT  # how long a writer waits for another's lock
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _DB_OPTIONS["connect_timeout"] = DB_CONNECT_TIMEOUT
    _DB_OPTIONS["options"] = " ".join(
        [
            _DB_OPTIONS.get("options", ""),
            f"-c statement_timeout={DB_STATEMENT_TIMEOUT * 1000}",
            f"-c lock_timeout={DB_LOCK_TIMEOUT * 1000}",
        ]
    ).strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/sessions/"

# Sessions: the masker_session cookie: HttpOnly, SameSite=Lax, Secure outside DEBUG, 30 days, sliding.
SESSION_COOKIE_NAME = "masker_session"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 30 * 24 * 3600
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_SECURE = env_bool("MASKER_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env_bool("MASKER_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("MASKER_HSTS_SECONDS", 0 if DEBUG else 31536000)
# Off by default: they bind every subdomain of the host (and, preloaded, browsers) to HTTPS for a year.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MASKER_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("MASKER_HSTS_PRELOAD", False)
# Reverse proxies in front of the service: 0 = none (REMOTE_ADDR is the client); N = N trusted hops, whose
# X-Forwarded-Proto is believed and whose X-Forwarded-For names the client (N-th address from the right).
BEHIND_PROXY_HOPS = env_proxy_hops("MASKER_BEHIND_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY_HOPS else None

# Content-Security-Policy on every page (django-csp): local scripts, styles, fonts and images only; no inline
# script anywhere (the Swagger UI's start-up script is served as a file).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

AUTHENTICATION_BACKENDS = ["masker.throttling.LoginLimitBackend"]

# Request body limits: bigger bodies are answered 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MASKER_MAX_BODY_BYTES", 2 * 1024 * 1024)

# The session report's PDF template, and the only folder its assets (fonts, CSS, images) are read from.
MASKER_REPORT_TEMPLATE = "reports/session_report.html"
MASKER_REPORT_ASSETS_DIR = BASE_DIR / "static" / "reports"

# A synchronous period report walks at most this many events (the window's sessions' sizes); more is 422.
MASKER_SYNC_REPORT_MAX_EVENTS = env_int("MASKER_SYNC_REPORT_MAX_EVENTS", 2_000_000)

# Report runs (reports.runs) on the job engine, Celery. The broker: Redis in production (redis://host:6379/0);
# unset, a folder under var/ (kombu's filesystem transport: no server, one machine, for development).
MASKER_BROKER_URL = os.environ.get("MASKER_BROKER_URL", "")
BROKER_FOLDERS: list[Path] = []
BROKER_DIR = Path(os.environ.get("MASKER_BROKER_DIR", VAR_DIR / "broker"))
CELERY_BROKER_URL = MASKER_BROKER_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object]
if MASKER_BROKER_URL:
    # A message a worker took and never acknowledged (it died) is handed out again after this many seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("MASKER_BROKER_VISIBILITY_TIMEOUT", 3600)}
else:
    BROKER_FOLDERS = [BROKER_DIR / folder for folder in ("out", "processed", "control")]  # made at start-up
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),  # the exchanges' tables (default: ./control)
        "store_processed": False,
        "polling_interval": 0.2,  # seconds an idle worker waits before looking at the folder again (default 1)
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("MASKER_RUN_QUEUE", "masker")
CELERY_TASK_IGNORE_RESULT = True  # no result backend: a run's state is in the database
CELERY_TASK_ACKS_LATE = True  # a message is acknowledged once its task finished, so a lost worker's task runs again
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a worker holds only the task it runs; the rest wait for any worker
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # LOGGING below (no PHI in logs) applies to workers too
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Processes one long walk (a report, a run's chunk) uses: 2 (default) checks in a second process while the first
# reads, which helps when a core would otherwise idle; 1 when every core is already busy, e.g. as many Celery worker
# processes on a machine as it has cores, where a second process per walk only adds the pipe's cost.
MASKER_WALK_PROCESSES = env_int("MASKER_WALK_PROCESSES", 2)
if MASKER_WALK_PROCESSES not in (1, 2):
    raise ImproperlyConfigured(f"MASKER_WALK_PROCESSES must be 1 or 2, got {MASKER_WALK_PROCESSES}")
# A chunk's walk: about this many events per chunk (whole sessions, in session-id order). Besides its events a
# chunk has a fixed cost (its task, queries and claims, the walk's start and end): about a second of one worker's
# work per chunk keeps that small (figures in docs/performance.md).
MASKER_RUN_CHUNK_EVENTS = env_int("MASKER_RUN_CHUNK_EVENTS", 250_000)
# A claimed chunk (or an assembly) not finished within this many seconds counts as abandoned (its worker died) and
# is queued again by the beat task below; a slower one then merely runs twice (chunks are idempotent).
MASKER_RUN_LEASE_SECONDS = env_int("MASKER_RUN_LEASE_SECONDS", 900)
# Tries per chunk before the run fails.
MASKER_RUN_MAX_ATTEMPTS = env_int("MASKER_RUN_MAX_ATTEMPTS", 3)
CELERY_BEAT_SCHEDULE = {
    "requeue-abandoned-run-work": {
        "task": "reports.requeue_abandoned",
        "schedule": float(env_int("MASKER_RUN_REQUEUE_INTERVAL", 60)),
    },
    "purge-expired-run-files": {
        "task": "reports.purge_expired_files",
        "schedule": float(env_int("MASKER_RUN_PURGE_INTERVAL", 3600)),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# The files of succeeded runs, written once through Django's storage API: a folder by default, or any storage
# backend (e.g. django-storages' S3) named by MASKER_RUN_FILES_STORAGE with MASKER_RUN_FILES_OPTIONS (JSON).
MASKER_RUN_FILES_DIR = Path(os.environ.get("MASKER_RUN_FILES_DIR", VAR_DIR / "run-files"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "run_files": {
        "BACKEND": os.environ.get("MASKER_RUN_FILES_STORAGE", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": json.loads(os.environ.get("MASKER_RUN_FILES_OPTIONS", ""))
        if os.environ.get("MASKER_RUN_FILES_OPTIONS")
        else {
            "location": str(MASKER_RUN_FILES_DIR),
            "directory_permissions_mode": 0o700,
            "file_permissions_mode": 0o600,
        },
    },
}

# Ed25519 signing key for reports and seals (docs/audit-log.md): MASKER_SIGNING_KEY (PEM or base64url raw seed)
# or a key file.
MASKER_SIGNING_KEY = os.environ.get("MASKER_SIGNING_KEY", "")
MASKER_SIGNING_KEY_FILE = os.environ.get("MASKER_SIGNING_KEY_FILE", "")
MASKER_KEYS_DIR = Path(os.environ.get("MASKER_KEYS_DIR", VAR_DIR / "keys"))
# PAdES signature on report PDFs: a PEM key and its certificate chain (development: created in MASKER_KEYS_DIR);
# an RFC 3161 timestamping authority adds a trusted signing time (PAdES B-T).
MASKER_PDF_SIGNING_KEY_FILE = os.environ.get("MASKER_PDF_SIGNING_KEY_FILE", "")
MASKER_PDF_SIGNING_CERT_FILE = os.environ.get("MASKER_PDF_SIGNING_CERT_FILE", "")
MASKER_TSA_URL = os.environ.get("MASKER_TSA_URL", "")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "masker.auth.BearerTokenAuthentication",
        "masker.auth.CookieSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["masker.parsers.StrictJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "masker.parsers.StrictContentNegotiation",
    "NUM_PROXIES": BEHIND_PROXY_HOPS,
    "EXCEPTION_HANDLER": "masker.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # ?format= is the report's own parameter, not a renderer switch; elsewhere it is an unknown parameter (400).
    "URL_FORMAT_OVERRIDE": None,
    "UNAUTHENTICATED_USER": None,
    # Per API token, counted in the database so the limit holds across gunicorn workers (masker/throttling.py).
    "DEFAULT_THROTTLE_CLASSES": ["masker.throttling.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "token": env_rate("MASKER_TOKEN_RATE", "6000/min"),
    },
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "masker"}}

SPECTACULAR_SETTINGS = {
    "TITLE": "Masker Compliance API",
    "DESCRIPTION": "Masker's compliance service: the proxy writes each call's hash-chained audit log here (API "
    "tokens), and auditors and compliance teams read sessions, signed compliance reports (JSON, Masker Audit Schema "
    "v1, or PDF) and the evidence to check them offline: the events export, Merkle proofs and the public keys. "
    "Sign in with the session cookie (POST /api/v1/auth/login) or send `Authorization: Bearer mk_…`. Every error "
    'is `{"error": {"code", "message", "request_id", "details"?}}`. The contracts behind the hashes and the '
    "report are in the repository's docs/audit-log.md and docs/report.md.",
    "VERSION": "1.0.0",
    # OpenAPI 3.1: its schema objects are JSON Schema 2020-12, so the audit schema and the event schemas are
    # published as they are written.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Enum values are explained in each field's description, in words (not a generated "* `ok` - ok" list).
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "masker.schema.postprocess_schema",
        "masker.schema.document_common_headers",
    ],
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": "audit.models.Session.Status",
        "SessionEndStatusEnum": "audit.events.END_STATUSES",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "masker.middleware.RequestIDLogFilter"}},
    "formatters": {
        # Tracebacks without exception messages (they can quote request data): masker/logs.py.
        "plain": {
            "()": "masker.logs.SafeFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("MASKER_LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's request logger prints request bodies on some errors; ours log ids only.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # WeasyPrint narrates every layout step at INFO.
        "weasyprint": {"level": "WARNING"},
        # runserver already says it watches for changes; the log line would say it twice.
        "django.utils.autoreload": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
    },
}
